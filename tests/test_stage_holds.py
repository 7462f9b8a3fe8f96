"""Public stages do not flap, and their transitions do not depend on when the clock ticked.

Pure: detections (or a scenario's MQTT payloads through the pipeline core,
:class:`streams.core.Core`) in, transitions out, compared as lists.

The flood drill once showed zone 32010 (춘천시) clearing its heavy-rain 주의 and raising it again
about 28 s into the run, in 3 of 7 clean runs. Chuncheon's gauge (station 101) stands at 주의
from 1.67 h, falls below both KMA lines at 3.67 h (3 h sum 59.5 mm, 12 h sum 91 mm) and its
12 h sum crosses 110 mm at 4.83 h. The rain rule emits a detection only when the level changes,
so between 3.67 h and 4.83 h nothing reaches the zone but ticks. With the 1 h hold of the time,
the hold ran out at 4.67 h: a run whose tick happened to read the drill clock between 4.67 h and
4.83 h (one 10-minute reading, 1 s of wall time at 600x, against a tick every 5 s) cleared the
zone and re-raised it; a run whose next evaluation was the 4.83 h detection itself never
noticed that the hold had run out, and kept the alert. The outcome depended on the phase of
the tick, not on the rain. The stage machine now fires every timer at its own instant in event
time, whoever looks next (``AlertMachine._catch_up``), so both runs give the same transitions;
and heavy rain's hold is 6 h, so neither clears.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.machine import AlertMachine
from alerting.model import ZoneInfo, parse_rfc3339_ms
from alerting.policy import DEFAULT_POLICIES, with_holds
from gyeongbo.events import AlertEvent, Detection
from gyeongbo.registry import load_registry
from gyeongbo.settings import REPO_ROOT, Settings
from simulators.generator import generate
from simulators.scenario import SCENARIO_DIR, load_scenario
from streams.core import Core, Message, Tick, alerts_of
from streams.services import Services

H = 3_600_000
T0 = 1596661200000  # 2020-08-06T06:00:00+09:00, the flood scenario's origin
JONGNO = ZoneInfo(id="11010", name="종로구")
LEVELS = ["cleared", "attention", "caution", "alert", "serious"]


def rain(level: str, hours: float, station: str = "108") -> Detection:
    return Detection(
        station=station,
        hazard="heavy_rain",
        level=level,  # type: ignore[arg-type]
        ts_ms=T0 + round(hours * H),
        rule="rain.kma_heavy_rain",
        value=1.0,
    )


def rows(events: list[AlertEvent]) -> list[tuple[float, str, str, str]]:
    return [
        (round((parse_rfc3339_ms(e.ts) - T0) / H, 2), e.action, e.level, e.alert_id) for e in events
    ]


# Seoul's gauge (108) in the flood drill, level changes only (what the rain rule emits):
# 호우주의보 at 2.83 h, the 3 h sum dithering on 60 mm until 4.0 h, the 12 h sum over 110 mm at
# 7.5 h, 호우경보 at 10 h, back to 주의보 at 13.5 h and below both lines at 19.17 h.
SEOUL_RAIN = [
    (2.83, "caution"),
    (3.33, "cleared"),
    (3.5, "caution"),
    (3.67, "cleared"),
    (3.83, "caution"),
    (4.0, "cleared"),
    (7.5, "caution"),
    (10.0, "alert"),
    (13.5, "caution"),
    (19.17, "cleared"),
]


def test_a_flapping_heavy_rain_signal_raises_once_and_escalates_once() -> None:
    m = AlertMachine()
    out = []
    for hours, level in SEOUL_RAIN:
        out += m.feed(rain(level, hours), [JONGNO])
    out += m.advance(T0 + 26 * H)
    aid = "heavy_rain:11010:2020-08-06T08:49:48+09:00"
    assert rows(out) == [
        (2.83, "raise", "caution", aid),
        (10.0, "escalate", "alert", aid),  # the same alert: 주의보 → 경보, never a lift between
        (19.5, "deescalate", "caution", aid),  # 6 h below 경보 since 13.5 h
        (25.5, "clear", "cleared", aid),  # each step down starts its own 6 h hold
    ]


def test_with_the_old_one_hour_hold_the_same_signal_is_lifted_and_reissued() -> None:
    """What residents got before: 주의보, 해제, 주의보, 경보, 주의보, 해제."""
    m = AlertMachine(with_holds({"heavy_rain": 3600}))
    out = []
    for hours, level in SEOUL_RAIN:
        out += m.feed(rain(level, hours), [JONGNO])
    out += m.advance(T0 + 26 * H)
    assert [(h, a, lv) for h, a, lv, _ in rows(out)] == [
        (2.83, "raise", "caution"),
        (5.0, "clear", "cleared"),
        (7.5, "raise", "caution"),
        (10.0, "escalate", "alert"),
        (14.5, "deescalate", "caution"),
        (20.17, "clear", "cleared"),
    ]


def test_a_rise_within_the_hold_is_a_rise_from_the_held_stage() -> None:
    m = AlertMachine()
    seq = [(0.0, "alert"), (1.0, "cleared"), (3.0, "caution"), (4.0, "serious")]
    out = [e for hours, level in seq for e in m.feed(rain(level, hours), [JONGNO])]
    assert [(a, lv) for _, a, lv, _ in rows(out)] == [("raise", "alert"), ("escalate", "serious")]
    assert len({e.alert_id for e in out}) == 1


def test_holds_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYEONGBO_ALERTING__HOLD_S__HEAVY_RAIN", "7200")
    policies = Services(Settings(_env_file=None)).policies
    assert policies["heavy_rain"].hold_s == 7200
    assert policies["flood"] == DEFAULT_POLICIES["flood"]
    monkeypatch.delenv("GYEONGBO_ALERTING__HOLD_S__HEAVY_RAIN")
    assert Services(Settings(_env_file=None)).policies == DEFAULT_POLICIES


def _ticked(dets: list[Detection], ticks: list[int], zones: list[ZoneInfo]) -> list[AlertEvent]:
    """Feed ``dets`` in order; before each, the ticks that fall before it (a tick reads the
    clock the worker has reached, never a time after a detection not yet staged)."""
    m = AlertMachine()
    out: list[AlertEvent] = []
    pending = sorted(ticks)
    for d in dets:
        while pending and pending[0] < d.ts_ms:
            out += m.advance(pending.pop(0))
        out += m.feed(d, zones)
    for t in pending:
        out += m.advance(t)
    return out


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(1, 180), st.sampled_from(LEVELS), st.sampled_from(["a", "b"])),
        min_size=1,
        max_size=40,
    ),
    hazard=st.sampled_from(["flood", "heavy_rain", "structural", "earthquake", "ozone"]),
    tick_every=st.integers(1, 200),
    phase=st.integers(0, 199),
)
def test_transitions_do_not_depend_on_when_ticks_arrive(
    steps: list[tuple[int, str, str]], hazard: str, tick_every: int, phase: int
) -> None:
    """The same detections with and without ticks between them give the same transitions,
    with the same times and ids; the ticks only make them known sooner."""
    t = T0
    dets = []
    for gap, level, station in steps:
        t += gap * 60_000
        dets.append(
            Detection(
                station=station,
                hazard=hazard,
                level=level,  # type: ignore[arg-type]
                ts_ms=t,
                rule=f"{hazard}.test",
                value=1.0,
            )
        )
    end = t + 30 * H
    zones = [JONGNO]
    ticks = list(range(T0 + phase * 60_000, end, tick_every * 60_000))
    assert _ticked(dets, ticks, zones) == _ticked(dets, [end], zones)


def _flood_drill(
    tick_phase_s: int,
    *,
    hold_s: int | None = None,
    scenario: Path = SCENARIO_DIR / "han-river-flood.yaml",
    tick_every_s: float = 3000.0,
) -> list[tuple[str, float, str]]:
    """The flood drill's heavy-rain transitions through the worker's pure path, with ticks as
    the worker sends them: one per 5 s of wall time (at 600x, ``tick_every_s`` = 3,000 s of
    drill time), carrying the newest drill reading processed so far; ``tick_phase_s`` shifts
    them."""
    policies = None if hold_s is None else with_holds({"heavy_rain": hold_s})
    core = Core(Services(Settings(_env_file=None)), policies=policies)
    reg = load_registry(REPO_ROOT / "config" / "stations.yaml")
    sc = load_scenario(scenario)
    gen = generate(sc, reg, anchor_ms=T0, exercise=True)
    records: list[Message | Tick] = []
    newest = 0.0
    tick = float(tick_phase_s)
    for pub in sorted(gen.publications, key=lambda p: p.t_s):
        while tick < pub.t_s:
            records.append(Tick(T0 + 48 * H, exercise_now_ms=T0 + round(newest * 1000)))
            tick += tick_every_s
        records.append(Message(pub.topic, pub.payload, T0 + round(pub.t_s * 1000)))
        newest = max(newest, pub.t_s)
    records.append(Tick(T0 + 48 * H, exercise_now_ms=T0 + round(newest * 1000)))
    out = alerts_of(core.push(records))
    # per zone in event time (the order across zones follows the ticks and means nothing)
    return sorted(
        (e.zone, round((parse_rfc3339_ms(e.ts) - T0) / H, 2), e.level)
        for e in out
        if e.hazard == "heavy_rain"
    )


def _one_peak_each(got: list[tuple[str, float, str]]) -> dict[str, list[str]]:
    """The levels of each zone, checked to go up to one peak and down from it: never a lift
    and a re-issue, never a step down and back up."""
    by_zone: dict[str, list[str]] = {}
    for zone, _, level in got:
        by_zone.setdefault(zone, []).append(level)
    for zone, levels in by_zone.items():
        ranks = [LEVELS.index(lv) for lv in levels]
        peak = ranks.index(max(ranks))
        assert all(a < b for a, b in itertools.pairwise(ranks[: peak + 1])), (zone, levels)
        assert all(a > b for a, b in itertools.pairwise(ranks[peak:])), (zone, levels)
    return by_zone


def test_zone_32010_flapping_in_the_flood_drill_is_gone_and_never_depended_on_the_tick() -> None:
    phases = range(0, 3000, 300)
    # The hold of the time (1 h): every tick phase now gives the same transitions — the clear
    # at 4.67 h, exactly when Chuncheon's hold ran out, and the re-raise at 4.83 h. Before
    # the fix, phases whose tick fell in [4.67 h, 4.83 h) gave this and the others did not.
    old = {tuple(_flood_drill(p, hold_s=3600)) for p in phases}
    assert len(old) == 1
    chuncheon = [(t, lv) for z, t, lv in next(iter(old)) if z == "32010"]
    assert chuncheon[:3] == [(1.67, "caution"), (4.67, "cleared"), (4.83, "caution")]
    # With the default 6 h hold no zone is lifted and re-issued, whatever the phase.
    new = {tuple(_flood_drill(p)) for p in phases}
    assert len(new) == 1
    # (what 양평군 31380 did with the 1 h hold: 경보, 주의보, 경보)
    by_zone = _one_peak_each(list(next(iter(new))))
    assert by_zone["32010"] == ["caution", "alert"]  # 경보 stands at the end of the drill


def test_the_fault_drill_warns_chuncheon_of_heavy_rain_once() -> None:
    # tests/test_faults.py's clean run (1,200x: a tick per 6,000 s of drill time). Chuncheon
    # (station 101) reaches 경보 on its 3 h sum at 1.67 h; its 12 h sum peaks at 171 mm and
    # only falls once the rain has stopped (5.5 h at this gauge), so the stage steps down to
    # 주의보 6 h after the 3 h sum fell below 90 mm, and stays. Before, the generator's
    # clipped noise rained 12.5 mm on the dry gauge after the rain, the 12 h sum reached
    # exactly 180.0 mm at 11.33 h, and 경보 was issued again hours after the rain.
    got = _flood_drill(
        0, scenario=Path(__file__).parent / "scenarios" / "flood-faults.yaml", tick_every_s=6000.0
    )
    chuncheon = [(t, lv) for z, t, lv in got if z == "32010"]
    assert chuncheon == [(1.17, "caution"), (1.67, "alert"), (10.5, "caution")]
    _one_peak_each(got)
