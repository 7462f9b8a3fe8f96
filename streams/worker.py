"""The Faust worker: readings → detectors → zones → stage machines → alerts → SMS, CAP, InfluxDB.

Topology (docs/design.md §2; every topic is created with its partition count by ``gyeongbo topics
create`` / the local stack, Faust creates only its changelogs)::

    readings (P, columnar batch records, partition = murmur2(station))
      └─ agent detect ── DetectorSet.process(batch) ─→ detections (P, key = station; a record)
                      └─ geo join: station → zones ──→ zone.commands (Z, key = zone)
    zone.commands  (detections per zone, timer ticks, operator actions)
      └─ agent stage ── AlertMachine per partition ─→ alerts (Z, key = zone) + hq.inputs (1)
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
  ``<partition>/<chunk>``, see ``Worker._checkpoint``), written at most every
  ``state_checkpoint_s`` for the chunks whose stations changed; imported lazily when a station
  is first seen after an assignment; beside them (``<partition>/drill-clock``) each
  partition's drill clock (the newest drill reading's event time, for the
  drill runner's check on ``/metrics``);
* ``alert-state``: the whole :class:`~alerting.machine.AlertMachine` of one ``zone.commands``
  partition, written after every change;
* ``hq-state``: the :class:`~alerting.hq.HQMachine`;
* ``notify-state``: per namespace|hazard the zones' public stages and the event they form
  (:class:`alerting.delivery.Board`), written after the step's messages are planned in the
  sent log and before any is sent. The sent log itself (one row per person and stage
  change) lives in the subscriber store (PostgreSQL or SQLite, ``streams/store``).

Guarantees: at-least-once processing (``processing_guarantee="at_least_once"``); every effect is
idempotent by id — alert transitions carry a deterministic ``event_id``, a replayed transition
plans no second SMS (the sent log holds its key) and finds its CAP document on disk — so
correctness never rests on broker transactions.

The per-reading work stays in numpy: a ``readings`` record is one columnar batch (hundreds of
readings); Python-level work per record is the decode call, the detector call, and a few
sends (detections are level changes, not readings, and travel as one list per partition).
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import faust
import msgspec
import numpy as np
from faust.types import TP

from alerting.hq import HQMachine
from alerting.machine import AlertMachine, OperatorError
from detectors.engine import DetectorSet
from gyeongbo.batch import ReadingBatch
from gyeongbo.events import (
    DataQualityAlert,
    Detection,
    HQStageEvent,
    StageEvent,
    decode_alert,
    encode,
)
from gyeongbo.kafka_security import faust_credentials
from gyeongbo.settings import Settings, Topic
from gyeongbo.topics import topic_configs
from gyeongbo.vocab import Level
from streams import kafka_compat
from streams.cap_feed import CapFeed
from streams.codec import decode_batch
from streams.commands import (
    OperatorAction,
    ZoneCommand,
    decode_commands,
    encode_command,
    encode_commands,
    encode_detections,
)
from streams.influx_sink import InfluxSink
from streams.notify import Notifier
from streams.partitioning import partition_of, partitions_for
from streams.services import Services
from streams.worker_web import web_options

log = logging.getLogger("gyeongbo.worker")

#: Detector-state chunks per readings partition (see Worker._checkpoint).
STATE_CHUNKS = 256
_chunk_encoder = msgspec.msgpack.Encoder()
_chunk_decoder = msgspec.msgpack.Decoder(dict[str, bytes])


#: Event-loop turns the detect agent yields for, when its partition has a backlog, so that
#: Faust's fetcher can deliver the records it already holds (≈ 3 turns per record).
_DELIVERY_TURNS = 64
#: Every how many readings one latency sample is kept (``Metrics.observe_batch``).
_LATENCY_EVERY = 32


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _drill_clock_key(partition: int) -> str:
    """The detector-state table key of a readings partition's drill clock (8 bytes, LE)."""
    return f"{partition}/drill-clock"


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
        web.web_app.middlewares.extend(getattr(self, "web_middlewares", []))
        for method, path, handler in getattr(self, "web_routes", []):
            web.web_app.router.add_route(method, path, handler)


