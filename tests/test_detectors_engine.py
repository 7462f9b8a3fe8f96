"""Sensor health, out-of-order and late readings, exercise isolation, state export/import."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from detectors import engine, nab_score, structural
from detectors.engine import STATE_DTYPE, DetectorSet
from gyeongbo.batch import ReadingBatch
from gyeongbo.registry import REPO_ROOT, Registry, load_registry

T0 = 1_596_672_000_000
M = 60_000
HANGANG = "1018683"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def water(points: list[tuple[int, float]], **kw: Any) -> ReadingBatch:
    return ReadingBatch.from_rows(
        {
            "station": HANGANG,
            "kind": "water_level",
            "ts_ms": T0 + t * M,
            "values": {"level_m": h},
            **kw,
        }
        for t, h in points
    )


def brief(dets: list) -> list[tuple[int, str, str, bool]]:  # type: ignore[type-arg]
    return [((d.ts_ms - T0) // M, d.rule, d.level, d.public) for d in dets]


def test_stuck_gauge_during_a_real_rise_is_flagged_and_not_trusted(registry: Registry) -> None:
    # Rising 0.1 m / 10 min from 8.0, the gauge freezes at 8.3 while the river goes on rising.
    rise = [(10 * k, 8.0 + 0.1 * k) for k in range(4)]
    stuck = [(10 * k, 8.3) for k in range(4, 12)]
    dets = DetectorSet(registry).process(water(rise + stuck))
    got = brief(dets)
    assert got[-1][1:] == ("health.level_m", "alert", False)
    assert got[-1][0] == 80  # the 6th identical reading (30, 40, …, 80)
    assert dets[-1].details["faults"] == ["stuck"]
    # Public output: the forecast raised caution from the trusted rise (at 30 min), nothing
    # from the stuck readings; the stage is held, not lowered by the frozen value.
    assert [g for g in got if g[3]] == [
        (0, "flood.gauge_stage", "attention", True),
        (30, "flood.forecast", "caution", True),
    ]


def test_spike_is_dropped_step_is_flagged_and_recovery_after_three_good(registry: Registry) -> None:
    pts = [
        (0, 5.0),
        (10, 5.02),
        (20, 12.0),
        (30, 5.04),  # a one-off 7 m spike
        (40, 9.5),
        (50, 9.52),
        (60, 9.53),  # a step of 4.5 m that persists: fault
        (70, 9.55),
        (80, 9.56),
        (90, 9.58),
        (100, 9.60),
    ]  # healthy again
    got = brief(DetectorSet(registry).process(water(pts)))
    assert got == [
        (0, "flood.gauge_stage", "attention", True),
        (20, "health.level_m", "attention", False),  # spike
        (30, "health.level_m", "cleared", False),
        (40, "health.level_m", "attention", False),
        (60, "health.level_m", "alert", False),  # step confirmed
        (90, "health.level_m", "cleared", False),  # 3 healthy readings: 70, 80, 90
        (90, "flood.gauge_stage", "caution", True),  # 9.58 ≥ 8.5 trusted only now
    ]


def test_out_of_range_is_a_fault(registry: Registry) -> None:
    got = brief(DetectorSet(registry).process(water([(0, 5.0), (10, 75.0), (20, 5.0)])))
    assert got == [
        (0, "flood.gauge_stage", "attention", True),
        (10, "health.level_m", "alert", False),
    ]


def test_deadman_fires_once_after_k_intervals_and_clears_on_the_next_reading(
    registry: Registry,
) -> None:
    ds = DetectorSet(registry)
    ds.process(water([(0, 5.0)]))
    assert ds.check_deadman(T0 + 30 * M) == []  # 3 × 600 s = 30 min: not yet
    d = ds.check_deadman(T0 + 31 * M)
    assert brief(d) == [(31, "health.deadman", "alert", False)] and d[0].station == HANGANG
    assert ds.check_deadman(T0 + 60 * M) == []
    assert brief(ds.process(water([(61, 5.0)]))) == [(61, "health.deadman", "cleared", False)]


def test_drill_stations_are_judged_on_the_drill_clock(registry: Registry) -> None:
    """A drill's readings lag the wall clock by hours: the wall clock never silences them;
    the drill's own clock does, when one of its gauges drops out."""
    ds = DetectorSet(registry)
    ds.process(water([(0, 5.0), (10, 5.0)], exercise=True))
    wall = T0 + 24 * 60 * M
    assert ds.check_deadman(wall) == []  # no drill clock: drills raise no deadman
    assert ds.check_deadman(wall, exercise_now_ms=T0 + 30 * M) == []
    d = ds.check_deadman(wall, exercise_now_ms=T0 + 41 * M)
    assert brief(d) == [(41, "health.deadman", "alert", False)] and d[0].exercise


