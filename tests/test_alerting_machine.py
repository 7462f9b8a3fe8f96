"""Alert stage machine: detections in, transitions out, compared as lists (bytewax style)."""

from __future__ import annotations

import itertools

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.machine import AlertMachine, OperatorError
from alerting.model import ZoneInfo
from alerting.policy import StagePolicy
from gyeongbo.events import AlertEvent, Detection
from gyeongbo.vocab import Level

T0 = 1596678000000  # 2020-08-06T10:40:00+09:00
MIN = 60_000
YONGSAN = ZoneInfo(id="11030", name="용산구", name_en="Yongsan-gu", admin_code="11030")
DONGJAK = ZoneInfo(id="11200", name="동작구", name_en="Dongjak-gu", admin_code="11200")


def det(station: str, hazard: str, level: str, minute: float, **kw: object) -> Detection:
    kw.setdefault("value", 1.0)
    kw.setdefault("rule", f"{hazard}.test")
    return Detection(
        station=station,
        hazard=hazard,
        level=level,  # type: ignore[arg-type]
        ts_ms=T0 + int(minute * MIN),
        **kw,  # type: ignore[arg-type]
    )


def run(
    m: AlertMachine,
    seq: list[tuple[float, str]],
    *,
    station: str = "1018683",
    hazard: str = "flood",
    zones: list[ZoneInfo] | None = None,
    exercise: bool = False,
) -> list[tuple[float, str, str, str]]:
    out = []
    for minute, level in seq:
        for e in m.feed(det(station, hazard, level, minute, exercise=exercise), zones or [YONGSAN]):
            out.append(((_min(e)), e.action, e.previous, e.level))
    return out


def _min(e: AlertEvent) -> float:
    from alerting.model import parse_rfc3339_ms

    return (parse_rfc3339_ms(e.ts) - T0) / MIN


def test_flood_stage_sequence_with_jump_off_delay_and_dwell() -> None:
    m = AlertMachine()
    seq = [
        (0, "attention"),
        (10, "caution"),
        (20, "serious"),
        (30, "alert"),
        (40, "alert"),
        (50, "serious"),
        (60, "alert"),
        (70, "alert"),
        (80, "alert"),
        (90, "alert"),
        (100, "cleared"),
        (110, "attention"),
        (120, "cleared"),
        (130, "cleared"),
        (140, "cleared"),
        (150, "cleared"),
        (160, "cleared"),
    ]
    assert run(m, seq) == [
        (0, "raise", "cleared", "attention"),
        (10, "escalate", "attention", "caution"),
        (20, "escalate", "caution", "serious"),  # a jump: 주의 → 심각
        # 30, 40: below 심각 for < 30 min; 50 back at 심각 resets the off-delay
        (90, "deescalate", "serious", "alert"),  # below since 60, 30 min off-delay
        (130, "deescalate", "alert", "attention"),  # highest level seen while below: 관심
        (160, "clear", "attention", "cleared"),
    ]


def test_event_ids_are_unique_deterministic_and_alert_id_names_first_raise() -> None:
    seq = [(0, "caution"), (10, "alert"), (50, "cleared"), (90, "cleared"), (95, "caution")]
    a, b = AlertMachine(), AlertMachine()
    ea = [m.feed(det("1018683", "flood", lv, t), [YONGSAN]) for m in [a] for t, lv in seq]
    eb = [m.feed(det("1018683", "flood", lv, t), [YONGSAN]) for m in [b] for t, lv in seq]
    flat = [e for es in ea for e in es]
    assert flat == [e for es in eb for e in es]
    assert [e.event_id for e in flat] == [
        "flood:11030:2020-08-06T10:40:00+09:00#1",
        "flood:11030:2020-08-06T10:40:00+09:00#2",
        "flood:11030:2020-08-06T10:40:00+09:00#3",  # the clear at 90 (alert since 10, dwell)
        "flood:11030:2020-08-06T12:15:00+09:00#1",  # a new alert
    ]
    assert flat[2].action == "clear"
    assert flat[0].evidence["rule"] == "flood.test" and flat[0].stations == ["1018683"]


