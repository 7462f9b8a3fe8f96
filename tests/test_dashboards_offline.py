"""Offline checks of the generated Grafana dashboards and their provisioning.

The checks are functions returning the problems they find, so each is also shown to catch a
broken dashboard (a check that cannot fail proves nothing).
"""

from __future__ import annotations

import copy
import doctest
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from dashboards import build, model
from dashboards.gyeongbo import build_all
from dashboards.model import decode_dashboard, encode_dashboard
from gyeongbo.registry import REPO_ROOT, load_registry
from gyeongbo.vocab import LEVEL_COLOUR, Level

DASH_DIR = REPO_ROOT / "dashboards"
JSON_FILES = sorted((DASH_DIR / "json").glob("*.json"))
PROVISIONING = DASH_DIR / "provisioning"
REGISTRY = load_registry(REPO_ROOT / "config" / "stations.yaml")

#: Grafana's own variables (and the InfluxQL ``$timeFilter`` macro).
BUILTIN_VARIABLES = {
    "timeFilter",
    "__interval",
    "__interval_ms",
    "__rate_interval",
    "__range",
    "__range_s",
    "__range_ms",
    "__from",
    "__to",
    "__dashboard",
    "__org",
    "__user",
}
_VAR_REF = re.compile(r"\$\{(\w+)(?::[\w:]+)?\}|\[\[(\w+)\]\]|\$(\w+)")


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def all_panels(dash: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in dash["panels"]:
        yield p
        yield from p.get("panels", [])


def queries(dash: dict[str, Any]) -> Iterator[str]:
    for p in all_panels(dash):
        for t in p.get("targets", []):
            yield t["query"]
    for a in dash["annotations"]["list"]:
        yield a["query"]
        yield a["target"]["query"]


def walk(obj: Any, key: str) -> Iterator[Any]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(obj, list):
        for v in obj:
            yield from walk(v, key)


def provisioned_datasources() -> dict[str, dict[str, Any]]:
    out = {}
    for f in (PROVISIONING / "datasources").glob("*.yaml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            out[ds["uid"]] = ds
    return out


# -- the checks -------------------------------------------------------------------------------
def id_problems(dash: dict[str, Any]) -> list[str]:
    ids = [p["id"] for p in all_panels(dash)]
    return [f"panel id {i} used {ids.count(i)} times" for i in sorted(set(ids)) if ids.count(i) > 1]


def grid_problems(dash: dict[str, Any]) -> list[str]:
    problems = []
    boxes: list[tuple[int, dict[str, int]]] = []
    for p in dash["panels"]:
        g = p["gridPos"]
        if g["x"] < 0 or g["y"] < 0 or g["w"] < 1 or g["h"] < 1 or g["x"] + g["w"] > 24:
            problems.append(f"panel {p['id']} gridPos {g} is outside the 24-column grid")
        for q, h in boxes:
            if (
                g["x"] < h["x"] + h["w"]
                and h["x"] < g["x"] + g["w"]
                and g["y"] < h["y"] + h["h"]
                and h["y"] < g["y"] + g["h"]
            ):
                problems.append(f"panels {q} and {p['id']} overlap")
        boxes.append((p["id"], g))
    return problems


def datasource_problems(dash: dict[str, Any], provisioned: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for ref in walk(dash, "datasource"):
        ds = provisioned.get(ref.get("uid"))
        if ds is None:
            problems.append(f"datasource uid {ref.get('uid')!r} is not provisioned")
        elif ds["type"] != ref.get("type"):
            problems.append(f"datasource {ref['uid']!r} is {ds['type']}, not {ref.get('type')}")
    return problems


def variable_problems(dash: dict[str, Any]) -> list[str]:
    defined = {v["name"] for v in dash["templating"]["list"]}
    used = set()
    for q in queries(dash):
        for m in _VAR_REF.finditer(q):
            used.add(next(g for g in m.groups() if g))
    problems = [
        f"query uses undefined variable ${n}" for n in sorted(used - defined - BUILTIN_VARIABLES)
    ]
    problems += [f"variable ${n} is defined but never used" for n in sorted(defined - used)]
    return problems


def check(dash: dict[str, Any]) -> list[str]:
    return (
        id_problems(dash)
        + grid_problems(dash)
        + datasource_problems(dash, provisioned_datasources())
        + variable_problems(dash)
    )


# -- tests ------------------------------------------------------------------------------------
def test_builder_doctests() -> None:
    assert doctest.testmod(model).failed == 0


def test_committed_json_is_what_the_code_generates() -> None:
    assert [p.name for p in JSON_FILES] == sorted(b.filename for b in build_all(REGISTRY))
    assert build.main(["--check"]) == 0


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_json_round_trips_through_the_builder_types(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    dash = decode_dashboard(text)
    assert encode_dashboard(dash) == text
    assert msgspec.to_builtins(dash) == json.loads(text)


def test_the_strict_decoder_rejects_unknown_keys_and_wrong_types() -> None:
    data = load(JSON_FILES[0])
    bad = copy.deepcopy(data)
    bad["panels"][1]["gridpos"] = bad["panels"][1].pop("gridPos")
    with pytest.raises(msgspec.ValidationError, match="unknown field `gridpos`"):
        decode_dashboard(json.dumps(bad))
    bad = copy.deepcopy(data)
    bad["panels"][1]["targets"][0]["rawQuery"] = "yes"
    with pytest.raises(msgspec.ValidationError, match="rawQuery"):
        decode_dashboard(json.dumps(bad))


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.name)
def test_dashboard_is_consistent(path: Path) -> None:
    dash = load(path)
    assert check(dash) == []
    assert dash["uid"] == path.stem
    # InfluxQL only, raw text, one datasource.
    for p in all_panels(dash):
        for t in p.get("targets", []):
            assert t["rawQuery"] is True and t["query"].startswith("SELECT ")
            assert "from(bucket" not in t["query"]


def test_the_checks_catch_broken_dashboards() -> None:
    dash = load(JSON_FILES[0])
    broken = copy.deepcopy(dash)
    broken["panels"][2]["id"] = broken["panels"][1]["id"]
    assert id_problems(broken) == [f"panel id {dash['panels'][1]['id']} used 2 times"]
    broken = copy.deepcopy(dash)
    broken["panels"][2]["gridPos"] = dict(broken["panels"][1]["gridPos"], x=6)
    assert any("overlap" in p for p in grid_problems(broken))
    broken["panels"][3]["gridPos"]["x"] = 20
    assert any("outside the 24-column grid" in p for p in grid_problems(broken))
    broken = copy.deepcopy(dash)
    broken["panels"][1]["targets"][0]["datasource"]["uid"] = "nope"
    assert datasource_problems(broken, provisioned_datasources()) == [
        "datasource uid 'nope' is not provisioned"
    ]
    broken = copy.deepcopy(dash)
    broken["panels"][1]["targets"][0]["query"] += " AND \"zone\" = '${zone}'"
    assert variable_problems(broken) == ["query uses undefined variable $zone"]
    broken["templating"]["list"].append(dict(broken["templating"]["list"][0], name="unused"))
    assert "variable $unused is defined but never used" in variable_problems(broken)


def test_every_dashboard_has_the_drill_toggle_and_alert_annotations() -> None:
    for path in JSON_FILES:
        dash = load(path)
        (var,) = dash["templating"]["list"]
        assert var["name"] == "exercise"
        assert {o["value"] for o in var["options"]} == {"false", "true"}
        assert var["current"]["value"] == "false"  # live by default
        names = [a["name"] for a in dash["annotations"]["list"]]
        colours = {a["iconColor"] for a in dash["annotations"]["list"]}
        assert len([n for n in names if n.startswith("Alert → ")]) == len(Level)
        assert set(LEVEL_COLOUR.values()) <= colours


def test_water_level_panels_draw_the_registry_stage_lines() -> None:
    dash = load(DASH_DIR / "json" / "gyeongbo-situation.json")
    staged = [s for s in REGISTRY.stations.values() if s.levels is not None]
    assert staged
    for st in staged:
        (panel,) = [p for p in dash["panels"] if p["title"].endswith(f"({st.id}) water level")]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert st.levels is not None
        want = [st.levels.attention, st.levels.caution, st.levels.alert, st.levels.serious]
        assert [s["value"] for s in steps[1:]] == [v for v in want if v is not None]
        assert [s["color"] for s in steps] == ["green", "blue", "yellow", "orange", "red"]
        assert f"\"station\" = '{st.id}'" in panel["targets"][0]["query"]
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] != "off"


def test_air_quality_and_structural_lines() -> None:
    dash = load(DASH_DIR / "json" / "gyeongbo-situation.json")

    def steps_of(title_start: str) -> list[list[float]]:
        return [
            [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
            for p in dash["panels"]
            if p["title"].startswith(title_start)
        ]

    assert steps_of("PM10") == [[150, 300]]
    assert steps_of("PM2.5") == [[75, 150]]
    assert steps_of("O₃") == [[0.12, 0.3, 0.5]]
    structural = [s for s in REGISTRY.stations.values() if s.allowable]
    for st in structural:
        (p,) = [p for p in dash["panels"] if p["title"] == f"{st.name_en} ({st.id})"]
        assert [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]] == [
            60,
            80,
            100,
        ]
        assert p["fieldConfig"]["defaults"]["unit"] == "percent"
        assert st.allowable is not None
        # crack as % of this structure's allowable
        assert (
            f'max("crack_mm") * {100 / st.allowable["crack_mm"]:g} AS "crack"'
            in (p["targets"][0]["query"])
        )


def test_geomap_colours_stations_by_stage() -> None:
    dash = load(DASH_DIR / "json" / "gyeongbo-situation.json")
    (geo,) = [p for p in dash["panels"] if p["type"] == "geomap"]
    refs = {t["refId"] for t in geo["targets"]}
    layers = geo["options"]["layers"]
    assert {layer["filterData"]["options"] for layer in layers} == refs
    stage = [layer for layer in layers if layer["config"]["style"]["color"].get("field") == "stage"]
    assert len(stage) == 1
    steps = geo["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["color"] for s in steps] == [LEVEL_COLOUR[lv] for lv in Level]


def test_provisioning_files() -> None:
    (ds,) = provisioned_datasources().values()
    assert ds["uid"] == model.DATASOURCE.uid and ds["type"] == "influxdb"
    assert ds["url"] == "http://influxdb:8086"
    assert ds["jsonData"]["dbName"] == "gyeongbo" and ds["jsonData"]["version"] == "InfluxQL"
    assert ds["jsonData"]["httpHeaderName1"] == "Authorization"
    # the read-only token influx-init hands over as a file (tests/test_compose.py)
    assert (
        ds["secureJsonData"]["httpHeaderValue1"]
        == "Token $__file{/run/gyeongbo/influx/grafana.token}"
    )
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "gyeongbo.yaml").read_text())[
        "providers"
    ]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/gyeongbo"
