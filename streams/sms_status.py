"""Twilio delivery-status callbacks: a parser and an aiohttp handler that hands each status on.

Twilio POSTs ``application/x-www-form-urlencoded`` to a message's ``StatusCallback`` URL as its
status moves (queued → sent → delivered / undelivered / failed), with ``MessageSid``,
``MessageStatus``, ``ErrorCode`` (on failure), ``To``, ``AccountSid`` and an
``X-Twilio-Signature`` header: base64 HMAC-SHA1, keyed with the auth token, over the full URL
followed by the sorted POST parameters (https://www.twilio.com/docs/usage/security). The worker
mounts :func:`make_status_handler` on its web server; its ``record`` callback queues each
status for the sent log, which writes them in batches (a fan-out of 100,000 messages brings
200,000 callbacks).

>>> s = parse_status_callback({"MessageSid": "SM1", "MessageStatus": "undelivered",
...                            "ErrorCode": "30003", "To": "+821012345678"})
>>> (s.sid, s.status, s.error_code, s.to_masked)
('SM1', 'undelivered', 30003, '+8210****5678')
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

import msgspec

from alerting.model import mask_phone

__all__ = [
    "DeliveryStatus",
    "StatusError",
    "make_status_handler",
    "parse_status_callback",
]

STATUSES = frozenset(
    {
        "accepted",
        "scheduled",
        "queued",
        "sending",
        "sent",
        "delivered",
        "undelivered",
        "failed",
        "read",
        "canceled",
        "receiving",
        "received",
    }
)


class StatusError(ValueError):
    pass


class DeliveryStatus(msgspec.Struct, frozen=True):
    sid: str
    status: str
    error_code: int | None = None
    to_masked: str | None = None


def parse_status_callback(form: Mapping[str, str]) -> DeliveryStatus:
    sid = form.get("MessageSid") or form.get("SmsSid")
    status = form.get("MessageStatus") or form.get("SmsStatus")
    if not sid or not status:
        raise StatusError("MessageSid and MessageStatus are required")
    if status not in STATUSES:
        raise StatusError(f"unknown MessageStatus {status!r}")
    code = form.get("ErrorCode")
    try:
        error_code = int(code) if code else None
    except ValueError:
        raise StatusError(f"ErrorCode {code!r} is not a number") from None
    to = form.get("To")
    return DeliveryStatus(sid, status, error_code, mask_phone(to) if to else None)


def make_status_handler(
    record: Callable[[DeliveryStatus, int], None],
    *,
    auth_token: str | None,
    public_url: str | None = None,
) -> Callable[..., Awaitable[object]]:
    """An aiohttp handler: validates the signature (when an auth token is configured), hands
    the status to ``record(status, now_ms)``, answers 204; 403 on a bad signature, 400 on a
    malformed callback. ``public_url`` is the URL Twilio was given (the signature covers
    it), when the worker sits behind a proxy."""
    from aiohttp import web
    from twilio.request_validator import RequestValidator

    validator = RequestValidator(auth_token) if auth_token else None

    async def handler(request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        if validator is not None:
            url = public_url or str(request.url)
            sig = request.headers.get("X-Twilio-Signature", "")
            if not validator.validate(url, form, sig):
                return web.Response(status=403, text="bad signature")
        try:
            status = parse_status_callback(form)
        except StatusError as exc:
            return web.Response(status=400, text=str(exc))
        record(status, time.time_ns() // 1_000_000)
        return web.Response(status=204)

    return handler
