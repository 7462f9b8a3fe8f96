"""The worker's HTTP API (served by Faust's aiohttp web server on ``worker.web_port``).

==========================================  ===================================================
``GET  /health``                             ``{"status": "ok"|"starting", "assigned": [...]}``
``GET  /metrics``                            counters, readings/s, lag and alert latency p50/p99,
                                              readings set aside by the detectors (late,
                                              duplicate, unknown station), the InfluxDB
                                              sink's written/dropped/buffered lines
``GET  /alerts?exercise=true|false``         active alerts (of the zones this worker owns)
``GET  /audit``                              operator audit log (who, when, what, why, result)
``POST /alerts/{alert_id}/ack``              acknowledge: stops repeats, keeps the alert
``POST /alerts/{alert_id}/clear``            clear (``{"cancel": true}`` = issued in error)
``POST /zones/{zone}/silence``               ``{"hazard"?, "duration_s", "exercise"?}``
``POST /zones/{zone}/escalate``              ``{"hazard", "level", "exercise"?}``
``GET  /cap/index.json``, ``/cap/{file}``    the CAP 1.2 feed
``POST /twilio/status``                      Twilio delivery-status callbacks
``GET  /deliveries?limit=&event=``           SMS per event: recipients, messages, planned,
                                              submitted, delivered, undelivered, failed,
                                              permanent, opted out, fan-out seconds
``GET  /deliveries/{event_id}?limit=``       the event's messages (phones masked)
==========================================  ===================================================

Every action needs ``actor`` and ``reason`` in its JSON body. Actions are queued on
``zone.commands`` (the zone's partition), applied by the worker that owns the zone, recorded in
the audit log and answered ``202 {"request_id": …}``. With several workers, each lists the
alerts of the zones it owns; ``gyeongbo alerts list`` asks every worker URL it is given.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from streams.cap_feed import build_index
from streams.commands import OperatorAction, zone_of_alert

if TYPE_CHECKING:
    from streams.worker import Worker

Handler = Any


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False, default=str),
        status=status,
        content_type="application/json",
    )


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return data


def _who(body: dict[str, Any]) -> tuple[str, str]:
    actor, reason = body.get("actor"), body.get("reason")
    if not actor or not isinstance(actor, str):
        raise web.HTTPBadRequest(text="'actor' (who acts) is required")
    if not reason or not isinstance(reason, str):
        raise web.HTTPBadRequest(text="'reason' (why) is required")
    return actor, reason


def routes(worker: Worker) -> list[tuple[str, str, Handler]]:
    async def health(request: web.Request) -> web.Response:
        h = worker.health()
        return _json(h, 200 if h["status"] == "ok" else 503)

    async def metrics(request: web.Request) -> web.Response:
        return _json(worker.snapshot())

    async def alerts(request: web.Request) -> web.Response:
        ex = request.query.get("exercise")
        exercise = None if ex is None else ex.lower() in {"1", "true", "yes"}
        return _json(worker.active_alerts(exercise=exercise))

    async def audit(request: web.Request) -> web.Response:
        return _json(worker.audit())

    async def submit(zone: str, action: OperatorAction) -> web.Response:
        await worker.submit_action(zone, action)
        return _json({"request_id": action.request_id, "zone": zone, "queued": True}, 202)

    def _alert_zone(alert_id: str) -> str:
        try:
            return zone_of_alert(alert_id)
        except ValueError as err:
            raise web.HTTPBadRequest(text=str(err)) from None

    async def ack(request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        actor, reason = _who(await _body(request))
        return await submit(
            _alert_zone(alert_id),
            OperatorAction(
                action="ack",
                actor=actor,
                reason=reason,
                alert_id=alert_id,
                ts_ms=_now(),
                request_id=uuid.uuid4().hex,
            ),
        )

    async def clear(request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        body = await _body(request)
        actor, reason = _who(body)
        return await submit(
            _alert_zone(alert_id),
            OperatorAction(
                action="clear",
                actor=actor,
                reason=reason,
                alert_id=alert_id,
                cancel=bool(body.get("cancel", False)),
                ts_ms=_now(),
                request_id=uuid.uuid4().hex,
            ),
        )

    async def silence(request: web.Request) -> web.Response:
        body = await _body(request)
        actor, reason = _who(body)
        duration = body.get("duration_s")
        if not isinstance(duration, int) or duration <= 0:
            raise web.HTTPBadRequest(text="'duration_s' (positive integer seconds) is required")
        return await submit(
            request.match_info["zone"],
            OperatorAction(
                action="silence",
                actor=actor,
                reason=reason,
                hazard=body.get("hazard"),
                duration_s=duration,
                exercise=bool(body.get("exercise", False)),
                ts_ms=_now(),
                request_id=uuid.uuid4().hex,
            ),
        )

    async def escalate(request: web.Request) -> web.Response:
        body = await _body(request)
        actor, reason = _who(body)
        hazard, level = body.get("hazard"), body.get("level")
        if not hazard or level not in {"attention", "caution", "alert", "serious"}:
            raise web.HTTPBadRequest(
                text="'hazard' and 'level' (attention|caution|alert|serious) are required"
            )
        return await submit(
            request.match_info["zone"],
            OperatorAction(
                action="escalate",
                actor=actor,
                reason=reason,
                hazard=hazard,
                level=level,
                exercise=bool(body.get("exercise", False)),
                ts_ms=_now(),
                request_id=uuid.uuid4().hex,
            ),
        )

    folder = Path(worker.settings.paths.cap_feed)

    async def cap_index(request: web.Request) -> web.Response:
        return _json(build_index(folder) if folder.exists() else {"entries": []})

    async def cap_doc(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = folder / name
        if "/" in name or not name.endswith(".xml") or not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers={"Content-Type": "application/cap+xml"})

    async def deliveries(request: web.Request) -> web.Response:
        limit = _int(request.query.get("limit"), 50)
        event = request.query.get("event") or None
        sums = await asyncio.get_running_loop().run_in_executor(
            None, lambda: worker.notifier.summaries(limit=limit, event_id=event)
        )
        return _json(sums)

    async def delivery_rows(request: web.Request) -> web.Response:
        event = request.match_info["event_id"]
        limit = _int(request.query.get("limit"), 1000)
        rows = await asyncio.get_running_loop().run_in_executor(
            None, lambda: worker.notifier.deliveries(event, limit=limit)
        )
        return _json(rows)

    return [
        ("GET", "/health", health),
        ("GET", "/deliveries", deliveries),
        ("GET", "/deliveries/{event_id}", delivery_rows),
        ("GET", "/metrics", metrics),
        ("GET", "/alerts", alerts),
        ("GET", "/audit", audit),
        ("POST", "/alerts/{alert_id}/ack", ack),
        ("POST", "/alerts/{alert_id}/clear", clear),
        ("POST", "/zones/{zone}/silence", silence),
        ("POST", "/zones/{zone}/escalate", escalate),
        ("GET", "/cap/index.json", cap_index),
        ("GET", "/cap/{name}", cap_doc),
    ]


def _int(text: str | None, default: int) -> int:
    try:
        return max(1, min(100_000, int(text))) if text else default
    except ValueError:
        raise web.HTTPBadRequest(text=f"not a number: {text!r}") from None


def _now() -> int:
    return time.time_ns() // 1_000_000
