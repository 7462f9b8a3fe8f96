"""The embedded store: one SQLite file (WAL, ``synchronous=FULL``), for drills and demos.

Several worker processes on one machine may share the file (SQLite locks it; writers wait
up to ``busy_timeout``). Arrays are JSON text; each write is one committed transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from alerting.model import Recipient
from streams.store.common import (
    DELIVERY_COLS,
    LAST_LEVELS,
    PLANNED_COLS,
    SUB_COLS,
    SUMMARY,
    delivery,
    latest_statuses,
    moves_forward,
    summary,
)
from streams.store.model import (
    DeliveryRecord,
    EventSummary,
    Outcome,
    PlannedDelivery,
    Subscriber,
    migrations,
    now_ms,
)

_ARRAYS = ("declared_zones", "hazards", "member_zones", "located")


def _subscriber(row: tuple[Any, ...]) -> Subscriber:
    d = dict(zip([c.strip() for c in SUB_COLS.split(",")], row, strict=True))
    for k in _ARRAYS:
        d[k] = tuple(json.loads(d[k]))
    d["drill"] = bool(d["drill"])
    return Subscriber(**d)


class SqliteStore:
    dialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _tx(self) -> _Tx:
        return _Tx(self)

    def migrate(self) -> list[int]:
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
            )
            done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
            applied = []
            for m in migrations("sqlite"):
                if m.version in done:
                    continue
                for stmt in _statements(m.sql):
                    db.execute(stmt)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (m.version, m.name, now_ms())
                )
                applied.append(m.version)
        return applied

    # -- subscribers -------------------------------------------------------------------
    def upsert(self, subscribers: Sequence[Subscriber], *, now_ms: int) -> int:
        with self._tx() as db:
            for s in subscribers:
                db.execute(
                    f"INSERT INTO subscribers ({SUB_COLS}, created_ms, updated_ms) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                    "ON CONFLICT (id) DO UPDATE SET phone=excluded.phone, "
                    "language=excluded.language, lat=excluded.lat, lon=excluded.lon, "
                    "declared_zones=excluded.declared_zones, hazards=excluded.hazards, "
                    "drill=excluded.drill, consent_ms=excluded.consent_ms, "
                    "note=excluded.note, member_zones=excluded.member_zones, "
                    "located=excluded.located, point_lat=excluded.point_lat, "
                    "point_lon=excluded.point_lon, zones_version=excluded.zones_version, "
                    "updated_ms=excluded.updated_ms",
                    (
                        s.id,
                        s.phone,
                        s.language,
                        s.lat,
                        s.lon,
                        json.dumps(list(s.declared_zones)),
                        json.dumps(list(s.hazards)),
                        int(s.drill),
                        s.consent_ms,
                        s.opted_out_ms,
                        s.opt_out_reason,
                        s.note,
                        json.dumps(list(s.member_zones)),
                        json.dumps(list(s.located)),
                        s.point_lat,
                        s.point_lon,
                        s.zones_version,
                        now_ms,
                        now_ms,
                    ),
                )
                db.execute("DELETE FROM subscriber_zones WHERE subscriber_id = ?", (s.id,))
                db.executemany(
                    "INSERT INTO subscriber_zones (zone, subscriber_id) VALUES (?, ?)",
                    [(z, s.id) for z in dict.fromkeys(s.member_zones)],
                )
        return len(subscribers)

    def count(self, *, drill: bool | None = None) -> int:
        with self._lock:
            if drill is None:
                row = self._db.execute("SELECT COUNT(*) FROM subscribers").fetchone()
            else:
                row = self._db.execute(
                    "SELECT COUNT(*) FROM subscribers WHERE drill = ?", (int(drill),)
                ).fetchone()
        return int(row[0])

    def get(self, subscriber_id: str) -> Subscriber | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {SUB_COLS} FROM subscribers WHERE id = ?", (subscriber_id,)
            ).fetchone()
        return _subscriber(row) if row else None

    def listing(self, *, limit: int = 100, offset: int = 0) -> list[Subscriber]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {SUB_COLS} FROM subscribers ORDER BY id LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
        return [_subscriber(r) for r in rows]

    def audience(
        self, zone: str, hazard: str, *, exercise: bool, within: Sequence[str] | None = None
    ) -> list[Recipient]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join('s.' + c.strip() for c in SUB_COLS.split(','))} "
                "FROM subscriber_zones z JOIN subscribers s ON s.id = z.subscriber_id "
                "WHERE z.zone = ? AND s.drill = ? AND s.opted_out_ms IS NULL "
                "AND EXISTS (SELECT 1 FROM json_each(s.hazards) WHERE value = ?)",
                (zone, int(exercise), hazard),
            ).fetchall()
        subs = [_subscriber(r) for r in rows]
        if within is not None:
            keep = set(within)
            subs = [
                msgspec.structs.replace(
                    s, member_zones=tuple(z for z in s.member_zones if z in keep)
                )
                for s in subs
            ]
        return [s.recipient() for s in subs]

    def recipients(self, subscriber_ids: Sequence[str]) -> dict[str, Recipient]:
        out: dict[str, Recipient] = {}
        ids = list(dict.fromkeys(subscriber_ids))
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                rows = self._db.execute(
                    f"SELECT {SUB_COLS} FROM subscribers WHERE opted_out_ms IS NULL AND id IN "
                    f"({','.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                out.update({r[0]: _subscriber(r).recipient() for r in rows})
        return out

    def opt_out(self, subscriber_id: str, *, reason: str, now_ms: int) -> bool:
        with self._tx() as db:
            cur = db.execute(
                "UPDATE subscribers SET opted_out_ms = ?, opt_out_reason = ?, updated_ms = ? "
                "WHERE id = ? AND opted_out_ms IS NULL",
                (now_ms, reason, now_ms, subscriber_id),
            )
            return cur.rowcount > 0

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM store_meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO store_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def stale(self, zones_version: str, *, limit: int = 10_000) -> list[Subscriber]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {SUB_COLS} FROM subscribers WHERE zones_version <> ? ORDER BY id LIMIT ?",
                (zones_version, limit),
            ).fetchall()
        return [_subscriber(r) for r in rows]

    # -- the sent log ------------------------------------------------------------------
    def plan(self, rows: Sequence[PlannedDelivery]) -> list[str]:
        if not rows:
            return []
        with self._tx() as db:
            db.executemany(
                f"INSERT INTO deliveries ({PLANNED_COLS}, state, updated_ms) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'planned',?) "
                "ON CONFLICT (key) DO NOTHING",
                [
                    (
                        r.key,
                        r.event_id,
                        r.notify_key,
                        r.hazard,
                        int(r.exercise),
                        r.subscriber_id,
                        r.phone_masked,
                        r.level,
                        r.kind,
                        r.seq,
                        r.trigger,
                        r.area,
                        r.body,
                        r.priority,
                        r.token,
                        r.planned_ms,
                        r.attempts,
                        r.planned_ms,
                    )
                    for r in rows
                ],
            )
            keys = [r.key for r in rows]
            out: list[str] = []
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                out += [
                    k
                    for (k,) in db.execute(
                        "SELECT key FROM deliveries WHERE state = 'planned' AND key IN "
                        f"({','.join('?' * len(chunk))})",
                        chunk,
                    )
                ]
        return out

    def last_levels(self, event_id: str, subscriber_ids: Sequence[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        ids = list(dict.fromkeys(subscriber_ids))
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                sql = LAST_LEVELS.format(ids=",".join("?" * len(chunk)))
                for sid, level in self._db.execute(sql, [event_id, *chunk]):
                    out[sid] = int(level)  # ordered by seq: the latest wins
        return out

    def pending(self, notify_keys: Sequence[str] | None = None) -> list[PlannedDelivery]:
        sql = f"SELECT {PLANNED_COLS} FROM deliveries WHERE state = 'planned'"
        args: list[str] = []
        if notify_keys is not None:
            if not notify_keys:
                return []
            sql += f" AND notify_key IN ({','.join('?' * len(notify_keys))})"
            args = list(notify_keys)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY priority, planned_ms", args).fetchall()
        names = [c.strip() for c in PLANNED_COLS.split(",")]
        out = []
        for r in rows:
            d = dict(zip(names, r, strict=True))
            d["exercise"] = bool(d["exercise"])
            out.append(PlannedDelivery(**d))
        return out

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        with self._tx() as db:
            db.executemany(
                "UPDATE deliveries SET state = ?, attempts = ?, sid = COALESCE(?, sid), "
                "error_code = ?, error = ?, submitted_ms = COALESCE(?, submitted_ms), "
                "updated_ms = ? WHERE key = ?",
                [
                    (
                        o.state,
                        o.attempts,
                        o.sid,
                        o.error_code,
                        o.error,
                        o.submitted_ms,
                        o.now_ms,
                        o.key,
                    )
                    for o in outcomes
                ],
            )

    def record_statuses(self, statuses: Sequence[tuple[str, str, int | None, int]]) -> int:
        changed = 0
        with self._tx() as db:
            for sid, (status, code, now) in latest_statuses(statuses).items():
                row = db.execute(
                    "SELECT delivery_status FROM deliveries WHERE sid = ?", (sid,)
                ).fetchone()
                if row is None or not moves_forward(row[0], status):
                    continue
                db.execute(
                    "UPDATE deliveries SET delivery_status = ?, "
                    "error_code = COALESCE(?, error_code), status_ms = ?, updated_ms = ? "
                    "WHERE sid = ?",
                    (status, code, now, now, sid),
                )
                changed += 1
        return changed

    def deliveries(self, event_id: str | None = None, *, limit: int = 1000) -> list[DeliveryRecord]:
        sql = f"SELECT {DELIVERY_COLS} FROM deliveries"
        args: list[Any] = []
        if event_id is not None:
            sql += " WHERE event_id = ?"
            args.append(event_id)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY planned_ms, seq LIMIT ?", [*args, limit])
            return [delivery(r) for r in rows.fetchall()]

    def summaries(self, *, limit: int = 50, event_id: str | None = None) -> list[EventSummary]:
        where, args = ("WHERE event_id = ?", [event_id]) if event_id else ("", [])
        with self._lock:
            rows = self._db.execute(SUMMARY.format(where=where), [*args, limit]).fetchall()
        return [summary(r) for r in rows]


class _Tx:
    """``with store._tx() as db``: one transaction under the store's lock."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store._lock.acquire()
        try:
            self.store._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store._lock.release()
            raise
        return self.store._db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self.store._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.store._lock.release()


def _statements(sql: str) -> list[str]:
    body = "\n".join(line.split("--", 1)[0] for line in sql.splitlines())
    return [s.strip() for s in body.split(";") if s.strip()]
