"""The SMS fan-out: planned messages submitted concurrently, in priority order, paced by the
provider's answers, outcomes written to the sent log in batches (docs/design.md §5).

The notify agent plans each step's messages into the store (the *intent*, one batch insert)
and hands them to :class:`FanOut`. From there:

* **Order**: a heap by the row's ``priority`` (higher class first; for earthquakes the
  nearest first; all-clears last), across every event this worker is sending.
* **Concurrency**: at most :class:`~alerting.sms.AdaptiveLimit` ``.limit`` requests in flight
  (``delivery.max_in_flight``, default 100). A 429 / 20429 halves it for the whole fan-out
  and pauses new requests for the backoff; every success grows it back by one per round.
* **Answers** (:func:`alerting.sms.classify`): a 429 puts the message back behind the
  fan-out's pause (it was refused, not tried: no attempt is counted); 5xx / connection errors
  are retried with doubling backoff (``delivery.backoff_s`` … ``backoff_max_s``) up to
  ``delivery.max_attempts``, then recorded ``failed``; 21610 records ``opted_out`` and marks
  the subscriber opted out in the store (never retried); 21211, 21614 and other 4xx are
  recorded ``permanent``; 401 / 20003 stops the fan-out (bad credentials) and leaves the
  unsent rows ``planned`` for a restart with good ones.
* **Exactly once**: every attempt of a row carries the same idempotency token (a hash of
  its key). A worker killed mid-fan-out leaves rows ``planned`` (never answered, or answered
  but not yet written): the restarted worker resumes them (:meth:`Worker._resume`) with the
  same tokens, and a provider that honours them (the local fake does) answers the original
  message — no second SMS. Outcomes are written every ``delivery.flush_s`` or
  ``delivery.batch_rows`` rows, whichever comes first: one statement per batch.
* **Drill isolation**: each request is checked again against the subscriber's drill flag
  and the "[훈련]" prefix just before it is made (:func:`alerting.sms.check_drill`).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from alerting.model import Recipient, mask_phone
from alerting.sms import AdaptiveLimit, DrillLeakError, SmsError, backoff_s, check_drill
from gyeongbo.settings import DeliverySettings
from streams.store import Outcome, PlannedDelivery, SubscriberStore, now_ms
from streams.twilio_client import SmsSender

__all__ = ["FanOut"]

#: Rate-limit answers one message may get before it is recorded failed (an account that
#: refuses everything for minutes is an outage, to be seen, not retried forever).
_MAX_THROTTLED = 200

log = logging.getLogger("gyeongbo.fanout")


@dataclass(slots=True)
class _Item:
    """A queued message. The heaps hold ``(priority, order, item)`` tuples, compared in C
    on the event loop (a generated dataclass ``__lt__`` took ~3x as long for 10⁵ messages)."""

    priority: float
    order: int
    row: PlannedDelivery
    recipient: Recipient
    attempts: int = 0
    #: Rate-limit answers so far (throttling, not failures: they do not count as attempts).
    throttled: int = 0


class FanOut:
    """Submits planned messages (see the module docstring). One per worker process."""

    def __init__(
        self,
        store: SubscriberStore,
        sender: SmsSender | Callable[[], SmsSender],
        settings: DeliverySettings,
        *,
        drill_prefix: str = "[훈련]",
    ) -> None:
        """``sender`` may be a factory: the twilio client's HTTP session must be made on the
        running event loop (:meth:`start`)."""
        self.store, self.settings = store, settings
        self._sender_factory = sender if callable(sender) else None
        self._sender: SmsSender | None = None if callable(sender) else sender
        self.drill_prefix = drill_prefix
        self.limit = AdaptiveLimit(
            settings.max_in_flight,
            minimum=min(settings.min_in_flight, settings.max_in_flight),
            pause_s=settings.backoff_s,
            max_pause_s=settings.backoff_max_s,
        )
        self.counters: Counter[str] = Counter()
        self.latencies_ms: deque[float] = deque(maxlen=100_000)
        self.max_in_flight_seen = 0
        self._heap: list[tuple[float, int, _Item]] = []
        self._delayed: list[tuple[float, int, _Item]] = []
        self._keys: set[str] = set()  # queued, delayed or in flight
        self._unflushed: set[str] = set()  # answered, outcome not written yet
        self._in_flight = 0
        self._order = itertools.count()
        self._wake = asyncio.Event()
        self._outcomes: list[Outcome] = []
        self._opt_outs: list[tuple[str, str]] = []
        self._statuses: list[tuple[str, str, int | None, int]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._dropped: set[str] = set()
        self.fatal: SmsError | None = None

    # ------------------------------------------------------------------ API
    @property
    def sender(self) -> SmsSender:
        if self._sender is None:
            assert self._sender_factory is not None
            self._sender = self._sender_factory()
        return self._sender

    def start(self) -> None:
        self.sender  # noqa: B018 - made now, on the running loop
        if self._runner is None:
            self._runner = asyncio.ensure_future(self._run())
            self._flusher = asyncio.ensure_future(self._flush_loop())

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop taking new rows, let those in flight answer (up to ``timeout_s``), flush."""
        for t in (self._runner, self._flusher):
            if t is not None:
                t.cancel()
        self._runner = self._flusher = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        await self.flush()
        if self._sender is not None:
            await self._sender.close()

    def submit(self, rows: Iterable[PlannedDelivery], recipients: Mapping[str, Recipient]) -> int:
        """Queue planned rows (each key once). Rows whose subscriber is missing from
        ``recipients`` (deleted, or opted out since planning) are recorded ``opted_out``."""
        n = 0
        for row in rows:
            if row.key in self._keys or row.key in self._unflushed:
                continue  # already here, or answered and about to be written
            r = recipients.get(row.subscriber_id)
            if r is None:
                self._record(row, "opted_out", row.attempts, error="opted out before sending")
                continue
            self._keys.add(row.key)
            self._dropped.discard(row.notify_key)
            item = _Item(row.priority, next(self._order), row, r, row.attempts)
            heapq.heappush(self._heap, (item.priority, item.order, item))
            n += 1
        self.counters["queued"] += n
        self._wake.set()
        return n

    def drop(self, notify_keys: Iterable[str]) -> int:
        """Forget queued rows of these notify keys (their partition moved to another worker,
        which resumes them from the store). Requests in flight finish."""
        gone = set(notify_keys)
        before = len(self._heap) + len(self._delayed)
        keep = [h for h in self._heap if h[2].row.notify_key not in gone]
        self._keys -= {h[2].row.key for h in self._heap if h[2].row.notify_key in gone}
        self._heap = keep
        heapq.heapify(self._heap)
        self._keys -= {d[2].row.key for d in self._delayed if d[2].row.notify_key in gone}
        self._delayed = [d for d in self._delayed if d[2].row.notify_key not in gone]
        heapq.heapify(self._delayed)
        return before - len(self._heap) - len(self._delayed)

    def record_status(self, sid: str, status: str, error_code: int | None, at_ms: int) -> None:
        """A delivery-status callback, written with the next batch."""
        self._statuses.append((sid, status, error_code, at_ms))
        self.counters[f"status_{status}"] += 1

    @property
    def backlog(self) -> int:
        return len(self._heap) + len(self._delayed) + self._in_flight

    def snapshot(self) -> dict[str, Any]:
        lat = np.array(self.latencies_ms) if self.latencies_ms else None
        return {
            **{f"sms_{k}": int(v) for k, v in sorted(self.counters.items())},
            "sms_backlog": self.backlog,
            "sms_in_flight": self._in_flight,
            "sms_in_flight_max": self.max_in_flight_seen,
            "sms_limit": self.limit.limit,
            "sms_rate_limit_cuts": self.limit.cuts,
            "sms_latency_ms_p50": None if lat is None else float(np.percentile(lat, 50)),
            "sms_latency_ms_p99": None if lat is None else float(np.percentile(lat, 99)),
            "sms_fatal": str(self.fatal) if self.fatal else None,
        }

    async def idle(self, timeout_s: float) -> bool:
        """Wait until nothing is queued or in flight and every outcome is written."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.backlog and not self._outcomes:
                return True
            await asyncio.sleep(0.05)
        return False

    # ------------------------------------------------------------------ the loop
    async def _run(self) -> None:
        while True:
            now = time.monotonic()
            while self._delayed and self._delayed[0][0] <= now:
                _, _, item = heapq.heappop(self._delayed)
                heapq.heappush(self._heap, (item.priority, item.order, item))
            if self.fatal is not None:
                await asyncio.sleep(3600)
                continue
            pause = self.limit.paused_for()
            if pause > 0:
                await asyncio.sleep(pause)
                continue
            if self._heap and self._in_flight < self.limit.limit:
                _, _, item = heapq.heappop(self._heap)
                self._in_flight += 1
                self.max_in_flight_seen = max(self.max_in_flight_seen, self._in_flight)
                t = asyncio.ensure_future(self._send(item))
                self._tasks.add(t)
                t.add_done_callback(self._tasks.discard)
                continue
            self._wake.clear()
            wait = self._delayed[0][0] - now if self._delayed else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)

    async def _send(self, item: _Item) -> None:
        row, r = item.row, item.recipient
        item.attempts += 1
        t0 = time.monotonic()
        try:
            try:
                check_drill(row.exercise, r, row.body, self.drill_prefix)
            except DrillLeakError as err:
                log.error("SMS %s refused: %s", row.key, err)
                self._record(row, "failed", item.attempts, error=str(err))
                return
            try:
                res = await self.sender.send(r.phone, row.body, token=row.token)
            except SmsError as err:
                self._answer(item, err)
                return
            self.latencies_ms.append((time.monotonic() - t0) * 1000)
            self.limit.on_success()
            state = "dry_run" if self.sender.dry_run else "sent"
            self.counters["submitted"] += 1
            self._record(row, state, item.attempts, sid=res.sid, submitted_ms=now_ms())
        except asyncio.CancelledError:
            raise
        except Exception as err:  # a bug must not stall the fan-out: keep the row planned
            log.exception("SMS %s: unexpected error; left planned for a restart", row.key)
            self.counters["errors"] += 1
            self._keys.discard(row.key)
            del err
        finally:
            self._in_flight -= 1
            self._wake.set()

    def _answer(self, item: _Item, err: SmsError) -> None:
        row = item.row
        kind = err.kind
        self.counters[f"answer_{kind}"] += 1
        if kind == "rate_limited":
            # the request was refused, not tried: the whole fan-out waits, the row goes back
            item.attempts -= 1
            item.throttled += 1
            if item.throttled > _MAX_THROTTLED:
                log.warning(
                    "SMS %s: rate-limited %d times; recorded failed", row.key, item.throttled
                )
                self._record(row, "failed", item.attempts, err=err)
                return
            self._later(item, self.limit.on_rate_limited())
            return
        if kind == "transient":
            if item.attempts >= self.settings.max_attempts:
                log.warning("SMS %s failed after %d attempts: %s", row.key, item.attempts, err)
                self._record(row, "failed", item.attempts, err=err)
                return
            self._later(
                item,
                backoff_s(item.attempts, self.settings.backoff_s, self.settings.backoff_max_s),
            )
            return
        if kind == "opted_out":
            log.info("SMS to %s: subscriber opted out (21610)", mask_phone(item.recipient.phone))
            self._opt_outs.append((row.subscriber_id, f"twilio {err.code}: replied STOP"))
            self._record(row, "opted_out", item.attempts, err=err)
            return
        if kind == "fatal":
            log.error("SMS provider refused our credentials; fan-out stopped: %s", err)
            self.fatal = err
            self._keys.discard(row.key)  # stays planned in the store
            return
        log.warning("SMS %s failed permanently: %s", row.key, err)
        self._record(row, "permanent", item.attempts, err=err)

    def _later(self, item: _Item, delay: float) -> None:
        heapq.heappush(self._delayed, (time.monotonic() + delay, next(self._order), item))

    def _record(
        self,
        row: PlannedDelivery,
        state: Any,
        attempts: int,
        *,
        err: SmsError | None = None,
        error: str | None = None,
        sid: str | None = None,
        submitted_ms: int | None = None,
    ) -> None:
        self._outcomes.append(
            Outcome(
                key=row.key,
                state=state,
                attempts=attempts,
                now_ms=now_ms(),
                sid=sid,
                error_code=err.code if err else None,
                error=str(err) if err else error,
                submitted_ms=submitted_ms,
            )
        )
        self.counters[state] += 1
        self._unflushed.add(row.key)
        self._keys.discard(row.key)
        if len(self._outcomes) >= self.settings.batch_rows:
            self._wake.set()

    # ------------------------------------------------------------------ batches
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_s)
            try:
                await self.flush()
            except Exception:
                log.exception("writing SMS outcomes failed; retrying with the next batch")

    def _write_opt_outs(self, opts: list[tuple[str, str]]) -> None:
        for subscriber_id, reason in opts:
            self.store.opt_out(subscriber_id, reason=reason, now_ms=now_ms())

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._outcomes:
            batch = self._outcomes[: self.settings.batch_rows]
            await loop.run_in_executor(None, self.store.record_outcomes, batch)
            del self._outcomes[: len(batch)]
            self._unflushed.difference_update(o.key for o in batch)
            self.counters["outcome_batches"] += 1
        if self._opt_outs:
            opts, self._opt_outs = self._opt_outs, []
            await loop.run_in_executor(None, self._write_opt_outs, opts)
        if self._statuses:
            st, self._statuses = self._statuses, []
            await loop.run_in_executor(None, self.store.record_statuses, st)
