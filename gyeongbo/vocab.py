"""Closed vocabularies shared by every concern: sensor kinds, hazards, alert levels.

Levels follow the national crisis alert of the Framework Act on the Management of Disasters
and Safety, Art. 38: 관심 Attention (blue) → 주의 Caution (yellow) → 경계 Alert (orange) →
심각 Serious (red). ``cleared`` is the lifted state (docs/design.md §4, §11.2). Operators'
data-quality alerts never use them: they have their own :class:`Severity` (§4, §11.7).
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class Kind(StrEnum):
    """Sensor kind; the ``{kind}`` segment of the MQTT topic (docs/design.md §11.1)."""

    WATER_LEVEL = "water_level"
    RAINFALL = "rainfall"
    AIR_QUALITY = "air_quality"
    STRUCTURAL = "structural"
    SEISMIC = "seismic"


#: Value names each kind may carry, with their units (docs/design.md §11.1).
KIND_VALUES: dict[Kind, dict[str, str]] = {
    Kind.WATER_LEVEL: {"level_m": "m"},
    Kind.RAINFALL: {"rain_mm": "mm", "interval_s": "s"},
    Kind.AIR_QUALITY: {"pm10_ugm3": "µg/m³", "pm25_ugm3": "µg/m³", "o3_ppm": "ppm"},
    Kind.STRUCTURAL: {"tilt_rad": "rad", "crack_mm": "mm", "vibration_cms": "cm/s"},
    Kind.SEISMIC: {"pga_g": "g"},
}

#: Physically possible ranges per value name; outside them a reading is rejected at the
#: front door (not merely anomalous). Wide on purpose: records, not typical values.
PHYSICAL_RANGE: dict[str, tuple[float, float]] = {
    "level_m": (-5.0, 60.0),
    "rain_mm": (0.0, 500.0),  # per interval; the Korean 1-h record is 145 mm
    "interval_s": (1.0, 86_400.0),
    "pm10_ugm3": (0.0, 5_000.0),
    "pm25_ugm3": (0.0, 3_000.0),
    "o3_ppm": (0.0, 1.0),
    "tilt_rad": (-0.5, 0.5),
    "crack_mm": (0.0, 500.0),
    "vibration_cms": (0.0, 500.0),
    "pga_g": (0.0, 5.0),
}


#: The optional ``event`` object of a seismic reading: an earthquake catalogue entry
#: (docs/design.md §11.1), field → (unit, lowest, highest accepted value). Wide on purpose, like
#: :data:`PHYSICAL_RANGE`: a negative depth is a source above sea level, a negative magnitude
#: a micro-event. The fields are not reading values: the MQTT ``values`` object never accepts
#: them; a :class:`~gyeongbo.batch.ReadingBatch` carries each as the float64 column
#: :data:`EVENT_COLUMNS` ``[field]`` (NaN where a reading carries no event).
EVENT_FIELDS: dict[str, tuple[str, float, float]] = {
    "magnitude": ("M", -2.0, 10.0),
    "lat": ("°", -90.0, 90.0),
    "lon": ("°", -180.0, 180.0),
    "depth_km": ("km", -10.0, 800.0),
}
#: Batch column of each event field: ``event_magnitude``, ``event_lat``, ``event_lon``,
#: ``event_depth_km``.
EVENT_COLUMNS: dict[str, str] = {name: f"event_{name}" for name in EVENT_FIELDS}


class Hazard(StrEnum):
    FLOOD = "flood"
    HEAVY_RAIN = "heavy_rain"
    PM10 = "pm10"
    PM25 = "pm25"
    OZONE = "ozone"
    STRUCTURAL = "structural"
    EARTHQUAKE = "earthquake"
    SENSOR_HEALTH = "sensor_health"  # operators only, never public (docs/design.md §4)


class Level(IntEnum):
    """Alert level, ordered so that comparisons mean "more severe than"."""

    CLEARED = 0
    ATTENTION = 1
    CAUTION = 2
    ALERT = 3
    SERIOUS = 4

    @property
    def wire(self) -> str:
        """Name on the wire (``level`` in alert events, docs/design.md §11.2)."""
        return self.name.lower()

    @property
    def ko(self) -> str:
        return LEVEL_KO[self]

    @classmethod
    def parse(cls, name: str) -> Level:
        return cls[name.upper()]


LEVEL_KO: dict[Level, str] = {
    Level.CLEARED: "해제",
    Level.ATTENTION: "관심",
    Level.CAUTION: "주의",
    Level.ALERT: "경계",
    Level.SERIOUS: "심각",
}


class Severity(IntEnum):
    """Severity of an operators' data-quality alert (sensor health), never a public level.

    ``warning``: a reading was implausible and dropped, the station is still trusted (a
    spike). ``critical``: the station is faulty or silent and held out of public stages
    (step, stuck, flat-line, out of range, deadman).

    >>> Severity.of_level(Level.ATTENTION).wire, Severity.of_level(Level.ALERT).wire
    ('warning', 'critical')
    """

    CLEARED = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def wire(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, name: str) -> Severity:
        return cls[name.upper()]

    @classmethod
    def of_level(cls, level: int) -> Severity:
        """A sensor-health level (0, 1 for a spike, ≥ 2 for a fault) as a severity."""
        return cls.CLEARED if level <= 0 else cls.WARNING if level == 1 else cls.CRITICAL


LEVEL_COLOUR: dict[Level, str] = {
    Level.CLEARED: "green",
    Level.ATTENTION: "blue",
    Level.CAUTION: "yellow",
    Level.ALERT: "orange",
    Level.SERIOUS: "red",
}
