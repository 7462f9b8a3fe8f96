"""Recipients: zones, sub-zones, opt-ins, drill isolation, E.164 and masking."""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml

from geo.phone import PhoneNumber, mask_phone
from geo.recipients import RecipientDirectory, RecipientError, parse_recipients
from geo.zones import ZoneRegistry
from gyeongbo.settings import REPO_ROOT
from gyeongbo.vocab import Hazard
from streams.config_files import load_recipients, load_zones

RECIPIENTS = REPO_ROOT / "config" / "recipients.yaml"


@pytest.fixture(scope="module")
def zones() -> ZoneRegistry:
    return load_zones()


@pytest.fixture(scope="module")
def directory(zones: ZoneRegistry) -> RecipientDirectory:
    return load_recipients(RECIPIENTS, zones=zones)


def _ids(rs: Any) -> set[str]:
    return {r.id for r in rs}


def _doc() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RECIPIENTS.read_text("utf-8"))
    return copy.deepcopy(data)


def test_config_file_is_fictional_and_complete(directory: RecipientDirectory) -> None:
    assert len(directory) == 14
    assert all(r.phone.e164.startswith("+8210000") for r in directory.values())
    assert {r.id for r in directory.values() if r.drill} == {
        "drill-seoul-hq",
        "drill-yongsan-field",
        "drill-gyeongju",
    }


def test_recipients_of_a_gu_include_its_dong_and_area_subscribers(
    directory: RecipientDirectory,
) -> None:
    got = _ids(directory.recipients_of("11030"))
    # res-yongsan-001 by point (이촌1동), res-yongsan-002 by 구 subscription, the HQ drill
    # handset by its province subscription, the field handset by point (이촌2동).
    assert got == {"res-yongsan-001", "res-yongsan-002", "drill-seoul-hq", "drill-yongsan-field"}
    assert _ids(directory.recipients_of("11200")) == {
        "res-dongjak-001",
        "res-dongjak-002",
        "drill-seoul-hq",
    }


def test_recipients_of_a_dong(directory: RecipientDirectory) -> None:
    # Located in another 동 of 용산구: not a recipient of 이촌2동; a 용산구 subscriber is.
    assert _ids(directory.recipients_of("1103064")) == {
        "res-yongsan-002",
        "drill-seoul-hq",
        "drill-yongsan-field",
    }


def test_recipients_of_a_province_and_a_region(directory: RecipientDirectory) -> None:
    seoul = _ids(directory.recipients_of("11"))
    assert {"res-junggu-001", "res-mapo-001", "res-gwangjin-001", "drill-yongsan-field"} <= seoul
    assert not {"res-busan-001", "res-gyeongju-001", "drill-gyeongju"} & seoul
    assert _ids(directory.recipients_of("seoul-center")) == {
        "res-yongsan-001",
        "res-yongsan-002",
        "res-junggu-001",
        "drill-seoul-hq",
        "drill-yongsan-field",
    }
    assert _ids(directory.recipients_of("37020")) == {"res-gyeongju-001", "drill-gyeongju"}


def test_recipients_of_custom_zones(directory: RecipientDirectory) -> None:
    assert _ids(directory.recipients_of("hangang-riverside-central")) == {
        "res-yongsan-001",  # point in the band
        "res-yongsan-002",  # subscribes to 용산구, which the band overlaps
        "drill-seoul-hq",
        "drill-yongsan-field",
    }
    assert _ids(directory.recipients_of("seongsu-bridge-500m")) == {
        "res-seongdong-001",  # point inside the radius
        "res-gangnam-001",  # subscribed to it by name
        "drill-seoul-hq",
    }


def test_drills_reach_drill_handsets_only(directory: RecipientDirectory) -> None:
    real = directory.audience("11030", Hazard.FLOOD, exercise=False)
    drill = directory.audience("11030", Hazard.FLOOD, exercise=True)
    assert [r.id for r in real] == ["res-yongsan-001", "res-yongsan-002"]
    assert [r.id for r in drill] == ["drill-seoul-hq", "drill-yongsan-field"]
    for zone in directory.zone_ids():
        for hazard in Hazard:
            if hazard is Hazard.SENSOR_HEALTH:
                continue
            assert all(not r.drill for r in directory.audience(zone, hazard, exercise=False))
            assert all(r.drill for r in directory.audience(zone, hazard, exercise=True))


