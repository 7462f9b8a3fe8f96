"""Build the pure packages' objects from settings: what a worker needs, in one place.

``streams`` is the only package that wires ``detectors``, ``geo`` and ``alerting`` together;
this module reads their configuration files (:mod:`streams.config_files`) and does the
adaptation between them (geo's zones → alerting's :class:`~alerting.model.ZoneInfo`;
subscribers come from the store, ``streams/store``), once per process. The geo join of
detections (which zones a detection stages, at which level) is :func:`geo.routing.route`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from alerting.model import ZoneInfo
from alerting.policy import StagePolicy, with_holds, with_repeats
from alerting.templates import Templates
from geo.routing import route
from geo.stations import StationZoneIndex, station_zones
from geo.zones import ZoneRegistry
from gyeongbo.events import Detection
from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import Settings
from gyeongbo.vocab import Hazard, Kind
from streams.config_files import load_templates, load_zones

__all__ = ["HAZARD_KIND", "Services"]

#: Which sensor kind speaks for which hazard (the M of a zone's N-of-M is counted in it).
HAZARD_KIND: dict[str, Kind | None] = {
    Hazard.FLOOD: Kind.WATER_LEVEL,
    Hazard.HEAVY_RAIN: Kind.RAINFALL,
    Hazard.PM10: Kind.AIR_QUALITY,
    Hazard.PM25: Kind.AIR_QUALITY,
    Hazard.OZONE: Kind.AIR_QUALITY,
    Hazard.STRUCTURAL: Kind.STRUCTURAL,
    Hazard.EARTHQUAKE: Kind.SEISMIC,
    Hazard.SENSOR_HEALTH: None,
}


@dataclass
class Services:
    settings: Settings
    _zone_info: dict[tuple[str, str], ZoneInfo] = field(default_factory=dict)

    @cached_property
    def registry(self) -> Registry:
        return load_registry(self.settings.paths.stations)

    @cached_property
    def zones(self) -> ZoneRegistry:
        return load_zones(self.settings.paths.zones, self.settings.paths.admin_boundaries)

    @cached_property
    def station_index(self) -> StationZoneIndex:
        return station_zones(self.registry, self.zones)

    @cached_property
    def templates(self) -> Templates:
        return load_templates(
            self.settings.paths.templates, max_chars=self.settings.twilio.max_sms_chars
        )

    @cached_property
    def policies(self) -> dict[str, StagePolicy]:
        """The stage policies, with the holds and reminder periods of ``settings.alerting``
        (docs/design.md §4)."""
        alerting = self.settings.alerting
        return with_repeats(
            alerting.repeat_s.model_dump(), with_holds(alerting.hold_s.model_dump())
        )

    @cached_property
    def station_names(self) -> dict[str, str]:
        return {sid: st.name for sid, st in self.registry.stations.items()}

    def warm(self) -> None:
        """Load and index everything now (a worker calls this before it takes partitions).

        Each piece is otherwise built on first use, and the station → zone index of a
        national registry (10⁵ stations against every boundary) takes seconds: built lazily,
        it stalled the first detection's alert by that much (measured: ~4 s at 10⁵ stations).
        """
        for name in (
            "registry",
            "zones",
            "station_index",
            "templates",
            "station_names",
        ):
            getattr(self, name)

    def impact_zones(self, station: str) -> tuple[str, ...]:
        """Zones a detection at ``station`` raises alerts for (empty for unknown stations)."""
        if station not in self.station_index:
            return ()
        return self.station_index.impact(station)

    def route(self, det: Detection) -> list[tuple[str, Detection]]:
        """The zone commands one detection fans out to (:func:`geo.routing.route`)."""
        return route(det, self.zones, self.station_index)

    def zone_info(self, zone_id: str, hazard: str) -> ZoneInfo:
        """The zone as alerting needs it, with the stations of the hazard's kind in it."""
        key = (zone_id, hazard)
        info = self._zone_info.get(key)
        if info is None:
            zone = self.zones[zone_id]
            kind = HAZARD_KIND.get(hazard)
            stations = tuple(
                s
                for s in self.station_index.stations_in(zone_id)
                if kind is None or self.registry.stations[s].kind is kind
            )
            provinces = sorted(self.zones.provinces_of(zone_id))
            info = ZoneInfo(
                id=zone.id,
                name=zone.name,
                name_en=zone.name_en,
                rings=zone.outlines(),
                admin_code=zone.id if zone.is_admin else None,
                province=provinces[0] if provinces else None,
                stations=stations,
            )
            self._zone_info[key] = info
        return info
