"""Which `readings` partition a station's readings go to.

``partition(station_id, n) = (murmur2(utf8(station_id)) & 0x7FFFFFFF) % n``

This is exactly Apache Kafka's default partitioner for a record keyed by the station id
(``Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions``, seed 0x9747B28C), so a
Java/Go/librdkafka producer keyed by station id, a Kafka Streams repartition and this bridge
all agree on where a station lives. It is stable across processes, hosts and Python versions
(unlike :func:`hash`). Per-station order holds because one station always maps to one
partition; changing the partition count moves stations (as in Kafka), so the count of
``readings`` is fixed per deployment (``Settings.kafka.topics.readings.partitions``).

Vectorized use: :func:`partitions_for` hashes each *distinct* station id once (a batch of
thousands of readings has at most a few hundred stations) and maps rows with numpy;
:class:`Partitioner` also caches per station.

>>> murmur2(b"21")
-973932308
>>> partition_of("1018683", 8) == partition_of("1018683", 8)
True
>>> import numpy as np
>>> partitions_for(np.array(["a", "b", "a"]), 8).tolist() == [partition_of("a", 8),
...     partition_of("b", 8), partition_of("a", 8)]
True
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["Partitioner", "murmur2", "partition_of", "partitions_for"]

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 of ``data``, as a signed int (same value as Java's)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i : 4 * i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length & 3
    tail = 4 * n4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of(station_id: str, num_partitions: int) -> int:
    """The partition of ``station_id`` among ``num_partitions`` (Kafka's default rule)."""
    return (murmur2(station_id.encode("utf-8")) & 0x7FFFFFFF) % num_partitions


def partitions_for(stations: npt.NDArray[np.str_], num_partitions: int) -> npt.NDArray[np.int32]:
    """:func:`partition_of` for every row of a station column (hashing distinct ids once)."""
    if len(stations) == 0:
        return np.zeros(0, dtype=np.int32)
    uniq, inverse = np.unique(stations, return_inverse=True)
    parts = np.array([partition_of(str(s), num_partitions) for s in uniq.tolist()], np.int32)
    return parts[inverse.reshape(-1)]


class Partitioner:
    """:func:`partition_of` with a per-station cache (the bridge's hot path)."""

    def __init__(self, num_partitions: int) -> None:
        if num_partitions < 1:
            raise ValueError("num_partitions must be ≥ 1")
        self.num_partitions = num_partitions
        self._cache: dict[str, int] = {}

    def __call__(self, station_id: str) -> int:
        p = self._cache.get(station_id)
        if p is None:
            p = partition_of(station_id, self.num_partitions)
            if len(self._cache) < 1_000_000:
                self._cache[station_id] = p
        return p
