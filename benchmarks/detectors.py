"""Throughput of the whole detector set: readings/s for N stations in micro-batches.

Builds a synthetic registry of ``--stations`` stations (default 100,000; a national mix:
20 % water-level gauges with stage levels, 10 % rain gauges, 10 % air-quality stations,
55 % structural monitors, 5 % accelerometers; every station reports every 10 s), then feeds
``--rounds`` timed rounds (after one untimed) of one reading per station, shuffled into
micro-batches of ``--batch`` readings, through ``DetectorSet.process`` on one core.

Steady state means stations in service on a normal day: every channel past its anomaly
warm-up, with a complete and armed time-of-day profile, full forecast rings and rain bins,
and few detections (the figure is the cost of the maths, not of building detections).
Values are stationary: a level per station, a daily cycle (±1 %) and noise (0.1 %;
water levels 0.02 %).
Simulating weeks of history for every station would take minutes, so ``--templates``
stations (default 1,000, in the national mix) first live ``--history-days`` days (default
14) of readings 5 minutes apart, and every other station of the same kind starts from a
copy of a template's state (``export_state`` → ``import_state``, the real restore path) and
follows that template's level with its own noise. Every timed station is thus a
station in service for two weeks, not one that has just started: young channels take other
paths (warm-up, profile learning) and flag more often (their ranges are narrow).

Stations do not report in step: each template has its own clock offset (a multiple of 10 s
within the hour, shared by the stations that copy it), so in every round about 1 station in
360 crosses into another clock hour (its anomaly record hands its held profile bin back, its
hourly air-quality means close), as in service. Each template's history also runs 0–290 s
(in 10 s steps) ahead of its clock, so its last history point is 10–300 s before its first
round and its forecast ring, which takes a point every 5 minutes of the gauge's own time,
next appends in one of the first 30 rounds: about 1 gauge in 30 per round. With one clock
for all, a two-minute timed window would cross no hour, and every ring would append in the
first round only.

Batches carry the stations' registry positions, as the bridge sends them (``readings``
record version 2), so the detectors do not look the ids up; ``--lookup-ids`` measures
batches without them (a worker whose registry differs from the bridge's).

The last line printed is a JSON object with ``readings_per_s`` (wall clock inside
``process``), ``readings_per_cpu_s`` (CPU time of this process inside ``process``: the figure
to read on a shared, loaded machine), ``readings_per_s_best_batch`` (the fastest batch, as
``timeit`` reports the minimum: the least disturbed figure, an upper bound of the steady
rate), ``detections`` (in the timed rounds), ``state_bytes_per_station`` and the run's
parameters.

Usage::

    python benchmarks/detectors.py [--stations 100000] [--batch 10000] [--rounds 12]
                                   [--templates 1000] [--history-days 14]
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


DAY_MS = 86_400_000

#: Level ranges per value name (a station's level is drawn once, uniformly in its range).
LEVELS: dict[str, tuple[Kind, float, float]] = {
    "level_m": (Kind.WATER_LEVEL, 1.0, 3.0),
    "rain_mm": (Kind.RAINFALL, 0.0, 0.01),
    "pm10_ugm3": (Kind.AIR_QUALITY, 20.0, 60.0),
    "pm25_ugm3": (Kind.AIR_QUALITY, 10.0, 30.0),
    "o3_ppm": (Kind.AIR_QUALITY, 0.01, 0.05),
    "tilt_rad": (Kind.STRUCTURAL, 1e-4, 5e-4),
    "crack_mm": (Kind.STRUCTURAL, 0.5, 1.5),
    "vibration_cms": (Kind.STRUCTURAL, 0.01, 0.05),
    "pga_g": (Kind.SEISMIC, 1e-4, 1e-3),
}


#: Noise (standard deviation, relative to the level) where it is not 0.1 %: a gauge's
#: reading moves by about half a millimetre (0.1 % of 2 m in 10 s would be a 1 m/h rate,
#: flagged as a spike by the health checks at 3 σ).
NOISE = {"level_m": 2e-4}


class Signal:
    """Stationary quiet values: level × (1 + 0.01 sin(2π·day + phase)) + noise (0.1 %)."""

    def __init__(self, kind: np.ndarray, template_of: np.ndarray, rng: np.random.Generator):
        n = len(kind)
        self.level = {}
        for name, (k, lo, hi) in LEVELS.items():
            own = np.where(kind == KIND_CODES[k], rng.uniform(lo, hi, n), np.nan)
            self.level[name] = own[template_of]  # a station follows its template's level
        self.phase = rng.uniform(0.0, 2 * np.pi, n)[template_of]

    def values(self, rows: np.ndarray, t_ms: np.ndarray, rng: np.random.Generator) -> dict:
        """Values of stations ``rows`` at their times ``t_ms``."""
        cycle = 1.0 + 0.01 * np.sin(2 * np.pi * (t_ms % DAY_MS) / DAY_MS + self.phase[rows])
        out = {}
        for name, level in self.level.items():
            b = level[rows]
            v = b * cycle + rng.normal(0.0, 1.0, len(rows)) * np.abs(b) * NOISE.get(name, 1e-3)
            out[name] = np.abs(v) if name == "rain_mm" else v
        return out


def round_batch(
    ids: np.ndarray,
    kind: np.ndarray,
    rows: np.ndarray,
    t_ms: int,
    signal: Signal,
    rng: np.random.Generator,
    digest: int = 0,
    offset_ms: np.ndarray | None = None,
) -> ReadingBatch:
    """One reading of each station in ``rows`` at ``t_ms`` (plus the station's clock offset),
    in a random order; with the registry's ``digest``, the stations' registry positions ride
    along as the bridge sends them (``ids`` are in registry order)."""
    rows = rng.permutation(rows)
    n = len(rows)
    ts = np.full(n, t_ms, dtype=np.int64)
    if offset_ms is not None:
        ts += offset_ms[rows]
    return ReadingBatch(
        station=ids[rows],
        kind=kind[rows],
        ts_ms=ts,
        seq=np.full(n, NO_SEQ, dtype=np.int64),
        exercise=np.zeros(n, dtype=bool),
        values=signal.values(rows, ts, rng),
        station_index=rows.astype(np.int32) if digest else None,
        index_digest=digest,
    )


def templates(kind: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` template stations in the mix of ``kind``, and each station's template."""
    template_of = np.arange(len(kind))
    chosen = []
    for code in np.unique(kind):
        members = np.flatnonzero(kind == code)
        k = max(1, round(count * len(members) / len(kind)))
        t = members[:k]
        chosen.append(t)
        template_of[members] = t[np.arange(len(members)) % k]
    return np.sort(np.concatenate(chosen)), template_of


def live_history(
    ds: DetectorSet,
    ids: np.ndarray,
    kind: np.ndarray,
    tmpl: np.ndarray,
    signal: Signal,
    start_ms: int,
    days: float,
    rng: np.random.Generator,
    offset_ms: np.ndarray,
) -> int:
    """Feed the templates ``days`` of readings 5 minutes apart; returns the next time."""
    steps = int(days * DAY_MS // 300_000)
    t_report = time.monotonic()
    for r in range(steps):
        t = start_ms + r * 300_000
        ds.process(round_batch(ids, kind, tmpl, t, signal, rng, ds.ids_digest, offset_ms))
        if time.monotonic() - t_report > 2 or r == steps - 1:
            t_report = time.monotonic()
            print(
                f"  history: day {(r + 1) * 300_000 / DAY_MS:.1f} of {days:g} "
                f"({len(tmpl)} template stations)",
                file=sys.stderr,
            )
    return start_ms + steps * 300_000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stations", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000, help="readings per micro-batch")
    ap.add_argument(
        "--rounds", type=int, default=12, help="timed readings per station (10 s apart)"
    )
    ap.add_argument("--templates", type=int, default=1_000, help="stations that live the history")
    ap.add_argument(
        "--history-days", type=float, default=14.0, help="days of history (5 min apart) first"
    )
    ap.add_argument(
        "--lookup-ids",
        action="store_true",
        help="batches without the bridge's registry positions: the ids are looked up",
    )
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.monotonic()
    ds, ids, kind = build(args.stations, rng)
    print(
        f"registry of {args.stations} stations built in {time.monotonic() - t0:.1f} s",
        file=sys.stderr,
    )
    tmpl, template_of = templates(kind, args.templates)
    signal = Signal(kind, template_of, rng)
    # each template's clock offset (10 s steps within the hour), shared by its copies, and
    # how far before the first timed reading its history ends (its ring's next append)
    offset_ms = (rng.integers(0, 360, len(ids)) * 10_000)[template_of]
    ring_phase_ms = (rng.integers(0, 30, len(ids)) * 10_000)[template_of]
    start_ms = 1_700_000_000_000
    t0 = time.monotonic()
    start_ms = live_history(
        ds, ids, kind, tmpl, signal, start_ms, args.history_days, rng, offset_ms + ring_phase_ms
    )
    blobs = ds.export_state(ids[tmpl].tolist())
    by_id = {str(ids[t]): blobs[str(ids[t])] for t in tmpl}
    ds.import_state({str(ids[i]): by_id[str(ids[template_of[i]])] for i in range(len(ids))})
    print(
        f"history and state copy to {len(ids)} stations in {time.monotonic() - t0:.1f} s",
        file=sys.stderr,
    )
    n = len(ids)
    everyone = np.arange(n)
    # the bridge sends registry positions (codec v2); --lookup-ids measures without them
    digest = 0 if args.lookup_ids else ds.ids_digest
    busy = 0.0
    cpu = 0.0
    best = float("inf")  # fastest batch (seconds per reading): the least disturbed figure
    readings = 0
    detections = 0
    t_report = time.monotonic()
    # Round 0 is not timed: the copies' first readings come 10-300 s after their history (a
    # twelfth of the channels cross an hour at once); from round 1 on, every reading is 10 s
    # after the last, as in service.
    for r in range(args.rounds + 1):
        t_round = start_ms + r * 10_000
        full = round_batch(ids, kind, everyone, t_round, signal, rng, digest, offset_ms)
        batches = [full.take(np.arange(i, min(i + args.batch, n))) for i in range(0, n, args.batch)]
        if r == 0:
            for b in batches:
                ds.process(b)
            continue
        for b in batches:
            t, c = time.perf_counter(), time.process_time()
            detections += len(ds.process(b))
            dt = time.perf_counter() - t
            busy += dt
            best = min(best, dt / len(b))
            cpu += time.process_time() - c
            readings += len(b)
        if time.monotonic() - t_report > 2 or r == args.rounds:
            t_report = time.monotonic()
            print(
                f"  round {r}/{args.rounds}: {readings} readings, "
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
        "templates": len(tmpl),
        "history_days": args.history_days,
        "ids_looked_up": bool(args.lookup_ids),
        "readings": readings,
        "detections": detections,
        "seconds_in_process": round(busy, 3),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
