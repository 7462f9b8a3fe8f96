"""The alert stage machine: one alert per (hazard, zone), fed with station detections.

Input is :class:`gyeongbo.events.Detection` (a station's level under one rule, docs/design.md §11.2)
with the zones the station serves; output is the list of transitions: public
:class:`~gyeongbo.events.AlertEvent` for the ``alerts`` topic and operators'
:class:`~gyeongbo.events.DataQualityAlert` (sensor health, with a ``severity``, never a crisis
level) for ``dq.alerts``. Pure Python, no I/O, deterministic: the same inputs give
the same events with the same ``event_id`` (SMS and CAP de-duplicate on it), and the whole state
round-trips through :meth:`AlertMachine.to_bytes` / :meth:`AlertMachine.from_bytes` (a Faust
table value, restored after a restart or rebalance).

How a zone's stage moves (docs/design.md §4; :mod:`alerting.policy` for the per-hazard knobs):

1. Each station keeps its latest public level per rule. A detection no newer than the rule's
   latest at that station is ignored: out of order, or a replay (after a crash the worker
   sends the detections of the readings since its last checkpoint again; applied twice,
   they would add N-of-M samples twice). Sensor-health detections are ordered per rule and
   per direction (a fault, a recovery), since a deadman fault carries the clock's time and
   its recovery the time of the reading that ends the silence, which may be earlier.
   Stations flagged by a ``sensor_health`` detection (level ≥ 주의) are held out of public
   stages until they recover; their zone gets an operators' data-quality alert
   (:class:`~gyeongbo.events.DataQualityAlert`: ``warning`` for a dropped implausible reading,
   ``critical`` while a station is held out).
   Held out means their new readings count for nothing, and their last trusted level counts
   at most at the zone's current stage: a faulty station can neither raise a stage nor, by
   falling silent, clear it (a gauge that dies at the peak of a flood must not send residents
   an all-clear); the operator, alerted, acknowledges or clears by hand. What a station only
   relays (:data:`RELAYED_RULES`: an earthquake catalogue entry from its gateway) is not its
   sensor's word and is never held out.
2. The zone level is the highest L that at least ``quorum`` of its stations reach (spatial
   N-of-M; quorum 1 = max over stations).
3. Up: to the highest L above the stage that ``n`` of the last ``m`` zone samples reach
   (temporal N-of-M). Stages may jump (주의 → 심각 directly).
4. Down: only after the zone has stayed below the stage for the hold and the stage has
   stood for its minimum dwell (ISA-18.2 off-delay/minimum duration), to the highest level seen
   during that time (or one step, for O₃). A rise during the hold is a rise from the held
   stage: the same alert, nothing if it only comes back, one ``escalate`` above it.
   Time is event time, and every timer fires at its own instant (the hold's end, a station
   level's expiry, a silence's end) whoever evaluates the zone next: a tick, or a detection
   later than that instant (:meth:`AlertMachine._catch_up`). The transitions therefore depend
   on the detections alone, not on when ticks happened to arrive between them.
5. Operators: acknowledge (stops reminders until the next escalation), silence a zone or a
   zone × hazard for a window (no public transitions in the window except a rise to 심각, which
   breaks through; at the end the stage catches up), escalate by hand (the manual stage is a
   floor automatic de-escalation respects) and clear (the alert ends; it re-raises only when
   the zone rises above the level it stood at when cleared). Every action goes to the audit
   log with who, when and why — rejected ones too.

Exercise (drill) detections live in their own namespace: their alerts have ids prefixed with
``exercise:``, never merge with real alerts, and carry ``exercise=True`` to SMS and CAP.

>>> from gyeongbo.events import Detection
>>> m = AlertMachine()
>>> z = ZoneInfo(id="11030", name="용산구")
>>> d = Detection(station="1018683", hazard="flood", level="caution", ts_ms=1596678000000,
...               rule="flood.gauge_stage", value=8.6, threshold=8.5)
>>> [(e.action, e.level, e.alert_id) for e in m.feed(d, [z])]
[('raise', 'caution', 'flood:11030:2020-08-06T10:40:00+09:00')]
>>> AlertMachine.from_bytes(m.to_bytes()).active()[0].level
'caution'
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from alerting.model import ZoneInfo, rfc3339
from alerting.policy import DEFAULT_POLICIES, StagePolicy, policy_for
from gyeongbo.events import (
    ActionName,
    AlertEvent,
    AlertReminder,
    DataQualityAlert,
    Detection,
    LevelName,
    SeverityName,
    StageEvent,
)
from gyeongbo.vocab import Level, Severity

__all__ = [
    "RELAYED_RULES",
    "ActiveAlert",
    "ActiveDataQualityAlert",
    "AlertMachine",
    "AuditEntry",
    "OperatorError",
    "Reminder",
    "reminder_due_ms",
    "track_key",
]

SENSOR_HEALTH = "sensor_health"
#: Rules whose detections a station only relays (an earthquake catalogue entry from its
#: gateway): they say nothing of the station's own sensor, so a station flagged faulty by
#: sensor health still passes them on, and they survive its recovery.
RELAYED_RULES = frozenset({"earthquake.catalogue"})
_HISTORY_MAX = 200
#: Before any event time.
_NEVER = -(2**62)
_AUDIT_MAX = 2000
_STATE_VERSION = 1


class OperatorError(ValueError):
    """An operator action that cannot apply (unknown alert, not an escalation, …)."""


class RuleLevel(msgspec.Struct):
    """The latest level one rule gave a station, with its evidence."""

    level: int
    ts_ms: int
    value: float
    threshold: float | None = None
    projected_crossing_ms: int | None = None
    confidence: float | None = None
    #: Sensor health: the checks the station fails (``flat_line``, ``deadman``, …).
    faults: list[str] = []


class StationLevel(msgspec.Struct):
    """A station's level for one hazard: the highest of its rules' latest levels.

    Several rules speak for one hazard at one station (``flood.gauge_stage`` and
    ``flood.forecast``): the forecast may stand at 주의 while the gauge is still below the line,
    so the station level is their maximum, and the evidence is that rule's.
    """

    level: int
    ts_ms: int
    rule: str
    value: float
    threshold: float | None = None
    projected_crossing_ms: int | None = None
    confidence: float | None = None
    rules: dict[str, RuleLevel] = {}


def _station_level(rules: dict[str, RuleLevel]) -> StationLevel:
    """The station's level: its highest rule (the newest on ties), with that rule's evidence."""
    lead_rule, lead = max(rules.items(), key=lambda kv: (kv[1].level, kv[1].ts_ms))
    return StationLevel(
        level=lead.level,
        ts_ms=max(r.ts_ms for r in rules.values()),
        rule=lead_rule,
        value=lead.value,
        threshold=lead.threshold,
        projected_crossing_ms=lead.projected_crossing_ms,
        confidence=lead.confidence,
        rules=rules,
    )


class Transition(msgspec.Struct):
    """One entry of an alert's history."""

    ts_ms: int
    level: int
    previous: int
    action: str
    event_id: str
    actor: str | None = None
    reason: str | None = None


