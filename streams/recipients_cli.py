"""``gyeongbo recipients import|list|show|opt-out``: the subscriber store from the command line.

The store is the one ``GYEONGBO_STORE__URL`` names (``sqlite:///…`` by default, or the
PostgreSQL URL ``gyeongbo stack up`` prints). Phone numbers are always shown masked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from gyeongbo.errors import ConfigError
from gyeongbo.exit_codes import FAILED, UNREACHABLE, unreachable
from gyeongbo.listing import Column, print_listing
from gyeongbo.settings import Settings

if TYPE_CHECKING:
    from streams.store import SubscriberStore

app = typer.Typer(
    help=(
        "Subscribers in the store (GYEONGBO_STORE__URL): import a YAML file, list, show, "
        "record an opt-out. Phone numbers are shown masked."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
console = Console(stderr=True)


def _open(settings: Settings) -> SubscriberStore:
    from streams.store import StoreError
    from streams.store.indexing import open_configured

    try:
        store = open_configured(settings, fail_fast=True)
        store.migrate()
    except StoreError as err:
        console.print(f"[red]store[/red]: {err}", soft_wrap=True)
        raise typer.Exit(UNREACHABLE if unreachable(err) else FAILED) from None
    return store


@app.command("import")
def import_(
    file: Annotated[
        Path, typer.Argument(help="Recipients YAML (config/recipients.yaml's format).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and index, write nothing.")
    ] = False,
) -> None:
    """Validate FILE, compute each subscriber's zones (location → 동/구/province and drawn
    zones; subscribed areas → every zone overlapping them) and write them to the store.
    Existing subscribers with the same id are replaced; their opt-outs are kept."""
    from streams.config_files import load_recipients, load_zones
    from streams.store import StoreError, now_ms
    from streams.store.indexing import from_directory

    settings = Settings()
    try:
        zones = load_zones(settings.paths.zones, settings.paths.admin_boundaries)
    except ConfigError as err:
        console.print(f"[red]invalid zones[/red] {err} (gyeongbo config check)")
        raise typer.Exit(FAILED) from None
    try:
        directory = load_recipients(file, zones=zones)
    except ConfigError as err:
        console.print(f"[red]invalid recipients file[/red] {err}")
        raise typer.Exit(FAILED) from None
    subs = from_directory(directory, zones)
    drills = sum(s.drill for s in subs)
    console.print(
        f"{file}: {len(subs)} subscribers ({drills} drill handsets), zones version {zones.version}"
    )
    if dry_run:
        return
    store = _open(settings)
    try:
        with console.status(f"writing {len(subs)} subscribers"):
            for i in range(0, len(subs), 5000):
                store.upsert(subs[i : i + 5000], now_ms=now_ms())
        console.print(f"[green]imported[/green] {len(subs)}; the store holds {store.count()}")
    except StoreError as err:
        console.print(f"[red]import failed[/red]: {err}", soft_wrap=True)
        raise typer.Exit(UNREACHABLE if unreachable(err) else FAILED) from None
    finally:
        store.close()


@app.command("list")
def list_(
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    offset: Annotated[int, typer.Option(help="Skip this many (by id).")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List subscribers by id, phone numbers masked."""
    store = _open(Settings())
    try:
        subs = store.listing(limit=limit, offset=offset)
        total = store.count()
    finally:
        store.close()
    if as_json:
        print(json.dumps([s.public() for s in subs], ensure_ascii=False, indent=1))
        return
    rows = []
    for s in subs:
        p = s.public()
        rows.append(
            [
                s.id,
                str(p["phone"]),
                s.language,
                ", ".join(s.hazards),
                ", ".join(s.declared_zones),
                s.located[0] if s.located else "",
                "yes" if s.drill else "",
                s.opt_out_reason or "",
            ]
        )
    cols = [Column("id", key=True)]
    cols += [Column(c) for c in ("phone", "lang", "hazards", "areas", "located", "drill")]
    title = f"subscribers {offset + 1}–{offset + len(subs)} of {total}"
    print_listing([*cols, Column("opted out")], rows, title=title)


@app.command()
def show(subscriber_id: Annotated[str, typer.Argument(help="Subscriber id.")]) -> None:
    """One subscriber as stored (phone masked), with the zones that concern them."""
    store = _open(Settings())
    try:
        s = store.get(subscriber_id)
    finally:
        store.close()
    if s is None:
        console.print(f"[red]no subscriber {subscriber_id!r}[/red]")
        raise typer.Exit(FAILED)
    print(json.dumps({**s.public(), "member_zones": list(s.member_zones)}, ensure_ascii=False))


@app.command("opt-out")
def opt_out(
    subscriber_id: Annotated[str, typer.Argument(help="Subscriber id.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the opt-out).")],
) -> None:
    """Record that a subscriber wants no more messages (the fan-out also does this when
    Twilio answers 21610: the handset replied STOP)."""
    from streams.store import now_ms

    store = _open(Settings())
    try:
        done = store.opt_out(subscriber_id, reason=reason, now_ms=now_ms())
    finally:
        store.close()
    if not done:
        console.print(f"[yellow]{subscriber_id}: unknown or already opted out[/yellow]")
        raise typer.Exit(FAILED)
    console.print(f"[green]{subscriber_id} opted out[/green]")
