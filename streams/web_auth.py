"""Who may call the worker's HTTP API: bearer tokens, roles, no browsers (docs/design.md §9).

An aiohttp middleware in front of every route of the worker's web server, Faust's own views
included (default deny):

* open: ``GET /health``, ``GET /metrics`` (counters only: no alert, zone, person or token;
  Prometheus scrapes it), ``POST /twilio/status`` (Twilio signs its callbacks; the handler
  checks the signature);
* everything else needs ``Authorization: Bearer <token>`` with a token of the tokens file
  (:mod:`streams.operators`) and a role: ``viewer`` for reads, ``operator`` for actions,
  ``admin`` for ``/operators`` and anything else. Missing or wrong → 401; a known token
  without the role → 403;
* no browser can act for an operator: the API sets no cookies and sends no CORS headers, a
  request that carries an ``Origin`` (browsers add it to cross-site requests) not listed in
  ``GYEONGBO_OPERATOR__ALLOWED_ORIGINS`` is refused (403), and a POST must be
  ``application/json`` (415) — a cross-site form or ``text/plain`` POST can neither pass nor
  carry the token header;
* failed authentications are logged (address, method, path, why; never the token) and
  counted per client address: after ``max_failures`` within ``lockout_s`` that address gets
  429 with ``Retry-After`` until the window has passed.

The authenticated :class:`~streams.operators.TokenEntry` is ``request["operator"]``; actions
record its operator id in the audit log, never a name from the request body.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web

from gyeongbo.settings import OperatorSettings
from streams.operators import Role, TokenFileWatcher, role_at_least

__all__ = ["FailureLimiter", "auth_middleware", "required_role"]

log = logging.getLogger("gyeongbo.web_auth")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Routes anyone may call (the Twilio callback checks its own signature).
OPEN: Final = frozenset({("GET", "/health"), ("GET", "/metrics"), ("POST", "/twilio/status")})
_VIEW_PREFIXES: Final = ("/alerts", "/audit", "/cap/", "/deliveries", "/hq")
_ACTIONS: Final = ("/alerts/", "/zones/", "/hq/")


def required_role(method: str, path: str) -> Role | None:
    """The role a request needs; None for the open routes.

    >>> required_role("GET", "/health"), required_role("GET", "/alerts")
    (None, 'viewer')
    >>> required_role("GET", "/deliveries"), required_role("GET", "/deliveries/e1")
    ('viewer', 'viewer')
    >>> required_role("POST", "/zones/11030/escalate"), required_role("GET", "/table/")
    ('operator', 'admin')
    >>> required_role("GET", "/hq"), required_role("POST", "/hq/confirm")
    ('viewer', 'operator')
    """
    if (method, path) in OPEN or (method == "HEAD" and ("GET", path) in OPEN):
        return None
    if method in ("GET", "HEAD") and path.startswith(_VIEW_PREFIXES):
        return "viewer"
    if method == "POST" and path.startswith(_ACTIONS):
        return "operator"
    return "admin"


class FailureLimiter:
    """Failed authentications per client address in a sliding window.

    >>> lim = FailureLimiter(max_failures=2, window_s=10)
    >>> lim.fail("a", 0.0); lim.fail("a", 1.0); lim.retry_after("a", 2.0)
    8.0
    >>> lim.retry_after("a", 11.5), lim.retry_after("b", 2.0)
    (0.0, 0.0)
    """

    def __init__(self, max_failures: int, window_s: float) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._fails: dict[str, deque[float]] = {}

    def _prune(self, key: str, now: float) -> deque[float]:
        q = self._fails.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.window_s:
            q.popleft()
        if not q:
            del self._fails[key]
        return q

    def fail(self, key: str, now: float) -> None:
        self._prune(key, now)
        self._fails.setdefault(key, deque()).append(now)
        if len(self._fails) > 10_000:  # bound the memory an address scan can take
            oldest = min(self._fails, key=lambda k: self._fails[k][-1])
            del self._fails[oldest]

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        q = self._prune(key, now)
        if len(q) < self.max_failures:
            return 0.0
        return round(q[len(q) - self.max_failures] + self.window_s - now, 1)


def _refuse(status: int, text: str, **headers: str) -> web.Response:
    return web.json_response({"error": text}, status=status, headers=headers or None)


def auth_middleware(
    watcher: TokenFileWatcher,
    settings: OperatorSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
    """The middleware (see the module docstring)."""
    limiter = FailureLimiter(settings.max_failures, settings.lockout_s)
    origins = set(settings.allowed_origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        method, path = request.method, request.path
        needed = required_role(method, path)
        if needed is None:
            return await handler(request)
        peer = request.remote or "?"
        origin = request.headers.get("Origin")
        if origin is not None and origin not in origins:
            log.warning("refused %s %s from %s: foreign Origin %r", method, path, peer, origin)
            return _refuse(403, "cross-origin requests are refused")
        if method not in ("GET", "HEAD") and request.content_type != "application/json":
            log.warning(
                "refused %s %s from %s: Content-Type %r", method, path, peer, request.content_type
            )
            return _refuse(415, "requests must be application/json")
        now = clock()
        wait = limiter.retry_after(peer, now)
        if wait > 0:
            log.warning("refused %s %s from %s: too many failed attempts", method, path, peer)
            return _refuse(429, "too many failed attempts", **{"Retry-After": str(int(wait) + 1)})
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        store = watcher.store()
        if watcher.error:
            log.error("operator tokens not (re)loaded: %s", watcher.error)
        entry = store.verify(token.strip()) if scheme.lower() == "bearer" else None
        if entry is None:
            limiter.fail(peer, now)
            why = "no bearer token" if not token else "unknown or revoked token"
            log.warning("refused %s %s from %s: %s", method, path, peer, why)
            return _refuse(401, why, **{"WWW-Authenticate": 'Bearer realm="gyeongbo"'})
        if not role_at_least(entry.role, needed):
            log.warning(
                "refused %s %s from %s: %s is %s, needs %s",
                method,
                path,
                peer,
                entry.operator,
                entry.role,
                needed,
            )
            return _refuse(403, f"{entry.operator} is {entry.role}; this needs {needed}")
        request["operator"] = entry
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        return response

    return middleware
