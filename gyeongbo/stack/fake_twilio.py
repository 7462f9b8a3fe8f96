"""A local fake of Twilio's Programmable Messaging API, for tests, demos, drills and benchmarks.

Reached by the real ``twilio`` Python client through the configurable API base
(``GYEONGBO_TWILIO__API_BASE``, see ``streams/twilio_client.py``). Development tooling
only: nothing in the production path imports it (docs/design.md §10).

Run: ``python -m gyeongbo.stack.fake_twilio --host 127.0.0.1 --port 18088 [--data DIR]
[--auth-token TOKEN] [--latency-ms 50-150] [--callback-delay 0.2] [--no-callbacks]
[--stop-number +8210…]``.

One asyncio process (aiohttp): a request's latency is a timer, not a thread, so it serves a
thousand concurrent requests; ``GET /_fake/stats`` reports the most it had in flight, which
a benchmark compares with its own bound.

What it serves, shaped like Twilio's API (https://www.twilio.com/docs/messaging/api/message-resource
and https://www.twilio.com/docs/usage/twilios-response):

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``
    Form fields ``To``, ``From`` or ``MessagingServiceSid``, ``Body``, ``StatusCallback``.
    HTTP basic auth: the user must be the AccountSid of the path, and the password the
    ``--auth-token`` when one is set (any non-empty one otherwise); else 401 / error 20003.
    Validation like Twilio's: ``To`` must be E.164 (else 400 / 21211), a sender is required
    (21603), a body is required (21602). Success is 201 with the message JSON (``sid`` ``SM…``,
    ``status`` ``accepted`` when sent through a Messaging Service, ``queued`` with ``From``).
    Numbers starting ``+1500555`` are Twilio's magic test numbers for errors: ``+15005550001``
    → 21211 (invalid), ``+15005550009`` → 21614 (not a mobile number). Numbers given with
    ``--stop-number`` (or ``/_fake/config``) answer 400 / 21610: the handset replied STOP.
    ``I-Twilio-Idempotency-Token``: a token seen before returns the original message again
    (same sid, 201) without creating a second one; the replay is counted.
    Each answer waits a latency drawn uniformly from ``latency_ms`` (default none).
    With ``StatusCallback`` the fake posts ``sent`` then ``delivered`` to it, signed with
    ``X-Twilio-Signature`` (Twilio's HMAC-SHA1 scheme, computed by the twilio library).
``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json``
    One message.
``GET /health``
    200 ``{"status": "ok"}``.
``GET /_fake/messages``
    Every message created, plus counters (requests, replays, programmed failures served).
``GET /_fake/stats``
    Counters only, with messages per handset (``per_to``; ``?per_to=0`` leaves it out and
    gives ``handsets``, how many got one) and the most requests in flight.
``POST /_fake/fail``
    JSON ``{"status": 429, "code": 20429, "count": 2}`` or ``{"responses": [{"status": 500},
    {"status": 400, "code": 21211}]}``: the next Messages POSTs answer these errors in order.
``POST /_fake/burst``
    JSON ``{"count": N, "after": K}``: a 429 burst — after K more requests, the next N answer
    429 / 20429 (``Retry-After: 1``) with no latency, as an overloaded account does.
``POST /_fake/config``
    JSON with any of ``latency_ms`` ([min, max]), ``stop_numbers`` (list), ``callbacks``
    (bool), ``callback_delay`` (s).
``POST /_fake/reset``
    Forget messages, tokens, programmed failures and counters.

With ``--data DIR`` messages and idempotency tokens are kept in ``DIR/messages.jsonl`` and
survive a restart of the fake.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import IO, Any

from aiohttp import ClientSession, ClientTimeout, web

__all__ = ["FakeTwilio", "main", "make_app"]

_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_MSG_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<acct>AC\w+)/Messages\.json$")
_ONE_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<acct>AC\w+)/Messages/(?P<sid>SM\w+)\.json$")

_ERRORS: dict[int, str] = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "The 'To' number {to} is not a valid phone number.",
    21602: "Message body is required.",
    21603: "The 'From' phone number or MessagingServiceSid is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number {to} is not a valid mobile number",
    20503: "Service Unavailable",
    20404: "The requested resource was not found",
}
_MAGIC = {"+15005550001": 21211, "+15005550009": 21614}


def _error(status: int, code: int | None, to: str = "") -> dict[str, Any]:
    code = code or {429: 20429, 500: 20500, 503: 20503, 401: 20003}.get(status, 20500)
    return {
        "code": code,
        "message": _ERRORS.get(code, "Error").format(to=to),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class FakeTwilio:
    """The fake's state; the aiohttp handlers of :func:`make_app` are a thin shell."""

    auth_token: str | None = None
    data: Path | None = None
    callbacks: bool = True
    callback_delay: float = 0.2
    latency_ms: tuple[float, float] = (0.0, 0.0)
    stop_numbers: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)
    by_sid: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    burst_after: int = 0
    burst_left: int = 0
    counters: Counter[str] = field(default_factory=Counter)
    per_to: Counter[str] = field(default_factory=Counter)
    callback_log: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    _file: IO[str] | None = None
    _auth_seen: dict[tuple[str, str], bool] = field(default_factory=dict)
    _date: tuple[int, str] = (0, "")

    def __post_init__(self) -> None:
        if self.data is not None:
            self.data.mkdir(parents=True, exist_ok=True)
            path = self.data / "messages.jsonl"
            if path.exists():
                for line in path.read_text().splitlines():
                    self._remember(json.loads(line))
            self._file = path.open("a", encoding="utf-8")

    def _remember(self, msg: dict[str, Any]) -> None:
        self.messages.append(msg)
        self.by_sid[msg["sid"]] = msg
        self.per_to[msg["to"]] += 1
        if msg.get("_idempotency_token"):
            self.tokens[msg["_idempotency_token"]] = msg["sid"]

    # ------------------------------------------------------------------ API
    def authorised(self, header: str | None, account: str) -> bool:
        if not header:
            return False
        key = (header, account)
        ok = self._auth_seen.get(key)
        if ok is None:
            ok = self._auth_seen[key] = self._check_auth(header, account)
            if len(self._auth_seen) > 1024:  # every header a new one: remember few
                self._auth_seen.clear()
        return ok

    def _check_auth(self, header: str, account: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        if user != account or not password:
            return False
        return self.auth_token is None or secrets.compare_digest(password, self.auth_token)

    def latency(self) -> float:
        lo, hi = self.latency_ms
        return random.uniform(lo, hi) / 1000 if hi > 0 else 0.0

    def rate_limited(self) -> bool:
        """Whether this request falls in a 429 burst (counts the burst down)."""
        if self.burst_left <= 0:
            return False
        if self.burst_after > 0:
            self.burst_after -= 1
            return False
        self.burst_left -= 1
        return True

    def create(
        self, account: str, form: dict[str, str], token: str | None
    ) -> tuple[int, dict[str, Any]]:
        self.counters["requests"] += 1
        if token and token in self.tokens:
            self.counters["replays"] += 1
            return 201, self._public(self.by_sid[self.tokens[token]])
        if self.failures:
            fail = self.failures.pop(0)
            self.counters["failures_served"] += 1
            status = int(fail["status"])
            return status, _error(status, fail.get("code"), form.get("To", ""))
        to = form.get("To", "")
        if not _E164.match(to):
            return 400, _error(400, 21211, to)
        if to in _MAGIC:
            return 400, _error(400, _MAGIC[to], to)
        if to in self.stop_numbers:
            self.counters["opted_out"] += 1
            return 400, _error(400, 21610, to)
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return 400, _error(400, 21603)
        if not form.get("Body"):
            return 400, _error(400, 21602)
        now = self._now()
        body = form["Body"]
        msg: dict[str, Any] = {
            "account_sid": account,
            "api_version": "2010-04-01",
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": form.get("MessagingServiceSid"),
            "num_media": "0",
            "num_segments": str(_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": "SM" + secrets.token_hex(16),
            "status": "queued" if form.get("From") else "accepted",
            "subresource_uris": {},
            "to": to,
            "uri": "",
            "_status_callback": form.get("StatusCallback"),
            "_idempotency_token": token,
            "_received_at": time.time(),
        }
        msg["uri"] = f"/2010-04-01/Accounts/{account}/Messages/{msg['sid']}.json"
        self._remember(msg)
        if self._file is not None:
            self._file.write(json.dumps(msg, ensure_ascii=False) + "\n")
            self._file.flush()
        return 201, self._public(msg)

    def _now(self) -> str:
        """RFC 2822 date of this second (formatted once a second: a fan-out makes ~1,000)."""
        sec = int(time.time())
        if self._date[0] != sec:
            self._date = (sec, formatdate(sec, usegmt=True))
        return self._date[1]

    def get(self, account: str, sid: str) -> dict[str, Any] | None:
        m = self.by_sid.get(sid)
        return self._public(m) if m is not None and m["account_sid"] == account else None

    @staticmethod
    def _public(msg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in msg.items() if not k.startswith("_")}

    async def send_callbacks(self, session: ClientSession, msg: dict[str, Any]) -> None:
        from twilio.request_validator import RequestValidator

        url = msg["_status_callback"]
        for status in ("sent", "delivered"):
            await asyncio.sleep(self.callback_delay)
            params = {
                "AccountSid": msg["account_sid"],
                "ApiVersion": "2010-04-01",
                "MessageSid": msg["sid"],
                "MessageStatus": status,
                "SmsSid": msg["sid"],
                "SmsStatus": status,
                "To": msg["to"],
            }
            if msg.get("messaging_service_sid"):
                params["MessagingServiceSid"] = msg["messaging_service_sid"]
            headers = {"I-Twilio-Idempotency-Token": f"{msg['sid']}-{status}"}
            if self.auth_token:
                headers["X-Twilio-Signature"] = RequestValidator(self.auth_token).compute_signature(
                    url, params
                )
            outcome: dict[str, Any] = {"sid": msg["sid"], "status": status}
            try:
                async with session.post(url, data=params, headers=headers) as resp:
                    outcome["http_status"] = resp.status
            except Exception as exc:  # a callback receiver that is down is not our failure
                outcome["error"] = str(exc)
            self.callback_log.append(outcome)
            msg["status"] = status

    # ------------------------------------------------------------------ control
    def program(self, spec: dict[str, Any]) -> int:
        if "responses" in spec:
            items = [dict(r) for r in spec["responses"]]
        else:
            one = {"status": int(spec.get("status", 500))}
            if spec.get("code") is not None:
                one["code"] = int(spec["code"])
            items = [dict(one) for _ in range(int(spec.get("count", 1)))]
        self.failures.extend(items)
        return len(self.failures)

    def configure(self, spec: dict[str, Any]) -> dict[str, Any]:
        if "latency_ms" in spec:
            lo, hi = (float(x) for x in spec["latency_ms"])
            self.latency_ms = (lo, hi)
        if "stop_numbers" in spec:
            self.stop_numbers = set(spec["stop_numbers"])
        if "callbacks" in spec:
            self.callbacks = bool(spec["callbacks"])
        if "callback_delay" in spec:
            self.callback_delay = float(spec["callback_delay"])
        return {
            "latency_ms": list(self.latency_ms),
            "stop_numbers": len(self.stop_numbers),
            "callbacks": self.callbacks,
            "callback_delay": self.callback_delay,
        }

    def reset(self) -> None:
        self.messages.clear()
        self.by_sid.clear()
        self.tokens.clear()
        self.failures.clear()
        self.callback_log.clear()
        self.counters.clear()
        self.per_to.clear()
        self.burst_left = self.burst_after = 0
        self.max_in_flight = self.in_flight
        if self.data is not None:
            if self._file is not None:
                self._file.close()
            path = self.data / "messages.jsonl"
            path.unlink(missing_ok=True)
            self._file = path.open("a", encoding="utf-8")

    def stats(self, *, per_to: bool = True) -> dict[str, Any]:
        """Counters; ``per_to`` (messages per handset) only when asked: at 10⁵ handsets it is
        megabytes, too much for a poll every second."""
        out = {
            "requests": self.counters["requests"],
            "replays": self.counters["replays"],
            "failures_served": self.counters["failures_served"],
            "rate_limited": self.counters["rate_limited"],
            "opted_out": self.counters["opted_out"],
            "messages": len(self.messages),
            "max_in_flight": self.max_in_flight,
            "in_flight": self.in_flight,
            "first_created": self.messages[0]["_received_at"] if self.messages else None,
            "last_created": self.messages[-1]["_received_at"] if self.messages else None,
            "pending_failures": len(self.failures),
            "burst_left": self.burst_left,
            "handsets": len(self.per_to),
        }
        if per_to:
            out["per_to"] = dict(self.per_to)
        return out

    def dump(self) -> dict[str, Any]:
        return {
            "messages": [
                dict(
                    self._public(m),
                    status_callback=m["_status_callback"],
                    idempotency_token=m["_idempotency_token"],
                )
                for m in self.messages
            ],
            "pending_failures": len(self.failures),
            "callbacks": list(self.callback_log),
            "requests": self.counters["requests"],
            "replays": self.counters["replays"],
            "failures_served": self.counters["failures_served"],
            "rate_limited": self.counters["rate_limited"],
            "max_in_flight": self.max_in_flight,
        }


def _segments(body: str) -> int:
    """Segments as Twilio counts them: UCS-2 (70/67 chars) when any non-GSM character."""
    if all(ord(c) < 128 for c in body):
        return 1 if len(body) <= 160 else -(-len(body) // 153)
    return 1 if len(body) <= 70 else -(-len(body) // 67)


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(payload, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def make_app(fake: FakeTwilio) -> web.Application:
    tasks: set[asyncio.Task[None]] = set()
    session: dict[str, ClientSession] = {}

    async def _session() -> ClientSession:
        if "s" not in session:
            session["s"] = ClientSession(timeout=ClientTimeout(total=5))
        return session["s"]

    async def health(request: web.Request) -> web.Response:
        return _json({"status": "ok"})

    async def messages(request: web.Request) -> web.Response:
        return _json(fake.dump())

    async def stats(request: web.Request) -> web.Response:
        return _json(fake.stats(per_to=request.query.get("per_to") != "0"))

    async def fail(request: web.Request) -> web.Response:
        return _json({"pending_failures": fake.program(await _body(request))})

    async def burst(request: web.Request) -> web.Response:
        spec = await _body(request)
        fake.burst_left = int(spec.get("count", 100))
        fake.burst_after = int(spec.get("after", 0))
        return _json({"burst_left": fake.burst_left, "after": fake.burst_after})

    async def config(request: web.Request) -> web.Response:
        return _json(fake.configure(await _body(request)))

    async def reset(request: web.Request) -> web.Response:
        fake.reset()
        return _json({"status": "reset"})

    async def one(request: web.Request) -> web.Response:
        acct, sid = request.match_info["acct"], request.match_info["sid"]
        if not fake.authorised(request.headers.get("Authorization"), acct):
            return _json(_error(401, 20003), 401)
        msg = fake.get(acct, sid)
        return _json(msg, 200) if msg is not None else _json(_error(404, 20404), 404)

    async def create(request: web.Request) -> web.Response:
        acct = request.match_info["acct"]
        fake.in_flight += 1
        fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            if not fake.authorised(request.headers.get("Authorization"), acct):
                return _json(_error(401, 20003), 401)
            form = {k: str(v) for k, v in (await request.post()).items()}
            if fake.rate_limited():
                fake.counters["requests"] += 1
                fake.counters["rate_limited"] += 1
                return _json(_error(429, 20429, form.get("To", "")), 429, {"Retry-After": "1"})
            delay = fake.latency()
            if delay:
                await asyncio.sleep(delay)
            token = request.headers.get("I-Twilio-Idempotency-Token")
            created = len(fake.messages)
            status, payload = fake.create(acct, form, token)
            new = len(fake.messages) > created  # not a replay of a known token
            if new and fake.callbacks and form.get("StatusCallback"):
                msg = fake.by_sid[payload["sid"]]
                t = asyncio.create_task(fake.send_callbacks(await _session(), msg))
                tasks.add(t)
                t.add_done_callback(tasks.discard)
            headers = {"Retry-After": "1"} if status == 429 else None
            return _json(payload, status, headers)
        finally:
            fake.in_flight -= 1

    async def not_found(request: web.Request) -> web.Response:
        return _json(_error(404, 20404), 404)

    async def cleanup(app: web.Application) -> None:
        for t in list(tasks):
            t.cancel()
        if "s" in session:
            await session["s"].close()

    app = web.Application()
    # The Messages POST first: routes are matched in order, and it is the hot one.
    app.router.add_post("/2010-04-01/Accounts/{acct:AC\\w+}/Messages.json", create)
    app.router.add_get("/health", health)
    app.router.add_get("/_fake/messages", messages)
    app.router.add_get("/_fake/stats", stats)
    app.router.add_post("/_fake/fail", fail)
    app.router.add_post("/_fake/burst", burst)
    app.router.add_post("/_fake/config", config)
    app.router.add_post("/_fake/reset", reset)
    app.router.add_get("/2010-04-01/Accounts/{acct:AC\\w+}/Messages/{sid:SM\\w+}.json", one)
    app.router.add_route("*", "/{tail:.*}", not_found)
    app.on_cleanup.append(cleanup)
    return app


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    data = json.loads(raw or b"{}")
    return data if isinstance(data, dict) else {}


def _latency(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition("-")
    return float(lo), float(hi or lo)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m gyeongbo.stack.fake_twilio",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18088)
    p.add_argument("--data", type=Path, default=None, help="folder to keep messages in")
    p.add_argument("--auth-token", default=None, help="accept only this auth token")
    p.add_argument("--latency-ms", type=_latency, default=(0.0, 0.0), help="e.g. 50-150")
    p.add_argument("--callback-delay", type=float, default=0.2)
    p.add_argument("--no-callbacks", action="store_true")
    p.add_argument("--stop-number", action="append", default=[], help="answer 21610 for it")
    args = p.parse_args(argv)
    fake = FakeTwilio(
        auth_token=args.auth_token,
        data=args.data,
        callbacks=not args.no_callbacks,
        callback_delay=args.callback_delay,
        latency_ms=args.latency_ms,
        stop_numbers=set(args.stop_number),
    )
    print(f"fake Twilio listening on http://{args.host}:{args.port}", flush=True)
    web.run_app(
        make_app(fake),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=1024,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()
