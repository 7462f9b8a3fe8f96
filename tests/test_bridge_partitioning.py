"""Station → partition: Kafka's default partitioner, stable across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from aiokafka.partitioner import murmur2 as aiokafka_murmur2  # type: ignore[import-untyped,unused-ignore]
from hypothesis import given
from hypothesis import strategies as st

from gyeongbo.registry import REPO_ROOT, load_registry
from streams.partitioning import Partitioner, murmur2, partition_of, partitions_for

# Expected values from Apache Kafka's UtilsTest.testMurmur2 (Java, signed 32-bit).
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def test_murmur2_matches_kafka_java_vectors() -> None:
    assert {k: murmur2(k) for k in KAFKA_VECTORS} == KAFKA_VECTORS


@given(st.binary(max_size=64))
def test_murmur2_agrees_with_aiokafka(data: bytes) -> None:
    assert murmur2(data) & 0x7FFFFFFF == aiokafka_murmur2(data) & 0x7FFFFFFF


# (numpy '<U' arrays drop trailing NULs; station ids never contain one)
_ids = st.text(
    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), min_size=1, max_size=10
)


@given(st.lists(_ids, max_size=50), st.integers(1, 64))
def test_vectorized_and_cached_forms_agree(ids: list[str], n: int) -> None:
    arr = np.array(ids, dtype=np.str_)
    part = Partitioner(n)
    assert partitions_for(arr, n).tolist() == [partition_of(s, n) for s in ids]
    assert [part(s) for s in ids] == [partition_of(s, n) for s in ids]


def test_stable_across_processes_with_different_hash_seeds() -> None:
    reg = load_registry(REPO_ROOT / "config" / "stations.yaml")
    here = {sid: partition_of(sid, 8) for sid in reg.stations}
    code = (
        "import json,sys; from streams.partitioning import partition_of; "
        "print(json.dumps({s: partition_of(s, 8) for s in json.loads(sys.argv[1])}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(list(reg.stations))],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        check=True,
        text=True,
    )
    assert json.loads(out.stdout) == here
    # the registry's stations spread over more than one partition
    assert len(set(here.values())) > 4
