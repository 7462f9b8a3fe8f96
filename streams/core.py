"""The pipeline's pure core: decode → detect → route to zones → stage → delivery intents.

Every step the worker takes between a record and what it sends is a plain function here,
over records, with the state it changes passed in (detectors, alert and HQ machines, boards):

=====================  ==========================================================  =========
step                   function                                                    agent
=====================  ==========================================================  =========
decode                 :func:`decode_message` (MQTT payload → columnar batch +     bridge
                       rejections; the worker gets the batch from Kafka)
detect                 :func:`detect`, and the clock's :func:`sweep`               detect,
                                                                                   deadman
route to zones         :func:`route` (geo join → ``zone.commands``), :func:`tick`  detect, tick
stage                  :func:`stage` (alert machine; operator actions)             stage
headquarters           :func:`headquarters` (HQ machine)                           headquarters
delivery intents       :func:`deliver` (CAP document? on to notify?),              deliver,
                       :func:`notify_step` and :func:`plan_step` (who gets which   notify
                       SMS, planned in the sent log given as a port)
=====================  ==========================================================  =========

The Faust agents (``streams/worker.py``, ``streams/notify.py``) call these functions for
their pure steps and keep all I/O: Kafka sends, changelog writes, InfluxDB, the CAP folder,
the SMS fan-out. :class:`Core` runs the same functions in one process, in order, for the drill
runner's offline mode (``gyeongbo drill run NAME --offline``) and the tests: push a list of
records in (:class:`Message`, :class:`Flush`, :class:`Tick`, :class:`Sweep`,
:class:`Detections`, :class:`Action`), get the list of what came out (rejections,
detections, alert and data-quality events, operators' reminders, HQ stages, CAP and SMS
intents).

This module imports no broker, MQTT, HTTP, database or Faust client
(``tests/test_layering.py``); the subscriber store is reached only through the
:class:`SentLog` port the caller passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from alerting.cap import cap_wanted
from alerting.delivery import Board, Notice, Step, apply, plan_notices, priority, wanted
from alerting.hq import HQMachine
from alerting.machine import AlertMachine, OperatorError
from alerting.model import Recipient, ZoneInfo, mask_phone, parse_rfc3339_ms
from alerting.policy import StagePolicy
from detectors.engine import DetectorSet
from geo.metric import haversine_km
from gyeongbo.batch import ReadingBatch
from gyeongbo.events import (
    AlertEvent,
    AlertReminder,
    DataQualityAlert,
    Detection,
    HQStageEvent,
    StageEvent,
)
from gyeongbo.vocab import Hazard, Level
from streams.commands import HQCommand, OperatorAction, ZoneCommand
from streams.partitioning import partition_of
from streams.services import Services
from streams.store.model import PlannedDelivery
from streams.validate import Rejection, Validator, readings_batch

__all__ = [
    "Action",
    "CapIntent",
    "Core",
    "Decoded",
    "Delivery",
    "Detections",
    "Flush",
    "Message",
    "Rejected",
    "SentLog",
    "SmsIntent",
    "Staged",
    "Sweep",
    "Tick",
    "alerts_of",
    "apply_action",
    "apply_hq_command",
    "decode_message",
    "deliver",
    "detect",
    "headquarters",
    "notify_key",
    "notify_step",
    "plan_step",
    "route",
    "stage",
    "sweep",
    "tick",
]


# ----------------------------------------------------------------------------- decode
@dataclass
class Decoded:
    """One MQTT message: its valid readings as a batch (None: none), its rejections, and how
    many readings were gateway retries already seen (dropped, as the bridge drops them)."""

    batch: ReadingBatch | None
    rejections: list[Rejection]
    duplicates: int = 0


def decode_message(
    validator: Validator,
    topic: str,
    payload: bytes,
    *,
    received_ms: int,
    seen: Callable[[tuple[str, int]], bool] | None = None,
) -> Decoded:
    """Validate a payload as the bridge does (:meth:`Validator.parse`) and build the columnar
    batch the worker's detect agent receives; ``seen(station, seq)`` says whether a reading
    is a retry already taken (the bridge's window), and remembers it."""
    parsed = validator.parse(topic, payload, received_ms=received_ms)
    readings, dups = [], 0
    for r in parsed.readings:
        if seen is not None and r.seq >= 0 and seen((r.station, r.seq)):
            dups += 1
            continue
        readings.append(r)
    batch = readings_batch(readings, [received_ms] * len(readings)) if readings else None
    return Decoded(batch, list(parsed.rejections), dups)


# ----------------------------------------------------------------------------- detect
def detect(detectors: DetectorSet, batch: ReadingBatch) -> list[Detection]:
    """A batch of readings through the detectors (their state changes in place)."""
    return detectors.process(batch)


def sweep(
    detectors: DetectorSet,
    now_ms: int,
    *,
    exercise_now_ms: npt.NDArray[np.int64] | int | None,
    judge: npt.NDArray[np.bool_] | None = None,
    deadman: bool = True,
) -> tuple[list[Detection], list[Detection]]:
    """The detectors' clock-driven work: (air-quality hours no later reading closed, silent
    stations). Hours first: an hour closed now ended before any silence judged now was
    noticed, so its decision is made on trusted data."""
    hours = detectors.close_hours(now_ms, exercise_now_ms=exercise_now_ms)
    silent: list[Detection] = []
    if deadman:
        silent = detectors.check_deadman(now_ms, exercise_now_ms=exercise_now_ms, judge=judge)
    return hours, silent


# ----------------------------------------------------------------------------- route
def route(services: Services, detections: Iterable[Detection]) -> list[ZoneCommand]:
    """Each detection's zones (the geo join, :meth:`Services.route`) as ``zone.commands``
    records, in order."""
    return [
        ZoneCommand(kind="detection", zone=zone, detection=zdet)
        for det in detections
        for zone, zdet in services.route(det)
    ]


def tick(now_ms: int, exercise_now_ms: int | None) -> ZoneCommand:
    """The timer's command: the wall clock and the drill clock (0: none) for the machines'
    holds and reminders."""
    return ZoneCommand(kind="tick", now_ms=now_ms, exercise_now_ms=exercise_now_ms or 0)


# ----------------------------------------------------------------------------- stage
@dataclass
class Staged:
    """What a list of zone commands did to an alert machine: its transitions, the operators'
    reminders of unacknowledged alerts its ticks found due, whether the machine changed (and
    must be written), and the operator actions it refused (why)."""

    events: list[StageEvent] = field(default_factory=list)
    reminders: list[AlertReminder] = field(default_factory=list)
    changed: bool = False
    rejected: list[str] = field(default_factory=list)


def stage(machine: AlertMachine, services: Services, commands: Iterable[ZoneCommand]) -> Staged:
    """Zone commands → the alert machine → its transitions, in order."""
    out = Staged()
    for cmd in commands:
        if cmd.kind == "detection" and cmd.detection is not None:
            det = cmd.detection
            out.events += machine.feed(det, [services.zone_info(cmd.zone, det.hazard)])
            # operator-only signals (anomaly scores) never touch the machine
            out.changed = out.changed or det.public or det.hazard == "sensor_health"
        elif cmd.kind == "tick":
            out.events += machine.advance(cmd.now_ms, exercise_now_ms=cmd.exercise_now_ms or None)
            # operators' reminders of what nobody acknowledged (§4), on the same clocks
            out.reminders += machine.reminders(cmd.now_ms, exercise_now_ms=cmd.exercise_now_ms)
            out.changed = True
        elif cmd.kind == "action" and cmd.action is not None:
            try:
                out.events += apply_action(machine, services, cmd.zone, cmd.action)
            except ValueError as err:
                out.rejected.append(
                    f"operator action {cmd.action.action} by {cmd.action.actor} rejected: {err}"
                )
            out.changed = True
    return out


def apply_action(
    machine: AlertMachine, services: Services, zone: str, a: OperatorAction
) -> list[StageEvent]:
    """An operator's ack / clear / silence / escalate; ValueError when it is refused or
    incomplete (:class:`~alerting.machine.OperatorError` is one)."""
    try:
        if a.action == "ack" and a.alert_id:
            return machine.acknowledge(a.alert_id, actor=a.actor, ts_ms=a.ts_ms, reason=a.reason)
        if a.action == "clear" and a.alert_id:
            return machine.clear(
                a.alert_id, actor=a.actor, ts_ms=a.ts_ms, reason=a.reason, cancel=a.cancel
            )
        if a.action == "silence":
            return machine.silence(
                zone,
                hazard=a.hazard,
                duration_s=a.duration_s or 3600,
                actor=a.actor,
                ts_ms=a.ts_ms,
                reason=a.reason,
                exercise=a.exercise,
            )
        if a.action == "escalate" and a.hazard and a.level:
            return machine.escalate(
                a.hazard,
                services.zone_info(zone, a.hazard),
                Level.parse(a.level).wire,
                actor=a.actor,
                ts_ms=a.ts_ms,
                reason=a.reason,
                exercise=a.exercise,
            )
    except (OperatorError, KeyError) as err:
        raise ValueError(str(err)) from err
    raise ValueError("incomplete")


# ----------------------------------------------------------------------------- headquarters
def headquarters(
    hq: HQMachine, services: Services, record: AlertEvent | HQCommand
) -> tuple[list[HQStageEvent], str | None]:
    """An alert event or an operator's HQ command → the HQ machine → (its stage events, why a
    command was refused or None)."""
    if isinstance(record, HQCommand):
        try:
            return apply_hq_command(hq, record), None
        except ValueError as err:
            return [], f"headquarters {record.action} by {record.actor} rejected: {err}"
    province = None
    if record.zone in services.zones:
        province = services.zone_info(record.zone, record.hazard).province
    return hq.feed(record, province), None


def apply_hq_command(hq: HQMachine, c: HQCommand) -> list[HQStageEvent]:
    """Confirm / set-stage with the authenticated actor; ValueError when refused (no proposal
    any more, a bad stage; the machine audits it)."""
    if c.action == "confirm":
        return hq.confirm(
            actor=c.actor,
            ts_ms=c.ts_ms,
            reason=c.reason,
            exercise=c.exercise,
            command_id=c.command_id,
        )
    return hq.set_stage(
        -1 if c.stage is None else c.stage,
        actor=c.actor,
        ts_ms=c.ts_ms,
        reason=c.reason,
        exercise=c.exercise,
        command_id=c.command_id,
    )


# ----------------------------------------------------------------------------- delivery
@dataclass(frozen=True)
class Delivery:
    """What one zone transition asks of the deliver agent: the zone its CAP document
    describes (None: no document, :func:`alerting.cap.cap_wanted` is checked by the feed),
    and its notify key (None: not for people)."""

    zone: ZoneInfo | None
    notify: str | None


def notify_key(event: AlertEvent) -> str:
    """``real|flood``, ``exercise|earthquake``: one board and one partition per key."""
    return f"{'exercise' if event.exercise else 'real'}|{event.hazard}"


def deliver(services: Services, event: AlertEvent) -> Delivery:
    zone = services.zone_info(event.zone, event.hazard) if event.zone in services.zones else None
    return Delivery(zone, notify_key(event) if wanted(event) else None)


def notify_step(board: Board, event: AlertEvent, *, hold_ms: int) -> Step | None:
    """Apply a transition to its namespace|hazard's board (None: a replay, or not a stage
    change for people)."""
    return apply(board, event, hold_ms=hold_ms)


class SentLog(Protocol):
    """The subscriber store as the notify step sees it (``streams.store.SubscriberStore``)."""

    def audience(
        self, zone: str, hazard: str, *, exercise: bool, within: Sequence[str] | None = None
    ) -> list[Recipient]: ...

    def last_levels(self, event_id: str, subscriber_ids: Sequence[str]) -> dict[str, int]: ...

    def plan(self, rows: Sequence[PlannedDelivery]) -> list[str]: ...


def plan_step(
    board: Board,
    step: Step,
    key: str,
    log: SentLog,
    services: Services,
    *,
    now_ms: int,
) -> tuple[list[PlannedDelivery], dict[str, Recipient]]:
    """Who the step concerns, what changes for each, into the sent log: the rows to send (new,
    or planned before a crash) and their recipients."""
    if step.event_id is None:
        return [], {}
    audience = log.audience(
        step.zone, board.hazard, exercise=board.exercise, within=list(board.zones)
    )
    if not audience:
        return [], {}
    last = log.last_levels(step.event_id, [r.id for r in audience])
    notices = plan_notices(
        board, step, audience, last, services.templates, station_names=services.station_names
    )
    distance = (
        _nearest_first(services, step, notices) if board.hazard == Hazard.EARTHQUAKE else None
    )
    rows = [_row(n, key, priority(n, distance), now_ms) for n in notices]
    todo = set(log.plan(rows))
    return [r for r in rows if r.key in todo], {n.recipient.id: n.recipient for n in notices}


def _nearest_first(
    services: Services, step: Step, notices: Sequence[Notice]
) -> Callable[[Recipient], float] | None:
    """Distance from the transition's lead station (the accelerometer, or the station that
    relayed the catalogue event) to each person's point, km (no point: last); computed once
    for the whole audience (:func:`geo.metric.haversine_km`)."""
    ev = step.transition
    sid = str(ev.evidence.get("station") or (ev.stations[0] if ev.stations else ""))
    st = services.registry.stations.get(sid)
    if st is None:
        return None
    located = [n.recipient for n in notices if n.recipient.point is not None]
    pts = np.array([r.point for r in located], dtype=np.float64).reshape(-1, 2)
    dist = haversine_km(st.lat, st.lon, pts[:, 0], pts[:, 1])
    km = {r.id: float(d) for r, d in zip(located, dist, strict=True)}
    return lambda r: km.get(r.id, 9_999.0)


def _row(n: Notice, key: str, prio: float, t: int) -> PlannedDelivery:
    return PlannedDelivery(
        key=n.key,
        event_id=n.event_id,
        notify_key=key,
        hazard=n.hazard,
        exercise=n.exercise,
        subscriber_id=n.recipient.id,
        phone_masked=mask_phone(n.recipient.phone),
        level=n.level,
        kind=n.kind,
        seq=n.seq,
        trigger=n.trigger,
        area=n.area,
        body=n.body,
        priority=prio,
        token=n.token,
        planned_ms=t,
    )


# ----------------------------------------------------------------------------- in process
@dataclass(frozen=True)
class Message:
    """An MQTT message as a gateway published it."""

    topic: str
    payload: bytes
    received_ms: int


@dataclass(frozen=True)
class Flush:
    """Messages the front door takes together: their readings reach the detectors as one
    batch, as a bridge flush joined by the detect agent does."""

    messages: tuple[Message, ...]


@dataclass(frozen=True)
class Tick:
    """The leader's timer: ``exercise_now_ms`` None carries the newest drill reading seen."""

    now_ms: int
    exercise_now_ms: int | None = None


@dataclass(frozen=True)
class Sweep:
    """The deadman timer: air-quality hours and silent stations, drill stations judged on the
    newest drill reading seen."""

    now_ms: int


@dataclass(frozen=True)
class Detections:
    """Detections made elsewhere, straight to the geo join and the stage step."""

    detections: tuple[Detection, ...]


@dataclass(frozen=True)
class Action:
    """An operator's action on a zone (``POST /alerts/...``)."""

    zone: str
    action: OperatorAction


@dataclass(frozen=True)
class Rejected:
    """A payload the front door dead-letters (``readings.rejected``), with its reason."""

    message: Message
    rejection: Rejection


@dataclass(frozen=True)
class CapIntent:
    """A CAP 1.2 document to write for a public transition."""

    event: AlertEvent
    zone: ZoneInfo


@dataclass(frozen=True)
class SmsIntent:
    """One planned SMS: the sent log's row and its recipient."""

    row: PlannedDelivery
    recipient: Recipient


Input = Message | Flush | Tick | Sweep | Detections | Action
Output = (
    Rejected
    | Detection
    | AlertEvent
    | DataQualityAlert
    | AlertReminder
    | HQStageEvent
    | CapIntent
    | SmsIntent
)


class Core:
    """The whole pure pipeline in one process, in order: one alert machine for every zone,
    one HQ machine, one board per namespace|hazard.

    >>> from gyeongbo.settings import Settings
    >>> core = Core(Services(Settings(_env_file=None)))
    >>> core.push([Tick(now_ms=0)])
    []

    ``sent_log`` (the subscriber store, or any :class:`SentLog`) gives the audience of each
    step; without one no SMS is planned. ``seen`` is the front door's window of
    (station, seq) already taken (gateway retries), default: every pair.
    """

    def __init__(
        self,
        services: Services,
        *,
        validator: Validator | None = None,
        policies: dict[str, StagePolicy] | None = None,
        sent_log: SentLog | None = None,
        seen: Callable[[tuple[str, int]], bool] | None = None,
        deadman: bool | None = None,
        group_hold_s: float | None = None,
    ) -> None:
        settings = services.settings
        self.services = services
        self.validator = validator or Validator(
            services.registry, topic_root=settings.mqtt.topic_root
        )
        self.detectors = DetectorSet(services.registry)
        self.machine = AlertMachine(services.policies if policies is None else policies)
        self.hq = HQMachine()
        self.boards: dict[str, Board] = {}
        self.sent_log = sent_log
        self.deadman = settings.worker.deadman if deadman is None else deadman
        hold_s = settings.delivery.group_hold_s if group_hold_s is None else group_hold_s
        self.hold_ms = int(hold_s * 1000)
        self._taken: set[tuple[str, int]] = set()
        self.seen = seen or self._seen
        #: The newest drill reading's event time processed (the drill clock).
        self.exercise_now_ms = 0
        self.rejected_actions: list[str] = []
        self.zone_partitions = settings.kafka.topics.zone_commands.partitions

    def _seen(self, key: tuple[str, int]) -> bool:
        if key in self._taken:
            return True
        self._taken.add(key)
        return False

    def push(self, records: Iterable[Input]) -> list[Output]:
        """Records in, in order; everything they caused out, in order."""
        out: list[Output] = []
        for rec in records:
            out += self._one(rec)
        return out

    def _one(self, rec: Input) -> list[Output]:
        if isinstance(rec, Message | Flush):
            out: list[Output] = []
            batches = []
            for m in rec.messages if isinstance(rec, Flush) else (rec,):
                d = decode_message(
                    self.validator, m.topic, m.payload, received_ms=m.received_ms, seen=self.seen
                )
                out += [Rejected(m, r) for r in d.rejections]
                if d.batch is not None:
                    batches.append(d.batch)
            if batches:
                batch = batches[0] if len(batches) == 1 else ReadingBatch.concat(batches)
                dets = detect(self.detectors, batch)
                if batch.exercise.any():
                    ts = int(batch.ts_ms[batch.exercise].max())
                    self.exercise_now_ms = max(self.exercise_now_ms, ts)
                out += self._detected(dets)
            return out
        if isinstance(rec, Detections):
            return self._detected(list(rec.detections))
        if isinstance(rec, Tick):
            ex = self.exercise_now_ms if rec.exercise_now_ms is None else rec.exercise_now_ms
            return self._staged([tick(rec.now_ms, ex)])
        if isinstance(rec, Sweep):
            hours, silent = sweep(
                self.detectors,
                rec.now_ms,
                exercise_now_ms=self.exercise_now_ms,
                deadman=self.deadman,
            )
            return self._detected(hours + silent)
        return self._staged([ZoneCommand(kind="action", zone=rec.zone, action=rec.action)])

    def _detected(self, dets: list[Detection]) -> list[Output]:
        """Detections → their zone commands, staged as the worker sends them to the stage
        agent: one record per ``zone.commands`` partition, in the order the partitions
        first appear."""
        if not dets:
            return []
        by_part: dict[int, list[ZoneCommand]] = {}
        for cmd in route(self.services, dets):
            by_part.setdefault(partition_of(cmd.zone, self.zone_partitions), []).append(cmd)
        out: list[Output] = list(dets)
        for cmds in by_part.values():
            out += self._staged(cmds)
        return out

    def _staged(self, cmds: list[ZoneCommand]) -> list[Output]:
        st = stage(self.machine, self.services, cmds)
        self.rejected_actions += st.rejected
        out: list[Output] = []
        for ev in st.events:
            out.append(ev)
            if isinstance(ev, AlertEvent):
                out += self._delivered(ev)
        return [*out, *st.reminders]

    def _delivered(self, ev: AlertEvent) -> list[Output]:
        hq, refused = headquarters(self.hq, self.services, ev)
        out: list[Output] = list(hq)
        if refused is not None:
            self.rejected_actions.append(refused)
        d = deliver(self.services, ev)
        if d.zone is not None and cap_wanted(ev):
            out.append(CapIntent(ev, d.zone))
        if d.notify is None:
            return out
        board = self.boards.get(d.notify)
        if board is None:
            board = self.boards[d.notify] = Board(hazard=ev.hazard, exercise=ev.exercise)
        step = notify_step(board, ev, hold_ms=self.hold_ms)
        if step is None or self.sent_log is None:
            return out
        rows, people = plan_step(
            board, step, d.notify, self.sent_log, self.services, now_ms=parse_rfc3339_ms(ev.ts)
        )
        out += [SmsIntent(r, people[r.subscriber_id]) for r in rows]
        return out


def alerts_of(out: Iterable[Any]) -> list[AlertEvent]:
    """The alert events among a :meth:`Core.push` result."""
    return [o for o in out if isinstance(o, AlertEvent)]
