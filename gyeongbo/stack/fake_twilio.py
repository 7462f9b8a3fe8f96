"""A local fake of Twilio's Programmable Messaging API, for tests, demos and drills.

Reached by the real ``twilio`` Python client through the configurable API base
(``GYEONGBO_TWILIO__API_BASE``, see :mod:`alerting.twilio_http`). Development tooling only:
nothing in the production path imports it (docs/design.md §10).

Run: ``python -m gyeongbo.stack.fake_twilio --host 127.0.0.1 --port 18088 [--data DIR]
[--auth-token TOKEN] [--callback-delay 0.2] [--no-callbacks]``.

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
    → 21211 (invalid), ``+15005550009`` → 21614 (not a mobile number).
    ``I-Twilio-Idempotency-Token``: a token seen before returns the original message again
    (same sid, 201) without creating a second one; the replay is counted.
    With ``StatusCallback`` the fake posts ``sent`` then ``delivered`` to it, signed with
    ``X-Twilio-Signature`` (Twilio's HMAC-SHA1 scheme, computed by the twilio library).
``GET /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json``
    One message.
``GET /health``
    200 ``{"status": "ok"}``.
``GET /_fake/messages``
    Every message created, plus counters (requests, replays, programmed failures served).
``POST /_fake/fail``
    JSON ``{"status": 429, "code": 20429, "count": 2}`` or ``{"responses": [{"status": 500},
    {"status": 400, "code": 21211}]}``: the next Messages POSTs answer these errors in order.
``POST /_fake/reset``
    Forget messages, tokens and programmed failures.

With ``--data DIR`` messages and idempotency tokens are kept in ``DIR/messages.jsonl`` and
survive a restart of the fake.
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import secrets
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

__all__ = ["FakeTwilio", "main", "make_server"]

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
    """The fake's state (thread-safe); the HTTP handler is a thin shell around it."""

    auth_token: str | None = None
    data: Path | None = None
    callbacks: bool = True
    callback_delay: float = 0.2
    messages: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    counters: dict[str, int] = field(
        default_factory=lambda: {"requests": 0, "replays": 0, "failures_served": 0}
    )
    callback_log: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.data is not None:
            self.data.mkdir(parents=True, exist_ok=True)
            path = self.data / "messages.jsonl"
            if path.exists():
                for line in path.read_text().splitlines():
                    msg = json.loads(line)
                    self.messages.append(msg)
                    if msg.get("_idempotency_token"):
                        self.tokens[msg["_idempotency_token"]] = msg["sid"]

    # ------------------------------------------------------------------ API
    def authorised(self, header: str | None, account: str) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        if user != account or not password:
            return False
        return self.auth_token is None or secrets.compare_digest(password, self.auth_token)

    def create(
        self, account: str, form: dict[str, str], token: str | None
    ) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.counters["requests"] += 1
            if token and token in self.tokens:
                self.counters["replays"] += 1
                return 201, self._public(self._by_sid(self.tokens[token]))
            if self.failures:
                fail = self.failures.pop(0)
                self.counters["failures_served"] += 1
                return int(fail["status"]), _error(
                    int(fail["status"]), fail.get("code"), form.get("To", "")
                )
            to = form.get("To", "")
            if not _E164.match(to):
                return 400, _error(400, 21211, to)
            if to in _MAGIC:
                return 400, _error(400, _MAGIC[to], to)
            if not form.get("From") and not form.get("MessagingServiceSid"):
                return 400, _error(400, 21603)
            if not form.get("Body"):
                return 400, _error(400, 21602)
            now = formatdate(usegmt=True)
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
            self.messages.append(msg)
            if token:
                self.tokens[token] = msg["sid"]
            if self.data is not None:
                with (self.data / "messages.jsonl").open("a") as fh:
                    fh.write(json.dumps(msg, ensure_ascii=False) + "\n")
            public = self._public(msg)
        if self.callbacks and form.get("StatusCallback"):
            threading.Thread(target=self._callbacks, args=(msg,), daemon=True).start()
        return 201, public

    def _by_sid(self, sid: str) -> dict[str, Any]:
        return next(m for m in self.messages if m["sid"] == sid)

    def get(self, account: str, sid: str) -> dict[str, Any] | None:
        with self.lock:
            for m in self.messages:
                if m["sid"] == sid and m["account_sid"] == account:
                    return self._public(m)
        return None

    @staticmethod
    def _public(msg: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in msg.items() if not k.startswith("_")}

    def _callbacks(self, msg: dict[str, Any]) -> None:
        from twilio.request_validator import RequestValidator

        url = msg["_status_callback"]
        for status in ("sent", "delivered"):
            time.sleep(self.callback_delay)
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
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "I-Twilio-Idempotency-Token": f"{msg['sid']}-{status}",
            }
            if self.auth_token:
                headers["X-Twilio-Signature"] = RequestValidator(self.auth_token).compute_signature(
                    url, params
                )
            req = urllib.request.Request(
                url, data=urlencode(params).encode(), headers=headers, method="POST"
            )
            outcome: dict[str, Any] = {"sid": msg["sid"], "status": status}
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    outcome["http_status"] = resp.status
            except Exception as exc:  # a callback receiver that is down is not our failure
                outcome["error"] = str(exc)
            with self.lock:
                self.callback_log.append(outcome)
                self._by_sid(msg["sid"])["status"] = status

    # ------------------------------------------------------------------ control
    def program(self, spec: dict[str, Any]) -> int:
        if "responses" in spec:
            items = [dict(r) for r in spec["responses"]]
        else:
            one = {"status": int(spec.get("status", 500))}
            if spec.get("code") is not None:
                one["code"] = int(spec["code"])
            items = [dict(one) for _ in range(int(spec.get("count", 1)))]
        with self.lock:
            self.failures.extend(items)
            return len(self.failures)

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.tokens.clear()
            self.failures.clear()
            self.callback_log.clear()
            for k in self.counters:
                self.counters[k] = 0
            if self.data is not None:
                (self.data / "messages.jsonl").unlink(missing_ok=True)

    def dump(self) -> dict[str, Any]:
        with self.lock:
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
                **self.counters,
            }


