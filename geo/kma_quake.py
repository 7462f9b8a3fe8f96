"""KMA's earthquake cell-broadcast rules: which municipalities hear an event, and how loudly.

**Message class of the event** (KMA rules in force from 2024-10-28; docs/design.md §3.4). The
thresholds for events at sea are half a magnitude higher, so an epicentre outside every
province polygon is "at sea":

================================  ==============================================  =========
magnitude M (at sea)              message class                                   target
================================  ==============================================  =========
M ≥ 6.0                           위급재난문자 (:data:`EMERGENCY`)                  nationwide
5.0 ≤ M < 6.0                     긴급재난문자 (:data:`URGENT`)                     nationwide
3.5 (4.0) ≤ M < 5.0               긴급 if max expected intensity ≥ V, else          ≥ II
                                  안전안내 (:data:`SAFETY`)
2.0 ≤ M < 3.5 (4.0)               안전안내 if max *measured* intensity ≥ III         ≥ II
================================  ==============================================  =========

**Per municipality** (the rule of December 2025, after the 2025-02-07 Chungju M3.1 sent the
loud alert to 177 districts): a 긴급 event is 긴급 only where the expected intensity is ≥ III;
where it is II it is a 안전안내. A catalogue carries no measured intensity, so below M 3.5
(4.0 at sea) it has no class here (the accelerometers' measured path issues that 안전안내).

**Public stage** of each target: 위급 → 심각, 긴급 → 경계, 안전안내 → 주의 where the expected
intensity is ≥ III, and 관심 — operators and CAP, no SMS — where a 안전안내 or a classless
event reaches only intensity II. That last choice is ours: it is the line the measured path
uses (a measured II stages 관심, III–IV 주의, ``detectors/seismic.py``), so an *expected* II
never stages more than a *measured* II would; II is "felt only by a few at rest" and KMA's
own quiet 안전안내 cell broadcast still reaches those districts. Residents' SMS therefore go
where KMA would sound the loud alert or the shaking is felt indoors (≥ III).

Nationwide classes go to the 17 province zones (시·도; a resident's zones include their
province, so the one nationwide message is heard once); the others to municipalities (시·군·구).

>>> event_class(np.array([6.1, 5.4, 4.2, 4.2, 3.7, 3.0, 1.5]),
...             np.array([8, 6, 5, 4, 5, 3, 3]), np.array([1, 1, 1, 1, 0, 1, 1], bool)).tolist()
[3, 2, 2, 1, 0, 0, 0]
>>> zone_levels(URGENT, np.array([5, 3, 2])).tolist()
[3, 3, 1]
>>> zone_levels(SAFETY, np.array([4, 2])).tolist(), zone_levels(NONE, np.array([3, 2])).tolist()
([2, 1], [1, 1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.quake import QuakeEvent, nearest_km, target_zones
from geo.zones import ZoneKind, ZoneRegistry

__all__ = [
    "CLASS_KO",
    "EMERGENCY",
    "NONE",
    "SAFETY",
    "URGENT",
    "QuakeTarget",
    "Targeting",
    "event_class",
    "kma_targets",
    "zone_classes",
    "zone_levels",
]

NONE, SAFETY, URGENT, EMERGENCY = 0, 1, 2, 3
CLASS_KO = {NONE: "", SAFETY: "안전안내문자", URGENT: "긴급재난문자", EMERGENCY: "위급재난문자"}
#: Below this magnitude there is no message and no target.
MIN_MAGNITUDE = 2.0


def event_class(
    magnitude: npt.NDArray[np.float64],
    max_intensity: npt.NDArray[np.int64],
    inland: npt.NDArray[np.bool_],
) -> npt.NDArray[np.int64]:
    """KMA message class per event from its magnitude and maximum *expected* intensity (a
    catalogue event has no measured one: the 2 ≤ M < 3.5 안전안내 is not decided here)."""
    m = np.asarray(magnitude, dtype=np.float64)
    i = np.asarray(max_intensity)
    low = np.where(np.asarray(inland, dtype=bool), 3.5, 4.0)
    return np.select(
        [m >= 6.0, m >= 5.0, (m >= low) & (i >= 5), m >= low],
        [EMERGENCY, URGENT, URGENT, SAFETY],
        default=NONE,
    ).astype(np.int64)


def zone_classes(cls: int, intensity: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The class each municipality hears under the December 2025 rule: a 긴급 event is 긴급
    only where the expected intensity is ≥ III, a 안전안내 below that."""
    i = np.asarray(intensity)
    if cls == URGENT:
        return np.where(i >= 3, URGENT, SAFETY).astype(np.int64)
    return np.full(i.shape, cls, dtype=np.int64)


def zone_levels(cls: int, intensity: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Public stage per municipality (module docstring): 위급 4, 긴급 3, 안전안내 2 at ≥ III,
    and 1 (관심, operators) wherever only intensity II is expected."""
    zc = zone_classes(cls, intensity)
    felt = np.asarray(intensity) >= 3
    out: npt.NDArray[np.uint8] = np.select(
        [zc == EMERGENCY, zc == URGENT, (zc == SAFETY) & felt], [4, 3, 2], default=1
    ).astype(np.uint8)
    return out


@dataclass(frozen=True)
class QuakeTarget:
    zone_id: str
    level: int  # 1 관심 … 4 심각
    message_class: str  # what this zone hears (``CLASS_KO``), "" = no message
    intensity: int
    mmi: float
    distance_km: float


@dataclass(frozen=True)
class Targeting:
    """An event's class and its targets, most shaken first."""

    event_class: str
    max_intensity: int
    inland: bool
    targets: list[QuakeTarget]


def _inland(event: QuakeEvent, zones: ZoneRegistry) -> bool:
    provinces = zones.of_kind(ZoneKind.PROVINCE)
    if not provinces:
        return True
    geoms = np.array([zones[z].geometry for z in provinces], dtype=object)
    return bool((nearest_km(event, geoms) == 0.0).any())


def kma_targets(event: QuakeEvent, zones: ZoneRegistry) -> Targeting:
    """The KMA targeting of one catalogue event (module docstring); no targets below M 2."""
    municipalities = target_zones(event, zones, min_intensity=1)  # most shaken first
    max_intensity = municipalities[0].intensity if municipalities else 1
    inland = _inland(event, zones)
    cls = int(
        event_class(np.array([event.magnitude]), np.array([max_intensity]), np.array([inland]))[0]
    )
    if event.magnitude < MIN_MAGNITUDE:
        return Targeting(CLASS_KO[cls], max_intensity, inland, [])
    if event.magnitude >= 5.0:  # 위급 / 긴급, nationwide: one message per province
        provinces = target_zones(event, zones, min_intensity=1, kinds=(ZoneKind.PROVINCE,))
        level = 4 if cls == EMERGENCY else 3
        targets = [
            QuakeTarget(t.zone_id, level, CLASS_KO[cls], t.intensity, t.mmi, t.distance_km)
            for t in provinces
        ]
        return Targeting(CLASS_KO[cls], max_intensity, inland, targets)
    felt = [t for t in municipalities if t.intensity >= 2]
    intensity = np.array([t.intensity for t in felt], dtype=np.int64)
    levels = zone_levels(cls, intensity)
    classes = zone_classes(cls, intensity)
    targets = [
        QuakeTarget(t.zone_id, int(lv), CLASS_KO[int(c)], t.intensity, t.mmi, t.distance_km)
        for t, lv, c in zip(felt, levels, classes, strict=True)
    ]
    return Targeting(CLASS_KO[cls], max_intensity, inland, targets)
