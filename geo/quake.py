"""Earthquake targeting: expected intensity per municipality from an intensity attenuation.

Relation: Atkinson, G. M. and Wald, D. J. (2007), "'Did You Feel It?' intensity data: a
surprisingly good measure of earthquake ground motion", *Seismological Research Letters*
78(3), 362–368, doi:10.1785/gssrl.78.3.362 — the intensity prediction equation (IPE) fitted
to USGS DYFI reports::

    MMI = c1 + c2 (M − 6) + c3 (M − 6)² + c4 log10 R + c5 R + c6 B + c7 M log10 R
    R   = sqrt(D² + h²),   B = max(0, log10(R / Rt))

    California (default):  c1 = 12.27, c2 = 2.270, c3 = 0.1304, c4 = −1.30, c5 = −0.0007070,
                           c6 = 1.95, c7 = −0.577, h = 14 km, Rt = 30 km
    Central/eastern N. America (CEUS): c1 = 11.72, c2 = 2.36, c3 = 0.1155, c4 = −0.44,
                           c5 = −0.002044, c6 = 2.31, c7 = −0.479, h = 17 km, Rt = 80 km
    σ ≈ 0.4 intensity units for both.

``M`` is moment magnitude and ``D`` the rupture distance in km; for the point sources we get
(M < 7, a rupture a few km long) ``D`` is the hypocentral distance.

Which coefficients: Korea is a stable continental interior, which argues for CEUS, but the
CEUS set attenuates so slowly that an M 3.5 in Gyeongju comes out at intensity ≥ II in all
251 municipalities, so the KMA rule "3.5 ≤ M < 5: districts with expected intensity ≥ II"
(docs/design.md §3.4) would always mean the whole country, which is not how KMA targets such
events. The California set gives an M 3.5 a regional footprint (II out to ~150 km) and, for
the 2016-09-12 Gyeongju earthquake (M 5.8, 35.76 N 129.19 E, depth 15 km), VI at the
epicentre and II in Seoul, where the event was felt weakly; it under-predicts Daegu (IV
at ~53 km against the intensity 6 KMA reported there). Both sets are here
(:data:`AW07_CALIFORNIA`, :data:`AW07_CEUS`; pass ``c=``); a Korea-fitted IPE from KMA's
intensity reports (KMA adopted an MMI-based 진도 scale in 2018) should replace them when the
project adopts one.

Intensity is the integer class ``floor(MMI + 0.5)`` clipped to I–XII, so "intensity ≥ II"
means MMI ≥ 1.5. A municipality's intensity is taken at its *nearest* point to the epicentre
(0 km inside it): the district is targeted if any part of it is expected to reach the level.

At the Gyeongju epicentre:

>>> round(float(mmi_at_distance(5.8, 15.0)), 1)
5.7
>>> intensity_class(5.7), intensity_class(1.5), intensity_class(0.2)
(6, 2, 1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

from geo.metric import from_local_km, haversine_km, to_local_km
from geo.zones import ZoneKind, ZoneRegistry

__all__ = [
    "AW07_CALIFORNIA",
    "AW07_CEUS",
    "IntensityTarget",
    "IpeCoefficients",
    "QuakeEvent",
    "expected_mmi",
    "intensity_class",
    "mmi_at_distance",
    "target_zones",
]


@dataclass(frozen=True)
class IpeCoefficients:
    c1: float
    c2: float
    c3: float
    c4: float
    c5: float
    c6: float
    c7: float
    h_km: float
    rt_km: float
    sigma: float


#: Atkinson & Wald (2007), California; the default (see the module docstring).
AW07_CALIFORNIA = IpeCoefficients(
    12.27, 2.270, 0.1304, -1.30, -0.0007070, 1.95, -0.577, 14.0, 30.0, 0.4
)
#: Atkinson & Wald (2007), central and eastern North America.
AW07_CEUS = IpeCoefficients(11.72, 2.36, 0.1155, -0.44, -0.002044, 2.31, -0.479, 17.0, 80.0, 0.4)


@dataclass(frozen=True)
class QuakeEvent:
    """An earthquake as the catalogue feed gives it (docs/design.md §11.1 ``event``)."""

    lat: float
    lon: float
    magnitude: float
    depth_km: float

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise ValueError(f"epicentre ({self.lat}, {self.lon}) is not a WGS 84 position")
        if not 0.0 <= self.magnitude <= 10.0:
            raise ValueError(f"magnitude {self.magnitude} out of range [0, 10]")
        if not 0.0 <= self.depth_km <= 700.0:
            raise ValueError(f"depth {self.depth_km} km out of range [0, 700]")


def mmi_at_distance(
    magnitude: float, rupture_km: ArrayLike, c: IpeCoefficients = AW07_CALIFORNIA
) -> NDArray[np.float64]:
    """The IPE above, vectorized over distances (km)."""
    d = np.asarray(rupture_km, dtype=np.float64)
    r = np.sqrt(d * d + c.h_km**2)
    log_r = np.log10(r)
    b = np.maximum(0.0, np.log10(r / c.rt_km))
    dm = magnitude - 6.0
    out: NDArray[np.float64] = (
        c.c1 + c.c2 * dm + c.c3 * dm * dm + c.c4 * log_r + c.c5 * r + c.c6 * b
    ) + c.c7 * magnitude * log_r
    return out


def expected_mmi(
    event: QuakeEvent, lat: ArrayLike, lon: ArrayLike, c: IpeCoefficients = AW07_CALIFORNIA
) -> NDArray[np.float64]:
    """Expected MMI at points (hypocentral distance over the haversine epicentral one)."""
    epi = haversine_km(event.lat, event.lon, lat, lon)
    return mmi_at_distance(event.magnitude, np.hypot(epi, event.depth_km), c)


def intensity_class(mmi: ArrayLike) -> int | NDArray[np.int64]:
    """Integer intensity class I–XII (``floor(MMI + 0.5)``, clipped)."""
    arr = np.clip(np.floor(np.asarray(mmi, dtype=np.float64) + 0.5), 1, 12).astype(np.int64)
    return int(arr) if arr.ndim == 0 else arr


@dataclass(frozen=True)
class IntensityTarget:
    zone_id: str
    name: str
    name_en: str
    distance_km: float  # epicentre to the zone's nearest point (0 inside it)
    mmi: float
    intensity: int


def _nearest_km(event: QuakeEvent, geoms: NDArray[np.object_]) -> NDArray[np.float64]:
    """Epicentral distance to each polygon's nearest point: the nearest point is found in a
    local plane around the epicentre, its distance measured by haversine."""
    local = to_local_km(geoms, event.lon, event.lat)
    origin = shapely.Point(0.0, 0.0)
    lines = shapely.shortest_line(origin, local)
    ends = from_local_km(shapely.get_point(lines, 1), event.lon, event.lat)
    dist = haversine_km(event.lat, event.lon, shapely.get_y(ends), shapely.get_x(ends))
    inside = shapely.intersects(local, origin)
    out: NDArray[np.float64] = np.where(inside, 0.0, dist)
    return out


def target_zones(
    event: QuakeEvent,
    zones: ZoneRegistry,
    *,
    min_intensity: int = 2,
    kinds: Iterable[ZoneKind | str] = (ZoneKind.MUNICIPALITY,),
    c: IpeCoefficients = AW07_CALIFORNIA,
) -> list[IntensityTarget]:
    """Zones (by default the 251 municipalities) whose expected intensity reaches
    ``min_intensity``, most shaken first.

    The magnitude rules of docs/design.md §3.4 (nationwide for M ≥ 5, message class by the
    maximum expected intensity) are alerting's; this answers only "where, how strongly".
    """
    ids = [zid for k in kinds for zid in zones.of_kind(k)]
    if not ids:
        return []
    geoms = np.array([zones[z].geometry for z in ids], dtype=object)
    dist = _nearest_km(event, geoms)
    mmi = mmi_at_distance(event.magnitude, np.hypot(dist, event.depth_km), c)
    cls = np.clip(np.floor(mmi + 0.5), 1, 12).astype(np.int64)
    out = [
        IntensityTarget(
            zone_id=zid,
            name=zones[zid].name,
            name_en=zones[zid].name_en,
            distance_km=round(float(d), 1),
            mmi=round(float(m), 2),
            intensity=int(k),
        )
        for zid, d, m, k in zip(ids, dist, mmi, cls, strict=True)
        if k >= min_intensity
    ]
    out.sort(key=lambda t: (-t.mmi, t.zone_id))
    return out
