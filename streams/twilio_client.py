"""The real ``twilio`` client, asynchronous, pointed at a configurable API base, with
idempotency tokens: the SMS sender of the fan-out (:mod:`streams.fanout`).

``twilio.rest.Client`` builds URLs on ``https://api.twilio.com`` (and other ``*.twilio.com``
hosts). :class:`RedirectingAsyncHttpClient` subclasses the library's own
:class:`twilio.http.async_http_client.AsyncTwilioHttpClient` (aiohttp, one pooled session)
and rewrites those to ``api_base`` (e.g. the local fake at ``http://127.0.0.1:18088``);
with ``api_base=None`` requests go to Twilio. ``messages.create_async`` is what lets one
process keep a hundred requests in flight.

It also adds an ``I-Twilio-Idempotency-Token`` header to the requests made inside
:func:`idempotency_token` (a context variable, so each asyncio task has its own), because
``create_async`` takes no custom headers. Twilio sends this header on its own webhooks so
receivers can de-duplicate retries; the local fake honours it on ``POST …/Messages.json``
(a replayed token returns the original message). Twilio's Messages API does not document
it: against real Twilio the crash window between a request and its recorded outcome can
give one duplicate (docs/design.md §5).

:class:`TwilioSender` turns Twilio's answers into :class:`~alerting.sms.SendResult` or
:class:`~alerting.sms.SmsError` (:func:`alerting.sms.classify`); :class:`DryRunSender`
sends nothing and says so on every message.

>>> rewrite_url("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
...             "http://127.0.0.1:18088/")
'http://127.0.0.1:18088/2010-04-01/Accounts/AC1/Messages.json'
>>> rewrite_url("https://api.twilio.com/x", None)
'https://api.twilio.com/x'
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
import logging
import re
from collections.abc import Iterator
from typing import Any, Protocol
from urllib.parse import quote_plus

from aiohttp import ClientSession, ClientTimeout
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response

from alerting.model import mask_phone
from alerting.sms import SendResult, SmsError, classify
from gyeongbo.settings import TwilioSettings

__all__ = [
    "IDEMPOTENCY_HEADER",
    "DryRunSender",
    "RedirectingAsyncHttpClient",
    "SmsSender",
    "TwilioSender",
    "form_encode",
    "idempotency_token",
    "rewrite_url",
    "sender_from_settings",
]

log = logging.getLogger("gyeongbo.sms")
# The twilio library logs every request's URL and headers at INFO: at a thousand requests a
# second that is most of a worker's time, and the lines carry the numbers. Warnings only.
logging.getLogger("twilio").setLevel(logging.WARNING)

IDEMPOTENCY_HEADER = "I-Twilio-Idempotency-Token"
_TWILIO_HOST = re.compile(r"^https://[A-Za-z0-9.-]*\.twilio\.com(?=/|$)")
_token: contextvars.ContextVar[str | None] = contextvars.ContextVar("twilio_idem", default=None)


def rewrite_url(url: str, api_base: str | None) -> str:
    if not api_base:
        return url
    return _TWILIO_HOST.sub(api_base.rstrip("/"), url, count=1)


@contextlib.contextmanager
def idempotency_token(token: str) -> Iterator[None]:
    reset = _token.set(token)
    try:
        yield
    finally:
        _token.reset(reset)


class RedirectingAsyncHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The library's aiohttp client (its pooled session), its ``request`` done in one step.

    The ``twilio`` client calls ``request`` with the method, URL, form fields, its headers
    and the account's basic auth, and parses the :class:`~twilio.http.response.Response`
    it gets back. This override makes the same HTTP request on the library's session with
    less per-request work than the parent's (a fan-out makes a thousand a second): the
    form is url-encoded here, once per field value seen (a broadcast repeats one body),
    instead of aiohttp building a multipart writer per request; the basic-auth header is
    computed once per credential; the timeout object is made once; the body is decoded as
    the answer's charset, else UTF-8 (Twilio answers JSON). It adds the idempotency token
    and rewrites the URL to ``api_base``.
    """

    def __init__(self, api_base: str | None, *, timeout: float = 15.0) -> None:
        super().__init__(timeout=timeout)
        self.api_base = api_base
        self._timeouts: dict[float, ClientTimeout] = {}
        self._auth: dict[tuple[str, str], str] = {}

    def _timeout(self, seconds: float | None) -> ClientTimeout | None:
        if seconds is None:
            return None
        if seconds <= 0:
            raise ValueError(seconds)
        t = self._timeouts.get(seconds)
        if t is None:
            t = self._timeouts[seconds] = ClientTimeout(total=seconds)
        return t

    def _basic(self, auth: tuple[str, str]) -> str:
        h = self._auth.get(auth)
        if h is None:
            raw = f"{auth[0]}:{auth[1]}".encode()
            h = self._auth[auth] = "Basic " + base64.b64encode(raw).decode()
        return h

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        headers = dict(headers or {})
        token = _token.get()
        if token:
            headers[IDEMPOTENCY_HEADER] = token
        if auth is not None:  # as a header: aiohttp deprecates its BasicAuth argument
            headers["Authorization"] = self._basic(auth)
        body: Any = data
        if isinstance(data, dict):
            body = form_encode(data)
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        kwargs: dict[str, Any] = {
            "method": method.upper(),
            "url": rewrite_url(url, self.api_base),
            "params": params,
            "data": body,
            "headers": headers,
            "timeout": self._timeout(timeout if timeout is not None else self.timeout),
            "allow_redirects": allow_redirects,
        }
        if self.logger.isEnabledFor(logging.INFO):
            self.log_request({**kwargs, "auth": None})
        session = self.session
        if session is None:  # pool_connections=False: a session per request, as the parent
            async with ClientSession() as own:
                return await self._exchange(own, kwargs)
        return await self._exchange(session, kwargs)

    async def _exchange(self, session: Any, kwargs: dict[str, Any]) -> Response:
        async with session.request(**kwargs) as resp:
            raw = await resp.read()
            text = raw.decode(resp.charset or "utf-8", errors="replace")
            if self.logger.isEnabledFor(logging.INFO):
                self.log_response(resp.status, resp)
            return Response(resp.status, text, resp.headers)