def test_hazard_opt_ins(directory: RecipientDirectory) -> None:
    assert _ids(directory.audience("11200", "pm10", exercise=False)) == {"res-dongjak-002"}
    assert _ids(directory.audience("11200", "flood", exercise=False)) == {"res-dongjak-001"}
    assert directory.audience("11", "sensor_health", exercise=False) == ()
    # Several zones at once: each recipient once.
    both = directory.audience(["11030", "1103064", "seoul-center"], "flood", exercise=False)
    assert [r.id for r in both] == ["res-junggu-001", "res-yongsan-001", "res-yongsan-002"]


def test_phone_numbers_never_print(directory: RecipientDirectory, caplog: Any) -> None:
    log = logging.getLogger("test_geo_recipients")
    with caplog.at_level(logging.INFO):
        for r in directory.values():
            log.info("sending to %s (%r) %s", r.phone, r, f"{r.phone}")
    assert "+8210000" not in caplog.text and "1000000" not in caplog.text
    assert "+82******0101" in caplog.text
    assert "1000000" not in repr(directory) + repr(list(directory.values()))


def test_e164_parsing() -> None:
    assert PhoneNumber.parse("+82 (10) 0000.0101").e164 == "+821000000101"
    assert PhoneNumber.parse("+1-202-555-0123").e164 == "+12025550123"
    for bad in ["010-0000-0101", "+0821000000101", "+82100000010112345", "+82", "8210", ""]:
        with pytest.raises(ValueError, match=r"E\.164"):
            PhoneNumber.parse(bad)
    with pytest.raises(ValueError, match="string"):
        PhoneNumber.parse(821000000101)
    assert mask_phone("+821000000101") == "+82******0101"
    assert PhoneNumber.parse("+821000000101") == PhoneNumber("+821000000101")


def _problem(zones: ZoneRegistry, data: Any) -> str:
    with pytest.raises(RecipientError) as info:
        parse_recipients(data, zones, path="r.yaml")
    return str(info.value)


def test_bad_phone_is_reported_without_its_digits(zones: ZoneRegistry) -> None:
    data = _doc()
    data["recipients"][2]["phone"] = "010-9876-5432"
    msg = _problem(zones, data)
    assert "recipients[2] (id='res-dongjak-001'): phone" in msg and "E.164" in msg
    assert "9876" not in msg


def test_duplicate_phone_is_rejected_masked(zones: ZoneRegistry) -> None:
    data = _doc()
    data["recipients"][3]["phone"] = "+82 10-0000-0201"  # res-dongjak-001's number
    msg = _problem(zones, data)
    assert "recipients[3] (id='res-dongjak-002'): phone +82******0201 already belongs to" in msg
    assert "1000000201" not in msg


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"zones": ["11030", "99999"]}, "unknown zone(s) ['99999']"),
        ({"hazards": ["flood", "volcano"]}, "unknown or non-public hazard(s) ['volcano']"),
        ({"hazards": ["sensor_health"]}, "non-public hazard(s) ['sensor_health']"),
        ({"hazards": []}, "hazards"),
        ({"location": {"lat": 36.0, "lon": 125.0}}, "location is outside every zone"),
        ({"location": None}, "needs a location, zones, or both"),
        ({"language": "ja"}, "language"),
        ({"pager": "+82"}, "pager"),
    ],
)
def test_invalid_entries_are_named(zones: ZoneRegistry, change: Any, expected: str) -> None:
    data = _doc()
    data["recipients"][0].update(change)
    msg = _problem(zones, data)
    assert "recipients[0] (id='res-yongsan-001')" in msg and expected in msg


def test_yaml_errors_do_not_echo_the_file(tmp_path: Path, zones: ZoneRegistry) -> None:
    p = tmp_path / "r.yaml"
    p.write_text('recipients:\n  - id: x\n    phone: "+821098765432\n', encoding="utf-8")
    with pytest.raises(RecipientError, match="not valid YAML at line") as info:
        load_recipients(p, zones=zones)
    assert "98765432" not in str(info.value)
