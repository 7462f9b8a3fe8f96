"""End-to-end pipeline benchmark: gateways → MQTT → bridge → Kafka → worker → alerts.

Not a test: run on demand, prints progress lines and, on its last line, one JSON object::

    python benchmarks/pipeline.py --stations 100000 --rate 10000 --duration 30

What it does:

1. starts a private local stack (or uses ``--stack-home`` of a running ``gyeongbo stack up``)
   and, on its own topics, a bridge and ``--workers`` workers (``streams.pipeline``);
2. writes a registry of ``--stations`` synthetic stations (the simulators' load plan) plus
   ``--probes`` probe gauges, each alone in its own municipality, with stage levels;
3. publishes synthetic readings in gateway batches at ``--rate`` for ``--duration`` seconds
   (``gyeongbo simulate load`` in a separate process), and meanwhile one probe reading at a
   time that puts a probe gauge over its 심각 line;
4. follows ``alerts``: the latency of a probe is from its MQTT publish to its alert event
   being readable on ``alerts`` (publish → bridge → Kafka → detectors → zone fan-out → stage
   machine → ``alerts``).

It reports readings/s processed by the workers, worker CPU seconds (so readings per CPU
second per worker core), the detectors' own lag (bridge receive → detected) and the probes'
alert latency p50/p95/p99, the consumer lag and lost readings at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.proc_cpu import process_table
from gyeongbo.settings import Settings, StackSettings, Topics, WorkerSettings
from gyeongbo.stack.credentials import mqtt_password
from gyeongbo.stack.procs import free_port, stop
from gyeongbo.stack.stack import Stack
from gyeongbo.topics import create_topics
from simulators.load import LoadPlan, synthetic_registry
from streams.pipeline import settings_env, start_local_pipeline

#: The probe gauges' gateway (the load is published as the registry's drill gateway).
PROBE_GATEWAY = "bench-probe"


def log(msg: str) -> None:
    print(f"[pipeline-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def municipality_codes(settings: Settings, n: int) -> list[str]:
    path = Path(settings.paths.admin_boundaries) / "skorea_municipalities_geo_simple.json"
    codes = sorted(f["properties"]["code"] for f in json.loads(path.read_text())["features"])
    if n > len(codes):
        raise SystemExit(f"--probes at most {len(codes)} (one municipality each)")
    return codes[:n]


def write_registry(path: Path, stations: int, probes: list[str]) -> None:
    doc = synthetic_registry(LoadPlan(stations=stations))
    doc["gateways"].append({"id": PROBE_GATEWAY, "name": "benchmark probe gauges"})
    for i, zone in enumerate(probes):
        doc["stations"].append(
            {
                "id": f"PROBE{i:04d}",
                "kind": "water_level",
                "name": f"탐침 {i}",
                "name_en": f"probe gauge {i}",
                "lat": 37.0,
                "lon": 127.0,
                "gateway": PROBE_GATEWAY,
                "interval_s": 600,
                "zones": [zone],
                "levels": {"caution": 1.0, "alert": 2.0, "serious": 3.0},
            }
        )
    path.write_text(json.dumps(doc, ensure_ascii=False))


def bench_settings(stack: Stack, tmp: Path, registry: Path, checkpoint_s: float) -> Settings:
    uid = uuid.uuid4().hex[:8]
    base = stack.app_settings()
    stack.lend_credentials(tmp)  # the run's files are under tmp: its passwords too
    topics = Topics.model_validate(
        {
            name: {**t, "name": f"{t['name']}-{uid}"}
            for name, t in base.kafka.topics.model_dump().items()
        }
    )
    create_topics(stack.kafka_bootstrap, topics.all())
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topics": topics}),
            "worker": WorkerSettings(
                app_id=f"bench-{uid}", web_port=free_port(), data_dir=tmp / "worker", tick_s=5.0
            ),
            "paths": base.paths.model_copy(
                update={
                    "stations": registry,
                    "cap_feed": tmp / "cap",
                }
            ),
            "mqtt": base.mqtt.model_copy(
                update={"client_id": f"bridge-{uid}", "topic_root": f"b{uid}/gyeongbo/v1/readings"}
            ),
            "stack": base.stack.model_copy(update={"home": tmp}),
        }
    )


class AlertFollower(threading.Thread):
    """Reads ``alerts`` from the end and notes when each zone's first event arrives."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.first_seen: dict[str, float] = {}
        self.transitions: Counter[str | int] = Counter()  # event id → times seen
        self.events = 0
        self.ready = threading.Event()
        self.stop_flag = threading.Event()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from aiokafka import AIOKafkaConsumer

        c = AIOKafkaConsumer(
            self.settings.kafka.topics.alerts.name,
            bootstrap_servers=self.settings.kafka.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await c.start()
        self.ready.set()
        try:
            while not self.stop_flag.is_set():
                batch = await c.getmany(timeout_ms=100)
                now = time.time()
                for recs in batch.values():
                    for r in recs:
                        self.events += 1
                        ev = json.loads(r.value)
                        self.first_seen.setdefault(ev["zone"], now)
                        self.transitions[ev.get("event_id") or r.offset] += 1
        finally:
            await c.stop()


def worker_metrics(url: str) -> dict[str, Any]:
    for _ in range(6):  # a worker busy writing a checkpoint may answer late
        try:
            with urllib.request.urlopen(url + "/metrics?format=json", timeout=10) as r:
                return dict(json.loads(r.read()))
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"worker at {url} does not answer /metrics")


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the process group ``pid`` leads (a worker's own session)."""
    return sum(p.cpu_s for p in process_table().values() if p.pgrp == pid)


def start_load(settings: Settings, args: argparse.Namespace, duration: float) -> Any:
    """``gyeongbo simulate load`` in its own process: synthetic gateway batches over MQTT."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gyeongbo_cli",
            "simulate",
            "load",
            "--stations",
            str(args.stations),
            "--rate",
            str(args.rate),
            "--duration",
            str(duration),
            "--batch-size",
            str(args.batch_size),
        ],
        env={**os.environ, **settings_env(settings)},
        stdout=subprocess.PIPE,
        stderr=open(Path(settings.stack.home) / "load.log", "ab"),
        text=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--stations", type=int, default=100_000)
    ap.add_argument("--rate", type=float, default=10_000, help="readings/s published")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    ap.add_argument("--batch-size", type=int, default=500, help="readings per gateway batch")
    ap.add_argument("--probes", type=int, default=100, help="alert latency probes (≤ 251)")
    ap.add_argument(
        "--broker",
        choices=("noida", "tansu"),
        default="noida",
        help="Kafka-protocol broker of the private stack (noida-db stalls for ~1 s every "
        "10-15 s under this load while it persists its JSON file; Tansu keeps data in memory)",
    )
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument(
        "--drain",
        type=int,
        default=0,
        metavar="N",
        help="capacity mode: with no worker running, publish N readings through MQTT and the "
        "bridge at --rate (records as a loaded bridge writes them), then start the "
        "worker(s) and time how fast they drain the backlog (readings/s and per worker "
        "CPU-second, between 10 %% and 90 %% of the backlog); no alert probes",
    )
    ap.add_argument(
        "--checkpoint-s",
        type=float,
        default=600.0,
        help="detector-state checkpoint interval of the workers (seconds); the "
        "default keeps checkpoints out of a short run: noida-db, a single JSON "
        "file, cannot absorb 10^5 stations' state (~90 MB per checkpoint)",
    )
    ap.add_argument(
        "--stack-home",
        type=Path,
        default=None,
        help="use the running stack of `gyeongbo stack up` in this folder",
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="gyeongbo-bench-"))
    # The stack's mosquitto admits the gateways of its station registry: the benchmark's (the
    # load publishes as its drill gateway, the probes as bench-probe).
    registry = tmp / "registry.json"
    base = Settings(_env_file=None)
    probes = [] if args.drain else municipality_codes(base, args.probes)
    write_registry(registry, args.stations, probes)
    log(f"registry: {args.stations} synthetic stations + {len(probes)} probe gauges")
    reg = base.model_copy(update={"paths": base.paths.model_copy(update={"stations": registry})})
    restore: Stack | None = None
    if args.stack_home:
        stack = Stack(config=StackSettings(home=args.stack_home), settings=reg)
        stack.load()
        log("restarting the stack's mosquitto with the benchmark's gateways (restored after)")
        stop(stack.procs["mosquitto"].pid)
        stack.start_mosquitto(log)
        restore = Stack(config=stack.config, settings=Settings(_env_file=None))
        restore.procs = stack.procs
        own_stack = False
    else:
        from gyeongbo.stack.procs import free_port as fp

        cfg = StackSettings(
            home=tmp / "stack",
            broker=args.broker,
            mqtt_port=fp(),
            mqtt_bridge_port=fp(),
            kafka_port=fp(),
            influxd_port=fp(),
            influx_compat_port=fp(),
            fake_twilio_port=fp(),
        )
        stack = Stack(config=cfg, settings=reg)
        log(f"starting a private stack under {cfg.home}")
        stack.up(report=log)
        own_stack = True
    try:
        if args.drain:
            run_drain(args, stack, tmp, registry)
        else:
            run(args, stack, tmp, registry, probes)
    finally:
        if own_stack:
            stack.down()
        elif restore is not None:
            stop(restore.procs["mosquitto"].pid)
            restore.start_mosquitto(log)
            restore.save()


def run(
    args: argparse.Namespace, stack: Stack, tmp: Path, registry: Path, probes: list[str]
) -> None:
    settings = bench_settings(stack, tmp, registry, args.checkpoint_s)
    with start_local_pipeline(settings, workers=args.workers, logs=tmp / "logs") as pipe:
        follower = AlertFollower(settings)
        follower.start()
        follower.ready.wait(30)
        log(
            f"pipeline up: bridge + {len(pipe.workers)} worker(s); load {args.rate:.0f}/s "
            f"for {args.duration:.0f}s"
        )
        load = start_load(settings, args, args.duration)
        cpu0 = [cpu_seconds(w.proc.pid) for w in pipe.workers]
        t0 = time.time()
        # The probe gauges' gateway publishes them (the load is the drill gateway's), on the
        # gateways' listener.
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=PROBE_GATEWAY)
        pub.username_pw_set(PROBE_GATEWAY, mqtt_password(settings, PROBE_GATEWAY))
        pub.connect(settings.gateway.host, settings.gateway.port)
        pub.loop_start()
        sent_at: dict[str, float] = {}
        gap = args.duration / max(1, len(probes))
        for i, zone in enumerate(probes):
            target = t0 + (i + 0.5) * gap
            time.sleep(max(0.0, target - time.time()))
            payload = json.dumps(
                {
                    "station": f"PROBE{i:04d}",
                    "ts": int(time.time() * 1000),
                    "seq": 1,
                    "values": {"level_m": 5.0},
                }
            )
            sent_at[zone] = time.time()
            pub.publish(f"{settings.mqtt.topic_root}/water_level/PROBE{i:04d}", payload, qos=1)
            if i % 20 == 0:
                m = worker_metrics(pipe.workers[0].url)
                log(
                    f"t+{time.time() - t0:5.1f}s worker readings {m.get('readings', 0)}, "
                    f"alerts seen {follower.events}"
                )
        out, _ = load.communicate(timeout=args.duration + 600)
        if not out.strip():
            raise SystemExit(f"the load generator failed; see {tmp / 'load.log'}")
        load_result = json.loads(out.strip().splitlines()[-1])
        published = int(load_result["readings"]) + len(probes)
        log(f"load done: {load_result}")
        # wait for the workers to drain (or stall)
        last, stall = -1, time.time()
        while True:
            processed = sum(worker_metrics(w.url).get("readings", 0) for w in pipe.workers)
            if processed >= published:
                break
            if processed != last:
                last, stall = processed, time.time()
            elif time.time() - stall > 20:
                break
            time.sleep(0.5)
        t_end = time.time()
        cpu = sum(cpu_seconds(w.proc.pid) - c for w, c in zip(pipe.workers, cpu0, strict=True))
        time.sleep(2)
        follower.stop_flag.set()
        metrics = [worker_metrics(w.url) for w in pipe.workers]
        bridge = bridge_metrics(pipe)
        pub.loop_stop()
    lat = (
        np.array(
            [follower.first_seen[z] - t for z, t in sent_at.items() if z in follower.first_seen]
        )
        * 1000
    )
    result = {
        "stations": args.stations,
        "target_rate": args.rate,
        "published_readings": published,
        "publish_rate": load_result.get("achieved_rate"),
        "processed_readings": processed,
        "readings_per_s": round(processed / (t_end - t0), 1),
        "worker_cpu_s": round(cpu, 2),
        "readings_per_worker_cpu_s": round(processed / cpu, 1) if cpu else None,
        "detector_lag_ms_p50": metrics[0].get("lag_ms_p50"),
        "detector_lag_ms_p99": metrics[0].get("lag_ms_p99"),
        "alert_latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "alert_latency_ms_p95": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
        "alert_latency_ms_p99": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "probes": len(probes),
        "probe_alerts": len(lat),
        "consumer_lag_end": published - processed,
        "lost": max(0, published - processed),
        "duplicated_readings": max(0, processed - published),  # processed twice (net)
        "detector_duplicates_dropped": sum(m.get("detector_duplicate", 0) for m in metrics),
        # the same alert event (event id) on `alerts` twice
        "duplicated_alerts": sum(n - 1 for n in follower.transitions.values()),
        "bridge_rejected": bridge.get("rejected_total", bridge.get("rejected")),
        "bridge_duplicates": bridge.get("duplicates"),
        "workers": args.workers,
        "state_checkpoint_s": args.checkpoint_s,
    }
    print(json.dumps(result))


def bridge_metrics(pipe: Any) -> dict[str, Any]:
    with urllib.request.urlopen(pipe.bridge.url + "/metrics?format=json", timeout=5) as r:
        return dict(json.loads(r.read()))


def run_drain(args: argparse.Namespace, stack: Stack, tmp: Path, registry: Path) -> None:
    """Capacity: a backlog of ``--drain`` readings in ``readings``, then the workers."""
    settings = bench_settings(stack, tmp, registry, args.checkpoint_s)
    n = args.drain
    log(f"backlog of {n} readings at {args.rate:.0f}/s")
    with start_local_pipeline(settings, workers=0, logs=tmp / "logs") as pipe:
        load = start_load(settings, args, n / args.rate)
        out, _ = load.communicate(timeout=n / args.rate + 600)
        published = int(json.loads(out.strip().splitlines()[-1])["readings"])
        deadline = time.time() + 300
        while (b := bridge_metrics(pipe))["readings_produced"] + b["rejected_total"] + b[
            "duplicates"
        ] < published:
            if time.time() > deadline:
                raise SystemExit(f"bridge forwarded {b['readings_produced']} of {published}")
            time.sleep(0.5)
        log(
            f"backlog in Kafka: {published} readings in {b['records_produced']} records "
            f"({published / max(1, b['records_produced']):.0f} per record); starting worker(s)"
        )
        for _ in range(args.workers):
            pipe.start_worker(wait=False)
        samples: list[tuple[float, int, float]] = []  # (time, processed, worker CPU s)
        last, stall = -1, time.time()
        while True:
            time.sleep(0.5)
            try:
                ms = [worker_metrics(w.url) for w in pipe.workers]
            except RuntimeError:
                if time.time() - stall > 120:
                    raise
                continue
            processed = sum(m.get("readings", 0) for m in ms)
            cpu = sum(cpu_seconds(w.proc.pid) for w in pipe.workers)  # since they started
            samples.append((time.time(), processed, cpu))
            if len(samples) % 10 == 0:
                log(f"drained {processed}/{published} readings, worker CPU {cpu:.1f} s")
            if processed >= published:
                break
            if processed != last:
                last, stall = processed, time.time()
            elif time.time() - stall > 60:
                log("workers stalled")
                break
        deadline = time.time() + 120  # the InfluxDB sink writes behind the detectors
        while time.time() < deadline and any(m.get("influx_buffered", 0) for m in ms):
            time.sleep(0.5)
            ms = [worker_metrics(w.url) for w in pipe.workers]
        batch_mean = ms[0].get("batch_size_mean")
        det_s = sum(float(m.get("detector_s_total", 0.0)) for m in ms)
    if not samples or samples[-1][1] < 0.1 * published:
        raise SystemExit(f"the workers processed {processed} of {published} readings: stalled")
    lo = next(s for s in samples if s[1] >= 0.1 * published)
    hi = next((s for s in samples if s[1] >= 0.9 * published), samples[-1])
    d_n, d_t, d_cpu = hi[1] - lo[1], hi[0] - lo[0], hi[2] - lo[2]
    result = {
        "mode": "drain",
        "stations": args.stations,
        "published_readings": published,
        "processed_readings": processed,
        "readings_per_record": round(published / max(1, b["records_produced"]), 1),
        "worker_batch_size_mean": batch_mean,
        "readings_per_s": round(d_n / d_t, 1) if d_t else None,
        "worker_cpu_s": round(d_cpu, 2),
        "readings_per_worker_cpu_s": round(d_n / d_cpu, 1) if d_cpu else None,
        "detector_share_of_worker_cpu": round(det_s / samples[-1][2], 3)
        if samples[-1][2]
        else None,
        "lost": max(0, published - processed),
        "influx_lines_written": sum(int(m.get("influx_written_total", 0)) for m in ms),
        "influx_lines_dropped": sum(int(m.get("influx_dropped_total", 0)) for m in ms),
        "workers": args.workers,
        "state_checkpoint_s": args.checkpoint_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
