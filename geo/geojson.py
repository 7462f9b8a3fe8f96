"""Validating GeoJSON zone files (RFC 7946, WGS 84 longitude/latitude).

Every problem in a file is reported at once, each naming the feature by index and id::

    config/zones/x.geojson: 1 problem(s):
      features[3] (id='seoul-center'): polygon is not valid: Self-intersection[127.01 37.55]

Checks: the document is a ``FeatureCollection``; each feature has a unique id (``id_key`` in
its properties, or the feature's own ``id``); positions are finite ``[lon, lat]`` pairs within
WGS 84 ranges (a file written as ``[lat, lon]`` gets a hint); rings are closed with at least
four positions; the polygon is valid by the OGC rules as GEOS checks them
(:func:`shapely.is_valid_reason`). A feature may instead have a ``Point`` geometry or none at
all when ``allow_point``/``allow_null`` say so (custom zones: a radius around a point, or a
union of member zones).

>>> doc = {"type": "FeatureCollection", "features": [{"type": "Feature",
...     "properties": {"id": "box"}, "geometry": {"type": "Polygon",
...     "coordinates": [[[127, 37], [127.1, 37], [127.1, 37.1], [127, 37]]]}}]}
>>> [f.id for f in parse_features(doc, path="doc", id_key="id")]
['box']
>>> ring = [[37, 127], [37, 127.1], [37.1, 127.1], [37, 127]]  # [lat, lon] by mistake
>>> doc["features"][0]["geometry"]["coordinates"] = [ring]
>>> try:
...     parse_features(doc, path="doc", id_key="id")
... except ZoneError as err:
...     print(err.problems[0][:61])
...     print("[lat, lon]?" in err.problems[0])
features[0] (id='box'): latitude 127.0 out of range [-90, 90]
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import shapely
import shapely.geometry

from gyeongbo.errors import ConfigError

__all__ = ["FeatureSpec", "ZoneError", "check_features", "parse_features"]


class ZoneError(ConfigError):
    """A zone file (or the zone set) is invalid."""


@dataclass(frozen=True)
class FeatureSpec:
    """One validated feature; ``geometry`` is a shapely geometry, or None (member zones)."""

    index: int
    id: str
    properties: Mapping[str, Any]
    geometry: Any


def _check_position(pos: Any, problems: list[str]) -> None:
    if (
        not isinstance(pos, list | tuple)
        or len(pos) not in (2, 3)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pos)
    ):
        problems.append(f"position {pos!r} is not [lon, lat]")
        return
    lon, lat = float(pos[0]), float(pos[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        problems.append(f"position {pos!r} is not finite")
    elif not -90.0 <= lat <= 90.0:
        hint = " (are the positions [lat, lon]? GeoJSON is [lon, lat])" if -90 <= lon <= 90 else ""
        problems.append(f"latitude {lat} out of range [-90, 90]{hint}")
    elif not -180.0 <= lon <= 180.0:
        problems.append(f"longitude {lon} out of range [-180, 180]")


def _check_rings(rings: Any, problems: list[str]) -> None:
    if not isinstance(rings, list) or not rings:
        problems.append("a polygon needs at least one ring")
        return
    for r, ring in enumerate(rings):
        if not isinstance(ring, list) or len(ring) < 4:
            problems.append(f"ring {r} needs at least 4 positions")
            continue
        if ring[0] != ring[-1]:
            problems.append(f"ring {r} is not closed (first position != last)")
        before = len(problems)
        for pos in ring:
            _check_position(pos, problems)
            if len(problems) > before:  # one bad position per ring is enough to say
                break


def _check_geometry(geom: Any, allow_point: bool, allow_null: bool) -> tuple[list[str], Any]:
    problems: list[str] = []
    if geom is None:
        if not allow_null:
            problems.append("geometry is null")
        return problems, None
    if not isinstance(geom, Mapping):
        return [f"geometry must be an object, not {type(geom).__name__}"], None
    gtype, coords = geom.get("type"), geom.get("coordinates")
    if gtype == "Polygon":
        _check_rings(coords, problems)
    elif gtype == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            problems.append("a MultiPolygon needs at least one polygon")
        else:
            for rings in coords:
                _check_rings(rings, problems)
    elif gtype == "Point" and allow_point:
        _check_position(coords, problems)
    else:
        allowed = ["Polygon", "MultiPolygon"] + (["Point"] if allow_point else [])
        problems.append(f"geometry type {gtype!r} not allowed here (expected one of {allowed})")
    if problems:
        return problems, None
    try:
        shape = shapely.geometry.shape(geom)
    except (ValueError, TypeError, shapely.errors.GEOSException) as err:
        return [f"geometry cannot be built: {err}"], None
    if shape.is_empty:
        return ["geometry is empty"], None
    if not shape.is_valid:
        return [f"polygon is not valid: {shapely.is_valid_reason(shape)}"], None
    return [], shape


def parse_features(
    data: Any,
    *,
    path: str,
    id_key: str,
    allow_point: bool = False,
    allow_null: bool = False,
) -> list[FeatureSpec]:
    """Validate a parsed GeoJSON FeatureCollection; all problems are raised together."""
    specs, problems = check_features(
        data, id_key=id_key, allow_point=allow_point, allow_null=allow_null
    )
    if problems:
        raise ZoneError(path, problems)
    return specs


def check_features(
    data: Any, *, id_key: str, allow_point: bool = False, allow_null: bool = False
) -> tuple[list[FeatureSpec], list[str]]:
    """The good features and one problem message per bad one (callers that add checks of
    their own use this to report everything in one go)."""
    if not isinstance(data, Mapping) or data.get("type") != "FeatureCollection":
        return [], ["top level must be a GeoJSON FeatureCollection"]
    features = data.get("features")
    if not isinstance(features, list):
        return [], ["'features' must be a list"]
    problems: list[str] = []
    specs: list[FeatureSpec] = []
    seen: dict[str, int] = {}
    for i, feat in enumerate(features):
        if not isinstance(feat, Mapping) or feat.get("type") != "Feature":
            problems.append(f"features[{i}]: not a GeoJSON Feature")
            continue
        props = feat.get("properties")
        if props is None:
            props = {}
        if not isinstance(props, Mapping):
            problems.append(f"features[{i}]: properties must be an object")
            continue
        fid = props.get(id_key, feat.get("id"))
        where = f"features[{i}] (id={fid!r})"
        if not isinstance(fid, str) or not fid:
            problems.append(f"{where}: missing or non-string id ({id_key!r})")
            continue
        if fid in seen:
            problems.append(f"{where}: duplicate id (first at features[{seen[fid]}])")
            continue
        seen[fid] = i
        geom_problems, shape = _check_geometry(feat.get("geometry"), allow_point, allow_null)
        if geom_problems:
            problems.append(f"{where}: " + "; ".join(geom_problems))
            continue
        specs.append(FeatureSpec(index=i, id=fid, properties=dict(props), geometry=shape))
    return specs, problems
