"""Operators' reminders of unacknowledged alerts, as plain functions (docs/design.md §4).

``AlertMachine.reminders`` decides when; the worker only sends what it returns
(``tests/test_alert_reminders_stack.py`` runs it on the real stack).
"""

from __future__ import annotations

from alerting.machine import AlertMachine, reminder_due_ms
from alerting.model import ZoneInfo, parse_rfc3339_ms
from alerting.policy import DEFAULT_POLICIES, with_repeats
from gyeongbo.events import AlertReminder, Detection, decode_reminder, encode
from gyeongbo.settings import Settings
from streams.influx_lines import reminder_lines
from streams.services import Services

T0 = 1596678000000  # 2020-08-06T10:40:00+09:00
MIN = 60_000
YONGSAN = ZoneInfo(id="11030", name="용산구")
MAPO = ZoneInfo(id="11140", name="마포구")


def det(level: str, minute: float, *, hazard: str = "flood", exercise: bool = False) -> Detection:
    return Detection(
        station="1018683",
        hazard=hazard,
        level=level,  # type: ignore[arg-type]
        ts_ms=T0 + int(minute * MIN),
        rule=f"{hazard}.test",
        value=1.0,
        exercise=exercise,
    )


def at(r: AlertReminder) -> float:
    return (parse_rfc3339_ms(r.ts) - T0) / MIN


def test_due_time_is_the_period_after_the_last_notice_or_the_silence_end() -> None:
    assert reminder_due_ms(T0, 1800) == T0 + 30 * MIN
    assert reminder_due_ms(T0, 1800, silenced_until_ms=T0 + 10 * MIN) == T0 + 30 * MIN
    assert reminder_due_ms(T0, 1800, silenced_until_ms=T0 + 45 * MIN) == T0 + 45 * MIN
    assert reminder_due_ms(T0, None) is None


def test_an_unacknowledged_alert_is_recalled_every_period_from_the_last_notice() -> None:
    m = AlertMachine()
    (raised,) = m.feed(det("caution", 0), [YONGSAN])
    assert m.reminders(T0 + 29 * MIN) == []
    (r1,) = m.reminders(T0 + 30 * MIN)
    assert (r1.alert_id, r1.level, r1.n, at(r1)) == (raised.alert_id, "caution", 1, 30.0)
    assert (r1.since, r1.last_notified) == (raised.ts, raised.ts)
    assert r1.event_id == f"{raised.alert_id}#1-r1"
    # the period starts again at the reminder, whenever the tick that sent it came
    assert m.reminders(T0 + 59 * MIN) == []
    (r2,) = m.reminders(T0 + 60 * MIN + 4000)
    assert (r2.n, r2.last_notified, r2.event_id) == (2, r1.ts, f"{raised.alert_id}#1-r2")
    # an alert overdue by many periods (a worker down for hours) gets one reminder, not five
    (r3,) = m.reminders(T0 + 240 * MIN)
    assert (r3.n, at(r3)) == (3, 240.0)
    assert m.reminders(T0 + 240 * MIN) == []


def test_acknowledged_alerts_are_not_recalled_until_they_rise_again() -> None:
    m = AlertMachine()
    (raised,) = m.feed(det("caution", 0), [YONGSAN])
    m.acknowledge(raised.alert_id, actor="kim", ts_ms=T0 + 5 * MIN, reason="seen")
    assert m.reminders(T0 + 31 * MIN) == []
    assert m.reminders(T0 + 300 * MIN) == []
    (esc,) = m.feed(det("alert", 301), [YONGSAN])
    assert esc.action == "escalate"
    # the rise notified operators: the next reminder is a period after it, numbered afresh
    assert m.reminders(T0 + 330 * MIN) == []
    (r,) = m.reminders(T0 + 331 * MIN)
    assert (r.level, r.n, r.last_notified) == ("alert", 1, esc.ts)
    assert r.event_id == f"{raised.alert_id}#3-r1"
    # a step down is not news operators must answer: the period runs on
    m2 = AlertMachine({"flood": DEFAULT_POLICIES["flood"].__class__()})
    (a,) = m2.feed(det("alert", 0), [YONGSAN])
    (down,) = m2.feed(det("caution", 10), [YONGSAN])
    assert down.action == "deescalate"
    (r,) = m2.reminders(T0 + 30 * MIN)
    assert (r.level, r.last_notified) == ("caution", a.ts)


def test_a_silence_defers_reminders_to_its_end_and_a_clear_ends_them() -> None:
    m = AlertMachine()
    (raised,) = m.feed(det("caution", 0), [YONGSAN])
    m.silence("11030", duration_s=3600, actor="lee", ts_ms=T0 + 10 * MIN, reason="works")
    assert m.reminders(T0 + 30 * MIN) == []
    assert m.active()[0].next_reminder == "2020-08-06T11:50:00+09:00"  # the silence's end
    (r,) = m.reminders(T0 + 70 * MIN)
    assert at(r) == 70.0
    m.clear(raised.alert_id, actor="lee", ts_ms=T0 + 80 * MIN, reason="receded")
    assert m.reminders(T0 + 500 * MIN) == []


