"""Detector state in a changelogged table, never behind the offsets the worker commits.

The detectors' state lives in memory (:class:`~detectors.engine.DetectorSet`) and is
checkpointed into the ``detector-state`` table, per ``readings`` partition, at most every
``worker.state_checkpoint_s``: table key ``<partition>/<chunk>`` holds the blobs of that
chunk's stations (msgpack map station → blob, :data:`STATE_CHUNKS` chunks per partition),
written only for chunks whose stations changed. One changelog record per station per batch
would cap a worker at the ~1–3k records/s Faust and the broker sustain; chunks keep it to a
few records per second.

Consistency with the consumer's progress (docs/design.md §9), the Kafka Streams rule: the
offset a worker commits never runs ahead of the state it has made durable. So

1. **acknowledgements are held**: a ``readings`` record processed by the detectors is
   acknowledged (so Faust may commit its offset) only once a checkpoint that includes it is
   confirmed by the broker (:meth:`StateBook.hold`, :meth:`StateBook.checkpoint`); before
   writing a checkpoint the worker waits until Kafka has every detection sent so far, so a
   checkpoint never covers a reading whose detections could still be lost;
2. **a chunk says which offset it covers** (key :data:`OFFSET_KEY`: the partition's last
   record whose readings its blobs include). After a crash or a rebalance the consumer
   resumes from the committed offset, which may be older than a chunk (a checkpoint written
   but not yet committed, or one torn by the crash); a replayed record's readings of that
   chunk's stations are already in their state and are skipped
   (:meth:`StateBook.skip_replayed`), so no reading counts twice (rain sums, N-of-M) and
   none is lost.

The readings after the newest checkpoint are processed again, and their detections sent
again: the alert machine treats a detection it has applied already as nothing
(:meth:`alerting.machine.AlertMachine.feed`).

A held acknowledgement costs the Faust event object, not its payload: the record's value is
dropped once decoded (:func:`streams.faust_internals.release_payload`): ~565 B a record
(``benchmarks/held_acks.py``), ~5.6 MB at 10⁴ readings/s in records of 60 with checkpoints
every 60 s. Above
:data:`MAX_HELD_EVENTS` every partition is checkpointed at once.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from detectors.engine import DetectorSet
from gyeongbo.batch import ReadingBatch
from streams.faust_internals import put_to_partition
from streams.partitioning import partitions_for

__all__ = [
    "OFFSET_KEY",
    "STATE_CHUNKS",
    "StateBook",
    "decode_chunk",
    "drill_clock_key",
    "encode_chunk",
]

log = logging.getLogger("gyeongbo.worker")

#: Detector-state chunks per readings partition.
STATE_CHUNKS = 256
#: Held events (over all partitions) above which every partition holding some is checkpointed
#: at once, whatever its interval: ~57 MB at ~565 B a held event (``benchmarks/held_acks.py``).
MAX_HELD_EVENTS = 100_000
#: The key, inside a chunk, of the readings offset the chunk's blobs include (8 bytes, LE,
#: signed). Never a station id (ids start with a letter or digit).
OFFSET_KEY = "#offset"
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(dict[str, bytes])


def encode_chunk(blobs: Mapping[str, bytes], offset: int) -> bytes:
    """A chunk record: the stations' blobs and the offset they include.

    >>> decode_chunk(encode_chunk({"1018683": b"state"}, 41))
    ({'1018683': b'state'}, 41)
    """
    return _encoder.encode({**blobs, OFFSET_KEY: offset.to_bytes(8, "little", signed=True)})


def decode_chunk(raw: bytes) -> tuple[dict[str, bytes], int]:
    """(blobs, covered offset); -1 for a chunk written before chunks carried their offset.

    >>> decode_chunk(msgspec.msgpack.encode({"1018683": b"state"}))
    ({'1018683': b'state'}, -1)
    """
    blobs = _decoder.decode(raw)
    off = blobs.pop(OFFSET_KEY, None)
    return blobs, -1 if off is None else int.from_bytes(off, "little", signed=True)


def drill_clock_key(partition: int) -> str:
    """The table key of a readings partition's drill clock (8 bytes, LE)."""
    return f"{partition}/drill-clock"


