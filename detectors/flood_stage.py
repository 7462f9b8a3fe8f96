"""Observed flood stage of a river gauge against its official stage levels.

Maths: ``stage(h) = #{L ∈ (attention, caution, alert, serious) : h ≥ L}`` mapped onto the
crisis levels 관심 ATTENTION (1) < 주의 CAUTION (2, 홍수주의보, warning level wrnwl) <
경계 ALERT (3, 홍수경보, alarm level almwl) < 심각 SERIOUS (4, 대홍수경보, serious level srswl);
``h`` is the stage at the gauge in metres. Levels are per gauge, from the Han River Flood
Control Office's attwl/wrnwl/almwl/srswl (docs/design.md §3.1; ``config/stations.yaml``). A
missing level (NaN, e.g. no attention level) is never reached. The rule is exact at the line
(``h == L`` is at the stage); hysteresis against flapping belongs to ``alerting/``.

>>> levels = np.array([[4.5, 8.5, 10.5, 13.3]] * 4)  # Hangang Bridge (1018683)
>>> stage(np.array([4.49, 8.36, 8.5, 11.76]), levels).tolist()
[0, 1, 2, 3]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["stage"]


def stage(h: npt.NDArray[np.float64], levels: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Stage (0 = below every line … 4 = serious) of levels ``h`` (m) given ``levels`` (m×4).

    NaN ``h`` gives stage 0; callers skip NaN rows.
    """
    out = np.zeros(len(h), dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        for j in range(levels.shape[1]):  # column by column: faster than a row-wise sum
            out += h >= levels[:, j]
    return out
