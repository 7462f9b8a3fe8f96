"""Gyeongbo's Grafana dashboards, generated from the station registry.

Two dashboards, both with the drill toggle ``$exercise`` (``false`` = live data, ``true`` =
drill data; every event query filters on it) and the alert transitions of the selected mode
as annotations (one annotation query per level, in the level's colour):

* **Situation** (``gyeongbo-situation``): a Geomap of stations coloured by their current
  stage; active alerts (latest state per hazard × zone, not cleared) and the alert history;
  the headquarters' stage; recent detections; water level per gauge with its four official
  stage lines (관심/주의/경계/심각 from the registry, drawn as threshold lines); gauges without
  official stages together; rainfall per interval and the KMA heavy-rain sums over 3 h
  (60/90 mm) and 12 h (110/180 mm); PM10 (150/300 µg/m³), PM2.5 (75/150 µg/m³) and O₃
  (0.12/0.3/0.5 ppm) hourly means; each structural monitor's channels as % of its allowable
  (60/80/100 % lines); peak ground acceleration.
* **Operations** (``gyeongbo-operations``): sensor health (open faults, fault changes),
  pipeline lag and throughput per component, rejected readings, detections and alerts per
  second, and the InfluxDB sink's own counters.

Queries are InfluxQL only, over the schema of :mod:`streams.influx_lines`. Each query's
expected result (columns, the tags its series are grouped by, and what a drill leaves quiet)
is recorded in :attr:`Built.expects`; tests/test_dashboards_queries.py runs a drill through
the whole pipeline (tests/scenarios/dashboard-drill.yaml) and holds every query to that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from dashboards.model import (
    DATASOURCE,
    SCHEMA_VERSION,
    Annotation,
    Annotations,
    Dashboard,
    FieldConfig,
    FieldDefaults,
    Grid,
    Panel,
    Target,
    Templating,
    Thresholds,
    ThresholdStep,
    TimeRange,
    Variable,
    VariableOption,
)
from gyeongbo.registry import Registry, Station
from gyeongbo.vocab import LEVEL_COLOUR, Kind, Level, Severity

__all__ = ["Built", "Expect", "build_all", "operations", "situation"]

EX: Final = "\"exercise\" = '$exercise'"
#: Window for "latest state" queries (active alerts, stages, health, station metadata).
STATE_WINDOW: Final = "time > now() - 30d"
STAGE_COLOURS: Final = {int(lv): LEVEL_COLOUR[lv] for lv in Level}
LEVEL_LABEL: Final = {int(lv): f"{lv.ko} {lv.wire}" for lv in Level}
#: Operators' data-quality severities: grey, amber, purple — none of the public stage colours.
SEVERITY_COLOURS: Final = {
    int(Severity.CLEARED): "text",
    int(Severity.WARNING): "#C8A800",
    int(Severity.CRITICAL): "purple",
}


@dataclass(frozen=True)
class Expect:
    """What one query must return after a drill through the whole pipeline: at least one
    series, grouped by exactly ``group_by``, with exactly ``columns``, each holding a value
    somewhere — and a rate (``non_negative_derivative``) above zero somewhere, or the panel
    would show a flat line where it promises movement.

    ``quiet`` names the columns a drill legitimately leaves empty or at zero (``"*"``: the
    whole query), each with the reason: what only production, or a failure, produces. The
    drill test lists them and checks that they are indeed quiet, so the list stays true."""

    columns: tuple[str, ...]
    group_by: tuple[str, ...] = ()
    quiet: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Built:
    dashboard: Dashboard
    #: (panel id, refId) → expectation; annotations are keyed (0, annotation name).
    expects: dict[tuple[int, str], Expect] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.dashboard.uid}.json"


class _Builder:
    def __init__(self) -> None:
        self.grid = Grid()
        self.panels: list[Panel] = []
        self.expects: dict[tuple[int, str], Expect] = {}
        self.next_id = 1

    def row(self, title: str) -> None:
        self.grid.newline()
        self.panels.append(
            Panel(
                id=self._id(),
                type="row",
                title=title,
                grid_pos=self.grid.place(24, 1),
                collapsed=False,
            )
        )

    def panel(
        self,
        type_: str,
        title: str,
        w: int,
        h: int,
        queries: list[tuple[str, Expect]],
        *,
        table: bool = False,
        alias: str | None = None,
        defaults: FieldDefaults | None = None,
        options: dict[str, Any] | None = None,
        description: str | None = None,
        interval: str | None = None,
        overrides: list[dict[str, Any]] | None = None,
        transformations: list[dict[str, Any]] | None = None,
    ) -> Panel:
        pid = self._id()
        targets = []
        for i, (q, exp) in enumerate(queries):
            ref = chr(ord("A") + i)
            targets.append(
                Target(
                    ref_id=ref,
                    query=q,
                    datasource=DATASOURCE,
                    raw_query=True,
                    result_format="table" if table else "time_series",
                    alias=alias,
                )
            )
            self.expects[(pid, ref)] = exp
        p = Panel(
            id=pid,
            type=type_,
            title=title,
            grid_pos=self.grid.place(w, h),
            datasource=DATASOURCE,
            targets=targets,
            field_config=FieldConfig(
                defaults=defaults or FieldDefaults(), overrides=overrides or []
            ),
            options=options or {},
            description=description,
            interval=interval,
            transformations=transformations or [],
        )
        self.panels.append(p)
        return p

    def _id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i


# -- pieces ---------------------------------------------------------------------------------
def _thresholds(base: str, *steps: tuple[float, str]) -> Thresholds:
    return Thresholds(
        mode="absolute",
        steps=[ThresholdStep(color=base, value=None)]
        + [ThresholdStep(color=c, value=v) for v, c in steps],
    )


def _lines(unit: str, thresholds: Thresholds, **custom: Any) -> FieldDefaults:
    """Time-series defaults that draw the thresholds as dashed lines over tinted bands."""
    return FieldDefaults(
        unit=unit,
        thresholds=thresholds,
        color={"mode": "palette-classic"},
        custom={
            "thresholdsStyle": {"mode": "dashed+area"},
            "lineWidth": 2,
            "fillOpacity": 0,
            "spanNulls": True,
            **custom,
        },
    )


def _stage_mappings() -> list[dict[str, Any]]:
    return [
        {
            "type": "value",
            "options": {
                str(n): {"text": LEVEL_LABEL[n], "color": STAGE_COLOURS[n], "index": n}
                for n in STAGE_COLOURS
            },
        }
    ]


def _severity_mappings() -> list[dict[str, Any]]:
    """Operators' severities (``severity_num`` 0–2), never the public crisis levels."""
    return [
        {
            "type": "value",
            "options": {
                str(n): {"text": Severity(n).wire, "color": SEVERITY_COLOURS[n], "index": n}
                for n in SEVERITY_COLOURS
            },
        }
    ]


