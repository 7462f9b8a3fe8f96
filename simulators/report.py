"""The drill report: observed stage transitions against the scenario's expectations.

:func:`evaluate` is a pure function — expectations and observed transitions in, one
:class:`Outcome` per finding out — so it is tested with plain lists. Rules:

* Each expectation, in file order, takes the earliest unused observed transition of its
  hazard and zone (or station) at its level (``at_least``: that level or higher), preferring
  one inside ``[earliest, latest]``. Inside: **met**; only after ``latest``: **late**; only
  before ``earliest``: **early**; none at all: **missed**. Lead time = the ground-truth
  crossing time (when known) minus the observed time: positive means the stage was raised
  before the line was crossed, as a forecast should.
* A ``never`` rule turns every transition it matches into **unexpected**.
* An observed transition no expectation took is **unexpected** if its hazard × zone is
  watched by an expectation and its level is above every level expected there (the alert
  went further than the scenario calls for); otherwise it is **extra** (e.g. 관심, or a step
  down from 경계 to 주의 on the way to cleared) when watched, or **other** when not.
* The drill fails if anything is missed, late, early or unexpected.

>>> from simulators.scenario import Expectation
>>> e = Expectation(hazard="flood", zone="11030", level="caution", earliest=0, latest=600)
>>> obs = [Observed(hazard="flood", zone="11030", level="caution", previous="cleared",
...                 t_s=300.0)]
>>> [o.status for o in evaluate([e], [], obs)]
['met']
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from gyeongbo.vocab import LEVEL_KO, Hazard, Level
from simulators.scenario import Expectation, Never

__all__ = [
    "FAILING",
    "Cycle",
    "DrillReport",
    "Observed",
    "Outcome",
    "RecipientCount",
    "evaluate",
    "fmt_t",
    "limit_findings",
    "print_report",
    "recipient_counts",
    "reraise_cycles",
    "transitions_of",
]

Status = Literal["met", "late", "early", "missed", "unexpected", "extra", "other"]
FAILING: frozenset[str] = frozenset({"late", "early", "missed", "unexpected"})


#: Operators' data-quality severities, ranked like the sensor-health levels they stand for
#: (a dropped spike like 관심, a held-out station like 경계) — for ordering only.
_SEVERITY_RANK = {"warning": int(Level.ATTENTION), "critical": int(Level.ALERT)}


def _rank(level: str) -> int:
    """Rank of a crisis level, or of a data-quality alert's severity (``dq.alerts``)."""
    return _SEVERITY_RANK[level] if level in _SEVERITY_RANK else int(Level.parse(level))


@dataclass(frozen=True)
class Observed:
    """One observed transition on ``alerts`` (or ``dq.alerts``, whose ``level`` is the data-quality
    alert's severity), timed in scenario seconds."""

    hazard: str
    zone: str
    level: str
    previous: str
    t_s: float
    stations: tuple[str, ...] = ()
    action: str = ""
    exercise: bool = True
    event_id: str = ""
    #: Wall-clock seconds from the start of publishing to when the follower received it.
    received_s: float | None = None


@dataclass(frozen=True)
class Outcome:
    status: Status
    hazard: str
    zone: str
    level: str
    #: Index into the scenario's ``expect`` (or ``never``) list; None for unmatched.
    expectation: int | None = None
    rule: Literal["expect", "never", "none"] = "expect"
    earliest_s: float | None = None
    latest_s: float | None = None
    observed: Observed | None = None
    truth_s: float | None = None
    lead_s: float | None = None
    note: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    @property
    def t_s(self) -> float:
        if self.observed is not None:
            return self.observed.t_s
        return self.latest_s if self.latest_s is not None else 0.0


def _zones(z: str | list[str] | None) -> list[str] | None:
    return None if z is None else [z] if isinstance(z, str) else list(z)


def _targets(rule: Expectation | Never, o: Observed) -> bool:
    if rule.hazard is not None and o.hazard != rule.hazard.value:
        return False
    zones = _zones(rule.zone)
    if zones is not None and o.zone not in zones:
        return False
    return not (rule.station is not None and rule.station not in o.stations)


