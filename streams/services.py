"""Build the pure packages' objects from settings: what a worker needs, in one place.

``streams`` is the only package that wires ``detectors``, ``geo`` and ``alerting`` together;
this module does the adaptation between them (geo's zones and recipients → alerting's
:class:`~alerting.model.ZoneInfo` and :class:`~alerting.model.Recipient`), once per process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from alerting.model import Recipient as AlertRecipient
from alerting.model import ZoneInfo
from alerting.templates import Templates, load_templates
from geo.recipients import RecipientDirectory, load_recipients
from geo.stations import StationZoneIndex, station_zones
from geo.zones import ZoneRegistry, load_zones
from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import Settings
from gyeongbo.vocab import Hazard, Kind

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
    def recipients(self) -> RecipientDirectory:
        return load_recipients(self.settings.paths.recipients, zones=self.zones)

    @cached_property
    def templates(self) -> Templates:
        return load_templates(
            self.settings.paths.templates, max_chars=self.settings.twilio.max_sms_chars
        )

    @cached_property
    def station_names(self) -> dict[str, str]:
        return {sid: st.name for sid, st in self.registry.stations.items()}

    def impact_zones(self, station: str) -> tuple[str, ...]:
        """Zones a detection at ``station`` raises alerts for (empty for unknown stations)."""
        if station not in self.station_index:
            return ()
        return self.station_index.impact(station)

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

    def audience(self, zone_id: str, hazard: str, *, exercise: bool) -> list[AlertRecipient]:
        """Recipients of one zone's alert, adapted for the dispatcher.

        geo decides who (opt-ins, sub-zones, and drill handsets if and only if ``exercise``);
        the dispatcher re-checks drill isolation before every request.
        """
        if hazard not in {h.value for h in Hazard} or hazard == Hazard.SENSOR_HEALTH:
            return []
        if zone_id not in self.zones:
            return []
        return [
            AlertRecipient(
                phone=r.phone.e164,
                lang=r.language,
                hazards=frozenset(h.value for h in r.hazards),
                drill=r.drill,
            )
            for r in self.recipients.audience(zone_id, hazard, exercise=exercise)
        ]
