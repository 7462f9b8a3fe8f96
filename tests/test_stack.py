"""The local stack: comes up, each role works with the real client, goes down clean."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

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


def test_mqtt_roundtrip_through_mosquitto(stack: Stack) -> None:
    got: list[bytes] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:6]}")
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", stack.config.mqtt_port)
    sub.subscribe("gyeongbo/v1/readings/#", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", stack.config.mqtt_port)
    pub.loop_start()
    payload = json.dumps({"station": "1018683", "ts": 1596678600000, "values": {"level_m": 8.36}})
    pub.publish("gyeongbo/v1/readings/water_level/1018683", payload, qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    pub.loop_stop()
    sub.loop_stop()
    assert got == [payload.encode()]


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