def test_a_drill_station_is_judged_on_its_own_clock_and_only_when_asked(
    registry: Registry,
) -> None:
    """Per station drill clocks (a worker gives each station its partition's): a clock that
    ran ahead elsewhere silences nobody, a station without a clock is not judged, and
    ``judge`` leaves out the stations a worker is still catching up on."""
    ds = DetectorSet(registry)
    ds.process(water([(0, 5.0), (10, 5.0)], exercise=True))
    ds.process(water([(0, 5.0)]))
    wall = T0 + 24 * 60 * M
    idx = int(np.flatnonzero(ds.ids == HANGANG)[0])
    clocks = np.full(len(ds.ids), T0 + 90 * M, dtype=np.int64)  # other partitions, far ahead
    clocks[idx] = T0 + 20 * M  # the gauge's own partition: not silent yet
    assert ds.check_deadman(T0 + 20 * M, exercise_now_ms=clocks) == []
    clocks[idx] = 0  # no drill clock for its partition: not judged
    assert ds.check_deadman(T0 + 20 * M, exercise_now_ms=clocks) == []
    clocks[idx] = T0 + 41 * M
    skip = np.ones(len(ds.ids), dtype=bool)
    skip[idx] = False  # being caught up on: not judged, real or drill
    assert ds.check_deadman(wall, exercise_now_ms=clocks, judge=skip) == []
    d = ds.check_deadman(wall, exercise_now_ms=clocks)
    assert sorted((x.exercise, (x.ts_ms - T0) // M) for x in d) == [
        (False, 24 * 60),
        (True, 41),
    ]


def test_out_of_order_within_bound_is_used_too_late_is_counted(registry: Registry) -> None:
    ds = DetectorSet(registry)
    ds.process(water([(0, 8.0), (20, 8.2)]))
    # 10 min late (bound 10 min): accepted but not "now"; 25 min late: dropped and counted.
    assert ds.process(water([(10, 8.6)])) == []
    assert ds.process(water([(-5, 9.0)])) == []
    assert ds.stats["late"] == 1
    # In one batch, order does not matter: sorted by event time per station.
    a = DetectorSet(registry).process(water([(0, 8.2), (10, 8.55), (20, 8.45)]))
    b = DetectorSet(registry).process(water([(20, 8.45), (0, 8.2), (10, 8.55)]))
    assert a == b
    assert brief(a) == [
        (0, "flood.gauge_stage", "attention", True),
        (10, "flood.gauge_stage", "caution", True),
        (20, "flood.gauge_stage", "attention", True),
    ]


def test_duplicates_and_unknown_stations_are_counted_not_fatal(registry: Registry) -> None:
    ds = DetectorSet(registry)
    rows = [
        {
            "station": HANGANG,
            "kind": "water_level",
            "ts_ms": T0,
            "seq": 7,
            "values": {"level_m": 8.6},
        }
    ] * 2
    rows.append({"station": "nope", "kind": "water_level", "ts_ms": T0, "values": {"level_m": 1}})
    rows.append({"station": "108", "kind": "water_level", "ts_ms": T0, "values": {"level_m": 1}})
    assert brief(ds.process(ReadingBatch.from_rows(rows))) == [
        (0, "flood.gauge_stage", "caution", True)
    ]
    assert (ds.stats["duplicate"], ds.stats["unknown_station"], ds.stats["kind_mismatch"]) == (
        1,
        1,
        1,
    )


def test_exercise_readings_have_their_own_state_and_are_flagged(registry: Registry) -> None:
    ds = DetectorSet(registry)
    real = ds.process(water([(0, 5.0), (10, 5.0)]))
    drill = ds.process(water([(0, 12.0), (10, 12.1)], exercise=True))
    assert [(d.level, d.exercise) for d in real] == [("attention", False)]
    assert [(d.level, d.exercise) for d in drill] == [("alert", True)]
    # The real gauge did not move: a real reading at 5.0 changes nothing.
    assert ds.process(water([(20, 5.01)])) == []
    blob = ds.export_state([HANGANG])[HANGANG]
    assert len(blob) == 12 + 2 * STATE_DTYPE.itemsize  # header + real + exercise records


def test_the_drill_clock_is_the_newest_drill_reading_and_survives_a_restart(
    registry: Registry,
) -> None:
    ds = DetectorSet(registry)
    ds.process(water([(0, 5.0), (10, 5.0)]))
    assert ds.exercise_clock_ms() is None  # real readings are not a drill
    ds.process(water([(30, 5.0), (40, 5.1)], exercise=True))
    ds.process(water([(35, 5.0)], exercise=True))  # late but inside the bound: not newer
    assert ds.exercise_clock_ms() == T0 + 40 * M
    again = DetectorSet(registry)
    again.import_state(ds.export_state())
    assert again.exercise_clock_ms() == T0 + 40 * M


def test_state_round_trip_restarted_worker_needs_no_warm_up(registry: Registry) -> None:
    rise = [(10 * k, 8.0 + 0.05 * k) for k in range(8)]
    whole = DetectorSet(registry).process(water(rise))
    first = DetectorSet(registry)
    part1 = first.process(water(rise[:4]))
    assert first.touched_stations() == [HANGANG]
    blobs = first.export_state(first.touched_stations())
    second = DetectorSet(registry)
    assert second.import_state(blobs) == 1
    assert second.export_state([HANGANG]) == blobs  # every field, the anomaly profile too
    part2 = second.process(water(rise[4:]))
    assert part1 + part2 == whole
    with pytest.raises(ValueError):
        second.import_state({HANGANG: b"XXXX" + blobs[HANGANG][4:]})


def test_import_rejects_a_blob_of_another_format_version(registry: Registry) -> None:
    ds = DetectorSet(registry)
    ds.process(water([(0, 5.0)]))
    blob = ds.export_state([HANGANG])[HANGANG]
    magic, version, nrec, size = struct.unpack_from("<4sHHI", blob)
    assert (magic, nrec, size) == (b"GBDS", 1, STATE_DTYPE.itemsize)
    for other in (3, version + 1):  # older than any migration, or newer than this code
        old = struct.pack("<4sHHI", magic, other, nrec, size) + blob[12:]
        with pytest.raises(ValueError):
            DetectorSet(registry).import_state({HANGANG: old})


def _as_version(blob: bytes, version: int) -> bytes:
    """A current blob as version 5 (or 4) wrote it: the anomaly record in float32 with
    its refractory a count, without the settling and run fields (and, for 4, without the held
    bin: the profiles always current); the structural byte the stage alone."""
    recs = np.frombuffer(blob, STATE_DTYPE, offset=12).copy()
    recs["struct"] = structural.level(recs["struct"])
    dt = engine._STATE_V5 if version == 5 else engine._STATE_V4
    anom = engine._ANOM_V5 if version == 5 else engine._ANOM_V4
    old = np.zeros(len(recs), dt)
    for name in dt.names or ():
        if name != "anom":
            old[name] = recs[name]
    for f in anom.names or ():
        if not f.startswith("_"):
            old["anom"][f] = recs["anom"][f]
    if version == 4:
        t_last = recs["anom"]["t_last"]
        for i, c in zip(*np.nonzero(t_last), strict=True):
            old["anom_tod"][i, c, (int(t_last[i, c]) // 3600) % 24] = recs["anom"]["pbin"][i, c]
    return struct.pack("<4sHHI", b"GBDS", version, len(old), old.dtype.itemsize) + old.tobytes()


@pytest.mark.parametrize("version", [4, 5])
def test_an_older_state_is_migrated_and_goes_on_as_before(registry: Registry, version: int) -> None:
    # Readings every 10 min for two days (the profile complete, bins held and handed back):
    # a worker restarted on version 4 or 5 blobs raises and clears the same alarms at the
    # same times as the running one (the baseline, widened to float64, differs only in its
    # last float32 digits).
    rng = np.random.default_rng(3)
    pts = [(10 * k, 5.0 + np.sin(k / 72 * np.pi) + rng.normal(0, 0.02)) for k in range(600)]
    pts[450] = (4500, 9.0)  # something to detect after the restart
    pts += [(6000 + k, 5.0) for k in range(0, 120, 7)] + [(6005, 5.1)]  # an older one too
    running = DetectorSet(registry)
    running.process(water(pts[:300]))
    migrated = DetectorSet(registry)
    blobs = running.export_state()
    old = {k: _as_version(v, version) for k, v in blobs.items()}
    assert migrated.import_state(old) == len(blobs)
    after = water(pts[300:])
    want = running.process(after)
    got = migrated.process(after)
    assert len(want) >= 2 and brief(got) == brief(want)
    assert [d.value for d in got] == [d.value for d in want]
    mine = np.frombuffer(migrated.export_state([HANGANG])[HANGANG], STATE_DTYPE, offset=12)
    ref = np.frombuffer(running.export_state([HANGANG])[HANGANG], STATE_DTYPE, offset=12)
    assert mine["anom"]["pbin"].tobytes() == ref["anom"]["pbin"].tobytes()  # the held bins
    assert np.allclose(mine["anom"]["mu"], ref["anom"]["mu"], rtol=1e-6)


def test_a_version_5_alarm_standing_at_the_upgrade_settles_and_no_run_alarm_follows(
    registry: Registry,
) -> None:
    # A version 5 blob written while the alarm stood: after the upgrade the alarm stays
    # raised until the gauge has settled (its settling mean seeded by the next reading), and
    # a gauge that repeats its value raises no stuck-run alarm (the run record starts unknown).
    rng = np.random.default_rng(4)
    pts = [(10 * k, 5.0 + rng.normal(0, 0.02)) for k in range(451)]
    pts[450] = (4500, 9.0)
    running = DetectorSet(registry)
    assert brief(running.process(water(pts)))[-1][1:3] == ("anomaly.level_m", "attention")
    blob = _as_version(running.export_state([HANGANG])[HANGANG], 5)
    restored = DetectorSet(registry)
    restored.import_state({HANGANG: blob})
    rec = np.frombuffer(restored.export_state([HANGANG])[HANGANG], STATE_DTYPE, offset=12)
    an = rec["anom"][0, 0]
    assert an["level"] == 1 and an["flags"] & 1 and an["rmax"] == -1.0
    run = np.frombuffer(running.export_state([HANGANG])[HANGANG], STATE_DTYPE, offset=12)
    assert an["mu"] == np.float32(run["anom"][0, 0]["mu"])  # float32 in version 5
    later = [(4510 + 10 * k, 9.0 + (0.01 if k % 2 else 0.0)) for k in range(12)]
    dets = brief(restored.process(water(later)))
    assert [d[1:3] for d in dets if d[1].startswith("anomaly")] == [("anomaly.level_m", "cleared")]


def test_a_restored_worker_keeps_the_anomaly_alarm_standing_in_its_blob(
    registry: Registry,
) -> None:
    # A jump raises the operators' anomaly alarm at 450; the worker is restarted while it
    # stands, from a blob whose anomaly record has ``level`` 0 and the alarm only in
    # ``anom_lv`` (as written before the record kept the alarm): the restored worker keeps it
    # standing and clears it when the running one does.
    rng = np.random.default_rng(3)
    pts = [(10 * k, 5.0 + np.sin(k / 72 * np.pi) + rng.normal(0, 0.02)) for k in range(600)]
    pts[450] = (4500, 9.0)
    running = DetectorSet(registry)
    raised = running.process(water(pts[:451]))[-1]
    assert (raised.rule, raised.level, (raised.ts_ms - T0) // M) == (
        "anomaly.level_m",
        "attention",
        4500,
    )
    recs = np.frombuffer(running.export_state([HANGANG])[HANGANG], STATE_DTYPE, offset=12).copy()
    assert recs["anom_lv"][0, 0] == recs["anom"]["level"][0, 0] == 1
    recs["anom"]["level"] = 0
    restored = DetectorSet(registry)
    restored.import_state(
        {
            HANGANG: struct.pack("<4sHHI", b"GBDS", engine._VERSION, 1, recs.itemsize)
            + recs.tobytes()
        }
    )
    rest = water(pts[451:])
    want = running.process(rest)
    assert next(b[1:3] for b in brief(want) if b[1].startswith("anomaly")) == (
        "anomaly.level_m",
        "cleared",
    )
    assert restored.process(rest) == want


def test_state_is_under_2_kb_per_station(registry: Registry) -> None:
    assert DetectorSet(registry).state_bytes_per_station == STATE_DTYPE.itemsize <= 2048


# ---------------------------------------------------------------- NAB scorer, by hand
def test_nab_scorer_hand_computed_window_and_false_positives() -> None:
    # 20 points, window [10, 13] (width 4), probation 3 → points 0–2 unscored.
    f = nab_score.sweep_scores(np.arange(20), [(10, 13)], probation=3)
    sig = nab_score.scaled_sigmoid
    max_tp = float(sig(-1.0))
    # In the window: position -(13 - i + 1)/4 → -1, -0.75, -0.5, -0.25.
    assert f.tp_part[10:14] == pytest.approx(
        [float(sig(y)) / max_tp for y in (-1.0, -0.75, -0.5, -0.25)]
    )
    # After the window: |13 - i| / (4 - 1); before any window: -1.
    assert f.fp_part[14] == pytest.approx(float(sig(1 / 3)))
    assert f.fp_part[5] == -1.0
    std = nab_score.PROFILES["standard"]
    s = np.zeros(20)
    s[11], s[12], s[5], s[14], s[1] = 0.9, 0.95, 0.8, 0.7, 1.0  # s[1] is in probation
    # Threshold 0.75: window caught at 11 (best of 11, 12) plus the FP at 5.
    expect = float(sig(-0.75)) / max_tp - 0.11
    assert nab_score.score_at_threshold([f], [s], std, 0.75) == pytest.approx(expect)
    thr, raw = nab_score.best_threshold([f], [s], std)
    # Candidates: 0.95 → 0.8496…; 0.9 → 0.9584…; 0.8 → 0.848…; 0.7 → + FP at 14 (sig(1/3)·0.11)
    assert thr == 0.9 and raw == pytest.approx(float(sig(-0.75)) / max_tp)
    assert nab_score.normalised(raw, std, f.n_windows) == pytest.approx(100 * (raw + 1) / 2)


def test_nab_scorer_null_and_perfect_detectors() -> None:
    f = nab_score.sweep_scores(np.arange(100), [(40, 49), (80, 89)], probation=15)
    null = np.zeros(100)
    perfect = np.zeros(100)
    perfect[[40, 80]] = 1.0
    for prof in nab_score.PROFILES.values():
        _, raw0 = nab_score.best_threshold([f], [null], prof)
        _, raw1 = nab_score.best_threshold([f], [perfect], prof)
        assert nab_score.normalised(raw0, prof, 2) == pytest.approx(0.0)
        assert nab_score.normalised(raw1, prof, 2) == pytest.approx(100.0)
    # reward_low_FN doubles the cost of the missed window.
    one = np.zeros(100)
    one[45] = 1.0
    fn = nab_score.PROFILES["reward_low_FN_rate"]
    _, raw = nab_score.best_threshold([f], [one], fn)
    assert raw == pytest.approx(
        float(nab_score.scaled_sigmoid(-0.5)) / float(nab_score.scaled_sigmoid(-1.0)) - 2.0
    )


GYEONGJU_EVENT = {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15.0}
S = 1000


def seismic(rows: list[tuple[str, int, dict[str, float] | None]], **kw: Any) -> ReadingBatch:
    """(station, second, catalogue event or None) → quiet accelerometer readings."""
    return ReadingBatch.from_rows(
        {
            "station": sid,
            "kind": "seismic",
            "ts_ms": T0 + t * S,
            "values": {"pga_g": 0.0004},
            **({"event": ev} if ev else {}),
            **kw,
        }
        for sid, t, ev in rows
    )


def catalogue(dets: list) -> list[tuple[str, int, str, float, bool]]:  # type: ignore[type-arg]
    return [
        (d.station, (d.ts_ms - T0) // S, d.level, d.value, d.exercise)
        for d in dets
        if d.rule == "earthquake.catalogue"
    ]


def test_one_catalogue_detection_per_event(registry: Registry) -> None:
    ds = DetectorSet(registry)
    small = {**GYEONGJU_EVENT, "magnitude": 4.0}
    first = ds.process(
        seismic(
            [
                ("KMA-GYEONGJU-ACC", 0, None),
                ("KMA-GYEONGJU-ACC", 8, GYEONGJU_EVENT),
                ("KMA-POHANG-ACC", 9, GYEONGJU_EVENT),  # another station relays the same event
                ("KMA-GYEONGJU-ACC", 10, {**GYEONGJU_EVENT, "lat": 35.7601}),  # rounds alike
                ("KMA-SEOUL-ACC", 11, small),  # a different event
            ]
        )
    )
    assert catalogue(first) == [
        ("KMA-GYEONGJU-ACC", 8, "alert", 5.8, False),
        ("KMA-SEOUL-ACC", 11, "caution", 4.0, False),
    ]
    (d,) = [x for x in first if x.value == 5.8]
    assert (d.hazard, d.public, d.threshold) == ("earthquake", True, 5.0)
    assert d.details == {**GYEONGJU_EVENT, "nationwide": True}
    # a gateway retry in a later batch is the same event; after the window a new one
    retry = seismic([("KMA-GYEONGJU-ACC", 30, GYEONGJU_EVENT)])
    assert catalogue(ds.process(retry)) == []
    later = seismic([("KMA-GYEONGJU-ACC", 8 + 601, GYEONGJU_EVENT)])
    assert catalogue(ds.process(later)) == [("KMA-GYEONGJU-ACC", 609, "alert", 5.8, False)]
    assert (ds.stats["catalogue_events"], ds.stats["catalogue_repeats"]) == (3, 3)


def test_catalogue_events_keep_the_exercise_flag_and_their_own_memory(
    registry: Registry,
) -> None:
    ds = DetectorSet(registry)
    drill = seismic([("KMA-GYEONGJU-ACC", 8, GYEONGJU_EVENT)], exercise=True)
    real = seismic([("KMA-GYEONGJU-ACC", 8, GYEONGJU_EVENT)])
    # a drill of the same event does not hide the real one, and vice versa
    assert catalogue(ds.process(drill)) == [("KMA-GYEONGJU-ACC", 8, "alert", 5.8, True)]
    assert catalogue(ds.process(real)) == [("KMA-GYEONGJU-ACC", 8, "alert", 5.8, False)]


@pytest.mark.parametrize(
    ("magnitude", "level", "threshold"),
    [
        (6.2, "serious", 6.0),
        (5.0, "alert", 5.0),
        (3.5, "caution", 3.5),
        (2.5, "attention", 2.0),
        (1.2, "cleared", None),
    ],
)
def test_catalogue_level_is_what_the_magnitude_alone_decides(
    registry: Registry, magnitude: float, level: str, threshold: float | None
) -> None:
    ev = {**GYEONGJU_EVENT, "magnitude": magnitude}
    (d,) = [
        x
        for x in DetectorSet(registry).process(seismic([("KMA-GYEONGJU-ACC", 8, ev)]))
        if x.rule == "earthquake.catalogue"
    ]
    assert (d.level, d.threshold, d.details["nationwide"]) == (level, threshold, magnitude >= 5)


def test_a_late_or_duplicate_reading_brings_no_catalogue_event(registry: Registry) -> None:
    ds = DetectorSet(registry)
    ds.process(seismic([("KMA-GYEONGJU-ACC", 2000, None)]))
    late = seismic([("KMA-GYEONGJU-ACC", 2000 - 601, GYEONGJU_EVENT)])  # > 10 min behind
    assert catalogue(ds.process(late)) == [] and ds.stats["late"] == 1
    rows = [("KMA-POHANG-ACC", 5, GYEONGJU_EVENT)]
    ds.process(seismic(rows, seq=7))
    before = ds.stats["catalogue_repeats"]
    assert catalogue(ds.process(seismic(rows, seq=7))) == []  # a duplicate reading
    assert ds.stats["duplicate"] == 1 and ds.stats["catalogue_repeats"] == before


def test_a_partial_event_from_outside_the_bridge_is_ignored(registry: Registry) -> None:
    b = seismic([("KMA-GYEONGJU-ACC", 8, {"magnitude": 5.8})])  # no epicentre, no depth
    ds = DetectorSet(registry)
    assert catalogue(ds.process(b)) == [] and ds.stats["catalogue_events"] == 0
