"""The detector set a worker runs: every rule and detector, over columnar micro-batches.

:class:`DetectorSet` keeps the state of each station in *struct-of-arrays* form: one array per
field of :data:`STATE_DTYPE` (``last_ts``, ``health`` (n×3 records), ``anom``, ``fc``, ``rain``,
…), indexed by the registry's dense station index (sorted ids; batch ids of ≤ 8 Latin-1
characters, the usual case, are packed into 64-bit keys looked up in one probe; longer ones
are mapped through a 64-bit hash of their code points, confirmed by comparing the ids).
:data:`STATE_DTYPE` is the per-station record of the export format and its ``itemsize`` the
bytes of state per station.

``process(batch)`` maps ids, groups the batch by station slot once (a stable sort, or
``np.lexsort`` on (slot, event time) when a station's readings arrive out of order) and ranks
readings within their station; it then runs one vectorized *step* per rank (the first reading
of every station in the batch, then the second, …), so a batch with one reading per station
is a single step and per-station order is exact. A step gathers only the fields each rule
uses, for only the rows of the kinds it applies to: ``health`` and ``anomaly`` run once over
all (station, channel) pairs of the step, then ``flood_stage``, ``flood_forecast``,
``heavy_rain``, ``hourly`` → ``pm`` / ``ozone``, ``structural``, ``seismic``; the changed
fields are scattered back. Python loops only over ranks and over the detections emitted.

Emitted (one :class:`~gyeongbo.events.Detection` per *change* of a rule's level per station):

=============================  ====================  ======  ==================================
rule                           hazard                public  when
=============================  ====================  ======  ==================================
``flood.gauge_stage``          flood                 yes     observed stage changes
``flood.forecast``             flood                 yes     forecast stage changes (raise with
                                                             ``projected_crossing_ms``,
                                                             ``confidence``; lower when
                                                             forecast to fall back)
``rain.kma_heavy_rain``        heavy_rain            yes     3 h / 12 h criteria level changes
                                                             (value, threshold: the deciding
                                                             window's sum and KMA line)
``air.pm10`` / ``air.pm25``    pm10 / pm25           yes     at an hour's close, level changes
``air.o3``                     ozone                 yes     at an hour's close, level changes
``structural.<channel>``       structural            yes     60/80/100 % stage changes,
                                                             each confirmed by 2 of the
                                                             channel's last 3 readings
``earthquake.pga_intensity``   earthquake            yes     held intensity level changes
``earthquake.catalogue``       earthquake            yes     every new catalogue event (below)
``anomaly.<channel>``          kind's hazard         no      anomaly raised (attention)/cleared
``health.<channel>``           sensor_health         no      fault bits change (details.faults)
``health.deadman``             sensor_health         no      silent > k × interval / back
=============================  ====================  ======  ==================================

Catalogue events: a seismic reading may carry an earthquake catalogue entry (the ``event``
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

Faults: readings of a faulty channel are held out of public rules (the station's public
levels stay where they were) until the channel recovers.

Exercise (drill) readings live in a separate state record per station (allocated on first
use), so a drill never moves a real level and vice versa; their detections carry
``exercise=True``.

Out of order: readings older than the station's newest event time minus ``lateness_ms`` are
counted (``stats["late"]``) and dropped; later-but-within-bound readings are added to the
hourly and rainfall bins they belong to, and skipped by the instantaneous rules (which
describe "now"). A reading with the same time and ``seq`` as the last one is a duplicate.

Layout and cost (``benchmarks/detectors.py``). Plain fields (``last_ts``, ``n``, levels …) are
numpy columns; each component's records (``health``, ``anom``, ``fc``, ``rain``, ``hourly``,
``seis``) are one array of opaque ``V<itemsize>`` bytes, flat over channels (row =
slot × 3 + channel), moved with ``take``/``put`` and viewed as the component's dtype for its
module: numpy's structured-dtype fancy indexing is ~20× slower than moving the same bytes as
voids, and per-field columns need one gather and one scatter per field. The state export
format is unchanged by the layout: one :data:`STATE_DTYPE` record per slot (1,324 bytes), whose
``anom_lv`` (each channel's anomaly alarm) is kept in memory only as the anomaly records'
``level``: the record decides its alarm itself (raised at ``fire``, cleared once the channel
has settled).

>>> from gyeongbo.batch import ReadingBatch
>>> from gyeongbo.registry import REPO_ROOT, load_registry
>>> ds = DetectorSet(load_registry(REPO_ROOT / "config" / "stations.yaml"))
>>> rows = [{"station": "1018683", "kind": "water_level", "ts_ms": 1596678600000 + k * 600_000,
...          "values": {"level_m": 8.4 + 0.1 * k}} for k in range(3)]
>>> [(d.rule, d.level, d.value) for d in ds.process(ReadingBatch.from_rows(rows))]
[('flood.gauge_stage', 'attention', 8.4), ('flood.gauge_stage', 'caution', 8.5)]
>>> ds.state_bytes_per_station <= 2048
True
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import (
    anomaly,
    flood_forecast,
    flood_stage,
    health,
    heavy_rain,
    hourly,
    ozone,
    pm,
    seismic,
    structural,
)
from gyeongbo.batch import KIND_CODES, NO_SEQ, ReadingBatch
from gyeongbo.events import Detection, LevelName
from gyeongbo.registry import Registry
from gyeongbo.vocab import EVENT_COLUMNS, Hazard, Kind, Level

__all__ = ["CHANNELS", "STATE_DTYPE", "DetectorParams", "DetectorSet", "HourlyMeans"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Rows = npt.NDArray[np.intp]

#: Value channels per kind, in state order (≤ 3).
CHANNELS: dict[Kind, tuple[str, ...]] = {
    Kind.WATER_LEVEL: ("level_m",),
    Kind.RAINFALL: ("rain_mm",),
    Kind.AIR_QUALITY: ("pm10_ugm3", "pm25_ugm3", "o3_ppm"),
    Kind.STRUCTURAL: ("tilt_rad", "crack_mm", "vibration_cms"),
    Kind.SEISMIC: ("pga_g",),
}
HAZARD_OF: dict[str, Hazard] = {
    "level_m": Hazard.FLOOD,
    "rain_mm": Hazard.HEAVY_RAIN,
    "pm10_ugm3": Hazard.PM10,
    "pm25_ugm3": Hazard.PM25,
    "o3_ppm": Hazard.OZONE,
    "tilt_rad": Hazard.STRUCTURAL,
    "crack_mm": Hazard.STRUCTURAL,
    "vibration_cms": Hazard.STRUCTURAL,
    "pga_g": Hazard.EARTHQUAKE,
}
_KW = KIND_CODES[Kind.WATER_LEVEL]
_KR = KIND_CODES[Kind.RAINFALL]
_KA = KIND_CODES[Kind.AIR_QUALITY]
_KS = KIND_CODES[Kind.STRUCTURAL]
_KQ = KIND_CODES[Kind.SEISMIC]
_NO_TS = np.iinfo(np.int64).min // 2
_LEVEL_NAMES: tuple[LevelName, ...] = ("cleared", "attention", "caution", "alert", "serious")
_EVENT_COLS = tuple(EVENT_COLUMNS.values())  # magnitude, lat, lon, depth_km
#: Lower magnitude line of each catalogue level (docs/design.md §3.4), for ``threshold``.
_CATALOGUE_LINE = (np.nan, 2.0, 3.5, 5.0, 6.0)

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
_MAGIC = b"GBDS"
#: 7: the structural byte holds each channel's 2-of-3 vote (confirmed stage and the last two
#: readings' stages, detectors.structural); 6: anomaly times in seconds, settling, stuck
#: runs. 6, 5 and 4 are migrated.
_VERSION = 7
_HEADER = struct.Struct("<4sHHI")  # magic, version, records (1 real [+1 exercise]), itemsize


#: Version 5 of the anomaly record (the time-of-day bin held; per-reading weights).
_ANOM_V5 = np.dtype(
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
_ANOM_V4 = np.dtype(_ANOM_V5.descr[:-1])


def _state_with(anom: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(
        [(n, (anom, (3,)) if n == "anom" else STATE_DTYPE[n]) for n in STATE_DTYPE.names or ()]
    )


_STATE_V5 = _state_with(_ANOM_V5)
_STATE_V4 = _state_with(_ANOM_V4)


def _from_v4(old: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Version 4 records as version 5: every field copied, and each anomaly record holds the
    bin of its last reading's hour (tod's copy of it is then current, as version 5 allows)."""
    new = np.zeros(len(old), _STATE_V5)
    for name in _STATE_V4.names or ():
        if name != "anom":
            new[name] = old[name]
    an = new["anom"]
    for f in _ANOM_V4.names or ():
        an[f] = old["anom"][f]
    anomaly.hold_bins(an, new["anom_tod"])
    return new


