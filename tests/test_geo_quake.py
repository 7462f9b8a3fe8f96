"""Earthquake targeting with the Atkinson & Wald (2007) CEUS intensity relation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geo.quake import (
    AW07_CALIFORNIA,
    AW07_CEUS,
    IntensityTarget,
    QuakeEvent,
    expected_mmi,
    intensity_class,
    mmi_at_distance,
    target_zones,
)
from geo.zones import ZoneKind, ZoneRegistry, load_zones

GYEONGJU_2016 = QuakeEvent(lat=35.76, lon=129.19, magnitude=5.8, depth_km=15.0)


@pytest.fixture(scope="module")
def zones() -> ZoneRegistry:
    return load_zones()


def _by_id(zones: ZoneRegistry, min_intensity: int = 2) -> dict[str, IntensityTarget]:
    return {t.zone_id: t for t in target_zones(GYEONGJU_2016, zones, min_intensity=min_intensity)}


def test_equation_by_hand() -> None:
    # M 5.8 at 100 km, California set: R = sqrt(100² + 14²), B = log10(R / 30).
    r = math.hypot(100.0, 14.0)
    by_hand = (
        12.27
        + 2.270 * -0.2
        + 0.1304 * 0.04
        - 1.30 * math.log10(r)
        - 0.0007070 * r
        + 1.95 * math.log10(r / 30.0)
        - 0.577 * 5.8 * math.log10(r)
    )
    assert float(mmi_at_distance(5.8, 100.0)) == pytest.approx(by_hand)
    assert float(mmi_at_distance(5.8, 100.0, AW07_CALIFORNIA)) == pytest.approx(by_hand)
    # CEUS: R = sqrt(100² + 17²), B = log10(R / 80).
    r = math.hypot(100.0, 17.0)
    ceus = (
        11.72
        + 2.36 * -0.2
        + 0.1155 * 0.04
        - 0.44 * math.log10(r)
        - 0.002044 * r
        + 2.31 * math.log10(r / 80.0)
        - 0.479 * 5.8 * math.log10(r)
    )
    assert float(mmi_at_distance(5.8, 100.0, AW07_CEUS)) == pytest.approx(ceus)
    assert ceus > by_hand  # CEUS attenuates more slowly


def test_intensity_falls_with_distance_and_rises_with_magnitude() -> None:
    d = np.array([0.0, 10, 30, 80, 150, 300, 500])
    mmi = mmi_at_distance(5.8, d)
    assert np.all(np.diff(mmi) < 0)
    assert np.all(mmi_at_distance(6.5, d) > mmi)
    assert np.asarray(intensity_class([0.2, 1.49, 1.5, 4.5, 13.0])).tolist() == [1, 1, 2, 5, 12]


def test_gyeongju_2016_reaches_gyeongju_strongly_and_seoul_weakly(zones: ZoneRegistry) -> None:
    t = _by_id(zones, min_intensity=1)
    assert len(t) == 251  # every municipality gets a value at min_intensity I
    gyeongju = t["37020"]
    assert gyeongju.distance_km == 0.0
    assert gyeongju.intensity >= 6
    seoul = [t[c] for c in zones.children("11")]
    assert all(2 <= s.intensity < gyeongju.intensity for s in seoul)
    assert all(260 < s.distance_km < 320 for s in seoul)
    ordered = target_zones(GYEONGJU_2016, zones, min_intensity=1)
    assert [x.mmi for x in ordered] == sorted((x.mmi for x in ordered), reverse=True)
    assert ordered[0].zone_id in {"37020", "26310"}  # 경주시 or 울주군, both at the source


def test_min_intensity_selects_the_near_field(zones: ZoneRegistry) -> None:
    strong = _by_id(zones, min_intensity=5)
    assert "37020" in strong and "37011" in strong  # 경주, 포항 남구
    assert not any(code.startswith("11") for code in strong)
    assert all(t.intensity >= 5 for t in strong.values())
    assert len(_by_id(zones, min_intensity=6)) < len(strong) < len(_by_id(zones, min_intensity=4))
    assert len(_by_id(zones, min_intensity=4)) < 251


def test_small_event_targets_few_districts(zones: ZoneRegistry) -> None:
    small = QuakeEvent(lat=35.76, lon=129.19, magnitude=3.5, depth_km=15.0)
    hit = target_zones(small, zones, min_intensity=2)
    assert hit and len(hit) < 251
    assert "37020" in {t.zone_id for t in hit}
    assert "11020" not in {t.zone_id for t in hit}


def test_point_estimate_agrees_with_zone_inside(zones: ZoneRegistry) -> None:
    # Inside a zone, the zone's value (its nearest point) is at least a point's value.
    here = float(expected_mmi(GYEONGJU_2016, 37.5663, 126.9779)[()])
    jung = _by_id(zones, min_intensity=1)["11020"]
    assert jung.mmi >= here - 0.01
    assert jung.mmi - here < 0.1


def test_other_zone_kinds(zones: ZoneRegistry) -> None:
    provinces = target_zones(GYEONGJU_2016, zones, kinds=[ZoneKind.PROVINCE], min_intensity=1)
    assert len(provinces) == 17 and provinces[0].zone_id in {"37", "26"}


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
