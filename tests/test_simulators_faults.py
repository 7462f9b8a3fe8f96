"""Fault injection produces exactly the stuck, missing, spiked, skewed, duplicated and malformed
payloads it claims (lists in, lists compared)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import REPO_ROOT
from simulators.faults import apply_faults, malformed_payload
from simulators.generator import Reading, generate
from simulators.scenario import MALFORMED_VARIANTS, Fault, load_checked

ANCHOR = 1_596_661_200_000  # 2020-08-06T06:00:00+09:00


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def _readings(n: int = 6) -> list[Reading]:
    return [
        Reading(t_s=600.0 * k, ts_ms=ANCHOR + 600_000 * k, seq=k + 1, values={"level_m": 2.0 + k})
        for k in range(n)
    ]


def _fault(**kw: Any) -> Fault:
    return Fault.model_validate({"station": "1018658", **kw})


def test_stuck_repeats_the_first_value_of_the_window() -> None:
    out = apply_faults(
        _fault(type="stuck", **{"from": 1200, "until": 3000}), 0, _readings(), seed=0
    )
    assert [(r.values["level_m"], r.tag) for r in out] == [
        (2.0, "reading"),
        (3.0, "reading"),
        (4.0, "stuck"),
        (4.0, "stuck"),
        (4.0, "stuck"),
        (7.0, "reading"),
    ]


def test_dropout_removes_the_window() -> None:
    out = apply_faults(
        _fault(type="dropout", **{"from": 600, "until": 1800}), 0, _readings(), seed=0
    )
    assert [r.seq for r in out] == [1, 4, 5, 6]


def test_spikes_at_given_times_to_an_absolute_value() -> None:
    out = apply_faults(_fault(type="spikes", times=[700, 2400], to=9.2), 0, _readings(), seed=0)
    assert [(r.values["level_m"], r.tag) for r in out] == [
        (2.0, "reading"),
        (3.0, "reading"),
        (9.2, "spike"),
        (5.0, "reading"),
        (9.2, "spike"),
        (7.0, "reading"),
    ]


def test_random_spikes_and_duplicates_follow_the_seed() -> None:
    f = _fault(type="spikes", probability=0.5, delta=5.0)
    rs = _readings(40)
    a = [r.tag for r in apply_faults(f, 0, rs, seed=1)]
    assert a == [r.tag for r in apply_faults(f, 0, rs, seed=1)]
    assert a != [r.tag for r in apply_faults(f, 0, rs, seed=2)]
    assert 5 < a.count("spike") < 35
    d = _fault(type="duplicates", probability=0.3)
    assert [r.seq for r in apply_faults(d, 0, rs, seed=1)] == [
        r.seq for r in apply_faults(d, 0, rs, seed=1)
    ]


def test_clock_skew_shifts_ts_in_the_window_only() -> None:
    f = _fault(type="clock_skew", skew="1d", rejected=True, **{"from": 600, "until": 1800})
    out = apply_faults(f, 0, _readings(4), seed=0)
    assert [(r.ts_ms - ANCHOR, r.tag, r.expect_rejected) for r in out] == [
        (0, "reading", False),
        (600_000 + 86_400_000, "skewed", True),
        (1_200_000 + 86_400_000, "skewed", True),
        (1_800_000, "reading", False),
    ]


def test_duplicates_resend_the_same_reading() -> None:
    out = apply_faults(_fault(type="duplicates", nth=2), 0, _readings(4), seed=0)
    assert [(r.seq, r.tag) for r in out] == [
        (1, "reading"),
        (2, "reading"),
        (2, "duplicate"),
        (3, "reading"),
        (4, "reading"),
        (4, "duplicate"),
    ]


def test_every_malformed_variant() -> None:
    got = {
        v: malformed_payload(
            v,
            station="1018658",
            kind="water_level",
            ts_ms=ANCHOR,
            values={"level_m": 1.35},
            other_station="1018640",
        )
        for v in MALFORMED_VARIANTS
    }
    ts = '"ts":"2020-08-06T06:00:00+09:00"'
    assert got == {
        "not_json": (
            "1018658",
            b'{"station":"1018658",' + ts.encode() + b',"values":{"level_m":1.35},"exercise',
        ),
        "empty": ("1018658", b""),
        "missing_ts": (
            "1018658",
            b'{"station":"1018658","values":{"level_m":1.35},"exercise":true}',
        ),
        "bad_ts": (
            "1018658",
            b'{"station":"1018658","ts":"yesterday 25:61",'
            b'"values":{"level_m":1.35},"exercise":true}',
        ),
        "nan_value": (
            "1018658",
            ('{"station":"1018658",' + ts + ',"values":{"level_m":NaN},"exercise":true}').encode(),
        ),
        "string_value": (
            "1018658",
            (
                '{"station":"1018658",' + ts + ',"values":{"level_m":"1.35"},"exercise":true}'
            ).encode(),
        ),
        "unknown_value": (
            "1018658",
            (
                '{"station":"1018658",' + ts + ',"values":{"depth_ft":4.43},"exercise":true}'
            ).encode(),
        ),
        "out_of_range": (
            "1018658",
            (
                '{"station":"1018658",' + ts + ',"values":{"level_m":601.0},"exercise":true}'
            ).encode(),
        ),
        "unknown_station": (
            "ZZ-UNKNOWN-0000",
            (
                '{"station":"ZZ-UNKNOWN-0000",' + ts + ',"values":{"level_m":1.35},"exercise":true}'
            ).encode(),
        ),
        "station_mismatch": (
            "1018658",
            ('{"station":"1018640",' + ts + ',"values":{"level_m":1.35},"exercise":true}').encode(),
        ),
    }
    for variant, (_, payload) in got.items():
        if variant in ("not_json", "empty", "nan_value"):
            with pytest.raises(ValueError):
                json.loads(payload, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))


def test_the_overlay_on_the_flood_produces_the_intended_stream(reg: Registry) -> None:
    sc = load_checked("han-river-flood", reg, overlays=["sensor-faults"])
    gen = generate(sc, reg, seed=5, anchor_ms=ANCHOR)
    pubs = gen.publications
    tags = Counter(p.tag for p in pubs)
    # 대곡교: three spikes to 9.2 m, ten malformed payloads (every 10 min, 20m–2h)
    spikes = [json.loads(p.payload) for p in pubs if p.tag == "spike"]
    assert [(s["station"], s["ts"][11:16], s["values"]) for s in spikes] == [
        ("1018658", "07:00", {"level_m": 9.2}),
        ("1018658", "07:40", {"level_m": 9.2}),
        ("1018658", "08:20", {"level_m": 9.2}),
    ]
    malformed = [p for p in pubs if p.tag.startswith("malformed:")]
    assert [p.tag.split(":")[1] for p in malformed] == list(MALFORMED_VARIANTS)
    assert [round(p.t_s) for p in malformed] == list(range(1200, 7200, 600))
    # 행주대교 is stuck from 1h: one value, repeated exactly, to the end
    haengju = [json.loads(p.payload)["values"]["level_m"] for p in pubs if p.station == "1019630"]
    assert len(set(haengju[6:])) == 1 and len(set(haengju[:6])) > 1
    # 수원 is silent from 1h to 2h30m
    suwon = [p.t_s for p in pubs if p.station == "119"]
    assert not [t for t in suwon if 3600 <= t < 9000]
    assert 3000 in suwon and 9000 in suwon
    # 양평's clock is a day ahead from 30m to 1h30m: six readings, to be dead-lettered
    skewed = [p for p in pubs if p.tag == "skewed"]
    assert [p.station for p in skewed] == ["202"] * 6 and all(p.expect_rejected for p in skewed)
    # 춘천: every third reading sent twice, byte for byte
    chuncheon = [p.payload for p in pubs if p.station == "101"]
    dups = [p for p in pubs if p.tag == "duplicate"]
    assert len(dups) == 132 // 3 and all(chuncheon.count(d.payload) == 2 for d in dups)
    assert gen.expected_rejections == 10 + 6
    assert tags["reading"] + tags["stuck"] + tags["spike"] + tags["skewed"] == 10 * 132 - 9
