"""The `readings` record encoding: one :class:`~gyeongbo.batch.ReadingBatch` per Kafka record.

Why this encoding
-----------------
A worker decodes every record on the hot path (docs/design.md §2, §8: ≥ 50,000 readings/s per
core), so the format is a small fixed header followed by the raw little-endian buffers of
the numpy columns. Decoding is ``np.frombuffer`` per column (no per-reading Python work, no
parser), encoding is ``ndarray.tobytes``. Floats travel bit for bit, so NaN ("this reading
does not carry that value") and ``-0.0`` round-trip exactly. A general serializer (msgpack,
JSON) would either box every value or need the same column layout inside it anyway; Arrow
IPC would do the job but is a large dependency for seven columns. Station ids repeat a lot
inside a batch, so they are dictionary-encoded (unique ids once + a uint32 index per row).

Layout, version 1 (all integers little-endian; every column starts 8-byte aligned from the
start of the record, padding bytes are zero)::

    magic   2 bytes  b"GB"
    version u8       1
    flags   u8       bit 0: received_ms column present
    n       u32      number of readings
    n_ids   u32      number of distinct station ids
    n_vals  u16      number of value columns
    pad     u16      0
    ids     u16[n_ids] byte length of each id, then the UTF-8 ids concatenated, pad to 8
    names   n_vals × (u8 length + ASCII name), pad to 8
    station u32[n]   index into ids
    ts_ms   i64[n]
    seq     i64[n]   (-1 = no seq)
    recv    i64[n]   only when flags bit 0
    values  n_vals × f64[n], in the order of ``names``
    kind    u8[n]
    exer    u8[n]    0/1

Version 2 is version 1 plus the registry positions the bridge resolved for each reading's
station (:attr:`~gyeongbo.batch.ReadingBatch.station_index`), so that a worker with the same
registry skips looking the ids up (about 5 % of the detector set's time); after ``station``::

    digest  u64      ids digest of the bridge's registry (gyeongbo.registry.ids_digest)
    index   i32[n]   registry position of each reading's station

A batch without positions is still written as version 1, which workers of every version
read; a worker must understand version 2 before a bridge that writes it is deployed (this
one reads both).

A reader must check the version byte: a new version is added beside the old ones (a new
version number), never by changing one. Decoded numeric columns are read-only views on the
record's bytes (zero copy); copy them before modifying in place.

>>> import numpy as np
>>> from gyeongbo.batch import ReadingBatch
>>> b = ReadingBatch.from_rows([{"station": "1018683", "kind": "water_level",
...     "ts_ms": 1596678600000, "seq": 7, "values": {"level_m": 8.36}}])
>>> raw = encode_batch(b)
>>> raw[:3]
b'GB\\x01'
>>> decode_batch(raw).to_rows() == b.to_rows()
True
"""

from __future__ import annotations

import struct

import numpy as np
import numpy.typing as npt

from gyeongbo.batch import KINDS_BY_CODE, ReadingBatch

__all__ = ["MAGIC", "VERSION", "CodecError", "decode_batch", "encode_batch", "record_version"]

MAGIC = b"GB"
VERSION = 2  # the newest this code writes (with positions); it reads 1 and 2
_VERSIONS = (1, 2)
_FLAG_RECEIVED = 0x01
_HEADER = struct.Struct("<2sBBIIHH")  # 16 bytes


class CodecError(ValueError):
    """The bytes are not a readings record this version of the code understands."""


def _pad(n: int) -> bytes:
    return b"\0" * (-n % 8)


def encode_batch(batch: ReadingBatch) -> bytes:
    """Encode ``batch`` as one ``readings`` record (version 2 when it carries registry
    positions, else version 1; see the module docstring)."""
    n = len(batch)
    if n:
        uniq, inverse = np.unique(batch.station, return_inverse=True)
    else:
        uniq, inverse = np.array([], dtype=np.str_), np.array([], dtype=np.intp)
    ids = [str(s).encode("utf-8") for s in uniq.tolist()]
    names = list(batch.values)
    flags = _FLAG_RECEIVED if batch.received_ms is not None else 0
    version = 1 if batch.station_index is None else 2
    parts: list[bytes] = [_HEADER.pack(MAGIC, version, flags, n, len(ids), len(names), 0)]
    size = _HEADER.size

    def add(chunk: bytes) -> None:
        nonlocal size
        parts.append(chunk)
        size += len(chunk)
        pad = _pad(size)
        if pad:
            parts.append(pad)
            size += len(pad)

    lens = np.array([len(i) for i in ids], dtype="<u2")
    if any(len(i) > 0xFFFF for i in ids):
        raise CodecError("a station id is longer than 65535 bytes")
    add(lens.tobytes() + b"".join(ids))
    name_bytes = b""
    for name in names:
        nb = name.encode("ascii")
        if len(nb) > 255:
            raise CodecError(f"value name too long: {name!r}")
        name_bytes += bytes([len(nb)]) + nb
    add(name_bytes)
    add(np.ascontiguousarray(inverse, dtype="<u4").tobytes())
    if batch.station_index is not None:
        add(struct.pack("<Q", batch.index_digest))
        add(np.ascontiguousarray(batch.station_index, dtype="<i4").tobytes())
    add(np.ascontiguousarray(batch.ts_ms, dtype="<i8").tobytes())
    add(np.ascontiguousarray(batch.seq, dtype="<i8").tobytes())
    if batch.received_ms is not None:
        add(np.ascontiguousarray(batch.received_ms, dtype="<i8").tobytes())
    for name in names:
        add(np.ascontiguousarray(batch.values[name], dtype="<f8").tobytes())
    add(np.ascontiguousarray(batch.kind, dtype=np.uint8).tobytes())
    add(np.ascontiguousarray(batch.exercise, dtype=np.uint8).tobytes())
    return b"".join(parts)


