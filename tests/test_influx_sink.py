"""The InfluxDB sink against the real local influxd (through the v2-write compat endpoint).

Each test writes to a database of its own, so tests never see each other's points. Reads use
InfluxQL on ``/query`` with ``epoch=ms``, as Grafana does.
"""

from __future__ import annotations

import datetime as dt
import doctest
import itertools
import logging
import time
from typing import Any

import numpy as np
import pytest

from gyeongbo.batch import ReadingBatch
from gyeongbo.events import AlertEvent, DataQualityAlert, Detection, HQStageEvent
from gyeongbo.registry import REPO_ROOT, load_registry
from gyeongbo.stack import influx
from gyeongbo.stack.procs import stop
from gyeongbo.stack.stack import Stack
from streams import influx_lines, influx_sink
from streams.influx_sink import InfluxSink

pytestmark = pytest.mark.stack

REGISTRY = load_registry(REPO_ROOT / "config" / "stations.yaml")
T0 = 1_596_678_600_000  # 2020-08-06T10:50:00+09:00
_db_ids = itertools.count()


def fresh_db(stack: Stack, prefix: str) -> str:
    name = f"{prefix}_{next(_db_ids)}_{time.monotonic_ns()}"
    ans = influx.query(stack.influxd_url, f'CREATE DATABASE "{name}"')
    assert "error" not in str(ans), ans
    return name


def rows(stack: Stack, db: str, q: str) -> list[dict[str, Any]]:
    """Every row of every series of ``q``, as dicts without the None columns."""
    ans = influx.query(stack.influx_url, q, db=db)
    res = ans["results"][0]
    assert "error" not in res, res
    out = []
    for s in res.get("series", []):
        for v in s["values"]:
            row = {k: x for k, x in zip(s["columns"], v, strict=True) if x is not None}
            out.append({**s.get("tags", {}), **row})
    return sorted(out, key=lambda r: (r["time"], sorted(map(str, r.items()))))


def sink_for(stack: Stack, db: str, **kw: Any) -> InfluxSink:
    opts: dict[str, Any] = {"flush_interval_ms": 100, "retry_interval_ms": 200}
    opts.update(kw)
    return InfluxSink(stack.app_settings().influx, registry=REGISTRY, bucket=db, **opts)


def test_doctests_of_the_line_builder_and_the_sink() -> None:
    assert doctest.testmod(influx_lines).failed == 0
    assert doctest.testmod(influx_sink).failed == 0


