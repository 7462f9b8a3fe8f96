"""Structural monitors against 60 / 80 / 100 % of the structure's allowable value.

Practice (관리기준 1차/2차/3차 of Korean structural safety monitoring; docs/design.md §3.3):
the ratio ``ρ = |x| / allowable`` of each channel maps to 주의 CAUTION (2) at ``ρ ≥ 0.6``,
경계 ALERT (3) at ``ρ ≥ 0.8`` and 심각 SERIOUS (4) at ``ρ ≥ 1.0``. Channels and units:
``tilt_rad`` (angular distortion, rad; |x| because tilt is signed), ``crack_mm`` (mm),
``vibration_cms`` (peak particle velocity, cm/s). Allowables are per structure in the
station registry (typical: tilt 1/500, crack 5 mm, blasting vibration 0.3 cm/s). A
channel without an allowable (NaN) never raises.

>>> stage(np.array([0.0011, 0.0012, -0.0016, 0.002]), np.array([0.002] * 4)).tolist()
[0, 2, 3, 4]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["FRACTIONS", "stage"]

#: Fractions of the allowable for levels 2, 3, 4.
FRACTIONS = (0.6, 0.8, 1.0)
_LEVEL_OF_COUNT = np.array((0, 2, 3, 4), dtype=np.uint8)


def stage(x: npt.NDArray[np.float64], allowable: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Level per reading: 0, 2, 3 or 4 (NaN ``x`` or allowable gives 0); any shape."""
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.abs(x) / allowable
        # Count the lines reached (a NaN ratio reaches none), then map 0, 1, 2, 3 → 0, 2, 3, 4.
        n = (rho >= FRACTIONS[0]).view(np.uint8) + (rho >= FRACTIONS[1]).view(np.uint8)
        n += (rho >= FRACTIONS[2]).view(np.uint8)
    out: npt.NDArray[np.uint8] = _LEVEL_OF_COUNT[n]
    return out
