"""``gyeongbo operators …``: issue, list and revoke operators' API tokens.

Run where the tokens file is (``GYEONGBO_OPERATOR__TOKENS_FILE``; in compose, the
``operators`` tool service, which mounts the volume the workers read). Workers pick up
changes on the next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gyeongbo.exit_codes import FAILED
from gyeongbo.listing import Column, print_listing
from gyeongbo.settings import Settings
from streams.operators import ROLES, TokenStore

app = typer.Typer(
    help="Operators' API tokens: add (prints the new token once), list, revoke.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
err = Console(stderr=True)

FileOpt = Annotated[
    Path | None,
    typer.Option("--file", help="Tokens file (default GYEONGBO_OPERATOR__TOKENS_FILE)."),
]


def _path(file: Path | None) -> Path:
    return file or Settings().operator.tokens_file


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[TokenStore]:
    """Read, let the caller change, write back — under an exclusive lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        store = TokenStore.load(path)
        yield store
        store.save(path)


@app.command()
def add(
    operator: Annotated[str, typer.Argument(help="The operator's id (recorded in the audit log).")],
    role: Annotated[
        str, typer.Option(help=f"One of {', '.join(ROLES)}: read, act, or act and administer.")
    ] = "operator",
    note: Annotated[str, typer.Option(help="Free text, e.g. the desk or the shift.")] = "",
    file: FileOpt = None,
) -> None:
    """Issue a token for OPERATOR and print it once: it is stored only as a hash.

    Hand it to the operator, who sets GYEONGBO_OPERATOR__TOKEN for `gyeongbo alerts …`.
    """
    path = _path(file)
    with _locked(path) as store:
        try:
            token, entry = store.issue(operator, role, now_ms=_now(), note=note)
        except ValueError as e:  # an unknown role, a bad operator id: the command line's
            raise typer.BadParameter(str(e)) from None
    err.print(
        f"token {entry.token_id} for {entry.operator} ({entry.role}) added to {path}; "
        "it is shown once:"
    )
    print(token)


@app.command("list")
def list_tokens(
    file: FileOpt = None,
    all_: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List tokens (id, operator, role, created, revoked); never the tokens or their hashes."""
    store = TokenStore.load(_path(file))
    rows = [e.public() for e in store.entries.values() if all_ or e.active]
    if as_json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = [
        [
            str(r["token_id"]),
            str(r["operator"]),
            str(r["role"]),
            _iso(r["created_ms"]),
            _iso(r["revoked_ms"]) if r["revoked_ms"] else "",
            str(r["note"]),
        ]
        for r in rows
    ]
    cols = [Column("token id", key=True), Column("operator", key=True)]
    cols += [Column(c) for c in ("role", "created", "revoked", "note")]
    print_listing(cols, table, title=f"{len(rows)} token(s) in {_path(file)}")


@app.command()
def revoke(
    key: Annotated[str, typer.Argument(help="A token id, or an operator id (all their tokens).")],
    file: FileOpt = None,
) -> None:
    """Revoke a token (or every token of an operator); workers refuse it from the next
    request on."""
    with _locked(_path(file)) as store:
        hits = store.revoke(key, now_ms=_now())
    if not hits:
        err.print(f"[red]no active token or operator {key!r}[/red]")
        raise typer.Exit(FAILED)
    for e in hits:
        err.print(f"revoked {e.token_id} ({e.operator}, {e.role})")


def _now() -> int:
    return time.time_ns() // 1_000_000


def _iso(ms: object) -> str:
    if not isinstance(ms, int):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000))