def test_forecast_evidence_carries_projected_crossing() -> None:
    m = AlertMachine()
    d = det(
        "1018683",
        "flood",
        "caution",
        0,
        value=8.36,
        threshold=8.5,
        projected_crossing_ms=T0 + 50 * MIN,
        confidence=0.8,
    )
    (e,) = m.feed(d, [YONGSAN])
    assert e.evidence["projected_crossing"] == "2020-08-06T11:30:00+09:00"
    assert (e.evidence["value"], e.evidence["threshold"]) == (8.36, 8.5)


def test_pm10_follows_detector_levels_with_two_hour_rule_and_cancel_levels() -> None:
    # Station levels as the PM10 detector emits them (Annex 7: 주의보 ≥ 150 for 2 h, 경보 ≥ 300
    # for 2 h, 경보 → 주의보 below 150, 주의보 cancelled below 100). Values are hourly means.
    hourly = [
        (160, "cleared"),
        (170, "caution"),
        (320, "caution"),
        (310, "alert"),
        (200, "alert"),
        (140, "caution"),
        (120, "caution"),
        (90, "cleared"),
    ]
    m = AlertMachine()
    zone = ZoneInfo(id="11030", name="용산구", stations=("111261", "111262"))
    out = []
    for h, (value, level) in enumerate(hourly):
        out += m.feed(det("111261", "pm10", level, h * 60, value=float(value)), [zone])
        # the district's second station stays clean; quorum 1 → the zone follows the worst
        out += m.feed(det("111262", "pm10", "cleared", h * 60 + 1, value=40.0), [zone])
    assert [(_min(e) / 60, e.action, e.level) for e in out] == [
        (1, "raise", "caution"),  # only after 2 h ≥ 150
        (3, "escalate", "alert"),
        (5, "deescalate", "caution"),  # 140 < 150: 경보 → 주의보
        (7, "clear", "cleared"),  # 120 kept the 주의보 (cancel level 100); 90 cancels it
    ]


def test_pm_quorum_two_of_m_stations() -> None:
    from alerting.policy import DEFAULT_POLICIES, StagePolicy

    policies = dict(DEFAULT_POLICIES, pm25=StagePolicy(quorum=2))
    m = AlertMachine(policies)
    zone = ZoneInfo(id="seoul-center", name="도심권", stations=("a", "b", "c"))
    assert m.feed(det("a", "pm25", "caution", 0), [zone]) == []
    assert [e.level for e in m.feed(det("b", "pm25", "alert", 1), [zone])] == ["caution"]
    assert [e.level for e in m.feed(det("a", "pm25", "alert", 2), [zone])] == ["alert"]


def test_ozone_steps_down_one_level_at_a_time() -> None:
    m = AlertMachine()
    seq = [(0, "caution"), (60, "serious"), (120, "cleared"), (180, "cleared")]
    out = run(m, seq, station="111123", hazard="ozone")
    assert out == [
        (0, "raise", "cleared", "caution"),
        (60, "escalate", "caution", "serious"),  # 중대경보 ≥ 0.5 ppm
        (120, "deescalate", "serious", "alert"),
        (180, "deescalate", "alert", "caution"),
    ]
    assert m.advance(T0 + 239 * MIN) == []  # each stage stands an hour
    assert [(_min(e), e.action, e.level) for e in m.advance(T0 + 250 * MIN)] == [
        (240, "clear", "cleared")
    ]


#: A temporal 2-of-3 zone vote (no default policy has one now: structural confirms in its
#: detector, detectors/structural.py); the machine still applies one where it is configured.
TWO_OF_THREE = {"structural": StagePolicy(confirm=(2, 3), hold_s=1800, min_dwell_s=1800)}


