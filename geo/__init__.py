"""Geofences: zones, station → zone joins, recipients, regional aggregates (shapely 2, pure).

No Kafka, MQTT, Faust or files here: every function takes plain values, arrays or the bytes of
a file read by :mod:`streams.config_files`, so streams/ wires it. One concern per module:

* :mod:`geo.zones` — the zone registry (KOSTAT administrative zones + ``config/zones``),
  hierarchy, point location; :mod:`geo.geojson` validates the files.
* :mod:`geo.index` — vectorized point-in-polygon (prepared STRtree).
* :mod:`geo.stations` — station → zones join, cached per registry version.
* :mod:`geo.recipients` — subscribers, opt-ins, drill handsets; :mod:`geo.phone` E.164 + masking.
* :mod:`geo.aggregates` — regional means, provinces at a level.
* :mod:`geo.quake` — expected earthquake intensity (Emolo et al. 2015 PGA, Worden et al. 2012
  PGA → MMI); :mod:`geo.kma_quake` — KMA's cell-broadcast classes and targets from it.
* :mod:`geo.routing` — the geo join of detections: the zones (and levels) a detection stages.
* :mod:`geo.zonegen` — builds the generated custom zone files (``python -m streams.zonegen``).

Boundary data: Statistics Korea (KOSTAT) SGIS census boundary data (2013), Korea Open
Government Licence type 1 (attribution), via southkorea/southkorea-maps and
southkorea/seoul-maps (see :data:`geo.zones.ADMIN_ATTRIBUTION`).
"""

from __future__ import annotations

from geo.aggregates import RegionalMeans, count_provinces_at, provinces_at
from geo.geojson import ZoneError
from geo.index import PointIndex
from geo.kma_quake import Targeting, kma_targets
from geo.phone import PhoneNumber, mask_phone
from geo.quake import IntensityTarget, QuakeEvent, expected_mmi, target_zones
from geo.recipients import Recipient, RecipientDirectory, RecipientError
from geo.stations import StationZoneIndex, StationZones, station_zones
from geo.zones import Location, Zone, ZoneKind, ZoneRegistry, build_zones

__all__ = [
    "IntensityTarget",
    "Location",
    "PhoneNumber",
    "PointIndex",
    "QuakeEvent",
    "Recipient",
    "RecipientDirectory",
    "RecipientError",
    "RegionalMeans",
    "StationZoneIndex",
    "StationZones",
    "Targeting",
    "Zone",
    "ZoneError",
    "ZoneKind",
    "ZoneRegistry",
    "build_zones",
    "count_provinces_at",
    "expected_mmi",
    "kma_targets",
    "mask_phone",
    "provinces_at",
    "station_zones",
    "target_zones",
]
