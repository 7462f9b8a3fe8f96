"""The production store: PostgreSQL through psycopg 3 and a small connection pool.

Bulk writes are one statement each: subscribers are copied (``COPY``) into a temporary table
and merged; planned messages are inserted from arrays (``unnest``); outcomes and statuses
update from arrays. Migrations run under an advisory lock, so workers starting together
apply each once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from alerting.model import Recipient
from streams.store.common import (
    DELIVERY_COLS,
    PLANNED_COLS,
    SUB_COLS,
    SUB_NAMES,
    SUMMARY,
    delivery,
    latest_statuses,
    moves_forward,
    pg,
    summary,
)
from streams.store.model import (
    DeliveryRecord,
    EventSummary,
    Outcome,
    PlannedDelivery,
    StoreError,
    Subscriber,
    migrations,
    now_ms,
)
from streams.store.sqlite import _statements

_MIGRATION_LOCK = 0x6779_6F6E  # "gyon": one migrating process at a time


def _subscriber(row: Sequence[Any]) -> Subscriber:
    d = dict(zip(SUB_NAMES, row, strict=True))
    for k in ("declared_zones", "hazards", "member_zones", "located"):
        d[k] = tuple(d[k] or ())
    return Subscriber(**d)


class PostgresStore:
    dialect = "postgres"

    def __init__(self, url: str, *, pool_size: int = 4, fail_fast: bool = False) -> None:
        self.url = url
        try:
            if fail_fast:  # one direct attempt: the pool alone retries quietly for 30 s
                _probe(url)
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                open=True,
                timeout=30.0,
                name="gyeongbo-store",
            )
            self._pool.wait(timeout=30.0)
        except StoreError:
            raise
        except (psycopg.Error, Exception) as err:
            raise StoreError(f"cannot connect to PostgreSQL: {_safe(err)}") from None

    def close(self) -> None:
        self._pool.close()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        with self._pool.connection() as conn:  # commits on success, rolls back on error
            yield conn

    def migrate(self) -> list[int]:
        applied: list[int] = []
        with self._conn() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_ms BIGINT NOT NULL)"
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for m in migrations("postgres"):
                if m.version in done:
                    continue
                for stmt in _statements(m.sql):
                    conn.execute(stmt.encode())
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, %s)",
                    (m.version, m.name, now_ms()),
                )
                applied.append(m.version)
        return applied

    # -- subscribers -------------------------------------------------------------------
    def upsert(self, subscribers: Sequence[Subscriber], *, now_ms: int) -> int:
        if not subscribers:
            return 0
        cols = f"{SUB_COLS}, created_ms, updated_ms"
        updates = ", ".join(
            f"{c} = excluded.{c}"
            for c in SUB_NAMES[1:]
            if c not in ("opted_out_ms", "opt_out_reason")
        )
        with self._conn() as conn:
            conn.execute(
                "CREATE TEMP TABLE incoming (LIKE subscribers INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with conn.cursor().copy(f"COPY incoming ({cols}) FROM STDIN") as cp:
                for s in subscribers:
                    cp.write_row(
                        (
                            s.id,
                            s.phone,
                            s.language,
                            s.lat,
                            s.lon,
                            list(s.declared_zones),
                            list(s.hazards),
                            s.drill,
                            s.consent_ms,
                            s.opted_out_ms,
                            s.opt_out_reason,
                            s.note,
                            list(s.member_zones),
                            list(s.located),
                            s.point_lat,
                            s.point_lon,
                            s.zones_version,
                            now_ms,
                            now_ms,
                        )
                    )
            try:
                conn.execute(
                    f"INSERT INTO subscribers ({cols}) SELECT {cols} FROM incoming "
                    f"ON CONFLICT (id) DO UPDATE SET {updates}, updated_ms = excluded.updated_ms"
                )
            except psycopg.errors.UniqueViolation as err:
                raise StoreError(
                    "a phone number already belongs to another subscriber id "
                    f"({err.diag.constraint_name})"
                ) from None
            conn.execute(
                "DELETE FROM subscriber_zones WHERE subscriber_id IN (SELECT id FROM incoming)"
            )
            conn.execute(
                "INSERT INTO subscriber_zones (zone, subscriber_id) "
                "SELECT DISTINCT unnest(member_zones), id FROM incoming"
            )
        return len(subscribers)

    def count(self, *, drill: bool | None = None) -> int:
        with self._conn() as conn:
            if drill is None:
                row = conn.execute("SELECT COUNT(*) FROM subscribers").fetchone()
            else:
                row = conn.execute(
                    "SELECT COUNT(*) FROM subscribers WHERE drill = %s", (drill,)
                ).fetchone()
        assert row is not None
        return int(row[0])

    def get(self, subscriber_id: str) -> Subscriber | None:
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {SUB_COLS} FROM subscribers WHERE id = %s", (subscriber_id,)
            ).fetchone()
        return _subscriber(row) if row else None

    def listing(self, *, limit: int = 100, offset: int = 0) -> list[Subscriber]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {SUB_COLS} FROM subscribers ORDER BY id LIMIT %s OFFSET %s",
                (limit, offset),
            ).fetchall()
        return [_subscriber(r) for r in rows]

    def audience(
        self, zone: str, hazard: str, *, exercise: bool, within: Sequence[str] | None = None
    ) -> list[Recipient]:
        member = "ARRAY(SELECT m FROM unnest(s.member_zones) AS m WHERE m = ANY(%s))"
        cols = ", ".join(
            member if (c == "member_zones" and within is not None) else "s." + c for c in SUB_NAMES
        )
        args: tuple[Any, ...] = (zone, exercise, hazard)
        if within is not None:
            args = (list(within), *args)
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {cols} FROM subscriber_zones z JOIN subscribers s "
                "ON s.id = z.subscriber_id WHERE z.zone = %s AND s.drill = %s "
                "AND s.opted_out_ms IS NULL AND %s = ANY(s.hazards)",
                args,
            ).fetchall()
        return [_subscriber(r).recipient() for r in rows]

    def recipients(self, subscriber_ids: Sequence[str]) -> dict[str, Recipient]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {SUB_COLS} FROM subscribers WHERE opted_out_ms IS NULL AND id = ANY(%s)",
                (list(dict.fromkeys(subscriber_ids)),),
            ).fetchall()
        return {r[0]: _subscriber(r).recipient() for r in rows}

    def opt_out(self, subscriber_id: str, *, reason: str, now_ms: int) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE subscribers SET opted_out_ms = %s, opt_out_reason = %s, updated_ms = %s "
                "WHERE id = %s AND opted_out_ms IS NULL",
                (now_ms, reason, now_ms, subscriber_id),
            )
            return cur.rowcount > 0

    def get_meta(self, key: str) -> str | None:
        with self._conn() as conn:
            row = conn.execute("SELECT value FROM store_meta WHERE key = %s", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO store_meta (key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def stale(self, zones_version: str, *, limit: int = 10_000) -> list[Subscriber]:
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT {SUB_COLS} FROM subscribers WHERE zones_version <> %s ORDER BY id "
                "LIMIT %s",
                (zones_version, limit),
            ).fetchall()
        return [_subscriber(r) for r in rows]

    # -- the sent log ------------------------------------------------------------------
    def plan(self, rows: Sequence[PlannedDelivery]) -> list[str]:
        if not rows:
            return []
        names = [c.strip() for c in PLANNED_COLS.split(",")]
        with self._conn() as conn:
            conn.execute(
                "CREATE TEMP TABLE planning (LIKE deliveries INCLUDING DEFAULTS) ON COMMIT DROP"
            )
            with conn.cursor().copy(f"COPY planning ({PLANNED_COLS}, updated_ms) FROM STDIN") as cp:
                for r in rows:
                    cp.write_row([*(getattr(r, n) for n in names), r.planned_ms])
            conn.execute(
                "INSERT INTO deliveries SELECT * FROM planning ON CONFLICT (key) DO NOTHING"
            )
            planned = conn.execute(
                "SELECT p.key FROM planning p JOIN deliveries d ON d.key = p.key "
                "WHERE d.state = 'planned'"
            ).fetchall()
        return [k for (k,) in planned]

    def last_levels(self, event_id: str, subscriber_ids: Sequence[str]) -> dict[str, int]:
        if not subscriber_ids:
            return {}
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT DISTINCT ON (subscriber_id) subscriber_id, level FROM deliveries "
                "WHERE event_id = %s AND subscriber_id = ANY(%s) ORDER BY subscriber_id, seq DESC",
                (event_id, list(dict.fromkeys(subscriber_ids))),
            ).fetchall()
        return {sid: int(level) for sid, level in rows}

    def pending(self, notify_keys: Sequence[str] | None = None) -> list[PlannedDelivery]:
        sql = f"SELECT {PLANNED_COLS} FROM deliveries WHERE state = 'planned'"
        args: tuple[Any, ...] = ()
        if notify_keys is not None:
            if not notify_keys:
                return []
            sql += " AND notify_key = ANY(%s)"
            args = (list(notify_keys),)
        with self._conn() as conn:
            rows = conn.execute(sql + " ORDER BY priority, planned_ms", args).fetchall()
        names = [c.strip() for c in PLANNED_COLS.split(",")]
        return [PlannedDelivery(**dict(zip(names, r, strict=True))) for r in rows]

    def record_outcomes(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        with self._conn() as conn:
            conn.execute(
                "UPDATE deliveries d SET state = u.state, attempts = u.attempts, "
                "sid = COALESCE(u.sid, d.sid), error_code = u.error_code, error = u.error, "
                "submitted_ms = COALESCE(u.submitted_ms, d.submitted_ms), updated_ms = u.now_ms "
                "FROM unnest(%s::text[], %s::text[], %s::integer[], %s::text[], %s::integer[], "
                "%s::text[], %s::bigint[], %s::bigint[]) "
                "AS u(key, state, attempts, sid, error_code, error, submitted_ms, now_ms) "
                "WHERE d.key = u.key",
                (
                    [o.key for o in outcomes],
                    [o.state for o in outcomes],
                    [o.attempts for o in outcomes],
                    [o.sid for o in outcomes],
                    [o.error_code for o in outcomes],
                    [o.error for o in outcomes],
                    [o.submitted_ms for o in outcomes],
                    [o.now_ms for o in outcomes],
                ),
            )

    def record_statuses(self, statuses: Sequence[tuple[str, str, int | None, int]]) -> int:
        if not statuses:
            return 0
        latest = latest_statuses(statuses)
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT sid, delivery_status FROM deliveries WHERE sid = ANY(%s)", (list(latest),)
            ).fetchall()
            todo = [(sid, *latest[sid]) for sid, old in rows if moves_forward(old, latest[sid][0])]
            if not todo:
                return 0
            conn.execute(
                "UPDATE deliveries d SET delivery_status = u.status, "
                "error_code = COALESCE(u.code, d.error_code), status_ms = u.now_ms, "
                "updated_ms = u.now_ms "
                "FROM unnest(%s::text[], %s::text[], %s::integer[], %s::bigint[]) "
                "AS u(sid, status, code, now_ms) WHERE d.sid = u.sid",
                (
                    [t[0] for t in todo],
                    [t[1] for t in todo],
                    [t[2] for t in todo],
                    [t[3] for t in todo],
                ),
            )
        return len(todo)

    def deliveries(self, event_id: str | None = None, *, limit: int = 1000) -> list[DeliveryRecord]:
        sql = f"SELECT {DELIVERY_COLS} FROM deliveries"
        args: list[Any] = []
        if event_id is not None:
            sql += " WHERE event_id = %s"
            args.append(event_id)
        with self._conn() as conn:
            rows = conn.execute(sql + " ORDER BY planned_ms, seq LIMIT %s", [*args, limit])
            return [delivery(tuple(r)) for r in rows.fetchall()]

    def summaries(self, *, limit: int = 50, event_id: str | None = None) -> list[EventSummary]:
        where, args = ("WHERE event_id = ?", [event_id]) if event_id else ("", [])
        with self._conn() as conn:
            rows = conn.execute(pg(SUMMARY.format(where=where)), [*args, limit]).fetchall()
        return [summary(tuple(r)) for r in rows]


def _probe(url: str) -> None:
    """Connect once: a server that does not answer raises :class:`StoreError` caused by a
    :class:`ConnectionError` (exit 3 in the CLI); one that refuses us (``FATAL:`` role,
    database, password) raises psycopg's error."""
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as err:
        if "FATAL:" in str(err):
            raise
        msg = f"cannot connect to PostgreSQL: {_safe(err)}"
        raise StoreError(msg) from ConnectionError(str(err))


def _safe(err: BaseException) -> str:
    """An error message on one line, without a password from the URL."""
    import re

    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", " ".join(str(err).split()))
