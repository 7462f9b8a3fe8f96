"""Regional aggregates for rules that look at more than one station or zone.

* :class:`RegionalMeans` — the mean of a zone's stations' values, for every zone at once,
  e.g. a 권역 average of PM10 (docs/design.md §3.2: alerts may be issued on a regional average).
  Values come as one array aligned with ``Registry.index_of()`` (sorted station ids), NaN
  where a station has no current value; one ``np.bincount`` per call, no Python loop over
  stations or zones.
* :func:`provinces_at` / :func:`count_provinces_at` — how many provinces (시·도) have an alert at
  a given level or above, for the headquarters rules (docs/design.md §4: 비상 1단계 when 호우주의보
  stands in ≥ 4 provinces or a 경보 in ≥ 3).

>>> from streams.config_files import load_zones
>>> zones = load_zones()
>>> count_provinces_at({"11030": Level.ALERT, "21130": Level.CAUTION, "37020": Level.ALERT},
...                    Level.ALERT, zones)
2
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from geo.stations import StationZoneIndex
from geo.zones import ZoneRegistry
from gyeongbo.registry import Registry
from gyeongbo.vocab import Kind, Level

__all__ = ["RegionalMeans", "count_provinces_at", "provinces_at"]


class RegionalMeans:
    """Per-zone means of per-station values over a fixed station → zone membership.

    ``kind`` keeps only stations of that kind (e.g. ``Kind.AIR_QUALITY``) so other stations'
    values can never leak into a mean, whatever the caller passes for them.
    """

    def __init__(
        self, index: StationZoneIndex, registry: Registry, *, kind: Kind | None = None
    ) -> None:
        if registry.version != index.registry_version:
            raise ValueError(
                f"registry version {registry.version!r} does not match the station index's "
                f"{index.registry_version!r}"
            )
        self.zone_ids, zi, si = index.membership_pairs()
        if kind is not None:
            ok = np.array([registry.stations[s].kind is kind for s in index.station_ids])
            keep = ok[si] if si.size else np.zeros(0, dtype=bool)
            zi, si = zi[keep], si[keep]
        self._zi, self._si = zi, si
        self._pos = {z: i for i, z in enumerate(self.zone_ids)}
        self.n_stations = len(index.station_ids)

    def compute(self, values: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """(mean, count of finite values) per zone in :attr:`zone_ids`; mean NaN if none."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape != (self.n_stations,):
            raise ValueError(f"values must have shape ({self.n_stations},), not {v.shape}")
        x = v[self._si]
        ok = np.isfinite(x)
        n_z = len(self.zone_ids)
        sums = np.bincount(self._zi[ok], weights=x[ok], minlength=n_z)
        counts = np.bincount(self._zi[ok], minlength=n_z).astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
        return means, counts

    def means(self, values: ArrayLike, zone_ids: Iterable[str] | None = None) -> dict[str, float]:
        """Zone → mean, for the zones asked (default: every zone with at least one value)."""
        means, counts = self.compute(values)
        if zone_ids is None:
            return {z: float(m) for z, m, c in zip(self.zone_ids, means, counts, strict=True) if c}
        out: dict[str, float] = {}
        for z in zone_ids:
            i = self._pos.get(z)
            out[z] = float(means[i]) if i is not None else float("nan")
        return out

    def mean(self, zone_id: str, values: ArrayLike) -> float:
        return self.means(values, [zone_id])[zone_id]


def provinces_at(
    levels: Mapping[str, Level], at_least: Level, zones: ZoneRegistry
) -> frozenset[str]:
    """Province codes with at least one zone at ``at_least`` or above.

    ``levels`` maps zone id → current level (the alert stage per zone for one hazard).
    Custom zones count for the provinces they lie in (:meth:`ZoneRegistry.provinces_of`).
    """
    out: set[str] = set()
    for zone_id, level in levels.items():
        if level >= at_least:
            out |= zones.provinces_of(zone_id)
    return frozenset(out)


def count_provinces_at(levels: Mapping[str, Level], at_least: Level, zones: ZoneRegistry) -> int:
    """``len(provinces_at(...))``: the number the headquarters rules compare with."""
    return len(provinces_at(levels, at_least, zones))
