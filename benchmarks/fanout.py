"""Mass-notification benchmark: one nationwide quake to 100,000 subscribers in PostgreSQL.

Not a test: run on demand; progress on stderr, one JSON object on the last line::

    python benchmarks/fanout.py --subscribers 100000 [--kill-at 0.5]

What it does:

1. starts a private local stack (mosquitto, Kafka-protocol broker, influxd, the fake Twilio,
   and the stack's own PostgreSQL cluster) under a temporary folder, on free ports;
2. writes ``--subscribers`` subscribers into PostgreSQL, spread over the 17 provinces (half
   located at a point, half subscribed to their province), indexed by geo as an import is;
3. sets the fake Twilio to answer in ``--latency-ms`` (default 50–150 ms) with no status
   callbacks, and a 429 burst of ``--burst`` requests after ``--burst-after`` of them;
4. starts a bridge and a worker (``delivery.max_in_flight`` = ``--max-in-flight``) and
   publishes one catalogue reading of an M5.8 quake through MQTT: a 긴급재난문자 (경계) in
   every province, so every subscriber gets exactly one message;
5. with ``--kill-at F``, SIGKILLs the worker once a fraction F of the messages reached the
   fake, and starts it again (same static member id, as a supervisor would);
6. waits until every subscriber has a message (or ``--timeout-s``), then counts per handset
   at the fake: ``duplicates`` (messages beyond one per person) and ``missed``.

``submit_s`` is from the reading's MQTT publish to the last message the fake accepted;
``latency_ms_p50``/``p99`` are the worker's own request latencies (after a kill, the
restarted worker's); ``max_in_flight`` is the most concurrent requests the fake saw.
``cpu_s`` / ``cpu_ms_per_message``: CPU seconds (user + system) each process spent from just
before the publish to the end, and per message submitted: the fake Twilio, the worker (a
killed worker's up to the kill, plus its replacement's), PostgreSQL (postmaster and
backends), the broker (``kafka``), the bridge, mosquitto, influxd and this driver;
``cpu_ms_per_message_total`` sums them. The machine's other work does not count in them,
so they compare across runs where wall-clock figures cannot (paired runs still: a
crowded machine makes each instruction dearer). ``worker_cpu_s`` is the worker's CPU since
it started (startup included), as printed before these fields.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.proc_cpu import group_cpu_s
from geo.zones import ZoneKind
from gyeongbo.settings import Settings, StackSettings, Topics, WorkerSettings
from gyeongbo.stack.procs import free_port
from gyeongbo.stack.stack import Stack
from gyeongbo.topics import create_topics
from simulators.publisher import gateway_publisher
from streams.config_files import load_zones
from streams.pipeline import start_local_pipeline
from streams.store import Subscriber, open_store
from streams.store.indexing import indexed

QUAKE = {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15.0}


def log(msg: str) -> None:
    print(f"[fanout-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def http(
    url: str, body: dict[str, Any] | None = None, timeout: float = 30.0, token: str | None = None
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET", headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def subscribers(n: int) -> list[Subscriber]:
    zones = load_zones()
    provinces = list(zones.of_kind(ZoneKind.PROVINCE))
    points = {p: zones[p].geometry.representative_point() for p in provinces}
    rng = random.Random(20161912)
    subs = []
    for i in range(n):
        p = provinces[i % len(provinces)]
        located = i % 2 == 0
        rp = points[p]
        subs.append(
            Subscriber(
                id=f"bench-{i:06d}",
                phone=f"+8210{60000000 + i:08d}",
                lat=round(rp.y + rng.uniform(-0.005, 0.005), 5) if located else None,
                lon=round(rp.x + rng.uniform(-0.005, 0.005), 5) if located else None,
                declared_zones=() if located else (p,),
                hazards=("earthquake",),
                consent_ms=1_700_000_000_000,
            )
        )
    return indexed(subs, zones)


def bench_settings(stack: Stack, tmp: Path, max_in_flight: int) -> Settings:
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
                app_id=f"fanout-{uid}",
                web_port=free_port(),
                data_dir=tmp / "worker",
                log_every_s=5.0,
            ),
            "paths": base.paths.model_copy(update={"cap_feed": tmp / "cap"}),
            "mqtt": base.mqtt.model_copy(
                update={"client_id": f"bridge-{uid}", "topic_root": f"f{uid}/gyeongbo/v1/readings"}
            ),
            "delivery": base.delivery.model_copy(update={"max_in_flight": max_in_flight}),
            "store": base.store.model_copy(update={"seed_recipients": None}),
            "operator": base.operator.model_copy(update={"tokens_file": tmp / "tokens.json"}),
        }
    )


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """This driver's CPU seconds (not its children's: the stack is counted per group)."""
    t = os.times()
    return t.user + t.system


class CpuMeter:
    """CPU seconds per process between :meth:`start` and :meth:`stop`, per group; a worker
    SIGKILLed in between is sampled just before (:meth:`sample`), its replacement from 0."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = dict(groups)
        self.spent: dict[str, float] = dict.fromkeys([*groups, "driver"], 0.0)
        self._base: dict[str, float] = {}

    def start(self) -> None:
        self._base = {**group_cpu_s(self.groups), "driver": own_cpu_s()}

    def sample(self, name: str) -> None:
        """Bank ``name``'s CPU so far (before it is killed)."""
        now = group_cpu_s({name: self.groups[name]})[name]
        self.spent[name] += now - self._base.get(name, 0.0)
        self._base[name] = now

    def replace(self, name: str, pgid: int) -> None:
        self.groups[name] = pgid
        self._base[name] = 0.0

    def stop(self) -> dict[str, float]:
        now = {**group_cpu_s(self.groups), "driver": own_cpu_s()}
        for k, v in now.items():
            self.spent[k] += v - self._base.get(k, 0.0)
        return self.spent