def _stage_thresholds() -> Thresholds:
    return _thresholds(STAGE_COLOURS[0], *((float(n), STAGE_COLOURS[n]) for n in range(1, 5)))


def _legend() -> dict[str, Any]:
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "desc"},
    }


def _exercise_variable() -> Variable:
    live = VariableOption(text="live", value="false", selected=True)
    drill = VariableOption(text="drill (훈련)", value="true", selected=False)
    return Variable(
        type="custom",
        name="exercise",
        label="Data",
        query="live : false,drill (훈련) : true",
        current=VariableOption(text="live", value="false", selected=True),
        options=[live, drill],
        hide=0,
        multi=False,
        include_all=False,
        description="Live data or drill (exercise) data; drills never mix with live data.",
    )


def _annotations() -> Annotations:
    out = []
    for lv in reversed(Level):
        q = (
            'SELECT "message", "hazard", "zone" FROM "alert" '
            f"WHERE \"level\" = '{lv.wire}' AND {EX} AND $timeFilter"
        )
        out.append(_annotation(f"Alert → {lv.ko} {lv.wire}", LEVEL_COLOUR[lv], q))
    q = f'SELECT "message", "hazard_group" FROM "hq_stage" WHERE {EX} AND $timeFilter'
    out.append(_annotation("HQ stage (비상단계)", "purple", q, tags="hazard_group"))
    return Annotations(list=out)


