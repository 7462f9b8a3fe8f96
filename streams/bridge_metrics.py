"""Bridge counters and gauges: logged periodically, served over HTTP, written to InfluxDB.

``GET /metrics`` answers Prometheus text exposition (OpenMetrics when asked for it), one
``gyeongbo_bridge_*`` family per figure below in base units (``…_seconds``, ``…_total``) and
``gyeongbo_bridge_rejected_total{reason="…"}`` per reject reason; the JSON snapshot when the
request prefers ``application/json`` (or says ``?format=json``): :mod:`streams.prom`.
``GET /healthz`` answers 200 once the bridge is connected to both sides, 503 before.
:class:`InfluxReporter` writes the figures the Operations dashboard reads to InfluxDB.

Counters (monotonic since start): ``messages_received`` (MQTT messages), ``readings_received``
(valid + rejected + duplicate readings), ``readings_produced`` (valid readings Kafka accepted),
``records_produced`` (``readings`` records), ``rejected`` by reason (readings or payloads sent
to ``readings.rejected``), ``duplicates`` (dropped by station + seq), ``messages_acked``,
``kafka_send_failures``, ``seismic_events``, ``qos0_dropped`` (QoS 0 messages shed while
the bridge was backed up; the contract is QoS 1), ``rejections_unwritten`` (rejection records
Kafka refused for good, e.g. too large: logged with their reason and payload digest, then
given up so that they never hold the MQTT session). Gauges: ``inflight_messages`` (received, not yet
acknowledged), ``ack_lag_ms`` (oldest message of the last flush: received → acknowledged),
``ack_lag_ms_max`` (since the last log line), ``event_lag_ms`` (received − event time, median
of the last flush), ``kafka_ok``, ``mqtt_connected``, ``ready``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from gyeongbo.settings import Settings
from streams.prom import Family, make_registry, pick_format, render

__all__ = ["InfluxReporter", "Metrics", "serve_metrics"]


@dataclass
class Metrics:
    messages_received: int = 0
    readings_received: int = 0
    readings_produced: int = 0
    records_produced: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    messages_acked: int = 0
    kafka_send_failures: int = 0
    seismic_events: int = 0
    qos0_dropped: int = 0
    rejections_unwritten: int = 0
    inflight_messages: int = 0
    ack_lag_ms: float = 0.0
    ack_lag_ms_max: float = 0.0
    event_lag_ms: float = 0.0
    kafka_ok: bool = False
    mqtt_connected: bool = False
    #: Times the MQTT connection was lost (a session taken over by another client id, a
    #: broker restart, a network fault): each one is a window without readings.
    mqtt_disconnects: int = 0
    ready: bool = False
    started: float = field(default_factory=time.time)

    def snapshot(self) -> dict[str, Any]:
        return {
            "messages_received": self.messages_received,
            "readings_received": self.readings_received,
            "readings_produced": self.readings_produced,
            "records_produced": self.records_produced,
            "rejected": dict(self.rejected),
            "rejected_total": sum(self.rejected.values()),
            "duplicates": self.duplicates,
            "messages_acked": self.messages_acked,
            "kafka_send_failures": self.kafka_send_failures,
            "seismic_events": self.seismic_events,
            "qos0_dropped": self.qos0_dropped,
            "rejections_unwritten": self.rejections_unwritten,
            "inflight_messages": self.inflight_messages,
            "ack_lag_ms": round(self.ack_lag_ms, 1),
            "ack_lag_ms_max": round(self.ack_lag_ms_max, 1),
            "event_lag_ms": round(self.event_lag_ms, 1),
            "kafka_ok": self.kafka_ok,
            "mqtt_connected": self.mqtt_connected,
            "mqtt_disconnects": self.mqtt_disconnects,
            "ready": self.ready,
            "uptime_s": round(time.time() - self.started, 1),
        }

    def families(self) -> list[Family]:
        """The snapshot as Prometheus families (:mod:`streams.prom`, names without prefix)."""
        c: Literal["counter"] = "counter"
        g: Literal["gauge"] = "gauge"
        out: list[Family] = [
            ("messages_received_total", c, "MQTT messages received.", {}, self.messages_received),
            ("messages_acked_total", c, "MQTT messages acknowledged.", {}, self.messages_acked),
            (
                "mqtt_disconnects_total",
                c,
                "MQTT connections lost (taken over, broker restart, network).",
                {},
                self.mqtt_disconnects,
            ),
            (
                "readings_received_total",
                c,
                "Readings received (valid, rejected and duplicate).",
                {},
                self.readings_received,
            ),
            (
                "readings_produced_total",
                c,
                "Valid readings Kafka accepted.",
                {},
                self.readings_produced,
            ),
            ("records_produced_total", c, "readings records written.", {}, self.records_produced),
            (
                "duplicates_total",
                c,
                "Readings dropped as duplicates (station + seq).",
                {},
                self.duplicates,
            ),
            (
                "kafka_send_failures_total",
                c,
                "Readings whose flush Kafka did not accept (retried).",
                {},
                self.kafka_send_failures,
            ),
            ("seismic_events_total", c, "Earthquake catalogue events.", {}, self.seismic_events),
            (
                "qos0_dropped_total",
                c,
                "QoS 0 messages shed while backed up.",
                {},
                self.qos0_dropped,
            ),
            (
                "inflight_messages",
                g,
                "MQTT messages received, not yet acknowledged.",
                {},
                self.inflight_messages,
            ),
            (
                "ack_lag_seconds",
                g,
                "Oldest message of the last flush: received to acknowledged.",
                {},
                self.ack_lag_ms / 1000,
            ),
            (
                "event_lag_seconds",
                g,
                "Received minus event time, median of the last flush.",
                {},
                self.event_lag_ms / 1000,
            ),
            ("kafka_connected", g, "1 while Kafka accepts writes.", {}, float(self.kafka_ok)),
            ("mqtt_connected", g, "1 while connected to MQTT.", {}, float(self.mqtt_connected)),
            ("ready", g, "1 once connected to both sides.", {}, float(self.ready)),
        ]
        doc = "Readings or payloads sent to readings.rejected, by reason."
        out += [("rejected_total", c, doc, {"reason": r}, n) for r, n in self.rejected.items()]
        if not self.rejected:  # the family exists from the start, so rate() sees its first 1
            out.append(("rejected_total", c, doc, {"reason": "none"}, 0))
        return out

    def pipeline_values(self) -> dict[str, float]:
        """The ``pipeline`` fields the Operations dashboard reads (component ``bridge``)."""
        return {
            "readings_total": float(self.readings_produced),
            "rejected_total": float(sum(self.rejected.values())),
            "duplicates_total": float(self.duplicates),
            "messages_total": float(self.messages_received),
            "lag_ms_p50": float(self.event_lag_ms),
            "lag_ms_p99": float(self.ack_lag_ms_max),
            "inflight_messages": float(self.inflight_messages),
        }


class _Server:
    """The listening server; ``close()`` stops listening at once (as ``asyncio.Server``)."""

    def __init__(self, server: asyncio.Server) -> None:
        self._server = server

    def close(self) -> None:
        self._server.close()


async def serve_metrics(metrics: Metrics, host: str, port: int) -> _Server:
    """Serve ``/metrics`` (negotiated, :mod:`streams.prom`) and ``/healthz`` with aiohttp."""
    registry = make_registry("gyeongbo_bridge", metrics.families)

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="method not allowed\n")
        if request.path == "/metrics":
            fmt = pick_format(request.headers.get("Accept", ""), request.query.get("format"))
            body, ctype = render(registry, fmt, metrics.snapshot)
            return web.Response(body=body, headers={"Content-Type": ctype})
        if request.path == "/healthz":
            ok = metrics.ready and metrics.kafka_ok and metrics.mqtt_connected
            return web.json_response({"ok": ok}, status=200 if ok else 503)
        return web.Response(status=404, text="not found\n")

    server = await asyncio.get_running_loop().create_server(web.Server(handle), host, port)
    return _Server(server)


class InfluxReporter:
    """Writes the bridge's figures to InfluxDB's ``pipeline`` measurement every
    ``interval_s`` (component ``bridge``, instance = the MQTT client id), so the Operations
    dashboard shows the bridge's throughput, lag and rejected readings."""

    def __init__(self, settings: Settings, metrics: Metrics, interval_s: float) -> None:
        from streams.influx_sink import InfluxSink

        self.metrics = metrics
        self.interval_s = interval_s
        self.sink = InfluxSink(settings.influx, instance=settings.mqtt.client_id)
        self._task = asyncio.get_running_loop().create_task(self._run())

    @classmethod
    def start(
        cls, settings: Settings, metrics: Metrics, interval_s: float
    ) -> InfluxReporter | None:
        return cls(settings, metrics, interval_s) if interval_s > 0 else None

    async def _run(self) -> None:
        while True:
            self.sink.write_metrics("bridge", self.metrics.pipeline_values())
            await asyncio.sleep(self.interval_s)

    def close(self) -> None:
        self._task.cancel()
        self.sink.write_metrics("bridge", self.metrics.pipeline_values())
        self.sink.close(timeout_s=2.0)
