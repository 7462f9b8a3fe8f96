"""Expected earthquake intensity (Emolo et al. 2015 + Worden et al. 2012) and KMA's targeting.

The model is checked against intensities published for real Korean events. Tolerance: one
intensity class either way. KMA's figures are the highest station (or report) in an area —
on the most amplifying site, where Emolo et al.'s own site term alone is +0.33 log10 PGA,
i.e. +0.5 to +1.2 MMI — while the model gives the median at an average site; one standard
deviation of the model is 0.38 log10 PGA (0.6–1.4 MMI after conversion) and the PGA → MMI
conversion adds about 0.7 MMI of its own. One class is within one standard deviation; two are
not, and none of the checks below needs two.
"""

from __future__ import annotations

import numpy as np
import pytest

from geo.kma_quake import SAFETY, URGENT, event_class, kma_targets, zone_levels
from geo.quake import (
    QuakeEvent,
    expected_mmi,
    intensity_class,
    mmi_at_distance,
    mmi_from_pga,
    target_zones,
)
from geo.zones import ZoneKind, ZoneRegistry
from streams.config_files import load_zones

# KMA epicentres and local magnitudes.
GYEONGJU_2016 = QuakeEvent(lat=35.76, lon=129.19, magnitude=5.8, depth_km=15.0)
POHANG_2017 = QuakeEvent(lat=36.12, lon=129.36, magnitude=5.4, depth_km=9.0)
GYEONGJU_2023 = QuakeEvent(lat=35.79, lon=129.42, magnitude=4.0, depth_km=12.0)
# City halls stand for the cities whose intensity KMA reported.
CITY = {
    "경주": (35.8562, 129.2247),
    "대구": (35.8714, 128.6014),
    "울산": (35.5384, 129.3114),
    "부산": (35.1798, 129.0750),
    "창원": (35.2280, 128.6811),
    "포항": (36.0190, 129.3435),
    "전주": (35.8242, 127.1480),
}
NEAR_CHUNGJU = (37.0, 127.9)  # inland, in 충주시 (the 2025-02-07 M3.1 was in this county)


@pytest.fixture(scope="module")
def zones() -> ZoneRegistry:
    return load_zones()


def _at(event: QuakeEvent, city: str) -> int:
    return int(intensity_class(expected_mmi(event, *CITY[city])))


@pytest.mark.parametrize(
    ("event", "city", "published"),
    [
        # 2016-09-12 Gyeongju M5.8: KMA's maximum intensities, announced 2016-09-16 —
        # 경주 and 대구 VI, 부산, 울산 and 창원 V (KMA's MMI-based scale since 2001).
        (GYEONGJU_2016, "경주", 6),
        (GYEONGJU_2016, "대구", 6),
        (GYEONGJU_2016, "울산", 5),
        (GYEONGJU_2016, "부산", 5),
        (GYEONGJU_2016, "창원", 5),
        # 2017-11-15 Pohang M5.4: KMA's instrumental intensities of the day — 경북 (Pohang)
        # VI, 전북 III.
        (POHANG_2017, "포항", 6),
        (POHANG_2017, "전주", 3),
        # 2023-11-30 Gyeongju M4.0 (35.79 N 129.42 E): KMA — 울산 IV, 대구 and 부산 III.
        (GYEONGJU_2023, "울산", 4),
        (GYEONGJU_2023, "대구", 3),
        (GYEONGJU_2023, "부산", 3),
    ],
)
def test_expected_intensity_within_one_class_of_what_kma_reported(
    event: QuakeEvent, city: str, published: int
) -> None:
    assert abs(_at(event, city) - published) <= 1


def test_epicentral_intensities_of_pohang_2017_and_gyeongju_2023() -> None:
    # Pohang: MMI VIII assigned from the residential damage reports around the epicentre
    # (Choi, Park, Sohn, You, Sun, Cho & Lee (KMA), JpGU 2019, SSS13-P38).
    assert intensity_class(expected_mmi(POHANG_2017, POHANG_2017.lat, POHANG_2017.lon)) == 8
    # Gyeongju 2023 M4.0: KMA's maximum, in 경북, was V — the 긴급 line of the KMA rules.
    assert intensity_class(expected_mmi(GYEONGJU_2023, GYEONGJU_2023.lat, GYEONGJU_2023.lon)) == 5


def test_intensity_falls_with_distance_and_rises_with_magnitude() -> None:
    d = np.array([0.0, 10, 30, 80, 150, 300, 500])
    mmi = mmi_at_distance(5.8, d)
    assert np.all(np.diff(mmi) < 0)
    assert np.all(mmi_at_distance(6.5, d)[:-1] > mmi[:-1])  # (clipped at I far away)
    assert np.asarray(intensity_class([0.2, 1.49, 1.5, 4.5, 13.0])).tolist() == [1, 1, 2, 5, 12]


def test_the_pga_conversion_is_continuous_where_its_branches_meet() -> None:
    pga = 10**1.57 / 100.0  # m/s², where Worden et al.'s two lines meet
    lo, hi = mmi_from_pga(np.array([pga * 0.999, pga * 1.001]))
    assert lo == pytest.approx(4.21, abs=0.01) and hi == pytest.approx(4.21, abs=0.01)