def test_a_two_of_three_policy_needs_two_of_three_samples_and_may_jump() -> None:
    m = AlertMachine(TWO_OF_THREE)
    seq = [
        (0, "cleared"),
        (1, "caution"),
        (2, "cleared"),
        (3, "cleared"),
        (4, "caution"),
        (5, "caution"),
        (6, "serious"),
        (7, "serious"),
    ]
    assert run(m, seq, station="SFC-SEONGSU-T1", hazard="structural") == [
        (5, "raise", "cleared", "caution"),  # single spikes at 1 and 4 do not raise
        (7, "escalate", "caution", "serious"),
    ]


def test_a_structural_zone_takes_each_confirmed_stage_at_once() -> None:
    # The detector confirms a stage on 2 of the channel's last 3 readings and then sends one
    # detection per change: a crack opening steadily sends one per stage, and the zone must
    # follow each at once (a vote here would wait for a second detection that never comes).
    m = AlertMachine()
    seq = [(0, "caution"), (60, "alert"), (120, "serious")]
    assert run(m, seq, station="SFC-SEONGSU-P7", hazard="structural") == [
        (0, "raise", "cleared", "caution"),
        (60, "escalate", "caution", "alert"),
        (120, "escalate", "alert", "serious"),
    ]


def test_earthquake_raises_at_once_in_every_zone_and_lapses() -> None:
    m = AlertMachine()
    gyeongju = ZoneInfo(id="37020", name="경주시")
    pohang = ZoneInfo(id="37011", name="포항시 남구")
    d = det("KMA-GYEONGJU-ACC", "earthquake", "serious", 0, value=5.8)
    assert [(e.zone, e.action, e.level) for e in m.feed(d, [gyeongju, pohang])] == [
        ("37020", "raise", "serious"),
        ("37011", "raise", "serious"),
    ]
    assert m.advance(T0 + 29 * MIN) == []
    assert [(e.zone, e.action) for e in m.advance(T0 + 31 * MIN)] == [
        ("37011", "clear"),
        ("37020", "clear"),
    ]


def test_flapping_gauge_does_not_flap_the_alert() -> None:
    m = AlertMachine()
    # 8.45 / 8.55 m around the 8.50 m 주의보 line, every 10 min for 10 h, then it falls
    seq = [(i * 10, "caution" if i % 2 == 0 else "attention") for i in range(60)]
    seq += [(600 + i * 10, "attention") for i in range(6)]
    changes = sum(1 for a, b in itertools.pairwise(seq) if a[1] != b[1])
    assert changes == 59  # the input flaps …
    assert run(m, seq) == [  # … the alert does not
        (0, "raise", "cleared", "caution"),
        (620, "deescalate", "caution", "attention"),
    ]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["cleared", "attention", "caution", "alert", "serious"]),
        min_size=1,
        max_size=80,
    )
)
def test_no_stage_drops_sooner_than_its_minimum_dwell(levels: list[str]) -> None:
    m = AlertMachine()
    events = run(m, [(i * 5, lv) for i, lv in enumerate(levels)])
    last_change = None
    for minute, _action, prev, new in events:
        if Level.parse(new) < Level.parse(prev):
            assert last_change is not None and minute - last_change >= 30
        last_change = minute


def test_exercise_alerts_live_in_their_own_namespace() -> None:
    m = AlertMachine()
    real = m.feed(det("1018683", "flood", "caution", 0), [YONGSAN])
    drill = m.feed(det("1018683", "flood", "serious", 1, exercise=True), [YONGSAN])
    assert [e.alert_id for e in drill] == ["exercise:flood:11030:2020-08-06T10:41:00+09:00"]
    assert drill[0].exercise and not real[0].exercise
    assert m.stage_of("flood", "11030") is Level.CAUTION
    assert m.stage_of("flood", "11030", exercise=True) is Level.SERIOUS
    assert [a.exercise for a in m.active()] == [True, False]


