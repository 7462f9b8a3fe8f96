"""No loss when the bridge is SIGKILLed mid-stream, or when the Kafka broker goes away."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gyeongbo.stack import mosquitto
from gyeongbo.stack.procs import free_port, port_open
from gyeongbo.stack.procs import stop as mq_stop
from gyeongbo.stack.stack import Stack
from streams.bridge import Bridge, run_in_thread
from streams.bridge_config import BridgeSettings
from tests.test_bridge_support import (
    Rec,
    batches,
    bridge_settings,
    consume,
    end_offsets,
    now_ms,
    publish_all,
    publisher,
    reading,
    seq_base,
    start_bridge_proc,
    unique_root,
)

pytestmark = pytest.mark.stack

AQ = ["111121", "111123", "111131", "111141", "111142", "111151", "111152", "111161"]


def stream(root: str, base: int, t: int, singles: int, batches_of_50: int) -> list[tuple[str, str]]:
    """Single-reading messages interleaved with gateway batches; seq = base + i, unique."""
    msgs: list[tuple[str, str]] = []
    seq = base
    for i in range(singles):
        sid = AQ[i % len(AQ)]
        msgs.append(
            (f"{root}/air_quality/{sid}", json.dumps(reading(sid, seq, t, pm10_ugm3=i % 900)))
        )
        seq += 1
        if i % (singles // max(1, batches_of_50)) == 0 and batches_of_50:
            items = [reading(AQ[j % len(AQ)], seq + j, t, pm25_ugm3=j) for j in range(50)]
            msgs.append((f"{root}/air_quality/_batch", json.dumps(items)))
            seq += 50
    return msgs


def paced_publisher(
    pub: mqtt.Client, msgs: list[tuple[str, str]], seconds: float
) -> threading.Thread:
    def main() -> None:
        step = max(1, len(msgs) // 100)
        for i in range(0, len(msgs), step):
            publish_all(pub, msgs[i : i + step])
            time.sleep(seconds / 100)

    th = threading.Thread(target=main, daemon=True)
    th.start()
    return th


def expected_seqs(msgs: list[tuple[str, str]]) -> set[int]:
    out: set[int] = set()
    for _, p in msgs:
        doc = json.loads(p)
        for r in doc if isinstance(doc, list) else [doc]:
            out.add(r["seq"])
    return out


def rows_by_seq(recs: list[Rec], base: int) -> list[tuple[int, str, int, float, float]]:
    out = []
    for _, b in batches(recs):
        pm10, pm25 = b.value("pm10_ugm3"), b.value("pm25_ugm3")
        for i in range(len(b)):
            if b.seq[i] >= base:
                out.append(
                    (
                        int(b.seq[i]),
                        str(b.station[i]),
                        int(b.ts_ms[i]),
                        float(pm10[i]),
                        float(pm25[i]),
                    )
                )
    return out


def assert_all_there_duplicates_identical(recs: list[Rec], base: int, want: set[int]) -> int:
    rows = rows_by_seq(recs, base)
    assert {r[0] for r in rows} == want, f"lost {len(want - {r[0] for r in rows})} readings"
    counts = Counter(r[0] for r in rows)
    first: dict[int, tuple[int, str, int, float, float]] = {}
    for r in rows:
        prev = first.setdefault(r[0], r)
        # a duplicate is the same reading again (same seq, station, time, values)
        assert str(prev) == str(r)
    return sum(c - 1 for c in counts.values())


def test_sigkill_mid_stream_and_restart_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    root, cid = unique_root(), f"bridge-{uuid.uuid4().hex[:8]}"
    base, t = seq_base(), now_ms()
    before = end_offsets(stack.kafka_bootstrap, "readings")
    log = tmp_path / "bridge.log"
    # A long linger keeps received, unacknowledged messages in the bridge at any moment, so
    # the kill always lands on some (an ack-on-receipt bridge loses them: this test fails).
    env = {"GYEONGBO_BRIDGE__LINGER_MS": "200"}
    bp = start_bridge_proc(stack, root, cid, log, **env)
    msgs = stream(root, base, t, singles=3000, batches_of_50=20)
    want = expected_seqs(msgs)
    pub = publisher(stack)
    th = paced_publisher(pub, msgs, seconds=3.0)
    try:
        deadline = time.monotonic() + 30
        while True:  # kill while messages are received but not yet acknowledged
            m = bp.metrics()
            if m["readings_produced"] >= 400 and m["inflight_messages"] >= 10:
                break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        bp.kill()
        killed_while_publishing = th.is_alive()
        time.sleep(0.5)
        bp = start_bridge_proc(stack, root, cid, log, **env)
        th.join(60)
        assert not th.is_alive()
        recs = consume(
            stack.kafka_bootstrap,
            "readings",
            before,
            lambda rs: {r[0] for r in rows_by_seq(rs, base)} >= want,
            timeout_s=30,
        )
        dups = assert_all_there_duplicates_identical(recs, base, want)
        after = bp.metrics()
        assert killed_while_publishing
        assert after["messages_received"] > 0  # the restarted bridge took over the session
        bp.terminate()  # SIGTERM: a clean stop
        assert bp.proc.returncode == 0, log.read_text()[-2000:]
        print(f"{len(want)} readings, {dups} duplicated by the crash (same seq)")
    finally:
        bp.terminate()
        pub.loop_stop()
        pub.disconnect()


def test_broker_stop_and_start_mid_stream_loses_nothing(stack: Stack) -> None:
    """Gateways keep publishing while the Kafka broker is stopped and started again.

    The broker is stopped at a moment the bridge has nothing in Kafka's hands, and the
    gateways' next messages are published only once the old broker process is gone: noida-db
    0.2.3 keeps answering produce requests for a moment after SIGTERM (while it saves its
    state, the more data the longer; ``stop()`` returns when its wrapper process exits) and
    loses what it acknowledged then — no client can see that. Everything the bridge does is
    still exercised: sends fail while the broker is down, nothing is acknowledged to MQTT, the
    failed records are re-sent when the broker is back, the stream resumes.
    """
    root = unique_root()
    base, t = seq_base(), now_ms()
    before = end_offsets(stack.kafka_bootstrap, "readings")
    cfg = BridgeSettings(
        _env_file=None,
        metrics_port=0,
        log_interval_s=0,
        request_timeout_ms=1000,
        retry_backoff_s=0.2,
    )
    bridge = Bridge(bridge_settings(stack, root), cfg)
    th_bridge = run_in_thread(bridge)
    msgs = stream(root, base, t, singles=1500, batches_of_50=15)
    third = len(msgs) // 3
    want = expected_seqs(msgs)
    pub = publisher(stack)

    def produced_all(phase: list[tuple[str, str]]) -> bool:
        return bridge.metrics.readings_produced >= len(expected_seqs(phase))

    try:
        publish_all(pub, msgs[:third])
        deadline = time.monotonic() + 30
        while not produced_all(msgs[:third]) or bridge.metrics.inflight_messages:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        stack.stop_broker()
        while port_open(stack.config.kafka_port):
            assert time.monotonic() < deadline + 30
            time.sleep(0.05)
        failures0, acked0 = bridge.metrics.kafka_send_failures, bridge.metrics.messages_acked
        th = paced_publisher(pub, msgs[third : 2 * third], seconds=1.0)  # while Kafka is down
        th.join(30)
        time.sleep(1.5)
        # Kafka is down: nothing is acknowledged to MQTT, the messages wait unacknowledged
        assert bridge.metrics.messages_acked == acked0
        assert bridge.metrics.inflight_messages > 0
        assert bridge.metrics.kafka_send_failures > failures0
        assert not bridge.metrics.kafka_ok
        stack.start_broker()
        publish_all(pub, msgs[2 * third :])
        recs = consume(
            stack.kafka_bootstrap,
            "readings",
            before,
            lambda rs: {r[0] for r in rows_by_seq(rs, base)} >= want,
            timeout_s=60,
        )
        assert_all_there_duplicates_identical(recs, base, want)
        assert bridge.metrics.kafka_ok
        # acks follow Kafka's confirmations: the last ones may land just after the records
        ack_deadline = time.monotonic() + 15
        while bridge.metrics.messages_acked < len(msgs) and time.monotonic() < ack_deadline:
            time.sleep(0.05)
        assert bridge.metrics.messages_acked == len(msgs)
    finally:
        if "kafka" not in stack.procs:
            stack.start_broker()
        pub.loop_stop()
        pub.disconnect()
        bridge.request_stop()
        th_bridge.join(30)


def test_mqtt_broker_restart_mid_stream_loses_nothing(stack: Stack, tmp_path: Path) -> None:
    """mosquitto restarts (persistence on): the bridge reconnects to its persistent session,
    gets the unacknowledged messages again, and acknowledges on the new connection only."""
    port = free_port()
    mq = mosquitto.start(tmp_path, port, name="mosquitto-restart")
    root = unique_root()
    base, t = seq_base(), now_ms()
    before = end_offsets(stack.kafka_bootstrap, "readings")
    cfg = BridgeSettings(_env_file=None, metrics_port=0, log_interval_s=0, linger_ms=100)
    bridge = Bridge(bridge_settings(stack, root, port=port), cfg)
    th_bridge = run_in_thread(bridge)
    msgs = stream(root, base, t, singles=1200, batches_of_50=12)
    want = expected_seqs(msgs)
    half = len(msgs) // 2
    pub = publisher(port)
    try:
        publish_all(pub, msgs[:half])
        mq_stop(mq.pid)  # usually with messages still lingering unacknowledged in the bridge
        while port_open(port):
            time.sleep(0.05)
        mq = mosquitto.start(tmp_path, port, name="mosquitto-restart")
        deadline = time.monotonic() + 30
        while not pub.is_connected():  # paho reconnects on its own
            assert time.monotonic() < deadline
            time.sleep(0.05)
        publish_all(pub, msgs[half:])  # paho re-sends what it had in flight, then the rest
        recs = consume(
            stack.kafka_bootstrap,
            "readings",
            before,
            lambda rs: {r[0] for r in rows_by_seq(rs, base)} >= want,
            timeout_s=60,
        )
        assert_all_there_duplicates_identical(recs, base, want)
        assert bridge._epoch == 2  # reconnected once
    finally:
        try:
            pub.loop_stop()
            pub.disconnect()
            bridge.request_stop()
            th_bridge.join(30)
        finally:
            mq_stop(mq.pid)
