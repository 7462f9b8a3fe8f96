"""The anomaly alarm of every channel of a step (``anomaly.<channel>``), for operators.

Maths and sources: :mod:`detectors.anomaly` (robust EWMA location and scale, CUSUM, a
time-of-day profile, Numenta's anomaly likelihood; docs/design.md §6). Every channel in
physical range of the step's in-order rows goes through one :func:`detectors.anomaly.update`;
the alarm is the anomaly record's ``level``: raised at a score ≥ ``anomaly.fire``, cleared once
the channel has settled. A change gives a detection of the channel's hazard, ``public:
false``, with the score and the baseline ``μ``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors import anomaly
from detectors.channels import HAZARD_OF
from detectors.steps.base import Host
from gyeongbo.events import Detection

__all__ = ["ChannelEvents", "run"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Rows = npt.NDArray[np.intp]
#: Detections of the per-channel steps keyed (channel, 0 health / 1 anomaly, row): sorted,
#: they come out channel by channel.
ChannelEvents = list[tuple[tuple[int, int, int], Detection]]


def run(
    ds: Host,
    events: ChannelEvents,
    key: I64,
    r: Rows,
    c: Rows,
    x: F64,
    kr: npt.NDArray[np.uint8],
    slot: I64,
    idx: I64,
    ts: I64,
) -> None:
    """Score the values ``x`` of the (row ``r``, channel ``c``) pairs (state ``key`` = slot × 3
    + channel, kind codes ``kr``) and add a detection per changed alarm to ``events``."""
    p = ds.params
    an = ds._gather("anom", key)
    # the alarm is the record's ``level`` (raised at ``fire``, cleared once settled)
    lv = an["level"].copy()
    _, raw = anomaly.update(
        an,
        x,
        p.anomaly,
        ts=ts[r] * 1e-3,
        tod=ds._a["anom_tod"].reshape(-1, anomaly.TOD_BINS),
        tod_rows=key,
        score_from=p.anomaly_raise,
    )
    ds._scatter("anom", key, an)
    new = an["level"]
    for j in np.flatnonzero(new != lv).tolist():
        rj, cj = int(r[j]), int(c[j])
        name = ds._chan_name[int(kr[j])][cj]
        det = ds._det(
            int(slot[rj]),
            int(idx[rj]),
            int(ts[rj]),
            HAZARD_OF[name],
            f"anomaly.{name}",
            int(new[j]),
            float(x[j]),
            None,
            public=False,
            details={"score": round(float(raw[j]), 4), "baseline": float(an["mu"][j])},
        )
        events.append(((cj, 1, rj), det))
