"""Recipient-centred delivery: one message per person per stage change of a hazard event.

The stage machine stages *zones*; a person may be concerned by many of them (their 동, 구 and
province, a riverside inundation area, an area they subscribe to). Sending one SMS per zone
transition gives a situation-room handset subscribed to Seoul one flood message per district,
and a handset inside two zones every message twice. This module turns zone transitions into
messages to *people* (docs/design.md §5). Pure: lists in, lists out, no I/O.

**Board.** Per namespace (real / exercise) and hazard, a :class:`Board` keeps each zone's
current public stage from the ``alerts`` transitions, and the *event* they form:

* an event opens when a zone of the hazard rises to 주의 or above while no zone is;
* it groups every zone alert of the hazard active meanwhile — for earthquakes the catalogue
  alerts of the provinces and the accelerometers' district alerts of one quake fall into one
  event because they are active together;
* it closes when every zone has been below 주의 for ``hold_ms`` (the grouping hold), judged
  at the next transition: a zone re-raised within the hold belongs to the same event.

**Person level.** A person's level for an event is the highest stage among the zones that
concern them (``Recipient.zones``: located zones and area subscriptions), counted from 주의
up (관심 is for operators: below 주의 a person's level is 0).

**When a message goes** (:func:`plan_notices`), compared with the level of the last message
the person got in this event (``last``, read from the sent log):

* any hazard: level above ``last`` → one message at the new level (a rise);
* level 0 and ``last`` > 0 → one all-clear;
* level between 0 and ``last`` → a step-down message, except for *monotone* hazards
  (earthquakes: a person never gets a lower class after a higher one for the same quake,
  so no step-down; the all-clear comes once when every zone concerning them has lapsed).

Because the level is a maximum over the person's zones, a step-down or all-clear goes once,
when every zone of the event that concerns them has stepped down or cleared.

**Exactly once.** A :class:`Notice` is keyed by (person id, event id, level, the triggering
transition's ``event_id``): replaying the same transition gives the same key, and the sent
log inserts each key once; a person whose level goes 주의 → 0 → 주의 in one event gets two
keys (two triggers). The idempotency token sent to the provider is a hash of the key.

**Area named.** The message names the area most specific to the person: the smallest active
zone containing their location (``Recipient.located`` is ordered smallest first), else, for
an area subscriber, the zone at their level and how many others are active ("용산구 외 3곳").

>>> from gyeongbo.events import AlertEvent
>>> b = Board(hazard="flood", exercise=False)
>>> ev = AlertEvent(alert_id="flood:11030:t", hazard="flood", zone="11030", zone_name="용산구",
...                 level="caution", previous="attention", level_ko="주의",
...                 ts="2020-08-06T11:00:00+09:00", action="escalate",
...                 event_id="flood:11030:t#2")
>>> step = apply(b, ev, hold_ms=3_600_000)
>>> step.event_id, b.zones["11030"].level
('flood:event:2020-08-06T11:00:00+09:00:11030', 2)
>>> person_level(b, ("11", "11030", "11200"))
2
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import msgspec

from alerting.model import Recipient, parse_rfc3339_ms
from alerting.policy import policy_for
from alerting.sms import check_drill
from alerting.templates import ManualTemplates, Templates, manual_stage
from gyeongbo.events import AlertEvent
from gyeongbo.vocab import Level

__all__ = [
    "MONOTONE_HAZARDS",
    "Board",
    "Notice",
    "Step",
    "ZoneStage",
    "apply",
    "area_name",
    "notice_key",
    "person_level",
    "plan_notices",
    "wanted",
]

#: Hazards whose messages only go up within an event (KMA sends no lower earthquake class
#: after a higher one for the same quake; the all-clear ends it).
MONOTONE_HAZARDS: frozenset[str] = frozenset({"earthquake"})
_CAUTION = int(Level.CAUTION)
#: Transitions remembered per board to drop replays (a worker crash re-reads a few).
_APPLIED_MAX = 4096

NoticeKind = Literal["rise", "step_down", "all_clear"]


class ZoneStage(msgspec.Struct):
    """One zone's public stage on a board."""

    level: int = 0
    #: Highest stage of the zone in the current event (names the area of an all-clear).
    peak: int = 0
    name: str = ""
    since_ms: int = 0


class Board(msgspec.Struct):
    """The zones of one hazard in one namespace, and the event they form."""

    hazard: str
    exercise: bool
    zones: dict[str, ZoneStage] = {}
    event_id: str | None = None
    opened_ms: int = 0
    #: When the last zone went below 주의 (None while one stands at 주의 or above).
    quiet_since_ms: int | None = None
    #: Transitions applied to this board so far (the order of the sent log's rows).
    steps: int = 0
    #: Recent transition ids already applied (a replay is ignored).
    applied: list[str] = []

    def active(self) -> dict[str, ZoneStage]:
        return {z: s for z, s in self.zones.items() if s.level >= _CAUTION}

    def to_bytes(self) -> bytes:
        return _encoder.encode(self)

    @classmethod
    def from_bytes(cls, data: bytes) -> Board:
        return _decoder.decode(data)


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Board)