def test_faulty_station_holds_its_stage_but_can_neither_raise_nor_clear_it() -> None:
    m = AlertMachine()
    zones = [YONGSAN]
    assert [e.level for e in m.feed(det("A", "flood", "caution", 0), zones)] == ["caution"]
    health = m.feed(det("A", "sensor_health", "caution", 5, rule="health.stuck"), zones)
    assert [(e.hazard, e.action) for e in health] == [("sensor_health", "raise")]
    assert m.feed(det("A", "flood", "serious", 10), zones) == []  # not trusted: no escalation
    # ... and no all-clear either: a gauge that fails at the peak of a flood must not tell
    # residents the flood is over. The operator sees the sensor-health alert and decides.
    assert m.advance(T0 + 120 * MIN) == []
    assert [(a.hazard, a.level) for a in m.active() if a.hazard == "flood"] == [
        ("flood", "caution")
    ]
    assert [e.hazard for e in m.feed(det("A", "sensor_health", "cleared", 130), zones)] == []
    # Recovered: its next detection defines the station again.
    assert [e.level for e in m.feed(det("A", "flood", "alert", 135), zones)] == ["alert"]


def test_a_faulty_seismometer_still_relays_a_catalogue_event() -> None:
    """A catalogue entry (M 5.8 from the KMA feed) arriving through a station whose own
    accelerometer is flagged faulty is not that sensor's word: it raises, and the station's
    recovery does not drop it; the station's own PGA readings stay held out meanwhile."""
    m = AlertMachine()
    gyeongbuk = [ZoneInfo(id="37", name="경상북도")]
    acc = "KMA-GYEONGJU-ACC"
    m.feed(det(acc, "sensor_health", "alert", 0, rule="health.pga_g"), gyeongbuk)
    pga = det(acc, "earthquake", "serious", 1, rule="earthquake.pga_intensity", value=0.9)
    assert m.feed(pga, gyeongbuk) == []
    cat = det(acc, "earthquake", "alert", 2, rule="earthquake.catalogue", value=5.8)
    assert [(e.zone, e.action, e.level) for e in m.feed(cat, gyeongbuk)] == [
        ("37", "raise", "alert")
    ]
    assert m.feed(det(acc, "sensor_health", "cleared", 3, rule="health.pga_g"), gyeongbuk) == []
    assert [(a.zone, a.level) for a in m.active() if a.hazard == "earthquake"] == [("37", "alert")]


def test_a_faulty_station_keeps_its_zone_at_its_stage_when_a_healthy_peer_clears() -> None:
    """Conservative by choice: gauges of one zone watch different reaches; one reach
    clearing says nothing of the reach whose gauge died. The operator clears by hand."""
    m = AlertMachine()
    zones = [YONGSAN]
    m.feed(det("A", "flood", "caution", 0), zones)
    m.feed(det("B", "flood", "caution", 0), zones)
    m.feed(det("A", "sensor_health", "caution", 5, rule="health.stuck"), zones)
    m.feed(det("B", "flood", "cleared", 10), zones)
    assert m.advance(T0 + 60 * MIN) == []
    assert [(a.hazard, a.level) for a in m.active() if a.hazard == "flood"] == [
        ("flood", "caution")
    ]


def test_non_public_detections_never_stage() -> None:
    m = AlertMachine()
    assert m.feed(det("A", "flood", "serious", 0, public=False), [YONGSAN]) == []
    assert m.active() == []


def test_state_round_trips_and_a_restored_machine_continues_identically() -> None:
    seq = [
        (0, "caution"),
        (10, "serious"),
        (20, "alert"),
        (30, "alert"),
        (40, "alert"),
        (50, "alert"),
        (60, "cleared"),
        (100, "cleared"),
    ]
    straight = AlertMachine()
    expected = run(straight, seq)
    m = AlertMachine()
    first = run(m, seq[:4])
    m2 = AlertMachine.from_bytes(m.to_bytes())
    assert first + run(m2, seq[4:]) == expected
    assert m2.to_bytes() == straight.to_bytes()


