"""What the subscriber store holds and the interface both stores implement
(:class:`SubscriberStore`; :mod:`streams.store` opens one): subscribers, the sent log's rows,
outcomes, per-event summaries, and the numbered SQL migrations."""

from __future__ import annotations

import time
from collections.abc import Sequence
from importlib import resources
from typing import Literal, Protocol

import msgspec

from alerting.model import Recipient, mask_phone

__all__ = [
    "DeliveryRecord",
    "EventSummary",
    "Migration",
    "Outcome",
    "PlannedDelivery",
    "StoreError",
    "Subscriber",
    "SubscriberStore",
    "migrations",
    "now_ms",
]

#: Delivery states. ``planned``: the intent, no answer yet (sent again with the same token
#: after a crash); the others are final.
State = Literal["planned", "sent", "dry_run", "failed", "permanent", "opted_out"]
FINAL: frozenset[str] = frozenset({"sent", "dry_run", "failed", "permanent", "opted_out"})
#: Order of Twilio message statuses; a late callback never moves a status backwards.
STATUS_RANK = {
    "accepted": 0,
    "scheduled": 0,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "delivered": 4,
    "undelivered": 4,
    "failed": 4,
    "read": 5,
    "canceled": 4,
}


class StoreError(RuntimeError):
    """The store cannot be opened or migrated."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Subscriber(msgspec.Struct, frozen=True, kw_only=True):
    """One subscriber as stored (zones computed by :mod:`streams.store.indexing`)."""

    id: str
    phone: str
    language: str = "ko"
    lat: float | None = None
    lon: float | None = None
    declared_zones: tuple[str, ...] = ()
    hazards: tuple[str, ...] = ()
    drill: bool = False
    consent_ms: int | None = None
    opted_out_ms: int | None = None
    opt_out_reason: str | None = None
    note: str | None = None
    member_zones: tuple[str, ...] = ()
    located: tuple[str, ...] = ()
    point_lat: float | None = None
    point_lon: float | None = None
    zones_version: str = ""

    def recipient(self) -> Recipient:
        point = (
            (self.point_lat, self.point_lon)
            if self.point_lat is not None and self.point_lon is not None
            else None
        )
        return Recipient(
            phone=self.phone,
            lang=self.language,
            hazards=frozenset(self.hazards),
            drill=self.drill,
            id=self.id,
            zones=self.member_zones,
            located=self.located,
            point=point,
        )

    def public(self) -> dict[str, object]:
        """For listings: the phone masked, the zones summarised."""
        return {
            "id": self.id,
            "phone": mask_phone(self.phone),
            "language": self.language,
            "location": None if self.lat is None else [self.lat, self.lon],
            "zones": list(self.declared_zones),
            "hazards": list(self.hazards),
            "drill": self.drill,
            "consent_ms": self.consent_ms,
            "opted_out_ms": self.opted_out_ms,
            "opt_out_reason": self.opt_out_reason,
            "member_zones": len(self.member_zones),
            "located": list(self.located),
            "zones_version": self.zones_version,
        }


class PlannedDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """A sent-log row as planned (and as resumed after a crash, with its attempts)."""

    key: str
    event_id: str
    notify_key: str
    hazard: str
    exercise: bool
    subscriber_id: str
    phone_masked: str
    level: int
    kind: str
    seq: int
    trigger: str
    area: str
    body: str
    priority: float
    token: str
    planned_ms: int
    attempts: int = 0


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What one message's requests ended in (written in batches)."""

    key: str
    state: State
    attempts: int
    now_ms: int
    sid: str | None = None
    error_code: int | None = None
    error: str | None = None
    submitted_ms: int | None = None


