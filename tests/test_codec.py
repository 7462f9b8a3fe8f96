"""The `readings` record codec: exact round trip (property test) and clear refusals."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyeongbo.batch import KINDS_BY_CODE, VALUE_NAMES, ReadingBatch
from streams.codec import VERSION, CodecError, decode_batch, encode_batch, record_version

_float_bits = st.integers(0, 2**64 - 1).map(lambda u: np.array([u], np.uint64).view(np.float64)[0])
_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), _float_bits)
_station = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
    min_size=1,
    max_size=12,
)


@st.composite
def reading_batches(draw: st.DrawFn) -> ReadingBatch:
    n = draw(st.integers(0, 40))
    ids = draw(st.lists(_station, min_size=1, max_size=6))
    names = draw(st.lists(st.sampled_from(VALUE_NAMES), unique=True, max_size=len(VALUE_NAMES)))
    i64 = st.integers(-(2**63), 2**63 - 1)

    def col(elems: st.SearchStrategy[Any], dtype: Any) -> Any:
        return np.array(draw(st.lists(elems, min_size=n, max_size=n)), dtype=dtype)

    return ReadingBatch(
        station=np.array(
            draw(st.lists(st.sampled_from(ids), min_size=n, max_size=n)), dtype=np.str_
        )
        if n
        else np.array([], dtype=np.str_),
        kind=col(st.integers(0, len(KINDS_BY_CODE) - 1), np.uint8),
        ts_ms=col(i64, np.int64),
        seq=col(st.integers(-1, 2**63 - 1), np.int64),
        exercise=col(st.booleans(), np.bool_),
        values={name: col(_floats, np.float64) for name in names},
        received_ms=col(i64, np.int64) if draw(st.booleans()) else None,
        **(
            {
                "station_index": col(st.integers(-(2**31), 2**31 - 1), np.int32),
                "index_digest": draw(st.integers(1, 2**64 - 1)),
            }
            if draw(st.booleans())
            else {}
        ),
    )


def assert_same(a: ReadingBatch, b: ReadingBatch) -> None:
    assert b.station.tolist() == a.station.tolist()
    for name in ("kind", "ts_ms", "seq", "exercise"):
        x, y = getattr(a, name), getattr(b, name)
        assert y.dtype == x.dtype, name
        assert np.array_equal(x, y), name
    assert list(b.values) == list(a.values)
    for name, col in a.values.items():
        assert b.values[name].dtype == np.float64
        # bit for bit: NaN payloads, -0.0 and infinities survive
        assert np.array_equal(col.view(np.uint64), b.values[name].view(np.uint64)), name
    if a.received_ms is None:
        assert b.received_ms is None
    else:
        assert b.received_ms is not None
        assert np.array_equal(a.received_ms, b.received_ms)
    assert b.index_digest == a.index_digest
    if a.station_index is None:
        assert b.station_index is None
    else:
        assert b.station_index is not None and b.station_index.dtype == np.int32
        assert np.array_equal(a.station_index, b.station_index)


@settings(max_examples=300, deadline=None)
@given(reading_batches())
def test_round_trip_is_exact(batch: ReadingBatch) -> None:
    raw = encode_batch(batch)
    # version 1 without registry positions (every worker reads it), 2 with them
    assert record_version(raw) == (1 if batch.station_index is None else VERSION)
    assert_same(batch, decode_batch(raw))
    assert encode_batch(decode_batch(raw)) == raw


def test_round_trip_keeps_nan_for_absent_values_and_received_time() -> None:
    b = ReadingBatch.from_rows(
        [
            {
                "station": "1018683",
                "kind": "water_level",
                "ts_ms": 1596678600000,
                "seq": 1,
                "values": {"level_m": 8.36},
                "received_ms": 1596678600100,
            },
            {
                "station": "111131",
                "kind": "air_quality",
                "ts_ms": 1596678600000,
                "values": {"pm25_ugm3": 80.0},
                "exercise": True,
                "received_ms": 1596678600200,
            },
        ]
    )
    d = decode_batch(encode_batch(b))
    assert d.to_rows() == b.to_rows()
    assert np.isnan(d.values["level_m"][1]) and np.isnan(d.values["pm25_ugm3"][0])


def test_catalogue_event_columns_travel_in_version_1_records() -> None:
    event = {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15.0}
    rows = [
        {
            "station": "KMA-GYEONGJU-ACC",
            "kind": "seismic",
            "ts_ms": 1473679982000 + k,
            "seq": k,
            "values": {"pga_g": 0.2},
        }
        for k in range(3)
    ]
    rows[1]["event"] = event
    b = ReadingBatch.from_rows(rows)
    raw = encode_batch(b)
    assert record_version(raw) == 1
    d = decode_batch(raw)
    assert d.event_mask().tolist() == [False, True, False]
    assert [r.get("event") for r in d.to_rows()] == [None, event, None]
    assert d.to_rows()[1]["values"] == {"pga_g": 0.2}
    # a selection (the bridge's per-partition split) keeps the event on its row
    assert decode_batch(encode_batch(d.take(np.array([1])))).to_rows()[0]["event"] == event


def test_columns_are_eight_byte_aligned() -> None:
    b = ReadingBatch.from_rows(
        [
            {"station": "abc", "kind": "seismic", "ts_ms": i, "values": {"pga_g": 0.1}}
            for i in range(3)
        ]
    )
    d = decode_batch(encode_batch(b))
    assert all(a.flags.aligned for a in (d.ts_ms, d.seq, d.values["pga_g"]))


def test_refuses_what_it_does_not_understand() -> None:
    raw = encode_batch(
        ReadingBatch.from_rows(
            [{"station": "s", "kind": "seismic", "ts_ms": 1, "values": {"pga_g": 0.1}}]
        )
    )
    with pytest.raises(CodecError, match="version 3 is not supported"):
        decode_batch(raw[:2] + b"\x03" + raw[3:])
    with pytest.raises(CodecError, match="bad magic"):
        decode_batch(b"{" + raw[1:])
    with pytest.raises(CodecError, match="truncated"):
        decode_batch(raw[:-9])
    bad_kind = bytearray(raw)
    bad_kind[-16] = 9  # the kind column (u8[1] + 7 pad, then exercise u8[1] + 7 pad)
    with pytest.raises(CodecError, match="unknown kind"):
        decode_batch(bytes(bad_kind))


def test_registry_positions_travel_in_version_2_records() -> None:
    rows = [
        {"station": sid, "kind": "water_level", "ts_ms": 1, "values": {"level_m": 1.0}}
        for sid in ("b", "a", "b")
    ]
    plain = ReadingBatch.from_rows(rows)
    b = ReadingBatch(
        **{f: getattr(plain, f) for f in ("station", "kind", "ts_ms", "seq", "exercise")},
        values=plain.values,
        station_index=np.array([1, 0, 1], np.int32),
        index_digest=2**64 - 5,
    )
    raw = encode_batch(b)
    assert record_version(raw) == 2 and record_version(encode_batch(plain)) == 1
    d = decode_batch(raw)
    assert d.station_index is not None and d.station_index.tolist() == [1, 0, 1]
    assert d.index_digest == 2**64 - 5 and d.station.tolist() == ["b", "a", "b"]
    assert d.take(np.array([2, 1])).station_index.tolist() == [1, 0]  # type: ignore[union-attr]
    with pytest.raises(CodecError, match="truncated"):
        decode_batch(raw[:-40])
    zero = bytearray(raw)
    at = raw.index((2**64 - 5).to_bytes(8, "little"))
    zero[at : at + 8] = bytes(8)
    with pytest.raises(CodecError, match="without a registry digest"):
        decode_batch(bytes(zero))
    with pytest.raises(ValueError, match="index_digest"):
        ReadingBatch(**{**b.__dict__, "index_digest": 0})


def test_joined_batches_keep_positions_only_from_one_registry() -> None:
    def part(sid: str, pos: int | None, digest: int) -> ReadingBatch:
        b = ReadingBatch.from_rows(
            [{"station": sid, "kind": "rainfall", "ts_ms": 1, "values": {"rain_mm": 1.0}}]
        )
        if pos is None:
            return b
        return ReadingBatch(
            **{**b.__dict__, "station_index": np.array([pos], np.int32), "index_digest": digest}
        )

    both = ReadingBatch.concat([part("a", 0, 7), part("b", 1, 7)])
    assert both.station_index is not None and both.station_index.tolist() == [0, 1]
    assert both.index_digest == 7
    for mixed in ([part("a", 0, 7), part("b", 1, 8)], [part("a", 0, 7), part("b", None, 0)]):
        joined = ReadingBatch.concat(mixed)
        assert joined.station_index is None and joined.index_digest == 0
        assert record_version(encode_batch(joined)) == 1
