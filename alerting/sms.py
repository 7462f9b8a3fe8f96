"""SMS rules that need no network: drill isolation, what a provider's answer means, pacing.

The messages themselves are planned per person by :mod:`alerting.delivery`; the fan-out that
submits them (the real ``twilio`` client, the sent log, status callbacks) is an adapter in
``streams/`` (``streams/fanout.py``, docs/design.md §5). What it decides with lives here:

* **Drill isolation by construction**: :func:`check_drill` refuses an exercise message to a
  recipient without the drill flag, an exercise message without the "[훈련]" prefix, and a
  real message that looks like a drill (``DrillLeakError``). A
  :class:`~alerting.delivery.Notice` cannot be built otherwise, and the fan-out checks again
  just before each request.
* **Provider answers** (:func:`classify`, Twilio's error codes,
  https://www.twilio.com/docs/api/errors): 429 / 20429 → ``rate_limited`` (slow the whole
  fan-out, retry); 5xx and connection errors → ``transient`` (retry with backoff); 21610
  (the recipient replied STOP) → ``opted_out`` (mark the subscriber, never retry); 401 /
  20003 → ``fatal`` (bad credentials: stop, keep what is unsent); 21211, 21614 and any other
  4xx → ``permanent`` (recorded, never retried).
* **Pacing** (:class:`AdaptiveLimit`): how many requests may be in flight. Additive increase,
  multiplicative decrease (AIMD, as TCP congestion control, RFC 5681): each success adds
  ``step/limit`` (``step`` per round of requests: back from half to full within a dozen
  rounds), a rate-limit answer halves the limit — at most once per ``cooldown_s``, since the
  answers to one round of requests come together — and pauses new requests (0.5 s, doubling
  while 429s keep coming with no success between, up to 30 s). Twilio's documented default
  concurrency per account is 100 requests; beyond it it answers 429.

>>> [classify(s, c, "").kind for s, c in [(429, 20429), (503, None), (400, 21211),
...                                        (400, 21614), (401, 20003), (400, 21610)]]
['rate_limited', 'transient', 'permanent', 'permanent', 'fatal', 'opted_out']
>>> t = [0.0]
>>> lim = AdaptiveLimit(maximum=100, minimum=4, clock=lambda: t[0])
>>> lim.limit, lim.on_rate_limited(), lim.limit, lim.cuts
(100, 0.5, 50, 1)
>>> lim.on_rate_limited(), lim.limit, lim.cuts  # the same round of answers: counted once
(0.5, 50, 1)
>>> t[0] = 2.0; lim.on_rate_limited(), lim.limit  # 429s again, no success between: longer
(1.0, 25)
>>> lim.on_success(); t[0] = 4.0; lim.on_rate_limited()  # after a success: from the start
0.5
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from alerting.model import Recipient, mask_phone, mask_phones_in

__all__ = [
    "OPTED_OUT_CODE",
    "PERMANENT_CODES",
    "AdaptiveLimit",
    "DrillLeakError",
    "ErrorKind",
    "SendResult",
    "SmsError",
    "backoff_s",
    "check_drill",
    "classify",
]

#: Twilio: "Attempt to send to unsubscribed recipient" (the recipient replied STOP).
OPTED_OUT_CODE = 21610
#: Twilio: invalid 'To' number; 'To' is not a mobile number.
PERMANENT_CODES = frozenset({21211, 21614})


class DrillLeakError(RuntimeError):
    """An exercise message about to reach a non-drill recipient, or without "[훈련]"."""


ErrorKind = Literal["rate_limited", "transient", "permanent", "opted_out", "fatal"]


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


def check_drill(exercise: bool, recipient: Recipient, body: str, drill_prefix: str) -> None:
    if exercise and not recipient.drill:
        raise DrillLeakError(f"exercise SMS to non-drill recipient {mask_phone(recipient.phone)}")
    if exercise and not body.startswith(drill_prefix):
        raise DrillLeakError("exercise SMS without the drill prefix")
    if not exercise and body.startswith(drill_prefix):
        raise DrillLeakError("a real alert must not look like a drill")
    if not exercise and recipient.drill:
        raise DrillLeakError(f"real SMS to drill handset {mask_phone(recipient.phone)}")


def classify(status: int, code: int | None, message: str) -> SmsError:
    """Map a Twilio error response to what the fan-out does with it (module docstring)."""
    kind: ErrorKind
    if status == 429 or code == 20429:
        kind = "rate_limited"
    elif status >= 500:
        kind = "transient"
    elif status in (401, 403) or code == 20003:
        kind = "fatal"
    elif code == OPTED_OUT_CODE:
        kind = "opted_out"
    else:
        kind = "permanent"
    return SmsError(kind, f"HTTP {status} / {code}: {message}", status=status, code=code)


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before retry ``attempt`` (1 = the first retry): doubling from ``base_s``.

    >>> [backoff_s(a, 0.5, 4.0) for a in (1, 2, 3, 4, 5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    """
    return float(min(max_s, base_s * 2 ** max(0, attempt - 1)))


class AdaptiveLimit:
    """How many requests may be in flight now, and whether to wait (AIMD; module docstring).

    A rate-limit answer halves the limit and pauses new requests, at most once per
    ``cooldown_s`` (the answers to one round of requests come together). The pause doubles
    from ``pause_s`` up to ``max_pause_s`` while rate-limit answers keep coming with no success
    between them, and starts again from ``pause_s`` after a success: a provider that recovered
    is not kept waiting by one message's history.
    """

    def __init__(
        self,
        maximum: int,
        *,
        minimum: int = 1,
        cooldown_s: float = 1.0,
        step: float = 4.0,
        pause_s: float = 0.5,
        max_pause_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError("need 1 <= minimum <= maximum")
        self.maximum, self.minimum, self.cooldown_s, self.clock = (
            maximum,
            minimum,
            cooldown_s,
            clock,
        )
        self.step, self.pause_s, self.max_pause_s = step, pause_s, max_pause_s
        self._limit = float(maximum)
        self._last_cut = -1e18
        self._paused_until = 0.0
        self._pause = 0.0
        self.cuts = 0

    @property
    def limit(self) -> int:
        return max(self.minimum, int(self._limit))

    def on_success(self) -> None:
        self._pause = 0.0
        if self._limit < self.maximum:
            self._limit = min(float(self.maximum), self._limit + self.step / max(1.0, self._limit))

    def on_rate_limited(self) -> float:
        """A 429: maybe halve and pause (see the class docstring); the seconds to wait."""
        now = self.clock()
        if now - self._last_cut >= self.cooldown_s:
            self._last_cut = now
            self._limit = max(float(self.minimum), self._limit / 2)
            self.cuts += 1
            self._pause = min(self.max_pause_s, self._pause * 2) if self._pause else self.pause_s
            self._paused_until = max(self._paused_until, now + self._pause)
        return max(0.0, self._paused_until - now)

    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self.clock())
