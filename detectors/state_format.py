"""The detector state's export format: one record per station slot, its versions and migrations.

A station's state is exported as a blob: a header ``<4sHHI`` (magic ``GBDS``, format version,
number of records: 1 real [+ 1 exercise], record size) and then the records, each one
:data:`STATE_DTYPE` (little-endian, as in memory). ``STATE_DTYPE.itemsize`` is the bytes of
state per station.

Versions: 7 is current: the structural byte holds each channel's 2-of-3 vote (confirmed
stage and the last two readings' stages, :mod:`detectors.structural`); 6: anomaly times in
seconds, settling, stuck runs. Blobs of versions 6, 5 and 4 are migrated on import
(:func:`from_v6`, :func:`from_v5`, :func:`from_v4`); any other version or record size is
refused.

In memory (:mod:`detectors.engine`) the state is held as a struct of arrays, one per field of
:data:`FIELDS` (:func:`alloc`): plain fields are numpy columns, each component's records are
one array of opaque ``V<itemsize>`` bytes, flat over channels.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import anomaly, flood_forecast, health, heavy_rain, hourly, seismic, structural

__all__ = ["FIELDS", "HEADER", "MAGIC", "NO_TS", "STATE_DTYPE", "VERSION", "alloc", "decode"]

STATE_DTYPE = np.dtype(
    [
        ("last_ts", np.int64),
        ("last_seq", np.int64),
        ("n", np.uint32),
        ("late", np.uint32),
        ("dead", np.uint8),
        ("flood", np.uint8),
        ("pm10", np.uint8),
        ("pm25", np.uint8),
        ("o3", np.uint8),
        ("struct", np.uint8, (3,)),
        ("anom_lv", np.uint8, (3,)),
        ("_pad", np.uint8, (5,)),
        ("health", health.HEALTH_DTYPE, (3,)),
        ("anom", anomaly.ANOMALY_DTYPE, (3,)),
        ("anom_tod", np.float32, (3, anomaly.TOD_BINS)),  # time-of-day profile per channel
        ("fc", flood_forecast.FORECAST_DTYPE),
        ("rain", heavy_rain.RAIN_DTYPE),
        ("hourly", hourly.HOURLY_DTYPE, (3,)),
        ("seis", seismic.SEISMIC_DTYPE),
    ]
)
MAGIC = b"GBDS"
#: 7: the structural byte holds each channel's 2-of-3 vote (confirmed stage and the last two
#: readings' stages, detectors.structural); 6: anomaly times in seconds, settling, stuck
#: runs. 6, 5 and 4 are migrated.
VERSION = 7
HEADER = struct.Struct("<4sHHI")  # magic, version, records (1 real [+1 exercise]), itemsize
#: ``last_ts`` of a slot that has seen no reading.
NO_TS = np.iinfo(np.int64).min // 2


#: Version 5 of the anomaly record (the time-of-day bin held; per-reading weights).
ANOM_V5 = np.dtype(
    [
        ("n", np.uint32),
        ("refr", np.uint16),
        ("level", np.uint8),
        ("_pad", np.uint8),
        *(
            (name, np.float32)
            for name in ("x_last", "mu", "s", "f", "d", "gp", "gn", "s0", "sf", "lm", "lv")
        ),
        *((name, np.float32) for name in ("sm", "lo", "hi")),
        ("t_last", np.uint32),
        ("seen", np.uint32),
        ("emax", np.float32),
        ("gmax", np.float32),
        ("pbin", np.float32),
    ]
)
#: Version 4: the anomaly record without its trailing ``pbin`` (the held bin).
ANOM_V4 = np.dtype(ANOM_V5.descr[:-1])


def _state_with(anom: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(
        [(n, (anom, (3,)) if n == "anom" else STATE_DTYPE[n]) for n in STATE_DTYPE.names or ()]
    )


STATE_V5 = _state_with(ANOM_V5)
STATE_V4 = _state_with(ANOM_V4)


def from_v4(old: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Version 4 records as version 5: every field copied, and each anomaly record holds the
    bin of its last reading's hour (tod's copy of it is then current, as version 5 allows)."""
    new = np.zeros(len(old), STATE_V5)
    for name in STATE_V4.names or ():
        if name != "anom":
            new[name] = old[name]
    an = new["anom"]
    for f in ANOM_V4.names or ():
        an[f] = old["anom"][f]
    anomaly.hold_bins(an, new["anom_tod"])
    return new


