"""Bridge counters and gauges, logged periodically and served over HTTP.

``GET /metrics`` answers the snapshot as JSON; ``GET /metrics?format=prometheus`` (or an
``Accept: text/plain`` request) answers Prometheus text exposition, one ``gyeongbo_bridge_*``
series per counter and ``gyeongbo_bridge_rejected_total{reason="…"}`` per reject reason.
``GET /healthz`` answers 200 once the bridge is connected to both sides, 503 before.

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
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Metrics", "serve_metrics"]


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
            "ready": self.ready,
            "uptime_s": round(time.time() - self.started, 1),
        }

    def prometheus(self) -> str:
        snap = self.snapshot()
        lines: list[str] = []
        for name, value in snap.items():
            if name in ("rejected", "rejected_total"):
                continue
            metric = f"gyeongbo_bridge_{name}"
            is_counter = name in {
                "messages_received",
                "readings_received",
                "readings_produced",
                "records_produced",
                "duplicates",
                "messages_acked",
                "kafka_send_failures",
                "seismic_events",
                "qos0_dropped",
            }
            if is_counter:
                metric += "_total"
            lines.append(f"# TYPE {metric} {'counter' if is_counter else 'gauge'}")
            lines.append(f"{metric} {float(value)}")
        lines.append("# TYPE gyeongbo_bridge_rejected_total counter")
        for reason, n in sorted(self.rejected.items()):
            lines.append(f'gyeongbo_bridge_rejected_total{{reason="{reason}"}} {n}')
        return "\n".join(lines) + "\n"


async def serve_metrics(metrics: Metrics, host: str, port: int) -> asyncio.Server:
    """A minimal HTTP/1.0 server for ``/metrics`` and ``/healthz`` (no dependencies)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = request_line.split()
            path = parts[1] if len(parts) > 1 else "/"
            accept_text = b"accept: text/plain" in head.lower()
            if path.startswith("/metrics"):
                if "format=prometheus" in path or accept_text:
                    body = metrics.prometheus().encode()
                    ctype = "text/plain; version=0.0.4"
                else:
                    body = json.dumps(metrics.snapshot()).encode()
                    ctype = "application/json"
                status = "200 OK"
            elif path.startswith("/healthz"):
                ok = metrics.ready and metrics.kafka_ok and metrics.mqtt_connected
                status = "200 OK" if ok else "503 Service Unavailable"
                body = json.dumps({"ok": ok}).encode()
                ctype = "application/json"
            else:
                status, body, ctype = "404 Not Found", b"not found\n", "text/plain"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            TimeoutError,
            ConnectionError,
        ):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