def _from_v5(old: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Version 5 records as version 6: every field kept (the slow location and scale widened
    to float64, the refractory left read in units of ``dt_ref`` and cut to one refractory);
    a standing alarm seeds its settling mean at the next reading; the run record of
    identical readings starts unknown (the first run that ends sets it, never an alarm), so
    a channel that repeats its value now and then raises no alarm after the upgrade."""
    new = np.zeros(len(old), STATE_DTYPE)
    for name in _STATE_V5.names or ():
        if name != "anom":
            new[name] = old[name]
    an, was = new["anom"], old["anom"]
    for f in _ANOM_V5.names or ():
        if not f.startswith("_"):
            an[f] = was[f]
    p = anomaly.DEFAULT
    an["refr"] = np.minimum(an["refr"], np.float32(p.refractory / p.dt_ref))
    an["flags"] = np.where(an["level"] > 0, anomaly.RESEED, 0)
    an["m"] = an["mu"]
    an["rmax"] = -1.0
    return new


def _from_v6(old: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    """Version 6 records as version 7 (the same layout): the structural byte held the
    channel's stage alone; it becomes that stage confirmed with the last two readings at it
    (:func:`detectors.structural.from_level`), so after the upgrade a stage moves, as
    before it, only on the second of 3 readings at another stage. Nothing else changes."""
    new = old.copy()
    new["struct"] = structural.from_level(old["struct"])
    return new


@dataclass(frozen=True)
class DetectorParams:
    """Knobs of the detector set (defaults are the documented ones)."""

    lateness_ms: int = 600_000
    hour_grace_ms: int = 300_000
    hourly_capture: float = 0.75
    deadman_k: float = 3.0
    stuck_n: int = 6
    step_n: int = 3
    recover_n: int = 3
    seismic_hold_ms: int = 60_000
    #: A catalogue event repeated within this much event time is the same event.
    catalogue_dedupe_ms: int = 600_000
    catalogue_dedupe_max: int = 4096
    forecast: flood_forecast.ForecastParams = field(default_factory=flood_forecast.ForecastParams)
    anomaly: anomaly.AnomalyParams = field(default_factory=anomaly.AnomalyParams)

    @property
    def anomaly_raise(self) -> float:
        """The operators' anomaly alarm is raised at a score ≥ this: ``anomaly.fire``. The
        record keeps the alarm (its ``level``) and clears it once the channel has settled."""
        return self.anomaly.fire


@dataclass(frozen=True)
class HourlyMeans:
    """Closed clock-hour means (long format), the input of regional (권역) averages."""

    station: npt.NDArray[np.str_]
    exercise: npt.NDArray[np.bool_]
    hour_ms: I64  # start of the hour, epoch ms
    name: npt.NDArray[np.str_]  # pm10_ugm3, pm25_ugm3, o3_ppm
    mean: F64  # NaN: a missing hour (too little data)

    def __len__(self) -> int:
        return len(self.station)


#: A drill's clock: one time for every drill station, or one per station (registry order,
#: 0 = none), or None (drills are not judged on the clock).
ExerciseClock = int | npt.NDArray[np.int64] | None


class DetectorSet:
    """All rules and detectors for the stations of one registry (see module docstring)."""

    def __init__(self, registry: Registry, params: DetectorParams | None = None) -> None:
        self.params = params or DetectorParams()
        ids = registry.station_ids()
        self.ids: npt.NDArray[np.str_] = np.array(ids, dtype=np.str_)
        #: Names the positions of :attr:`ids`; batches whose registry positions carry the
        #: same digest are not looked up (:meth:`_positions`).
        self.ids_digest = registry.ids_digest()
        n = len(ids)
        self.n = n
        st = [registry.stations[i] for i in ids]
        self.kind = np.array([KIND_CODES[s.kind] for s in st], dtype=np.uint8)
        self.interval_s = np.array([s.interval_s for s in st], dtype=np.float64)
        self.levels = np.full((n, 4), np.nan)
        self.allowable = np.full((n, 3), np.nan)
        for i, s in enumerate(st):
            if s.levels is not None:
                lv = s.levels
                self.levels[i] = [
                    np.nan if lv.attention is None else lv.attention,
                    lv.caution,
                    lv.alert,
                    lv.serious,
                ]
            if s.allowable:
                for c, name in enumerate(CHANNELS[Kind.STRUCTURAL]):
                    self.allowable[i, c] = s.allowable.get(name, np.nan)
        self._has_levels = ~np.all(np.isnan(self.levels), axis=1)
        self.min_count = np.maximum(
            1, np.ceil(self.params.hourly_capture * 3600.0 / self.interval_s)
        ).astype(np.int64)
        # Channel tables per kind code: value-name index and health limits.
        kinds = list(Kind)
        self._chan_name = [[""] * 3 for _ in kinds]
        self._name_chan: dict[str, tuple[int, int]] = {}
        lim = np.full((len(kinds), 3, 6), np.nan)
        for k in kinds:
            for c, name in enumerate(CHANNELS[k]):
                self._chan_name[KIND_CODES[k]][c] = name
                self._name_chan[name] = (KIND_CODES[k], c)
                lm = health.LIMITS[name]
                lim[KIND_CODES[k], c] = [
                    lm.lo,
                    lm.hi,
                    lm.rate_per_h,
                    lm.active_per_h,
                    lm.flat_eps,
                    lm.flat_s,
                ]
        self._lim = lim
        self._lim_cols = [np.ascontiguousarray(lim[:, :, j].reshape(-1)) for j in range(6)]
        self._a: dict[str, npt.NDArray[Any]] = _alloc(n)
        self._ex_slot = np.full(n, -1, dtype=np.int64)  # exercise slot per station
        self._ex_free = 0  # spare exercise slots allocated ahead (geometric growth)
        self._slot_station = np.arange(n, dtype=np.int64)
        #: Short ids (the usual case): packed into integers, looked up in one probe.
        self._packed = _PackedTable.build(self.ids)
        self._id_hash = _hash_ids(self.ids) if self._packed is None else None
        if self._id_hash is not None and len(np.unique(self._id_hash)) < n:
            self._id_hash = None  # a collision among the registry's ids: use searchsorted
        self._table = _HashTable(self._id_hash) if self._id_hash is not None else None
        #: Hours closed by the last process / close_hours call (closed_hourly_means).
        self._closed: list[tuple[I64, I64, int, F64]] = []
        self._touched: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        #: Catalogue events seen: (exercise, 10 M, 100 lat, 100 lon) → first event time.
        self._quakes: dict[tuple[bool, int, int, int], int] = {}
        self.stats: dict[str, int] = {
            "readings": 0,
            "unknown_station": 0,
            "kind_mismatch": 0,
            "late": 0,
            "duplicate": 0,
            "catalogue_events": 0,
            "catalogue_repeats": 0,
        }

    # ------------------------------------------------------------------ public API
    @property
    def state_bytes_per_station(self) -> int:
        """Bytes of detector state per station (one record; a drilled station has two)."""
        return int(STATE_DTYPE.itemsize)

    def process(self, batch: ReadingBatch) -> list[Detection]:
        """Run every rule on a micro-batch; return the detections (level changes) in order."""
        out: list[Detection] = []
        self._closed = []
        nrows = len(batch)
        self.stats["readings"] += nrows
        if nrows == 0:
            self._touched = np.zeros(0, dtype=np.int64)
            return out
        idx, known = self._positions(batch)
        kind_ok = known & (self.kind[idx] == batch.kind)
        n_known = int(np.count_nonzero(known))
        n_ok = int(np.count_nonzero(kind_ok))
        self.stats["unknown_station"] += nrows - n_known
        self.stats["kind_mismatch"] += n_known - n_ok
        if n_ok == 0:
            self._touched = np.zeros(0, dtype=np.int64)
            return out
        if n_ok == nrows:
            kind, ts, seq, ex = batch.kind, batch.ts_ms, batch.seq, batch.exercise
            keep = None
        else:
            keep = np.flatnonzero(kind_ok)
            idx = idx[keep]
            kind = batch.kind[keep]
            ts, seq, ex = batch.ts_ms[keep], batch.seq[keep], batch.exercise[keep]
        m = len(idx)
        vals = np.full((m, 3), np.nan)
        rows_of: dict[int, I64] = {}  # rows of each kind code (a masked copy is ~2x slower)
        for name, col in batch.values.items():
            kc = self._name_chan.get(name)
            if kc is None:
                continue
            rk = rows_of.get(kc[0])
            if rk is None:
                rk = rows_of[kc[0]] = np.flatnonzero(kind == kc[0])
            if len(rk):
                vals[rk, kc[1]] = (col if keep is None else col[keep]).take(rk)
        evm: F64 | None = None
        if EVENT_COLUMNS["magnitude"] in batch.values:
            em = np.column_stack([batch.value(c) for c in _EVENT_COLS])
            em = em if keep is None else em[keep]
            if bool(np.isfinite(em[:, 0]).any()):
                evm = em
        slot = self._slots(idx, ex)
        # Group by station slot, event time within a slot (a stable sort by slot is enough
        # when each station's readings already arrive in time order, the usual case).
        # Unique keys (slot, arrival position): the default sort is then as good as stable.
        s_sorted, order = _by_slot(slot, len(self._a["n"]))
        same = s_sorted[1:] == s_sorted[:-1]
        if bool(np.any(same & (ts[order][1:] < ts[order][:-1]))):
            order = np.lexsort((ts, slot))
            s_sorted = slot[order]
        slot, idx, ts, seq, vals, kind = (
            s_sorted,
            idx[order],
            ts[order],
            seq[order],
            vals.take(order, axis=0),  # rows of a 2-D array: take is ~4x faster than [order]
            kind[order],
        )
        if evm is not None:
            evm = evm.take(order, axis=0)
        quakes: list[tuple[I64, I64, I64, F64]] = []
        start = np.concatenate(([True], ~same))
        if not bool(np.any(same)):
            self._step(out, slot, idx, ts, seq, vals, kind, evm, quakes)
        else:
            group_start = np.maximum.accumulate(np.where(start, np.arange(m), 0))
            rank = np.arange(m) - group_start
            by_rank = np.argsort(rank, kind="stable")
            counts = np.bincount(rank)
            pos = 0
            for cnt in counts.tolist():
                r = by_rank[pos : pos + cnt]
                pos += cnt
                self._step(
                    out,
                    slot[r],
                    idx[r],
                    ts[r],
                    seq[r],
                    vals.take(r, axis=0),
                    kind[r],
                    None if evm is None else evm[r],
                    quakes,
                )
        if quakes:
            self._catalogue(out, quakes)
        self._touched = slot[start]
        return out

    def check_deadman(
        self,
        now_ms: int,
        *,
        exercise_now_ms: ExerciseClock = None,
        judge: npt.NDArray[np.bool_] | None = None,
    ) -> list[Detection]:
        """Stations silent for more than ``deadman_k × interval_s`` (event time) → detections.

        Real stations are judged at ``now_ms`` (the wall clock). Exercise (drill) stations are
        judged at ``exercise_now_ms``, the drill's own clock (its newest event time): a drill
        replays hours in minutes with timestamps behind the wall clock, and its stations fall
        silent when it ends. It is one time, or one per station (registry order; 0 = no
        clock for that station): a drill's readings reach the worker through several
        partitions that are read unevenly, so a station is best judged against the newest
        drill time of its own partition, not against another partition that ran ahead.
        Without ``exercise_now_ms`` drills raise no deadman. ``judge`` (per station, registry
        order) limits the judgement to some stations: a worker leaves out those whose
        readings it is still catching up on, whose silence may only be its own lag.
        """
        a = self._a
        nslots = len(a["n"])
        station = self._slot_station[:nslots]
        limit = self.params.deadman_k * self.interval_s[station] * 1000.0
        last_ts = a["last_ts"]
        now, known = self._clocks(np.arange(nslots), now_ms, exercise_now_ms)
        overdue = known & (a["n"] > 0) & (a["dead"] == 0) & (now - last_ts > limit)
        if judge is not None:
            overdue &= judge[station]
        rows = np.flatnonzero(overdue)
        a["dead"][rows] = 1
        out: list[Detection] = []
        for s in rows.tolist():
            out.append(
                self._det(
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

    def _clocks(
        self, slots: npt.NDArray[np.int64], now_ms: int, exercise_now_ms: ExerciseClock
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """The clock each slot is judged at, and whether it has one (see
        :meth:`check_deadman`): ``now_ms`` for real slots, the drill's clock for exercise
        slots."""
        is_ex = slots >= self.n
        clock = np.full(len(slots), now_ms, dtype=np.int64)
        known = ~is_ex
        if exercise_now_ms is None:
            return clock, known
        if np.ndim(exercise_now_ms) == 0:
            clock[is_ex] = int(exercise_now_ms)
            return clock, np.ones(len(slots), dtype=bool)
        per_station = np.asarray(exercise_now_ms, dtype=np.int64)
        ex = per_station[self._slot_station[slots[is_ex]]]
        clock[is_ex] = ex
        known[is_ex] = ex > 0
        return clock, known

    def close_hours(self, now_ms: int, *, exercise_now_ms: ExerciseClock = None) -> list[Detection]:
        """Close the air-quality hours no later reading has closed, on the clock.

        An hour ``H`` normally closes when the station's first reading at or after
        ``(H + 1) h + grace`` arrives (:mod:`detectors.hourly`). A station that falls silent,
        or reports less often than hourly, would leave its hour — and an Annex 7 decision on
        it — open indefinitely. Called periodically (the worker's deadman timer), this closes
        every hour with ``clock ≥ (H + 1) h + grace`` exactly as a reading without values at
        ``clock`` would: the mean is taken if the hour has its data capture, else the hour is
        missing, and the PM/O₃ rules run on it. The clock is ``now_ms`` for real stations and
        ``exercise_now_ms`` (the drill's own clock) for exercise slots; without it drills are
        left alone, as in :meth:`check_deadman`. Only the hourly bins and the air-quality
        levels change; ``last_ts``, the deadman and the other rules see nothing.
        """
        a = self._a
        nslots = len(a["n"])
        out: list[Detection] = []
        self._closed = []
        if nslots == 0:
            self._touched = np.zeros(0, dtype=np.int64)
            return out
        station = self._slot_station[:nslots]
        cand = np.flatnonzero((a["n"] > 0) & (self.kind[station] == _KA))
        clock, known = self._clocks(cand, now_ms, exercise_now_ms)
        cand, clock = cand[known], clock[known]
        if len(cand) == 0:
            self._touched = np.zeros(0, dtype=np.int64)
            return out
        grace = self.params.hour_grace_ms
        k = len(cand)
        idx = station[cand].astype(np.int64)
        vals = np.full((k, 3), np.nan)
        trusted = np.zeros((k, 3), dtype=bool)
        touched = np.zeros(k, dtype=bool)
        chans: list[tuple[int, Rows]] = []
        for c in range(3):
            open_h = self._gather("hourly", cand * 3 + c)["open_h"].astype(np.int64)
            due = (open_h > 0) & (clock >= (open_h + 1) * hourly.HOUR_MS + grace)
            rows = np.flatnonzero(due)
            if len(rows):
                touched[rows] = True
                chans.append((c, rows))
        if chans:
            self._air(out, chans, cand, idx, clock, vals, trusted)
        self._touched = cand[touched]
        out.sort(key=lambda d: d.ts_ms)
        return out

    def exercise_clock_ms(self, stations: npt.NDArray[np.int64] | None = None) -> int | None:
        """The newest event time of any drill reading in the state of ``stations`` (registry
        indices; None: all), or None when they have had no drill reading.

        A drill whose readings are older than this would have them set aside as late."""
        ex = self._ex_slot if stations is None else self._ex_slot[stations]
        ex = ex[ex >= 0]
        if len(ex) == 0:
            return None
        newest = int(self._a["last_ts"][ex].max())
        return newest if newest > _NO_TS else None

    def touched_station_index(self) -> npt.NDArray[np.int64]:
        """Registry indices (into :attr:`ids`) of the stations whose state the last
        :meth:`process` or :meth:`close_hours` changed, unique and sorted."""
        return np.unique(self._slot_station[self._touched]).astype(np.int64)

    def touched_stations(self) -> list[str]:
        """Stations whose state the last :meth:`process` or :meth:`close_hours` changed (to
        export to a table)."""
        # ``ids`` is sorted, so ids in index order are sorted too.
        return [str(s) for s in self.ids[self.touched_station_index()].tolist()]

    def export_state(self, station_ids: Iterable[str] | None = None) -> dict[str, bytes]:
        """Per-station state blobs: header + the real record (+ the exercise record if any).

        Only stations that have seen a reading are exported. Format: ``<4sHHI`` = magic
        ``GBDS``, version, number of records (1 or 2), record size; then the records
        (:data:`STATE_DTYPE`, little-endian as in memory).
        """
        a = self._a
        if station_ids is None:
            idx = np.flatnonzero((a["n"][: self.n] > 0) | (self._ex_slot >= 0))
        else:
            idx = self._index_of(list(station_ids))
        out: dict[str, bytes] = {}
        for i in idx.tolist():
            exs = int(self._ex_slot[i])
            if a["n"][i] == 0 and (exs < 0 or a["n"][exs] == 0):
                continue  # no reading (or forgotten): nothing to keep
            slots = [i] if exs < 0 else [i, exs]
            recs = self._records(np.array(slots, dtype=np.int64))
            header = _HEADER.pack(_MAGIC, _VERSION, len(recs), STATE_DTYPE.itemsize)
            out[str(self.ids[i])] = header + recs.tobytes()
        return out

    def import_state(self, blobs: Mapping[str, bytes]) -> int:
        """Load blobs from :meth:`export_state` (unknown stations are skipped); returns count.

        Blobs of versions 4, 5 and 6 are migrated (``_from_v4``, ``_from_v5``, ``_from_v6``);
        raises ValueError on a blob of another format version or record size.
        """
        loaded = 0
        for sid, blob in blobs.items():
            i = self._index_of([sid])
            if len(i) == 0:
                continue
            magic, version, nrec, size = _HEADER.unpack_from(blob)
            if magic == _MAGIC and version == 4 and size == _STATE_V4.itemsize:
                recs = _from_v6(
                    _from_v5(
                        _from_v4(np.frombuffer(blob, _STATE_V4, count=nrec, offset=_HEADER.size))
                    )
                )
            elif magic == _MAGIC and version == 5 and size == _STATE_V5.itemsize:
                recs = _from_v6(
                    _from_v5(np.frombuffer(blob, _STATE_V5, count=nrec, offset=_HEADER.size))
                )
            elif magic == _MAGIC and version == 6 and size == STATE_DTYPE.itemsize:
                recs = _from_v6(np.frombuffer(blob, STATE_DTYPE, count=nrec, offset=_HEADER.size))
            elif magic != _MAGIC or version != _VERSION or size != STATE_DTYPE.itemsize:
                raise ValueError(f"state for {sid!r}: incompatible blob {magic!r} v{version}")
            else:
                recs = np.frombuffer(blob, STATE_DTYPE, nrec, _HEADER.size).copy()
            # the operators' alarms as exported (a version 4 record, or one exported before
            # its ``level`` kept the alarm, has 0 there)
            recs["anom"]["level"] = recs["anom_lv"]
            j = int(i[0])
            slots = [j]
            if nrec > 1:
                slots.append(int(self._slots(np.array([j]), np.array([True]))[0]))
            nslots = len(self._a["n"])
            for name in _FIELDS:
                col = self._a[name].reshape(nslots, *STATE_DTYPE[name].shape)
                col[slots] = recs[name][: len(slots)].view(col.dtype)
            loaded += 1
        return loaded

    def forget(self, stations: npt.NDArray[np.int64]) -> None:
        """Reset the state of ``stations`` (registry indices), real and drill, to that of a
        station that has seen no reading.

        A worker forgets the stations of the partitions it is (re)assigned before it loads
        their checkpointed state and replays the readings after it: state it held in memory
        may include readings the replay brings again, which would count twice."""
        if not len(stations):
            return
        ex = self._ex_slot[stations]
        slots = np.concatenate([stations, ex[ex >= 0]]).astype(np.int64)
        fresh = _alloc(len(slots))
        nslots = len(self._a["n"])
        for name in _FIELDS:
            shape = STATE_DTYPE[name].shape
            col = self._a[name].reshape(nslots, *shape)
            col[slots] = fresh[name].reshape(len(slots), *shape)

    def positions(self, batch: ReadingBatch) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Registry index of each reading's station (clipped) and whether it is known."""
        return self._positions(batch)

    def index_of(self, station_ids: Iterable[str]) -> I64:
        """Registry indices of the known ids among ``station_ids`` (unknown ones left out)."""
        return self._index_of(list(station_ids))

    def closed_hourly_means(self) -> HourlyMeans:
        """The hourly means the last :meth:`process` or :meth:`close_hours` call closed (for
        권역 averages in ``geo/``), like :meth:`touched_stations`: each call replaces them.

        Held for one call only, so the memory is bounded by a batch whoever reads them: no
        production path consumes closed hours yet (the dashboards average readings in
        InfluxDB; issuance on the 권역 average is a target, docs/design.md §3.2), and a list
        kept until someone drained it grew by every closed hour of every station for the
        worker's life. A consumer reads them after each call, as the state checkpoint reads
        the touched stations. Nothing is held only here: each channel's last closed mean is
        in the exported state (:meth:`latest_hourly_means`)."""
        closed = self._closed
        if not closed:
            e = np.zeros(0, dtype=np.int64)
            return HourlyMeans(
                np.zeros(0, np.str_), np.zeros(0, bool), e, np.zeros(0, np.str_), np.zeros(0)
            )
        slot = np.concatenate([c[0] for c in closed])
        hour = np.concatenate([c[1] for c in closed])
        names = np.concatenate(
            [np.full(len(c[0]), CHANNELS[Kind.AIR_QUALITY][c[2]]) for c in closed]
        )
        mean = np.concatenate([c[3] for c in closed])
        station = self.ids[self._slot_station[slot]]
        return HourlyMeans(station, slot >= self.n, hour * hourly.HOUR_MS, names, mean)

    def latest_hourly_means(self, exercise: bool = False) -> dict[str, dict[str, float]]:
        """Per air-quality station, the last closed hourly mean of each channel (NaN: none)."""
        out: dict[str, dict[str, float]] = {}
        a = self._a
        for i in np.flatnonzero(self.kind == _KA).tolist():
            s = int(self._ex_slot[i]) if exercise else i
            if s < 0 or a["n"][s] == 0:
                continue
            h = a["hourly"][3 * s : 3 * s + 3].view(hourly.HOURLY_DTYPE)
            prev_h, prev_mean = h["prev_h"], h["prev_mean"]
            row: dict[str, float] = {"hour_ms": float(prev_h[0]) * hourly.HOUR_MS}
            for c, name in enumerate(CHANNELS[Kind.AIR_QUALITY]):
                row[name] = float(prev_mean[c]) if prev_h[c] > 0 else float("nan")
            out[str(self.ids[i])] = row
        return out

    # ------------------------------------------------------------------ internals
    def _records(self, slots: I64) -> npt.NDArray[np.void]:
        """The state of ``slots`` as :data:`STATE_DTYPE` records (the export format)."""
        recs = np.zeros(len(slots), STATE_DTYPE)
        nslots = len(self._a["n"])
        for name in _FIELDS:
            dt = STATE_DTYPE[name]
            recs[name] = self._a[name].reshape(nslots, *dt.shape)[slots].view(dt.base)
        recs["anom_lv"] = recs["anom"]["level"]  # (the format's copy of each alarm)
        return recs

    def _gather(self, comp: str, key: I64) -> npt.NDArray[np.void]:
        """Records ``key`` of a component (``health``: key = slot × 3 + channel), copied."""
        out: npt.NDArray[np.void] = self._a[comp].take(key).view(STATE_DTYPE[comp].base)
        return out

    def _scatter(self, comp: str, key: I64, recs: npt.NDArray[np.void]) -> None:
        store = self._a[comp]
        np.put(store, key, recs.view(store.dtype))

    def _positions(self, batch: ReadingBatch) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Dense index of each reading's station (clipped) and whether it is in the registry:
        the bridge's positions when they were resolved against a registry with the same ids
        (codec v2; ~5 % of the detector set's time saved), else looked up by id."""
        pos = batch.station_index
        if pos is None or batch.index_digest != self.ids_digest:
            return self._lookup(batch.station)
        known: npt.NDArray[np.bool_] = (pos >= 0) & (pos < self.n)
        # three sampled ids against their positions: a producer that wrote positions wrongly
        # is looked up instead of misrouting every reading
        for j in {0, len(pos) // 2, len(pos) - 1}:
            if known[j] and self.ids[pos[j]] != batch.station[j]:
                return self._lookup(batch.station)
        if bool(known.all()):
            return pos.astype(np.int64), known
        return np.where(known, pos, 0).astype(np.int64), known

    def _lookup(self, station: npt.NDArray[np.str_]) -> tuple[I64, npt.NDArray[np.bool_]]:
        """Dense index of each id (clipped) and whether the id is in the registry."""
        m = len(station)
        if self.n == 0:
            return np.zeros(m, dtype=np.int64), np.zeros(m, dtype=bool)
        if self._packed is not None:
            found = self._packed.find(station)
            if found is not None:
                return np.maximum(found, 0), found >= 0
        h = _hash_ids(station) if self._table is not None else None
        if h is None or self._table is None:
            idx = np.minimum(np.searchsorted(self.ids, station), self.n - 1).astype(np.int64)
            known: npt.NDArray[np.bool_] = self.ids[idx] == station
            return idx, known
        found = self._table.find_ids(h, self.ids, station)
        return np.maximum(found, 0), found >= 0

    def _index_of(self, ids: list[str]) -> npt.NDArray[np.int64]:
        if not ids or self.n == 0:
            return np.zeros(0, dtype=np.int64)
        arr = np.array(ids, dtype=np.str_)
        i = np.minimum(np.searchsorted(self.ids, arr), self.n - 1)
        out: npt.NDArray[np.int64] = i[self.ids[i] == arr].astype(np.int64)
        return out

    def _slots(self, idx: I64, ex: npt.NDArray[np.bool_]) -> I64:
        if not bool(ex.any()):
            return idx.astype(np.int64, copy=False)
        slot = idx.astype(np.int64).copy()
        need = np.unique(idx[ex & (self._ex_slot[idx] < 0)])
        if len(need):
            free = self._ex_free
            if free < len(need):
                # Grow geometrically: a drill over many stations arrives a batch at a time,
                # and re-allocating every state array per batch is quadratic. Spare slots
                # stay zeroed (n == 0), which every rule and the deadman treat as unused.
                base = len(self._a["n"])
                add = max(len(need) - free, base // 2, 1024)
                grow = _alloc(add)
                self._a = {k: np.concatenate([v, grow[k]]) for k, v in self._a.items()}
                self._slot_station = np.concatenate(
                    [self._slot_station, np.zeros(add, dtype=np.int64)]
                )
                free += add
            first = len(self._a["n"]) - free
            new_slots = first + np.arange(len(need))
            self._ex_slot[need] = new_slots
            self._slot_station[new_slots] = need.astype(np.int64)
            self._ex_free = free - len(need)
        slot[ex] = self._ex_slot[idx[ex]]
        return slot

    def _det(
        self,
        slot: int,
        station: int,
        ts: int,
        hazard: str,
        rule: str,
        level: int,
        value: float,
        threshold: float | None,
        *,
        public: bool = True,
        crossing: int | None = None,
        confidence: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> Detection:
        return Detection(
            station=str(self.ids[station]),
            hazard=str(hazard),
            level=_LEVEL_NAMES[level],
            ts_ms=int(ts),
            rule=rule,
            value=float(value),
            threshold=None if threshold is None or np.isnan(threshold) else float(threshold),
            exercise=slot >= self.n,
            public=public,
            projected_crossing_ms=crossing,
            confidence=None if confidence is None or np.isnan(confidence) else float(confidence),
            details=details or {},
        )

    def _step(
        self,
        out: list[Detection],
        slot: I64,
        idx: I64,
        ts: I64,
        seq: I64,
        vals: F64,
        kind: npt.NDArray[np.uint8],
        evm: F64 | None = None,
        quakes: list[tuple[I64, I64, I64, F64]] | None = None,
    ) -> None:
        """One reading per slot (``slot`` has no repeats): every rule, on touched fields only.

        ``evm``: the catalogue-event columns (magnitude, lat, lon, depth) per row, or None
        when no row of the batch carries an event; the accepted rows with an event are added
        to ``quakes`` as (slot, station index, time, event) for :meth:`_catalogue`."""
        p = self.params
        a = self._a
        last_ts = a["last_ts"][slot]
        too_late = ts < last_ts - p.lateness_ms
        dup = (ts == last_ts) & (seq == a["last_seq"][slot]) & (seq != NO_SEQ)
        accept = ~(too_late | dup)
        inorder = accept & (ts >= last_ts)
        n_late = int(np.count_nonzero(too_late))
        if n_late:
            self.stats["late"] += n_late
            a["late"][slot[too_late]] += np.uint32(1)
        self.stats["duplicate"] += int(np.count_nonzero(dup))
        if bool(inorder.all()):  # the usual case: no masks needed
            a["last_ts"][slot] = ts
            a["last_seq"][slot] = seq
            a["n"][slot] += np.uint32(1)
        else:
            s_in = slot[inorder]
            a["last_ts"][s_in] = ts[inorder]
            a["last_seq"][s_in] = seq[inorder]
            a["n"][slot[accept]] += np.uint32(1)
        # Deadman recovery.
        back = np.flatnonzero(accept & (a["dead"][slot] > 0))
        if len(back):
            a["dead"][slot[back]] = 0
            for rb in back.tolist():
                out.append(
                    self._det(
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
        # Health and anomaly, all channels of all rows at once (flat (slot, channel) keys);
        # detections are emitted channel by channel as if each channel were its own pass.
        has = ~np.isnan(vals)
        trusted = np.zeros(vals.shape, dtype=bool)
        all_in = bool(inorder.all())
        rc = np.flatnonzero(has if all_in else has & inorder[:, None])  # row-major (row, chan)
        events: list[tuple[tuple[int, int, int], Detection]] = []
        if len(rc):
            r, c = np.divmod(rc, 3)
            key = slot[r] * 3 + c
            hs = self._gather("health", key)
            before = hs["faults"].copy()
            kr = kind[r]
            # (kind, channel) → row of the limits table; take with an intp index is ~2.5x
            # faster than indexing with the uint8 codes
            kc = kr.astype(np.intp)
            kc *= 3
            kc += c
            lim = self._lim_cols
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
                self.interval_s.take(idx[r]),
                stuck_n=p.stuck_n,
                step_n=p.step_n,
                recover_n=p.recover_n,
            )
            self._scatter("health", key, hs)
            faults = hs["faults"]
            for j in np.flatnonzero(faults != before).tolist():
                rj, cj = int(r[j]), int(c[j])
                name = self._chan_name[int(kr[j])][cj]
                bits = int(faults[j])
                lvl = (
                    Level.CLEARED
                    if bits == 0
                    else (Level.ATTENTION if bits == health.SPIKE else Level.ALERT)
                )
                det = self._det(
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
            in_range = (faults & health.RANGE) == 0
            if bool(in_range.all()):
                self._anomaly(events, key, r, c, x, kr, slot, idx, ts)
            elif in_range.any():
                sel = np.flatnonzero(in_range)
                self._anomaly(events, key[sel], r[sel], c[sel], x[sel], kr[sel], slot, idx, ts)
        if events:
            events.sort(key=lambda e: e[0])
            out.extend(d for _, d in events)
        rl, cl = (_NO_ROWS, _NO_ROWS) if all_in else np.nonzero(has & (accept & ~inorder)[:, None])
        if len(rl):
            lim_l = self._lim[kind[rl], cl]
            v = vals[rl, cl]
            fl = self._gather("health", slot[rl] * 3 + cl)["faults"]
            trusted[rl, cl] = (fl == 0) & (v >= lim_l[:, 0]) & (v <= lim_l[:, 1])
        self._rules(out, slot, idx, ts, vals, trusted, accept, inorder, kind)
        if evm is not None and quakes is not None:
            # all four numbers or no event (the bridge validates them; a record from elsewhere
            # with a partial event is ignored rather than trusted)
            rows = np.flatnonzero(accept & (kind == _KQ) & np.isfinite(evm).all(axis=1))
            if len(rows):
                quakes.append((slot[rows], idx[rows], ts[rows], evm[rows]))

    def _catalogue(self, out: list[Detection], quakes: list[tuple[I64, I64, I64, F64]]) -> None:
        """One ``earthquake.catalogue`` detection per new event (see the module docstring),
        the batch's events taken in event-time order."""
        p = self.params
        seen = self._quakes
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
            key = (s >= self.n, round(m * 10), round(lat * 100), round(lon * 100))
            first = seen.get(key)
            if first is not None and abs(t - first) <= p.catalogue_dedupe_ms:
                self.stats["catalogue_repeats"] += 1
                continue
            seen.pop(key, None)
            seen[key] = t
            if len(seen) > p.catalogue_dedupe_max:  # bounded: forget the oldest sightings
                for old in list(seen)[: len(seen) - p.catalogue_dedupe_max]:
                    del seen[old]
            self.stats["catalogue_events"] += 1
            lv = int(level[j])
            out.append(
                self._det(
                    s,
                    int(idx[r]),
                    t,
                    Hazard.EARTHQUAKE,
                    "earthquake.catalogue",
                    lv,
                    m,
                    _CATALOGUE_LINE[lv],
                    details={
                        "magnitude": m,
                        "lat": lat,
                        "lon": lon,
                        "depth_km": depth,
                        "nationwide": bool(wide[j]),
                    },
                )
            )

    def _anomaly(
        self,
        events: list[tuple[tuple[int, int, int], Detection]],
        key: I64,
        r: Rows,
        c: Rows,
        x: F64,
        kr: npt.NDArray[np.uint8],
        slot: I64,
        idx: I64,
        ts: I64,
    ) -> None:
        p = self.params
        an = self._gather("anom", key)
        # the alarm is the record's ``level`` (raised at ``fire``, cleared once settled)
        lv = an["level"].copy()
        _, raw = anomaly.update(
            an,
            x,
            p.anomaly,
            ts=ts[r] * 1e-3,
            tod=self._a["anom_tod"].reshape(-1, anomaly.TOD_BINS),
            tod_rows=key,
            score_from=p.anomaly_raise,
        )
        self._scatter("anom", key, an)
        new = an["level"]
        for j in np.flatnonzero(new != lv).tolist():
            rj, cj = int(r[j]), int(c[j])
            name = self._chan_name[int(kr[j])][cj]
            det = self._det(
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

    def _changes(
        self,
        out: list[Detection],
        rows: Rows,
        old: I64,
        new: I64,
        slot: I64,
        idx: I64,
        ts: I64,
        hazard: str,
        rule: str,
        value: F64,
        threshold: F64,
        details: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        for j in np.flatnonzero(new != old).tolist():
            r = int(rows[j])
            out.append(
                self._det(
                    int(slot[r]),
                    int(idx[r]),
                    int(ts[j]),
                    hazard,
                    rule,
                    int(new[j]),
                    float(value[j]),
                    float(threshold[j]),
                    details=None if details is None else details(j),
                )
            )

    def _rules(
        self,
        out: list[Detection],
        slot: I64,
        idx: I64,
        ts: I64,
        vals: F64,
        trusted: npt.NDArray[np.bool_],
        accept: npt.NDArray[np.bool_],
        inorder: npt.NDArray[np.bool_],
        kind: npt.NDArray[np.uint8],
    ) -> None:
        p = self.params
        a = self._a
        # --- water level: observed stage and forecast crossing.
        is_w = kind == _KW
        rows = np.flatnonzero(is_w & inorder & trusted[:, 0]) if is_w.any() else _NO_ROWS
        if len(rows):
            rows = rows[self._has_levels[idx[rows]]]
        if len(rows):
            s = slot[rows]
            lv = self.levels.take(idx[rows], axis=0)
            h = vals[rows, 0]
            old = a["flood"][s].astype(np.int64)
            new = flood_stage.stage(h, lv).astype(np.int64)
            a["flood"][s] = new
            changed = np.flatnonzero(new != old)
            if len(changed):
                line = np.take_along_axis(
                    lv, np.clip(np.maximum(new, old) - 1, 0, 3)[:, None], axis=1
                )[:, 0]
                self._changes(
                    out,
                    rows,
                    old,
                    new,
                    slot,
                    idx,
                    ts[rows],
                    Hazard.FLOOD,
                    "flood.gauge_stage",
                    h,
                    line,
                )
            fc = self._gather("fc", s)
            fo = flood_forecast.update(fc, ts[rows], h, lv, p.forecast)
            self._scatter("fc", s, fc)
            for j in np.flatnonzero(fo.changed).tolist():
                r = int(rows[j])
                cross = int(fo.crossing_ms[j])
                out.append(
                    self._det(
                        int(slot[r]),
                        int(idx[r]),
                        int(ts[r]),
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
        # --- rainfall: KMA heavy-rain accumulations (late readings land in their bins).
        is_r = kind == _KR
        rows = np.flatnonzero(is_r & accept & trusted[:, 0]) if is_r.any() else _NO_ROWS
        if len(rows):
            s = slot[rows]
            rn = self._gather("rain", s)
            old = rn["level"].astype(np.int64)
            lvl, r3, r12 = heavy_rain.update(rn, ts[rows], vals[rows, 0])
            self._scatter("rain", s, rn)
            new = lvl.astype(np.int64)
            changed = new != old
            if changed.any():  # the value and line of the window that decides the change
                # a rise is judged on its new level's lines; a fall on the lines of the
                # lowest level no longer met (a 경계 → cleared fell below 주의's lines)
                val, thr, win = heavy_rain.deciding(r3, r12, np.where(new > old, new, new + 1))
                self._changes(
                    out,
                    rows,
                    old,
                    new,
                    slot,
                    idx,
                    ts[rows],
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
        # --- air quality: hourly means → PM10/PM2.5 (2-h persistence) and O₃ (step-down).
        is_a = kind == _KA
        rows = np.flatnonzero(is_a & accept) if is_a.any() else _NO_ROWS
        if len(rows):
            self._air(out, [(0, rows), (1, rows), (2, rows)], slot, idx, ts, vals, trusted)
        # --- structural: 60/80/100 % of allowable per channel, each confirmed by 2 of the
        # channel's last 3 readings, the three channels at once (an untrusted reading does
        # not vote); detections channel by channel.
        is_s = kind == _KS
        rows = np.flatnonzero(is_s & inorder) if is_s.any() else _NO_ROWS
        if len(rows):
            s = slot[rows]
            tr = trusted.take(rows, axis=0)
            allow = self.allowable.take(idx[rows], axis=0)
            struct_v = a["struct"].view(_STRUCT_VOID).reshape(-1)  # a station's 3 channels
            st_old = struct_v.take(s).view(np.uint8).reshape(-1, 3)
            v = vals.take(rows, axis=0)
            st_new = structural.update(st_old, v, allow, tr)
            np.put(struct_v, s, st_new.view(_STRUCT_VOID).reshape(-1))
            old = structural.level(st_old).astype(np.int64)
            new = structural.level(st_new).astype(np.int64)
            changed = new != old
            if changed.any():
                thr = _STRUCT_FRAC[np.maximum(new, old)] * allow
                for c, name in enumerate(CHANNELS[Kind.STRUCTURAL]):
                    jc = np.flatnonzero(changed[:, c])
                    if len(jc) == 0:
                        continue
                    self._changes(
                        out,
                        rows[jc],
                        old[jc, c],
                        new[jc, c],
                        slot,
                        idx,
                        ts[rows[jc]],
                        Hazard.STRUCTURAL,
                        f"structural.{name}",
                        v[jc, c],
                        thr[jc, c],
                    )
        # --- seismic: PGA → intensity level (held).
        is_q = kind == _KQ
        rows = np.flatnonzero(is_q & inorder & trusted[:, 0]) if is_q.any() else _NO_ROWS
        if len(rows):
            s = slot[rows]
            sq = self._gather("seis", s)
            old = sq["level"].astype(np.int64)
            lvl, inten = seismic.update(sq, ts[rows], vals[rows, 0], p.seismic_hold_ms)
            self._scatter("seis", s, sq)
            self._changes(
                out,
                rows,
                old,
                lvl.astype(np.int64),
                slot,
                idx,
                ts[rows],
                Hazard.EARTHQUAKE,
                "earthquake.pga_intensity",
                vals[rows, 0],
                np.full(len(rows), np.nan),
                lambda j: {"intensity": round(float(inten[j]), 2)},
            )

    def _air(
        self,
        out: list[Detection],
        chans: list[tuple[int, Rows]],
        slot: I64,
        idx: I64,
        ts: I64,
        vals: F64,
        trusted: npt.NDArray[np.bool_],
    ) -> None:
        """Hourly means, then the PM / O₃ rules on the hours they close, for the air-quality
        channels ``chans`` = [(channel, rows)] in channel order. The hourly records are
        independent, so all channels go through one :func:`hourly.update`; the rules and
        their detections then follow channel by channel."""
        p = self.params
        a = self._a
        if len(chans) == 3 and chans[0][1] is chans[1][1] is chans[2][1]:
            # The same rows for every channel (process): channel-major keys, no concatenation.
            rows = chans[0][1]
            k = len(rows)
            s = slot[rows]
            hkey = (s[None, :] * 3 + _CH3[:, None]).reshape(-1)
            x = np.where(trusted.take(rows, axis=0), vals.take(rows, axis=0), np.nan).T.reshape(-1)
            rows_all = np.concatenate((rows, rows, rows))
            bounds = [0, k, 2 * k, 3 * k]
        else:
            rows_all = np.concatenate([r for _, r in chans])
            hkey = np.concatenate([slot[r] * 3 + c for c, r in chans])
            x = np.concatenate([np.where(trusted[r, c], vals[r, c], np.nan) for c, r in chans])
            bounds = np.cumsum([0] + [len(r) for _, r in chans]).tolist()
        hs = self._gather("hourly", hkey)
        prev_h_all = hs["prev_h"].astype(np.int64)
        prev_m_all = hs["prev_mean"].astype(np.float64)
        closed = hourly.update(
            hs, ts[rows_all], x, self.min_count[idx[rows_all]], grace_ms=p.hour_grace_ms
        )
        self._scatter("hourly", hkey, hs)
        if not closed.any_closed:
            return
        for j, (c, rows) in enumerate(chans):
            lo, hi = bounds[j], bounds[j + 1]
            field_name = _AIR_FIELDS[c]
            name = CHANNELS[Kind.AIR_QUALITY][c]
            hazard = HAZARD_OF[name]
            level = a[field_name]
            prev_h = prev_h_all[lo:hi].copy()
            prev_m = prev_m_all[lo:hi].copy()
            for hour_all, mean_all in ((closed.hour, closed.mean), (closed.hour2, closed.mean2)):
                hour, mean = hour_all[lo:hi], mean_all[lo:hi]
                done = np.flatnonzero(hour >= 0)
                if len(done) == 0:
                    continue
                r = rows[done]
                self._closed.append((slot[r], hour[done], c, mean[done]))
                consecutive = (prev_h[done] > 0) & (hour[done] == prev_h[done] + 1)
                old = level[slot[r]].astype(np.int64)
                lv_in = old.astype(np.uint8)
                if field_name == "o3":
                    new = ozone.step(lv_in, mean[done]).astype(np.int64)
                    lines = np.array((np.inf, np.inf, *ozone.LINES_PPM))
                    thr = lines[np.maximum(new, old)]
                else:
                    lines_pm = pm.PM10 if field_name == "pm10" else pm.PM25
                    new = pm.step(lv_in, mean[done], prev_m[done], consecutive, lines_pm).astype(
                        np.int64
                    )
                    up = new > old
                    thr = np.where(
                        up,
                        np.where(new >= 3, lines_pm.alert, lines_pm.caution),
                        np.where(old >= 3, lines_pm.alert_off, lines_pm.caution_off),
                    )
                level[slot[r]] = new
                hour_end = (hour[done] + 1) * hourly.HOUR_MS
                hd = hour[done]
                self._changes(
                    out,
                    r,
                    old,
                    new,
                    slot,
                    idx,
                    hour_end,
                    hazard,
                    f"air.{field_name}",
                    mean[done],
                    thr.astype(np.float64),
                    _hour_details(hd),
                )
                prev_h[done] = hour[done]
                prev_m[done] = mean[done]


_NO_ROWS: Rows = np.zeros(0, dtype=np.intp)
_CH3: I64 = np.arange(3, dtype=np.int64)
_AIR_FIELDS = ("pm10", "pm25", "o3")
_STRUCT_FRAC = np.array((0.0, 0.0, *structural.FRACTIONS))
_STRUCT_VOID = np.dtype((np.void, 3))

#: The fields kept in memory: not the padding, nor ``anom_lv``, the export format's copy of each
#: channel's anomaly alarm, which is the anomaly record's ``level`` (written from it on export,
#: and into it on import).
_FIELDS = tuple(f for f in STATE_DTYPE.names or () if not f.startswith("_") and f != "anom_lv")
_HASH_MUL: npt.NDArray[np.uint64] = np.random.default_rng(0x6B79_2024).integers(
    1, 2**63, size=64, dtype=np.uint64
) | np.uint64(1)


def _by_slot(slot: I64, nslots: int) -> tuple[I64, I64]:
    """``(slot[order], order)`` with ``order`` = ``np.argsort(slot, kind="stable")``.

    Sorts the unique keys (slot, position) instead, cheaper than an argsort: packed in 32
    bits when they fit (half the bytes to sort, shifts instead of a division), else in 64.
    """
    m = len(slot)
    bits = max(1, (m - 1).bit_length())
    if nslots << bits <= 2**31 - 1:
        key32 = np.sort((slot.astype(np.int32) << bits) | np.arange(m, dtype=np.int32))
        return (key32 >> bits).astype(np.int64), (key32 & ((1 << bits) - 1)).astype(np.int64)
    s_sorted, order = np.divmod(np.sort(slot * m + np.arange(m)), m)
    return s_sorted, order


def _hour_details(hour: I64) -> Callable[[int], dict[str, Any]]:
    return lambda j: {"hour_start_ms": int(hour[j]) * hourly.HOUR_MS}


def _alloc(n: int) -> dict[str, npt.NDArray[Any]]:
    """Zeroed state for ``n`` slots: one array per :data:`STATE_DTYPE` field (struct of arrays)."""
    out: dict[str, npt.NDArray[Any]] = {}
    for name in _FIELDS:
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
    out["last_ts"][:] = _NO_TS
    return out


class _HashTable:
    """Open addressing (linear probing, load ≤ 1/4) from unique 64-bit hashes to 0…n-1.

    A sorted-array binary search costs ~17 cache misses per id at 10⁵ stations; this costs
    about two (the cell, then the id it names). Built and probed with vectorized rounds (one
    round per probe step).
    """

    def __init__(self, keys: npt.NDArray[np.uint64]) -> None:
        n = len(keys)
        bits = max(4, (4 * n - 1).bit_length())
        self.mask = (1 << bits) - 1
        self.shift = np.uint64(64 - bits)
        table = np.full(1 << bits, -1, dtype=np.int64)
        pos = (keys >> self.shift).astype(np.int64)
        pending = np.arange(n, dtype=np.int64)
        while len(pending):
            p = pos[pending]
            free = table[p] < 0
            cells, first = np.unique(p[free], return_index=True)
            winners = pending[free][first]
            table[cells] = winners
            placed = np.zeros(n, dtype=bool)
            placed[winners] = True
            pending = pending[~placed[pending]]
            pos[pending] = (pos[pending] + 1) & self.mask
        # 32-bit cells (half the cache footprint) when the indices fit.
        self.table = table.astype(np.int32) if n < 2**31 else table

    def find_ids(
        self, h: npt.NDArray[np.uint64], ids: npt.NDArray[np.str_], wanted: npt.NDArray[np.str_]
    ) -> I64:
        """Index ``i`` with ``ids[i] == wanted`` of each row (``h`` its hash), -1 when absent.

        Exact: a registry id sits in the probe run from its hash's home cell, before the
        first empty cell, so comparing the ids cell by cell along the run finds it, and an
        absent id runs into an empty cell. The ids are compared in the probe itself (one
        random read of the table and one of the ids per row; no stored hashes needed).
        """
        pos = (h >> self.shift).astype(np.intp)
        t = self.table[pos]
        # A -1 cell reads the last id: masked by t >= 0.
        hit = (t >= 0) & (ids[t] == wanted)
        out: I64 = np.where(hit, t, -1).astype(np.int64)
        cont = np.flatnonzero((t >= 0) & ~hit)  # another id in the cell: probe on
        while len(cont):
            pos[cont] = (pos[cont] + 1) & self.mask
            t = self.table[pos[cont]]
            hit = (t >= 0) & (ids[t] == wanted[cont])
            out[cont[hit]] = t[hit]
            cont = cont[(t >= 0) & ~hit]
        return out


class _PackedTable:
    """Exact id → index for registries of short ids (≤ 8 code points, each < 256).

    Such an id packed into a uint64 (one byte per code point, NUL padded) is injective, so
    the packed id is its own key: a cell holds (key, index + 1) side by side and a probe
    compares integers in the cell it reads — one random read per id, no string compares.
    An id that does not pack (longer, or a code point ≥ 256) is in no such registry.
    Linear probing, load ≤ 1/4, positions from a multiplicative hash of the key.
    """

    def __init__(self, keys: npt.NDArray[np.uint64]) -> None:
        index = _HashTable(keys * _PACK_MUL)  # the same probe sequence as find() below
        self.shift = index.shift
        self.mask = index.mask
        t = index.table.astype(np.int64)
        cells = np.zeros((len(t), 2), dtype=np.uint64)  # (key, index + 1); 0: empty
        used = t >= 0
        cells[used, 0] = keys[t[used]]
        cells[:, 1] = (t + 1).astype(np.uint64)
        self.cells = cells

    @classmethod
    def build(cls, ids: npt.NDArray[Any]) -> _PackedTable | None:
        packed = _pack_ids(ids)
        if packed is None or not bool(packed[1].all()) or len(ids) == 0:
            return None
        return cls(packed[0])

    def find(self, wanted: npt.NDArray[Any]) -> I64 | None:
        """Index of each id, -1 when absent; None when ``wanted`` is not a ``<U`` array."""
        packed = _pack_ids(wanted)
        if packed is None:
            return None
        key, ok = packed
        pos = ((key * _PACK_MUL) >> self.shift).astype(np.intp)
        cell = self.cells.take(pos, axis=0)
        full = cell[:, 1] != 0
        hit = full & (cell[:, 0] == key)
        out: I64 = np.where(hit, cell[:, 1].astype(np.int64) - 1, -1)
        cont = np.flatnonzero(full & ~hit & ok)  # another id in the cell: probe on
        while len(cont):
            pos[cont] = (pos[cont] + 1) & self.mask
            cell = self.cells.take(pos[cont], axis=0)
            full = cell[:, 1] != 0
            hit = full & (cell[:, 0] == key[cont])
            out[cont[hit]] = cell[hit, 1].astype(np.int64) - 1
            cont = cont[full & ~hit]
        if not bool(ok.all()):
            out[~ok] = -1
        return out


_PACK_MUL = np.uint64(0x9E37_79B9_7F4A_7C15)


def _pack_ids(
    ids: npt.NDArray[Any],
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]] | None:
    """Each ``<U`` id as a uint64 of its first 8 code points' low bytes, and whether the id
    packs exactly (≤ 8 code points, each < 256); None when the dtype is not ``<U``."""
    if ids.dtype.kind != "U":
        return None
    m = len(ids)
    w = ids.dtype.itemsize // 4
    out = np.zeros((m, 8), dtype=np.uint8)
    if w == 0 or m == 0:
        return out.view(np.uint64).reshape(m), np.ones(m, dtype=bool)
    codes = np.ascontiguousarray(ids).view(np.uint32).reshape(m, w)
    k = min(w, 8)
    out[:, :k] = codes[:, :k]  # the low byte of each code point (checked below)
    acc = codes[:, 0] >> 8
    for j in range(1, w):  # any code point ≥ 256, or a 9th one
        acc |= codes[:, j] if j >= 8 else codes[:, j] >> 8
    return out.view(np.uint64).reshape(m), acc == 0


def _hash_ids(ids: npt.NDArray[Any]) -> npt.NDArray[np.uint64] | None:
    """A 64-bit multiplicative hash of each ``<U`` id (None when the dtype does not suit).

    ``Σ code_k · m_k mod 2⁶⁴`` with odd random ``m_k``; NUL padding adds nothing, so ids
    of different widths hash alike. Hits are confirmed by comparing the ids themselves.
    """
    if ids.dtype.kind != "U":
        return None
    w = ids.dtype.itemsize // 4
    if w > len(_HASH_MUL) or w == 0:
        return None
    codes = np.ascontiguousarray(ids).view(np.uint32).reshape(len(ids), w)
    if len(ids) <= 4096:  # one integer matmul (mod 2⁶⁴ like the loop): fewer calls
        hm: npt.NDArray[np.uint64] = np.dot(codes, _HASH_MUL[:w])
        return hm
    h: npt.NDArray[np.uint64] = codes[:, 0] * _HASH_MUL[0]
    for k in range(1, w):  # column by column: faster than a sum along the short axis
        h += codes[:, k] * _HASH_MUL[k]
    return h
