"""Station → zones: where each station stands and which zones its alerts apply to.

For every station of the registry (``config/stations.yaml``):

* ``location`` — the 동/구/province its point falls in (:meth:`ZoneRegistry.locate_many`,
  one vectorized query for all stations) and the drawn custom zones around it;
* ``declared`` — the impact zones the station names (a gauge's alert applies to the riverside
  districts it serves, not only the polygon it stands in); an unknown id is an error naming
  the station;
* ``impact`` — what alerting keys its (hazard, zone) alerts on: the declared zones, then the
  municipality the station stands in if not already there. Drawn custom zones the point
  merely falls in are *not* added (an air station inside the riverside flood band must not
  raise a fine-dust alert for the flood band); declare them to use them.
* ``member_of`` — every zone the station counts in for regional aggregates: its location and
  declared zones with all their ancestors (so a 용산구 air station is in 11030, 11, and the
  도심권 region ``seoul-center``).

The join is computed once per (registry version, zone version) and cached.

>>> from gyeongbo.registry import load_registry
>>> from gyeongbo.settings import REPO_ROOT
>>> from streams.config_files import load_zones
>>> idx = station_zones(load_registry(REPO_ROOT / "config" / "stations.yaml"), load_zones())
>>> idx["1018683"].impact
('11030', '11200', '11190', 'hangang-riverside-central')
>>> idx["1018683"].location.admin
('1103064', '11030', '11')
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from geo.geojson import ZoneError
from geo.zones import Location, ZoneRegistry
from gyeongbo.registry import Registry

__all__ = ["StationZoneIndex", "StationZones", "station_zones"]


@dataclass(frozen=True)
class StationZones:
    station_id: str
    location: Location
    declared: tuple[str, ...]
    impact: tuple[str, ...]
    member_of: tuple[str, ...]


class StationZoneIndex(Mapping[str, StationZones]):
    """The join for one registry and one zone set; a read-only mapping by station id.

    ``station_ids`` is sorted, as ``Registry.index_of()`` numbers stations, so per-station
    arrays line up with it.
    """

    def __init__(self, registry: Registry, zones: ZoneRegistry) -> None:
        self.registry_version = registry.version
        self.zones_version = zones.version
        self.zones = zones
        self.station_ids: tuple[str, ...] = tuple(registry.station_ids())
        problems: list[str] = []
        for i, sid in enumerate(self.station_ids):
            unknown = [z for z in registry.stations[sid].zones if z not in zones]
            if unknown:
                problems.append(f"station {sid!r} (#{i}): unknown zone(s) {unknown}")
        if problems:
            raise ZoneError(registry.path or "<registry>", problems)
        sts = [registry.stations[s] for s in self.station_ids]
        located = zones.locate_many([s.lat for s in sts], [s.lon for s in sts])
        self._by_id: dict[str, StationZones] = {}
        members: dict[str, list[int]] = {}
        for i, st in enumerate(sts):
            loc = located.location(i)
            impact = dict.fromkeys(st.zones)
            if loc.municipality is not None:
                impact[loc.municipality] = None
            member_of = zones.closure((*loc.admin, *loc.custom, *st.zones))
            self._by_id[st.id] = StationZones(
                station_id=st.id,
                location=loc,
                declared=tuple(st.zones),
                impact=tuple(impact),
                member_of=member_of,
            )
            for z in member_of:
                members.setdefault(z, []).append(i)
        self._members = {z: np.asarray(ix, dtype=np.intp) for z, ix in members.items()}

    def __getitem__(self, station_id: str) -> StationZones:
        return self._by_id[station_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self.station_ids)

    def __len__(self) -> int:
        return len(self.station_ids)

    def __repr__(self) -> str:
        return (
            f"StationZoneIndex(stations={len(self)}, registry={self.registry_version!r}, "
            f"zones={self.zones_version!r})"
        )

    def impact(self, station_id: str) -> tuple[str, ...]:
        """The zones a detection at this station raises alerts for."""
        return self._by_id[station_id].impact

    def stations_in(self, zone_id: str) -> tuple[str, ...]:
        """Stations standing in or declaring the zone (or one of its sub-zones)."""
        self.zones[zone_id]
        return tuple(self.station_ids[i] for i in self.member_indices(zone_id))

    def member_indices(self, zone_id: str) -> NDArray[np.intp]:
        """Dense station indices (``Registry.index_of()`` order) of :meth:`stations_in`."""
        return self._members.get(zone_id, np.empty(0, dtype=np.intp))

    def membership_pairs(self) -> tuple[tuple[str, ...], NDArray[np.intp], NDArray[np.intp]]:
        """(zone ids, zone index per pair, station index per pair): the sparse zone × station
        membership, for vectorized per-zone reductions."""
        zone_ids = tuple(self._members)
        zi = np.concatenate(
            [np.full(len(v), k, dtype=np.intp) for k, v in enumerate(self._members.values())]
            or [np.empty(0, dtype=np.intp)]
        )
        si = np.concatenate(list(self._members.values()) or [np.empty(0, dtype=np.intp)])
        return zone_ids, zi, si


_CACHE: weakref.WeakKeyDictionary[ZoneRegistry, dict[str, StationZoneIndex]] = (
    weakref.WeakKeyDictionary()
)


def station_zones(registry: Registry, zones: ZoneRegistry) -> StationZoneIndex:
    """The station → zone join, cached per registry version for each zone registry.

    A new registry version (the ``version`` field of ``stations.yaml``) or a new zone registry
    (any zone file changed → new ``ZoneRegistry.version``) computes it afresh.
    """
    per_zones = _CACHE.setdefault(zones, {})
    idx = per_zones.get(registry.version)
    if idx is None:
        idx = StationZoneIndex(registry, zones)
        per_zones[registry.version] = idx
    return idx
