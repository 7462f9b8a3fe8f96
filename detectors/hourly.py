"""Clock-hour means of air-quality channels (PM10, PM2.5, O₃): the input of the Annex 7 rules.

The Air Quality Conservation Act's alert criteria (Enforcement Rule Annex 7) are stated on
hourly mean concentrations (시간당 평균농도). Maths: readings are summed per clock hour
``H = floor(ts / 3600 s)``; hour ``H`` closes when a reading arrives with
``ts ≥ (H + 1) h + grace`` (``grace`` lets late readings within the lateness bound land in the
hour they belong to), giving ``mean = Σx / n`` when ``n ≥ min_count`` (data capture, default
75 % of the hour at the station's reporting interval, the usual validity rule for hourly
air-quality averages), else NaN (a missing hour, which breaks persistence). At most two hours
close per reading (the open one and the next); longer gaps are missing hours. Units: the
channel's (µg/m³, ppm). State per channel: 24 bytes (:data:`HOURLY_DTYPE`).

>>> st = np.zeros(1, HOURLY_DTYPE)
>>> H, t0 = 3_600_000, 1_596_672_000_000  # hour 443520 = 2020-08-06 00:00 UTC
>>> for t, x in [(0, 10.0), (30 * 60_000, 20.0), (H + 60_000, 5.0), (H + 6 * 60_000, 7.0)]:
...     c = update(st, np.array([t0 + t]), np.array([x]), np.array([1]), grace_ms=300_000)
...     print(t // 60_000, c.hour.tolist(), c.mean.tolist())
0 [-1] [nan]
30 [-1] [nan]
61 [-1] [nan]
66 [443520] [15.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["HOURLY_DTYPE", "HOUR_MS", "Closed", "update"]

HOUR_MS = 3_600_000
HOURLY_DTYPE = np.dtype(
    [
        ("open_h", np.int32),  # oldest open hour (hours since the epoch), 0 = none yet
        ("sum", np.float32, (2,)),  # open hour and the next one
        ("cnt", np.uint16, (2,)),
        ("prev_h", np.int32),  # last closed hour and its mean
        ("prev_mean", np.float32),
    ]
)


@dataclass(frozen=True)
class Closed:
    """Hours closed by this reading (per row; up to two: ``hour``/``mean`` then ``hour2``)."""

    hour: npt.NDArray[np.int64]  # -1 when nothing closed
    mean: npt.NDArray[np.float64]
    hour2: npt.NDArray[np.int64]
    mean2: npt.NDArray[np.float64]
    #: False when no row closed an hour (then the arrays are shared and read-only).
    any_closed: bool = True


def update(
    st: npt.NDArray[np.void],
    ts: npt.NDArray[np.int64],
    x: npt.NDArray[np.float64],
    min_count: npt.NDArray[np.int64],
    *,
    grace_ms: int,
) -> Closed:
    """Add readings (NaN adds nothing but still advances time) and close finished hours."""
    m = len(ts)
    h = ts // HOUR_MS
    open_h = st["open_h"].astype(np.int64)
    fresh = open_h == 0
    if fresh.any():
        open_h = np.where(fresh, h, open_h)
    sums = st["sum"].astype(np.float64)
    cnts = st["cnt"].astype(np.int64)
    close = ~fresh & (ts >= (open_h + 1) * HOUR_MS + grace_ms)
    any_closed = bool(close.any())
    if any_closed:
        hour1 = np.full(m, -1, dtype=np.int64)
        hour2 = np.full(m, -1, dtype=np.int64)
        mean1 = np.full(m, np.nan)
        mean2 = np.full(m, np.nan)
        for k, (hout, mout) in enumerate(((hour1, mean1), (hour2, mean2))):
            if k:  # the hour after: closes only where the first one did
                close = ~fresh & (ts >= (open_h + 1) * HOUR_MS + grace_ms)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(cnts[:, 0] >= min_count, sums[:, 0] / cnts[:, 0], np.nan)
            hout[close] = open_h[close]
            mout[close] = mean[close]
            sums[close, 0], cnts[close, 0] = sums[close, 1], cnts[close, 1]
            sums[close, 1], cnts[close, 1] = 0.0, 0
            open_h = np.where(close, open_h + 1, open_h)
    else:  # the usual reading: no hour closes (read-only arrays, shared)
        hour1 = hour2 = np.full(m, -1, dtype=np.int64)
        mean1 = mean2 = np.full(m, np.nan)
    # A longer gap: skip empty hours so the reading's hour (or the one before) is open.
    jump = h > open_h + 1
    if jump.any():
        open_h = np.where(jump, np.where(ts >= h * HOUR_MS + grace_ms, h, h - 1), open_h)
        sums[jump], cnts[jump] = 0.0, 0
    slot = h - open_h
    add = (slot >= 0) & (slot <= 1) & ~np.isnan(x)
    r = np.flatnonzero(add)
    sums[r, slot[r]] += x[r]
    cnts[r, slot[r]] += 1
    st["open_h"] = open_h
    st["sum"] = sums
    st["cnt"] = np.minimum(cnts, 65535)
    if any_closed:
        last_h = np.where(hour2 >= 0, hour2, hour1)
        last_m = np.where(hour2 >= 0, mean2, mean1)
        st["prev_h"] = np.where(last_h >= 0, last_h, st["prev_h"])
        st["prev_mean"] = np.where(last_h >= 0, last_m, st["prev_mean"])
    return Closed(hour1, mean1, hour2, mean2, any_closed)
