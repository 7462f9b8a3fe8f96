"""Detector state and consumer progress: a restored worker replays from an older offset and
counts no reading twice, loses none (pure: the detectors, a dict as the table)."""

from __future__ import annotations

from typing import Any

from detectors.engine import DetectorSet
from gyeongbo.batch import ReadingBatch
from gyeongbo.registry import REPO_ROOT, load_registry
from streams.detector_state import StateBook, decode_chunk

REG = load_registry(REPO_ROOT / "config" / "stations.yaml")
T0 = 1596661200000  # 2020-08-06 06:00 KST
RAIN = [4.0, 9.0, 12.0, 15.0, 14.0, 18.0, 21.0, 9.0, 6.0, 2.0, 0.5, 0.0]


class Table(dict[str, bytes]):
    """The part of a Faust table the book uses; changelog sends are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.data = self
        self.changelog: list[tuple[int, str]] = []

    def send_changelog(self, partition: int, key: str, value: bytes) -> Any:
        self.changelog.append((partition, key))
        return None


class Event:
    def __init__(self, partition: int, offset: int) -> None:
        self.message = type("M", (), {"partition": partition, "offset": offset})()


def record(k: int) -> ReadingBatch:
    """Record k: one 10-minute rain reading of Seoul (108) and one Hangang level."""
    return ReadingBatch.from_rows(
        [
            {"station": "108", "kind": "rainfall", "ts_ms": T0 + k * 600_000, "seq": k,
             "values": {"rain_mm": RAIN[k]}},
            {"station": "1018683", "kind": "water_level", "ts_ms": T0 + k * 600_000, "seq": k,
             "values": {"level_m": 8.0 + 0.2 * k}},
        ]
    )  # fmt: skip


def run(book: StateBook, offsets: range, partition: int = 0) -> list[tuple[str, str, int]]:
    out = []
    for off in offsets:
        batch = record(off)
        book.load(partition, batch.station)  # the worker's order: load, then skip
        batch = book.skip_replayed(partition, off, batch)
        dets = book.detectors.process(batch)
        book.mark_dirty()
        book.hold(partition, Event(partition, off))
        out += [(d.rule, d.level, d.ts_ms) for d in dets]
    return out


def test_a_restored_worker_replays_from_its_commit_and_counts_nothing_twice() -> None:
    # one partition for every station: the records are that partition's
    clean = StateBook(DetectorSet(REG), Table(), 1)
    want = run(clean, range(12))

    table = Table()
    first = StateBook(DetectorSet(REG), table, 1)
    got = run(first, range(7))
    futs, acked = first.checkpoint(0)  # covers records 0..6; acknowledges them
    assert len(futs) == len(table.changelog)  # one delivery to wait for per record written
    assert [e.message.offset for e in acked] == list(range(7)) and not first.held
    assert {key for _, key in table.changelog} >= {k for k in table if "/" in k}
    got += run(first, range(7, 9))  # processed, sent, not checkpointed: then a crash
    # The restarted worker resumes from the committed offset, older than its checkpoint
    # (committed at record 3): records 4..6 are in the restored state, 7..8 are not.
    again = StateBook(DetectorSet(REG), table, 1)
    replay = run(again, range(4, 12))
    assert again.counters["replayed_readings_skipped"] == 2 * 3  # records 4, 5, 6
    # the replay sends records 7 and 8's detections again (the alert machine ignores them),
    # and the rest as a clean run does; the state ends where a clean run's does
    assert got + [d for d in replay if d not in got] == want
    assert again.detectors.export_state() == clean.detectors.export_state()


def test_chunks_carry_the_offset_they_include() -> None:
    table = Table()
    book = StateBook(DetectorSet(REG), table, 1)
    run(book, range(3))
    book.checkpoint(0)
    chunks = [decode_chunk(v) for k, v in table.items() if "/" in k and "drill" not in k]
    assert chunks and all(off == 2 for _, off in chunks)
    assert sorted(s for blobs, _ in chunks for s in blobs) == ["1018683", "108"]
