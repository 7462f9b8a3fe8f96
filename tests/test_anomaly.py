"""Streaming anomaly detector: state size, no look-ahead, range floor, spatial anomaly."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.anomaly import ANOMALY_DTYPE, AnomalyParams, new_profiles, update


def _run(xs: list[float], p: AnomalyParams | None = None) -> list[float]:
    st = np.zeros(1, ANOMALY_DTYPE)
    return [float(update(st, np.array([x]), p or AnomalyParams())[0][0]) for x in xs]


def test_state_fits_the_budget() -> None:
    assert ANOMALY_DTYPE.itemsize == 84  # ≤ 400 bytes per channel, 3 channels per station


def test_no_look_ahead() -> None:
    rng = np.random.default_rng(1)
    xs = [*rng.normal(5.0, 1.0, 300), 40.0, *rng.normal(5.0, 1.0, 50)]
    full = _run(xs)
    assert full[:200] == _run(xs[:200])


def test_new_extreme_fires_once_then_refractory() -> None:
    rng = np.random.default_rng(2)
    xs = [*rng.uniform(-1.0, 1.0, 400), 30.0, 31.0, 32.0]
    out = _run(xs)
    assert max(out[:400]) < AnomalyParams().fire
    assert out[400] == 1.0 and out[401:] == [0.0, 0.0]


def test_a_new_extreme_during_a_standing_alarm_scores_through_the_refractory() -> None:
    """While the channel's alarm stands (raised at ``fire``, ρ not below ``clear`` since), a
    spatial anomaly in the refractory scores 1 and changes nothing else: the refractory,
    the CUSUMs and the rest of the record are those of a held reading. The engine's alarm is
    already raised, so it does not change either (its raise and clear lines are the same)."""
    p = AnomalyParams()
    rng = np.random.default_rng(2)
    st = np.zeros(1, ANOMALY_DTYPE)
    for x in [*rng.uniform(-1.0, 1.0, 400), 30.0]:
        out, _ = update(st, np.array([x]), p)
    assert out[0] == 1.0 and int(st["level"][0]) == 1 and int(st["refr"][0]) == p.refractory
    standing, cleared = st.copy(), st.copy()
    cleared["level"] = 0  # the same record, its alarm no longer standing
    s1, raw1 = update(standing, np.array([80.0]), p)  # far beyond the record of 30
    s0, raw0 = update(cleared, np.array([80.0]), p)
    assert raw1[0] == raw0[0] >= p.clear
    assert s1[0] == 1.0 and s0[0] == 0.0
    a, b = standing.copy(), cleared.copy()
    a["level"] = b["level"] = 0
    assert a.tobytes() == b.tobytes()  # the state is that of a held reading
    assert int(standing["refr"][0]) == p.refractory - 1  # the refractory is not restarted
    # an in-range reading in the refractory is still held at 0, standing alarm or not
    assert update(standing, np.array([0.5]), p)[0][0] == 0.0


def test_a_new_extreme_with_little_evidence_is_held_and_clears_the_alarm() -> None:
    """A new extreme whose evidence ρ is below ``clear`` is where the engine clears its alarm:
    it is held at 0 like any reading in the refractory (showing it would re-raise)."""
    p = AnomalyParams()
    st = np.zeros(1, ANOMALY_DTYPE)
    st["n"], st["refr"], st["level"] = 5000, 50, 1  # an alarm standing, in its refractory
    st["s"], st["s0"], st["sf"] = 10.0, 10.0, 1.0  # a wide scale around μ = 0 …
    st["lo"], st["hi"], st["gmax"] = -1.0, 1.0, 1e3  # … and a narrow range of values
    st["lm"], st["lv"], st["sm"] = 0.01, 0.001, 0.01
    score, raw = update(st, np.array([1.5]), p)  # beyond hi + tol: a spatial anomaly
    assert raw[0] < p.clear and score[0] == 0.0
    assert int(st["level"][0]) == 0 and int(st["refr"][0]) == 49


def test_the_record_level_is_the_engine_alarm() -> None:
    """The record's ``level`` follows the engine's rule (raise at ``anomaly_raise``, clear
    below ``anomaly_clear``), and the engine's alarm is the same whether the scores through
    the refractory are shown or held at 0."""
    from detectors.engine import DetectorParams

    ep, p = DetectorParams(), AnomalyParams()
    assert (ep.anomaly_raise, ep.anomaly_clear) == (p.fire, p.clear)
    # one knob for both: the engine's lines are the detector's
    assert DetectorParams(anomaly=AnomalyParams(clear=0.3)).anomaly_clear == 0.3
    rng = np.random.default_rng(2)
    xs = rng.uniform(-1.0, 1.0, 3000)
    xs[[400, 401, 900, 1500, 1510, 2400]] = [30.0, 80.0, -40.0, 90.0, 300.0, 900.0]
    st = np.zeros(1, ANOMALY_DTYPE)
    level = held_level = 0  # the engine's alarm on the scores, and on the scores held at 0
    raised = through = 0
    for x in xs:
        in_refractory = int(st["refr"][0]) > 0
        score, raw = update(st, np.array([x]), p, score_from=ep.anomaly_raise)
        held = 0.0 if in_refractory else float(score[0])
        through += in_refractory and score[0] >= ep.anomaly_raise
        if score[0] >= ep.anomaly_raise:
            raised += level == 0
            level = 1
        elif raw[0] < ep.anomaly_clear:
            level = 0
        held_level = (
            1 if held >= ep.anomaly_raise else 0 if raw[0] < ep.anomaly_clear else held_level
        )
        assert int(st["level"][0]) == level == held_level
    assert raised >= 3 and through >= 1


def test_sparse_counts_do_not_saturate() -> None:
    # a count that is almost always 0: its robust scale collapses, the range floor holds it
    rng = np.random.default_rng(3)
    xs = [float(v) for v in (rng.random(3000) < 0.05) * rng.integers(1, 4, 3000)]
    xs[:10] = [0.0, 5.0] * 5  # the range is known early
    out = _run(xs)
    assert sum(o >= AnomalyParams().fire for o in out) <= 3


def test_nan_rows_are_untouched() -> None:
    st = np.zeros(2, ANOMALY_DTYPE)
    for x in (1.0, 2.0, 1.5):
        update(st, np.array([x, np.nan]))
    assert st["n"].tolist() == [3, 0]
    score, raw = update(st, np.array([1.2, np.nan]))
    assert np.isnan(score[1]) and np.isnan(raw[1])


def test_a_reading_far_off_a_collapsed_scale_fires_rather_than_scoring_nan() -> None:
    # A channel that read exactly 0.0 for its whole history has a scale at the 1e-12 floor; a
    # reading of 1e9 is ~1e20 scales away, whose square overflows float32 (NaN ≥ line is
    # False: it would never fire).
    out = _run([0.0] * 200 + [1e9])
    assert out[-1] >= AnomalyParams().fire
    st = np.zeros(1, ANOMALY_DTYPE)
    for _ in range(200):
        update(st, np.array([0.0]))
    _, raw = update(st, np.array([1e9]))
    assert raw[0] == 1.0


def test_records_in_a_strided_view_are_updated_like_contiguous_ones() -> None:
    # update works on a column copy of the records and writes it back: a caller's view of
    # every other record (not contiguous) must see the same state and scores as a copy
    rng = np.random.default_rng(5)
    xs = rng.normal(3.0, 0.5, (300, 4))
    xs[250, 1] = 40.0  # an anomaly on one channel
    xs[100:110, 2] = np.nan  # gaps on another
    whole = np.zeros(8, ANOMALY_DTYPE)
    alone = np.zeros(4, ANOMALY_DTYPE)
    view = whole[::2]
    assert not view.flags.c_contiguous
    tod_a, tod_b = new_profiles(4), new_profiles(4)
    fired = []
    for i, row in enumerate(xs):
        ts = np.full(4, 1.7e9 + 600.0 * i)
        a = update(view, row, ts=ts, tod=tod_a)
        b = update(alone, row, ts=ts, tod=tod_b)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        fired += [(i, int(c)) for c in np.flatnonzero(a[0] >= AnomalyParams().fire)]
    assert (250, 1) in fired
    assert whole[::2].tobytes() == alone.tobytes()
    assert not whole[1::2].tobytes().strip(b"\0")  # the records in between are untouched
    assert tod_a.tobytes() == tod_b.tobytes()


def test_records_of_another_dtype_are_refused() -> None:
    with pytest.raises(ValueError, match="ANOMALY_DTYPE"):
        update(np.zeros(2, [("mu", np.float32)]), np.array([1.0, 2.0]))
