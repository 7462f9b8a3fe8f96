"""Scenario files: stations, a timeline of values, sensor faults and the expected outcome.

A scenario is YAML, versioned in ``simulators/scenarios/``. Every time in it is *scenario
time*: a duration from the scenario's start (``90``, ``45s``, ``10m``, ``1h30m``, ``-70m``).
Stations are named by their id in the station registry; each value of a station is a signal
(keyframe ``points``, a shared ``curve`` shifted/scaled per station, or a ``constant``) plus
optional ``pulses`` and Gaussian ``noise``. The expected outcome is a list of stage
transitions per hazard and zone (or station) with an ``earliest``/``latest`` window, and
``never`` rules (e.g. no public alert from a faulty sensor). Abridged from
``han-river-flood.yaml``::

    format: gyeongbo.scenario/v1
    name: han-river-flood
    duration: 22h
    curves:
      hangang: [[0, 6.2], [4h50m, 8.36], [13h40m, 11.02], [22h, 7.3]]
    stations:
      - station: "1018683"
        values: {level_m: {curve: hangang, noise: 0.01, round: 2}}
    expect:
      - {hazard: flood, zone: "11030", level: caution, earliest: 3h, latest: 5h50m}
    never:
      - {hazard: flood, zone: "11030", min_level: serious}

A *faults overlay* (``format: gyeongbo.faults/v1``) carries its own stations, ``faults`` and
expectations and is merged into any scenario (:func:`apply_overlay`); a station the scenario
already defines keeps the scenario's signal and gets the overlay's faults.

Errors name the bad entry, like the registry's: ``stations[2] (station='1018683'): values:
level_m: unknown curve 'wav'``. Every problem is reported, not only the first. Top-level
keys starting with ``x-`` are ignored: they hold YAML anchors that entries share.

>>> sc = load_scenario(SCENARIO_DIR / "han-river-flood.yaml")
>>> sc.name, sc.duration_s
('han-river-flood', 79200.0)
>>> parse_duration("1h30m"), parse_duration("-70m"), parse_duration(45)
(5400.0, -4200.0, 45.0)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from gyeongbo.errors import ConfigError
from gyeongbo.registry import Registry
from gyeongbo.settings import REPO_ROOT
from gyeongbo.vocab import KIND_VALUES, Hazard, Kind, Level

__all__ = [
    "SCENARIO_DIR",
    "Catalogue",
    "Expectation",
    "Fault",
    "Never",
    "Scenario",
    "ScenarioError",
    "Signal",
    "StationSpec",
    "apply_overlay",
    "check_against_registry",
    "describe",
    "level_rank",
    "list_scenarios",
    "load_checked",
    "load_scenario",
    "parse_duration",
    "parse_scenario",
    "resolve_scenario",
    "stage_threshold",
]

#: Where the shipped scenario files live (``settings.paths.scenarios`` by default).
SCENARIO_DIR = REPO_ROOT / "simulators" / "scenarios"

SCENARIO_FORMAT = "gyeongbo.scenario/v1"
FAULTS_FORMAT = "gyeongbo.faults/v1"

_DUR_RE = re.compile(
    r"^(?P<sign>[-+]?)(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?"
    r"(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s?)?$"
)


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"45s"``, ``"10m"``, ``"1h30m"``, ``"1d"``, ``"-70m"``."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        m = _DUR_RE.match(text)
        if (
            text
            and text not in "+-"
            and m is not None
            and any(m.group(g) for g in ("d", "h", "m", "s"))
        ):
            secs = sum(
                float(m.group(g) or 0) * mult
                for g, mult in (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))
            )
            return -secs if m.group("sign") == "-" else secs
    raise ValueError(
        f"not a duration: {value!r} (use seconds or e.g. '45s', '10m', '1h30m', '-70m')"
    )


Duration = Annotated[float, BeforeValidator(parse_duration)]
LevelName = Literal["cleared", "attention", "caution", "alert", "serious"]
#: Operators' data-quality alerts (``sensor_health``) have a severity, never a crisis level.
SeverityName = Literal["warning", "critical"]


class ScenarioError(ConfigError):
    """The scenario is invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Pulse(_Model):
    """An additive transient: linear rise to ``peak`` over ``rise``, exponential decay."""

    at: Duration
    peak: float
    rise: Duration = Field(default=1.0, gt=0)
    decay: Duration = Field(default=10.0, gt=0)


