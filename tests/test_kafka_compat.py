"""The aiokafka corrections for noida-db (``streams/kafka_compat.py``), on a real noida-db.

Each check runs in a child process, because the corrections patch aiokafka for the whole
process and this one must stay unpatched for the other tests. The module starts a noida-db
of its own, whatever broker the session's stack runs, since the corrections are for it. Each
defect is shown twice: with ``kafka.broker=kafka`` nothing is applied and the defect shows;
with ``noida`` the correction removes it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gyeongbo.stack import brokers
from gyeongbo.stack.procs import free_port, stop
from gyeongbo.stack.stack import Stack
from streams.kafka_compat import EMPTY_FETCH_PAUSE_S
from tests.kafka_helpers import create_topic, run

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def noida(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = brokers.launcher("noida").start(tmp_path_factory.mktemp("noida"), port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop(proc.pid)


def child(script: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


IDLE_FETCHES = """
    import asyncio, json, sys, time
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.consumer import fetcher
    from streams import kafka_compat

    bootstrap, topic, broker = sys.argv[1:4]
    applied = kafka_compat.apply_for(broker)
    count = 0
    inner = fetcher.Fetcher._proc_fetch_request

    async def counted(self, *args):
        global count
        count += 1
        return await inner(self, *args)

    fetcher.Fetcher._proc_fetch_request = counted

    async def main():
        global count
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=1500)
        await c.start()
        try:
            c.assign([TopicPartition(topic, 0)])
            await c.getmany(timeout_ms=1000)  # connected and positioned
            count = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 3.0:
                await c.getmany(timeout_ms=200)
        finally:
            await c.stop()
        print(json.dumps({"applied": applied, "fetches": count}))

    asyncio.run(main())
"""


def test_an_idle_consumer_does_not_spin_on_noida(noida: str) -> None:
    """noida-db answers an empty fetch at once instead of holding it for ``max_wait_ms``
    (1.5 s here): an idle consumer sent hundreds of fetches a second. With the correction
    it sends at most one per :data:`EMPTY_FETCH_PAUSE_S`."""
    topic = run(create_topic(noida, 1))
    plain = child(IDLE_FETCHES, noida, topic, "kafka")
    fixed = child(IDLE_FETCHES, noida, topic, "noida")
    assert (plain["applied"], fixed["applied"]) == (False, True)
    assert fixed["fetches"] <= 3.0 / EMPTY_FETCH_PAUSE_S + 10, fixed
    assert plain["fetches"] > 3 * fixed["fetches"], (plain, fixed)


REJOIN = """
    import asyncio, contextlib, json, sys, time
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata
    from streams import kafka_compat

    bootstrap, topic, group, broker = sys.argv[1:5]
    applied = kafka_compat.apply_for(broker)

    async def main():
        c = AIOKafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            session_timeout_ms=10_000, heartbeat_interval_ms=1000,
        )
        await c.start()
        try:
            while len(c.assignment()) < 2:
                await c.getmany(timeout_ms=200)
            coord = c._coordinator
            member, generation = coord.member_id, coord.generation
            stale = generation + 7  # a generation the broker does not know
            coord.generation = stale
            try:
                await c.commit({TopicPartition(topic, 0): OffsetAndMetadata(0, "")})
                refused = None
            except Exception as err:
                refused = type(err).__name__
            t0, back = time.monotonic(), None
            while time.monotonic() - t0 < 20:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(c.getmany(timeout_ms=200), 1.0)
                if coord.generation not in (-1, stale) and len(c.assignment()) == 2:
                    back = time.monotonic() - t0
                    break
            print(json.dumps({"applied": applied, "refused": refused, "back_s": back,
                              "same_member": coord.member_id == member}))
        finally:
            await asyncio.wait_for(c.stop(), 15)

    asyncio.run(main())
"""


def test_a_commit_refused_with_illegal_generation_rejoins_as_the_same_member(noida: str) -> None:
    """noida-db refuses a commit of a generation it does not hold with ILLEGAL_GENERATION.
    aiokafka then drops its member id and joins as a new member, so the group waits for the
    old member's session to expire (10 s here; noida may never expire it) before the consumer
    gets its partitions back. With the correction it rejoins as itself at once."""
    topic = run(create_topic(noida, 2))
    plain = child(REJOIN, noida, topic, f"g-{uuid.uuid4().hex[:8]}", "kafka")
    fixed = child(REJOIN, noida, topic, f"g-{uuid.uuid4().hex[:8]}", "noida")
    assert (plain["applied"], fixed["applied"]) == (False, True)
    assert plain["refused"] == fixed["refused"] == "CommitFailedError"
    assert fixed["same_member"] is True and fixed["back_s"] is not None, fixed
    assert fixed["back_s"] < 3.0, fixed
    assert plain["same_member"] is False, plain
    assert plain["back_s"] is None or plain["back_s"] > 5.0, plain


UNTOUCHED = """
    import json
    from aiokafka.consumer import fetcher, group_coordinator
    from streams import kafka_compat

    fetch = fetcher.Fetcher._proc_fetch_request
    commit = group_coordinator.GroupCoordinator._do_commit_offsets
    out = {}
    for broker in ("kafka", "tansu", "noida"):
        applied = kafka_compat.apply_for(broker)
        out[broker] = [
            applied,
            fetcher.Fetcher._proc_fetch_request is not fetch,
            group_coordinator.GroupCoordinator._do_commit_offsets is not commit,
        ]
    print(json.dumps(out))
"""


def test_nothing_is_patched_for_kafka_or_tansu() -> None:
    """Apache Kafka and Tansu hold empty fetches and expire abandoned members: the client is
    left as it is for them (measured on Tansu 0.6.0: 2 fetches in 3 idle seconds)."""
    assert child(UNTOUCHED) == {
        "kafka": [False, False, False],
        "tansu": [False, False, False],
        "noida": [True, True, True],
    }


def test_the_local_stack_names_its_broker(stack: Stack) -> None:
    """Processes started on the stack's settings or environment know which broker it runs."""
    assert stack.app_settings().kafka.broker == stack.config.broker
    assert stack.env()["GYEONGBO_KAFKA__BROKER"] == stack.config.broker