class DeliveryRecord(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    event_id: str
    hazard: str
    exercise: bool
    subscriber_id: str
    phone_masked: str
    level: int
    kind: str
    area: str
    body: str
    state: str
    attempts: int
    sid: str | None
    error_code: int | None
    error: str | None
    delivery_status: str | None
    planned_ms: int
    submitted_ms: int | None
    updated_ms: int


class EventSummary(msgspec.Struct, frozen=True, kw_only=True):
    """Operators' view of one event's fan-out."""

    event_id: str
    hazard: str
    exercise: bool
    recipients: int
    messages: int
    planned: int
    submitted: int
    delivered: int
    undelivered: int
    failed: int
    permanent: int
    opted_out: int
    first_planned_ms: int
    last_submitted_ms: int | None
    fanout_s: float | None


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str


def migrations(dialect: Literal["postgres", "sqlite"]) -> list[Migration]:
    """The numbered migrations of a dialect, in order."""
    folder = resources.files("streams.store") / "migrations" / dialect
    out = []
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        num, _, rest = name.partition("_")
        out.append(Migration(int(num), rest.removesuffix(".sql"), entry.read_text("utf-8")))
    out.sort(key=lambda m: m.version)
    versions = [m.version for m in out]
    if versions != list(range(1, len(out) + 1)):
        raise StoreError(f"migrations of {dialect} are not numbered 1..n: {versions}")
    return out


class SubscriberStore(Protocol):
    """What the worker, the CLIs and the benchmark need from a store (thread-safe)."""

    dialect: str

    def migrate(self) -> list[int]:
        """Apply the migrations not applied yet; returns their versions."""
        ...

    def close(self) -> None: ...

    # -- subscribers -------------------------------------------------------------------
    def upsert(self, subscribers: Sequence[Subscriber], *, now_ms: int) -> int:
        """Insert or replace subscribers (with their zone index). Opt-outs recorded in the
        store are kept when the same subscriber is imported again."""
        ...

    def count(self, *, drill: bool | None = None) -> int: ...

    def get(self, subscriber_id: str) -> Subscriber | None: ...

    def listing(self, *, limit: int = 100, offset: int = 0) -> list[Subscriber]: ...

    def audience(
        self, zone: str, hazard: str, *, exercise: bool, within: Sequence[str] | None = None
    ) -> list[Recipient]:
        """Subscribers concerned by ``zone``, opted into ``hazard``, not opted out, with the
        drill flag equal to ``exercise``. With ``within``, each one's ``zones`` holds only
        those of these zones that concern them (the zones on a board: all a delivery decision
        looks at; a subscriber to Seoul is concerned by 457 zones)."""
        ...

    def recipients(self, subscriber_ids: Sequence[str]) -> dict[str, Recipient]:
        """The named subscribers that are not opted out (for resuming planned messages)."""
        ...

    def opt_out(self, subscriber_id: str, *, reason: str, now_ms: int) -> bool: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def stale(self, zones_version: str, *, limit: int = 10_000) -> list[Subscriber]:
        """Subscribers indexed against another zones version."""
        ...

    # -- the sent log ------------------------------------------------------------------
    def plan(self, rows: Sequence[PlannedDelivery]) -> list[str]:
        """Insert planned messages; keys already present are left alone. Returns the keys
        that are still ``planned`` (new, or planned before a crash) — those to send."""
        ...

    def last_levels(self, event_id: str, subscriber_ids: Sequence[str]) -> dict[str, int]:
        """Per subscriber, the level of the latest message planned in the event."""
        ...

    def pending(self, notify_keys: Sequence[str] | None = None) -> list[PlannedDelivery]:
        """Rows still ``planned`` (of these notify keys), to resume after a restart."""
        ...

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None: ...

    def record_statuses(self, statuses: Sequence[tuple[str, str, int | None, int]]) -> int:
        """(sid, status, error code, now_ms) from delivery callbacks; returns rows changed.
        A status never moves backwards (a late ``sent`` after ``delivered`` is ignored)."""
        ...

    def deliveries(
        self, event_id: str | None = None, *, limit: int = 1000
    ) -> list[DeliveryRecord]: ...

    def summaries(self, *, limit: int = 50, event_id: str | None = None) -> list[EventSummary]:
        """Per event, newest first."""
        ...