class Signal(_Model):
    """How one value of one station evolves in scenario time.

    Exactly one base: ``points`` (keyframes ``[t, value]``, linear in between, held flat
    outside), ``curve`` (a named keyframe list of the scenario, read at ``t - shift`` and
    mapped as ``value * scale + offset``) or ``constant``. Then ``pulses`` are added,
    Gaussian ``noise`` (standard deviation, seeded) is added, the value is clipped to
    ``[min, max]`` and rounded to ``round`` decimals (or ``step``, e.g. a 0.5 mm bucket).

    ``min`` is the quantity's floor: where the value (before noise) is at or below it, the
    quantity is absent and the reading is exactly ``min`` — a dry rain gauge reads 0. Noise
    there would be clipped on one side only and add ``0.4 × noise`` per reading on average:
    with ``noise: 0.5`` every 10 min, a dry gauge would report ~1.2 mm/h of rain.
    """

    points: list[tuple[Duration, float]] | None = None
    curve: str | None = None
    constant: float | None = None
    shift: Duration = 0.0
    scale: float = 1.0
    offset: float = 0.0
    pulses: list[Pulse] = []
    noise: float = Field(default=0.0, ge=0)
    min: float | None = None
    max: float | None = None
    round: int = Field(default=3, ge=0, le=9)
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_base(self) -> Signal:
        bases = [n for n in ("points", "curve", "constant") if getattr(self, n) is not None]
        if len(bases) != 1:
            raise ValueError(f"give exactly one of points, curve, constant (got {bases or 'none'})")
        if self.points is not None:
            if not self.points:
                raise ValueError("points must not be empty")
            ts = [t for t, _ in self.points]
            if ts != sorted(ts):
                raise ValueError("points must be in time order")
        return self


class Catalogue(_Model):
    """An earthquake catalogue entry, attached as ``event`` to one seismic reading."""

    at: Duration
    magnitude: float = Field(ge=0, le=10)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    depth_km: float = Field(ge=0, le=800)
    origin: Duration | None = None  # scenario time of the origin, for the report


class StationSpec(_Model):
    station: str = Field(min_length=1)
    #: Reporting interval; defaults to the registry's ``interval_s`` for the station.
    interval: Duration | None = Field(default=None, gt=0)
    start: Duration = 0.0
    end: Duration | None = None
    #: Applied to every ``curve`` signal of the station (added to/multiplied with its own).
    shift: Duration = 0.0
    scale: float = 1.0
    values: dict[str, Signal] = Field(min_length=1)
    catalogue: Catalogue | None = None


FaultType = Literal["stuck", "dropout", "spikes", "clock_skew", "duplicates", "malformed"]
MalformedVariant = Literal[
    "not_json",
    "empty",
    "missing_ts",
    "bad_ts",
    "nan_value",
    "string_value",
    "unknown_value",
    "out_of_range",
    "unknown_station",
    "station_mismatch",
]
MALFORMED_VARIANTS: tuple[str, ...] = MalformedVariant.__args__  # type: ignore[attr-defined]


