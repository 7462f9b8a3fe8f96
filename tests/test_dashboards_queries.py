"""Every dashboard query, run against the real influxd after a drill through the whole pipeline.

The drill (``tests/scenarios/dashboard-drill.yaml``: four hours at 360×, about 40 s) is
published by the drill runner as the drill gateway, through mosquitto, a bridge, the
Kafka-protocol broker and a worker into a database of its own; nothing in this module writes
to InfluxDB. Its scenario gives every panel its data: a flood through 관심 and 주의 and a
flash flood that clears, heavy rain in three provinces (the headquarters' stage proposal), a
fine-dust 주의보, a bridge pier through 심각, an earthquake with its catalogue event (SMS to
every drill handset: the delivery table), a gauge that falls silent (sensor health and
data-quality alerts) and malformed payloads (the bridge's rejected readings). The worker
writes the station layer at start and its figures, the bridge its own. After the drill a
real gateway sends a few live readings, which the drill toggle must tell apart.

Each query is taken from the committed JSON, its variables substituted as Grafana would
(``$exercise``, ``$timeFilter`` → the drill's range, ``$__interval`` → the panel's minimum
interval or 10 s, the datasource's shortest), and must return what
:class:`dashboards.gyeongbo.Expect` says: at least one series, exactly the expected columns,
each with a value somewhere and each rate above zero somewhere, series grouped by exactly the
expected tags. A failure names the dashboard, the panel and the query. What a drill leaves
quiet is declared in the dashboard code with its reason (``Expect.quiet``), listed here, and
checked to be quiet indeed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from alerting.model import parse_rfc3339_ms
from dashboards.build import JSON_DIR, generate
from dashboards.gyeongbo import Expect
from gyeongbo.events import AlertEvent
from gyeongbo.stack import influx
from gyeongbo.stack.stack import Stack
from gyeongbo.vocab import Level
from simulators.drill import DrillOptions, run_drill
from simulators.report import DrillReport
from streams.pipeline import start_local_pipeline
from tests.pipeline_support import alert_events, isolated_settings, wait_for
from tests.test_bridge_support import publish_all, publisher

pytestmark = pytest.mark.stack

SCENARIO = str(Path(__file__).parent / "scenarios" / "dashboard-drill.yaml")
SPEED = 360.0
#: Wall seconds to wait, after the drill, for every panel to have its data (the bridge
#: writes its figures every 10 s; rates need two of them).
SETTLE_S = 60.0
#: The live readings a real gateway sends after the drill (한강대교, metres).
LIVE_LEVEL_M = 2.0

#: (dashboard, panel, column) a drill leaves quiet, as the dashboard code declares them.
QUIET = {
    ("gyeongbo-operations", "InfluxDB sink (lines/s)", "influx_dropped"),
    ("gyeongbo-operations", "InfluxDB sink (lines/s)", "influx_retries"),
}

_VARS = re.compile(r"\$\{?\w|\[\[")
#: The columns a query computes as rates (``non_negative_derivative(max("x"), 1s) AS "y"``).
_RATE = re.compile(r'non_negative_derivative\((?:[^()]|\([^()]*\))*\) AS "([^"]+)"')


def substitute(q: str, *, exercise: str, start_ms: int, end_ms: int, interval: str) -> str:
    out = (
        q.replace("$timeFilter", f"time >= {start_ms}ms AND time <= {end_ms}ms")
        .replace("$__interval", interval)
        .replace("$exercise", exercise)
    )
    assert not _VARS.search(out), f"unsubstituted variable in {out}"
    return out


@dataclass(frozen=True)
class Case:
    uid: str
    key: tuple[int, str]
    title: str
    query: str
    interval: str | None

    @property
    def name(self) -> str:
        return f"{self.uid} / {self.title} / {self.key[1]}"


def _cases() -> list[Case]:
    cases = []
    for path in sorted(JSON_DIR.glob("*.json")):
        dash = json.loads(path.read_text(encoding="utf-8"))
        for p in dash["panels"]:
            for t in p.get("targets", []):
                key = (p["id"], t["refId"])
                cases.append(Case(dash["uid"], key, p["title"], t["query"], p.get("interval")))
        for a in dash["annotations"]["list"]:
            cases.append(Case(dash["uid"], (0, a["name"]), a["name"], a["query"], None))
    return cases


CASES = _cases()
EXPECTS = {(b.dashboard.uid, *key): exp for b in generate() for key, exp in b.expects.items()}


@dataclass(frozen=True)
class Drill:
    db: str
    start_ms: int
    end_ms: int
    report: DrillReport
    #: Every event on the drill's ``alerts`` topic.
    alerts: list[AlertEvent]


def run(stack: Stack, db: str, q: str) -> list[dict[str, Any]]:
    ans = influx.query(stack.influx_url, q, db=db)
    (res,) = ans["results"]
    assert "error" not in res, f"{res['error']}\n{q}"
    series: list[dict[str, Any]] = res.get("series", [])
    return series


def _active(values: list[Any]) -> bool:
    return any(v is not None and v != 0 and v != "" for v in values)


def problems(case: Case, exp: Expect, series: list[dict[str, Any]]) -> list[str]:
    """What the query's result lacks against the panel's expectation (empty: none)."""
    if "*" in exp.quiet:
        return []
    if not series:
        return ["no series"]
    out = []
    for s in series:
        if s["columns"] != list(exp.columns):
            out.append(f"columns {s['columns']}, expected {list(exp.columns)}")
        if sorted(s.get("tags", {})) != sorted(exp.group_by):
            out.append(f"grouped by {sorted(s.get('tags', {}))}, expected {list(exp.group_by)}")
        if not s["values"]:
            out.append(f"an empty series {s.get('tags', {})}")
    if out:
        return out
    rates = set(_RATE.findall(case.query))
    for i, col in enumerate(exp.columns[1:], start=1):
        if col in exp.quiet:
            continue
        values = [row[i] for s in series for row in s["values"]]
        if all(v is None for v in values):
            out.append(f"column {col!r} holds no value")
        elif col in rates and not _active(values):
            out.append(f"rate {col!r} never above zero")
    return out


def _wait_for_panels(stack: Stack, db: str, start_ms: int) -> None:
    """Until every query has what its panel expects (or ``SETTLE_S``): the sinks flush
    every second, the bridge writes its figures every 10 s."""

    def missing() -> list[str]:
        end_ms = time.time_ns() // 1_000_000 + 60_000
        out = []
        for c in CASES:
            q = substitute(
                c.query,
                exercise="true",
                start_ms=start_ms,
                end_ms=end_ms,
                interval=c.interval or "10s",
            )
            if problems(c, EXPECTS[(c.uid, *c.key)], run(stack, db, q)):
                out.append(c.name)
        return out

    deadline = time.monotonic() + SETTLE_S
    while missing() and time.monotonic() < deadline:
        time.sleep(2.0)


def _send_live(stack: Stack, topic_root: str) -> None:
    """The Hangang Bridge gauge's own gateway sends live readings (``exercise`` false)."""
    client = publisher(stack)
    now = time.time_ns() // 1_000_000
    payloads = [
        json.dumps(
            {
                "station": "1018683",
                "ts": now - 1000 * (5 - i),
                "seq": i,
                "values": {"level_m": LIVE_LEVEL_M},
                "exercise": False,
            }
        )
        for i in range(5)
    ]
    try:
        publish_all(client, [(f"{topic_root}/water_level/1018683", p) for p in payloads])
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture(scope="module")
def drill(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Drill]:
    db = f"dash_{time.monotonic_ns()}"
    assert "error" not in str(influx.query(stack.influxd_url, f'CREATE DATABASE "{db}"'))
    tmp = tmp_path_factory.mktemp("dash")
    settings = isolated_settings(stack, tmp)
    settings = settings.model_copy(
        update={"influx": settings.influx.model_copy(update={"bucket": db})}
    )
    with start_local_pipeline(settings, logs=tmp / "logs"):
        report = run_drill(
            SCENARIO,
            settings,
            DrillOptions(
                speed=SPEED,
                start_pipeline=False,
                show_progress=False,
                settle_s=60.0,
                check_clock=False,
            ),
        )
        start_ms = parse_rfc3339_ms(report.anchor) - 60_000
        _send_live(stack, settings.mqtt.topic_root)
        wait_for(
            lambda: run(
                stack,
                db,
                'SELECT "level_m" FROM "reading" WHERE "exercise" = \'false\'',
            ),
            30,
            "the live readings in InfluxDB",
        )
        _wait_for_panels(stack, db, start_ms)
        alerts = alert_events(settings)
    yield Drill(db, start_ms, time.time_ns() // 1_000_000 + 60_000, report, alerts)


def test_every_query_has_an_expectation() -> None:
    assert sorted((c.uid, *c.key) for c in CASES) == sorted(EXPECTS)
    assert len(CASES) > 30


def test_the_check_names_what_a_panel_lacks() -> None:
    """:func:`problems` on hand-made results (no stack): what counts as empty."""
    q = (
        'SELECT non_negative_derivative(max("a_total"), 1s) AS "a", max("b") AS "b" '
        'FROM "pipeline" WHERE $timeFilter GROUP BY time($__interval), "component"'
    )
    case = Case("d", (1, "A"), "panel", q, None)
    exp = Expect(("time", "a", "b"), ("component",))

    def series(rows: list[list[Any]], tags: dict[str, str] | None = None) -> dict[str, Any]:
        return {"columns": ["time", "a", "b"], "tags": tags or {"component": "x"}, "values": rows}

    assert problems(case, exp, [series([[0, 0.0, 1.0], [10, 2.5, None]])]) == []
    assert problems(case, exp, []) == ["no series"]
    assert problems(case, exp, [series([[0, 0.0, None]])]) == [
        "rate 'a' never above zero",
        "column 'b' holds no value",
    ]
    assert problems(case, exp, [series([[0, 1.0, 1.0]], {"instance": "i"})]) == [
        "grouped by ['instance'], expected ['component']"
    ]
    quiet = Expect(("time", "a", "b"), ("component",), quiet={"a": "never in a drill"})
    assert problems(case, quiet, [series([[0, 0.0, 1.0]])]) == []
    assert problems(case, Expect(("time", "a", "b"), quiet={"*": "why"}), []) == []


def test_the_drill_passed(drill: Drill) -> None:
    """The scenario did what it says (so an empty panel is the dashboard's fault)."""
    rep = drill.report
    assert rep.passed, (rep.findings, [o for o in rep.outcomes if o.failed])
    assert rep.hq_stages and rep.sms and rep.observed_rejections


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_query_returns_the_series_the_panel_expects(stack: Stack, drill: Drill, case: Case) -> None:
    exp: Expect = EXPECTS[(case.uid, *case.key)]
    q = substitute(
        case.query,
        exercise="true",
        start_ms=drill.start_ms,
        end_ms=drill.end_ms,
        interval=case.interval or "10s",
    )
    found = problems(case, exp, run(stack, drill.db, q))
    assert not found, f"{case.name}: " + "; ".join(found) + f"\n{q}"


def test_what_a_drill_leaves_quiet_is_declared_and_quiet(stack: Stack, drill: Drill) -> None:
    """The panels' own declarations, each with its reason, are exactly :data:`QUIET`, and
    each declared column is indeed empty or zero after the drill."""
    declared = {}
    for c in CASES:
        for col, why in EXPECTS[(c.uid, *c.key)].quiet.items():
            assert why.strip(), f"{c.name}: {col} declared quiet without a reason"
            declared[(c.uid, c.title, col)] = c
    assert set(declared) == QUIET
    for (_, _, col), c in declared.items():
        exp = EXPECTS[(c.uid, *c.key)]
        q = substitute(
            c.query, exercise="true", start_ms=drill.start_ms, end_ms=drill.end_ms, interval="10s"
        )
        i = exp.columns.index(col)
        values = [row[i] for s in run(stack, drill.db, q) for row in s["values"]]
        assert not _active(values), f"{c.name}: {col} is declared quiet but shows {values}"


def _by_title() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(JSON_DIR.glob("*.json")):
        for p in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            out[p["title"]] = [t["query"] for t in p.get("targets", [])]
    return out


def test_the_panels_show_what_the_pipeline_sent(stack: Stack, drill: Drill) -> None:
    """The toggle separates drill from live data, and the alert panels show the drill's
    alert events as the ``alerts`` topic carried them: every one in the history, and the
    latest state of each hazard × zone that is not cleared as active."""
    by_title = _by_title()

    def values(title: str, exercise: str) -> list[Any]:
        (q,) = by_title[title]
        q = substitute(
            q, exercise=exercise, start_ms=drill.start_ms, end_ms=drill.end_ms, interval="1m"
        )
        return [row for s in run(stack, drill.db, q) for row in s["values"]]

    gauge = "한강대교 Hangang Bridge (1018683) water level"
    assert {r[1] for r in values(gauge, "false")} == {LIVE_LEVEL_M}
    assert max(r[1] for r in values(gauge, "true")) > 8.5
    assert values("Alert history", "false") == []
    assert values("Active alerts", "false") == []
    assert values("Open sensor faults", "false") == []

    history = values("Alert history", "true")
    assert len(history) == len(drill.alerts) > 0
    latest: dict[tuple[str, str], AlertEvent] = {}
    for ev in sorted(drill.alerts, key=lambda e: parse_rfc3339_ms(e.ts)):
        latest[(ev.hazard, ev.zone)] = ev
    standing = sorted(int(Level.parse(ev.level)) for ev in latest.values() if ev.level != "cleared")
    assert sorted(r[1] for r in values("Active alerts", "true")) == standing
    (q,) = by_title["Open sensor faults"]
    q = substitute(q, exercise="true", start_ms=drill.start_ms, end_ms=drill.end_ms, interval="1m")
    open_faults = {(s["tags"]["station"], s["tags"]["check"]) for s in run(stack, drill.db, q)}
    assert open_faults == {("1019630", "health.deadman")}  # the gauge that fell silent