def chunk_of(station: str) -> int:
    return zlib.crc32(station.encode()) % STATE_CHUNKS


class StateBook:
    """The detector state's checkpoints, what they cover, and the acknowledgements they hold.

    ``table`` is the Faust table (``detector-state``); writes go to its local data and, with
    an explicit partition, to its changelog (:meth:`checkpoint` returns the delivery
    futures). Not thread-safe: used from the worker's event loop only.
    """

    def __init__(self, detectors: DetectorSet, table: Any, partitions: int) -> None:
        self.detectors = detectors
        self.table = table
        self.partitions = partitions
        n = len(detectors.ids)
        self.station_partition = partitions_for(detectors.ids, partitions)
        #: Per registry station: the readings offset its restored state includes (-1: none).
        self._covered = np.full(n, -1, dtype=np.int64)
        #: Per partition: the highest offset a loaded chunk covers (skip checks stop past it).
        self._replay_until: dict[int, int] = {}
        self._loaded_stations: set[str] = set()
        self._loaded_chunks: set[str] = set()
        self._chunks_loaded: dict[int, int] = {}
        self._dirty: dict[int, set[int]] = {}
        self._last: dict[int, float] = {}
        #: Per partition: the last record offset whose readings are in the detector state.
        self.processed: dict[int, int] = {}
        #: Per partition: events processed and not yet acknowledged (no checkpoint yet).
        self.held: dict[int, list[Any]] = {}
        self.counters: dict[str, int] = {
            "state_checkpoints": 0,
            "state_chunks_written": 0,
            "replayed_readings_skipped": 0,
        }

    # -- (re)assignment -------------------------------------------------------------------
    def reset(self, partitions: Iterable[int]) -> None:
        """Forget what this worker holds for ``partitions`` (newly assigned, perhaps again).

        The consumer resumes them from the committed offset, which may be older than the
        state in memory (its acknowledgements were held): that state is dropped, reloaded
        lazily from the table, and the readings after it are replayed. Held events belong to
        the old assignment: they are dropped unacknowledged (their records come again).
        """
        parts = sorted(set(partitions))
        idx = np.flatnonzero(np.isin(self.station_partition, parts)).astype(np.int64)
        self.detectors.forget(idx)
        self._covered[idx] = -1
        for p in parts:
            self._replay_until.pop(p, None)
            self.processed.pop(p, None)
            self._chunks_loaded.pop(p, None)
            self._dirty.pop(p, None)
        self._loaded_chunks = {
            k for k in self._loaded_chunks if int(k.split("/", 1)[0]) not in parts
        }
        ids = self.detectors.ids
        self._loaded_stations -= {str(s) for s in ids[idx].tolist()}
        self.held.clear()

    # -- loading and replays --------------------------------------------------------------
    def load(self, partition: int, stations: npt.NDArray[Any]) -> None:
        """Import the checkpointed state of ``stations`` not seen since the assignment."""
        # Once every chunk of the partition has been read there is nothing left to load:
        # skip the per-batch set work (the steady state of a busy partition).
        if self._chunks_loaded.get(partition, 0) >= STATE_CHUNKS:
            return
        new = set(np.unique(stations).tolist()) - self._loaded_stations
        if not new:
            return
        for chunk in {chunk_of(sid) for sid in new}:
            key = f"{partition}/{chunk}"
            if key in self._loaded_chunks:
                continue
            self._loaded_chunks.add(key)
            self._chunks_loaded[partition] = self._chunks_loaded.get(partition, 0) + 1
            raw = self.table.get(key)
            if not raw:
                continue
            blobs, offset = decode_chunk(raw)
            try:
                self.detectors.import_state(blobs)
            except ValueError as err:
                log.error("detector state of chunk %s not restored: %s", key, err)
                continue
            self._loaded_stations |= set(blobs)
            if offset >= 0:
                self._covered[self.detectors.index_of(blobs)] = offset
                self._replay_until[partition] = max(self._replay_until.get(partition, -1), offset)
        self._loaded_stations |= new

    def skip_replayed(self, partition: int, offset: int, batch: ReadingBatch) -> ReadingBatch:
        """``batch`` (the record at ``offset``) without the readings whose station's restored
        state already includes it."""
        if offset > self._replay_until.get(partition, -1):
            return batch
        idx, known = self.detectors.positions(batch)
        seen = known & (self._covered[idx] >= offset)
        n = int(np.count_nonzero(seen))
        if not n:
            return batch
        self.counters["replayed_readings_skipped"] += n
        return batch.take(np.flatnonzero(~seen))

    # -- progress -------------------------------------------------------------------------
    def mark_dirty(self, idx: npt.NDArray[np.int64] | None = None) -> None:
        """Note the stations the detectors just changed (``idx``, registry indices; by default
        those the last ``process``/``close_hours`` call touched), per readings partition."""
        if idx is None:
            idx = self.detectors.touched_station_index()
        if not len(idx):
            return
        parts = self.station_partition[idx]
        for p in np.unique(parts).tolist():
            self._dirty.setdefault(int(p), set()).update(idx[parts == p].tolist())

    def hold(self, partition: int, event: Any) -> None:
        """``event`` (of ``partition``) is processed: keep it until a checkpoint covers it."""
        self.held.setdefault(partition, []).append(event)
        off = int(event.message.offset)
        if off > self.processed.get(partition, -1):
            self.processed[partition] = off

    def due(self, partitions: Iterable[int], interval_s: float) -> list[int]:
        """Partitions with held events whose last checkpoint is ``interval_s`` old; every
        partition with held events when they are more than :data:`MAX_HELD_EVENTS`."""
        if sum(len(v) for v in self.held.values()) > MAX_HELD_EVENTS:
            return sorted(p for p, v in self.held.items() if v)
        now = time.monotonic()
        return sorted(
            p
            for p in set(partitions)
            if self.held.get(p) and now - self._last.get(p, -1e18) >= interval_s
        )

    def checkpoint(self, partition: int) -> tuple[list[Any], list[Any]]:
        """Write the partition's changed chunks with the offset they include; return the
        changelog delivery futures and the held events to acknowledge once they resolve."""
        self._last[partition] = time.monotonic()
        events = self.held.pop(partition, [])
        offset = self.processed.get(partition, -1)
        dirty = self._dirty.pop(partition, set())
        futs: list[Any] = []
        if not dirty:
            return futs, events
        ids = self.detectors.ids
        by_chunk: dict[int, list[str]] = {}
        for i in dirty:
            sid = str(ids[i])
            by_chunk.setdefault(chunk_of(sid), []).append(sid)
        for chunk, sids in by_chunk.items():
            key = f"{partition}/{chunk}"
            old = self.table.get(key)
            blobs = decode_chunk(old)[0] if old else {}
            blobs.update(self.detectors.export_state(sids))
            futs.append(self._put(partition, key, encode_chunk(blobs, offset)))
        # The partition's drill clock, kept apart from the chunks (which load lazily, station
        # by station) so that a worker that takes the partition over reports it at once.
        ex = self.detectors.exercise_clock_ms(np.fromiter(dirty, np.int64, len(dirty)))
        if ex is not None and ex > self.drill_clock(partition):
            futs.append(self._put(partition, drill_clock_key(partition), ex.to_bytes(8, "little")))
        self.counters["state_checkpoints"] += 1
        self.counters["state_chunks_written"] += len(by_chunk)
        return futs, events

    def drill_clock(self, partition: int) -> int:
        raw = self.table.get(drill_clock_key(partition))
        return int.from_bytes(raw, "little") if raw else 0

    def _put(self, partition: int, key: str, value: bytes) -> Any:
        """Set ``key`` in the table and send it to its changelog partition ``partition``
        (the readings partition: the worker that takes it over restores it from there)."""
        return put_to_partition(self.table, partition, key, value)
