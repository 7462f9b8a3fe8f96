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
import numpy as np

from alerting.model import Recipient as AlertRecipient
from alerting.model import ZoneInfo
from alerting.policy import StagePolicy, with_holds
from alerting.templates import Templates, load_templates
from detectors import seismic
from geo.quake import QuakeEvent, target_zones
from geo.recipients import RecipientDirectory, load_recipients
from geo.stations import StationZoneIndex, station_zones
from geo.zones import ZoneKind, ZoneRegistry, load_zones
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
    """Target an ``earthquake.catalogue`` detection by the KMA rules (docs/design.md §3.4).

    1. Expected intensity per municipality from the event (``details``: ``magnitude``,
       ``lat``, ``lon``, ``depth_km``) with Atkinson & Wald (2007), at each municipality's
       point nearest the epicentre (:func:`geo.quake.target_zones`; magnitude clipped to
       [0, 10] and depth to [0, 700] km, the relation's domain).
    2. Message class :func:`detectors.seismic.message_class` of the magnitude and the
       maximum expected intensity over the municipalities. For 2 ≤ M < 3.5 the rule wants the
       *measured* intensity, which a catalogue does not carry: the class is then "none" and
       the 안전안내 comes from the accelerometers' own (PGA) detections.
    3. Targets: M ≥ 5 (위급/긴급, nationwide) → every province-level zone (시·도, 17; the zone
       registry has no national zone). A resident's zones include their province, so
       everyone hears the one nationwide message once; a drill handset subscribed to a
       province hears it once, not once per 시·군·구. Otherwise (M < 5) → every municipality
       (시·군·구) with expected intensity ≥ II. Below M 2 there is no message and no target.
    4. Level, one for every target — a cell broadcast has one class for its whole area — on
       the intensity lines of the PGA path (:func:`detectors.seismic.level_of`: II 관심, III–IV
       주의, V–VI 경계, ≥ VII 심각) through :func:`detectors.seismic.class_level`:

       =====================  ==================  ===========================
       message class          level               reaches residents
       =====================  ==================  ===========================
       위급재난 (M ≥ 6)        심각 serious         yes (SMS, CAP)
       긴급재난                경계 alert           yes
       안전안내                주의 caution         yes
       none (2 ≤ M < 3.5)      관심 attention       no (operators only)
       =====================  ==================  ===========================

       Stronger local shaking (a district at VII+ under a 긴급 class) is not guessed from the
       relation: it is *measured* by the accelerometers, whose ``earthquake.pga_intensity``
       detections stage their own districts (VII+ → 심각).

    Each copy keeps the detection's station, time, exercise flag, value (magnitude) and rule,
    and adds to ``details`` the ``message_class`` (``위급재난문자``, ``긴급재난문자``,
    ``안전안내문자`` or ``""``), ``max_intensity`` and the zone's ``intensity``, ``mmi``
    and ``distance_km``. The ``earthquake`` stage policy (raise at once, lapse 30 min after
    the last detection) then applies per zone. Returns ``[]`` for a detection without the
    event details.
    """
    d = det.details
    try:
        mag = float(d["magnitude"])
        event = QuakeEvent(
            lat=float(d["lat"]),
            lon=float(d["lon"]),
            magnitude=min(max(mag, 0.0), 10.0),
            depth_km=min(max(float(d["depth_km"]), 0.0), 700.0),
        )
    except (KeyError, TypeError, ValueError):
        return []
    if mag < 2.0:
        return []
    municipalities = target_zones(event, zones, min_intensity=1)  # most shaken first
    max_intensity = municipalities[0].intensity if municipalities else 1
    cls = int(
        seismic.message_class(
            np.array([mag]), np.array([max_intensity if mag >= 3.5 else 0], dtype=np.int64)
        )[0]
    )
    level = Level(int(seismic.class_level(np.array([cls]))[0])).wire
    if bool(seismic.nationwide(np.array([mag]))[0]):
        targets = target_zones(event, zones, min_intensity=1, kinds=(ZoneKind.PROVINCE,))
        targets = targets or municipalities
    else:
        targets = [t for t in municipalities if t.intensity >= 2]
    common = {
        **d,
        "message_class": seismic.CLASS_KO[cls],
        "max_intensity": max_intensity,
    }
    return [
        (
            t.zone_id,
            msgspec.structs.replace(
                det,
                level=level,
                details={
                    **common,
                    "intensity": t.intensity,
                    "mmi": t.mmi,
                    "distance_km": t.distance_km,
                },
            ),
        )
        for t in targets
    ]
