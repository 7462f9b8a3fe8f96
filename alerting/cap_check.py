"""A checker of the CAP 1.2 XML schema's constraints, for tests and for the feed.

The official schema (OASIS CAP-v1.2.xsd) is not available offline here and no XSD validator is
installed, so this module checks the constraints the schema and the specification (OASIS CAP
1.2, 1 July 2010, §3.2–3.3) state. :func:`check_cap` returns a list of problems (empty =
valid). What it checks:

1. Root element ``alert`` in namespace ``urn:oasis:names:tc:emergency:cap:1.2``; every child
   element in the same namespace; no text-free required element.
2. Element **order and cardinality** of every complex type, as the XSD ``xs:sequence``:
   ``alert`` (identifier, sender, sent, status, msgType, source?, scope, restriction?,
   addresses?, code*, note?, references?, incidents?, info*), ``info`` (language?, category+,
   event, responseType*, urgency, severity, certainty, audience?, eventCode*, effective?,
   onset?, expires?, senderName?, headline?, description?, instruction?, web?, contact?,
   parameter*, resource*, area*), ``area`` (areaDesc, polygon*, circle*, geocode*, altitude?,
   ceiling?), ``resource`` (resourceDesc, mimeType, size?, uri?, derefUri?, digest?), and the
   value pairs ``eventCode``/``parameter``/``geocode`` (valueName, value). Unknown elements are
   errors.
3. **Enumerations**: status, msgType, scope, category, responseType, urgency, severity,
   certainty.
4. **dateTime** fields (sent, effective, onset, expires): the XSD pattern
   ``\\d\\d\\d\\d-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d[-,+]\\d\\d:\\d\\d`` — seconds, an explicit
   offset, no ``Z``, no fraction — and a real calendar date.
5. identifier and sender: no spaces, commas or restricted characters (``<``, ``&``).
6. ``references``: space-separated ``sender,identifier,sent`` triplets; required for
   ``Update`` and ``Cancel`` (specification rule).
7. ``scope`` Restricted needs ``restriction``; Private needs ``addresses``.
8. ``language``: an RFC 3066 tag.
9. ``polygon``: ≥ 4 space-separated ``lat,lon`` pairs (WGS 84 ranges), first pair = last pair;
   ``circle``: ``lat,lon radius`` with radius ≥ 0; ``ceiling`` only with ``altitude``.

>>> check_cap(b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'/>")[:2]
['alert: missing identifier', 'alert: missing sender']
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

from alerting.cap import CAP_NS

__all__ = ["CHECKED", "check_cap"]

_ONE, _OPT, _MANY, _PLUS = (1, 1), (0, 1), (0, None), (1, None)
_SEQ: dict[str, list[tuple[str, tuple[int, int | None]]]] = {
    "alert": [
        ("identifier", _ONE),
        ("sender", _ONE),
        ("sent", _ONE),
        ("status", _ONE),
        ("msgType", _ONE),
        ("source", _OPT),
        ("scope", _ONE),
        ("restriction", _OPT),
        ("addresses", _OPT),
        ("code", _MANY),
        ("note", _OPT),
        ("references", _OPT),
        ("incidents", _OPT),
        ("info", _MANY),
    ],
    "info": [
        ("language", _OPT),
        ("category", _PLUS),
        ("event", _ONE),
        ("responseType", _MANY),
        ("urgency", _ONE),
        ("severity", _ONE),
        ("certainty", _ONE),
        ("audience", _OPT),
        ("eventCode", _MANY),
        ("effective", _OPT),
        ("onset", _OPT),
        ("expires", _OPT),
        ("senderName", _OPT),
        ("headline", _OPT),
        ("description", _OPT),
        ("instruction", _OPT),
        ("web", _OPT),
        ("contact", _OPT),
        ("parameter", _MANY),
        ("resource", _MANY),
        ("area", _MANY),
    ],
    "area": [
        ("areaDesc", _ONE),
        ("polygon", _MANY),
        ("circle", _MANY),
        ("geocode", _MANY),
        ("altitude", _OPT),
        ("ceiling", _OPT),
    ],
    "resource": [
        ("resourceDesc", _ONE),
        ("mimeType", _ONE),
        ("size", _OPT),
        ("uri", _OPT),
        ("derefUri", _OPT),
        ("digest", _OPT),
    ],
    "eventCode": [("valueName", _ONE), ("value", _ONE)],
    "parameter": [("valueName", _ONE), ("value", _ONE)],
    "geocode": [("valueName", _ONE), ("value", _ONE)],
}
_ENUM = {
    "status": {"Actual", "Exercise", "System", "Test", "Draft"},
    "msgType": {"Alert", "Update", "Cancel", "Ack", "Error"},
    "scope": {"Public", "Restricted", "Private"},
    "category": {
        "Geo",
        "Met",
        "Safety",
        "Security",
        "Rescue",
        "Fire",
        "Health",
        "Env",
        "Transport",
        "Infra",
        "CBRNE",
        "Other",
    },
    "responseType": {
        "Shelter",
        "Evacuate",
        "Prepare",
        "Execute",
        "Avoid",
        "Monitor",
        "Assess",
        "AllClear",
        "None",
    },
    "urgency": {"Immediate", "Expected", "Future", "Past", "Unknown"},
    "severity": {"Extreme", "Severe", "Moderate", "Minor", "Unknown"},
    "certainty": {"Observed", "Likely", "Possible", "Unlikely", "Unknown"},
}
_DATETIME = re.compile(r"^\d\d\d\d-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
_LANG = re.compile(r"^[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*$")
_BAD_ID = re.compile(r"[\s,<&]")
_NUM = r"-?\d+(?:\.\d+)?"
_PAIR = re.compile(rf"^({_NUM}),({_NUM})$")

#: The constraint families checked, for documentation and the test report.
CHECKED = (
    "namespace",
    "order-and-cardinality",
    "enumerations",
    "dateTime",
    "identifiers",
    "references",
    "scope-dependencies",
    "language",
    "polygon",
    "circle",
    "altitude",
)


def _local(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def _check_seq(el: ET.Element, name: str, problems: list[str], path: str) -> None:
    spec = _SEQ[name]
    kids = [_local(k.tag) for k in el]
    for ns, kname in kids:
        if ns != CAP_NS:
            problems.append(f"{path}/{kname}: not in the CAP 1.2 namespace")
    names = [n for _, n in kids]
    i = 0
    for sname, (lo, hi) in spec:
        n = 0
        while i < len(names) and names[i] == sname:
            n += 1
            i += 1
        if n < lo:
            problems.append(f"{path}: missing {sname}")
        if hi is not None and n > hi:
            problems.append(f"{path}: {sname} occurs {n} times, at most {hi}")
    if i < len(names):
        problems.append(f"{path}: unexpected or out-of-order element {names[i]}")


def _dt_ok(text: str) -> bool:
    if not _DATETIME.match(text):
        return False
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _latlon(pair: str) -> bool:
    m = _PAIR.match(pair)
    return bool(m) and -90 <= float(m[1]) <= 90 and -180 <= float(m[2]) <= 180  # type: ignore[index]


def check_cap(xml: bytes | str) -> list[str]:
    """Problems of a CAP 1.2 document against the constraints listed above ([] = valid)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        return [f"not well-formed XML: {exc}"]
    problems: list[str] = []
    ns, name = _local(root.tag)
    if ns != CAP_NS or name != "alert":
        return [f"root is {root.tag}, expected {{{CAP_NS}}}alert"]

    def walk(el: ET.Element, path: str) -> None:
        _, nm = _local(el.tag)
        if nm in _SEQ:
            _check_seq(el, nm, problems, path)
        text = (el.text or "").strip()
        if nm not in _SEQ and len(el) == 0 and not text:
            problems.append(f"{path}: empty")
        if nm in _ENUM and text not in _ENUM[nm]:
            problems.append(f"{path}: {text!r} is not one of {sorted(_ENUM[nm])}")
        if nm in ("sent", "effective", "onset", "expires") and not _dt_ok(text):
            problems.append(f"{path}: {text!r} is not a CAP dateTime (seconds and an offset)")
        if nm in ("identifier", "sender") and _BAD_ID.search(text):
            problems.append(f"{path}: contains a space, comma, '<' or '&'")
        if nm == "language" and not _LANG.match(text):
            problems.append(f"{path}: {text!r} is not an RFC 3066 language tag")
        if nm == "polygon":
            pairs = text.split()
            if len(pairs) < 4:
                problems.append(f"{path}: {len(pairs)} coordinate pairs, at least 4 required")
            if pairs and pairs[0] != pairs[-1]:
                problems.append(f"{path}: first and last pairs differ (polygon not closed)")
            if not all(_latlon(p) for p in pairs):
                problems.append(f"{path}: pairs must be 'lat,lon' in WGS 84 ranges")
        if nm == "circle":
            parts = text.split()
            if (
                len(parts) != 2
                or not _latlon(parts[0])
                or not re.fullmatch(r"\d+(\.\d+)?", parts[1])
            ):
                problems.append(f"{path}: circle must be 'lat,lon radius'")
        if nm == "references":
            for triplet in text.split():
                bits = triplet.split(",")
                if len(bits) != 3 or not all(bits) or not _dt_ok(bits[2]):
                    problems.append(f"{path}: {triplet!r} is not 'sender,identifier,sent'")
        for child in el:
            walk(child, f"{path}/{_local(child.tag)[1]}")

    walk(root, "alert")

    def text_of(tag: str) -> str | None:
        el = root.find(f"{{{CAP_NS}}}{tag}")
        return (el.text or "").strip() if el is not None else None

    if text_of("msgType") in ("Update", "Cancel") and not text_of("references"):
        problems.append("alert: msgType Update/Cancel needs references")
    if text_of("scope") == "Restricted" and text_of("restriction") is None:
        problems.append("alert: scope Restricted needs restriction")
    if text_of("scope") == "Private" and text_of("addresses") is None:
        problems.append("alert: scope Private needs addresses")
    for area in root.iter(f"{{{CAP_NS}}}area"):
        if (
            area.find(f"{{{CAP_NS}}}ceiling") is not None
            and area.find(f"{{{CAP_NS}}}altitude") is None
        ):
            problems.append("area: ceiling without altitude")
    return problems