def test_acknowledge_stops_reminders_until_escalation() -> None:
    m = AlertMachine()
    (e,) = m.feed(det("A", "flood", "caution", 0), [YONGSAN])
    assert [r.alert_id for r in m.reminders(T0 + 31 * MIN)] == [e.alert_id]
    assert m.reminders(T0 + 32 * MIN) == []  # not again before the next period
    (ack,) = m.acknowledge(e.alert_id, actor="kim", ts_ms=T0 + 33 * MIN, reason="seen")
    assert (ack.action, ack.level, ack.previous, ack.actor) == ("ack", "caution", "caution", "kim")
    assert m.reminders(T0 + 90 * MIN) == []
    m.feed(det("A", "flood", "alert", 91), [YONGSAN])
    assert len(m.reminders(T0 + 125 * MIN)) == 1
    assert m.active()[0].acked is False


def test_silence_holds_public_transitions_but_serious_breaks_through() -> None:
    m = AlertMachine()
    (_e,) = m.feed(det("A", "flood", "caution", 0), [YONGSAN])
    (s,) = m.silence("11030", duration_s=3600, actor="lee", ts_ms=T0 + MIN, reason="gauge works")
    assert (s.action, s.evidence["silenced_until"]) == ("silence", "2020-08-06T11:41:00+09:00")
    assert m.feed(det("A", "flood", "alert", 10), [YONGSAN]) == []
    # another zone is not silenced
    assert [e.zone for e in m.feed(det("B", "flood", "caution", 11), [DONGJAK])] == ["11200"]
    assert m.stage_of("flood", "11030") is Level.CAUTION  # held during the window


def test_silence_window_end_catches_up_and_serious_breaks_through() -> None:
    m = AlertMachine()
    m.feed(det("A", "flood", "caution", 0), [YONGSAN])
    m.silence("11030", hazard="flood", duration_s=3600, actor="lee", ts_ms=T0, reason="maint")
    assert m.feed(det("A", "flood", "alert", 10), [YONGSAN]) == []
    assert m.active()[0].silenced_until == "2020-08-06T11:40:00+09:00"
    assert [(e.action, e.level) for e in m.advance(T0 + 61 * MIN)] == [("escalate", "alert")]
    m.silence("11030", duration_s=3600, actor="lee", ts_ms=T0 + 62 * MIN, reason="maint")
    assert [e.level for e in m.feed(det("A", "flood", "serious", 63), [YONGSAN])] == ["serious"]


def test_manual_escalation_is_a_floor_and_clear_needs_a_new_rise() -> None:
    m = AlertMachine()
    (e,) = m.feed(det("A", "flood", "caution", 0), [YONGSAN])
    (man,) = m.escalate(
        "flood", YONGSAN, "serious", actor="park", ts_ms=T0 + MIN, reason="levee seepage reported"
    )
    assert (man.action, man.previous, man.level, man.actor) == (
        "manual",
        "caution",
        "serious",
        "park",
    )
    assert m.advance(T0 + 300 * MIN) == []  # the floor holds against the automatic off-delay
    with pytest.raises(OperatorError):
        m.escalate("flood", YONGSAN, "alert", actor="park", ts_ms=T0 + 301 * MIN, reason="x")
    (clr,) = m.clear(e.alert_id, actor="park", ts_ms=T0 + 302 * MIN, reason="water receding")
    assert (clr.action, clr.level, clr.previous) == ("clear", "cleared", "serious")
    assert m.feed(det("A", "flood", "caution", 303), [YONGSAN]) == []  # no re-raise at 주의
    assert [e.level for e in m.feed(det("A", "flood", "alert", 304), [YONGSAN])] == ["alert"]
    log = m.audit_log
    assert [(a.actor, a.action, a.result.split(":")[0]) for a in log] == [
        ("park", "manual", "ok"),
        ("park", "manual", "rejected"),
        ("park", "clear", "ok"),
    ]
    assert log[0].ts_ms == T0 + MIN and "levee seepage" in log[0].reason


