"""Structural monitors against 60 / 80 / 100 % of the structure's allowable value, each stage
confirmed by 2 of the channel's last 3 readings.

Practice (관리기준 1차/2차/3차 of Korean structural safety monitoring; docs/design.md §3.3):
the ratio ``ρ = |x| / allowable`` of each channel maps to 주의 CAUTION (2) at ``ρ ≥ 0.6``,
경계 ALERT (3) at ``ρ ≥ 0.8`` and 심각 SERIOUS (4) at ``ρ ≥ 1.0``. Channels and units:
``tilt_rad`` (angular distortion, rad; |x| because tilt is signed), ``crack_mm`` (mm),
``vibration_cms`` (peak particle velocity, cm/s). Allowables are per structure in the
station registry (typical: tilt 1/500, crack 5 mm, blasting vibration 0.3 cm/s). A
channel without an allowable (NaN) never raises.

Confirmation. Monitoring practice does not act on one reading over a 관리기준: gauges
chatter on a line, and a truck or a blast gives one high vibration sample, so an exceedance
is confirmed by repeated readings before it is reported. Here a channel stands at the
**median of the stages of its last three readings**: the highest stage that at least 2 of
the 3 reach (a temporal 2-of-3 vote, the "m-of-n" debounce of alarm practice, ANSI/ISA-18.2
and ISA-TR18.2.3 on-delay and filtering; EEMUA 191). A rise is reported at the second
reading over the line (one interval after the crossing), a fall at the second reading
below it, and a single reading above or below changes nothing. The vote is per channel and
over readings, not over detections: a rule that emits only changes would leave a
downstream N-of-M vote waiting for detections that never come, so the zone takes the
confirmed level at once (``alerting/policy.py``, structural confirm 1 of 1).

State: one byte per channel, three 2-bit *counts* of lines reached (0 = none, 1 = 60 %,
2 = 80 %, 3 = 100 %; level = 0, 2, 3, 4): bits 0–1 the confirmed count, bits 2–3 the
count of the last reading, bits 4–5 the count of the reading before. A fresh byte (0) is a
channel with two readings below every line. Untrusted readings (a sensor fault, a missing
value) do not vote. Median of three counts ``a, b, c``: ``max(min(a, b), min(max(a, b),
c))``.

>>> stage(np.array([0.0011, 0.0012, -0.0016, 0.002]), np.array([0.002] * 4)).tolist()
[0, 2, 3, 4]
>>> st, seen = np.zeros(1, np.uint8), []
>>> for x in (0.0013, 0.0009, 0.0017, 0.0021, 0.0009):  # 65, 45, 85, 105, 45 %
...     st = update(st, np.array([x]), np.array([0.002]), np.array([True]))
...     seen.append(int(level(st)[0]))
>>> seen
[0, 0, 2, 3, 3]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["FRACTIONS", "from_level", "level", "stage", "update"]

#: Fractions of the allowable for levels 2, 3, 4.
FRACTIONS = (0.6, 0.8, 1.0)
_LEVEL_OF_COUNT = np.array((0, 2, 3, 4), dtype=np.uint8)
_COUNT_OF_LEVEL = np.array((0, 0, 1, 2, 3), dtype=np.uint8)
_MASK = np.uint8(3)


def _count(x: npt.NDArray[np.float64], allowable: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Lines reached per reading, 0–3 (a NaN ratio reaches none)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.abs(x) / allowable
        n = (rho >= FRACTIONS[0]).view(np.uint8) + (rho >= FRACTIONS[1]).view(np.uint8)
        n += (rho >= FRACTIONS[2]).view(np.uint8)
    return n


def stage(x: npt.NDArray[np.float64], allowable: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Level of single readings: 0, 2, 3 or 4 (NaN ``x`` or allowable gives 0); any shape."""
    out: npt.NDArray[np.uint8] = _LEVEL_OF_COUNT[_count(x, allowable)]
    return out


def level(state: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The confirmed level (0, 2, 3, 4) held in state bytes; any shape."""
    out: npt.NDArray[np.uint8] = _LEVEL_OF_COUNT[state & _MASK]
    return out


def from_level(lv: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """State bytes of channels confirmed at ``lv`` (0, 2, 3, 4) whose last two readings
    stood there too: one reading alone then moves nothing (the state of a level kept
    without its readings, e.g. a stage-only record from before the vote)."""
    c = _COUNT_OF_LEVEL[lv]
    out: npt.NDArray[np.uint8] = (c | (c << 2) | (c << 4)).astype(np.uint8)
    return out


def update(
    state: npt.NDArray[np.uint8],
    x: npt.NDArray[np.float64],
    allowable: npt.NDArray[np.float64],
    trusted: npt.NDArray[np.bool_],
) -> npt.NDArray[np.uint8]:
    """The state bytes after one reading per element (same shapes): the reading's count
    votes with the last two; untrusted elements keep their byte. Returns a new array."""
    n = _count(x, allowable)
    last = (state >> 2) & _MASK
    before = (state >> 4) & _MASK
    med = np.maximum(np.minimum(n, last), np.minimum(np.maximum(n, last), before))
    new = med | (n << 2) | (last << 4)
    out: npt.NDArray[np.uint8] = np.where(trusted, new, state).astype(np.uint8)
    return out
