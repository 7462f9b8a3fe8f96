"""The drill report's judgement: hand-made observed transitions against expectations."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console

from gyeongbo.registry import load_registry
from gyeongbo.settings import REPO_ROOT
from simulators.drill import observe_alerts, truth_times
from simulators.generator import Clock, generate, rfc3339
from simulators.report import DrillReport, Observed, evaluate, print_report
from simulators.scenario import Expectation, Never, load_checked

H = 3600.0


def _e(**kw: Any) -> Expectation:
    return Expectation.model_validate({"hazard": "flood", "zone": "11030", **kw})


def _o(
    level: str,
    t_h: float,
    *,
    zone: str = "11030",
    hazard: str = "flood",
    prev: str = "?",
    stations: tuple[str, ...] = ("1018683",),
) -> Observed:
    return Observed(
        hazard=hazard, zone=zone, level=level, previous=prev, t_s=t_h * H, stations=stations
    )


FLOOD = [
    _e(level="caution", earliest=3 * H, latest=5.8 * H),
    _e(level="alert", earliest=10 * H, latest=12.7 * H),
    _e(level="cleared", earliest=16 * H, latest=21.5 * H),
]


def _statuses(outcomes: list[Any]) -> list[tuple[str, str, float | None]]:
    return [(o.status, o.level, o.observed.t_s / H if o.observed else None) for o in outcomes]


def test_a_clean_flood_meets_every_expectation_and_lists_steps_as_extra() -> None:
    observed = [
        _o("attention", 1.0),
        _o("caution", 5.0),
        _o("alert", 11.9),
        _o("caution", 15.4),  # step down on the way to cleared
        _o("cleared", 19.0),
        _o("caution", 5.1, zone="11190"),  # a zone the scenario does not watch
    ]
    out = evaluate(FLOOD, [], observed)
    assert _statuses(out) == [
        ("met", "caution", 5.0),
        ("met", "alert", 11.9),
        ("met", "cleared", 19.0),
        ("extra", "attention", 1.0),
        ("other", "caution", 5.1),
        ("extra", "caution", 15.4),
    ]
    assert not any(o.failed for o in out)


def test_late_early_missed() -> None:
    observed = [_o("caution", 6.5), _o("alert", 9.0)]
    out = evaluate(FLOOD, [], observed)
    assert _statuses(out) == [
        ("late", "caution", 6.5),
        ("early", "alert", 9.0),
        ("missed", "cleared", None),
    ]
    assert all(o.failed for o in out)


def test_the_transition_inside_the_window_wins_over_an_early_one() -> None:
    out = evaluate(FLOOD[:1], [], [_o("caution", 1.0), _o("cleared", 1.5), _o("caution", 4.0)])
    assert _statuses(out)[0] == ("met", "caution", 4.0)
    # the early one is left over: below the highest expected level, so extra
    assert ("extra", "caution", 1.0) in _statuses(out)


def test_going_higher_than_the_scenario_expects_is_unexpected() -> None:
    out = evaluate(FLOOD, [], [_o("caution", 5.0), _o("alert", 11.0), _o("serious", 13.0)])
    assert ("unexpected", "serious", 13.0) in _statuses(out)


def test_never_rules_and_sensor_health_is_not_public() -> None:
    never = [
        Never.model_validate({"station": "1018658", "note": "faulty"}),
        Never.model_validate({"hazard": "pm25", "zone": "11250", "min_level": "alert"}),
    ]
    observed = [
        _o("serious", 2.0, zone="11230", stations=("1018658",)),
        _o("warning", 2.1, zone="11230", hazard="sensor_health", stations=("1018658",)),
        _o("attention", 2.2, zone="11230", stations=("1018658",)),  # below caution: not public
        _o("caution", 3.0, zone="11250", hazard="pm25", stations=("111274",)),
        _o("alert", 5.0, zone="11250", hazard="pm25", stations=("111274",)),
    ]
    out = evaluate([], never, observed)
    assert [(o.status, o.rule, o.level, o.observed.zone if o.observed else "") for o in out] == [
        ("unexpected", "never", "serious", "11230"),
        ("unexpected", "never", "alert", "11250"),
        ("other", "none", "warning", "11230"),
        ("other", "none", "attention", "11230"),
        ("other", "none", "caution", "11250"),
    ]
    assert out[0].note == "faulty"


def test_station_expectations_at_least_and_zone_lists() -> None:
    expect = [
        Expectation.model_validate(
            {
                "hazard": "sensor_health",
                "station": "1019630",
                "level": "warning",  # a data-quality severity, never a crisis level
                "at_least": True,
                "earliest": 3600,
                "latest": 3 * 3600,
            }
        ),
        Expectation.model_validate(
            {
                "hazard": "pm25",
                "zone": ["11160", "seoul-southwest"],
                "level": "caution",
                "earliest": 0,
                "latest": 9 * 3600,
            }
        ),
    ]
    observed = [
        _o("warning", 2.0, zone="11160", hazard="sensor_health", stations=("1019630",)),
        _o("caution", 7.0, zone="seoul-southwest", hazard="pm25", stations=("111212",)),
    ]
    assert [o.status for o in evaluate(expect, [], observed)] == ["met", "met"]
    # at_least never accepts cleared; exact levels do not accept a higher one
    assert (
        next(
            o.status
            for o in evaluate(
                expect, [], [_o("cleared", 2.0, hazard="sensor_health", stations=("1019630",))]
            )
        )
        == "missed"
    )
    exact = [_e(level="caution", earliest=0, latest=10 * H)]
    assert evaluate(exact, [], [_o("alert", 1.0)])[0].status == "missed"
    # a second zone of the same station alerting higher is extra, not unexpected, under at_least
    two_zones = [
        _o("critical", 2.0, zone="11160", hazard="sensor_health", stations=("1019630",)),
        _o("critical", 2.0, zone="31101", hazard="sensor_health", stations=("1019630",)),
    ]
    assert [o.status for o in evaluate(expect[:1], [], two_zones)] == ["met", "extra"]


def test_sensor_health_expectations_take_severities_and_public_ones_levels() -> None:
    base = {"station": "1019630", "earliest": 0, "latest": 3600}
    with pytest.raises(ValueError, match="severity"):
        Expectation.model_validate({**base, "hazard": "sensor_health", "level": "attention"})
    with pytest.raises(ValueError, match="needs a level"):
        Expectation.model_validate({**base, "hazard": "flood", "level": "critical"})


def test_lead_time_is_truth_minus_observed() -> None:
    out = evaluate(FLOOD[:1], [], [_o("caution", 5.0)], truths={0: 5 * H + 600})
    assert out[0].lead_s == 600.0  # raised ten minutes before the line was crossed


def test_flood_truth_times_come_from_the_generated_gauge() -> None:
    reg = load_registry(REPO_ROOT / "config" / "stations.yaml")
    sc = load_checked("han-river-flood", reg)
    truths = truth_times(sc, reg, generate(sc, reg, seed=1, anchor_ms=0))
    # caution (8.5 m up), alert (10.5 m up), back to attention (8.5 m down), for both zones
    assert [round(truths[i] / 60) for i in range(6)] == [310, 720, 1130] * 2


def _alert(**kw: Any) -> bytes:
    doc = {
        "alert_id": "flood:11030:x",
        "hazard": "flood",
        "zone": "11030",
        "zone_name": "용산구",
        "level": "caution",
        "previous": "attention",
        "level_ko": "주의",
        "action": "raise",
        "exercise": True,
        "stations": ["1018683"],
    }
    doc.update(kw)
    return json.dumps(doc).encode()


def test_alert_events_become_observations_in_scenario_time() -> None:
    clock = Clock(anchor_ms=1_596_661_200_000, wall_start=1000.0, speed=60.0)
    raw = [
        (1005.0, _alert(ts=rfc3339(1_596_661_200_000 + 5 * 3_600_000))),  # t = 5 h
        (1010.0, _alert(ts="not a time")),  # falls back to receive time × speed: 600 s
        (1011.0, _alert(exercise=False, ts=rfc3339(0))),  # real alert on a drill station
        (1012.0, _alert(exercise=False, stations=["999"], ts=rfc3339(0))),  # real, elsewhere
        (1013.0, b"{oops"),
    ]
    findings: list[str] = []
    obs = observe_alerts(raw, clock, {"1018683"}, findings)
    assert [(o.zone, o.level, o.t_s) for o in obs] == [
        ("11030", "caution", 5 * H),
        ("11030", "caution", 600.0),
    ]
    assert len(findings) == 2
    assert "not marked exercise" in findings[0] and "not JSON" in findings[1]


def test_report_renders_and_serialises() -> None:
    out = evaluate(FLOOD, [], [_o("caution", 5.0), _o("alert", 11.0)])
    rep = DrillReport(scenario="han-river-flood", seed=1, speed=60.0, outcomes=out, sms=[])
    assert not rep.passed and rep.counts() == {"met": 2, "missed": 1}
    doc = json.loads(rep.to_json())
    assert doc["passed"] is False and doc["outcomes"][2]["status"] == "missed"
    console = Console(record=True, width=160)
    print_report(rep, console)
    text = console.export_text()
    assert "FAILED" in text and "missed" in text and "주의" in text
    rep.outcomes = out[:2]
    assert rep.passed
    rep.findings.append("SMS SM1 lacks the [훈련] drill prefix")
    assert not rep.passed


@pytest.mark.parametrize(
    "bad", [{"level": "caution", "latest": 60}, {"zone": None, "level": "alert", "latest": 1}]
)
def test_expectations_need_a_target_and_a_window(bad: dict[str, Any]) -> None:
    doc = {"hazard": "flood", "zone": "11030", "earliest": 120, **bad}
    with pytest.raises(ValueError):
        Expectation.model_validate(doc)


def test_the_drill_counts_its_cap_documents_and_names_each_missing_one(tmp_path: Any) -> None:
    from gyeongbo.events import encode
    from simulators.drill import cap_statuses, check_cap_documents
    from streams.cap_feed import CapFeed, file_name
    from tests.test_alerting_cap import flood_events, yongsan

    evs = flood_events(exercise=True)
    alerts = [(0.0, encode(e)) for e in evs]
    assert cap_statuses(tmp_path / "absent") is None
    assert check_cap_documents(alerts, tmp_path / "absent", None, wait_s=0) == (None, [])

    before = cap_statuses(tmp_path)
    feed = CapFeed(tmp_path)
    published = [e for e in evs if feed.publish(e, yongsan()) is not None]
    n, findings = check_cap_documents(alerts, tmp_path, before, wait_s=0)
    assert (n, findings) == (len(published), [])

    # a worker that lost one document: the drill names the transition
    lost = published[1].event_id
    (tmp_path / file_name(lost)).unlink()
    n, findings = check_cap_documents(alerts, tmp_path, before, wait_s=0)
    assert n == len(published) - 1
    assert findings == [f"no CAP document for the public transition {lost}"]


def test_a_drill_into_a_running_stack_starts_a_pipeline_unless_one_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    from gyeongbo.settings import Settings, WorkerSettings
    from gyeongbo.stack.procs import free_port
    from simulators.drill import pipeline_running

    web, metrics = free_port(), free_port()
    monkeypatch.setenv("GYEONGBO_BRIDGE__METRICS_PORT", str(metrics))
    s = Settings(_env_file=None).model_copy(
        update={"worker": WorkerSettings(web_host="127.0.0.1", web_port=web)}
    )
    assert not pipeline_running(s)
    with socket.create_server(("127.0.0.1", web)):
        assert not pipeline_running(s)  # a worker without a bridge is no pipeline
        with socket.create_server(("127.0.0.1", metrics)):
            assert pipeline_running(s)


def _report(obs: list[Observed], sms: list[tuple[str, str]], caps: list[str]) -> dict[str, Any]:
    from simulators.report import transitions_of

    rep = DrillReport(scenario="han-river-flood", seed=1, speed=600.0)
    rep.transitions, rep.duplicate_alerts = transitions_of(obs)
    rep.sms = [{"sid": f"SM{i}", "to": to, "body": body} for i, (to, body) in enumerate(sms)]
    rep.cap = [
        {"identifier": i, "status": "Exercise", "msgType": "Alert", "severity": "Moderate"}
        for i in caps
    ]
    return rep.to_dict()


def _obs(level: str, prev: str, t_h: float, eid: str, zone: str = "11030") -> Observed:
    action = "raise" if prev == "cleared" else "escalate"
    return Observed("flood", zone, level, prev, t_h * H, action=action, event_id=eid)


def test_two_runs_compare_on_what_people_receive_not_on_timing(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from gyeongbo_cli.main import app as cli
    from simulators.compare import compare_reports

    ref = _report(
        [_obs("caution", "cleared", 5.0, "a:t1#1"), _obs("alert", "caution", 11.9, "a:t1#2")],
        [("+8210****9001", "[훈련] 홍수주의보"), ("+8210****9001", "[훈련] 홍수경보")],
        ["a:t1#1", "a:t1#2"],
    )
    # the same decisions taken at other instants (other alert ids, times), one of them
    # delivered twice, the SMS in another order: the same run
    same = _report(
        [
            _obs("caution", "cleared", 5.2, "a:t9#1"),
            _obs("caution", "cleared", 5.2, "a:t9#1"),
            _obs("alert", "caution", 12.3, "a:t9#2"),
        ],
        [("+8210****9001", "[훈련] 홍수경보"), ("+8210****9001", "[훈련] 홍수주의보")],
        ["a:t9#2", "a:t9#1"],
    )
    assert same["duplicate_alerts"] == 1
    assert compare_reports(ref, same) == []
    # a lost escalation (and its SMS and CAP document), an extra transition elsewhere
    lost = _report(
        [_obs("caution", "cleared", 5.0, "a:t1#1"), _obs("caution", "cleared", 5.0, "b#1", "1")],
        [("+8210****9001", "[훈련] 홍수주의보")],
        ["a:t1#1", "b#1"],
    )
    assert compare_reports(ref, lost) == [
        "transition flood|1|1 raise cleared→caution: extra",
        "transition flood|11030|2 escalate caution→alert: missing",
        'SMS to +8210****9001 "[훈련] 홍수경보": 1 in the reference, 0 in this run',
        "CAP document flood|11030|2 Exercise/Alert/Moderate refs=0: 1 in the reference, 0 in "
        "this run",
        "CAP document flood|1|1 Exercise/Alert/Moderate refs=0: 0 in the reference, 1 in this run",
    ]
    paths = []
    for name, doc in (("ref", ref), ("same", same), ("lost", lost)):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(doc, ensure_ascii=False))
    runner = CliRunner()
    ok = runner.invoke(cli, ["drill", "compare", str(paths[0]), str(paths[1])])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(cli, ["drill", "compare", str(paths[0]), str(paths[1]), str(paths[2])])
    assert bad.exit_code == 1 and "missing" in bad.output
