"""What each station kind measures: value channels, their hazards, kind codes, level names."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from gyeongbo.batch import KIND_CODES
from gyeongbo.events import LevelName
from gyeongbo.vocab import Hazard, Kind

__all__ = ["CHANNELS", "HAZARD_OF", "LEVEL_NAMES"]

#: Value channels per kind, in state order (≤ 3).
CHANNELS: dict[Kind, tuple[str, ...]] = {
    Kind.WATER_LEVEL: ("level_m",),
    Kind.RAINFALL: ("rain_mm",),
    Kind.AIR_QUALITY: ("pm10_ugm3", "pm25_ugm3", "o3_ppm"),
    Kind.STRUCTURAL: ("tilt_rad", "crack_mm", "vibration_cms"),
    Kind.SEISMIC: ("pga_g",),
}
HAZARD_OF: dict[str, Hazard] = {
    "level_m": Hazard.FLOOD,
    "rain_mm": Hazard.HEAVY_RAIN,
    "pm10_ugm3": Hazard.PM10,
    "pm25_ugm3": Hazard.PM25,
    "o3_ppm": Hazard.OZONE,
    "tilt_rad": Hazard.STRUCTURAL,
    "crack_mm": Hazard.STRUCTURAL,
    "vibration_cms": Hazard.STRUCTURAL,
    "pga_g": Hazard.EARTHQUAKE,
}
#: Kind codes (:data:`gyeongbo.batch.KIND_CODES`).
KW = KIND_CODES[Kind.WATER_LEVEL]
KR = KIND_CODES[Kind.RAINFALL]
KA = KIND_CODES[Kind.AIR_QUALITY]
KS = KIND_CODES[Kind.STRUCTURAL]
KQ = KIND_CODES[Kind.SEISMIC]
#: A detection's level name by level number (0 = cleared … 4 = serious).
LEVEL_NAMES: tuple[LevelName, ...] = ("cleared", "attention", "caution", "alert", "serious")
#: No rows (an empty selection).
NO_ROWS: npt.NDArray[np.intp] = np.zeros(0, dtype=np.intp)
