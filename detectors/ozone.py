"""Ozone 주의보/경보/중대경보 on the 1-hour mean, stepping down one level at a time.

Criteria (Air Quality Conservation Act, Enforcement Rule Annex 7; docs/design.md §3.2), on the
hourly mean ``c`` in ppm: 주의보 (→ 주의 CAUTION, 2) ``c ≥ 0.12``; 경보 (→ 경계 ALERT, 3)
``c ≥ 0.3``; 중대경보 (→ 심각 SERIOUS, 4) ``c ≥ 0.5``. Raising goes straight to the highest
stage reached. Lowering steps down one level per closed hour: 중대경보 → 경보 when
``c < 0.5``, 경보 → 주의보 when ``c < 0.3``, 주의보 cancelled when ``c < 0.12``. A missing hour
(NaN) changes nothing.

>>> lv = np.zeros(1, np.uint8)
>>> out = []
>>> for c in [0.10, 0.13, 0.55, 0.05, 0.05, 0.05, 0.31]:
...     lv = step(lv, np.array([c]))
...     out.append(int(lv[0]))
>>> out
[0, 2, 4, 3, 2, 0, 3]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["LINES_PPM", "step"]

#: 주의보, 경보, 중대경보 lines (ppm), for levels 2, 3, 4.
LINES_PPM = (0.12, 0.3, 0.5)


def step(level: npt.NDArray[np.uint8], mean: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """The level after one closed hour with 1-h mean ``mean`` (ppm)."""
    lv = level.astype(np.int64)
    valid = ~np.isnan(mean)
    with np.errstate(invalid="ignore"):
        target = np.where(
            mean >= LINES_PPM[2],
            4,
            np.where(mean >= LINES_PPM[1], 3, np.where(mean >= LINES_PPM[0], 2, 0)),
        )
        line_of_current = np.select(
            [lv == 4, lv == 3, lv == 2], list(LINES_PPM[::-1]), default=-np.inf
        )
        up = valid & (target > lv)
        down = valid & ~up & (lv >= 2) & (mean < line_of_current)
        lv = np.where(up, target, np.where(down, np.where(lv == 2, 0, lv - 1), lv))
    return lv.astype(np.uint8)