def test_the_listing_shows_the_last_notice_the_reminders_and_the_next_due() -> None:
    m = AlertMachine()
    m.feed(det("caution", 0), [YONGSAN])
    m.feed(det("caution", 0), [MAPO])
    (row,) = [a for a in m.active() if a.zone == "11030"]
    assert (row.last_notified, row.reminders, row.next_reminder) == (
        "2020-08-06T10:40:00+09:00",
        0,
        "2020-08-06T11:10:00+09:00",
    )
    assert len(m.reminders(T0 + 30 * MIN)) == 2
    mapo = next(a for a in m.active() if a.zone == "11140")
    m.acknowledge(mapo.alert_id, actor="kim", ts_ms=T0 + 31 * MIN, reason="seen")
    rows = {a.zone: a for a in m.active()}
    assert (rows["11030"].reminders, rows["11030"].next_reminder) == (
        1,
        "2020-08-06T11:40:00+09:00",
    )
    assert (rows["11140"].acked, rows["11140"].reminders, rows["11140"].next_reminder) == (
        True,
        1,
        None,
    )


def test_drill_alerts_follow_the_drill_clock() -> None:
    """An accelerated drill's readings are hours behind the wall clock: its alerts are recalled
    every ``repeat_s`` of drill time, never at once because the wall clock is far ahead."""
    m = AlertMachine()
    (raised,) = m.feed(det("caution", 0, exercise=True), [YONGSAN])
    wall = T0 + 10 * 365 * 24 * 60 * MIN
    assert m.reminders(wall, exercise_now_ms=T0 + 20 * MIN) == []
    (r,) = m.reminders(wall, exercise_now_ms=T0 + 30 * MIN)
    assert (r.exercise, r.alert_id, at(r)) == (True, raised.alert_id, 30.0)
    assert r.alert_id.startswith("exercise:")
    # the machine's own drill watermark counts too (a tick from a worker that saw no drill)
    m.feed(det("caution", 65, exercise=True), [YONGSAN])
    (r2,) = m.reminders(wall)
    assert (r2.n, at(r2)) == (2, 65.0)


def test_restored_state_neither_repeats_nor_loses_a_reminder() -> None:
    """The state written after a tick includes the reminder: a restart sends it no second
    time. A crash before that write replays the tick on the older state, which gives the
    same reminder with the same ``event_id`` (consumers de-duplicate on it)."""
    m = AlertMachine()
    m.feed(det("caution", 0), [YONGSAN])
    before = m.to_bytes()
    sent = m.reminders(T0 + 30 * MIN)
    assert len(sent) == 1
    after = AlertMachine.from_bytes(m.to_bytes())
    assert after.reminders(T0 + 30 * MIN + 5000) == []
    assert [r.n for r in after.reminders(T0 + 60 * MIN)] == [2]
    replayed = AlertMachine.from_bytes(before).reminders(T0 + 30 * MIN)
    assert replayed == sent


def test_hazards_that_never_repeat_and_the_settings_that_set_the_period() -> None:
    m = AlertMachine()
    m.feed(det("caution", 0, hazard="earthquake"), [YONGSAN])
    assert m.reminders(T0 + 600 * MIN) == []  # an earthquake message is an event
    s = Settings(alerting={"repeat_s": {"flood": 5, "heavy_rain": 0}})
    policies = Services(s).policies
    assert policies["flood"].repeat_s == 5
    assert policies["heavy_rain"].repeat_s is None
    assert policies["flood"].hold_s == DEFAULT_POLICIES["flood"].hold_s
    m = AlertMachine(policies)
    m.feed(det("caution", 0), [YONGSAN])
    m.feed(det("caution", 0, hazard="heavy_rain"), [YONGSAN])
    assert [r.hazard for r in m.reminders(T0 + 5000)] == ["flood"]
    assert with_repeats({"pm10": 600})["pm10"].repeat_s == 600


def test_data_quality_alerts_are_recalled_with_their_severity() -> None:
    m = AlertMachine()
    fault = Detection(
        station="1018683",
        hazard="sensor_health",
        level="serious",
        ts_ms=T0,
        rule="health.level_m",
        value=1.0,
        details={"faults": ["stuck"]},
    )
    m.feed(fault, [YONGSAN])
    (r,) = m.reminders(T0 + 30 * MIN)
    assert (r.hazard, r.level) == ("sensor_health", "critical")


def test_the_reminder_record_and_its_influx_point() -> None:
    m = AlertMachine()
    m.feed(det("caution", 0), [YONGSAN])
    (r,) = m.reminders(T0 + 30 * MIN)
    assert decode_reminder(encode(r)) == r
    (ln,) = reminder_lines([r])
    assert ln.startswith("alert_reminder,exercise=false,hazard=flood,level=caution,zone=11030 ")
    assert "n=1i" in ln and "[미확인 1] Flood 용산구 (11030) caution" in ln
    assert ln.endswith(f" {T0 + 30 * MIN}")
