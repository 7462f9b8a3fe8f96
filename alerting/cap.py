"""CAP 1.2 documents for every public alert transition (docs/design.md §5).

OASIS Common Alerting Protocol Version 1.2 (1 July 2010), namespace
``urn:oasis:names:tc:emergency:cap:1.2``. One ``<alert>`` per transition:

* ``identifier`` = the transition's ``event_id`` (unique, deterministic); ``sender`` is ours;
  ``sent`` is the transition time to the second with its offset (CAP forbids ``Z`` and
  fractions); ``status`` ``Actual``, or ``Exercise`` for drills; ``scope`` ``Public``;
* ``msgType`` ``Alert`` for the first document of an alert, ``Update`` for every later one
  (with ``references`` to all earlier ones: ``sender,identifier,sent`` triplets), ``Cancel``
  when an operator cleared an alert issued in error; the alert id goes in ``incidents``;
* two ``<info>`` blocks, ``ko-KR`` and ``en-US``, with category, event, responseType, urgency,
  severity, certainty mapped from the stage per docs/design.md §5:

  ====== ================= ====================== ================================
  stage  severity          urgency                certainty
  ====== ================= ====================== ================================
  관심   Minor             Future                 Possible
  주의   Moderate          Expected               Likely (forecast) / Observed
  경계   Severe            Expected (forecast) /  Likely (forecast) / Observed
                           Immediate (observed)
  심각   Extreme           Immediate              Likely (forecast) / Observed
  lifted Minor             Past                   Observed; responseType AllClear
  ====== ================= ====================== ================================

* ``<area>`` with ``areaDesc``, one ``polygon`` per outer ring of the zone (``lat,lon`` pairs
  separated by spaces, closed, ≥ 4 pairs) and a ``geocode`` with the KOSTAT administrative code.

:func:`cap_wanted` says which events get a document (not acks, silences or sensor health).
Constraints checked in tests: :mod:`alerting.cap_check`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from alerting.model import ZoneInfo, parse_rfc3339_ms, rfc3339_seconds
from alerting.policy import policy_for
from gyeongbo.events import AlertEvent
from gyeongbo.vocab import Level

__all__ = ["CAP_NS", "CapRef", "cap_wanted", "polygon_text", "render_cap"]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
DEFAULT_SENDER = "gyeongbo@alerts.example.kr"
ET.register_namespace("", CAP_NS)

CATEGORY = {
    "flood": "Met",
    "heavy_rain": "Met",
    "pm10": "Env",
    "pm25": "Env",
    "ozone": "Env",
    "structural": "Infra",
    "earthquake": "Geo",
}
#: (Korean event name, English event name) per hazard and stage
EVENT_NAMES: dict[str, dict[str, tuple[str, str]]] = {
    "flood": {
        "attention": ("홍수 관심", "Flood attention"),
        "caution": ("홍수주의보", "Flood watch"),
        "alert": ("홍수경보", "Flood warning"),
        "serious": ("대홍수경보", "Major flood warning"),
        "cleared": ("홍수특보 해제", "Flood warning lifted"),
    },
    "heavy_rain": {
        "attention": ("호우 관심", "Heavy rain attention"),
        "caution": ("호우주의보", "Heavy rain advisory"),
        "alert": ("호우경보", "Heavy rain warning"),
        "serious": ("호우 심각", "Heavy rain emergency"),
        "cleared": ("호우특보 해제", "Heavy rain warning lifted"),
    },
    "pm10": {
        "attention": ("미세먼지 관심", "Fine dust attention"),
        "caution": ("미세먼지 주의보", "Fine dust (PM10) advisory"),
        "alert": ("미세먼지 경보", "Fine dust (PM10) warning"),
        "serious": ("미세먼지 심각", "Fine dust (PM10) emergency"),
        "cleared": ("미세먼지 경보 해제", "Fine dust (PM10) alert lifted"),
    },
    "pm25": {
        "attention": ("초미세먼지 관심", "Fine dust attention"),
        "caution": ("초미세먼지 주의보", "Fine dust (PM2.5) advisory"),
        "alert": ("초미세먼지 경보", "Fine dust (PM2.5) warning"),
        "serious": ("초미세먼지 심각", "Fine dust (PM2.5) emergency"),
        "cleared": ("초미세먼지 경보 해제", "Fine dust (PM2.5) alert lifted"),
    },
    "ozone": {
        "attention": ("오존 관심", "Ozone attention"),
        "caution": ("오존주의보", "Ozone advisory"),
        "alert": ("오존경보", "Ozone warning"),
        "serious": ("오존중대경보", "Ozone emergency"),
        "cleared": ("오존 경보 해제", "Ozone alert lifted"),
    },
    "structural": {
        "attention": ("구조물 관심", "Structure attention"),
        "caution": ("구조물 1차 관리기준 초과", "Structure limit 1 exceeded"),
        "alert": ("구조물 2차 관리기준 초과", "Structure limit 2 exceeded"),
        "serious": ("구조물 붕괴 위험", "Structure failure risk"),
        "cleared": ("구조물 경보 해제", "Structure alert lifted"),
    },
    "earthquake": {
        "attention": ("지진 관심", "Earthquake attention"),
        "caution": ("지진 안전안내", "Earthquake safety notice"),
        "alert": ("지진 긴급재난", "Earthquake emergency alert"),
        "serious": ("지진 위급재난", "Earthquake extreme alert"),
        "cleared": ("지진 상황 종료", "Earthquake alert lifted"),
    },
}
_RESPONSE = {
    "flood": ("Monitor", "Prepare", "Evacuate", "Evacuate"),
    "heavy_rain": ("Monitor", "Prepare", "Evacuate", "Evacuate"),
    "pm10": ("Monitor", "Avoid", "Avoid", "Avoid"),
    "pm25": ("Monitor", "Avoid", "Avoid", "Avoid"),
    "ozone": ("Monitor", "Avoid", "Avoid", "Avoid"),
    "structural": ("Monitor", "Avoid", "Avoid", "Evacuate"),
    "earthquake": ("Monitor", "Monitor", "Shelter", "Evacuate"),
}
_INSTRUCTION = {
    "Monitor": ("상황을 주시하십시오.", "Monitor official information."),
    "Prepare": (
        "대피를 준비하고 하천·저지대 접근을 피하십시오.",
        "Prepare to evacuate; keep away from rivers and low ground.",
    ),
    "Evacuate": ("즉시 안전한 곳으로 대피하십시오.", "Evacuate to a safe place now."),
    "Avoid": (
        "실외활동을 피하고 마스크를 착용하십시오.",
        "Avoid the area or outdoor activity; wear a mask.",
    ),
    "Shelter": (
        "탁자 밑으로 대피하고 흔들림이 멈추면 밖으로 나가십시오.",
        "Take cover; go outside when the shaking stops.",
    ),
    "AllClear": ("상황이 해제되었습니다.", "The alert has been lifted."),
}


@dataclass(frozen=True)
class CapRef:
    """An earlier document of the same alert: ``sender,identifier,sent``."""

    sender: str
    identifier: str
    sent: str

    def text(self) -> str:
        return f"{self.sender},{self.identifier},{self.sent}"


def cap_wanted(event: AlertEvent) -> bool:
    """Every public transition: not acks or silences, not operator-only hazards."""
    return (
        policy_for(event.hazard).public
        and event.action not in ("ack", "silence")
        and (event.level != event.previous or event.action in ("manual", "clear"))
    )


def polygon_text(ring: Sequence[tuple[float, float]]) -> str | None:
    """A CAP polygon: closed, ≥ 4 ``lat,lon`` pairs; None for a degenerate ring.

    >>> polygon_text([(37.5, 126.9), (37.6, 126.9), (37.6, 127.0)])
    '37.5,126.9 37.6,126.9 37.6,127 37.5,126.9'
    >>> polygon_text([(37.5, 126.9), (37.6, 126.9)]) is None
    True
    """
    pts = [(round(float(a), 6), round(float(b), 6)) for a, b in ring]
    if pts and pts[0] != pts[-1]:
        pts.append(pts[0])
    if len(pts) < 4 or len(set(pts)) < 3:
        return None
    return " ".join(f"{_num(a)},{_num(b)}" for a, b in pts)


def _num(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


@dataclass(frozen=True)
class _Codes:
    """The CAP codes of one transition: its stage (the event's level, or ``cleared`` when
    cleared or lifted below 주의) and the ``info`` block's coded fields."""

    stage: str
    severity: str
    urgency: str
    certainty: str
    response: str
    forecast: bool  # raised on a forecast crossing (``projected_crossing`` in the evidence)


