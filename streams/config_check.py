"""``gyeongbo config check``: load every configuration file the bridge and workers load, the
way they load it, and name each bad entry.

What is checked, in order (a file that depends on an invalid one is reported as not checked):

* the settings (``GYEONGBO_*`` variables, ``.env``, ``GYEONGBO_SETTINGS_FILE``);
* the station registry (``paths.stations``);
* the zones: KOSTAT boundaries (``paths.admin_boundaries``) and custom zones
  (``paths.zones``), then every station's declared zones against them — the join a worker
  builds before it takes partitions;
* the SMS templates (``paths.templates``, at ``twilio.max_sms_chars``): the loader's own
  checks, every text filled in with each field as text (a ``{value:.1f}`` there fails at the
  first alert: ``value`` arrives already formatted by ``value_format``), then every hazard ×
  stage × value format rendered, real and drill, as the notifier and the CAP feed do, with
  short, long and missing zone, station and value;
* the recipients file (``paths.recipients``) and the store's seed (``store.seed_recipients``,
  when it is another file), against the zones;
* the operators' tokens file (``operator.tokens_file``), when it exists.

Each problem is one line: the file, the entry (``stations[3] (id='…')``,
``hazards.flood.stages.caution``, ``recipients[2] (id='…')``) and what is wrong.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from alerting.templates import STAGES, TemplateError, Templates, parse_templates
from geo.stations import station_zones
from geo.zones import ZoneKind, ZoneRegistry
from gyeongbo.errors import ConfigError
from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import Settings
from streams.config_files import load_recipients, load_zones

__all__ = ["FileCheck", "check_files", "check_templates", "setting_problems", "settings_check"]

T = TypeVar("T")


@dataclass
class FileCheck:
    """The outcome for one file: a summary when valid, else one problem per bad entry."""

    what: str
    path: str
    problems: list[str] = field(default_factory=list)
    summary: str = ""
    #: Why it was not checked (it depends on a file that is invalid).
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems and self.skipped is None

    def lines(self) -> Iterator[tuple[str, str]]:
        """``(status, text)`` lines: ``ok``, ``invalid`` (one per problem) or ``skipped``."""
        if self.skipped is not None:
            yield "skipped", f"{self.what} {self.path}: not checked: {self.skipped}"
        elif self.problems:
            for p in self.problems:
                yield "invalid", f"{self.what} {self.path}: {p}"
        else:
            yield "ok", f"{self.what} {self.path}: {self.summary}"


def setting_problems(err: ValidationError) -> list[str]:
    """One ``GYEONGBO_WORKER__WEB_PORT: message`` per invalid setting."""
    return [
        "GYEONGBO_"
        + "__".join(str(p).upper() for p in e["loc"] if isinstance(p, str))
        + f": {e['msg']}"
        for e in err.errors(include_input=False)
    ]


def settings_check(make: Callable[[], Settings]) -> tuple[Settings, FileCheck]:
    """The settings ``make`` builds, or the defaults with the problems that stopped it."""
    import os

    source = os.environ.get("GYEONGBO_SETTINGS_FILE") or "GYEONGBO_* variables"
    check = FileCheck("settings", source)
    try:
        settings = make()
    except ValidationError as err:
        check.problems = setting_problems(err)
        return Settings.model_construct(), check
    except (OSError, yaml.YAMLError, ValueError) as err:
        check.problems = [f"cannot be read: {' '.join(str(err).split())}"]
        return Settings.model_construct(), check
    check.summary = "valid (`gyeongbo config show` prints them)"
    return settings, check


def _load(check: FileCheck, load: Callable[[], T]) -> T | None:
    """``load()``, its :class:`ConfigError` problems recorded in ``check``; any other error
    (a loader that fails on input it does not expect) is recorded as one problem too."""
    try:
        return load()
    except ConfigError as err:
        check.problems += err.problems
    except OSError as err:
        check.problems.append(f"cannot be read: {err.strerror or err}")
    except Exception as err:  # the loader broke on this input: still a named failure
        check.problems.append(f"cannot be loaded: {type(err).__name__}: {err}")
    return None


def check_files(settings: Settings) -> list[FileCheck]:
    """Check every file ``settings`` names (see the module docstring)."""
    p = settings.paths
    out: list[FileCheck] = []

    stations = FileCheck("stations", str(p.stations))
    reg: Registry | None = _load(stations, lambda: load_registry(p.stations))
    if reg is not None:
        stations.summary = (
            f"{len(reg.stations)} stations, {len(reg.gateways)} gateways, version {reg.version}"
        )
    out.append(stations)

    zones = FileCheck("zones", f"{p.zones} (boundaries {p.admin_boundaries})")
    zreg: ZoneRegistry | None = _load(zones, lambda: load_zones(p.zones, p.admin_boundaries))
    if zreg is not None:
        custom = len(zreg.of_kind(ZoneKind.CUSTOM))
        zones.summary = (
            f"{len(zreg)} zones ({len(zreg) - custom} administrative, {custom} custom), "
            f"version {zreg.version}"
        )
    out.append(zones)

    join = FileCheck("station zones", str(p.stations))
    if reg is None or zreg is None:
        join.skipped = "the station registry or the zones are invalid"
    elif _load(join, lambda: station_zones(reg, zreg)) is not None:
        join.summary = "every station's zones exist"
    out.append(join)

    out.append(check_templates(p.templates, max_chars=settings.twilio.max_sms_chars))

    files = [("recipients", p.recipients)]
    seed = settings.store.seed_recipients
    if seed is not None and str(seed) and Path(seed).resolve() != Path(p.recipients).resolve():
        files.append(("store seed", Path(seed)))
    for what, path in files:
        check = FileCheck(what, str(path))
        if zreg is None:
            check.skipped = "the zones are invalid"
        else:
            directory = _load(check, functools.partial(load_recipients, path, zones=zreg))
            if directory is not None:
                drills = sum(r.drill for r in directory.values())
                check.summary = f"{len(directory)} recipients ({drills} drill handsets)"
        out.append(check)

    out.append(_check_tokens(Path(settings.operator.tokens_file)))
    return out


def _check_tokens(path: Path) -> FileCheck:
    from streams.operators import TokenStore

    check = FileCheck("operator tokens", str(path))
    if not path.exists():
        check.summary = "absent: no token issued yet (`gyeongbo operators add`)"
        return check
    store = _load(check, lambda: TokenStore.load(path))
    if store is not None:
        active = sum(e.active for e in store.entries.values())
        check.summary = f"{len(store.entries)} tokens ({active} active)"
    return check


# -- templates ---------------------------------------------------------------------------------

#: Zone names as the notifier passes them: a 구, a person's area ("… 외 N곳", the longest the
#: zone limit is sized for), one far over the limit (cut with "…").
_ZONES = ("용산구", "서울특별시 외 24곳", "가" * 40)
_STATIONS = ("", "한강대교", "가" * 40)
#: None: no value in the evidence (a manual or sensor-health event; shown as "-").
_VALUES = (None, 0.0, 0.0042, 8.6, 152.0, 98765.4)
_TEXT_FIELDS = {"prefix": "x", "issuer": "x", "zone": "x", "station": "x", "value": "x"}
_MANUAL_FIELDS = {"prefix": "x", "keyword": "x", "title": "x", "zone": "x", "body": "x"}


def check_templates(path: Path | str, *, max_chars: int | None = None) -> FileCheck:
    """The SMS templates file, checked as the worker loads and renders it."""
    check = FileCheck("templates", str(path))
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        check.problems.append(f"cannot be read: {err.strerror or err}")
        return check
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        check.problems.append(f"not valid YAML{where}")
        return check
    broken = _fill_in_problems(data)
    check.problems += [f"{where}: {why}" for where, why in broken]
    templates: Templates | None = None
    try:
        # the texts that cannot be filled in are named above; the loader, which would stop
        # at the first of them, checks the rest
        templates = parse_templates(_without(data, broken), max_chars=max_chars, path=str(path))
    except TemplateError as err:
        check.problems += [p for p in err.problems if p not in check.problems]
    except Exception as err:  # the loader broke on an entry: named above when we can
        if not check.problems:
            check.problems.append(f"cannot be loaded: {type(err).__name__}: {err}")
    if templates is not None and not broken:
        check.problems += _render_problems(templates)
        if not check.problems:
            n = sum(len(h.stages) for h in templates.hazards.values())
            check.summary = (
                f"{len(templates.hazards)} hazards, {n} texts, every one rendered within "
                f"{templates.max_chars} characters"
            )
    return check


def _fill_in_problems(data: Any) -> list[tuple[str, str]]:
    """``(entry, problem)`` for each text that cannot be filled in with every field as text,
    as the renderer passes them (the loader crashes, unnamed, on an unbalanced brace or a
    numeric format spec)."""
    if not isinstance(data, dict):
        return []  # the loader names this one
    problems: list[tuple[str, str]] = []
    hazards = data.get("hazards")
    if not isinstance(hazards, dict):
        return [("hazards", "must map each hazard to its keyword, issuer and stages")]
    texts: list[tuple[str, Any, dict[str, str]]] = []
    for hz, spec in hazards.items():
        if not isinstance(spec, dict):
            continue
        stages = spec.get("stages")
        if not isinstance(stages, dict):
            problems.append((f"hazards.{hz}.stages", "must map each stage to its text"))
            continue
        texts += [(f"hazards.{hz}.stages.{st}", t, _TEXT_FIELDS) for st, t in stages.items()]
    manual = data.get("manual")
    if isinstance(manual, dict):
        texts += [(f"manual.{k}", manual.get(k), _MANUAL_FIELDS) for k in ("text", "cleared")]
    for where, text, fields in texts:
        if not isinstance(text, str):
            continue
        try:
            text.format(**fields)
        except (KeyError, IndexError):
            continue  # an unknown placeholder: the loader names it
        except (ValueError, AttributeError, TypeError) as err:
            hint = (
                " (value arrives formatted by value_format: write {value})"
                if "{value:" in text
                else ""
            )
            problems.append((where, f"cannot be filled in: {err}{hint}"))
    return problems


def _without(data: Any, broken: list[tuple[str, str]]) -> Any:
    """``data`` with each broken text replaced by one the loader accepts (the hazard's
    keyword; ``{body}`` for the manual texts), so that it reports every other problem."""
    if not broken or not isinstance(data, dict):
        return data
    if any(where == "hazards" for where, _ in broken):
        return {**data, "hazards": {}}
    out = {**data, "hazards": dict(data["hazards"])}
    for where, _ in broken:
        parts = where.split(".")
        if parts[0] == "manual":
            out["manual"] = {**out["manual"], parts[1]: "{body}"}
            continue
        spec = out["hazards"][parts[1]]
        if len(parts) == 3:  # hazards.<hz>.stages is not a mapping
            out["hazards"][parts[1]] = {**spec, "stages": {}}
        else:
            stages = {**spec["stages"], parts[3]: str(spec.get("keyword", ""))}
            out["hazards"][parts[1]] = {**spec, "stages": stages}
    return out


def _render_problems(t: Templates) -> list[str]:
    """Render every hazard × stage × value format, real and drill, with the fields the
    notifier passes; the first failure of each text is reported."""
    problems: list[str] = []
    limit = t.field_limits["zone"]
    for hz, h in t.hazards.items():
        for st, rule in itertools.product(STAGES, ("", *h.value_formats)):
            where = f"hazards.{hz}.stages.{st}" + (f" (value_formats.{rule})" if rule else "")
            for drill, zone, station, value in itertools.product(
                (False, True), _ZONES, _STATIONS, _VALUES
            ):
                try:
                    t.render_fields(
                        hz, st, zone=zone, station=station, value=value, drill=drill, rule=rule
                    )
                except Exception as err:
                    problems.append(
                        f"{where}: does not render for zone={zone[:12]!r}, "
                        f"station={station[:8]!r}, value={value!r}, drill={drill}: {err}"
                    )
                    break
        if t.manual is None:
            continue
        for st, zone in itertools.product(STAGES, _ZONES):
            try:
                text = t.drill_prefix + t.manual.render(
                    hz, st, keyword=h.keyword, prefix=t.prefix, zone=zone[:limit]
                )
            except Exception as err:
                problems.append(f"manual.titles.{hz}.{st}: does not render: {err}")
                break
            if len(text) > t.max_chars:
                problems.append(
                    f"manual.titles.{hz}.{st}: {len(text)} characters with the drill prefix, "
                    f"over {t.max_chars}"
                )
                break
    return problems
