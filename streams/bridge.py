"""The MQTT → Kafka bridge: the front door for sensor gateways (docs/design.md §2, §9, §11.1).

Flow::

    mosquitto --QoS 1--> paho network thread --deque + call_soon_threadsafe wake-up--> asyncio
        --> parse + validate + drop duplicates (streams.validate)
        --> one columnar record per `readings` partition (streams.codec, streams.partitioning)
            + one JSON record per rejection on `readings.rejected`
        --> aiokafka producer, await every delivery --> client.ack(mid) for every message

At-least-once, nothing lost
    The bridge subscribes with QoS 1 in a persistent MQTT v5 session (fixed client id,
    ``clean_start=False``, a session expiry) and ``manual_ack=True``. A message is
    acknowledged (PUBACK) only after Kafka has accepted every record carrying its readings
    and rejections, and acknowledgements go out in the order messages arrived. Killed at any
    moment, the bridge leaves unacknowledged messages in the broker's session; they are
    redelivered on restart. The cost is possible duplicates in Kafka after a crash or a
    partial produce failure; they carry the same (station, seq), which downstream drops.

Flushes
    Messages are parsed as they arrive and collected into a flush until ``flush_readings``
    readings or ``max_inflight`` messages are waiting, or the oldest is ``linger_ms`` old
    and the previous flush is in Kafka. The next flush is collected (parsed) while the
    previous one is in Kafka, but is sent only after it, so acknowledgements stay ordered,
    a slow Kafka means bigger flushes rather than a queue, and memory stays bounded.

Backpressure
    A flush Kafka does not accept (broker down or slow: send timeouts) is re-sent, only the
    records that failed, with exponential backoff, for as long as it takes; meanwhile nothing
    is acknowledged. The bridge announces ``max_inflight`` as its MQTT v5 Receive Maximum, so
    the broker stops sending after that many unacknowledged QoS 1 messages and queues the
    rest in the session. When Kafka returns the flush goes through and the flow resumes.

Scaling out
    One bridge handles ≥ 100,000 readings/s in gateway batches but only a few thousand
    single-reading messages/s (paho handles every MQTT packet in Python). More bridges share
    the stream with an MQTT v5 shared subscription: set ``GYEONGBO_BRIDGE__SHARED_GROUP`` and
    give each a distinct ``GYEONGBO_MQTT__CLIENT_ID``; the broker hands each message to one
    of them. A gateway's messages can then reach Kafka through different bridges, so
    per-station order is guaranteed only within one bridge (downstream orders by ts, seq).

Nothing stops the front door
    Any payload becomes readings or rejections with a reason (``streams.validate``), and
    every rejection becomes a record (:func:`rejection_bytes`: UTF-8 JSON, ASCII escapes if a
    text cannot be encoded, else a minimal record with the payload in base64). A rejection
    Kafka refuses for good is logged and counted (``rejections_unwritten``), not retried
    ahead of every later message: one bad payload never holds the MQTT session.

Duplicates
    A reading with a ``seq`` whose (station, seq) was seen in the last ``dedup_window``
    readings is dropped and counted (``duplicates``). Marking at parse time is safe: a flush
    is retried until Kafka has it and acks are ordered, so a duplicate is never acknowledged
    before its original is in Kafka. The window is in memory; after a restart, redelivered
    messages may reach Kafka twice (same seq).

The ``readings`` record: value = :func:`streams.codec.encode_batch` of the readings for one
partition (at most ``max_record_readings`` each, in arrival order), partition =
:func:`streams.partitioning.partition_of` (station id), key = the partition number as ASCII
decimal (``b"3"``): every reading in the record lives in that partition, and a key that names
one station would be misleading.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped,unused-ignore]
from aiokafka.errors import KafkaError  # type: ignore[import-untyped,unused-ignore]
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from gyeongbo.kafka_security import aiokafka_security
from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import Settings
from gyeongbo.stack.credentials import mqtt_password
from streams.bridge_config import BridgeSettings
from streams.bridge_metrics import InfluxReporter, Metrics, serve_metrics
from streams.codec import encode_batch
from streams.partitioning import Partitioner
from streams.validate import (
    MAX_STORED_RAW,
    Parsed,
    Reading,
    Reason,
    Rejection,
    Validator,
    readings_batch,
    rejection_record,
)

__all__ = ["Bridge", "SeenWindow", "rejection_bytes", "run_in_thread"]

log = logging.getLogger("gyeongbo.bridge")


class SeenWindow:
    """The last ``capacity`` (station, seq) pairs, for dropping gateway retries."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._set: set[tuple[str, int]] = set()
        self._order: deque[tuple[str, int]] = deque()

    def __len__(self) -> int:
        return len(self._set)

    def seen(self, key: tuple[str, int]) -> bool:
        """True if ``key`` was seen; otherwise remember it and return False."""
        if key in self._set:
            return True
        if self.capacity <= 0:
            return False
        self._set.add(key)
        self._order.append(key)
        if len(self._order) > self.capacity:
            self._set.discard(self._order.popleft())
        return False


