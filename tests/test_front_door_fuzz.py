"""A front door no payload can stop: any byte string becomes readings or rejections with a
reason, and every rejection can be written to ``readings.rejected`` (valid UTF-8 JSON that
keeps the payload). Property tests with hypothesis, and the classes of #18 by name: a lone
surrogate escape, duplicate keys (``exercise`` true then false), 10,000 levels of nesting,
an oversized payload, bytes that are not UTF-8. The same classes through the real mosquitto
and bridge: ``tests/test_front_door.py``."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gyeongbo.registry import REPO_ROOT, load_registry
from streams.bridge import rejection_bytes
from streams.validate import (
    MAX_DEPTH,
    MAX_STORED_RAW,
    Limits,
    Parsed,
    Reason,
    Validator,
    structural_colons,
)

ROOT = "gyeongbo/v1/readings"
NOW = 1_796_000_000_000
WL = f"{ROOT}/water_level/1018683"
BATCH = f"{ROOT}/water_level/_batch/hrfco-seoul"
REG = load_registry(REPO_ROOT / "config" / "stations.yaml")
LIMIT = 64 * 1024
V = Validator(REG, Limits(max_payload_bytes=LIMIT, max_future_s=300, max_past_s=86_400))
REASONS = {r.value for r in Reason}


def door(topic: str, payload: bytes) -> tuple[Parsed, list[dict[str, Any]]]:
    """Parse as the bridge does, and write every rejection as the bridge would."""
    p = V.parse(topic, payload, received_ms=NOW)
    assert p.readings or p.rejections, "a payload vanished"
    docs = []
    for rej in p.rejections:
        key, value = rejection_bytes(rej, topic, payload, NOW)
        key.decode("utf-8")
        doc = json.loads(value.decode("utf-8"))  # strict UTF-8 JSON, whatever came in
        assert doc["reason"] in REASONS and doc["message"]
        if doc["scope"] == "payload":
            raw = (
                base64.b64decode(doc["payload"])
                if doc["payload_encoding"] == "base64"
                else doc["payload"].encode("utf-8")
            )
            if doc.get("payload_truncated"):
                assert doc["payload_sha256"] == hashlib.sha256(payload).hexdigest()
                assert raw == payload[: len(raw)]
            else:
                assert raw == payload  # the raw payload is kept, byte for byte
        docs.append(doc)
    return p, docs


def reasons(topic: str, payload: bytes) -> list[str]:
    return [d["reason"] for d in door(topic, payload)[1]]


def reading(**over: Any) -> dict[str, Any]:
    r = {"station": "1018683", "ts": NOW, "seq": 1, "values": {"level_m": 8.36}}
    r.update(over)
    return r


# -- the named classes ---------------------------------------------------------------------
def test_a_lone_surrogate_escape_is_malformed_and_its_rejection_is_written() -> None:
    payload = b'{"station": "\\ud800", "ts": 1796000000000, "values": {"level_m": 1}}'
    (_, [doc]) = door(WL, payload)
    assert doc["reason"] == "malformed_json" and "lone UTF-16 surrogate" in doc["message"]
    assert doc["payload"] == payload.decode() and doc["payload_encoding"] == "text"
    # in a batch, in a key, paired correctly (a valid pair is a character: accepted)
    assert reasons(BATCH, b'[{"\\udfff": 1}]') == ["malformed_json"]
    pair = json.dumps([reading(station="\U0001f30a")]).encode()  # "\ud83c\udf0a"
    assert b"\\ud83c\\udf0a" in pair and reasons(BATCH, pair) == ["unknown_station"]


def test_duplicate_keys_are_refused_whole_and_exercise_can_never_be_flipped() -> None:
    flip = (
        b'{"station": "1018683", "ts": 1796000000000, "values": {"level_m": 8.4}, '
        b'"exercise": true, "exercise": false}'
    )
    p, [doc] = door(WL, flip)
    assert p.readings == [] and doc["reason"] == "duplicate_key"
    assert "'exercise'" in doc["message"]
    nested = b'{"station": "1018683", "ts": 1796000000000, "values": {"level_m": 1, "level_m": 99}}'
    assert reasons(WL, nested) == ["duplicate_key"]
    in_batch = json.dumps([reading(), reading(seq=2)]).encode()[:-1] + b', {"a": 1, "a": 1}]'
    assert reasons(BATCH, in_batch) == ["duplicate_key"]  # one bad object: the whole payload
    # a key spelled with an escape is the same key; a colon inside a string is not a member
    assert reasons(WL, b'{"seq": 1, "s\\u0065q": 2}') == ["duplicate_key"]
    ok = json.dumps(reading(ts="2026-11-30T09:53:20+09:00")).encode()
    assert door(WL, ok)[1] == []
    # a catalogue event may carry fields the contract does not read: they are looked into
    quake = {
        "station": "KMA-GYEONGJU-ACC",
        "ts": "2026-11-30T09:53:20+09:00",
        "values": {"pga_g": 0.2},
        "event": {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15, "src": "a:b"},
    }
    acc = f"{ROOT}/seismic/KMA-GYEONGJU-ACC"
    assert door(acc, json.dumps(quake).encode())[1] == []
    twice = json.dumps(quake).encode().replace(b'"src": "a:b"', b'"x": {"a": 1, "a": 2}')
    assert reasons(acc, twice) == ["duplicate_key"]
    # the NaN path (read by the standard library) refuses duplicates too
    assert reasons(WL, b'{"values": {"level_m": NaN}, "values": {}}') == ["duplicate_key"]


def test_nesting_deeper_than_the_limit_is_too_deep_not_an_internal_error() -> None:
    assert reasons(WL, b"[" * 10_000 + b"]" * 10_000) == ["too_deep"]
    assert reasons(WL, b'{"a":' * 10_000 + b"1" + b"}" * 10_000) == ["too_deep"]
    deep = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert reasons(WL, deep) == ["too_deep"]
    fits = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert reasons(WL, fits) == ["wrong_type"]  # deep enough to be refused for what it is
    assert reasons(WL, b"[" * 10_000 + b"NaN" + b"]" * 10_000) == ["too_deep"]


def test_an_oversized_payload_is_recorded_with_its_digest() -> None:
    big = json.dumps([reading(seq=i) for i in range(2000)]).encode()
    assert len(big) > LIMIT
    (_, [doc]) = door(BATCH, big)
    assert doc["reason"] == "payload_too_large" and doc["payload_bytes"] == len(big)
    huge = b"\xff" * (MAX_STORED_RAW + 10)
    (_, [doc]) = door(WL, huge)
    assert doc["payload_truncated"] and doc["payload_encoding"] == "base64"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "malformed_json"),
        (b"\xff\xfe\x00 not utf-8", "malformed_json"),
        (b'{"station": "\xed\xa0\x80"}', "malformed_json"),  # a surrogate encoded in UTF-8
        (b'{"station": "1018683", "ts": 1796000000000, "values": {"level_m": NaN}}', "non_finite"),
        (b"null", "wrong_type"),
        (b"1e999", "wrong_type"),
    ],
)
def test_other_bytes_each_have_their_reason(payload: bytes, reason: str) -> None:
    assert reasons(WL, payload) == [reason]


# -- properties ------------------------------------------------------------------------------
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048), st.sampled_from([WL, BATCH, f"{ROOT}/x", "elsewhere"]))
@example(b'{"station": "\\ud800"}', WL)
@example(b"[" * 3000, WL)
def test_any_bytes_become_readings_or_written_rejections(payload: bytes, topic: str) -> None:
    door(topic, payload)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON, st.booleans())
def test_any_json_becomes_readings_or_written_rejections(doc: Any, ascii_only: bool) -> None:
    door(BATCH, json.dumps(doc, ensure_ascii=ascii_only).encode())


def _members(doc: Any) -> int:
    if isinstance(doc, dict):
        return len(doc) + sum(_members(v) for v in doc.values())
    if isinstance(doc, list):
        return sum(_members(v) for v in doc)
    return 0


@settings(max_examples=300, deadline=None)
@given(JSON, st.booleans(), st.booleans())
def test_structural_colons_count_members_small_and_large(
    doc: Any, ascii_only: bool, pad: bool
) -> None:
    text = json.dumps(doc, ensure_ascii=ascii_only).encode()
    if pad:
        text = b" " * 2100 + text  # the numpy path
    assert structural_colons(text) == _members(doc)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.text(max_size=4), JSON), min_size=1, max_size=5),
    st.data(),
)
def test_any_repeated_key_is_found(pairs: list[tuple[str, Any]], data: st.DataObject) -> None:
    key = data.draw(st.sampled_from([k for k, _ in pairs]))
    pairs = [*pairs, (key, data.draw(JSON))]
    obj = "{" + ", ".join(f"{json.dumps(a)}: {json.dumps(b)}" for a, b in pairs) + "}"
    wrapped = data.draw(st.sampled_from(["{}", "[{}]", '{{"values": {}}}']))
    assert reasons(WL, wrapped.format(obj).encode()) == ["duplicate_key"]
