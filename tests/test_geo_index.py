"""Vectorized point-in-polygon and the generated custom zone files."""

from __future__ import annotations

import numpy as np
import shapely

from geo.index import PointIndex
from geo.zonegen import dumps
from gyeongbo.settings import REPO_ROOT
from streams.zonegen import build_all


def test_query_matches_shapely_point_by_point() -> None:
    rng = np.random.default_rng(3)
    centres = rng.uniform(0, 10, (40, 2))
    radii = rng.uniform(0.2, 1.5, 40)
    polys = [shapely.Point(x, y).buffer(r) for (x, y), r in zip(centres, radii, strict=True)]
    idx = PointIndex(polys)
    x, y = rng.uniform(-1, 11, 2000), rng.uniform(-1, 11, 2000)
    p, g = idx.query(x, y)
    got = set(zip(p.tolist(), g.tolist(), strict=True))
    want = {
        (i, j)
        for i in range(2000)
        for j, poly in enumerate(polys)
        if poly.intersects(shapely.Point(x[i], y[i]))
    }
    assert got == want and len(want) > 500
    assert np.all(np.diff(p) >= 0)


def test_first_uses_priority_and_boundaries_count() -> None:
    idx = PointIndex([shapely.box(0, 0, 2, 2), shapely.box(1, 0, 3, 2), shapely.box(5, 5, 6, 6)])
    lon, lat = [0.5, 1.5, 2.5, 2.0, 9.0], [1, 1, 1, 1, 9]
    assert idx.first(lon, lat).tolist() == [0, 0, 1, 0, -1]
    assert idx.first(lon, lat, priority=[1, 0, 0]).tolist() == [0, 1, 1, 1, -1]
    assert idx.first(lon, lat, candidates=[1]).tolist() == [-1, 1, 1, 1, -1]


def test_empty_inputs() -> None:
    idx = PointIndex([shapely.box(0, 0, 1, 1)])
    p, g = idx.query([], [])
    assert p.size == g.size == 0
    assert idx.first([], []).tolist() == []
    assert PointIndex([]).first([0.5], [0.5]).tolist() == [-1]


def test_committed_zone_files_are_the_generator_output() -> None:
    for name, doc in build_all().items():
        committed = (REPO_ROOT / "config" / "zones" / name).read_text(encoding="utf-8")
        assert committed == dumps(doc), f"config/zones/{name} is stale: python -m streams.zonegen"
