"""The ``gyeongbo`` command line. Every command has ``--help``; ``gyeongbo --version``.

Sub-commands live next to the code they drive and are registered here: ``config`` (show and
check configuration), ``topics``, ``stack`` (local development stack), ``bridge``, ``worker``,
``alerts``, ``hq``, ``recipients``, ``deliveries``, ``operators``, ``drill`` and ``simulate``.

Exit status (:mod:`gyeongbo.exit_codes`): 0 ok, 1 a check or the operation failed, 2 usage,
3 a service did not answer. :func:`main` turns what escapes a command into one line on
stderr: an invalid setting (2), a service that did not answer (3), another I/O error (1).
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Annotated, Optional

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from gyeongbo.exit_codes import EPILOG, FAILED, UNREACHABLE, USAGE, unreachable
from gyeongbo.settings import Settings
from gyeongbo.stack.cli import app as stack_app
from simulators.cli import drill_app, simulate_app
from streams.alerts_cli import app as alerts_app
from streams.bridge_cli import app as bridge_app
from streams.config_check import FileCheck, check_files, setting_problems, settings_check
from streams.deliveries_cli import app as deliveries_app
from streams.hq_cli import app as hq_app
from streams.operators_cli import app as operators_app
from streams.recipients_cli import app as recipients_app
from streams.worker_cli import worker as worker_command

app = typer.Typer(
    name="gyeongbo",
    help=(
        "Gyeongbo (경보): real-time IoT disaster detection and staged alerting.\n\n"
        "Sensor readings arrive over MQTT, flow through Kafka to detectors, and become staged "
        "alerts (관심 → 주의 → 경계 → 심각) delivered by SMS, CAP 1.2 and dashboards. "
        "Settings come from GYEONGBO_* environment variables (see docs/guide.md, Configuration)."
    ),
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    # A traceback must never show local variables: they hold passwords and tokens.
    pretty_exceptions_show_locals=False,
)
config_app = typer.Typer(
    help="Show and validate configuration.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
topics_app = typer.Typer(
    help="Kafka topics the project uses.", no_args_is_help=True, pretty_exceptions_show_locals=False
)
app.add_typer(config_app, name="config")
app.add_typer(topics_app, name="topics")
app.add_typer(stack_app, name="stack")
app.add_typer(bridge_app, name="bridge")
app.command("worker")(worker_command)
app.add_typer(alerts_app, name="alerts")
app.add_typer(hq_app, name="hq")
app.add_typer(recipients_app, name="recipients")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(operators_app, name="operators")
app.add_typer(drill_app, name="drill")
app.add_typer(simulate_app, name="simulate")

console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        print(f"gyeongbo {metadata.version('gyeongbo')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the installed version and exit.",
        ),
    ] = False,
) -> None:
    """Gyeongbo (경보): real-time IoT disaster detection and staged alerting."""


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON, with every secret masked."""
    print(json.dumps(Settings().public_dict(), indent=2, ensure_ascii=False, default=str))


PathOpt = Optional[Path]  # noqa: UP045 - typer needs Optional here


@config_app.command("check")
def config_check(
    settings_file: Annotated[
        PathOpt,
        typer.Option(help="A settings YAML file (as GYEONGBO_SETTINGS_FILE) to check and use."),
    ] = None,
    stations: Annotated[
        PathOpt, typer.Option(help="Station registry (default GYEONGBO_PATHS__STATIONS).")
    ] = None,
    zones: Annotated[
        PathOpt, typer.Option(help="Custom zones folder (default GYEONGBO_PATHS__ZONES).")
    ] = None,
    boundaries: Annotated[
        PathOpt,
        typer.Option(help="KOSTAT boundaries folder (default GYEONGBO_PATHS__ADMIN_BOUNDARIES)."),
    ] = None,
    templates: Annotated[
        PathOpt, typer.Option(help="SMS templates (default GYEONGBO_PATHS__TEMPLATES).")
    ] = None,
    recipients: Annotated[
        PathOpt, typer.Option(help="Recipients YAML (default GYEONGBO_PATHS__RECIPIENTS).")
    ] = None,
    scenarios: Annotated[
        PathOpt, typer.Option(help="Drill scenarios folder (default GYEONGBO_PATHS__SCENARIOS).")
    ] = None,
    tokens_file: Annotated[
        PathOpt,
        typer.Option(help="Operators' tokens file (default GYEONGBO_OPERATOR__TOKENS_FILE)."),
    ] = None,
    dashboards: Annotated[
        PathOpt,
        typer.Option(help="Folder of the Grafana dashboards' JSON (default dashboards/json)."),
    ] = None,
) -> None:
    """Validate every configuration file the bridge, workers and drills load: settings,
    station registry, zones and boundaries, each station's zones, SMS templates (every
    hazard × stage rendered), recipients, operators' tokens, drill scenarios, dashboards.

    Prints one line per file, or one per bad entry (file, entry, what is wrong); exits 1 when
    anything is wrong. The options point it at other files than the settings name.
    """
    import os

    saved = os.environ.get("GYEONGBO_SETTINGS_FILE")
    if settings_file is not None:  # read where the settings read it, for this check only
        os.environ["GYEONGBO_SETTINGS_FILE"] = str(settings_file)
    try:
        settings, checked = settings_check(Settings)
    finally:
        if saved is None:
            os.environ.pop("GYEONGBO_SETTINGS_FILE", None)
        else:
            os.environ["GYEONGBO_SETTINGS_FILE"] = saved
    paths = {
        k: v
        for k, v in {
            "stations": stations,
            "zones": zones,
            "admin_boundaries": boundaries,
            "templates": templates,
            "recipients": recipients,
            "scenarios": scenarios,
        }.items()
        if v is not None
    }
    if paths:
        settings = settings.model_copy(update={"paths": settings.paths.model_copy(update=paths)})
    if tokens_file is not None:
        op = settings.operator.model_copy(update={"tokens_file": tokens_file})
        settings = settings.model_copy(update={"operator": op})
    checks = [checked, *check_files(settings)]
    checks.append(_check_scenarios(settings))
    checks.append(_check_dashboards(settings, dashboards))
    out = Console(soft_wrap=True, highlight=False)
    style = {"ok": "green", "invalid": "red", "skipped": "yellow"}
    for c in checks:
        for status, text in c.lines():
            out.print(f"[{style[status]}]{status:<8}[/{style[status]}] {escape(text)}")
    bad = [c for c in checks if not c.ok]
    if bad:
        problems = sum(len(c.problems) for c in bad)
        out.print(f"config check: {problems} problem(s) in {len(bad)} file(s)")
        raise typer.Exit(FAILED)


