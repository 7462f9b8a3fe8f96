"""``gyeongbo hq …``: the headquarters' 비상 stage — show it, confirm a proposal, set it by hand.

Talks to the workers' HTTP API (``GET /hq``, ``POST /hq/confirm``, ``POST /hq/stage``) with
the operator's token (GYEONGBO_OPERATOR__TOKEN). One worker holds the headquarters machine;
each ``--url`` is tried in turn and the first that holds it answers (the others say 503).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.markup import escape

from alerting.hq import stage_name
from gyeongbo.exit_codes import FAILED, UNREACHABLE
from gyeongbo.listing import Column, print_listing
from streams.alerts_cli import JsonOpt, ReasonOpt, UrlOpt, _headers, _print, _urls, err

app = typer.Typer(
    help="Headquarters' emergency stage (비상 1·2·3단계): show it, confirm the stage the rule "
    "proposes, or set one by hand. Sends your token (GYEONGBO_OPERATOR__TOKEN); the audit log "
    "and the stage event record the operator it belongs to.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

ExerciseOpt = Annotated[
    bool, typer.Option("--exercise", help="The drill headquarters (훈련) instead of the real one.")
]


def _holder_call(method: str, path: str, urls: list[str], body: dict[str, Any] | None) -> Any:
    """The answer of the first worker that holds the HQ machine; exit 1 on a refusal (the
    worker's message), exit 1 when every worker answers that it does not hold it, exit 3
    when none answers at all."""
    data = json.dumps(body).encode() if body is not None else None
    answered = False
    for u in urls:
        req = urllib.request.Request(f"{u}{path}", data=data, method=method, headers=_headers())
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw = r.read()
                return json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            answered = True
            answer = " ".join(e.read().decode(errors="replace").split())
            if e.code == 503:
                continue
            err.print(f"[red]{method} {escape(u + path)}: HTTP {e.code}[/red] {escape(answer)}")
            raise typer.Exit(FAILED) from None
        except (urllib.error.URLError, OSError) as e:
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            err.print(f"[yellow]no worker answers at {escape(u)}[/yellow]: {escape(str(reason))}")
    if answered:
        err.print("[red]no worker given holds the headquarters machine[/red] (try every --url)")
        raise typer.Exit(FAILED)
    raise typer.Exit(UNREACHABLE)


@app.command()
def show(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """The standing stage, the standing proposal, province levels and recent changes."""
    doc = _holder_call("GET", "/hq", _urls(url), None)
    if as_json:
        print(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    for name in ("real", "exercise"):
        ns = doc[name]
        proposed = ns.get("proposed")
        title = (
            f"{'훈련 ' if name == 'exercise' else ''}headquarters ({doc['hazard_group']}): "
            f"{stage_name(ns['stage'])}"
            + (f", proposed {stage_name(proposed)}" if proposed is not None else "")
            + " — provinces "
            + (", ".join(f"{p} {lv}" for p, lv in ns["provinces"].items()) or "none")
        )
        rows = [
            [
                str(r["ts_ms"]),
                r["action"],
                f"{r['previous']} → {r['stage']}",
                str(r.get("actor") or ""),
                str(r.get("reason") or ""),
            ]
            for r in ns["history"]
        ]
        columns = [Column("ts_ms"), Column("action", key=True), Column("stage")]
        print_listing([*columns, Column("actor"), Column("reason")], rows, title=title)


@app.command()
def confirm(reason: ReasonOpt, exercise: ExerciseOpt = False, url: UrlOpt = None) -> None:
    """Confirm the stage the rule proposes (refused when no proposal stands)."""
    body = {"reason": reason, "exercise": exercise}
    _print(_holder_call("POST", "/hq/confirm", _urls(url), body))


@app.command("set")
def set_stage(
    stage: Annotated[
        int,
        typer.Argument(
            min=0, max=3, help="0 = 평시, 1..3 = 비상 1·2·3단계 (any jump, up or down)."
        ),
    ],
    reason: ReasonOpt,
    exercise: ExerciseOpt = False,
    url: UrlOpt = None,
) -> None:
    """Set the stage by hand, e.g. 3 on nationwide large-scale damage."""
    body = {"stage": stage, "reason": reason, "exercise": exercise}
    _print(_holder_call("POST", "/hq/stage", _urls(url), body))
