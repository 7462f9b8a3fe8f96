"""Structural monitors: each channel's stage confirmed by 2 of its last 3 readings.

Plain functions (``detectors.structural``), the detector set (readings in, detections out,
the state export and its migration from version 6), and the Seongsu drill's scenario through
the pipeline core (:class:`streams.core.Core`) judged against its own
expectations.
"""

from __future__ import annotations

import struct

import numpy as np
import pytest

from detectors import engine, structural
from detectors.engine import STATE_DTYPE, DetectorSet
from gyeongbo.batch import ReadingBatch
from gyeongbo.events import encode
from gyeongbo.registry import REPO_ROOT, Registry, load_registry
from gyeongbo.settings import Settings
from simulators.drill import observe_alerts
from simulators.generator import Clock, generate
from simulators.report import evaluate
from simulators.scenario import load_checked
from streams.core import Core, Message, alerts_of
from streams.services import Services
from tests.test_detectors_engine import _as_version

T0 = 1_596_672_000_000
M = 60_000
STEP = 30 * M  # readings 30 min apart: crack jumps stay under the gauge's 10 mm/h rate limit
PIER = "SFC-SEONGSU-P7"  # allowables: tilt 0.002 rad, crack 5 mm, vibration 0.3 cm/s
ALLOW = np.array([0.002, 5.0, 0.3])


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def _median_vote(levels: list[int]) -> list[int]:
    """Reference: the highest level at least 2 of the last 3 readings reach (two readings
    below every line before the first)."""
    hist = [0, 0, *levels]
    return [sorted(hist[k : k + 3])[1] for k in range(len(levels))]


# ------------------------------------------------------------------ plain functions
def test_a_stage_needs_two_of_the_last_three_readings() -> None:
    rng = np.random.default_rng(7)
    frac = rng.choice([0.0, 0.3, 0.65, 0.85, 1.1], size=(400, 6))  # 6 independent channels
    x = frac * 0.002 * rng.choice([-1.0, 1.0], size=frac.shape)  # tilt is signed
    allow = np.full(6, 0.002)
    st = np.zeros(6, np.uint8)
    got = []
    for row in x:
        st = structural.update(st, row, allow, np.ones(6, bool))
        got.append(structural.level(st).tolist())
    for c in range(6):
        raw = structural.stage(x[:, c], allow[c : c + 1]).tolist()
        assert [g[c] for g in got] == _median_vote(raw)


def test_one_reading_over_a_line_raises_nothing_and_one_below_lowers_nothing() -> None:
    allow = np.array([5.0])

    def levels(crack: list[float]) -> list[int]:
        st, out = np.zeros(1, np.uint8), []
        for v in crack:
            st = structural.update(st, np.array([v]), allow, np.array([True]))
            out.append(int(structural.level(st)[0]))
        return out

    assert levels([1.0, 5.2, 1.0, 1.0, 5.2]) == [0, 0, 0, 0, 0]  # isolated spikes
    assert levels([1.0, 3.1, 3.2]) == [0, 0, 2]  # raised at the second reading
    assert levels([1.0, 5.1, 5.2]) == [0, 0, 4]  # and may jump to 심각
    assert levels([4.1, 4.2, 1.0, 4.3, 4.0]) == [0, 3, 3, 3, 3]  # one dip holds
    assert levels([4.1, 4.2, 1.0, 4.3, 1.0]) == [0, 3, 3, 3, 0]  # 2 of the last 3 below
    assert levels([5.1, 5.1, 3.1, 3.2]) == [0, 4, 4, 2]  # falls to what 2 of 3 still reach


def test_untrusted_readings_and_channels_without_an_allowable_do_not_vote() -> None:
    st = structural.from_level(np.array([3], np.uint8))
    same = structural.update(st, np.array([0.0]), np.array([5.0]), np.array([False]))
    assert same.tolist() == st.tolist()
    st = np.zeros(1, np.uint8)
    for _ in range(3):
        st = structural.update(st, np.array([9.0]), np.array([np.nan]), np.array([True]))
    assert structural.level(st).tolist() == [0]


def test_from_level_holds_a_stage_through_one_reading() -> None:
    for lv in (0, 2, 3, 4):
        st = structural.from_level(np.array([lv], np.uint8))
        assert structural.level(st).tolist() == [lv]
        one = structural.update(st, np.array([0.0 if lv else 5.0]), ALLOW[1:2], np.array([True]))
        assert structural.level(one).tolist() == [lv]


# ------------------------------------------------------------------ detector set
def _rows(crack: list[float], tilt: float = 0.0004, start: int = 0) -> list[dict]:  # type: ignore[type-arg]
    return [
        {
            "station": PIER,
            "kind": "structural",
            "ts_ms": T0 + (start + k) * STEP,
            "values": {
                "tilt_rad": tilt + 1e-6 * (k % 3),
                "crack_mm": v,
                "vibration_cms": 0.06 + 0.01 * (k % 2),  # a live gauge is never flat
            },
        }
        for k, v in enumerate(crack)
    ]


