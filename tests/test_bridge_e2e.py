"""The bridge against the real mosquitto and Kafka-protocol broker of the session's stack."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gyeongbo.batch import KIND_CODES
from gyeongbo.registry import load_registry
from gyeongbo.stack.procs import free_port
from gyeongbo.stack.stack import Stack
from gyeongbo.vocab import Kind
from streams.bridge import Bridge, run_in_thread
from streams.bridge_config import BridgeSettings
from streams.partitioning import partition_of
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
    rejected_docs,
    seq_base,
    unique_root,
)

pytestmark = pytest.mark.stack


@dataclass
class Running:
    bridge: Bridge
    thread: threading.Thread
    root: str
    pub: mqtt.Client
    bootstrap: str
    parts: int


@pytest.fixture(scope="module")
def running(stack: Stack) -> Iterator[Running]:
    root = unique_root()
    s = bridge_settings(stack, root)
    cfg = BridgeSettings(
        _env_file=None, metrics_port=free_port(), log_interval_s=0, max_payload_bytes=64 * 1024
    )
    bridge = Bridge(s, cfg)
    t = run_in_thread(bridge)
    pub = publisher(stack)
    try:
        yield Running(
            bridge, t, root, pub, stack.kafka_bootstrap, s.kafka.topics.readings.partitions
        )
    finally:
        pub.loop_stop()
        pub.disconnect()
        bridge.request_stop()
        t.join(20)
        assert not t.is_alive()


def test_single_and_batch_payloads_arrive_in_their_partitions_decoded_exactly(
    running: Running,
) -> None:
    r = running
    base, t = seq_base(), now_ms()
    before = end_offsets(r.bootstrap, "readings")
    singles = [
        (f"{r.root}/water_level/1018683", reading("1018683", base + 0, t, level_m=8.36)),
        (
            f"{r.root}/rainfall/108",
            reading("108", base + 1, t - 600_000, rain_mm=12.5, interval_s=600),
        ),
    ]
    batch = [
        reading(sid, base + 10 + i, t - i, pm10_ugm3=40.0 + i, pm25_ugm3=20.0 + i)
        for i, sid in enumerate(["111131", "111141", "111121", "111131", "111152"])
    ]
    batch[2]["exercise"] = True
    msgs = [(tp, json.dumps(p)) for tp, p in singles]
    msgs.append((f"{r.root}/air_quality/_batch", json.dumps(batch)))
    msgs.append(
        (
            f"{r.root}/structural/_batch/seoul-facilities",
            json.dumps([reading("SFC-MAPO-P5", base + 20, t, tilt_rad=0.001, crack_mm=0.4)]),
        )
    )
    publish_all(r.pub, msgs)
    want = 2 + len(batch) + 1
    recs = consume(
        r.bootstrap,
        "readings",
        before,
        lambda rs: len([s for _, b in batches(rs) for s in b.seq if s >= base]) >= want,
    )
    got: dict[int, tuple[Rec, dict[str, object]]] = {}
    for rec, b in batches(recs):
        assert rec.key == str(rec.partition).encode()
        for row in b.to_rows():
            if row["seq"] >= base:
                got[row["seq"]] = (rec, row)
    assert sorted(got) == sorted([base, base + 1, base + 20] + [base + 10 + i for i in range(5)])
    for rec, row in got.values():
        assert rec.partition == partition_of(str(row["station"]), r.parts)
        assert int(row["received_ms"]) >= t  # type: ignore[call-overload]
    assert got[base][1] | {"received_ms": 0} == {
        "station": "1018683",
        "kind": "water_level",
        "ts_ms": t,
        "seq": base,
        "exercise": False,
        "values": {"level_m": 8.36},
        "received_ms": 0,
    }
    assert got[base + 1][1]["values"] == {"rain_mm": 12.5, "interval_s": 600.0}
    assert got[base + 1][1]["ts_ms"] == t - 600_000
    for i in range(5):
        row = got[base + 10 + i][1]
        assert (row["station"], row["ts_ms"], row["exercise"]) == (
            batch[i]["station"],
            t - i,
            i == 2,
        )
        assert row["values"] == {"pm10_ugm3": 40.0 + i, "pm25_ugm3": 20.0 + i}
    assert got[base + 20][1]["values"] == {"tilt_rad": 0.001, "crack_mm": 0.4}
    # each record carries the registry positions of its stations (codec v2): a worker with
    # the same registry skips looking the ids up
    reg = load_registry(r.bridge.settings.paths.stations)
    at = reg.index_of()
    for _, b in batches(recs):
        assert b.index_digest == reg.ids_digest() and b.station_index is not None
        assert b.station_index.tolist() == [at[s] for s in b.station.tolist()]
    # columnar: the readings of one message bound for one partition share one record
    same_part: dict[int, set[int]] = {}
    for i in range(5):
        rec = got[base + 10 + i][0]
        same_part.setdefault(rec.partition, set()).add(id(rec))
    assert all(len(ids) == 1 for ids in same_part.values())


def test_every_bad_input_class_lands_in_rejected_with_its_reason(running: Running) -> None:
    r = running
    base, t = seq_base(), now_ms()
    before = end_offsets(r.bootstrap, "readings.rejected")
    before_readings = end_offsets(r.bootstrap, "readings")
    wl = f"{r.root}/water_level/1018683"
    good = reading("1018683", base, t, level_m=3.0)
    cases: list[tuple[str, str, bytes]] = [
        ("malformed_json", wl, b'{"station": "1018683", "ts":'),
        (
            "wrong_type",
            wl,
            json.dumps({**reading("1018683", base + 1, t), "values": {"level_m": "high"}}).encode(),
        ),
        (  # on a station topic no gateway may publish it (the ACL): in a gateway's batch
            "unknown_station",
            f"{r.root}/water_level/_batch/hrfco-seoul",
            json.dumps([reading("777", base + 2, t, level_m=1.0)]).encode(),
        ),
        ("non_finite", wl, b'{"station": "1018683", "ts": %d, "values": {"level_m": NaN}}' % t),
        (
            "non_finite",
            wl,
            b'{"station": "1018683", "ts": %d, "values": {"level_m": Infinity}}' % t,
        ),
        ("out_of_range", wl, json.dumps(reading("1018683", base + 3, t, level_m=75.0)).encode()),
        (
            "ts_future",
            wl,
            json.dumps(reading("1018683", base + 4, t + 3_600_000, level_m=1.0)).encode(),
        ),
        (
            "ts_past",
            wl,
            json.dumps(
                reading("1018683", base + 5, "2019-01-01T00:00:00+09:00", level_m=1.0)
            ).encode(),
        ),
        ("payload_too_large", wl, json.dumps([good] * 1000).encode()),
        (
            "kind_mismatch",
            f"{r.root}/air_quality/_batch",
            json.dumps([reading("1018683", base + 6, t, level_m=1.0)]).encode(),
        ),
        (
            "missing_field",
            wl,
            json.dumps({"station": "1018683", "values": {"level_m": 1}}).encode(),
        ),
        ("unknown_value", wl, json.dumps(reading("1018683", base + 7, t, level_ft=3.0)).encode()),
    ]
    msgs: list[tuple[str, bytes | str]] = [(tp, raw) for _, tp, raw in cases]
    msgs.append((wl, json.dumps(good)))  # one good one, to show the bad ones did not stop it
    publish_all(r.pub, msgs)
    recs = consume(
        r.bootstrap,
        "readings.rejected",
        before,
        lambda rs: len(rejected_docs(rs, r.root)) >= len(cases),
    )
    docs = rejected_docs(recs, r.root)
    assert sorted(d["reason"] for d in docs) == sorted(reason for reason, _, _ in cases)
    by_payload = {(d["reason"], d["payload"]): d for d in docs}
    for reason, tp, raw in cases:
        if reason == "payload_too_large":
            d = next(d for d in docs if d["reason"] == reason)
            assert d["payload_bytes"] == len(raw) and d["payload"] == raw.decode()
        elif reason in ("kind_mismatch", "unknown_station"):
            d = next(d for d in docs if d["reason"] == reason)
            station = json.loads(raw)[0]["station"]
            assert (d["scope"], d["index"], d["station"]) == ("reading", 0, station)
        else:
            d = by_payload[(reason, raw.decode())]
            assert d["scope"] == "payload"
        assert d["topic"] == tp and d["message"] and d["received_ms"] >= t
    good_seen = consume(
        r.bootstrap,
        "readings",
        before_readings,
        lambda rs: base in [int(s) for _, b in batches(rs) for s in b.seq],
    )
    seqs = [int(s) for _, b in batches(good_seen) for s in b.seq]
    assert base in seqs and not set(seqs) & {base + i for i in range(1, 8)}
    snap = r.bridge.metrics.snapshot()
    assert snap["rejected"]["non_finite"] >= 2 and snap["rejected"]["payload_too_large"] >= 1


def test_retried_readings_are_dropped_by_seq_and_counted(running: Running) -> None:
    r = running
    base, t = seq_base(), now_ms()
    before = end_offsets(r.bootstrap, "readings")
    dups0 = r.bridge.metrics.duplicates
    first = [reading("111131", base + i, t, pm10_ugm3=10.0 + i) for i in range(20)]
    retry = [*first[10:], reading("111131", base + 20, t, pm10_ugm3=99.0)]
    no_seq = reading("111131", None, t, pm10_ugm3=5.0)
    publish_all(
        r.pub,
        [
            (f"{r.root}/air_quality/_batch", json.dumps(first)),
            (f"{r.root}/air_quality/_batch", json.dumps(retry)),
            (f"{r.root}/air_quality/111131", json.dumps(no_seq)),
            (f"{r.root}/air_quality/111131", json.dumps(no_seq)),
        ],
    )

    def rows(rs: list[Rec]) -> list[tuple[int, float]]:
        return [
            (int(s), float(v))
            for _, b in batches(rs)
            for s, v, ts in zip(b.seq, b.value("pm10_ugm3"), b.ts_ms, strict=True)
            if s >= base or (s == -1 and ts == t and v == 5.0)
        ]

    recs = consume(r.bootstrap, "readings", before, lambda rs: len(rows(rs)) >= 23)
    got = rows(recs)
    assert sorted(s for s, _ in got if s >= 0) == [base + i for i in range(21)]
    assert [v for s, v in got if s == -1] == [5.0, 5.0]  # without seq nothing is deduplicated
    # The count is taken once Kafka has acknowledged the flush, which a consumer may see
    # a moment before the bridge does.
    deadline = time.monotonic() + 10
    while r.bridge.metrics.duplicates - dups0 < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert r.bridge.metrics.duplicates - dups0 == 10


def test_metrics_are_served_as_json_and_prometheus(running: Running) -> None:
    port = running.bridge.cfg.metrics_port
    url = f"http://127.0.0.1:{port}/metrics"

    def get(accept: str | None, suffix: str = "") -> tuple[str, str]:
        req = urllib.request.Request(url + suffix, headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.headers["Content-Type"], resp.read().decode()

    ctype, body = get("application/json")
    snap = json.loads(body)
    assert ctype == "application/json"
    assert snap["ready"] and snap["kafka_ok"] and snap["mqtt_connected"]
    assert snap["messages_received"] >= 1 and snap["messages_acked"] == snap["messages_received"]
    assert snap["inflight_messages"] == 0
    assert json.loads(get(None, "?format=json")[1])["ready"] is True
    # What Prometheus sends: OpenMetrics first, then the text format.
    prom_accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    ctype, om = get(prom_accept)
    assert ctype.startswith("application/openmetrics-text") and om.endswith("# EOF\n")
    ctype, text = get(None)  # curl, a browser: the text exposition format
    assert ctype.startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["gyeongbo_bridge_readings_produced"].type == "counter"
    (produced,) = fams["gyeongbo_bridge_readings_produced"].samples
    assert produced.name == "gyeongbo_bridge_readings_produced_total"
    assert produced.value >= snap["readings_produced"]
    rejected = {s.labels["reason"]: s.value for s in fams["gyeongbo_bridge_rejected"].samples}
    assert rejected and set(rejected) >= set(snap["rejected"])
    assert fams["gyeongbo_bridge_ack_lag_seconds"].type == "gauge"
    assert "process_cpu_seconds" in fams
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
        assert json.loads(resp.read()) == {"ok": True}


def test_kind_codes_in_records_follow_the_core_vocabulary(running: Running) -> None:
    r = running
    base, t = seq_base(), now_ms()
    before = end_offsets(r.bootstrap, "readings")
    publish_all(
        r.pub,
        [
            (
                f"{r.root}/seismic/KMA-POHANG-ACC",
                json.dumps(reading("KMA-POHANG-ACC", base, t, pga_g=0.02)),
            )
        ],
    )
    recs = consume(
        r.bootstrap,
        "readings",
        before,
        lambda rs: any((b.seq == base).any() for _, b in batches(rs)),
    )
    whole = next(b for _, b in batches(recs) if (b.seq == base).any())
    b = whole.take(np.flatnonzero(whole.seq == base))
    assert b.kind.tolist() == [KIND_CODES[Kind.SEISMIC]]
    assert b.of_kind(Kind.SEISMIC).value("pga_g").tolist() == [0.02]


def test_two_bridges_share_the_stream_with_a_shared_subscription(stack: Stack) -> None:
    root = unique_root()
    base, t = seq_base(), now_ms()
    before = end_offsets(stack.kafka_bootstrap, "readings")
    cfg = BridgeSettings(_env_file=None, metrics_port=0, log_interval_s=0, shared_group="g1")
    bridges = [Bridge(bridge_settings(stack, root), cfg) for _ in range(2)]
    threads = [run_in_thread(b) for b in bridges]
    pub = publisher(stack)
    try:
        sids = ["111131", "111141", "111151"]
        publish_all(
            pub,
            [
                (
                    f"{root}/air_quality/{sids[i % 3]}",
                    json.dumps(reading(sids[i % 3], base + i, t, pm10_ugm3=float(i))),
                )
                for i in range(300)
            ],
        )
        recs = consume(
            stack.kafka_bootstrap,
            "readings",
            before,
            lambda rs: len({int(s) for _, b in batches(rs) for s in b.seq if s >= base}) >= 300,
        )
        seqs = [int(s) for _, b in batches(recs) for s in b.seq if s >= base]
        assert sorted(seqs) == [base + i for i in range(300)]  # each message once, none lost
        assert all(b.metrics.messages_received > 0 for b in bridges)
        assert sum(b.metrics.messages_received for b in bridges) == 300
    finally:
        pub.loop_stop()
        pub.disconnect()
        for b in bridges:
            b.request_stop()
        for th in threads:
            th.join(20)


def test_refuses_to_start_when_partition_counts_disagree(stack: Stack) -> None:
    s = bridge_settings(stack, unique_root())
    topics = s.kafka.topics.model_copy(
        update={"readings": s.kafka.topics.readings.model_copy(update={"partitions": 5})}
    )
    s = s.model_copy(update={"kafka": s.kafka.model_copy(update={"topics": topics})})
    bridge = Bridge(s, BridgeSettings(_env_file=None, metrics_port=0, log_interval_s=0))
    with pytest.raises(RuntimeError, match="bridge failed to start") as err:
        run_in_thread(bridge)
    assert "has 8 partitions but the settings say 5" in str(err.value.__cause__)