class Track(msgspec.Struct):
    """State of one (namespace, hazard, zone)."""

    exercise: bool
    hazard: str
    zone: str
    zone_name: str
    #: How many stations serve the zone for this hazard (the M of N-of-M); 0 = unknown.
    zone_size: int = 0
    stations: dict[str, StationLevel] = {}
    samples: list[int] = []
    stage: int = 0
    alert_id: str | None = None
    last_alert_id: str | None = None
    seq: int = 0
    stage_since_ms: int = 0
    below_since_ms: int | None = None
    below_max: int = 0
    floor: int = 0
    cleared_hold: int = 0
    acked: bool = False
    #: When operators were last told of the alert: its raise or latest rise, or a reminder.
    last_notified_ms: int = 0
    #: Reminders sent since then (numbers the next one's ``event_id``).
    reminded: int = 0
    last_ts_ms: int = 0
    history: list[Transition] = []


class Silence(msgspec.Struct):
    exercise: bool
    zone: str
    hazard: str | None
    until_ms: int
    actor: str
    reason: str


class AuditEntry(msgspec.Struct, frozen=True):
    """Who did what, when and why; ``result`` is ``ok`` or ``rejected: …``."""

    ts_ms: int
    actor: str
    action: str
    target: str
    reason: str
    result: str


class ActiveAlert(msgspec.Struct, frozen=True):
    """A row of the active-alerts listing (JSON-able for the operator API)."""

    alert_id: str
    hazard: str
    zone: str
    zone_name: str
    level: LevelName
    level_ko: str
    since: str
    exercise: bool
    acked: bool
    silenced_until: str | None
    manual_floor: LevelName | None
    stations: dict[str, LevelName]
    history: list[Transition]
    #: When operators were last told (raise, rise or reminder), how many reminders since, and
    #: when the next is due (None: acknowledged, or a hazard that never repeats).
    last_notified: str | None = None
    reminders: int = 0
    next_reminder: str | None = None


class ActiveDataQualityAlert(msgspec.Struct, frozen=True):
    """A row of the active-alerts listing for an operators' data-quality alert: a
    ``severity`` instead of a crisis level, and the checks each held-out station fails."""

    alert_id: str
    hazard: str  # "sensor_health"
    zone: str
    zone_name: str
    severity: SeverityName
    since: str
    exercise: bool
    acked: bool
    silenced_until: str | None
    stations: dict[str, SeverityName]
    checks: dict[str, list[str]]
    last_notified: str | None = None
    reminders: int = 0
    next_reminder: str | None = None


#: An unacknowledged alert due for another operator notification (the ``alerts.reminders``
#: record).
Reminder = AlertReminder


