"""Accelerometers: PGA → instrumental intensity → the held station level
(``earthquake.pga_intensity``).

Maths and source: :mod:`detectors.seismic` (Wald, Quitoriano, Heaton & Kanamori 1999; the
level held for ``seismic_hold_ms`` after the last reading that reached it). Only in-order,
trusted readings are judged; a change reports the PGA and the intensity. Catalogue events
relayed by the same stations are :mod:`detectors.steps.catalogue`.
"""

from __future__ import annotations

import numpy as np

from detectors import seismic
from detectors.channels import KQ, NO_ROWS
from detectors.steps.base import Host, StepRows
from gyeongbo.events import Detection
from gyeongbo.vocab import Hazard

__all__ = ["STEP", "SeismicStep"]


class SeismicStep:
    """:class:`~detectors.steps.base.KindStep` of accelerometers."""

    kind = KQ

    def run(self, ds: Host, rows: StepRows, out: list[Detection]) -> None:
        is_q = rows.kind == KQ
        sel = np.flatnonzero(is_q & rows.inorder & rows.trusted[:, 0]) if is_q.any() else NO_ROWS
        if not len(sel):
            return
        s = rows.slot[sel]
        sq = ds._gather("seis", s)
        old = sq["level"].astype(np.int64)
        lvl, inten = seismic.update(sq, rows.ts[sel], rows.vals[sel, 0], ds.params.seismic_hold_ms)
        ds._scatter("seis", s, sq)
        ds._changes(
            out,
            sel,
            old,
            lvl.astype(np.int64),
            rows.slot,
            rows.idx,
            rows.ts[sel],
            Hazard.EARTHQUAKE,
            "earthquake.pga_intensity",
            rows.vals[sel, 0],
            np.full(len(sel), np.nan),
            lambda j: {"intensity": round(float(inten[j]), 2)},
        )


STEP = SeismicStep()
