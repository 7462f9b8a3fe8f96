"""Station → zones join and regional aggregates, on config/stations.yaml and real zones."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from geo.aggregates import RegionalMeans, count_provinces_at, provinces_at
from geo.geojson import ZoneError
from geo.stations import StationZoneIndex, station_zones
from geo.zones import ZoneRegistry
from gyeongbo.registry import Registry, load_registry, parse_registry
from gyeongbo.settings import REPO_ROOT
from gyeongbo.vocab import Kind, Level
from streams.config_files import load_zones

STATIONS = REPO_ROOT / "config" / "stations.yaml"


@pytest.fixture(scope="module")
def zones() -> ZoneRegistry:
    return load_zones()


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(STATIONS)


@pytest.fixture(scope="module")
def index(registry: Registry, zones: ZoneRegistry) -> StationZoneIndex:
    return station_zones(registry, zones)


def test_hangang_gauge_impact_zones(index: StationZoneIndex, zones: ZoneRegistry) -> None:
    sz = index["1018683"]
    assert sz.declared == ("11030", "11200", "11190", "hangang-riverside-central")
    assert sz.impact == sz.declared  # it stands in 용산구, already declared
    assert sz.location.municipality == "11030"
    assert [zones[z].name for z in sz.impact[:3]] == ["용산구", "동작구", "영등포구"]


def test_impact_adds_the_municipality_a_station_stands_in(index: StationZoneIndex) -> None:
    # 청담대교 declares 강남구 and 광진구; the simplified polygons put its point in 광진구.
    assert index["1018662"].impact == ("11230", "11050", "hangang-riverside-east")
    # 한강대교 pier 3 declares 용산/동작 and stands in 용산구's 이촌2동.
    assert index["SFC-HANGANG-P3"].impact == ("11030", "11200")
    for sid in index:
        sz = index[sid]
        assert sz.impact[: len(sz.declared)] == sz.declared
        if sz.location.municipality is not None:
            assert sz.location.municipality in sz.impact


def test_drawn_zones_around_a_station_are_not_impact_zones(index: StationZoneIndex) -> None:
    # The Mapo Bridge monitor stands in the riverside flood band but declares only 구.
    sz = index["SFC-MAPO-P5"]
    assert "hangang-riverside-central" in sz.location.custom
    assert "hangang-riverside-central" not in sz.impact
    assert "hangang-riverside-central" in sz.member_of


def test_seongsu_monitor_sits_in_its_evacuation_radius(index: StationZoneIndex) -> None:
    sz = index["SFC-SEONGSU-P7"]
    assert sz.location.municipality == "11040"
    assert "seongsu-bridge-500m" in sz.location.custom
    assert "seongsu-bridge-500m" in sz.impact


def test_stations_outside_seoul(index: StationZoneIndex) -> None:
    assert index["KMA-GYEONGJU-ACC"].location.admin == ("37020", "37")
    assert index["KMA-POHANG-ACC"].impact[:2] == ("37011", "37012")
    assert index["1019630"].location.province in {"11", "31"}


def test_stations_in_a_region(index: StationZoneIndex, registry: Registry) -> None:
    air = {
        s
        for s in index.stations_in("seoul-center")
        if registry.stations[s].kind is Kind.AIR_QUALITY
    }
    assert air == {"111123", "111121", "111131"}
    assert "1018683" in index.stations_in("11030")
    assert "KMA-GYEONGJU-ACC" not in index.stations_in("11")
    with pytest.raises(KeyError):
        index.stations_in("atlantis")


def test_join_is_cached_per_registry_version(
    registry: Registry, zones: ZoneRegistry, index: StationZoneIndex
) -> None:
    assert station_zones(registry, zones) is index
    data = yaml.safe_load(STATIONS.read_text("utf-8"))
    data["version"] = "next"
    data["stations"][0]["lat"] = 37.5300
    newer = station_zones(parse_registry(data), zones)
    assert newer is not index and newer.registry_version == "next"
    assert station_zones(parse_registry(data), zones) is newer


def test_unknown_declared_zone_names_the_station(zones: ZoneRegistry) -> None:
    data = yaml.safe_load(STATIONS.read_text("utf-8"))
    bad = copy.deepcopy(data)
    bad["version"] = "bad-zone"
    bad["stations"][3]["zones"] = ["11030", "hangang-riverside-west"]
    with pytest.raises(ZoneError, match=r"station '1018683' .*'hangang-riverside-west'"):
        StationZoneIndex(parse_registry(bad, path=Path("stations.yaml")), zones)


# --- aggregates ----------------------------------------------------------------------------
def test_regional_mean_of_air_stations(index: StationZoneIndex, registry: Registry) -> None:
    means = RegionalMeans(index, registry, kind=Kind.AIR_QUALITY)
    pos = registry.index_of()
    values = np.full(len(pos), 9999.0)  # non-air stations: must never count
    for sid, st in registry.stations.items():
        if st.kind is Kind.AIR_QUALITY:
            values[pos[sid]] = math.nan  # no reading yet
    for sid, v in {"111123": 150.0, "111121": 170.0, "111131": math.nan}.items():
        values[pos[sid]] = v
    for sid in ("111142", "111141"):
        values[pos[sid]] = 40.0
    got = means.means(values, ["seoul-center", "seoul-northeast", "11030", "seoul-southeast"])
    assert got["seoul-center"] == pytest.approx(160.0)  # NaN station left out
    assert got["seoul-northeast"] == pytest.approx(40.0)
    assert math.isnan(got["11030"])  # only the NaN station, and the gauges are not air
    assert math.isnan(got["seoul-southeast"])
    _, count = means.compute(values)
    assert count[means.zone_ids.index("seoul-center")] == 2
    with pytest.raises(ValueError, match="shape"):
        means.compute(values[:-1])


def test_regional_means_refuse_another_registry_version(
    index: StationZoneIndex, registry: Registry
) -> None:
    data = yaml.safe_load(STATIONS.read_text("utf-8"))
    data["version"] = "other"
    with pytest.raises(ValueError, match="does not match"):
        RegionalMeans(index, parse_registry(data))


def test_count_provinces_for_headquarters_rules(zones: ZoneRegistry) -> None:
    levels = {
        "11030": Level.CAUTION,
        "hangang-riverside-central": Level.ALERT,  # Seoul again: counts once
        "21130": Level.CAUTION,
        "37020": Level.ALERT,
        "31380": Level.ATTENTION,  # below caution: not counted
        "1103064": Level.SERIOUS,
    }
    assert provinces_at(levels, Level.CAUTION, zones) == frozenset({"11", "21", "37"})
    assert count_provinces_at(levels, Level.ALERT, zones) == 2
    assert count_provinces_at(levels, Level.SERIOUS, zones) == 1
    assert count_provinces_at({}, Level.CAUTION, zones) == 0