def _annotation(name: str, colour: str, q: str, tags: str = "hazard,zone") -> Annotation:
    return Annotation(
        name=name,
        icon_color=colour,
        datasource=DATASOURCE,
        enable=True,
        hide=False,
        query=q,
        text_column="message",
        tags_column=tags,
        target={
            "refId": "Anno",
            "query": q,
            "rawQuery": True,
            "resultFormat": "table",
            "textColumn": "message",
            "tagsColumn": tags,
            "fromAnnotations": True,
        },
    )


def _annotation_expects(annotations: Annotations) -> dict[tuple[int, str], Expect]:
    return {
        (0, a.name): Expect(
            columns=("time", *(c for c in [a.text_column, *a.tags_column.split(",")]))
        )
        for a in annotations.list
    }


def _dashboard(uid: str, title: str, description: str, b: _Builder) -> Built:
    annotations = _annotations()
    d = Dashboard(
        uid=uid,
        title=title,
        description=description,
        tags=["gyeongbo", "경보"],
        timezone="browser",
        editable=False,
        graph_tooltip=1,
        refresh="30s",
        schema_version=SCHEMA_VERSION,
        version=1,
        time=TimeRange(from_="now-6h", to="now"),
        templating=Templating(list=[_exercise_variable()]),
        annotations=annotations,
        panels=b.panels,
        links=[
            {
                "title": "Gyeongbo",
                "type": "dashboards",
                "tags": ["gyeongbo"],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
            }
        ],
    )
    return Built(dashboard=d, expects={**b.expects, **_annotation_expects(annotations)})


def _gauge_title(st: Station) -> str:
    return f"{st.name} {st.name_en} ({st.id})"


def _in(ids: list[str]) -> str:
    return "/^(" + "|".join(ids) + ")$/"


# -- the dashboards ---------------------------------------------------------------------------
def situation(registry: Registry) -> Built:
    """The situation dashboard (see the module docstring), a row per hazard."""
    b = _Builder()
    stations = [registry.stations[s] for s in registry.station_ids()]
    by_kind = {k: [s for s in stations if s.kind is k] for k in Kind}
    _alert_panels(b)
    _water_panels(b, by_kind[Kind.WATER_LEVEL])
    _rain_panels(b)
    _air_panels(b)
    _structure_panels(b, by_kind[Kind.STRUCTURAL])
    _seismic_panels(b)
    return _dashboard(
        "gyeongbo-situation",
        "Gyeongbo · 상황판 Situation",
        "Live levels against their official lines, alerts and stages (generated by "
        "`python -m dashboards`; do not edit by hand).",
        b,
    )


def _alert_panels(b: _Builder) -> None:
    """Alerts, stages and detections: the station map, active alerts, the headquarters' stage,
    the alert history and recent detections."""
    b.row("Alerts · 경보")
    _stage_map(b)
    _alert_state(b)
    _alert_logs(b)


def _stage_map(b: _Builder) -> None:
    """Every station on a map, coloured by the highest current stage of its public rules."""
    b.panel(
        "geomap",
        "Stations by stage",
        12,
        14,
        [
            (
                'SELECT last("lat") AS "lat", last("lon") AS "lon", last("name_en") AS "name" '
                f'FROM "station" WHERE {STATE_WINDOW} GROUP BY "station", "kind"',
                Expect(("time", "lat", "lon", "name"), ("kind", "station")),
            ),
            (
                'SELECT max("level_num") AS "stage", last("lat") AS "lat", last("lon") AS "lon" '
                'FROM (SELECT last("level_num") AS "level_num", last("lat") AS "lat", '
                'last("lon") AS "lon" FROM "detection" '
                f"WHERE \"public\" = 'true' AND {EX} AND {STATE_WINDOW} "
                'GROUP BY "station", "rule") GROUP BY "station"',
                Expect(("time", "stage", "lat", "lon"), ("station",)),
            ),
        ],
        table=True,
        defaults=FieldDefaults(
            thresholds=_stage_thresholds(),
            color={"mode": "thresholds"},
            mappings=_stage_mappings(),
        ),
        description="Every station (grey); stations with a public detection coloured by the "
        "highest current stage of their rules (관심 blue, 주의 yellow, 경계 orange, 심각 red).",
        options={
            "view": {"id": "coords", "lat": 37.55, "lon": 126.99, "zoom": 10},
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
            "basemap": {"type": "default", "name": "Basemap"},
            "tooltip": {"mode": "details"},
            "layers": [
                _markers_layer("Stations", "A", {"fixed": "text"}, 5),
                _markers_layer("Stage", "B", {"field": "stage", "fixed": "green"}, 10),
            ],
        },
    )