def test_manual_raise_of_a_zone_without_alert_and_rejections_are_audited() -> None:
    m = AlertMachine()
    (e,) = m.escalate("heavy_rain", DONGJAK, "alert", actor="choi", ts_ms=T0, reason="CCTV")
    assert (e.action, e.previous, e.level, e.alert_id) == (
        "manual",
        "cleared",
        "alert",
        "heavy_rain:11200:2020-08-06T10:40:00+09:00",
    )
    with pytest.raises(OperatorError):
        m.clear("flood:nope", actor="choi", ts_ms=T0, reason="typo")
    with pytest.raises(OperatorError):
        m.acknowledge("flood:nope", actor="choi", ts_ms=T0)
    assert [a.result for a in m.audit_log][1:] == [
        "rejected: no active alert with this id",
        "rejected: no active alert with this id",
    ]


def test_operator_cancel_is_marked_for_cap() -> None:
    m = AlertMachine()
    (e,) = m.feed(det("A", "flood", "caution", 0), [YONGSAN])
    (c,) = m.clear(e.alert_id, actor="kim", ts_ms=T0 + MIN, reason="sensor error", cancel=True)
    assert c.evidence["cancel"] is True


def test_earthquake_message_classes_stage_their_districts() -> None:
    # KMA classes from 2024-10-28 as the seismic detector maps them: 안전안내 → 주의,
    # 긴급재난 → 경계, 위급재난 → 심각; districts get the class of their expected intensity.
    from streams.config_files import load_templates

    m = AlertMachine()
    zones = {"37020": "caution", "37011": "alert", "11010": "serious"}
    out = []
    for zid, level in zones.items():
        z = ZoneInfo(id=zid, name={"37020": "경주시", "37011": "포항남구", "11010": "종로구"}[zid])
        out += m.feed(det("KMA-GYEONGJU-ACC", "earthquake", level, 0, value=6.1), [z])
    assert [(e.zone, e.action, e.level) for e in out] == [
        ("37020", "raise", "caution"),
        ("37011", "raise", "alert"),
        ("11010", "raise", "serious"),
    ]
    t = load_templates()
    assert [(t.render(e) or "").split(":")[0] for e in out] == [
        "[경보] Earthquake 지진 안전안내 경주시",
        "[경보] Earthquake 지진 긴급재난 포항남구",
        "[경보] Earthquake 지진 위급재난 종로구",
    ]


def test_forecast_caution_is_not_undone_by_gauge_still_below_the_line() -> None:
    """Two rules speak for flood at one gauge: the station stands at the higher of the two."""
    from alerting.machine import AlertMachine
    from alerting.model import ZoneInfo
    from gyeongbo.events import Detection

    m = AlertMachine()
    z = [ZoneInfo(id="11030", name="용산구")]
    t0 = 1596678000000
    fc = Detection(
        station="1018683",
        hazard="flood",
        level="caution",
        ts_ms=t0,
        rule="flood.forecast",
        value=8.36,
        threshold=8.5,
        projected_crossing_ms=t0 + 1800_000,
        confidence=0.7,
    )
    gauge = Detection(
        station="1018683",
        hazard="flood",
        level="attention",
        ts_ms=t0 + 600_000,
        rule="flood.gauge_stage",
        value=8.40,
        threshold=4.5,
    )
    out = [(e.action, e.level) for e in m.feed(fc, z) + m.feed(gauge, z)]
    assert out == [("raise", "caution")]
    assert m.active()[0].level == "caution"
    # the forecast is withdrawn and the gauge is below the caution line: the zone may step down
    withdrawn = Detection(
        station="1018683",
        hazard="flood",
        level="cleared",
        ts_ms=t0 + 1200_000,
        rule="flood.forecast",
        value=8.2,
    )
    m.feed(withdrawn, z)
    later = m.advance(t0 + 1200_000 + 3 * 3600_000)
    assert [(e.action, e.level) for e in later] == [("deescalate", "attention")]


