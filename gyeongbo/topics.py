"""Create every topic the project uses, with its partition count (idempotent).

Used by `gyeongbo topics create` in production (docker-compose `kafka-init`) and by the local
stack. Faust creates only its internal topics; every other topic is created here.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from gyeongbo.settings import Topic


async def _create(bootstrap: str, topics: list[Topic], timeout_s: float) -> dict[str, int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=t.name,
                num_partitions=t.partitions,
                replication_factor=1,
                topic_configs={"cleanup.policy": "compact"} if t.compacted else {},
            )
            for t in topics
            if t.name not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        meta = await admin.describe_topics([t.name for t in topics])
        return {m["topic"]: len(m["partitions"]) for m in meta}
    finally:
        await admin.close()


def create_topics(bootstrap: str, topics: list[Topic], timeout_s: float = 30.0) -> dict[str, int]:
    """Create missing topics; return ``{name: partition count}`` as the broker reports it."""
    return asyncio.run(_create(bootstrap, topics, timeout_s))
