"""No payload stops the front door: through the real mosquitto and a bridge process, every
class of #18 and a seeded corpus of broken payloads each end as readings or as rejections
with their reason in ``readings.rejected``, every message is acknowledged, and a reading
published after them all still arrives. The pure properties: ``tests/test_front_door_fuzz``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gyeongbo.registry import load_registry
from gyeongbo.stack import mosquitto
from gyeongbo.stack.stack import Stack
from streams.bridge_config import BridgeSettings
from streams.validate import Validator
from tests.test_bridge_support import (
    batches,
    consume,
    end_offsets,
    now_ms,
    publish_all,
    publisher,
    seq_base,
    start_bridge_proc,
    unique_root,
)

pytestmark = pytest.mark.stack


def corpus(root: str, t: int, base: int) -> list[tuple[str, bytes]]:
    """The named classes, then 150 seeded mutations of valid payloads and random bytes."""
    single = f"{root}/water_level/1018683"
    batch = f"{root}/water_level/_batch/hrfco-seoul"

    def rd(seq: int, **kw: object) -> dict[str, object]:
        return {"station": "1018683", "ts": t, "seq": seq, "values": {"level_m": 5.0}, **kw}

    good = json.dumps([rd(base + i) for i in range(20)]).encode()
    named = [
        (single, b'{"station": "\\ud800", "ts": 1, "values": {"level_m": 1}}'),
        (batch, b'[{"station": "1018683", "ts": 1, "values": {"\\udc00": 1}}]'),
        (
            single,
            json.dumps(rd(base + 90)).encode()[:-1] + b', "exercise": true, "exercise": false}',
        ),
        (single, b"[" * 10_000 + b"]" * 10_000),
        (single, b'{"a":' * 5_000 + b"1" + b"}" * 5_000),
        (batch, json.dumps([rd(base + 100 + i) for i in range(30_000)]).encode()),  # ~2 MB
        (single, b"\xff\xfe not UTF-8"),
        (single, b""),
        (single, b'{"station": "1018683", "ts": 1, "values": {"level_m": NaN}}'),
    ]
    rng = np.random.default_rng(18)
    fuzz: list[tuple[str, bytes]] = []
    for i in range(150):
        kind = i % 3
        if kind == 0:
            raw = rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
        else:
            raw = bytearray(good)
            for _ in range(int(rng.integers(1, 6))):
                pos = int(rng.integers(0, len(raw)))
                if kind == 1:
                    raw[pos] = int(rng.integers(0, 256))
                else:
                    del raw[pos:]
                    break
            raw = bytes(raw)
        fuzz.append((batch if i % 2 else single, raw))
    return named + fuzz


def test_no_payload_stops_the_front_door(stack: Stack, tmp_path: Path) -> None:
    root = unique_root()
    t, base = now_ms(), seq_base()
    limits = BridgeSettings(_env_file=None).limits()
    assert limits.max_payload_bytes < mosquitto.MESSAGE_SIZE_LIMIT  # oversized reaches us
    validator = Validator(load_registry(stack.settings.paths.stations), limits, topic_root=root)
    msgs = corpus(root, t, base)
    want = Counter(
        r.reason.value
        for topic, payload in msgs
        for r in validator.parse(topic, payload, received_ms=t).rejections
    )
    assert {"malformed_json", "duplicate_key", "too_deep", "payload_too_large"} <= set(want)
    rejected_before = end_offsets(stack.kafka_bootstrap, "readings.rejected")
    readings_before = end_offsets(stack.kafka_bootstrap, "readings")
    bp = start_bridge_proc(stack, root, f"bridge-{uuid.uuid4().hex[:8]}", tmp_path / "b.log")
    pub = publisher(stack)
    try:
        publish_all(pub, msgs)
        last = base + 999_999  # a valid reading after everything: the door is still open
        publish_all(pub, [(f"{root}/water_level/1018683", json.dumps({
            "station": "1018683", "ts": t, "seq": last, "values": {"level_m": 5.0}}))])  # fmt: skip

        def ours(recs: list) -> list[dict]:  # type: ignore[type-arg]
            docs = [json.loads(r.value) for r in recs]
            return [d for d in docs if d["topic"].startswith(root.split("/", 1)[0] + "/")]

        recs = consume(
            stack.kafka_bootstrap,
            "readings.rejected",
            rejected_before,
            lambda rs: len(ours(rs)) >= sum(want.values()),
            timeout_s=60,
        )
        assert Counter(d["reason"] for d in ours(recs)) == want
        arrived = consume(
            stack.kafka_bootstrap,
            "readings",
            readings_before,
            lambda rs: any(int(s) == last for _, b in batches(rs) for s in b.seq),
            timeout_s=30,
        )
        assert any(int(s) == last for _, b in batches(arrived) for s in b.seq)
        deadline = time.monotonic() + 15
        while (m := bp.metrics())["messages_acked"] < len(msgs) + 1:
            assert time.monotonic() < deadline, m
            time.sleep(0.1)
        assert m["inflight_messages"] == 0 and m["rejections_unwritten"] == 0
    finally:
        pub.loop_stop()
        pub.disconnect()
        bp.terminate()
