"""``gyeongbo drill …`` and ``gyeongbo simulate …``: drills for officers, load for benchmarks.

Registered in :mod:`gyeongbo_cli.main` as::

    from simulators.cli import drill_app, simulate_app
    app.add_typer(drill_app, name="drill")
    app.add_typer(simulate_app, name="simulate")

Exit status of ``drill run`` (:mod:`gyeongbo.exit_codes`): 0 every expectation met, 1 an
expectation failed (missed, late, early, unexpected, or a finding such as a lost exercise flag)
or the drill could not run (an invalid scenario file, a worker holding newer drill readings),
2 a usage error (an unknown scenario name, a bad option), 3 the MQTT broker, Kafka or the
pipeline did not answer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from gyeongbo.exit_codes import FAILED, OK, UNREACHABLE, unreachable
from gyeongbo.listing import Column, print_listing
from gyeongbo.log_level import LogLevelOpt, configure_logging
from gyeongbo.registry import RegistryError, load_registry
from gyeongbo.settings import Settings
from gyeongbo.stack.procs import StackError
from simulators.drill import DrillError, DrillOptions, run_drill
from simulators.generator import Clock, as_gateway, batch_publications, generate
from simulators.load import LoadPlan, run_load, write_registry
from simulators.offline import run_offline
from simulators.publisher import PublishError, drill_gateway, gateway_publisher
from simulators.scenario import (
    ScenarioError,
    check_against_registry,
    describe,
    list_scenarios,
    load_checked,
    load_scenario,
    resolve_scenario,
)

__all__ = ["drill_app", "simulate_app"]

console = Console(stderr=True)

drill_app = typer.Typer(
    help=(
        "Drills: play a scenario through the MQTT front door (readings marked exercise), follow "
        "the alerts and report what fired when against the scenario's expectations."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
simulate_app = typer.Typer(
    help="Synthetic load over MQTT for benchmarks.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _fail(msg: str, code: int = FAILED) -> typer.Exit:
    console.print(f"[red]error[/red] {escape(msg)}", soft_wrap=True)
    return typer.Exit(code)


def _failed(err: BaseException) -> typer.Exit:
    """Exit 3 when a service did not answer, else 1, with the error's message."""
    return _fail(str(err), UNREACHABLE if unreachable(err) else FAILED)


def _known(name: str, directory: Path, param: str) -> None:
    """A usage error (exit 2) for a scenario or overlay name that names no file."""
    try:
        path = resolve_scenario(name, directory)
    except ScenarioError as err:
        raise typer.BadParameter(err.problems[0], param_hint=param) from None
    if not path.exists():
        raise typer.BadParameter(f"no such file: {path}", param_hint=param)


@drill_app.command("run")
def drill_run(
    scenario: Annotated[
        str,
        typer.Argument(
            help="Scenario name as `gyeongbo drill list` shows it, or the path of a file."
        ),
    ],
    speed: Annotated[
        float, typer.Option(help="Playback speed: 1 = real time, 60 = an hour in a minute.")
    ] = 60.0,
    seed: Annotated[
        Optional[int],  # noqa: UP045 - typer needs Optional here
        typer.Option(help="Random seed (default: the scenario's). Same seed, same payloads."),
    ] = None,
    faults: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--faults", help="Faults overlay to apply (repeatable), e.g. sensor-faults."),
    ] = None,
    report: Annotated[
        Optional[Path],  # noqa: UP045
        typer.Option(help="Write the machine-readable report (JSON) here."),
    ] = None,
    batch: Annotated[
        bool, typer.Option(help="Send readings due together as gateway batches (_batch).")
    ] = False,
    settle: Annotated[
        float, typer.Option(help="Seconds to keep following alerts after the last reading.")
    ] = 30.0,
    until_quiet: Annotated[
        Optional[float],  # noqa: UP045
        typer.Option(
            help=(
                "Keep following until no alert has arrived for this many seconds (at most "
                "--settle), so the report holds every transition: for `drill compare`."
            )
        ),
    ] = None,
    start_pipeline: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--start-pipeline/--no-start-pipeline",
            help=(
                "Start the bridge and worker for the drill (streams.pipeline). Default: when "
                "the drill starts the stack itself, or when no worker and bridge answer on "
                "their configured ports."
            ),
        ),
    ] = None,
    clock: Annotated[
        str,
        typer.Option(
            help=(
                "end-now: the scenario's last reading is stamped 'now' (no future timestamps); "
                "start-now: scenario start is 'now'."
            )
        ),
    ] = "end-now",
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the payloads (topic TAB payload) to stdout; publish nothing."
        ),
    ] = False,
    clock_check: Annotated[
        bool,
        typer.Option(
            "--clock-check/--no-clock-check",
            help=(
                "Refuse to run when the worker already holds drill readings newer than this "
                "drill's first one (they would be set aside as late and nothing would fire)."
            ),
        ),
    ] = True,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline",
            help=(
                "No services: push the scenario's payloads through the pipeline core in this "
                "process (streams.core; subscribers from store.seed_recipients, CAP to a "
                "temporary folder, no SMS sent) and report as a drill through the stack."
            ),
        ),
    ] = False,
    log_level: LogLevelOpt = "warning",
) -> None:
    """Run a drill and print its report; exit 1 when an expectation fails.

    Without a running stack the drill starts an empty one of its own, with a bridge and a
    worker, and stops them at the end.

    --offline needs no stack: the same payloads go through the pipeline core in one process;
    the report has the same transitions, SMS, CAP documents and HQ stages (drill compare).
    """
    if clock not in ("end-now", "start-now"):
        raise typer.BadParameter(
            f"{clock!r} is neither end-now nor start-now", param_hint="'--clock'"
        )
    configure_logging(log_level)
    settings = Settings()
    _known(scenario, settings.paths.scenarios, "'SCENARIO'")
    for overlay in faults or ():
        _known(overlay, settings.paths.scenarios, "'--faults'")
    try:
        if dry_run:
            _dry_run(scenario, settings, seed, tuple(faults or ()), batch, speed)
            return
        run = run_offline if offline else run_drill
        result = run(
            scenario,
            settings,
            DrillOptions(
                speed=speed,
                seed=seed,
                faults=tuple(faults or ()),
                batch=batch,
                settle_s=settle,
                quiet_s=until_quiet,
                start_pipeline=start_pipeline,
                clock=clock,  # type: ignore[arg-type]
                check_clock=clock_check,
            ),
            console=console,
        )
    except (ScenarioError, RegistryError) as err:
        raise _fail(f"invalid scenario: {err}") from None
    except (DrillError, PublishError, StackError) as err:
        raise _failed(err) from None
    if report is not None:
        report.write_text(result.to_json() + "\n", encoding="utf-8")
        console.print(f"report written to {report}")
    raise typer.Exit(OK if result.passed else FAILED)


