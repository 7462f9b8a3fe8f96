"""Structural monitors: 60 / 80 / 100 % of the allowable per channel, each stage confirmed by 2
of the channel's last 3 readings (``structural.<channel>``).

Maths and source: :mod:`detectors.structural` (관리기준 1차/2차/3차; a temporal 2-of-3 vote).
The three channels of a station go at once: in-order readings are judged and an untrusted
reading does not vote. Detections follow channel by channel; a change reports the channel's
value and the line of the higher of its old and new stage.
"""

from __future__ import annotations

import numpy as np

from detectors import structural
from detectors.channels import CHANNELS, KS, NO_ROWS
from detectors.steps.base import Host, StepRows
from gyeongbo.events import Detection
from gyeongbo.vocab import Hazard, Kind

__all__ = ["STEP", "StructuralStep"]

#: Fraction of the allowable at each stage (0 and 1 never judged), for ``threshold``.
_FRAC = np.array((0.0, 0.0, *structural.FRACTIONS))
#: A station's three channel bytes as one opaque item (moved with one take / put).
_VOID3 = np.dtype((np.void, 3))


class StructuralStep:
    """:class:`~detectors.steps.base.KindStep` of structural monitors."""

    kind = KS

    def run(self, ds: Host, rows: StepRows, out: list[Detection]) -> None:
        is_s = rows.kind == KS
        sel = np.flatnonzero(is_s & rows.inorder) if is_s.any() else NO_ROWS
        if not len(sel):
            return
        s = rows.slot[sel]
        tr = rows.trusted.take(sel, axis=0)
        allow = ds.allowable.take(rows.idx[sel], axis=0)
        struct_v = ds._a["struct"].view(_VOID3).reshape(-1)  # a station's 3 channels
        st_old = struct_v.take(s).view(np.uint8).reshape(-1, 3)
        v = rows.vals.take(sel, axis=0)
        st_new = structural.update(st_old, v, allow, tr)
        np.put(struct_v, s, st_new.view(_VOID3).reshape(-1))
        old = structural.level(st_old).astype(np.int64)
        new = structural.level(st_new).astype(np.int64)
        changed = new != old
        if not changed.any():
            return
        thr = _FRAC[np.maximum(new, old)] * allow
        for c, name in enumerate(CHANNELS[Kind.STRUCTURAL]):
            jc = np.flatnonzero(changed[:, c])
            if len(jc) == 0:
                continue
            ds._changes(
                out,
                sel[jc],
                old[jc, c],
                new[jc, c],
                rows.slot,
                rows.idx,
                rows.ts[sel[jc]],
                Hazard.STRUCTURAL,
                f"structural.{name}",
                v[jc, c],
                thr[jc, c],
            )


STEP = StructuralStep()