def _codes(event: AlertEvent) -> _Codes:
    level = Level.parse(event.level)
    lifted = level < Level.CAUTION and Level.parse(event.previous) >= Level.CAUTION
    stage = "cleared" if level == Level.CLEARED or lifted else event.level
    forecast = "projected_crossing" in event.evidence
    if stage == "cleared":
        return _Codes(stage, "Minor", "Past", "Observed", "AllClear", forecast)
    idx = int(level) - 1
    return _Codes(
        stage,
        ("Minor", "Moderate", "Severe", "Extreme")[idx],
        ("Future", "Expected", "Expected" if forecast else "Immediate", "Immediate")[idx],
        "Possible" if idx == 0 else ("Likely" if forecast else "Observed"),
        _RESPONSE.get(event.hazard, ("Monitor",) * 4)[idx],
        forecast,
    )


def render_cap(
    event: AlertEvent,
    zone: ZoneInfo,
    *,
    sender: str = DEFAULT_SENDER,
    references: Sequence[CapRef] = (),
    sender_name: str = "경보 Gyeongbo",
) -> bytes:
    """The CAP 1.2 XML document for one transition (UTF-8, with declaration)."""
    codes = _codes(event)
    sent = rfc3339_seconds(parse_rfc3339_ms(event.ts))
    if not references:
        msg_type = "Alert"
    elif event.evidence.get("cancel"):
        msg_type = "Cancel"
    else:
        msg_type = "Update"

    root = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(root, "identifier", event.event_id)
    _sub(root, "sender", sender)
    _sub(root, "sent", sent)
    _sub(root, "status", "Exercise" if event.exercise else "Actual")
    _sub(root, "msgType", msg_type)
    _sub(root, "source", "gyeongbo")
    _sub(root, "scope", "Public")
    if event.exercise:
        _sub(root, "note", "훈련 상황입니다. EXERCISE - this is a drill.")
    elif msg_type == "Cancel" and event.reason:
        _sub(root, "note", event.reason)
    if references:
        _sub(root, "references", " ".join(r.text() for r in references))
    _sub(root, "incidents", event.alert_id.replace(" ", "_"))
    for i in (0, 1):
        _info(root, i, event, zone, codes, sender_name)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _info(
    root: ET.Element, i: int, event: AlertEvent, zone: ZoneInfo, codes: _Codes, sender_name: str
) -> None:
    """The ``info`` block in Korean (``i`` = 0) or English (1), with the zone's area."""
    names = EVENT_NAMES.get(event.hazard, {}).get(codes.stage, (event.hazard, event.hazard))
    ev = event.evidence
    value, threshold = ev.get("value"), ev.get("threshold")
    info = _sub(root, "info")
    _sub(info, "language", ("ko-KR", "en-US")[i])
    _sub(info, "category", CATEGORY.get(event.hazard, "Other"))
    _sub(info, "event", names[i])
    _sub(info, "responseType", codes.response)
    _sub(info, "urgency", codes.urgency)
    _sub(info, "severity", codes.severity)
    _sub(info, "certainty", codes.certainty)
    _sub(info, "senderName", sender_name)
    area_name = zone.name if i == 0 or not zone.name_en else zone.name_en
    head = f"{names[i]} {area_name}" if i == 0 else f"{names[i]}: {area_name}"
    _sub(info, "headline", head)
    if value is not None:
        stations = ", ".join(event.stations)
        desc = (
            f"관측소 {stations}: {value} (기준 {threshold}), {event.ts}"
            if i == 0
            else f"Station(s) {stations}: {value} (line {threshold}) at {event.ts}"
        )
        if codes.forecast:
            desc += (
                f"; 도달 예상 {ev['projected_crossing']}"
                if i == 0
                else f"; projected to cross at {ev['projected_crossing']}"
            )
        _sub(info, "description", desc)
    _sub(info, "instruction", _INSTRUCTION[codes.response][i])
    param = _sub(info, "parameter")
    _sub(param, "valueName", "gyeongbo:level")
    _sub(param, "value", f"{event.level}/{event.level_ko}")
    area = _sub(info, "area")
    _sub(area, "areaDesc", area_name)
    for ring in zone.rings:
        text = polygon_text(ring)
        if text:
            _sub(area, "polygon", text)
    if zone.admin_code:
        gc = _sub(area, "geocode")
        _sub(gc, "valueName", "KOSTAT")
        _sub(gc, "value", zone.admin_code)
