"""The InfluxDB sink: readings, detections, alerts, sensor health and pipeline metrics.

Operators watch Grafana; Grafana reads InfluxDB (docs/design.md §7). The worker hands records to
an :class:`InfluxSink`; the sink turns them into line protocol (:mod:`streams.influx_lines`,
column-wise for reading batches) and writes them through ``influxdb-client``'s **batching**
``WriteApi`` (``WriteOptions``: ``batch_size``, ``flush_interval``, retries with exponential
backoff) to ``/api/v2/write`` at **millisecond precision** (``precision=ms``). InfluxDB 1.8+,
2.x and 3.x serve that endpoint; the dashboards read back with InfluxQL.

Never blocking the pipeline
---------------------------
Every ``write_*`` method formats its lines in the caller's thread (microseconds per record)
and appends them to the sink's own **bounded** buffer (``max_buffer_lines``); it never waits on
the network. A feeder thread moves lines from the buffer into the ``WriteApi`` while fewer
than ``2 × batch_size`` lines are in flight there, so a slow or dead InfluxDB backs lines up in
the bounded buffer, not in the client's unbounded queues.

When InfluxDB is down
---------------------
* Transient failures (connection refused, timeouts, HTTP 429 and 5xx) are retried by the
  ``WriteApi`` (``max_retries``, ``retry_interval_ms`` doubling up to ``max_retry_delay_ms``,
  within ``max_retry_time_ms``); each retry is counted. When a batch exhausts its retries it
  goes back to the *front* of the buffer and is tried again — nothing is given up while it
  fits in the buffer. The first failure logs one WARNING naming the URL, the bucket, the
  cause and the buffer bound; recovery logs one INFO with the outage length and what was lost.
* When the buffer is full, the **oldest readings** are dropped first (reason ``buffer_full``),
  counted, and logged (WARNING on the first drop of an episode, then a summary every 10 s).
  Readings are the bulk; detections, alert transitions, HQ stages, health and metrics lines
  are few and are what an operator looks for after an incident, so they wait in a lane of
  their own, are sent first, and are dropped (oldest first) only when no reading is left to
  drop. InfluxDB slower than the input (the local 1.6.7 takes ~30k lines/s on this 2-core
  machine) thus costs dashboard readings, never the record of what was raised.
* Permanent failures (HTTP 4xx other than 429: bad line protocol, unknown bucket, bad token)
  are not retried: the batch is dropped with reason ``rejected`` and logged with the answer.
* Lines still buffered or in flight when :meth:`InfluxSink.close` gives up waiting are
  dropped with reason ``closed``.

So at every moment ``accepted == written + dropped + buffered + inflight``
(:meth:`InfluxSink.stats`).

Counters (:meth:`InfluxSink.stats`, and as floats for the ``pipeline`` measurement from
:meth:`InfluxSink.metrics`): ``written`` (lines InfluxDB confirmed), ``dropped`` (by reason),
``retries`` (retried HTTP attempts), ``errors`` (batches that failed after their retries, or
were rejected), gauges ``buffered`` and ``inflight``.

Measurements, tags and fields
-----------------------------
All timestamps are epoch **milliseconds** (UTC). Tags are indexed strings; ``exercise`` is
``"true"`` for drill data and ``"false"`` otherwise, on every measurement that carries events.

=================  =================================================  ============================
measurement        tags                                               fields
=================  =================================================  ============================
``reading``        ``station``, ``kind``, ``exercise``                the reading's values as
                                                                      floats (``level_m``,
                                                                      ``rain_mm``, ``interval_s``,
                                                                      ``pm10_ugm3``, ``pm25_ugm3``,
                                                                      ``o3_ppm``, ``tilt_rad``,
                                                                      ``crack_mm``,
                                                                      ``vibration_cms``, ``pga_g``);
                                                                      ``seq`` (int)
``detection``      ``station``, ``kind``, ``hazard``, ``level``,      ``value``, ``threshold``,
                   ``rule``, ``public``, ``exercise``                 ``confidence``, ``lat``,
                                                                      ``lon``; ``level_num`` (0–4),
                                                                      ``projected_crossing_ms``
                                                                      (int); ``details`` (JSON)
``sensor_health``  ``station``, ``kind``, ``check``, ``severity``,   ``value``; ``severity_num``;
                   ``exercise``                                       ``faults``, ``details``
``dq_alert``       ``zone``, ``severity``, ``previous``, ``action``,  ``severity_num``,
                   ``exercise``                                       ``previous_num``;
                                                                      ``message``, ``zone_name``,
                                                                      ``alert_id``, ``event_id``,
                                                                      ``stations``, ``checks``
``alert``          ``hazard``, ``zone``, ``level``, ``previous``,     ``level_num``,
                   ``action``, ``exercise``                           ``previous_num``;
                                                                      ``message``, ``level_ko``,
                                                                      ``zone_name``, ``alert_id``,
                                                                      ``event_id``, ``stations``,
                                                                      ``evidence`` (JSON),
                                                                      ``actor``, ``reason``
``hq_stage``       ``hazard_group``, ``action``, ``exercise``         ``stage``, ``previous``;
                                                                      ``message``, ``provinces``,
                                                                      ``event_id``, ``actor``
``station``        ``station``, ``kind``                              ``lat``, ``lon``, ``name``,
                                                                      ``name_en``, ``zones``,
                                                                      stage lines, allowables
``delivery``       ``event``, ``hazard``, ``exercise``                ``recipients``, ``messages``,
                                                                      ``planned``, ``submitted``,
                                                                      ``delivered``,
                                                                      ``undelivered``, ``failed``,
                                                                      ``permanent``, ``opted_out``;
                                                                      ``fanout_s``
``pipeline``       ``component``, ``instance``                        metrics (floats), see below
=================  =================================================  ============================

Pipeline metrics the dashboards read (``component`` = ``bridge`` | ``worker`` | ``sink``):
counters ``readings_total``, ``rejected_total``, ``detections_total``, ``alerts_total``,
``influx_written_total``, ``influx_dropped_total``, ``influx_retries_total``,
``influx_errors_total`` (monotonic since start; the dashboards take their rate), gauges
``lag_ms_p50``, ``lag_ms_p99`` (event time → processed), ``influx_buffered``.

Use
---
>>> from gyeongbo.settings import InfluxSettings
>>> sink = InfluxSink(InfluxSettings(url="http://127.0.0.1:9"), flush_interval_ms=50)
>>> sink.write_metrics("worker", {"readings_total": 10}, ts_ms=1_700_000_000_000)
1
>>> sink.close(timeout_s=0.2).accepted
1
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, cast

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import WriteOptions
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from reactivex.disposable import Disposable
from reactivex.scheduler import EventLoopScheduler

from gyeongbo.batch import ReadingBatch
from gyeongbo.events import (
    AlertEvent,
    AlertReminder,
    DataQualityAlert,
    Detection,
    HQStageEvent,
)
from gyeongbo.registry import Registry
from gyeongbo.settings import InfluxSettings
from streams import influx_lines

__all__ = ["DROP_REASONS", "InfluxSink", "SinkStats"]

log = logging.getLogger("gyeongbo.influx_sink")

#: Why lines are given up.
DROP_REASONS: Final = ("buffer_full", "rejected", "closed")

#: Lines per item handed to the WriteApi (its ``batch_size`` counts items).
_ITEM_LINES: Final = 1000
_DROP_LOG_EVERY_S: Final = 10.0
#: The generated ``WritePrecision`` "enum" holds plain ``str`` constants.
_MS: Final = cast(WritePrecision, WritePrecision.MS)


@dataclass(frozen=True)
class SinkStats:
    """A consistent snapshot: ``accepted == written + dropped + buffered + inflight``."""

    accepted: int
    written: int
    dropped: int
    retries: int
    errors: int
    buffered: int
    inflight: int
    healthy: bool
    dropped_by_reason: dict[str, int] = field(default_factory=dict)


class InfluxSink:
    """Bounded, non-blocking writer of Gyeongbo records to InfluxDB.

    Parameters
    ----------
    settings
        ``url``, ``org``, ``bucket`` and ``token`` (``GYEONGBO_INFLUX__*``).
    registry
        The station registry: adds ``kind``, ``lat`` and ``lon`` to detections and health
        lines, and is what :meth:`write_stations` writes. Without it those are left out.
    bucket
        Overrides ``settings.bucket`` (tests write to a database of their own).
    batch_size, flush_interval_ms
        Lines per write request at most, and the longest a line waits to be sent.
    max_buffer_lines
        The bound of the sink's buffer; beyond it the oldest lines are dropped.
    retry_interval_ms, max_retry_delay_ms, max_retries, max_retry_time_ms
        The ``WriteApi`` retry policy for one batch (exponential backoff); after it the batch
        returns to the buffer.
    timeout_ms
        HTTP timeout of one write request.
    close_timeout_s
        How long :meth:`close` waits for buffered and in-flight lines by default.
    instance
        The ``instance`` tag of :meth:`write_metrics` (e.g. the worker id).
    """

    def __init__(
        self,
        settings: InfluxSettings,
        *,
        registry: Registry | None = None,
        bucket: str | None = None,
        batch_size: int = 5000,
        flush_interval_ms: int = 1000,
        max_buffer_lines: int = 200_000,
        retry_interval_ms: int = 1000,
        max_retry_delay_ms: int = 30_000,
        max_retries: int = 5,
        max_retry_time_ms: int = 120_000,
        timeout_ms: int = 10_000,
        close_timeout_s: float = 10.0,
        instance: str = "",
    ) -> None:
        if batch_size < 1 or max_buffer_lines < 1:
            raise ValueError("batch_size and max_buffer_lines must be positive")
        self.url = settings.url
        self.org = settings.org
        self.bucket = bucket or settings.bucket
        self.registry = registry
        self.instance = instance
        self.max_buffer_lines = max_buffer_lines
        self.close_timeout_s = close_timeout_s
        self._item_lines = min(_ITEM_LINES, batch_size)
        self._max_inflight = 2 * batch_size
        self._lock = threading.Condition()
        self._buffer: deque[tuple[bytes, int]] = deque()  # events: sent first, dropped last
        self._bulk: deque[tuple[bytes, int]] = deque()  # readings
        self._buffered = 0
        self._inflight = 0
        self._accepted = 0
        self._written = 0
        self._retries = 0
        self._errors = 0
        self._dropped: Counter[str] = Counter()
        self._healthy = True
        self._down_since = 0.0
        self._dropped_at_down = 0
        self._last_drop_log = 0.0
        self._closing = False
        self._closed = False
        self._client = InfluxDBClient(
            url=settings.url,
            token=settings.token.get_secret_value(),
            org=settings.org,
            timeout=timeout_ms,
        )
        # One daemon thread sends (and sleeps through retries): it never holds up exit.
        self._write_scheduler = EventLoopScheduler()
        self._write_api = self._client.write_api(
            write_options=WriteOptions(
                batch_size=max(1, batch_size // self._item_lines),
                flush_interval=flush_interval_ms,
                retry_interval=retry_interval_ms,
                max_retry_delay=max_retry_delay_ms,
                max_retries=max_retries,
                max_retry_time=max_retry_time_ms,
                exponential_base=2,
                max_close_wait=int(close_timeout_s * 1000),
                write_scheduler=self._write_scheduler,
            ),
            success_callback=self._on_success,
            error_callback=self._on_error,
            retry_callback=self._on_retry,
        )
        self._feeder = threading.Thread(target=self._feed, name="influx-sink-feeder", daemon=True)
        self._feeder.start()

    # -- public writers (never block on the network) -------------------------------------
    def write_readings(self, batch: ReadingBatch) -> int:
        """Readings → ``reading``; returns the number of lines accepted (bulk lane)."""
        return self.write_lines(influx_lines.reading_lines(batch), bulk=True)

    def write_detections(self, detections: Iterable[Detection]) -> int:
        """Detections → ``detection`` (hazard ``sensor_health`` → ``sensor_health``)."""
        return self.write_lines(influx_lines.detection_lines(detections, self.registry))

    def write_health(self, detections: Iterable[Detection]) -> int:
        """Sensor-health detections → ``sensor_health``."""
        return self.write_lines(influx_lines.health_lines(detections, self.registry))

    def write_alerts(self, events: Iterable[AlertEvent]) -> int:
        """Alert transitions and operator actions → ``alert``."""
        return self.write_lines(influx_lines.alert_lines(events))

    def write_dq_alerts(self, events: Iterable[DataQualityAlert]) -> int:
        """Operators' data-quality alerts → ``dq_alert``."""
        return self.write_lines(influx_lines.dq_alert_lines(events))

    def write_reminders(self, reminders: Iterable[AlertReminder]) -> int:
        """Operators' reminders of unacknowledged alerts → ``alert_reminder``."""
        return self.write_lines(influx_lines.reminder_lines(reminders))

    def write_hq(self, events: Iterable[HQStageEvent]) -> int:
        """Headquarters stage changes → ``hq_stage``."""
        return self.write_lines(influx_lines.hq_lines(events))

    def write_stations(self, ts_ms: int | None = None) -> int:
        """The registry's stations → ``station`` (call at start and e.g. hourly)."""
        if self.registry is None:
            raise ValueError("write_stations needs the sink to be built with a registry")
        return self.write_lines(
            influx_lines.station_lines(self.registry, _now_ms() if ts_ms is None else ts_ms)
        )

    def write_metrics(
        self,
        component: str,
        values: Mapping[str, float | int | bool],
        *,
        ts_ms: int | None = None,
        instance: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> int:
        """One ``pipeline`` point for ``component`` (values written as floats)."""
        return self.write_lines(
            influx_lines.metric_lines(
                component,
                values,
                _now_ms() if ts_ms is None else ts_ms,
                instance=self.instance if instance is None else instance,
                tags=tags,
            )
        )

    def write_lines(self, lines: Sequence[str], *, bulk: bool = False) -> int:
        """Line protocol at ms precision (one record per string, no newlines inside).

        ``bulk`` lines (readings) are sent after, and dropped before, the others."""
        n = len(lines)
        if n == 0:
            return 0
        step = self._item_lines
        pieces = [
            ("\n".join(lines[i : i + step]).encode(), min(step, n - i)) for i in range(0, n, step)
        ]
        with self._lock:
            if self._closing:
                self._accepted += n
                self._dropped["closed"] += n
                return n
            self._accepted += n
            (self._bulk if bulk else self._buffer).extend(pieces)
            self._buffered += n
            if self._buffered > self.max_buffer_lines:
                self._drop_oldest_locked()
            self._lock.notify_all()
        return n

    # -- counters --------------------------------------------------------------------------
    def stats(self) -> SinkStats:
        with self._lock:
            return SinkStats(
                accepted=self._accepted,
                written=self._written,
                dropped=sum(self._dropped.values()),
                retries=self._retries,
                errors=self._errors,
                buffered=self._buffered,
                inflight=self._inflight,
                healthy=self._healthy,
                dropped_by_reason=dict(self._dropped),
            )

    def metrics(self) -> dict[str, float]:
        """The sink's counters under their ``pipeline`` field names."""
        s = self.stats()
        return {
            "influx_written_total": float(s.written),
            "influx_dropped_total": float(s.dropped),
            "influx_retries_total": float(s.retries),
            "influx_errors_total": float(s.errors),
            "influx_buffered": float(s.buffered + s.inflight),
        }

    # -- lifecycle --------------------------------------------------------------------------
    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every accepted line is written or dropped; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._buffered or self._inflight:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def close(self, timeout_s: float | None = None) -> SinkStats:
        """Flush (up to ``timeout_s``), stop the threads; what is left is dropped (``closed``)."""
        timeout = self.close_timeout_s if timeout_s is None else timeout_s
        self.flush(timeout)
        with self._lock:
            self._closing = True
            self._lock.notify_all()
        self._feeder.join(timeout=5)
        with self._lock:
            left = self._buffered + self._inflight
            if left:
                self._dropped["closed"] += left
                log.warning(
                    "InfluxDB sink closing with %d line(s) not written to %s (bucket %s): "
                    "dropped, reason=closed",
                    left,
                    self.url,
                    self.bucket,
                )
            self._buffer.clear()
            self._bulk.clear()
            self._buffered = 0
            self._inflight = 0
            self._closed = True
        if not left:
            self._close_write_api()  # returns at once
        else:  # a batch may be sleeping in a retry: do not wait for it
            threading.Thread(target=self._close_write_api, daemon=True).start()
        self._write_scheduler.dispose()
        self._client.close()  # type: ignore[no-untyped-call]
        return self.stats()

    def __enter__(self) -> InfluxSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------
    def _close_write_api(self) -> None:
        """Close influxdb-client's batching writer, working around its force-close race.

        When ``close`` gives up waiting (``max_close_wait``) it drops its ``_disposable``;
        a retry that finishes later then calls ``_on_complete``, which disposes ``None`` and
        dies with an AttributeError in a reactivex thread (influxdb-client 1.x). A harmless
        disposable put back in its place absorbs that late call.
        """
        api: Any = self._write_api
        api.close()
        if getattr(api, "_disposable", 1) is None:
            api._disposable = Disposable()

    def _drop_oldest_locked(self) -> None:
        dropped = 0
        while self._buffered > self.max_buffer_lines and (self._bulk or self._buffer):
            _, n = (self._bulk or self._buffer).popleft()
            self._buffered -= n
            dropped += n
        if not dropped:
            return
        self._dropped["buffer_full"] += dropped
        now = time.monotonic()
        if now - self._last_drop_log >= _DROP_LOG_EVERY_S:
            self._last_drop_log = now
            cause = (
                f"InfluxDB at {self.url} unreachable for {now - self._down_since:.0f} s"
                if not self._healthy
                else "InfluxDB is slower than the input"
            )
            log.warning(
                "InfluxDB sink buffer full (%d lines, %s): dropping the oldest lines, "
                "reason=buffer_full; %d dropped so far",
                self.max_buffer_lines,
                cause,
                self._dropped["buffer_full"],
            )

    def _feed(self) -> None:
        while True:
            with self._lock:
                while not self._closing and (
                    not (self._buffer or self._bulk) or self._inflight >= self._max_inflight
                ):
                    self._lock.wait(0.5)
                if self._closing:
                    return
                # Events first; one lane per item (the client may still merge items).
                lane = self._buffer or self._bulk
                parts: list[bytes] = []
                n = 0
                while lane and (not parts or n + lane[0][1] <= self._item_lines):
                    data, k = lane.popleft()
                    parts.append(data)
                    n += k
                self._buffered -= n
                self._inflight += n
            try:
                self._write_api.write(
                    bucket=self.bucket,
                    org=self.org,
                    record=b"\n".join(parts),
                    write_precision=_MS,
                )
            except Exception as exc:  # the batching write only enqueues; defensive
                self._on_error((self.bucket, self.org, "ms"), b"\n".join(parts), exc)
                time.sleep(0.1)  # requeued: do not spin

    @staticmethod
    def _lines_in(data: Any) -> int:
        if isinstance(data, str):
            data = data.encode()
        return int(data.count(b"\n")) + 1 if data else 0

    def _on_success(self, conf: Any, data: Any) -> None:
        n = self._lines_in(data)
        with self._lock:
            if self._closed:
                return
            self._inflight -= n
            self._written += n
            if not self._healthy:
                self._healthy = True
                lost = sum(self._dropped.values()) - self._dropped_at_down
                log.info(
                    "InfluxDB at %s accepts writes again after %.1f s; %d line(s) dropped "
                    "meanwhile, %d buffered line(s) being written",
                    self.url,
                    time.monotonic() - self._down_since,
                    lost,
                    self._buffered,
                )
            self._lock.notify_all()

    def _on_retry(self, conf: Any, data: Any, exc: Exception) -> None:
        with self._lock:
            if self._closed:
                return
            self._retries += 1
            self._mark_down_locked(exc)

    def _on_error(self, conf: Any, data: Any, exc: Exception) -> None:
        n = self._lines_in(data)
        status = getattr(exc, "status", None) if isinstance(exc, ApiException) else None
        permanent = status is not None and 400 <= int(status) < 500 and int(status) != 429
        with self._lock:
            if self._closed:
                return
            self._errors += 1
            self._inflight -= n
            if permanent:
                self._dropped["rejected"] += n
                log.error(
                    "InfluxDB at %s rejected %d line(s) for bucket %s (HTTP %s: %s): dropped, "
                    "reason=rejected",
                    self.url,
                    n,
                    self.bucket,
                    status,
                    str(getattr(exc, "body", "") or exc)[:300],
                )
            else:
                self._mark_down_locked(exc)
                payload = data.encode() if isinstance(data, str) else bytes(data)
                # The client may have merged items of both lanes into one request: each
                # line goes back to its own lane.
                lines = payload.split(b"\n")
                bulk = [ln for ln in lines if ln.startswith(influx_lines.READING_PREFIX)]
                other = [ln for ln in lines if not ln.startswith(influx_lines.READING_PREFIX)]
                if bulk:
                    self._bulk.appendleft((b"\n".join(bulk), len(bulk)))
                if other:
                    self._buffer.appendleft((b"\n".join(other), len(other)))
                self._buffered += n
                if self._buffered > self.max_buffer_lines:
                    self._drop_oldest_locked()
            self._lock.notify_all()

    def _mark_down_locked(self, exc: BaseException) -> None:
        if self._healthy:
            self._healthy = False
            self._down_since = time.monotonic()
            self._dropped_at_down = sum(self._dropped.values())
            self._last_drop_log = 0.0
            log.warning(
                "InfluxDB at %s (bucket %s) is not accepting writes: %s — retrying; buffering "
                "up to %d lines in memory, the oldest are dropped beyond that",
                self.url,
                self.bucket,
                _short(exc),
                self.max_buffer_lines,
            )


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 300 else text[:297] + "..."


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
