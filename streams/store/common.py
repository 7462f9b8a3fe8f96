"""SQL shared by both dialects of the store (placeholders are written ``?`` and turned into
``%s`` for PostgreSQL by :func:`pg`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.store.model import STATUS_RANK, DeliveryRecord, EventSummary

SUMMARY = """
SELECT event_id, MIN(hazard),
       MAX(CASE WHEN exercise THEN 1 ELSE 0 END),
       COUNT(DISTINCT subscriber_id), COUNT(*),
       SUM(CASE WHEN state = 'planned' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state IN ('sent', 'dry_run') THEN 1 ELSE 0 END),
       SUM(CASE WHEN delivery_status = 'delivered' THEN 1 ELSE 0 END),
       SUM(CASE WHEN delivery_status = 'undelivered' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state = 'failed' OR delivery_status = 'failed' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state = 'permanent' THEN 1 ELSE 0 END),
       SUM(CASE WHEN state = 'opted_out' THEN 1 ELSE 0 END),
       MIN(planned_ms), MAX(submitted_ms)
FROM deliveries {where}
GROUP BY event_id
ORDER BY MIN(planned_ms) DESC
LIMIT ?
"""

SUB_COLS = (
    "id, phone, language, lat, lon, declared_zones, hazards, drill, consent_ms, "
    "opted_out_ms, opt_out_reason, note, member_zones, located, point_lat, point_lon, "
    "zones_version"
)
SUB_NAMES = [c.strip() for c in SUB_COLS.split(",")]

DELIVERY_COLS = (
    "key, event_id, hazard, exercise, subscriber_id, phone_masked, level, kind, area, body, "
    "state, attempts, sid, error_code, error, delivery_status, planned_ms, submitted_ms, "
    "updated_ms"
)

PLANNED_COLS = (
    "key, event_id, notify_key, hazard, exercise, subscriber_id, phone_masked, level, kind, "
    "seq, trigger, area, body, priority, token, planned_ms, attempts"
)

LAST_LEVELS = """
SELECT subscriber_id, level FROM deliveries
WHERE event_id = ? AND subscriber_id IN ({ids})
ORDER BY seq
"""


def pg(sql: str) -> str:
    return sql.replace("?", "%s")


def summary(row: tuple[Any, ...]) -> EventSummary:
    (eid, hazard, ex, people, n, planned, submitted, delivered, undelivered, failed, perm, opt) = (
        row[:12]
    )
    first, last = row[12], row[13]
    return EventSummary(
        event_id=eid,
        hazard=hazard,
        exercise=bool(ex),
        recipients=int(people),
        messages=int(n),
        planned=int(planned or 0),
        submitted=int(submitted or 0),
        delivered=int(delivered or 0),
        undelivered=int(undelivered or 0),
        failed=int(failed or 0),
        permanent=int(perm or 0),
        opted_out=int(opt or 0),
        first_planned_ms=int(first),
        last_submitted_ms=None if last is None else int(last),
        fanout_s=None if last is None else round((int(last) - int(first)) / 1000, 3),
    )


def delivery(row: tuple[Any, ...]) -> DeliveryRecord:
    names = [c.strip() for c in DELIVERY_COLS.split(",")]
    d = dict(zip(names, row, strict=True))
    d["exercise"] = bool(d["exercise"])
    return DeliveryRecord(**d)


def moves_forward(old: str | None, new: str) -> bool:
    """A delivery status only moves forward (callbacks may arrive out of order).

    >>> moves_forward(None, "sent"), moves_forward("delivered", "sent")
    (True, False)
    """
    return old is None or STATUS_RANK.get(new, 9) >= STATUS_RANK.get(old, 0)


def latest_statuses(
    statuses: Sequence[tuple[str, str, int | None, int]],
) -> dict[str, tuple[str, int | None, int]]:
    """The furthest status per message SID of a batch of callbacks."""
    out: dict[str, tuple[str, int | None, int]] = {}
    for sid, status, code, now in statuses:
        prev = out.get(sid)
        if prev is None or moves_forward(prev[0], status):
            out[sid] = (status, code, now)
    return out
