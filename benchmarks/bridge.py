"""Benchmark: MQTT → Kafka bridge throughput and loss (docs/design.md §8: ≥ 20,000 readings/s).

Not a test. Three processes: the bridge (``python -m streams.bridge_cli run``), a publisher
(this script with ``--publish``, so publishing does not share the bridge's interpreter) and
this orchestrator, which times the run and afterwards reads every record back from
``readings`` to count what arrived.

* ``--mode batch``: gateway batches (``--batch-size`` readings per message, default 500) on
  the per-gateway batch topics ``{kind}/_batch/{gateway}``, QoS 1.
* ``--mode single``: one reading per MQTT message on ``{kind}/{station}``, QoS 1.
* ``--mode both``: batch, then single.

Timing: from the publisher's first publish to the moment the bridge reports (``/metrics``)
that Kafka has accepted all N readings — so it includes MQTT, validation, encoding and the
Kafka round trip. ``lost`` = readings published (and acknowledged by mosquitto) that are not
in Kafka, found by decoding every record written during the run.

Uses a running stack with ``--stack-home DIR`` (``gyeongbo stack up``), else starts a private
mosquitto + Kafka-protocol broker under a temporary folder and stops them at the end.
Progress goes to stderr; the last line on stdout is one JSON object, e.g.
``{"readings_per_s": 23000, "lost": 0, "rejected": 0, "mode": "batch", …}``.

    python benchmarks/bridge.py --mode both --n 200000 --single-n 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def progress(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- payloads -------------------------------------------------------------------------------
def _groups() -> list[tuple[str, str, list[str], dict[str, float]]]:
    """(kind, gateway, stations, values) per gateway and kind, from the registry."""
    from gyeongbo.registry import load_registry
    from gyeongbo.settings import Settings

    reg = load_registry(Settings().paths.stations)
    sample = {
        "water_level": {"level_m": 3.2},
        "rainfall": {"rain_mm": 4.5, "interval_s": 600.0},
        "air_quality": {"pm10_ugm3": 48.0, "pm25_ugm3": 21.0, "o3_ppm": 0.031},
        "structural": {"tilt_rad": 0.0004, "crack_mm": 0.3, "vibration_cms": 0.05},
        "seismic": {"pga_g": 0.001},
    }
    groups: dict[tuple[str, str], list[str]] = {}
    for st in reg.stations.values():
        groups.setdefault((st.kind.value, st.gateway), []).append(st.id)
    return [(k, g, sorted(ids), sample[k]) for (k, g), ids in sorted(groups.items())]


def make_messages(
    root: str, mode: str, n: int, batch_size: int, base: int
) -> list[tuple[str, str, bytes]]:
    """(gateway, topic, payload): each message is published as its station's gateway."""
    ts = time.time_ns() // 1_000_000
    groups = _groups()
    msgs: list[tuple[str, str, bytes]] = []
    seq = base
    if mode == "single":
        flat = [(k, gw, sid, vals) for k, gw, ids, vals in groups for sid in ids]
        for i in range(n):
            kind, gw, sid, vals = flat[i % len(flat)]
            doc = {"station": sid, "ts": ts, "seq": seq, "values": vals}
            msgs.append((gw, f"{root}/{kind}/{sid}", json.dumps(doc).encode()))
            seq += 1
        return msgs
    g = 0
    left = n
    while left > 0:
        kind, gw, ids, vals = groups[g % len(groups)]
        g += 1
        size = min(batch_size, left)
        items = [
            {"station": ids[j % len(ids)], "ts": ts, "seq": seq + j, "values": vals}
            for j in range(size)
        ]
        seq += size
        left -= size
        msgs.append((gw, f"{root}/{kind}/_batch/{gw}", json.dumps(items).encode()))
    return msgs


# -- the publisher process ----------------------------------------------------------------------
def publisher_main(args: argparse.Namespace) -> None:
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    msgs = make_messages(args.root, args.mode, args.n, args.batch_size, args.base)
    acked = 0
    done = threading.Event()
    lock = threading.Lock()

    def on_publish(*_: Any) -> None:
        nonlocal acked
        with lock:
            acked += 1
            if acked == len(msgs):
                done.set()

    from gyeongbo.settings import Settings
    from gyeongbo.stack.credentials import mqtt_password

    settings = Settings()
    clients: dict[str, Any] = {}
    for gw in sorted({gw for gw, _, _ in msgs}):  # one connection per gateway, as in service
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=gw, protocol=MQTTProtocolVersion.MQTTv5
        )
        c.username_pw_set(gw, mqtt_password(settings, gw))
        c.max_inflight_messages_set(args.pub_inflight)
        c.max_queued_messages_set(0)
        c.on_publish = on_publish
        c.connect("127.0.0.1", args.mqtt_port)
        c.loop_start()
        clients[gw] = c
    print(json.dumps({"ready": len(msgs)}), flush=True)
    sys.stdin.readline()  # go
    t0 = time.time()
    for gw, topic, payload in msgs:
        clients[gw].publish(topic, payload, qos=1)
    t_sent = time.time()
    ok = done.wait(600)
    t_acked = time.time()
    for c in clients.values():
        c.loop_stop()
        c.disconnect()
    print(
        json.dumps(
            {
                "t0": t0,
                "publish_s": t_sent - t0,
                "acked_s": t_acked - t0,
                "all_acked": ok,
                "messages": len(msgs),
            }
        ),
        flush=True,
    )


