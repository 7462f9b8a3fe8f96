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
* **SMS** as handsets receive them: the multiset of (masked number, body);
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
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["compare_reports", "transition_facts"]

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
    return f"{m.get('to', '?')} {json.dumps(str(m.get('body', '')), ensure_ascii=False)}"


def _hq(h: Mapping[str, Any]) -> str:
    return f"{h.get('action')} {h.get('previous')}→{h.get('stage')}"


def _key_order(key: str) -> tuple[str, str, int]:
    hazard, zone, n = key.rsplit("|", 2)
    return hazard, zone, int(n) if n.isdigit() else 0
