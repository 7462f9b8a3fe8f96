"""Benchmark: line-protocol formatting of reading batches, and the sink's accept path.

Prints readings/s for :func:`streams.influx_lines.reading_lines` on a batch shaped like the
worker's (mixed kinds, some missing values, seq set) and for ``InfluxSink.write_readings``
(format + buffer; the network is not in the caller's path). The sink points at a closed port
with a buffer large enough to hold everything, so nothing is sent; run it on an idle machine.

Run: ``python -m benchmarks.influx_sink [--n 100000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np

from gyeongbo.batch import KIND_CODES, ReadingBatch
from gyeongbo.settings import InfluxSettings
from gyeongbo.stack.procs import free_port
from gyeongbo.vocab import Kind
from streams.influx_lines import reading_lines
from streams.influx_sink import InfluxSink


def make_batch(n: int, seed: int = 1) -> ReadingBatch:
    rng = np.random.default_rng(seed)
    kinds = rng.choice([KIND_CODES[k] for k in Kind], size=n).astype(np.uint8)
    values = {}
    for name in ("level_m", "rain_mm", "pm10_ugm3", "pm25_ugm3", "o3_ppm", "crack_mm"):
        col = rng.random(n) * 100
        col[rng.random(n) < 0.5] = np.nan
        values[name] = col
    return ReadingBatch(
        station=np.array([f"ST{i % 5000:05d}" for i in range(n)]),
        kind=kinds,
        ts_ms=1_700_000_000_000 + np.arange(n, dtype=np.int64),
        seq=np.arange(n, dtype=np.int64),
        exercise=rng.random(n) < 0.01,
        values=values,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    logging.disable(logging.WARNING)
    batch = make_batch(args.n)
    lines = reading_lines(batch)
    best = min(_timed(lambda: reading_lines(batch)) for _ in range(args.repeat))
    print(
        f"reading_lines: {len(lines)} lines from {args.n} readings, "
        f"{args.n / best:,.0f} readings/s ({best / args.n * 1e6:.2f} µs/reading)"
    )
    sink = InfluxSink(
        InfluxSettings(url=f"http://127.0.0.1:{free_port()}"),
        max_buffer_lines=args.n * (args.repeat + 1),
        retry_interval_ms=60_000,
    )
    best = min(_timed(lambda: sink.write_readings(batch)) for _ in range(args.repeat))
    print(f"InfluxSink.write_readings (format + buffer): {args.n / best:,.0f} readings/s")
    sink.close(timeout_s=0.1)


def _timed(fn: object) -> float:
    assert callable(fn)
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
