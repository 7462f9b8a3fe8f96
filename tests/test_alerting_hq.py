"""Headquarters stages (비상 1·2·3단계): a second machine, decoupled from the alert stages."""

from __future__ import annotations

import pytest

from alerting.hq import HQMachine, compute_stage
from alerting.machine import AlertMachine
from alerting.model import ZoneInfo, rfc3339
from gyeongbo.events import AlertEvent, Detection, HQStageEvent
from gyeongbo.vocab import Level

# 2022-09-05 00:00 KST, the day typhoon Hinnamnor (힌남노) approached
T_HINNAMNOR = 1662303600000
# 2023-07-19 00:00 KST
T_JULY19 = 1689692400000
H = 3_600_000

ZONES = {
    "11010": ZoneInfo(id="11010", name="종로구"),  # Seoul
    "21010": ZoneInfo(id="21010", name="부산 중구"),  # Busan
    "26010": ZoneInfo(id="26010", name="울산 중구"),  # Ulsan
    "37020": ZoneInfo(id="37020", name="경주시"),  # Gyeongbuk
    "37011": ZoneInfo(id="37011", name="포항시 남구"),  # Gyeongbuk
    "38030": ZoneInfo(id="38030", name="진주시"),  # Gyeongnam
    "39010": ZoneInfo(id="39010", name="제주시"),  # Jeju
}


def rain(zone: str, level: str, ts: int) -> tuple[Detection, list[ZoneInfo]]:
    d = Detection(
        station=f"asos-{zone}",
        hazard="heavy_rain",
        level=level,  # type: ignore[arg-type]
        ts_ms=ts,
        rule="rain.kma_3h",
        value=70.0,
    )
    return d, [ZONES[zone]]


def pipe(
    alerts: AlertMachine, hq: HQMachine, items: list[tuple[Detection, list[ZoneInfo]]]
) -> tuple[list[AlertEvent], list[HQStageEvent]]:
    evs = alerts.feed_all(items)
    return evs, [h for e in evs for h in hq.feed(e)]


def test_rule_counts() -> None:
    assert compute_stage({"11": "caution", "26": "caution", "37": "caution"}) == 0
    assert compute_stage({"11": "caution", "26": "caution", "37": "caution", "39": "caution"}) == 1
    assert compute_stage({"11": "alert", "26": "alert", "37": "serious"}) == 1
    assert compute_stage({"11": "alert", "26": "alert", "37": "serious", "39": "alert"}) == 2


def test_hinnamnor_jumps_from_stage_1_to_3() -> None:
    alerts, hq = AlertMachine(), HQMachine()
    t = T_HINNAMNOR
    _, hqs = pipe(
        alerts,
        hq,
        [
            rain("39010", "caution", t),
            rain("21010", "caution", t + 1),
            rain("26010", "caution", t + 2),
        ],
    )
    assert hqs == []  # three provinces: no rule stage yet
    _, hqs = pipe(alerts, hq, [rain("37020", "caution", t + 3), rain("37011", "alert", t + 4)])
    assert [(h.action, h.previous, h.stage) for h in hqs] == [("propose", 0, 1)]
    assert hqs[0].provinces == {"21": "caution", "26": "caution", "37": "caution", "39": "caution"}
    assert hq.stage() == 0  # proposed, not yet in force
    (c,) = hq.confirm(actor="중대본 상황실", ts_ms=t + H)
    assert (c.action, c.previous, c.stage, c.actor) == ("confirm", 0, 1, "중대본 상황실")
    # The minister goes straight to 3단계 ahead of the landfall: a jump, never through 2.
    (j,) = hq.set_stage(3, actor="장관", ts_ms=t + 20 * H, reason="초강력 태풍 대규모 피해 우려")
    assert (j.action, j.previous, j.stage) == ("manual", 1, 3)
    # Warnings spread to four provinces: the rule's 2단계 is below 3: no proposal from 3.
    _, hqs = pipe(
        alerts, hq, [rain(z, "alert", t + 21 * H) for z in ("39010", "21010", "26010", "37020")]
    )
    assert hqs == []
    assert [r.stage for r in hq.history()] == [1, 1, 3]
    assert [r.action for r in hq.history()] == ["propose", "confirm", "manual"]


