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
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gyeongbo.settings import Settings, StackSettings, Topics, WorkerSettings
from gyeongbo.stack.procs import free_port
from gyeongbo.stack.stack import Stack
from gyeongbo.topics import create_topics
from simulators.load import LoadPlan, synthetic_registry
from streams.pipeline import settings_env, start_local_pipeline


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
    doc["gateways"].append({"id": "bench-probe", "name": "benchmark probe gauges"})
    for i, zone in enumerate(probes):
        doc["stations"].append(
            {
                "id": f"PROBE{i:04d}",
                "kind": "water_level",
                "name": f"탐침 {i}",
                "name_en": f"probe gauge {i}",
                "lat": 37.0,
                "lon": 127.0,
                "gateway": "bench-probe",
                "interval_s": 600,
                "zones": [zone],
                "levels": {"caution": 1.0, "alert": 2.0, "serious": 3.0},
            }
        )
    path.write_text(json.dumps(doc, ensure_ascii=False))


def bench_settings(stack: Stack, tmp: Path, registry: Path, checkpoint_s: float) -> Settings:
    uid = uuid.uuid4().hex[:8]
    base = stack.app_settings()
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
                    "sent_log": tmp / "sent.sqlite",
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
                        zone = json.loads(r.value)["zone"]
                        self.first_seen.setdefault(zone, now)
        finally:
            await c.stop()


def worker_metrics(url: str) -> dict[str, Any]:
    for _ in range(6):  # a worker busy writing a checkpoint may answer late
        try:
            with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
                return dict(json.loads(r.read()))
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"worker at {url} does not answer /metrics")


def cpu_seconds(pid: int) -> float:
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pid:  # same process group as the worker
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


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
    if args.stack_home:
        stack = Stack(config=StackSettings(home=args.stack_home), settings=Settings(_env_file=None))
        stack.load()
        own_stack = False
    else:
        from gyeongbo.stack.procs import free_port as fp

        cfg = StackSettings(
            home=tmp / "stack",
            broker=args.broker,
            mqtt_port=fp(),
            kafka_port=fp(),
            influxd_port=fp(),
            influx_compat_port=fp(),
            fake_twilio_port=fp(),
        )
        stack = Stack(config=cfg, settings=Settings(_env_file=None))
        log(f"starting a private stack under {cfg.home}")
        stack.up(report=log)
        own_stack = True
    try:
        run(args, stack, tmp)
    finally:
        if own_stack:
            stack.down()


def run(args: argparse.Namespace, stack: Stack, tmp: Path) -> None:
    registry = tmp / "registry.json"
    base = stack.app_settings()
    probes = municipality_codes(base, args.probes)
    write_registry(registry, args.stations, probes)
    settings = bench_settings(stack, tmp, registry, args.checkpoint_s)
    log(f"registry: {args.stations} synthetic stations + {len(probes)} probe gauges")
    with start_local_pipeline(settings, workers=args.workers, logs=tmp / "logs") as pipe:
        follower = AlertFollower(settings)
        follower.start()
        follower.ready.wait(30)
        log(
            f"pipeline up: bridge + {len(pipe.workers)} worker(s); load {args.rate:.0f}/s "
            f"for {args.duration:.0f}s"
        )
        env = {**os.environ, **settings_env(settings)}
        load = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gyeongbo.cli",
                "simulate",
                "load",
                "--stations",
                str(args.stations),
                "--rate",
                str(args.rate),
                "--duration",
                str(args.duration),
                "--batch-size",
                str(args.batch_size),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        cpu0 = [cpu_seconds(w.proc.pid) for w in pipe.workers]
        t0 = time.time()
        pub = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:6]}"
        )
        pub.connect(settings.mqtt.host, settings.mqtt.port)
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
        with urllib.request.urlopen(pipe.bridge.url + "/metrics", timeout=5) as r:  # type: ignore[union-attr]
            bridge = json.loads(r.read())
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
        "bridge_rejected": bridge.get("rejected_total", bridge.get("rejected")),
        "bridge_duplicates": bridge.get("duplicates"),
        "workers": args.workers,
        "state_checkpoint_s": args.checkpoint_s,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