@dataclass(frozen=True)
class Step:
    """What one transition did to a board."""

    transition: AlertEvent
    #: The event the transition belongs to (None: below 주의 outside any event).
    event_id: str | None
    zone: str
    level: int
    previous: int
    #: The board's step number (orders the sent log's rows of one event).
    seq: int
    opened: bool = False


def wanted(event: AlertEvent) -> bool:
    """Whether a transition goes to a board: a public hazard's stage change (acks, silences
    and sensor health do not).

    >>> e = AlertEvent(alert_id="a", hazard="flood", zone="z", zone_name="z", level="caution",
    ...                previous="attention", level_ko="주의", ts="t", action="escalate")
    >>> wanted(e), wanted(msgspec.structs.replace(e, hazard="sensor_health"))
    (True, False)
    """
    return (
        policy_for(event.hazard).public
        and event.action not in ("ack", "silence")
        and event.level != event.previous
    )


def apply(board: Board, event: AlertEvent, *, hold_ms: int) -> Step | None:
    """Apply one zone transition to ``board`` (in place). None for a replay or a transition
    that is not the board's (another hazard or namespace, not :func:`wanted`)."""
    if (
        event.hazard != board.hazard
        or event.exercise != board.exercise
        or not wanted(event)
        or (event.event_id and event.event_id in board.applied)
    ):
        return None
    ts = parse_rfc3339_ms(event.ts)
    if (
        board.event_id is not None
        and board.quiet_since_ms is not None
        and ts - board.quiet_since_ms >= hold_ms
    ):
        _close(board)
    level = int(Level.parse(event.level))
    stage = board.zones.get(event.zone)
    previous = stage.level if stage is not None else 0
    opened = False
    if level >= _CAUTION and board.event_id is None:
        board.event_id = _event_id(board, event)
        board.opened_ms = ts
        opened = True
    if stage is None:
        stage = board.zones[event.zone] = ZoneStage(name=event.zone_name, since_ms=ts)
    stage.level, stage.since_ms, stage.name = level, ts, event.zone_name or stage.name
    if board.event_id is not None:
        stage.peak = max(stage.peak, level)
    if board.active():
        board.quiet_since_ms = None
    elif board.quiet_since_ms is None:
        board.quiet_since_ms = ts
    if board.event_id is None:
        # outside any event only the current stages matter (관심 comes and goes)
        board.zones = {z: s for z, s in board.zones.items() if s.level > 0}
    board.steps += 1
    if event.event_id:
        board.applied.append(event.event_id)
        del board.applied[:-_APPLIED_MAX]
    return Step(event, board.event_id, event.zone, level, previous, board.steps, opened)


def _event_id(board: Board, event: AlertEvent) -> str:
    ns = "exercise:" if board.exercise else ""
    return f"{ns}{board.hazard}:event:{event.ts}:{event.zone}"


def _close(board: Board) -> None:
    board.event_id = None
    board.quiet_since_ms = None
    board.zones = {z: s for z, s in board.zones.items() if s.level > 0}
    for s in board.zones.values():
        s.peak = 0


def person_level(board: Board, zones: Iterable[str]) -> int:
    """A person's level: the highest stage among their zones, 0 below 주의."""
    best = 0
    for z in zones:
        s = board.zones.get(z)
        if s is not None and s.level > best:
            best = s.level
    return best if best >= _CAUTION else 0


@dataclass(frozen=True)
class Notice:
    """One message to one person; exists only if it may be sent (drill isolation)."""

    key: str
    event_id: str
    hazard: str
    recipient: Recipient
    level: int
    previous: int
    kind: NoticeKind
    trigger: str
    area: str
    body: str
    exercise: bool
    seq: int
    drill_prefix: str = "[훈련]"

    def __post_init__(self) -> None:
        check_drill(self.exercise, self.recipient, self.body, self.drill_prefix)

    @property
    def token(self) -> str:
        """Idempotency token: the same for every attempt of this notice."""
        return token_of(self.key)


def notice_key(person_id: str, event_id: str, level: int, trigger: str) -> str:
    """The delivery key: person, event, level and the transition that caused it.

    >>> notice_key("res-1", "flood:event:t:11030", 2, "flood:11030:t#2")
    'res-1|flood:event:t:11030|2|flood:11030:t#2'
    """
    return f"{person_id}|{event_id}|{level}|{trigger}"


