"""Consumer-group behaviour aligned with the Java Kafka client, for the worker's aiokafka.

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
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from aiokafka import errors as kafka_errors
from aiokafka.consumer import group_coordinator

__all__ = ["install"]

log = logging.getLogger("gyeongbo.kafka")

_MARK = "_gyeongbo_keeps_member_id"


def install() -> None:
    """Patch aiokafka's group coordinator (idempotent)."""
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
