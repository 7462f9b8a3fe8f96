"""The detector set's steps: the rules of each station kind behind one declared protocol.

:class:`~detectors.engine.DetectorSet` runs a batch in *steps*, one reading per station slot
at a time. A step first admits the readings (late, duplicate), then runs the per-channel
stages over every kind at once — sensor health (:mod:`.health`, which decides which readings
are trusted) and the anomaly score (:mod:`.anomaly`) — and then each kind's public rules,
in the fixed order of :data:`KIND_STEPS`:

===============================  ===========================================================
step                             rules
===============================  ===========================================================
:mod:`.water_level`              ``flood.gauge_stage``, ``flood.forecast``
:mod:`.rainfall`                 ``rain.kma_heavy_rain``
:mod:`.air_quality`              hourly means → ``air.pm10`` / ``air.pm25`` / ``air.o3``
:mod:`.structural`               ``structural.<channel>``
:mod:`.seismic`                  ``earthquake.pga_intensity``
===============================  ===========================================================

Each kind's step is a :class:`KindStep`: it selects its rows of the step
(:class:`StepRows`), gathers only the state it uses for only those rows, runs its rule's
vectorized maths (the rule modules :mod:`detectors.flood_stage` … :mod:`detectors.seismic`
state the maths and sources), scatters the state back and appends one detection per change
of level. Outside the steps: :mod:`.catalogue` (catalogue events, once per batch) and
:mod:`.deadman` (silent stations, on the clock).
"""

from __future__ import annotations

from detectors.steps import air_quality, rainfall, seismic, structural, water_level
from detectors.steps.base import KindStep, StepRows

__all__ = ["KIND_STEPS", "KindStep", "StepRows"]

#: Every kind's step, in the order their detections are emitted within a step.
KIND_STEPS: tuple[KindStep, ...] = (
    water_level.STEP,
    rainfall.STEP,
    air_quality.STEP,
    structural.STEP,
    seismic.STEP,
)
