"""River gauges: the observed stage (``flood.gauge_stage``) and the forecast crossing
(``flood.forecast``).

Maths and sources: :mod:`detectors.flood_stage` (the count of the gauge's official stage lines
at or below the level; the Han River Flood Control Office's levels) and
:mod:`detectors.flood_forecast` (a Theil–Sen rate-of-rise projection over the last hour).
Only in-order, trusted readings of gauges that have stage levels are judged. A stage change
reports the line crossed (the higher stage's line); a forecast change its projected crossing
and confidence.
"""

from __future__ import annotations

import numpy as np

from detectors import flood_forecast, flood_stage
from detectors.channels import KW, NO_ROWS
from detectors.steps.base import Host, StepRows
from gyeongbo.events import Detection
from gyeongbo.vocab import Hazard

__all__ = ["STEP", "WaterLevelStep"]


class WaterLevelStep:
    """:class:`~detectors.steps.base.KindStep` of water-level gauges."""

    kind = KW

    def run(self, ds: Host, rows: StepRows, out: list[Detection]) -> None:
        kind, idx = rows.kind, rows.idx
        is_w = kind == KW
        sel = np.flatnonzero(is_w & rows.inorder & rows.trusted[:, 0]) if is_w.any() else NO_ROWS
        if len(sel):
            sel = sel[ds._has_levels[idx[sel]]]
        if not len(sel):
            return
        lv = ds.levels.take(idx[sel], axis=0)
        h = rows.vals[sel, 0]
        self._stage(ds, rows, sel, lv, h, out)
        self._forecast(ds, rows, sel, lv, h, out)

    @staticmethod
    def _stage(
        ds: Host,
        rows: StepRows,
        sel: np.ndarray,
        lv: np.ndarray,
        h: np.ndarray,
        out: list[Detection],
    ) -> None:
        """``flood.gauge_stage``: the stage against the gauge's lines."""
        a = ds._a
        s = rows.slot[sel]
        old = a["flood"][s].astype(np.int64)
        new = flood_stage.stage(h, lv).astype(np.int64)
        a["flood"][s] = new
        changed = np.flatnonzero(new != old)
        if len(changed):
            line = np.take_along_axis(lv, np.clip(np.maximum(new, old) - 1, 0, 3)[:, None], axis=1)[
                :, 0
            ]
            ds._changes(
                out,
                sel,
                old,
                new,
                rows.slot,
                rows.idx,
                rows.ts[sel],
                Hazard.FLOOD,
                "flood.gauge_stage",
                h,
                line,
            )

    @staticmethod
    def _forecast(
        ds: Host,
        rows: StepRows,
        sel: np.ndarray,
        lv: np.ndarray,
        h: np.ndarray,
        out: list[Detection],
    ) -> None:
        """``flood.forecast``: the projected stage one lead time ahead."""
        p = ds.params
        s = rows.slot[sel]
        fc = ds._gather("fc", s)
        fo = flood_forecast.update(fc, rows.ts[sel], h, lv, p.forecast)
        ds._scatter("fc", s, fc)
        for j in np.flatnonzero(fo.changed).tolist():
            r = int(sel[j])
            cross = int(fo.crossing_ms[j])
            out.append(
                ds._det(
                    int(rows.slot[r]),
                    int(rows.idx[r]),
                    int(rows.ts[r]),
                    Hazard.FLOOD,
                    "flood.forecast",
                    int(fo.level[j]),
                    float(h[j]),
                    float(fo.threshold[j]),
                    crossing=cross if cross >= 0 else None,
                    confidence=float(fo.confidence[j]),
                    details={
                        "fitted_m": round(float(fo.fitted[j]), 3),
                        "slope_m_per_h": round(float(fo.slope_per_h[j]), 4),
                        "projected_m": round(float(fo.projected[j]), 3),
                        "lead_ms": p.forecast.lead_ms,
                    },
                )
            )


STEP = WaterLevelStep()
