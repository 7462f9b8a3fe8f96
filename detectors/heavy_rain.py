"""KMA heavy-rain criteria on observed rainfall accumulations (호우주의보 / 호우경보).

Criteria (Korea Meteorological Administration, special weather report criteria; docs/design.md
§3.1): 호우주의보 (→ 주의 CAUTION) when the 3-hour accumulation is ≥ 60 mm or the 12-hour
accumulation ≥ 110 mm; 호우경보 (→ 경계 ALERT) when 3 h ≥ 90 mm or 12 h ≥ 180 mm. KMA issues
on *expected* rain; a gauge can only give the observed part, which is what this rule does.

Maths. Each reading carries ``rain_mm`` fallen in the interval ending at ``ts``; it is added to
the 10-minute bin containing ``ts - 1 ms``. A ring of 72 bins (12 h) per gauge gives
``R3 = Σ`` of the 18 newest bins and ``R12 = Σ`` of all 72, both ending at the newest bin;
readings for older bins within the ring (late but inside the lateness bound) are added where
they belong. Units: mm, ms. State: 72 × 4 + 16 bytes (:data:`RAIN_DTYPE`).

>>> st = np.zeros(1, RAIN_DTYPE)
>>> t0 = 1_596_672_000_000
>>> for k in range(1, 10):  # 20 mm every 20 min: 60 mm in 3 h after the 3rd reading
...     lvl, r3, r12 = update(st, np.array([t0 + k * 1_200_000]), np.array([20.0]))
...     print(k, int(lvl[0]), float(r3[0]), float(r12[0]))  # doctest: +ELLIPSIS
1 0 20.0 20.0
2 0 40.0 40.0
3 2 60.0 60.0
4 2 80.0 80.0
5 3 100.0 100.0
...
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["BIN_MS", "NBINS", "RAIN_DTYPE", "deciding", "level_of", "update"]

BIN_MS = 600_000
NBINS = 72  # 12 h of 10-minute bins
BINS_3H = 18

RAIN_DTYPE = np.dtype(
    [
        ("bins", np.float32, (NBINS,)),
        ("head", np.int64),
        ("level", np.uint8),
        ("_pad", np.uint8, (7,)),
    ]
)


#: ``_IN_3H[h, p]``: ring position ``p`` is among the 18 newest bins when the newest is ``h``.
_IN_3H = (np.arange(NBINS)[:, None] - np.arange(NBINS)[None, :]) % NBINS < BINS_3H


def level_of(r3: npt.NDArray[np.float64], r12: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Crisis level from 3-h and 12-h accumulations (mm): 0, 2 (주의) or 3 (경계).

    >>> level_of(np.array([59.9, 60.0, 10.0, 90.0]), np.array([0.0, 0.0, 180.0, 90.0])).tolist()
    [0, 2, 3, 3]
    """
    alert = (r3 >= 90.0) | (r12 >= 180.0)
    caution = (r3 >= 60.0) | (r12 >= 110.0)
    return np.where(alert, 3, np.where(caution, 2, 0)).astype(np.uint8)


#: The KMA lines per level (index 2 = 주의, 3 = 경계) for 3 h and for 12 h, in mm.
_LINE_3H = np.array([60.0, 60.0, 60.0, 90.0, 90.0])
_LINE_12H = np.array([110.0, 110.0, 110.0, 180.0, 180.0])


def deciding(
    r3: npt.NDArray[np.float64], r12: npt.NDArray[np.float64], level: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The accumulation judged against the lines of ``level`` (for a rise the new level,
    for a fall the lowest level no longer met): (value, its line, window in hours), per row.
    Of the two windows, the one furthest over (or nearest to) its own line for that level:
    a 12-hour 호우주의보 reports its 12-hour sum against 110 mm, never a 3-hour sum of 29 mm
    against 60.

    >>> v, line, h = deciding(np.array([62.0, 28.8, 50.0]), np.array([70.0, 110.5, 100.0]),
    ...                       np.array([2, 2, 2]))
    >>> v.tolist(), line.tolist(), h.tolist()
    ([62.0, 110.5, 100.0], [60.0, 110.0, 110.0], [3, 12, 12])
    """
    lv = np.clip(level, 0, 4)
    l3, l12 = _LINE_3H[lv], _LINE_12H[lv]
    use3 = r3 / l3 >= r12 / l12
    return np.where(use3, r3, r12), np.where(use3, l3, l12), np.where(use3, 3, 12)


def update(
    st: npt.NDArray[np.void], ts: npt.NDArray[np.int64], rain: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Add rainfall readings; return (level, R3, R12) per row. NaN rain adds nothing."""
    m = len(ts)
    b = (ts - 1) // BIN_MS
    head = st["head"]
    fresh = head == 0
    head = np.where(fresh, b, head)
    bins = st["bins"]
    adv = b > head
    ra = np.flatnonzero(adv)
    if len(ra):  # only the gauges entering a new bin clear the bins they leave behind
        pos = np.arange(NBINS)[None, :]
        old_abs = head[ra, None] - ((head[ra, None] - pos) % NBINS)
        new_abs = b[ra, None] - ((b[ra, None] - pos) % NBINS)
        moved = bins[ra]
        moved[old_abs != new_abs] = 0.0
        bins[ra] = moved
        head = np.where(adv, b, head)
    inside = (b > head - NBINS) & ~np.isnan(rain)
    rows = np.arange(m)[inside]
    bins[rows, (b[inside] % NBINS)] += rain[inside].astype(np.float32)
    st["bins"] = bins
    st["head"] = head
    b64 = bins.astype(np.float64)
    r12 = b64.sum(axis=1)
    r3 = np.where(_IN_3H[head % NBINS], b64, 0.0).sum(axis=1)
    lvl = level_of(r3, r12)
    st["level"] = lvl
    return lvl, r3, r12
