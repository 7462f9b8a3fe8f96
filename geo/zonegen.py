"""Generate the custom zones in ``config/zones/`` from the KOSTAT boundaries.

``python -m geo.zonegen [--admin-dir DIR] [--out DIR]`` writes three files; the committed
copies are its output (a test checks that they still match), so a change is made here and
regenerated, never edited by hand.

* ``hangang-riverside.geojson`` — two Han River riverside inundation bands. The river's
  midline is taken from the data: in the KOSTAT 구 boundaries the 구 north and south of the
  river meet in mid-channel, so the shared boundary of {마포, 용산, 성동, 광진} and {강서,
  영등포, 동작, 서초, 강남, 송파, 강동} is one line along the river from 강서/마포 to 광진/강동.
  The band is that line buffered by :data:`RIVERSIDE_HALF_WIDTH_M` on each side: the Han is
  about 1 km wide in Seoul, so a bank lies ~500 m from the midline, and the riverside parks,
  bike paths and roads that flood first (관심/주의) lie within a few hundred metres of the
  banks. Flat ends at :data:`RIVERSIDE_SPLIT_LON` cut it into *central* (양화대교 … 동호대교,
  gauges 한강대교 and 잠수교) and *east* (동호대교 … 광진교, gauges 청담대교 and 광진교). This
  is a schematic planning zone, not an official inundation map; replace it with the Ministry
  of Environment flood-risk map (홍수위험지도) polygons when a deployment has them.
* ``seongsu-bridge.geojson`` — a 500 m evacuation radius around pier 7 of Seongsu Bridge
  (the structural monitor ``SFC-SEONGSU-P7``), kept as a circle (Point + ``radius_m``).
* ``seoul-air-regions.geojson`` — Seoul's five air-quality forecast regions (권역), each a
  union of its member 구, as Seoul's air-quality alert system groups them: 도심권 종로·중구·용산;
  동북권 성동·광진·동대문·중랑·성북·강북·도봉·노원; 서북권 은평·서대문·마포; 서남권 양천·강서·구로·
  금천·영등포·동작·관악; 동남권 서초·강남·송파·강동.

Boundaries derived from Statistics Korea (KOSTAT) SGIS census boundary data (2013), Korea Open
Government Licence type 1 (attribution), via southkorea/seoul-maps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import shapely
import shapely.geometry

from geo.geojson import read_geojson
from geo.metric import from_local_km, to_local_km
from geo.zones import ADMIN_ATTRIBUTION, default_admin_dir
from gyeongbo.settings import REPO_ROOT

__all__ = ["AIR_REGIONS", "build_all", "main", "riverside_midline"]

NORTH_BANK = ("11140", "11030", "11040", "11050")  # 마포 용산 성동 광진
SOUTH_BANK = ("11160", "11190", "11200", "11220", "11230", "11240", "11250")
RIVERSIDE_HALF_WIDTH_M = 1000.0
#: (west, split, east) longitudes of the two bands: 양화대교, 동호대교, 광진교 (east of it).
RIVERSIDE_SPLIT_LON = (126.900, 127.020, 127.120)
SEONGSU_P7 = (37.5368, 127.0347)  # (lat, lon), as config/stations.yaml has it
_ORIGIN = (127.0, 37.53)  # local plane for buffering (lon, lat)

AIR_REGIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "seoul-center": ("서울 도심권", "Seoul central region", ("11010", "11020", "11030")),
    "seoul-northeast": (
        "서울 동북권",
        "Seoul northeast region",
        ("11040", "11050", "11060", "11070", "11080", "11090", "11100", "11110"),
    ),
    "seoul-northwest": ("서울 서북권", "Seoul northwest region", ("11120", "11130", "11140")),
    "seoul-southwest": (
        "서울 서남권",
        "Seoul southwest region",
        ("11150", "11160", "11170", "11180", "11190", "11200", "11210"),
    ),
    "seoul-southeast": (
        "서울 동남권",
        "Seoul southeast region",
        ("11220", "11230", "11240", "11250"),
    ),
}


def _seoul_gu(admin_dir: Path) -> dict[str, Any]:
    data = read_geojson(admin_dir / "seoul_municipalities_geo_simple.json")
    return {
        f["properties"]["code"]: shapely.geometry.shape(f["geometry"]) for f in data["features"]
    }


def riverside_midline(admin_dir: Path) -> Any:
    """The Han River midline as the shared boundary of the north- and south-bank 구."""
    gu = _seoul_gu(admin_dir)
    north = shapely.union_all([gu[c] for c in NORTH_BANK])
    south = shapely.union_all([gu[c] for c in SOUTH_BANK])
    line = shapely.line_merge(shapely.intersection(north.boundary, south.boundary))
    if line.geom_type != "LineString":
        raise ValueError(f"expected one midline, got {line.geom_type}")
    return line


def _round(geom: Any, ndigits: int = 6) -> Any:
    return shapely.set_precision(geom, 10.0**-ndigits)


def _feature(props: dict[str, Any], geom: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": props,
        "geometry": None if geom is None else shapely.geometry.mapping(geom),
    }


def _collection(comment: str, features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "comment": comment, "features": features}


def riverside(admin_dir: Path) -> dict[str, Any]:
    line_km = to_local_km(riverside_midline(admin_dir), *_ORIGIN)
    west, split, east = (
        to_local_km(shapely.Point(lon, _ORIGIN[1]), *_ORIGIN).x for lon in RIVERSIDE_SPLIT_LON
    )
    feats = []
    for zid, name, name_en, x0, x1, gauges in (
        (
            "hangang-riverside-central",
            "한강 도심 구간 둔치",
            "Han riverside, central reach",
            west,
            split,
            "1018683 한강대교, 1018680 잠수교",
        ),
        (
            "hangang-riverside-east",
            "한강 동부 구간 둔치",
            "Han riverside, east reach",
            split,
            east,
            "1018662 청담대교, 1018640 광진교",
        ),
    ):
        reach = shapely.clip_by_rect(line_km, x0, -1e3, x1, 1e3)
        band = shapely.buffer(reach, RIVERSIDE_HALF_WIDTH_M / 1000.0, cap_style="flat")
        band = shapely.clip_by_rect(band, x0, -1e3, x1, 1e3)
        geom = _round(from_local_km(band, *_ORIGIN))
        props = {
            "id": zid,
            "name": name,
            "name_en": name_en,
            "category": "inundation",
            "description": (
                f"Schematic riverside flood band: the Han midline (shared 구 boundary) ± "
                f"{RIVERSIDE_HALF_WIDTH_M:.0f} m; gauges {gauges}. Not an official inundation map."
            ),
            "source": f"derived from {ADMIN_ATTRIBUTION}",
        }
        feats.append(_feature(props, geom))
    return _collection("generated by python -m geo.zonegen; do not edit by hand", feats)


def seongsu() -> dict[str, Any]:
    lat, lon = SEONGSU_P7
    props = {
        "id": "seongsu-bridge-500m",
        "name": "성수대교 반경 500 m 대피구역",
        "name_en": "Seongsu Bridge 500 m evacuation radius",
        "category": "evacuation",
        "radius_m": 500.0,
        "description": "Evacuation radius around pier 7 (structural monitor SFC-SEONGSU-P7).",
        "source": "centre from config/stations.yaml (SFC-SEONGSU-P7)",
    }
    return _collection(
        "generated by python -m geo.zonegen; do not edit by hand",
        [_feature(props, shapely.Point(lon, lat))],
    )


def air_regions() -> dict[str, Any]:
    feats = []
    for zid, (name, name_en, members) in AIR_REGIONS.items():
        props = {
            "id": zid,
            "name": name,
            "name_en": name_en,
            "category": "air_region",
            "members": list(members),
            "description": "Seoul air-quality forecast/alert region (권역): union of its 구.",
            "source": "membership: Seoul air-quality alert regions; boundaries "
            + ADMIN_ATTRIBUTION,
        }
        feats.append(_feature(props, None))
    return _collection("generated by python -m geo.zonegen; do not edit by hand", feats)


def build_all(admin_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """File name → GeoJSON document, for every generated zone file."""
    adir = admin_dir or default_admin_dir()
    return {
        "hangang-riverside.geojson": riverside(adir),
        "seongsu-bridge.geojson": seongsu(),
        "seoul-air-regions.geojson": air_regions(),
    }


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m geo.zonegen", description=__doc__.split("\n")[0])
    ap.add_argument("--admin-dir", type=Path, default=None, help="KOSTAT boundary files")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "config" / "zones")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, doc in build_all(args.admin_dir).items():
        (args.out / name).write_text(dumps(doc), encoding="utf-8")
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
