"""Sensor health of every channel of a step (``health.<channel>``): which readings are trusted.

Maths and source: :mod:`detectors.health` (out of range, impossible spike / step, stuck,
flat-line, recovery; per-channel limits :data:`detectors.health.LIMITS`). All channels of all
in-order rows go through one :func:`detectors.health.update` (flat (slot, channel) keys); a
channel whose fault bits change gives a detection, ``public: false``, level 관심 for a lone
spike, 경계 for a persistent fault, cleared when the bits clear. The channels in physical range
then go on to the anomaly score (:mod:`detectors.steps.anomaly`). A late reading (accepted but
older than the slot's newest) does not move the health record: it is trusted when its channel
is currently healthy and the value within range.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors import health
from detectors.steps import anomaly as anomaly_step
from detectors.steps.anomaly import ChannelEvents
from detectors.steps.base import Host
from gyeongbo.events import Detection
from gyeongbo.vocab import Hazard, Level

__all__ = ["late_trusted", "run"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


def run(
    ds: Host,
    out: list[Detection],
    slot: I64,
    idx: I64,
    ts: I64,
    vals: F64,
    kind: npt.NDArray[np.uint8],
    rc: npt.NDArray[np.intp],
    trusted: Bools,
) -> None:
    """Health, then anomaly, on the (row, channel) pairs ``rc`` (flat row-major indices into
    ``vals``, in order); sets ``trusted`` there and appends the detections channel by channel
    (health before anomaly within a channel), as if each channel were its own pass."""
    p = ds.params
    r, c = np.divmod(rc, 3)
    key = slot[r] * 3 + c
    hs = ds._gather("health", key)
    before = hs["faults"].copy()
    kr = kind[r]
    # (kind, channel) → row of the limits table; take with an intp index is ~2.5x
    # faster than indexing with the uint8 codes
    kc = kr.astype(np.intp)
    kc *= 3
    kc += c
    lim = ds._lim_cols
    x = vals.reshape(-1)[rc]
    trusted.reshape(-1)[rc] = health.update(
        hs,
        ts[r],
        x,
        lim[0].take(kc),
        lim[1].take(kc),
        lim[2].take(kc),
        lim[3].take(kc),
        lim[4].take(kc),
        lim[5].take(kc),
        ds.interval_s.take(idx[r]),
        stuck_n=p.stuck_n,
        step_n=p.step_n,
        recover_n=p.recover_n,
    )
    ds._scatter("health", key, hs)
    faults = hs["faults"]
    events = _fault_changes(ds, faults != before, faults, r, c, kr, x, slot, idx, ts)
    in_range = (faults & health.RANGE) == 0
    if bool(in_range.all()):
        anomaly_step.run(ds, events, key, r, c, x, kr, slot, idx, ts)
    elif in_range.any():
        sel = np.flatnonzero(in_range)
        anomaly_step.run(ds, events, key[sel], r[sel], c[sel], x[sel], kr[sel], slot, idx, ts)
    if events:
        events.sort(key=lambda e: e[0])
        out.extend(d for _, d in events)


def _fault_changes(
    ds: Host,
    changed: Bools,
    faults: npt.NDArray[np.uint8],
    r: npt.NDArray[np.intp],
    c: npt.NDArray[np.intp],
    kr: npt.NDArray[np.uint8],
    x: F64,
    slot: I64,
    idx: I64,
    ts: I64,
) -> ChannelEvents:
    """A ``health.<channel>`` detection per ``changed`` (row ``r``, channel ``c``) pair: 관심 for
    a lone spike, 경계 for a persistent fault, cleared once no bit is left."""
    events: ChannelEvents = []
    for j in np.flatnonzero(changed).tolist():
        rj, cj = int(r[j]), int(c[j])
        name = ds._chan_name[int(kr[j])][cj]
        bits = int(faults[j])
        lvl = (
            Level.CLEARED
            if bits == 0
            else (Level.ATTENTION if bits == health.SPIKE else Level.ALERT)
        )
        det = ds._det(
            int(slot[rj]),
            int(idx[rj]),
            int(ts[rj]),
            Hazard.SENSOR_HEALTH,
            f"health.{name}",
            lvl,
            float(x[j]),
            None,
            public=False,
            details={"faults": health.fault_names(bits), "channel": name},
        )
        events.append(((cj, 0, rj), det))
    return events


def late_trusted(
    ds: Host,
    slot: I64,
    vals: F64,
    has: Bools,
    kind: npt.NDArray[np.uint8],
    late: Bools,
    trusted: Bools,
) -> None:
    """Set ``trusted`` for the channels present (``has``) in the ``late`` rows: the channel
    is healthy now and the value within its range."""
    rl, cl = np.nonzero(has & late[:, None])
    if len(rl):
        lim_l = ds._lim[kind[rl], cl]
        v = vals[rl, cl]
        fl = ds._gather("health", slot[rl] * 3 + cl)["faults"]
        trusted[rl, cl] = (fl == 0) & (v >= lim_l[:, 0]) & (v <= lim_l[:, 1])