class Fault(_Model):
    """A sensor fault on one station, over ``[from, until)`` of scenario time.

    * ``stuck``: every value repeats the first reading of the window exactly (flat-line).
    * ``dropout``: the station sends nothing.
    * ``spikes``: at ``times`` (or each reading with ``probability``) one value jumps to
      ``value`` (absolute) or by ``delta``.
    * ``clock_skew``: ``ts`` is off by ``skew`` (a gateway with a wrong clock).
    * ``duplicates``: a reading is re-sent (same ``seq``, same bytes) with ``probability``,
      or every ``nth`` reading.
    * ``malformed``: at ``times`` (or every ``every`` seconds) a bad payload is sent *in
      addition* to the readings, cycling through ``variants``.

    ``rejected`` states whether the bridge must dead-letter the payloads this fault produces
    (default: true for ``malformed``, false otherwise); the drill counts them.
    """

    type: FaultType
    station: str = Field(min_length=1)
    from_: Duration = Field(default=0.0, alias="from")
    until: Duration | None = None
    value_name: str | None = Field(default=None, alias="value")
    # spikes
    times: list[Duration] = []
    probability: float | None = Field(default=None, ge=0, le=1)
    to: float | None = None
    delta: float | None = None
    # clock skew
    skew: Duration | None = None
    # duplicates: every n-th reading; malformed: every so many seconds
    nth: int | None = Field(default=None, ge=1)
    every: Duration | None = Field(default=None, gt=0)
    variants: list[MalformedVariant] = []
    rejected: bool | None = None
    note: str | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _fields_for_type(self) -> Fault:
        t = self.type
        if t == "spikes":
            if not self.times and self.probability is None:
                raise ValueError("spikes need 'times' or 'probability'")
            if (self.to is None) == (self.delta is None):
                raise ValueError("spikes need exactly one of 'to' (absolute) or 'delta'")
        if t == "clock_skew" and self.skew is None:
            raise ValueError("clock_skew needs 'skew' (e.g. '+1d', '-9h')")
        if t == "duplicates" and self.probability is None and self.nth is None:
            raise ValueError("duplicates need 'probability' or 'nth' (every n-th reading)")
        if t == "malformed" and not self.times and self.every is None:
            raise ValueError("malformed needs 'times' or 'every'")
        if self.until is not None and self.until <= self.from_:
            raise ValueError(f"'until' ({self.until:g}s) must be after 'from' ({self.from_:g}s)")
        return self

    @property
    def expect_rejected(self) -> bool:
        return self.rejected if self.rejected is not None else self.type == "malformed"


class Truth(_Model):
    """Where the ground truth of a threshold crossing is read, for the lead time."""

    station: str
    value: str
    threshold: float | None = None  # default: the registry stage level of the expectation
    direction: Literal["up", "down"] | None = None  # default: down for cleared, else up


class Expectation(_Model):
    """A stage transition the pipeline must produce, in a window of scenario time.

    Matched by ``hazard`` and ``zone`` (one id or a list of acceptable ids) or ``station``
    (in the alert's ``stations``); ``at_least`` accepts a higher level too.
    """

    hazard: Hazard
    zone: str | list[str] | None = None
    station: str | None = None
    #: A crisis level; for ``sensor_health`` (``dq.alerts``) a severity, warning or critical.
    level: LevelName | SeverityName
    at_least: bool = False
    earliest: Duration = 0.0
    latest: Duration
    truth: Truth | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _target(self) -> Expectation:
        if self.zone is None and self.station is None:
            raise ValueError("an expectation needs 'zone' or 'station'")
        if self.latest < self.earliest:
            raise ValueError(
                f"'latest' ({self.latest:g}s) is before 'earliest' ({self.earliest:g}s)"
            )
        if self.at_least and self.level == "cleared":
            raise ValueError("'at_least' makes no sense with level 'cleared'")
        dq = self.hazard == Hazard.SENSOR_HEALTH
        if dq != (self.level in ("warning", "critical")):
            raise ValueError(
                "sensor_health is an operators' data-quality alert: its 'level' is a severity, "
                "warning or critical"
                if dq
                else f"'{self.level}' is a data-quality severity; {self.hazard} needs a level"
            )
        return self


class Never(_Model):
    """No transition may match: e.g. no public alert whose evidence names a faulty station.

    ``public`` (default) means a level of at least ``min_level`` (default 주의 caution) on a
    hazard other than ``sensor_health``.
    """

    hazard: Hazard | None = None
    zone: str | list[str] | None = None
    station: str | None = None
    min_level: LevelName = "caution"
    public: bool = True
    from_: Duration | None = Field(default=None, alias="from")
    until: Duration | None = None
    note: str | None = None

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="after")
    def _some_target(self) -> Never:
        if self.hazard is None and self.zone is None and self.station is None:
            raise ValueError("a 'never' rule needs at least one of hazard, zone, station")
        return self


