"""The geo join of detections: which zones a detection stages, and at which level in each.

A station detection stages the station's impact zones (:mod:`geo.stations`) at its own level,
unchanged. An earthquake catalogue detection (rule :data:`CATALOGUE_RULE`) is not about its
relaying station: it is targeted by the expected intensity of the event under KMA's rules
(:func:`catalogue_routes`, :mod:`geo.kma_quake`, docs/design.md §3.4), each zone with a copy
of the detection at that zone's level.
"""

from __future__ import annotations

import msgspec

from geo.kma_quake import kma_targets
from geo.quake import QuakeEvent
from geo.stations import StationZoneIndex
from geo.zones import ZoneRegistry
from gyeongbo.events import Detection
from gyeongbo.vocab import Hazard, Level

__all__ = ["CATALOGUE_RULE", "catalogue_routes", "route"]

#: The rule of the detections made from earthquake catalogue events (``detectors.engine``).
CATALOGUE_RULE = "earthquake.catalogue"


def route(
    det: Detection, zones: ZoneRegistry, stations: StationZoneIndex
) -> list[tuple[str, Detection]]:
    """The zone commands one detection fans out to: ``(zone id, detection for that zone)``.

    A catalogue event goes where its expected intensity says, each zone with its own copy of
    the detection (:func:`catalogue_routes`); any other detection goes, unchanged, to its
    station's impact zones (none for a station the registry does not know).
    """
    if det.rule == CATALOGUE_RULE and det.hazard == Hazard.EARTHQUAKE:
        return catalogue_routes(det, zones)
    if det.station not in stations:
        return []
    return [(zone, det) for zone in stations.impact(det.station)]


def catalogue_routes(det: Detection, zones: ZoneRegistry) -> list[tuple[str, Detection]]:
    """Target an ``earthquake.catalogue`` detection by the KMA rules (:func:`geo.kma_quake.
    kma_targets`, docs/design.md §3.4): expected intensity per municipality from the event
    (``details``: ``magnitude``, ``lat``, ``lon``, ``depth_km``; magnitude clipped to [0, 10]
    and depth to [0, 700] km), the event's message class, and per target zone its level.

    Each copy keeps the detection's station, time, exercise flag, value (magnitude) and rule,
    takes the zone's level, and adds to ``details`` the zone's ``message_class``
    (``위급재난문자``, ``긴급재난문자``, ``안전안내문자`` or ``""``), the event's
    ``event_class`` and ``max_intensity``, and the zone's ``intensity``, ``mmi`` and
    ``distance_km``. The ``earthquake`` stage policy (raise at once, lapse 30 min after the last
    detection) then applies per zone. Returns ``[]`` for a detection without the event details
    and below M 2.
    """
    d = det.details
    try:
        event = QuakeEvent(
            lat=float(d["lat"]),
            lon=float(d["lon"]),
            magnitude=min(max(float(d["magnitude"]), 0.0), 10.0),
            depth_km=min(max(float(d["depth_km"]), 0.0), 700.0),
        )
    except (KeyError, TypeError, ValueError):
        return []
    plan = kma_targets(event, zones)
    common = {**d, "event_class": plan.event_class, "max_intensity": plan.max_intensity}
    return [
        (
            t.zone_id,
            msgspec.structs.replace(
                det,
                level=Level(t.level).wire,
                details={
                    **common,
                    "message_class": t.message_class,
                    "intensity": t.intensity,
                    "mmi": t.mmi,
                    "distance_km": t.distance_km,
                },
            ),
        )
        for t in plan.targets
    ]
