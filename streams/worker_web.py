"""The worker's HTTP API (served by Faust's aiohttp web server on ``worker.web_port``).

==========================================  ===================================================
``GET  /health``                             ``{"status": "ok"|"starting", "assigned": [...]}``
``GET  /metrics``                            Prometheus exposition of the worker's counters
                                              (:mod:`streams.worker_metrics`); JSON when the
                                              request prefers ``application/json`` or says
                                              ``?format=json``: counters, readings/s, lag
                                              p50/p99, readings set aside by the detectors,
                                              the InfluxDB sink's lines, ``exercise_clock_ms``
``GET  /alerts?exercise=true|false``         active alerts (of the zones this worker owns)
``GET  /audit``                              operator audit log (who, when, what, why, result)
``GET  /operators``                          operators' token ids and roles (admin)
``POST /alerts/{alert_id}/ack``              acknowledge: stops repeats, keeps the alert
``POST /alerts/{alert_id}/clear``            clear (``{"cancel": true}`` = issued in error)
``POST /zones/{zone}/silence``               ``{"hazard"?, "duration_s", "exercise"?}``
``POST /zones/{zone}/escalate``              ``{"hazard", "level", "exercise"?}``
``GET  /hq``                                 headquarters' 비상 stage per namespace (``real``,
                                              ``exercise``): ``stage``, ``proposed``,
                                              ``provinces``, ``history``
``POST /hq/confirm``                         ``{"reason", "exercise"?}``: confirm the proposal
``POST /hq/stage``                           ``{"stage": 0..3, "reason", "exercise"?}``
``GET  /cap/index.json``, ``/cap/{file}``    the CAP 1.2 feed
``POST /twilio/status``                      Twilio delivery-status callbacks
``GET  /deliveries?limit=&event=``           SMS per event: recipients, messages, planned,
                                              submitted, delivered, undelivered, failed,
                                              permanent, opted out, fan-out seconds
``GET  /deliveries/{event_id}?limit=``       the event's messages (phones masked)
==========================================  ===================================================

Access (:mod:`streams.web_auth`): ``/health``, ``/metrics`` and ``/twilio/status`` (signed by
Twilio) are open; everything else needs an operator's bearer token — ``viewer`` to read,
``operator`` to act, ``admin`` for ``/operators`` — and POSTs must be JSON. The server binds
to ``worker.web_host`` (loopback by default).

Every action needs a ``reason`` in its JSON body; who acted is the token's operator (a body's
``actor`` is refused). Actions are queued on ``zone.commands`` (the zone's partition),
applied by the worker that owns the zone, recorded in the audit log and answered
``202 {"request_id": …}``. With several workers, each lists the alerts of the zones it owns;
``gyeongbo alerts list`` asks every worker URL it is given.

Headquarters decisions are queued on ``hq.inputs`` (behind the alert events already there)
with a ``command_id`` and applied by the worker that holds the HQ machine, which alone
answers ``/hq``: others answer 503 (``gyeongbo hq`` tries each URL). Confirming when no
proposal stands is refused at once (409); a proposal withdrawn while the command waits is
refused by the machine and audited as such.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from gyeongbo.settings import Settings
from streams.cap_feed import build_index
from streams.commands import HQCommand, OperatorAction, zone_of_alert
from streams.operators import TokenEntry, TokenFileWatcher
from streams.prom import make_registry, pick_format, render
from streams.web_auth import auth_middleware
from streams.worker_metrics import families

Handler = Any


class DeliveryViews(Protocol):
    """The delivery reports the API serves (:class:`streams.notify.Notifier`)."""

    def summaries(
        self, *, limit: int = 50, event_id: str | None = None
    ) -> list[dict[str, Any]]: ...

    def deliveries(self, event_id: str, *, limit: int = 1000) -> list[dict[str, Any]]: ...


class Worker(Protocol):
    """What the API needs of the worker (:class:`streams.worker.Worker`), so this module does
    not import the worker that mounts it."""

    settings: Settings

    @property
    def notifier(self) -> DeliveryViews: ...

    def health(self) -> dict[str, Any]: ...

    def snapshot(self) -> dict[str, Any]: ...

    def active_alerts(self, exercise: bool | None = None) -> list[dict[str, Any]]: ...

    def audit(self) -> list[dict[str, Any]]: ...

    async def submit_action(self, zone: str, action: OperatorAction) -> None: ...

    def hq_view(self, *, history: int = 20) -> dict[str, Any] | None: ...

    async def submit_hq(self, command: HQCommand) -> None: ...


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


def _who(request: web.Request, body: dict[str, Any]) -> tuple[str, str]:
    """The authenticated operator's id and the body's ``reason``."""
    entry: TokenEntry = request["operator"]
    if "actor" in body and body["actor"] != entry.operator:
        raise web.HTTPBadRequest(
            text="'actor' is not accepted: the audit log records the token's operator "
            f"({entry.operator})"
        )
    reason = body.get("reason")
    if not reason or not isinstance(reason, str):
        raise web.HTTPBadRequest(text="'reason' (why) is required")
    return entry.operator, reason


def web_options(settings: Settings) -> dict[str, Any]:
    """Faust's web settings: bind to ``web_host`` (Faust would bind every interface), and
    none of Faust's own views (tables, graph, stats, router)."""
    w = settings.worker
    return {
        "web_enabled": True,
        "web_bind": w.web_host,
        "web_host": w.web_host,
        "web_port": w.web_port,
        "web_tables_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        "web_router_enabled": False,
        "web_metrics_enabled": False,
    }