class Scenario(_Model):
    """A validated scenario (or overlay); times in seconds of scenario time."""

    format: Literal["gyeongbo.scenario/v1", "gyeongbo.faults/v1"] = "gyeongbo.scenario/v1"
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    version: int = Field(default=1, ge=1)
    title: str = ""
    description: str = ""
    based_on: str | None = None
    #: Historical clock time of scenario t=0 (labels in the report only).
    origin: str | None = None
    duration_s: Duration = Field(default=0.0, alias="duration")
    #: Overlays only: the shortest scenario they make sense on.
    min_duration_s: Duration = Field(default=0.0, alias="min_duration")
    seed: int = 0
    curves: dict[str, list[tuple[Duration, float]]] = {}
    stations: list[StationSpec] = []
    faults: list[Fault] = []
    expect: list[Expectation] = []
    never: list[Never] = []
    #: Residents' view (simulators/report.py, "per person"): at most this many SMS per
    #: recipient per event (one number, or per hazard), and at most this many clear → re-raise
    #: cycles per zone and hazard. Every shipped scenario states both; a drill over them fails.
    max_messages_per_recipient: int | dict[str, int] | None = None
    max_cycles: int | dict[str, int] | None = None
    overlays: list[str] = []  # names of overlays already applied

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @property
    def is_overlay(self) -> bool:
        return self.format == FAULTS_FORMAT

    def station_ids(self) -> list[str]:
        return [s.station for s in self.stations]


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


_SECTIONS: dict[str, tuple[type[BaseModel], str]] = {
    "stations": (StationSpec, "station"),
    "faults": (Fault, "station"),
    "expect": (Expectation, "hazard"),
    "never": (Never, "station"),
}


def _entry_label(section: str, i: int, raw: Any) -> str:
    key = _SECTIONS[section][1]
    if isinstance(raw, dict):
        bits = [f"{k}={raw[k]!r}" for k in (key, "type", "zone", "level") if k in raw]
        if bits:
            return f"{section}[{i}] ({', '.join(dict.fromkeys(bits))})"
    return f"{section}[{i}]"


def parse_scenario(data: Any, *, path: Path | str = "<scenario>") -> Scenario:
    """Validate a parsed scenario document; each problem names its entry."""
    if not isinstance(data, dict):
        raise ScenarioError(path, ["top level must be a mapping (format, name, stations, …)"])
    # ``x-…`` keys hold YAML anchors shared by entries (as in docker-compose files).
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    problems: list[str] = []
    for section, (model, _) in _SECTIONS.items():
        raw_list = data.get(section)
        if raw_list is None:
            continue
        if not isinstance(raw_list, list):
            problems.append(f"{section}: must be a list")
            continue
        for i, raw in enumerate(raw_list):
            try:
                model.model_validate(raw)
            except ValidationError as err:
                problems.append(f"{_entry_label(section, i, raw)}: {_describe(err)}")
    rest = {k: v for k, v in data.items() if k not in _SECTIONS}
    try:
        Scenario.model_validate(rest)
    except ValidationError as err:
        problems += _describe(err).split("; ")
    if problems:
        raise ScenarioError(path, problems)
    sc = Scenario.model_validate(data)
    problems = _check_internal(sc)
    if problems:
        raise ScenarioError(path, problems)
    return sc