def _level_ok(e: Expectation, o: Observed) -> bool:
    if e.at_least:
        return o.level != "cleared" and _rank(o.level) >= _rank(e.level)
    return o.level == e.level


def _never_hits(n: Never, o: Observed) -> bool:
    if not _targets(n, o):
        return False
    if n.public and o.hazard == Hazard.SENSOR_HEALTH.value:
        return False
    if o.level == "cleared" or _rank(o.level) < _rank(n.min_level):
        return False
    if n.from_ is not None and o.t_s < n.from_:
        return False
    return not (n.until is not None and o.t_s >= n.until)


def _zone_label(e: Expectation | Never) -> str:
    zones = _zones(e.zone)
    if zones:
        return "|".join(zones)
    return f"station {e.station}" if e.station else "*"


def evaluate(
    expect: Sequence[Expectation],
    never: Sequence[Never],
    observed: Sequence[Observed],
    *,
    truths: Mapping[int, float] | None = None,
) -> list[Outcome]:
    """Judge observed transitions against expectations (see the module docstring)."""
    truths = truths or {}
    obs = sorted(observed, key=lambda o: o.t_s)
    used: set[int] = set()
    out: list[Outcome] = []
    for i, e in enumerate(expect):
        cands = [
            j for j, o in enumerate(obs) if j not in used and _targets(e, o) and _level_ok(e, o)
        ]
        inside = [j for j in cands if e.earliest <= obs[j].t_s <= e.latest]
        after = [j for j in cands if obs[j].t_s > e.latest]
        pick: int | None
        status: Status
        if inside:
            pick, status = inside[0], "met"
        elif after:
            pick, status = after[0], "late"
        elif cands:
            pick, status = cands[0], "early"
        else:
            pick, status = None, "missed"
        o = obs[pick] if pick is not None else None
        if pick is not None:
            used.add(pick)
        truth = truths.get(i)
        out.append(
            Outcome(
                status=status,
                hazard=e.hazard.value,
                zone=_zone_label(e),
                level=e.level,
                expectation=i,
                earliest_s=e.earliest,
                latest_s=e.latest,
                observed=o,
                truth_s=truth,
                lead_s=(truth - o.t_s) if (truth is not None and o is not None) else None,
                note=e.note or "",
            )
        )
    flagged: set[int] = set()
    for j, o in enumerate(obs):
        for k, n in enumerate(never):
            if _never_hits(n, o):
                flagged.add(j)
                out.append(
                    Outcome(
                        status="unexpected",
                        hazard=o.hazard,
                        zone=o.zone,
                        level=o.level,
                        expectation=k,
                        rule="never",
                        observed=o,
                        note=n.note or f"never: {_zone_label(n)}",
                    )
                )
                break
    for j, o in enumerate(obs):
        if j in used or j in flagged:
            continue
        watching = [e for e in expect if _targets(e, o)]
        status: Status  # type: ignore[no-redef]
        if not watching:
            status, note = "other", ""
        elif (
            o.level != "cleared"
            and not any(e.at_least for e in watching)
            and _rank(o.level) > max(_rank(e.level) for e in watching)
        ):
            status, note = "unexpected", "above every level the scenario expects here"
        else:
            status, note = "extra", ""
        out.append(
            Outcome(
                status=status,
                hazard=o.hazard,
                zone=o.zone,
                level=o.level,
                rule="none",
                observed=o,
                note=note,
            )
        )
    return out