@functools.lru_cache(maxsize=1024)
def _quote(value: str) -> str:
    return quote_plus(value)


def form_encode(data: dict[str, object]) -> bytes:
    """``urlencode(data, doseq=True)``, each distinct value quoted once (cached): a
    broadcast sends one body to thousands of numbers.

    >>> from urllib.parse import urlencode
    >>> d = {"To": "+821012345678", "Body": "[긴급] 지진 & 대피", "MediaUrl": ["a b", "c"]}
    >>> form_encode(d) == urlencode(d, doseq=True).encode()
    True
    """
    parts: list[str] = []
    for k, v in data.items():
        key = _quote(str(k))
        if isinstance(v, str):
            parts.append(f"{key}={_quote(v)}")
        elif isinstance(v, (list, tuple)):
            parts.extend(f"{key}={_quote(str(x))}" for x in v)
        else:
            parts.append(f"{key}={_quote(str(v))}")
    return "&".join(parts).encode()


class SmsSender(Protocol):
    name: str
    dry_run: bool

    async def send(self, to: str, body: str, *, token: str) -> SendResult: ...

    async def close(self) -> None: ...


class TwilioSender:
    """Twilio Programmable Messaging through the real ``twilio`` client (asynchronous)."""

    name = "twilio"
    dry_run = False

    def __init__(self, settings: TwilioSettings) -> None:
        from twilio.rest import Client

        if not (settings.account_sid and settings.auth_token):
            raise ValueError("Twilio needs account_sid and auth_token (or use DryRunSender)")
        if not settings.messaging_service_sid:
            raise ValueError(
                "Twilio needs messaging_service_sid (GYEONGBO_TWILIO__MESSAGING_SERVICE_SID)"
            )
        self.settings = settings
        self.http = RedirectingAsyncHttpClient(settings.api_base, timeout=settings.timeout_s)
        self.client = Client(
            settings.account_sid,
            settings.auth_token.get_secret_value(),
            http_client=self.http,
        )
        # The account's message list, resolved once: ``client.messages`` walks three lazy
        # properties per call.
        self.messages: Any = self.client.messages
        self._kwargs: dict[str, str] = {
            "messaging_service_sid": settings.messaging_service_sid,
        }
        if settings.status_callback_url:
            self._kwargs["status_callback"] = settings.status_callback_url

    async def send(self, to: str, body: str, *, token: str) -> SendResult:
        from aiohttp import ClientError
        from twilio.base.exceptions import TwilioRestException

        reset = _token.set(token)  # as idempotency_token(), without a generator per message
        try:
            msg: Any = await self.messages.create_async(to=to, body=body, **self._kwargs)
        except TwilioRestException as exc:
            raise classify(int(exc.status), exc.code, str(exc.msg)) from None
        except (ClientError, TimeoutError, OSError) as exc:
            raise SmsError("transient", f"{type(exc).__name__}: {exc}") from None
        finally:
            _token.reset(reset)
        return SendResult(sid=str(msg.sid), status=str(msg.status))

    async def close(self) -> None:
        await self.http.close()


class DryRunSender:
    """Sends nothing; logs every message it would have sent, loudly."""

    name = "dry-run"
    dry_run = True

    def __init__(self) -> None:
        log.warning("SMS DRY RUN: no Twilio credentials configured; no SMS will be sent")

    async def send(self, to: str, body: str, *, token: str) -> SendResult:
        log.warning("SMS DRY RUN (not sent) to %s: %s", mask_phone(to), body)
        return SendResult(sid="DRYRUN" + token[:26], status="dry_run")

    async def close(self) -> None:
        return None


def sender_from_settings(settings: TwilioSettings) -> SmsSender:
    if settings.account_sid and settings.auth_token:
        return TwilioSender(settings)
    return DryRunSender()