def _check_internal(sc: Scenario) -> list[str]:
    problems: list[str] = []
    if not sc.is_overlay and sc.duration_s <= 0:
        problems.append("duration: a scenario needs a positive duration (e.g. '15h')")
    if not sc.is_overlay and not sc.stations:
        problems.append("stations: a scenario needs at least one station")
    for name, pts in sc.curves.items():
        ts = [t for t, _ in pts]
        if not pts or ts != sorted(ts):
            problems.append(f"curves.{name}: keyframes must be non-empty and in time order")
    seen: set[str] = set()
    for i, st in enumerate(sc.stations):
        where = f"stations[{i}] (station={st.station!r})"
        if st.station in seen:
            problems.append(f"{where}: station listed twice")
        seen.add(st.station)
        for vname, sig in st.values.items():
            if sig.curve is not None and sig.curve not in sc.curves:
                known = ", ".join(sorted(sc.curves)) or "none defined"
                problems.append(
                    f"{where}: values.{vname}: unknown curve {sig.curve!r} (curves: {known})"
                )
        if st.end is not None and st.end <= st.start:
            problems.append(f"{where}: 'end' must be after 'start'")
        if sc.duration_s > 0 and st.start >= sc.duration_s:
            problems.append(f"{where}: starts at {st.start:g}s, after the scenario ends")
    # An overlay's faults may target stations of the scenario it is applied to: checked
    # when merged (apply_overlay).
    for i, f in enumerate(sc.faults):
        if not sc.is_overlay and f.station not in seen:
            problems.append(
                f"faults[{i}] (station={f.station!r}, type={f.type!r}): station is not one of "
                "the scenario's stations"
            )
    for i, e in enumerate(sc.expect):
        if e.latest > sc.duration_s > 0 and not sc.is_overlay:
            label = _entry_label("expect", i, e.model_dump(mode="json", exclude_none=True))
            problems.append(
                f"{label}: latest {e.latest:g}s is after the scenario ends ({sc.duration_s:g}s)"
            )
    return problems