def _segments(body: str) -> int:
    """Segments as Twilio counts them: UCS-2 (70/67 chars) when any non-GSM character."""
    if all(ord(c) < 128 for c in body):
        return 1 if len(body) <= 160 else -(-len(body) // 153)
    return 1 if len(body) <= 70 else -(-len(body) // 67)


def make_server(host: str, port: int, fake: FakeTwilio) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        server_version = "FakeTwilio/1.0"

        def log_message(self, format: str, *args: Any) -> None:  # quiet; phones are personal
            return

        def _send(self, status: int, payload: Any) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                return self._send(200, {"status": "ok"})
            if path == "/_fake/messages":
                return self._send(200, fake.dump())
            m = _ONE_PATH.match(path)
            if m:
                if not fake.authorised(self.headers.get("Authorization"), m["acct"]):
                    return self._send(401, _error(401, 20003))
                msg = fake.get(m["acct"], m["sid"])
                if msg is None:
                    return self._send(404, _error(404, 20404))
                return self._send(200, msg)
            return self._send(404, _error(404, 20404))

        def do_POST(self) -> None:
            path = self.path.split("?", 1)[0]
            body = self._body()
            if path == "/_fake/fail":
                pending = fake.program(json.loads(body or b"{}"))
                return self._send(200, {"pending_failures": pending})
            if path == "/_fake/reset":
                fake.reset()
                return self._send(200, {"status": "reset"})
            m = _MSG_PATH.match(path)
            if not m:
                return self._send(404, _error(404, 20404))
            if not fake.authorised(self.headers.get("Authorization"), m["acct"]):
                return self._send(401, _error(401, 20003))
            form = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            token = self.headers.get("I-Twilio-Idempotency-Token")
            status, payload = fake.create(m["acct"], form, token)
            return self._send(status, payload)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


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
    p.add_argument("--callback-delay", type=float, default=0.2)
    p.add_argument("--no-callbacks", action="store_true")
    args = p.parse_args(argv)
    fake = FakeTwilio(
        auth_token=args.auth_token,
        data=args.data,
        callbacks=not args.no_callbacks,
        callback_delay=args.callback_delay,
    )
    server = make_server(args.host, args.port, fake)
    print(f"fake Twilio listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
