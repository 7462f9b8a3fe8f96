"""Scenario files: every shipped one validates; a broken one names its bad entry."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import REPO_ROOT
from simulators.scenario import (
    SCENARIO_DIR,
    ScenarioError,
    apply_overlay,
    check_against_registry,
    list_scenarios,
    load_checked,
    load_scenario,
    parse_duration,
    parse_scenario,
)

SHIPPED = sorted(p.stem for p in list_scenarios(SCENARIO_DIR))


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def test_the_five_scenario_files_ship() -> None:
    assert SHIPPED == [
        "gyeongju-earthquake",
        "han-river-flood",
        "sensor-faults",
        "seongsu-bridge-damage",
        "seoul-fine-dust",
    ]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_validates_against_the_registry(name: str, reg: Registry) -> None:
    sc = load_scenario(SCENARIO_DIR / f"{name}.yaml")
    check_against_registry(sc, reg)
    assert sc.name == name
    assert sc.stations
    if not sc.is_overlay:
        assert sc.duration_s > 0 and sc.expect


@pytest.mark.parametrize("base", ["han-river-flood", "seoul-fine-dust", "seongsu-bridge-damage"])
def test_the_faults_overlay_applies_to_scenarios_of_three_hours_or_more(
    base: str, reg: Registry
) -> None:
    sc = load_checked(base, reg, overlays=["sensor-faults"])
    assert sc.overlays == ["sensor-faults"]
    assert {f.type for f in sc.faults} == {
        "stuck",
        "dropout",
        "spikes",
        "clock_skew",
        "duplicates",
        "malformed",
    }
    # stations the scenario already has keep the scenario's signal
    plain = load_checked(base, reg)
    for st in plain.stations:
        assert next(s for s in sc.stations if s.station == st.station) == st
    assert len(set(sc.station_ids())) == len(sc.station_ids())


def test_the_overlay_refuses_a_scenario_too_short_for_it(reg: Registry) -> None:
    with pytest.raises(ScenarioError, match=r"needs a scenario of at least 10800s"):
        load_checked("gyeongju-earthquake", reg, overlays=["sensor-faults"])


def test_an_overlay_is_not_a_scenario(reg: Registry) -> None:
    with pytest.raises(ScenarioError, match="faults overlay"):
        load_checked("sensor-faults", reg)


def test_unknown_scenario_name_lists_the_known_ones(reg: Registry) -> None:
    with pytest.raises(ScenarioError, match=r"no scenario named 'flod'.*han-river-flood"):
        load_checked("flod", reg)


def test_flood_models_the_2020_figures_at_hangang_bridge(reg: Registry) -> None:
    sc = load_checked("han-river-flood", reg)
    wave = dict(sc.curves["hangang"])
    assert wave[4 * 3600 + 50 * 60] == 8.36  # 10:50
    assert wave[8 * 3600 + 40 * 60] == 8.73  # 14:40
    assert 10.9 <= max(wave.values()) <= 11.1
    zones = {(e.zone, e.level) for e in sc.expect}
    for z in ("11030", "11200"):
        assert {(z, "caution"), (z, "alert"), (z, "attention")} <= zones
    lags = {s.station: s.shift for s in sc.stations}
    assert lags["1018640"] < lags["1018662"] < lags["1018680"] < lags["1018683"] == 0


# -- broken scenarios: the error names the entry ----------------------------------------------
def _flood_doc() -> dict[str, Any]:
    doc = yaml.safe_load((SCENARIO_DIR / "han-river-flood.yaml").read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def _problems(doc: dict[str, Any], reg: Registry | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        sc = parse_scenario(doc, path="broken.yaml")
        if reg is not None:
            check_against_registry(sc, reg, path="broken.yaml")
    assert str(info.value).startswith("broken.yaml: ")
    return info.value.problems


def test_unknown_curve_names_the_station_entry() -> None:
    doc = _flood_doc()
    doc["stations"][2]["values"]["level_m"]["curve"] = "hangnag"
    assert _problems(doc) == [
        "stations[2] (station='1018662'): values.level_m: unknown curve 'hangnag' "
        "(curves: hangang, rain)"
    ]


def test_every_bad_entry_is_reported_not_just_the_first() -> None:
    doc = _flood_doc()
    doc["stations"][0]["values"]["level_m"] = {"curve": "hangang", "constant": 3.0}
    doc["expect"][1]["level"] = "red"
    doc["expect"][2]["latest"] = "soon"
    probs = _problems(doc)
    assert len(probs) == 3
    assert probs[0].startswith("stations[0] (station='1018683'): values.level_m: ")
    assert "exactly one of points, curve, constant" in probs[0]
    assert probs[1].startswith("expect[1] (hazard='flood', zone='11030', level='red'): level")
    assert probs[2].startswith(
        "expect[2] (hazard='flood', zone='11030', level='attention'): latest:"
    )
    assert "not a duration: 'soon'" in probs[2]


def test_registry_problems_name_the_entry(reg: Registry) -> None:
    doc = _flood_doc()
    doc["stations"][1]["station"] = "1099999"
    doc["stations"][5]["values"]["depth_ft"] = {"constant": 1.0}
    doc["expect"][0]["zone"] = "99999"
    probs = _problems(doc, reg)
    assert "stations[1] (station='1099999'): not in the station registry" in probs
    assert any(
        p.startswith("stations[5] (station='101'): value(s) ['depth_ft'] are not rainfall values")
        for p in probs
    )
    assert "expect[0] (zone='99999'): no registry station serves this zone" in probs


def test_fault_problems_name_the_fault() -> None:
    doc = _flood_doc()
    doc["faults"] = [
        {"type": "spikes", "station": "1018683", "times": ["1h"]},
        {"type": "stuck", "station": "1018658"},
        {"type": "clock_skew", "station": "108", "from": "2h", "until": "1h", "skew": "1d"},
    ]
    probs = _problems(doc)
    assert probs[0] == (
        "faults[0] (station='1018683', type='spikes'): spikes need exactly one of 'to' "
        "(absolute) or 'delta'"
    )
    assert probs[1] == (
        "faults[2] (station='108', type='clock_skew'): 'until' (3600s) must be after 'from' (7200s)"
    )
    # the stuck fault is well-formed but on a station the scenario lacks
    doc["faults"] = doc["faults"][1:2]
    assert _problems(doc) == [
        "faults[0] (station='1018658', type='stuck'): station is not one of the scenario's stations"
    ]


def test_expectation_after_the_end_and_top_level_errors() -> None:
    doc = _flood_doc()
    doc["expect"][0]["latest"] = "30h"
    doc["duration"] = "22h"
    assert _problems(doc) == [
        "expect[0] (hazard='flood', zone='11030', level='caution'): latest 108000s is after "
        "the scenario ends (79200s)"
    ]
    doc = _flood_doc()
    doc["name"] = "Han River!"
    doc["extra_key"] = 1
    probs = _problems(doc)
    assert any(p.startswith("name: String should match pattern") for p in probs)
    assert any(p.startswith("extra_key: Extra inputs are not permitted") for p in probs)


def test_a_yaml_syntax_error_and_a_missing_file_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstations: [\n", encoding="utf-8")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")


def test_overlay_fault_on_a_station_nobody_defines(reg: Registry) -> None:
    flood = load_checked("han-river-flood", reg)
    ov = copy.deepcopy(
        yaml.safe_load((SCENARIO_DIR / "sensor-faults.yaml").read_text(encoding="utf-8"))
    )
    ov["faults"].append({"type": "dropout", "station": "SFC-MAPO-P5"})
    with pytest.raises(ScenarioError) as info:
        apply_overlay(flood, parse_scenario(ov))
    assert info.value.problems == [
        "sensor-faults: faults[6] (station='SFC-MAPO-P5', type='dropout'): station is in neither "
        "the scenario nor the overlay"
    ]


@pytest.mark.parametrize(
    ("text", "secs"),
    [
        (90, 90.0),
        ("45s", 45.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("-70m", -4200.0),
        ("1d", 86400.0),
    ],
)
def test_durations(text: object, secs: float) -> None:
    assert parse_duration(text) == secs


@pytest.mark.parametrize("text", ["", "-", "1x", "h", True, None])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
