"""Records that cross package boundaries: detections, alert events, headquarters stages.

These are the v1 wire shapes of the ``detections``, ``alerts``, ``dq.alerts``,
``alerts.reminders`` and ``hq.stages`` topics (docs/design.md §11). They are msgspec Structs:
typed, immutable, and encoded to JSON an order of magnitude faster than dataclasses + ``json``.

>>> d = Detection(station="1018683", hazard="flood", level="caution", ts_ms=1596678600000,
...               rule="flood.gauge_stage", value=8.6, threshold=8.5)
>>> decode_detection(encode(d)) == d
True
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

LevelName = Literal["cleared", "attention", "caution", "alert", "serious"]
SeverityName = Literal["cleared", "warning", "critical"]
ActionName = Literal["raise", "escalate", "deescalate", "clear", "ack", "silence", "manual"]


class Detection(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What one rule or detector concluded about one station at one event time.

    ``level`` is the stage the rule assigns to the station *now* (``cleared`` when below
    every line). ``public`` detections decide public stages; the others (anomaly scores,
    sensor health) go to operators only (docs/design.md §4, §6).
    """

    station: str
    hazard: str
    level: LevelName
    ts_ms: int
    rule: str
    value: float
    threshold: float | None = None
    exercise: bool = False
    public: bool = True
    #: Flood forecast: when the level is projected to cross ``threshold`` (epoch ms).
    projected_crossing_ms: int | None = None
    confidence: float | None = None
    details: dict[str, Any] = {}


class AlertEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One transition of one alert (hazard × zone), docs/design.md §11.2."""

    alert_id: str
    hazard: str
    zone: str
    zone_name: str
    level: LevelName
    previous: LevelName
    level_ko: str
    ts: str  # RFC 3339 with offset
    action: ActionName
    exercise: bool = False
    stations: list[str] = []
    evidence: dict[str, Any] = {}
    #: Unique id of this transition; SMS and CAP de-duplicate on it.
    event_id: str = ""
    #: Operator actions: who and why.
    actor: str | None = None
    reason: str | None = None


class DataQualityAlert(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One transition of an operators' data-quality alert (sensor health) of a zone, on the
    ``dq.alerts`` topic (docs/design.md §4, §11.7). Never public: it has a ``severity``,
    never a crisis ``level``, and no SMS, CAP document or HQ stage is made from it.
    """

    alert_id: str
    zone: str
    zone_name: str
    severity: SeverityName
    previous: SeverityName
    ts: str  # RFC 3339 with offset, event time
    action: ActionName
    exercise: bool = False
    #: Stations of the zone held out of its public stages (faulty or silent) now.
    stations: list[str] = []
    #: Station → the checks it fails (``flat_line``, ``stuck``, ``deadman``, …).
    checks: dict[str, list[str]] = {}
    evidence: dict[str, Any] = {}
    event_id: str = ""
    actor: str | None = None
    reason: str | None = None

    @property
    def hazard(self) -> str:
        return "sensor_health"


class AlertReminder(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """An operators' reminder: an alert still unacknowledged ``repeat_s`` after operators were
    last told of it (its raise or rise, or the previous reminder), on the ``alerts.reminders``
    topic (docs/design.md §4, §11.8). Never public: no SMS, CAP document or HQ stage is made
    from it, and the alert's stage is unchanged.
    """

    alert_id: str
    hazard: str
    zone: str
    zone_name: str
    #: The alert's crisis level, or a data-quality alert's severity.
    level: str
    #: The reminder's time: event time (the drill's clock for exercises), RFC 3339.
    ts: str
    #: Since when the alert has stood at ``level``; when operators were last told of it.
    since: str
    last_notified: str
    #: Reminders since operators were last told of a rise (1, 2, …).
    n: int
    exercise: bool = False
    #: ``{alert_id}#{transitions so far}-r{n}``: unique and deterministic.
    event_id: str = ""


#: What the stage machine emits: public alert transitions and data-quality ones.
StageEvent = AlertEvent | DataQualityAlert


class HQStageEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A change of the disaster headquarters' emergency stage (비상 0–3단계)."""

    hazard_group: str  # e.g. "storm_flood" (heavy rain, snow, typhoon)
    stage: int
    previous: int
    ts: str
    action: Literal["propose", "confirm", "manual", "deescalate"]
    exercise: bool = False
    provinces: dict[str, str] = {}  # province code -> alert level standing there
    evidence: dict[str, Any] = {}
    event_id: str = ""
    actor: str | None = None


_encoder = msgspec.json.Encoder()
_det_decoder = msgspec.json.Decoder(Detection)
_alert_decoder = msgspec.json.Decoder(AlertEvent)
_hq_decoder = msgspec.json.Decoder(HQStageEvent)
_dq_decoder = msgspec.json.Decoder(DataQualityAlert)
_reminder_decoder = msgspec.json.Decoder(AlertReminder)


def encode(obj: msgspec.Struct) -> bytes:
    return _encoder.encode(obj)


def decode_detection(data: bytes) -> Detection:
    return _det_decoder.decode(data)


def decode_alert(data: bytes) -> AlertEvent:
    return _alert_decoder.decode(data)


def decode_hq(data: bytes) -> HQStageEvent:
    return _hq_decoder.decode(data)


def decode_dq_alert(data: bytes) -> DataQualityAlert:
    return _dq_decoder.decode(data)


def decode_reminder(data: bytes) -> AlertReminder:
    return _reminder_decoder.decode(data)
