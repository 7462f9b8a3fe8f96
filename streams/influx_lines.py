"""InfluxDB line protocol for Gyeongbo's records: the schema of everything the sink writes.

Pure functions, no I/O: each turns records into line-protocol lines (``str``, no trailing
newline) at **millisecond precision** (write with ``precision=ms``). Readings are formatted
column-wise from a :class:`~gyeongbo.batch.ReadingBatch` — rows are grouped by kind and by
which values they carry, and each group is rendered with one ``%`` template — so no per-reading
``Point`` object ever exists (about 3 µs per reading here: ``benchmarks/influx_sink.py``).

Conventions: tag keys are sorted (InfluxDB's preferred order), empty tags are left out,
booleans are tags ``"true"``/``"false"``; a value that is NaN or ±inf is left out (a reading
with no finite value writes no line); every field keeps one type forever (floats stay floats,
``*_num`` and ``*_ms`` fields are integers) so InfluxDB never sees a field type conflict.
Free-text string fields have newlines replaced by spaces (one record = one line).

Schema (also in docs/guide.md, Storage and dashboards):

=================  ==========================================  ==================================
measurement        tags                                        fields
=================  ==========================================  ==================================
``reading``        ``station``, ``kind``, ``exercise``         one float per value the reading
                                                               carries (``level_m``, ``rain_mm``,
                                                               ``interval_s``, ``pm10_ugm3``,
                                                               ``pm25_ugm3``, ``o3_ppm``,
                                                               ``tilt_rad``, ``crack_mm``,
                                                               ``vibration_cms``, ``pga_g``);
                                                               a catalogue event's
                                                               ``event_magnitude``,
                                                               ``event_lat``, ``event_lon``,
                                                               ``event_depth_km``;
                                                               ``seq`` (int) when sent
``detection``      ``station``, ``kind``, ``hazard``,          ``value``, ``threshold``,
                   ``level``, ``rule``, ``public``,            ``confidence``, ``lat``, ``lon``
                   ``exercise``                                (float); ``level_num`` (int 0–4),
                                                               ``projected_crossing_ms`` (int);
                                                               ``details`` (JSON string)
``sensor_health``  ``station``, ``kind``, ``check`` (rule,     ``value`` (float),
                   e.g. ``health.deadman``), ``severity``,     ``severity_num`` (int 0–2),
                   ``exercise``                                ``faults`` (string, comma
                                                               separated), ``details`` (JSON)
``dq_alert``       ``zone``, ``severity``, ``previous``,       ``severity_num``, ``previous_num``
                   ``action``, ``exercise``                    (int); ``message``, ``zone_name``,
                                                               ``alert_id``, ``event_id``,
                                                               ``stations``, ``checks`` (JSON),
                                                               ``actor``, ``reason`` (strings)
``alert``          ``hazard``, ``zone``, ``level``,            ``level_num``, ``previous_num``
                   ``previous``, ``action``, ``exercise``      (int); ``message``, ``level_ko``,
                                                               ``zone_name``, ``alert_id``,
                                                               ``event_id``, ``stations``,
                                                               ``evidence`` (JSON), ``actor``,
                                                               ``reason`` (strings)
``alert_reminder`` ``hazard``, ``zone``, ``level``,            ``n`` (int); ``message``,
                   ``exercise``                                ``zone_name``, ``alert_id``,
                                                               ``event_id``, ``since``,
                                                               ``last_notified`` (strings)
``hq_stage``       ``hazard_group``, ``action``, ``exercise``  ``stage``, ``previous`` (int);
                                                               ``message``, ``provinces`` (JSON),
                                                               ``event_id``, ``actor`` (strings)
``station``        ``station``, ``kind``                       ``lat``, ``lon`` (float),
                                                               ``name``, ``name_en``, ``zones``
                                                               (strings); water level:
                                                               ``attention``, ``caution``,
                                                               ``alert``, ``serious`` (m);
                                                               structural: ``allowable_<channel>``
``pipeline``       ``component``, ``instance`` (+ any given)   every metric as a float
``delivery``       ``event``, ``hazard``, ``exercise``         ``recipients``, ``messages``,
                                                               ``planned``, ``submitted``,
                                                               ``delivered``, ``undelivered``,
                                                               ``failed``, ``permanent``,
                                                               ``opted_out`` (int);
                                                               ``fanout_s`` (float)
=================  ==========================================  ==================================

``level`` is the wire name (``cleared``, ``attention``, ``caution``, ``alert``, ``serious``) and
``level_num`` its rank 0–4 (:class:`~gyeongbo.vocab.Level`), for colouring and ``max()``.
Sensor health and data-quality alerts are operators' and never carry a crisis level: their
``severity`` is ``cleared``, ``warning`` or ``critical`` (:class:`~gyeongbo.vocab.Severity`,
``severity_num`` 0–2).
Timestamps: readings and detections at their event time; alerts and HQ stages at ``ts``;
station metadata and pipeline metrics at the time they are written.

>>> from gyeongbo.batch import ReadingBatch
>>> b = ReadingBatch.from_rows([
...     {"station": "1018683", "kind": "water_level", "ts_ms": 1596678600000, "seq": 7,
...      "values": {"level_m": 8.36}},
...     {"station": "111131", "kind": "air_quality", "ts_ms": 1596678600000,
...      "values": {"pm25_ugm3": 80.0}, "exercise": True},
... ])
>>> for ln in reading_lines(b):
...     print(ln)
reading,exercise=false,kind=water_level,station=1018683 level_m=8.36,seq=7i 1596678600000
reading,exercise=true,kind=air_quality,station=111131 pm25_ugm3=80.0 1596678600000
>>> line("m", {"zone": "11 030", "empty": ""}, {"message": 'say "hi"', "n": 3, "x": 0.5}, 5)
'm,zone=11\\\\ 030 message="say \\\\"hi\\\\"",n=3i,x=0.5 5'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
import numpy as np
import numpy.typing as npt

from gyeongbo.batch import KINDS_BY_CODE, ReadingBatch
from gyeongbo.events import (
    AlertEvent,
    AlertReminder,
    DataQualityAlert,
    Detection,
    HQStageEvent,
)
from gyeongbo.registry import Registry, Station
from gyeongbo.vocab import Hazard, Level, Severity

__all__ = [
    "HAZARD_KEYWORD",
    "MEASUREMENTS",
    "alert_lines",
    "alert_message",
    "detection_lines",
    "dq_alert_lines",
    "health_lines",
    "hq_lines",
    "line",
    "metric_lines",
    "reading_lines",
    "reminder_lines",
    "rfc3339_to_ms",
    "station_lines",
]

#: How every line of :func:`reading_lines` (default measurement) starts: the sink's bulk lane.
READING_PREFIX: Final = b"reading,"

#: Every measurement the sink writes.
MEASUREMENTS: Final = (
    "reading",
    "detection",
    "sensor_health",
    "alert",
    "dq_alert",
    "alert_reminder",
    "hq_stage",
    "station",
    "pipeline",
)

#: English keyword per hazard, as in the SMS text (docs/design.md §5).
HAZARD_KEYWORD: Final[dict[str, str]] = {
    Hazard.FLOOD: "Flood",
    Hazard.HEAVY_RAIN: "Heavy rain",
    Hazard.PM10: "Fine dust PM10",
    Hazard.PM25: "Fine dust PM2.5",
    Hazard.OZONE: "Ozone",
    Hazard.STRUCTURAL: "Structure",
    Hazard.EARTHQUAKE: "Earthquake",
    Hazard.SENSOR_HEALTH: "Sensor health",
}

FieldValue = float | int | str | bool | None

_TAG_ESCAPE = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ ", "\n": " "})
_MEAS_ESCAPE = str.maketrans({",": r"\,", " ": r"\ ", "\n": " "})
_STR_ESCAPE = str.maketrans({'"': r"\"", "\\": r"\\", "\n": " ", "\r": " "})


def _tag(v: str) -> str:
    return v.translate(_TAG_ESCAPE)


def _field_value(v: float | int | str | bool) -> str | None:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return f"{v}i"
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else None
    return '"' + v.translate(_STR_ESCAPE) + '"'


def line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    ts_ms: int,
) -> str | None:
    """One line; ``None`` when no field is left (every field None or non-finite)."""
    parts = [
        f"{_tag(k)}={v}"
        for k, v in ((k, _field_value(v)) for k, v in fields.items() if v is not None)
        if v is not None
    ]
    if not parts:
        return None
    tag_part = "".join(f",{_tag(k)}={_tag(v)}" for k, v in sorted(tags.items()) if v)
    return f"{measurement.translate(_MEAS_ESCAPE)}{tag_part} {','.join(parts)} {int(ts_ms)}"


def _bool(b: bool) -> str:
    return "true" if b else "false"


_ESCAPED_CODES = np.array([ord(c) for c in ", =\n"], dtype=np.uint32)


def _needs_escape(ids: npt.NDArray[Any]) -> bool:
    """Whether any id holds a character a tag value must escape (vectorized on the UCS-4
    code points of a ``<U`` array; other dtypes are checked id by id).

    >>> _needs_escape(np.array(["1018683", "111131"])), _needs_escape(np.array(["a b", "c"]))
    (False, True)
    """
    if ids.dtype.kind == "U" and ids.dtype.itemsize:
        codes = np.ascontiguousarray(ids).view(np.uint32)
        return bool(np.isin(codes, _ESCAPED_CODES).any())
    return any(ch in str(s) for s in ids.tolist() for ch in ", =\n")


def reading_lines(batch: ReadingBatch, measurement: str = "reading") -> list[str]:
    """One line per reading that carries at least one finite value, in batch order per group.

    Rows are grouped by (kind, exercise, which values are present, whether ``seq`` is set);
    each group is formatted with one template, so the cost is one ``%`` per reading.
    """
    n = len(batch)
    if n == 0:
        return []
    names = [k for k in batch.values]
    cols = [np.asarray(batch.values[k], dtype=np.float64) for k in names]
    present = np.stack([np.isfinite(c) for c in cols], axis=1) if cols else np.zeros((n, 0), bool)
    has_seq = batch.seq >= 0
    # One integer code per row: kind, exercise, seq present, value-presence bits.
    weights = np.left_shift(np.int64(1), np.arange(len(names), dtype=np.int64))
    code = present.astype(np.int64) @ weights if names else np.zeros(n, np.int64)
    code = (
        code * 4 + has_seq.astype(np.int64) * 2 + batch.exercise.astype(np.int64)
    ) * 256 + batch.kind.astype(np.int64)
    stations = batch.station
    if _needs_escape(stations):
        stations = np.array([_tag(s) for s in stations.tolist()], dtype=np.str_)
    out: list[str] = []
    meas = measurement.translate(_MEAS_ESCAPE)
    for c in np.unique(code).tolist():
        kind = KINDS_BY_CODE[c % 256]
        exercise = bool((c // 256) & 1)
        seq_on = bool((c // 256) & 2)
        bits = c // 1024
        value_idx = [j for j in range(len(names)) if bits >> j & 1]
        if not value_idx:
            continue
        rows = np.flatnonzero(code == c)
        fields = ",".join(f"{_tag(names[j])}=%r" for j in value_idx)
        if seq_on:
            fields += ",seq=%di"
        tmpl = f"{meas},exercise={_bool(exercise)},kind={kind.value},station=%s {fields} %d"
        columns: list[list[object]] = [stations[rows].tolist()]
        columns += [cols[j][rows].tolist() for j in value_idx]
        if seq_on:
            columns.append(batch.seq[rows].tolist())
        columns.append(batch.ts_ms[rows].tolist())
        out.extend(tmpl % row for row in zip(*columns, strict=True))
    return out


def _details(d: Mapping[str, object]) -> str | None:
    return msgspec.json.encode(d).decode() if d else None


def detection_lines(detections: Iterable[Detection], registry: Registry | None = None) -> list[str]:
    """Detections; those with hazard ``sensor_health`` go to ``sensor_health``."""
    out: list[str] = []
    stations = registry.stations if registry is not None else {}
    for d in detections:
        st = stations.get(d.station)
        if d.hazard == Hazard.SENSOR_HEALTH:
            ln = _health_line(d, st)
        else:
            ln = line(
                "detection",
                {
                    "station": d.station,
                    "kind": st.kind.value if st else "",
                    "hazard": d.hazard,
                    "level": d.level,
                    "rule": d.rule,
                    "public": _bool(d.public),
                    "exercise": _bool(d.exercise),
                },
                {
                    "value": float(d.value),
                    "threshold": None if d.threshold is None else float(d.threshold),
                    "level_num": int(Level.parse(d.level)),
                    "confidence": None if d.confidence is None else float(d.confidence),
                    "projected_crossing_ms": d.projected_crossing_ms,
                    "lat": st.lat if st else None,
                    "lon": st.lon if st else None,
                    "details": _details(d.details),
                },
                d.ts_ms,
            )
        if ln is not None:
            out.append(ln)
    return out


def _health_line(d: Detection, st: Station | None) -> str | None:
    faults = d.details.get("faults") if d.details else None
    return line(
        "sensor_health",
        {
            "station": d.station,
            "kind": st.kind.value if st else "",
            "check": d.rule,
            "severity": (sev := Severity.of_level(Level.parse(d.level))).wire,
            "exercise": _bool(d.exercise),
        },
        {
            "value": float(d.value),
            "severity_num": int(sev),
            "faults": ",".join(map(str, faults)) if isinstance(faults, list) else "",
            "details": _details(d.details),
        },
        d.ts_ms,
    )


def health_lines(detections: Iterable[Detection], registry: Registry | None = None) -> list[str]:
    """Sensor-health detections (any hazard) as ``sensor_health`` lines."""
    stations = registry.stations if registry is not None else {}
    return [ln for d in detections if (ln := _health_line(d, stations.get(d.station))) is not None]


def rfc3339_to_ms(ts: str) -> int:
    """``2020-08-06T10:40:00+09:00`` → epoch ms (``Z`` accepted; naive means UTC).

    >>> rfc3339_to_ms("2020-08-06T10:40:00.5+09:00")
    1596678000500
    """
    dt = datetime.fromisoformat(ts)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1000)


def alert_message(a: AlertEvent) -> str:
    """The operator-facing one-line text stored in ``alert.message``.

    >>> a = AlertEvent(alert_id="flood:11030:x", hazard="flood", zone="11030",
    ...     zone_name="용산구", level="caution", previous="attention", level_ko="주의",
    ...     ts="2020-08-06T11:00:00+09:00", action="raise", stations=["1018683"],
    ...     evidence={"value": 8.36, "threshold": 8.5})
    >>> alert_message(a)
    '[주의] Flood 용산구 (11030): raise attention→caution; 1018683 8.36 / 8.5'
    """
    kw = HAZARD_KEYWORD.get(a.hazard, a.hazard)
    text = f"[{a.level_ko}] {kw} {a.zone_name} ({a.zone}): {a.action} {a.previous}→{a.level}"
    if a.exercise:
        text = "[훈련] " + text
    if a.stations:
        text += "; " + ",".join(a.stations)
    value, threshold = a.evidence.get("value"), a.evidence.get("threshold")
    if value is not None:
        text += f" {value}" + (f" / {threshold}" if threshold is not None else "")
    if a.actor:
        text += f" by {a.actor}"
    if a.reason:
        text += f" ({a.reason})"
    return text


def alert_lines(events: Iterable[AlertEvent]) -> list[str]:
    out: list[str] = []
    for a in events:
        ln = line(
            "alert",
            {
                "hazard": a.hazard,
                "zone": a.zone,
                "level": a.level,
                "previous": a.previous,
                "action": a.action,
                "exercise": _bool(a.exercise),
            },
            {
                "level_num": int(Level.parse(a.level)),
                "previous_num": int(Level.parse(a.previous)),
                "message": alert_message(a),
                "level_ko": a.level_ko,
                "zone_name": a.zone_name,
                "alert_id": a.alert_id,
                "event_id": a.event_id or None,
                "stations": ",".join(a.stations),
                "evidence": _details(a.evidence),
                "actor": a.actor,
                "reason": a.reason,
            },
            rfc3339_to_ms(a.ts),
        )
        if ln is not None:
            out.append(ln)
    return out


def dq_alert_lines(events: Iterable[DataQualityAlert]) -> list[str]:
    """Operators' data-quality alerts → ``dq_alert`` (a severity, never a crisis level).

    >>> a = DataQualityAlert(alert_id="sensor_health:11030:x", zone="11030", zone_name="용산구",
    ...     severity="critical", previous="cleared", ts="2020-08-06T11:00:00+09:00",
    ...     action="raise", stations=["1018683"], checks={"1018683": ["flat_line"]})
    >>> dq_alert_lines([a])[0].split(" ")[0]
    'dq_alert,action=raise,exercise=false,previous=cleared,severity=critical,zone=11030'
    """
    out: list[str] = []
    for a in events:
        faults = "; ".join(f"{s} {','.join(c)}" for s, c in a.checks.items())
        text = f"[{a.severity}] 센서 {a.zone_name} ({a.zone}): {a.action} {a.previous}→{a.severity}"
        text = ("[훈련] " if a.exercise else "") + text + (f"; {faults}" if faults else "")
        ln = line(
            "dq_alert",
            {
                "zone": a.zone,
                "severity": a.severity,
                "previous": a.previous,
                "action": a.action,
                "exercise": _bool(a.exercise),
            },
            {
                "severity_num": int(Severity.parse(a.severity)),
                "previous_num": int(Severity.parse(a.previous)),
                "message": text,
                "zone_name": a.zone_name,
                "alert_id": a.alert_id,
                "event_id": a.event_id or None,
                "stations": ",".join(a.stations),
                "checks": _details(a.checks),
                "actor": a.actor,
                "reason": a.reason,
            },
            rfc3339_to_ms(a.ts),
        )
        if ln is not None:
            out.append(ln)
    return out


def reminder_message(r: AlertReminder) -> str:
    """The operator-facing text of a reminder (``alert_reminder.message``, the worker's log).

    >>> r = AlertReminder(alert_id="flood:11030:x", hazard="flood", zone="11030",
    ...     zone_name="용산구", level="caution", ts="2020-08-06T11:30:00+09:00",
    ...     since="2020-08-06T11:00:00+09:00", last_notified="2020-08-06T11:00:00+09:00", n=1)
    >>> reminder_message(r)
    '[미확인 1] Flood 용산구 (11030) caution since 2020-08-06T11:00:00+09:00: not acknowledged'
    """
    kw = HAZARD_KEYWORD.get(r.hazard, r.hazard)
    text = (
        f"[미확인 {r.n}] {kw} {r.zone_name} ({r.zone}) {r.level} since {r.since}: not acknowledged"
    )
    return ("[훈련] " if r.exercise else "") + text


def reminder_lines(reminders: Iterable[AlertReminder]) -> list[str]:
    """Operators' reminders → ``alert_reminder`` at the reminder's time (never public)."""
    out: list[str] = []
    for r in reminders:
        ln = line(
            "alert_reminder",
            {"hazard": r.hazard, "zone": r.zone, "level": r.level, "exercise": _bool(r.exercise)},
            {
                "n": r.n,
                "message": reminder_message(r),
                "zone_name": r.zone_name,
                "alert_id": r.alert_id,
                "event_id": r.event_id or None,
                "since": r.since,
                "last_notified": r.last_notified,
            },
            rfc3339_to_ms(r.ts),
        )
        if ln is not None:
            out.append(ln)
    return out


def hq_lines(events: Iterable[HQStageEvent]) -> list[str]:
    out: list[str] = []
    for h in events:
        text = f"비상 {h.stage}단계 ({h.hazard_group}): {h.action} {h.previous}→{h.stage}"
        if h.exercise:
            text = "[훈련] " + text
        ln = line(
            "hq_stage",
            {"hazard_group": h.hazard_group, "action": h.action, "exercise": _bool(h.exercise)},
            {
                "stage": int(h.stage),
                "previous": int(h.previous),
                "message": text,
                "provinces": _details(h.provinces),
                "event_id": h.event_id or None,
                "actor": h.actor,
            },
            rfc3339_to_ms(h.ts),
        )
        if ln is not None:
            out.append(ln)
    return out


def station_lines(registry: Registry, ts_ms: int) -> list[str]:
    """Station metadata (location, names, official lines) for maps and tables."""
    out: list[str] = []
    for st in registry.stations.values():
        fields: dict[str, FieldValue] = {
            "lat": float(st.lat),
            "lon": float(st.lon),
            "name": st.name,
            "name_en": st.name_en,
            "zones": ",".join(st.zones),
        }
        if st.levels is not None:
            fields.update(
                attention=None if st.levels.attention is None else float(st.levels.attention),
                caution=float(st.levels.caution),
                alert=float(st.levels.alert),
                serious=float(st.levels.serious),
            )
        for ch, v in (st.allowable or {}).items():
            fields[f"allowable_{ch}"] = float(v)
        ln = line("station", {"station": st.id, "kind": st.kind.value}, fields, ts_ms)
        if ln is not None:
            out.append(ln)
    return out


def metric_lines(
    component: str,
    values: Mapping[str, float | int | bool],
    ts_ms: int,
    *,
    instance: str = "",
    tags: Mapping[str, str] | None = None,
) -> list[str]:
    """One ``pipeline`` line; every value written as a float (no type conflicts ever)."""
    fields: dict[str, FieldValue] = {k: float(v) for k, v in values.items()}
    ln = line(
        "pipeline", {**(tags or {}), "component": component, "instance": instance}, fields, ts_ms
    )
    return [] if ln is None else [ln]


def delivery_lines(summaries: Iterable[Any], ts_ms: int) -> list[str]:
    """One ``delivery`` point per event summary (``streams.store.EventSummary``): what the
    fan-out of that event has done so far, for the operators' delivery panel."""
    out: list[str] = []
    for s in summaries:
        fields: dict[str, FieldValue] = {
            k: int(getattr(s, k))
            for k in (
                "recipients",
                "messages",
                "planned",
                "submitted",
                "delivered",
                "undelivered",
                "failed",
                "permanent",
                "opted_out",
            )
        }
        if s.fanout_s is not None:
            fields["fanout_s"] = float(s.fanout_s)
        ln = line(
            "delivery",
            {"event": s.event_id, "hazard": s.hazard, "exercise": _bool(s.exercise)},
            fields,
            ts_ms,
        )
        if ln is not None:
            out.append(ln)
    return out
