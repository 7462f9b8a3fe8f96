"""The generator: payload shape, determinism with a seed, time scaling, gateway batches."""

from __future__ import annotations

import itertools
import json
from datetime import datetime

import numpy as np
import pytest

from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import REPO_ROOT
from simulators.generator import (
    Clock,
    batch_publications,
    crossing_time,
    evaluate_signal,
    generate,
    rfc3339,
)
from simulators.scenario import Signal, load_checked

ANCHOR = 1_596_661_200_000  # 2020-08-06T06:00:00+09:00


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def _ts_ms(ts: str) -> int:
    return round(datetime.fromisoformat(ts).timestamp() * 1000)


def test_flood_payloads_follow_the_mqtt_contract(reg: Registry) -> None:
    sc = load_checked("han-river-flood", reg)
    gen = generate(sc, reg, seed=1, anchor_ms=ANCHOR)
    first = gen.publications[0]
    assert first.topic == "gyeongbo/v1/readings/water_level/1018683"
    assert json.loads(first.payload) == {
        "station": "1018683",
        "ts": "2020-08-06T06:00:00+09:00",
        "seq": 1,
        "values": {"level_m": json.loads(first.payload)["values"]["level_m"]},
        "exercise": True,
    }
    kinds = {p.topic.split("/")[3] for p in gen.publications}
    assert kinds == {"water_level", "rainfall"}
    for p in gen.publications:
        doc = json.loads(p.payload)
        assert p.topic.endswith("/" + doc["station"])
        assert doc["exercise"] is True
    # 22 h of 10-minute readings from 9 stations
    assert len(gen.publications) == 9 * 132
    # the 10:50 reading of the Hangang Bridge gauge is the real 8.36 m, give or take the noise
    hangang = [json.loads(p.payload) for p in gen.publications if p.station == "1018683"]
    at_1050 = next(d for d in hangang if d["ts"] == "2020-08-06T10:50:00+09:00")
    assert abs(at_1050["values"]["level_m"] - 8.36) <= 0.05
    assert [d["seq"] for d in hangang] == list(range(1, 133))


def test_same_seed_same_bytes_different_seed_different_noise(reg: Registry) -> None:
    sc = load_checked("han-river-flood", reg, overlays=["sensor-faults"])
    a = generate(sc, reg, seed=7, anchor_ms=ANCHOR).payloads()
    b = generate(sc, reg, seed=7, anchor_ms=ANCHOR).payloads()
    c = generate(sc, reg, seed=8, anchor_ms=ANCHOR).publications
    assert a == b
    assert len(c) == len(a)  # faults here are not random-count: same messages…
    differing = sum(1 for x, y in zip(a, (p.payload for p in c), strict=True) if x != y)
    assert differing > len(a) // 2  # …with different noise in most values
    strip = [
        (p.topic, {k: v for k, v in json.loads(p.payload).items() if k != "values"})
        for p in c
        if not p.tag.startswith("malformed")
    ]
    strip_a = [
        (p.topic, {k: v for k, v in json.loads(p.payload).items() if k != "values"})
        for p in generate(sc, reg, seed=7, anchor_ms=ANCHOR).publications
        if not p.tag.startswith("malformed")
    ]
    assert strip == strip_a  # same topics, stations, timestamps and seq


def test_one_stations_noise_does_not_depend_on_the_others(reg: Registry) -> None:
    full = load_checked("han-river-flood", reg)
    alone = full.model_copy(update={"stations": [full.stations[0]], "expect": [], "never": []})
    a = [
        p.payload
        for p in generate(full, reg, seed=3, anchor_ms=ANCHOR).publications
        if p.station == "1018683"
    ]
    b = generate(alone, reg, seed=3, anchor_ms=ANCHOR).payloads()
    assert a == b


