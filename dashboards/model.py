"""A small typed model of the Grafana dashboard JSON we generate (schema version 39, Grafana 11).

Only what our dashboards use is modelled, as msgspec Structs with ``forbid_unknown_fields``:
decoding a committed dashboard JSON back into :class:`Dashboard` and re-encoding it must give
the same document (the offline round-trip check). Panel ``options`` and field ``custom`` stay
free-form mappings — their shape depends on the panel plugin.

Every query is raw InfluxQL (``rawQuery: true``) against the one provisioned datasource
:data:`DATASOURCE`, so the same JSON works with InfluxDB 1.8+, 2.x (DBRP mapping) and 3.x.

:class:`Grid` lays panels out left to right in Grafana's 24-column grid:

>>> g = Grid()
>>> [g.place(12, 8), g.place(12, 8), g.place(24, 1)]
[GridPos(h=8, w=12, x=0, y=0), GridPos(h=8, w=12, x=12, y=0), GridPos(h=1, w=24, x=0, y=8)]
"""

from __future__ import annotations

import json
from typing import Any, Final

import msgspec

__all__ = [
    "DATASOURCE",
    "Annotation",
    "Annotations",
    "Dashboard",
    "DataSourceRef",
    "FieldConfig",
    "FieldDefaults",
    "Grid",
    "GridPos",
    "Panel",
    "Target",
    "Templating",
    "ThresholdStep",
    "Thresholds",
    "TimeRange",
    "Variable",
    "VariableOption",
    "decode_dashboard",
    "encode_dashboard",
]

SCHEMA_VERSION: Final = 39
GRID_COLUMNS: Final = 24


class _S(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, rename="camel"):
    pass


class DataSourceRef(_S):
    type: str
    uid: str


#: The provisioned InfluxQL datasource (dashboards/provisioning/datasources/).
DATASOURCE: Final = DataSourceRef(type="influxdb", uid="gyeongbo-influxql")


class GridPos(_S):
    h: int
    w: int
    x: int
    y: int


class Target(_S):
    """One raw InfluxQL query of a panel."""

    ref_id: str
    query: str
    datasource: DataSourceRef
    raw_query: bool  # always True: the query is InfluxQL text
    result_format: str  # "time_series" or "table"
    alias: str | None = None


class ThresholdStep(_S):
    color: str
    value: float | None  # None: the base step


class Thresholds(_S):
    mode: str  # "absolute"
    steps: list[ThresholdStep]


class FieldDefaults(_S):
    unit: str | None = None
    decimals: int | None = None
    min: float | None = None
    max: float | None = None
    display_name: str | None = None
    color: dict[str, Any] | None = None
    thresholds: Thresholds | None = None
    mappings: list[dict[str, Any]] = []
    custom: dict[str, Any] = {}


class FieldConfig(_S):
    defaults: FieldDefaults
    overrides: list[dict[str, Any]]


class Panel(_S):
    id: int
    type: str
    title: str
    grid_pos: GridPos
    datasource: DataSourceRef | None = None
    targets: list[Target] = []
    field_config: FieldConfig | None = None
    options: dict[str, Any] = {}
    description: str | None = None
    #: Minimum ``$__interval`` (e.g. ``1h`` for hourly means).
    interval: str | None = None
    transformations: list[dict[str, Any]] = []
    collapsed: bool | None = None  # rows only
    panels: list[Panel] = []  # rows only (collapsed)


class VariableOption(_S):
    text: str
    value: str
    selected: bool = False


class Variable(_S):
    """A custom (fixed-list) template variable."""

    type: str  # "custom"
    name: str
    label: str
    query: str
    current: VariableOption
    options: list[VariableOption]
    hide: int
    multi: bool
    include_all: bool
    description: str | None = None


_VariableList = list[Variable]  # (a field named ``list`` shadows the builtin in the class)


class Templating(_S):
    list: _VariableList


class Annotation(_S):
    """An InfluxQL annotation query (legacy top-level fields and the ``target`` form)."""

    name: str
    icon_color: str
    datasource: DataSourceRef
    enable: bool
    hide: bool
    query: str
    text_column: str
    tags_column: str
    target: dict[str, Any]


_AnnotationList = list[Annotation]


class Annotations(_S):
    list: _AnnotationList


class TimeRange(_S):
    from_: str = msgspec.field(name="from")
    to: str


class Dashboard(_S):
    uid: str
    title: str
    tags: list[str]
    timezone: str
    editable: bool
    graph_tooltip: int
    refresh: str
    schema_version: int
    version: int
    time: TimeRange
    templating: Templating
    annotations: Annotations
    panels: list[Panel]
    description: str | None = None
    links: list[dict[str, Any]] = []


def encode_dashboard(d: Dashboard) -> str:
    """Stable, human-diffable JSON (UTF-8, Korean kept as is, two-space indent)."""
    return json.dumps(msgspec.to_builtins(d), ensure_ascii=False, indent=2) + "\n"


def decode_dashboard(text: str | bytes) -> Dashboard:
    """Strict decode: an unknown key or a wrong type is an error."""
    return msgspec.json.decode(text, type=Dashboard)


class Grid:
    """Places panels left to right, wrapping to a new line at 24 columns."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0
        self.line_h = 0

    def place(self, w: int, h: int) -> GridPos:
        if not 0 < w <= GRID_COLUMNS:
            raise ValueError(f"panel width {w} is not within 1..{GRID_COLUMNS}")
        if self.x + w > GRID_COLUMNS:
            self.newline()
        pos = GridPos(h=h, w=w, x=self.x, y=self.y)
        self.x += w
        self.line_h = max(self.line_h, h)
        if w == GRID_COLUMNS:
            self.newline()
        return pos

    def newline(self) -> None:
        if self.x:
            self.y += self.line_h
        self.x = 0
        self.line_h = 0
