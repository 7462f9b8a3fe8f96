"""Build the pure packages' objects from settings: what a worker needs, in one place.

``streams`` is the only package that wires ``detectors``, ``geo`` and ``alerting`` together;
this module does the adaptation between them (geo's zones and recipients → alerting's
:class:`~alerting.model.ZoneInfo` and :class:`~alerting.model.Recipient`), once per process,
and the geo join of detections (:meth:`Services.route`): which zones a detection stages, and
at which level in each.

A station detection stages the station's impact zones at its own level. An earthquake
catalogue detection (``earthquake.catalogue``) is not about its relaying station: it is
targeted by the expected intensity of the event (:func:`catalogue_routes`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import msgspec

from alerting.model import Recipient as AlertRecipient
from alerting.model import ZoneInfo
from alerting.policy import StagePolicy, with_holds
from alerting.templates import Templates, load_templates
from geo.kma_quake import kma_targets
from geo.quake import QuakeEvent
from geo.recipients import RecipientDirectory, load_recipients
from geo.stations import StationZoneIndex, station_zones
from geo.zones import ZoneRegistry, load_zones
from gyeongbo.events import Detection
from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import Settings
from gyeongbo.vocab import Hazard, Kind, Level

__all__ = ["CATALOGUE_RULE", "HAZARD_KIND", "Services", "catalogue_routes"]

#: The rule of the detections made from earthquake catalogue events (``detectors.engine``).
CATALOGUE_RULE = "earthquake.catalogue"

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
    def policies(self) -> dict[str, StagePolicy]:
        """The stage policies, with the holds of ``settings.alerting`` (docs/design.md §4)."""
        return with_holds(self.settings.alerting.hold_s.model_dump())

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
            "recipients",
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
        """The zone commands one detection fans out to: ``(zone id, detection for that zone)``.

        A catalogue event goes where its expected intensity says, each zone with its own copy
        of the detection (:func:`catalogue_routes`); any other detection goes, unchanged, to
        its station's impact zones.
        """
        if det.rule == CATALOGUE_RULE and det.hazard == Hazard.EARTHQUAKE:
            return catalogue_routes(det, self.zones)
        return [(zone, det) for zone in self.impact_zones(det.station)]

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
