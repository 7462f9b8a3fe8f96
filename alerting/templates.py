"""SMS templates: validation and rendering (docs/design.md §5).

One template per public hazard × stage (``caution``, ``alert``, ``serious``, ``cleared``) in
``config/templates.yaml``: Korean, with the English hazard keyword, naming what to do, where,
and the issuing body (read by :func:`streams.config_files.load_templates`). Validated by
:func:`parse_templates` — a bad file is refused with every problem named:

* every public hazard has the four stages; placeholders are only ``prefix``, ``zone``,
  ``station``, ``value``, ``issuer``; each text contains its hazard's English keyword;
* the longest message the template can produce — each field at its ``field_limits`` length,
  with the drill prefix in front — is at most ``max_chars`` (90 by default, the Korean
  short-message limit; configurable up to 157).

At render time longer fields are cut to their limit with "…", so a rendered message can never
exceed the limit the file was validated for. Which events get an SMS at all (주의 and above,
and one all-clear when a public stage is lifted) is decided by :func:`sms_stage`.

>>> from streams.config_files import load_templates
>>> t = load_templates()
>>> t.render_fields("flood", "caution", zone="용산구", station="한강대교", value=8.6)
'[경보] Flood 홍수주의보 용산구: 한강대교 수위 8.6m. 하천변 접근 금지, 대피 준비. -한강홍수통제소'
>>> t.render_fields("flood", "caution", zone="용산구", station="한강대교", value=8.6,
...                 drill=True)[:14]
'[훈련][경보] Flood'
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alerting.policy import policy_for
from detectors.seismic import intensity
from gyeongbo.errors import ConfigError
from gyeongbo.events import AlertEvent
from gyeongbo.vocab import Level

__all__ = [
    "STAGES",
    "ManualTemplates",
    "TemplateError",
    "Templates",
    "parse_templates",
    "sms_stage",
]

STAGES = ("caution", "alert", "serious", "cleared")
PUBLIC_HAZARDS = ("flood", "heavy_rain", "pm10", "pm25", "ozone", "structural", "earthquake")
_FIELDS = {"prefix", "zone", "station", "value", "issuer"}
MAX_LIMIT = 157


class TemplateError(ConfigError):
    """The SMS templates file is invalid."""


_ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")


def format_value(fmt: str, value: float) -> str:
    """A value as a template shows it: ``fmt.format(value)``, or, when ``fmt`` holds
    ``{mmi}``, the instrumental intensity class of a PGA in g (Wald et al. 1999, the relation
    of :func:`detectors.seismic.intensity`) in Roman numerals, as KMA states 계기진도.

    >>> format_value("규모{:.1f}", 5.8), format_value("진도{mmi}", 0.1)
    ('규모5.8', '진도VI')
    """
    if "{mmi}" in fmt:
        mmi = round(float(intensity(np.array([value]))[0]))
        return fmt.replace("{mmi}", _ROMAN[min(max(mmi, 1), 10) - 1])
    return fmt.format(value)


@dataclass(frozen=True)
class HazardTemplates:
    keyword: str
    issuer: str
    value_format: str
    stages: Mapping[str, str]
    #: Per-rule value formats (e.g. accelerometer alerts show 진도, catalogue ones 규모).
    value_formats: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ManualTemplates:
    """Texts for an operator's decision (escalate or clear by hand), see :func:`manual_stage`."""

    body: str
    text: str
    cleared: str
    #: hazard → stage → the warning's name (홍수경보, …).
    titles: Mapping[str, Mapping[str, str]]

    def render(self, hazard: str, stage: str, *, keyword: str, prefix: str, zone: str) -> str:
        fmt = self.cleared if stage == "cleared" else self.text
        return fmt.format(
            prefix=prefix,
            keyword=keyword,
            title=self.titles[hazard][stage],
            zone=zone,
            body=self.body,
        )


_MANUAL_FIELDS = {"prefix", "keyword", "title", "zone", "body"}


def manual_stage(event: AlertEvent) -> bool:
    """Whether an event is an operator's decision: a manual escalation, or a clear with an
    actor (the machine's own clears have none)."""
    return event.actor is not None and event.action in ("manual", "clear")


