"""The detector set's parameters (:class:`DetectorParams`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from detectors import anomaly, flood_forecast

__all__ = ["DetectorParams"]


@dataclass(frozen=True)
class DetectorParams:
    """Knobs of the detector set (defaults are the documented ones)."""

    lateness_ms: int = 600_000
    hour_grace_ms: int = 300_000
    hourly_capture: float = 0.75
    deadman_k: float = 3.0
    stuck_n: int = 6
    step_n: int = 3
    recover_n: int = 3
    seismic_hold_ms: int = 60_000
    #: A catalogue event repeated within this much event time is the same event.
    catalogue_dedupe_ms: int = 600_000
    catalogue_dedupe_max: int = 4096
    forecast: flood_forecast.ForecastParams = field(default_factory=flood_forecast.ForecastParams)
    anomaly: anomaly.AnomalyParams = field(default_factory=anomaly.AnomalyParams)

    @property
    def anomaly_raise(self) -> float:
        """The operators' anomaly alarm is raised at a score ≥ this: ``anomaly.fire``. The
        record keeps the alarm (its ``level``) and clears it once the channel has settled."""
        return self.anomaly.fire
