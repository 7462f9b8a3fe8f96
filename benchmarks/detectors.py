"""Throughput of the whole detector set: readings/s for N stations in micro-batches.

Builds a synthetic registry of ``--stations`` stations (default 100,000; a national mix:
20 % water-level gauges with stage levels, 10 % rain gauges, 10 % air-quality stations,
55 % structural monitors, 5 % accelerometers; every station reports every 10 s), then feeds
``--rounds`` rounds of one reading per station, shuffled into micro-batches of ``--batch``
readings, through ``DetectorSet.process`` on one core. Values are quiet random walks (a
normal day: few detections), so the figure is the steady-state cost of the maths.

Steady state: ``--warm`` untimed rounds 5 minutes apart come first (default 13, one hour),
so every forecast ring is full and the Theil–Sen fit runs on every water-level reading and
the rain rings and hourly bins are in use. The anomaly detectors do all their maths on every
reading, but with 25 readings per channel they are still inside their warm-up (scores held at
0, so nothing is raised) and their time-of-day profiles are not complete (that takes a day):
both paths cost a few more operations than a station in service, not fewer.

The last line printed is a JSON object with ``readings_per_s`` (wall clock inside
``process``), ``readings_per_cpu_s`` (CPU time of this process inside ``process``: the figure
to read on a shared, loaded machine), ``readings_per_s_best_batch`` (the fastest batch, as
``timeit`` reports the minimum: the least disturbed figure, an upper bound of the steady
rate), ``state_bytes_per_station`` and the run's parameters.

Usage::

    python benchmarks/detectors.py [--stations 100000] [--batch 10000] [--rounds 12] [--warm 13]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.engine import DetectorSet
from gyeongbo.batch import KIND_CODES, NO_SEQ, ReadingBatch
from gyeongbo.registry import parse_registry
from gyeongbo.vocab import Kind

MIX = [
    (Kind.WATER_LEVEL, 0.20),
    (Kind.RAINFALL, 0.10),
    (Kind.AIR_QUALITY, 0.10),
    (Kind.STRUCTURAL, 0.55),
    (Kind.SEISMIC, 0.05),
]


def build(n: int, rng: np.random.Generator) -> tuple[DetectorSet, np.ndarray, np.ndarray]:
    kinds = rng.choice(len(MIX), size=n, p=[p for _, p in MIX])
    stations = []
    for i in range(n):
        k = MIX[int(kinds[i])][0]
        st: dict[str, object] = {
            "id": f"S{i:06d}",
            "kind": k.value,
            "name": f"s{i}",
            "name_en": f"s{i}",
            "lat": 36.0,
            "lon": 127.0,
            "gateway": "bench",
            "interval_s": 10,
        }
        if k is Kind.WATER_LEVEL:
            st["levels"] = {"attention": 4.0, "caution": 6.0, "alert": 8.0, "serious": 10.0}
        if k is Kind.STRUCTURAL:
            st["allowable"] = {"tilt_rad": 0.002, "crack_mm": 5.0, "vibration_cms": 0.3}
        if k is Kind.AIR_QUALITY:
            st["region"] = "r"
        stations.append(st)
    reg = parse_registry(
        {"gateways": [{"id": "bench", "name": "bench"}], "stations": stations}, path="<bench>"
    )
    ds = DetectorSet(reg)
    order = np.argsort([s["id"] for s in stations])  # registry order = sorted ids
    return ds, ds.ids, np.array([KIND_CODES[MIX[int(k)][0]] for k in kinds[order]], np.uint8)


def round_batch(
    ids: np.ndarray,
    kind: np.ndarray,
    t_ms: int,
    base: dict[str, np.ndarray],
    rng: np.random.Generator,
) -> ReadingBatch:
    n = len(ids)
    vals = {}
    for name, b in base.items():
        noise = rng.normal(0.0, 1.0, n) * np.abs(b) * 0.001
        b += noise * 0.1
        vals[name] = np.where(np.isnan(b), np.nan, b + noise)
    return ReadingBatch(
        station=ids,
        kind=kind,
        ts_ms=np.full(n, t_ms, dtype=np.int64),
        seq=np.full(n, NO_SEQ, dtype=np.int64),
        exercise=np.zeros(n, dtype=bool),
        values=vals,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stations", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000, help="readings per micro-batch")
    ap.add_argument("--rounds", type=int, default=12, help="readings per station (10 s apart)")
    ap.add_argument("--warm", type=int, default=13, help="untimed rounds 5 min apart first")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.monotonic()
    ds, ids, kind = build(args.stations, rng)
    print(
        f"registry of {args.stations} stations built in {time.monotonic() - t0:.1f} s",
        file=sys.stderr,
    )
    n = len(ids)

    def col(k: Kind, lo: float, hi: float) -> np.ndarray:
        return np.where(kind == KIND_CODES[k], rng.uniform(lo, hi, n), np.nan)

    base = {
        "level_m": col(Kind.WATER_LEVEL, 1.0, 3.0),
        "rain_mm": col(Kind.RAINFALL, 0.0, 0.5),
        "pm10_ugm3": col(Kind.AIR_QUALITY, 20.0, 60.0),
        "pm25_ugm3": col(Kind.AIR_QUALITY, 10.0, 30.0),
        "o3_ppm": col(Kind.AIR_QUALITY, 0.01, 0.05),
        "tilt_rad": col(Kind.STRUCTURAL, 1e-4, 5e-4),
        "crack_mm": col(Kind.STRUCTURAL, 0.5, 1.5),
        "vibration_cms": col(Kind.STRUCTURAL, 0.01, 0.05),
        "pga_g": col(Kind.SEISMIC, 1e-4, 1e-3),
    }
    start_ms = 1_700_000_000_000
    t0 = time.monotonic()
    for r in range(args.warm):
        full = round_batch(ids, kind, start_ms + r * 300_000, base, rng)
        perm = rng.permutation(n)
        for i in range(0, n, args.batch):
            ds.process(full.take(perm[i : i + args.batch]))
    start_ms += args.warm * 300_000
    if args.warm:
        print(f"warmed up ({args.warm} rounds) in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    busy = 0.0
    cpu = 0.0
    best = float("inf")  # fastest batch (seconds per reading): the least disturbed figure
    readings = 0
    detections = 0
    t_report = time.monotonic()
    for r in range(args.rounds):
        full = round_batch(ids, kind, start_ms + r * 10_000, base, rng)
        perm = rng.permutation(n)
        batches = [full.take(perm[i : i + args.batch]) for i in range(0, n, args.batch)]
        for b in batches:
            t, c = time.perf_counter(), time.process_time()
            detections += len(ds.process(b))
            dt = time.perf_counter() - t
            busy += dt
            best = min(best, dt / len(b))
            cpu += time.process_time() - c
            readings += len(b)
        if time.monotonic() - t_report > 2 or r == args.rounds - 1:
            t_report = time.monotonic()
            print(
                f"  round {r + 1}/{args.rounds}: {readings} readings, "
                f"{readings / busy:,.0f} readings/s",
                file=sys.stderr,
            )
    result = {
        "readings_per_s": round(readings / busy),
        "readings_per_cpu_s": round(readings / cpu),
        "readings_per_s_best_batch": round(1.0 / best),
        "state_bytes_per_station": ds.state_bytes_per_station,
        "stations": args.stations,
        "batch": args.batch,
        "warm_rounds": args.warm,
        "readings": readings,
        "detections": detections,
        "seconds_in_process": round(busy, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
