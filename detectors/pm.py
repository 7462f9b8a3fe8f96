"""Fine-dust (PM10, PM2.5) 주의보/경보 on hourly means, with 2-hour persistence and cancel levels.

Criteria (Air Quality Conservation Act, Enforcement Rule Annex 7; docs/design.md §3.2), on the
station's hourly mean concentration ``c`` in µg/m³:

=========  =======================  =======================  ==========================
pollutant  주의보 (→ 주의 CAUTION)    경보 (→ 경계 ALERT)        cancel / step down
=========  =======================  =======================  ==========================
PM10       c ≥ 150 for ≥ 2 h        c ≥ 300 for ≥ 2 h        주의보 off < 100; 경보→주의보 < 150
PM2.5      c ≥ 75 for ≥ 2 h         c ≥ 150 for ≥ 2 h        주의보 off < 35;  경보→주의보 < 75
=========  =======================  =======================  ==========================

Maths: "for ≥ 2 h" is two consecutive valid hourly means both at or above the line (a
missing hour breaks the run). Step-downs use the latest hourly mean alone; they chain within
one hour (a 경보 whose mean falls below the 주의보 cancel level is lifted outright, reported as
one change). Missing hours (NaN) change nothing. Issue and cancel levels differ, so the rule
has hysteresis by law. Levels: 0 cleared, 2 caution, 3 alert.

>>> lv = np.zeros(1, np.uint8)
>>> seq = [(160.0, 120.0), (170.0, 160.0), (310.0, 170.0), (320.0, 310.0), (140.0, 320.0),
...        (120.0, 140.0), (90.0, 120.0)]
>>> out = []
>>> for mean, prev in seq:
...     lv = step(lv, np.array([mean]), np.array([prev]), np.array([True]), PM10)
...     out.append(int(lv[0]))
>>> out
[0, 2, 2, 3, 2, 2, 0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["PM10", "PM25", "PMLines", "step"]


@dataclass(frozen=True)
class PMLines:
    caution: float
    alert: float
    caution_off: float  # 주의보 cancelled below this
    alert_off: float  # 경보 stepped down to 주의보 below this


PM10 = PMLines(caution=150.0, alert=300.0, caution_off=100.0, alert_off=150.0)
PM25 = PMLines(caution=75.0, alert=150.0, caution_off=35.0, alert_off=75.0)


def step(
    level: npt.NDArray[np.uint8],
    mean: npt.NDArray[np.float64],
    prev: npt.NDArray[np.float64],
    consecutive: npt.NDArray[np.bool_],
    lines: PMLines,
) -> npt.NDArray[np.uint8]:
    """The level after one closed hour with mean ``mean``; ``prev`` is the hour before."""
    lv = level.astype(np.int64)
    valid = ~np.isnan(mean)
    with np.errstate(invalid="ignore"):
        both = valid & consecutive & ~np.isnan(prev)
        issue_alert = both & (mean >= lines.alert) & (prev >= lines.alert)
        issue_caution = both & (mean >= lines.caution) & (prev >= lines.caution)
        lv = np.where(issue_alert & (lv < 3), 3, lv)
        lv = np.where(issue_caution & (lv < 2), 2, lv)
        lv = np.where(valid & (lv == 3) & ~issue_alert & (mean < lines.alert_off), 2, lv)
        lv = np.where(valid & (lv == 2) & (mean < lines.caution_off), 0, lv)
    return lv.astype(np.uint8)
