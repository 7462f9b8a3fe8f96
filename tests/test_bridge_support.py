"""Helpers shared by the bridge tests (no tests here): isolated topic roots, publishers,
reading `readings`/`readings.rejected` from recorded offsets, a bridge subprocess.

Isolation: every test gets its own MQTT topic root (``t<hex>/gyeongbo/v1/readings``) and
bridge client id, so bridges of other tests never see its messages; it reads Kafka from the
end offsets it recorded before publishing, and identifies its readings by a seq base unique
to the test.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaConsumer, TopicPartition  # type: ignore[import-untyped,unused-ignore]
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from gyeongbo.batch import ReadingBatch
from gyeongbo.settings import Settings
from gyeongbo.stack.procs import free_port
from gyeongbo.stack.stack import Stack
from streams.codec import decode_batch
from tests import kafka_helpers

REPO = Path(__file__).resolve().parent.parent


def unique_root() -> str:
    return f"t{uuid.uuid4().hex[:10]}/gyeongbo/v1/readings"


def seq_base() -> int:
    """A seq range no other test uses (µs since the epoch × 1000)."""
    return (time.time_ns() // 1000) * 1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def bridge_settings(
    stack: Stack, root: str, client_id: str | None = None, **mqtt_extra: Any
) -> Settings:
    s = stack.app_settings()
    mq = type(s.mqtt).model_validate(
        {
            **s.mqtt.model_dump(),
            "topic_root": root,
            "client_id": client_id or f"bridge-{uuid.uuid4().hex[:8]}",
            **mqtt_extra,
        }
    )
    return s.model_copy(update={"mqtt": mq})


def publisher(port: int, username: str | None = None, password: str | None = None) -> mqtt.Client:
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"pub-{uuid.uuid4().hex[:8]}",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    c.max_inflight_messages_set(200)
    if username:
        c.username_pw_set(username, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def publish_all(
    c: mqtt.Client, msgs: Iterable[tuple[str, bytes | str]], timeout_s: float = 60
) -> None:
    """Publish at QoS 1 and wait until the broker acknowledged every message."""
    infos = [c.publish(t, p, qos=1) for t, p in msgs]
    deadline = time.monotonic() + timeout_s
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        assert info.is_published(), "broker did not acknowledge a QoS 1 publish"


def reading(station: str, seq: int | None, ts: int | str, **values: float) -> dict[str, Any]:
    r: dict[str, Any] = {"station": station, "ts": ts, "values": values}
    if seq is not None:
        r["seq"] = seq
    return r


# -- Kafka -------------------------------------------------------------------------------------
def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    return asyncio.run(kafka_helpers.end_offsets(bootstrap, topic))


@dataclass
class Rec:
    partition: int
    key: bytes | None
    value: bytes


async def _consume(
    bootstrap: str,
    topic: str,
    offsets: dict[int, int],
    done: Callable[[list[Rec]], bool],
    timeout_s: float,
) -> list[Rec]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await c.start()
    out: list[Rec] = []
    try:
        tps = [TopicPartition(topic, p) for p in sorted(offsets)]
        c.assign(tps)
        for tp in tps:
            c.seek(tp, offsets[tp.partition])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = await c.getmany(timeout_ms=300)
            for tp, recs in got.items():
                out.extend(Rec(tp.partition, r.key, r.value) for r in recs)
            if done(out):
                break
        return out
    finally:
        await c.stop()


def consume(
    bootstrap: str,
    topic: str,
    offsets: dict[int, int],
    done: Callable[[list[Rec]], bool],
    timeout_s: float = 30.0,
) -> list[Rec]:
    """Records after ``offsets`` until ``done(records)`` or the timeout."""
    return asyncio.run(_consume(bootstrap, topic, offsets, done, timeout_s))


def batches(recs: list[Rec]) -> list[tuple[Rec, ReadingBatch]]:
    return [(r, decode_batch(r.value)) for r in recs]


def seqs_at_least(recs: list[Rec], base: int) -> list[int]:
    out: list[int] = []
    for _, b in batches(recs):
        out.extend(int(s) for s in b.seq if s >= base)
    return out


def rejected_docs(recs: list[Rec], root: str) -> list[dict[str, Any]]:
    docs = [json.loads(r.value) for r in recs]
    return [d for d in docs if d["topic"].startswith(root.split("/", 1)[0] + "/")]


# -- the bridge as a subprocess ----------------------------------------------------------------
@dataclass
class BridgeProc:
    proc: subprocess.Popen[bytes]
    metrics_port: int
    log: Path

    def metrics(self) -> dict[str, Any]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics?format=json", timeout=2
        ) as r:
            return dict(json.loads(r.read()))

    def wait_ready(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if self.metrics()["ready"]:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"bridge not ready:\n{self.log.read_text()}")

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def start_bridge_proc(stack: Stack, root: str, client_id: str, log: Path, **env: str) -> BridgeProc:
    port = free_port()
    full_env = {
        **os.environ,
        **stack.env(),
        "GYEONGBO_MQTT__TOPIC_ROOT": root,
        "GYEONGBO_MQTT__CLIENT_ID": client_id,
        "GYEONGBO_BRIDGE__METRICS_PORT": str(port),
        "GYEONGBO_BRIDGE__LOG_INTERVAL_S": "5",
        **env,
    }
    out = open(log, "ab")  # noqa: SIM115 - owned by the child
    p = subprocess.Popen(
        [sys.executable, "-m", "streams.bridge_cli", "run"],
        env=full_env,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out.close()
    bp = BridgeProc(p, port, log)
    bp.wait_ready()
    return bp
