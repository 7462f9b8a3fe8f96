"""The ``gyeongbo`` command line. Every command has ``--help``.

Sub-commands live next to the code they drive and are registered here:
``stack`` (local development stack), ``config`` (show and check configuration), and, as the
pipeline grows, ``bridge``, ``worker``, ``alerts``, ``drill`` and ``simulate``.
"""

from __future__ import annotations

import json
import sys

import typer
from pydantic import ValidationError
from rich.console import Console

from gyeongbo.registry import RegistryError, load_registry
from gyeongbo.settings import Settings
from gyeongbo.stack.cli import app as stack_app
from simulators.cli import drill_app, simulate_app
from streams.alerts_cli import app as alerts_app
from streams.bridge_cli import app as bridge_app
from streams.deliveries_cli import app as deliveries_app
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
app.add_typer(recipients_app, name="recipients")
app.add_typer(deliveries_app, name="deliveries")
app.add_typer(operators_app, name="operators")
app.add_typer(drill_app, name="drill")
app.add_typer(simulate_app, name="simulate")

console = Console(stderr=True)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings as JSON, with every secret masked."""
    print(json.dumps(Settings().public_dict(), indent=2, ensure_ascii=False, default=str))


@config_app.command("check")
def config_check() -> None:
    """Validate the station registry (and, as they exist, zones, recipients and templates).

    Exits 1 and names every bad entry when something is wrong.
    """
    settings = Settings()
    try:
        reg = load_registry(settings.paths.stations)
    except RegistryError as err:
        console.print(f"[red]invalid station registry[/red] {err}")
        raise typer.Exit(1) from None
    console.print(
        f"[green]ok[/green] {settings.paths.stations}: {len(reg.stations)} stations, "
        f"{len(reg.gateways)} gateways, version {reg.version}"
    )


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
                    f"[red]could not create topics[/red] on {settings.kafka.bootstrap}: {err}"
                )
                raise typer.Exit(1) from None
            console.print(f"waiting for Kafka at {settings.kafka.bootstrap}: {err}")
            time.sleep(2)
    for name, n in counts.items():
        console.print(f"{name}: {n} partitions")


def _setting_name(loc: tuple[int | str, ...]) -> str:
    """``('worker', 'web_port')`` → ``GYEONGBO_WORKER__WEB_PORT``."""
    return "GYEONGBO_" + "__".join(str(p).upper() for p in loc if isinstance(p, str))


def main(argv: list[str] | None = None) -> None:
    """The console entry point: the CLI, with a bad setting or an I/O error told in one line
    on stderr (exit 2 and 1) instead of a traceback, which could show secrets."""
    try:
        app(args=argv)
    except ValidationError as err:
        problems = "; ".join(
            f"{_setting_name(e['loc'])}: {e['msg']}" for e in err.errors(include_input=False)
        )
        print(f"gyeongbo: invalid settings: {problems}", file=sys.stderr)
        sys.exit(2)
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        print(f"gyeongbo: {err.strerror or type(err).__name__}{where}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":  # pragma: no cover
    main()
