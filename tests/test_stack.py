"""The local stack: comes up, each role works with the real client, goes down clean."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from paho.mqtt.enums import MQTTProtocolVersion

from gyeongbo.stack import influx
from gyeongbo.stack.procs import pid_alive, port_open
from gyeongbo.stack.stack import Stack
from tests.conftest import make_stack
from tests.kafka_helpers import consume_all, end_offsets, run

pytestmark = pytest.mark.stack


def test_every_topic_exists_with_its_partition_count(stack: Stack) -> None:
    for topic in stack.settings.kafka.topics.all():
        assert len(run(end_offsets(stack.kafka_bootstrap, topic.name))) == topic.partitions


def test_status_reports_every_component_healthy(stack: Stack) -> None:
    st = stack.status()
    assert set(st) == {"mosquitto", "kafka", "influxd", "influx-compat", "fake-twilio", "postgres"}
    assert all(s["alive"] and s["listening"] for s in st.values()), st


def _connect(port: int, user: str | None, password: str | None, client_id: str) -> tuple:  # type: ignore[type-arg]
    """A v5 client, its connect reason, and the events it sees (acks, messages, drops)."""
    seen: list[str] = []
    ready = threading.Event()
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
    )

    def on_connect(cl: object, u: object, f: object, rc: object, p: object) -> None:
        seen.append(f"connect {rc}")
        ready.set()

    c.on_connect = on_connect
    c.on_publish = lambda cl, u, mid, rc, p: seen.append(f"puback {rc}")
    c.on_message = lambda cl, u, m: seen.append(f"message {m.topic}")
    c.on_disconnect = lambda cl, u, f, rc, p: seen.append(f"disconnect {rc}")
    if user:
        c.username_pw_set(user, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    assert ready.wait(5)
    return c, seen


def test_mosquitto_is_secure_by_default(stack: Stack) -> None:
    """No anonymous client; gateways only on their listener, held to their own topics by the
    registry's ACL, each with its user name as client id (none can take the bridge's); the
    bridge on a listener of its own, reading every readings topic."""
    gw, br = stack.config.mqtt_port, stack.bridge_mqtt_port
    bridge_pw = stack.mqtt_password(stack.bridge_user)
    clients = []
    try:
        for port in (gw, br):
            c, seen = _connect(port, None, None, f"anon-{uuid.uuid4().hex[:6]}")
            clients.append(c)
            assert seen[0] == "connect Not authorized"
        c, seen = _connect(br, "hrfco-seoul", stack.mqtt_password("hrfco-seoul"), "x")
        clients.append(c)
        assert seen[0] == "connect Not authorized"  # gateways do not reach the bridge's port
        bridge, got = _connect(br, stack.bridge_user, bridge_pw, f"bridge-{uuid.uuid4().hex[:6]}")
        clients.append(bridge)
        bridge.subscribe("gyeongbo/v1/readings/#", qos=1)
        time.sleep(0.3)
        # a gateway asking for the bridge's client id gets its own name instead: the bridge
        # is not disconnected
        pub, acks = _connect(
            gw, "hrfco-seoul", stack.mqtt_password("hrfco-seoul"), bridge._client_id.decode()
        )
        clients.append(pub)
        payload = json.dumps(
            {"station": "1018683", "ts": 1596678600000, "values": {"level_m": 8.36}}
        )
        for topic in (
            "gyeongbo/v1/readings/water_level/1018683",  # its own station
            "gyeongbo/v1/readings/water_level/1018658",  # another gateway's station
            "gyeongbo/v1/readings/water_level/_batch/drill-lab",  # the drill gateway's topic
        ):
            pub.publish(topic, payload, qos=1).wait_for_publish(5)
        drill, drill_acks = _connect(gw, "drill-lab", stack.mqtt_password("drill-lab"), "d")
        clients.append(drill)
        for topic in (
            "gyeongbo/v1/readings/rainfall/_batch/drill-lab",  # any kind, its own batch topic
            "gyeongbo/v1/readings/water_level/1018683",  # never a station's topic
        ):
            drill.publish(topic, b"[]", qos=1).wait_for_publish(5)
        time.sleep(0.5)
        assert acks[1:] == ["puback Success", "puback Not authorized", "puback Not authorized"]
        assert drill_acks[1:] == ["puback Success", "puback Not authorized"]
        assert got == [
            "connect Success",
            "message gyeongbo/v1/readings/water_level/1018683",
            "message gyeongbo/v1/readings/rainfall/_batch/drill-lab",
        ]
        conf = (stack.home / "mqtt" / "credentials.json").stat()
        assert conf.st_mode & 0o077 == 0  # the development passwords are the user's alone
    finally:
        for c in clients:
            c.loop_stop()
            c.disconnect()


def test_influx_v2_write_read_back_with_influxql(stack: Stack) -> None:
    """influxdb-client writes through /api/v2/write; InfluxQL reads the same point back."""
    s = stack.app_settings().influx
    ts = 1596678600000 + int(uuid.uuid4().int % 1000) * 1000
    with InfluxDBClient(url=s.url, token=s.token.get_secret_value(), org=s.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=s.bucket,
            record=Point("stack_smoke")
            .tag("station", "1018683")
            .field("level_m", 8.36)
            .time(ts, WritePrecision.MS),
        )
    ans = influx.query(
        s.url, f"SELECT level_m, station FROM stack_smoke WHERE time = {ts}ms", db=s.bucket
    )
    series = ans["results"][0]["series"][0]
    assert series["columns"] == ["time", "level_m", "station"]
    assert series["values"] == [[ts, 8.36, "1018683"]]


def test_influx_compat_reports_upstream_errors_v2_style(stack: Stack) -> None:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"{stack.influx_url}/api/v2/write?bucket=no_such_db&precision=ms",
        data=b"m f=1 1596678600000",
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 404
    body = json.loads(err.value.read())
    assert body["code"] == "not found" and "no_such_db" in body["message"]


def test_stack_down_leaves_no_process(tmp_path: Path) -> None:
    st = make_stack(tmp_path / "s")
    st.up()
    pids = {n: p.pid for n, p in st.procs.items()}
    ports = [p.port for p in st.procs.values()]
    assert all(pid_alive(pid) for pid in pids.values())
    # a second Stack object (another process in real use) finds it through stack.json
    again = Stack(config=st.config)
    assert again.healthy()
    again.down()
    assert not any(pid_alive(pid) for pid in pids.values()), pids
    assert not any(port_open(p) for p in ports)
    assert not (st.home / "stack.json").exists()
    assert again.status() == {}


def test_produce_consume_on_readings_topic(stack: Stack) -> None:
    from tests.kafka_helpers import produce

    topic = stack.settings.kafka.topics.rejected.name
    before = run(end_offsets(stack.kafka_bootstrap, topic))
    marker = uuid.uuid4().hex.encode()
    run(produce(stack.kafka_bootstrap, topic, [marker]))
    got = run(consume_all(stack.kafka_bootstrap, topic, 1, from_offsets=before))
    assert [r.value for r in got] == [marker]


def test_postgres_is_the_stacks_own_cluster(stack: Stack) -> None:
    """The stack's PostgreSQL: its own port and data folder, run by the postgres user, never
    the machine's server on 5432."""
    import psycopg

    assert stack.postgres_url is not None
    assert stack.config.postgres_port != 5432
    with psycopg.connect(stack.postgres_url) as conn:
        port = conn.execute("SHOW port").fetchone()
        data = conn.execute("SHOW data_directory").fetchone()
        listen = conn.execute("SHOW listen_addresses").fetchone()
    assert port is not None and int(port[0]) == stack.config.postgres_port
    assert data is not None and str(data[0]).startswith(str(stack.home))
    assert listen is not None and listen[0] == "127.0.0.1"
    assert stack.status()["postgres"]["listening"]