def middlewares(worker: Worker) -> list[Any]:
    """The web server's middlewares: operators' authentication (:mod:`streams.web_auth`)."""
    op = worker.settings.operator
    return [auth_middleware(TokenFileWatcher(op.tokens_file), op)]


def routes(worker: Worker) -> list[tuple[str, str, Handler]]:
    """The API's routes (the table in the module docstring), a group per concern."""
    return [
        *_status_routes(worker),
        *_alert_routes(worker),
        *_zone_routes(worker),
        *_hq_routes(worker),
        *_feed_routes(worker),
    ]


def _status_routes(worker: Worker) -> list[tuple[str, str, Handler]]:
    """Health, metrics, the active alerts, the audit log and the operators."""

    async def health(request: web.Request) -> web.Response:
        h = worker.health()
        return _json(h, 200 if h["status"] == "ok" else 503)

    registry = make_registry("gyeongbo_worker", lambda: families(worker.snapshot()))

    async def metrics(request: web.Request) -> web.Response:
        fmt = pick_format(request.headers.get("Accept", ""), request.query.get("format"))
        body, ctype = render(registry, fmt, worker.snapshot)
        return web.Response(body=body, headers={"Content-Type": ctype})

    async def operators(request: web.Request) -> web.Response:
        store = TokenFileWatcher(worker.settings.operator.tokens_file).store()
        return _json([e.public() for e in store.entries.values()])

    async def alerts(request: web.Request) -> web.Response:
        ex = request.query.get("exercise")
        exercise = None if ex is None else ex.lower() in {"1", "true", "yes"}
        return _json(worker.active_alerts(exercise=exercise))

    async def audit(request: web.Request) -> web.Response:
        return _json(worker.audit())

    return [
        ("GET", "/health", health),
        ("GET", "/metrics", metrics),
        ("GET", "/alerts", alerts),
        ("GET", "/audit", audit),
        ("GET", "/operators", operators),
    ]


async def _submit(worker: Worker, zone: str, action: OperatorAction) -> web.Response:
    """Queue an operator's action on ``zone.commands`` (the zone's partition): 202."""
    await worker.submit_action(zone, action)
    return _json({"request_id": action.request_id, "zone": zone, "queued": True}, 202)


def _alert_zone(alert_id: str) -> str:
    try:
        return zone_of_alert(alert_id)
    except ValueError as err:
        raise web.HTTPBadRequest(text=str(err)) from None