def test_exercise_alerts_follow_the_drill_clock_not_the_wall_clock() -> None:
    """An accelerated drill's readings are hours behind the wall clock; a tick at wall time
    must neither stamp its transitions with wall time nor end its off-delays at once."""
    from alerting.machine import AlertMachine
    from alerting.model import ZoneInfo
    from gyeongbo.events import Detection

    m = AlertMachine()
    z = [ZoneInfo(id="11030", name="용산구")]
    t0 = 1596678000000
    wall = t0 + 20 * 3600_000

    def det(level: str, ts: int) -> Detection:
        return Detection(
            station="1018683",
            hazard="flood",
            level=level,
            ts_ms=ts,  # type: ignore[arg-type]
            rule="flood.gauge_stage",
            value=9.0,
            exercise=True,
        )

    assert [e.level for e in m.feed(det("caution", t0), z)] == ["caution"]
    assert m.advance(wall) == []  # the drill clock stands at t0: nothing lapses
    up = m.feed(det("alert", t0 + 3600_000), z)
    assert [(e.level, e.ts) for e in up] == [("alert", "2020-08-06T11:40:00+09:00")]
    m.feed(det("attention", t0 + 7200_000), z)
    assert m.advance(wall) == []  # off-delay (30 min of drill time) has not passed
    down = m.feed(det("attention", t0 + 7200_000 + 3600_000), z) + m.advance(wall)
    assert [e.level for e in down] == ["attention"]
    # stamped when the hold ran out in drill time (12:40 + 30 min), not when it was noticed
    assert down[0].ts == "2020-08-06T13:10:00+09:00"


def test_a_wide_event_fits_one_kafka_record_and_old_plain_state_still_loads() -> None:
    import msgspec

    m = AlertMachine()
    zones = [ZoneInfo(id=f"z{i}", name=f"zone {i}") for i in range(250)]
    for k, lv in enumerate(["attention", "caution", "alert", "serious", "alert", "caution"]):
        for i, z in enumerate(zones):
            for hz in ("flood", "pm25", "heavy_rain"):
                m.feed(det(f"s{i}", hz, lv, 60 * k), [z])
    raw_json = msgspec.json.encode(m._s)
    assert len(raw_json) > 1_000_000  # over Kafka's default max.message.bytes
    blob = m.to_bytes()
    assert len(blob) < 200_000
    again = AlertMachine.from_bytes(blob)
    assert again.active() == m.active() and len(again.active()) == 750
    assert AlertMachine.from_bytes(raw_json).active() == m.active()  # written before zlib


def test_a_replayed_detection_is_nothing_and_adds_no_sample() -> None:
    """After a crash the worker sends again the detections of the readings since its last
    checkpoint: applied twice, a 2-of-3 rule would count one spike as two."""
    clean, replayed = AlertMachine(TWO_OF_THREE), AlertMachine(TWO_OF_THREE)
    seq = [(0, "cleared"), (1, "caution"), (2, "cleared"), (3, "cleared"), (4, "caution")]
    kw = {"station": "SFC-SEONGSU-T1", "hazard": "structural"}
    want = run(clean, seq, **kw)  # type: ignore[arg-type]
    got = run(replayed, seq[:2], **kw)  # type: ignore[arg-type]
    got += run(replayed, seq[1:2], **kw)  # the spike at 1 again: no second sample
    got += run(replayed, seq[2:], **kw)  # type: ignore[arg-type]
    assert got == want == []
    assert replayed.to_bytes() == clean.to_bytes()
    # a whole stretch sent again after it was applied changes nothing either
    flood = [(0, "attention"), (10, "caution"), (20, "alert"), (30, "caution")]
    a, b = AlertMachine(), AlertMachine()
    once = run(a, flood)
    assert run(b, flood) == once and run(b, flood[1:]) == [] and b.to_bytes() == a.to_bytes()