def test_every_record_reads_back_exactly(stack: Stack) -> None:
    db = fresh_db(stack, "readback")
    batch = ReadingBatch.from_rows(
        [
            {
                "station": "1018683",
                "kind": "water_level",
                "ts_ms": T0,
                "seq": 1,
                "values": {"level_m": 8.36},
            },
            {
                "station": "1018683",
                "kind": "water_level",
                "ts_ms": T0 + 1,
                "values": {"level_m": 8.37},
                "exercise": True,
            },
            {
                "station": "111131",
                "kind": "air_quality",
                "ts_ms": T0 + 2,
                "values": {"pm10_ugm3": 151.5, "pm25_ugm3": float("nan"), "o3_ppm": 0.123},
            },
            {
                "station": "SFC-MAPO-P5",
                "kind": "structural",
                "ts_ms": T0 + 3,
                "values": {"tilt_rad": -1.5e-05, "crack_mm": 4.0, "vibration_cms": 0.29},
            },
            {
                "station": "108",
                "kind": "rainfall",
                "ts_ms": T0 + 4,
                "values": {"rain_mm": 12.5, "interval_s": 600.0},
            },
            # A reading with no finite value writes nothing.
            {
                "station": "KMA-SEOUL-ACC",
                "kind": "seismic",
                "ts_ms": T0 + 5,
                "values": {"pga_g": float("inf")},
            },
        ]
    )
    det = Detection(
        station="1018683",
        hazard="flood",
        level="caution",
        ts_ms=T0 + 10,
        rule="flood.forecast",
        value=8.36,
        threshold=8.5,
        projected_crossing_ms=T0 + 600_000,
        confidence=0.8,
        details={"rate_m_per_h": 0.21},
    )
    health = Detection(
        station="108",
        hazard="sensor_health",
        level="alert",
        ts_ms=T0 + 11,
        rule="health.rain_mm",
        value=499.0,
        public=False,
        details={"faults": ["range", "stuck"], "channel": "rain_mm"},
    )
    alert = AlertEvent(
        alert_id="flood:11030:x",
        hazard="flood",
        zone="11030",
        zone_name="용산구",
        level="caution",
        previous="attention",
        level_ko="주의",
        ts="2020-08-06T10:50:00.020+09:00",
        action="raise",
        stations=["1018683"],
        evidence={"value": 8.36, "threshold": 8.5},
        event_id="ev-1",
        reason='said "now"\nthen',
    )
    dq = DataQualityAlert(
        alert_id="sensor_health:11010:x",
        zone="11010",
        zone_name="종로구",
        severity="critical",
        previous="cleared",
        ts="2020-08-06T10:50:00.025+09:00",
        action="raise",
        stations=["108"],
        checks={"108": ["range", "stuck"]},
        event_id="dq-1",
    )
    hq = HQStageEvent(
        hazard_group="storm_flood",
        stage=1,
        previous=0,
        ts="2020-08-06T01:50:00.030Z",
        action="propose",
        provinces={"11": "caution"},
        event_id="hq-1",
    )
    with sink_for(stack, db) as sink:
        assert sink.write_readings(batch) == 5
        assert sink.write_detections([det, health]) == 2
        assert sink.write_alerts([alert]) == 1
        assert sink.write_dq_alerts([dq]) == 1
        assert sink.write_hq([hq]) == 1
        assert (
            sink.write_metrics(
                "worker", {"readings_total": 5, "lag_ms_p99": 12.5}, ts_ms=T0 + 40, instance="w1"
            )
            == 1
        )
        assert sink.write_stations(ts_ms=T0 + 50) == len(REGISTRY.stations)
        assert sink.flush(20)
        st = sink.stats()
    n = 11 + len(REGISTRY.stations)
    assert (st.accepted, st.written, st.dropped, st.buffered, st.inflight) == (n, n, 0, 0, 0)

    assert rows(stack, db, 'SELECT * FROM "reading"') == [
        {
            "time": T0,
            "station": "1018683",
            "kind": "water_level",
            "exercise": "false",
            "level_m": 8.36,
            "seq": 1,
        },
        {
            "time": T0 + 1,
            "station": "1018683",
            "kind": "water_level",
            "exercise": "true",
            "level_m": 8.37,
        },
        {
            "time": T0 + 2,
            "station": "111131",
            "kind": "air_quality",
            "exercise": "false",
            "pm10_ugm3": 151.5,
            "o3_ppm": 0.123,
        },
        {
            "time": T0 + 3,
            "station": "SFC-MAPO-P5",
            "kind": "structural",
            "exercise": "false",
            "tilt_rad": -1.5e-05,
            "crack_mm": 4.0,
            "vibration_cms": 0.29,
        },
        {
            "time": T0 + 4,
            "station": "108",
            "kind": "rainfall",
            "exercise": "false",
            "rain_mm": 12.5,
            "interval_s": 600.0,
        },
    ]
    gauge = REGISTRY.stations["1018683"]
    assert rows(stack, db, 'SELECT * FROM "detection"') == [
        {
            "time": T0 + 10,
            "station": "1018683",
            "kind": "water_level",
            "hazard": "flood",
            "level": "caution",
            "rule": "flood.forecast",
            "public": "true",
            "exercise": "false",
            "value": 8.36,
            "threshold": 8.5,
            "level_num": 2,
            "confidence": 0.8,
            "projected_crossing_ms": T0 + 600_000,
            "lat": gauge.lat,
            "lon": gauge.lon,
            "details": '{"rate_m_per_h":0.21}',
        },
    ]
    assert rows(stack, db, 'SELECT * FROM "sensor_health"') == [
        {
            "time": T0 + 11,
            "station": "108",
            "kind": "rainfall",
            "check": "health.rain_mm",
            "severity": "critical",  # an operators' severity, never a crisis level
            "exercise": "false",
            "value": 499.0,
            "severity_num": 2,
            "faults": "range,stuck",
            "details": '{"faults":["range","stuck"],"channel":"rain_mm"}',
        },
    ]
    assert rows(stack, db, 'SELECT * FROM "alert"') == [
        {
            "time": T0 + 20,
            "hazard": "flood",
            "zone": "11030",
            "level": "caution",
            "previous": "attention",
            "action": "raise",
            "exercise": "false",
            "level_num": 2,
            "previous_num": 1,
            "level_ko": "주의",
            "zone_name": "용산구",
            "alert_id": "flood:11030:x",
            "event_id": "ev-1",
            "stations": "1018683",
            "evidence": '{"value":8.36,"threshold":8.5}',
            "reason": 'said "now" then',
            "message": "[주의] Flood 용산구 (11030): raise attention→caution; 1018683 8.36 / 8.5 "
            '(said "now" then)',
        },
    ]
    assert rows(stack, db, 'SELECT * FROM "dq_alert"') == [
        {
            "time": T0 + 25,
            "zone": "11010",
            "severity": "critical",
            "previous": "cleared",
            "action": "raise",
            "exercise": "false",
            "severity_num": 2,
            "previous_num": 0,
            "zone_name": "종로구",
            "alert_id": "sensor_health:11010:x",
            "event_id": "dq-1",
            "stations": "108",
            "checks": '{"108":["range","stuck"]}',
            "message": "[critical] 센서 종로구 (11010): raise cleared→critical; 108 range,stuck",
        },
    ]
    assert rows(stack, db, 'SELECT * FROM "hq_stage"') == [
        {
            "time": T0 + 30,
            "hazard_group": "storm_flood",
            "action": "propose",
            "exercise": "false",
            "stage": 1,
            "previous": 0,
            "event_id": "hq-1",
            "provinces": '{"11":"caution"}',
            "message": "비상 1단계 (storm_flood): propose 0→1",
        },
    ]
    assert rows(stack, db, 'SELECT * FROM "pipeline"') == [
        {
            "time": T0 + 40,
            "component": "worker",
            "instance": "w1",
            "readings_total": 5.0,
            "lag_ms_p99": 12.5,
        },
    ]
    hangang = [r for r in rows(stack, db, 'SELECT * FROM "station"') if r["station"] == "1018683"]
    assert hangang == [
        {
            "time": T0 + 50,
            "station": "1018683",
            "kind": "water_level",
            "lat": gauge.lat,
            "lon": gauge.lon,
            "name": "한강대교",
            "name_en": "Hangang Bridge",
            "zones": "11030,11200,11190,hangang-riverside-central",
            "attention": 4.5,
            "caution": 8.5,
            "alert": 10.5,
            "serious": 13.3,
        },
    ]