def test_a_dry_gauge_reads_zero_and_its_noise_adds_no_rain() -> None:
    # 12 mm per 10 min for an hour, then dry for 11 h: a 0.5 mm bucket, noise 0.5 mm
    sig = Signal(curve="rain", noise=0.5, min=0, step=0.5, round=1)
    curves = {"rain": [(0.0, 12.0), (3600.0, 12.0), (3601.0, 0.0), (43_200.0, 0.0)]}
    t = np.arange(600.0, 43_201.0, 600.0)  # readings at the end of each 10 minutes
    wet = t <= 3600.0
    runs = np.array(
        [evaluate_signal(sig, t, curves, rng=np.random.default_rng(seed)) for seed in range(50)]
    )
    # no rain falls on a dry gauge: every reading after the rain is 0, not a drizzle of
    # clipped noise (~0.2 mm per reading, 13 mm in 11 h, once enough to carry a 12 h sum
    # over a KMA line hours after the rain had stopped)
    assert (runs[:, ~wet] == 0.0).all(), runs[:, ~wet].sum(axis=1)
    assert runs[:, wet].std() > 0.3  # while it rains, the gauge is noisy
    # the 12 h total is the rain that fell (6 × 12 mm), up to the wet readings' noise
    assert abs(runs.sum(axis=1).mean() - 72.0) < 0.5


def test_event_time_keeps_the_scenario_cadence_at_any_speed() -> None:
    hour = 3600.0
    for speed in (1.0, 60.0, 3600.0):
        clock = Clock.ending_now(hour, speed, wall_start=1_800_000_000.25)
        # event time: 10 minutes of scenario are 10 minutes of event time
        assert clock.event_ms(600.0) - clock.event_ms(0.0) == 600_000
        # wall time: an hour of scenario takes hour / speed to publish
        assert clock.wall_due(hour) - clock.wall_due(0.0) == pytest.approx(hour / speed)
        # the scenario ends "now": the last event time is its own publication time (±1 s)
        assert clock.event_ms(hour) / 1000 == pytest.approx(clock.wall_due(hour), abs=1.0)
        # and no reading is ever stamped after the moment it is published
        for t in np.linspace(0, hour, 61):
            assert clock.event_ms(float(t)) / 1000 <= clock.wall_due(float(t)) + 1e-6
    c60 = Clock.ending_now(hour, 60.0, wall_start=1_800_000_000.0)
    assert c60.anchor_ms == (1_800_000_000 - 3540) * 1000  # starts 59 minutes back
    assert c60.scenario_time(c60.event_ms(1234.5)) == 1234.5
    real = Clock.ending_now(hour, 1.0, wall_start=1_800_000_000.0)
    assert real.anchor_ms == 1_800_000_000_000  # real time: event time = wall time
    ahead = Clock.starting_now(60.0, wall_start=1_800_000_000.0)
    assert ahead.event_ms(hour) == 1_800_003_600_000  # start-now: ends an hour ahead
    with pytest.raises(ValueError, match="speed must be positive"):
        Clock(anchor_ms=0, wall_start=0.0, speed=0.0)


def test_payload_timestamps_are_anchor_plus_scenario_time(reg: Registry) -> None:
    sc = load_checked("seongsu-bridge-damage", reg)
    clock = Clock.ending_now(sc.duration_s, 60.0, wall_start=1_800_000_000.0)
    gen = generate(sc, reg, seed=1, anchor_ms=clock.anchor_ms)
    for p in gen.publications[:50]:
        assert _ts_ms(json.loads(p.payload)["ts"]) == clock.event_ms(p.t_s)
    seongsu = [json.loads(p.payload) for p in gen.publications if p.station == "SFC-SEONGSU-P7"]
    gaps = {_ts_ms(b["ts"]) - _ts_ms(a["ts"]) for a, b in itertools.pairwise(seongsu)}
    assert gaps == {60_000}  # the registry's 60-s interval, whatever the speed
    assert rfc3339(1_596_678_000_000) == "2020-08-06T10:40:00+09:00"


