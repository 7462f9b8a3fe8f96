"""Publishing through the real mosquitto of the session stack, as the drill gateway: what is
sent is what arrives, on schedule, on the drill gateway's batch topics; gateway batches and
load mode too."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import REPO_ROOT
from gyeongbo.stack.stack import Stack
from simulators.generator import Clock, as_gateway, batch_publications, generate
from simulators.load import LoadPlan, run_load
from simulators.publisher import MqttPublisher, PublishError, gateway_publisher, play
from simulators.scenario import load_checked

ROOT = "gyeongbo/v1/readings"

pytestmark = pytest.mark.stack


class Subscriber:
    """A paho subscriber on ``{root}/#`` that records (topic, payload) in arrival order."""

    def __init__(self, stack: Stack) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._ready = threading.Event()
        # only the bridge user may read readings topics, on the bridges' listener
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{id(self)}")
        self.client.username_pw_set(stack.bridge_user, stack.mqtt_password(stack.bridge_user))
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(f"{ROOT}/#", qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", stack.bridge_mqtt_port)
        self.client.loop_start()
        assert self._ready.wait(10), "no SUBACK"

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.got.append((msg.topic, bytes(msg.payload)))
            self._cond.notify_all()

    def wait_for(self, n: int, timeout_s: float = 30.0) -> list[tuple[str, bytes]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.got) >= n, timeout=timeout_s)
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def sub(stack: Stack) -> Iterator[Subscriber]:
    s = Subscriber(stack)
    yield s
    s.close()


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def test_a_scenario_with_faults_arrives_byte_for_byte_on_schedule(
    stack: Stack, sub: Subscriber, reg: Registry
) -> None:
    sc = load_checked("seongsu-bridge-damage", reg, overlays=["sensor-faults"])
    speed = sc.duration_s / 3.0  # eight hours in three seconds
    clock = Clock.ending_now(sc.duration_s, speed, wall_start=time.time() + 0.5)
    gen = generate(sc, reg, seed=11, anchor_ms=clock.anchor_ms)
    pubs, skipped = as_gateway(gen.publications, "drill-lab", topic_root=ROOT)
    # a station_mismatch payload needs a station topic, which the drill gateway may not use
    assert {p.tag for p in skipped} <= {"malformed:station_mismatch"}
    assert all(p.topic.endswith("/_batch/drill-lab") for p in pubs)
    sent = [(p.topic, p.payload) for p in pubs]
    stamps: list[tuple[float, float]] = []

    def progress(n: int, p: object) -> None:
        if n % 200 == 0:
            stamps.append((time.time(), pubs[n - 1].t_s))

    with gateway_publisher(stack.app_settings(), "drill-lab") as pub:
        stats = play(pubs, pub, clock, on_progress=progress)
    assert sub.wait_for(len(sent)) == sent  # malformed and empty payloads included
    assert stats.messages == len(sent) and pub.acked == len(sent) and pub.failed == 0
    assert stats.readings == sum(p.readings for p in pubs)
    # time scaling: each publication leaves when its scenario time comes round at this speed
    for wall, t_s in stamps:
        assert clock.wall_due(t_s) - 0.05 <= wall <= clock.wall_due(t_s) + 0.5
    assert 2.9 <= stats.finished - clock.wall_start <= 4.5


def test_gateway_batches_arrive_as_arrays_of_the_same_readings(
    stack: Stack, sub: Subscriber, reg: Registry
) -> None:
    sc = load_checked("han-river-flood", reg)
    clock = Clock.ending_now(sc.duration_s, 1e6, wall_start=time.time())
    gen = generate(sc, reg, seed=2, anchor_ms=clock.anchor_ms)
    pubs, _ = as_gateway(gen.publications, "drill-lab", topic_root=ROOT)
    batched = batch_publications(pubs, gateway="drill-lab")
    assert all(p.topic.endswith("/_batch/drill-lab") for p in batched)  # gauges, rain per kind
    assert len(batched) < len(pubs)
    with gateway_publisher(stack.app_settings(), "drill-lab") as pub:
        play(batched, pub, clock)
    got = sub.wait_for(len(batched))
    assert [t for t, _ in got] == [p.topic for p in batched]
    readings = [
        json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode()
        for _, payload in got
        for d in json.loads(payload)
    ]
    assert readings == [p.payload for p in _by_time_and_kind(pubs)]


def _by_time_and_kind(pubs: list) -> list:  # type: ignore[type-arg]
    # within one scenario time, batches group by kind in first-seen order (one gateway)
    out = []
    i = 0
    while i < len(pubs):
        j = i
        while j < len(pubs) and pubs[j].t_s == pubs[i].t_s:
            j += 1
        groups: dict[tuple[str, str], list] = {}  # type: ignore[type-arg]
        for p in pubs[i:j]:
            groups.setdefault((p.gateway, p.kind), []).append(p)
        for g in groups.values():
            out += g
        i = j
    return out


def test_load_mode_publishes_batches_at_the_target_rate(stack: Stack, sub: Subscriber) -> None:
    plan = LoadPlan(stations=1000)
    log = io.StringIO()
    with gateway_publisher(stack.app_settings(), "drill-lab") as pub:
        result = run_load(pub, plan, rate=2000, duration_s=2.0, batch_size=100, log=log)
    assert result.readings == 4000 and result.acked == result.messages
    assert 1600 <= result.achieved_rate <= 2400
    got = sub.wait_for(result.messages)
    docs = [d for _, payload in got for d in json.loads(payload)]
    assert len(docs) == 4000
    assert all(t.endswith("/_batch/drill-lab") for t, _ in got)
    assert {d["station"] for d in docs} == {plan.station_id(i) for i in range(1000)}
    assert all(d["exercise"] is True for d in docs)
    first = {d["station"]: d["seq"] for d in docs[:1000]}
    second = {d["station"]: d["seq"] for d in docs[1000:2000]}
    assert all(second[s] == first[s] + 1 for s in first)  # seq increases per station
    assert "load t=" in log.getvalue()
    assert json.loads(result.to_json())["achieved_rate"] == round(result.achieved_rate, 1)


def test_an_unreachable_broker_is_a_clear_error() -> None:
    from gyeongbo.stack.procs import free_port

    pub = MqttPublisher("127.0.0.1", free_port(), client_id="test-nobody")
    with pytest.raises(PublishError, match="cannot reach the MQTT broker"):
        pub.connect(timeout_s=2)
