"""The anomaly detector's time-of-day profile: a departure from the daily cycle is caught."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from detectors.anomaly import ANOMALY_DTYPE, AnomalyParams, new_profiles, profiles, update

T0 = 1_700_006_400  # a UTC midnight (s)
DAY = 86_400


def _cycle(t: float) -> float:
    return 10.0 + 5.0 * float(np.sin(2 * np.pi * (t % DAY) / DAY))


def _fires(
    *, missing_peak: bool, with_times: bool = True, step_s: int = 600, days: int = 10
) -> list[tuple[int, float]]:
    """(day, hour) of every alarm over ``days`` of a daily cycle with noise; on day 9 the
    morning peak (04:00-10:00 UTC) optionally stays at the daily mean."""
    rng = np.random.default_rng(4)
    st = np.zeros(1, ANOMALY_DTYPE)
    tod = new_profiles(1)
    out = []
    for k in range(days * DAY // step_s):
        t = T0 + k * step_s
        day, hour = divmod(k * step_s, DAY)
        x = _cycle(t) + rng.normal(0.0, 0.1)
        if missing_peak and day == 9 and 4 * 3600 <= hour < 10 * 3600:
            x = 10.0 + rng.normal(0.0, 0.1)
        ts = np.array([float(t)]) if with_times else None
        score, _ = update(st, np.array([x]), ts=ts, tod=tod if with_times else None)
        if score[0] >= AnomalyParams().fire:
            out.append((day, hour / 3600))
    return out


def test_a_missing_daily_peak_fires_when_it_should_have_come() -> None:
    fired = [f for f in _fires(missing_peak=True) if f[0] >= 1]  # after the first day
    assert fired == [(9, 4.0)]


def test_the_same_days_with_their_peak_never_fire_after_the_first_day() -> None:
    assert [f for f in _fires(missing_peak=False) if f[0] >= 1] == []


def test_without_times_the_missing_peak_looks_normal() -> None:
    # the flat value is the channel's mean: only the profile knows it is wrong at 04:00
    assert [f for f in _fires(missing_peak=True, with_times=False) if f[0] >= 1] == []


def test_the_profile_learns_per_day_whatever_the_reporting_interval() -> None:
    # One day at 10 min and the same day at 30 s give nearly the same hourly bins: the step
    # weight is elapsed time, not the number of readings.
    learned = []
    for step in (600, 30):
        st, tod = np.zeros(1, ANOMALY_DTYPE), new_profiles(1)
        for k in range(3 * DAY // step):
            t = T0 + k * step
            update(st, np.array([_cycle(t)]), ts=np.array([float(t)]), tod=tod)
        learned.append(profiles(st, tod)[0])
    assert np.max(np.abs(learned[0] - learned[1])) < 0.3
    hours = (np.arange(24) + 0.5) * 3600
    truth = np.array([_cycle(T0 + h) for h in hours])
    assert np.max(np.abs(learned[1] - truth)) < 0.6  # each bin near its hour's mean


def test_times_need_a_profile_array() -> None:
    st = np.zeros(2, ANOMALY_DTYPE)
    with pytest.raises(ValueError, match="tod must be a float32 array"):
        update(st, np.array([1.0, 2.0]), ts=np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="C-contiguous"):
        update(st, np.array([1.0, 2.0]), ts=np.array([1.0, 2.0]), tod=new_profiles(4)[::2])


def test_rows_of_a_shared_profile_array_are_updated_in_place() -> None:
    # Each record holds the bin of its current hour; tod gets it when the channel moves on
    # to another hour. The complete profiles are tod's rows with the held bins put in.
    st, tod, rows = np.zeros(2, ANOMALY_DTYPE), new_profiles(5), np.array([4, 1])
    update(st, np.array([3.0, 7.0]), ts=np.array([3600.0, 7200.0]), tod=tod, tod_rows=rows)
    whole = profiles(st, tod, rows)
    assert whole[0, 1] == 3.0 and whole[1, 2] == 7.0  # hour 1 of row 4, hour 2 of row 1
    assert np.count_nonzero(whole) == 2 and st["pbin"].tolist() == [3.0, 7.0]
    update(st, np.array([4.0, 8.0]), ts=np.array([7300.0, 7300.0]), tod=tod, tod_rows=rows)
    assert tod[4, 1] == 3.0 and np.count_nonzero(tod) == 1  # row 4 left hour 1: back in tod
    whole = profiles(st, tod, rows)
    assert whole[0, 2] == 4.0 and whole[1, 2] != 7.0  # a new bin; a step of row 1's bin
    assert np.count_nonzero(whole) == 3


def test_the_profile_is_the_same_whether_bins_are_held_or_not() -> None:
    # Readings hours apart, minutes apart, back in time, without a time, and on a day's
    # wrap-around to the same bin: records that hold their current bin learn and score the
    # same as records whose bin is copied back into tod after every reading (tod never
    # stale), and the bins they hand back to tod land where they belong.
    rng = np.random.default_rng(8)
    st, tod = np.zeros(3, ANOMALY_DTYPE), new_profiles(3)
    ref_st, ref_tod = np.zeros(3, ANOMALY_DTYPE), new_profiles(3)
    t = np.full(3, float(T0))
    steps = [30.0, 600.0, 3600.0, DAY, -900.0]
    for _ in range(3000):
        step = rng.choice(steps, size=3, p=[0.5, 0.3, 0.1, 0.05, 0.05])
        t = t + step
        ts = t.copy()
        ts[rng.random(3) < 0.02] = np.nan
        x = 10.0 + np.sin(t / DAY * 2 * np.pi) + rng.normal(0, 0.1, 3)
        got = update(st, x, ts=ts, tod=tod)
        want = []
        for r in range(3):  # the reference: the held bin copied back to tod at once
            one = ref_st[r : r + 1]
            s, _ = update(one, x[r : r + 1], ts=ts[r : r + 1], tod=ref_tod[r : r + 1])
            ref_tod[r] = profiles(one, ref_tod[r : r + 1])[0]
            want.append(s[0])
        assert got[0].tolist() == want
    assert np.array_equal(profiles(st, tod), ref_tod)


def test_a_reading_from_the_past_neither_moves_the_profile_nor_rewinds_the_clock() -> None:
    st, tod = np.zeros(1, ANOMALY_DTYPE), new_profiles(1)
    for t, x in ((T0 + 3600, 5.0), (T0 + 4200, 5.0)):
        update(st, np.array([x]), ts=np.array([float(t)]), tod=tod)
    profile = profiles(st, tod)
    update(st, np.array([50.0]), ts=np.array([float(T0 + 3900)]), tod=tod)  # 5 min older
    assert np.array_equal(profiles(st, tod), profile) and int(st["t_last"][0]) == T0 + 4200


def test_the_residual_record_waits_a_day_after_the_profile_completes() -> None:
    # Each bin starts from one noisy reading, so the first residuals are large: a record armed
    # at once doubled the alarms on noise for hours (and after an upgrade every station
    # completes its profile on the same day). For the day after completion the alarms are
    # exactly those of the detector without the record; then the record may fire.
    def alarms(p: AnomalyParams) -> npt.NDArray[np.bool_]:
        rng = np.random.default_rng(5)
        st, tod = np.zeros(300, ANOMALY_DTYPE), new_profiles(300)
        out = []
        for k in range(2 * 144 + 12):  # 10-minute readings, two days and two hours
            score, _ = update(
                st, rng.normal(10.0, 1.0, 300), p, ts=np.full(300, float(T0 + k * 600)), tod=tod
            )
            out.append(score >= p.fire)
        return np.array(out)

    with_record, without = alarms(AnomalyParams()), alarms(AnomalyParams(sp_tod=1e9))
    # the last bin is filled at 23:00, and the record arms 24 clock hours later (47:00)
    complete, armed = 144, 2 * 144 - 6
    assert np.array_equal(with_record[:armed], without[:armed])
    assert with_record[complete:armed].any()  # (there were alarms to compare)
    assert not np.array_equal(with_record, without)  # armed, it adds alarms of its own


def test_a_time_that_wraps_to_zero_after_2038_keeps_the_held_bin() -> None:
    # Times are uint32 seconds with int32 differences: after 2038 a reading at time 0 looks
    # like a step forward and sets the clock to 0, where the record holds no bin any more.
    # The bin it held must reach tod rather than stay in the record, unread.
    t = 2_200_003_200.0  # 2039, hour bin 0
    st, tod = np.zeros(2, ANOMALY_DTYPE), new_profiles(2)
    for k in range(40):
        update(st, np.array([5.0, 5.0]), ts=np.array([t + 10 * k] * 2), tod=tod)
    learned = profiles(st, tod)[0, 0]
    assert learned > 4.0
    # row 1 steps back in time (so that the step-back path runs), row 0 reads at time 0
    update(st, np.array([9.0, 5.0]), ts=np.array([0.0, t]), tod=tod)
    assert int(st["t_last"][0]) == 0 and profiles(st, tod)[0, 0] >= learned