def reminder_due_ms(
    last_notified_ms: int, repeat_s: int | None, silenced_until_ms: int | None = None
) -> int | None:
    """When an unacknowledged alert is next due for a reminder: ``repeat_s`` after operators
    were last told of it, and not before a silence over it ends (a silence mutes the alert's
    reminders as it mutes its transitions); None for a hazard that never repeats.

    >>> reminder_due_ms(0, 1800)
    1800000
    >>> reminder_due_ms(0, 1800, silenced_until_ms=3_600_000)
    3600000
    >>> reminder_due_ms(0, None) is None
    True
    """
    if repeat_s is None:
        return None
    due = last_notified_ms + repeat_s * 1000
    return due if silenced_until_ms is None else max(due, silenced_until_ms)


#: Prefix of a compressed state blob (:meth:`AlertMachine.to_bytes`); JSON never starts so.
_BLOB_MAGIC = b"GBZ1"


class _State(msgspec.Struct):
    version: int = _STATE_VERSION
    tracks: dict[str, Track] = {}
    faulty: dict[str, int] = {}
    silences: list[Silence] = []
    audit: list[AuditEntry] = []
    #: Newest event time any exercise detection carried: the drill's own clock.
    exercise_watermark_ms: int = 0
    #: ``ns|station|rule`` → [time of the newest fault, of the newest recovery] applied.
    health_seen: dict[str, list[int]] = {}


def track_key(hazard: str, zone: str, exercise: bool = False) -> str:
    return f"{'exercise' if exercise else 'real'}|{hazard}|{zone}"


def _wire(level: int) -> LevelName:
    name: LevelName = Level(level).wire  # type: ignore[assignment]
    return name


def _severity(level: int) -> SeverityName:
    name: SeverityName = Severity.of_level(level).wire  # type: ignore[assignment]
    return name


def _faults(det: Detection) -> list[str]:
    """The checks a sensor-health detection says the station fails (none for other rules)."""
    if det.hazard != SENSOR_HEALTH or Level.parse(det.level) == Level.CLEARED:
        return []
    if det.rule == "health.deadman":
        return ["deadman"]
    found = det.details.get("faults") if det.details else None
    return sorted(str(f) for f in found) if isinstance(found, list) else []


