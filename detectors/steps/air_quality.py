"""Air-quality stations: clock-hour means, then the Annex 7 rules on each hour they close
(``air.pm10``, ``air.pm25``, ``air.o3``).

Maths and sources: :mod:`detectors.hourly` (clock-hour means with a data-capture rule; an hour
closes at the first reading at or after its end plus a grace), :mod:`detectors.pm` (PM10 /
PM2.5 주의보 / 경보 on two consecutive hourly means, step-downs on one) and
:mod:`detectors.ozone` (O₃ on one hourly mean) — Air Quality Conservation Act, Enforcement
Rule Annex 7. Every accepted reading is binned, late ones into the hour they belong to; a
channel's value counts only when trusted. A change is reported at the closed hour's end with
the hour's mean and the line decided on: a rise its new level's line, a fall the cancel line
it fell below. Every closed hour is also noted for
:meth:`~detectors.engine.DetectorSet.closed_hourly_means`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from detectors import hourly, ozone, pm
from detectors.channels import CHANNELS, HAZARD_OF, KA, NO_ROWS
from detectors.steps.base import Host, StepRows
from gyeongbo.events import Detection
from gyeongbo.vocab import Kind

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["STEP", "AirQualityStep", "hours"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Rows = npt.NDArray[np.intp]

_CH3: I64 = np.arange(3, dtype=np.int64)
#: The state field of each channel's level (and the rule's name).
_AIR_FIELDS = ("pm10", "pm25", "o3")
_O3_LINES = np.array((np.inf, np.inf, *ozone.LINES_PPM))


class AirQualityStep:
    """:class:`~detectors.steps.base.KindStep` of air-quality stations."""

    kind = KA

    def run(self, ds: Host, rows: StepRows, out: list[Detection]) -> None:
        is_a = rows.kind == KA
        sel = np.flatnonzero(is_a & rows.accept) if is_a.any() else NO_ROWS
        if len(sel):
            chans = [(0, sel), (1, sel), (2, sel)]
            hours(ds, out, chans, rows.slot, rows.idx, rows.ts, rows.vals, rows.trusted)


STEP = AirQualityStep()


def hours(
    ds: Host,
    out: list[Detection],
    chans: list[tuple[int, Rows]],
    slot: I64,
    idx: I64,
    ts: I64,
    vals: F64,
    trusted: npt.NDArray[np.bool_],
) -> None:
    """Hourly means, then the PM / O₃ rules on the hours they close, for the air-quality
    channels ``chans`` = [(channel, rows)] in channel order. The hourly records are
    independent, so all channels go through one :func:`hourly.update`; the rules and
    their detections then follow channel by channel."""
    if len(chans) == 3 and chans[0][1] is chans[1][1] is chans[2][1]:
        # The same rows for every channel (process): channel-major keys, no concatenation.
        rows = chans[0][1]
        k = len(rows)
        s = slot[rows]
        hkey = (s[None, :] * 3 + _CH3[:, None]).reshape(-1)
        x = np.where(trusted.take(rows, axis=0), vals.take(rows, axis=0), np.nan).T.reshape(-1)
        rows_all = np.concatenate((rows, rows, rows))
        bounds = [0, k, 2 * k, 3 * k]
    else:
        rows_all = np.concatenate([r for _, r in chans])
        hkey = np.concatenate([slot[r] * 3 + c for c, r in chans])
        x = np.concatenate([np.where(trusted[r, c], vals[r, c], np.nan) for c, r in chans])
        bounds = np.cumsum([0] + [len(r) for _, r in chans]).tolist()
    hs = ds._gather("hourly", hkey)
    prev_h_all = hs["prev_h"].astype(np.int64)
    prev_m_all = hs["prev_mean"].astype(np.float64)
    closed = hourly.update(
        hs, ts[rows_all], x, ds.min_count[idx[rows_all]], grace_ms=ds.params.hour_grace_ms
    )
    ds._scatter("hourly", hkey, hs)
    if not closed.any_closed:
        return
    for j, (c, rows) in enumerate(chans):
        lo, hi = bounds[j], bounds[j + 1]
        prev_h = prev_h_all[lo:hi].copy()
        prev_m = prev_m_all[lo:hi].copy()
        for hour_all, mean_all in ((closed.hour, closed.mean), (closed.hour2, closed.mean2)):
            hour, mean = hour_all[lo:hi], mean_all[lo:hi]
            done = np.flatnonzero(hour >= 0)
            if len(done) == 0:
                continue
            _judge(ds, out, c, rows[done], hour[done], mean[done], prev_h[done], prev_m[done],
                   slot, idx)  # fmt: skip
            prev_h[done] = hour[done]
            prev_m[done] = mean[done]


def _judge(
    ds: Host,
    out: list[Detection],
    c: int,
    r: Rows,
    hour: I64,
    mean: F64,
    prev_h: I64,
    prev_m: F64,
    slot: I64,
    idx: I64,
) -> None:
    """The rule of channel ``c`` on the hours ``hour`` (means ``mean``) just closed at rows
    ``r``, after the hours ``prev_h`` (means ``prev_m``) closed before them."""
    field_name = _AIR_FIELDS[c]
    level = ds._a[field_name]
    ds._closed.append((slot[r], hour, c, mean))
    consecutive = (prev_h > 0) & (hour == prev_h + 1)
    old = level[slot[r]].astype(np.int64)
    lv_in = old.astype(np.uint8)
    if field_name == "o3":
        new = ozone.step(lv_in, mean).astype(np.int64)
        thr = _O3_LINES[np.maximum(new, old)]
    else:
        lines_pm = pm.PM10 if field_name == "pm10" else pm.PM25
        new = pm.step(lv_in, mean, prev_m, consecutive, lines_pm).astype(np.int64)
        up = new > old
        thr = np.where(
            up,
            np.where(new >= 3, lines_pm.alert, lines_pm.caution),
            np.where(old >= 3, lines_pm.alert_off, lines_pm.caution_off),
        )
    level[slot[r]] = new
    ds._changes(
        out,
        r,
        old,
        new,
        slot,
        idx,
        (hour + 1) * hourly.HOUR_MS,
        HAZARD_OF[CHANNELS[Kind.AIR_QUALITY][c]],
        f"air.{field_name}",
        mean,
        thr.astype(np.float64),
        _hour_details(hour),
    )


def _hour_details(hour: I64) -> Callable[[int], dict[str, Any]]:
    return lambda j: {"hour_start_ms": int(hour[j]) * hourly.HOUR_MS}