def load_scenario(path: Path | str) -> Scenario:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(p, [f"file not found: {p}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ScenarioError(p, [f"not valid YAML: {err}"]) from None
    return parse_scenario(data, path=p)


def list_scenarios(directory: Path = SCENARIO_DIR) -> list[Path]:
    return sorted(directory.glob("*.yaml"))


def resolve_scenario(name_or_path: str, directory: Path = SCENARIO_DIR) -> Path:
    """A path as given, or ``<directory>/<name>.yaml`` for a bare scenario name."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        return p
    candidate = directory / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    known = ", ".join(q.stem for q in list_scenarios(directory)) or "none"
    raise ScenarioError(name_or_path, [f"no scenario named {name_or_path!r} (known: {known})"])


def apply_overlay(base: Scenario, overlay: Scenario) -> Scenario:
    """Merge a faults overlay into a scenario (stations the scenario lacks are added)."""
    if not overlay.is_overlay:
        raise ScenarioError(overlay.name, [f"format must be {FAULTS_FORMAT!r} for an overlay"])
    problems: list[str] = []
    if base.duration_s < overlay.min_duration_s:
        problems.append(
            f"overlay {overlay.name!r} needs a scenario of at least {overlay.min_duration_s:g}s; "
            f"{base.name!r} lasts {base.duration_s:g}s"
        )
    clash = set(base.curves) & set(overlay.curves)
    if clash:
        problems.append(f"curve name(s) {sorted(clash)} defined by both scenario and overlay")
    have = set(base.station_ids())
    added = [s for s in overlay.stations if s.station not in have]
    all_ids = have | {s.station for s in added}
    for i, f in enumerate(overlay.faults):
        if f.station not in all_ids:
            problems.append(
                f"{overlay.name}: faults[{i}] (station={f.station!r}, type={f.type!r}): station "
                "is in neither the scenario nor the overlay"
            )
    if problems:
        raise ScenarioError(f"{base.name} + {overlay.name}", problems)
    data = base.model_dump(by_alias=True)
    data.update(
        curves={**base.curves, **overlay.curves},
        stations=[*base.stations, *added],
        faults=[*base.faults, *overlay.faults],
        expect=[*base.expect, *overlay.expect],
        never=[*base.never, *overlay.never],
        overlays=[*base.overlays, overlay.name],
    )
    return Scenario.model_validate(data)


def _zones_of(reg: Registry) -> set[str]:
    """Zones an expectation may name: those the stations declare, their regions, and the
    province (시·도: the first two digits of a KOSTAT 시·군·구 code) of every declared
    administrative zone — a nationwide earthquake message (catalogue M ≥ 5) is staged per
    province (``geo.routing.catalogue_routes``)."""
    zones: set[str] = set()
    for st in reg.stations.values():
        zones.update(st.zones)
        if st.region:
            zones.add(st.region)
    zones.update(z[:2] for z in list(zones) if z.isdigit() and len(z) == 5)
    return zones


def check_against_registry(sc: Scenario, reg: Registry, *, path: Path | str = "") -> None:
    """Every station exists with the right value names; zones and stations in
    expectations are served by the registry. Raises :class:`ScenarioError`."""
    problems: list[str] = []
    for i, st in enumerate(sc.stations):
        where = f"stations[{i}] (station={st.station!r})"
        reg_st = reg.stations.get(st.station)
        if reg_st is None:
            problems.append(f"{where}: not in the station registry")
            continue
        allowed = KIND_VALUES[reg_st.kind]
        bad = sorted(set(st.values) - set(allowed))
        if bad:
            problems.append(
                f"{where}: value(s) {bad} are not {reg_st.kind.value} values "
                f"(expected some of {sorted(allowed)})"
            )
        if st.catalogue is not None and reg_st.kind is not Kind.SEISMIC:
            problems.append(f"{where}: 'catalogue' is only for seismic stations")
    ids = set(sc.station_ids())
    zones = _zones_of(reg)

    def zone_list(z: str | list[str] | None) -> list[str]:
        return [] if z is None else [z] if isinstance(z, str) else list(z)

    rules: list[tuple[str, Sequence[Expectation | Never]]] = [
        ("expect", sc.expect),
        ("never", sc.never),
    ]
    for section, entries in rules:
        for i, e in enumerate(entries):
            label = f"{section}[{i}]"
            for z in zone_list(e.zone):
                if z not in zones:
                    problems.append(f"{label} (zone={z!r}): no registry station serves this zone")
            if e.station is not None and e.station not in ids:
                problems.append(f"{label} (station={e.station!r}): not a station of the scenario")
    for i, e in enumerate(sc.expect):
        if e.truth is None:
            continue
        label = f"expect[{i}] (hazard={e.hazard.value!r}, level={e.level!r})"
        reg_st = reg.stations.get(e.truth.station)
        if e.truth.station not in ids or reg_st is None:
            problems.append(f"{label}: truth station {e.truth.station!r} is not in the scenario")
        elif e.truth.threshold is None and stage_threshold(reg_st.levels, e.level) is None:
            problems.append(f"{label}: truth needs a 'threshold' (station has no stage levels)")
    for i, f in enumerate(sc.faults):
        if f.value_name is None:
            continue
        reg_st = reg.stations.get(f.station)
        if reg_st is not None and f.value_name not in KIND_VALUES[reg_st.kind]:
            problems.append(
                f"faults[{i}] (station={f.station!r}, type={f.type!r}): value {f.value_name!r} "
                f"is not a {reg_st.kind.value} value"
            )
    if problems:
        raise ScenarioError(path or sc.name, problems)


def stage_threshold(levels: Any, level: str) -> float | None:
    """The registry level line for a stage (``cleared`` → the caution line)."""
    if levels is None:
        return None
    name = "caution" if level == "cleared" else level
    value = getattr(levels, name, None)
    return float(value) if value is not None else None


def level_rank(name: str) -> int:
    return int(Level.parse(name))


def load_checked(
    name_or_path: str,
    reg: Registry,
    *,
    overlays: Iterable[str] = (),
    directory: Path = SCENARIO_DIR,
) -> Scenario:
    """Resolve, load, merge overlays and check against the registry, in one call."""
    path = resolve_scenario(name_or_path, directory)
    sc = load_scenario(path)
    if sc.is_overlay:
        raise ScenarioError(
            path, ["this is a faults overlay; apply it to a scenario with --faults"]
        )
    for ov in overlays:
        sc = apply_overlay(sc, load_scenario(resolve_scenario(ov, directory)))
    check_against_registry(sc, reg, path=path)
    return sc


def describe(sc: Scenario) -> Mapping[str, Any]:
    """A one-line summary for ``drill list``."""
    return {
        "name": sc.name,
        "format": sc.format,
        "title": sc.title,
        "duration_s": sc.duration_s,
        "min_duration_s": sc.min_duration_s,
        "stations": len(sc.stations),
        "faults": len(sc.faults),
        "expect": len(sc.expect),
        "never": len(sc.never),
    }
