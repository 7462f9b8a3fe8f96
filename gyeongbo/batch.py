"""Columnar micro-batches of readings: the unit every stage of the pipeline works on.

A :class:`ReadingBatch` holds N readings as parallel arrays. The bridge builds one per Kafka
partition and encodes it into one ``readings`` record (``streams.codec``); workers decode it
and hand it, unchanged, to the vectorized detectors. Per-reading Python objects never exist
on the hot path (docs/design.md §2).

Value columns are float64 arrays of length N, NaN where a reading does not carry that value
(an air-quality reading may carry PM10 but not O₃). A seismic reading's catalogue ``event``
(docs/design.md §11.1) rides in four more float64 columns of the same mapping,
:data:`EVENT_COLUMN_NAMES` (``event_magnitude``, ``event_lat``, ``event_lon``,
``event_depth_km``), NaN on rows without an event — so the ``readings`` record format, which
stores any named float64 column, carries them unchanged. They are not reading values: rows
(:meth:`ReadingBatch.from_rows`, :meth:`ReadingBatch.to_rows`) keep them under ``event``.

>>> import numpy as np
>>> b = ReadingBatch.from_rows([
...     {"station": "1018683", "kind": "water_level", "ts_ms": 1596678600000, "seq": 1,
...      "values": {"level_m": 8.36}},
...     {"station": "111131", "kind": "air_quality", "ts_ms": 1596678600000,
...      "values": {"pm25_ugm3": 80.0}, "exercise": True},
... ])
>>> len(b), float(b.values["level_m"][0]), bool(np.isnan(b.values["level_m"][1]))
(2, 8.36, True)
>>> b.take(np.array([1])).station.tolist()
['111131']
>>> q = ReadingBatch.from_rows([{"station": "KMA-GYEONGJU-ACC", "kind": "seismic",
...     "ts_ms": 1473679982000, "values": {"pga_g": 0.22},
...     "event": {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15}}])
>>> sorted(q.values), q.event_mask().tolist()
(['event_depth_km', 'event_lat', 'event_lon', 'event_magnitude', 'pga_g'], [True])
>>> q.to_rows()[0]["event"]
{'magnitude': 5.8, 'lat': 35.76, 'lon': 129.19, 'depth_km': 15.0}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gyeongbo.vocab import EVENT_COLUMNS, KIND_VALUES, Kind

#: The catalogue-event columns, in the order of :data:`~gyeongbo.vocab.EVENT_FIELDS`.
EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(EVENT_COLUMNS.values())
#: Stable order of every float64 column that may appear in a batch: the reading values of
#: every kind (:data:`~gyeongbo.vocab.KIND_VALUES`), then :data:`EVENT_COLUMN_NAMES`.
VALUE_NAMES: tuple[str, ...] = (
    *(name for kind in Kind for name in KIND_VALUES[kind]),
    *EVENT_COLUMN_NAMES,
)
#: Kind codes (uint8) in the order of :class:`~gyeongbo.vocab.Kind`.
KIND_CODES: dict[Kind, int] = {k: i for i, k in enumerate(Kind)}
KINDS_BY_CODE: tuple[Kind, ...] = tuple(Kind)

NO_SEQ = -1
_EVENT_COLUMN_SET = frozenset(EVENT_COLUMN_NAMES)


@dataclass(frozen=True)
class ReadingBatch:
    station: npt.NDArray[np.str_]  # station ids, dtype '<U…'
    kind: npt.NDArray[np.uint8]  # KIND_CODES
    ts_ms: npt.NDArray[np.int64]  # event time, epoch milliseconds (UTC)
    seq: npt.NDArray[np.int64]  # per-station sequence, NO_SEQ when absent
    exercise: npt.NDArray[np.bool_]
    values: Mapping[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    #: When the bridge received each reading (epoch ms); for latency measurement.
    received_ms: npt.NDArray[np.int64] | None = None
    #: Each station's position in the registry (:meth:`~gyeongbo.registry.Registry.index_of`)
    #: as the bridge resolved it, valid for registries whose
    #: :func:`~gyeongbo.registry.ids_digest` is ``index_digest``; the detectors then skip
    #: looking the ids up. None (and digest 0) when unknown.
    station_index: npt.NDArray[np.int32] | None = None
    index_digest: int = 0

    def __post_init__(self) -> None:
        n = len(self.station)
        columns: list[tuple[str, npt.NDArray[Any]]] = [
            ("kind", self.kind),
            ("ts_ms", self.ts_ms),
            ("seq", self.seq),
            ("exercise", self.exercise),
            *self.values.items(),
        ]
        if self.station_index is not None:
            columns.append(("station_index", self.station_index))
            if not self.index_digest:
                raise ValueError("a station_index needs the index_digest of its registry")
        for name, arr in columns:
            if len(arr) != n:
                raise ValueError(f"column {name!r} has {len(arr)} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.station)

    def take(self, idx: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> ReadingBatch:
        """Rows selected by an index or boolean mask, as a new batch."""
        return ReadingBatch(
            station=self.station[idx],
            kind=self.kind[idx],
            ts_ms=self.ts_ms[idx],
            seq=self.seq[idx],
            exercise=self.exercise[idx],
            values={k: v[idx] for k, v in self.values.items()},
            received_ms=None if self.received_ms is None else self.received_ms[idx],
            station_index=None if self.station_index is None else self.station_index[idx],
            index_digest=self.index_digest,
        )

    def of_kind(self, kind: Kind) -> ReadingBatch:
        return self.take(self.kind == KIND_CODES[kind])

    def event_mask(self) -> npt.NDArray[np.bool_]:
        """Rows that carry a catalogue event (a finite ``event_magnitude``)."""
        col = self.values.get(EVENT_COLUMNS["magnitude"])
        if col is None:
            return np.zeros(len(self), dtype=np.bool_)
        return np.isfinite(col)

    def value(self, name: str) -> npt.NDArray[np.float64]:
        """The column ``name``, all-NaN when no reading in the batch carries it."""
        col = self.values.get(name)
        if col is None:
            return np.full(len(self), np.nan)
        return col

    @classmethod
    def empty(cls) -> ReadingBatch:
        return cls.from_rows([])

    @classmethod
    def concat(cls, batches: Iterable[ReadingBatch]) -> ReadingBatch:
        bs = [b for b in batches if len(b)]
        if not bs:
            return cls.empty()
        names = sorted({k for b in bs for k in b.values}, key=VALUE_NAMES.index)
        recv = (
            np.concatenate([b.received_ms for b in bs if b.received_ms is not None])
            if all(b.received_ms is not None for b in bs)
            else None
        )
        # the positions survive only when every part has them for the same registry
        digest = bs[0].index_digest
        indexed = all(b.station_index is not None and b.index_digest == digest for b in bs)
        return cls(
            station=np.concatenate([b.station for b in bs]),
            kind=np.concatenate([b.kind for b in bs]),
            ts_ms=np.concatenate([b.ts_ms for b in bs]),
            seq=np.concatenate([b.seq for b in bs]),
            exercise=np.concatenate([b.exercise for b in bs]),
            values={n: np.concatenate([b.value(n) for b in bs]) for n in names},
            received_ms=recv,
            station_index=(
                np.concatenate([b.station_index for b in bs if b.station_index is not None])
                if indexed
                else None
            ),
            index_digest=digest if indexed else 0,
        )

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]]) -> ReadingBatch:
        """Build a batch from reading dicts (tests, simulators; not the hot path).

        Each row: ``station``, ``kind``, ``ts_ms``, optional ``seq``, ``exercise``,
        ``values`` (name → float), ``event`` (a catalogue event: field → float, as in the
        MQTT payload) and ``received_ms``.
        """
        rows = list(rows)
        n = len(rows)
        flat = [
            {
                **r.get("values", {}),
                **{EVENT_COLUMNS[k]: v for k, v in (r.get("event") or {}).items()},
            }
            for r in rows
        ]
        names = sorted({k for r in flat for k in r}, key=VALUE_NAMES.index)
        values = {name: np.full(n, np.nan) for name in names}
        for i, r in enumerate(flat):
            for k, v in r.items():
                values[k][i] = float(v)
        has_recv = n > 0 and all("received_ms" in r for r in rows)
        return cls(
            station=np.array([str(r["station"]) for r in rows], dtype=np.str_),
            kind=np.array([KIND_CODES[Kind(r["kind"])] for r in rows], dtype=np.uint8),
            ts_ms=np.array([int(r["ts_ms"]) for r in rows], dtype=np.int64),
            seq=np.array([int(r.get("seq", NO_SEQ)) for r in rows], dtype=np.int64),
            exercise=np.array([bool(r.get("exercise", False)) for r in rows], dtype=np.bool_),
            values=values,
            received_ms=(
                np.array([int(r["received_ms"]) for r in rows], dtype=np.int64)
                if has_recv
                else None
            ),
        )

    def to_rows(self) -> list[dict[str, Any]]:
        """The inverse of :meth:`from_rows` (NaN values omitted; ``event`` only on rows that
        carry one)."""
        out = []
        events = [(f, self.values[c]) for f, c in EVENT_COLUMNS.items() if c in self.values]
        reading = [(k, v) for k, v in self.values.items() if k not in _EVENT_COLUMN_SET]
        for i in range(len(self)):
            row: dict[str, Any] = {
                "station": str(self.station[i]),
                "kind": KINDS_BY_CODE[int(self.kind[i])].value,
                "ts_ms": int(self.ts_ms[i]),
                "seq": int(self.seq[i]),
                "exercise": bool(self.exercise[i]),
                "values": {k: float(v[i]) for k, v in reading if not np.isnan(v[i])},
            }
            event = {f: float(v[i]) for f, v in events if not np.isnan(v[i])}
            if event:
                row["event"] = event
            if self.received_ms is not None:
                row["received_ms"] = int(self.received_ms[i])
            out.append(row)
        return out