def transitions_of(observed: Sequence[Observed]) -> tuple[list[dict[str, Any]], int]:
    """Every observed transition once, with its comparison key; and how many deliveries
    repeated an ``event_id`` already seen.

    After a crash the pipeline may deliver a transition twice (same ``event_id``: SMS and CAP
    de-duplicate on it), so a transition is counted once. ``key`` is ``hazard|zone|n``: the
    n-th transition of that hazard in that zone, in the order the zone's alert partition
    holds them. What a transition *is* is its ``action``, ``previous`` and ``level``;
    ``t_s`` and ``event_id`` are kept for people to read (see :mod:`simulators.compare`
    for why they are not compared).

    >>> o = [Observed("flood", "11030", "caution", "cleared", 60.0, event_id="a#1"),
    ...      Observed("flood", "11030", "caution", "cleared", 60.0, event_id="a#1"),
    ...      Observed("flood", "11030", "alert", "caution", 90.0, event_id="a#2")]
    >>> rows, dups = transitions_of(o)
    >>> [(r["key"], r["level"]) for r in rows], dups
    ([('flood|11030|1', 'caution'), ('flood|11030|2', 'alert')], 1)
    """
    seen: set[str] = set()
    count: dict[tuple[str, str], int] = {}
    rows: list[dict[str, Any]] = []
    dups = 0
    for o in observed:
        if o.event_id and o.event_id in seen:
            dups += 1
            continue
        seen.add(o.event_id)
        n = count[(o.hazard, o.zone)] = count.get((o.hazard, o.zone), 0) + 1
        rows.append(
            {
                "key": f"{o.hazard}|{o.zone}|{n}",
                "hazard": o.hazard,
                "zone": o.zone,
                "n": n,
                "action": o.action,
                "previous": o.previous,
                "level": o.level,
                "t_s": round(o.t_s, 3),
                "event_id": o.event_id,
                "stations": list(o.stations),
            }
        )
    return rows, dups


@dataclass
class DrillReport:
    """Everything a drill officer needs afterwards; :meth:`to_json` is the machine report."""

    scenario: str
    seed: int
    speed: float
    overlays: list[str] = field(default_factory=list)
    anchor: str = ""
    wall_start: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    messages: int = 0
    readings: int = 0
    publish_elapsed_s: float = 0.0
    expected_rejections: int = 0
    observed_rejections: int | None = None
    hq_stages: list[dict[str, Any]] = field(default_factory=list)
    sms: list[dict[str, Any]] | None = None
    cap_documents: int | None = None
    #: Every observed transition once (:func:`transitions_of`), in each zone's order.
    transitions: list[dict[str, Any]] = field(default_factory=list)
    #: Deliveries of a transition already seen (same ``event_id``; e.g. after a crash).
    duplicate_alerts: int = 0
    #: This drill's CAP documents (identifier, status, msgType, severity, references), or
    #: None when the feed folder is not on this machine.
    cap: list[dict[str, Any]] | None = None
    #: Problems outside the expectation list (each fails the drill), e.g. a lost exercise
    #: flag, an SMS without the [훈련] prefix, missing rejections.
    findings: list[str] = field(default_factory=list)
    #: Per person (see the section at the end): asdict(RecipientCount) and asdict(Cycle).
    per_recipient: list[dict[str, Any]] | None = None
    cycles: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings and not any(o.failed for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = {}
        for o in self.outcomes:
            c[o.status] = c.get(o.status, 0) + 1
        return c

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        d["counts"] = self.counts()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)


def fmt_t(t: float | None) -> str:
    """Scenario time as ``+HH:MM:SS`` (``-`` for none).

    >>> fmt_t(5400.0), fmt_t(-70.5), fmt_t(None)
    ('+01:30:00', '-00:01:10', '-')
    """
    if t is None:
        return "-"
    sign = "-" if t < 0 else "+"
    s = round(abs(t))
    return f"{sign}{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


_STYLE = {
    "met": "green",
    "extra": "dim",
    "other": "dim",
    "late": "red",
    "early": "red",
    "missed": "red",
    "unexpected": "bold red",
}


def _lvl(name: str) -> str:
    try:
        return f"{name} {LEVEL_KO[Level.parse(name)]}"
    except KeyError:
        return name