def _alert_state(b: _Builder) -> None:
    """The alerts in force (hazard × zone) and the headquarters' stage."""
    b.panel(
        "table",
        "Active alerts",
        12,
        7,
        [
            (
                'SELECT "level_num", "level_ko", "message" FROM (SELECT last("level_num") AS '
                '"level_num", last("level_ko") AS "level_ko", last("message") AS "message" '
                f'FROM "alert" WHERE {EX} AND {STATE_WINDOW} GROUP BY "hazard", "zone") '
                'WHERE "level_num" > 0 GROUP BY "hazard", "zone"',
                Expect(("time", "level_num", "level_ko", "message"), ("hazard", "zone")),
            )
        ],
        table=True,
        defaults=FieldDefaults(
            mappings=_stage_mappings(),
            thresholds=_stage_thresholds(),
            custom={"cellOptions": {"type": "auto"}},
        ),
        overrides=[
            {
                "matcher": {"id": "byName", "options": "level_num"},
                "properties": [
                    {"id": "displayName", "value": "stage"},
                    {"id": "custom.cellOptions", "value": {"type": "color-background"}},
                ],
            }
        ],
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"time": True}}},
        ],
        description="Latest state of every alert (hazard × zone) that is not cleared, with "
        "its last transition or operator action.",
    )
    b.panel(
        "stat",
        "Headquarters stage (비상단계)",
        12,
        7,
        [
            (
                'SELECT last("stage") AS "stage" FROM "hq_stage" '
                f'WHERE {EX} AND {STATE_WINDOW} GROUP BY "hazard_group"',
                Expect(("time", "stage"), ("hazard_group",)),
            )
        ],
        alias="$tag_hazard_group",
        defaults=FieldDefaults(
            thresholds=_thresholds("green", (1.0, "yellow"), (2.0, "orange"), (3.0, "red")),
            color={"mode": "thresholds"},
            mappings=[
                {
                    "type": "value",
                    "options": {
                        str(n): {"text": f"비상 {n}단계" if n else "평시", "index": n}
                        for n in range(4)
                    },
                }
            ],
        ),
        options={
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
        },
    )


def _alert_logs(b: _Builder) -> None:
    """The alert history and the recent detections, newest first."""
    b.panel(
        "table",
        "Alert history",
        12,
        9,
        [
            (
                'SELECT "hazard", "zone", "level_ko", "action", "message", "stations" '
                f'FROM "alert" WHERE {EX} AND $timeFilter ORDER BY time DESC LIMIT 500',
                Expect(("time", "hazard", "zone", "level_ko", "action", "message", "stations")),
            )
        ],
        table=True,
        description="Every transition and operator action in the time range, newest first.",
    )
    b.panel(
        "table",
        "Recent detections",
        12,
        9,
        [
            (
                'SELECT "station", "hazard", "level", "rule", "value", "threshold" '
                f'FROM "detection" WHERE "level" != \'cleared\' AND {EX} AND $timeFilter '
                "ORDER BY time DESC LIMIT 300",
                Expect(("time", "station", "hazard", "level", "rule", "value", "threshold")),
            )
        ],
        table=True,
        description="What the rules and detectors concluded per station (public and "
        "operators-only), newest first.",
    )