def test_replayed_sensor_health_changes_nothing_and_a_deadman_recovers() -> None:
    m = AlertMachine()
    zones = [YONGSAN]

    def feed(level: str, minute: float, rule: str) -> list[tuple[str, str]]:
        d = det("A", "sensor_health", level, minute, rule=rule, public=False)
        return [(e.action, e.severity) for e in m.feed(d, zones)]  # type: ignore[union-attr]

    assert [e.level for e in m.feed(det("A", "flood", "caution", 0), zones)] == ["caution"]
    assert feed("caution", 5, "health.stuck") == [("raise", "critical")]  # held out
    assert feed("cleared", 30, "health.stuck") == []
    assert m.feed(det("A", "flood", "caution", 31), zones) == []  # trusted again
    before = m.to_bytes()
    # the replay of the fault and the recovery after both were applied: nothing (applied,
    # the recovery would forget the gauge's caution of minute 31, and the flood would clear)
    assert feed("caution", 5, "health.stuck") == [] and feed("cleared", 30, "health.stuck") == []
    assert m.to_bytes() == before
    assert [e.hazard for e in m.advance(T0 + 80 * MIN)] == ["sensor_health"]  # its clear
    # a deadman fault carries the clock's time (minute 90); the reading that ends the
    # silence carries its own, earlier time (minute 85, a gateway's buffered reading): it
    # still recovers the station, and its replay does nothing
    assert feed("alert", 90, "health.deadman") == [("raise", "critical")]
    assert m.feed(det("A", "flood", "alert", 86), zones) == []  # held out
    assert feed("cleared", 85, "health.deadman") == []
    assert [e.level for e in m.feed(det("A", "flood", "alert", 87), zones)] == ["alert"]
    assert feed("cleared", 85, "health.deadman") == []
    assert "real|A" not in m._s.faulty


def test_sensor_health_is_an_operators_data_quality_alert_with_a_severity() -> None:
    """Never a crisis level: ``warning`` for a dropped spike (the station stays trusted),
    ``critical`` while a station is held out, with the checks it fails."""
    import json

    from gyeongbo.events import DataQualityAlert, encode

    m = AlertMachine()
    zones = [YONGSAN]
    spike = det("A", "sensor_health", "attention", 0, rule="health.level_m")
    spike = msgspec.structs.replace(spike, details={"faults": ["spike"]}, public=False)
    (w,) = m.feed(spike, zones)
    assert isinstance(w, DataQualityAlert) and (w.severity, w.previous) == ("warning", "cleared")
    flat = det("A", "sensor_health", "alert", 5, rule="health.level_m", public=False)
    flat = msgspec.structs.replace(flat, details={"faults": ["flat_line"]})
    (c,) = m.feed(flat, zones)
    assert (c.action, c.severity, c.previous) == ("escalate", "critical", "warning")
    assert c.stations == ["A"] and c.checks == {"A": ["flat_line"]}
    dead = det("B", "sensor_health", "alert", 6, rule="health.deadman", public=False)
    m.feed(dead, zones)
    (row,) = m.active()
    assert (row.hazard, row.severity, row.checks) == (  # type: ignore[union-attr]
        "sensor_health",
        "critical",
        {"A": ["flat_line"], "B": ["deadman"]},
    )
    wire = json.loads(encode(c))
    assert "level" not in wire and "level_ko" not in wire
    words = json.dumps(wire, ensure_ascii=False)
    for public in ("attention", "caution", '"alert"', "serious", "관심", "주의", "경계", "심각"):
        assert public not in words
