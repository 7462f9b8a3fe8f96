"""Robust streaming anomaly score per station channel (operators' early warning, never public).

Maths. For each channel value ``x_t`` the detector keeps Huber-robust exponentially weighted
estimates (Huber 1964; robust EWMA as in Lanius & Gather 2010, "Robust online signal
extraction from multivariate time series"):

* location ``μ`` and scale ``s`` (mean absolute deviation) with slow weight ``α``;
  before updating, ``x`` is clipped to ``μ ± c·s`` so one outlier moves them by ``≤ α c s``;
* a fast location ``f`` (weight ``α_f``) whose drift from ``μ`` is a mean shift;
* the scale ``d`` of first differences ``Δx`` (slow weight, clipped the same way; kept only
  with ``z_jump < 1e9``: the default 1e9 switches the jump term off and leaves ``d`` and
  ``x_last`` alone);
* one-sided CUSUM (Page 1954) on standardised residuals ``r = (x - μ)/s``:
  ``g⁺ ← max(0, g⁺ + r - k)``, ``g⁻ ← max(0, g⁻ - r - k)``;
* a fast scale ``s_f`` (weight ``α_sf``) of ``|x - f|``, whose ratio to ``s`` is a change of
  variance (a noisy or oscillating sensor, a regime change);
* given the readings' times ``ts`` (s since the epoch), a *time-of-day profile*: 24 bins
  ``P_h`` of clock hours (UTC), each an EW mean of the readings in its hour, seasonal smoothing
  as in Holt-Winters (Winters 1960, "Forecasting sales by exponentially weighted moving
  averages", Management Science 6(3)) but keyed on the clock, not on reading counts: a
  reading moves its bin by ``w·e``, ``e = x - P_h`` the residual, ``w = min(Δt, 1 h)/(1 h·D)``
  (``D = tod_days``), so a day of data weighs ``≈ 1/D`` whether a station reports every 10 s
  or every 10 min. A bin's first reading sets it; once every bin has had one (the profile is
  complete, about a day), ``e`` is clipped at ``±(e_max + floor)`` first (robust like ``μ``).
  The bins are float32: a step below half a unit in the last place is lost, so a channel
  with no noise at all follows a slow drift of its daily cycle only when the drift is above
  about 1e-4 of the level (10 s readings) or 1e-3 (1 s); real sensors' noise moves the bins.


Every scale (``s``, ``d``, ``s_f``) is floored at ``floor_rng·(hi - lo) + floor_rel·(|μ| + s₀)``,
where ``[lo, hi]`` is the range of the values seen so far: a mostly-constant channel (a count
that is usually 0, a quantised gauge) then cannot standardise its rare non-zero readings by a
robust scale that has collapsed to nothing, which otherwise keeps the evidence saturated.

The raw evidence is ``z = max(|r|/z_level, |Δx|/(d·z_jump), |f - μ|/(s·z_shift),
max(g⁺, g⁻)/h, (s_f/s)/z_var)``, squashed to ``ρ = z²/(1+z²)`` in ``[0, 1)``.

On top of ``ρ``, Numenta's *anomaly likelihood* (Ahmad, Lavin, Purdy & Agha 2017, "Unsupervised
real-time anomaly detection for streaming data", Neurocomputing 262, §4.2): the long-run
distribution of ``ρ`` is summarised by its mean ``m_L`` and variance ``v_L`` (exponentially
weighted, window ``L``; ``1/(n+1)`` weights before that), the recent level of ``ρ`` by a short
EW mean ``m_S`` (weight ``α_S``), and ``λ = Φ((m_S - m_L)/√v_L)`` is the probability that the
recent evidence is unusual *for this channel* (a channel that is always jumpy needs more).
The anomaly score is ``max(λ, ρ)``, set to 1 for a *spatial anomaly* (the same paper's NAB
detector, ``numenta_detector.py``: a value outside ``[lo - τ, hi + τ]``, ``τ = sp_tol·(hi - lo)``,
a new extreme by a clear margin). ``lo`` and ``hi`` contract towards ``μ`` at rate
``range_decay`` per reading: 3e-5 by default (a time constant of ~33,000 readings: ~8 months
at a gauge's 10 min, ~9 h at 1 s). The range also floors every scale, so an all-time range
would leave a gauge permanently less sensitive after one big flood; NAB prefers the all-time
range (0: 70.6 / 65.2 / 74.1; 3e-5: 70.2 / 64.3 / 73.8; 1e-4: 69.7 / 62.4 / 73.8) and
the deployment's sensitivity after an event was preferred.
Two *records*, Numenta's spatial anomaly applied to two more statistics, also set the score
to 1: the CUSUM in the channel's unit, ``max(g⁺, g⁻)·s``, above ``(1 + sp_cusum)·g_max + b``
(a cumulative shift larger than any so far), and, with ``ts``, the profile residual ``|e|``
above ``(1 + sp_tod)·e_max + b`` (a departure from the daily cycle larger than any so far:
a missing daily peak, a day-time level at night). ``g_max`` and ``e_max`` are the largest
values seen, decaying like the range (``range_decay``); ``b = floor_rel·(|μ| + s₀)`` keeps a
quantised or exactly periodic channel from alarming on a rounding step; ``e_max`` starts
when the profile is complete and the residual record arms ``tod_arm_hours`` (24) clock hours
later (its own warm-up: a record of a few residuals is not yet a record).
Only the first crossing of ``fire`` is reported: the score is then held at 0 for ``refractory``
readings (NAB rewards the earliest detection in a window and counts every later one outside it as a
false positive), and the first ``warmup`` readings of a channel score 0. One exception, seen by NAB
but not by the engine: a spatial anomaly while the channel's alarm still stands (raised at ``fire``,
ρ not below ``clear`` since, as the engine's ``anomaly_raise`` / ``anomaly_clear``; ``level`` in the
record) scores 1 through the refractory, which it does not restart (a new extreme is not the shift
already counted; NAB 76.15 / 71.0 / 79.8 → 76.9 / 71.7 / 80.6: one window more, speed_7578's fourth,
23 readings after the third; the engine's alarm, already raised, does not change). No look-ahead:
each reading's score uses only the readings before it and itself (the profile uses only the times of
those readings). Units: the score is dimensionless; the state is in the channel's own unit. The
arithmetic is float32, like the state (NAB scores are the same as in float64); times are whole
seconds (uint32). State: 84 bytes per channel (:data:`ANOMALY_DTYPE`) plus its profile, 24 float32
(96 bytes) in an array the caller keeps (:func:`new_profiles`), so the profile stays out of the
record that every reading copies; 540 bytes for a station's three channels. The record holds the bin
of its last reading's hour (``pbin``): a channel reporting every 10 s stays in one bin for 360
readings, and touches the array only when it moves on to another hour (the bin it held goes back,
the new one is read). :func:`profiles` gives the complete profiles.

Parameters: one set for every NAB file and every station kind, all tuned on the NAB corpus
(``benchmarks/nab.py``), so the NAB figures are in-sample. The first version tuned ``alpha``,
``alpha_fast``, ``huber_c``, ``z_level``, ``z_shift``, ``cusum_k``, ``cusum_h``, ``warmup``,
``refractory``, then ``z_var``, ``alpha_sf``, ``lik_window``, ``lik_alpha`` and ``fire`` by a
small grid. The range floor and the spatial anomaly came next (``floor_rng`` ∈ {0, 0.001 …
0.03}, ``sp_tol`` ∈ {0, 0.05, 0.1, 0.2}); then two rounds of coordinate search over fifteen
numbers (each multiplied by 0.5, 0.75, 1.33, 2; objective standard + (low FP + low FN)/4),
rounded: ``alpha`` 0.002 → 0.00075, ``alpha_fast`` 0.1 → 0.05, ``huber_c`` 6 → 4.5,
``z_level`` 12 → 6.75, ``z_var`` 3 → 8, ``alpha_sf`` 0.1 → 0.2, ``lik_window`` 8000 → 4000,
``lik_alpha`` 0.4 → 0.2, ``floor_rng`` 0.027, ``sp_tol`` 0.065, ``warmup`` 50 → 66, ``fire``
0.99 → 0.995, ``refractory`` 200 → 112.

Time of day and records (standard / reward low FP / reward low FN; 70.2 / 64.3 / 73.8
before): NAB's timestamps go in as ``ts`` (``benchmarks/nab.py``). A CUSUM on ``|e|/s_e``
(``s_e`` a robust scale of ``e``) first caught the three art_daily windows the detector
missed (72.4 / 66.5 / 76.1; a point term ``|e|/(s_e z)`` added nothing and went); with the
residual record 74.7 / 69.1 / 78.6 (after one search round), and that CUSUM and ``s_e``
then added nothing and went too (the record also serves as the clip); the CUSUM record
75.4 / 69.5 / 79.3 (two windows more: read it as borderline). Arming the residual record as
soon as the profile completes scored 77.5 / 72.3 / 81.3, but alarms about a day after every
new station starts (NAB hides that in its probation), hence its warm-up. Coordinate search
(×0.5, 0.75, 1.33, 2, then ×0.8, 0.9, 1.12, 1.25, same objective) over the old and new
numbers: ``alpha`` 0.00075 → 0.000675, ``z_level`` 6.75 → 5.0625, ``z_var`` 8 → 12,
``lik_alpha`` 0.2 → 0.16, ``sp_tol`` 0.065 → 0.0585, ``warmup`` 66 → 33 (no effect),
``tod_days`` 6, ``sp_tod`` 0.16, ``sp_cusum`` 0.5 (the new parts with the old numbers:
73.8 / 67.5 / 77.6; ``range_decay`` 1.5e-5 added 0.3 at one stage, kept at 3e-5 for the
reason above): 76.8 / 71.6 / 80.5 with the record armed 33 readings after the profile
completes. That still doubled the alarms on pure noise for hours after completion (each bin
seeded by one noisy reading; at 10-minute readings, 57–89 per 10,000 against 26–36 without
the record), and after an upgrade every station completes its profile on the same day: the
record now arms 24 clock hours after completion (``tod_arm_hours``; counted as hours entered,
so whatever the reporting interval), where the alarm rate is the same as without the record.
NAB: 76.15 / 71.0 / 79.8 (6 hours: 76.65 / 71.4 / 80.4; 18: 76.05; ``sp_tod`` 0.12–0.2,
``tod_days`` 5 or 7, ``sp_cusum`` 0.4 or 0.6, ``z_level`` ×0.9 or ×1.1 and ``refractory``
100 or 125 re-checked with it: none better). Without ``ts`` (no profile, the CUSUM record on)
73.3 / 68.4 / 76.7. Tried and dropped: the likelihood on the mean of ``ρ`` instead of ``ρ``
(69.4), a second, slower short mean (no change), log, square root or square of ``ρ`` into the
likelihood (68.2, 64.7, 71.7), freezing or clipping the long-run statistics during alarms
(≤ 70.8), 12 or 32 bins (72.1, 70.6 against 72.4 at the time), day-of-week offsets on top
of the hours (-1.6), records of ``|Δx|``, ``|f - μ|`` and ``s_f`` (no gain), the profile
residual in place of ``x - μ`` for the level term and CUSUM (70.6). About twenty-two tuned
numbers in all: read the NAB figures as an upper bound of out-of-sample performance. Then
(2026-11-22) a new extreme during a standing alarm shown through the refractory (see above;
``clear`` is the engine's line, not tuned): 76.91 / 71.74 / 80.58. Shown even after the alarm
cleared: 76.76 / 71.45 / 80.49 but 70 more operator alarms on NAB, mostly in each series'
first 300 readings; as a new fire (restarting the refractory): 76.16 / 70.67 / 80.08; scores
below ``fire`` shown only while ``ρ`` rises, or capped below it during the refractory: no
change (of the 15 windows still missed, 14 never score near the line inside).


>>> st = np.zeros(1, ANOMALY_DTYPE)
>>> xs = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 10.1, 10.0, 10.2, 9.9] * 8 + [16.0]
>>> out = [float(update(st, np.array([x]))[0][0]) for x in xs]
>>> max(out[:-1]) < 0.5, out[-1] > 0.9  # quiet below the alarm line, then the jump
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import special

__all__ = [
    "ANOMALY_DTYPE",
    "TOD_BINS",
    "AnomalyParams",
    "hold_bins",
    "new_profiles",
    "profiles",
    "update",
]

FloatArray = npt.NDArray[np.floating[Any]]
F32 = npt.NDArray[np.float32]

TOD_BINS = 24
DAY = 86400.0

ANOMALY_DTYPE = np.dtype(
    [
        ("n", np.uint32),
        ("refr", np.uint16),
        ("level", np.uint8),  # the channel's alarm (1: raised at fire, not yet below clear)
        ("_pad", np.uint8),
        ("x_last", np.float32),
        ("mu", np.float32),
        ("s", np.float32),
        ("f", np.float32),
        ("d", np.float32),
        ("gp", np.float32),
        ("gn", np.float32),
        ("s0", np.float32),
        ("sf", np.float32),  # fast scale of |x - f|
        ("lm", np.float32),  # long-run mean of the raw score ρ
        ("lv", np.float32),  # long-run variance of ρ
        ("sm", np.float32),  # short EW mean of ρ
        ("lo", np.float32),  # running minimum of x (contracting towards μ)
        ("hi", np.float32),  # running maximum of x
        ("t_last", np.uint32),  # time of the last reading (s since the epoch)
        ("seen", np.uint32),  # bins seen (bits 0-23), then hours since complete (24-31)
        ("emax", np.float32),  # largest |residual| against the profile (decaying)
        ("gmax", np.float32),  # largest CUSUM·s (decaying)
        ("pbin", np.float32),  # the profile bin of t_last's hour (held here, see update)
    ]
)


@dataclass(frozen=True)
class AnomalyParams:
    """One parameter set for every channel (chosen on NAB, see module docstring)."""

    alpha: float = 0.000675
    alpha_fast: float = 0.05
    huber_c: float = 4.5
    z_level: float = 5.0625
    z_jump: float = 1e9
    z_shift: float = 2.0
    cusum_k: float = 2.0
    cusum_h: float = 40.0
    z_var: float = 12.0
    alpha_sf: float = 0.2
    lik_window: float = 4000.0
    lik_alpha: float = 0.16
    floor_rel: float = 1e-4
    floor_rng: float = 0.027
    range_decay: float = 3e-5
    sp_tol: float = 0.0585
    warmup: int = 33
    fire: float = 0.995
    refractory: int = 112
    clear: float = 0.2
    tod_days: float = 6.0
    tod_arm_hours: int = 24
    sp_tod: float = 0.16
    sp_cusum: float = 0.5


DEFAULT = AnomalyParams()
_BIN_S = DAY / TOD_BINS
_ALL_BINS = np.uint32((1 << TOD_BINS) - 1)  # every bin has had a reading
_HOUR_1 = np.uint32(1 << TOD_BINS)  # one clock hour since complete (above the bins)


def new_profiles(rows: int) -> F32:
    """Zeroed time-of-day profiles for ``rows`` channels (the ``tod`` of :func:`update`)."""
    return np.zeros((rows, TOD_BINS), np.float32)


_WORDS = ANOMALY_DTYPE.itemsize // 4
_BLOCK = 2048  # records per block of the transpose back (~170 KB each way: both stay in L2)
#: Records per block of the transpose to columns: numpy fills the columns one word at a time,
#: reading every record of the block once per word, so the block must stay in L1 (32 KB;
#: measured on 23,000 records: 0.27 ms in blocks of 384, 0.38 ms in blocks of 2048).
_BLOCK_IN = 384
#: Each field's word, dtype, and (for fields narrower than a word) start and step in the
#: word's row viewed as that dtype.
_FIELD_AT = [
    (name, off // 4, dt, (off % 4) // dt.itemsize, 4 // dt.itemsize)
    for name, (dt, off, *_) in (ANOMALY_DTYPE.fields or {}).items()
]


class _Columns:
    """The records of :func:`update` as one contiguous array per field (read and written
    by name like the records).

    An operation on a strided field of 84-byte records streams every record through the
    cache and costs ~8x one on a contiguous array; copying the records to columns and back
    in L2-sized blocks costs about as much as three such operations each way, and :func:`update`
    makes about forty.
    """

    def __init__(self, st: npt.NDArray[np.void]) -> None:
        self.st = st
        recs = st if st.flags.c_contiguous else np.ascontiguousarray(st)
        words = recs.view(np.uint32).reshape(len(recs), _WORDS)
        self.words = np.empty((_WORDS, len(recs)), np.uint32)
        for lo in range(0, len(recs), _BLOCK_IN):
            self.words[:, lo : lo + _BLOCK_IN] = words[lo : lo + _BLOCK_IN].T
        self.fields: dict[str, npt.NDArray[Any]] = {
            name: self.words[w].view(dt) if step == 1 else self.words[w].view(dt)[start::step]
            for name, w, dt, start, step in _FIELD_AT
        }

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.fields[name]

    def __setitem__(self, name: str, value: npt.NDArray[Any] | float) -> None:
        self.fields[name][...] = value

    def store(self) -> None:
        """Write the columns back into the records."""
        st = self.st
        recs = st if st.flags.c_contiguous else np.empty(len(st), st.dtype)
        words = recs.view(np.uint32).reshape(len(recs), _WORDS)
        for lo in range(0, len(recs), _BLOCK):
            words[lo : lo + _BLOCK] = self.words[:, lo : lo + _BLOCK].T
        if recs is not st:
            st[...] = recs


def _bin_of(t: npt.NDArray[np.uint32]) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.int32]]:
    """Hours since the epoch of times ``t`` (s) and their profile bin (the hour mod 24)."""
    hour = t // np.uint32(_BIN_S)
    # (a remainder by a constant is ~4x slower than this in numpy)
    return hour, (hour - hour // np.uint32(TOD_BINS) * np.uint32(TOD_BINS)).view(np.int32)


def profiles(
    st: npt.NDArray[np.void],
    tod: F32,
    tod_rows: npt.NDArray[np.intp] | npt.NDArray[np.int64] | None = None,
) -> F32:
    """The complete time-of-day profiles of the records ``st`` (a copy, one row per record):
    their rows of ``tod`` with the bin each record holds put in (see :func:`update`)."""
    rows = np.arange(len(st)) if tod_rows is None else np.asarray(tod_rows, dtype=np.intp)
    out: F32 = tod[rows].copy()
    t_last = np.asarray(st["t_last"], dtype=np.uint32)
    held = np.flatnonzero(t_last != 0)
    out[held, _bin_of(t_last[held])[1]] = st["pbin"][held]
    return out


def hold_bins(st: npt.NDArray[np.void], tod: F32) -> None:
    """The inverse of :func:`profiles`: each record with a time takes the bin of its last
    reading's hour from its profile ``tod`` (shape ``st.shape + (TOD_BINS,)``), which must be
    current there (a profile kept wholly in the array, as state version 4 kept it)."""
    t_last = np.asarray(st["t_last"], dtype=np.uint32)
    b = _bin_of(t_last)[1].astype(np.intp)
    held = np.take_along_axis(tod, b[..., None], axis=-1)[..., 0]
    st["pbin"] = np.where(t_last != 0, held, np.float32(0.0))


def _profile_bins(
    tod: F32 | None, rows: npt.NDArray[np.integer[Any]] | None, b: npt.NDArray[np.int32]
) -> tuple[F32, npt.NDArray[np.intp]]:
    """The profiles as one flat float32 view and the index of bin ``b`` of each row in it."""
    if tod is None or tod.ndim != 2 or tod.shape[1] != TOD_BINS or tod.dtype != np.float32:
        raise ValueError(f"tod must be a float32 array of shape (rows, {TOD_BINS}) with ts")
    if not tod.flags.c_contiguous:
        raise ValueError("tod must be C-contiguous (it is updated in place)")
    r = np.arange(len(b), dtype=np.intp) if rows is None else rows.astype(np.intp, copy=False)
    return tod.reshape(-1), r * TOD_BINS + b


def update(
    st: npt.NDArray[np.void],
    x: FloatArray,
    p: AnomalyParams = DEFAULT,
    *,
    ts: FloatArray | None = None,
    tod: F32 | None = None,
    tod_rows: npt.NDArray[np.intp] | npt.NDArray[np.int64] | None = None,
    score_from: float = 0.0,
) -> tuple[F32, F32]:
    """Update the records ``st`` (one per row, modified in place) with values ``x``.

    Rows with NaN ``x`` are left untouched and score NaN. Returns the anomaly score per row
    (``max(λ, ρ)``; 0 during warm-up and refractory periods, but for a spatial anomaly during
    a standing alarm: see the module docstring) and the raw evidence ``ρ`` of
    this reading alone (never held at 0; the engine clears a raised anomaly when it is low).

    ``ts``: each row's time in seconds since the epoch (float64, 1970 to 2106, used to the
    whole second; the engine's milliseconds / 1000), for the time-of-day profile and its
    record; ``None`` leaves those and their state alone (the other terms as with times).
    Readings of a channel should come in time order (a step back in time does not move a
    bin that has had a reading; while the profile is learning, it seeds a bin that has not);
    a non-finite time counts as the channel's last one (time 0 on its first reading). With
    ``ts``, ``tod`` holds the profiles (float32, C-contiguous, shape ``(R, TOD_BINS)``, from
    :func:`new_profiles`; updated in place, except the bin each record holds: see
    :func:`profiles`) and ``tod_rows`` the profile row of each record (no row twice, and
    always the same row for a record; None: row ``i`` for record ``i``).

    ``score_from`` (≤ ``p.fire``; the engine passes its raise line): the caller only compares
    scores with lines at or above it, so the likelihood ``λ`` (a normal CDF, the costliest
    step) is evaluated only where it could reach ``score_from``; elsewhere the score is
    ``ρ`` — below ``score_from`` exactly when the full score is. The state, ``ρ`` and every
    such comparison are the same as with the default (every score exact).
    """
    if st.dtype != ANOMALY_DTYPE:
        raise ValueError(f"records must be of ANOMALY_DTYPE, not {st.dtype}")
    cols = _Columns(st)
    out, raw = _update(cols, x, p, ts, tod, tod_rows, score_from)
    cols.store()
    return out, raw


def _update(
    st: _Columns,
    x: FloatArray,
    p: AnomalyParams,
    ts: FloatArray | None,
    tod: F32 | None,
    tod_rows: npt.NDArray[np.intp] | npt.NDArray[np.int64] | None,
    score_from: float,
) -> tuple[F32, F32]:
    """:func:`update` on the records as contiguous columns (see _Columns).

    float32 throughout, like the state: no conversion pass per field and half the bytes per
    operation (about 3x faster than float64 at 23,000 rows; NAB scores unchanged). Every
    read of a field happens before its write at the end (``keep``), so no view sees a new
    value. numpy's maximum/minimum against a scalar cost ~4x against an array: ``zero`` is one.
    """
    x = x.astype(np.float32, copy=False)
    ok = ~np.isnan(x)
    all_ok = bool(ok.all())  # the engine's case: rows are readings that carry the channel
    n = st["n"].copy()  # uint32
    first = ok & (n == 0)
    any_first = bool(first.any())
    xf = x if all_ok else np.where(ok, x, 0.0)
    zero = np.zeros(len(x), np.float32)

    def init(v: F32, field: str) -> F32:
        """The stored field, or ``v`` on a channel's first reading."""
        old = st[field]
        return np.where(first, v, old) if any_first else old.copy()

    def keep(new: npt.NDArray[np.generic], field: str) -> None:
        st[field] = new if all_ok else np.where(ok, new, st[field])

    mu = init(xf, "mu")
    s0 = init(np.abs(xf), "s0") if any_first else st["s0"]  # (read once)
    lo = init(xf, "lo")
    hi = init(xf, "hi")
    span = hi - lo
    base = p.floor_rel * (np.abs(mu) + s0) + 1e-12
    floor = base + p.floor_rng * span
    s = np.maximum(st["s"], floor)
    jump = p.z_jump < 1e9  # 1e9 and above: no jump term, and d, x_last are not kept
    f = init(xf, "f")
    sf = np.maximum(st["sf"], floor)
    if any_first:
        sf = np.where(first, s, sf)
    if ts is not None:
        # Time-of-day profile: this reading's bin b (one float32 per row), its residual ep.
        # Whole seconds since the epoch as uint32 (float32 would round times to minutes).
        tsf = np.asarray(ts, dtype=np.float64)
        tsf = tsf if all_ok else np.where(ok, tsf, 0.0)
        if not np.isfinite(tsf.sum()):  # a missing time: the last one (no profile step)
            tsf = np.where(np.isfinite(tsf), tsf, st["t_last"])
        ti = tsf.astype(np.uint32)
        hour, b = _bin_of(ti)  # hours since the epoch, this reading's bin
        # The record holds the bin of its last reading's hour (pbin): a channel reports many
        # times an hour, and a random read and write of tod per reading cost ~4 % of the
        # detector set. tod's copy of that bin is stale until the channel leaves the bin.
        tl = st["t_last"].copy()
        held = tl != 0  # (no reading with a time yet: nothing held)
        hour_l, b_l = _bin_of(tl)
        cached = held & (b == b_l)
        pbin = st["pbin"].copy()
        seen = st["seen"]  # bins seen (bits 0-23), then clock hours since complete (24-31)
        trained_at = _ALL_BINS + _HOUR_1 * np.uint32(min(p.tod_arm_hours, 255))
        all_full = len(seen) == 0 or int(seen.min()) >= trained_at  # (the case in service)
        flat, at = _profile_bins(tod, tod_rows, b)
        pb = pbin.copy()
        if not cached.all():
            away = np.flatnonzero(~cached)
            pb[away] = flat[at[away]]
        if not all_full:
            full = (seen & _ALL_BINS) == _ALL_BINS
            trained = seen >= trained_at
            bit = np.left_shift(np.uint32(1), b.astype(np.uint32))
            was = (seen & bit) != 0
            pb = np.where(was, pb, xf)
            # after completion, count the clock hours entered (a reading in another hour than
            # the last one), so the record arms a day later whatever the reporting interval
            hour_in = hour != hour_l
            step_in = full & ~trained & hour_in
            seen_new = (seen | bit) + np.where(step_in, _HOUR_1, 0).astype(np.uint32)
        ep = xf - pb
        aep = np.abs(ep)
        emax = st["emax"].copy()
        hp = emax + floor  # robust step: the residual clipped at its record (+ the floor)
        epc = np.minimum(np.maximum(ep, -hp), hp)  # (= np.clip, ~3x faster with arrays)
        if not all_full:
            epc = np.where(full, epc, ep)
        # The step's weight: min(Δt, 1 h) / (1 h · tod_days).
        # (Δt by wrap-around int32 arithmetic: right for |Δt| < 68 years.)
        dti = ti.view(np.int32) - tl.view(np.int32)
        wp = dti.astype(np.float32)
        wp *= 1.0 / (_BIN_S * p.tod_days)
        np.clip(wp, 0.0, 1.0 / p.tod_days, out=wp)
    xm = xf - mu
    r = xm / s
    rc = np.clip(r, -p.huber_c, p.huber_c)
    gp = st["gp"] + rc
    gp -= p.cusum_k
    np.maximum(gp, zero, out=gp)
    gn = st["gn"] - rc
    gn -= p.cusum_k
    np.maximum(gn, zero, out=gn)
    z = np.abs(r) / p.z_level
    if jump:
        d = np.maximum(st["d"], floor)
        dx = xf - init(xf, "x_last")
        np.maximum(z, np.abs(dx) / (d * p.z_jump), out=z)
    np.maximum(z, np.abs(f - mu) / (s * p.z_shift), out=z)
    gx = np.maximum(gp, gn)
    np.maximum(z, gx / p.cusum_h, out=z)
    np.maximum(z, sf / (s * p.z_var), out=z)
    # z² overflows float32 above ~1.8e19 (a reading far off a collapsed scale) and ρ would be
    # inf/inf = NaN; ρ is already 1.0 in float32 at z = 1e6.
    np.minimum(z, np.full(len(z), 1e6, np.float32), out=z)
    z2 = z * z
    raw = z2 / (1.0 + z2)
    # Anomaly likelihood: the short mean of ρ against its long-run distribution.
    lm = st["lm"].copy()
    lv = st["lv"].copy()
    sm32 = st["sm"].copy()
    sm = sm32 + p.lik_alpha * (raw - sm32)
    if any_first:
        sm = np.where(first, raw, sm)
    zl = (sm - lm) / np.maximum(np.sqrt(lv), np.full(len(lv), 1e-9, np.float32))
    if score_from > 0.5:
        # Φ is increasing: Φ(z) < score_from below Φ⁻¹(score_from), here with a margin of
        # 1e-3 in z (≫ rounding); those rows get λ = 0 (NaN z stays on the exact path).
        far = zl < float(special.ndtri(min(score_from, p.fire))) - 1e-3
        if far.all():
            score = raw.copy()  # (ρ ≥ 0)
        else:
            lik = np.zeros(len(zl), np.float32)
            near = np.flatnonzero(~far)
            lik[near] = special.ndtr(zl[near])
            score = np.maximum(lik, raw)
    else:
        score = np.maximum(special.ndtr(zl), raw)
    # Spatial anomaly: a value beyond the range seen so far by more than sp_tol of it.
    tol = p.sp_tol * span
    spatial = ((xf > hi + tol) | (xf < lo - tol)) & (span > 0)
    # Records: a CUSUM (in the channel's unit) or a residual against the time-of-day profile
    # beyond the largest seen by a margin, and by more than the relative floor.
    gs = gx * s
    gmax = st["gmax"].copy()
    nov = gs > gmax * (1.0 + p.sp_cusum) + base
    nov |= spatial
    gmax *= 1.0 - p.range_decay
    keep(np.maximum(gmax, gs), "gmax")
    if ts is not None:
        nov_t = aep > emax * (1.0 + p.sp_tod) + base
        if not all_full:  # the record's own warm-up: a day after the profile completes
            nov_t &= trained
        nov |= nov_t
        emax_new = np.maximum(emax * (1.0 - p.range_decay), aep)
        keep(emax_new if all_full else np.where(full, emax_new, emax), "emax")
    np.copyto(score, 1.0, where=nov)
    # Weights 1/(n+1) while a channel is young, then constant: one shared division, and no
    # selection when every row is on the same side of both lines (the same numbers).
    n_lo, n_hi = (int(n.min()), int(n.max())) if len(n) else (0, 0)
    inv: F32 | float = 0.0
    n1 = n + (n < np.uint32(2**32 - 1))  # n + 1, saturated (uint32)
    if n_lo < max(p.lik_window, 1.0 / p.alpha):
        inv = np.divide(np.float32(1.0), n1.astype(np.float32))
    a_l: F32 | float
    a: F32 | float
    if n_hi < p.lik_window:
        a_l = inv
    elif n_lo >= p.lik_window:
        a_l = 1.0 / p.lik_window
    else:
        a_l = np.where(n < p.lik_window, inv, 1.0 / p.lik_window)
    if n_hi < 1.0 / p.alpha:
        a = inv
    elif n_lo >= 1.0 / p.alpha:
        a = p.alpha
    else:
        a = np.where(n < 1.0 / p.alpha, inv, p.alpha)
    dev = raw - lm
    lm_new = lm + a_l * dev
    lv_new = (1.0 - a_l) * (lv + a_l * dev * dev)
    # Robust updates (clipped), slow location/scales and fast location.
    hs = p.huber_c * s
    e = np.minimum(np.maximum(xm, -hs), hs)  # (x clipped to μ ± c·s, minus μ)
    mu_new = mu + a * e
    s_new = s + a * (np.abs(e) - s)
    xf_f = xf - f
    f_new = f + p.alpha_fast * xf_f
    sf_new = sf + p.alpha_sf * (np.abs(xf_f) - sf)
    # Once an alarm fires, the CUSUMs restart so a persisting shift is not re-counted.
    refr = st["refr"].copy()  # uint16
    any_refr = bool(refr.any())
    warm = n < p.warmup
    in_refr = refr > 0
    quiet = warm | in_refr if any_refr else warm
    fire = ~quiet & (score >= p.fire)
    # A spatial anomaly (a new extreme by a clear margin) while the alarm is still standing
    # (raised, and ρ not below ``clear`` since, this reading included) is reported through
    # the refractory (score 1), without restarting it or the CUSUMs: the state is that of a
    # held reading, and an alarm raised at ``fire`` and cleared at ``clear`` (the engine's)
    # is the same. ``level``: that alarm (1 raised).
    raised = st["level"] > 0
    if any_refr:
        standing = spatial & raised & (raw >= p.clear)
        zeroed = warm | (in_refr & ~standing)
    else:
        zeroed = warm
    out = np.where(zeroed, 0.0, score) if zeroed.any() else score
    # the alarm: raised at ``fire``, else kept while ρ is not below ``clear``
    lvl_new = ((out >= p.fire) | (raised & (raw >= p.clear))).view(np.uint8)
    any_fire = bool(fire.any())
    if any_refr or any_fire:
        refr_new = np.where(fire, p.refractory, np.maximum(refr.astype(np.int64) - 1, 0))
    reset = np.flatnonzero(fire | warm)
    if len(reset):
        gp[reset] = 0.0
        gn[reset] = 0.0
    keep(mu_new, "mu")
    keep(s_new, "s")
    if jump:
        hd = p.huber_c * d
        dc = np.clip(dx, -hd, hd)
        d_new = d + a * (np.abs(dc) - d)
        keep(np.where(first, 0.0, d_new) if any_first else d_new, "d")
        keep(xf, "x_last")
    keep(f_new, "f")
    keep(gp, "gp")
    keep(gn, "gn")
    if any_first:
        keep(s0, "s0")
    keep(sf_new, "sf")
    keep(lm_new, "lm")
    keep(lv_new, "lv")
    keep(sm, "sm")
    keep(lvl_new, "level")
    if any_refr or any_fire:  # (otherwise every count stays 0)
        keep(refr_new, "refr")
    if p.range_decay > 0:
        lo = lo + p.range_decay * (mu_new - lo)
        hi = hi + p.range_decay * (mu_new - hi)
    keep(np.minimum(lo, xf), "lo")
    keep(np.maximum(hi, xf), "hi")
    keep(n1, "n")
    if ts is not None:
        if len(dti) and int(dti.min()) < 0:  # a step back in time keeps the later time
            t_new = np.where((dti >= 0) | ~held, ti, tl)
            onward = t_new == ti
        else:
            t_new, onward = ti, None
        keep(t_new, "t_last")
        if not all_full:
            keep(seen_new, "seen")
        wp *= epc
        wp += pb
        # The new bin value goes to the record when its bin is the one the record holds after
        # this reading (t_new's), else to tod; a record moving on to another bin first puts
        # the bin it held back into tod.
        if onward is None:  # every reading onward in time
            into_rec = ti != 0
            back = held & ~cached
        else:
            # (t_new 0: a wrapped time 0 after 2038 leaves nothing held, so tod gets it)
            into_rec = (onward | cached) & (t_new != 0)
            back = held & ~cached & onward
        if not all_ok:
            into_rec &= ok
            back &= ok
        k = np.flatnonzero(back)
        if len(k):
            flat[at[k] - b[k] + b_l[k]] = pbin[k]
        if into_rec.all():
            keep(wp, "pbin")
        else:
            to_tod = np.flatnonzero(~into_rec & ok if not all_ok else ~into_rec)
            flat[at[to_tod]] = wp[to_tod]
            keep(np.where(into_rec, wp, pbin), "pbin")
    if all_ok:
        return out, raw
    return np.where(ok, out, np.nan), np.where(ok, raw, np.nan)