def _water_panels(b: _Builder, gauges: list[Station]) -> None:
    """Water level per gauge with its official stage lines; gauges without stages together."""
    b.row("Water level · 수위")
    staged = [s for s in gauges if s.levels is not None]
    for st in staged:
        lv = st.levels
        assert lv is not None
        steps = [
            (lv.caution, LEVEL_COLOUR[Level.CAUTION]),
            (lv.alert, LEVEL_COLOUR[Level.ALERT]),
            (lv.serious, LEVEL_COLOUR[Level.SERIOUS]),
        ]
        if lv.attention is not None:
            steps.insert(0, (lv.attention, LEVEL_COLOUR[Level.ATTENTION]))
        b.panel(
            "timeseries",
            f"{_gauge_title(st)} water level",
            12,
            8,
            [
                (
                    'SELECT mean("level_m") AS "level_m" FROM "reading" '
                    f"WHERE \"station\" = '{st.id}' AND {EX} AND $timeFilter "
                    "GROUP BY time($__interval) fill(none)",
                    Expect(("time", "level_m")),
                )
            ],
            alias="수위 level",
            defaults=_lines("lengthm", _thresholds("green", *steps), axisSoftMax=lv.serious + 0.5),
            options=_legend(),
            description="Stage lines (HRFCO): "
            + ", ".join(
                f"{Level[n.upper()].ko} {v} m"
                for n, v in (
                    ("attention", lv.attention),
                    ("caution", lv.caution),
                    ("alert", lv.alert),
                    ("serious", lv.serious),
                )
                if v is not None
            )
            + (f". Source: {lv.source}" if lv.source else ""),
        )
    others = [s.id for s in gauges if s.levels is None]
    if others:
        b.panel(
            "timeseries",
            "Other gauges (no official stages)",
            12 if len(staged) % 2 else 24,
            8,
            [
                (
                    'SELECT mean("level_m") AS "level_m" FROM "reading" '
                    f'WHERE "station" =~ {_in(others)} AND {EX} AND $timeFilter '
                    'GROUP BY time($__interval), "station" fill(none)',
                    Expect(("time", "level_m"), ("station",)),
                )
            ],
            alias="$tag_station",
            defaults=FieldDefaults(unit="lengthm"),
            options=_legend(),
            description="Gauges that feed forecasts and anomaly detection but have no "
            "published stage levels.",
        )


def _rain_panels(b: _Builder) -> None:
    """Rainfall per interval and the KMA heavy-rain sums over 3 h and 12 h."""
    b.row("Rain · 강우")
    b.panel(
        "timeseries",
        "Rainfall per interval",
        12,
        8,
        [
            (
                'SELECT sum("rain_mm") AS "rain_mm" FROM "reading" '
                f"WHERE \"kind\" = 'rainfall' AND {EX} AND $timeFilter "
                'GROUP BY time($__interval), "station" fill(0)',
                Expect(("time", "rain_mm"), ("station",)),
            )
        ],
        alias="$tag_station",
        defaults=FieldDefaults(unit="lengthmm", custom={"drawStyle": "bars", "fillOpacity": 80}),
        options=_legend(),
    )
    for hours, (watch, warning) in ((3, (60.0, 90.0)), (12, (110.0, 180.0))):
        b.panel(
            "bargauge",
            f"Rain, last {hours} h (호우주의보 {watch:g} / 호우경보 {warning:g} mm)",
            6,
            8,
            [
                (
                    f'SELECT sum("rain_mm") AS "rain_{hours}h" FROM "reading" '
                    f"WHERE \"kind\" = 'rainfall' AND {EX} AND time > now() - {hours}h "
                    'GROUP BY "station"',
                    Expect(("time", f"rain_{hours}h"), ("station",)),
                )
            ],
            alias="$tag_station",
            defaults=FieldDefaults(
                unit="lengthmm",
                min=0.0,
                max=warning * 1.2,
                color={"mode": "thresholds"},
                thresholds=_thresholds("green", (watch, "yellow"), (warning, "orange")),
            ),
            options={
                "orientation": "horizontal",
                "displayMode": "gradient",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "showUnfilled": True,
            },
            description=f"KMA heavy-rain criteria over {hours} h: 주의보 ≥ {watch:g} mm, "
            f"경보 ≥ {warning:g} mm.",
        )


