"""One reading and one MQTT publication of the simulators, and the helpers the generator
(:mod:`simulators.generator`) and the faults (:mod:`simulators.faults`) share: KST
timestamps, seeded random generators, the value names and physical ranges of a kind.

>>> rfc3339(1596678000000), rfc3339(1596678000123)
('2020-08-06T10:40:00+09:00', '2020-08-06T10:40:00.123+09:00')
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from gyeongbo.vocab import KIND_VALUES, PHYSICAL_RANGE

__all__ = [
    "KST",
    "Publication",
    "Reading",
    "out_of_range_value",
    "rfc3339",
    "seeded_rng",
    "value_names",
]

KST = timezone(timedelta(hours=9))


def rfc3339(ms: int) -> str:
    """Epoch milliseconds as RFC 3339 in Korea Standard Time (ms only when non-zero)."""
    dt = datetime.fromtimestamp(ms // 1000, KST)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    frac = ms % 1000
    return f"{base}.{frac:03d}+09:00" if frac else f"{base}+09:00"


@dataclass(slots=True)
class Reading:
    """One reading before encoding; faults transform lists of these."""

    t_s: float
    ts_ms: int
    seq: int
    values: dict[str, float | int]
    event: dict[str, float] | None = None
    tag: str = "reading"
    expect_rejected: bool = False


@dataclass(frozen=True, slots=True)
class Publication:
    """One MQTT message: when (scenario time), where, and the exact bytes."""

    t_s: float
    topic: str
    payload: bytes
    station: str
    kind: str
    gateway: str
    #: ``reading``, ``stuck``, ``spike``, ``skewed``, ``duplicate``, ``batch`` or
    #: ``malformed:<variant>``.
    tag: str = "reading"
    #: The bridge must dead-letter this payload (to ``readings.rejected``).
    expect_rejected: bool = False
    #: Readings carried (a gateway batch carries many; a malformed payload none).
    readings: int = 1
    obj: Any = field(default=None, compare=False, repr=False)


def seeded_rng(seed: int, *keys: str | int) -> np.random.Generator:
    """A generator keyed by the seed and names (crc32 of strings), stable across runs."""
    words = [seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF]
    words += [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    return np.random.default_rng(words)


def value_names(kind: str) -> list[str]:
    for k, names in KIND_VALUES.items():
        if k.value == kind:
            return list(names)
    return []


def out_of_range_value(name: str) -> float:
    lo, hi = PHYSICAL_RANGE.get(name, (0.0, 1.0))
    return float(hi * 10 + 1) if hi > 0 else float(lo * 10 - 1)