def test_many_readings_in_one_batch_are_split_and_all_written(stack: Stack) -> None:
    db = fresh_db(stack, "bulk")
    n = 12_345
    stations = np.array([f"S{i % 97}" for i in range(n)])
    batch = ReadingBatch(
        station=stations,
        kind=np.zeros(n, np.uint8),
        ts_ms=T0 + np.arange(n, dtype=np.int64),
        seq=np.full(n, -1, np.int64),
        exercise=np.zeros(n, bool),
        values={"level_m": np.linspace(0.0, 10.0, n)},
    )
    with sink_for(stack, db, batch_size=2000) as sink:
        sink.write_readings(batch)
        assert sink.flush(30)
        assert sink.stats().written == n
    ans = rows(stack, db, 'SELECT count("level_m"), sum("level_m") FROM "reading"')
    assert ans[0]["count"] == n
    assert ans[0]["sum"] == pytest.approx(float(np.linspace(0.0, 10.0, n).sum()))


def test_a_rejected_batch_is_dropped_with_a_counted_logged_reason(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gyeongbo.influx_sink")
    db = fresh_db(stack, "rejected")
    with sink_for(stack, db) as sink:
        sink.write_lines([f"reading,station=A level_m=1.5 {T0}"])
        assert sink.flush(10)
        # level_m is a float now: a string is a field type conflict, HTTP 400, not retried.
        sink.write_lines([f'reading,station=A level_m="high" {T0 + 1}'])
        assert sink.flush(10)
        st = sink.stats()
    assert (st.written, st.dropped_by_reason, st.errors, st.retries) == (1, {"rejected": 1}, 1, 0)
    assert any(
        "reason=rejected" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records
    )


def _level_batch(station: str, start_ms: int, n: int) -> ReadingBatch:
    return ReadingBatch(
        station=np.full(n, station),
        kind=np.zeros(n, np.uint8),
        ts_ms=start_ms + np.arange(n, dtype=np.int64),
        seq=np.full(n, -1, np.int64),
        exercise=np.zeros(n, bool),
        values={"level_m": np.full(n, 1.0)},
    )


def _alert(ts_ms: int) -> AlertEvent:
    ts = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).isoformat(timespec="milliseconds")
    return AlertEvent(
        alert_id=f"flood:11030:{ts_ms}",
        hazard="flood",
        zone="11030",
        zone_name="용산구",
        level="caution",
        previous="attention",
        level_ko="주의",
        ts=ts,
        action="escalate",
        stations=["1018683"],
        event_id=f"ev-{ts_ms}",
    )


