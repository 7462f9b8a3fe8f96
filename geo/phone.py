"""Phone numbers: E.164 validation and masking (they are personal data, docs/design.md §9).

ITU-T E.164: a ``+``, a country code and the subscriber number, at most 15 digits in all,
never starting with 0. Input may carry spaces, dots, hyphens or parentheses for readability
(``+82 10-0000-0101``); they are dropped, nothing else is rewritten (a national form such as
``010-…`` is refused rather than guessed).

A :class:`PhoneNumber` prints masked in ``str``, ``repr`` and f-strings, so it cannot leak
into a log line by accident; only :attr:`PhoneNumber.e164` gives the digits, for the SMS
provider.

>>> p = PhoneNumber.parse("+82 10-0000-0101")
>>> p
PhoneNumber('+82******0101')
>>> f"to {p}", p.e164
('to +82******0101', '+821000000101')
>>> mask_phone("+821000000101")
'+82******0101'
>>> PhoneNumber.parse("010-0000-0101")
Traceback (most recent call last):
...
ValueError: not an E.164 number: expected '+', a country code and at most 15 digits in all
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["PhoneNumber", "mask_phone"]

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SEPARATORS = re.compile(r"[\s.\-()]")


def mask_phone(number: str) -> str:
    """Keep the ``+``, two leading and four trailing digits; mask the rest.

    Works on anything (also invalid input, so that error messages can use it); numbers too
    short to mask usefully keep only their last two characters.

    >>> mask_phone("+12025550123"), mask_phone("12345"), mask_phone("")
    ('+12*****0123', '***45', '')
    """
    s = _SEPARATORS.sub("", number)
    if len(s) >= 11 and s.startswith("+"):
        return s[:3] + "*" * (len(s) - 7) + s[-4:]
    return "*" * max(len(s) - 2, 0) + s[-2:]


class PhoneNumber:
    """A validated E.164 number that never prints its digits."""

    __slots__ = ("_e164",)

    def __init__(self, e164: str) -> None:
        if not isinstance(e164, str) or not _E164.match(e164):
            raise ValueError(
                "not an E.164 number: expected '+', a country code and at most 15 digits in all"
            )
        self._e164 = e164

    @classmethod
    def parse(cls, raw: Any) -> PhoneNumber:
        """From user input: separators dropped, then validated."""
        if isinstance(raw, PhoneNumber):
            return raw
        if not isinstance(raw, str):
            raise ValueError(f"a phone number must be a string, not {type(raw).__name__}")
        return cls(_SEPARATORS.sub("", raw))

    @property
    def e164(self) -> str:
        """The digits, for the SMS provider only. Never log this."""
        return self._e164

    @property
    def masked(self) -> str:
        return mask_phone(self._e164)

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return f"PhoneNumber({self.masked!r})"

    def __format__(self, spec: str) -> str:
        return format(self.masked, spec)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PhoneNumber) and other._e164 == self._e164

    def __hash__(self) -> int:
        return hash(("PhoneNumber", self._e164))
