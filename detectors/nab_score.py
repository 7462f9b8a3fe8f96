"""Numenta Anomaly Benchmark (NAB v1.1) scoring, re-implemented with numpy.

Maths (Lavin & Ahmad 2015, "Evaluating real-time anomaly detection algorithms — the Numenta
Anomaly Benchmark", IEEE ICMLA; Ahmad et al. 2017, Neurocomputing 262; NAB's ``sweeper.py``):

* Probation: the first ``min(floor(0.15 n), 0.15 * 5000)`` points of a file are not scored.
* Scaled sigmoid: ``σ̃(y) = 2 / (1 + exp(5 y)) - 1`` for ``y <= 3``, ``-1`` beyond.
* A point ``i`` inside a labelled window ``[a, b]`` (indices, inclusive, width ``w = b - a + 1``)
  has relative position ``y = -(b - i + 1) / w`` (``-1`` at the window start) and would score
  ``A_TP · σ̃(y) / σ̃(-1)`` if detected; only the best (= the earliest) detection in a window
  counts; a window with no detection costs ``-A_FN``.
* A point outside every window would score ``A_FP · σ̃(|i - b_prev| / (w_prev - 1))`` relative
  to the preceding window (``-A_FP`` when no window precedes it); every such detection counts.
* Raw score of a detector = the sum over all files at one threshold on the anomaly score,
  the same for the whole corpus, chosen here by an exact sweep over every distinct score
  (NAB uses a local optimiser for the same objective).
* Normalised score: ``100 · (S - S_null) / (S_perfect - S_null)`` with ``S_null = -A_FN · W``
  (nothing detected) and ``S_perfect = A_TP · W`` (every window caught at its first point),
  ``W`` = number of scored windows.

Profiles (NAB ``config/profiles.json``): standard (A_FP 0.11), reward_low_FP_rate (A_FP 0.22),
reward_low_FN_rate (A_FN 2.0); A_TP = 1 in all three.

>>> prof = Profile(tp=1.0, fp=0.11, fn=1.0)
>>> sc = sweep_scores(np.arange(10), [(4, 5)], probation=2)
>>> sc.window.tolist()
[-1, -1, -1, -1, 0, 0, -1, -1, -1, -1]
>>> round(float(sc.tp_part[4]), 4), round(float(sc.tp_part[5]), 4)
(1.0, 0.8598)
>>> detected = np.array([0, 0, 0, 0, 0, 1, 0, 0, 0, 1.0])
>>> round(score_at_threshold([sc], [detected], prof, 0.5), 4)  # TP (0.8598) + one FP (-0.11)
0.7498
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = [
    "PROFILES",
    "FileScoring",
    "Profile",
    "best_threshold",
    "normalised",
    "probation_length",
    "scaled_sigmoid",
    "score_at_threshold",
    "sweep_scores",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Profile:
    """Weights of one NAB scoring profile."""

    tp: float
    fp: float
    fn: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(tp=1.0, fp=0.11, fn=1.0),
    "reward_low_FP_rate": Profile(tp=1.0, fp=0.22, fn=1.0),
    "reward_low_FN_rate": Profile(tp=1.0, fp=0.11, fn=2.0),
}


def scaled_sigmoid(y: FloatArray | float) -> FloatArray:
    """NAB's scaled sigmoid: ``2/(1+exp(5y)) - 1``, and ``-1`` for ``y > 3``.

    >>> scaled_sigmoid(np.array([-1.0, 0.0, 1.0, 3.5])).round(4).tolist()
    [0.9866, 0.0, -0.9866, -1.0]
    """
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(over="ignore"):
        val = 2.0 / (1.0 + np.exp(5.0 * y)) - 1.0
    return np.where(y > 3.0, -1.0, val)


def probation_length(n: int, fraction: float = 0.15) -> int:
    """Points at the start of a file that are not scored: ``min(floor(f n), f * 5000)``.

    >>> probation_length(4032), probation_length(22695)
    (604, 750)
    """
    return int(min(math.floor(fraction * n), fraction * 5000))


@dataclass(frozen=True)
class FileScoring:
    """Per-point scoring parts of one file (independent of the detector and the profile).

    ``window`` is the window number of each point (-1 outside windows), ``tp_part`` the
    unweighted TP score ``σ̃(y)/σ̃(-1)`` inside windows, ``fp_part`` the unweighted FP score
    (negative) outside them, ``scored`` False in the probation period.
    """

    window: npt.NDArray[np.int64]
    tp_part: FloatArray
    fp_part: FloatArray
    scored: npt.NDArray[np.bool_]

    @property
    def n_windows(self) -> int:
        """Windows with at least one scored point."""
        return len(np.unique(self.window[self.scored & (self.window >= 0)]))


def sweep_scores(
    timestamps: npt.ArrayLike,
    windows: Sequence[tuple[object, object]],
    *,
    probation: int | None = None,
) -> FileScoring:
    """Scoring parts of each point of one file, given its labelled windows ``(start, end)``.

    ``timestamps`` and window limits must compare equal where NAB's do (both datetime64, or
    both integers). ``probation`` defaults to :func:`probation_length`.
    """
    ts = np.asarray(timestamps)
    n = len(ts)
    window = np.full(n, -1, dtype=np.int64)
    tp_part = np.zeros(n)
    fp_part = np.full(n, -1.0)
    idx = np.arange(n, dtype=np.float64)
    bounds: list[tuple[int, int]] = []
    for k, (start, end) in enumerate(windows):
        a = int(np.searchsorted(ts, np.asarray(start, dtype=ts.dtype)))
        b = int(np.searchsorted(ts, np.asarray(end, dtype=ts.dtype), side="right")) - 1
        if b < a:
            continue
        bounds.append((a, b))
        width = float(b - a + 1)
        window[a : b + 1] = k
        pos = -(b - idx[a : b + 1] + 1.0) / width
        tp_part[a : b + 1] = scaled_sigmoid(pos) / float(scaled_sigmoid(-1.0))
    # False-positive parts, relative to the preceding window.
    for j, (a, b) in enumerate(bounds):
        stop = bounds[j + 1][0] if j + 1 < len(bounds) else n
        width = float(b - a + 1)
        seg = slice(b + 1, stop)
        if width > 1:
            fp_part[seg] = scaled_sigmoid(np.abs(b - idx[seg]) / (width - 1.0))
        else:
            fp_part[seg] = -1.0
    fp_part[window >= 0] = 0.0
    prob = probation_length(n) if probation is None else probation
    scored = np.arange(n) >= prob
    return FileScoring(window=window, tp_part=tp_part, fp_part=fp_part, scored=scored)


def _corpus_arrays(
    files: Sequence[FileScoring], scores: Sequence[npt.ArrayLike]
) -> tuple[FloatArray, npt.NDArray[np.int64], FloatArray, FloatArray, int]:
    s_all, w_all, tp_all, fp_all = [], [], [], []
    offset = 0
    for f, s in zip(files, scores, strict=True):
        s = np.asarray(s, dtype=np.float64)
        m = f.scored
        w = f.window[m]
        s_all.append(s[m])
        w_all.append(np.where(w >= 0, w + offset, -1))
        tp_all.append(f.tp_part[m])
        fp_all.append(f.fp_part[m])
        offset += int(f.window.max(initial=-1)) + 1
    return (
        np.concatenate(s_all),
        np.concatenate(w_all),
        np.concatenate(tp_all),
        np.concatenate(fp_all),
        offset,
    )


def score_at_threshold(
    files: Sequence[FileScoring], scores: Sequence[npt.ArrayLike], prof: Profile, threshold: float
) -> float:
    """Raw NAB score of the corpus when every point with ``score >= threshold`` is detected."""
    total = 0.0
    for f, s in zip(files, scores, strict=True):
        s = np.asarray(s, dtype=np.float64)
        det = (s >= threshold) & f.scored
        total += prof.fp * float(f.fp_part[det & (f.window < 0)].sum())
        for k in np.unique(f.window[f.scored & (f.window >= 0)]):
            hit = det & (f.window == k)
            total += prof.tp * float(f.tp_part[hit].max()) if hit.any() else -prof.fn
    return total


def best_threshold(
    files: Sequence[FileScoring], scores: Sequence[npt.ArrayLike], prof: Profile
) -> tuple[float, float]:
    """Exact sweep: the threshold maximising the corpus raw score, and that score.

    Lowering the threshold past a score activates every point with that score; a window's
    part becomes the best TP part among its active points; FP parts add up. Returns
    ``(threshold, raw_score)``; the threshold is ``inf`` when detecting nothing is best.
    """
    s, w, tp, fp, _ = _corpus_arrays(files, scores)
    n_windows = len(np.unique(w[w >= 0]))
    order = np.argsort(-s, kind="stable")
    s, w, tp, fp = s[order], w[order], tp[order], fp[order]
    delta = np.where(w < 0, prof.fp * fp, 0.0)
    in_win = np.flatnonzero(w >= 0)
    if len(in_win):
        # Per window, the running best TP part in activation order; its increments add up.
        wo = np.lexsort((in_win, w[in_win]))
        rows = in_win[wo]
        vals = prof.tp * tp[rows]
        wins = w[rows]
        starts = np.flatnonzero(np.r_[True, wins[1:] != wins[:-1]])
        run = np.empty_like(vals)
        for a, b in zip(starts, np.r_[starts[1:], len(rows)], strict=True):
            run[a:b] = np.maximum.accumulate(vals[a:b])
        prev = np.r_[-np.inf, run[:-1]]
        first = np.zeros(len(rows), dtype=bool)
        first[starts] = True
        inc = np.where(first, run + prof.fn, run - prev)
        delta[rows] = inc
    cum = -prof.fn * n_windows + np.cumsum(delta)
    # Only the last point of a run of tied scores is a valid cut.
    last = np.r_[s[1:] != s[:-1], True]
    cand = np.flatnonzero(last)
    best_raw = -prof.fn * n_windows
    best_thr = float("inf")
    if len(cand):
        k = int(cand[np.argmax(cum[cand])])
        if cum[k] > best_raw:
            best_raw, best_thr = float(cum[k]), float(s[k])
    return best_thr, best_raw


def normalised(raw: float, prof: Profile, n_windows: int) -> float:
    """``100 (raw - null) / (perfect - null)``: null = nothing detected, perfect = all at once.

    >>> normalised(-116.0, PROFILES["standard"], 116), normalised(116.0, PROFILES["standard"], 116)
    (0.0, 100.0)
    """
    null = -prof.fn * n_windows
    perfect = prof.tp * n_windows
    return 100.0 * (raw - null) / (perfect - null)