def test_earthquake_carries_the_catalogue_event_once(reg: Registry) -> None:
    sc = load_checked("gyeongju-earthquake", reg)
    gen = generate(sc, reg, seed=1, anchor_ms=0)
    with_event = [json.loads(p.payload) for p in gen.publications if b'"event"' in p.payload]
    assert len(with_event) == 1
    assert with_event[0]["station"] == "KMA-GYEONGJU-ACC"
    assert with_event[0]["event"] == {
        "magnitude": 5.8,
        "lat": 35.76,
        "lon": 129.19,
        "depth_km": 15.0,
    }
    assert _ts_ms(with_event[0]["ts"]) == 128_000
    pga = {
        sid: max(
            json.loads(p.payload)["values"]["pga_g"] for p in gen.publications if p.station == sid
        )
        for sid in ("KMA-GYEONGJU-ACC", "KMA-POHANG-ACC", "KMA-SEOUL-ACC")
    }
    assert pga["KMA-GYEONGJU-ACC"] > 0.25 > pga["KMA-POHANG-ACC"] > 0.05 > pga["KMA-SEOUL-ACC"]
    vib = [
        json.loads(p.payload)["values"]["vibration_cms"]
        for p in gen.publications
        if p.station == "SFC-SEONGSU-P7"
    ]
    assert 0.08 < max(vib) < 0.18  # responds, below 60 % of the 0.3 cm/s allowable


def test_fine_dust_crosses_the_lines_the_scenario_claims(reg: Registry) -> None:
    sc = load_checked("seoul-fine-dust", reg)
    gen = generate(sc, reg, seed=1, anchor_ms=0)

    def hours_at_or_over(sid: str, line: float) -> float:
        _t, v = gen.series[(sid, "pm25_ugm3")]
        return float((v >= line).sum()) * 300 / 3600

    assert hours_at_or_over("111212", 150) > 2  # 강서구: 경보
    assert hours_at_or_over("111131", 75) > 2  # 용산구: 주의보
    assert hours_at_or_over("111131", 150) == 0
    assert hours_at_or_over("111274", 75) < 2  # 강동구: nothing
    for st in sc.stations:
        _t, v = gen.series[(st.station, "pm25_ugm3")]
        assert v[-6:].max() < 35  # everyone clears


def test_structural_damage_passes_60_80_100_percent_in_order(reg: Registry) -> None:
    sc = load_checked("seongsu-bridge-damage", reg)
    gen = generate(sc, reg, seed=1, anchor_ms=0)
    allow = reg.stations["SFC-SEONGSU-P7"].allowable
    assert allow is not None
    for ch in ("crack_mm", "tilt_rad"):
        t, v = gen.series[("SFC-SEONGSU-P7", ch)]
        crossings = [crossing_time(t, v, allow[ch] * f) for f in (0.6, 0.8, 1.0)]
        assert all(c is not None for c in crossings)
        assert crossings == sorted(crossings)  # type: ignore[type-var]
    for healthy in ("SFC-HANGANG-P3", "SFC-MAPO-P5"):
        t, v = gen.series[(healthy, "crack_mm")]
        assert v.max() < 0.6 * 5.0


def test_gateway_batches_carry_the_same_readings(reg: Registry) -> None:
    sc = load_checked("han-river-flood", reg, overlays=["sensor-faults"])
    gen = generate(sc, reg, seed=1, anchor_ms=ANCHOR)
    batched = batch_publications(gen.publications, max_readings=3)
    assert len(batched) < len(gen.publications)
    flat: list[bytes] = []
    for p in batched:
        if p.topic.endswith("/_batch"):
            docs = json.loads(p.payload)
            assert isinstance(docs, list) and 2 <= len(docs) <= 3
            assert len({d["station"] for d in docs}) == len(docs)
            kind = p.topic.split("/")[3]
            assert all(reg.stations[d["station"]].kind.value == kind for d in docs)
            assert len({reg.stations[d["station"]].gateway for d in docs}) == 1
            flat += [
                json.dumps(d, separators=(",", ":"), ensure_ascii=False).encode() for d in docs
            ]
        else:
            flat.append(p.payload)
    # same readings, same order within each scenario time; faulty payloads stay single messages
    assert sorted(flat) == sorted(gen.payloads())
    assert sum(p.readings for p in batched) == sum(p.readings for p in gen.publications)
    singles = {p.tag for p in batched if not p.topic.endswith("/_batch")}
    assert {"duplicate", "skewed"} <= singles
    assert any(t.startswith("malformed:") for t in singles)
