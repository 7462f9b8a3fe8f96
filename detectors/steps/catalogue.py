"""Earthquake catalogue events relayed by seismic stations (``earthquake.catalogue``).

A seismic reading may carry an earthquake catalogue entry (the ``event``
columns of the batch, :data:`~gyeongbo.batch.EVENT_COLUMN_NAMES`). Each *new* event gives one
``earthquake.catalogue`` detection at the relaying station and the reading's event time:
``value`` = magnitude, ``threshold`` = the lower magnitude line of its KMA band (6.0, 5.0, 3.5,
2.0; none below M 2), ``level`` = :func:`detectors.seismic.magnitude_level` (what the magnitude
alone decides; targeting and the 3.5 ≤ M < 5 긴급 upgrade need the expected intensity per
district, which the geo join adds downstream), ``details`` = ``magnitude``, ``lat``, ``lon``,
``depth_km``, ``nationwide``.

An event is the same as one seen before when (exercise flag, magnitude to 0.1, epicentre to
0.01°) match within ``catalogue_dedupe_ms`` (10 min) of event time of the first sighting —
the contract carries no origin time, so the relaying reading's time stands in; a batch's
events are taken in event-time order. So a gateway retry or several stations relaying one
event give one detection; a revised magnitude or epicentre is a new one. The memory is
bounded (``catalogue_dedupe_max`` keys, oldest dropped) and is *not* part of the exported
state: after a restart, or when two relaying stations live on different workers, a repeat is
emitted again and the alert machine absorbs it (the same level at a zone makes no new
transition). The window saves work; the stage machine is what guarantees one alert.

A catalogue event is an outside report, not the station's measurement: the station's channel
faults do not hold it back here (the alert machine still holds out every detection of a
station under a sensor-health alert), but like every rule it skips readings that are too
late or duplicates.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from detectors import seismic
from detectors.steps.base import Host
from gyeongbo.events import Detection
from gyeongbo.vocab import Hazard

__all__ = ["Quakes", "run"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
#: The accepted rows of a batch's steps that carry an event: (slot, station index, time,
#: event columns (magnitude, lat, lon, depth)).
Quakes = list[tuple[I64, I64, I64, F64]]
#: Lower magnitude line of each catalogue level (docs/design.md §3.4), for ``threshold``.
LINE = (np.nan, 2.0, 3.5, 5.0, 6.0)


def run(ds: Host, out: list[Detection], quakes: Quakes) -> None:
    """One ``earthquake.catalogue`` detection per new event of ``quakes``, in event-time
    order."""
    p = ds.params
    seen = ds._quakes
    slot = np.concatenate([q[0] for q in quakes])
    idx = np.concatenate([q[1] for q in quakes])
    ts = np.concatenate([q[2] for q in quakes])
    evm = np.concatenate([q[3] for q in quakes])
    rows = np.argsort(ts, kind="stable")
    mag = evm[rows, 0]
    level = seismic.magnitude_level(mag)
    wide = seismic.nationwide(mag)
    for j, r in enumerate(rows.tolist()):
        m, lat, lon, depth = (float(x) for x in evm[r])
        s, t = int(slot[r]), int(ts[r])
        key = (s >= ds.n, round(m * 10), round(lat * 100), round(lon * 100))
        first = seen.get(key)
        if first is not None and abs(t - first) <= p.catalogue_dedupe_ms:
            ds.stats["catalogue_repeats"] += 1
            continue
        seen.pop(key, None)
        seen[key] = t
        if len(seen) > p.catalogue_dedupe_max:  # bounded: forget the oldest sightings
            for old in list(seen)[: len(seen) - p.catalogue_dedupe_max]:
                del seen[old]
        ds.stats["catalogue_events"] += 1
        lv = int(level[j])
        out.append(
            ds._det(
                s,
                int(idx[r]),
                t,
                Hazard.EARTHQUAKE,
                "earthquake.catalogue",
                lv,
                m,
                LINE[lv],
                details={
                    "magnitude": m,
                    "lat": lat,
                    "lon": lon,
                    "depth_km": depth,
                    "nationwide": bool(wide[j]),
                },
            )
        )
