"""CAP 1.2 documents for every public transition, checked against the schema's constraints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from alerting.cap import CapRef, render_cap
from alerting.cap_check import check_cap
from alerting.machine import AlertMachine
from alerting.model import ZoneInfo
from gyeongbo.events import AlertEvent, Detection
from streams.cap_feed import CapFeed, build_index

GEO = Path(__file__).resolve().parents[1] / "config" / "boundaries"
T0 = 1596678000000
MIN = 60_000
NS = "{urn:oasis:names:tc:emergency:cap:1.2}"


def yongsan() -> ZoneInfo:
    """용산구 with its real KOSTAT boundary (GeoJSON is lon,lat; CAP wants lat,lon)."""
    data = json.loads((GEO / "seoul_municipalities_geo_simple.json").read_text())
    (feat,) = [f for f in data["features"] if f["properties"]["code"] == "11030"]
    ring = [(lat, lon) for lon, lat in feat["geometry"]["coordinates"][0]]
    return ZoneInfo(
        id="11030", name="용산구", name_en="Yongsan-gu", rings=[ring], admin_code="11030"
    )


def det(level: str, minute: int, **kw: object) -> Detection:
    return Detection(
        station="1018683",
        hazard="flood",
        level=level,  # type: ignore[arg-type]
        ts_ms=T0 + minute * MIN,
        rule="flood.gauge_stage",
        value=8.6,
        threshold=8.5,
        **kw,
    )  # type: ignore[arg-type]


def flood_events(exercise: bool = False) -> list[AlertEvent]:
    m = AlertMachine()
    z = yongsan()
    evs = m.feed(det("caution", 0, projected_crossing_ms=T0 + 20 * MIN, exercise=exercise), [z])
    evs += m.feed(det("alert", 10, exercise=exercise), [z])
    evs += m.acknowledge(evs[0].alert_id, actor="kim", ts_ms=T0 + 11 * MIN)
    evs += m.feed(det("serious", 20, exercise=exercise), [z])
    evs += m.feed(det("attention", 30, exercise=exercise), [z])
    evs += m.advance(T0 + 60 * MIN, exercise_now_ms=T0 + 60 * MIN)
    evs += m.feed(det("cleared", 70, exercise=exercise), [z])
    evs += m.advance(T0 + 100 * MIN, exercise_now_ms=T0 + 100 * MIN)
    return evs


def info(doc: bytes, lang: str = "ko-KR") -> dict[str, str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(doc)
    for i in root.findall(f"{NS}info"):
        if i.findtext(f"{NS}language") == lang:
            return {c.tag.replace(NS, ""): (c.text or "") for c in i}
    raise AssertionError(lang)


def test_every_public_transition_becomes_a_valid_document(tmp_path: Path) -> None:
    evs = flood_events()
    assert [e.action for e in evs] == [
        "raise",
        "escalate",
        "ack",
        "escalate",
        "deescalate",
        "clear",
    ]
    feed = CapFeed(tmp_path)
    paths = [feed.publish(e, yongsan()) for e in evs]
    assert paths[2] is None  # an ack is not a public transition
    docs = [p.read_bytes() for p in paths if p is not None]
    assert len(docs) == 5
    for d in docs:
        assert check_cap(d) == [], d.decode()
    index = json.loads((tmp_path / "index.json").read_text())
    assert index == build_index(tmp_path)
    entries = index["entries"][::-1]  # oldest first
    assert [e["msgType"] for e in entries] == ["Alert", "Update", "Update", "Update", "Update"]
    assert [len((e["references"] or "").split()) for e in entries] == [0, 1, 2, 3, 4]
    assert entries[1]["references"] == (
        "gyeongbo@alerts.example.kr,flood:11030:2020-08-06T10:40:00+09:00#1,"
        "2020-08-06T10:40:00+09:00"
    )
    assert {e["incidents"] for e in entries} == {"flood:11030:2020-08-06T10:40:00+09:00"}
    assert [(e["severity"], e["urgency"], e["certainty"], e["responseType"]) for e in entries] == [
        ("Moderate", "Expected", "Likely", "Prepare"),  # 주의 on a forecast crossing
        ("Severe", "Immediate", "Observed", "Evacuate"),  # 경계 observed
        ("Extreme", "Immediate", "Observed", "Evacuate"),  # 심각
        ("Minor", "Past", "Observed", "AllClear"),  # 심각 → 관심: the public warning is lifted
        ("Minor", "Past", "Observed", "AllClear"),  # cleared
    ]
    assert all(e["status"] == "Actual" for e in entries)
    ko, en = info(docs[0]), info(docs[0], "en-US")
    assert (ko["event"], en["event"], ko["category"]) == ("홍수주의보", "Flood watch", "Met")
    assert "2020-08-06T11:00:00+09:00" in ko["description"]  # the projected crossing


def test_area_polygon_and_geocode() -> None:
    import xml.etree.ElementTree as ET

    doc = render_cap(flood_events()[0], yongsan())
    area = ET.fromstring(doc).find(f"{NS}info/{NS}area")
    assert area is not None
    assert area.findtext(f"{NS}areaDesc") == "용산구"
    pairs = (area.findtext(f"{NS}polygon") or "").split()
    assert len(pairs) >= 4 and pairs[0] == pairs[-1]
    assert pairs[0] == "37.54118,127.010709"  # lat first
    assert (
        area.findtext(f"{NS}geocode/{NS}valueName"),
        area.findtext(f"{NS}geocode/{NS}value"),
    ) == ("KOSTAT", "11030")
    open_ring = ZoneInfo(id="x", name="x", rings=[[(37.5, 126.9), (37.6, 126.9), (37.6, 127.0)]])
    poly = ET.fromstring(render_cap(flood_events()[0], open_ring)).findtext(
        f"{NS}info/{NS}area/{NS}polygon"
    )
    assert poly == "37.5,126.9 37.6,126.9 37.6,127 37.5,126.9"


def test_drills_are_exercise_documents(tmp_path: Path) -> None:
    feed = CapFeed(tmp_path)
    for e in flood_events(exercise=True):
        feed.publish(e, yongsan())
    entries = build_index(tmp_path)["entries"]
    assert {e["status"] for e in entries} == {"Exercise"} and len(entries) == 5
    assert all(e["identifier"].startswith("exercise:") for e in entries)
    assert all(check_cap((tmp_path / e["file"]).read_bytes()) == [] for e in entries)


def test_operator_cancel_and_feed_restart_and_replay(tmp_path: Path) -> None:
    m = AlertMachine()
    (e1,) = m.feed(det("caution", 0), [yongsan()])
    CapFeed(tmp_path).publish(e1, yongsan())
    (c,) = m.clear(e1.alert_id, actor="park", ts_ms=T0 + MIN, reason="gauge fault", cancel=True)
    feed = CapFeed(tmp_path)  # a restarted worker
    p = feed.publish(c, yongsan())
    assert p is not None and check_cap(p.read_bytes()) == []
    entry = build_index(tmp_path)["entries"][0]
    assert (entry["msgType"], entry["references"].split(",")[1]) == ("Cancel", e1.event_id)
    before = sorted(tmp_path.iterdir())
    assert feed.publish(c, yongsan()) == p  # replayed event: nothing new
    assert sorted(tmp_path.iterdir()) == before


def test_sensor_health_and_silences_get_no_document(tmp_path: Path) -> None:
    m = AlertMachine()
    feed = CapFeed(tmp_path)
    evs = m.feed(
        Detection(
            station="A",
            hazard="sensor_health",
            level="caution",
            ts_ms=T0,
            rule="health.deadman",
            value=0.0,
        ),
        [yongsan()],
    )
    evs += m.feed(det("caution", 1), [yongsan()])
    evs += m.silence("11030", duration_s=600, actor="lee", ts_ms=T0 + 2 * MIN, reason="works")
    assert [(e.hazard, e.action) for e in evs] == [
        ("sensor_health", "raise"),
        ("flood", "raise"),
        ("flood", "silence"),
        ("sensor_health", "silence"),
    ]
    assert [feed.publish(e, yongsan()) is not None for e in evs] == [False, True, False, False]


def _valid() -> str:
    ref = CapRef("gyeongbo@alerts.example.kr", "flood:x#1", "2020-08-06T10:40:00+09:00")
    return render_cap(flood_events()[2], yongsan(), references=[ref]).decode()


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (
            lambda d: re.sub(r"(<sent>.*?</sent>)\s*(<status>.*?</status>)", r"\2\1", d),
            "unexpected or out-of-order element sent",
        ),
        (
            lambda d: d.replace("<status>Actual</status>", "<status>Real</status>"),
            "'Real' is not one of",
        ),
        (
            lambda d: re.sub(r"<sent>(.*?)\+09:00</sent>", r"<sent>\1Z</sent>", d),
            "is not a CAP dateTime",
        ),
        (
            lambda d: re.sub(r"<sent>(.*?)\+09:00</sent>", r"<sent>\1.5+09:00</sent>", d),
            "is not a CAP dateTime",
        ),
        (
            lambda d: re.sub(r"<polygon>(\S+) ", r"<polygon>1.0,1.0 ", d, count=1),
            "polygon not closed",
        ),
        (
            lambda d: re.sub(r"<polygon>.*?</polygon>", "<polygon>1,1 2,2 1,1</polygon>", d),
            "3 coordinate pairs",
        ),
        (
            lambda d: re.sub(
                r"<polygon>.*?</polygon>", "<polygon>127,37 1,1 2,2 127,37</polygon>", d
            ),
            "WGS 84",
        ),
        (
            lambda d: re.sub(r"\s*<references>.*?</references>", "", d),
            "Update/Cancel needs references",
        ),
        (lambda d: d.replace("<identifier>flood:", "<identifier>flood "), "contains a space"),
        (lambda d: re.sub(r"\s*<urgency>.*?</urgency>", "", d, count=1), "missing urgency"),
        (
            lambda d: d.replace("<language>ko-KR</language>", "<language>ko_KR</language>"),
            "RFC 3066",
        ),
        (
            lambda d: d.replace("<scope>Public</scope>", "<scope>Private</scope>"),
            "scope Private needs addresses",
        ),
        (
            lambda d: d.replace(
                "urn:oasis:names:tc:emergency:cap:1.2", "urn:oasis:names:tc:emergency:cap:1.1"
            ),
            "expected",
        ),
        (
            lambda d: d.replace("<areaDesc>", "<extra>x</extra><areaDesc>", 1),
            "unexpected or out-of-order element extra",
        ),
    ],
)
def test_checker_catches_schema_violations(mutate: object, problem: str) -> None:
    valid = _valid()
    assert check_cap(valid.encode()) == []
    bad = mutate(valid)  # type: ignore[operator]
    assert bad != valid
    problems = check_cap(bad.encode())
    assert any(problem in p for p in problems), problems
