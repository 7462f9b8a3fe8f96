"""The zone registry: administrative and custom zones, their hierarchy and a spatial index.

Administrative zones come from the KOSTAT census boundaries shipped in ``config/boundaries/``
(read at run time by :func:`streams.config_files.load_zones`, which finds them with
:func:`~streams.config_files.default_admin_dir`; this module builds the zones from the bytes it
is given, :func:`build_zones`):

* provinces (시·도, 17, codes like ``'11'``) from ``skorea_provinces_geo_simple.json``;
* municipalities (시·군·구, 251, ``'11030'``) from ``skorea_municipalities_geo_simple.json``,
  with Seoul's 25 구 *refined* by ``seoul_municipalities_geo_simple.json``: the national file
  is simplified to 7–13 vertices per Seoul 구 (City Hall falls in 종로구 there), the Seoul file
  keeps 27–93 and agrees with the 동 layer (area overlap 0.95–0.99), so its geometry replaces
  the national one for the same code;
* neighbourhoods (동, Seoul's 423, ``'1103064'``) from ``seoul_submunicipalities_geo_simple.json``.

Attribution (keep with any copy): Statistics Korea (KOSTAT) SGIS census boundary data (2013),
Korea Open Government Licence type 1 (attribution), as published, simplified, in the
southkorea/southkorea-maps and southkorea/seoul-maps repositories.

The hierarchy follows the code prefix (:mod:`geo.codes`). Custom zones come from every
``*.geojson`` file in ``config/zones/`` (``Settings.paths.zones``); each feature's properties:
``id`` (slug), ``name``, ``name_en``, ``category`` (``inundation``, ``evacuation``,
``air_region``, ``other``), optional ``description``/``source``, and one of

* a Polygon/MultiPolygon geometry (e.g. a riverside inundation band);
* a Point geometry with ``radius_m`` (an evacuation radius; kept as a circle for CAP);
* a null geometry with ``members``: administrative codes whose union the zone is (e.g. an
  air-quality region 권역). Members' descendants are the zone's sub-zones.

Everything is validated on load; a bad file raises :class:`~geo.geojson.ZoneError` naming
the file, the feature index and its id. ``version`` is a digest of every file read, so caches
keyed on it (station joins) renew when any boundary or zone file changes.

>>> from streams.config_files import load_zones
>>> zones = load_zones()
>>> zones["11030"].name, zones.parent("1103064"), zones.ancestors("11030")
('용산구', '11030', ('11', 'seoul-center'))
>>> zones.locate(37.5663, 126.9779).admin
('1102055', '11020', '11')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geo.codes import admin_level, is_admin_code, parent_code
from geo.geojson import ZoneError, check_features
from geo.index import PointIndex
from geo.metric import from_local_km

__all__ = [
    "ADMIN_ATTRIBUTION",
    "ADMIN_FILES",
    "LocatedPoints",
    "Location",
    "SourceFile",
    "Zone",
    "ZoneKind",
    "ZoneRegistry",
    "build_zones",
]

ADMIN_ATTRIBUTION = (
    "Statistics Korea (KOSTAT) SGIS census boundary data (2013), Korea Open Government "
    "Licence type 1 (attribution), via southkorea/southkorea-maps and southkorea/seoul-maps"
)


class ZoneKind(StrEnum):
    PROVINCE = "province"
    MUNICIPALITY = "municipality"
    SUBMUNICIPALITY = "submunicipality"
    CUSTOM = "custom"


_KIND_OF_LEVEL = {1: ZoneKind.PROVINCE, 2: ZoneKind.MUNICIPALITY, 3: ZoneKind.SUBMUNICIPALITY}


@dataclass(frozen=True)
class AdminFile:
    name: str
    kind: ZoneKind
    #: True: features replace same-code zones of an earlier, coarser file.
    refines: bool = False


#: The administrative layers, coarse to fine, in load order.
ADMIN_FILES: tuple[AdminFile, ...] = (
    AdminFile("skorea_provinces_geo_simple.json", ZoneKind.PROVINCE),
    AdminFile("skorea_municipalities_geo_simple.json", ZoneKind.MUNICIPALITY),
    AdminFile("seoul_municipalities_geo_simple.json", ZoneKind.MUNICIPALITY, refines=True),
    AdminFile("seoul_submunicipalities_geo_simple.json", ZoneKind.SUBMUNICIPALITY),
)


@dataclass(frozen=True)
class Zone:
    """One zone. ``geometry`` is a shapely (Multi)Polygon in WGS 84 lon/lat."""

    id: str
    name: str
    name_en: str
    kind: ZoneKind
    geometry: Any = field(repr=False)
    source: str
    category: str | None = None
    parent: str | None = None
    members: tuple[str, ...] = ()
    #: (lat, lon, radius_m) for a radius zone, so CAP can publish it as a circle.
    circle: tuple[float, float, float] | None = None
    description: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.kind is not ZoneKind.CUSTOM

    def outlines(self, tolerance_deg: float = 0.0005) -> list[list[tuple[float, float]]]:
        """Exterior rings as closed (lat, lon) lists, one per polygon part, simplified by
        ``tolerance_deg`` (≈ 50 m) — the shape a CAP ``<polygon>`` wants."""
        simple = shapely.simplify(self.geometry, tolerance_deg, preserve_topology=True)
        return [
            [(round(y, 5), round(x, 5)) for x, y in part.exterior.coords]
            for part in shapely.get_parts(simple)
        ]


@dataclass(frozen=True)
class Location:
    """Where one point is: its administrative chain and the custom zones drawn around it."""

    province: str | None
    municipality: str | None
    submunicipality: str | None
    custom: tuple[str, ...] = ()

    @property
    def admin(self) -> tuple[str, ...]:
        """Administrative codes holding the point, finest first."""
        return tuple(c for c in (self.submunicipality, self.municipality, self.province) if c)


@dataclass(frozen=True)
class LocatedPoints:
    """A batch answer: per point, positions into ``ZoneRegistry.ids`` (-1 = none)."""

    ids: tuple[str, ...] = field(repr=False)
    province: NDArray[np.intp]
    municipality: NDArray[np.intp]
    submunicipality: NDArray[np.intp]
    #: (point index, zone position) pairs for the geometric custom zones.
    custom_pairs: tuple[NDArray[np.intp], NDArray[np.intp]]

    def __len__(self) -> int:
        return int(self.province.size)

    def codes(
        self, level: Literal["province", "municipality", "submunicipality"]
    ) -> list[str | None]:
        arr: NDArray[np.intp] = getattr(self, level)
        return [self.ids[i] if i >= 0 else None for i in arr.tolist()]

    def location(self, i: int) -> Location:
        def code(a: NDArray[np.intp]) -> str | None:
            return self.ids[int(a[i])] if a[i] >= 0 else None

        p, z = self.custom_pairs
        custom = tuple(self.ids[int(j)] for j in z[p == i])
        return Location(
            code(self.province), code(self.municipality), code(self.submunicipality), custom
        )


class _CustomProps(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z][a-z0-9-]{1,62}$")
    name: str = Field(min_length=1)
    name_en: str = Field(min_length=1)
    category: Literal["inundation", "evacuation", "air_region", "other"]
    description: str | None = None
    source: str | None = None
    members: tuple[str, ...] | None = None
    radius_m: float | None = Field(default=None, gt=0, le=100_000)

    @model_validator(mode="after")
    def _members_are_codes(self) -> _CustomProps:
        if self.members is not None:
            if not self.members:
                raise ValueError("members must not be empty")
            bad = [m for m in self.members if not is_admin_code(m)]
            if bad:
                raise ValueError(f"members must be KOSTAT codes, not {bad}")
        return self


def _circle(lon: float, lat: float, radius_m: float) -> Any:
    local = shapely.Point(0.0, 0.0).buffer(radius_m / 1000.0, quad_segs=16)
    return from_local_km(local, lon, lat)


class ZoneRegistry:
    """All zones by id, their hierarchy, and point location.

    Coordinates in this API are (lat, lon), as stations and recipients give them; GeoJSON
    and shapely use (lon, lat) inside.
    """

    def __init__(self, zones: Sequence[Zone], *, version: str, refined: Iterable[str] = ()) -> None:
        self._zones: dict[str, Zone] = {z.id: z for z in zones}
        if len(self._zones) != len(zones):
            raise ValueError("zone ids must be unique")
        self.version = version
        self.ids: tuple[str, ...] = tuple(self._zones)
        self._pos = {zid: i for i, zid in enumerate(self.ids)}
        self._groups_of: dict[str, list[str]] = {}
        for z in zones:
            for m in z.members:
                self._groups_of.setdefault(m, []).append(z.id)
        self._ancestors = {zid: self._walk_up(zid) for zid in self.ids}
        self._children: dict[str, list[str]] = {zid: [] for zid in self.ids}
        self._descendants: dict[str, list[str]] = {zid: [] for zid in self.ids}
        for zid in self.ids:
            for p in self._direct_parents(zid):
                self._children[p].append(zid)
            for a in self._ancestors[zid]:
                self._descendants[a].append(zid)
        # One spatial index per layer a point can stand in (member zones are reached through
        # their members): the finest layer is asked first, coarser ones only for the points
        # it did not place (see locate_many).
        self._layers: dict[ZoneKind, tuple[PointIndex, NDArray[np.intp], NDArray[np.int8]]] = {}
        refined_set = set(refined)
        for kind in ZoneKind:
            members = [z for z in zones if z.kind is kind and (z.is_admin or not z.members)]
            self._layers[kind] = (
                PointIndex([z.geometry for z in members]),
                np.array([self._pos[z.id] for z in members], dtype=np.intp),
                np.array([0 if z.id in refined_set else 1 for z in members], dtype=np.int8),
            )
        self._parent_pos = np.array(
            [self._pos.get(z.parent or "", -1) for z in zones], dtype=np.intp
        )
        self._provinces: dict[str, frozenset[str]] = {}
        self._overlapping: dict[str, tuple[str, ...]] = {}

    # --- mapping ---------------------------------------------------------------------------
    def __getitem__(self, zone_id: str) -> Zone:
        try:
            return self._zones[zone_id]
        except KeyError:
            raise KeyError(f"unknown zone {zone_id!r}") from None

    def __contains__(self, zone_id: object) -> bool:
        return zone_id in self._zones

    def __iter__(self) -> Iterator[Zone]:
        return iter(self._zones.values())

    def __len__(self) -> int:
        return len(self._zones)

    def __repr__(self) -> str:
        counts = {k.value: len(self.of_kind(k)) for k in ZoneKind}
        return f"ZoneRegistry(version={self.version!r}, {counts})"

    def get(self, zone_id: str) -> Zone | None:
        return self._zones.get(zone_id)

    def position(self, zone_id: str) -> int:
        """Dense index of a zone in :attr:`ids` (for per-zone arrays)."""
        return self._pos[self[zone_id].id]

    def of_kind(self, kind: ZoneKind | str) -> tuple[str, ...]:
        k = ZoneKind(kind)
        return tuple(z.id for z in self._zones.values() if z.kind is k)

    # --- hierarchy -------------------------------------------------------------------------
    def _direct_parents(self, zone_id: str) -> list[str]:
        z = self._zones[zone_id]
        out = [z.parent] if z.parent else []
        return out + self._groups_of.get(zone_id, [])

    def _walk_up(self, zone_id: str) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        frontier = self._direct_parents(zone_id)
        while frontier:
            nxt: list[str] = []
            for p in frontier:
                if p not in seen and p != zone_id:
                    seen[p] = None
                    nxt.extend(self._direct_parents(p))
            frontier = nxt
        return tuple(seen)

    def parent(self, zone_id: str) -> str | None:
        """The administrative parent (by code prefix); None for provinces and custom zones."""
        return self[zone_id].parent

    def ancestors(self, zone_id: str) -> tuple[str, ...]:
        """Every zone that contains this one: administrative parents nearest first, then the
        member zones (권역) that list it or one of its parents."""
        self[zone_id]
        return self._ancestors[zone_id]

    def children(self, zone_id: str) -> tuple[str, ...]:
        self[zone_id]
        return tuple(self._children[zone_id])

    def descendants(self, zone_id: str) -> tuple[str, ...]:
        """Every sub-zone, at any depth (동 of a 구; 구 and 동 of a province or 권역)."""
        self[zone_id]
        return tuple(self._descendants[zone_id])

    def closure(self, zone_ids: Iterable[str]) -> tuple[str, ...]:
        """The zones and all their ancestors, without repeats, in first-seen order."""
        out: dict[str, None] = {}
        for zid in zone_ids:
            out[self[zid].id] = None
            out.update(dict.fromkeys(self._ancestors[zid]))
        return tuple(out)

    def provinces_of(self, zone_id: str) -> frozenset[str]:
        """Province codes a zone lies in (for headquarters counts).

        Administrative zones: their code prefix. Member zones: their members' provinces.
        Drawn custom zones: the provinces of the municipalities covering at least 1 % of the
        zone's area.
        """
        z = self[zone_id]
        if zone_id in self._provinces:
            return self._provinces[zone_id]
        if z.is_admin:
            result = frozenset({zone_id[:2]})
        elif z.members:
            result = frozenset().union(*(self.provinces_of(m) for m in z.members))
        else:
            munis = [self._zones[m] for m in self.of_kind(ZoneKind.MUNICIPALITY)]
            geoms = np.array([m.geometry for m in munis], dtype=object)
            areas = shapely.area(shapely.intersection(geoms, z.geometry))
            big = areas >= 0.01 * z.geometry.area
            result = frozenset(m.id[:2] for m, b in zip(munis, big, strict=True) if b)
        self._provinces[zone_id] = result
        return result

    def overlapping(self, zone_id: str) -> tuple[str, ...]:
        """Zones that share area with this one: itself, its ancestors and descendants, and
        the custom zones (and, for a custom zone, the municipalities with their ancestors)
        whose overlap is at least 1 % of the smaller of the two areas — so a sliver where two
        separately simplified layers disagree does not count.

        This is what a recipient *subscribing to an area* hears about: an alert anywhere
        that area could be affected.
        """
        z = self[zone_id]
        cached = self._overlapping.get(zone_id)
        if cached is not None:
            return cached
        out: dict[str, None] = dict.fromkeys((zone_id, *self._ancestors[zone_id]))
        out.update(dict.fromkeys(self._descendants[zone_id]))
        others = [c for c in self._zones.values() if not c.is_admin and c.id != zone_id]
        if not z.is_admin:
            others += [self._zones[m] for m in self.of_kind(ZoneKind.MUNICIPALITY)]
        if others:
            geoms = np.array([o.geometry for o in others], dtype=object)
            hit = shapely.intersects(geoms, z.geometry)
            area = np.zeros(len(others))
            area[hit] = shapely.area(shapely.intersection(geoms[hit], z.geometry))
            smaller = np.minimum(shapely.area(geoms), z.geometry.area)
            for o, big in zip(others, area >= 0.01 * smaller, strict=True):
                if big:
                    out.update(dict.fromkeys(self.closure([o.id])))
        result = tuple(out)
        self._overlapping[zone_id] = result
        return result

    # --- location --------------------------------------------------------------------------
    def locate_many(self, lat: ArrayLike, lon: ArrayLike) -> LocatedPoints:
        """Vectorized location of a batch of points.

        The finest administrative hit decides the chain, and parents come from the code
        prefix, so a point's 동, 구 and province always nest (the layers are simplified
        separately and disagree by tens of metres at their edges). Where two municipalities
        hold a point, the refined Seoul 구 wins over a coarse neighbour.
        """
        lat_a = np.asarray(lat, dtype=np.float64).ravel()
        lon_a = np.asarray(lon, dtype=np.float64).ravel()
        if lat_a.shape != lon_a.shape:
            raise ValueError(f"lat and lon differ in length: {lat_a.size} != {lon_a.size}")
        n = lat_a.size
        pts = shapely.points(lon_a, lat_a)

        def best(kind: ZoneKind, which: NDArray[np.intp]) -> NDArray[np.intp]:
            """Zone position per point of ``which`` (-1 none); refined zones win ties."""
            index, pos, prio = self._layers[kind]
            p, g = index.query(lon_a[which], lat_a[which], points=pts[which])
            out = np.full(which.size, -1, dtype=np.intp)
            if p.size:
                order = np.lexsort((g, prio[g], p))
                p, g = p[order], g[order]
                starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])
                out[p[starts]] = pos[g[starts]]
            return out

        everyone = np.arange(n, dtype=np.intp)
        sub = best(ZoneKind.SUBMUNICIPALITY, everyone)
        muni = np.where(sub >= 0, self._parent_pos[np.maximum(sub, 0)], -1)
        todo = np.flatnonzero(muni < 0)
        muni[todo] = best(ZoneKind.MUNICIPALITY, todo)
        prov = np.where(muni >= 0, self._parent_pos[np.maximum(muni, 0)], -1)
        todo = np.flatnonzero(prov < 0)
        prov[todo] = best(ZoneKind.PROVINCE, todo)
        index, pos, _ = self._layers[ZoneKind.CUSTOM]
        cp, cg = index.query(lon_a, lat_a, points=pts)
        return LocatedPoints(self.ids, prov, muni, sub, (cp, pos[cg]))

    def locate(self, lat: float, lon: float) -> Location:
        """Where one point is (see :meth:`locate_many`)."""
        return self.locate_many([lat], [lon]).location(0)

    def zones_at(self, lat: float, lon: float) -> tuple[str, ...]:
        """Every zone holding the point: its administrative chain, the drawn custom zones
        around it, and the member zones above them."""
        loc = self.locate(lat, lon)
        return self.closure(loc.admin + loc.custom)


# --- building from the files' bytes ----------------------------------------------------------
@dataclass(frozen=True)
class SourceFile:
    """One zone file as its reader read it: ``name`` (the file name: each zone's ``source``,
    and hashed into the registry's version), ``label`` (how problems name the file: its
    path) and its bytes."""

    name: str
    label: str
    raw: bytes


def _admin_zones(
    files: Sequence[SourceFile], digest: Any, problems: list[str]
) -> tuple[dict[str, Zone], set[str]]:
    zones: dict[str, Zone] = {}
    refined: set[str] = set()
    if [f.name for f in files] != [spec.name for spec in ADMIN_FILES]:
        raise ValueError(f"expected the files {[spec.name for spec in ADMIN_FILES]}, in order")
    for spec_file, src in zip(ADMIN_FILES, files, strict=True):
        path = src.label
        digest.update(spec_file.name.encode() + b"\0" + src.raw)
        try:
            data = json.loads(src.raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ZoneError(path, [f"not valid JSON: {err}"]) from None
        specs, file_problems = check_features(data, id_key="code")
        for f in specs:
            where = f"features[{f.index}] (id={f.id!r})"
            if not is_admin_code(f.id) or _KIND_OF_LEVEL[admin_level(f.id)] is not spec_file.kind:
                file_problems.append(f"{where}: code does not look like a {spec_file.kind} code")
                continue
            parent = parent_code(f.id)
            if parent is not None and parent not in zones:
                file_problems.append(f"{where}: parent zone {parent!r} is not defined")
                continue
            if f.id in zones and not spec_file.refines:
                file_problems.append(f"{where}: code already defined by {zones[f.id].source}")
                continue
            if spec_file.refines:
                if f.id not in zones:
                    file_problems.append(f"{where}: refines a code no earlier file defines")
                    continue
                refined.add(f.id)
            props = f.properties
            zones[f.id] = Zone(
                id=f.id,
                name=str(props.get("name", f.id)),
                name_en=str(props.get("name_eng", props.get("name", f.id))),
                kind=spec_file.kind,
                geometry=f.geometry,
                source=spec_file.name,
                parent=parent,
            )
        problems.extend(f"{path}: {p}" for p in file_problems)
    return zones, refined


def _custom_zones(
    files: Sequence[SourceFile], admin: dict[str, Zone], digest: Any, problems: list[str]
) -> list[Zone]:
    out: list[Zone] = []
    first_seen: dict[str, str] = {}
    for src in files:
        path = src.label
        digest.update(src.name.encode() + b"\0" + src.raw)
        try:
            data = json.loads(src.raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.append(f"{path}: not valid JSON: {err}")
            continue
        specs, file_problems = check_features(data, id_key="id", allow_point=True, allow_null=True)
        problems.extend(f"{path}: {p}" for p in file_problems)
        for f in specs:
            where = f"{path}: features[{f.index}] (id={f.id!r})"
            try:
                props = _CustomProps.model_validate(f.properties)
            except ValidationError as err:
                msgs = "; ".join(
                    f"{'.'.join(str(x) for x in e['loc']) or 'properties'}: {e['msg']}"
                    for e in err.errors()
                )
                problems.append(f"{where}: {msgs}")
                continue
            if f.id in admin:
                problems.append(f"{where}: id clashes with an administrative code")
                continue
            if f.id in first_seen:
                problems.append(f"{where}: duplicate id (first in {first_seen[f.id]})")
                continue
            geom, circle = f.geometry, None
            members: tuple[str, ...] = ()
            if geom is None:
                if not props.members:
                    problems.append(f"{where}: a zone without geometry needs 'members'")
                    continue
                unknown = [m for m in props.members if m not in admin]
                if unknown:
                    problems.append(f"{where}: unknown member zone(s) {unknown}")
                    continue
                members = props.members
                geom = shapely.union_all([admin[m].geometry for m in members])
            elif geom.geom_type == "Point":
                if props.radius_m is None:
                    problems.append(f"{where}: a Point zone needs 'radius_m'")
                    continue
                circle = (geom.y, geom.x, props.radius_m)
                geom = _circle(geom.x, geom.y, props.radius_m)
            elif props.members or props.radius_m is not None:
                problems.append(f"{where}: a polygon zone takes neither 'members' nor 'radius_m'")
                continue
            first_seen[f.id] = src.name
            out.append(
                Zone(
                    id=f.id,
                    name=props.name,
                    name_en=props.name_en,
                    kind=ZoneKind.CUSTOM,
                    geometry=geom,
                    source=src.name,
                    category=props.category,
                    members=members,
                    circle=circle,
                    description=props.description,
                )
            )
    return out


def build_zones(
    admin: Sequence[SourceFile], custom: Sequence[SourceFile] | None, *, origin: str
) -> ZoneRegistry:
    """Validate every zone and build the registry: ``admin`` the files of
    :data:`ADMIN_FILES`, in that order; ``custom`` the custom zone files (None: their folder,
    ``origin``, does not exist). Every problem is reported at once in one
    :class:`~geo.geojson.ZoneError` for ``origin``; a file that is not JSON at all stops
    there. ``version`` is a digest of every file's name and bytes."""
    digest = hashlib.sha256()
    problems: list[str] = []
    admin_zones, refined = _admin_zones(admin, digest, problems)
    if custom is None:
        problems.append(f"{origin}: zones directory not found")
    zones = _custom_zones(custom or (), admin_zones, digest, problems)
    if problems:
        raise ZoneError(origin, problems)
    return ZoneRegistry(
        [*admin_zones.values(), *zones], version=digest.hexdigest()[:16], refined=refined
    )
