"""Flood forecast crossing: a robust rate-of-rise projection raises the stage before the line.

Official flood warnings are issued when the level is *forecast* to cross a stage line and
cancelled when it is forecast to fall back (docs/design.md §3.1; on 2020-08-06 the Hangang Bridge
주의보 was issued at 11:00, the gauge read 8.36 m at 10:50 and crossed 8.50 m later).

Maths. Each gauge keeps a ring of its last :data:`RING` trusted readings ``(t_i, h_i)``, at
most one per ``window/RING`` (5 minutes by default): a reading joins the ring when it is at
least that long after the ring's newest point; the readings in between re-decide the stage
(``t_now`` is theirs) but do not join, so a gauge reporting every 10 s keeps a point every 5
minutes and one reporting every 10 minutes keeps every reading. Over the points within
``window`` (default 60 min) of the newest, with at least ``min_points`` spanning ``min_span``
(30 min), the Theil–Sen estimator (Theil 1950; Sen 1968) gives the slope
``b = median_{i<j} (h_j - h_i)/(t_j - t_i)`` (robust to 29 % outliers) and the level now
``ĥ = median_i (h_i - b (t_i - t_now))``. The level at the lead time ``T`` (default 60 min) is
projected as ``ĥ + b T``. With ``c`` the required confidence (default 0.6), the ``1-c`` and
``c`` quantiles of the pairwise slopes give a cautious rise ``ĥ + b_lo T`` and a cautious fall
``ĥ + b_hi T``:

* raise to stage ``s`` when ``ĥ + b_lo T ≥ L_s`` (at least a fraction ``c`` of the pairwise
  slopes project the crossing within ``T``); ``projected_crossing = t_now + (L_s - ĥ)/b``;
* lower below stage ``s`` when ``ĥ + b_hi T < L_s`` (forecast to fall back).

``confidence`` is the fraction of pairwise slopes that agree with the decision. Units: m, ms.
The fit is skipped (``fitted`` etc. NaN) where an interval bound (level range over the
smallest time gap, times the ages and lead) proves the stage cannot change — on a quiet
river, most readings. A looser bound from the whole ring (no windows, no sort) settles most
of those first, with the same outputs.
State: 12 × (8 + 4) bytes of ring + 4 bytes (:data:`FORECAST_DTYPE`).

>>> st = np.zeros(1, FORECAST_DTYPE)
>>> lv = np.array([[4.5, 8.5, 10.5, 13.3]])
>>> t0 = 1_596_672_000_000  # 2020-08-06 09:00 KST, one reading every 10 min
>>> for k, h in enumerate([7.80, 7.90, 8.00, 8.10, 8.20, 8.26]):
...     out = update(st, np.array([t0 + k * 600_000]), np.array([h]), lv)
...     if out.changed[0]:
...         print(k, int(out.level[0]), round(float(out.confidence[0]), 2),
...               (int(out.crossing_ms[0]) - t0) // 60_000)
3 2 1.0 70
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["FORECAST_DTYPE", "RING", "ForecastOut", "ForecastParams", "update"]

RING = 12
FloatArray = npt.NDArray[np.float64]
_N = TypeVar("_N", np.float32, np.float64)

FORECAST_DTYPE = np.dtype(
    [
        ("t", np.int64, (RING,)),
        ("h", np.float32, (RING,)),
        ("head", np.uint8),  # ring position of the newest point
        ("count", np.uint8),
        ("level", np.uint8),  # current forecast stage
        ("_pad", np.uint8),
    ]
)

_I, _J = np.triu_indices(RING, k=1)


@dataclass(frozen=True)
class ForecastParams:
    lead_ms: int = 3_600_000
    window_ms: int = 3_600_000
    min_span_ms: int = 1_800_000
    min_points: int = 4
    confidence: float = 0.6


@dataclass(frozen=True)
class ForecastOut:
    """Per row: the forecast stage after this reading and the evidence for it."""

    level: npt.NDArray[np.uint8]
    changed: npt.NDArray[np.bool_]
    fitted: FloatArray  # ĥ (m), NaN when no fit (too few points, or no change possible)
    slope_per_h: FloatArray  # b (m/h)
    projected: FloatArray  # ĥ + b T (m)
    threshold: FloatArray  # the line that decided a change (m), NaN otherwise
    crossing_ms: npt.NDArray[np.int64]  # projected crossing time, -1 when none
    confidence: FloatArray


def update(
    st: npt.NDArray[np.void],
    ts: npt.NDArray[np.int64],
    h: FloatArray,
    levels: FloatArray,
    p: ForecastParams = ForecastParams(),
) -> ForecastOut:
    """Append trusted, in-order readings ``(ts, h)`` to the rings and re-decide the stage.

    ``levels`` is (m×4): attention, caution, alert, serious (NaN when the gauge has none).
    """
    m = len(ts)
    spacing = p.window_ms // RING
    _append(st, ts, h, spacing)
    level = st["level"].copy()
    out_thr, out_conf, fitted, slope_h, projected = np.full((5, m), np.nan)
    out_cross = np.full(m, -1, dtype=np.int64)
    cand, tnow, tt, hh, valid = _candidates(st, ts, levels, level, spacing, p)
    if len(cand):
        new, line, chg, conf, tcross, hfit, b = _fit(
            tt, hh, tnow, valid, levels.take(cand, axis=0), level[cand], p
        )
        crossing_ok = np.isfinite(tcross) & (tcross >= tnow) & chg
        level[cand] = new
        out_thr[cand] = np.where(chg, line, np.nan)
        out_cross[cand] = np.where(crossing_ok, np.round(tcross), -1).astype(np.int64)
        out_conf[cand] = np.where(chg, conf, np.nan)
        fitted[cand] = hfit
        slope_h[cand] = b * 3_600_000
        projected[cand] = hfit + b * p.lead_ms
    changed = level != st["level"]
    st["level"] = level
    return ForecastOut(level, changed, fitted, slope_h, projected, out_thr, out_cross, out_conf)


def _append(
    st: npt.NDArray[np.void], ts: npt.NDArray[np.int64], h: FloatArray, spacing: int
) -> None:
    """Add each reading to its gauge's ring when it is at least ``spacing`` after the ring's
    newest point (or the ring is empty)."""
    m = len(ts)
    head = st["head"].astype(np.intp)
    rows = np.arange(m)
    newest_t = st["t"][rows, head]
    count = st["count"].astype(np.int64)
    # A reading within ``spacing`` of the newest point does not join the ring. (Replacing the
    # newest point with it would move the newest time along with every reading: a gauge
    # reporting more often than every ``spacing`` would never get a second point, so never a
    # forecast.)
    append = (count == 0) | (ts >= newest_t + spacing)
    pos = np.where(count == 0, 0, (head + 1) % RING)
    t_arr = st["t"]
    h_arr = st["h"]
    t_arr[rows[append], pos[append]] = ts[append]
    h_arr[rows[append], pos[append]] = h[append]
    # (t_arr and h_arr are views of st: written in place, no copy back needed)
    st["head"] = np.where(append, pos, head)
    st["count"] = np.minimum(count + append, RING)


_Window = tuple[
    npt.NDArray[np.intp],
    FloatArray,
    FloatArray,
    FloatArray,
    npt.NDArray[np.bool_],
]


def _candidates(
    st: npt.NDArray[np.void],
    ts: npt.NDArray[np.int64],
    levels: FloatArray,
    level: npt.NDArray[np.uint8],
    spacing: int,
    p: ForecastParams,
) -> _Window:
    """The rows whose stage may change, with their windows: ``(rows, t_now, t, h, valid)``
    (``t``, ``h``: each row's ring as float64, ``valid``: the points within ``window`` of
    ``t_now``). A row needs stage levels, ``min_points`` in its window spanning
    ``min_span``, and an interval bound that does not rule a change out."""
    m = len(ts)
    rows = np.arange(m)
    t_arr = st["t"]
    h_arr = st["h"]
    has_levels = _rows_count(~np.isnan(levels)) > 0
    ready = has_levels & (st["count"] >= p.min_points)
    if ready.any():
        # a looser, cheaper bound first (see _surely_unchanged): on a quiet river it settles
        # nearly every row without building the windows
        head_now = st["head"].astype(np.intp)
        newest = t_arr[rows, head_now]
        ready &= ~_surely_unchanged(h_arr, newest, ts, levels, level, spacing, p)
    cand = np.flatnonzero(ready)
    empty = np.zeros((0, RING))
    if not len(cand):
        return cand, np.zeros(0), empty, empty, np.zeros((0, RING), dtype=bool)
    # Rows of 2-D arrays: take / compress are several times faster than [cand] / [mask].
    tt = t_arr.take(cand, axis=0).astype(np.float64)
    hh = h_arr.take(cand, axis=0).astype(np.float64)
    tnow = ts[cand].astype(np.float64)
    valid = (np.arange(RING)[None, :] < st["count"][cand, None]) & (
        tt >= tnow[:, None] - p.window_ms
    )
    span = _rows_min(np.where(valid, tt, np.inf))
    enough = (_rows_count(valid) >= p.min_points) & (tnow - span >= p.min_span_ms)
    cand, tnow = cand[enough], tnow[enough]
    tt, hh = np.compress(enough, tt, axis=0), np.compress(enough, hh, axis=0)
    valid = np.compress(enough, valid, axis=0)
    if len(cand):
        # Skip the fit where no stage change is possible: every quantity below is inside an
        # interval bound from the level range, the smallest time gap and the ages (exact, not
        # a heuristic).
        can = _may_change(tt, hh, tnow, valid, levels.take(cand, axis=0), level[cand], p.lead_ms)
        if not can.all():
            cand, tnow = cand[can], tnow[can]
            tt, hh = np.compress(can, tt, axis=0), np.compress(can, hh, axis=0)
            valid = np.compress(can, valid, axis=0)
    return cand, tnow, tt, hh, valid


def _fit(
    tt: FloatArray,
    hh: FloatArray,
    tnow: FloatArray,
    valid: npt.NDArray[np.bool_],
    lv: FloatArray,
    level: npt.NDArray[np.uint8],
    p: ForecastParams,
) -> tuple[
    npt.NDArray[np.int64],
    FloatArray,
    npt.NDArray[np.bool_],
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
]:
    """The Theil–Sen fit of each window and the stage it decides: ``(stage, line, changed,
    confidence, crossing time, fitted level now, slope per ms)`` per row (see the module
    docstring)."""
    dt = tt[:, _J] - tt[:, _I]
    pair_ok = valid[:, _I] & valid[:, _J] & (dt != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        slopes = np.where(pair_ok, (hh[:, _J] - hh[:, _I]) / dt, np.nan)  # m per ms
    srt, k = _sorted(slopes)
    b = _nanmedian(srt, k)
    b_lo = _nanquantile(srt, k, 1.0 - p.confidence)
    b_hi = _nanquantile(srt, k, p.confidence)
    resid = np.where(valid, hh - b[:, None] * (tt - tnow[:, None]), np.nan)
    hfit = _nanmedian(*_sorted(resid))
    up = _stage(hfit + b_lo * p.lead_ms, lv)
    down = _stage(hfit + b_hi * p.lead_ms, lv)
    cur = level.astype(np.int64)
    new = np.where(up > cur, up, np.where(down < cur, down, cur))
    # The line that decides: the new stage's line on a raise, the old one's on a fall.
    line_idx = np.where(new > cur, new - 1, cur - 1)
    line = np.take_along_axis(lv, np.clip(line_idx, 0, 3)[:, None], axis=1)[:, 0]
    proj_at = hfit[:, None] + slopes * p.lead_ms
    with np.errstate(invalid="ignore"):
        agree_up = np.nanmean(np.where(np.isnan(slopes), np.nan, proj_at >= line[:, None]), 1)
    conf = np.where(new >= cur, agree_up, 1.0 - agree_up)
    with np.errstate(invalid="ignore", divide="ignore"):
        tcross = tnow + (line - hfit) / b
    return new, line, new != cur, conf, tcross, hfit, b


def _surely_unchanged(
    h_arr: npt.NDArray[np.float32],
    newest: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    levels: FloatArray,
    cur: npt.NDArray[np.uint8],
    spacing: int,
    p: ForecastParams,
) -> npt.NDArray[np.bool_]:
    """Rows whose forecast stage provably cannot change, by a bound looser than
    :func:`_may_change`'s and cheaper: no windows, no sort.

    Every ring point, valid or not, bounds the levels: ``H_min ≤ h_i ≤ H_max``. Ring points
    are at least ``spacing`` apart (a reading joins the ring only ``spacing`` after its
    newest point), so ``g ≥ spacing``; a valid point is
    at most ``window`` older than now and at most ``newest - now`` newer, so
    ``A ≤ max(window, newest - now)``. Each quantity of :func:`_may_change`'s interval is
    thus at least as wide here, and every rounded operation is monotone, so a row "stuck"
    here is stuck there, whose fit is skipped: the outputs are the same. The pad is doubled
    (``|hi| + |lo|`` here is at least half of it there). This assumes the ring was filled
    with the same ``window_ms`` (hence ``spacing``): a state restored after raising it may
    hold points closer than the new spacing for up to an old window.
    """
    with np.errstate(invalid="ignore"):
        h_max = _rows_max(h_arr).astype(np.float64)
        h_min = _rows_min(h_arr).astype(np.float64)
        age = np.maximum(float(p.window_ms), (newest - ts).astype(np.float64))
        reach = (h_max - h_min) / float(spacing) * (age + p.lead_ms)
        hi = h_max + reach
        lo = h_min - reach
        pad = 2e-9 * (np.abs(hi) + np.abs(lo) + 1.0)
        c = cur.astype(np.int64)
        stuck = (_stage(hi + pad, levels) <= c) & (_stage(lo - pad, levels) >= c)
    out: npt.NDArray[np.bool_] = stuck & np.isfinite(hi) & np.isfinite(lo)
    return out


def _may_change(
    tt: FloatArray,
    hh: FloatArray,
    tnow: FloatArray,
    valid: npt.NDArray[np.bool_],
    levels: FloatArray,
    cur: npt.NDArray[np.uint8],
    lead_ms: int,
) -> npt.NDArray[np.bool_]:
    """Rows whose forecast stage could change (False only when provably unchanged).

    Every pairwise slope, hence ``b``, ``b_lo`` and ``b_hi``, is within ``±S`` with
    ``S = (h_max - h_min) / g`` (``g`` the smallest gap between distinct valid times); the
    fitted level ``ĥ = median_i(h_i + b·age_i)`` is within ``[h_min - S·A, h_max + S·A]``
    (``A = max |age|``); so both projections ``ĥ + b·T`` lie in ``[lo, hi]`` below, and the
    stage cannot rise when ``stage(hi) <= cur`` nor fall when ``stage(lo) >= cur``. Rows
    without two distinct valid times are kept.
    """
    with np.errstate(invalid="ignore"):
        t_sorted = np.sort(np.where(valid, tt, np.inf), axis=1)
        gaps = np.diff(t_sorted, axis=1)
        g = _rows_min(np.where((gaps > 0) & np.isfinite(gaps), gaps, np.inf))
        h_min = _rows_min(np.where(valid, hh, np.inf))
        h_max = _rows_max(np.where(valid, hh, -np.inf))
        a_abs = _rows_max(np.where(valid, np.abs(tnow[:, None] - tt), 0.0))
        reach = (h_max - h_min) / g * (a_abs + lead_ms)
        hi = h_max + reach
        lo = h_min - reach
        # A relative margin for rounding in the exact computation.
        pad = 1e-9 * (np.abs(hi) + np.abs(lo) + 1.0)
        c = cur.astype(np.int64)
        stuck = (_stage(hi + pad, levels) <= c) & (_stage(lo - pad, levels) >= c)
    out: npt.NDArray[np.bool_] = ~(stuck & np.isfinite(g) & np.isfinite(hi) & np.isfinite(lo))
    return out


def _sorted(a: FloatArray) -> tuple[FloatArray, npt.NDArray[np.intp]]:
    """Rows sorted ascending (NaN last) and their counts of non-NaN values."""
    return np.sort(a, axis=1), np.count_nonzero(~np.isnan(a), axis=1)


def _take(srt: FloatArray, i: npt.NDArray[np.intp]) -> FloatArray:
    out: FloatArray = np.take_along_axis(srt, np.maximum(i, 0)[:, None], axis=1)[:, 0]
    return out


def _nanmedian(srt: FloatArray, k: npt.NDArray[np.intp]) -> FloatArray:
    """Row-wise ``np.nanmedian`` of sorted rows, bit for bit (mean of the middle two)."""
    h = k // 2
    lo = np.where(k % 2 == 1, h, h - 1)
    out: FloatArray = np.where(k > 0, (_take(srt, lo) + _take(srt, h)) / 2.0, np.nan)
    return out


def _nanquantile(srt: FloatArray, k: npt.NDArray[np.intp], q: float) -> FloatArray:
    """Row-wise ``np.nanquantile(…, q)`` (method "linear") of sorted rows, bit for bit.

    numpy loops over rows in Python (``apply_along_axis``) for NaN-aware quantiles along an
    axis; this is the same arithmetic (virtual index ``(k-1)q``, numpy's ``_lerp``) at once.
    """
    virt = (k - 1) * q
    prev = np.floor(virt)
    above = virt >= k - 1
    lo = np.where(above, k - 1, prev).astype(np.intp)
    hi = np.where(above, k - 1, prev + 1).astype(np.intp)
    gamma = virt - np.where(above, -1.0, prev)
    a, b = _take(srt, lo), _take(srt, hi)
    d = b - a
    res = np.where(gamma >= 0.5, b - d * (1 - gamma), a + d * gamma)
    out: FloatArray = np.where(k > 0, res, np.nan)
    return out


def _stage(h: FloatArray, levels: FloatArray) -> npt.NDArray[np.int64]:
    with np.errstate(invalid="ignore"):
        if len(h) < _FEW:
            few: npt.NDArray[np.int64] = np.count_nonzero(h[:, None] >= levels, axis=1)
            return few
        out = np.zeros(len(h), dtype=np.int64)
        for j in range(levels.shape[1]):
            out += h >= levels[:, j]
    return out


# Reductions along short rows, column by column: numpy's axis=1 reduction runs one inner loop
# per row, ~4x slower than a loop over the 4-12 columns for thousands of rows; for a few rows
# the one call is cheaper than the loop. Same results either way (min/max/count are exact;
# only the sign of a zero minimum may differ, and these are only compared).
_FEW = 256


def _rows_min(a: npt.NDArray[_N]) -> npt.NDArray[_N]:
    if a.shape[0] < _FEW:
        few: npt.NDArray[_N] = a.min(axis=1)
        return few
    out = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        np.minimum(out, a[:, j], out=out)
    return out


def _rows_max(a: npt.NDArray[_N]) -> npt.NDArray[_N]:
    if a.shape[0] < _FEW:
        few: npt.NDArray[_N] = a.max(axis=1)
        return few
    out = a[:, 0].copy()
    for j in range(1, a.shape[1]):
        np.maximum(out, a[:, j], out=out)
    return out


def _rows_count(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    if mask.shape[0] < _FEW:
        few: npt.NDArray[np.int64] = np.count_nonzero(mask, axis=1)
        return few
    out = np.zeros(len(mask), dtype=np.int64)
    for j in range(mask.shape[1]):
        out += mask[:, j]
    return out