def token_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def area_name(
    board: Board,
    recipient: Recipient,
    *,
    level: int,
    trigger_zone: str,
    limit: int = 8,
) -> str:
    """The area a person's message names (see the module docstring).

    For a rise or step-down the zones standing at 주의 or above count; for an all-clear
    (``level`` 0) the zones that stood there during the event. ``limit`` is the template's
    zone field length: a long name is cut so that " 외 N곳" always fits.
    """
    if level > 0:
        active = {
            z: s.level
            for z in recipient.zones
            if (s := board.zones.get(z)) is not None and s.level >= _CAUTION
        }
    else:
        active = {
            z: s.peak
            for z in recipient.zones
            if (s := board.zones.get(z)) is not None and s.peak >= _CAUTION
        }
    if not active:
        s = board.zones.get(trigger_zone)
        return _cut(s.name if s else trigger_zone, limit)
    for z in recipient.located:
        if z in active:
            return _cut(board.zones[z].name or z, limit)
    top = max(active.values())
    at_top = sorted(z for z, lv in active.items() if lv == top)
    lead = trigger_zone if trigger_zone in at_top else at_top[0]
    name = board.zones[lead].name or lead
    others = len(active) - 1
    if not others:
        return _cut(name, limit)
    suffix = f" 외 {others}곳"
    return _cut(name, max(1, limit - len(suffix))) + suffix


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan_notices(
    board: Board,
    step: Step,
    audience: Iterable[Recipient],
    last: Mapping[str, int],
    templates: Templates,
    *,
    station_names: Mapping[str, str] | None = None,
    monotone: bool | None = None,
) -> list[Notice]:
    """The messages one applied step causes.

    ``audience``: the people concerned by the step's zone (opted into the hazard; drill
    handsets for an exercise, everyone else otherwise — others are skipped here too).
    ``last``: person id → level of the last message planned for them in this event (absent:
    none; 0: the last was an all-clear). ``board`` is the board *after* the step.
    """
    if step.event_id is None:
        return []
    ev = step.transition
    hazard = board.hazard
    if hazard not in templates.hazards:
        return []
    mono = hazard in MONOTONE_HAZARDS if monotone is None else monotone
    lead = str(ev.evidence.get("station") or (ev.stations[0] if ev.stations else ""))
    raw_value = ev.evidence.get("value")
    value = float(raw_value) if isinstance(raw_value, int | float) else None
    rule = str(ev.evidence.get("rule") or "")
    station = (station_names or {}).get(lead, lead)
    limit = templates.field_limits["zone"]
    manual = templates.manual if manual_stage(ev) else None
    bodies: dict[tuple[str, str], str] = {}
    out: list[Notice] = []
    seen: set[str] = set()
    for r in audience:
        if r.id in seen or not r.wants(hazard) or r.drill is not board.exercise:
            continue
        seen.add(r.id)
        now = person_level(board, r.zones)
        before = last.get(r.id, 0)
        kind = _notice_kind(now, before, mono)
        if kind is None:
            continue
        area = area_name(board, r, level=now, trigger_zone=step.zone, limit=limit)
        stage = Level(now).wire if now else "cleared"
        body = bodies.get((stage, area))
        if body is None:
            body = _body(
                templates, manual, hazard, stage, area, station, value, rule, board.exercise
            )
            bodies[(stage, area)] = body  # thousands of people share a few areas
        key = notice_key(r.id, step.event_id, now, ev.event_id or f"{step.zone}#{step.seq}")
        out.append(
            Notice(
                key=key,
                event_id=step.event_id,
                hazard=hazard,
                recipient=r,
                level=now,
                previous=before,
                kind=kind,
                trigger=ev.event_id,
                area=area,
                body=body,
                exercise=board.exercise,
                seq=step.seq,
                drill_prefix=templates.drill_prefix,
            )
        )
    return out


def _notice_kind(now: int, before: int, monotone: bool) -> NoticeKind | None:
    """What a person's message is when their level goes from ``before`` to ``now``: a rise,
    an all-clear, a step down (not for ``monotone`` hazards), or none."""
    if now > before:
        return "rise"
    if now == 0 and before > 0:
        return "all_clear"
    if 0 < now < before and not monotone:
        return "step_down"
    return None


def _body(
    templates: Templates,
    manual: ManualTemplates | None,
    hazard: str,
    stage: str,
    area: str,
    station: str,
    value: float | None,
    rule: str,
    exercise: bool,
) -> str:
    """The text of a message at ``stage`` for ``area``: the hazard's template with the
    reading's fields, or, for a stage an operator decided (``manual``), the manual text."""
    if manual is not None:  # an operator's decision says so, and who decided
        text = manual.render(
            hazard,
            stage,
            keyword=templates.hazards[hazard].keyword,
            prefix=templates.prefix,
            zone=area,
        )
        return templates.drill_prefix + text if exercise else text
    return templates.render_fields(
        hazard, stage, zone=area, station=station, value=value, drill=exercise, rule=rule
    )


def priority(notice: Notice, distance_km: Callable[[Recipient], float] | None = None) -> float:
    """Sort key of a notice in a fan-out (smaller first): higher level first, an all-clear
    last, and within a level the nearest first when ``distance_km`` is given (earthquakes,
    in km)."""
    d = distance_km(notice.recipient) if distance_km is not None else 0.0
    return (5 - notice.level) * 1e6 + min(d, 999_999.0) if notice.level else 6e6 + d