def _air_panels(b: _Builder) -> None:
    """PM10, PM2.5 and O₃ hourly means against the Annex 7 lines."""
    b.row("Air quality · 대기질 (hourly means)")
    for field_, title, unit, aq_lines in (
        (
            "pm10_ugm3",
            "PM10 (주의보 150 / 경보 300 µg/m³)",
            "conµgm3",
            ((150.0, "yellow"), (300.0, "orange")),
        ),
        (
            "pm25_ugm3",
            "PM2.5 (주의보 75 / 경보 150 µg/m³)",
            "conµgm3",
            ((75.0, "yellow"), (150.0, "orange")),
        ),
        (
            "o3_ppm",
            "O₃ (주의보 0.12 / 경보 0.3 / 중대경보 0.5 ppm)",
            "ppm",
            ((0.12, "yellow"), (0.3, "orange"), (0.5, "red")),
        ),
    ):
        b.panel(
            "timeseries",
            title,
            8,
            8,
            [
                (
                    f'SELECT mean("{field_}") AS "{field_}" FROM "reading" '
                    f"WHERE \"kind\" = 'air_quality' AND {EX} AND $timeFilter "
                    'GROUP BY time($__interval), "station" fill(none)',
                    Expect(("time", field_), ("station",)),
                )
            ],
            alias="$tag_station",
            interval="1h",
            defaults=_lines(unit, _thresholds("green", *aq_lines)),
            options=_legend(),
            description="Air Quality Conservation Act, Enforcement Rule Annex 7 (alerts need "
            "the hourly mean over the line for 2 h for PM; O₃ on the 1 h mean).",
        )


def _structure_panels(b: _Builder, monitors: list[Station]) -> None:
    """Each structural monitor's channels as % of its allowable (60/80/100 % lines)."""
    b.row("Structures · 구조물 (% of allowable)")
    for st in monitors:
        allow = st.allowable or {}
        cols: list[str] = []
        sel: list[str] = []
        for ch, a in allow.items():
            k = 100.0 / a
            if ch == "tilt_rad":
                sel += [
                    f'max("tilt_rad") * {k:g} AS "tilt (+)"',
                    f'min("tilt_rad") * {-k:g} AS "tilt (-)"',
                ]
                cols += ["tilt (+)", "tilt (-)"]
            else:
                name = ch.split("_")[0]
                sel.append(f'max("{ch}") * {k:g} AS "{name}"')
                cols.append(name)
        b.panel(
            "timeseries",
            f"{st.name_en} ({st.id})",
            8,
            8,
            [
                (
                    f'SELECT {", ".join(sel)} FROM "reading" '
                    f"WHERE \"station\" = '{st.id}' AND {EX} AND $timeFilter "
                    "GROUP BY time($__interval) fill(none)",
                    Expect(("time", *cols)),
                )
            ],
            defaults=_lines(
                "percent",
                _thresholds("green", (60.0, "yellow"), (80.0, "orange"), (100.0, "red")),
                axisSoftMax=110,
            ),
            options=_legend(),
            description="관리기준 1차/2차/3차 = 60/80/100 % of the allowable: "
            + ", ".join(f"{ch} {a:g}" for ch, a in allow.items()),
        )


def _seismic_panels(b: _Builder) -> None:
    """Peak ground acceleration per accelerometer."""
    b.row("Seismic · 지진")
    b.panel(
        "timeseries",
        "Peak ground acceleration",
        24,
        7,
        [
            (
                'SELECT max("pga_g") AS "pga_g" FROM "reading" '
                f"WHERE \"kind\" = 'seismic' AND {EX} AND $timeFilter "
                'GROUP BY time($__interval), "station" fill(none)',
                Expect(("time", "pga_g"), ("station",)),
            )
        ],
        alias="$tag_station",
        defaults=FieldDefaults(unit="accG"),
        options=_legend(),
    )


def _markers_layer(name: str, ref: str, colour: dict[str, str], size: int) -> dict[str, Any]:
    return {
        "type": "markers",
        "name": name,
        "config": {
            "showLegend": ref == "B",
            "style": {
                "color": colour,
                "size": {"fixed": size},
                "symbol": {"fixed": "img/icons/marker/circle.svg", "mode": "fixed"},
                "opacity": 0.9,
            },
        },
        "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"},
        "filterData": {"id": "byRefId", "options": ref},
        "tooltip": True,
    }


def operations() -> Built:
    """The operations dashboard (see the module docstring), a row per concern."""
    b = _Builder()
    _health_panels(b)
    _reminder_panels(b)
    _sms_panels(b)
    _pipeline_panels(b)
    return _dashboard(
        "gyeongbo-operations",
        "Gyeongbo · 운영 Operations",
        "Sensor health and the pipeline itself (generated by `python -m dashboards`; do not "
        "edit by hand).",
        b,
    )


