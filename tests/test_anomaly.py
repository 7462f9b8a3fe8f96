"""Streaming anomaly detector: state size, no look-ahead, range floor, spatial anomaly."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.anomaly import ANOMALY_DTYPE, AnomalyParams, new_profiles, update


def _run(xs: list[float], p: AnomalyParams | None = None) -> list[float]:
    st = np.zeros(1, ANOMALY_DTYPE)
    return [float(update(st, np.array([x]), p or AnomalyParams())[0][0]) for x in xs]


def test_state_fits_the_budget() -> None:
    assert ANOMALY_DTYPE.itemsize == 112  # ≤ 400 bytes per channel, 3 channels per station


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


def test_a_new_extreme_scores_through_the_refractory_without_restarting_it() -> None:
    """In the refractory a new extreme (beyond the range seen by a margin) scores 1 and
    changes nothing else: the refractory, the CUSUMs and the rest of the record are those of
    a held reading; an in-range reading is held at 0."""
    p = AnomalyParams()
    rng = np.random.default_rng(2)
    st = np.zeros(1, ANOMALY_DTYPE)
    for x in [*rng.uniform(-1.0, 1.0, 400), 30.0]:
        out, _ = update(st, np.array([x]), p)
    refractory = p.refractory / p.dt_ref
    assert out[0] == 1.0 and int(st["level"][0]) == 1 and st["refr"][0] == refractory
    s1, _ = update(st, np.array([80.0]), p)  # far beyond the record of 30
    assert s1[0] == 1.0 and st["refr"][0] == refractory - 1  # not restarted
    assert update(st, np.array([0.5]), p)[0][0] == 0.0


def test_the_record_level_is_the_engine_alarm() -> None:
    """The record's ``level`` is raised exactly at a score ≥ the engine's ``anomaly_raise``
    (``fire``) and then stays raised until the channel has settled."""
    from detectors.engine import DetectorParams

    ep, p = DetectorParams(), AnomalyParams()
    assert ep.anomaly_raise == p.fire
    rng = np.random.default_rng(2)
    xs = rng.uniform(-1.0, 1.0, 3000)
    xs[[400, 401, 900, 1500, 1510, 2400]] = [30.0, 80.0, -40.0, 90.0, 300.0, 900.0]
    st = np.zeros(1, ANOMALY_DTYPE)
    raised = 0
    for x in xs:
        before = int(st["level"][0])
        score, _ = update(st, np.array([x]), p, score_from=ep.anomaly_raise)
        if score[0] >= ep.anomaly_raise:
            assert int(st["level"][0]) == 1
            raised += before == 0
        elif before == 0:
            assert int(st["level"][0]) == 0  # only a score at the line raises it
    assert raised >= 3


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
