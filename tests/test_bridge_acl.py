"""Per-gateway MQTT auth: a second mosquitto runs with the generated password file and ACL.

What mosquitto 2.0 really does (asserted below): a QoS 1 MQTT v5 publish the ACL refuses is
answered with PUBACK reason code 0x87 *Not authorized* and never reaches the bridge; an
authorised one gets reason 0 (Success) and lands in Kafka.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from gyeongbo.mqtt_auth import acl_text, write_auth_files
from gyeongbo.registry import REPO_ROOT, load_registry
from gyeongbo.stack import mosquitto
from gyeongbo.stack.procs import Proc, free_port, stop
from gyeongbo.stack.stack import Stack
from streams.bridge import Bridge, run_in_thread
from streams.bridge_config import BridgeSettings
from tests.test_bridge_support import (
    batches,
    bridge_settings,
    consume,
    end_offsets,
    now_ms,
    reading,
    rejected_docs,
    seq_base,
    unique_root,
)

pytestmark = pytest.mark.stack

REG = load_registry(REPO_ROOT / "config" / "stations.yaml")
NOT_AUTHORIZED = 0x87


@dataclass
class AuthBroker:
    proc: Proc
    port: int
    root: str
    creds: dict[str, str]
    bridge: Bridge
    bootstrap: str


@pytest.fixture(scope="module")
def auth_broker(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthBroker]:
    home = tmp_path_factory.mktemp("mqtt-acl")
    root = unique_root()
    users = ["gyeongbo-bridge", *REG.gateways]
    creds = {u: secrets.token_urlsafe(12) for u in users}
    pw, acl = write_auth_files(home / "auth", REG, creds, root=root)
    assert (pw.stat().st_mode & 0o777) == 0o600
    assert all(p not in pw.read_text() for p in creds.values())  # hashed, never in clear
    port = free_port()
    proc = mosquitto.start(home, port, password_file=pw, acl_file=acl, name="mosquitto-acl")
    s = bridge_settings(
        stack, root, username="gyeongbo-bridge", password=creds["gyeongbo-bridge"], port=port
    )
    bridge = Bridge(s, BridgeSettings(_env_file=None, metrics_port=0, log_interval_s=0))
    t: threading.Thread | None = None
    try:
        t = run_in_thread(bridge)
        yield AuthBroker(proc, port, root, creds, bridge, stack.kafka_bootstrap)
    finally:
        try:
            bridge.request_stop()
            if t is not None:
                t.join(20)
        finally:
            stop(proc.pid)


class Gateway:
    """An MQTT v5 client that records the PUBACK reason code of every publish."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.acks: dict[int, ReasonCode] = {}
        self.connected = threading.Event()
        self.connect_rc: ReasonCode | None = None
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{user}-{uuid.uuid4().hex[:6]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.username_pw_set(user, password)
        c.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc)

        def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
            self.connect_rc = rc
            self.connected.set()

        c.on_connect = on_connect
        c.connect("127.0.0.1", port)
        c.loop_start()
        assert self.connected.wait(10)
        self.client = c

    def publish(self, topic: str, payload: object) -> int:
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        info.wait_for_publish(10)
        return self.acks[info.mid].value

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_generated_acl_grants_own_stations_and_own_batch_topics_only() -> None:
    text = acl_text(REG, "r")
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in text.split("\n\n")[1:]}
    assert blocks["user hrfco-tancheon"] == [
        "topic write r/water_level/1018658",
        "topic write r/water_level/_batch/hrfco-tancheon",
    ]  # water_level is shared with hrfco-seoul: no plain _batch
    assert "topic write r/rainfall/_batch" in blocks["user kma-asos"]  # sole rainfall gateway
    assert text.split("\n\n")[1].splitlines() == ["user gyeongbo-bridge", "topic read r/#"]


