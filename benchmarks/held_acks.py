"""What holding acknowledgements costs the worker: memory per held ``readings`` record.

Not a test: run on demand, prints progress lines and, on its last line, one JSON object::

    python benchmarks/held_acks.py --records 20000 --readings-per-record 60

The worker acknowledges a ``readings`` record only once a detector-state checkpoint that
includes it is in Kafka (``streams.detector_state``), so between two checkpoints it keeps
every processed record's Faust event. This builds the objects Faust's aiokafka consumer
builds per record (a ``ConsumerMessage`` with the record's value, its ``TP``, an ``Event``),
holds ``--records`` of them the way the worker does (after ``release_payload``, which drops
the decoded record's bytes) and without dropping them, and measures each with tracemalloc.

Then it states what that means at a rate: records held = rate / readings per record ×
checkpoint interval (10⁴ readings/s in records of ~60 readings, the 10⁴/s pipeline
benchmark's, and 5·10⁴/s in records of ~300, its drain).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faust.events import Event
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from gyeongbo.batch import ReadingBatch
from streams.codec import encode_batch
from streams.faust_internals import release_payload


def log(msg: str) -> None:
    print(f"[held-acks {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def record_value(readings: int, seed: int) -> bytes:
    """A ``readings`` record as the bridge writes it (codec v2, air-quality stations)."""
    rng = np.random.default_rng(seed)
    rows = [
        {
            "station": f"SIM{int(rng.integers(0, 100_000)):06d}",
            "kind": "air_quality",
            "ts_ms": 1_700_000_000_000 + i * 1000,
            "seq": i,
            "values": {"pm10_ugm3": float(rng.uniform(0, 200))},
            "received_ms": 1_700_000_000_500 + i * 1000,
        }
        for i in range(readings)
    ]
    return encode_batch(ReadingBatch.from_rows(rows))  # type: ignore[arg-type]


def build(n: int, values: list[bytes], release: bool) -> list[Any]:
    """``n`` (event, message) pairs as Faust's consumer makes them, each value a copy."""
    tps = [TP("readings", p) for p in range(8)]
    out = []
    for i in range(n):
        value = bytes(bytearray(values[i % len(values)]))  # its own buffer, as fetched
        msg = ConsumerMessage(
            "readings",
            i % 8,
            i,
            1_700_000_000.0 + i,
            0,
            [],
            str(i % 8).encode(),
            value,
            None,
            1,
            len(value),
            tps[i % 8],
            generation_id=1,
        )
        ev = Event(None, msg.key, msg.value, msg.headers, msg)  # type: ignore[arg-type]
        if release:
            release_payload(ev)
        out.append(ev)
    return out


def measure(n: int, values: list[bytes], release: bool) -> float:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    held = build(n, values, release)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    del held
    return used / n


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--records", type=int, default=20_000, help="held records measured")
    ap.add_argument("--readings-per-record", type=int, default=60)
    ap.add_argument("--checkpoint-s", type=float, default=60.0, help="worker.state_checkpoint_s")
    args = ap.parse_args()
    values = [record_value(args.readings_per_record, s) for s in range(16)]
    log(f"record value: {len(values[0])} bytes ({args.readings_per_record} readings)")
    released = measure(args.records, values, release=True)
    log(f"held event, payload released: {released:.0f} B")
    kept = measure(args.records, values, release=False)
    log(f"held event, payload kept: {kept:.0f} B")

    def at(rate: float, per_record: int, per_event: float) -> float:
        return rate / per_record * args.checkpoint_s * per_event / 1e6

    print(
        json.dumps(
            {
                "records_measured": args.records,
                "readings_per_record": args.readings_per_record,
                "record_value_bytes": len(values[0]),
                "held_event_bytes_released": round(released),
                "held_event_bytes_with_payload": round(kept),
                "checkpoint_s": args.checkpoint_s,
                "mb_held_at_1e4_per_s_60_per_record": round(at(1e4, 60, released), 1),
                "mb_held_at_5e4_per_s_300_per_record": round(at(5e4, 300, released), 1),
                "mb_if_payload_kept_at_1e4_per_s": round(at(1e4, 60, kept), 1),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
