"""Create every topic the project uses, with its partition count (idempotent).

Used by `gyeongbo topics create` in production (docker-compose `kafka-init`) and by the local
stack. Faust creates only its internal topics; every other topic is created here.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from gyeongbo.kafka_security import aiokafka_security
from gyeongbo.settings import KafkaSettings, Topic


def topic_configs(topic: Topic, kafka: KafkaSettings | None = None) -> dict[str, str]:
    """The topic-level configs a new topic is created with.

    >>> topic_configs(Topic(name="t", partitions=1, compacted=True),
    ...               KafkaSettings(replication_factor=3, min_insync_replicas=2))
    {'cleanup.policy': 'compact', 'min.insync.replicas': '2'}
    """
    out = {"cleanup.policy": "compact"} if topic.compacted else {}
    if kafka is not None and kafka.min_insync_replicas is not None:
        out["min.insync.replicas"] = str(kafka.min_insync_replicas)
    return out


async def _create(
    bootstrap: str, topics: list[Topic], timeout_s: float, kafka: KafkaSettings | None
) -> dict[str, int]:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(timeout_s * 1000),
        **(aiokafka_security(kafka) if kafka is not None else {}),
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [
            NewTopic(
                name=t.name,
                num_partitions=t.partitions,
                replication_factor=kafka.replication_factor if kafka is not None else 1,
                topic_configs=topic_configs(t, kafka),
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


def create_topics(
    bootstrap: str,
    topics: list[Topic],
    timeout_s: float = 30.0,
    *,
    kafka: KafkaSettings | None = None,
) -> dict[str, int]:
    """Create missing topics; return ``{name: partition count}`` as the broker reports it.

    ``kafka`` gives the replication factor, ``min.insync.replicas`` and the client's
    security settings; without it topics get one replica (the local stack's brokers)."""
    return asyncio.run(_create(bootstrap, topics, timeout_s, kafka))
