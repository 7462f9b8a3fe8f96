"""The detector set a worker runs: every rule and detector, over columnar micro-batches.

:class:`DetectorSet` keeps the state of each station in *struct-of-arrays* form: one array per
field of :data:`STATE_DTYPE` (``last_ts``, ``health`` (n×3 records), ``anom``, ``fc``, ``rain``,
…), indexed by the registry's dense station index (sorted ids; batch ids of ≤ 8 Latin-1
characters, the usual case, are packed into 64-bit keys looked up in one probe; longer ones
are mapped through a 64-bit hash of their code points, confirmed by comparing the ids:
:mod:`detectors.station_ids`). :data:`STATE_DTYPE` is the per-station record of the export
format (:mod:`detectors.state_format`: versions and migrations) and its ``itemsize`` the
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
Each kind's rules are a step behind one protocol (:class:`detectors.steps.KindStep`), in
:mod:`detectors.steps`; this module admits the readings, groups them and runs the steps.

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

Catalogue events (``earthquake.catalogue``, one detection per new event, repeats within
``catalogue_dedupe_ms`` dropped): :mod:`detectors.steps.catalogue`.

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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors import health, hourly, state_format, station_ids
from detectors.channels import CHANNELS, HAZARD_OF, KA, KQ, LEVEL_NAMES
from detectors.params import DetectorParams
from detectors.state_format import FIELDS, NO_TS, STATE_DTYPE, alloc
from detectors.steps import KIND_STEPS, StepRows
from detectors.steps import air_quality as air_step
from detectors.steps import catalogue as catalogue_step
from detectors.steps import deadman as deadman_step
from detectors.steps import health as health_step
from gyeongbo.batch import KIND_CODES, NO_SEQ, ReadingBatch
from gyeongbo.events import Detection
from gyeongbo.registry import Registry
from gyeongbo.vocab import EVENT_COLUMNS, Kind

__all__ = [
    "CHANNELS",
    "HAZARD_OF",
    "STATE_DTYPE",
    "DetectorParams",
    "DetectorSet",
    "ExerciseClock",
    "HourlyMeans",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Rows = npt.NDArray[np.intp]

_EVENT_COLS = tuple(EVENT_COLUMNS.values())  # magnitude, lat, lon, depth_km

# The names this module held before the state format, the id tables and the steps moved to
# their own modules (tests and older callers import them from here).
_MAGIC = state_format.MAGIC
_VERSION = state_format.VERSION
_HEADER = state_format.HEADER
_NO_TS = NO_TS
_ANOM_V5 = state_format.ANOM_V5
_ANOM_V4 = state_format.ANOM_V4
_STATE_V5 = state_format.STATE_V5
_STATE_V4 = state_format.STATE_V4
_from_v4 = state_format.from_v4
_from_v5 = state_format.from_v5
_from_v6 = state_format.from_v6
_FIELDS = FIELDS
_alloc = alloc
_HashTable = station_ids.HashTable
_PackedTable = station_ids.PackedTable
_hash_ids = station_ids.hash_ids
_pack_ids = station_ids.pack_ids
_HASH_MUL = station_ids.HASH_MUL
_PACK_MUL = station_ids.PACK_MUL
_LEVEL_NAMES = LEVEL_NAMES
_CATALOGUE_LINE = catalogue_step.LINE


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
        self._station_tables(registry)
        self._channel_tables()
        self._a: dict[str, npt.NDArray[Any]] = alloc(n)
        self._ex_slot = np.full(n, -1, dtype=np.int64)  # exercise slot per station
        self._ex_free = 0  # spare exercise slots allocated ahead (geometric growth)
        self._slot_station = np.arange(n, dtype=np.int64)
        self._ids = station_ids.StationIds(self.ids)
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

    def _station_tables(self, registry: Registry) -> None:
        """Per station (registry order): kind code, interval, stage levels, allowables and
        the hourly data-capture count."""
        st = [registry.stations[i] for i in self.ids.tolist()]
        n = self.n
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

    def _channel_tables(self) -> None:
        """Channel tables per kind code: value-name index and health limits."""
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

    # ------------------------------------------------------------------ public API
    @property
    def state_bytes_per_station(self) -> int:
        """Bytes of detector state per station (one record; a drilled station has two)."""
        return int(STATE_DTYPE.itemsize)

    def process(self, batch: ReadingBatch) -> list[Detection]:
        """Run every rule on a micro-batch; return the detections (level changes) in order."""
        out: list[Detection] = []
        self._closed = []
        self._touched = np.zeros(0, dtype=np.int64)
        cols = self._columns(batch)
        if cols is None:
            return out
        idx, kind, ts, seq, ex, vals, evm = cols
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
        quakes: catalogue_step.Quakes = []
        start = np.concatenate(([True], ~same))
        if not bool(np.any(same)):
            self._step(out, slot, idx, ts, seq, vals, kind, evm, quakes)
        else:
            self._ranks(out, start, slot, idx, ts, seq, vals, kind, evm, quakes)
        if quakes:
            catalogue_step.run(self, out, quakes)
        self._touched = slot[start]
        return out

    def _columns(
        self, batch: ReadingBatch
    ) -> tuple[I64, npt.NDArray[np.uint8], I64, I64, npt.NDArray[np.bool_], F64, F64 | None] | None:
        """The batch's readings of known stations of the right kind, counted in
        :attr:`stats`: registry index, kind code, time, seq, exercise flag, values (rows × 3
        channels of the kind) and the catalogue-event columns (None when no row has an event);
        None when no reading is left."""
        nrows = len(batch)
        self.stats["readings"] += nrows
        if nrows == 0:
            return None
        idx, known = self._positions(batch)
        kind_ok = known & (self.kind[idx] == batch.kind)
        n_known = int(np.count_nonzero(known))
        n_ok = int(np.count_nonzero(kind_ok))
        self.stats["unknown_station"] += nrows - n_known
        self.stats["kind_mismatch"] += n_known - n_ok
        if n_ok == 0:
            return None
        if n_ok == nrows:
            kind, ts, seq, ex = batch.kind, batch.ts_ms, batch.seq, batch.exercise
            keep = None
        else:
            keep = np.flatnonzero(kind_ok)
            idx = idx[keep]
            kind = batch.kind[keep]
            ts, seq, ex = batch.ts_ms[keep], batch.seq[keep], batch.exercise[keep]
        vals = np.full((len(idx), 3), np.nan)
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
        return idx, kind, ts, seq, ex, vals, evm

    def _ranks(
        self,
        out: list[Detection],
        start: npt.NDArray[np.bool_],
        slot: I64,
        idx: I64,
        ts: I64,
        seq: I64,
        vals: F64,
        kind: npt.NDArray[np.uint8],
        evm: F64 | None,
        quakes: catalogue_step.Quakes,
    ) -> None:
        """One step per rank of the readings grouped by slot (``start``: a group's first
        row): every slot's first reading, then every second one, …"""
        m = len(slot)
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
        nslots = len(self._a["n"])
        now, known = self._clocks(np.arange(nslots), now_ms, exercise_now_ms)
        return deadman_step.overdue(self, now, known, judge)

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
        cand = np.flatnonzero((a["n"] > 0) & (self.kind[station] == KA))
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
            air_step.hours(self, out, chans, cand, idx, clock, vals, trusted)
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
        return newest if newest > NO_TS else None

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
            out[str(self.ids[i])] = state_format.encode(
                self._records(np.array(slots, dtype=np.int64))
            )
        return out

    def import_state(self, blobs: Mapping[str, bytes]) -> int:
        """Load blobs from :meth:`export_state` (unknown stations are skipped); returns count.

        Blobs of versions 4, 5 and 6 are migrated (:func:`detectors.state_format.decode`);
        raises ValueError on a blob of another format version or record size.
        """
        loaded = 0
        for sid, blob in blobs.items():
            i = self._index_of([sid])
            if len(i) == 0:
                continue
            recs = state_format.decode(sid, blob)
            # the operators' alarms as exported (a version 4 record, or one exported before
            # its ``level`` kept the alarm, has 0 there)
            recs["anom"]["level"] = recs["anom_lv"]
            j = int(i[0])
            slots = [j]
            if len(recs) > 1:
                slots.append(int(self._slots(np.array([j]), np.array([True]))[0]))
            nslots = len(self._a["n"])
            for name in FIELDS:
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
        fresh = alloc(len(slots))
        nslots = len(self._a["n"])
        for name in FIELDS:
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
        for i in np.flatnonzero(self.kind == KA).tolist():
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
        for name in FIELDS:
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
        return self._ids.lookup(station)

    def _index_of(self, ids: list[str]) -> npt.NDArray[np.int64]:
        return self._ids.index_of(ids)

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
                grow = alloc(add)
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
            level=LEVEL_NAMES[level],
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
        quakes: catalogue_step.Quakes | None = None,
    ) -> None:
        """One reading per slot (``slot`` has no repeats): every rule, on touched fields only.

        ``evm``: the catalogue-event columns (magnitude, lat, lon, depth) per row, or None
        when no row of the batch carries an event; the accepted rows with an event are added
        to ``quakes`` as (slot, station index, time, event) for :mod:`.steps.catalogue`."""
        accept, inorder = self._admit(slot, ts, seq)
        deadman_step.recovered(self, out, slot, idx, ts, accept)
        # Health and anomaly, all channels of all rows at once (flat (slot, channel) keys);
        # detections are emitted channel by channel as if each channel were its own pass.
        has = ~np.isnan(vals)
        trusted = np.zeros(vals.shape, dtype=bool)
        all_in = bool(inorder.all())
        rc = np.flatnonzero(has if all_in else has & inorder[:, None])  # row-major (row, chan)
        if len(rc):
            health_step.run(self, out, slot, idx, ts, vals, kind, rc, trusted)
        if not all_in:
            health_step.late_trusted(self, slot, vals, has, kind, accept & ~inorder, trusted)
        rows = StepRows(slot, idx, ts, vals, trusted, accept, inorder, kind)
        for step in KIND_STEPS:
            step.run(self, rows, out)
        if evm is not None and quakes is not None:
            # all four numbers or no event (the bridge validates them; a record from elsewhere
            # with a partial event is ignored rather than trusted)
            q = np.flatnonzero(accept & (kind == KQ) & np.isfinite(evm).all(axis=1))
            if len(q):
                quakes.append((slot[q], idx[q], ts[q], evm[q]))

    def _admit(
        self, slot: I64, ts: I64, seq: I64
    ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
        """Which readings are accepted (neither later than ``lateness_ms`` behind the slot's
        newest nor a duplicate of it) and which of those are in order; counts and records
        them (``last_ts``, ``last_seq``, ``n``, ``late``)."""
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
        return accept, inorder

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
