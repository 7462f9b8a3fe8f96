"""Earthquakes: PGA → instrumental intensity and the station level; the catalogue's own level.

**Instrumental intensity** from peak ground acceleration (Wald, Quitoriano, Heaton & Kanamori
1999, "Relationships between peak ground acceleration, peak ground velocity, and modified
Mercalli intensity in California", Earthquake Spectra 15(3), eqs. for PGA in cm/s²):
``I = 3.66 log10(PGA) - 1.66`` for ``I ≥ V`` and ``I = 2.20 log10(PGA) + 1.00`` below,
clipped to ``[1, 10]``; the Korean scale has been MMI-based since 2018. The integer class is
``round(I)``.

**Station level** from the integer intensity of an accelerometer (the lines of §3.4): II →
관심 ATTENTION (1, the targeting line), III–IV → 주의 CAUTION (2, the 안전안내 line), V–VI →
경계 ALERT (3, the 긴급 line), ≥ VII → 심각 SERIOUS (4, damage begins at VII — our choice). The
level holds for ``hold_ms`` after the last reading that reached it, so one shaking is one
raise and one clear.

**Catalogue events** (the ``event`` object of a seismic reading, docs/design.md §11.1) bring the
magnitude. What the magnitude alone decides (:func:`magnitude_level`: M ≥ 6 심각, M ≥ 5 경계 —
both nationwide, :func:`nationwide` — 3.5 ≤ M < 5 at least 주의, 2 ≤ M < 3.5 관심, below M 2
nothing) is the level of the catalogue detection. Where the message goes, which KMA class it
is and each district's stage need the expected intensity per district: the geo join applies
KMA's rules (``geo.kma_quake``, called by ``geo.routing.catalogue_routes``).

>>> intensity(np.array([0.001, 0.01, 0.1, 0.5])).round(2).tolist()
[1.0, 3.18, 5.63, 8.19]
>>> magnitude_level(np.array([6.1, 5.8, 4.0, 2.5, 1.5])).tolist()
[4, 3, 2, 1, 0]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "SEISMIC_DTYPE",
    "intensity",
    "level_of",
    "magnitude_level",
    "nationwide",
    "update",
]

G_CMS2 = 980.665

#: ``level_of`` by table: classes ≤ 1 → 0, II → 1, III–IV → 2, V–VI → 3, ≥ VII → 4.
_LEVEL_OF_CLASS = np.array((0, 0, 1, 2, 2, 3, 3, 4), dtype=np.uint8)

SEISMIC_DTYPE = np.dtype([("until", np.int64), ("level", np.uint8), ("_pad", np.uint8, (7,))])


def intensity(pga_g: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Instrumental (MMI) intensity from PGA in g (Wald et al. 1999)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log10(np.maximum(pga_g, 1e-9) * G_CMS2)
    hi = 3.66 * lg - 1.66
    lo = 2.20 * lg + 1.00
    return np.clip(np.where(hi >= 5.0, hi, lo), 1.0, 10.0)


def level_of(mmi_class: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """Crisis level of an integer intensity class (see module docstring)."""
    out: npt.NDArray[np.uint8] = _LEVEL_OF_CLASS[np.clip(mmi_class, 0, 7)]
    return out


def magnitude_level(magnitude: npt.NDArray[np.float64]) -> npt.NDArray[np.uint8]:
    """Crisis level a catalogue magnitude decides on its own (see the module docstring): M ≥ 6
    → 4, M ≥ 5 → 3, M ≥ 3.5 → 2 (the geo join may raise it to 3), M ≥ 2 → 1, else 0."""
    m = np.asarray(magnitude, dtype=np.float64)
    return np.select([m >= 6.0, m >= 5.0, m >= 3.5, m >= 2.0], [4, 3, 2, 1], default=0).astype(
        np.uint8
    )


def nationwide(magnitude: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """True when the message goes nationwide (M ≥ 5.0); else to districts with intensity ≥ II."""
    return np.asarray(magnitude) >= 5.0


def update(
    st: npt.NDArray[np.void],
    ts: npt.NDArray[np.int64],
    pga_g: npt.NDArray[np.float64],
    hold_ms: int = 60_000,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float64]]:
    """Held station level after each PGA reading; returns (level, intensity)."""
    inten = intensity(pga_g)
    lv = level_of(np.floor(inten + 0.5).astype(np.int64)).astype(np.int64)
    cur = st["level"].astype(np.int64)
    take = (lv >= cur) | (ts >= st["until"])
    new = np.where(take, lv, cur)
    st["until"] = np.where(take & (lv > 0), ts + hold_ms, st["until"])
    st["level"] = new
    return new.astype(np.uint8), inten
