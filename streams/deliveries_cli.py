"""``gyeongbo deliveries list|show``: SMS fan-outs per event, from a worker's HTTP API.

Every worker reads the same sent log (the subscriber store), so any one answers for all.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated

import typer

from alerting.model import rfc3339
from gyeongbo.listing import Column, print_listing
from streams.alerts_cli import JsonOpt, UrlOpt, _call, _urls

app = typer.Typer(
    help=(
        "SMS per event: how many were submitted, delivered, failed, opted out, and how long "
        "the fan-out took (from a worker's /deliveries)."
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.command("list")
def list_(
    url: UrlOpt = None,
    limit: Annotated[int, typer.Option(help="The newest N events.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """SMS per event, newest first: people, messages, delivered, failed, fan-out time."""
    base = _urls(url)[0]
    rows = _call("GET", f"{base}/deliveries?limit={limit}")
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    cols = [Column("event", key=True)] + [
        Column(c, justify="right")
        for c in ("people", "messages", "submitted", "delivered", "failed", "opted out", "pending")
    ]
    cols += [Column("fan-out", justify="right"), Column("started")]
    table = [
        [
            r["event_id"],
            str(r["recipients"]),
            str(r["messages"]),
            str(r["submitted"]),
            str(r["delivered"]),
            str(r["failed"] + r["undelivered"] + r["permanent"]),
            str(r["opted_out"]),
            str(r["planned"]),
            "-" if r["fanout_s"] is None else f"{r['fanout_s']:.1f}s",
            rfc3339(r["first_planned_ms"]),
        ]
        for r in rows
    ]
    print_listing(cols, table, title=f"SMS deliveries per event ({base})")


@app.command()
def show(
    event_id: Annotated[str, typer.Argument(help="Event id (from `gyeongbo deliveries list`).")],
    url: UrlOpt = None,
    limit: Annotated[int, typer.Option(help="At most this many messages.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """The messages of one event: who (masked), what level, the text, what became of it."""
    base = _urls(url)[0]
    quoted = urllib.parse.quote(event_id, safe="")
    rows = _call("GET", f"{base}/deliveries/{quoted}?limit={limit}")
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    cols = [Column("subscriber", key=True)]
    cols += [Column(c) for c in ("phone", "kind", "level", "state", "status", "body")]
    table = [
        [
            r["subscriber_id"],
            r["phone_masked"],
            r["kind"],
            str(r["level"]),
            r["state"] + (f" ({r['error_code']})" if r["error_code"] else ""),
            r["delivery_status"] or "",
            r["body"],
        ]
        for r in rows
    ]
    print_listing(cols, table, title=f"{event_id}: {len(rows)} message(s)")
