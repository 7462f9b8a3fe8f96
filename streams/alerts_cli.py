"""``gyeongbo alerts …``: operators' commands, talking to the workers' HTTP API.

Each worker serves the alerts of the zones it owns; ``list`` and ``audit`` ask every
``--url`` given (default: the worker in settings) and merge the answers. Actions go to any
one worker, which queues them on the zone's partition for its owner.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from gyeongbo.exit_codes import FAILED, UNREACHABLE, USAGE
from gyeongbo.listing import Column, out_console, print_listing
from gyeongbo.settings import Settings
from gyeongbo.vocab import LEVEL_KO, Level, Severity

app = typer.Typer(
    help="Operators: list, acknowledge, silence, escalate and clear alerts. Every command "
    "sends your token (GYEONGBO_OPERATOR__TOKEN, from `gyeongbo operators add`); the audit "
    "log records the operator the token belongs to.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
err = Console(stderr=True, soft_wrap=True)

UrlOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--url",
        help="Worker base URL (repeat for several workers). "
        "Default: http://GYEONGBO_WORKER__WEB_HOST:GYEONGBO_WORKER__WEB_PORT",
    ),
]
ReasonOpt = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]
AlertIdArg = Annotated[
    str, typer.Argument(help="The alert's id, as `gyeongbo alerts list` shows it.")
]
ZoneArg = Annotated[
    str,
    typer.Argument(
        help="Zone id: a KOSTAT code (11030 = 용산구) or a custom zone (hangang-riverside)."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _urls(urls: list[str] | None) -> list[str]:
    if urls:
        return [u.rstrip("/") for u in urls]
    w = Settings().worker
    return [f"http://{w.web_host}:{w.web_port}"]


def _headers() -> dict[str, str]:
    token = Settings().operator.token
    if token is None:
        err.print(
            "[red]no operator token[/red]: set GYEONGBO_OPERATOR__TOKEN (an administrator "
            "issues one with `gyeongbo operators add`)"
        )
        raise typer.Exit(USAGE)
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Authorization": f"Bearer {token.get_secret_value()}",
    }


def _call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    """One request to a worker's API: the answer's JSON; exit 1 with the worker's answer on
    an HTTP error, exit 3 in one line when no worker answers (refused, timeout, no host)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=_headers())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        answer = " ".join(e.read().decode(errors="replace").split())
        err.print(f"[red]{method} {escape(url)}: HTTP {e.code}[/red] {escape(answer)}")
        raise typer.Exit(FAILED) from None
    except (urllib.error.URLError, OSError) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        err.print(f"[red]no worker answers at {escape(url)}[/red]: {escape(str(reason))}")
        raise typer.Exit(UNREACHABLE) from None


def parse_duration(text: str) -> int:
    """Seconds in ``90``, ``45s``, ``10m``, ``2h``, ``1h30m``.

    >>> parse_duration("1h30m"), parse_duration("90")
    (5400, 90)
    """
    if text.isdigit():
        return int(text)
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not parts or not any(parts.groups()):
        raise typer.BadParameter(f"not a duration: {text!r} (e.g. 30m, 2h, 1h30m)")
    h, m, s = (int(x or 0) for x in parts.groups())
    return h * 3600 + m * 60 + s


def _rank(a: dict[str, Any]) -> tuple[int, int, str]:
    """Public alerts first, most severe first; data-quality alerts (``severity``) after."""
    if "severity" in a:
        return (1, -int(Severity.parse(a["severity"])), a["alert_id"])
    return (0, -int(Level.parse(a["level"])), a["alert_id"])