def _dry_run(
    scenario: str,
    settings: Settings,
    seed: int | None,
    faults: tuple[str, ...],
    batch: bool,
    speed: float,
) -> None:
    import time

    reg = load_registry(settings.paths.stations)
    sc = load_checked(scenario, reg, overlays=faults, directory=settings.paths.scenarios)
    clock = Clock.ending_now(sc.duration_s, speed, time.time())
    gen = generate(
        sc, reg, seed=seed, anchor_ms=clock.anchor_ms, topic_root=settings.mqtt.topic_root
    )
    gateway = drill_gateway(reg)
    pubs, _ = as_gateway(gen.publications, gateway, topic_root=settings.mqtt.topic_root)
    if batch:
        pubs = batch_publications(pubs, topic_root=settings.mqtt.topic_root, gateway=gateway)
    out = sys.stdout.buffer
    for p in pubs:
        out.write(p.topic.encode() + b"\t" + p.payload + b"\n")
    out.flush()


@drill_app.command("compare")
def drill_compare(
    reference: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="Report of the reference run (drill run --report)."
        ),
    ],
    runs: Annotated[
        list[Path],
        typer.Argument(exists=True, dir_okay=False, help="Reports of the runs to compare with it."),
    ],
) -> None:
    """Compare drill runs with a reference run of the same scenario, seed and speed: every
    transition (hazard, zone, n-th: action, previous → level), the SMS as handsets receive
    them, the CAP documents and the headquarters stages. Times, alert and event ids are
    left out: they follow the moment a decision was taken, not the decision. Exit 1 on any
    difference."""
    import json

    from simulators.compare import compare_reports

    def load(p: Path) -> dict[str, object]:
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise _fail(f"cannot read the report {p}: {err}") from None
        if not isinstance(doc, dict) or "transitions" not in doc:
            raise _fail(f"{p} is not a drill report with transitions (drill run --report)")
        return doc

    ref = load(reference)
    differ = 0
    for path in runs:
        diffs = compare_reports(ref, load(path))
        n = len(ref["transitions"])  # type: ignore[arg-type]
        if diffs:
            differ += 1
            console.print(f"[red]differs[/red] {path} from {reference}: {len(diffs)} difference(s)")
            for d in diffs:
                console.print(f"  {d}")
        else:
            console.print(f"[green]same[/green] {path}: {n} transitions, SMS, CAP and HQ stages")
    raise typer.Exit(FAILED if differ else OK)