def print_report(report: DrillReport, console: Console) -> None:
    """The human report: expectations, the per-zone timeline, and the side checks."""
    exp = Table(title=f"Drill {report.scenario}: expectations", title_justify="left")
    for col in ("status", "hazard", "zone", "level", "window", "observed", "lead", "note"):
        exp.add_column(col)
    for o in report.outcomes:
        if o.rule == "none":
            continue
        window = f"{fmt_t(o.earliest_s)}…{fmt_t(o.latest_s)}" if o.rule == "expect" else "never"
        exp.add_row(
            f"[{_STYLE[o.status]}]{o.status}[/]",
            o.hazard,
            o.zone if o.observed is None else o.observed.zone,
            _lvl(o.level),
            window,
            fmt_t(o.observed.t_s if o.observed else None),
            fmt_t(o.lead_s) if o.lead_s is not None else "-",
            o.note,
        )
    console.print(exp)
    tl = Table(title="Stage transitions per zone (scenario time)", title_justify="left")
    for col in ("zone", "hazard", "time", "transition", "stations", "status"):
        tl.add_column(col)
    seen: list[Outcome] = [o for o in report.outcomes if o.observed is not None]
    seen.sort(key=lambda o: (o.observed.zone if o.observed else "", o.t_s))
    for o in seen:
        ob = o.observed
        assert ob is not None
        tl.add_row(
            ob.zone,
            ob.hazard,
            fmt_t(ob.t_s),
            f"{_lvl(ob.previous)} → {_lvl(ob.level)}",
            ",".join(ob.stations),
            f"[{_STYLE[o.status]}]{o.status}[/]",
        )
    console.print(tl)
    rej = (
        "not followed"
        if report.observed_rejections is None
        else f"{report.observed_rejections} observed"
    )
    console.print(
        f"published {report.messages} messages / {report.readings} readings in "
        f"{report.publish_elapsed_s:.1f}s (speed ×{report.speed:g}, seed {report.seed}); "
        f"rejections: {report.expected_rejections} expected, {rej}"
    )
    dup = f", {report.duplicate_alerts} delivered twice" if report.duplicate_alerts else ""
    console.print(f"transitions: {len(report.transitions)}{dup}")
    if report.hq_stages:
        console.print(
            "HQ stages: "
            + "; ".join(
                f"{h.get('previous')}→{h.get('stage')} {h.get('action')}" for h in report.hq_stages
            )
        )
    if report.sms is not None:
        console.print(f"SMS sent: {len(report.sms)}")
        for m in report.sms[:20]:
            console.print(f"  {m.get('to', '?')}: {m.get('body', '')}")
    else:
        console.print("SMS: not checked (fake Twilio not reachable)")
    console.print(
        "CAP documents: "
        + ("not checked" if report.cap_documents is None else str(report.cap_documents))
    )
    print_per_person(report, console)
    for n in report.notes:
        console.print(f"[dim]note:[/dim] {n}")
    for f in report.findings:
        console.print(f"[bold red]finding:[/bold red] {f}")
    verdict = "[bold green]PASSED[/]" if report.passed else "[bold red]FAILED[/]"
    console.print(f"{verdict} {report.counts()}")


# -- per person (residents' view): messages per recipient per event, clear → re-raise cycles ----
# A drill is also judged as the people it reaches would judge it: how many messages each
# handset got for one event, and how often a zone's public stage was lifted and raised again.
# Scenario fields ``max_messages_per_recipient`` and ``max_cycles`` (one number, or per hazard)
# bound them; a drill over a bound fails.


@dataclass(frozen=True)
class RecipientCount:
    """Messages one recipient (masked) got for one event."""

    recipient: str
    hazard: str
    event: str
    messages: int
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Cycle:
    """Clear → re-raise cycles of one zone and hazard (public stage 주의+ lifted below 주의, then
    raised to 주의+ again)."""

    zone: str
    hazard: str
    cycles: int


def recipient_counts(messages: Sequence[Mapping[str, Any]]) -> list[RecipientCount]:
    """Group sent messages (``recipient``, ``hazard``, ``event``, optional ``kind``) per
    recipient and event, most messages first.

    >>> m = [{"recipient": "+8210****9001", "hazard": "flood", "event": "e1", "kind": "rise"}] * 2
    >>> [(c.recipient, c.messages) for c in recipient_counts(m)]
    [('+8210****9001', 2)]
    """
    groups: dict[tuple[str, str, str], list[str]] = {}
    for m in messages:
        key = (str(m["recipient"]), str(m["hazard"]), str(m["event"]))
        groups.setdefault(key, []).append(str(m.get("kind") or ""))
    out = [RecipientCount(r, h, e, len(k), tuple(k)) for (r, h, e), k in groups.items()]
    return sorted(out, key=lambda c: (-c.messages, c.recipient, c.event))


