"""Two corrections to aiokafka for noida-db, the local stack's default broker, and only for it.

A worker applies them when ``kafka.broker`` is ``noida`` (:func:`apply_for`; the local stack
sets the setting, production leaves it ``kafka``). Both wrap a private aiokafka method
(checked against aiokafka 0.14.0); ``tests/test_kafka_compat.py`` shows each defect on a real
noida-db and that the correction removes it, and that nothing is patched for ``kafka`` or
``tansu``.

**Keep the member id on ILLEGAL_GENERATION** (``GroupCoordinator._do_commit_offsets``).
noida-db may refuse a commit made right after a rebalance with ``ILLEGAL_GENERATION``, where
Kafka accepts it or answers ``REBALANCE_IN_PROGRESS``. aiokafka then drops its member id as
well as its generation and joins as a new member; the old member stays in the group until its
session expires, and noida-db may never expire it (docs/design.md §10), so the group can stall.
The Java client keeps the member id in this case since Kafka 3.1 (KAFKA-13419: the id is still
valid, only the generation is stale); the wrapper does the same: when the commit raises
``IllegalGenerationError`` it restores the member id before the rejoin runs. An
``UNKNOWN_MEMBER_ID`` still resets it.

**Do not spin on empty fetches** (``Fetcher._proc_fetch_request``). Kafka holds an empty
fetch for the request's ``max_wait_ms`` (Faust: 1,500 ms); noida-db answers it at once, and
aiokafka sends the next at once, so an idle consumer and the broker each burn most of a core.
After a fetch that brought nothing in less than :data:`EMPTY_FETCH_PAUSE_S` the wrapper waits
out the rest of that time before the next request to that broker; an idle partition's first
record may wait up to the pause. Tansu and Kafka honour ``max_wait_ms``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.consumer import fetcher, group_coordinator

__all__ = ["EMPTY_FETCH_PAUSE_S", "NEEDS_CORRECTION", "apply_for", "install"]

#: The least time between fetches to one broker when they bring nothing (see above).
EMPTY_FETCH_PAUSE_S = 0.02

#: The ``kafka.broker`` values the corrections are for.
NEEDS_CORRECTION = frozenset({"noida"})

log = logging.getLogger("gyeongbo.kafka")

_MARK = "_gyeongbo_keeps_member_id"


def apply_for(broker: str) -> bool:
    """Install the corrections when ``broker`` (``settings.kafka.broker``) needs them;
    returns whether it did. Once installed they stay for the process."""
    if broker not in NEEDS_CORRECTION:
        return False
    install()
    return True


def install() -> None:
    """Patch aiokafka's group coordinator and fetcher (idempotent)."""
    _keep_member_id()
    _pause_empty_fetches()


def _pause_empty_fetches() -> None:
    cls: Any = fetcher.Fetcher
    if getattr(cls, _MARK, False):
        return
    original = cls._proc_fetch_request

    @functools.wraps(original)
    async def _proc_fetch_request(self: Any, assignment: Any, node_id: Any, request: Any) -> Any:
        t0 = time.monotonic()
        got = await original(self, assignment, node_id, request)
        task = asyncio.current_task()
        if got or (task is not None and task.cancelling()):
            return got  # records, or a cancelled fetch (the original swallowed the cancel)
        rest = EMPTY_FETCH_PAUSE_S - (time.monotonic() - t0)
        if rest > 0:
            try:
                await asyncio.sleep(rest)
            except asyncio.CancelledError:
                return False  # as the original does: close() or an unassignment
        return got

    cls._proc_fetch_request = _proc_fetch_request
    setattr(cls, _MARK, True)


def _keep_member_id() -> None:
    cls: Any = group_coordinator.GroupCoordinator
    if getattr(cls, _MARK, False):
        return
    original = cls._do_commit_offsets

    @functools.wraps(original)
    async def _do_commit_offsets(self: Any, assignment: Any, offsets: Any) -> Any:
        member_id = self.member_id
        try:
            return await original(self, assignment, offsets)
        except kafka_errors.IllegalGenerationError:
            # Runs synchronously after aiokafka's reset_generation(), before the rejoin task
            # gets the loop: the JoinGroup goes out under the member id we still own.
            if member_id != self.member_id:
                log.info(
                    "commit hit ILLEGAL_GENERATION in group %s: rejoining as member %s "
                    "(generation reset only, as the Java client does since KAFKA-13419)",
                    self.group_id,
                    member_id,
                )
                self.member_id = member_id
            raise

    cls._do_commit_offsets = _do_commit_offsets
    setattr(cls, _MARK, True)
