"""Earthquake catalogue events: from the reading's ``event`` object to KMA-class alerts.

The geo join (``geo.routing.catalogue_routes``) as a plain function, then the whole pure
path (payload → batch → detectors → geo join → alert machine) on the Gyeongju drill.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

import msgspec
import pytest

from alerting.model import parse_rfc3339_ms
from geo.quake import QuakeEvent, target_zones
from geo.routing import catalogue_routes
from geo.zones import ZoneKind
from gyeongbo.batch import ReadingBatch
from gyeongbo.events import Detection
from gyeongbo.settings import Settings
from simulators.generator import generate
from simulators.report import Observed, evaluate
from simulators.scenario import load_checked
from streams.core import Core, Detections, Message, alerts_of
from streams.influx_lines import reading_lines
from streams.services import Services

T0 = 1_473_679_974_000  # 2016-09-12 20:32:54 KST, the Gyeongju origin time
GYEONGJU = {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15.0}


@pytest.fixture(scope="module")
def services() -> Services:
    return Services(Settings(_env_file=None))


def quake(magnitude: float = 5.8, *, exercise: bool = False, **over: Any) -> Detection:
    event = {**GYEONGJU, "magnitude": magnitude, **over}
    return Detection(
        station="KMA-GYEONGJU-ACC",
        hazard="earthquake",
        level="alert",
        ts_ms=T0 + 8000,
        rule="earthquake.catalogue",
        value=magnitude,
        threshold=5.0,
        exercise=exercise,
        details={**event, "nationwide": magnitude >= 5.0},
    )


def test_a_gyeongju_like_m58_is_urgent_in_every_province(services: Services) -> None:
    routes = catalogue_routes(quake(5.8), services.zones)
    provinces = services.zones.of_kind(ZoneKind.PROVINCE)
    assert sorted(z for z, _ in routes) == sorted(provinces) and len(provinces) == 17
    assert {d.level for _, d in routes} == {"alert"}  # 긴급재난문자 → 경계, nowhere 심각
    by_zone = {z: d for z, d in routes}
    gb = by_zone["37"].details  # 경상북도, Gyeongju's province
    assert (gb["message_class"], gb["event_class"], gb["max_intensity"]) == (
        "긴급재난문자",
        "긴급재난문자",
        9,  # at the epicentre (Emolo et al. 2015 extrapolated above M 5; see geo/quake.py)
    )
    assert gb["distance_km"] == 0.0 and by_zone["11"].details["intensity"] == 3  # Seoul, felt
    for _, d in routes:  # the rest of the detection is kept as it was
        assert (d.station, d.ts_ms, d.rule, d.value, d.exercise) == (
            "KMA-GYEONGJU-ACC",
            T0 + 8000,
            "earthquake.catalogue",
            5.8,
            False,
        )


def test_an_m62_is_extreme_nationwide(services: Services) -> None:
    routes = catalogue_routes(quake(6.2), services.zones)
    assert len(routes) == 17
    assert {(d.level, d.details["message_class"]) for _, d in routes} == {
        ("serious", "위급재난문자")
    }


def test_an_m40_is_loud_only_where_it_is_felt_indoors(services: Services) -> None:
    routes = catalogue_routes(quake(4.0), services.zones)
    ev = QuakeEvent(lat=35.76, lon=129.19, magnitude=4.0, depth_km=15.0)
    felt = target_zones(ev, services.zones, min_intensity=2)
    assert [z for z, _ in routes] == [t.zone_id for t in felt]  # most shaken first
    assert not {z for z, _ in routes} & set(services.zones.of_kind(ZoneKind.PROVINCE))
    # max expected intensity V: a 긴급 event, loud (경계) only at ≥ III (December 2025);
    # the districts at II hear KMA's 안전안내 and stay with operators here (관심)
    got = {(d.level, d.details["message_class"], d.details["intensity"] >= 3) for _, d in routes}
    assert got == {("alert", "긴급재난문자", True), ("attention", "안전안내문자", False)}
    assert {d.details["event_class"] for _, d in routes} == {"긴급재난문자"}
    loud = {z for z, d in routes if d.level == "alert"}
    assert {"37020", "26310"} <= loud and 5 <= len(loud) <= 40  # 경주시, 울주군
    assert not loud & set(services.zones.children("11"))  # Seoul: no


def test_an_m37_expected_at_iv_is_a_safety_notice_where_felt(services: Services) -> None:
    routes = catalogue_routes(quake(3.7), services.zones)
    assert routes and routes[0][1].details["max_intensity"] == 4
    assert {d.level for _, d in routes} == {"caution", "attention"}
    assert {d.details["message_class"] for _, d in routes} == {"안전안내문자"}


def test_small_events_stay_with_operators_or_go_nowhere(services: Services) -> None:
    # 2 ≤ M < 3.5 wants *measured* intensity, which a catalogue has not: 관심 only
    routes = catalogue_routes(quake(3.0), services.zones)
    assert routes and {(d.level, d.details["message_class"]) for _, d in routes} == {
        ("attention", "")
    }
    assert catalogue_routes(quake(1.5), services.zones) == []
    # a depth above sea level is clipped into the relation's domain, not an error
    assert len(catalogue_routes(quake(5.8, depth_km=-2.0), services.zones)) == 17


def test_the_exercise_flag_is_kept_on_every_copy(services: Services) -> None:
    routes = services.route(quake(4.0, exercise=True))
    assert routes and all(d.exercise for _, d in routes)


def test_station_detections_still_go_to_their_impact_zones(services: Services) -> None:
    pga = msgspec.structs.replace(quake(), rule="earthquake.pga_intensity", value=0.35)
    assert services.route(pga) == [("37020", pga)]
    flood = Detection(
        station="1018683", hazard="flood", level="caution", ts_ms=T0, rule="r", value=8.6
    )
    assert [z for z, _ in services.route(flood)] == list(services.impact_zones("1018683"))


def test_readings_with_an_event_write_its_numbers_as_float_fields() -> None:
    b = ReadingBatch.from_rows(
        [
            {
                "station": "KMA-GYEONGJU-ACC",
                "kind": "seismic",
                "ts_ms": T0,
                "seq": 3,
                "values": {"pga_g": 0.2},
                "event": GYEONGJU,
            },
            {
                "station": "KMA-GYEONGJU-ACC",
                "kind": "seismic",
                "ts_ms": T0 + 1000,
                "seq": 4,
                "values": {"pga_g": 0.1},
            },
        ]
    )
    assert sorted(reading_lines(b)) == [
        "reading,exercise=false,kind=seismic,station=KMA-GYEONGJU-ACC pga_g=0.1,seq=4i "
        f"{T0 + 1000}",
        "reading,exercise=false,kind=seismic,station=KMA-GYEONGJU-ACC pga_g=0.2,"
        "event_magnitude=5.8,event_lat=35.76,event_lon=129.19,event_depth_km=15.0,seq=3i "
        f"{T0}",
    ]


# -- the whole pure path ------------------------------------------------------------------


def _core() -> Core:
    return Core(Services(Settings(_env_file=None)))


def _drill(core: Core, *, relays: bool) -> tuple[list[Observed], list[object]]:
    """The drill's payloads pushed through the core as one list; (observations, the list
    that came out)."""
    reg = core.services.registry
    sc = load_checked("gyeongju-earthquake", reg)
    anchor = T0 - 120_000  # scenario t=0 is two minutes before the origin
    pubs = generate(sc, reg, seed=sc.seed, anchor_ms=anchor).publications
    if relays:  # the same catalogue event again: a gateway retry and a second station
        (cat,) = [p for p in pubs if b'"event"' in p.payload]
        doc = json.loads(cat.payload)
        retry = {**doc, "seq": doc["seq"] + 10_000}
        pohang = {**doc, "station": "KMA-POHANG-ACC", "seq": 99_999}
        pubs = [
            *pubs,
            dataclasses.replace(cat, payload=json.dumps(retry).encode(), t_s=cat.t_s + 1),
            dataclasses.replace(
                cat,
                topic=cat.topic.replace("KMA-GYEONGJU-ACC", "KMA-POHANG-ACC"),
                payload=json.dumps(pohang).encode(),
                t_s=cat.t_s + 2,
            ),
        ]
        pubs.sort(key=lambda p: p.t_s)
    out = core.push(Message(p.topic, p.payload, anchor + round(p.t_s * 1000) + 50) for p in pubs)
    obs = []
    for ev in alerts_of(out):
        t_s = (parse_rfc3339_ms(ev.ts) - anchor) / 1000
        obs.append(Observed(ev.hazard, ev.zone, ev.level, ev.previous, t_s, action=ev.action))
    outcomes = evaluate(sc.expect, sc.never, obs)
    assert not [o for o in outcomes if o.failed]
    assert [(o.zone, o.observed and o.observed.t_s) for o in outcomes if o.status == "met"] == [
        ("37020", 123.0),  # measured intensity V at the Gyeongju accelerometer
        ("37", 128.0),  # the catalogue event's nationwide 긴급재난문자
        ("11", 128.0),
    ]
    return obs, list(out)


def test_the_gyeongju_drill_passes_through_the_pure_path() -> None:
    core = _core()
    obs, _ = _drill(core, relays=False)
    raises = Counter(o.zone for o in obs if o.action == "raise" and len(o.zone) == 2)
    assert sorted(raises) == sorted(core.services.zones.of_kind(ZoneKind.PROVINCE))
    assert set(raises.values()) == {1}
    # the accelerometers stage their own districts; the catalogue none of them
    assert {o.zone for o in obs if len(o.zone) != 2} == {"37020", "37011", "37012", "11010"}


def test_a_relayed_or_retried_catalogue_event_raises_once() -> None:
    core = _core()
    obs, out = _drill(core, relays=True)
    provinces = [o for o in obs if len(o.zone) == 2]
    assert len(provinces) == 17 and {o.action for o in provinces} == {"raise"}
    cat = [d for d in out if isinstance(d, Detection) and d.rule == "earthquake.catalogue"]
    assert len(cat) == 1 and core.detectors.stats["catalogue_repeats"] == 2


def test_the_alert_machine_absorbs_a_repeat_the_detectors_did_not_see() -> None:
    # Two relaying stations on two workers: each worker's detectors see the event once.
    core = _core()
    first = alerts_of(core.push([Detections((quake(5.8),))]))
    other = msgspec.structs.replace(quake(5.8), station="KMA-POHANG-ACC", ts_ms=T0 + 9000)
    assert len(first) == 17 and alerts_of(core.push([Detections((other,))])) == []
