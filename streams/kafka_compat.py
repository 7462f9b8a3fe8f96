"""Two corrections to the worker's aiokafka for brokers that are not quite Kafka.

**Keep the member id on ILLEGAL_GENERATION.** aiokafka 0.14 answers an ``OffsetCommit``
rejected with ``ILLEGAL_GENERATION`` by forgetting both its generation *and its member id*
and joining again as a brand-new member. The Java client stopped doing that in Kafka 3.1
(KAFKA-13419, "Only reset generation ID when ILLEGAL_GENERATION error": the member id is
still valid; only the generation is stale). Rejoining under the old id is what the broker
expects; rejoining under a new id leaves the old member behind until its session expires.

On Apache Kafka the difference costs at most one session timeout. On noida-db it hung the
group for good: in the two-worker tests, a worker's commit right after a rebalance was answered
ILLEGAL_GENERATION (noida had already begun the next generation; Kafka accepts a commit of the
current generation while preparing a rebalance, or answers REBALANCE_IN_PROGRESS, which
aiokafka handles without a reset); the worker rejoined under a new id; noida never expires a
member (``tests/test_broker_conformance.py``), so the abandoned id stayed in the group, was
elected leader, never sent its SyncGroup, and both workers looped in one generation until the
test gave up. Seen in one of four runs of the two-worker test and in CI; with the member id kept
the same worker logs the ILLEGAL_GENERATION, rejoins as itself, and the rebalance completes
(four of four runs, two of them through this path). Two plain aiokafka consumers did not
reproduce the ILLEGAL_GENERATION, so the conformance module has no test for it.

:func:`install` patches ``GroupCoordinator._do_commit_offsets`` once per process, wrapping
the original: when the commit raises ``IllegalGenerationError`` the member id it was sent with
is restored before the rejoin runs (aiokafka has already dropped the generation and requested
the rejoin). Nothing else changes; an ``UNKNOWN_MEMBER_ID`` still resets the id.

**Do not spin on empty fetches.** A Fetch request carries ``max_wait_ms`` (Faust: 1,500 ms):
Kafka holds an empty fetch until data arrives or that time passes, so a consumer with nothing
to read sends a couple of requests a second. noida-db answers an empty fetch at once, and
aiokafka's fetcher sends the next one at once: an idle worker burnt 85–95 % of a core (py-spy:
the consumer thread encoding and decoding fetch requests), and the broker as much answering
them, on a 2-core machine that also runs the pipeline. :func:`install` wraps
``Fetcher._proc_fetch_request``: a fetch that brought nothing and came back in less than
:data:`EMPTY_FETCH_PAUSE_S` is followed by a pause up to that time before the next request to
that broker. On Kafka an empty fetch has already waited ``max_wait_ms``, so nothing changes;
with data flowing fetches are not empty, so nothing changes either; an idle partition's first
record may wait up to the pause.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.consumer import fetcher, group_coordinator

__all__ = ["EMPTY_FETCH_PAUSE_S", "install"]

#: The least time between fetches to one broker when they bring nothing (see above).
EMPTY_FETCH_PAUSE_S = 0.02

log = logging.getLogger("gyeongbo.kafka")

_MARK = "_gyeongbo_keeps_member_id"


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
