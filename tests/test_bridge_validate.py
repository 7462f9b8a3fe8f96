"""Payload validation as plain functions: payloads in, (readings, reasons) out."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from gyeongbo.registry import REPO_ROOT, load_registry
from streams.bridge import SeenWindow
from streams.validate import (
    MAX_STORED_RAW,
    Limits,
    Reason,
    TopicInfo,
    Validator,
    parse_topic,
    readings_batch,
    rejection_record,
)

ROOT = "gyeongbo/v1/readings"
NOW = 1_796_000_000_000  # 2026-11-30T00:53:20Z
WL = f"{ROOT}/water_level/1018683"
REG = load_registry(REPO_ROOT / "config" / "stations.yaml")
V = Validator(REG, Limits(max_payload_bytes=4096, max_future_s=300, max_past_s=86_400))


def ok(**over: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"station": "1018683", "ts": NOW, "seq": 1, "values": {"level_m": 8.36}}
    r.update(over)
    return {k: v for k, v in r.items() if v is not _DROP}


_DROP = object()


def parse(
    topic: str, payload: Any
) -> tuple[list[tuple[str, int, int, dict[str, float]]], list[str]]:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    p = V.parse(topic, raw, received_ms=NOW)
    return [(r.station, r.ts_ms, r.seq, r.values) for r in p.readings], [
        r.reason.value for r in p.rejections
    ]


def test_single_reading_with_rfc3339_and_epoch_ms() -> None:
    assert parse(WL, ok(ts="2026-11-30T09:53:20+09:00")) == (
        [("1018683", NOW, 1, {"level_m": 8.36})],
        [],
    )
    assert parse(WL, ok(ts="2026-11-30T00:53:20.250Z", seq=_DROP)) == (
        [("1018683", NOW + 250, -1, {"level_m": 8.36})],
        [],
    )


def test_gateway_batch_keeps_the_good_and_rejects_each_bad_reading() -> None:
    items = [
        {"station": "111131", "ts": NOW, "seq": 5, "values": {"pm10_ugm3": 151, "pm25_ugm3": 80}},
        {"station": "111131", "ts": NOW, "seq": 6, "values": {"pm10_ugm3": -3}},
        {"station": "1018683", "ts": NOW, "values": {"level_m": 1}},
        "not an object",
        {"station": "111141", "ts": NOW, "values": {"o3_ppm": 0.13}, "exercise": True},
    ]
    good, bad = parse(f"{ROOT}/air_quality/_batch", items)
    assert good == [
        ("111131", NOW, 5, {"pm10_ugm3": 151.0, "pm25_ugm3": 80.0}),
        ("111141", NOW, -1, {"o3_ppm": 0.13}),
    ]
    assert bad == ["out_of_range", "kind_mismatch", "wrong_type"]


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (WL, b'{"station": "1018683", "ts": ', "malformed_json"),
        (WL, b"\xff\xfe not utf-8", "malformed_json"),
        (WL, b"[]", "empty_batch"),
        (WL, b'"a string"', "wrong_type"),
        (WL, b"x" * 4097, "payload_too_large"),
        (f"{ROOT}/water_level", ok(), "bad_topic"),
        (f"{ROOT}/lava_flow/1018683", ok(), "bad_topic"),
        (f"{ROOT}/water_level/1018683/extra", ok(), "bad_topic"),
        (WL, ok(station=_DROP), "missing_field"),
        (WL, ok(ts=_DROP), "missing_field"),
        (WL, ok(values=_DROP), "missing_field"),
        (WL, ok(values={}), "missing_field"),
        (WL, ok(station=1018683), "wrong_type"),
        (WL, ok(ts=1.5e12), "wrong_type"),
        (WL, ok(ts=True), "wrong_type"),
        (WL, ok(seq="7"), "wrong_type"),
        (WL, ok(exercise="no"), "wrong_type"),
        (WL, ok(values=[8.36]), "wrong_type"),
        (WL, ok(values={"level_m": "8.36"}), "wrong_type"),
        (WL, ok(values={"level_m": True}), "wrong_type"),
        (WL, ok(battery_v=3.7), "unknown_field"),
        (f"{ROOT}/water_level/9999999", ok(station="9999999"), "unknown_station"),
        (f"{ROOT}/water_level/1018640", ok(), "station_mismatch"),
        (f"{ROOT}/rainfall/1018683", ok(), "kind_mismatch"),
        (f"{ROOT}/water_level/_batch/hrfco-tancheon", [ok()], "foreign_station"),
        (WL, ok(ts="yesterday"), "bad_ts"),
        (WL, ok(ts="2026-11-30T09:53:20"), "bad_ts"),
        (WL, ok(ts=NOW + 301_000), "ts_future"),
        (WL, ok(ts=NOW - 86_401_000), "ts_past"),
        (WL, ok(ts=NOW // 1000), "ts_past"),
        (WL, ok(seq=-5), "bad_seq"),
        (WL, ok(values={"level_cm": 836}), "unknown_value"),
        (WL, ok(values={"pm10_ugm3": 1}), "unknown_value"),
        (
            WL,
            b'{"station": "1018683", "ts": 1796000000000, "values": {"level_m": NaN}}',
            "non_finite",
        ),
        (
            WL,
            b'{"station": "1018683", "ts": 1796000000000, "values": {"level_m": -Infinity}}',
            "non_finite",
        ),
        (
            WL,
            b'{"station": "1018683", "ts": 1796000000000, "values": {"level_m": 1e999}}',
            "non_finite",
        ),
        (WL, ok(values={"level_m": 60.01}), "out_of_range"),
        (
            f"{ROOT}/seismic/KMA-SEOUL-ACC",
            ok(station="KMA-SEOUL-ACC", values={"pga_g": 0.2}, event={"magnitude": 5.8}),
            "bad_event",
        ),
        (
            WL,
            ok(event={"magnitude": 5.8, "lat": 35.7, "lon": 129.1, "depth_km": 15}),
            "unknown_field",
        ),
    ],
)
def test_each_bad_input_has_its_reason(topic: str, payload: Any, reason: str) -> None:
    good, bad = parse(topic, payload)
    assert (good, bad) == ([], [reason])
    rej = V.parse(
        topic,
        payload if isinstance(payload, bytes) else json.dumps(payload).encode(),
        received_ms=NOW,
    ).rejections[0]
    assert rej.message and Reason(reason) is rej.reason


def test_valid_seismic_event_is_counted() -> None:
    ev = {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15}
    p = V.parse(
        f"{ROOT}/seismic/KMA-GYEONGJU-ACC",
        json.dumps(ok(station="KMA-GYEONGJU-ACC", values={"pga_g": 0.3}, event=ev)).encode(),
        received_ms=NOW,
    )
    assert (len(p.readings), p.rejections, p.events) == (1, [], 1)


QK = f"{ROOT}/seismic/KMA-GYEONGJU-ACC"
EVENT = {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15}


def quake(**over: Any) -> dict[str, Any]:
    return ok(**{"station": "KMA-GYEONGJU-ACC", "values": {"pga_g": 0.3}, **over})


def test_a_catalogue_event_goes_to_the_event_columns_of_the_batch() -> None:
    p = V.parse(
        f"{ROOT}/seismic/_batch/kma-seismic",
        json.dumps([quake(seq=1), quake(seq=2, event=EVENT)]).encode(),
        received_ms=NOW,
    )
    assert (p.rejections, p.events) == ([], 1)
    assert [r.values for r in p.readings] == [{"pga_g": 0.3}, {"pga_g": 0.3}]
    b = readings_batch(p.readings, [NOW, NOW])
    assert list(b.values) == [
        "pga_g",
        "event_magnitude",
        "event_lat",
        "event_lon",
        "event_depth_km",
    ]
    assert np.isnan(b.values["event_magnitude"][0]) and b.event_mask().tolist() == [False, True]
    assert [float(b.values[c][1]) for c in list(b.values)[1:]] == [5.8, 35.76, 129.19, 15.0]
    assert b.to_rows()[1]["event"] == {
        "magnitude": 5.8,
        "lat": 35.76,
        "lon": 129.19,
        "depth_km": 15.0,
    }
    assert "event" not in b.to_rows()[0]


@pytest.mark.parametrize(
    "event",
    [
        [5.8, 35.76, 129.19, 15],  # not an object
        {"magnitude": 5.8, "lat": 35.76, "lon": 129.19},  # depth missing
        {**EVENT, "magnitude": 11.0},  # out of range
        {**EVENT, "lat": "35.76"},  # a string
        {**EVENT, "depth_km": True},  # a boolean is not a number
    ],
)
def test_a_bad_event_is_rejected_with_bad_event_and_kept(event: Any) -> None:
    items = [quake(seq=1, event=EVENT), quake(seq=2, event=event)]
    raw = json.dumps(items).encode()
    p = V.parse(f"{ROOT}/seismic/_batch/kma-seismic", raw, received_ms=NOW)
    assert [r.seq for r in p.readings] == [1] and p.events == 1
    (rej,) = p.rejections
    assert rej.reason is Reason.BAD_EVENT and rej.message.startswith("event")
    doc = rejection_record(rej, topic=QK, payload=raw, received_ms=NOW)
    assert (doc["reason"], doc["index"]) == ("bad_event", 1)
    assert json.loads(doc["payload"])["event"] == event  # the reading is kept, event and all


def test_event_columns_are_not_reading_values() -> None:
    assert parse(QK, quake(values={"pga_g": 0.3, "event_magnitude": 5.8})) == (
        [],
        ["unknown_value"],
    )
    assert parse(WL, ok(event=EVENT)) == ([], ["unknown_field"])  # only seismic readings


def test_messages_say_what_was_expected() -> None:
    def msg(payload: Any, topic: str = WL) -> str:
        return V.parse(topic, json.dumps(payload).encode(), received_ms=NOW).rejections[0].message

    assert "level_m (m)" in msg(ok(values={"level_cm": 836}))
    assert "epoch seconds" in msg(ok(ts=NOW // 1000))
    assert "hrfco-seoul" in msg([ok()], f"{ROOT}/water_level/_batch/hrfco-tancheon")
    assert "[-5.0, 60.0] m" in msg(ok(values={"level_m": 61}))


def test_parse_topic() -> None:
    assert parse_topic(f"{ROOT}/seismic/_batch/kma-seismic", ROOT) == TopicInfo(
        kind=__import__("gyeongbo.vocab").vocab.Kind.SEISMIC, station=None, gateway="kma-seismic"
    )
    assert isinstance(parse_topic("other/v1/readings/seismic/x", ROOT), str)


def test_rejection_records_keep_the_raw_payload() -> None:
    raw = b"\xff\xfe not utf-8"
    rej = V.parse(WL, raw, received_ms=NOW).rejections[0]
    doc = rejection_record(rej, topic=WL, payload=raw, received_ms=NOW)
    assert doc["payload_encoding"] == "base64" and base64.b64decode(doc["payload"]) == raw
    assert doc["reason"] == "malformed_json" and doc["topic"] == WL and doc["received_ms"] == NOW

    big = b"[" + b" " * (2 * MAX_STORED_RAW) + b"]"
    v = Validator(REG, Limits(max_payload_bytes=4 * MAX_STORED_RAW))
    rej = v.parse(WL, big, received_ms=NOW).rejections[0]
    doc = rejection_record(rej, topic=WL, payload=big, received_ms=NOW)
    assert doc["reason"] == "empty_batch" and doc["payload_truncated"] is True
    assert doc["payload_bytes"] == len(big) and len(doc["payload"]) == MAX_STORED_RAW

    items = [ok(seq=1), ok(seq=2, values={"level_m": float("nan")})]
    batch_raw = json.dumps(items).encode()  # stdlib writes NaN
    rej = V.parse(WL, batch_raw, received_ms=NOW).rejections[0]
    doc = rejection_record(rej, topic=WL, payload=batch_raw, received_ms=NOW)
    assert (doc["scope"], doc["index"], doc["station"]) == ("reading", 1, "1018683")
    assert json.loads(doc["payload"])["seq"] == 2
    json.dumps(doc, allow_nan=False)  # the record itself is strict JSON


def test_seen_window_is_bounded() -> None:
    w = SeenWindow(3)
    assert [w.seen(("a", i)) for i in (1, 2, 1, 3, 4)] == [False, False, True, False, False]
    assert len(w) == 3 and not w.seen(("a", 1))  # evicted, then remembered again


def test_a_drill_gateways_readings_are_exercise_whatever_they_say() -> None:
    drill = f"{ROOT}/water_level/_batch/drill-lab"
    items = [ok(exercise=False), ok(seq=2, exercise=True), ok(seq=3, exercise=_DROP)]
    p = V.parse(
        drill,
        json.dumps([{k: v for k, v in r.items() if v is not _DROP} for r in items]).encode(),
        received_ms=NOW,
    )
    assert [(r.station, r.exercise) for r in p.readings] == [("1018683", True)] * 3
    # it may name any station of the kind (it owns none); a real gateway's batch may not
    assert parse(f"{ROOT}/water_level/_batch/hrfco-tancheon", [ok()])[1] == ["foreign_station"]
    # a real gateway's readings are real unless they say otherwise
    real = V.parse(WL, json.dumps(ok()).encode(), received_ms=NOW).readings
    assert [r.exercise for r in real] == [False]
