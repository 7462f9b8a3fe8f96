"""The Faust worker: readings → detectors → zones → stage machines → alerts → SMS, CAP, InfluxDB.

Topology (docs/design.md §2; every topic is created with its partition count by ``gyeongbo topics
create`` / the local stack, Faust creates only its changelogs)::

    readings (P, columnar batch records, partition = murmur2(station))
      └─ agent detect ── DetectorSet.process(batch) ─→ detections (P, key = station; a record)
                      └─ geo join: station → zones ──→ zone.commands (Z, key = zone)
    zone.commands  (detections per zone, timer ticks, operator actions)
      └─ agent stage ── AlertMachine per partition ─→ alerts (Z, key = zone) + hq.inputs (1)
                        └─ on ticks: reminders of unacknowledged alerts ─→ alerts.reminders (Z)
    alerts
      └─ agent deliver ── CAP 1.2 feed, InfluxDB, public transitions → alerts.notify
    alerts.notify (N, key = namespace|hazard)
      └─ agent notify ── events per hazard → one SMS per person per change (streams/notify.py)
    hq.inputs
      └─ agent headquarters ── HQMachine ──────────→ hq.stages (1)

State that must survive a restart or a rebalance lives in changelogged Faust tables whose
partitions line up with their source topic's (a table write goes to the partition of the event
being processed):

* ``detector-state``: per-station blobs (``DetectorSet.export_state``) in chunks (key
  ``<partition>/<chunk>``, :mod:`streams.detector_state`), written at most every
  ``state_checkpoint_s`` for the chunks whose stations changed, each with the readings offset
  it includes; imported lazily when a station is first seen after an assignment; beside them
  (``<partition>/drill-clock``) each partition's drill clock (the newest drill reading's event
  time, for the drill runner's check on ``/metrics``). A readings record is acknowledged
  only once a checkpoint that includes it is in Kafka, so the committed offset never runs
  ahead of the durable state;
* ``alert-state``: the whole :class:`~alerting.machine.AlertMachine` of one ``zone.commands``
  partition with the offset of the last command it applied (:func:`pack_state`), written
  after every change once its alert events are in Kafka;
* ``hq-state``: the :class:`~alerting.hq.HQMachine`, the same way;
* ``notify-state``: per namespace|hazard the zones' public stages and the event they form
  (:class:`alerting.delivery.Board`), written after the step's messages are planned in the
  sent log and before any is sent. The sent log itself (one row per person and stage
  change) lives in the subscriber store (PostgreSQL or SQLite, ``streams/store``).

Guarantees: at-least-once processing (``processing_guarantee="at_least_once"``) with state
that never lags the committed offsets (docs/design.md §9): after a crash or a rebalance each
agent resumes from its committed offset, skips what its restored state already includes
(readings by the chunk's offset, commands by the machine's), and redoes the rest. Redone
work sends its outputs again, and every consumer takes a repeat as nothing: the alert machine
ignores a detection it has applied (same station, rule and time), the HQ machine an alert
event it has applied, and alert transitions carry a deterministic ``event_id`` — a replayed
transition plans no second SMS (the sent log holds its key) and finds its CAP document on
disk — so correctness never rests on broker transactions.

The per-reading work stays in numpy: a ``readings`` record is one columnar batch (hundreds of
readings); Python-level work per record is the decode call, the detector call, and a few
sends (detections are level changes, not readings, and travel as one list per partition).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import faust
import msgspec
import numpy as np
from faust.types import TP

from alerting.hq import HQMachine
from alerting.machine import AlertMachine
from detectors.engine import DetectorSet
from gyeongbo.batch import ReadingBatch
from gyeongbo.events import (
    DataQualityAlert,
    Detection,
    StageEvent,
    decode_alert,
    encode,
)
from gyeongbo.kafka_security import faust_credentials
from gyeongbo.settings import Settings, Topic
from gyeongbo.topics import topic_configs
from streams import core, kafka_compat
from streams.cap_feed import CapFeed
from streams.codec import decode_batch
from streams.commands import (
    HQCommand,
    OperatorAction,
    ZoneCommand,
    decode_commands,
    decode_hq_input,
    encode_command,
    encode_commands,
    encode_detections,
    encode_hq_command,
)
from streams.detector_state import StateBook
from streams.faust_internals import mount_routes, release_payload, tables_recovered, waiting_queue
from streams.influx_sink import InfluxSink
from streams.notify import Notifier
from streams.partitioning import partition_of
from streams.reminders import ReminderChannel
from streams.services import Services
from streams.worker_web import middlewares, routes, web_options

log = logging.getLogger("gyeongbo.worker")

#: Event-loop turns the detect agent yields for, when its partition has a backlog, so that
#: Faust's fetcher can deliver the records it already holds (≈ 3 turns per record).
_DELIVERY_TURNS = 64
#: Every how many readings one latency sample is kept (``Metrics.observe_batch``).
_LATENCY_EVERY = 32


def now_ms() -> int:
    return time.time_ns() // 1_000_000


#: Prefix of a machine state value that carries the offset of the last command applied.
_STATE_MAGIC = b"GBO1"


def pack_state(offset: int, state: bytes) -> bytes:
    """A stage or HQ machine's table value: the machine with the offset of the last input
    record it applied, written together so that a replay skips exactly what it includes.

    >>> unpack_state(pack_state(7, b"machine"))
    (7, b'machine')
    >>> unpack_state(b"GBZ1...")  # written before values carried their offset
    (-1, b'GBZ1...')
    """
    return _STATE_MAGIC + offset.to_bytes(8, "little", signed=True) + state


def unpack_state(value: bytes) -> tuple[int, bytes]:
    if value[:4] != _STATE_MAGIC:
        return -1, value
    return int.from_bytes(value[4:12], "little", signed=True), value[12:]


@dataclass
class Metrics:
    """Counters and recent latencies, served on ``/metrics`` and logged periodically."""

    counters: Counter[str] = field(default_factory=Counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))
    """Reading received by the bridge → detected, ms (a sample of each batch)."""
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))
    detector_s: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def observe_batch(self, n: int, lat: np.ndarray[Any, Any] | None, dt: float) -> None:
        self.counters["readings"] += n
        self.counters["batches"] += 1
        self.detector_s += dt
        self.batch_sizes.append(n)
        if lat is not None and len(lat):
            # A systematic sample of every 32nd reading (at least one per batch), so a big
            # catch-up batch weighs as many readings as it holds; percentiles in snapshot().
            self.latencies_ms.extend(lat[::_LATENCY_EVERY].tolist())

    def snapshot(self) -> dict[str, Any]:
        def pct(xs: deque[float], q: float) -> float | None:
            return float(np.percentile(xs, q)) if xs else None

        up = time.monotonic() - self.started
        return {
            **{k: int(v) for k, v in sorted(self.counters.items())},
            "uptime_s": round(up, 1),
            "readings_per_s": round(self.counters["readings"] / up, 1) if up else 0.0,
            "batch_size_mean": float(np.mean(self.batch_sizes)) if self.batch_sizes else None,
            "detector_s_total": round(self.detector_s, 3),
            "lag_ms_p50": pct(self.latencies_ms, 50),
            "lag_ms_p99": pct(self.latencies_ms, 99),
        }


class GyeongboApp(faust.App):
    """A Faust app that lets the worker mount plain aiohttp routes on its web server."""

    web_routes: list[tuple[str, str, Any]]
    web_middlewares: list[Any]

    def on_webserver_init(self, web: Any) -> None:
        mount_routes(web, getattr(self, "web_middlewares", []), getattr(self, "web_routes", []))


class Worker:
    """One worker process: the Faust app, its agents, tables and the pure machinery."""

    def __init__(self, settings: Settings, *, sink: bool = True) -> None:
        self.settings = settings
        kafka_compat.apply_for(settings.kafka.broker)
        self.services = Services(settings)
        self.services.warm()  # before the first record, not during the first alert
        topics = settings.kafka.topics
        self.metrics = Metrics()
        w = settings.worker
        w.data_dir.mkdir(parents=True, exist_ok=True)
        self.app = GyeongboApp(
            w.app_id,
            broker=f"kafka://{settings.kafka.bootstrap}",
            store="memory://",
            processing_guarantee="at_least_once",
            topic_replication_factor=settings.kafka.replication_factor,
            table_standby_replicas=w.standby_replicas,
            broker_credentials=faust_credentials(settings.kafka),
            broker_session_timeout=w.session_timeout_s,
            broker_heartbeat_interval=min(3.0, w.session_timeout_s / 3),
            **web_options(settings),
            datadir=str(w.data_dir / "faust"),
            consumer_auto_offset_reset="earliest",
            consumer_group_instance_id=w.instance_id,
            producer_linger=0.005,
            stream_wait_empty=False,
        )
        self.app.web_routes = []
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.readings = self.app.topic(
            topics.readings.name, partitions=topics.readings.partitions, **raw
        )
        self.detections = self.app.topic(
            topics.detections.name, partitions=topics.detections.partitions, **raw
        )
        self.zone_commands = self.app.topic(
            topics.zone_commands.name, partitions=topics.zone_commands.partitions, **raw
        )
        self.alerts = self.app.topic(topics.alerts.name, partitions=topics.alerts.partitions, **raw)
        self.hq_inputs = self.app.topic(
            topics.hq_inputs.name, partitions=topics.hq_inputs.partitions, **raw
        )
        self.hq_stages = self.app.topic(
            topics.hq_stages.name, partitions=topics.hq_stages.partitions, **raw
        )
        self.dq_alerts = self.app.topic(
            topics.dq_alerts.name, partitions=topics.dq_alerts.partitions, **raw
        )
        tbl: dict[str, Any] = {
            "key_type": str,
            "value_type": bytes,
            "extra_topic_configs": topic_configs(
                Topic(name="changelog", partitions=1), settings.kafka
            ),
        }
        self.detector_state = self.app.Table(
            "detector-state", partitions=topics.readings.partitions, **tbl
        )
        self.alert_state = self.app.Table(
            "alert-state", partitions=topics.zone_commands.partitions, **tbl
        )
        self.hq_state = self.app.Table("hq-state", partitions=topics.hq_inputs.partitions, **tbl)

        self.detectors = DetectorSet(self.services.registry)
        self.state = StateBook(
            self.detectors, self.detector_state, settings.kafka.topics.readings.partitions
        )
        self._checkpoint_s = settings.worker.state_checkpoint_s
        #: Held while the detector state changes and its detections are sent, so that a
        #: checkpoint never includes a change whose detections are not in Kafka yet.
        self._state_lock = asyncio.Lock()
        self._readings_stream: Any = None
        #: Counts assignments: a group processed across one is not held (its records come
        #: again). Faust's generation id cannot tell: a restarted noida-db starts it over.
        self._assignment = 0
        self._exercise_watermark = 0
        #: Per readings partition: the newest drill event time processed from it (the drill
        #: clock its stations' silence is judged by), and the partitions whose last record
        #: had later ones waiting in Kafka (being caught up on: their silence is not judged).
        self._exercise_clock_part: dict[int, int] = {}
        self._behind_parts: set[int] = set()
        #: Per registry station: its readings partition (the state book's mapping).
        self._station_part = self.state.station_partition.astype(np.int64)
        self._machines: dict[int, AlertMachine] = {}
        #: Per zone.commands partition: offset of the last command its machine includes.
        self._applied: dict[int, int] = {}
        self._hq: HQMachine | None = None
        self._hq_applied = -1
        self.sink = (
            InfluxSink(settings.influx, registry=self.services.registry, instance=w.instance())
            if sink
            else None
        )
        self._stations_written = 0.0
        self._write_stations()
        self.cap = CapFeed(settings.paths.cap_feed, sender=settings.twilio.cap_sender)
        self.notifier = Notifier(
            self.app, settings, self.services, sink=self.sink, counters=self.metrics.counters
        )
        self.reminder_channel = ReminderChannel(
            self.app, settings, sink=self.sink, counters=self.metrics.counters
        )
        self._wire()

    # ----------------------------------------------------------------------------- wiring
    def _wire(self) -> None:
        app = self.app
        app.agent(self.readings, name="detect")(self._detect)
        app.agent(self.zone_commands, name="stage")(self._stage)
        app.agent(self.alerts, name="deliver")(self._deliver)
        app.agent(self.hq_inputs, name="headquarters")(self._headquarters)
        app.timer(self.settings.worker.tick_s, on_leader=True, name="tick")(self._tick)
        app.timer(self.settings.worker.deadman_every_s, name="deadman")(self._deadman)
        idle_every = min(30.0, max(1.0, self.settings.worker.state_checkpoint_s))
        app.timer(idle_every, name="checkpoint-idle")(self._checkpoint_idle)
        app.timer(self.settings.worker.log_every_s, name="report")(self._report)
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        app.web_middlewares = middlewares(self)
        app.web_routes.extend(routes(self))
        app.web_routes.extend(self.notifier.wire(app))

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs.get("assigned", set())
        # The consumer resumes every assigned partition from its committed offset, which may
        # be older than the state in memory (another worker may also have moved it on):
        # forget it, reload it lazily from the checkpoints and replay what follows them.
        readings = self.settings.kafka.topics.readings.name
        self._assignment += 1
        self.state.reset(tp.partition for tp in assigned if tp.topic == readings)
        zc = self.settings.kafka.topics.zone_commands.name
        for tp in assigned:
            if tp.topic == zc:
                self._machines.pop(tp.partition, None)
        if any(tp.topic == self.settings.kafka.topics.hq_inputs.name for tp in assigned):
            self._hq = None
        self.metrics.counters["rebalances"] += 1
        await self.notifier.on_assigned(assigned)

    async def _on_revoked(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        zc = self.settings.kafka.topics.zone_commands.name
        for tp in revoked:
            if tp.topic == zc:
                self._machines.pop(tp.partition, None)
        await self.notifier.on_revoked(revoked)

    # ----------------------------------------------------------------------------- agents
    async def _detect(self, stream: Any) -> None:
        """Readings records → detectors → detections, zone commands and the sink.

        Records that are already waiting when one arrives are joined into one detector call
        (up to ``worker.coalesce_readings`` readings): nothing waits for more to come, so
        latency never grows, but a backlog (a busy bridge, a restart, a noida stall) is
        worked through in big batches, where the numpy cost per reading is a fraction of
        that of a record of ~80 readings.

        Events are acknowledged by hand, only once a detector-state checkpoint that includes
        them is in Kafka (:mod:`streams.detector_state`): an event acknowledged before could
        be committed, and a crash would then restore older state and never read it again.
        A cancelled group (shutdown, rebalance) is not acknowledged at all, so it is read
        again. A group that fails is logged with its offsets, counted
        (``processing_errors``), and skipped like a poison record: its records stay in
        ``readings``. Records received before the latest assignment are dropped unprocessed
        (``stale_records``): the consumer reads them again from the committed offset, onto
        the state reloaded for that assignment.
        """
        stream.enable_acks = False
        self._readings_stream = stream
        queue = waiting_queue(stream)
        limit = self.settings.worker.coalesce_readings
        group: list[tuple[Any, ReadingBatch | None, int]] = []
        waiting = 0
        async for event in stream.events():
            p, offset = event.message.partition, int(event.message.offset)
            try:
                batch: ReadingBatch | None = decode_batch(event.value)
            except Exception as err:  # a poison record: count, log, skip, stay alive
                self._poison(event, err)
                batch = None
            release_payload(event)  # decoded; a held event keeps no record bytes
            if batch is not None and len(batch):
                self.state.load(p, batch.station)
                batch = self.state.skip_replayed(p, offset, batch)
                waiting += len(batch)
            group.append((event, batch, self._assignment))
            if waiting < limit and queue is not None:
                if queue.empty() and self._behind(event):
                    # Faust hands the agent one record at a time (its fetcher yields to
                    # the loop after each delivery): when Kafka already holds more, let it
                    # deliver them. A bounded handful of loop turns, not a timer.
                    for _ in range(_DELIVERY_TURNS):
                        await asyncio.sleep(0)
                        if not queue.empty():
                            break
                if not queue.empty():
                    continue  # more records are already here: take them into this call
            async with self._state_lock:
                assignment = self._assignment
                live = [(e, b) for e, b, a in group if a == assignment]
                batches = [b for _, b in live if b is not None and len(b)]
                if batches:
                    try:
                        await self._process(
                            batches[0] if len(batches) == 1 else ReadingBatch.concat(batches)
                        )
                    except Exception:
                        self.metrics.counters["processing_errors"] += 1
                        log.exception(
                            "detector batch of %d record(s) failed and is skipped (kept in "
                            "readings): %s",
                            len(live),
                            ", ".join(
                                f"{e.message.topic}[{e.message.partition}]@{e.message.offset}"
                                for e, _ in live
                            ),
                        )
                    self.metrics.counters["records"] += len(live)
                # Every live record, readings or not (a group of replays skipped whole still
                # says whether its partition is caught up).
                self._note_partitions(live)
                if self._assignment == assignment:  # else reset meanwhile: they come again
                    for e, _ in live:
                        self.state.hold(e.message.partition, e)
                    await self._checkpoint_due({e.message.partition for e, _ in live}, stream)
            self.metrics.counters["stale_records"] += len(group) - len(live)
            group.clear()
            waiting = 0

    def _note_partitions(self, live: list[tuple[Any, ReadingBatch | None]]) -> None:
        """After a group's detections are sent: each partition's drill clock, and whether
        Kafka held more of it (see :meth:`_deadman`)."""
        last: dict[int, Any] = {}
        for e, b in live:
            p = e.message.partition
            last[p] = e
            if b is not None and len(b) and b.exercise.any():
                ts = int(b.ts_ms[b.exercise].max())
                self._exercise_clock_part[p] = max(self._exercise_clock_part.get(p, 0), ts)
        for p, e in last.items():
            if self._behind(e):
                self._behind_parts.add(p)
            else:
                self._behind_parts.discard(p)

    def _behind(self, event: Any) -> bool:
        """Whether Kafka held later records of this event's partition at the last fetch."""
        m = event.message
        try:
            hw = self.app.consumer.highwater(m.tp)
        except Exception:  # not assigned any more, no fetch yet, or no consumer thread
            return False
        return hw is not None and int(m.offset) + 1 < int(hw)

    async def _process(self, batch: ReadingBatch) -> None:
        """Detect on a joined batch and send what it detected (under the state lock)."""
        t0 = time.perf_counter()
        dets = core.detect(self.detectors, batch)
        dt = time.perf_counter() - t0
        self.state.mark_dirty()
        lat = None
        if batch.received_ms is not None:
            lat = now_ms() - batch.received_ms
        self.metrics.observe_batch(len(batch), lat, dt)
        await self._send_detections(dets)
        if batch.exercise.any():
            # The drill clock moves only once these readings' detections are on their way:
            # a tick carrying it then follows them on every zone.commands partition, and can
            # never end a hold before a detection of an earlier time is staged.
            ex_max = int(batch.ts_ms[batch.exercise].max())
            self._exercise_watermark = max(self._exercise_watermark, ex_max)
        if self.sink is not None:
            self.sink.write_readings(batch)

    async def _checkpoint_due(self, partitions: set[int], stream: Any) -> None:
        """Checkpoint the partitions whose interval has passed and acknowledge what the
        checkpoints include, once Kafka has them (under the state lock).

        Kafka first gets every detection sent so far (a producer flush): a checkpoint in
        Kafka never includes a reading whose detections could still be lost."""
        due = self.state.due(partitions, self._checkpoint_s)
        if due:
            await self._checkpoint(due, stream)

    async def _checkpoint(self, partitions: Iterable[int], stream: Any) -> None:
        """Checkpoint ``partitions`` now (under the state lock): detections sent so far to
        Kafka first, then the chunks; acknowledge the events the checkpoints include."""
        due = sorted(partitions)
        if not due:
            return
        await self.app.producer.flush()
        futs: list[Any] = []
        acks: list[Any] = []
        for p in due:
            f, events = self.state.checkpoint(p)
            futs += f
            acks += events
        if futs:
            await asyncio.gather(*futs)
        for e in acks:
            await stream.ack(e)

    def _poison(self, event: Any, err: BaseException) -> None:
        """A record no version of this code can decode: count it, log it, skip it."""
        self.metrics.counters["poison_records"] += 1
        log.error(
            "skipping undecodable record %s[%s]@%s: %s",
            event.message.topic,
            event.message.partition,
            event.message.offset,
            err,
        )

    def exercise_clock_ms(self) -> int | None:
        """The newest drill reading's event time this worker knows of: in its detector state,
        seen since it started, or checkpointed for any partition of ``readings``."""
        stored = (
            self.state.drill_clock(p) for p in range(self.settings.kafka.topics.readings.partitions)
        )
        ex = max(self.detectors.exercise_clock_ms() or 0, self._exercise_watermark, *stored)
        return ex or None

    async def _send_detections(self, dets: list[Detection]) -> None:
        """Record detections on ``detections`` and in InfluxDB, and stage them.

        Every detection passes here, those of the readings and those of the clock sweep
        (deadman, air-quality hours closed on the clock): the dashboards' sensor-health and
        detection panels show them all.

        ``detections`` gets one record per partition (the list of its stations' detections, in
        order, keyed by the first station). The geo join runs here too: each detection's
        zones (:meth:`Services.route`) become ``zone.commands``, one record per zone partition
        (keyed by its first zone). Joining where the detections are made, instead of in an
        agent consuming ``detections``, saves a Kafka hop on the alert path: under load every
        hop waits for a fetch, and on the local broker each one stalls with it (measured:
        docs/benchmarks.md). ``detections`` remains the record of everything detected, for the
        sink and any other consumer.
        """
        if not dets:
            return
        n = self.settings.kafka.topics.detections.partitions
        by_part: dict[int, list[Detection]] = {}
        for d in dets:
            by_part.setdefault(partition_of(d.station, n), []).append(d)
        zn = self.settings.kafka.topics.zone_commands.partitions
        by_zone_part: dict[int, list[ZoneCommand]] = {}
        for cmd in core.route(self.services, dets):
            by_zone_part.setdefault(partition_of(cmd.zone, zn), []).append(cmd)
        for p, cmds in by_zone_part.items():
            await self.zone_commands.send(
                key=cmds[0].zone.encode(), value=encode_commands(cmds), partition=p
            )
        for p, part in by_part.items():
            await self.detections.send(
                key=part[0].station.encode(), value=encode_detections(part), partition=p
            )
        self.metrics.counters["detections"] += len(dets)
        if self.sink is not None:
            self.sink.write_detections(dets)

    def _machine(self, partition: int) -> AlertMachine:
        m = self._machines.get(partition)
        if m is None:
            blob = self.alert_state.get(str(partition))
            applied, raw = unpack_state(blob) if blob else (-1, b"")
            policies = self.services.policies
            m = AlertMachine.from_bytes(raw, policies) if raw else AlertMachine(policies)
            self._machines[partition] = m
            self._applied[partition] = applied
        return m

    async def _stage(self, stream: Any) -> None:
        """Zone commands → the partition's alert machine → ``alerts`` and ``hq.inputs``.

        A command that changes the machine is followed by a write of the machine with the
        command's offset, once its alert events are in Kafka (their delivery is awaited):
        a crash before the write replays the command against the older machine, which sends
        the same events again (same ``event_id``: SMS, CAP and the HQ machine take the
        repeat as nothing); written first, a crash between the two would lose them. A
        command whose offset the restored machine includes is skipped."""
        async for event in stream.events():
            p, offset = event.message.partition, int(event.message.offset)
            try:
                cmds = decode_commands(event.value)
            except msgspec.DecodeError as err:
                self._poison(event, err)
                continue
            m = self._machine(p)
            if offset <= self._applied.get(p, -1):
                self.metrics.counters["replayed_commands_skipped"] += 1
                continue
            staged = core.stage(m, self.services, cmds)
            for why in staged.rejected:
                self.metrics.counters["operator_rejected"] += 1
                log.warning("%s", why)
            if staged.events or staged.reminders:
                futs = await self._send_alerts(staged.events, p)
                await asyncio.gather(*futs, *await self.reminder_channel.send(staged.reminders, p))
            if staged.changed:
                self.alert_state[str(p)] = pack_state(offset, m.to_bytes())
                self._applied[p] = offset

    async def _send_alerts(self, events: list[StageEvent], partition: int) -> list[Any]:
        """Public transitions to ``alerts`` (and the HQ machine); operators' data-quality
        alerts to ``dq.alerts`` and straight to InfluxDB — never to SMS, CAP or HQ. Returns
        the delivery futures (the caller waits for them before it records the machine)."""
        dq: list[DataQualityAlert] = []
        futs: list[Any] = []
        for ev in events:
            raw = encode(ev)
            if isinstance(ev, DataQualityAlert):
                dq.append(ev)
                futs.append(
                    await self.dq_alerts.send(key=ev.zone.encode(), value=raw, partition=partition)
                )
                continue
            futs.append(
                await self.alerts.send(key=ev.zone.encode(), value=raw, partition=partition)
            )
            futs.append(await self.hq_inputs.send(key=ev.zone.encode(), value=raw, partition=0))
        if dq and self.sink is not None:
            self.sink.write_dq_alerts(dq)
        self.metrics.counters["alert_events"] += len(events) - len(dq)
        self.metrics.counters["dq_alert_events"] += len(dq)
        return futs

    async def _deliver(self, stream: Any) -> None:
        """Per zone transition: InfluxDB, its CAP document (one per public transition, as CAP
        consumers expect), and on to ``alerts.notify``, where SMS are decided per person."""
        loop = asyncio.get_running_loop()
        async for raw in stream:
            ev = decode_alert(raw)
            if self.sink is not None:
                self.sink.write_alerts([ev])
            intent = core.deliver(self.services, ev)
            if intent.zone is not None:
                await loop.run_in_executor(None, self.cap.publish, ev, intent.zone)
            if intent.notify is not None:
                await self.notifier.forward(ev, raw)

    def _hq_machine(self) -> HQMachine:
        """The HQ machine, restored from ``hq-state`` on first use after an assignment."""
        if self._hq is None:
            blob = self.hq_state.get("hq")
            self._hq_applied, raw = unpack_state(blob) if blob else (-1, b"")
            self._hq = HQMachine().restore(raw) if raw else HQMachine()
        return self._hq

    async def _headquarters(self, stream: Any) -> None:
        """Alert events and operators' HQ commands → the HQ machine → ``hq.stages``, as
        :meth:`_stage` does: stages in Kafka first, then the machine with the input's offset;
        replayed inputs skipped (and a replayed command by its ``command_id``)."""
        async for event in stream.events():
            offset = int(event.message.offset)
            try:
                rec = decode_hq_input(event.value)
            except msgspec.DecodeError as err:
                self._poison(event, err)
                continue
            hq = self._hq_machine()
            if offset <= self._hq_applied:
                continue
            out, refused = core.headquarters(hq, self.services, rec)
            if refused is not None:
                self.metrics.counters["operator_rejected"] += 1
                log.warning("%s", refused)
            futs = [
                await self.hq_stages.send(key=h.hazard_group.encode(), value=encode(h), partition=0)
                for h in out
            ]
            if futs:
                await asyncio.gather(*futs)
            if self.sink is not None and out:
                self.sink.write_hq(out)
            self.hq_state["hq"] = pack_state(offset, hq.to_bytes())
            self._hq_applied = offset

    # ----------------------------------------------------------------------------- timers
    async def _tick(self) -> None:
        n = self.settings.kafka.topics.zone_commands.partitions
        # The leader's drill clock: exact with one worker; with several, the newest drill
        # reading the leader saw (the machines also keep their own watermark).
        cmd = encode_command(core.tick(now_ms(), self._exercise_watermark))
        for p in range(n):
            await self.zone_commands.send(key=b"tick", value=cmd, partition=p)

    async def _deadman(self) -> None:
        """The detectors' clock-driven work: silent stations (deadman) and air-quality hours
        that no later reading closed (:meth:`DetectorSet.close_hours`).

        Live stations are judged on the wall clock, drill stations on the drill's clock of
        their own readings partition (the newest exercise event time processed from it): a
        drill replays hours in minutes with timestamps behind the wall clock, and partitions
        are read unevenly, so one that ran ahead must not make another's stations look
        silent. Only stations of the readings partitions this worker owns now are judged
        (after a rebalance the detectors still hold the state of stations whose readings now
        go to another worker, and they are not silent there), and not those of a partition
        whose last record had later ones waiting in Kafka: while a worker catches up after a
        restart or a stall, a station's silence may be only the worker's own lag.
        """
        async with self._state_lock:  # a checkpoint never includes unsent detections
            now = now_ms()
            owned = self._owned_partitions(self.settings.kafka.topics.readings.name)
            n_parts = self.settings.kafka.topics.readings.partitions
            part_clock = np.zeros(n_parts, dtype=np.int64)
            for p, t in self._exercise_clock_part.items():
                if p < n_parts:
                    part_clock[p] = t
            ex = part_clock[self._station_part]
            judged = np.zeros(n_parts, dtype=bool)
            judged[[p for p in owned - self._behind_parts if p < n_parts]] = True
            # Hours first: an hour closed now ended before any silence judged now was noticed
            # (its event time is the hour's end), so its decision is made on trusted data.
            hours, silent = core.sweep(
                self.detectors,
                now,
                exercise_now_ms=ex,
                judge=judged[self._station_part],
                deadman=self.settings.worker.deadman,
            )
            if hours:
                self.state.mark_dirty()
            dets = hours + silent
            if dets:
                await self._send_detections(
                    [d for d in dets if partition_of(d.station, n_parts) in owned]
                )
            # A station judged silent is a change no reading replays: its detection is
            # staged (the machine holds the station out of public stages) and must be in the
            # checkpoint at once, or a worker restarted before the next one restores the
            # station as alive and never sends the ``cleared`` its next reading calls for —
            # the station's zones would stay held for good.
            dead = [d.station for d in dets if d.rule == "health.deadman"]
            if dead and self._readings_stream is not None:
                idx = self.detectors.index_of(dead)
                self.state.mark_dirty(idx)
                # (a partition with nothing processed since its assignment has no offset to
                # checkpoint: its next record, being processed, brings the station back)
                parts = {int(p) for p in self._station_part[idx].tolist()} & owned
                parts &= set(self.state.processed)
                await self._checkpoint(parts, self._readings_stream)

    async def _checkpoint_idle(self) -> None:
        """Checkpoint partitions that hold acknowledgements but receive no more readings (a
        drill that ended, a quiet night), so their offsets are committed too."""
        stream = self._readings_stream
        if stream is None:
            return
        async with self._state_lock:
            await self._checkpoint_due(set(self.state.held), stream)

    def snapshot(self) -> dict[str, Any]:
        """``/metrics``: the worker's counters and figures, the readings the detectors set
        aside (``detector_late``, ``detector_duplicate``, ``detector_unknown_station``,
        ``detector_kind_mismatch``: counted, never silent), the InfluxDB sink's counters and
        ``exercise_clock_ms``, the newest drill reading's event time in its partitions; the
        detector-state checkpoints (``state_checkpoints``, ``state_chunks_written``,
        ``replayed_readings_skipped``: readings a replay brought that the restored state
        already included) and ``held_acks``, the records processed and waiting for one."""
        stats = {f"detector_{k}": int(v) for k, v in self.detectors.stats.items()}
        sink = self.sink.metrics() if self.sink is not None else {}
        # the drill runner refuses a drill whose readings would be older than this
        drill = {"exercise_clock_ms": self.exercise_clock_ms()}
        state = {
            **self.state.counters,
            "held_acks": sum(len(v) for v in self.state.held.values()),
        }
        sms = self.notifier.snapshot()
        return {**self.metrics.snapshot(), **stats, **sink, **drill, **state, **sms}

    def _write_stations(self) -> None:
        """The registry's stations → InfluxDB ``station`` (the situation map's station layer):
        at start (a changed registry is a restart) and daily, within the dashboards' window."""
        if self.sink is not None:
            self.sink.write_stations()
            self._stations_written = time.monotonic()

    async def _report(self) -> None:
        if time.monotonic() - self._stations_written >= 86_400:
            self._write_stations()
        snap = self.snapshot()
        log.info("worker metrics %s", snap)
        if self.sink is not None:
            vals = {k: v for k, v in snap.items() if isinstance(v, int | float)}
            vals["readings_total"] = snap.get("readings", 0)
            vals["detections_total"] = snap.get("detections", 0)
            vals["alerts_total"] = snap.get("alert_events", 0)
            self.sink.write_metrics("worker", vals)
        await self.notifier.report()

    # ----------------------------------------------------------------------------- queries
    def active_alerts(self, exercise: bool | None = None) -> list[dict[str, Any]]:

        out = []
        for p in sorted(self._owned_zone_partitions()):
            out += [msgspec.to_builtins(a) for a in self._machine(p).active(exercise=exercise)]
        return out

    def audit(self) -> list[dict[str, Any]]:

        out = []
        for p in sorted(self._owned_zone_partitions()):
            out += [msgspec.to_builtins(a) for a in self._machine(p).audit_log]
        if self._owns_hq():
            hq = self._hq_machine()
            for exercise in (False, True):
                out += [msgspec.to_builtins(a) for a in hq.audit_log(exercise=exercise)]
        return sorted(out, key=lambda a: a.get("ts_ms", 0))

    def _owns_hq(self) -> bool:
        return 0 in self._owned_partitions(self.settings.kafka.topics.hq_inputs.name)

    def hq_view(self, *, history: int = 20) -> dict[str, Any] | None:
        """``/hq``: per namespace the standing stage, the standing proposal (None when none),
        the level standing per province and the latest ``history`` stage records; None when
        this worker does not hold the headquarters machine (``hq.inputs`` is another's)."""
        if not self._owns_hq():
            return None
        hq = self._hq_machine()
        doc: dict[str, Any] = {"hazard_group": hq.hazard_group}
        for name, exercise in (("real", False), ("exercise", True)):
            doc[name] = {
                "stage": hq.stage(exercise=exercise),
                "proposed": hq.proposed(exercise=exercise),
                "provinces": hq.province_levels(exercise=exercise),
                "history": [
                    msgspec.to_builtins(r) for r in hq.history(exercise=exercise)[-history:]
                ],
            }
        return doc

    async def submit_hq(self, command: HQCommand) -> None:
        """Queue an operator's headquarters decision on ``hq.inputs`` (after the alert events
        already there: the machine applies it in order)."""
        await self.hq_inputs.send(key=b"hq-command", value=encode_hq_command(command), partition=0)

    def _owned_zone_partitions(self) -> set[int]:
        return self._owned_partitions(self.settings.kafka.topics.zone_commands.name)

    def _owned_partitions(self, topic: str) -> set[int]:
        try:
            assigned = self.app.consumer.assignment()
        except Exception:
            return set()
        return {tp.partition for tp in assigned if tp.topic == topic}

    async def submit_action(self, zone: str, action: OperatorAction) -> None:
        n = self.settings.kafka.topics.zone_commands.partitions
        cmd = ZoneCommand(kind="action", zone=zone, action=action)
        await self.zone_commands.send(
            key=zone.encode(), value=encode_command(cmd), partition=partition_of(zone, n)
        )

    def health(self) -> dict[str, Any]:
        try:
            assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in self.app.consumer.assignment())
        except Exception:
            assigned = []
        # Ready once partitions are assigned and the tables are recovered: before that the
        # worker knows neither its alert stages nor the drill clocks it checkpointed (a drill
        # runner asking then would read no clock and publish readings set aside as late).
        recovered = tables_recovered(self.app)
        return {
            "status": "ok" if assigned and recovered else "starting",
            "assigned": assigned,
            "tables_recovered": recovered,
            "app_id": self.settings.worker.app_id,
        }


def build_app(settings: Settings | None = None) -> faust.App:
    """The Faust app with every agent, for ``faust -A`` style tooling and tests."""
    return Worker(settings or Settings()).app
