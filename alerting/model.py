"""Small records alerting needs from the outside world, and time and privacy helpers.

``alerting/`` does not import ``geo/``: the worker adapts geo's zone and recipient objects to
the two shapes below (any object with these attributes will do, they are read-only).

* :class:`ZoneInfo` — an impact zone: KOSTAT administrative code or custom id, Korean and
  English names, outer polygon rings as ``(lat, lon)`` pairs (WGS 84), the administrative code
  used as CAP ``geocode``, the province (시도) it lies in (for the headquarters rules,
  docs/design.md §4) and the stations that serve it (the *M* of N-of-M confirmation).
* :class:`Recipient` — an SMS subscriber: E.164 phone, language, hazard opt-ins (empty = all)
  and the drill-recipient flag (docs/design.md §5: a drill reaches drill recipients only).

Times on the wire are RFC 3339 with the Korean offset, as in docs/design.md §11.2.

>>> rfc3339(1596678000000)
'2020-08-06T10:40:00+09:00'
>>> rfc3339(1596678000123)
'2020-08-06T10:40:00.123+09:00'
>>> mask_phone("+821012345678")
'+8210****5678'
>>> province_of("11030"), province_of("hangang-riverside-east")
('11', None)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

__all__ = [
    "KST",
    "Recipient",
    "ZoneInfo",
    "mask_phone",
    "mask_phones_in",
    "parse_rfc3339_ms",
    "province_of",
    "rfc3339",
]

#: Korea Standard Time; Korea has no daylight saving time.
KST = timezone(timedelta(hours=9))

LatLon = tuple[float, float]


@dataclass(frozen=True, slots=True)
class ZoneInfo:
    """An impact zone, as alerting needs it (adapt geo's zone objects to this shape)."""

    id: str
    name: str
    name_en: str = ""
    #: Outer rings, each a sequence of ``(lat, lon)`` pairs; closed or not (CAP closes them).
    rings: Sequence[Sequence[LatLon]] = ()
    #: Administrative (KOSTAT) code for CAP ``geocode``; None for custom zones.
    admin_code: str | None = None
    #: Province (시도) code for the headquarters rules; derived from ``admin_code`` if None.
    province: str | None = None
    #: Stations serving this zone (all kinds); the M of N-of-M. Empty = count those seen.
    stations: tuple[str, ...] = ()

    @property
    def province_code(self) -> str | None:
        return self.province or province_of(self.admin_code or self.id)


@dataclass(frozen=True, slots=True)
class Recipient:
    """An SMS subscriber (adapt geo's recipient objects, or store rows, to this shape)."""

    phone: str
    lang: str = "ko"
    #: Hazards opted into (``Hazard`` values); empty means every public hazard.
    hazards: frozenset[str] = field(default_factory=frozenset)
    #: Drill recipients receive exercises; everyone else never does.
    drill: bool = False
    #: Subscriber id (stable; keys the sent log). Defaults to the phone number.
    id: str = ""
    #: Every zone that concerns the subscriber: located zones and their ancestors, and the
    #: zones overlapping each area they subscribe to (``geo.recipients``).
    zones: tuple[str, ...] = ()
    #: The zones containing the subscriber's location, smallest first (empty: no location).
    located: tuple[str, ...] = ()
    #: A point for "nearest first" (the location, else a point of the first declared zone).
    point: LatLon | None = None

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.phone)

    def wants(self, hazard: str) -> bool:
        return not self.hazards or hazard in self.hazards

    def __repr__(self) -> str:  # phone numbers are personal data (docs/design.md §9)
        return (
            f"Recipient(phone={mask_phone(self.phone)!r}, lang={self.lang!r}, drill={self.drill})"
        )


def province_of(code: str | None) -> str | None:
    """The province (시도) of a KOSTAT code: its first two digits; None for custom zones."""
    if code and len(code) >= 2 and code[:2].isdigit() and code.isdigit():
        return code[:2]
    return None


def rfc3339(ts_ms: int) -> str:
    """Epoch milliseconds → RFC 3339 in KST; milliseconds only when non-zero."""
    dt = datetime.fromtimestamp(ts_ms / 1000, tz=KST)
    spec = "milliseconds" if ts_ms % 1000 else "seconds"
    return dt.isoformat(timespec=spec)


def rfc3339_seconds(ts_ms: int) -> str:
    """RFC 3339 in KST to the second (CAP 1.2 ``sent`` allows no fraction)."""
    return datetime.fromtimestamp(ts_ms // 1000, tz=KST).isoformat(timespec="seconds")


def parse_rfc3339_ms(text: str) -> int:
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


_PHONE = re.compile(r"\+?\d[\d\- ]{6,}\d")


def mask_phone(phone: str) -> str:
    """Keep the country/carrier prefix and the last four digits: ``+8210****5678``."""
    if len(phone) <= 8:
        return "*" * len(phone)
    head = 5 if phone.startswith("+") else 4
    return phone[:head] + "*" * (len(phone) - head - 4) + phone[-4:]


def mask_phones_in(text: str) -> str:
    """Mask every phone-number-looking run in free text (for log lines and error messages).

    >>> mask_phones_in("The 'To' number +821012345678 is not a valid phone number.")
    "The 'To' number +8210****5678 is not a valid phone number."
    """
    return _PHONE.sub(lambda m: mask_phone(m.group(0)), text)
