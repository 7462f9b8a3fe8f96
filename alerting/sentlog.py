"""The durable sent log: exactly one SMS per (alert transition, recipient), across crashes.

Every delivery is keyed by the transition's ``event_id`` and the recipient. The dispatcher
checks the log before sending, records an **intent** (durably, before the HTTP request) and
the **outcome** after it. What this buys, per crash point:

* crash before the intent is committed → nothing was sent; the restarted dispatcher sends.
* crash after the outcome is committed → the restarted dispatcher sees ``sent`` (or
  ``permanent``) and sends nothing.
* crash *between* intent and outcome (the request may or may not have reached the provider):
  the log says ``intent``. We chose **at-least-once with an idempotency token**: the restarted
  dispatcher re-sends with the *same* token (a hash of event id and recipient), so a provider
  that honours ``I-Twilio-Idempotency-Token`` (the local fake does) answers with the original
  message and no second SMS exists — exactly once. Against a provider that ignores the token
  the window (milliseconds per message) can give one duplicate; we judged a rare duplicate
  warning better than a silently lost one. ``on_unknown="skip"`` in the dispatcher switches to
  at-most-once: the delivery is marked ``unknown`` for operators instead.

Phone numbers are personal data (docs/design.md §9): the log stores a SHA-256 key of the number and
its masked form, not the number. A delivery-status callback names the message SID, which the
log maps back to the delivery.

SQLite in WAL mode with ``synchronous=FULL``: each write is a committed transaction on disk
before the call returns. :class:`SentLog` is the protocol for other stores (e.g. a Faust
table); :class:`SqliteSentLog` is the shipped implementation.

>>> log = SqliteSentLog(":memory:")
>>> log.begin("flood:1#1", "+821012345678", token="t1", now_ms=0).state
'intent'
>>> log.finish("flood:1#1", "+821012345678", state="sent", sid="SM1", now_ms=1)
>>> log.get("flood:1#1", "+821012345678").phone_masked
'+8210****5678'
>>> log.record_status("SM1", "delivered", None, now_ms=2)
True
>>> log.get("flood:1#1", "+821012345678").delivery_status
'delivered'
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path
from typing import Literal, Protocol

import msgspec

from alerting.model import mask_phone

__all__ = ["DeliveryRecord", "SentLog", "SqliteSentLog", "phone_key"]

State = Literal["intent", "sent", "failed", "permanent", "dry_run", "unknown"]
#: States after which a delivery is never attempted again.
FINAL: frozenset[str] = frozenset({"sent", "permanent", "dry_run", "unknown"})
#: Order of Twilio message statuses; a late callback never moves a status backwards.
_STATUS_RANK = {
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


def phone_key(phone: str) -> str:
    return hashlib.sha256(phone.encode()).hexdigest()[:32]


class DeliveryRecord(msgspec.Struct, frozen=True):
    event_id: str
    phone_key: str
    phone_masked: str
    token: str
    state: str
    attempts: int
    sid: str | None
    error_code: int | None
    error: str | None
    delivery_status: str | None
    exercise: bool
    updated_ms: int


class SentLog(Protocol):
    def get(self, event_id: str, phone: str) -> DeliveryRecord | None: ...

    def begin(
        self, event_id: str, phone: str, *, token: str, now_ms: int, exercise: bool = False
    ) -> DeliveryRecord:
        """Record the intent to send (durably) and count the attempt."""
        ...

    def finish(
        self,
        event_id: str,
        phone: str,
        *,
        state: State,
        now_ms: int,
        sid: str | None = None,
        error_code: int | None = None,
        error: str | None = None,
    ) -> None: ...

    def record_status(
        self, sid: str, status: str, error_code: int | None, *, now_ms: int
    ) -> bool: ...

    def records(self, event_id: str | None = None) -> list[DeliveryRecord]: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    event_id TEXT NOT NULL,
    phone_key TEXT NOT NULL,
    phone_masked TEXT NOT NULL,
    token TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sid TEXT,
    error_code INTEGER,
    error TEXT,
    delivery_status TEXT,
    exercise INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (event_id, phone_key)
);
CREATE INDEX IF NOT EXISTS deliveries_sid ON deliveries (sid);
"""
_COLS = (
    "event_id, phone_key, phone_masked, token, state, attempts, sid, error_code, error, "
    "delivery_status, exercise, updated_ms"
)


class SqliteSentLog:
    """A :class:`SentLog` in one SQLite file (thread-safe; one writer at a time)."""

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def _row(self, row: tuple[object, ...] | None) -> DeliveryRecord | None:
        if row is None:
            return None
        d = dict(zip([c.strip() for c in _COLS.split(",")], row, strict=True))
        d["exercise"] = bool(d["exercise"])
        return msgspec.convert(d, DeliveryRecord)

    def get(self, event_id: str, phone: str) -> DeliveryRecord | None:
        with self._lock:
            cur = self._db.execute(
                f"SELECT {_COLS} FROM deliveries WHERE event_id=? AND phone_key=?",
                (event_id, phone_key(phone)),
            )
            return self._row(cur.fetchone())

    def begin(
        self, event_id: str, phone: str, *, token: str, now_ms: int, exercise: bool = False
    ) -> DeliveryRecord:
        with self._lock:
            self._db.execute(
                "INSERT INTO deliveries (event_id, phone_key, phone_masked, token, state, "
                "attempts, exercise, created_ms, updated_ms) VALUES (?,?,?,?,'intent',1,?,?,?) "
                "ON CONFLICT (event_id, phone_key) DO UPDATE SET state='intent', "
                "attempts=attempts+1, updated_ms=excluded.updated_ms",
                (
                    event_id,
                    phone_key(phone),
                    mask_phone(phone),
                    token,
                    int(exercise),
                    now_ms,
                    now_ms,
                ),
            )
        rec = self.get(event_id, phone)
        assert rec is not None
        return rec

    def finish(
        self,
        event_id: str,
        phone: str,
        *,
        state: State,
        now_ms: int,
        sid: str | None = None,
        error_code: int | None = None,
        error: str | None = None,
    ) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE deliveries SET state=?, sid=COALESCE(?, sid), error_code=?, error=?, "
                "updated_ms=? WHERE event_id=? AND phone_key=?",
                (state, sid, error_code, error, now_ms, event_id, phone_key(phone)),
            )

    def record_status(self, sid: str, status: str, error_code: int | None, *, now_ms: int) -> bool:
        with self._lock:
            cur = self._db.execute("SELECT delivery_status FROM deliveries WHERE sid=?", (sid,))
            row = cur.fetchone()
            if row is None:
                return False
            old = row[0]
            if old is not None and _STATUS_RANK.get(status, 9) < _STATUS_RANK.get(old, 0):
                return True  # out-of-order callback: keep the later status
            self._db.execute(
                "UPDATE deliveries SET delivery_status=?, error_code=COALESCE(?, error_code), "
                "updated_ms=? WHERE sid=?",
                (status, error_code, now_ms, sid),
            )
            return True

    def records(self, event_id: str | None = None) -> list[DeliveryRecord]:
        with self._lock:
            if event_id is None:
                cur = self._db.execute(f"SELECT {_COLS} FROM deliveries ORDER BY created_ms")
            else:
                cur = self._db.execute(
                    f"SELECT {_COLS} FROM deliveries WHERE event_id=? ORDER BY created_ms",
                    (event_id,),
                )
            return [r for r in (self._row(row) for row in cur.fetchall()) if r is not None]
