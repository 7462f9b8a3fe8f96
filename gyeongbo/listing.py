"""Listings that never cut what a user has to type: ids, names, alert ids.

A listing is a rich table whose *key* columns (an alert id for ``alerts ack``, a scenario
name for ``drill run``) are never wrapped, folded or cut; the other columns wrap. When the
terminal is too narrow for the key columns and a readable minimum of the others, the same
rows are printed as records instead — the key on a line of its own, then one ``field value``
line per non-empty field — so an 80-column terminal still shows every id whole.

The width is the console's (``COLUMNS`` when set, else the terminal's, else 80), read when
the listing is printed. Every command with a listing also has ``--json``.

>>> import io
>>> from rich.console import Console
>>> c = Console(width=40, file=io.StringIO(), color_system=None)
>>> cols = [Column("alert", key=True), Column("zone"), Column("level")]
>>> print_listing(cols, [["flood:hangang-riverside:2026-12-07T17:24:11+09:00",
...                       "한강 둔치", "caution"]], console=c)
>>> for line in c.file.getvalue().splitlines():
...     print(line.rstrip())
flood:hangang-riverside:2026-12-07T17:24:11+09:00
  zone   한강 둔치
  level  caution
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len
from rich.console import Console, JustifyMethod
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

__all__ = ["Column", "out_console", "print_listing"]

#: A non-key column narrower than this (or its header) is unreadable: use records.
MIN_OTHER = 8


@dataclass(frozen=True)
class Column:
    header: str
    #: An id or name users pass to another command: never wrapped or cut.
    key: bool = False
    justify: JustifyMethod = "left"
    #: A style for some values (``{"down": "red"}``); cells are plain text, never markup.
    styles: Mapping[str, str] = field(default_factory=dict)

    def cell(self, value: str) -> Text:
        return Text(value, style=self.styles.get(value, ""))


def out_console() -> Console:
    """A console on stdout sized now (``COLUMNS`` is read at creation)."""
    return Console()


def _widest(cells: Sequence[str]) -> int:
    return max((cell_len(line) for c in cells for line in c.splitlines() or [""]), default=0)


def _fits(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> bool:
    need = 3 * len(columns) + 1  # HEAVY_HEAD: a border and a space either side of each cell
    for i, col in enumerate(columns):
        natural = max(cell_len(col.header), _widest([r[i] for r in rows]))
        need += natural if col.key else min(natural, max(MIN_OTHER, cell_len(col.header)))
    return need <= width


def print_listing(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    console: Console | None = None,
) -> None:
    """Print ``rows`` as a table when it fits the console's width whole, else as records."""
    console = console or out_console()
    if _fits(columns, rows, console.width):
        table = Table(title=title, title_justify="left")
        for col in columns:
            if col.key:
                table.add_column(col.header, no_wrap=True, overflow="ignore", justify=col.justify)
            else:
                table.add_column(col.header, overflow="fold", justify=col.justify)
        for r in rows:
            table.add_row(*(col.cell(v) for col, v in zip(columns, r, strict=True)))
        console.print(table)
        return
    if title:
        console.print(Text(title, style="italic"))
    keys = [i for i, c in enumerate(columns) if c.key]
    for r in rows:
        console.print(Text("  ".join(r[i] for i in keys), style="bold"), soft_wrap=True)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for i, col in enumerate(columns):
            if not col.key and r[i]:
                grid.add_row(col.header, col.cell(r[i]))
        if grid.row_count:
            console.print(Padding(grid, (0, 0, 0, 2), expand=False))