def test_foreign_station_publish_is_refused_and_never_reaches_kafka(
    auth_broker: AuthBroker,
) -> None:
    a = auth_broker
    base, t = seq_base(), now_ms()
    before = end_offsets(a.bootstrap, "readings")
    received0 = a.bridge.metrics.messages_received
    gw = Gateway(a.port, "hrfco-seoul", a.creds["hrfco-seoul"])
    try:
        r = a.root
        refused = {
            "foreign station": gw.publish(
                f"{r}/water_level/1018658", reading("1018658", base + 1, t, level_m=1.0)
            ),
            "own station, wrong kind": gw.publish(
                f"{r}/rainfall/1018683", reading("1018683", base + 2, t, rain_mm=1.0)
            ),
            "shared plain _batch": gw.publish(
                f"{r}/water_level/_batch", [reading("1018683", base + 3, t, level_m=1.0)]
            ),
            "other gateway's batch topic": gw.publish(
                f"{r}/water_level/_batch/hrfco-tancheon",
                [reading("1018658", base + 4, t, level_m=1.0)],
            ),
        }
        assert refused == dict.fromkeys(refused, NOT_AUTHORIZED)
        assert (
            gw.publish(f"{r}/water_level/1018683", reading("1018683", base + 10, t, level_m=2.0))
            == 0
        )
        assert (
            gw.publish(
                f"{r}/water_level/_batch/hrfco-seoul",
                [reading("1018640", base + 11, t, level_m=2.0)],
            )
            == 0
        )
    finally:
        gw.close()
    recs = consume(
        a.bootstrap,
        "readings",
        before,
        lambda rs: {base + 10, base + 11} <= {int(s) for _, b in batches(rs) for s in b.seq},
    )
    seqs = {int(s) for _, b in batches(recs) for s in b.seq if base <= s < base + 100}
    assert seqs == {base + 10, base + 11}
    assert a.bridge.metrics.messages_received - received0 == 2


def test_own_batch_topic_cannot_smuggle_another_gateways_station(auth_broker: AuthBroker) -> None:
    a = auth_broker
    base, t = seq_base(), now_ms()
    before_r = end_offsets(a.bootstrap, "readings")
    before_j = end_offsets(a.bootstrap, "readings.rejected")
    gw = Gateway(a.port, "hrfco-seoul", a.creds["hrfco-seoul"])
    try:
        topic = f"{a.root}/water_level/_batch/hrfco-seoul"
        items = [
            reading("1018683", base, t, level_m=3.0),
            reading("1018658", base + 1, t, level_m=3.0),
        ]
        assert gw.publish(topic, items) == 0
    finally:
        gw.close()
    docs = rejected_docs(
        consume(
            a.bootstrap,
            "readings.rejected",
            before_j,
            lambda rs: len(rejected_docs(rs, a.root)) >= 1,
        ),
        a.root,
    )
    assert [(d["reason"], d["station"], d["index"]) for d in docs] == [
        ("foreign_station", "1018658", 1)
    ]
    recs = consume(
        a.bootstrap,
        "readings",
        before_r,
        lambda rs: base in {int(s) for _, b in batches(rs) for s in b.seq},
    )
    assert {int(s) for _, b in batches(recs) for s in b.seq if s >= base} == {base}


def test_bad_password_and_bridge_publish_are_refused(auth_broker: AuthBroker) -> None:
    a = auth_broker
    bad = Gateway.__new__(Gateway)
    bad.acks, bad.connected, bad.connect_rc = {}, threading.Event(), None
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id="intruder",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    c.username_pw_set("hrfco-seoul", "not-the-password")

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        bad.connect_rc = rc
        bad.connected.set()

    c.on_connect = on_connect
    c.connect("127.0.0.1", a.port)
    c.loop_start()
    try:
        assert bad.connected.wait(10)
        assert bad.connect_rc is not None and bad.connect_rc.is_failure
    finally:
        c.loop_stop()
        c.disconnect()
    bridge_user = Gateway(a.port, "gyeongbo-bridge", a.creds["gyeongbo-bridge"])
    try:
        code = bridge_user.publish(
            f"{a.root}/water_level/1018683", reading("1018683", 1, now_ms(), level_m=1.0)
        )
        assert code == NOT_AUTHORIZED
    finally:
        bridge_user.close()
