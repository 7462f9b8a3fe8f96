"""The anomaly alarm settles: a change is reported once, a slow drift within the channel's
variability is no alarm, and time constants are in seconds (1 s and 10 min channels alike)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors.anomaly import ANOMALY_DTYPE, AnomalyParams, new_profiles, update

T0 = 1_700_006_400  # a UTC midnight (s)
HOUR = 3600.0


def _alarm(
    t: npt.NDArray[np.float64], x: npt.NDArray[np.float64], st: npt.NDArray[np.void] | None = None
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.void]]:
    """The alarm (record ``level``) after each reading of one channel."""
    st = np.zeros(1, ANOMALY_DTYPE) if st is None else st
    tod = new_profiles(1)
    level = np.zeros(len(x), np.uint8)
    for i in range(len(x)):
        update(st, x[i : i + 1], ts=t[i : i + 1], tod=tod)
        level[i] = st["level"][0]
    return level, st


def _raises(level: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    return np.flatnonzero(np.diff(np.r_[0, level.astype(np.int8)]) > 0)


def _wandering(step: float, days: float, seed: int) -> tuple[npt.NDArray[np.float64], ...]:
    """Noise (0.2) on a slow wander of ±1.5 over half a day, read every ``step`` s."""
    rng = np.random.default_rng(seed)
    t = T0 + np.arange(int(days * 86400 / step)) * step
    x = 20.0 + 1.5 * np.sin(2 * np.pi * (t - T0) / 43200.0) + rng.normal(0.0, 0.2, len(t))
    return t.astype(np.float64), x


def test_a_level_shift_alarms_once_and_clears_after_settling() -> None:
    t, x = _wandering(600.0, 12.0, seed=1)
    at = int(np.searchsorted(t, T0 + 8 * 86400))
    x[at:] += 10.0  # a lasting step of about seven times the channel's usual spread
    level, _ = _alarm(t, x)
    after = _raises(level)[_raises(level) >= at]
    assert after.tolist() == [at]  # raised at the step, once: no alarm in the 4 days after
    cleared = at + int(np.argmax(level[at:] == 0))
    assert cleared > at and t[cleared] - t[at] <= 3 * HOUR  # settled at the new level
    assert not level[cleared:].any()


def test_a_slow_drift_within_the_channel_variability_does_not_alarm() -> None:
    # A channel that wanders (three slow cycles of 7.3, 17.9 and 31 h) for a week, then
    # drifts by 1 over 8 hours and back over the next 8, within the range it has wandered
    # through (the drift is 8 times its noise: the old baseline called such drifts new).
    rng = np.random.default_rng(2)
    t = T0 + np.arange(10 * 144) * 600.0
    h = (t - T0) / HOUR
    wander = sum(0.6 * np.sin(2 * np.pi * h / period) for period in (7.3, 17.9, 31.0))
    x = 20.0 + wander + rng.normal(0.0, 0.1, len(t))
    start = int(np.searchsorted(t, T0 + 7 * 86400))
    x += np.clip(1.0 - np.abs(t - t[start] - 8 * HOUR) / (8 * HOUR), 0.0, 1.0)
    end = int(np.searchsorted(t, t[start] + 24 * HOUR))
    assert x[start:end].max() < x[:start].max() and x[start:end].min() > x[:start].min()
    level, _ = _alarm(t, x)
    assert not level[start:end].any()


def _settled_record(step: float) -> npt.NDArray[np.void]:
    """A channel in service (value 10, scale 0.1, long learned), last read at T0."""
    st = np.zeros(1, ANOMALY_DTYPE)
    st["n"] = 1_000_000
    st["mu"] = st["f"] = st["m"] = 10.0
    st["s"] = st["sf"] = 0.1
    st["s0"] = 10.0
    st["lo"], st["hi"] = 9.5, 10.5
    st["lm"], st["lv"], st["sm"] = 0.05, 0.01, 0.05
    st["gmax"], st["rmax"], st["emax"] = 50.0, 2.0, 0.5
    st["t_last"], st["pbin"] = T0, 10.0
    st["seen"] = 0xFFFFFFFF  # profile complete and armed
    return st


def test_one_second_and_ten_minute_channels_behave_alike_per_unit_of_time() -> None:
    # The same signal read every second and every ten minutes: a step of 3 at 10 min, then
    # 3 hours at the new level. The alarm rises with the step in both, their baselines move by
    # the same amount per hour, and they settle within half an hour of each other.
    out = {}
    for step in (1.0, 600.0):
        rng = np.random.default_rng(3)
        t = T0 + np.arange(1, int(3.2 * HOUR / step) + 1) * step
        x = 10.0 + rng.normal(0.0, 0.03, len(t)) + np.where(t >= T0 + 600, 3.0, 0.0)
        st = _settled_record(step)
        tod = np.full((1, 24), 10.0, np.float32)
        fast, level = [], []
        for i in range(len(t)):
            update(st, x[i : i + 1], ts=t[i : i + 1].astype(np.float64), tod=tod)
            level.append(int(st["level"][0]))
            fast.append(float(st["f"][0]))
        lv = np.array(level)
        up = _raises(lv.astype(np.uint8))
        down = np.flatnonzero(np.diff(lv) < 0) + 1
        one_hour = int(np.searchsorted(t, T0 + 600 + HOUR))
        out[step] = (t[up[0]] - T0, t[down[0]] - T0, fast[one_hour], float(st["refr"][0]))
    (up1, down1, f1, r1), (up600, down600, f600, r600) = out[1.0], out[600.0]
    assert up1 == up600 == 600  # the first reading of the new level
    assert abs(down1 - down600) <= 1800
    assert abs(f1 - f600) < 0.05 * 3.0  # the fast mean an hour in: the same share of the step
    p = AnomalyParams()
    assert abs(r1 - r600) <= 600 / p.dt_ref  # the refractory counts down in seconds


def test_a_stuck_sensor_is_reported_once_however_long_it_stays_stuck() -> None:
    # Four days of a noisy channel read every ten minutes (its value changes at every
    # reading), then the sensor repeats its last value for a day: five refractories long.
    # The run is reported when it becomes a record, and not again at the end of every
    # refractory while it goes on. After a day of changing readings it sticks again, for
    # longer than twice the first run (a record again): reported again, once.
    rng = np.random.default_rng(4)
    t = T0 + np.arange(int(8.5 * 144)) * 600.0
    x = 20.0 + rng.normal(0.0, 0.2, len(t))
    stuck = int(np.searchsorted(t, T0 + 4 * 86400))
    end = stuck + 144
    x[stuck:end] = x[stuck - 1]
    again = end + 144
    x[again:] = x[again - 1]  # 2.5 days
    level, _ = _alarm(t, x)
    raised = _raises(level)
    first = raised[(raised >= stuck) & (raised < end)]
    assert len(first) == 1 and first[0] - stuck <= 6  # within the hour, once
    second = raised[raised >= again]
    assert len(second) == 1
