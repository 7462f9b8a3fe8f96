"""Zone registry on the real KOSTAT boundaries (config/boundaries) and config/zones."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

from geo.geojson import ZoneError
from geo.zones import ZoneKind, ZoneRegistry
from gyeongbo.settings import REPO_ROOT
from streams.config_files import ADMIN_DIR_ENV, default_admin_dir, load_zones

CITY_HALL = (37.5663, 126.9779)
HANGANG_GAUGE = (37.5172, 126.9590)
BUSAN_CITY_HALL = (35.1796, 129.0756)


@pytest.fixture(scope="module")
def zones() -> ZoneRegistry:
    return load_zones()


def test_every_layer_is_loaded(zones: ZoneRegistry) -> None:
    assert len(zones.of_kind(ZoneKind.PROVINCE)) == 17
    assert len(zones.of_kind(ZoneKind.MUNICIPALITY)) == 251
    assert len(zones.of_kind(ZoneKind.SUBMUNICIPALITY)) == 423
    assert set(zones.of_kind(ZoneKind.CUSTOM)) == {
        "hangang-riverside-central",
        "hangang-riverside-east",
        "seongsu-bridge-500m",
        "seoul-center",
        "seoul-northeast",
        "seoul-northwest",
        "seoul-southwest",
        "seoul-southeast",
    }
    assert zones["11200"].name == "동작구" and zones["11200"].name_en == "Dongjak-gu"


def test_city_hall_is_in_jung_gu(zones: ZoneRegistry) -> None:
    loc = zones.locate(*CITY_HALL)
    assert (loc.province, loc.municipality) == ("11", "11020")
    assert loc.submunicipality is not None and loc.submunicipality.startswith("11020")
    assert zones[loc.submunicipality].name == "명동"


def test_seoul_file_refines_the_coarse_national_gu(zones: ZoneRegistry) -> None:
    # The national file's 7-vertex 종로구 swallows City Hall; the Seoul file replaces it.
    national = json.loads(
        (default_admin_dir() / "skorea_municipalities_geo_simple.json").read_text("utf-8")
    )
    coarse = {
        f["properties"]["code"]: shapely.geometry.shape(f["geometry"]) for f in national["features"]
    }
    hall = shapely.Point(CITY_HALL[1], CITY_HALL[0])
    assert coarse["11010"].contains(hall)
    assert zones["11010"].source == "seoul_municipalities_geo_simple.json"
    assert not zones["11010"].geometry.contains(hall)
    assert zones["21130"].source == "skorea_municipalities_geo_simple.json"


def test_hangang_bridge_gauge_stands_on_the_yongsan_side(zones: ZoneRegistry) -> None:
    # The bridge spans 용산구 (north) and 동작구 (south); the simplified polygons put the
    # gauge in 용산구's 이촌2동, about 430 m from 동작구 across the mid-channel line.
    loc = zones.locate(*HANGANG_GAUGE)
    assert loc.admin == ("1103064", "11030", "11")
    assert zones["1103064"].name == "이촌2동"
    gauge = shapely.Point(HANGANG_GAUGE[1], HANGANG_GAUGE[0])
    metres_to_dongjak = zones["11200"].geometry.distance(gauge) * 111_000
    assert 200 < metres_to_dongjak < 600
    assert loc.custom == ("hangang-riverside-central",)


def test_busan_is_in_province_21(zones: ZoneRegistry) -> None:
    loc = zones.locate(*BUSAN_CITY_HALL)
    assert loc.province == "21" and zones["21"].name == "부산광역시"
    assert loc.municipality == "21130" and loc.submunicipality is None
    assert loc.custom == ()


def test_points_outside_every_zone(zones: ZoneRegistry) -> None:
    assert zones.locate(36.0, 125.0).admin == ()  # Yellow Sea
    assert zones.locate(math.nan, 127.0).admin == ()


def test_batch_location_matches_single_points(zones: ZoneRegistry) -> None:
    rng = np.random.default_rng(7)
    lat = np.r_[rng.uniform(37.43, 37.70, 300), rng.uniform(33.2, 38.6, 300)]
    lon = np.r_[rng.uniform(126.77, 127.18, 300), rng.uniform(124.6, 130.9, 300)]
    batch = zones.locate_many(lat, lon)
    munis = batch.codes("municipality")
    for i in range(0, 600, 7):
        assert batch.location(i) == zones.locate(lat[i], lon[i])
    # The share of uniform points in the box that land in Seoul's 구 is the area share.
    box = shapely.box(126.77, 37.43, 127.18, 37.70)
    gu_area = sum(zones[g].geometry.intersection(box).area for g in zones.children("11"))
    in_seoul = sum(m is not None and m[:2] == "11" for m in munis[:300])
    assert in_seoul / 300 == pytest.approx(gu_area / box.area, abs=0.08)
    assert {m[:2] for m in munis[:300] if m is not None} <= {"11", "31", "23"}
    # Chains always nest by code prefix.
    for p, m, s in zip(batch.codes("province"), munis, batch.codes("submunicipality"), strict=True):
        if s is not None:
            assert m == s[:5]
        if m is not None:
            assert p == m[:2]


def test_hierarchy_by_code_prefix(zones: ZoneRegistry) -> None:
    assert zones.parent("1103064") == "11030"
    assert zones.parent("11030") == "11"
    assert zones.parent("11") is None
    assert zones.ancestors("1103064") == ("11030", "11", "seoul-center")
    seoul_gu = zones.children("11")
    assert len(seoul_gu) == 25 and all(len(c) == 5 and c[:2] == "11" for c in seoul_gu)
    dongs = zones.children("11030")
    assert dongs and all(d.startswith("11030") and len(d) == 7 for d in dongs)
    assert zones.children("37") and "37020" in zones.children("37")
    assert set(zones.descendants("11")) == set(seoul_gu) | {
        z for z in zones.of_kind(ZoneKind.SUBMUNICIPALITY)
    }


def test_every_admin_zone_has_its_parent(zones: ZoneRegistry) -> None:
    for kind, parent_len in ((ZoneKind.MUNICIPALITY, 2), (ZoneKind.SUBMUNICIPALITY, 5)):
        for code in zones.of_kind(kind):
            assert zones.parent(code) == code[:parent_len]
            assert zones.parent(code) in zones


def test_air_regions_are_unions_of_their_gu(zones: ZoneRegistry) -> None:
    center = zones["seoul-center"]
    assert center.members == ("11010", "11020", "11030")
    assert set(zones.children("seoul-center")) == {"11010", "11020", "11030"}
    sub = set(zones.descendants("seoul-center"))
    assert {"1103064", "1102055"} <= sub and not any(z.startswith("11200") for z in sub)
    member_area = sum(zones[m].geometry.area for m in center.members)
    assert center.geometry.area == pytest.approx(member_area, rel=1e-6)
    regions = ["seoul-center", "seoul-northeast", "seoul-northwest", "seoul-southwest"]
    regions.append("seoul-southeast")
    members = [m for r in regions for m in zones[r].members]
    assert sorted(members) == sorted(zones.children("11"))  # each 구 in exactly one region
    assert zones.ancestors("11200") == ("11", "seoul-southwest")


def test_seongsu_evacuation_radius(zones: ZoneRegistry) -> None:
    z = zones["seongsu-bridge-500m"]
    assert z.circle == (37.5368, 127.0347, 500.0)
    lat0, lon0 = 37.5368, 127.0347
    dlat_per_m = 1 / 111_195
    assert "seongsu-bridge-500m" in zones.zones_at(lat0 + 450 * dlat_per_m, lon0)
    assert "seongsu-bridge-500m" not in zones.zones_at(lat0 + 550 * dlat_per_m, lon0)
    dlon_per_m = dlat_per_m / math.cos(math.radians(lat0))
    assert "seongsu-bridge-500m" in zones.zones_at(lat0, lon0 - 450 * dlon_per_m)
    assert "seongsu-bridge-500m" not in zones.zones_at(lat0, lon0 - 550 * dlon_per_m)


def test_riverside_bands_follow_the_river(zones: ZoneRegistry) -> None:
    # Every Han main-stem gauge in Seoul stands in its band; inland stations do not.
    assert "hangang-riverside-central" in zones.zones_at(37.5127, 126.9966)  # 잠수교
    assert "hangang-riverside-east" in zones.zones_at(37.5250, 127.0650)  # 청담대교
    assert "hangang-riverside-east" in zones.zones_at(37.5434, 127.1063)  # 광진교
    assert not {"hangang-riverside-central", "hangang-riverside-east"} & set(
        zones.zones_at(*CITY_HALL)
    )
    central, east = zones["hangang-riverside-central"], zones["hangang-riverside-east"]
    assert central.geometry.intersection(east.geometry).area < 1e-9
    assert zones.provinces_of("hangang-riverside-central") == frozenset({"11"})


def test_overlapping_zones_of_an_area(zones: ZoneRegistry) -> None:
    assert {"hangang-riverside-central", "seoul-southwest", "11"} <= set(zones.overlapping("11200"))
    assert "hangang-riverside-east" not in zones.overlapping("11200")
    assert "seongsu-bridge-500m" not in zones.overlapping("11200")
    assert {"11040", "11230"} <= set(zones.overlapping("seongsu-bridge-500m"))


def test_outlines_are_closed_lat_lon_rings(zones: ZoneRegistry) -> None:
    (ring,) = zones["11030"].outlines()
    assert ring[0] == ring[-1] and len(ring) >= 4
    assert all(37.4 < lat < 37.6 and 126.9 < lon < 127.1 for lat, lon in ring)


# --- malformed files ----------------------------------------------------------------------
def _fc(*features: dict[str, Any]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": list(features)}


def _poly(zid: str, ring: list[list[float]], **props: Any) -> dict[str, Any]:
    p = {"id": zid, "name": zid, "name_en": zid, "category": "other", **props}
    return {
        "type": "Feature",
        "properties": p,
        "geometry": {"type": "Polygon", "coordinates": [ring]},
    }


SQUARE = [[127.0, 37.5], [127.01, 37.5], [127.01, 37.51], [127.0, 37.51], [127.0, 37.5]]
BOWTIE = [[127.0, 37.5], [127.01, 37.51], [127.01, 37.5], [127.0, 37.51], [127.0, 37.5]]


def _load_one(tmp_path: Path, doc: Any, name: str = "bad.geojson") -> ZoneRegistry:
    d = tmp_path / "zones"
    d.mkdir(exist_ok=True)
    text = doc if isinstance(doc, str) else json.dumps(doc)
    (d / name).write_text(text, encoding="utf-8")
    return load_zones(d)


def _error(tmp_path: Path, doc: Any) -> str:
    with pytest.raises(ZoneError) as info:
        _load_one(tmp_path, doc)
    return str(info.value)


def test_self_intersecting_polygon_is_named(tmp_path: Path) -> None:
    msg = _error(tmp_path, _fc(_poly("good", SQUARE), _poly("bowtie", BOWTIE)))
    assert "bad.geojson" in msg
    assert "features[1] (id='bowtie'): polygon is not valid: Self-intersection" in msg
    assert "'good'" not in msg


def test_swapped_coordinates_get_a_hint(tmp_path: Path) -> None:
    swapped = [[lat, lon] for lon, lat in SQUARE]
    msg = _error(tmp_path, _fc(_poly("swapped", swapped)))
    assert "features[0] (id='swapped'): latitude 127.0 out of range" in msg
    assert "[lat, lon]" in msg


def test_duplicate_ids_and_admin_clashes(tmp_path: Path) -> None:
    msg = _error(tmp_path, _fc(_poly("twice", SQUARE), _poly("twice", SQUARE)))
    assert "features[1] (id='twice'): duplicate id (first at features[0])" in msg
    msg = _error(tmp_path, _fc(_poly("11030", SQUARE)))
    assert "features[0] (id='11030')" in msg


def test_custom_zone_property_errors(tmp_path: Path) -> None:
    open_ring = [*SQUARE[:-1], [127.0, 37.505]]
    point = {
        "type": "Feature",
        "properties": {"id": "pt", "name": "p", "name_en": "p", "category": "evacuation"},
        "geometry": {"type": "Point", "coordinates": [127.0, 37.5]},
    }
    group = {
        "type": "Feature",
        "properties": {
            "id": "grp",
            "name": "g",
            "name_en": "g",
            "category": "air_region",
            "members": ["11030", "99999"],
        },
        "geometry": None,
    }
    msg = _error(
        tmp_path,
        _fc(_poly("open", open_ring), point, group, _poly("cat", SQUARE, category="volcano")),
    )
    assert "features[0] (id='open'): ring 0 is not closed" in msg
    assert "features[1] (id='pt'): a Point zone needs 'radius_m'" in msg
    assert "features[2] (id='grp'): unknown member zone(s) ['99999']" in msg
    assert "features[3] (id='cat'): category" in msg


def test_not_json_and_not_a_feature_collection(tmp_path: Path) -> None:
    assert "not valid JSON" in _error(tmp_path, "{nope")
    assert "FeatureCollection" in _error(tmp_path, {"type": "Feature"})


def test_missing_admin_boundaries_say_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ZoneError, match=ADMIN_DIR_ENV):
        load_zones(REPO_ROOT / "config" / "zones", tmp_path)


def test_admin_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert default_admin_dir() == REPO_ROOT / "config" / "boundaries"
    monkeypatch.setenv(ADMIN_DIR_ENV, str(tmp_path))
    assert default_admin_dir() == tmp_path


def test_version_follows_the_files(tmp_path: Path, zones: ZoneRegistry) -> None:
    a = _load_one(tmp_path, _fc(_poly("box", SQUARE)), "a.geojson")
    b = _load_one(tmp_path, _fc(_poly("box", SQUARE)), "a.geojson")
    assert a.version == b.version != zones.version
    bigger = [[127.0, 37.5], [127.02, 37.5], [127.02, 37.51], [127.0, 37.51], [127.0, 37.5]]
    c = _load_one(tmp_path, _fc(_poly("box", bigger)), "a.geojson")
    assert c.version != a.version
    assert "box" in c.zones_at(37.505, 127.015) and "box" not in a.zones_at(37.505, 127.015)


def test_bad_administrative_file_names_the_feature(tmp_path: Path) -> None:
    admin = tmp_path / "admin"
    admin.mkdir()
    for f in default_admin_dir().glob("*.json"):
        (admin / f.name).write_bytes(f.read_bytes())
    dongs = json.loads((admin / "seoul_submunicipalities_geo_simple.json").read_text("utf-8"))
    dongs["features"][5]["properties"]["code"] = "9903011"  # no such 구
    dongs["features"][9]["geometry"]["coordinates"][0][2] = [226.9, 37.5]
    bad_id = dongs["features"][9]["properties"]["code"]
    (admin / "seoul_submunicipalities_geo_simple.json").write_text(json.dumps(dongs), "utf-8")
    with pytest.raises(ZoneError) as info:
        load_zones(REPO_ROOT / "config" / "zones", admin)
    msg = str(info.value)
    assert "seoul_submunicipalities_geo_simple.json" in msg
    assert f"features[9] (id='{bad_id}'): longitude 226.9 out of range" in msg
    assert "parent zone '99030' is not defined" in msg
