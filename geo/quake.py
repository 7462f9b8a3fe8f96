"""Earthquake targeting: expected intensity per municipality from a Korea-fitted ground motion.

Two published relations, chained:

1. **Peak ground acceleration** — Emolo, Sharma, Festa, Zollo, Convertito, Park, Chi & Lim
   (2015), "Ground-motion prediction equations for South Korea Peninsula", *Bulletin of the
   Seismological Society of America* 105(5), doi:10.1785/0120140296, fitted to ~30,000
   records of 132 Korean Seismic Network stations (2007-03 to 2012-03, local magnitude
   M_L 2.5–5.0, distances across the peninsula). Their adjusted model for PGA::

       log10 PGA[m/s²] = a + b·M + c·log10 r + d·r + e·s,     r = √(R² + h²)
       a = −3.07, b = 0.73, c = −0.76, h = 1.7 km, d = −0.0029 /km, e = 0.326
       σ = 0.38 (log10; 0.17 between events, 0.34 within)

   ``M`` is KMA's local magnitude (what the catalogue relays), ``R`` the epicentral distance
   (km; the authors check their residuals against it) and ``h`` a fictitious depth, so focal
   depth is not a term of the model. ``s`` is the station class of their site correction
   (−1, 0, +1); a municipality has no station class, so ``s = 0``, the average site. Only two
   of their events exceed M_L 4: above that the relation is extrapolated (M ≥ 5 goes
   nationwide by rule anyway, so only the reported maximum intensity depends on it).

2. **PGA → intensity** — Worden, Gerstenberger, Rhoades & Wald (2012), "Probabilistic
   relationships between ground-motion parameters and modified Mercalli intensity in
   California", *BSSA* 102(1), 204–221, doi:10.1785/0120110156 (the conversion USGS ShakeMap
   uses), PGA in cm/s²::

       MMI = 1.78 + 1.55·log10 PGA    for log10 PGA ≤ 1.57
       MMI = −1.60 + 3.70·log10 PGA   above

   without its optional magnitude and distance terms; clipped to [1, 10]. KMA's 진도 scale is
   MMI-based (2001; instrumental since 2018).

Neither relation is in OpenQuake's hazardlib (checked on openquake-engine 3.26.2: no Korean
GMPE, no Worden 2012 conversion), so both are implemented here; ``tests/test_geo_quake.py``
checks them against the intensities KMA reported for the 2016 Gyeongju M5.8, the 2017 Pohang
M5.4 and the 2023 Gyeongju M4.0.

Intensity is the integer class ``floor(MMI + 0.5)`` clipped to I–XII, so "intensity ≥ II"
means MMI ≥ 1.5. A municipality's intensity is taken at its *nearest* point to the epicentre
(0 km inside it): the district is targeted if any part of it is expected to reach the level.
The KMA message rules that use these intensities are in :mod:`geo.kma_quake`.

>>> round(float(pga_ms2(4.0, 0.0)), 3), round(float(mmi_from_pga(pga_ms2(4.0, 0.0))), 2)
(0.468, 4.58)
>>> intensity_class(4.58), intensity_class(1.5), intensity_class(0.2)
(5, 2, 1)
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
    "EMOLO_2015_PGA",
    "Gmpe",
    "IntensityTarget",
    "QuakeEvent",
    "expected_mmi",
    "intensity_class",
    "mmi_at_distance",
    "mmi_from_pga",
    "nearest_km",
    "pga_ms2",
    "target_zones",
]


@dataclass(frozen=True)
class Gmpe:
    """Coefficients of ``log10 Y = a + b·M + c·log10 r + d·r + e·s``, ``r = √(R² + h²)``."""

    a: float
    b: float
    c: float
    d: float
    h_km: float
    e: float
    sigma: float


#: Emolo et al. (2015), PGA in m/s², adjusted model (see the module docstring).
EMOLO_2015_PGA = Gmpe(a=-3.07, b=0.73, c=-0.76, d=-0.0029, h_km=1.7, e=0.326, sigma=0.38)

#: Worden et al. (2012), PGA (cm/s²) → MMI: (c1, c2, c3, c4, t1).
_WGRW12_PGA = (1.78, 1.55, -1.60, 3.70, 1.57)


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


def pga_ms2(
    magnitude: float, epicentral_km: ArrayLike, g: Gmpe = EMOLO_2015_PGA, site: int = 0
) -> NDArray[np.float64]:
    """Median PGA (m/s²) at epicentral distances (km), vectorized."""
    r = np.hypot(np.asarray(epicentral_km, dtype=np.float64), g.h_km)
    out: NDArray[np.float64] = 10.0 ** (
        g.a + g.b * magnitude + g.c * np.log10(r) + g.d * r + g.e * site
    )
    return out


def mmi_from_pga(pga: ArrayLike) -> NDArray[np.float64]:
    """MMI from PGA in m/s² (Worden et al. 2012), clipped to [1, 10]."""
    c1, c2, c3, c4, t1 = _WGRW12_PGA
    lg = np.log10(np.maximum(np.asarray(pga, dtype=np.float64) * 100.0, 1e-9))
    out: NDArray[np.float64] = np.clip(np.where(lg <= t1, c1 + c2 * lg, c3 + c4 * lg), 1.0, 10.0)
    return out


def mmi_at_distance(magnitude: float, epicentral_km: ArrayLike) -> NDArray[np.float64]:
    """Expected MMI at epicentral distances (km): :func:`pga_ms2` then :func:`mmi_from_pga`."""
    return mmi_from_pga(pga_ms2(magnitude, epicentral_km))


def expected_mmi(event: QuakeEvent, lat: ArrayLike, lon: ArrayLike) -> NDArray[np.float64]:
    """Expected MMI at points (haversine epicentral distance)."""
    return mmi_at_distance(event.magnitude, haversine_km(event.lat, event.lon, lat, lon))


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


def nearest_km(event: QuakeEvent, geoms: NDArray[np.object_]) -> NDArray[np.float64]:
    """Epicentral distance to each polygon's nearest point (0 inside it): the nearest point is
    found in a local plane around the epicentre, its distance measured by haversine."""
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
) -> list[IntensityTarget]:
    """Zones (by default the 251 municipalities) whose expected intensity reaches
    ``min_intensity``, most shaken first.

    The KMA rules (nationwide for M ≥ 5, message class by the maximum expected intensity,
    the loud alert only at ≥ III) are :mod:`geo.kma_quake`'s; this answers only "where, how
    strongly".
    """
    ids = [zid for k in kinds for zid in zones.of_kind(k)]
    if not ids:
        return []
    geoms = np.array([zones[z].geometry for z in ids], dtype=object)
    dist = nearest_km(event, geoms)
    mmi = mmi_at_distance(event.magnitude, dist)
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