class Worker:
    """One worker process: the Faust app, its agents, tables and the pure machinery."""

    def __init__(self, settings: Settings, *, sink: bool = True) -> None:
        self.settings = settings
        kafka_compat.install()
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
        self._loaded_stations: set[str] = set()
        self._loaded_chunks: set[str] = set()
        self._chunks_loaded: dict[int, int] = {}  # partition → chunks read from the table
        self._dirty: dict[int, set[int]] = {}  # partition → registry indices of stations
        self._station_partition = partitions_for(
            self.detectors.ids, settings.kafka.topics.readings.partitions
        )
        self._last_checkpoint: dict[int, float] = {}
        self._checkpoint_s = settings.worker.state_checkpoint_s
        self._exercise_watermark = 0
        self._machines: dict[int, AlertMachine] = {}
        self._hq: HQMachine | None = None
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
        app.timer(self.settings.worker.log_every_s, name="report")(self._report)
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]
        from streams.worker_web import middlewares, routes

        app.web_middlewares = middlewares(self)
        app.web_routes.extend(routes(self))
        app.web_routes.extend(self.notifier.wire(app))

    async def _on_assigned(self, sender: Any, *args: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs.get("assigned", set())
        # Another worker may have changed these stations' state meanwhile: reload lazily.
        self._loaded_stations.clear()
        self._loaded_chunks.clear()
        self._chunks_loaded.clear()
        self._dirty.clear()
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

        Events are acknowledged by hand, only once their group is processed and its
        detections handed to Kafka: an event acked before could be committed and lost in a
        crash, and a cancelled group (shutdown, rebalance) is not acked at all, so it is read
        again. A group that fails is logged with its offsets, counted
        (``processing_errors``), and skipped like a poison record: its records stay in
        ``readings``. Records of an earlier consumer generation (delivered before a
        rebalance) are skipped, as Faust itself skips them.
        """
        stream.enable_acks = False
        queue = getattr(stream.channel, "queue", None)
        limit = self.settings.worker.coalesce_readings
        group: list[tuple[Any, ReadingBatch | None]] = []
        waiting = 0
        async for event in stream.events():
            try:
                batch: ReadingBatch | None = decode_batch(event.value)
            except Exception as err:  # a poison record: count, log, skip, stay alive
                self._poison(event, err)
                batch = None
            if batch is not None and len(batch):
                self._load_station_state(event.message.partition, batch.station)
                waiting += len(batch)
            group.append((event, batch))
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
            gen = self.app.consumer_generation_id
            live = [(e, b) for e, b in group if e.message.generation_id == gen]
            batches = [b for _, b in live if b is not None and len(b)]
            if batches:
                try:
                    await self._process(
                        batches[0] if len(batches) == 1 else ReadingBatch.concat(batches),
                        stream,
                        {e.message.partition: e for e, _ in live},
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
            self.metrics.counters["stale_records"] += len(group) - len(live)
            for e, _ in group:
                await stream.ack(e)
            group.clear()
            waiting = 0

    def _behind(self, event: Any) -> bool:
        """Whether Kafka held later records of this event's partition at the last fetch."""
        m = event.message
        try:
            hw = self.app.consumer.highwater(m.tp)
        except Exception:  # not assigned any more, no fetch yet, or no consumer thread
            return False
        return hw is not None and int(m.offset) + 1 < int(hw)

    async def _process(self, batch: ReadingBatch, stream: Any, last: dict[int, Any]) -> None:
        """Detect on a joined batch; ``last``: partition → its last event in the batch."""
        t0 = time.perf_counter()
        dets = self.detectors.process(batch)
        dt = time.perf_counter() - t0
        self._mark_dirty()
        for p, event in last.items():
            if time.monotonic() - self._last_checkpoint.get(p, 0.0) >= self._checkpoint_s:
                # A Faust table writes its changelog to the partition of the *current*
                # event: make it one of partition p's, so the state lands where the worker
                # that takes p over restores it from.
                stream._set_current_event(event)
                self._checkpoint(p)
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
            if dets:
                self.sink.write_detections(dets)

    def _mark_dirty(self) -> None:
        """Note the stations the detectors just changed, per readings partition (station →
        partition is computed once for the registry)."""
        idx = self.detectors.touched_station_index()
        if not len(idx):
            return
        parts = self._station_partition[idx]
        for p in np.unique(parts).tolist():
            self._dirty.setdefault(int(p), set()).update(idx[parts == p].tolist())

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

    # Detector state is checkpointed in chunks: table key "<partition>/<chunk>" holds the
    # blobs of that chunk's stations (msgpack map station → blob), written at most every
    # ``state_checkpoint_s`` per partition for the chunks whose stations changed. One
    # changelog record per station per batch would cap a worker at the ~1–3k records/s Faust
    # and the broker sustain; chunks keep it to a few records per second. The price: after a
    # crash a station's detector state may be up to one checkpoint interval old (its alert
    # stage is not: the stage machines are written on every change).
    def _chunk_of(self, station: str) -> int:
        return zlib.crc32(station.encode()) % STATE_CHUNKS

    def _checkpoint(self, partition: int) -> None:
        dirty = self._dirty.pop(partition, set())
        self._last_checkpoint[partition] = time.monotonic()
        if not dirty:
            return
        by_chunk: dict[int, list[str]] = {}
        for i in dirty:
            sid = str(self.detectors.ids[i])
            by_chunk.setdefault(self._chunk_of(sid), []).append(sid)
        for chunk, sids in by_chunk.items():
            key = f"{partition}/{chunk}"
            old = self.detector_state.get(key)
            blobs: dict[str, bytes] = _chunk_decoder.decode(old) if old else {}
            blobs.update(self.detectors.export_state(sids))
            self.detector_state[key] = _chunk_encoder.encode(blobs)
        # The partition's drill clock, kept apart from the chunks (which load lazily, station
        # by station) so that a worker that takes the partition over reports it at once.
        ex = self.detectors.exercise_clock_ms(np.fromiter(dirty, np.int64, len(dirty)))
        if ex is not None and ex > self._drill_clock_stored(partition):
            self.detector_state[_drill_clock_key(partition)] = ex.to_bytes(8, "little")
        self.metrics.counters["state_checkpoints"] += 1
        self.metrics.counters["state_chunks_written"] += len(by_chunk)

    def _drill_clock_stored(self, partition: int) -> int:
        raw = self.detector_state.get(_drill_clock_key(partition))
        return int.from_bytes(raw, "little") if raw else 0

    def exercise_clock_ms(self) -> int | None:
        """The newest drill reading's event time this worker knows of: in its detector state,
        seen since it started, or checkpointed for any partition of ``readings``."""
        stored = (
            self._drill_clock_stored(p)
            for p in range(self.settings.kafka.topics.readings.partitions)
        )
        ex = max(self.detectors.exercise_clock_ms() or 0, self._exercise_watermark, *stored)
        return ex or None

    def _load_station_state(self, partition: int, stations: np.ndarray[Any, Any]) -> None:
        # Once every chunk of the partition has been read there is nothing left to load:
        # skip the per-batch set work (the steady state of a busy partition).
        if self._chunks_loaded.get(partition, 0) >= STATE_CHUNKS:
            return
        new = set(np.unique(stations).tolist()) - self._loaded_stations
        if not new:
            return
        for chunk in {self._chunk_of(sid) for sid in new}:
            key = f"{partition}/{chunk}"
            if key in self._loaded_chunks:
                continue
            self._loaded_chunks.add(key)
            self._chunks_loaded[partition] = self._chunks_loaded.get(partition, 0) + 1
            raw = self.detector_state.get(key)
            if not raw:
                continue
            blobs = _chunk_decoder.decode(raw)
            try:
                self.detectors.import_state(blobs)
            except ValueError as err:
                log.error("detector state of chunk %s not restored: %s", key, err)
            self._loaded_stations |= set(blobs)
        self._loaded_stations |= new

    async def _send_detections(self, dets: list[Detection]) -> None:
        """Record detections on ``detections`` and stage them.

        ``detections`` gets one record per partition (the list of its stations' detections, in
        order, keyed by the first station). The geo join runs here too: each detection's
        zones (:meth:`Services.route`) become ``zone.commands``, one record per zone partition
        (keyed by its first zone). Joining where the detections are made, instead of in an
        agent consuming ``detections``, saves a Kafka hop on the alert path: under load every
        hop waits for a fetch, and on the local broker each one stalls with it (measured,
        README). ``detections`` remains the record of everything detected, for the sink and
        any other consumer.
        """
        if not dets:
            return
        n = self.settings.kafka.topics.detections.partitions
        by_part: dict[int, list[Detection]] = {}
        for d in dets:
            by_part.setdefault(partition_of(d.station, n), []).append(d)
        zn = self.settings.kafka.topics.zone_commands.partitions
        by_zone_part: dict[int, list[ZoneCommand]] = {}
        for det in dets:
            for zone, zdet in self.services.route(det):
                by_zone_part.setdefault(partition_of(zone, zn), []).append(
                    ZoneCommand(kind="detection", zone=zone, detection=zdet)
                )
        for p, cmds in by_zone_part.items():
            await self.zone_commands.send(
                key=cmds[0].zone.encode(), value=encode_commands(cmds), partition=p
            )
        for p, part in by_part.items():
            await self.detections.send(
                key=part[0].station.encode(), value=encode_detections(part), partition=p
            )
        self.metrics.counters["detections"] += len(dets)

    def _machine(self, partition: int) -> AlertMachine:
        m = self._machines.get(partition)
        if m is None:
            blob = self.alert_state.get(str(partition))
            policies = self.services.policies
            m = AlertMachine.from_bytes(blob, policies) if blob else AlertMachine(policies)
            self._machines[partition] = m
        return m

    async def _stage(self, stream: Any) -> None:
        async for event in stream.events():
            p = event.message.partition
            try:
                cmds = decode_commands(event.value)
            except msgspec.DecodeError as err:
                self._poison(event, err)
                continue
            m = self._machine(p)
            out: list[StageEvent] = []
            changed = False
            for cmd in cmds:
                step: list[StageEvent] = []
                if cmd.kind == "detection" and cmd.detection is not None:
                    det = cmd.detection
                    step = m.feed(det, [self.services.zone_info(cmd.zone, det.hazard)])
                elif cmd.kind == "tick":
                    step = m.advance(cmd.now_ms, exercise_now_ms=cmd.exercise_now_ms or None)
                elif cmd.kind == "action" and cmd.action is not None:
                    step = self._apply_action(m, cmd.zone, cmd.action)
                changed = changed or bool(step) or cmd.kind == "action"
                out.extend(step)
            # The machine is written before its events are sent: a crash between the two
            # replays the record against the saved machine, which emits nothing twice.
            if changed:
                self.alert_state[str(p)] = m.to_bytes()
            await self._send_alerts(out, p)

    def _apply_action(self, m: AlertMachine, zone: str, a: OperatorAction) -> list[StageEvent]:
        try:
            if a.action == "ack" and a.alert_id:
                return m.acknowledge(a.alert_id, actor=a.actor, ts_ms=a.ts_ms, reason=a.reason)
            if a.action == "clear" and a.alert_id:
                return m.clear(
                    a.alert_id, actor=a.actor, ts_ms=a.ts_ms, reason=a.reason, cancel=a.cancel
                )
            if a.action == "silence":
                return m.silence(
                    zone,
                    hazard=a.hazard,
                    duration_s=a.duration_s or 3600,
                    actor=a.actor,
                    ts_ms=a.ts_ms,
                    reason=a.reason,
                    exercise=a.exercise,
                )
            if a.action == "escalate" and a.hazard and a.level:
                return m.escalate(
                    a.hazard,
                    self.services.zone_info(zone, a.hazard),
                    Level.parse(a.level).wire,
                    actor=a.actor,
                    ts_ms=a.ts_ms,
                    reason=a.reason,
                    exercise=a.exercise,
                )
        except (OperatorError, ValueError, KeyError) as err:
            self.metrics.counters["operator_rejected"] += 1
            log.warning("operator action %s by %s rejected: %s", a.action, a.actor, err)
            return []
        self.metrics.counters["operator_rejected"] += 1
        log.warning("operator action %s by %s is incomplete", a.action, a.actor)
        return []

    async def _send_alerts(self, events: list[StageEvent], partition: int) -> None:
        """Public transitions to ``alerts`` (and the HQ machine); operators' data-quality
        alerts to ``dq.alerts`` and straight to InfluxDB — never to SMS, CAP or HQ."""
        dq: list[DataQualityAlert] = []
        for ev in events:
            raw = encode(ev)
            if isinstance(ev, DataQualityAlert):
                dq.append(ev)
                await self.dq_alerts.send(key=ev.zone.encode(), value=raw, partition=partition)
                continue
            await self.alerts.send(key=ev.zone.encode(), value=raw, partition=partition)
            await self.hq_inputs.send(key=ev.zone.encode(), value=raw, partition=0)
        if dq and self.sink is not None:
            self.sink.write_dq_alerts(dq)
        self.metrics.counters["alert_events"] += len(events) - len(dq)
        self.metrics.counters["dq_alert_events"] += len(dq)

    async def _deliver(self, stream: Any) -> None:
        """Per zone transition: InfluxDB, its CAP document (one per public transition, as CAP
        consumers expect), and on to ``alerts.notify``, where SMS are decided per person."""
        loop = asyncio.get_running_loop()
        async for raw in stream:
            ev = decode_alert(raw)
            if self.sink is not None:
                self.sink.write_alerts([ev])
            zone = (
                self.services.zone_info(ev.zone, ev.hazard)
                if ev.zone in self.services.zones
                else None
            )
            if zone is not None:
                await loop.run_in_executor(None, self.cap.publish, ev, zone)
            await self.notifier.forward(ev, raw)

    async def _headquarters(self, stream: Any) -> None:
        async for raw in stream:
            ev = decode_alert(raw)
            if self._hq is None:
                blob = self.hq_state.get("hq")
                self._hq = HQMachine().restore(blob) if blob else HQMachine()
            province = None
            if ev.zone in self.services.zones:
                province = self.services.zone_info(ev.zone, ev.hazard).province
            out: list[HQStageEvent] = self._hq.feed(ev, province)
            self.hq_state["hq"] = self._hq.to_bytes()
            for h in out:
                await self.hq_stages.send(key=h.hazard_group.encode(), value=encode(h), partition=0)
                if self.sink is not None:
                    self.sink.write_hq([h])

    # ----------------------------------------------------------------------------- timers
    async def _tick(self) -> None:
        n = self.settings.kafka.topics.zone_commands.partitions
        # The leader's drill clock: exact with one worker; with several, the newest drill
        # reading the leader saw (the machines also keep their own watermark).
        cmd = encode_command(
            ZoneCommand(kind="tick", now_ms=now_ms(), exercise_now_ms=self._exercise_watermark)
        )
        for p in range(n):
            await self.zone_commands.send(key=b"tick", value=cmd, partition=p)

    async def _deadman(self) -> None:
        """The detectors' clock-driven work: silent stations (deadman) and air-quality hours
        that no later reading closed (:meth:`DetectorSet.close_hours`).

        Live stations are judged on the wall clock, drill stations on the drill's clock (the
        newest exercise event time this worker has seen): a drill replays hours in minutes
        with timestamps behind the wall clock. Only stations of the readings partitions this
        worker owns now are judged: after a rebalance the detectors still hold the state of
        stations whose readings now go to another worker, and they are not silent there.
        """
        now, ex = now_ms(), self._exercise_watermark or None
        # Hours first: an hour closed now ended before any silence judged now was noticed
        # (its event time is the hour's end), so its decision is made on trusted data.
        dets = self.detectors.close_hours(now, exercise_now_ms=ex)
        if dets:
            n = self.settings.kafka.topics.readings.partitions
            self._mark_dirty()
        if self.settings.worker.deadman:
            dets += self.detectors.check_deadman(now, exercise_now_ms=ex)
        if dets:
            owned = self._owned_partitions(self.settings.kafka.topics.readings.name)
            n = self.settings.kafka.topics.readings.partitions
            await self._send_detections([d for d in dets if partition_of(d.station, n) in owned])

    def snapshot(self) -> dict[str, Any]:
        """``/metrics``: the worker's counters and figures, the readings the detectors set
        aside (``detector_late``, ``detector_duplicate``, ``detector_unknown_station``,
        ``detector_kind_mismatch``: counted, never silent), the InfluxDB sink's counters and
        ``exercise_clock_ms``, the newest drill reading's event time in its partitions."""
        stats = {f"detector_{k}": int(v) for k, v in self.detectors.stats.items()}
        sink = self.sink.metrics() if self.sink is not None else {}
        # the drill runner refuses a drill whose readings would be older than this
        drill = {"exercise_clock_ms": self.exercise_clock_ms()}
        sms = self.notifier.snapshot()
        return {**self.metrics.snapshot(), **stats, **sink, **drill, **sms}

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
        return sorted(out, key=lambda a: a.get("ts_ms", 0))

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
        recovered = self.app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        return {
            "status": "ok" if assigned and recovered else "starting",
            "assigned": assigned,
            "tables_recovered": recovered,
            "app_id": self.settings.worker.app_id,
        }


def build_app(settings: Settings | None = None) -> faust.App:
    """The Faust app with every agent, for ``faust -A`` style tooling and tests."""
    return Worker(settings or Settings()).app
