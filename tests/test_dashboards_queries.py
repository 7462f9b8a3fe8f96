"""Every dashboard query, run against the real influxd after a short drill written by the sink.

The drill (30 minutes up to now, one step a minute, all ``exercise=true``) covers every kind
of record the dashboards read: readings of every registry station (a flood wave at the staged
gauges, rain, a fine-dust episode, structural drift, ground motion), public and
operators-only detections, sensor-health faults (one open, one recovered), alert transitions
at every level including an operator ack and a clear, and a headquarters stage. The station
layer and the pipeline figures (throughput, lag, rejected readings, the sink's counters) are
not written by the test: a real bridge and worker write them to the same database, the worker
its registry's stations at start, the bridge its counters after a gateway sent one good and
one malformed batch. A little live data (``exercise=false``) shows the drill toggle filters.

Each query is taken from the committed JSON, its variables substituted as Grafana would
(``$exercise``, ``$timeFilter`` → the drill's range, ``$__interval`` → the panel's minimum
interval or 10 s, the datasource's shortest), and must return what
:class:`dashboards.gyeongbo.Expect` says: at least one series, exactly the expected columns
(each with a value somewhere), series grouped by exactly the expected tags.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dashboards.build import JSON_DIR, generate
from dashboards.gyeongbo import Expect
from gyeongbo.batch import KIND_CODES, ReadingBatch
from gyeongbo.events import (
    ActionName,
    AlertEvent,
    DataQualityAlert,
    Detection,
    HQStageEvent,
    LevelName,
)
from gyeongbo.registry import REPO_ROOT, load_registry
from gyeongbo.stack import influx
from gyeongbo.stack.stack import Stack
from gyeongbo.vocab import Kind, Level
from streams.influx_sink import InfluxSink
from streams.pipeline import LocalPipeline
from tests.pipeline_support import isolated_settings, wait_for
from tests.test_bridge_support import publish_all, publisher

pytestmark = pytest.mark.stack

REGISTRY = load_registry(REPO_ROOT / "config" / "stations.yaml")
STEPS = 30
STEP_MS = 60_000


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _readings(t0: int) -> ReadingBatch:
    stations = [REGISTRY.stations[s] for s in REGISTRY.station_ids()]
    rows_station, rows_kind, rows_ts = [], [], []
    for k in range(STEPS):
        for st in stations:
            rows_station.append(st.id)
            rows_kind.append(KIND_CODES[st.kind])
            rows_ts.append(t0 + k * STEP_MS)
    n = len(rows_station)
    cols = {
        name: np.full(n, np.nan)
        for name in (
            "level_m",
            "rain_mm",
            "interval_s",
            "pm10_ugm3",
            "pm25_ugm3",
            "o3_ppm",
            "tilt_rad",
            "crack_mm",
            "vibration_cms",
            "pga_g",
        )
    }
    for i, (sid, ts) in enumerate(zip(rows_station, rows_ts, strict=True)):
        st = REGISTRY.stations[sid]
        k = (ts - t0) // STEP_MS
        if st.kind is Kind.WATER_LEVEL:
            top = st.levels.alert + 0.3 if st.levels else 4.0
            cols["level_m"][i] = round(top - 4.0 + 4.0 * k / (STEPS - 1), 3)
        elif st.kind is Kind.RAINFALL:
            cols["rain_mm"][i], cols["interval_s"][i] = 5.0, 60.0
        elif st.kind is Kind.AIR_QUALITY:
            cols["pm10_ugm3"][i], cols["pm25_ugm3"][i] = 120.0 + 2 * k, 60.0 + k
            cols["o3_ppm"][i] = 0.1 + 0.002 * k
        elif st.kind is Kind.STRUCTURAL:
            cols["tilt_rad"][i] = (-1) ** k * 0.00005 * k
            cols["crack_mm"][i], cols["vibration_cms"][i] = 2.0 + 0.05 * k, 0.1
        elif st.kind is Kind.SEISMIC:
            cols["pga_g"][i] = 0.001 * (1 + k % 3)
    return ReadingBatch(
        station=np.array(rows_station),
        kind=np.array(rows_kind, dtype=np.uint8),
        ts_ms=np.array(rows_ts, dtype=np.int64),
        seq=np.arange(n, dtype=np.int64),
        exercise=np.ones(n, dtype=bool),
        values=cols,
    )


def _det(
    t0: int, k: int, station: str, hazard: str, level: LevelName, rule: str, value: float, **kw: Any
) -> Detection:
    return Detection(
        station=station,
        hazard=hazard,
        level=level,
        ts_ms=t0 + k * STEP_MS + 1,
        rule=rule,
        value=value,
        exercise=True,
        **kw,
    )


def _alert(
    t0: int,
    k: int,
    hazard: str,
    zone: str,
    level: LevelName,
    previous: LevelName,
    action: ActionName,
    **kw: Any,
) -> AlertEvent:
    return AlertEvent(
        alert_id=f"{hazard}:{zone}:drill",
        hazard=hazard,
        zone=zone,
        zone_name=f"zone {zone}",
        level=level,
        previous=previous,
        level_ko=Level.parse(level).ko,
        ts=_iso(t0 + k * STEP_MS + 2),
        action=action,
        exercise=True,
        event_id=f"{hazard}:{zone}:{k}",
        **kw,
    )


def write_drill(sink: InfluxSink, t0: int) -> None:
    """The drill's events (the station layer and the pipeline figures come from a real
    bridge and worker: :func:`run_pipeline`)."""
    sink.write_readings(_readings(t0))
    # A little live data: the toggle must tell it apart.
    sink.write_readings(
        ReadingBatch.from_rows(
            [
                {
                    "station": "1018683",
                    "kind": "water_level",
                    "ts_ms": t0 + k * STEP_MS + 3,
                    "values": {"level_m": 2.0},
                }
                for k in range(STEPS)
            ]
        )
    )
    sink.write_detections(
        [
            _det(t0, 5, "1018683", "flood", "attention", "flood.gauge_stage", 4.6, threshold=4.5),
            _det(t0, 15, "1018683", "flood", "caution", "flood.gauge_stage", 8.6, threshold=8.5),
            _det(
                t0,
                20,
                "1018683",
                "flood",
                "alert",
                "flood.forecast",
                9.9,
                threshold=10.5,
                projected_crossing_ms=t0 + 26 * STEP_MS,
                confidence=0.7,
            ),
            _det(t0, 25, "1018683", "flood", "alert", "flood.gauge_stage", 10.6, threshold=10.5),
            _det(t0, 12, "111131", "pm10", "caution", "air.pm10", 151.0, threshold=150.0),
            _det(
                t0,
                18,
                "SFC-MAPO-P5",
                "structural",
                "attention",
                "structural.crack_mm",
                3.0,
                threshold=3.0,
            ),
            _det(t0, 22, "1018640", "flood", "attention", "anomaly.level_m", 3.9, public=False),
            _det(t0, 20, "108", "sensor_health", "alert", "health.deadman", 0.0, public=False),
            _det(
                t0,
                10,
                "202",
                "sensor_health",
                "alert",
                "health.rain_mm",
                499.0,
                public=False,
                details={"faults": ["range"], "channel": "rain_mm"},
            ),
            _det(
                t0,
                14,
                "202",
                "sensor_health",
                "cleared",
                "health.rain_mm",
                5.0,
                public=False,
                details={"faults": [], "channel": "rain_mm"},
            ),
        ]
    )
    sink.write_alerts(
        [
            _alert(t0, 5, "flood", "11030", "attention", "cleared", "raise", stations=["1018683"]),
            _alert(
                t0,
                15,
                "flood",
                "11030",
                "caution",
                "attention",
                "escalate",
                stations=["1018683"],
                evidence={"value": 8.6, "threshold": 8.5},
            ),
            _alert(t0, 25, "flood", "11030", "alert", "caution", "escalate", stations=["1018683"]),
            _alert(t0, 26, "flood", "11030", "alert", "alert", "ack", actor="duty officer"),
            _alert(t0, 12, "pm10", "seoul-center", "caution", "cleared", "raise"),
            _alert(t0, 24, "pm10", "seoul-center", "cleared", "caution", "clear"),
            _alert(
                t0,
                28,
                "structural",
                "seongsu-bridge-500m",
                "serious",
                "cleared",
                "raise",
                stations=["SFC-SEONGSU-P7"],
            ),
        ]
    )
    sink.write_dq_alerts(
        [
            DataQualityAlert(
                alert_id="exercise:sensor_health:11010:x",
                zone="11010",
                zone_name="종로구",
                severity="critical",
                previous="cleared",
                ts=_iso(t0 + 20 * STEP_MS),
                action="raise",
                exercise=True,
                stations=["108"],
                checks={"108": ["deadman"]},
            )
        ]
    )
    sink.write_hq(
        [
            HQStageEvent(
                hazard_group="storm_flood",
                stage=1,
                previous=0,
                ts=_iso(t0 + 20 * STEP_MS),
                action="propose",
                exercise=True,
            )
        ]
    )
    # a drill quake's fan-out, twice as it progresses (the panel shows the last counts)
    from streams.influx_lines import delivery_lines
    from streams.store import EventSummary

    for k, (sub, dlv) in enumerate([(40, 10), (100, 97)]):
        summary = EventSummary(
            event_id="exercise:earthquake:event:t:37",
            hazard="earthquake",
            exercise=True,
            recipients=100,
            messages=100,
            planned=100 - sub,
            submitted=sub - 1,
            delivered=dlv,
            undelivered=1,
            failed=0,
            permanent=0,
            opted_out=1,
            first_planned_ms=t0,
            last_submitted_ms=t0 + 1500,
            fanout_s=1.5,
        )
        sink.write_lines(delivery_lines([summary], t0 + (STEPS - 2 + k) * STEP_MS))


def run_pipeline(stack: Stack, tmp: Path, db: str) -> None:
    """A real bridge and worker writing to ``db``: the worker writes the registry's stations
    at start and its figures every second; the bridge its own, including a rejected payload
    that a gateway sends, every second. Returns once InfluxDB holds them."""
    settings = isolated_settings(stack, tmp)
    settings = settings.model_copy(
        update={
            "influx": settings.influx.model_copy(update={"bucket": db}),
            "worker": settings.worker.model_copy(update={"log_every_s": 1.0}),
        }
    )
    pipe = LocalPipeline(settings=settings, logs=tmp / "logs")
    try:
        pipe.start_bridge({"GYEONGBO_BRIDGE__INFLUX_INTERVAL_S": "1"})
        pipe.start_worker()
        client = publisher(stack)  # as the gateway, on the stack's gateways' listener
        root = settings.mqtt.topic_root
        now = time.time_ns() // 1_000_000
        good = [
            {
                "station": "1018683",
                "ts": now - 1000 * (5 - i),
                "seq": i,
                "values": {"level_m": 3.1},
                "exercise": True,
            }
            for i in range(5)
        ]
        publish_all(
            client,
            [
                (f"{root}/water_level/_batch/hrfco-seoul", p)
                for p in (json.dumps(good), "{not json")
            ],
        )
        client.loop_stop()
        client.disconnect()

        def written() -> bool:
            def one(q: str) -> list[Any]:
                ans = influx.query(stack.influx_url, q, db=db)["results"][0]
                return [row for s in ans.get("series", []) for row in s["values"]]

            return bool(
                one('SELECT count("lat") FROM "station"')
                and one(
                    'SELECT max("rejected_total") FROM "pipeline" WHERE "component" = \'bridge\' '
                    'AND "rejected_total" >= 1'
                )
                and one(
                    'SELECT max("readings_total") FROM "pipeline" WHERE "component" = \'worker\' '
                    'AND "readings_total" >= 5'
                )
            )

        wait_for(written, 60, "the stations and both components' figures in InfluxDB", 1.0)
        # 20 s more: two 10 s intervals (the datasource's shortest) for the rates to compare
        time.sleep(21)
    finally:
        pipe.stop()


_VARS = re.compile(r"\$\{?\w|\[\[")


def substitute(q: str, *, exercise: str, start_ms: int, end_ms: int, interval: str) -> str:
    out = (
        q.replace("$timeFilter", f"time >= {start_ms}ms AND time <= {end_ms}ms")
        .replace("$__interval", interval)
        .replace("$exercise", exercise)
    )
    assert not _VARS.search(out), f"unsubstituted variable in {out}"
    return out


@pytest.fixture(scope="module")
def drill(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, int, int]:
    db = f"dash_{time.monotonic_ns()}"
    assert "error" not in str(influx.query(stack.influxd_url, f'CREATE DATABASE "{db}"'))
    now = time.time_ns() // 1_000_000
    t0 = (now - STEPS * STEP_MS) // STEP_MS * STEP_MS
    with InfluxSink(
        stack.app_settings().influx, registry=REGISTRY, bucket=db, flush_interval_ms=100
    ) as sink:
        write_drill(sink, t0)
        assert sink.flush(30)
        st = sink.stats()
        assert st.dropped == 0 and st.written == st.accepted
    run_pipeline(stack, tmp_path_factory.mktemp("dash"), db)
    return db, t0 - STEP_MS, time.time_ns() // 1_000_000 + STEP_MS


def _cases() -> list[tuple[str, tuple[int, str], str, str | None]]:
    cases = []
    for path in sorted(JSON_DIR.glob("*.json")):
        dash = json.loads(path.read_text(encoding="utf-8"))
        for p in dash["panels"]:
            for t in p.get("targets", []):
                cases.append((dash["uid"], (p["id"], t["refId"]), t["query"], p.get("interval")))
        for a in dash["annotations"]["list"]:
            cases.append((dash["uid"], (0, a["name"]), a["query"], None))
    return cases


CASES = _cases()
EXPECTS = {(b.dashboard.uid, *key): exp for b in generate() for key, exp in b.expects.items()}


def run(stack: Stack, db: str, q: str) -> list[dict[str, Any]]:
    ans = influx.query(stack.influx_url, q, db=db)
    (res,) = ans["results"]
    assert "error" not in res, f"{res['error']}\n{q}"
    series: list[dict[str, Any]] = res.get("series", [])
    return series


def test_every_query_has_an_expectation() -> None:
    assert sorted((uid, *key) for uid, key, _, _ in CASES) == sorted(EXPECTS)
    assert len(CASES) > 30


@pytest.mark.parametrize(
    ("uid", "key", "query", "interval"), CASES, ids=[f"{c[0]}:{c[1][0]}:{c[1][1]}" for c in CASES]
)
def test_query_returns_the_series_the_panel_expects(
    stack: Stack,
    drill: tuple[str, int, int],
    uid: str,
    key: tuple[int, str],
    query: str,
    interval: str | None,
) -> None:
    db, start, end = drill
    exp: Expect = EXPECTS[(uid, *key)]
    q = substitute(query, exercise="true", start_ms=start, end_ms=end, interval=interval or "10s")
    series = run(stack, db, q)
    assert series, f"no series for {q}"
    for s in series:
        assert s["columns"] == list(exp.columns), q
        assert sorted(s.get("tags", {})) == sorted(exp.group_by), q
        assert s["values"], q
    for i, col in enumerate(exp.columns[1:], start=1):
        assert any(row[i] is not None for s in series for row in s["values"]), f"{col}: {q}"


def test_the_drill_toggle_separates_drill_from_live_data(
    stack: Stack, drill: tuple[str, int, int]
) -> None:
    db, start, end = drill
    by_title: dict[str, list[str]] = {}
    for path in sorted(JSON_DIR.glob("*.json")):
        for p in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            by_title[p["title"]] = [t["query"] for t in p.get("targets", [])]

    def values(title: str, exercise: str) -> list[Any]:
        (q,) = by_title[title]
        q = substitute(q, exercise=exercise, start_ms=start, end_ms=end, interval="1m")
        return [row for s in run(stack, db, q) for row in s["values"]]

    gauge = "한강대교 Hangang Bridge (1018683) water level"
    live, drilled = values(gauge, "false"), values(gauge, "true")
    assert {r[1] for r in live} == {2.0}
    assert max(r[1] for r in drilled) > 10.5
    assert values("Alert history", "false") == []
    assert len(values("Alert history", "true")) == 7
    active = values("Active alerts", "true")
    # flood 11030 (acknowledged, still 경계) and the 심각 structural alert; pm10 was cleared.
    assert sorted(r[1] for r in active) == [int(Level.ALERT), int(Level.SERIOUS)]
    assert len(values("Open sensor faults", "true")) == 1  # 108 silent; 202 recovered
    assert values("Open sensor faults", "false") == []
