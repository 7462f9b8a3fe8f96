"""Compare two drill runs: the same scenario, seed and speed must give the same outcome.

A drill's expectations watch a few zones; a fault (a worker crash, a broker restart) can
lose or add transitions anywhere else and still pass them. So a run is also compared with a
clean reference run of the same scenario (``gyeongbo drill compare ref.json run.json``, or
:func:`compare_reports` on two :meth:`~simulators.report.DrillReport.to_dict`), on what
people receive:

* **transitions**, keyed ``hazard|zone|n`` (the n-th transition of that hazard in that zone,
  counted once per ``event_id``; :func:`simulators.report.transitions_of`). A transition is
  its ``action``, ``previous`` and ``level``. Left out, because they depend on timing and
  not on what was decided: ``ts`` / ``t_s`` (a step down is decided by whichever comes
  first, the zone's next detection or the worker's clock tick, and the tick follows the
  newest drill reading of *any* station), ``event_id`` and ``alert_id`` (they embed the
  decision time of the alert's raise, and the drill's anchor), the evidence and its
  ``stations`` (the station levels at that instant), and receive times;
* **SMS** as handsets receive them: the multiset of (masked number, body), where the body's
  area is left out when the text matches a template (:func:`sms_key`): a message names the
  area most specific to its person among the zones *active when it is planned*, and when
  several zones rise at the same instant (one gauge raising four districts), which of them
  reached the notify agent first is a matter of timing, in a clean run as much as in a
  faulted one. The hazard, the stage word, the station and the value stay compared;
* **CAP documents**: the multiset of (transition key, ``status``, ``msgType``,
  ``severity``, number of ``references``); a document is tied to its transition by its
  identifier (= the transition's ``event_id`` in that run);
* **headquarters stages**: the sequence of (action, previous, stage);
* the published stream itself (messages, readings, dead-lettered payloads): two runs of a
  different stream are not comparable, and that is said first.

>>> a = {"transitions": [{"key": "flood|11030|1", "action": "raise", "previous": "cleared",
...                       "level": "caution", "event_id": "x#1"}],
...      "sms": [{"to": "+8210****0001", "body": "[훈련] …"}], "cap": [], "hq_stages": []}
>>> compare_reports(a, a)
[]
>>> b = {**a, "transitions": [], "sms": []}
>>> compare_reports(a, b)  # doctest: +NORMALIZE_WHITESPACE
['transition flood|11030|1 raise cleared→caution: missing',
 'SMS to +8210****0001 "[훈련] …": 1 in the reference, 0 in this run']
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

from streams.config_files import DEFAULT_TEMPLATES, load_templates

__all__ = ["compare_reports", "sms_key", "transition_facts"]

#: The fields of a transition that are compared (see the module docstring).
COMPARED = ("action", "previous", "level")


def transition_facts(report: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """``key`` → (action, previous, level) of each transition of a report."""
    rows: Sequence[Mapping[str, Any]] = report.get("transitions") or []
    return {str(r["key"]): tuple(str(r.get(f, "")) for f in COMPARED) for r in rows}


def _fmt(facts: tuple[str, ...]) -> str:
    action, previous, level = facts
    return f"{action} {previous}→{level}"


def _multiset_diff(what: str, ref: Counter[Any], run: Counter[Any]) -> list[str]:
    out = []
    for item in sorted(set(ref) | set(run), key=str):
        if ref[item] != run[item]:
            out.append(f"{what} {item}: {ref[item]} in the reference, {run[item]} in this run")
    return out


def _cap_facts(report: Mapping[str, Any]) -> Counter[str] | None:
    docs = report.get("cap")
    if docs is None:
        return None
    key_of = {str(r.get("event_id")): str(r["key"]) for r in report.get("transitions") or []}
    return Counter(
        f"{key_of.get(str(d.get('identifier')), '? ' + str(d.get('identifier')))} "
        f"{d.get('status')}/{d.get('msgType')}/{d.get('severity')} "
        f"refs={d.get('references', 0)}"
        for d in docs
    )


def compare_reports(ref: Mapping[str, Any], run: Mapping[str, Any]) -> list[str]:
    """Every difference between a reference report and a run's (empty: the same outcome)."""
    out: list[str] = []
    for field in ("scenario", "seed", "speed", "messages", "readings", "observed_rejections"):
        if field in ref and field in run and ref[field] != run[field]:
            out.append(f"not the same drill: {field} {ref[field]!r} ≠ {run[field]!r}")
    a, b = transition_facts(ref), transition_facts(run)
    for key in sorted(set(a) | set(b), key=_key_order):
        if key not in b:
            out.append(f"transition {key} {_fmt(a[key])}: missing")
        elif key not in a:
            out.append(f"transition {key} {_fmt(b[key])}: extra")
        elif a[key] != b[key]:
            out.append(f"transition {key}: {_fmt(a[key])} in the reference, {_fmt(b[key])} here")
    if ref.get("sms") is not None and run.get("sms") is not None:
        out += _multiset_diff(
            "SMS to",
            Counter(_sms(m) for m in ref["sms"]),
            Counter(_sms(m) for m in run["sms"]),
        )
    ca, cb = _cap_facts(ref), _cap_facts(run)
    if ca is not None and cb is not None:
        out += _multiset_diff("CAP document", ca, cb)
    ha = [_hq(h) for h in ref.get("hq_stages") or []]
    hb = [_hq(h) for h in run.get("hq_stages") or []]
    if ha != hb:
        out.append(f"headquarters stages {ha} in the reference, {hb} in this run")
    return out


def _sms(m: Mapping[str, Any]) -> str:
    return f"{m.get('to', '?')} {json.dumps(sms_key(str(m.get('body', ''))), ensure_ascii=False)}"


@cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    """One regular expression per hazard × stage template of the shipped templates, with the
    ``zone`` field captured and every other field matched as it was rendered."""
    t = load_templates(DEFAULT_TEMPLATES)
    out = []
    for h in t.hazards.values():
        for text in h.stages.values():
            rx = ""
            for literal, name, _, _ in string.Formatter().parse(text):
                rx += re.escape(literal)
                if name == "zone":
                    rx += "(?P<zone>.+?)"
                elif name == "prefix":
                    rx += re.escape(t.prefix)
                elif name == "issuer":
                    rx += re.escape(h.issuer)
                elif name is not None:
                    rx += ".*?"
            out.append(re.compile(f"(?:{re.escape(t.drill_prefix)})?{rx}$"))
    return tuple(out)


def sms_key(body: str) -> str:
    """An SMS body with the area it names replaced by ``{area}``, when it matches a template
    (otherwise the body itself).

    >>> sms_key("[훈련][경보] Flood 홍수경보 용산구 외 3곳: 한강대교 수위 10.1m. 저지대 주민 대피. "
    ...         "-한강홍수통제소")
    '[훈련][경보] Flood 홍수경보 {area}: 한강대교 수위 10.1m. 저지대 주민 대피. -한강홍수통제소'
    """
    for rx in _patterns():
        m = rx.match(body)
        if m is not None and "zone" in rx.groupindex:
            return body[: m.start("zone")] + "{area}" + body[m.end("zone") :]
    return body


def _hq(h: Mapping[str, Any]) -> str:
    return f"{h.get('action')} {h.get('previous')}→{h.get('stage')}"


def _key_order(key: str) -> tuple[str, str, int]:
    hazard, zone, n = key.rsplit("|", 2)
    return hazard, zone, int(n) if n.isdigit() else 0
