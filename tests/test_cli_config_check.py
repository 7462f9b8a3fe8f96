"""``gyeongbo config check`` against deliberately broken copies of each configuration file.

Each test copies the shipped file into a temporary folder, breaks one entry, points the
command at the copy and asserts that the output names the file, the entry and what is wrong,
and that the command exits 1. The shipped configuration passes, every file named.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from gyeongbo.settings import REPO_ROOT
from gyeongbo_cli.main import app as cli

CONFIG = REPO_ROOT / "config"


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The check sees only what each test gives it (no GYEONGBO_* from the caller's shell)."""
    for key in list(os.environ):
        if key.startswith("GYEONGBO_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no .env, no .gyeongbo of the caller's


def check(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, ["config", "check", *args], env=env)


def invalid_lines(out: Result) -> list[str]:
    return [line for line in out.output.splitlines() if line.startswith("invalid")]


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_the_shipped_configuration_passes_and_every_file_is_named() -> None:
    out = check()
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    for what in (
        "settings",
        f"stations {CONFIG / 'stations.yaml'}",
        f"zones {CONFIG / 'zones'}",
        "station zones",
        f"templates {CONFIG / 'templates.yaml'}",
        f"recipients {CONFIG / 'recipients.yaml'}",
        "operator tokens",
        "scenarios",
        "dashboards",
    ):
        assert any(line.startswith(f"ok       {what}") for line in lines), (what, out.output)
    assert "every one rendered within 90 characters" in out.output


def test_templates_through_the_setting_every_bad_entry_named(tmp_path: Path) -> None:
    doc = _yaml(CONFIG / "templates.yaml")
    stages = doc["hazards"]
    # a numeric format on {value}, which arrives formatted: the loader itself crashed on it
    stages["flood"]["stages"]["caution"] = stages["flood"]["stages"]["caution"].replace(
        "{value}", "{value:.1f}"
    )
    stages["heavy_rain"]["stages"]["alert"] = "{prefix} Heavy rain {zone 호우경보"  # no '}'
    del stages["pm10"]["stages"]["serious"]
    stages["ozone"]["stages"]["alert"] += " {place}"
    stages["structural"]["stages"]["serious"] = "{prefix} 구조물 붕괴 위험 {zone}"  # no keyword
    stages["pm25"]["stages"]["caution"] += " 외출 자제, 마스크 착용, 창문 닫기, 노약자 실내 대기."
    bad = _write_yaml(tmp_path / "templates.yaml", doc)
    # the setting, as a deployment names the file (the old check said "ok" here)
    out = check(env={"GYEONGBO_PATHS__TEMPLATES": str(bad)})
    assert out.exit_code == 1, out.output
    lines = invalid_lines(out)
    expected = {
        "hazards.flood.stages.caution": "Unknown format code 'f'",
        "hazards.heavy_rain.stages.alert": "cannot be filled in",
        "hazards.pm10.stages.serious": "missing",
        "hazards.ozone.stages.alert": "unknown placeholder(s) ['place']",
        "hazards.structural.stages.serious": "lacks the English keyword 'Structure'",
        "hazards.pm25.stages.caution": "over 90",
    }
    for entry, why in expected.items():
        hits = [ln for ln in lines if f"templates {bad}: {entry}:" in ln]
        assert len(hits) == 1 and why in hits[0], (entry, out.output)
    assert len(lines) == len(expected), out.output
    assert "config check: 6 problem(s) in 1 file(s)" in out.output


def test_templates_a_value_format_that_cannot_format_a_number(tmp_path: Path) -> None:
    doc = _yaml(CONFIG / "templates.yaml")
    doc["hazards"]["earthquake"]["value_formats"] = {"earthquake.pga": "{:d}g"}
    bad = _write_yaml(tmp_path / "t.yaml", doc)
    out = check("--templates", str(bad))
    assert out.exit_code == 1
    (line,) = invalid_lines(out)
    assert f"templates {bad}: hazards.earthquake.value_formats.earthquake.pga:" in line
    assert "Unknown format code 'd'" in line


def test_a_longer_sms_limit_from_settings_is_checked_too(tmp_path: Path) -> None:
    out = check(env={"GYEONGBO_TWILIO__MAX_SMS_CHARS": "60"})
    assert out.exit_code == 1
    lines = invalid_lines(out)
    assert lines and all("templates" in ln and "over 60" in ln for ln in lines), out.output


def test_recipients_bad_phone_and_unknown_zone(tmp_path: Path) -> None:
    doc = _yaml(CONFIG / "recipients.yaml")
    doc["recipients"][2]["phone"] = "12345"
    doc["recipients"][4]["zones"] = ["nowhere-zone"]
    doc["recipients"][5]["id"] = doc["recipients"][0]["id"]
    bad = _write_yaml(tmp_path / "recipients.yaml", doc)
    out = check("--recipients", str(bad))
    assert out.exit_code == 1
    lines = invalid_lines(out)
    rid = doc["recipients"]
    assert any(
        f"recipients {bad}: recipients[2] (id={rid[2]['id']!r}): phone:" in ln and "E.164" in ln
        for ln in lines
    ), out.output
    assert any(
        f"recipients[4] (id={rid[4]['id']!r}): unknown zone(s) ['nowhere-zone']" in ln
        for ln in lines
    )
    assert any(f"recipients[5] (id={rid[0]['id']!r}): duplicate id" in ln for ln in lines)
    assert "+82 10-0000" not in out.output  # numbers are never echoed
    assert len(lines) == 3


def test_the_store_seed_is_checked_as_well(tmp_path: Path) -> None:
    bad = tmp_path / "seed.yaml"
    bad.write_text("recipients:\n  - {id: x1, phone: '+821000000999', hazards: [lava]}\n")
    out = check(env={"GYEONGBO_STORE__SEED_RECIPIENTS": str(bad)})
    assert out.exit_code == 1
    (line,) = invalid_lines(out)
    assert line.startswith(f"invalid  store seed {bad}: recipients[0] (id='x1'): hazards:")


def test_custom_zones_bad_coordinates_and_duplicate_id(tmp_path: Path) -> None:
    zones = tmp_path / "zones"
    shutil.copytree(CONFIG / "zones", zones)
    path = zones / "hangang-riverside.geojson"
    doc = json.loads(path.read_text(encoding="utf-8"))
    first = doc["features"][0]
    ring = first["geometry"]["coordinates"][0]
    ring[0] = ring[-1] = [126.9, 97.0]  # still closed, latitude out of range
    twin = json.loads(json.dumps(doc["features"][1]))
    twin["properties"]["id"] = first["properties"]["id"]
    doc["features"].append(twin)
    path.write_text(json.dumps(doc), encoding="utf-8")
    out = check("--zones", str(zones))
    assert out.exit_code == 1
    lines = invalid_lines(out)
    fid = first["properties"]["id"]
    assert any(
        f"{path}: features[0] (id={fid!r}):" in ln and "latitude 97.0 out of range" in ln
        for ln in lines
    ), out.output
    assert any(f"(id={fid!r}): duplicate id" in ln for ln in lines), out.output
    # what needs the zones is reported as not checked, not as ok
    assert "skipped  station zones" in out.output and "skipped  recipients" in out.output


def test_boundaries_a_municipality_without_a_province(tmp_path: Path) -> None:
    bounds = tmp_path / "boundaries"
    shutil.copytree(CONFIG / "boundaries", bounds)
    path = bounds / "skorea_municipalities_geo_simple.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["features"][0]["properties"]["code"] = "99010"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    out = check("--boundaries", str(bounds))
    assert out.exit_code == 1
    lines = invalid_lines(out)
    assert any(
        "skorea_municipalities_geo_simple.json" in ln and "'99010'" in ln and "parent" in ln
        for ln in lines
    ), out.output


def test_stations_bad_entry_and_a_station_in_an_unknown_zone(tmp_path: Path) -> None:
    doc = _yaml(CONFIG / "stations.yaml")
    doc["stations"][3]["lon"] = 200
    bad = _write_yaml(tmp_path / "stations.yaml", doc)
    out = check("--stations", str(bad))
    assert out.exit_code == 1
    line = invalid_lines(out)[0]
    assert line.startswith(f"invalid  stations {bad}: stations[3] (id=")
    assert "lon" in line
    doc = _yaml(CONFIG / "stations.yaml")
    doc["stations"][0]["zones"] = ["atlantis"]
    sid = doc["stations"][0]["id"]
    unknown = _write_yaml(tmp_path / "unknown-zone.yaml", doc)
    out = check("--stations", str(unknown))
    assert out.exit_code == 1
    (line,) = invalid_lines(out)
    assert f"station zones {unknown}: station {sid!r}" in line and "['atlantis']" in line


def test_settings_file_and_variables(tmp_path: Path) -> None:
    broken = tmp_path / "gyeongbo.yaml"
    broken.write_text("worker:\n  web_port: abc\n")
    out = check("--settings-file", str(broken))
    assert out.exit_code == 1
    (line,) = invalid_lines(out)
    assert line.startswith(f"invalid  settings {broken}: GYEONGBO_WORKER__WEB_PORT:")
    broken.write_text("worker: [\n")
    out = check("--settings-file", str(broken))
    assert out.exit_code == 1 and "cannot be read" in invalid_lines(out)[0]


def test_operator_tokens_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    out = CliRunner().invoke(cli, ["operators", "add", "kim", "--file", str(tokens)])
    assert out.exit_code == 0
    out = check("--tokens-file", str(tokens))
    assert out.exit_code == 0 and "1 tokens (1 active)" in out.output
    doc = json.loads(tokens.read_text())
    doc["tokens"][0]["role"] = "boss"
    tokens.write_text(json.dumps(doc))
    out = check("--tokens-file", str(tokens))
    assert out.exit_code == 1
    (line,) = invalid_lines(out)
    assert f"operator tokens {tokens}:" in line and "unknown role 'boss'" in line
    assert "sha256" not in out.output
    tokens.write_text("{not json")
    assert check("--tokens-file", str(tokens)).exit_code == 1


def test_scenarios_a_scenario_with_an_unknown_station(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    shutil.copytree(REPO_ROOT / "simulators" / "scenarios", folder)
    path = folder / "han-river-flood.yaml"
    doc = _yaml(path)
    doc["stations"][0]["station"] = "NO-SUCH-STATION"
    _write_yaml(path, doc)
    out = check("--scenarios", str(folder))
    assert out.exit_code == 1
    lines = invalid_lines(out)
    assert lines and all(f"scenarios {folder}: han-river-flood.yaml:" in ln for ln in lines)
    assert any("NO-SUCH-STATION" in ln for ln in lines), out.output


def test_dashboards_wrong_type_and_out_of_date(tmp_path: Path) -> None:
    folder = tmp_path / "dash"
    shutil.copytree(REPO_ROOT / "dashboards" / "json", folder)
    situation = folder / "gyeongbo-situation.json"
    doc = json.loads(situation.read_text(encoding="utf-8"))
    doc["panels"][0]["id"] = "one"
    situation.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    operations = folder / "gyeongbo-operations.json"
    doc = json.loads(operations.read_text(encoding="utf-8"))
    doc["title"] = "renamed by hand"
    operations.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    out = check("--dashboards", str(folder))
    assert out.exit_code == 1
    lines = invalid_lines(out)
    assert any(
        "gyeongbo-situation.json: Expected `int`, got `str` - at `$.panels[0].id`" in ln
        for ln in lines
    ), out.output
    assert any("gyeongbo-operations.json: differs from what" in ln for ln in lines)