def viewer_token(settings: Settings) -> str:
    """A viewer's token in the worker's tokens file (as ``gyeongbo operators add``)."""
    from streams.operators import TokenStore

    path = settings.operator.tokens_file
    store = TokenStore.load(path)
    token, _ = store.issue("fanout-bench", "viewer", now_ms=int(time.time() * 1000))
    store.save(path)
    return str(token)


def publish_quake(settings: Settings) -> float:
    topic = f"{settings.mqtt.topic_root}/seismic/KMA-GYEONGJU-ACC"
    now = time.time()
    payload = {
        "station": "KMA-GYEONGJU-ACC",
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now)),
        "seq": int(now * 1000),
        "values": {"pga_g": 0.0004},
        "event": QUAKE,
    }
    # As the station's own gateway, on the gateways' listener (the stack admits no
    # anonymous client; its development passwords are under the stack's home).
    pub = gateway_publisher(settings, "kma-seismic")
    pub.connect()
    t0 = time.time()
    pub.publish(topic, json.dumps(payload).encode())
    pub.flush()
    pub.close()
    return t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--subscribers", type=int, default=100_000)
    ap.add_argument("--max-in-flight", type=int, default=100)
    ap.add_argument("--latency-ms", default="50-150", help="the fake's answer time, min-max")
    ap.add_argument("--burst", type=int, default=300, help="429 answers in the burst (0: none)")
    ap.add_argument("--burst-after", type=int, default=None, help="default: a third of the way")
    ap.add_argument(
        "--kill-at", type=float, default=None, help="SIGKILL the worker at this fraction"
    )
    ap.add_argument("--timeout-s", type=float, default=600.0)
    ap.add_argument("--keep", action="store_true", help="keep the stack folder")
    args = ap.parse_args()
    # SIGTERM (or a timeout) stops the pipeline and the private stack too, not only this script
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n = args.subscribers
    lo, _, hi = args.latency_ms.partition("-")
    tmp = Path(tempfile.mkdtemp(prefix="gyeongbo-fanout-"))
    ports = [free_port() for _ in range(6)]
    stack = Stack(
        config=StackSettings(
            home=tmp / "stack",
            mqtt_port=ports[0],
            kafka_port=ports[1],
            influxd_port=ports[2],
            influx_compat_port=ports[3],
            fake_twilio_port=ports[4],
            postgres=True,
            postgres_port=ports[5],
        ),
        settings=Settings(_env_file=None),
    )
    log(f"starting a private stack under {tmp}")
    stack.up(report=lambda m: log(f"stack: {m}"))
    try:
        settings = bench_settings(stack, tmp, args.max_in_flight)
        store = open_store(settings.store.url.get_secret_value())
        store.migrate()
        t = time.monotonic()
        subs = subscribers(n)
        log(f"indexed {n} subscribers in {time.monotonic() - t:.1f}s; writing to PostgreSQL")
        for i in range(0, n, 20_000):
            store.upsert(subs[i : i + 20_000], now_ms=0)
        log(f"store holds {store.count()} subscribers ({time.monotonic() - t:.1f}s)")
        fake = stack.twilio_url
        http(fake + "/_fake/reset", {})
        http(
            fake + "/_fake/config", {"latency_ms": [float(lo), float(hi or lo)], "callbacks": False}
        )
        if args.burst:
            after = n // 3 if args.burst_after is None else args.burst_after
            http(fake + "/_fake/burst", {"count": args.burst, "after": after})
        with start_local_pipeline(settings, static_membership=True) as pipe:
            groups = {name: p.pid for name, p in stack.procs.items()}
            assert pipe.bridge is not None
            groups["bridge"] = pipe.bridge.proc.pid
            groups["worker"] = pipe.workers[0].proc.pid
            meter = CpuMeter(groups)
            log("pipeline up; publishing the M5.8 catalogue reading through MQTT")
            meter.start()
            t0 = publish_quake(settings)
            killed = False
            last = 0
            worker_cpu = 0.0
            deadline = time.monotonic() + args.timeout_s
            while time.monotonic() < deadline:
                time.sleep(1.0)
                st = http(fake + "/_fake/stats?per_to=0")  # counts only: cheap for the fake
                done = st["handsets"]
                log(
                    f"{done}/{n} handsets ({done - last}/s), in flight at the fake "
                    f"{st['in_flight']} (max {st['max_in_flight']}), 429s {st['rate_limited']}, "
                    f"replays {st['replays']}"
                )
                last = done
                if args.kill_at is not None and not killed and done >= args.kill_at * n:
                    log("SIGKILL the worker, and start it again")
                    worker_cpu += cpu_s(pipe.workers[0].proc.pid)
                    meter.sample("worker")
                    pipe.workers[0].kill()
                    pipe.start_worker(0)
                    meter.replace("worker", pipe.workers[0].proc.pid)
                    killed = True
                if done >= n:
                    break
            time.sleep(2.0)  # a duplicate, if any, would come right behind
            worker_cpu += cpu_s(pipe.workers[0].proc.pid)
            spent = meter.stop()
            st = http(fake + "/_fake/stats")
            metrics = http(pipe.workers[0].url + "/metrics")
            sums = http(pipe.workers[0].url + "/deliveries", token=viewer_token(settings))
        per = st["per_to"]
        ours = [v for k, v in per.items() if k.startswith("+821060")]
        submit_s = (st["last_created"] - t0) if st["last_created"] else None
        result = {
            "recipients": n,
            "messages": sum(ours),
            "submit_s": None if submit_s is None else round(submit_s, 2),
            "submitted_per_s": None if not submit_s else round(sum(ours) / submit_s, 1),
            "latency_ms_p50": metrics.get("sms_latency_ms_p50"),
            "latency_ms_p99": metrics.get("sms_latency_ms_p99"),
            "duplicates": sum(v - 1 for v in ours if v > 1),
            "missed": n - len(ours),
            "max_in_flight": st["max_in_flight"],
            "max_in_flight_setting": args.max_in_flight,
            "rate_limited_429": st["rate_limited"],
            "rate_limit_cuts": metrics.get("sms_rate_limit_cuts"),
            "replays": st["replays"],
            "killed": killed,
            "worker_cpu_s": round(worker_cpu, 1),
            "worker_cpu_ms_per_message": round(1000 * worker_cpu / max(1, sum(ours)), 3),
            "cpu_s": {k: round(v, 2) for k, v in spent.items()},
            "cpu_ms_per_message": {
                k: round(1000 * v / max(1, sum(ours)), 3) for k, v in spent.items()
            },
            "cpu_ms_per_message_total": round(1000 * sum(spent.values()) / max(1, sum(ours)), 3),
            "resumed": metrics.get("sms_resumed", 0),
            "fake_latency_ms": [float(lo), float(hi or lo)],
            "event": sums[0] if sums else None,
        }
    finally:
        stack.down()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result, ensure_ascii=False))


if __name__ == "__main__":
    main()
