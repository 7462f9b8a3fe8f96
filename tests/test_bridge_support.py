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
from gyeongbo.registry import load_registry
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


def _client(port: int, client_id: str, username: str | None, password: str | None) -> Any:
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )
    c.max_inflight_messages_set(200)
    if username:
        c.username_pw_set(username, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


class Gateways:
    """Publishes each message as the gateway whose topic it is, on the stack's gateways'
    listener (the stack's mosquitto refuses anonymous clients and holds each gateway to its
    topics): ``{kind}/{station}`` as the station's gateway, ``{kind}/_batch/{gateway}`` as
    that gateway, ``{kind}/_batch`` as the one gateway of the kind. Quacks like a paho client
    for :func:`publish_all`; refusals (PUBACK reason codes) are collected in ``refused``."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.registry = load_registry(stack.settings.paths.stations)
        self.clients: dict[str, Any] = {}
        self.refused: list[str] = []

    def owner(self, topic: str) -> str:
        parts = topic.split("/")
        if len(parts) >= 3 and parts[-2] == "_batch":
            return parts[-1]
        if parts[-1] == "_batch":
            kind = parts[-2]
            owners = {st.gateway for st in self.registry.stations.values() if st.kind == kind}
            if len(owners) == 1:
                return owners.pop()
        elif parts[-1] in self.registry.stations:
            return self.registry.stations[parts[-1]].gateway
        raise AssertionError(f"no gateway may publish on {topic!r}")

    def client(self, gateway: str) -> Any:
        if gateway not in self.clients:
            c = _client(
                self.stack.config.mqtt_port, gateway, gateway, self.stack.mqtt_password(gateway)
            )

            def on_publish(cl: Any, u: Any, mid: int, rc: Any, props: Any) -> None:
                if rc.is_failure:
                    self.refused.append(f"{gateway}: {rc}")

            c.on_publish = on_publish
            self.clients[gateway] = c
        return self.clients[gateway]

    def publish(self, topic: str, payload: bytes | str, qos: int = 1) -> Any:
        return self.client(self.owner(topic)).publish(topic, payload, qos=qos)

    def loop_stop(self) -> None:
        for c in self.clients.values():
            c.loop_stop()

    def disconnect(self) -> None:
        for c in self.clients.values():
            c.disconnect()


def publisher(target: Stack | int) -> Any:
    """Gateways publishing on the stack's gateways' listener; for a port (a bare test
    mosquitto), one anonymous client."""
    if isinstance(target, int):
        return _client(target, f"pub-{uuid.uuid4().hex[:8]}", None, None)
    return Gateways(target)


def bridge_reader(stack: Stack, client_id: str | None = None) -> Any:
    """A paho client on the stack's bridge listener, as the bridge user (the only user who
    may read readings topics)."""
    user = stack.bridge_user
    return _client(
        stack.bridge_mqtt_port,
        client_id or f"reader-{uuid.uuid4().hex[:8]}",
        user,
        stack.mqtt_password(user),
    )


def publish_all(c: Any, msgs: Iterable[tuple[str, bytes | str]], timeout_s: float = 60) -> None:
    """Publish at QoS 1 and wait until the broker acknowledged every message."""
    infos = [c.publish(t, p, qos=1) for t, p in msgs]
    deadline = time.monotonic() + timeout_s
    for info in infos:
        info.wait_for_publish(max(0.1, deadline - time.monotonic()))
        assert info.is_published(), "broker did not acknowledge a QoS 1 publish"
    assert not getattr(c, "refused", []), c.refused


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