def record_version(raw: bytes) -> int:
    """The format version of a record (raises :class:`CodecError` if it is not one)."""
    if len(raw) < _HEADER.size or raw[:2] != MAGIC:
        raise CodecError("not a gyeongbo readings record (bad magic)")
    return raw[2]


class _Reader:
    def __init__(self, raw: bytes | memoryview) -> None:
        self.buf = memoryview(raw)
        self.pos = _HEADER.size

    def take(self, nbytes: int) -> memoryview:
        end = self.pos + nbytes
        if end > len(self.buf):
            raise CodecError(f"record truncated: need {end} bytes, have {len(self.buf)}")
        out = self.buf[self.pos : end]
        self.pos = end + (-end % 8)
        return out

    def array(self, dtype: str, n: int) -> npt.NDArray[np.generic]:
        itemsize = np.dtype(dtype).itemsize
        return np.frombuffer(self.take(itemsize * n), dtype=dtype)


def decode_batch(raw: bytes | memoryview) -> ReadingBatch:
    """Decode one ``readings`` record into a :class:`ReadingBatch` (the inverse of
    :func:`encode_batch`). Raises :class:`CodecError` on anything malformed or of an unknown
    version."""
    version = record_version(bytes(raw[: _HEADER.size]))
    if version not in _VERSIONS:
        raise CodecError(
            f"readings record version {version} is not supported (this code: {_VERSIONS})"
        )
    _, _, flags, n, n_ids, n_vals, _ = _HEADER.unpack_from(raw, 0)
    r = _Reader(raw)
    # station dictionary
    id_block_len = 2 * n_ids
    if r.pos + id_block_len > len(r.buf):
        raise CodecError("record truncated in the station dictionary")
    lens = np.frombuffer(r.buf[r.pos : r.pos + id_block_len], dtype="<u2").astype(np.int64)
    total = id_block_len + int(lens.sum())
    block = bytes(r.take(total))
    ids: list[str] = []
    off = id_block_len
    try:
        for ln in lens.tolist():
            ids.append(block[off : off + ln].decode("utf-8"))
            off += ln
    except UnicodeDecodeError as err:
        raise CodecError(f"station id is not UTF-8: {err}") from None
    # value names
    names: list[str] = []
    pos = r.pos
    for _ in range(n_vals):
        if pos >= len(r.buf):
            raise CodecError("record truncated in the value names")
        ln = r.buf[pos]
        names.append(bytes(r.buf[pos + 1 : pos + 1 + ln]).decode("ascii"))
        pos += 1 + ln
    r.take(pos - r.pos)
    idx = r.array("<u4", n)
    if n and n_ids and int(idx.max()) >= n_ids:
        raise CodecError("station index out of range")
    if n and not n_ids:
        raise CodecError("readings without a station dictionary")
    station = np.array(ids, dtype=np.str_)[idx] if n else np.array([], dtype=np.str_)
    index: npt.NDArray[np.int32] | None = None
    digest = 0
    if version == 2:
        digest = int(r.array("<u8", 1)[0])
        index = r.array("<i4", n)  # type: ignore[assignment]
        if not digest:
            raise CodecError("registry positions without a registry digest")
    ts_ms = r.array("<i8", n)
    seq = r.array("<i8", n)
    received = r.array("<i8", n) if flags & _FLAG_RECEIVED else None
    values = {name: r.array("<f8", n) for name in names}
    kind = r.array("u1", n)
    if n and int(kind.max()) >= len(KINDS_BY_CODE):
        raise CodecError(f"unknown kind code {int(kind.max())}")
    exercise = r.array("u1", n).view(np.bool_)
    return ReadingBatch(
        station=station,
        kind=kind,  # type: ignore[arg-type]
        ts_ms=ts_ms,  # type: ignore[arg-type]
        seq=seq,  # type: ignore[arg-type]
        exercise=exercise,
        values=values,  # type: ignore[arg-type]
        received_ms=received,  # type: ignore[arg-type]
        station_index=index,
        index_digest=digest,
    )
