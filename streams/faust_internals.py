"""Every use the worker makes of Faust beyond its typed, documented API, in one place.

Checked against faust-streaming 0.15.3 (mode-streaming 0.7.1, the aiohttp web driver). Each
function names the attribute it reaches and why the public API does not do: when Faust is
upgraded, check these first (``tests/test_pipeline_e2e.py`` and ``tests/test_faults.py``
exercise all of them on a real broker).

=============================  =============================================================
function                       Faust internal
=============================  =============================================================
:func:`mount_routes`           ``Web.web_app`` of the aiohttp driver (the ``aiohttp``
                               ``Application``); Faust's own ``View`` classes take no
                               middleware, and the operator API needs one (authentication,
                               ``streams.web_auth``).
:func:`tables_recovered`       ``app.tables.recovery.completed`` (the ``Recovery`` service's
                               ``asyncio.Event``; not on ``TableManagerT``). ``/health`` must
                               answer at once; the public ``wait_until_recovery_completed()``
                               is a coroutine that waits.
:func:`waiting_queue`          ``stream.channel.queue``: records already delivered to the
                               agent, so the detect agent can join them into one detector
                               call without waiting on a timer.
:func:`release_payload`        ``event.value`` and ``event.message.value``, cleared: an event
                               is held until the checkpoint that covers it, and need not hold
                               the record's bytes meanwhile.
:func:`put_to_partition`       ``table.data`` (the table's local store, not on
                               ``CollectionT``) written directly, and ``send_changelog`` to an
                               explicit partition: ``table[key] = v`` sends to the current
                               event's partition and fails outside an event (a checkpoint runs
                               from a timer too).
=============================  =============================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

__all__ = [
    "mount_routes",
    "put_to_partition",
    "release_payload",
    "tables_recovered",
    "waiting_queue",
]


def mount_routes(
    web: Any, middlewares: Iterable[Any], routes: Iterable[tuple[str, str, Any]]
) -> None:
    """Add plain aiohttp middlewares and ``(method, path, handler)`` routes to Faust's web
    server (call from ``App.on_webserver_init``)."""
    app = web.web_app
    app.middlewares.extend(middlewares)
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)


def tables_recovered(app: Any) -> bool:
    """Whether the app's tables have finished recovering from their changelogs."""
    return bool(app.tables.recovery.completed.is_set())


def waiting_queue(stream: Any) -> asyncio.Queue[Any] | None:
    """The queue of records delivered to ``stream``'s agent and not yet read (None when the
    channel has none)."""
    return getattr(stream.channel, "queue", None)


def release_payload(event: Any) -> None:
    """Drop a decoded record's bytes from its Faust event, which is kept until the
    checkpoint that covers it: held acknowledgements then cost the event, not the record."""
    event.value = None
    event.message.value = None


def put_to_partition(table: Any, partition: int, key: Any, value: Any) -> Any:
    """Set ``key`` in ``table`` and send it to changelog partition ``partition``; returns the
    delivery future."""
    table.data[key] = value
    return table.send_changelog(partition, key, value)
