"""Distances on the WGS 84 ellipsoid's sphere and a local metric projection.

Zones are stored in WGS 84 longitude/latitude degrees. Buffers (evacuation radii, riverside
bands) and distances need metres, so geometries are moved to a local equirectangular plane
centred on a reference point, in kilometres:

    x = R · (λ − λ₀) · cos φ₀,   y = R · (φ − φ₀),   R = 6371.0088 km (IUGG mean radius)

Over a few kilometres the plane is exact to well under 0.1 %; at 300 km north–south the
east–west scale is off by about 2 %, so long distances are measured with the haversine
formula instead (see :func:`haversine_km`).

>>> round(float(haversine_km(37.5663, 126.9779, 35.1796, 129.0756)), 0)  # City Hall → Busan
325.0
>>> g = to_local_km(shapely.Point(127.0, 37.5), 127.0, 37.5)
>>> (g.x, g.y)
(0.0, 0.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray

__all__ = ["EARTH_RADIUS_KM", "from_local_km", "haversine_km", "to_local_km"]

#: IUGG mean Earth radius.
EARTH_RADIUS_KM = 6371.0088
_KM_PER_DEG = np.pi * EARTH_RADIUS_KM / 180.0


def haversine_km(
    lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike, lon2: ArrayLike
) -> NDArray[np.float64]:
    """Great-circle distance in km, vectorized over any broadcastable arrays."""
    p1, l1, p2, l2 = (np.radians(np.asarray(a, dtype=np.float64)) for a in (lat1, lon1, lat2, lon2))
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin((l2 - l1) / 2) ** 2
    out: NDArray[np.float64] = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out


def to_local_km(geom: Any, lon0: float, lat0: float) -> Any:
    """Geometry (or array of them) from lon/lat degrees to the local plane in km."""
    k = np.cos(np.radians(lat0))

    def fwd(c: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.column_stack(((c[:, 0] - lon0) * k * _KM_PER_DEG, (c[:, 1] - lat0) * _KM_PER_DEG))

    return shapely.transform(geom, fwd)


def from_local_km(geom: Any, lon0: float, lat0: float) -> Any:
    """Inverse of :func:`to_local_km`."""
    k = np.cos(np.radians(lat0))

    def inv(c: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.column_stack((c[:, 0] / (k * _KM_PER_DEG) + lon0, c[:, 1] / _KM_PER_DEG + lat0))

    return shapely.transform(geom, inv)
