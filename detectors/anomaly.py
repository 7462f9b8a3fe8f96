"""Robust streaming anomaly score and alarm per station channel (operators' early warning).

**Clock.** A reading counts for ``dt``, the time since the channel's previous reading, held
within ``[0, dt_max]`` (``dt_ref`` without times). Every exponentially weighted statistic
with time constant ``τ`` moves by ``w = 1 - exp(-dt/τ)`` (``dt/τ`` for the slow ones, where
``dt ≪ τ``): the exponential moving average of an unevenly sampled series (Eckner, "Algorithms
for unevenly spaced time series: moving averages and other rolling operators", 2019). So a
channel read every second and one read every ten minutes forget at the same rate per unit of
time; the time constants are :class:`AnomalyParams`.

**Evidence** for a value ``x``:

* Huber-robust (Huber 1964, doi:10.1214/aoms/1177703732) location ``μ`` and scale ``s``
  (mean absolute deviation) with time constant ``τ_level``: ``x`` is clipped to
  ``μ ± c·s`` first, so one outlier moves them by at most ``w c s`` (robust EWMA as in
  Lanius & Gather 2010, doi:10.1080/10485250903089058); weights ``1/(n+1)`` while that is
  larger (a young channel's running mean);
* a fast location ``f`` (``τ_fast``), its distance from ``μ`` a mean shift, and a fast scale
  ``s_f`` of ``|x - f|`` (``τ_fast_scale``), its ratio to ``s`` a change of variance;
* one-sided CUSUMs (Page 1954, doi:10.1093/biomet/41.1-2.100) of the standardised residual
  ``r = (x - μ)/s``, each reading adding ``(±r - k)·dt/dt_ref``;
* with reading times, a time-of-day profile: 24 clock-hour bins ``P_h``, each moved by
  ``min(dt, 1 h)/(1 h · tod_days)`` of the residual ``e = x - P_h`` (seasonal smoothing as in
  Winters 1960, doi:10.1287/mnsc.6.3.324, keyed on the clock; ``e`` clipped at its record
  once every bin has had a reading).

Every scale is floored at ``floor_rng·(hi - lo) + floor_rel·(|μ| + s₀)``, ``[lo, hi]`` the
range of the values seen (so a mostly constant channel cannot standardise a rare change by a
scale that has collapsed to nothing). The raw evidence ``z = max(|r|/z_level,
|f - μ|/(s·z_shift), max(g⁺, g⁻)/h, (s_f/s)/z_var)`` is squashed to ``ρ = z²/(1 + z²)``.

**Score.** Numenta's anomaly likelihood (Ahmad, Lavin, Purdy & Agha 2017, Neurocomputing 262,
doi:10.1016/j.neucom.2017.04.070, §4.2): ``λ = Φ((m_S - m_L)/√v_L)`` with ``m_S`` a short mean
of ``ρ`` (``τ_short``) and ``m_L``, ``v_L`` its long-run mean and variance (``lik_window``);
the score is ``max(λ, ρ)``, set to 1 by a *record* (the same paper's spatial anomaly and
three more of its kind): a value beyond ``[lo, hi]`` by ``sp_tol·(hi - lo)``; a CUSUM in the
channel's unit (``max(g⁺, g⁻)·s``) above ``(1 + sp_cusum)`` times its largest so far; with
times, a profile residual ``|e|`` above ``(1 + sp_tod)`` times its largest (armed
``tod_arm_hours`` clock hours after every bin has had a reading); a run of identical readings
longer than ``(1 + sp_run)`` times the longest that has ended plus ``run_min`` (a stuck
sensor; not on a channel whose value has never changed), reported once per run. The range
and the records decay towards ``μ`` with ``τ_range``, once per clock hour entered. The score
is 0 during the warm-up (``warmup`` readings and ``warmup_s``) and for ``refractory`` after
each raise, but for a new extreme, which scores 1 through it.

**Alarm** (``level`` in the record; the engine's ``anomaly.<channel>`` detection): raised at a
score ≥ ``fire``. From the next reading a settling mean ``m`` follows the readings and ``q``
is their mean distance from it (both ``τ_settle``; ``q`` starts at ``2·settle·s``); the alarm
clears once ``q < settle·s``: the channel has settled, at a new level or the old one. The
change is reported once: at the end of the refractory, a channel settled at ``m`` more than
``rebase·s`` from ``μ`` takes it as its baseline (``μ``, ``f`` ← ``m``; the CUSUMs and the short
mean of ``ρ`` restart) and
its scale spans the step (``s ≥ |m - μ|/rebase_spread``: going back is within its
variability). A slow drift moves ``f``, ``μ`` and the profile along with it and stays within
``s``, which is measured against the slow baseline and so includes the channel's usual
wandering; it raises no alarm unless it leaves that range.

No look-ahead: a reading's score uses only the readings before it and itself. The state is
float32 in the channel's unit but for ``μ`` and ``s`` (float64: at a reading per second their
weights are ~1e-6, below float32's resolution), 112 bytes per channel
(:data:`ANOMALY_DTYPE`) plus its profile, 24 float32 in an array the caller keeps
(:func:`new_profiles`); the record holds the bin of its last reading's hour (``pbin``) and
:func:`profiles` gives the complete profiles.

One parameter set for every channel, chosen on half of the Numenta Anomaly Benchmark (Lavin &
Ahmad 2015, doi:10.1109/ICMLA.2015.141) and on a synthetic corpus of drifting sensors
(``benchmarks/anomaly.py`` reports both, with held-out halves).

A level shift raises the alarm once; it clears when the channel has settled at its new level:

>>> st, tod1 = np.zeros(1, ANOMALY_DTYPE), new_profiles(1)
>>> rng = np.random.default_rng(0)
>>> xs = np.r_[10.0 + rng.normal(0.0, 0.1, 600), 12.0 + rng.normal(0.0, 0.1, 600)]
>>> level = []
>>> for k, x in enumerate(xs):  # a reading a minute
...     _ = update(st, np.array([x]), ts=np.array([1.7e9 + 60.0 * k]), tod=tod1)
...     level.append(int(st["level"][0]))
>>> after = [k for k in range(600, len(xs)) if level[k] > level[k - 1]]
>>> after, sum(level[600:]) < 60, level[-1]  # raised at the step, down within the hour
([600], True, 0)
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
        ("refr", np.float32),  # refractory left, in readings of dt_ref seconds
        ("level", np.uint8),  # the channel's alarm (1: raised, not yet settled)
        ("flags", np.uint8),  # bit 0: seed the settling mean at the next reading
        ("_pad", np.uint16),
        ("x_last", np.float32),
        ("mu", np.float64),  # slow location (float64: its time weights go down to ~1e-6)
        ("s", np.float64),  # slow scale (mean absolute deviation from μ)
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
        ("m", np.float32),  # while alarmed: the settling mean (the channel's new level)
        ("q", np.float32),  # while alarmed: EW mean of |x - m| (settled when small)
        ("run", np.float32),  # readings in the current run of identical values
        ("rmax", np.float32),  # longest such run (decaying)
    ]
)


@dataclass(frozen=True)
class AnomalyParams:
    """One parameter set for every channel and every reporting interval.

    Time constants are in seconds of the readings' own clock, so a channel read every
    second and one read every ten minutes forget at the same rate per unit of time. Without
    reading times every reading counts as ``dt_ref`` seconds.
    """

    #: slow location μ and scale s (5.1 days)
    tau_level: float = 444_444.0
    #: fast location f (1.6 h)
    tau_fast: float = 5_849.0
    #: fast scale s_f, and the settling mean m and spread q of a raised alarm (22 min)
    tau_fast_scale: float = 1_344.0
    #: short mean of ρ in the anomaly likelihood (29 min)
    tau_short: float = 1_721.0
    #: long-run window of the likelihood's statistics of ρ (13.9 days)
    lik_window: float = 1_200_000.0
    #: contraction of the range [lo, hi] and decay of the records towards μ (116 days)
    tau_range: float = 1.0e7
    #: the score is held at 0 this long after an alarm is raised (4.7 h)
    refractory: float = 16_800.0
    #: the first readings score 0 for this long (2.75 h) and for ``warmup`` readings
    warmup_s: float = 9_900.0
    warmup: int = 33
    #: the interval a reading counts for without times; weights above refer to it
    dt_ref: float = 300.0
    #: a longer gap between two readings counts as this long
    dt_max: float = 600.0
    huber_c: float = 4.5
    z_level: float = 5.0625
    z_jump: float = 1e9
    z_shift: float = 2.0
    cusum_k: float = 2.0
    cusum_h: float = 40.0
    z_var: float = 12.0
    floor_rel: float = 1e-4
    floor_rng: float = 0.027
    sp_tol: float = 0.0585
    fire: float = 0.995
    #: the settling mean m and spread q of a raised alarm
    tau_settle: float = 1_344.0
    #: a raised alarm clears once q, the spread around the settling mean, is below this
    #: many slow scales s
    settle: float = 1.125
    #: at the end of a refractory a settled level more than this many s from μ becomes μ
    rebase: float = 1.125
    #: ... and the scale s becomes at least the step to it over this
    rebase_spread: float = 2.0
    tod_days: float = 6.0
    tod_arm_hours: int = 24
    sp_tod: float = 0.16
    sp_cusum: float = 0.5
    #: a run of identical readings is a record when longer than (1 + sp_run) times the
    #: longest so far plus run_min readings (a stuck sensor)
    sp_run: float = 1.0
    run_min: float = 3.0


DEFAULT = AnomalyParams()
_BIN_S = DAY / TOD_BINS
_ALL_BINS = np.uint32((1 << TOD_BINS) - 1)  # every bin has had a reading
_HOUR_1 = np.uint32(1 << TOD_BINS)  # one clock hour since complete (above the bins)
RESEED = np.uint8(1)  # flags: seed the settling mean m at the next reading
WARM = np.uint8(2)  # flags: the refractory under way is the channel's warm-up
TOLD = np.uint8(4)  # flags: the run of identical readings under way has been reported


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
_WIDE = [(name, w) for name, w, dt, _, _ in _FIELD_AT if dt.itemsize == 8]


class _Columns:
    """The records of :func:`update` as one contiguous array per field (read and written
    by name like the records).

    An operation on a strided field of 112-byte records streams every record through the
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
        self.fields: dict[str, npt.NDArray[Any]] = {}
        for name, w, dt, start, step in _FIELD_AT:
            if dt.itemsize == 8:  # two word rows: joined into one contiguous column
                self.fields[name] = np.ascontiguousarray(self.words[w : w + 2].T).view(dt)[:, 0]
            else:
                col = self.words[w].view(dt)
                self.fields[name] = col if step == 1 else col[start::step]

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.fields[name]

    def __setitem__(self, name: str, value: npt.NDArray[Any] | float) -> None:
        self.fields[name][...] = value

    def store(self) -> None:
        """Write the columns back into the records."""
        st = self.st
        for name, w in _WIDE:
            self.words[w : w + 2] = self.fields[name].view(np.uint32).reshape(-1, 2).T
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
    (``max(λ, ρ)``; 0 during warm-up and refractory periods, but for a new extreme, which
    scores 1 through a refractory: see the module docstring) and the raw evidence ``ρ`` of
    this reading alone (never held at 0; the engine reports it as the detection's score).

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

    float32 throughout, like the state (about 3x faster than float64 at 23,000 rows), but
    for the slow location and scale, whose time weights are too small for float32 at a
    reading per second. Every read of a field happens before its write at the end
    (``keep``), so no view sees a new value. numpy's maximum/minimum against a scalar cost
    ~4x against an array: ``zero`` is one.
    """
    x = x.astype(np.float32, copy=False)
    ok = ~np.isnan(x)
    all_ok = bool(ok.all())  # the engine's case: rows are readings that carry the channel
    n = st["n"].copy()  # uint32
    first = ok & (n == 0)
    any_first = bool(first.any())
    xf = x if all_ok else np.where(ok, x, 0.0)
    zero = np.zeros(len(x), np.float32)

    def init(v: npt.NDArray[Any], field: str) -> npt.NDArray[Any]:
        """The stored field, or ``v`` on a channel's first reading."""
        old = st[field]
        return np.where(first, v, old) if any_first else old.copy()

    def keep(new: npt.NDArray[np.generic], field: str) -> None:
        st[field] = new if all_ok else np.where(ok, new, st[field])

    mu64 = init(xf.astype(np.float64), "mu")
    mu = mu64.astype(np.float32)
    s0 = init(np.abs(xf), "s0") if any_first else st["s0"]  # (read once)
    lo = init(xf, "lo")
    hi = init(xf, "hi")
    span = hi - lo
    base = p.floor_rel * (np.abs(mu) + s0) + 1e-12
    floor = base + p.floor_rng * span
    s64 = np.maximum(st["s"], floor)
    s = s64.astype(np.float32)
    jump = p.z_jump < 1e9  # 1e9 and above: no jump term, and d, x_last are not kept
    f = init(xf, "f")
    sf = np.maximum(st["sf"], floor)
    if any_first:
        sf = np.where(first, s, sf)
    # The time this reading counts for: dt (s) since the channel's last one, within
    # [0, dt_max]; dt_ref without times (or on a channel's first time).
    dt: F32 | float = p.dt_ref
    hour_in: npt.NDArray[np.bool_] | None = None  # readings in another clock hour
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
        hour_in = held & (hour != hour_l)
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
            step_in = full & ~trained & hour_in
            seen_new = (seen | bit) + np.where(step_in, _HOUR_1, 0).astype(np.uint32)
        ep = xf - pb
        aep = np.abs(ep)
        emax = st["emax"].copy()
        hp = emax + floor  # robust step: the residual clipped at its record (+ the floor)
        epc = np.minimum(np.maximum(ep, -hp), hp)  # (= np.clip, ~3x faster with arrays)
        if not all_full:
            epc = np.where(full, epc, ep)
        # (Δt by wrap-around int32 arithmetic: right for |Δt| < 68 years.)
        dti = ti.view(np.int32) - tl.view(np.int32)
        dt = dti.astype(np.float32)
        np.clip(dt, 0.0, p.dt_max, out=dt)
        if not held.all():
            dt[~held] = p.dt_ref
        # The profile step's weight: min(Δt, 1 h) / (1 h · tod_days).
        wp = dt * np.float32(1.0 / (_BIN_S * p.tod_days))
        np.minimum(wp, np.float32(1.0 / p.tod_days), out=wp)
    # Weights per reading from the time it counts for: 1 - exp(-dt/τ), and dt/τ for the
    # slow ones (τ ≫ dt_max).
    w_f = -np.expm1(dt * np.float32(-1.0 / p.tau_fast))
    w_sf = -np.expm1(dt * np.float32(-1.0 / p.tau_fast_scale))
    w_s = -np.expm1(dt * np.float32(-1.0 / p.tau_short))
    u = dt * np.float32(1.0 / p.dt_ref)  # the reading in readings of dt_ref seconds
    xm = xf - mu
    r = xm / s
    rc = np.clip(r, -p.huber_c, p.huber_c)
    # CUSUM: each reading adds (r - k) for the time it counts for
    rc -= p.cusum_k
    rc *= u
    gp = st["gp"] + rc
    np.maximum(gp, zero, out=gp)
    rc += 2.0 * p.cusum_k * u
    gn = st["gn"] - rc
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
    sm = sm32 + w_s * (raw - sm32)
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
    if ts is not None:
        nov_t = aep > emax * (1.0 + p.sp_tod) + base
        if not all_full:  # the record's own warm-up: a day after the profile completes
            nov_t &= trained
        nov |= nov_t
    # Stuck: a run of identical readings longer than any so far (decaying), by a margin.
    x_prev = init(xf + 1.0, "x_last")
    run = np.where(xf == x_prev, st["run"] + 1.0, zero)
    rmax = init(np.full(len(xf), -1.0, np.float32), "rmax")
    # (rmax < 0: no run has ended yet, as on a channel's first readings: nothing to compare)
    nov_r = (run > rmax * (1.0 + p.sp_run) + p.run_min) & (span > 0) & (rmax >= 0)
    # ... once per run: a run stays longer than the record every reading until it ends, and
    # would raise the alarm again at the end of every refractory.
    told = (st["flags"] & TOLD) != 0
    nov_r &= ~told
    nov |= nov_r
    np.copyto(score, 1.0, where=nov)
    # Weights 1/(n+1) while a channel is young, then the time weights: one shared division.
    n1 = n + (n < np.uint32(2**32 - 1))  # n + 1, saturated (uint32)
    inv = np.divide(np.float32(1.0), n1.astype(np.float32))
    a = np.maximum(inv, dt * np.float32(1.0 / p.tau_level))
    a_l = np.maximum(inv, dt * np.float32(1.0 / p.lik_window))
    dev = raw - lm
    lm_new = lm + a_l * dev
    lv_new = (1.0 - a_l) * (lv + a_l * dev * dev)
    # Robust updates (clipped), slow location/scales and fast location.
    hs = p.huber_c * s64
    e = np.minimum(np.maximum(xf - mu64, -hs), hs)  # (x clipped to μ ± c·s, minus μ)
    a64 = a.astype(np.float64)
    mu_new = mu64 + a64 * e
    s_new = s64 + a64 * (np.abs(e) - s64)
    xf_f = xf - f
    f_new = f + w_f * xf_f
    sf_new = sf + w_sf * (np.abs(xf_f) - sf)
    # Once an alarm fires, the CUSUMs restart so a persisting shift is not re-counted.
    refr = st["refr"].copy()  # in readings of dt_ref seconds
    flags = st["flags"]
    if any_first:
        flags = np.where(first, flags | WARM, flags)
        refr = np.where(first, np.float32(p.warmup_s / p.dt_ref), refr)
    in_refr = refr > 0
    warm = (n < p.warmup) | (in_refr & ((flags & WARM) != 0))
    quiet = warm | in_refr
    fire = ~quiet & (score >= p.fire)
    # A spatial anomaly (a new extreme by a clear margin) is reported through the refractory
    # (score 1), whether or not the alarm still stands, without restarting it or the CUSUMs.
    raised = st["level"] > 0
    zeroed = warm | (in_refr & ~spatial)
    out = np.where(zeroed, 0.0, score) if zeroed.any() else score
    up = out >= p.fire  # raised (or kept) by this reading: the settling mean starts anew
    # Settling: while raised, m follows the readings (seeded by the first reading after a
    # raise) and q is the mean distance of the readings from it; the alarm clears once q is
    # within ``settle`` slow scales, and the CUSUMs restart. The baseline takes the new level
    # m only at the end of the refractory (below).
    seed = raised & ((flags & RESEED) != 0)
    m_old = st["m"]
    w_m = -np.expm1(dt * np.float32(-1.0 / p.tau_settle))
    m_new = m_old + w_m * (xf - m_old)
    q_new = st["q"] + w_m * (np.abs(xf - m_old) - st["q"])
    if seed.any():
        m_new = np.where(seed, xf, m_new)
        q_new = np.where(seed, 2.0 * p.settle * s, q_new)
    settled = raised & ~up & (q_new < p.settle * s)
    lvl_new = (up | (raised & ~settled)).view(np.uint8)
    flags_new = np.where(up, flags | RESEED, flags & ~RESEED)
    # the run has been reported once the reading it was a record on raised or kept the alarm
    told_new = (told | (nov_r & up)) & (run != 0)
    flags_new = (flags_new & ~TOLD) | np.left_shift(told_new.view(np.uint8), 2)
    refr_new = np.where(fire, np.float32(p.refractory / p.dt_ref), np.maximum(refr - u, zero))
    reset = fire | warm | settled
    if reset.any():
        k = np.flatnonzero(reset)
        gp[k] = 0.0
        gn[k] = 0.0

    # At the end of a refractory, a channel that has settled at a level m away from μ by
    # more than rebase·s (a lasting change, already reported) takes it as its baseline.
    adopt = (refr > 0) & (refr <= u) & ~fire & ~raised & (np.abs(m_new - mu) > p.rebase * s)
    if adopt.any():
        k = np.flatnonzero(adopt)
        # the channel's variability now spans both levels: a return is not a new change
        s_new[k] = np.maximum(s_new[k], np.abs(m_new[k] - mu64[k]) * (1.0 / p.rebase_spread))
        mu_new[k] = m_new[k]
        f_new[k] = m_new[k]
        sm[k] = lm[k]  # the short mean of ρ too: it averaged evidence against the old μ
        gp[k] = 0.0
        gn[k] = 0.0
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
    keep(np.where(refr_new > 0, flags_new, flags_new & ~WARM), "flags")
    keep(m_new, "m")
    keep(q_new, "q")
    keep(refr_new, "refr")
    # The range and the records decay towards μ: by dt_max/τ_range once per clock hour
    # entered (a float32 step per reading would round away at a reading per second), or
    # dt_ref/τ_range per reading without times.
    if hour_in is None:
        dec: F32 | float = p.dt_ref / p.tau_range
    else:
        dec = np.where(hour_in, np.float32(p.dt_max / p.tau_range), zero)
    mu_n32 = mu_new.astype(np.float32)
    lo = lo + dec * (mu_n32 - lo)
    hi = hi + dec * (mu_n32 - hi)
    keep(np.minimum(lo, xf), "lo")
    keep(np.maximum(hi, xf), "hi")
    keep(np.maximum(gmax * (1.0 - dec), gs), "gmax")
    # (a run joins the record when it ends, so the run under way is judged against the others)
    ended = run == 0
    if any_first:
        ended &= ~first
    keep(np.where(ended, np.maximum(rmax * (1.0 - dec), st["run"]), rmax * (1.0 - dec)), "rmax")
    keep(run, "run")
    if ts is not None:
        emax_new = np.maximum(emax * (1.0 - dec), aep)
        keep(emax_new if all_full else np.where(full, emax_new, emax), "emax")
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
