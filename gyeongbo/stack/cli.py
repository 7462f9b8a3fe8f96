"""``gyeongbo stack up|down|status``: the local development stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from gyeongbo.exit_codes import FAILED
from gyeongbo.listing import Column, print_listing
from gyeongbo.settings import Settings
from gyeongbo.stack.procs import StackError
from gyeongbo.stack.stack import Stack

app = typer.Typer(
    help=(
        "Local stack on loopback ports of its own: mosquitto, a Kafka-protocol broker "
        "(noida-db or Tansu), influxd 1.x with a v2-write endpoint, a fake Twilio API and "
        "a PostgreSQL cluster for the subscriber store (GYEONGBO_STACK__POSTGRES). "
        "Logs and data under .gyeongbo/ (GYEONGBO_STACK__HOME)."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


def _stack(home: Path | None, broker: str | None) -> Stack:
    settings = Settings()
    cfg = settings.stack
    updates: dict[str, object] = {}
    if home is not None:
        updates["home"] = home
    if broker is not None:
        updates["broker"] = broker
    if updates:
        cfg = cfg.model_copy(update=updates)
    return Stack(config=cfg, settings=settings)


HomeOpt = Annotated[Optional[Path], typer.Option(help="Stack folder (default .gyeongbo).")]  # noqa: UP045


@app.command()
def up(
    home: HomeOpt = None,
    broker: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(help="Kafka-protocol broker: noida (default) or tansu."),
    ] = None,
) -> None:
    """Start every component, create the topics, and wait until each is healthy. Mosquitto
    admits no anonymous client: the registry's gateways log in on the gateways' port (each
    held to its own topics), the bridge on a port of its own. Their development passwords are
    generated once into <home>/mqtt/credentials.json (never printed); the bridge, drills,
    simulators and benchmarks read them from there."""
    stack = _stack(home, broker)
    try:
        stack.up(report=lambda msg: console.print(f"[cyan]stack[/cyan] {msg}"))
    except StackError as err:
        console.print(f"[red]stack up failed[/red]: {err}")
        raise typer.Exit(FAILED) from None
    _print_status(stack)
    console.print("Point apps at it with:")
    for k, v in stack.env().items():
        print(f"export {k}={v}")


@app.command()
def down(home: HomeOpt = None) -> None:
    """Stop every component started by `stack up` (data stays under the stack folder)."""
    stack = _stack(home, None)
    stack.down(report=lambda msg: console.print(f"[cyan]stack[/cyan] {msg}"))
    console.print("[green]stack down[/green]")


@app.command()
def status(
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show each component's pid, port and health; exit 1 if anything is down."""
    stack = _stack(home, None)
    st = stack.status()
    if as_json:
        print(json.dumps(st, indent=2))
    else:
        _print_status(stack)
    if not st or not stack.healthy():
        raise typer.Exit(FAILED)


def _print_status(stack: Stack) -> None:
    rows = [
        [
            name,
            str(s["pid"]),
            str(s["port"]),
            "up" if s["alive"] and s["listening"] else "down",
            s["log"],
        ]
        for name, s in stack.status().items()
    ]
    if not stack.procs:
        rows.append(["(nothing running)", "", "", "", ""])
    cols = [
        Column("component", key=True),
        Column("pid"),
        Column("port"),
        Column("health", styles={"up": "green", "down": "red"}),
    ]
    title = f"gyeongbo stack ({stack.config.broker}) at {stack.home}"
    print_listing([*cols, Column("log")], rows, title=title, console=console)
