"""Rain gauges: the KMA heavy-rain criteria on observed accumulations (``rain.kma_heavy_rain``).

Maths and source: :mod:`detectors.heavy_rain` (3 h and 12 h sums of 10-minute bins against
KMA's 호우주의보 / 호우경보 lines). Accepted trusted readings are judged, late ones too: they
land in the bins they belong to. A change reports the deciding window's sum and line: a rise
on its new level's lines, a fall on the lines of the lowest level no longer met (a 경계 →
cleared fell below 주의's lines).
"""

from __future__ import annotations

import numpy as np

from detectors import heavy_rain
from detectors.channels import KR, NO_ROWS
from detectors.steps.base import Host, StepRows
from gyeongbo.events import Detection
from gyeongbo.vocab import Hazard

__all__ = ["STEP", "RainfallStep"]


class RainfallStep:
    """:class:`~detectors.steps.base.KindStep` of rain gauges."""

    kind = KR

    def run(self, ds: Host, rows: StepRows, out: list[Detection]) -> None:
        is_r = rows.kind == KR
        sel = np.flatnonzero(is_r & rows.accept & rows.trusted[:, 0]) if is_r.any() else NO_ROWS
        if not len(sel):
            return
        s = rows.slot[sel]
        rn = ds._gather("rain", s)
        old = rn["level"].astype(np.int64)
        lvl, r3, r12 = heavy_rain.update(rn, rows.ts[sel], rows.vals[sel, 0])
        ds._scatter("rain", s, rn)
        new = lvl.astype(np.int64)
        changed = new != old
        if changed.any():  # the value and line of the window that decides the change
            val, thr, win = heavy_rain.deciding(r3, r12, np.where(new > old, new, new + 1))
            ds._changes(
                out,
                sel,
                old,
                new,
                rows.slot,
                rows.idx,
                rows.ts[sel],
                Hazard.HEAVY_RAIN,
                "rain.kma_heavy_rain",
                val,
                thr,
                lambda j: {
                    "rain_3h_mm": round(float(r3[j]), 2),
                    "rain_12h_mm": round(float(r12[j]), 2),
                    "window_h": int(win[j]),
                },
            )


STEP = RainfallStep()