class AlertMachine:
    """Alert stages for every (hazard, zone), in two namespaces (real and exercise)."""

    def __init__(self, policies: dict[str, StagePolicy] | None = None) -> None:
        self.policies = DEFAULT_POLICIES if policies is None else policies
        self._s = _State()

    # ------------------------------------------------------------------ state
    def to_bytes(self) -> bytes:
        """The whole state (a Faust table value): :data:`_BLOB_MAGIC` + zlib-compressed JSON.

        One value holds every track of a zone partition, and a wide event makes it big: 250
        zones × 3 hazards × 7 transitions is 1.2 MB of JSON, over Kafka's default 1 MB
        record limit (``max.message.bytes``) exactly when it matters. Compressed (zlib level
        3, ~2.5 ms) the same state is 39 KB: the limit is then ~30 MB of state.
        """
        return _BLOB_MAGIC + zlib.compress(msgspec.json.encode(self._s), 3)

    @classmethod
    def from_bytes(
        cls, data: bytes, policies: dict[str, StagePolicy] | None = None
    ) -> AlertMachine:
        m = cls(policies)
        if data[: len(_BLOB_MAGIC)] == _BLOB_MAGIC:
            data = zlib.decompress(data[len(_BLOB_MAGIC) :])
        # else: plain JSON, the form this state was written in before compression
        state = msgspec.json.decode(data, type=_State)
        if state.version != _STATE_VERSION:
            raise ValueError(f"alert state version {state.version} != {_STATE_VERSION}")
        m._s = state
        return m

    @property
    def audit_log(self) -> list[AuditEntry]:
        return list(self._s.audit)

    # ------------------------------------------------------------------ input
    def feed(self, det: Detection, zones: Sequence[ZoneInfo]) -> list[StageEvent]:
        """Apply one detection to the zones its station serves; return the transitions."""
        if not det.public and det.hazard != SENSOR_HEALTH:
            return []  # anomaly scores and other operator-only signals never stage publicly
        out: list[StageEvent] = []
        health = det.hazard == SENSOR_HEALTH
        if health and self._health_replayed(det):
            return []
        if det.exercise and det.ts_ms > self._s.exercise_watermark_ms:
            self._s.exercise_watermark_ms = det.ts_ms
        if health:
            out += self._update_faulty(det)
        elif (
            det.rule not in RELAYED_RULES
            and f"{'exercise' if det.exercise else 'real'}|{det.station}" in self._s.faulty
        ):
            return []  # a faulty station's readings are held out until it recovers
        for zone in zones:
            key = track_key(det.hazard, zone.id, det.exercise)
            tr = self._s.tracks.get(key)
            if tr is None:
                tr = Track(
                    exercise=det.exercise,
                    hazard=det.hazard,
                    zone=zone.id,
                    zone_name=zone.name,
                )
                self._s.tracks[key] = tr
            if zone.stations:
                tr.zone_size = len(zone.stations)
            tr.zone_name = zone.name
            prev = tr.stations.get(det.station)
            rules = dict(prev.rules) if prev is not None else {}
            old = rules.get(det.rule)
            if old is not None and det.ts_ms <= old.ts_ms and not health:
                continue  # out of order or a replay: the rule's newer level stands
            # timers that ran out before this detection, on the levels that stood until it
            out += self._catch_up(tr, det.ts_ms, self._policy(tr.hazard))
            rules[det.rule] = RuleLevel(
                level=int(Level.parse(det.level)),
                ts_ms=det.ts_ms,
                value=det.value,
                threshold=det.threshold,
                projected_crossing_ms=det.projected_crossing_ms,
                confidence=det.confidence,
                faults=_faults(det),
            )
            tr.stations[det.station] = _station_level(rules)
            now = max(tr.last_ts_ms, det.ts_ms)
            out += self._evaluate(key, tr, now, sample=True)
        return out

    def feed_all(self, items: Iterable[tuple[Detection, Sequence[ZoneInfo]]]) -> list[StageEvent]:
        out: list[StageEvent] = []
        for det, zones in items:
            out += self.feed(det, zones)
        return out

    def advance(self, now_ms: int, *, exercise_now_ms: int | None = None) -> list[StageEvent]:
        """Let time pass: off-delays, expiries and silence windows end.

        Real alerts follow ``now_ms`` (the worker's clock). Exercise alerts follow the drill's
        own event time: ``exercise_now_ms`` (the newest drill reading the worker has seen) or
        the newest event time an exercise detection carried, whichever is later: an
        accelerated drill plays hours of readings in minutes with
        timestamps behind the wall clock, which would otherwise end every off-delay at once.
        """
        out: list[StageEvent] = []
        # The drill clock never runs backwards: the newest of what we are told and have seen.
        ex_now = max(self._s.exercise_watermark_ms, exercise_now_ms or 0)
        for key in sorted(self._s.tracks):
            tr = self._s.tracks[key]
            if tr.stage == 0 and not tr.stations:
                continue
            now = ex_now if tr.exercise else now_ms
            out += self._evaluate(key, tr, max(now, tr.last_ts_ms), sample=False)
        # Silences are dropped after the evaluation: their end is one of the instants a zone
        # catches up at (a step-down held by a silence happens when it ends).
        self._s.silences = [
            s for s in self._s.silences if s.until_ms > (ex_now if s.exercise else now_ms)
        ]
        return out

    # ------------------------------------------------------------------ core
    def _policy(self, hazard: str) -> StagePolicy:
        return policy_for(hazard, self.policies)

    def _zone_level(self, tr: Track, now: int, pol: StagePolicy) -> int:
        ns = "exercise" if tr.exercise else "real"
        levels = []
        for sid, st in tr.stations.items():
            if pol.expire_s is not None and now - st.ts_ms >= pol.expire_s * 1000:
                continue  # lapsed at ts + expire_s
            if tr.hazard != SENSOR_HEALTH and f"{ns}|{sid}" in self._s.faulty:
                # A faulty station holds the stage it last supported but cannot raise it: a
                # gauge that dies at the peak of a flood must not send residents an all-clear.
                # What it only relayed (a catalogue event) is not its sensor's word: kept.
                own = [r.level for n, r in st.rules.items() if n not in RELAYED_RULES]
                relayed = [r.level for n, r in st.rules.items() if n in RELAYED_RULES]
                held = min(max(own, default=0) if st.rules else st.level, tr.stage)
                levels.append(max([held, *relayed]))
                continue
            levels.append(st.level)
        m = tr.zone_size or len(tr.stations)
        q = max(1, min(pol.quorum, m))
        levels.sort(reverse=True)
        return levels[q - 1] if len(levels) >= q else 0

    def _silence_ends(self, tr: Track, after: int) -> list[int]:
        """When the silences covering the track's zone and hazard that stand after ``after``
        end."""
        return [
            s.until_ms
            for s in self._s.silences
            if s.exercise == tr.exercise
            and s.zone == tr.zone
            and s.hazard in (None, tr.hazard)
            and s.until_ms > after
        ]

    def _silenced(self, tr: Track, now: int) -> bool:
        return bool(self._silence_ends(tr, now))

    def _evaluate(self, key: str, tr: Track, now: int, *, sample: bool) -> list[StageEvent]:
        """The zone at ``now``: first the timers that ran out before it, then ``now`` itself
        (with a new zone sample when a detection brought one)."""
        pol = self._policy(tr.hazard)
        return self._catch_up(tr, now, pol) + self._step(tr, now, pol, sample=sample)

    def _catch_up(self, tr: Track, now: int, pol: StagePolicy) -> list[StageEvent]:
        """Evaluate the zone at every instant before ``now`` at which it could change without
        a new detection: the end of a hold (:meth:`_hold_ends`), a station level lapsing
        (``expire_s``) and a silence ending. Between those instants the station levels stand
        still, so stepping through them gives exactly the transitions, with exactly the
        timestamps, that a clock read at each instant would have given — and the same ones
        whether a tick came between two detections or not."""
        out: list[StageEvent] = []
        t = tr.last_ts_ms
        while True:
            nxt = self._next_instant(tr, t, pol)
            if nxt is None or nxt >= now:
                return out
            out += self._step(tr, nxt, pol, sample=False)
            t = nxt

    def _hold_ends(self, tr: Track, pol: StagePolicy) -> int | None:
        """When the pending step-down may happen: the zone below the stage for ``hold_s`` and
        the stage standing for ``min_dwell_s``; None when the zone is not below its stage."""
        if tr.below_since_ms is None:
            return None
        return max(
            tr.below_since_ms + pol.hold_s * 1000, tr.stage_since_ms + pol.min_dwell_s * 1000
        )

    def _next_instant(self, tr: Track, after: int, pol: StagePolicy) -> int | None:
        """The first instant later than ``after`` at which the zone may change on its own."""
        cand = []
        due = self._hold_ends(tr, pol)
        if due is not None and due > after:
            cand.append(due)
        if pol.expire_s is not None:
            cand += [
                lapse
                for st in tr.stations.values()
                if (lapse := st.ts_ms + pol.expire_s * 1000) > after
            ]
        cand += self._silence_ends(tr, after)
        return min(cand, default=None)

    def _step(self, tr: Track, now: int, pol: StagePolicy, *, sample: bool) -> list[StageEvent]:
        """One evaluation of the zone at ``now`` on the station levels it holds: a rise, or the
        step-downs whose hold has ended (several at once only when their holds are 0)."""
        tr.last_ts_ms = now
        zl = self._zone_level(tr, now, pol)
        n, m = pol.confirm
        if sample:
            tr.samples.append(zl)
            del tr.samples[:-m]
        tr.cleared_hold = min(tr.cleared_hold, zl)
        window = tr.samples[-m:]
        up = 0
        for lv in range(int(Level.SERIOUS), tr.stage, -1):
            if sum(1 for s in window if s >= lv) >= n:
                up = lv
                break
        if not sample:
            # No new sample: a rise on the clock (a silence ending) goes no higher than the
            # zone stands now; station levels may have lapsed since the last sample.
            up = min(up, zl)
        silenced = self._silenced(tr, now)
        if up > tr.stage and up > tr.cleared_hold:
            # a temporal N-of-M rise may leave the zone's own level below the new stage
            tr.below_since_ms, tr.below_max = (now, zl) if zl < up else (None, 0)
            if silenced and up < Level.SERIOUS:
                tr.below_since_ms = None
                return []
            action: ActionName = "raise" if tr.stage == 0 else "escalate"
            return [self._transition(tr, up, now, action)]
        out: list[StageEvent] = []
        if zl >= tr.stage:
            tr.below_since_ms = None
        while zl < tr.stage:
            if tr.below_since_ms is None:
                tr.below_since_ms, tr.below_max = now, zl
            else:
                tr.below_max = max(tr.below_max, zl)
            due = self._hold_ends(tr, pol)
            if due is None or now < due or silenced:
                break
            new = tr.below_max
            if pol.step_down_one and tr.stage > Level.CAUTION:
                new = max(new, tr.stage - 1)
            new = max(new, tr.floor)
            if new >= tr.stage:
                break
            out.append(self._transition(tr, new, now, "clear" if new == 0 else "deescalate"))
            # the next step (one stage at a time, or a floor) starts a hold of its own
            tr.below_since_ms, tr.below_max = (now, zl) if zl < new else (None, 0)
        return out

    def _transition(
        self,
        tr: Track,
        level: int,
        now: int,
        action: ActionName,
        *,
        actor: str | None = None,
        reason: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> StageEvent:
        previous = tr.stage
        if tr.alert_id is None:
            if level == 0:
                raise OperatorError("no active alert")
            aid = f"{tr.hazard}:{tr.zone}:{rfc3339(now)}"
            if tr.exercise:
                aid = "exercise:" + aid
            if aid == tr.last_alert_id:  # cleared and re-raised within the same instant
                aid += f"~{tr.seq + 1}"
            tr.alert_id, tr.seq, tr.history = aid, 0, []
        alert_id = tr.alert_id
        tr.seq += 1
        event_id = f"{alert_id}#{tr.seq}"
        if level != previous:
            tr.stage, tr.stage_since_ms = level, now
        if level > previous:
            tr.acked = False
            tr.last_notified_ms, tr.reminded = now, 0
        tr.history.append(
            Transition(now, level, previous, action, event_id, actor=actor, reason=reason)
        )
        del tr.history[:-_HISTORY_MAX]
        ev: StageEvent
        if tr.hazard == SENSOR_HEALTH:
            ev = DataQualityAlert(
                alert_id=alert_id,
                zone=tr.zone,
                zone_name=tr.zone_name,
                severity=_severity(level),
                previous=_severity(previous),
                ts=rfc3339(now),
                action=action,
                exercise=tr.exercise,
                stations=sorted(s for s, st in tr.stations.items() if st.level > 0),
                checks=self._checks(tr),
                evidence=self._evidence(tr, extra),
                event_id=event_id,
                actor=actor,
                reason=reason,
            )
        else:
            ev = AlertEvent(
                alert_id=alert_id,
                hazard=tr.hazard,
                zone=tr.zone,
                zone_name=tr.zone_name,
                level=_wire(level),
                previous=_wire(previous),
                level_ko=Level(level).ko,
                ts=rfc3339(now),
                action=action,
                exercise=tr.exercise,
                stations=self._contributors(tr, level),
                evidence=self._evidence(tr, extra),
                event_id=event_id,
                actor=actor,
                reason=reason,
            )
        if level == 0:
            tr.last_alert_id, tr.alert_id = alert_id, None
            tr.floor, tr.acked, tr.samples = 0, False, []
        return ev

    @staticmethod
    def _checks(tr: Track) -> dict[str, list[str]]:
        """Station → the checks it fails now (sensor-health tracks)."""
        out = {
            s: sorted({f for r in st.rules.values() if r.level > 0 for f in r.faults})
            for s, st in sorted(tr.stations.items())
            if st.level > 0
        }
        return {s: f for s, f in out.items() if f}

    def _contributors(self, tr: Track, level: int) -> list[str]:
        ns = "exercise" if tr.exercise else "real"
        ok = {s: st for s, st in tr.stations.items() if f"{ns}|{s}" not in self._s.faulty}
        top = sorted(s for s, st in ok.items() if st.level >= max(level, 1))
        return top or sorted(tr.stations)

    def _evidence(self, tr: Track, extra: dict[str, Any] | None) -> dict[str, Any]:
        ev: dict[str, Any] = {}
        if tr.stations:
            lead_id, lead = max(tr.stations.items(), key=lambda kv: (kv[1].level, kv[1].ts_ms))
            ev = {
                "rule": lead.rule,
                "station": lead_id,
                "value": lead.value,
                "threshold": lead.threshold,
                "observed_at": rfc3339(lead.ts_ms),
                "station_levels": {
                    s: _severity(st.level) if tr.hazard == SENSOR_HEALTH else _wire(st.level)
                    for s, st in sorted(tr.stations.items())
                },
            }
            if lead.projected_crossing_ms is not None:
                ev["projected_crossing"] = rfc3339(lead.projected_crossing_ms)
            if lead.confidence is not None:
                ev["confidence"] = lead.confidence
            faulty = sorted(
                s
                for s in tr.stations
                if f"{'exercise' if tr.exercise else 'real'}|{s}" in self._s.faulty
            )
            if faulty:
                ev["held_out"] = faulty
        pol = self._policy(tr.hazard)
        ev["policy"] = {"quorum": pol.quorum, "confirm": list(pol.confirm)}
        if extra:
            ev.update(extra)
        return ev

    def _health_replayed(self, det: Detection) -> bool:
        """Whether a sensor-health detection is no newer than the last one of its rule and
        direction at the station (a replay, or out of order); otherwise note it."""
        key = f"{'exercise' if det.exercise else 'real'}|{det.station}|{det.rule}"
        seen = self._s.health_seen.setdefault(key, [_NEVER, _NEVER])
        side = 0 if Level.parse(det.level) >= Level.CAUTION else 1
        if det.ts_ms <= seen[side]:
            return True
        seen[side] = det.ts_ms
        return False

    def _update_faulty(self, det: Detection) -> list[StageEvent]:
        key = f"{'exercise' if det.exercise else 'real'}|{det.station}"
        bad = Level.parse(det.level) >= Level.CAUTION
        was = key in self._s.faulty
        if bad == was:
            return []
        out: list[StageEvent] = []
        for k in sorted(self._s.tracks):  # timers that ran out before the station changed
            tr = self._s.tracks[k]
            if tr.exercise == det.exercise and det.station in tr.stations:
                out += self._catch_up(tr, det.ts_ms, self._policy(tr.hazard))
        if bad:
            self._s.faulty[key] = det.ts_ms
        else:
            del self._s.faulty[key]
            # levels from before the fault are stale: the next detection defines the station
            # (a relayed catalogue event is not about the sensor, and stays)
            for tr in self._s.tracks.values():
                st = tr.stations.get(det.station)
                if st is None or tr.hazard == SENSOR_HEALTH or tr.exercise != det.exercise:
                    continue
                if any(n in RELAYED_RULES for n in st.rules):
                    tr.stations[det.station] = _station_level(
                        {n: r for n, r in st.rules.items() if n in RELAYED_RULES}
                    )
                else:
                    del tr.stations[det.station]
        for k in sorted(self._s.tracks):
            tr = self._s.tracks[k]
            if (
                tr.hazard != SENSOR_HEALTH
                and tr.exercise == det.exercise
                and det.station in tr.stations
            ):
                out += self._evaluate(k, tr, max(tr.last_ts_ms, det.ts_ms), sample=True)
        return out

    # ------------------------------------------------------------------ operators
    def _audit(
        self, ts_ms: int, actor: str, action: str, target: str, reason: str, result: str = "ok"
    ) -> None:
        self._s.audit.append(AuditEntry(ts_ms, actor, action, target, reason, result))
        del self._s.audit[:-_AUDIT_MAX]

    def _reject(
        self, ts_ms: int, actor: str, action: str, target: str, reason: str, why: str
    ) -> OperatorError:
        self._audit(ts_ms, actor, action, target, reason, f"rejected: {why}")
        return OperatorError(why)

    def _by_alert_id(self, alert_id: str) -> Track | None:
        for tr in self._s.tracks.values():
            if tr.alert_id == alert_id:
                return tr
        return None

    def acknowledge(
        self, alert_id: str, *, actor: str, ts_ms: int, reason: str = ""
    ) -> list[StageEvent]:
        """Acknowledge an alert: it stays, reminders stop until it escalates."""
        tr = self._by_alert_id(alert_id)
        if tr is None:
            raise self._reject(
                ts_ms, actor, "ack", alert_id, reason, "no active alert with this id"
            )
        self._audit(ts_ms, actor, "ack", alert_id, reason)
        tr.acked = True
        return [self._transition(tr, tr.stage, ts_ms, "ack", actor=actor, reason=reason)]

    def silence(
        self,
        zone: str,
        *,
        hazard: str | None = None,
        duration_s: int,
        actor: str,
        ts_ms: int,
        reason: str,
        exercise: bool = False,
    ) -> list[StageEvent]:
        """Silence a zone (every hazard) or a zone × hazard for ``duration_s`` seconds."""
        target = f"{zone}/{hazard or '*'}" + (" (exercise)" if exercise else "")
        if duration_s <= 0 or not reason:
            raise self._reject(
                ts_ms,
                actor,
                "silence",
                target,
                reason,
                "a silence needs a positive duration and a reason",
            )
        until = ts_ms + duration_s * 1000
        self._s.silences.append(Silence(exercise, zone, hazard, until, actor, reason))
        self._audit(ts_ms, actor, "silence", target, f"{reason} (until {rfc3339(until)})")
        out = []
        for k in sorted(self._s.tracks):
            tr = self._s.tracks[k]
            if (
                tr.alert_id
                and tr.zone == zone
                and tr.exercise == exercise
                and hazard in (None, tr.hazard)
            ):
                out.append(
                    self._transition(
                        tr,
                        tr.stage,
                        ts_ms,
                        "silence",
                        actor=actor,
                        reason=reason,
                        extra={"silenced_until": rfc3339(until)},
                    )
                )
        return out

    def escalate(
        self,
        hazard: str,
        zone: ZoneInfo,
        level: str,
        *,
        actor: str,
        ts_ms: int,
        reason: str,
        exercise: bool = False,
    ) -> list[StageEvent]:
        """Raise or escalate by hand to ``level``; that level becomes a floor until cleared."""
        target = track_key(hazard, zone.id, exercise)
        lv = int(Level.parse(level))
        key = target
        tr = self._s.tracks.get(key)
        current = tr.stage if tr else 0
        if lv <= current or lv == 0:
            raise self._reject(
                ts_ms,
                actor,
                "manual",
                target,
                reason,
                f"{level} is not above the current stage {_wire(current)}",
            )
        if tr is None:
            tr = Track(
                exercise=exercise,
                hazard=hazard,
                zone=zone.id,
                zone_name=zone.name,
                zone_size=len(zone.stations),
            )
            self._s.tracks[key] = tr
        self._audit(ts_ms, actor, "manual", target, f"{reason} (→ {_wire(lv)})")
        tr.floor, tr.below_since_ms = lv, None
        tr.last_ts_ms = max(tr.last_ts_ms, ts_ms)
        return [self._transition(tr, lv, ts_ms, "manual", actor=actor, reason=reason)]

    def clear(
        self, alert_id: str, *, actor: str, ts_ms: int, reason: str, cancel: bool = False
    ) -> list[StageEvent]:
        """End an alert by hand. ``cancel=True`` marks it issued in error (CAP ``Cancel``)."""
        tr = self._by_alert_id(alert_id)
        if tr is None:
            raise self._reject(
                ts_ms, actor, "clear", alert_id, reason, "no active alert with this id"
            )
        if not reason:
            raise self._reject(ts_ms, actor, "clear", alert_id, reason, "a clear needs a reason")
        self._audit(ts_ms, actor, "clear", alert_id, reason + (" (cancel)" if cancel else ""))
        pol = self._policy(tr.hazard)
        tr.cleared_hold = self._zone_level(tr, max(ts_ms, tr.last_ts_ms), pol)
        tr.below_since_ms = None
        tr.last_ts_ms = max(tr.last_ts_ms, ts_ms)
        extra = {"cancel": True} if cancel else None
        return [self._transition(tr, 0, ts_ms, "clear", actor=actor, reason=reason, extra=extra)]

    # ------------------------------------------------------------------ views
    def active(self, *, exercise: bool | None = None) -> list[ActiveAlert | ActiveDataQualityAlert]:
        """Active alerts, most severe first; operators' data-quality alerts after the public
        ones (they carry a ``severity``, never a crisis ``level``)."""
        rows: list[ActiveAlert] = []
        dq: list[ActiveDataQualityAlert] = []
        for tr in self._s.tracks.values():
            if tr.alert_id is None or (exercise is not None and tr.exercise != exercise):
                continue
            until = self._silence_ends(tr, tr.last_ts_ms)
            silenced_until = rfc3339(max(until)) if until else None
            due = None if tr.acked else self._reminder_due(tr, tr.last_ts_ms)
            last_notified = rfc3339(tr.last_notified_ms)
            next_reminder = None if due is None else rfc3339(due)
            if tr.hazard == SENSOR_HEALTH:
                dq.append(
                    ActiveDataQualityAlert(
                        alert_id=tr.alert_id,
                        hazard=tr.hazard,
                        zone=tr.zone,
                        zone_name=tr.zone_name,
                        severity=_severity(tr.stage),
                        since=rfc3339(tr.stage_since_ms),
                        exercise=tr.exercise,
                        acked=tr.acked,
                        silenced_until=silenced_until,
                        stations={s: _severity(st.level) for s, st in sorted(tr.stations.items())},
                        checks=self._checks(tr),
                        last_notified=last_notified,
                        reminders=tr.reminded,
                        next_reminder=next_reminder,
                    )
                )
                continue
            rows.append(
                ActiveAlert(
                    alert_id=tr.alert_id,
                    hazard=tr.hazard,
                    zone=tr.zone,
                    zone_name=tr.zone_name,
                    level=_wire(tr.stage),
                    level_ko=Level(tr.stage).ko,
                    since=rfc3339(tr.stage_since_ms),
                    exercise=tr.exercise,
                    acked=tr.acked,
                    silenced_until=silenced_until,
                    manual_floor=_wire(tr.floor) if tr.floor else None,
                    stations={s: _wire(st.level) for s, st in sorted(tr.stations.items())},
                    history=list(tr.history),
                    last_notified=last_notified,
                    reminders=tr.reminded,
                    next_reminder=next_reminder,
                )
            )
        rows.sort(key=lambda a: (-int(Level.parse(a.level)), a.alert_id))
        dq.sort(key=lambda a: (-int(Severity.parse(a.severity)), a.alert_id))
        return [*rows, *dq]

    def stage_of(self, hazard: str, zone: str, *, exercise: bool = False) -> Level:
        tr = self._s.tracks.get(track_key(hazard, zone, exercise))
        return Level(tr.stage if tr else 0)

    def _reminder_due(self, tr: Track, now: int) -> int | None:
        """When the track's alert is next due for a reminder, judged at ``now`` (a silence
        standing then defers it to the silence's end)."""
        until = self._silence_ends(tr, now)
        return reminder_due_ms(
            tr.last_notified_ms, self._policy(tr.hazard).repeat_s, max(until, default=None)
        )

    def reminders(self, now_ms: int, *, exercise_now_ms: int | None = None) -> list[Reminder]:
        """Reminders for the unacknowledged, unsilenced alerts due one at this instant.

        An alert is due ``repeat_s`` (its hazard's policy) after operators were last told of
        it — its raise, its latest rise, or the previous reminder — and each reminder starts
        the period again, so an alert left alone is recalled every ``repeat_s``, and an alert
        overdue by many periods (a worker down for hours) gets one reminder, not one per
        period. An acknowledgement stops them until the alert rises again; a silence defers
        them to its end; a clear ends them. Real alerts follow ``now_ms``, exercise alerts the
        drill clock as in :meth:`advance`. The time a reminder was sent is part of the state
        (:meth:`to_bytes`): a restored machine does not send it again, and the same calls on
        the same state give the same reminders with the same ``event_id``.
        """
        ex_now = max(self._s.exercise_watermark_ms, exercise_now_ms or 0)
        out: list[Reminder] = []
        for key in sorted(self._s.tracks):
            tr = self._s.tracks[key]
            if tr.alert_id is None or tr.acked:
                continue
            now = ex_now if tr.exercise else now_ms
            due = self._reminder_due(tr, now)
            if due is None or now < due:
                continue
            last = tr.last_notified_ms
            tr.last_notified_ms, tr.reminded = now, tr.reminded + 1
            health = tr.hazard == SENSOR_HEALTH
            out.append(
                AlertReminder(
                    alert_id=tr.alert_id,
                    hazard=tr.hazard,
                    zone=tr.zone,
                    zone_name=tr.zone_name,
                    level=_severity(tr.stage) if health else _wire(tr.stage),
                    ts=rfc3339(now),
                    since=rfc3339(tr.stage_since_ms),
                    last_notified=rfc3339(last),
                    n=tr.reminded,
                    exercise=tr.exercise,
                    event_id=f"{tr.alert_id}#{tr.seq}-r{tr.reminded}",
                )
            )
        return out