def _health_panels(b: _Builder) -> None:
    """Open sensor faults and fault changes (operators only)."""
    b.row("Sensor health · 센서 상태 (operators only)")
    b.panel(
        "table",
        "Open sensor faults",
        12,
        8,
        [
            (
                'SELECT "severity_num", "faults", "value" FROM (SELECT last("severity_num") AS '
                '"severity_num", last("faults") AS "faults", last("value") AS "value" '
                f'FROM "sensor_health" WHERE {EX} AND {STATE_WINDOW} GROUP BY "station", '
                '"check") WHERE "severity_num" > 0 GROUP BY "station", "check"',
                Expect(("time", "severity_num", "faults", "value"), ("check", "station")),
            )
        ],
        table=True,
        defaults=FieldDefaults(mappings=_severity_mappings()),
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"time": True}}},
        ],
        description="Stations whose latest health check is not cleared: silent (deadman), "
        "flat-lined, stuck or out of range (critical: held out of public stages), or a dropped "
        "implausible reading (warning). Operators' severities, never a public stage.",
    )
    b.panel(
        "timeseries",
        "Sensor faults raised",
        12,
        8,
        [
            (
                'SELECT count("severity_num") AS "faults" FROM "sensor_health" '
                f'WHERE "severity_num" > 0 AND {EX} AND $timeFilter '
                'GROUP BY time($__interval), "check" fill(none)',
                Expect(("time", "faults"), ("check",)),
            )
        ],
        alias="$tag_check",
        defaults=FieldDefaults(unit="short", custom={"drawStyle": "bars", "fillOpacity": 80}),
        options=_legend(),
    )
    b.panel(
        "table",
        "Data-quality alerts",
        24,
        8,
        [
            (
                'SELECT "zone", "severity_num", "action", "message", "stations", "checks" '
                f'FROM "dq_alert" WHERE {EX} AND $timeFilter ORDER BY time DESC LIMIT 500',
                Expect(("time", "zone", "severity_num", "action", "message", "stations", "checks")),
            )
        ],
        table=True,
        defaults=FieldDefaults(mappings=_severity_mappings()),
        description="Operators' data-quality alerts per zone (topic dq.alerts): which stations "
        "are held out of the zone's public stages and which checks they fail. They never "
        "reach SMS, CAP or the headquarters stages.",
    )


def _reminder_panels(b: _Builder) -> None:
    """Reminders of alerts nobody acknowledged (operators only)."""
    b.row("Unacknowledged alerts · 미확인 경보 (operators only)")
    b.panel(
        "table",
        "Reminders: alerts nobody acknowledged",
        24,
        8,
        [
            (
                'SELECT "hazard", "zone", "level", "n", "message" '
                f'FROM "alert_reminder" WHERE {EX} AND $timeFilter ORDER BY time DESC LIMIT 500',
                Expect(("time", "hazard", "zone", "level", "n", "message")),
            )
        ],
        table=True,
        description="Each reminder of an alert (or data-quality alert) still unacknowledged "
        "its hazard's repeat period after operators were last told of it (topic "
        "alerts.reminders; n = reminders since its raise or latest rise). Acknowledge with "
        "`gyeongbo alerts ack`. Never sent to residents.",
    )


def _sms_panels(b: _Builder) -> None:
    """SMS delivery per hazard event."""
    b.row("SMS delivery · 문자 발송")
    b.panel(
        "table",
        "SMS per event: submitted, delivered, failed, opted out",
        24,
        8,
        [
            (
                'SELECT last("recipients") AS "recipients", last("submitted") AS "submitted", '
                'last("delivered") AS "delivered", last("undelivered") AS "undelivered", '
                'last("failed") AS "failed", last("permanent") AS "permanent", '
                'last("opted_out") AS "opted_out", last("planned") AS "pending", '
                'last("fanout_s") AS "fanout_s" '
                f'FROM "delivery" WHERE {EX} AND $timeFilter GROUP BY "event", "hazard"',
                Expect(
                    (
                        "time",
                        "recipients",
                        "submitted",
                        "delivered",
                        "undelivered",
                        "failed",
                        "permanent",
                        "opted_out",
                        "pending",
                        "fanout_s",
                    ),
                    ("event", "hazard"),
                ),
            )
        ],
        table=True,
        transformations=[
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"time": True}}},
        ],
        description="One row per hazard event (docs/design.md §5): people reached, messages "
        "submitted to Twilio, delivered / undelivered / failed by its status callbacks, "
        "refused as permanent (invalid or landline numbers), opted out (replied STOP), still "
        "pending, and seconds from the first message planned to the last submitted.",
    )


