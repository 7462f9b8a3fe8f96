"""Load mode: many synthetic stations publishing over MQTT at a target rate, for benchmarks.

``gyeongbo simulate load --stations 100000 --rate 10000 --duration 30`` cycles through
``stations`` synthetic stations (``SIM000000`` …, contiguous blocks per kind), so each station
reads once every ``stations / rate`` seconds (100 000 at 10 000/s = every 10 s, docs/design.md §8),
and publishes the readings in gateway batches (a JSON array on
``{root}/{kind}/_batch/{gateway}``) of ``batch_size``, as the drill gateway: load is an
exercise, it must never reach a resident (the readings say ``exercise: true`` too). Readings
carry the wall-clock time (epoch milliseconds) and an increasing ``seq`` per station. Values
are calm (no stage is ever crossed), from a seeded generator.

The bridge accepts only registry stations: :func:`synthetic_registry` writes a registry with
the same stations and a drill gateway (``gyeongbo simulate registry --stations 100000 --out
sim.yaml``; point the bridge and worker at it with ``GYEONGBO_PATHS__STATIONS``).

Progress lines go to stderr once a second; the last line on stdout is a JSON summary with the
achieved rate.

>>> plan = LoadPlan(stations=10, kinds=("water_level", "air_quality"))
>>> plan.station_id(3), plan.kind_of(3), plan.kind_of(7)
('SIM000003', 'water_level', 'air_quality')
>>> [len(b) for b in plan.batches(0, 12, 4)]
[4, 1, 4, 1, 2]
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import msgspec
import numpy as np
import yaml

from simulators.publisher import MqttPublisher

__all__ = ["LoadPlan", "LoadResult", "run_load", "synthetic_registry"]

DEFAULT_KINDS: tuple[str, ...] = ("water_level", "air_quality", "structural", "rainfall")
GATEWAY_SIZE = 1000  # stations per synthetic gateway
#: The drill gateway of the synthetic registry, which the load is published as.
DRILL_GATEWAY = "drill-lab"
TICK_S = 0.05  # pacing interval

_enc = msgspec.json.Encoder()


@dataclass(frozen=True)
class LoadPlan:
    stations: int
    kinds: tuple[str, ...] = DEFAULT_KINDS
    seed: int = 0

    def station_id(self, i: int) -> str:
        return f"SIM{i:06d}"

    def kind_of(self, i: int) -> str:
        return self.kinds[i * len(self.kinds) // self.stations]

    def gateway_of(self, i: int) -> str:
        return f"sim-load-{i // GATEWAY_SIZE:03d}"

    def batches(self, start: int, count: int, size: int) -> Iterator[list[int]]:
        """Station indices of readings ``start … start+count`` (cycling), cut into batches of
        at most ``size`` that never mix kinds."""
        chunk: list[int] = []
        kind = None
        for n in range(start, start + count):
            i = n % self.stations
            k = self.kind_of(i)
            if chunk and (k != kind or len(chunk) >= size):
                yield chunk
                chunk = []
            kind = k
            chunk.append(i)
        if chunk:
            yield chunk


#: Quiet-weather values with sensor noise small enough to be physically plausible at a 10 s
#: cadence: the health rules rightly flag white noise of centimetres per 10 s on a river
#: gauge (≈ 20 m/h) as impossible steps, which would turn the load into a detection storm.
_VALUES: dict[str, Callable[[np.random.Generator], dict[str, float]]] = {
    "water_level": lambda r: {"level_m": round(2.0 + r.normal(0, 0.001), 3)},
    "air_quality": lambda r: {
        "pm10_ugm3": float(round(30 + r.normal(0, 3))),
        "pm25_ugm3": float(round(15 + r.normal(0, 2))),
    },
    "structural": lambda r: {
        "tilt_rad": round(0.0003 + r.normal(0, 0.0000002), 7),
        "crack_mm": round(0.8 + r.normal(0, 0.0005), 4),
    },
    "rainfall": lambda r: {"rain_mm": 0.0, "interval_s": 10.0},
    "seismic": lambda r: {"pga_g": round(abs(r.normal(0.0004, 0.0001)), 5)},
}


def synthetic_registry(plan: LoadPlan) -> dict[str, Any]:
    """A station registry document (``config/stations.yaml`` format) of the plan's stations,
    spread over Korea, with no stage levels (load never raises a public stage)."""
    rng = np.random.default_rng(plan.seed)
    lats = rng.uniform(34.8, 37.9, plan.stations)
    lons = rng.uniform(126.5, 129.3, plan.stations)
    gateways = sorted({plan.gateway_of(i) for i in range(plan.stations)})
    stations: list[dict[str, Any]] = []
    for i in range(plan.stations):
        kind = plan.kind_of(i)
        st: dict[str, Any] = {
            "id": plan.station_id(i),
            "kind": kind,
            "name": f"부하 {i}",
            "name_en": f"load station {i}",
            "lat": round(float(lats[i]), 4),
            "lon": round(float(lons[i]), 4),
            "gateway": plan.gateway_of(i),
            "interval_s": 10,
        }
        if kind == "structural":
            st["allowable"] = {"tilt_rad": 0.002, "crack_mm": 5.0, "vibration_cms": 0.3}
        stations.append(st)
    return {
        "version": f"sim-load-{plan.stations}",
        "gateways": [
            *({"id": g, "name": f"synthetic load gateway {g}"} for g in gateways),
            {"id": DRILL_GATEWAY, "name": "load and drills (exercise only)", "drill": True},
        ],
        "stations": stations,
    }


def write_registry(plan: LoadPlan, path: Path) -> None:
    doc = synthetic_registry(plan)
    path.write_text(
        "# Synthetic stations for `gyeongbo simulate load` (generated; do not edit)\n"
        + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=200),
        encoding="utf-8",
    )


@dataclass(frozen=True)
class LoadResult:
    stations: int
    target_rate: float
    duration_s: float
    readings: int
    messages: int
    bytes: int
    elapsed_s: float
    acked: int

    @property
    def achieved_rate(self) -> float:
        return self.readings / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> str:
        return json.dumps(
            {
                "stations": self.stations,
                "target_rate": self.target_rate,
                "duration_s": self.duration_s,
                "readings": self.readings,
                "messages": self.messages,
                "bytes": self.bytes,
                "elapsed_s": round(self.elapsed_s, 3),
                "acked": self.acked,
                "achieved_rate": round(self.achieved_rate, 1),
            }
        )


def run_load(
    publisher: MqttPublisher,
    plan: LoadPlan,
    *,
    rate: float,
    duration_s: float,
    batch_size: int = 500,
    topic_root: str = "gyeongbo/v1/readings",
    gateway: str = "drill-lab",
    log: TextIO = sys.stderr,
) -> LoadResult:
    """Publish at ``rate`` readings/s for ``duration_s`` (paced every 50 ms), then flush.

    If the publisher cannot keep up, it sends as fast as it can and the achieved rate shows it.
    """
    if rate <= 0 or duration_s <= 0 or batch_size <= 0:
        raise ValueError("rate, duration and batch size must be positive")
    rng = np.random.default_rng(plan.seed)
    seq_base = int(time.time() * 1000)
    total = int(rate * duration_s)
    sent = messages = nbytes = 0
    start = time.monotonic()
    next_log = start + 1.0
    tick = 0
    while sent < total:
        # Send what is due at each 50 ms tick, so batches fill up instead of trickling.
        tick += 1
        wait = start + tick * TICK_S - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = time.monotonic()
        due = min(total, int((now - start) * rate))
        if due <= sent:
            continue
        wall_ms = int(time.time() * 1000)
        for chunk in plan.batches(sent, due - sent, batch_size):
            kind = plan.kind_of(chunk[0])
            make = _VALUES[kind]
            objs = [
                {
                    "station": plan.station_id(i),
                    "ts": wall_ms,
                    "seq": seq_base + (sent + n) // plan.stations,
                    "values": make(rng),
                    "exercise": True,
                }
                for n, i in enumerate(chunk)
            ]
            payload = _enc.encode(objs)
            publisher.publish(f"{topic_root}/{kind}/_batch/{gateway}", payload)
            sent += len(chunk)
            messages += 1
            nbytes += len(payload)
        if now >= next_log:
            el = now - start
            print(
                f"load t={el:5.1f}s readings={sent} messages={messages} "
                f"rate={sent / el:,.0f}/s acked={publisher.acked}",
                file=log,
                flush=True,
            )
            next_log += 1.0
    publisher.flush(timeout_s=120.0)
    elapsed = time.monotonic() - start
    return LoadResult(
        stations=plan.stations,
        target_rate=rate,
        duration_s=duration_s,
        readings=sent,
        messages=messages,
        bytes=nbytes,
        elapsed_s=elapsed,
        acked=publisher.acked,
    )
