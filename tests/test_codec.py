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


@settings(max_examples=300, deadline=None)
@given(reading_batches())
def test_round_trip_is_exact(batch: ReadingBatch) -> None:
    raw = encode_batch(batch)
    assert record_version(raw) == VERSION
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
    with pytest.raises(CodecError, match="version 2 is not supported"):
        decode_batch(raw[:2] + b"\x02" + raw[3:])
    with pytest.raises(CodecError, match="bad magic"):
        decode_batch(b"{" + raw[1:])
    with pytest.raises(CodecError, match="truncated"):
        decode_batch(raw[:-9])
    bad_kind = bytearray(raw)
    bad_kind[-16] = 9  # the kind column (u8[1] + 7 pad, then exercise u8[1] + 7 pad)
    with pytest.raises(CodecError, match="unknown kind"):
        decode_batch(bytes(bad_kind))
