"""Recipients: subscribers, where they are, what they opted into, and who gets an alert.

``config/recipients.yaml`` (``Settings.paths.recipients``)::

    version: "2026-11-22.1"
    recipients:
      - id: res-yongsan-001
        phone: "+82 10-0000-0101"     # E.164; separators allowed; printed masked everywhere
        language: ko                  # ko | en
        location: {lat: 37.5299, lon: 126.9648}   # and/or
        zones: ["11030"]              # KOSTAT codes or custom zone ids
        hazards: [flood, heavy_rain, earthquake]  # or [all]: every public hazard
        drill: false                  # true: an exercise handset, gets drills and only drills
        consent: 2026-11-01T09:00:00+09:00       # when they agreed to be messaged (optional)

A recipient's zones are

* for a ``location``: the zones holding the point — its 동, 구, province, the drawn custom
  zones around it — and everything above them (its 권역);
* for each named zone, an area the recipient subscribes to: that zone, the zones containing
  it, its sub-zones, and the custom zones sharing area with it
  (:meth:`~geo.zones.ZoneRegistry.overlapping`), since an alert for any of them may concern
  that area. A drill handset on ``"11"`` hears every Seoul drill.

:meth:`RecipientDirectory.recipients_of` a zone therefore returns everyone located in the
zone or any of its sub-zones, and every subscriber to an area overlapping it.

Drills are isolated (docs/design.md §5): :meth:`RecipientDirectory.audience` with
``exercise=True`` returns drill recipients only, and with ``exercise=False`` never returns
one. ``sensor_health`` is operators-only and cannot be opted into.

Phone numbers are personal data: :class:`~geo.phone.PhoneNumber` prints masked in every
repr, str and error message; only ``recipient.phone.e164`` gives the digits, for the SMS
provider. Keep the recipient id, not the number, in logs and the sent-SMS log. Two entries
with the same number are rejected (they would get every message twice).

>>> from streams.config_files import load_recipients, load_zones
>>> directory = load_recipients(zones=load_zones())
>>> r = directory["res-yongsan-001"]
>>> r.phone, "11030" in r.zones, "seoul-center" in r.zones
(PhoneNumber('+82******0101'), True, True)
>>> all(not x.drill for x in directory.audience("11030", Hazard.FLOOD, exercise=False))
True
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from geo.phone import PhoneNumber
from geo.zones import ZoneRegistry
from gyeongbo.errors import ConfigError
from gyeongbo.vocab import Hazard

__all__ = [
    "PUBLIC_HAZARDS",
    "Membership",
    "Recipient",
    "RecipientDirectory",
    "RecipientError",
    "memberships",
    "parse_recipients",
]

#: Hazards a resident may opt into; sensor health is for operators only (docs/design.md §4).
PUBLIC_HAZARDS: frozenset[Hazard] = frozenset(Hazard) - {Hazard.SENSOR_HEALTH}


class RecipientError(ConfigError):
    """The recipients file is invalid."""


class _Point(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class _RecipientIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    phone: Annotated[PhoneNumber, BeforeValidator(PhoneNumber.parse)]
    language: Literal["ko", "en"] = "ko"
    location: _Point | None = None
    zones: tuple[str, ...] = ()
    hazards: tuple[str, ...] = Field(min_length=1)
    drill: bool = False
    consent: datetime | None = None
    note: str | None = None

    @field_validator("hazards")
    @classmethod
    def _hazards(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        known = {h.value for h in PUBLIC_HAZARDS}
        bad = [h for h in v if h != "all" and h not in known]
        if bad:
            raise ValueError(f"unknown or non-public hazard(s) {bad}; expected {sorted(known)}")
        return v

    @model_validator(mode="after")
    def _somewhere(self) -> _RecipientIn:
        if self.location is None and not self.zones:
            raise ValueError("a recipient needs a location, zones, or both")
        return self


@dataclass(frozen=True)
class Recipient:
    """A subscriber. ``zones``: every zone they are in (located, named, and ancestors)."""

    id: str
    phone: PhoneNumber
    language: Literal["ko", "en"]
    hazards: frozenset[Hazard]
    drill: bool
    location: tuple[float, float] | None = field(default=None, repr=False)
    declared: tuple[str, ...] = ()
    zones: tuple[str, ...] = field(default=(), repr=False)
    #: Zones holding the location, smallest first (empty without a location).
    located: tuple[str, ...] = field(default=(), repr=False)
    #: The location, else a point inside the first declared zone ("nearest first").
    point: tuple[float, float] | None = field(default=None, repr=False)
    #: When the subscriber consented (epoch ms), if recorded.
    consent_ms: int | None = None

    def wants(self, hazard: Hazard | str) -> bool:
        return Hazard(hazard) in self.hazards


def _describe(err: ValidationError) -> str:
    # Only locations and messages: pydantic's input echo would print the raw phone number.
    return "; ".join(
        f"{'.'.join(str(x) for x in e['loc']) or 'entry'}: {e['msg']}" for e in err.errors()
    )


class RecipientDirectory(Mapping[str, Recipient]):
    """Recipients by id, with a zone → recipients index built once."""

    def __init__(self, recipients: Iterable[Recipient], *, version: str = "0") -> None:
        self.version = version
        self._by_id = {r.id: r for r in recipients}
        self._by_zone: dict[str, list[Recipient]] = {}
        for r in self._by_id.values():
            for z in r.zones:
                self._by_zone.setdefault(z, []).append(r)

    def __getitem__(self, recipient_id: str) -> Recipient:
        return self._by_id[recipient_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        drills = sum(r.drill for r in self._by_id.values())
        return (
            f"RecipientDirectory(version={self.version!r}, recipients={len(self)}, drill={drills})"
        )

    def zone_ids(self) -> tuple[str, ...]:
        """Every zone with at least one recipient."""
        return tuple(self._by_zone)

    def recipients_of(self, zone_id: str) -> tuple[Recipient, ...]:
        """Everyone in the zone or any of its sub-zones, drill handsets included."""
        return tuple(self._by_zone.get(zone_id, ()))

    def audience(
        self, zone_ids: str | Iterable[str], hazard: Hazard | str, *, exercise: bool
    ) -> tuple[Recipient, ...]:
        """Who gets a message for ``hazard`` in these zones: opted in, each once, and drill
        handsets if and only if ``exercise``. Order: by recipient id."""
        zs = [zone_ids] if isinstance(zone_ids, str) else list(zone_ids)
        hz = Hazard(hazard)
        seen: dict[str, Recipient] = {}
        for z in zs:
            for r in self._by_zone.get(z, ()):
                if r.drill is exercise and hz in r.hazards:
                    seen[r.id] = r
        return tuple(seen[k] for k in sorted(seen))


def parse_recipients(
    data: Any, zones: ZoneRegistry, *, path: str = "<recipients>"
) -> RecipientDirectory:
    """Validate a parsed recipients document against the zones; every problem reported
    (``path`` names the file in them; :func:`streams.config_files.load_recipients` reads it)."""
    if not isinstance(data, dict) or not isinstance(data.get("recipients"), list):
        raise RecipientError(path, ["top level must be a mapping with a 'recipients' list"])
    problems: list[str] = []
    unknown_keys = set(data) - {"version", "recipients"}
    if unknown_keys:
        problems.append(f"unknown top-level key(s): {sorted(unknown_keys)}")
    parsed: list[tuple[int, _RecipientIn]] = []
    for i, raw in enumerate(data["recipients"]):
        rid = raw.get("id") if isinstance(raw, dict) else None
        try:
            parsed.append((i, _RecipientIn.model_validate(raw)))
        except ValidationError as err:
            problems.append(f"recipients[{i}] (id={rid!r}): {_describe(err)}")
    ids: dict[str, int] = {}
    phones: dict[PhoneNumber, str] = {}
    for i, r in parsed:
        where = f"recipients[{i}] (id={r.id!r})"
        if r.id in ids:
            problems.append(f"{where}: duplicate id")
        ids.setdefault(r.id, i)
        if r.phone in phones:
            problems.append(f"{where}: phone {r.phone} already belongs to {phones[r.phone]!r}")
        phones.setdefault(r.phone, r.id)
        unknown = [z for z in r.zones if z not in zones]
        if unknown:
            problems.append(f"{where}: unknown zone(s) {unknown}")
    if problems:
        raise RecipientError(path, problems)
    member = memberships(
        zones,
        [(r.location.lat, r.location.lon) if r.location else None for _, r in parsed],
        [r.zones for _, r in parsed],
    )
    out: list[Recipient] = []
    for (i, r), m in zip(parsed, member, strict=True):
        if m is None:
            problems.append(f"recipients[{i}] (id={r.id!r}): location is outside every zone")
            continue
        hazards = PUBLIC_HAZARDS if "all" in r.hazards else frozenset(Hazard(h) for h in r.hazards)
        out.append(
            Recipient(
                id=r.id,
                phone=r.phone,
                language=r.language,
                hazards=frozenset(hazards),
                drill=r.drill,
                location=(r.location.lat, r.location.lon) if r.location else None,
                declared=r.zones,
                zones=m.zones,
                located=m.located,
                point=m.point,
                consent_ms=int(r.consent.timestamp() * 1000) if r.consent else None,
            )
        )
    if problems:
        raise RecipientError(path, problems)
    return RecipientDirectory(out, version=str(data.get("version", "0")))


@dataclass(frozen=True)
class Membership:
    """The zones that concern one subscriber (see the module docstring)."""

    zones: tuple[str, ...]
    located: tuple[str, ...]
    point: tuple[float, float] | None


def memberships(
    zones: ZoneRegistry,
    locations: Sequence[tuple[float, float] | None],
    declared: Sequence[Sequence[str]],
) -> list[Membership | None]:
    """Zone membership of many subscribers at once: located zones (and their ancestors) and
    the zones overlapping each declared area. None where a location lies outside every zone.
    Declared zones must exist in ``zones`` (KeyError otherwise).

    >>> from streams.config_files import load_zones
    >>> z = load_zones()
    >>> m = memberships(z, [(37.5175, 126.97), None], [(), ("11030",)])
    >>> m[0].located[-1], "11030" in m[0].zones, m[1].located, m[1].point is not None
    ('11', True, (), True)
    """
    if len(locations) != len(declared):
        raise ValueError("locations and declared differ in length")
    lat = [p[0] if p else float("nan") for p in locations]
    lon = [p[1] if p else float("nan") for p in locations]
    found = zones.locate_many(lat, lon) if locations else None
    out: list[Membership | None] = []
    for k, (loc, decl) in enumerate(zip(locations, declared, strict=True)):
        here: tuple[str, ...] = ()
        if loc is not None:
            assert found is not None
            where = found.location(k)
            if not where.admin:
                out.append(None)
                continue
            here = tuple(
                sorted(where.admin + where.custom, key=lambda z: float(zones[z].geometry.area))
            )
        allz = dict.fromkeys(zones.closure(here))
        for z in decl:
            allz.update(dict.fromkeys(zones.overlapping(z)))
        point = loc
        if point is None and decl:
            rp = zones[decl[0]].geometry.representative_point()
            point = (round(float(rp.y), 6), round(float(rp.x), 6))
        out.append(Membership(tuple(allz), here, point))
    return out