def _check_scenarios(settings: Settings) -> FileCheck:
    """Every scenario and faults overlay against its schema and the station registry."""
    from gyeongbo.registry import RegistryError, load_registry
    from simulators.scenario import (
        ScenarioError,
        check_against_registry,
        list_scenarios,
        load_scenario,
    )

    folder = settings.paths.scenarios
    check = FileCheck("scenarios", str(folder))
    if not Path(folder).is_dir():
        check.problems.append("folder not found")
        return check
    try:
        reg = load_registry(settings.paths.stations)
    except RegistryError:
        check.skipped = "the station registry is invalid"
        return check
    files = list_scenarios(folder)
    for path in files:
        try:
            check_against_registry(load_scenario(path), reg, path=path)
        except ScenarioError as err:
            check.problems += [f"{Path(err.path).name}: {p}" for p in err.problems]
    check.summary = f"{len(files)} scenario and overlay files"
    return check


def _check_dashboards(settings: Settings, folder: Path | None) -> FileCheck:
    """Each dashboard decodes strictly and is what the code generates from the registry
    (Grafana shows the committed JSON: a station added since has no panel in it)."""
    from dashboards.build import JSON_DIR
    from dashboards.gyeongbo import build_all
    from dashboards.model import decode_dashboard, encode_dashboard
    from gyeongbo.registry import RegistryError, load_registry

    folder = folder or JSON_DIR
    check = FileCheck("dashboards", str(folder))
    if not Path(folder).is_dir():
        check.problems.append("folder not found")
        return check
    try:
        built = {b.filename: b for b in build_all(load_registry(settings.paths.stations))}
    except RegistryError:
        built = {}
    for path in sorted(Path(folder).glob("*.json")):
        try:
            text = path.read_text(encoding="utf-8")
            decode_dashboard(text)
        except Exception as err:  # msgspec names the field: "Expected `int`, got … - at `$.…`"
            check.problems.append(f"{path.name}: {err}")
            continue
        b = built.get(path.name)
        if b is not None and text != encode_dashboard(b.dashboard):
            check.problems.append(
                f"{path.name}: differs from what the station registry generates "
                "(regenerate: python -m dashboards)"
            )
    missing = sorted(set(built) - {p.name for p in Path(folder).glob("*.json")})
    check.problems += [f"{name}: missing (python -m dashboards)" for name in missing]
    check.summary = f"{len(built)} dashboards, as the station registry generates them"
    return check


@topics_app.command("create")
def topics_create(
    timeout_s: float = typer.Option(60.0, help="Give up after this many seconds."),
) -> None:
    """Create every topic in settings with its partition count (existing ones are kept).

    Production runs this once before the bridge and workers start (compose `kafka-init`).
    """
    import time

    from gyeongbo.topics import create_topics

    settings = Settings()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            counts = create_topics(
                settings.kafka.bootstrap, settings.kafka.topics.all(), kafka=settings.kafka
            )
            break
        except Exception as err:  # broker still starting: retry until the deadline
            if time.monotonic() > deadline:
                console.print(
                    f"[red]could not create topics[/red] on {settings.kafka.bootstrap}: {err}",
                    soft_wrap=True,
                )
                raise typer.Exit(UNREACHABLE if unreachable(err) else FAILED) from None
            console.print(f"waiting for Kafka at {settings.kafka.bootstrap}: {err}")
            time.sleep(2)
    for name, n in counts.items():
        console.print(f"{name}: {n} partitions")


def main(argv: list[str] | None = None) -> None:
    """The console entry point: the CLI, with what escapes a command told in one line on
    stderr instead of a traceback, which could show secrets: an invalid setting (exit 2), a
    service that did not answer (exit 3), another I/O error (exit 1)."""
    try:
        app(args=argv)
    except ValidationError as err:
        print(f"gyeongbo: invalid settings: {'; '.join(setting_problems(err))}", file=sys.stderr)
        sys.exit(USAGE)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        print(f"gyeongbo: GYEONGBO_SETTINGS_FILE is not valid YAML{where}", file=sys.stderr)
        sys.exit(USAGE)
    except Exception as err:
        if unreachable(err):
            text = " ".join(str(err).split()) or type(err).__name__
            print(f"gyeongbo: a service did not answer: {text}", file=sys.stderr)
            sys.exit(UNREACHABLE)
        if isinstance(err, OSError):
            where = f": {err.filename}" if err.filename else ""
            print(f"gyeongbo: {err.strerror or type(err).__name__}{where}", file=sys.stderr)
            sys.exit(FAILED)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