def _alert_routes(worker: Worker) -> list[tuple[str, str, Handler]]:
    """Operators' actions on an alert: acknowledge, clear."""

    async def ack(request: web.Request) -> web.Response:
        alert_id = request.match_info["alert_id"]
        actor, reason = _who(request, await _body(request))
        return await _submit(
            worker,
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
        actor, reason = _who(request, body)
        return await _submit(
            worker,
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

    return [
        ("POST", "/alerts/{alert_id}/ack", ack),
        ("POST", "/alerts/{alert_id}/clear", clear),
    ]


def _zone_routes(worker: Worker) -> list[tuple[str, str, Handler]]:
    """Operators' actions on a zone: silence a hazard's repeats, escalate a hazard."""

    async def silence(request: web.Request) -> web.Response:
        body = await _body(request)
        actor, reason = _who(request, body)
        duration = body.get("duration_s")
        if not isinstance(duration, int) or duration <= 0:
            raise web.HTTPBadRequest(text="'duration_s' (positive integer seconds) is required")
        return await _submit(
            worker,
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
        actor, reason = _who(request, body)
        hazard, level = body.get("hazard"), body.get("level")
        if not hazard or level not in {"attention", "caution", "alert", "serious"}:
            raise web.HTTPBadRequest(
                text="'hazard' and 'level' (attention|caution|alert|serious) are required"
            )
        return await _submit(
            worker,
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

    return [
        ("POST", "/zones/{zone}/silence", silence),
        ("POST", "/zones/{zone}/escalate", escalate),
    ]


def _hq_routes(worker: Worker) -> list[tuple[str, str, Handler]]:
    """The headquarters' stage: read it, confirm the proposal or set it, through
    ``hq.inputs``."""

    def _hq_doc() -> dict[str, Any]:
        doc = worker.hq_view()
        if doc is None:
            raise web.HTTPServiceUnavailable(
                text="this worker does not hold the headquarters machine (hq.inputs is "
                "assigned to another worker, or not yet): ask another worker"
            )
        return doc

    async def hq(request: web.Request) -> web.Response:
        return _json(_hq_doc())

    async def submit_hq(command: HQCommand) -> web.Response:
        await worker.submit_hq(command)
        return _json({"request_id": command.command_id, "queued": True}, 202)

    async def hq_confirm(request: web.Request) -> web.Response:
        body = await _body(request)
        actor, reason = _who(request, body)
        exercise = bool(body.get("exercise", False))
        ns = _hq_doc()["exercise" if exercise else "real"]
        if ns["proposed"] is None:
            raise web.HTTPConflict(
                text=f"no stage proposal stands in the {'exercise' if exercise else 'real'} "
                f"namespace (stage {ns['stage']}): nothing to confirm; set a stage by hand "
                "with POST /hq/stage"
            )
        return await submit_hq(
            HQCommand(
                action="confirm",
                actor=actor,
                reason=reason,
                exercise=exercise,
                ts_ms=_now(),
                command_id=uuid.uuid4().hex,
            )
        )

    async def hq_stage(request: web.Request) -> web.Response:
        body = await _body(request)
        actor, reason = _who(request, body)
        stage = body.get("stage")
        if not isinstance(stage, int) or isinstance(stage, bool) or not 0 <= stage <= 3:
            raise web.HTTPBadRequest(text="'stage' (0..3: 0 = 평시, 1..3 = 비상 N단계) is required")
        _hq_doc()  # 503 here rather than a command no one applies soon
        return await submit_hq(
            HQCommand(
                action="stage",
                stage=stage,
                actor=actor,
                reason=reason,
                exercise=bool(body.get("exercise", False)),
                ts_ms=_now(),
                command_id=uuid.uuid4().hex,
            )
        )

    return [
        ("GET", "/hq", hq),
        ("POST", "/hq/confirm", hq_confirm),
        ("POST", "/hq/stage", hq_stage),
    ]


def _feed_routes(worker: Worker) -> list[tuple[str, str, Handler]]:
    """What went out: SMS deliveries per event and the CAP feed."""
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
        ("GET", "/deliveries", deliveries),
        ("GET", "/deliveries/{event_id}", delivery_rows),
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