def from_v5(old: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Version 5 records as version 6: every field kept (the slow location and scale widened
    to float64, the refractory left read in units of ``dt_ref`` and cut to one refractory);
    a standing alarm seeds its settling mean at the next reading; the run record of
    identical readings starts unknown (the first run that ends sets it, never an alarm), so
    a channel that repeats its value now and then raises no alarm after the upgrade."""
    new = np.zeros(len(old), STATE_DTYPE)
    for name in STATE_V5.names or ():
        if name != "anom":
            new[name] = old[name]
    an, was = new["anom"], old["anom"]
    for f in ANOM_V5.names or ():
        if not f.startswith("_"):
            an[f] = was[f]
    p = anomaly.DEFAULT
    an["refr"] = np.minimum(an["refr"], np.float32(p.refractory / p.dt_ref))
    an["flags"] = np.where(an["level"] > 0, anomaly.RESEED, 0)
    an["m"] = an["mu"]
    an["rmax"] = -1.0
    return new


def from_v6(old: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Version 6 records as version 7 (the same layout): the structural byte held the
    channel's stage alone; it becomes that stage confirmed with the last two readings at it
    (:func:`detectors.structural.from_level`), so after the upgrade a stage moves, as
    before it, only on the second of 3 readings at another stage. Nothing else changes."""
    new = old.copy()
    new["struct"] = structural.from_level(old["struct"])
    return new


def encode(recs: npt.NDArray[np.void]) -> bytes:
    """A station's blob: the header and its :data:`STATE_DTYPE` records (real [+ exercise])."""
    return HEADER.pack(MAGIC, VERSION, len(recs), STATE_DTYPE.itemsize) + recs.tobytes()


def decode(sid: str, blob: bytes) -> npt.NDArray[np.void]:
    """The records of a blob from :func:`encode`, as current :data:`STATE_DTYPE` records (a
    writable copy); versions 4, 5 and 6 are migrated. ValueError on another format version or
    record size (``sid`` names the station in the message)."""
    magic, version, nrec, size = HEADER.unpack_from(blob)
    if magic == MAGIC and version == 4 and size == STATE_V4.itemsize:
        return from_v6(from_v5(from_v4(np.frombuffer(blob, STATE_V4, nrec, HEADER.size))))
    if magic == MAGIC and version == 5 and size == STATE_V5.itemsize:
        return from_v6(from_v5(np.frombuffer(blob, STATE_V5, count=nrec, offset=HEADER.size)))
    if magic == MAGIC and version == 6 and size == STATE_DTYPE.itemsize:
        return from_v6(np.frombuffer(blob, STATE_DTYPE, count=nrec, offset=HEADER.size))
    if magic != MAGIC or version != VERSION or size != STATE_DTYPE.itemsize:
        raise ValueError(f"state for {sid!r}: incompatible blob {magic!r} v{version}")
    return np.frombuffer(blob, STATE_DTYPE, nrec, HEADER.size).copy()


#: The fields kept in memory: not the padding, nor ``anom_lv``, the export format's copy of each
#: channel's anomaly alarm, which is the anomaly record's ``level`` (written from it on export,
#: and into it on import).
FIELDS = tuple(f for f in STATE_DTYPE.names or () if not f.startswith("_") and f != "anom_lv")


def alloc(n: int) -> dict[str, npt.NDArray[Any]]:
    """Zeroed state for ``n`` slots: one array per :data:`STATE_DTYPE` field (struct of arrays)."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name in FIELDS:
        dt = STATE_DTYPE[name]
        if dt.base.names is None:  # a plain column (n,) or (n, 3)
            out[name] = np.zeros((n, *dt.shape), dt.base)
        else:  # records of a component, opaque bytes, flat over channels
            # (records, not a column per field: a batch gathers and scatters its stations at
            # random, and a record's fields share one or two cache lines; the anomaly state
            # as columns was bit-identical but ~25 % slower overall, its scatter ~20x)
            out[name] = np.zeros(
                n * max(1, int(np.prod(dt.shape))), np.dtype((np.void, dt.base.itemsize))
            )
    out["last_ts"][:] = NO_TS
    return out