def _brief(dets: list) -> list[tuple[int, str, str, float, float]]:  # type: ignore[type-arg]
    return [
        ((d.ts_ms - T0) // STEP, d.rule, d.level, d.value, d.threshold) for d in dets if d.public
    ]


def test_detections_come_at_the_confirming_reading(registry: Registry) -> None:
    crack = [1.0, 3.05, 1.0, 1.0, 2.98, 3.01, 3.04, 4.0, 3.9, 4.05, 5.0, 5.1, 1.2, 1.1]
    got = _brief(DetectorSet(registry).process(ReadingBatch.from_rows(_rows(crack))))
    assert got == [
        (6, "structural.crack_mm", "caution", 3.04, 3.0),  # 3.05 at 1 was alone, 3.01 too
        (9, "structural.crack_mm", "alert", 4.05, 4.0),  # 4.0 at 7, 3.9 at 8: 2 of 3 at 9
        (11, "structural.crack_mm", "serious", 5.1, 5.0),
        (13, "structural.crack_mm", "cleared", 1.1, 5.0),  # two readings below every line
    ]


def test_readings_of_a_faulty_channel_do_not_vote(registry: Registry) -> None:
    # -1 mm is outside the crack gauge's range: the channel is faulty until 3 good readings
    # (3.2 and 1.0 are held out too). The vote then takes 3.3 with 3.1 and 1.0, the last
    # trusted readings: 2 of 3 over 3 mm. Had 3.2 voted, 주의 would have come at 3.
    rows = _rows([1.0, 3.1, -1.0, 3.2, 1.0, 3.3])
    dets = DetectorSet(registry).process(ReadingBatch.from_rows(rows))
    assert [d.level for d in dets if d.rule == "health.crack_mm"] == ["alert", "cleared"]
    assert _brief(dets) == [(5, "structural.crack_mm", "caution", 3.3, 3.0)]


def _as_v6(blob: bytes) -> bytes:
    """A current blob as version 6 wrote it: the structural byte held the stage alone."""
    recs = np.frombuffer(blob, STATE_DTYPE, offset=12).copy()
    recs["struct"] = structural.level(recs["struct"])
    return struct.pack("<4sHHI", b"GBDS", 6, len(recs), recs.itemsize) + recs.tobytes()


@pytest.mark.parametrize("version", [5, 6])
def test_a_version_6_state_keeps_its_stage_and_goes_on_as_the_running_one(
    registry: Registry, version: int
) -> None:
    # Stood at 경계 on two readings at the upgrade; then one low reading (held), a second
    # (cleared), then one high reading (nothing) and a second (raised) — as a worker that
    # never restarted.
    before = _rows([1.0, 4.1, 4.2])
    after = _rows([1.0, 1.0, 4.3, 4.4], start=3)
    running = DetectorSet(registry)
    assert _brief(running.process(ReadingBatch.from_rows(before)))[-1][2] == "alert"
    now = running.export_state([PIER])[PIER]
    # (5: the anomaly record of before too, as the engine's own test writes it)
    blob = _as_v6(now) if version == 6 else _as_version(now, 5)
    assert struct.unpack_from("<4sHHI", blob)[1] == version
    restored = DetectorSet(registry)
    assert restored.import_state({PIER: blob}) == 1
    rec = np.frombuffer(restored.export_state([PIER])[PIER], STATE_DTYPE, offset=12)
    assert structural.level(rec["struct"][0]).tolist() == [0, 3, 0]
    want = running.process(ReadingBatch.from_rows(after))
    got = restored.process(ReadingBatch.from_rows(after))
    assert (
        _brief(got)
        == _brief(want)
        == [
            (4, "structural.crack_mm", "cleared", 1.0, 4.0),
            (6, "structural.crack_mm", "alert", 4.4, 4.0),
        ]
    )
    if version == 6:  # (5: the anomaly record widened to float64 differs in its digits)
        assert restored.export_state([PIER]) == running.export_state([PIER])
    mine, ref = (
        np.frombuffer(d.export_state([PIER])[PIER], STATE_DTYPE, offset=12)["struct"]
        for d in (restored, running)
    )
    assert mine.tobytes() == ref.tobytes()


def test_the_export_is_version_7(registry: Registry) -> None:
    ds = DetectorSet(registry)
    ds.process(ReadingBatch.from_rows(_rows([1.0])))
    blob = ds.export_state([PIER])[PIER]
    assert struct.unpack_from("<4sHHI", blob)[:2] == (b"GBDS", engine._VERSION) == (b"GBDS", 7)


# ------------------------------------------------------------------ the drill's scenario
def test_the_seongsu_scenario_meets_its_expectations_through_the_pure_path() -> None:
    """The shipped drill, without the stack: its MQTT payloads through validation, the
    detectors, the geo join and the alert machine, judged against the scenario's own
    expectations (crack 3 / 4 / 5 mm at ~3h24m / 4h24m / 5h23m)."""
    settings = Settings(_env_file=None)
    core = Core(Services(settings))
    reg = core.services.registry
    sc = load_checked("seongsu-bridge-damage", reg)
    clock = Clock(anchor_ms=T0, wall_start=0.0, speed=60.0)
    gen = generate(sc, reg, anchor_ms=T0, exercise=True)
    pubs = sorted(gen.publications, key=lambda p: p.t_s)
    out = core.push(Message(p.topic, p.payload, T0 + round(p.t_s * 1000)) for p in pubs)
    # received "now" in the drill's wall clock: observe_alerts judges by the events' own ts
    raw = [(0.0, encode(ev)) for ev in alerts_of(out)]
    findings: list[str] = []
    observed = observe_alerts(raw, clock, {s.station for s in sc.stations}, findings)
    assert findings == []
    out = evaluate(sc.expect, sc.never, observed)
    assert [(o.status, o.level) for o in out if o.expectation is not None] == [
        ("met", lv) for lv in ("caution", "alert", "serious") * 2
    ]
    assert not any(o.failed for o in out)
    zone = sorted((round(o.t_s / 60), o.level) for o in observed if o.zone == "seongsu-bridge-500m")
    assert zone == [(205, "caution"), (265, "alert"), (324, "serious")]