def reraise_cycles(observed: Sequence[Observed]) -> list[Cycle]:
    """Clear → re-raise cycles per zone and hazard, from the observed transitions.

    >>> obs = [Observed("heavy_rain", "11010", lv, pv, t) for t, (pv, lv) in enumerate(
    ...     [("cleared", "caution"), ("caution", "cleared"), ("cleared", "caution"),
    ...      ("caution", "alert"), ("alert", "attention"), ("attention", "caution")])]
    >>> [(c.zone, c.cycles) for c in reraise_cycles(obs)]
    [('11010', 2)]
    """
    public = int(Level.CAUTION)
    state: dict[tuple[str, str], tuple[bool, bool]] = {}  # (was public, was lifted)
    counts: dict[tuple[str, str], int] = {}
    for o in sorted(observed, key=lambda o: o.t_s):
        if o.hazard == Hazard.SENSOR_HEALTH.value:
            continue
        key = (o.zone, o.hazard)
        up = o.level != "cleared" and _rank(o.level) >= public
        was_up, lifted = state.get(key, (False, False))
        if up and not was_up and lifted:
            counts[key] = counts.get(key, 0) + 1
        state[key] = (up, lifted or (was_up and not up))
        counts.setdefault(key, 0)
    return sorted(
        (Cycle(z, h, n) for (z, h), n in counts.items()),
        key=lambda c: (-c.cycles, c.hazard, c.zone),
    )


def _bound(limit: int | Mapping[str, int] | None, hazard: str) -> int | None:
    if limit is None or isinstance(limit, int):
        return limit
    return limit.get(hazard, limit.get("*"))


def limit_findings(
    counts: Sequence[RecipientCount],
    cycles: Sequence[Cycle],
    *,
    max_messages: int | Mapping[str, int] | None,
    max_cycles: int | Mapping[str, int] | None,
) -> list[str]:
    """What exceeds the scenario's per-person bounds (each one fails the drill).

    >>> limit_findings([RecipientCount("+8210****9001", "flood", "e1", 5)], [],
    ...                max_messages={"flood": 4}, max_cycles=None)
    ['+8210****9001 got 5 flood messages for event e1 (at most 4)']
    """
    out = []
    for c in counts:
        b = _bound(max_messages, c.hazard)
        if b is not None and c.messages > b:
            out.append(
                f"{c.recipient} got {c.messages} {c.hazard} messages for event {c.event} "
                f"(at most {b})"
            )
    for y in cycles:
        b = _bound(max_cycles, y.hazard)
        if b is not None and y.cycles > b:
            out.append(
                f"{y.hazard} in {y.zone} was lifted and raised again {y.cycles} time(s) "
                f"(at most {b})"
            )
    return out


def print_per_person(report: DrillReport, console: Console) -> None:
    """The residents' view: messages per recipient per event (max and total), cycles."""
    if report.per_recipient is None:
        console.print("Per person: not checked (no sent log or fake Twilio reachable)")
        return
    counts = report.per_recipient
    total = sum(int(c["messages"]) for c in counts)
    most = max((int(c["messages"]) for c in counts), default=0)
    t = Table(
        title=f"SMS per recipient per event (total {total}, max {most})", title_justify="left"
    )
    for col in ("recipient", "hazard", "messages", "kinds", "event"):
        t.add_column(col)
    for c in counts:
        t.add_row(
            str(c["recipient"]),
            str(c["hazard"]),
            str(c["messages"]),
            " → ".join(str(k) for k in c["kinds"] if k),
            str(c["event"]),
        )
    console.print(t)
    cyc = [c for c in report.cycles if int(c["cycles"]) > 0]
    if cyc:
        console.print(
            "clear → re-raise cycles: "
            + ", ".join(f"{c['hazard']} {c['zone']} ×{c['cycles']}" for c in cyc)
        )
    else:
        console.print("clear → re-raise cycles: none")