@dataclass(frozen=True)
class Templates:
    max_chars: int
    prefix: str
    drill_prefix: str
    field_limits: Mapping[str, int]
    hazards: Mapping[str, HazardTemplates]
    manual: ManualTemplates | None = None

    def render_fields(
        self,
        hazard: str,
        stage: str,
        *,
        zone: str,
        station: str = "",
        value: float | None = None,
        drill: bool = False,
        rule: str | None = None,
    ) -> str:
        h = self.hazards[hazard]
        fmt = h.value_formats.get(rule or "", h.value_format)
        shown = "-" if value is None else format_value(fmt, value)
        fields = {
            "prefix": self.prefix,
            "issuer": h.issuer,
            "zone": _cut(zone, self.field_limits["zone"]),
            "station": _cut(station, self.field_limits["station"]),
            "value": _cut(shown, self.field_limits["value"]),
        }
        text = h.stages[stage].format(**fields)
        if drill:
            text = self.drill_prefix + text
        if len(text) > self.max_chars:  # impossible after validation; never send a cut SMS
            raise TemplateError(hazard, [f"{stage}: {len(text)} > {self.max_chars} chars"])
        return text

    def render(
        self, event: AlertEvent, *, station_names: Mapping[str, str] | None = None
    ) -> str | None:
        """The SMS text for an alert event, or None when the event gets no SMS."""
        stage = sms_stage(event)
        if stage is None or event.hazard not in self.hazards:
            return None
        if self.manual is not None and manual_stage(event):
            text = self.manual.render(
                event.hazard,
                stage,
                keyword=self.hazards[event.hazard].keyword,
                prefix=self.prefix,
                zone=_cut(event.zone_name, self.field_limits["zone"]),
            )
            return self.drill_prefix + text if event.exercise else text
        lead = str(event.evidence.get("station") or (event.stations[0] if event.stations else ""))
        value = event.evidence.get("value")
        return self.render_fields(
            event.hazard,
            stage,
            zone=event.zone_name,
            station=(station_names or {}).get(lead, lead),
            value=float(value) if isinstance(value, int | float) else None,
            drill=event.exercise,
            rule=str(event.evidence.get("rule") or ""),
        )