@drill_app.command("list")
def drill_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List the scenarios (the names `drill run` takes) and the faults overlays (for
    --faults), with their length, stations and expectations."""
    import json

    settings = Settings()
    docs: list[dict[str, object]] = []
    rows: list[list[str]] = []
    for path in list_scenarios(settings.paths.scenarios):
        try:
            d = describe(load_scenario(path))
        except ScenarioError as err:
            docs.append({"name": path.stem, "path": str(path), "invalid": err.problems})
            rows.append([path.stem, "invalid", "", "", "", "", "", str(err.problems[0])])
            continue
        overlay = d["format"].endswith("faults/v1")
        secs = d["min_duration_s"] if overlay else d["duration_s"]
        text = f"{secs / 3600:g} h" if secs >= 3600 else f"{secs / 60:g} min"
        kind = "overlay" if overlay else "scenario"
        docs.append({**d, "kind": kind, "path": str(path)})
        rows.append(
            [
                d["name"],
                kind,
                f"≥ {text}" if overlay else text,
                str(d["stations"]),
                str(d["faults"]),
                str(d["expect"]),
                str(d["never"]),
                d["title"],
            ]
        )
    if as_json:
        print(json.dumps(docs, ensure_ascii=False, indent=1))
        return
    cols = [Column("name", key=True), Column("kind", styles={"invalid": "red"})]
    cols += [Column("duration")]
    cols += [Column(c, justify="right") for c in ("stations", "faults", "expect", "never")]
    title = f"Scenarios in {settings.paths.scenarios}"
    print_listing([*cols, Column("title")], rows, title=title)


@drill_app.command("validate")
def drill_validate(
    paths: Annotated[
        Optional[list[Path]],  # noqa: UP045
        typer.Argument(help="Scenario files (default: every file in the scenarios folder)."),
    ] = None,
) -> None:
    """Validate scenario files against the schema and the station registry; exit 1 if any
    is invalid, naming each bad entry."""
    settings = Settings()
    try:
        reg = load_registry(settings.paths.stations)
    except RegistryError as err:
        raise _fail(f"invalid station registry: {err}") from None
    files = paths or list_scenarios(settings.paths.scenarios)
    bad = 0
    for path in files:
        try:
            sc = load_scenario(path)
            check_against_registry(sc, reg, path=path)
        except ScenarioError as err:
            bad += 1
            console.print(f"[red]invalid[/red] {err}")
            continue
        console.print(f"[green]ok[/green] {path}: {sc.name} v{sc.version}")
    if bad:
        raise typer.Exit(FAILED)


@simulate_app.command("load")
def simulate_load(
    stations: Annotated[
        int, typer.Option(min=1, help="Synthetic stations (SIM000000…).")
    ] = 100_000,
    rate: Annotated[float, typer.Option(min=1, help="Target readings per second.")] = 10_000.0,
    duration: Annotated[float, typer.Option(min=0.1, help="Seconds to publish.")] = 30.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Readings per gateway batch.")] = 500,
    kinds: Annotated[
        str, typer.Option(help="Comma-separated kinds, in station blocks.")
    ] = "water_level,air_quality,structural,rainfall",
    seed: Annotated[int, typer.Option(help="Random seed for values.")] = 0,
) -> None:
    """Publish synthetic readings in gateway batches at a target rate, as the registry's drill
    gateway (load is an exercise: it never reaches a resident); the last stdout line is a JSON
    summary with the achieved rate. The bridge needs the synthetic stations in its registry
    (`gyeongbo simulate registry`), which has a drill gateway of its own."""
    settings = Settings()
    plan = LoadPlan(stations=stations, kinds=tuple(k.strip() for k in kinds.split(",")), seed=seed)
    try:
        gateway = drill_gateway(load_registry(settings.paths.stations))
        publisher = gateway_publisher(settings, gateway, max_in_flight=200)
        publisher.connect()
        try:
            result = run_load(
                publisher,
                plan,
                rate=rate,
                duration_s=duration,
                batch_size=batch_size,
                topic_root=settings.mqtt.topic_root,
                gateway=gateway,
            )
        finally:
            publisher.close()
    except (PublishError, ValueError, RegistryError) as err:
        raise _failed(err) from None
    print(result.to_json(), flush=True)


@simulate_app.command("registry")
def simulate_registry(
    out: Annotated[Path, typer.Option(help="Where to write the registry YAML.")],
    stations: Annotated[
        int, typer.Option(min=1, help="Synthetic stations (SIM000000…), as `simulate load`.")
    ] = 100_000,
    kinds: Annotated[
        str, typer.Option(help="Comma-separated kinds, in station blocks, as `simulate load`.")
    ] = "water_level,air_quality,structural,rainfall",
    seed: Annotated[int, typer.Option(help="Random seed, as `simulate load`.")] = 0,
) -> None:
    """Write a station registry with the load mode's synthetic stations (for the bridge)."""
    plan = LoadPlan(stations=stations, kinds=tuple(k.strip() for k in kinds.split(",")), seed=seed)
    write_registry(plan, out)
    console.print(f"[green]ok[/green] {stations} synthetic stations written to {out}")