# -- orchestration ------------------------------------------------------------------------------
def metrics(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?format=json", timeout=5) as r:
        return dict(json.loads(r.read()))


async def _end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic) or set()
        ends = await c.end_offsets([TopicPartition(topic, p) for p in sorted(parts)])
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await c.stop()


async def _read_seqs(
    bootstrap: str, topic: str, start: dict[int, int], end: dict[int, int], base: int
) -> tuple[set[int], int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streams.codec import decode_batch

    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await c.start()
    seen: set[int] = set()
    total = 0
    try:
        tps = [TopicPartition(topic, p) for p in sorted(end) if end[p] > start.get(p, 0)]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, start.get(tp.partition, 0))
        todo = {tp.partition for tp in tps}
        deadline = time.monotonic() + 120
        while todo and time.monotonic() < deadline:
            got = await c.getmany(timeout_ms=500)
            for tp, recs in got.items():
                for r in recs:
                    b = decode_batch(r.value)
                    s = b.seq[b.seq >= base]
                    total += len(s)
                    seen.update(s.tolist())
                    if r.offset + 1 >= end[tp.partition]:
                        todo.discard(tp.partition)
        return seen, total
    finally:
        await c.stop()


def run_mode(
    mode: str,
    n: int,
    args: argparse.Namespace,
    mqtt_port: int,
    bridge_port: int,
    bootstrap: str,
    env: dict[str, str],
) -> dict[str, Any]:
    from gyeongbo.stack.procs import free_port

    root = f"bench{uuid.uuid4().hex[:8]}/gyeongbo/v1/readings"
    base = (time.time_ns() // 1000) * 1000
    mport = free_port()
    benv = {
        **os.environ,
        **env,
        "GYEONGBO_MQTT__PORT": str(bridge_port),
        "GYEONGBO_KAFKA__BOOTSTRAP": bootstrap,
        "GYEONGBO_MQTT__TOPIC_ROOT": root,
        "GYEONGBO_MQTT__CLIENT_ID": f"bench-bridge-{uuid.uuid4().hex[:6]}",
        "GYEONGBO_BRIDGE__METRICS_PORT": str(mport),
        "GYEONGBO_BRIDGE__SESSION_EXPIRY_S": "60",
        "GYEONGBO_BRIDGE__LOG_INTERVAL_S": "0",
    }
    log = open(args.log_dir / f"bridge-{mode}.log", "wb")  # noqa: SIM115
    bridge = subprocess.Popen(
        [sys.executable, "-m", "streams.bridge_cli", "run", "--log-level", "WARNING"],
        env=benv,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    pub: subprocess.Popen[str] | None = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if metrics(mport)["ready"]:
                    break
            except OSError:
                pass
            if bridge.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bridge did not start; see {log.name}")
            time.sleep(0.1)
        start = asyncio.run(_end_offsets(bootstrap, "readings"))
        m0 = metrics(mport)
        progress(f"{mode}: generating {n} readings")
        pub = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--publish",
                "--mode",
                mode,
                "--n",
                str(n),
                "--batch-size",
                str(args.batch_size),
                "--root",
                root,
                "--base",
                str(base),
                "--mqtt-port",
                str(mqtt_port),
                "--pub-inflight",
                str(args.pub_inflight),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, **env},
        )
        assert pub.stdin is not None and pub.stdout is not None
        ready = json.loads(pub.stdout.readline())
        progress(f"{mode}: publishing {ready['ready']} MQTT messages")
        pub.stdin.write("go\n")
        pub.stdin.flush()
        t_go = time.time()
        last_print = time.monotonic()
        target = m0["readings_produced"] + n
        deadline = time.monotonic() + args.timeout
        m = m0
        while time.monotonic() < deadline:
            m = metrics(mport)
            if m["readings_produced"] + m["rejected_total"] - m0["rejected_total"] >= target:
                break
            if time.monotonic() - last_print > 2:
                done = m["readings_produced"] - m0["readings_produced"]
                progress(f"{mode}: {done}/{n} readings in Kafka after {time.time() - t_go:.1f} s")
                last_print = time.monotonic()
            time.sleep(0.02)
        t_done = time.time()
        pub_out = json.loads(pub.stdout.readline())
        pub.wait(60)
        elapsed = t_done - pub_out["t0"]
        end = asyncio.run(_end_offsets(bootstrap, "readings"))
        progress(f"{mode}: reading back {sum(end[p] - start.get(p, 0) for p in end)} records")
        seen, total = asyncio.run(_read_seqs(bootstrap, "readings", start, end, base))
        expected = set(range(base, base + n))
        lost = len(expected - seen)
        res = {
            "readings_per_s": round(n / elapsed) if lost == 0 else round((n - lost) / elapsed),
            "lost": lost,
            "rejected": m["rejected_total"] - m0["rejected_total"],
            "duplicates_in_kafka": total - len(seen & expected),
            "mode": mode,
            "n": n,
            "batch_size": args.batch_size if mode == "batch" else 1,
            "mqtt_messages": pub_out["messages"],
            "seconds": round(elapsed, 3),
            "publish_s": round(pub_out["publish_s"], 3),
            "records": sum(end[p] - start.get(p, 0) for p in end),
            "ack_lag_ms_last": m["ack_lag_ms"],
        }
        progress(f"{mode}: {json.dumps(res)}")
        return res
    finally:
        if pub is not None and pub.poll() is None:
            pub.kill()
        bridge.terminate()
        try:
            bridge.wait(20)
        except subprocess.TimeoutExpired:
            bridge.kill()
        log.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else "",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__,
    )
    ap.add_argument("--mode", choices=["batch", "single", "both"], default="batch")
    ap.add_argument("--n", type=int, default=200_000, help="readings in batch mode")
    ap.add_argument("--single-n", type=int, default=20_000, help="readings in single mode")
    ap.add_argument("--batch-size", type=int, default=500, help="readings per gateway batch")
    ap.add_argument(
        "--stack-home",
        type=Path,
        default=None,
        help="home of a running `gyeongbo stack up` (default: a private stack)",
    )
    ap.add_argument(
        "--broker",
        choices=["noida", "tansu"],
        default="noida",
        help="Kafka-protocol broker of a private stack",
    )
    ap.add_argument("--timeout", type=float, default=300.0, help="give up after this many s")
    ap.add_argument(
        "--pub-inflight",
        type=int,
        default=1000,
        help="publisher's max unacknowledged QoS 1 messages",
    )
    # internal: the publisher process
    ap.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--base", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--mqtt-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.publish:
        publisher_main(args)
        return

    from gyeongbo.settings import Settings, StackSettings
    from gyeongbo.stack.procs import free_port, port_open
    from gyeongbo.stack.stack import Stack

    private: Stack | None = None
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if args.stack_home:
        st = Stack(config=StackSettings(home=args.stack_home))
        st.load()
        if not st.healthy():
            sys.exit(f"stack at {args.stack_home} is not healthy: {st.status()}")
        mqtt_port, bootstrap = st.config.mqtt_port, st.kafka_bootstrap
        bridge_port = st.bridge_mqtt_port
        args.log_dir = st.home / "logs"
        progress(f"using the stack at {st.home}")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="gyeongbo-bench-", ignore_cleanup_errors=True)
        home = Path(tmp.name)
        cfg = StackSettings(
            home=home,
            broker=args.broker,
            mqtt_port=free_port(),
            mqtt_bridge_port=free_port(),
            kafka_port=free_port(),
        )
        private = Stack(config=cfg, settings=Settings(_env_file=None))
        progress(f"starting a private mosquitto + {args.broker} under {home}")
        private.start_mosquitto()  # authenticated gateways, the bridge's own listener
        private.start_broker()
        mqtt_port, bootstrap = cfg.mqtt_port, private.kafka_bootstrap
        bridge_port = private.bridge_mqtt_port
        args.log_dir = home / "logs"
    env = {"GYEONGBO_STACK__HOME": str(args.log_dir.parent)}
    try:
        results: dict[str, dict[str, Any]] = {}
        if args.mode in ("batch", "both"):
            results["batch"] = run_mode(
                "batch", args.n, args, mqtt_port, bridge_port, bootstrap, env
            )
        if args.mode in ("single", "both"):
            results["single"] = run_mode(
                "single", args.single_n, args, mqtt_port, bridge_port, bootstrap, env
            )
    finally:
        if private is not None:
            progress("stopping the private stack")
            kafka_port = private.config.kafka_port
            private.down()
            # the broker's own process may outlive its launcher for a moment (noida-db)
            deadline = time.monotonic() + 30
            while port_open(kafka_port) and time.monotonic() < deadline:
                time.sleep(0.1)
        if tmp is not None:
            tmp.cleanup()
    if args.mode == "both":
        b, s = results["batch"], results["single"]
        out = {
            "readings_per_s": b["readings_per_s"],
            "lost": b["lost"] + s["lost"],
            "rejected": b["rejected"] + s["rejected"],
            "mode": "both",
            "single_readings_per_s": s["readings_per_s"],
            "batch": b,
            "single": s,
        }
    else:
        out = results[args.mode]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
