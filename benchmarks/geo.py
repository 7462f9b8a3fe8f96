"""Benchmark vectorized point-in-zone on the real zones (geo/).

Three measurements on the same batch of random points (half inside Seoul's bounding box,
half over all of South Korea's, seeded):

* ``locate`` — ``ZoneRegistry.locate_many``: the full answer streams and recipients use (동,
  구, province chain by code prefix, drawn custom zones) against every real zone
  (17 provinces + 251 municipalities + 423 동 + drawn custom zones);
* ``index_real`` — the raw ``PointIndex.query`` (prepared STRtree + ``intersects_xy``) on the
  same polygons;
* ``index_1k`` — ``PointIndex.query`` against the real polygons plus a ``--grid``×``--grid``
  tiling of boxes over the country, so the polygon count is over 1,000.

Each is run ``--repeat`` times after one warm-up; the median is reported. The last line
printed is a JSON object: ``points``, ``points_per_s`` and ``ms_per_100k`` (of ``locate``),
and per-scenario figures under ``scenarios``.

Usage::

    python benchmarks/geo.py [--points 100000] [--repeat 7] [--grid 32] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geo.index import PointIndex
from streams.config_files import load_zones

KOREA = (124.6, 33.1, 131.0, 38.7)  # lon/lat bounds
SEOUL = (126.76, 37.42, 127.19, 37.70)


def _points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    half = n // 2
    lon = np.r_[rng.uniform(SEOUL[0], SEOUL[2], half), rng.uniform(KOREA[0], KOREA[2], n - half)]
    lat = np.r_[rng.uniform(SEOUL[1], SEOUL[3], half), rng.uniform(KOREA[1], KOREA[3], n - half)]
    return lat, lon


def _time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    out = fn()  # warm-up
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python benchmarks/geo.py",
        description="Vectorized point-in-zone throughput on the real KOSTAT zones.",
    )
    ap.add_argument("--points", type=int, default=100_000, help="points per batch")
    ap.add_argument("--repeat", type=int, default=7, help="timed runs per scenario")
    ap.add_argument("--grid", type=int, default=32, help="grid cells per side for index_1k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--zones", type=Path, default=None, help="custom zones dir")
    ap.add_argument("--admin-dir", type=Path, default=None, help="KOSTAT boundary files")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    zones = load_zones(args.zones, args.admin_dir)
    load_s = time.perf_counter() - t0
    lat, lon = _points(args.points, args.seed)
    located = [z for z in zones if z.is_admin or not z.members]
    real = [z.geometry for z in located]
    x0, y0, x1, y1 = KOREA
    xs = np.linspace(x0, x1, args.grid + 1)
    ys = np.linspace(y0, y1, args.grid + 1)
    grid = [
        shapely.box(xs[i], ys[j], xs[i + 1], ys[j + 1])
        for i in range(args.grid)
        for j in range(args.grid)
    ]
    real_index = PointIndex(real)
    big_index = PointIndex(real + grid)

    scenarios: dict[str, dict[str, float | int]] = {}

    def record(name: str, polygons: int, secs: float, hits: int) -> None:
        scenarios[name] = {
            "polygons": polygons,
            "seconds": round(secs, 4),
            "points_per_s": round(args.points / secs),
            "ms_per_100k": round(secs * 1e3 * 100_000 / args.points, 1),
            "hits": hits,
        }
        print(
            f"{name:11s} {polygons:5d} polygons  {secs * 1e3:8.1f} ms  "
            f"{args.points / secs:12,.0f} points/s  hits={hits}"
        )

    secs, res = _time(lambda: zones.locate_many(lat, lon), args.repeat)
    record("locate", len(real), secs, int((res.municipality >= 0).sum()))
    secs, res = _time(lambda: real_index.query(lon, lat), args.repeat)
    record("index_real", len(real), secs, int(res[0].size))
    secs, res = _time(lambda: big_index.query(lon, lat), args.repeat)
    record("index_1k", len(real) + len(grid), secs, int(res[0].size))

    main_s = scenarios["locate"]
    print(f"zones loaded in {load_s:.2f} s (version {zones.version})")
    print(
        json.dumps(
            {
                "points": args.points,
                "points_per_s": main_s["points_per_s"],
                "ms_per_100k": main_s["ms_per_100k"],
                "zones_load_s": round(load_s, 3),
                "scenarios": scenarios,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