def test_influxd_outage_never_blocks_and_the_backlog_is_flushed_or_dropped_oldest(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    """Stop influxd mid-write and start it again.

    ``roomy`` has room for the whole outage: everything is written after the restart.
    ``tight`` holds 1,000 lines: the oldest readings are dropped (counted, logged), the rest
    written, and the alert transitions of the outage are kept although they are older.
    """
    caplog.set_level(logging.INFO, logger="gyeongbo.influx_sink")
    db_roomy, db_tight = fresh_db(stack, "outage_roomy"), fresh_db(stack, "outage_tight")
    opts: dict[str, Any] = {"batch_size": 500, "max_retries": 3, "max_retry_delay_ms": 800}
    roomy = sink_for(stack, db_roomy, max_buffer_lines=100_000, **opts)
    tight = sink_for(stack, db_tight, max_buffer_lines=1_000, **opts)
    sinks = (roomy, tight)
    try:
        for k in range(5):
            for s in sinks:
                s.write_readings(_level_batch("before", T0 + k * 100, 100))
        assert all(s.flush(20) for s in sinks)

        stop(stack.procs["influxd"].pid)
        slowest = 0.0
        for k in range(40):  # 4,000 lines per sink while influxd is down, over ~2 s
            for s in sinks:
                t = time.perf_counter()
                s.write_readings(_level_batch("during", T0 + k * 100, 100))
                if k < 5:  # alert transitions early in the outage: older than most readings
                    s.write_alerts([_alert(T0 + k * 100)])
                slowest = max(slowest, time.perf_counter() - t)
            time.sleep(0.05)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(s.stats().retries for s in sinks):
            time.sleep(0.1)
        during = [s.stats() for s in sinks]
        assert slowest < 0.25, f"a write call took {slowest:.3f} s while influxd was down"
        assert all(not st.healthy and st.retries > 0 and st.written == 500 for st in during)
        assert during[1].dropped_by_reason.get("buffer_full", 0) > 0
        assert during[1].buffered <= 1_000
    finally:
        c = stack.config
        stack.procs["influxd"] = influx.start(
            stack.home, c.influxd_port, c.influxd_port + 1000, [stack.settings.influx.bucket]
        )
    assert all(s.flush(60) for s in sinks)
    st_roomy, st_tight = roomy.close(), tight.close()

    count_q = 'SELECT count("level_m") FROM "reading"'
    alerts_q = 'SELECT count("level_num") FROM "alert"'
    assert (st_roomy.accepted, st_roomy.written, st_roomy.dropped) == (4_505, 4_505, 0)
    assert rows(stack, db_roomy, count_q)[0]["count"] == 4_500
    assert st_tight.accepted == 4_505
    assert st_tight.dropped == st_tight.dropped_by_reason["buffer_full"] > 0
    assert st_tight.written + st_tight.dropped == 4_505
    # Readings are dropped before the alert transitions, although those are older.
    assert rows(stack, db_tight, alerts_q)[0]["count"] == 5
    assert rows(stack, db_tight, count_q)[0]["count"] == st_tight.written - 5
    # Drop-oldest: the newest readings of the outage made it.
    newest = rows(
        stack, db_tight, 'SELECT last("level_m") FROM "reading" WHERE "station" = \'during\''
    )
    assert newest[0]["time"] == T0 + 39 * 100 + 99
    messages = [r.getMessage() for r in caplog.records]
    assert any("is not accepting writes" in m and db_tight in m for m in messages)
    assert any("reason=buffer_full" in m for m in messages)
    assert any("accepts writes again" in m for m in messages)


def test_closing_with_influxdb_unreachable_drops_with_reason_closed() -> None:
    from gyeongbo.settings import InfluxSettings
    from gyeongbo.stack.procs import free_port

    sink = InfluxSink(
        InfluxSettings(url=f"http://127.0.0.1:{free_port()}"),
        flush_interval_ms=50,
        retry_interval_ms=100,
    )
    sink.write_lines([f"m v=1.0 {T0}", f"m v=2.0 {T0 + 1}"])
    t = time.perf_counter()
    st = sink.close(timeout_s=0.5)
    assert time.perf_counter() - t < 3
    assert (st.accepted, st.written, st.dropped_by_reason) == (2, 0, {"closed": 2})
    assert influx_sink.DROP_REASONS == ("buffer_full", "rejected", "closed")


def test_a_retry_outliving_close_kills_no_thread() -> None:
    """influxdb-client's force-close drops its disposable; a retry finishing afterwards used
    to die with an AttributeError in a reactivex thread (seen in CI as an unhandled-thread
    warning). The sink puts a harmless one back."""
    import threading

    from gyeongbo.settings import InfluxSettings
    from gyeongbo.stack.procs import free_port

    died: list[BaseException | None] = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: died.append(args.exc_value)
    try:
        sink = InfluxSink(
            InfluxSettings(url=f"http://127.0.0.1:{free_port()}"),
            flush_interval_ms=20,
            retry_interval_ms=300,
            max_retries=2,
            close_timeout_s=0.3,
        )
        sink.write_lines([f"m v={k}.0 {T0 + k}" for k in range(5)])
        time.sleep(0.2)  # the first attempt fails; its retry is scheduled
        sink.close(timeout_s=0.1)
        time.sleep(4.0)  # long enough for the retries to give up after the force-close
    finally:
        threading.excepthook = old_hook
    assert died == []


def test_a_failed_write_mixing_both_lanes_goes_back_line_by_line() -> None:
    """The client may merge readings and event lines into one request; when it fails, each
    line returns to its own lane, so a full buffer still drops readings first."""
    from gyeongbo.settings import InfluxSettings
    from gyeongbo.stack.procs import free_port

    sink = InfluxSink(
        InfluxSettings(url=f"http://127.0.0.1:{free_port()}"),
        max_buffer_lines=3,
        retry_interval_ms=100,
    )
    try:
        with sink._lock:  # stop the feeder from taking what we put back
            sink._inflight = 10**9
        mixed = "\n".join(
            [
                f"reading,station=a v=1.0 {T0}",
                f"alert,zone=z level_num=2i {T0}",
                f"reading,station=b v=2.0 {T0}",
            ]
        )
        sink._on_error(("b", "o", "ms"), mixed, ConnectionError("down"))
        assert [n for _, n in sink._bulk] == [2] and [n for _, n in sink._buffer] == [1]
        sink.write_lines([f"reading,station=c v=3.0 {T0 + 1}"], bulk=True)  # over the bound
        assert [d for d, _ in sink._buffer] == [f"alert,zone=z level_num=2i {T0}".encode()]
        assert sink.stats().dropped_by_reason == {"buffer_full": 2}
    finally:
        with sink._lock:
            sink._inflight = 0
        sink.close(timeout_s=0.5)
