"""Small aiokafka helpers shared by the tests (real broker, no mocks)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def create_topic(bootstrap: str, partitions: int = 1, name: str | None = None) -> str:
    name = name or f"t-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
    return name


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await c.start()
    try:
        parts = c.partitions_for_topic(topic)
        for _ in range(50):
            if parts:
                break
            await c._client.force_metadata_update()
            parts = c.partitions_for_topic(topic)
            await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(parts or [])]
        ends = await c.end_offsets(tps)
        return {tp.partition: off for tp, off in ends.items()}
    finally:
        await c.stop()


async def consume_all(
    bootstrap: str,
    topic: str,
    expect: int,
    timeout_s: float = 30.0,
    from_offsets: dict[int, int] | None = None,
) -> list[Any]:
    """Read ``expect`` records (or until the timeout) from the beginning (or given offsets)."""
    c = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await c.start()
    out: list[Any] = []
    try:
        parts = None
        for _ in range(100):
            parts = c.partitions_for_topic(topic)
            if parts:
                break
            await c._client.force_metadata_update()
            await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(parts or [])]
        c.assign(tps)
        for tp in tps:
            if from_offsets and tp.partition in from_offsets:
                c.seek(tp, from_offsets[tp.partition])
            else:
                await c.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout_s
        if expect is None:
            ends = await c.end_offsets(tps)
            done = {tp for tp in tps if ends[tp] <= await c.position(tp)}
            while len(done) < len(tps) and time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=300)
                for recs in batch.values():
                    out.extend(recs)
                for tp in tps:
                    if await c.position(tp) >= ends[tp]:
                        done.add(tp)
            return out
        while len(out) < expect and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=500)
            for recs in batch.values():
                out.extend(recs)
        return out
    finally:
        await c.stop()


async def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    key: bytes | None = None,
    partition: int | None = None,
) -> None:
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await p.start()
    try:
        futs = [await p.send(topic, v, key=key, partition=partition) for v in values]
        await asyncio.gather(*futs)
    finally:
        await p.stop()
