"""The subscriber store and SMS sent log: one small interface, PostgreSQL or SQLite behind it.

PostgreSQL in production and in the tests (the local stack starts a cluster of its own),
SQLite as the embedded default for drills and demos (no server). Both implement
:class:`SubscriberStore`; ``tests/test_store_contract.py`` runs the same tests on both.

What it holds (docs/design.md §5):

* **subscribers**: id, phone (E.164, personal data: shown masked everywhere), language,
  location, declared zones (areas subscribed to), hazards opted into, drill flag, consent
  time, opt-out (time, reason). Zone membership is computed when a subscriber is written
  (:func:`geo.recipients.memberships`: location → zones once, not per alert) into
  ``member_zones`` and the ``subscriber_zones`` index, with the zones' version; a store whose
  zones version differs from the running zones is re-indexed
  (:func:`streams.store.indexing.reindex`).
* **deliveries** (the sent log): one row per (person, event, level, triggering transition),
  inserted in one batch per transition *before* any request (the intent), updated in
  batches with each outcome and delivery status. A 100,000-message fan-out writes 100,000
  rows once and updates them in batches of hundreds; nothing rewrites the log.

The schema comes from numbered SQL files (``migrations/<dialect>/NNNN_name.sql``), applied
in order by :meth:`SubscriberStore.migrate` when a process opens the store; applied versions
are recorded in ``schema_migrations``.

>>> store = open_store("sqlite:///:memory:")
>>> store.migrate()
[1, 2]
>>> store.migrate()
[]
"""

from __future__ import annotations

from streams.store.model import (
    DeliveryRecord,
    EventSummary,
    Migration,
    Outcome,
    PlannedDelivery,
    StoreError,
    Subscriber,
    SubscriberStore,
    migrations,
    now_ms,
)

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
    "open_store",
]


def open_store(url: str, *, pool_size: int = 4, fail_fast: bool = False) -> SubscriberStore:
    """A store for ``sqlite:///path`` (``sqlite:///:memory:`` for tests) or
    ``postgresql://…``. ``fail_fast`` (commands run by a person): a PostgreSQL that does not
    answer is an error at once instead of after the pool's 30 s of retries (a worker waits)."""
    if url.startswith("sqlite://"):
        from streams.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///").removeprefix("sqlite://") or ":memory:")
    if url.startswith(("postgresql://", "postgres://")):
        from streams.store.postgres import PostgresStore

        return PostgresStore(url, pool_size=pool_size, fail_fast=fail_fast)
    raise StoreError(f"unknown store URL scheme: {url.split(':', 1)[0]!r} (sqlite or postgresql)")
