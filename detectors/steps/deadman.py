"""Silent stations (``health.deadman``): no reading for more than ``k × interval``.

A station that has reported is *dead* when its newest event time is more than
``deadman_k × interval_s`` (default 3 intervals, the station's registered reporting
interval) behind the clock it is judged at (:meth:`~detectors.engine.DetectorSet.check_deadman`:
the wall clock for real stations, the drill's own clock for exercise ones). It gives one
detection, ``public: false``, level 경계 with the silence and the limit in seconds; its next
accepted reading gives one ``cleared``. A dead station stays dead (no repeat) until then.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors.steps.base import Host
from gyeongbo.events import Detection
from gyeongbo.vocab import Hazard, Level

__all__ = ["overdue", "recovered"]

I64 = npt.NDArray[np.int64]


def overdue(
    ds: Host,
    now: I64,
    known: npt.NDArray[np.bool_],
    judge: npt.NDArray[np.bool_] | None,
) -> list[Detection]:
    """Mark and report the slots silent too long at their clocks ``now`` (per slot; only
    where ``known``, and, with ``judge`` (per station), only the stations judged)."""
    a = ds._a
    nslots = len(a["n"])
    station = ds._slot_station[:nslots]
    limit = ds.params.deadman_k * ds.interval_s[station] * 1000.0
    last_ts = a["last_ts"]
    late = known & (a["n"] > 0) & (a["dead"] == 0) & (now - last_ts > limit)
    if judge is not None:
        late &= judge[station]
    rows = np.flatnonzero(late)
    a["dead"][rows] = 1
    out: list[Detection] = []
    for s in rows.tolist():
        out.append(
            ds._det(
                s,
                int(station[s]),
                int(now[s]),
                Hazard.SENSOR_HEALTH,
                "health.deadman",
                Level.ALERT,
                float((now[s] - last_ts[s]) / 1000.0),
                float(limit[s] / 1000.0),
                public=False,
                details={"last_ts_ms": int(last_ts[s])},
            )
        )
    return out


def recovered(
    ds: Host,
    out: list[Detection],
    slot: I64,
    idx: I64,
    ts: I64,
    accept: npt.NDArray[np.bool_],
) -> None:
    """Clear the dead slots among the accepted rows of a step, one detection each."""
    a = ds._a
    back = np.flatnonzero(accept & (a["dead"][slot] > 0))
    if not len(back):
        return
    a["dead"][slot[back]] = 0
    for rb in back.tolist():
        out.append(
            ds._det(
                int(slot[rb]),
                int(idx[rb]),
                int(ts[rb]),
                Hazard.SENSOR_HEALTH,
                "health.deadman",
                Level.CLEARED,
                0.0,
                None,
                public=False,
            )
        )