def test_municipality_intensity_is_taken_at_its_nearest_point(zones: ZoneRegistry) -> None:
    t = {x.zone_id: x for x in target_zones(GYEONGJU_2016, zones, min_intensity=1)}
    assert len(t) == 251
    assert t["37020"].distance_km == 0.0  # 경주시 holds the epicentre
    here = float(expected_mmi(GYEONGJU_2016, 37.5663, 126.9779)[()])  # Seoul city hall, 중구
    assert 0 <= t["11020"].mmi - here < 0.1
    ordered = list(t.values())
    assert [x.mmi for x in ordered] == sorted((x.mmi for x in ordered), reverse=True)


def test_kma_event_classes_at_their_lines() -> None:
    mags = np.array([6.0, 5.99, 5.0, 4.99, 4.99, 3.5, 3.49, 3.9, 4.0])
    inten = np.array([1, 1, 1, 5, 4, 4, 9, 5, 5])
    inland = np.array([1, 1, 1, 1, 1, 1, 1, 0, 0], dtype=bool)  # the last two at sea
    assert event_class(mags, inten, inland).tolist() == [3, 2, 2, 2, 1, 1, 0, 0, 2]
    # December 2025: the loud 긴급 only at ≥ III; II hears a 안전안내, which is 관심 here
    assert zone_levels(URGENT, np.array([6, 3, 2])).tolist() == [3, 3, 1]
    assert zone_levels(SAFETY, np.array([4, 3, 2])).tolist() == [2, 2, 1]


def test_an_inland_m40_reaches_tens_of_municipalities_not_a_hundred(zones: ZoneRegistry) -> None:
    plan = kma_targets(QuakeEvent(*NEAR_CHUNGJU, magnitude=4.0, depth_km=10.0), zones)
    assert plan.inland and (plan.event_class, plan.max_intensity) == ("긴급재난문자", 5)
    residents = [t for t in plan.targets if t.level >= 2]  # SMS and the loud alert
    assert 5 <= len(residents) <= 40
    assert all(t.intensity >= 3 and t.message_class == "긴급재난문자" for t in residents)
    # the wider ring expected at II hears KMA's quiet 안전안내; here operators and CAP only
    ring = [t for t in plan.targets if t.level == 1]
    assert ring and all(t.intensity == 2 and t.message_class == "안전안내문자" for t in ring)
    assert "33020" in {t.zone_id for t in residents}  # 충주시


def test_an_m31_reaches_no_resident_from_the_catalogue(zones: ZoneRegistry) -> None:
    plan = kma_targets(QuakeEvent(*NEAR_CHUNGJU, magnitude=3.1, depth_km=10.0), zones)
    assert plan.event_class == ""  # its 안전안내 needs a *measured* III (the accelerometers)
    assert sum(1 for t in plan.targets if t.level >= 2) <= 10
    assert all(t.level == 1 for t in plan.targets) and len(plan.targets) <= 25


def test_an_m58_is_urgent_nationwide_and_an_m62_extreme(zones: ZoneRegistry) -> None:
    provinces = set(zones.of_kind(ZoneKind.PROVINCE))
    plan = kma_targets(GYEONGJU_2016, zones)
    assert {t.zone_id for t in plan.targets} == provinces and len(provinces) == 17
    assert {(t.level, t.message_class) for t in plan.targets} == {(3, "긴급재난문자")}
    big = kma_targets(QuakeEvent(35.76, 129.19, 6.2, 15.0), zones)
    assert {(t.level, t.message_class) for t in big.targets} == {(4, "위급재난문자")}


def test_sea_events_use_the_higher_lines(zones: ZoneRegistry) -> None:
    at_sea = (37.9, 129.5)  # the 2023 Donghae offshore swarm
    small = kma_targets(QuakeEvent(*at_sea, magnitude=3.8, depth_km=10.0), zones)
    assert not small.inland and small.event_class == ""
    moderate = kma_targets(QuakeEvent(*at_sea, magnitude=4.5, depth_km=10.0), zones)
    # 2023-05-15, M4.5 there: KMA reported III in 강원 — 안전안내 where it is felt
    assert (moderate.event_class, moderate.max_intensity) == ("안전안내문자", 3)
    felt = {t.zone_id[:2] for t in moderate.targets if t.level >= 2}
    assert "32" in felt and felt <= {"32", "37"}  # 강원 (and 울릉군, 경북, the nearest island)
    assert kma_targets(QuakeEvent(*at_sea, magnitude=1.9, depth_km=10.0), zones).targets == []


@pytest.mark.parametrize(
    "bad",
    [
        {"lat": 135.0, "lon": 129.0, "magnitude": 5.0, "depth_km": 10.0},
        {"lat": 35.0, "lon": 129.0, "magnitude": -1.0, "depth_km": 10.0},
        {"lat": 35.0, "lon": 129.0, "magnitude": 5.0, "depth_km": -3.0},
    ],
)
def test_event_validation(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        QuakeEvent(**bad)