@dataclass(slots=True)
class _Msg:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_ms: int
    #: The MQTT connection it arrived on (see ``Bridge._epoch``).
    epoch: int = 0


class _Inbox:
    """Hand-off from the paho thread to the event loop.

    ``deque.append``/``popleft`` are thread-safe; the loop is woken (one
    ``call_soon_threadsafe``) only when no wake-up is already pending, not once per message,
    so a burst of small messages costs one self-pipe write instead of thousands.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._items: deque[_Msg] = deque()
        self._event = asyncio.Event()
        self._wake_pending = False

    def put_threadsafe(self, m: _Msg) -> None:  # paho thread
        self._items.append(m)
        if not self._wake_pending:
            self._wake_pending = True
            with contextlib.suppress(RuntimeError):  # loop closed: shutting down
                self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        self._event.set()

    def __len__(self) -> int:
        return len(self._items)

    def get_nowait(self) -> _Msg | None:
        try:
            return self._items.popleft()
        except IndexError:
            return None

    async def wait(self, timeout: float | None, other: asyncio.Future[Any] | None = None) -> None:
        """Until a message may be there, ``timeout`` passed or ``other`` finished."""
        self._event.clear()
        if self._items:
            return
        waiter = asyncio.ensure_future(self._event.wait())
        waits: set[asyncio.Future[Any]] = {waiter}
        if other is not None:
            waits.add(other)
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()


@dataclass
class _Flush:
    msgs: list[_Msg] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)
    received: list[int] = field(default_factory=list)
    rejected: list[tuple[Rejection, _Msg]] = field(default_factory=list)
    duplicates: int = 0
    events: int = 0
    started: float = 0.0


@dataclass(slots=True)
class _Record:
    topic: str
    value: bytes
    key: bytes | None
    partition: int | None
    readings: int


class Bridge:
    """One bridge process's worth of state; :meth:`run` until :meth:`request_stop`."""

    def __init__(
        self,
        settings: Settings,
        bridge: BridgeSettings | None = None,
        registry: Registry | None = None,
    ) -> None:
        self.settings = settings
        self.cfg = bridge or BridgeSettings()
        self.registry = registry or load_registry(settings.paths.stations)
        self.validator = Validator(
            self.registry, self.cfg.limits(), topic_root=settings.mqtt.topic_root
        )
        # Registry positions ride in the records (codec v2): a worker with the same registry
        # skips looking the station ids up.
        self._positions = self.registry.index_of()
        self._digest = self.registry.ids_digest()
        topics = settings.kafka.topics
        self.readings_topic = topics.readings.name
        self.rejected_topic = topics.rejected.name
        self.partitioner = Partitioner(topics.readings.partitions)
        root = f"{settings.mqtt.topic_root.rstrip('/')}/#"
        #: ``{root}/#``, or ``$share/{group}/{root}/#`` when several bridges share the load.
        self.subscription = (
            f"$share/{self.cfg.shared_group}/{root}" if self.cfg.shared_group else root
        )
        self.seen = SeenWindow(self.cfg.dedup_window)
        self.metrics = Metrics()
        self.ready = threading.Event()
        self.metrics_port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: _Inbox | None = None
        self._stop: asyncio.Event | None = None
        self._client: mqtt.Client | None = None
        self._producer: Any = None
        self._subscribed = threading.Event()
        #: Counts MQTT connections. After a reconnect the broker re-sends every unacknowledged
        #: message (same packet id); an ack for a message of an earlier connection is skipped,
        #: since its packet id may already name a different, newer message.
        self._epoch = 0

    # -- control --------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask :meth:`run` to finish (thread-safe; callable from a signal handler)."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already finished
                loop.call_soon_threadsafe(stop.set)

    # -- MQTT side (paho network thread) ------------------------------------------------
    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error("MQTT connect refused: %s", reason_code)
            return
        self._epoch += 1
        log.info("MQTT connected (session present: %s)", flags.session_present)
        self.metrics.mqtt_connected = True
        client.subscribe(self.subscription, options=SubscribeOptions(qos=1))

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.error("MQTT subscription refused: %s", reason_codes)
            return
        self._subscribed.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self.metrics.mqtt_connected = False
        self.metrics.mqtt_disconnects += 1
        log.warning("MQTT disconnected: %s", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        inbox = self._inbox
        if inbox is None:
            return
        if msg.qos == 0 and len(inbox) >= self.cfg.qos0_backlog:
            # QoS 0 is "at most once" by the publisher's choice and is not held back by the
            # Receive Maximum; shed it rather than grow without bound while Kafka is slow.
            self.metrics.qos0_dropped += 1
            return
        inbox.put_threadsafe(
            _Msg(
                msg.mid,
                msg.qos,
                msg.topic,
                bytes(msg.payload),
                time.time_ns() // 1_000_000,
                self._epoch,
            )
        )

    def _mqtt_client(self) -> mqtt.Client:
        s = self.settings.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if s.username:
            # a configured password, else GYEONGBO_MQTT_PASSWORD__<USER> or the local
            # stack's development password
            password = (
                s.password.get_secret_value()
                if s.password
                else mqtt_password(self.settings, s.username)
            )
            client.username_pw_set(s.username, password)
        if s.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        return client

    # -- Kafka side -----------------------------------------------------------------------
    async def _start_producer(self) -> Any:
        k, c = self.settings.kafka, self.cfg
        delay = c.retry_backoff_s
        assert self._stop is not None
        while not self._stop.is_set():
            producer = AIOKafkaProducer(
                bootstrap_servers=k.bootstrap,
                client_id=f"{k.client_id}-bridge",
                acks="all",
                linger_ms=c.producer_linger_ms,
                max_batch_size=c.producer_max_batch_bytes,
                max_request_size=c.producer_max_request_bytes,
                request_timeout_ms=c.request_timeout_ms,
                compression_type=c.compression,
                **aiokafka_security(k),
            )
            try:
                await producer.start()
                parts = await producer.partitions_for(self.readings_topic)
            except (KafkaError, OSError) as err:
                log.warning("Kafka not reachable at %s (%s); retrying", k.bootstrap, err)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            expected = self.settings.kafka.topics.readings.partitions
            if len(parts or ()) != expected:
                await producer.stop()
                raise RuntimeError(
                    f"topic {self.readings_topic!r} has {len(parts or ())} partitions but the "
                    f"settings say {expected}; stations would land in the wrong partitions. "
                    "Create the topics with `gyeongbo topics create` (or fix "
                    "GYEONGBO_KAFKA__TOPICS__…)"
                )
            self.metrics.kafka_ok = True
            return producer
        return None

    async def _sleep(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # -- flushes --------------------------------------------------------------------------
    def _take(self, flush: _Flush, m: _Msg) -> None:
        """Parse one message into the flush (validation, duplicates)."""
        self.metrics.messages_received += 1
        self.metrics.inflight_messages += 1
        flush.msgs.append(m)
        try:
            parsed = self.validator.parse(m.topic, m.payload, received_ms=m.received_ms)
        except Exception as err:  # a bug must not stop the front door; keep the payload
            log.exception("parsing a message on %s failed", m.topic)
            parsed = Parsed(rejections=[Rejection(Reason.INTERNAL_ERROR, f"bridge error: {err!r}")])
        for rej in parsed.rejections:
            flush.rejected.append((rej, m))
        flush.events += parsed.events
        seen = self.seen
        n_in = len(parsed.readings) + len(parsed.rejections)
        self.metrics.readings_received += n_in
        for r in parsed.readings:
            if r.seq >= 0 and seen.seen((r.station, r.seq)):
                flush.duplicates += 1
                continue
            flush.readings.append(r)
            flush.received.append(m.received_ms)

    async def _collect(self, inflight: asyncio.Task[bool] | None) -> _Flush | None:
        """Wait for the first message, then gather until a flush limit is reached, or the
        linger time has passed and the previous flush (``inflight``) is out of the way."""
        assert self._inbox is not None and self._stop is not None
        inbox, c = self._inbox, self.cfg
        flush = _Flush()
        while not flush.msgs:
            if self._stop.is_set():
                return None
            m = inbox.get_nowait()
            if m is None:
                await inbox.wait(0.5)
                continue
            flush.started = time.monotonic()
            self._take(flush, m)
        deadline = flush.started + c.linger_ms / 1000
        while (
            len(flush.readings) + len(flush.rejected) < c.flush_readings
            and len(flush.msgs) < c.max_inflight
        ):
            m = inbox.get_nowait()
            if m is None:
                remaining = deadline - time.monotonic()
                busy = inflight is not None and not inflight.done()
                if remaining <= 0 and not busy:
                    break
                if remaining > 0:
                    await inbox.wait(remaining)
                else:
                    await inbox.wait(None, inflight)
                continue
            self._take(flush, m)
        return flush

    def _records(self, flush: _Flush) -> list[_Record]:
        out: list[_Record] = []
        rs = flush.readings
        if rs:
            n = len(rs)
            parts = np.fromiter((self.partitioner(r.station) for r in rs), np.int32, n)
            # Catalogue events (seismic ``event`` objects) ride in their own float64 columns.
            batch = readings_batch(rs, flush.received, self._positions, self._digest)
            order = np.argsort(parts, kind="stable")
            sorted_parts = parts[order]
            bounds = np.flatnonzero(np.diff(sorted_parts)) + 1
            step = self.cfg.max_record_readings
            for group in np.split(order, bounds):
                p = int(parts[group[0]])
                for start in range(0, len(group), step):
                    sub = batch.take(group[start : start + step])
                    out.append(
                        _Record(
                            self.readings_topic, encode_batch(sub), str(p).encode(), p, len(sub)
                        )
                    )
            lags = batch.received_ms - batch.ts_ms  # type: ignore[operator]
            self.metrics.event_lag_ms = float(np.median(lags))
        for rej, m in flush.rejected:
            key, value = rejection_bytes(rej, m.topic, m.payload, m.received_ms)
            out.append(_Record(self.rejected_topic, value, key, None, 0))
        return out

    async def _deliver(self, flush: _Flush) -> bool:
        """Send a flush until Kafka has all of it, then ack its messages. False = stopped."""
        assert self._stop is not None and self._client is not None
        pending = self._records(flush)
        n_records = sum(1 for r in pending if r.partition is not None)
        delay = self.cfg.retry_backoff_s
        producer = self._producer
        while pending:
            futs: list[asyncio.Future[Any]] = []
            for rec in pending:
                try:
                    fut = await producer.send(
                        rec.topic, rec.value, key=rec.key, partition=rec.partition
                    )
                except (KafkaError, OSError) as err:
                    fut = asyncio.get_running_loop().create_future()
                    fut.set_exception(err)
                futs.append(fut)
            results = await asyncio.gather(*futs, return_exceptions=True)
            failed = []
            for rec, res in zip(pending, results, strict=True):
                if not isinstance(res, BaseException):
                    continue
                if rec.partition is None and not getattr(res, "retriable", True):
                    # A rejection Kafka refuses for good (too large, invalid): retried, it
                    # would hold every message behind it. Logged with what identifies it.
                    self.metrics.rejections_unwritten += 1
                    log.error(
                        "readings.rejected refused a rejection record for good (%r): %s",
                        res,
                        rec.value[:512].decode("utf-8", "replace"),
                    )
                    continue
                failed.append(rec)
            if not failed:
                break
            errors = {type(res).__name__ for res in results if isinstance(res, BaseException)}
            self.metrics.kafka_send_failures += len(failed)
            self.metrics.kafka_ok = False
            log.warning(
                "Kafka did not accept %d of %d records (%s); holding %d MQTT messages "
                "unacknowledged, retrying in %.1f s",
                len(failed),
                len(pending),
                ", ".join(sorted(errors)),
                len(flush.msgs),
                delay,
            )
            pending = failed
            await self._sleep(delay)
            if self._stop.is_set():
                return False
            delay = min(delay * 2, 10.0)
        self.metrics.kafka_ok = True
        client, epoch = self._client, self._epoch
        for m in flush.msgs:
            if m.qos > 0 and m.epoch == epoch:
                client.ack(m.mid, m.qos)
        now_ms = time.time_ns() // 1_000_000
        mt = self.metrics
        mt.messages_acked += len(flush.msgs)
        mt.inflight_messages -= len(flush.msgs)
        mt.readings_produced += len(flush.readings)
        mt.records_produced += n_records
        mt.duplicates += flush.duplicates
        mt.seismic_events += flush.events
        for rej, _ in flush.rejected:
            mt.rejected[rej.reason.value] += 1
        lag = float(now_ms - min(m.received_ms for m in flush.msgs))
        mt.ack_lag_ms = lag
        mt.ack_lag_ms_max = max(mt.ack_lag_ms_max, lag)
        return True

    async def _log_metrics(self) -> None:
        assert self._stop is not None
        interval = self.cfg.log_interval_s
        if interval <= 0:
            return
        while not self._stop.is_set():
            await self._sleep(interval)
            log.info("metrics %s", json.dumps(self.metrics.snapshot()))
            self.metrics.ack_lag_ms_max = 0.0

    # -- main -----------------------------------------------------------------------------
    async def run(self) -> None:
        """Connect to Kafka, then MQTT, and move messages until :meth:`request_stop`."""
        self._loop = asyncio.get_running_loop()
        self._inbox = _Inbox(self._loop)
        self._stop = asyncio.Event()
        server = None
        if self.cfg.metrics_port:
            server = await serve_metrics(self.metrics, self.cfg.metrics_host, self.cfg.metrics_port)
            self.metrics_port = self.cfg.metrics_port
        logger = asyncio.create_task(self._log_metrics())
        reporter = InfluxReporter.start(self.settings, self.metrics, self.cfg.influx_interval_s)
        client = None
        try:
            self._producer = await self._start_producer()
            if self._producer is None:
                return
            client = self._client = self._mqtt_client()
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = self.cfg.session_expiry_s
            props.ReceiveMaximum = self.cfg.max_inflight
            s = self.settings.mqtt
            client.connect_async(
                s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props
            )
            client.loop_start()
            while not self._subscribed.is_set() and not self._stop.is_set():
                await asyncio.sleep(0.05)
            if self._stop.is_set():
                return
            self.metrics.ready = True
            self.ready.set()
            log.info(
                "bridge ready: %s → %s (%d partitions) / %s",
                self.subscription,
                self.readings_topic,
                self.partitioner.num_partitions,
                self.rejected_topic,
            )
            await self._pump()
        finally:
            self.metrics.ready = False
            if client is not None:
                client.disconnect()
                client.loop_stop()
            if self._producer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._producer.stop(), 10)
            logger.cancel()
            if reporter is not None:
                reporter.close()
            if server is not None:
                server.close()
            log.info("bridge stopped: %s", json.dumps(self.metrics.snapshot()))

    async def _pump(self) -> None:
        assert self._stop is not None
        inflight: asyncio.Task[bool] | None = None
        stop_wait = asyncio.create_task(self._stop.wait())
        try:
            while not self._stop.is_set():
                flush = await self._collect(inflight)
                if inflight is not None:
                    # Send in order: the previous flush must be in Kafka (and acked) first.
                    await asyncio.wait({inflight, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                    if not inflight.done():
                        break
                    if not inflight.result():
                        break
                    inflight = None
                if flush is None:
                    break
                inflight = asyncio.create_task(self._deliver(flush))
            if inflight is not None and not self._stop.is_set():
                await inflight
            elif inflight is not None:
                # Stopping: give the flush in Kafka a moment to finish and be acked.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(inflight), 5.0)
        finally:
            stop_wait.cancel()
            if inflight is not None and not inflight.done():
                inflight.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await inflight


def rejection_bytes(
    rej: Rejection, topic: str, payload: bytes, received_ms: int
) -> tuple[bytes, bytes]:
    """The ``readings.rejected`` record (key, value) of one rejection, whatever the payload.

    The document is UTF-8 JSON (:func:`streams.validate.rejection_record`). Should a text
    in it not be encodable (a lone surrogate, say), it is written with ASCII escapes, which
    keep it exact; should building it fail at all, a minimal record still says why and
    carries the raw payload in base64: a rejection that cannot be written would otherwise
    never be acknowledged, and hold the MQTT session.
    """
    key_text = rej.station or topic
    key = key_text.encode("utf-8", "backslashreplace")
    try:
        doc = rejection_record(rej, topic=topic, payload=payload, received_ms=received_ms)
        try:
            return key, json.dumps(doc, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return key, json.dumps(doc, ensure_ascii=True).encode("ascii")
    except Exception as err:  # a bug must not stop the front door; keep the payload
        log.exception("building the rejection record of a payload on %r failed", topic)
        doc = {
            "reason": rej.reason.value,
            "message": f"{rej.message} (record rebuilt after {err!r})",
            "topic": topic,
            "received_ms": received_ms,
            "scope": "payload",
            "payload_bytes": len(payload),
            "payload": base64.b64encode(payload[:MAX_STORED_RAW]).decode("ascii"),
            "payload_encoding": "base64",
        }
        return key, json.dumps(doc, ensure_ascii=True).encode("ascii")


def run_in_thread(bridge: Bridge, timeout_s: float = 30.0) -> threading.Thread:
    """Run ``bridge`` in a daemon thread with its own event loop; wait until it is ready."""
    errors: list[BaseException] = []

    def main() -> None:
        try:
            asyncio.run(bridge.run())
        except BaseException as err:  # surfaced to the caller below
            errors.append(err)
            log.exception("bridge thread failed")

    t = threading.Thread(target=main, name="gyeongbo-bridge", daemon=True)
    t.start()
    deadline = time.monotonic() + timeout_s
    while not bridge.ready.wait(0.05):
        if errors:
            raise RuntimeError("bridge failed to start") from errors[0]
        if time.monotonic() > deadline:
            bridge.request_stop()
            raise TimeoutError(f"bridge not ready after {timeout_s:.0f} s")
    return t
