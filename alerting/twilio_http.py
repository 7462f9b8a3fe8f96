"""The real ``twilio`` client pointed at a configurable API base, with idempotency tokens.

``twilio.rest.Client`` builds URLs on ``https://api.twilio.com`` (and other ``*.twilio.com``
hosts). :class:`RedirectingHttpClient` subclasses the library's own
:class:`twilio.http.http_client.TwilioHttpClient` and rewrites those to ``api_base`` (e.g. the
local fake at ``http://127.0.0.1:18088``); with ``api_base=None`` requests go to Twilio.

It also adds an ``I-Twilio-Idempotency-Token`` header to the requests made inside
:func:`idempotency_token`, because ``MessageList.create`` takes no custom headers. Twilio
sends this header on its own webhooks so receivers can de-duplicate retries; the local fake
honours it on ``POST …/Messages.json`` (a replayed token returns the original message). A
provider that ignores it leaves the crash window of :mod:`alerting.sentlog` at-least-once.

>>> rewrite_url("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json",
...             "http://127.0.0.1:18088/")
'http://127.0.0.1:18088/2010-04-01/Accounts/AC1/Messages.json'
>>> rewrite_url("https://api.twilio.com/x", None)
'https://api.twilio.com/x'
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from typing import Any

from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response

__all__ = ["IDEMPOTENCY_HEADER", "RedirectingHttpClient", "idempotency_token", "rewrite_url"]

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


class RedirectingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    def __init__(self, api_base: str | None, *, timeout: float = 10.0, **kw: Any) -> None:
        super().__init__(timeout=timeout, **kw)
        self.api_base = api_base

    def request(
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
        return super().request(
            method,
            rewrite_url(url, self.api_base),
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