def sms_stage(event: AlertEvent) -> str | None:
    """Which template an event gets: its stage from 주의 up, ``cleared`` once when a public
    stage (주의 or above) is lifted, None otherwise (관심, acks, silences, sensor health).

    >>> import msgspec
    >>> from gyeongbo.events import AlertEvent
    >>> e = AlertEvent(alert_id="a", hazard="flood", zone="z", zone_name="z", level="caution",
    ...                previous="attention", level_ko="주의", ts="t", action="escalate")
    >>> sms_stage(e), sms_stage(msgspec.structs.replace(e, level="attention", previous="alert"))
    ('caution', 'cleared')
    """
    if not policy_for(event.hazard).public or event.action in ("ack", "silence"):
        return None
    level, previous = Level.parse(event.level), Level.parse(event.previous)
    if level == previous:
        return None
    if level >= Level.CAUTION:
        return event.level
    if previous >= Level.CAUTION:
        return "cleared"
    return None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_templates(
    data: Any, *, max_chars: int | None = None, path: str = "<templates>"
) -> Templates:
    """Validate a parsed YAML document; ``max_chars`` overrides the file's (from settings)."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise TemplateError(path, ["top level must be a mapping"])
    limit = int(max_chars if max_chars is not None else data.get("max_chars", 90))
    if not 40 <= limit <= MAX_LIMIT:
        problems.append(f"max_chars {limit} outside 40..{MAX_LIMIT}")
    prefix = str(data.get("prefix", "[경보]"))
    drill_prefix = str(data.get("drill_prefix", "[훈련]"))
    if "훈련" not in drill_prefix:
        problems.append("drill_prefix must say 훈련")
    limits = {"zone": 8, "station": 8, "value": 6, **(data.get("field_limits") or {})}
    hazards: dict[str, HazardTemplates] = {}
    raw = data.get("hazards") or {}
    for hz in PUBLIC_HAZARDS:
        if hz not in raw:
            problems.append(f"hazards.{hz}: missing")
    for hz, spec in raw.items():
        parsed = _parse_hazard(f"hazards.{hz}", spec, prefix, drill_prefix, limits, limit, problems)
        if parsed is not None:
            hazards[hz] = parsed
    manual = _parse_manual(data.get("manual"), hazards, prefix, drill_prefix, limits, limit)
    problems += manual[1]
    if problems:
        raise TemplateError(path, problems)
    return Templates(limit, prefix, drill_prefix, limits, hazards, manual[0])


def _parse_hazard(
    where: str,
    spec: Any,
    prefix: str,
    drill_prefix: str,
    limits: dict[str, int],
    limit: int,
    problems: list[str],
) -> HazardTemplates | None:
    """One hazard's templates (``where``: its place in the file), or None; each problem is
    added to ``problems``: a stage text missing, with an unknown placeholder, without the
    English keyword, or over ``limit`` characters with the drill prefix and every field at
    its limit; a value format longer than the value limit."""
    if not isinstance(spec, dict) or not spec.get("keyword") or not spec.get("issuer"):
        problems.append(f"{where}: needs keyword, issuer and stages")
        return None
    stages = spec.get("stages") or {}
    fmt = str(spec.get("value_format", "{}"))
    for st in STAGES:
        text = stages.get(st)
        if not isinstance(text, str):
            problems.append(f"{where}.stages.{st}: missing")
            continue
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        if names - _FIELDS:
            problems.append(
                f"{where}.stages.{st}: unknown placeholder(s) {sorted(names - _FIELDS)}"
            )
            continue
        if spec["keyword"] not in text:
            problems.append(f"{where}.stages.{st}: lacks the English keyword {spec['keyword']!r}")
        try:
            worst = drill_prefix + text.format(
                prefix=prefix,
                issuer=spec["issuer"],
                zone="가" * limits["zone"],
                station="가" * limits["station"],
                value="9" * limits["value"],
            )
        except (ValueError, IndexError, KeyError) as err:
            problems.append(f"{where}.stages.{st}: {type(err).__name__}: {err}")
            continue
        if len(worst) > limit:
            problems.append(
                f"{where}.stages.{st}: up to {len(worst)} chars with the drill prefix and "
                f"fields at their limits, over {limit}"
            )
    per_rule = spec.get("value_formats") or {}
    if not isinstance(per_rule, dict):
        problems.append(f"{where}.value_formats: must map rule names to formats")
        per_rule = {}
    for rule, rfmt in {"": fmt, **per_rule}.items():
        try:
            samples = [format_value(str(rfmt), v) for v in (0.001, 0.5, 9.99)]
        except (ValueError, IndexError, KeyError) as err:
            problems.append(f"{where}.value_formats.{rule or 'default'}: {err}")
            continue
        if max(len(x) for x in samples) > limits["value"]:
            problems.append(
                f"{where}.value_formats.{rule or 'default'}: {rfmt!r} gives "
                f"{max(samples, key=len)!r}, longer than the value limit {limits['value']}"
            )
    return HazardTemplates(
        spec["keyword"],
        spec["issuer"],
        fmt,
        dict(stages),
        {str(k): str(v) for k, v in per_rule.items()},
    )


def _parse_manual(
    raw: Any,
    hazards: Mapping[str, HazardTemplates],
    prefix: str,
    drill_prefix: str,
    limits: Mapping[str, int],
    limit: int,
) -> tuple[ManualTemplates | None, list[str]]:
    """The ``manual`` block: every public hazard has a title per stage, only the manual
    placeholders are used, and the longest text fits ``limit`` with the drill prefix."""
    if raw is None:
        return None, []
    problems: list[str] = []
    if not isinstance(raw, dict) or not raw.get("body"):
        return None, ["manual: needs body, text, cleared and titles"]
    texts = {"text": str(raw.get("text", "")), "cleared": str(raw.get("cleared", ""))}
    for key, text in texts.items():
        names = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        if not text or names - _MANUAL_FIELDS or "{body}" not in text:
            problems.append(
                f"manual.{key}: must name the {{body}} and use only {sorted(_MANUAL_FIELDS)}"
            )
    titles = raw.get("titles") or {}
    for hz, h in hazards.items():
        for st in STAGES:
            title = (titles.get(hz) or {}).get(st)
            if not isinstance(title, str) or not title:
                problems.append(f"manual.titles.{hz}.{st}: missing")
                continue
            if problems:
                continue
            fmt = texts["cleared" if st == "cleared" else "text"]
            worst = drill_prefix + fmt.format(
                prefix=prefix,
                keyword=h.keyword,
                title=title,
                zone="가" * limits["zone"],
                body=raw["body"],
            )
            if len(worst) > limit:
                problems.append(
                    f"manual.titles.{hz}.{st}: up to {len(worst)} chars with the drill prefix, "
                    f"over {limit}"
                )
    if problems:
        return None, problems
    return ManualTemplates(str(raw["body"]), texts["text"], texts["cleared"], titles), []
