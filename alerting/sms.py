"""SMS delivery: who gets a message, providers (Twilio, dry-run), rate limits, retries.

Flow for one alert transition (docs/design.md §5):

1. :func:`plan_deliveries` picks the recipients and renders the text. Drill isolation is
   *by construction*: a :class:`Delivery` cannot be built for an exercise event and a
   recipient without the drill flag, nor without the "[훈련]" prefix (``DrillLeakError``), and
   the dispatcher only ever sends ``Delivery`` objects (and re-checks just before the request).
2. :class:`Dispatcher` checks the :mod:`sent log <alerting.sentlog>` (never a second SMS per
   event and recipient), records the intent, takes a token from the :class:`TokenBucket`
   (Twilio queues per sender and answers HTTP 429 / error 20429 beyond its rate), sends, and
   records the outcome:

   * 429 / 20429 → exponential backoff (doubling from ``backoff_s``, at most ``backoff_max_s``,
     and the whole bucket pauses so the next recipients wait too), then retry;
   * 5xx and connection errors → the same backoff, then retry;
   * 21211 (invalid 'To') and 21614 (not a mobile number), and any other 4xx → recorded as
     ``permanent``, never retried; 401 / 20003 (bad credentials) aborts the dispatch;
   * attempts exhausted → ``failed``; a later dispatch of the same event retries it.

Providers: :class:`TwilioProvider` uses the real ``twilio.rest.Client`` with a Messaging
Service SID and :class:`~alerting.twilio_http.RedirectingHttpClient`; without credentials
:func:`provider_from_settings` returns :class:`DryRunProvider`, which sends nothing and says so
at WARNING on every message. Phone numbers are masked in every log line.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from alerting.model import Recipient, mask_phone, mask_phones_in
from alerting.sentlog import FINAL, SentLog
from alerting.templates import Templates
from alerting.twilio_http import RedirectingHttpClient, idempotency_token
from gyeongbo.events import AlertEvent
from gyeongbo.settings import TwilioSettings

__all__ = [
    "Delivery",
    "DispatchReport",
    "Dispatcher",
    "DrillLeakError",
    "DryRunProvider",
    "SendResult",
    "SmsError",
    "SmsProvider",
    "TokenBucket",
    "TwilioProvider",
    "plan_deliveries",
    "provider_from_settings",
]

log = logging.getLogger("gyeongbo.alerting.sms")

PERMANENT_CODES = frozenset({21211, 21614})


class DrillLeakError(RuntimeError):
    """An exercise message about to reach a non-drill recipient, or without "[훈련]"."""


ErrorKind = Literal["rate_limited", "transient", "permanent", "fatal"]


class SmsError(Exception):
    def __init__(
        self, kind: ErrorKind, message: str, *, status: int | None = None, code: int | None = None
    ) -> None:
        super().__init__(mask_phones_in(message))
        self.kind: ErrorKind = kind
        self.status = status
        self.code = code


@dataclass(frozen=True)
class SendResult:
    sid: str
    status: str


class SmsProvider(Protocol):
    name: str
    dry_run: bool

    def send(self, to: str, body: str, *, token: str) -> SendResult: ...


@dataclass(frozen=True)
class Delivery:
    """One SMS to send; exists only if it is allowed to be sent."""

    event_id: str
    recipient: Recipient
    body: str
    exercise: bool
    drill_prefix: str = "[훈련]"

    def __post_init__(self) -> None:
        check_drill(self.exercise, self.recipient, self.body, self.drill_prefix)

    @property
    def token(self) -> str:
        """Idempotency token: the same for every attempt of this event × recipient."""
        raw = f"{self.event_id}|{self.recipient.phone}".encode()
        return hashlib.sha256(raw).hexdigest()


def check_drill(exercise: bool, recipient: Recipient, body: str, drill_prefix: str) -> None:
    if exercise and not recipient.drill:
        raise DrillLeakError(f"exercise SMS to non-drill recipient {mask_phone(recipient.phone)}")
    if exercise and not body.startswith(drill_prefix):
        raise DrillLeakError("exercise SMS without the drill prefix")
    if not exercise and body.startswith(drill_prefix):
        raise DrillLeakError("a real alert must not look like a drill")
    if not exercise and recipient.drill:
        raise DrillLeakError(f"real SMS to drill handset {mask_phone(recipient.phone)}")


def plan_deliveries(
    event: AlertEvent,
    recipients: Iterable[Recipient],
    templates: Templates,
    *,
    station_names: Mapping[str, str] | None = None,
) -> list[Delivery]:
    """The SMS this event gets: recipients opted into the hazard; for drills, drill recipients
    only. Empty for events that get no SMS (관심, acks, silences, sensor health)."""
    body = templates.render(event, station_names=station_names)
    if body is None:
        return []
    seen: set[str] = set()
    out = []
    for r in recipients:
        if r.phone in seen or not r.wants(event.hazard) or r.drill is not event.exercise:
            continue
        seen.add(r.phone)
        out.append(Delivery(event.event_id, r, body, event.exercise, templates.drill_prefix))
    return out


class TokenBucket:
    """Token bucket rate limiter (``rate`` per second, ``burst`` at most), pausable on 429.

    >>> t = [0.0]
    >>> b = TokenBucket(rate=2, burst=1, clock=lambda: t[0])
    >>> b.wait_time(), b.take(), b.wait_time()
    (0.0, None, 0.5)
    """

    def __init__(
        self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.last = clock()
        self.paused_until = 0.0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def wait_time(self) -> float:
        self._refill()
        pause = max(0.0, self.paused_until - self.clock())
        return max(pause, 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate)

    def take(self) -> None:
        self._refill()
        self.tokens -= 1

    def acquire(self, sleep: Callable[[float], None] = time.sleep) -> None:
        while (w := self.wait_time()) > 0:
            sleep(w)
        self.take()

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self.tokens = 0.0


class TwilioProvider:
    """Twilio Programmable Messaging through the real ``twilio`` client."""

    name = "twilio"
    dry_run = False

    def __init__(self, settings: TwilioSettings, *, timeout: float = 10.0) -> None:
        from twilio.rest import Client

        if not (settings.account_sid and settings.auth_token):
            raise ValueError("Twilio needs account_sid and auth_token (or use DryRunProvider)")
        if not settings.messaging_service_sid:
            raise ValueError(
                "Twilio needs messaging_service_sid (GYEONGBO_TWILIO__MESSAGING_SERVICE_SID)"
            )
        self.settings = settings
        self.client = Client(
            settings.account_sid,
            settings.auth_token.get_secret_value(),
            http_client=RedirectingHttpClient(settings.api_base, timeout=timeout),
        )

    def send(self, to: str, body: str, *, token: str) -> SendResult:
        from requests import RequestException
        from twilio.base.exceptions import TwilioRestException

        kwargs: dict[str, str] = {
            "to": to,
            "body": body,
            "messaging_service_sid": self.settings.messaging_service_sid or "",
        }
        if self.settings.status_callback_url:
            kwargs["status_callback"] = self.settings.status_callback_url
        try:
            with idempotency_token(token):
                msg = self.client.messages.create(**kwargs)
        except TwilioRestException as exc:
            raise classify(int(exc.status), exc.code, str(exc.msg)) from None
        except RequestException as exc:
            raise SmsError("transient", f"{type(exc).__name__}: {exc}") from None
        return SendResult(sid=str(msg.sid), status=str(msg.status))


def classify(status: int, code: int | None, message: str) -> SmsError:
    """Map a Twilio error response to what the dispatcher does with it.

    >>> [classify(s, c, "").kind for s, c in [(429, 20429), (503, None), (400, 21211),
    ...                                        (400, 21614), (401, 20003), (400, 21610)]]
    ['rate_limited', 'transient', 'permanent', 'permanent', 'fatal', 'permanent']
    """
    if status == 429 or code == 20429:
        kind: ErrorKind = "rate_limited"
    elif status >= 500:
        kind = "transient"
    elif status in (401, 403) or code == 20003:
        kind = "fatal"
    else:
        kind = "permanent"
    return SmsError(kind, f"HTTP {status} / {code}: {message}", status=status, code=code)


class DryRunProvider:
    """Sends nothing; logs every message it would have sent, loudly."""

    name = "dry-run"
    dry_run = True

    def __init__(self) -> None:
        log.warning("SMS DRY RUN: no Twilio credentials configured; no SMS will be sent")

    def send(self, to: str, body: str, *, token: str) -> SendResult:
        log.warning("SMS DRY RUN (not sent) to %s: %s", mask_phone(to), body)
        return SendResult(sid="DRYRUN" + token[:26], status="dry_run")


def provider_from_settings(settings: TwilioSettings) -> SmsProvider:
    if settings.account_sid and settings.auth_token:
        return TwilioProvider(settings)
    return DryRunProvider()


@dataclass
class DispatchReport:
    event_id: str
    #: masked phone → outcome (sent, dry_run, already_sent, permanent, failed, unknown, …)
    outcomes: dict[str, str] = field(default_factory=dict)

    def count(self, outcome: str) -> int:
        return sum(1 for v in self.outcomes.values() if v == outcome)


class Dispatcher:
    """Sends the SMS of alert transitions, exactly once per (event, recipient)."""

    def __init__(
        self,
        provider: SmsProvider,
        sentlog: SentLog,
        templates: Templates,
        *,
        rate: TokenBucket | None = None,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 30.0,
        on_unknown: Literal["resend", "skip"] = "resend",
        sleep: Callable[[float], None] = time.sleep,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.provider, self.sentlog, self.templates = provider, sentlog, templates
        self.rate = rate or TokenBucket(rate=10, burst=10)
        self.max_attempts, self.backoff_s, self.backoff_max_s = (
            max_attempts,
            backoff_s,
            backoff_max_s,
        )
        self.on_unknown = on_unknown
        self.sleep, self.now_ms = sleep, now_ms

    def dispatch(
        self,
        event: AlertEvent,
        recipients: Iterable[Recipient],
        *,
        station_names: Mapping[str, str] | None = None,
    ) -> DispatchReport:
        report = DispatchReport(event.event_id)
        for d in plan_deliveries(event, recipients, self.templates, station_names=station_names):
            report.outcomes[mask_phone(d.recipient.phone)] = self.deliver(d)
        return report

    def deliver(self, d: Delivery) -> str:
        phone = d.recipient.phone
        prior = self.sentlog.get(d.event_id, phone)
        if prior is not None and prior.state in FINAL:
            return "already_" + prior.state
        if prior is not None and prior.state == "intent" and self.on_unknown == "skip":
            self.sentlog.finish(
                d.event_id,
                phone,
                state="unknown",
                now_ms=self.now_ms(),
                error="crashed between request and outcome; not re-sent",
            )
            log.error(
                "SMS %s to %s: outcome unknown after a crash; not re-sent (at-most-once)",
                d.event_id,
                mask_phone(phone),
            )
            return "unknown"
        delay = self.backoff_s
        last: SmsError | None = None
        for _attempt in range(self.max_attempts):
            self.rate.acquire(self.sleep)
            self.sentlog.begin(
                d.event_id, phone, token=d.token, now_ms=self.now_ms(), exercise=d.exercise
            )
            check_drill(d.exercise, d.recipient, d.body, d.drill_prefix)  # belt and braces
            try:
                res = self.provider.send(phone, d.body, token=d.token)
            except SmsError as exc:
                last = exc
                if exc.kind == "fatal":
                    self.sentlog.finish(
                        d.event_id,
                        phone,
                        state="failed",
                        now_ms=self.now_ms(),
                        error_code=exc.code,
                        error=str(exc),
                    )
                    log.error("SMS provider refused our credentials: %s", exc)
                    raise
                if exc.kind == "permanent":
                    self.sentlog.finish(
                        d.event_id,
                        phone,
                        state="permanent",
                        now_ms=self.now_ms(),
                        error_code=exc.code,
                        error=str(exc),
                    )
                    log.warning(
                        "SMS %s to %s failed permanently: %s", d.event_id, mask_phone(phone), exc
                    )
                    return "permanent"
                log.warning(
                    "SMS %s to %s: %s; retrying in %.2fs", d.event_id, mask_phone(phone), exc, delay
                )
                if exc.kind == "rate_limited":
                    self.rate.pause(delay)
                else:
                    self.sleep(delay)
                delay = min(self.backoff_max_s, delay * 2)
                continue
            state: Literal["sent", "dry_run"] = "dry_run" if self.provider.dry_run else "sent"
            self.sentlog.finish(d.event_id, phone, state=state, sid=res.sid, now_ms=self.now_ms())
            log.info("SMS %s to %s: %s (%s)", d.event_id, mask_phone(phone), state, res.sid)
            return state
        self.sentlog.finish(
            d.event_id,
            phone,
            state="failed",
            now_ms=self.now_ms(),
            error_code=last.code if last else None,
            error=str(last),
        )
        return "failed"
