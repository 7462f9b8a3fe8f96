"""Recipient-centred SMS in the worker: zone transitions → events per hazard → people → fan-out.

Topology (docs/design.md §2, §5)::

    alerts (Z, key = zone)
      └─ agent deliver ── CAP document per transition, InfluxDB, and every public
                          transition again on ──→ alerts.notify (N, key = namespace|hazard)
    alerts.notify
      └─ agent notify ── Board per namespace × hazard (table ``notify-state``)
                          → the step's audience from the subscriber store
                          → alerting.delivery.plan_notices → sent log (planned rows)
                          → FanOut (concurrent, paced, priority order) → Twilio

Zone transitions are keyed by zone, so one hazard's zones are spread over partitions and
workers; re-keying them by namespace|hazard brings every zone of a hazard to one agent,
which alone can tell that a person concerned by sixteen districts has already been told.

Per record of ``alerts.notify``, in this order:

1. apply the transition to the board (a replay — the same ``event_id`` — changes nothing);
2. plan the step's messages and insert them into the sent log (one batch; existing keys are
   left alone): from here they are sent even if the worker dies, by whichever worker owns
   the partition next (:meth:`Notifier.on_assigned` resumes ``planned`` rows);
3. write the board to the changelogged ``notify-state`` table;
4. hand the new rows to the fan-out.

A crash after 2 and before 3 replays the record against the old board: the same notices with
the same keys, which the sent log already holds. A crash after 3 replays it against the new
board: a replay, ignored. Either way no one gets a message twice, and none is lost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
import msgspec
from faust.types import TP

from alerting.delivery import Board, Step, wanted
from alerting.model import Recipient
from gyeongbo.events import AlertEvent, decode_alert, encode
from gyeongbo.settings import Settings
from gyeongbo.vocab import Hazard
from streams import core
from streams.core import notify_key
from streams.fanout import FanOut
from streams.influx_lines import delivery_lines
from streams.influx_sink import InfluxSink
from streams.partitioning import partition_of
from streams.services import Services
from streams.sms_status import DeliveryStatus, make_status_handler
from streams.store import PlannedDelivery, SubscriberStore, now_ms
from streams.store.indexing import open_configured, prepare
from streams.twilio_client import sender_from_settings

__all__ = ["Notifier", "notify_key"]

log = logging.getLogger("gyeongbo.notify")

#: Every notify key there can be (to map partitions back to keys on a rebalance).
ALL_KEYS = tuple(
    f"{ns}|{h.value}" for ns in ("real", "exercise") for h in Hazard if h != Hazard.SENSOR_HEALTH
)


class Notifier:
    """The delivery side of one worker: the notify agent, its table, the store, the fan-out."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        services: Services,
        *,
        sink: InfluxSink | None,
        counters: Any,
    ) -> None:
        self.settings, self.services, self.sink, self.counters = settings, services, sink, counters
        topic = settings.kafka.topics.notify
        self.partitions = topic.partitions
        self.topic = app.topic(
            topic.name, partitions=topic.partitions, key_serializer="raw", value_serializer="raw"
        )
        self.table = app.Table(
            "notify-state", partitions=topic.partitions, key_type=str, value_type=bytes
        )
        self.store: SubscriberStore = open_configured(settings)
        info = prepare(self.store, services.zones, settings.store.seed_recipients)
        log.info(
            "subscriber store %s: %d subscribers (%s)", self.store.dialect, self.store.count(), info
        )
        self.fanout = FanOut(
            self.store,
            lambda: sender_from_settings(settings.twilio),
            settings.delivery,
            drill_prefix=services.templates.drill_prefix,
        )
        self._boards: dict[str, Board] = {}
        self._reported: dict[str, tuple[int, ...]] = {}

    def wire(self, app: faust.App) -> list[tuple[str, str, Any]]:
        """Register the agent and tasks; the HTTP routes to mount."""
        app.agent(self.topic, name="notify")(self._agent)
        app.task(self._start)
        app.on_before_shutdown.connect(self._shutdown)  # type: ignore[arg-type]
        auth = self.settings.twilio.auth_token
        return [
            (
                "POST",
                "/twilio/status",
                make_status_handler(
                    self._status,
                    auth_token=auth.get_secret_value() if auth else None,
                    public_url=self.settings.twilio.status_callback_url,
                ),
            )
        ]

    async def _start(self) -> None:
        self.fanout.start()

    async def _shutdown(self, sender: Any = None, **kwargs: Any) -> None:
        await self.fanout.stop(timeout_s=5.0)

    def _status(self, status: DeliveryStatus, at_ms: int) -> None:
        self.fanout.record_status(status.sid, status.status, status.error_code, at_ms)

    # ----------------------------------------------------------------------- forwarding
    async def forward(self, event: AlertEvent, raw: bytes | None = None) -> None:
        """Send a public zone transition on to its namespace|hazard's notify partition."""
        if not wanted(event):
            return
        key = notify_key(event)
        await self.topic.send(
            key=key.encode(),
            value=raw if raw is not None else encode(event),
            partition=partition_of(key, self.partitions),
        )

    # ----------------------------------------------------------------------- the agent
    def _board(self, key: str, event: AlertEvent) -> Board:
        b = self._boards.get(key)
        if b is None:
            blob = self.table.get(key)
            b = (
                Board.from_bytes(blob)
                if blob
                else Board(hazard=event.hazard, exercise=event.exercise)
            )
            self._boards[key] = b
        return b

    async def _agent(self, stream: Any) -> None:
        loop = asyncio.get_running_loop()
        hold_ms = int(self.settings.delivery.group_hold_s * 1000)
        async for event in stream.events():
            try:
                ev = decode_alert(event.value)
            except (msgspec.DecodeError, ValueError) as err:
                self.counters["poison_records"] += 1
                log.error("skipping undecodable notify record: %s", err)
                continue
            key = notify_key(ev)
            board = self._board(key, ev)
            step = core.notify_step(board, ev, hold_ms=hold_ms)
            if step is None:
                continue
            rows: list[PlannedDelivery] = []
            people: dict[str, Recipient] = {}
            t0 = time.monotonic()
            if step.event_id is not None:
                rows, people = await loop.run_in_executor(None, self._plan, board, step, key)
            self.table[key] = board.to_bytes()
            if rows:
                self.fanout.submit(rows, people)
                self.counters["sms_planned"] += len(rows)
                log.info(
                    "%s: %s %s → %d message(s) planned in %.0f ms",
                    step.event_id,
                    step.zone,
                    ev.level,
                    len(rows),
                    (time.monotonic() - t0) * 1000,
                )

    def _plan(
        self, board: Board, step: Step, key: str
    ) -> tuple[list[PlannedDelivery], dict[str, Recipient]]:
        """Who the step concerns, what changes for each, into the sent log (a thread)."""
        return core.plan_step(board, step, key, self.store, self.services, now_ms=now_ms())

    # ----------------------------------------------------------------------- rebalances
    def _keys_of(self, partitions: set[int]) -> list[str]:
        return [k for k in ALL_KEYS if partition_of(k, self.partitions) in partitions]

    async def on_assigned(self, assigned: set[TP]) -> None:
        """Take over the notify partitions: forget cached boards, resume planned rows."""
        mine = {tp.partition for tp in assigned if tp.topic == self.topic.get_topic_name()}
        self._boards.clear()
        if not mine:
            return
        keys = self._keys_of(mine)
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, self.store.pending, keys)
        if not rows:
            return
        people = await loop.run_in_executor(
            None, self.store.recipients, [r.subscriber_id for r in rows]
        )
        n = self.fanout.submit(rows, people)
        self.counters["sms_resumed"] += n
        log.warning("resumed %d planned message(s) of %s after a restart or rebalance", n, keys)

    async def on_revoked(self, revoked: set[TP]) -> None:
        gone = {tp.partition for tp in revoked if tp.topic == self.topic.get_topic_name()}
        self._boards.clear()
        if gone:
            self.fanout.drop(self._keys_of(gone))

    # ----------------------------------------------------------------------- operators
    def snapshot(self) -> dict[str, Any]:
        return self.fanout.snapshot()

    def summaries(self, *, limit: int = 50, event_id: str | None = None) -> list[dict[str, Any]]:
        sums = self.store.summaries(limit=limit, event_id=event_id)
        return [msgspec.to_builtins(s) for s in sums]

    def deliveries(self, event_id: str, *, limit: int = 1000) -> list[dict[str, Any]]:
        return [msgspec.to_builtins(d) for d in self.store.deliveries(event_id, limit=limit)]

    async def report(self) -> None:
        """An InfluxDB ``delivery`` point per event whose counts moved since the last one."""
        if self.sink is None:
            return
        loop = asyncio.get_running_loop()
        sums = await loop.run_in_executor(None, lambda: self.store.summaries(limit=20))
        changed = []
        for s in sums:
            sig = (s.planned, s.submitted, s.delivered, s.undelivered, s.failed, s.opted_out)
            if self._reported.get(s.event_id) != sig:
                self._reported[s.event_id] = sig
                changed.append(s)
        if changed:
            self.sink.write_lines(delivery_lines(changed, now_ms()))