@app.command("list")
def list_alerts(
    url: UrlOpt = None,
    exercise: Annotated[
        bool | None, typer.Option("--exercise/--real", help="Only drills / only real alerts.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List active alerts: id (what ack, clear take), stage, zone, stations, acknowledged,
    and for an unacknowledged one the operators' reminders sent and when the next is due."""
    q = "" if exercise is None else f"?exercise={'true' if exercise else 'false'}"
    alerts: list[dict[str, Any]] = []
    for u in _urls(url):
        alerts += _call("GET", f"{u}/alerts{q}") or []
    # public alerts by level, then operators' data-quality alerts (a severity, no level)
    alerts.sort(key=_rank)
    if as_json:
        print(json.dumps(alerts, ensure_ascii=False, indent=2))
        return
    rows = []
    for a in alerts:
        if "severity" in a:
            checks = sorted({c for cs in (a.get("checks") or {}).values() for c in cs})
            shown = f"operators: {a['severity']} ({', '.join(checks)})"
        else:
            shown = f"{LEVEL_KO[Level.parse(a['level'])]} {a['level']}"
        rows.append(
            [
                a["alert_id"],
                a["hazard"],
                f"{a.get('zone_name', '')} ({a['zone']})",
                shown,
                str(a.get("since", "")),
                ", ".join(a.get("stations", {}) or []),
                "yes" if a.get("acked") else "",
                _reminder(a),
                "훈련" if a.get("exercise") else "",
            ]
        )
    columns = [Column("alert", key=True)]
    columns += [Column(c) for c in ("hazard", "zone", "level", "since", "stations", "acked")]
    print_listing(
        [*columns, Column("reminders"), Column("drill")],
        rows,
        title=f"{len(alerts)} active alert(s)",
    )


def _reminder(a: dict[str, Any]) -> str:
    """``2 sent, next 2020-08-06T12:00:00+09:00``; empty once acknowledged or never repeated."""
    n, due = int(a.get("reminders") or 0), a.get("next_reminder")
    parts = [f"{n} sent"] if n else []
    if due and not a.get("acked"):
        parts.append(f"next {due}")
    return ", ".join(parts)


@app.command()
def ack(alert_id: AlertIdArg, reason: ReasonOpt, url: UrlOpt = None) -> None:
    """Acknowledge an alert: stops repeat notifications, keeps the alert and its stage."""
    _print(_call("POST", f"{_urls(url)[0]}/alerts/{alert_id}/ack", {"reason": reason}))


@app.command()
def clear(
    alert_id: AlertIdArg,
    reason: ReasonOpt,
    cancel: Annotated[
        bool, typer.Option(help="Issued in error: a CAP Cancel, no all-clear.")
    ] = False,
    url: UrlOpt = None,
) -> None:
    """Clear an alert by hand (an all-clear goes out unless --cancel)."""
    _print(
        _call(
            "POST",
            f"{_urls(url)[0]}/alerts/{alert_id}/clear",
            {"reason": reason, "cancel": cancel},
        )
    )


@app.command()
def silence(
    zone: ZoneArg,
    duration: Annotated[str, typer.Option(help="How long: 30m, 2h, 1h30m.")],
    reason: ReasonOpt,
    hazard: Annotated[str | None, typer.Option(help="Only this hazard (default: all).")] = None,
    exercise: Annotated[bool, typer.Option(help="Silence the drill namespace.")] = False,
    url: UrlOpt = None,
) -> None:
    """Hold public transitions of a zone for a window (a rise to 심각 still breaks through)."""
    body = {
        "reason": reason,
        "duration_s": parse_duration(duration),
        "hazard": hazard,
        "exercise": exercise,
    }
    _print(_call("POST", f"{_urls(url)[0]}/zones/{zone}/silence", body))


@app.command()
def escalate(
    zone: ZoneArg,
    hazard: Annotated[str, typer.Option(help="Hazard, e.g. flood, pm25, structural.")],
    level: Annotated[str, typer.Option(help="attention, caution, alert or serious.")],
    reason: ReasonOpt,
    exercise: Annotated[bool, typer.Option(help="Escalate in the drill namespace.")] = False,
    url: UrlOpt = None,
) -> None:
    """Escalate a zone by hand; the level is a floor until the alert is cleared."""
    body = {
        "reason": reason,
        "hazard": hazard,
        "level": level,
        "exercise": exercise,
    }
    _print(_call("POST", f"{_urls(url)[0]}/zones/{zone}/escalate", body))


@app.command()
def audit(url: UrlOpt = None, as_json: JsonOpt = False) -> None:
    """The operator audit log: who did what, when, why, and whether it applied."""
    entries: list[dict[str, Any]] = []
    for u in _urls(url):
        entries += _call("GET", f"{u}/audit") or []
    entries.sort(key=lambda e: e.get("ts_ms", 0))
    if as_json:
        print(json.dumps(entries, ensure_ascii=False, indent=2))
        return
    rows = [
        [
            str(e.get("ts_ms")),
            str(e.get("actor")),
            str(e.get("action")),
            str(e.get("target", e.get("alert_id", ""))),
            str(e.get("reason", "")),
            str(e.get("result", "")),
        ]
        for e in entries
    ]
    columns = [Column("ts_ms"), Column("actor"), Column("action"), Column("target", key=True)]
    print_listing([*columns, Column("reason"), Column("result")], rows, title="operator audit log")


def _print(doc: Any) -> None:
    out_console().print_json(json.dumps(doc, ensure_ascii=False))