def test_2023_07_19_hq_comes_down_while_the_alert_stays_serious() -> None:
    alerts, hq = AlertMachine(), HQMachine()
    t = T_JULY19 - 5 * 24 * H
    items = [
        rain("37020", "serious", t),
        rain("11010", "caution", t),
        rain("21010", "alert", t),
        rain("26010", "alert", t),
        rain("39010", "caution", t),
    ]
    _, hqs = pipe(alerts, hq, items)
    assert [(h.action, h.stage) for h in hqs] == [("propose", 1)]
    hq.set_stage(3, actor="장관", ts_ms=t + H, reason="경북 산사태 대규모 피해")
    # By the 19th the rain has eased elsewhere; 경북 (예천) stays 심각 and the alert with it.
    _evs, hqs = pipe(
        alerts, hq, [rain("21010", "caution", T_JULY19), rain("26010", "caution", T_JULY19)]
    )
    assert hqs == []  # leaving 3단계 is an operator decision
    (d,) = hq.set_stage(1, actor="장관", ts_ms=T_JULY19 + 18 * H, reason="호우 소강, 복구 체계")
    assert (d.action, d.previous, d.stage) == ("deescalate", 3, 1)
    assert d.provinces["37"] == "serious"
    assert alerts.stage_of("heavy_rain", "37020") is Level.SERIOUS
    assert [a.level for a in alerts.active() if a.zone == "37020"] == ["serious"]
    # The rule's stage is 1 (4 provinces under 주의 or more), equal to the stage: no proposal.
    assert hq.proposed() is None and hq.stage() == 1


def test_rule_proposes_deescalation_below_stage_2_and_exercise_is_separate() -> None:
    hq = HQMachine()
    levels = {"11": "alert", "21": "alert", "26": "alert", "39": "alert"}
    assert [(h.action, h.stage) for h in hq.feed_levels(levels, ts_ms=0)] == [("propose", 2)]
    hq.confirm(actor="a", ts_ms=1)
    evs = hq.feed_levels(
        {"11": "caution", "21": "caution", "26": "caution", "39": "caution"}, ts_ms=2
    )
    assert [(h.action, h.previous, h.stage) for h in evs] == [("propose", 2, 1)]
    (d,) = hq.confirm(actor="a", ts_ms=3)
    assert (d.action, d.stage) == ("deescalate", 1)
    assert hq.stage(exercise=True) == 0
    ex = hq.feed_levels(levels, ts_ms=4, exercise=True)
    assert [(h.exercise, h.stage) for h in ex] == [(True, 2)] and hq.stage() == 1
    with pytest.raises(ValueError):
        hq.set_stage(2, actor="a", ts_ms=5, reason="")
    assert len({h.event_id for h in hq.history()}) == len(hq.history())


def test_hq_state_round_trips() -> None:
    hq = HQMachine(auto_escalate=True)
    evs = hq.feed_levels({"11": "alert", "21": "alert", "26": "alert"}, ts_ms=0)
    assert [(h.action, h.stage) for h in evs] == [("propose", 1), ("confirm", 1)]
    again = HQMachine().restore(hq.to_bytes())
    assert again.stage() == 1 and again.history() == hq.history()


def test_a_replayed_alert_event_is_nothing() -> None:
    """A worker that crashed after sending alert transitions and before recording them sends
    them again (same event ids) after the ones the HQ machine already followed: an older
    level replayed must not stand again, nor propose a stage twice."""
    alerts, hq = AlertMachine(), HQMachine()
    items = [rain(z, "caution", T_HINNAMNOR) for z in ("11010", "21010", "26010", "37020")]
    items += [rain("11010", "alert", T_HINNAMNOR + H)]
    evs, stages = pipe(alerts, hq, items)
    assert [(h.action, h.stage) for h in stages] == [("propose", 1)]
    levels = hq.province_levels()
    assert levels["11"] == "alert"
    assert hq.feed(evs[0]) == []  # Seoul's 주의 again, after its 경계
    assert hq.province_levels() == levels
    assert [h for e in evs for h in hq.feed(e)] == []  # the whole stream again
    assert hq.province_levels() == levels and len(hq.history()) == 1


def _event(zone: str, level: str, ts: int, n: int) -> AlertEvent:
    return AlertEvent(
        alert_id=f"heavy_rain:{zone}",
        event_id=f"heavy_rain:{zone}#{n}",
        hazard="heavy_rain",
        zone=zone,
        zone_name=ZONES[zone].name,
        level=level,  # type: ignore[arg-type]
        previous="cleared",
        level_ko="",
        action="raise",
        ts=rfc3339(ts),
    )