def _pipeline_panels(b: _Builder) -> None:
    """Lag and throughput per component, rejected readings, detections and alerts, and
    the InfluxDB sink's own counters."""
    b.row("Pipeline · 처리 파이프라인")
    b.panel(
        "timeseries",
        "Lag: event time → processed",
        12,
        8,
        [
            (
                'SELECT max("lag_ms_p99") AS "p99", max("lag_ms_p50") AS "p50" FROM "pipeline" '
                'WHERE $timeFilter GROUP BY time($__interval), "component", "instance" '
                "fill(none)",
                Expect(("time", "p99", "p50"), ("component", "instance")),
            )
        ],
        alias="$tag_component $tag_instance $col",
        defaults=_lines("ms", _thresholds("green", (1000.0, "red"))),
        options=_legend(),
        description="Target: reading published → alert transition p99 < 1 s (docs/design.md §8).",
    )
    b.panel(
        "timeseries",
        "Throughput (readings/s)",
        12,
        8,
        [
            (
                'SELECT non_negative_derivative(max("readings_total"), 1s) AS "readings/s" '
                'FROM "pipeline" WHERE $timeFilter '
                'GROUP BY time($__interval), "component", "instance" fill(none)',
                Expect(("time", "readings/s"), ("component", "instance")),
            )
        ],
        alias="$tag_component $tag_instance",
        defaults=FieldDefaults(unit="reqps"),
        options=_legend(),
    )
    _rate_panels(b)


def _rate_panels(b: _Builder) -> None:
    """Rates of rejected readings, detections, alerts and the sink's lines; the sink's buffer."""
    healthy_influx = (
        "a healthy InfluxDB takes every line at once; lines are retried or dropped only "
        "while it fails (tests/test_influx_sink.py stops it)"
    )
    rate_panels: tuple[tuple[str, tuple[str, ...], dict[str, str]], ...] = (
        (
            "Rejected readings, detections and alerts (/s)",
            ("rejected_total", "detections_total", "alerts_total"),
            {},
        ),
        (
            "InfluxDB sink (lines/s)",
            ("influx_written_total", "influx_dropped_total", "influx_retries_total"),
            {"influx_dropped_total": healthy_influx, "influx_retries_total": healthy_influx},
        ),
    )
    for title, fields, quiet in rate_panels:
        b.panel(
            "timeseries",
            title,
            8,
            8,
            [
                (
                    "SELECT "
                    + ", ".join(
                        f'non_negative_derivative(max("{f}"), 1s) AS "{f.removesuffix("_total")}"'
                        for f in fields
                    )
                    + ' FROM "pipeline" WHERE $timeFilter '
                    'GROUP BY time($__interval), "component", "instance" fill(none)',
                    Expect(
                        ("time", *(f.removesuffix("_total") for f in fields)),
                        ("component", "instance"),
                        quiet={f.removesuffix("_total"): why for f, why in quiet.items()},
                    ),
                )
            ],
            alias="$tag_component $tag_instance $col",
            defaults=FieldDefaults(unit="short"),
            options=_legend(),
        )
    b.panel(
        "timeseries",
        "InfluxDB sink buffer (lines)",
        8,
        8,
        [
            (
                'SELECT max("influx_buffered") AS "buffered" FROM "pipeline" WHERE $timeFilter '
                'GROUP BY time($__interval), "component", "instance" fill(none)',
                Expect(("time", "buffered"), ("component", "instance")),
            )
        ],
        alias="$tag_component $tag_instance",
        defaults=FieldDefaults(unit="short"),
        options=_legend(),
        description="Lines waiting for InfluxDB; when the bound is reached the oldest are "
        "dropped (counted above as dropped).",
    )


def build_all(registry: Registry) -> list[Built]:
    return [situation(registry), operations()]