def test_a_short_dip_does_not_withdraw_and_reissue_the_proposal() -> None:
    """Four provinces under 주의보 (rule: 1단계). At one instant one province clears and
    another comes under 주의보: whatever order the two events arrive in, operators see one
    proposal."""
    start = [_event(z, "caution", 0, 1) for z in ("11010", "21010", "26010", "39010")]
    swap = [_event("26010", "cleared", 2 * H, 2), _event("37020", "caution", 2 * H, 3)]
    for order in (swap, swap[::-1]):
        hq = HQMachine()
        out = [h for e in [*start, *order] for h in hq.feed(e)]
        assert [(h.action, h.previous, h.stage) for h in out] == [("propose", 0, 1)]
        assert hq.proposed() == 1


def test_a_dip_longer_than_the_withdrawal_time_asks_again() -> None:
    hq = HQMachine(withdraw_after_s=3600)
    feed = [
        *(_event(z, "alert", 0, 1) for z in ("11010", "21010", "26010")),
        _event("26010", "cleared", 1 * H, 2),  # rule back to 0: the proposal stands for now
        _event("39010", "cleared", 2 * H + 1, 3),  # an hour later: withdrawn (still 0)
        _event("26010", "alert", 5 * H, 4),  # the situation returns: asked again
    ]
    stages = []
    for e in feed:
        stages += [(h.action, h.stage) for h in hq.feed(e)]
        if e.event_id.endswith("#3"):
            assert hq.proposed() is None
    assert stages == [("propose", 1), ("propose", 1)]


def _proposing(exercise: bool = False) -> HQMachine:
    hq = HQMachine()
    hq.feed_levels(
        {"11": "caution", "21": "caution", "22": "caution", "23": "caution"},
        ts_ms=T_JULY19,
        exercise=exercise,
    )
    assert hq.proposed(exercise=exercise) == 1
    return hq


def test_a_replayed_operator_command_changes_nothing_and_audits_once() -> None:
    hq = _proposing()
    (ev,) = hq.confirm(actor="op-kim", ts_ms=T_JULY19 + 1, reason="4 provinces", command_id="c1")
    assert (ev.action, ev.previous, ev.stage, ev.actor) == ("confirm", 0, 1, "op-kim")
    # the same command again (a worker crashed before recording it): no error, no event
    assert (
        hq.confirm(actor="op-kim", ts_ms=T_JULY19 + 1, reason="4 provinces", command_id="c1") == []
    )
    (m,) = hq.set_stage(3, actor="op-lee", ts_ms=T_JULY19 + 2, reason="damage", command_id="c2")
    assert (m.action, m.previous, m.stage) == ("manual", 1, 3)
    assert (
        hq.set_stage(3, actor="op-lee", ts_ms=T_JULY19 + 2, reason="damage", command_id="c2") == []
    )
    hq2 = HQMachine().restore(hq.to_bytes())  # the ids survive a restore
    assert hq2.set_stage(0, actor="op-lee", ts_ms=0, reason="x", command_id="c2") == []
    assert hq2.stage() == 3
    assert [(a.actor, a.action, a.result) for a in hq2.audit_log()] == [
        ("op-kim", "hq_confirm", "ok"),
        ("op-lee", "hq_stage", "ok"),
    ]
    assert hq2.audit_log()[1].reason == "damage (→ 비상 3단계)"


def test_refused_operator_decisions_are_audited_and_namespaces_stay_apart() -> None:
    hq = _proposing(exercise=True)
    with pytest.raises(ValueError, match="no stage proposal"):
        hq.confirm(actor="op-kim", ts_ms=T_JULY19, reason="r", command_id="a")
    with pytest.raises(ValueError, match=r"0\.\.3"):
        hq.set_stage(4, actor="op-kim", ts_ms=T_JULY19, reason="r", command_id="b")
    assert [(a.action, a.target, a.result) for a in hq.audit_log()] == [
        ("hq_confirm", "hq:real:storm_flood", "rejected: no stage proposal to confirm"),
        ("hq_stage", "hq:real:storm_flood", "rejected: headquarters stage is 0..3"),
    ]
    assert hq.audit_log(exercise=True) == [] and hq.proposed(exercise=True) == 1
    # setting the standing stage changes nothing and keeps the proposal
    assert hq.set_stage(0, actor="op-kim", ts_ms=T_JULY19, reason="r", exercise=True) == []
    assert hq.proposed(exercise=True) == 1
