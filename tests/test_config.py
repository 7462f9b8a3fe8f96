"""Settings and the station registry: typed, validated, secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from gyeongbo.registry import RegistryError, load_registry, parse_registry
from gyeongbo.settings import REPO_ROOT, Settings
from gyeongbo.vocab import Kind
from gyeongbo_cli.main import app as cli

STATIONS = REPO_ROOT / "config" / "stations.yaml"


def test_the_shipped_registry_has_the_real_korean_examples() -> None:
    reg = load_registry(STATIONS)
    hangang = reg.stations["1018683"]
    assert hangang.kind is Kind.WATER_LEVEL and hangang.name == "한강대교"
    assert hangang.levels is not None
    assert (hangang.levels.caution, hangang.levels.alert, hangang.levels.serious) == (
        8.5,
        10.5,
        13.3,
    )
    upstream = [
        s for s in reg.stations.values() if s.kind is Kind.WATER_LEVEL and s.lon > hangang.lon
    ]
    assert len(upstream) >= 2
    air = [s for s in reg.stations.values() if s.kind is Kind.AIR_QUALITY]
    assert len({z for s in air for z in s.zones if z.startswith("11")}) == 25  # one per 구
    bridges = {s.structure for s in reg.stations.values() if s.kind is Kind.STRUCTURAL}
    assert len(bridges) >= 3 and all(b and "Bridge" in b for b in bridges)
    assert set(reg.by_gateway["hrfco-seoul"]) >= {"1018683", "1018640"}


def _doc() -> dict:
    return yaml.safe_load(STATIONS.read_text())


def test_every_bad_entry_is_named_not_just_the_first() -> None:
    doc = _doc()
    doc["stations"][0]["kind"] = "lava"  # 1018640
    hangang = next(s for s in doc["stations"] if s["id"] == "1018683")
    hangang["levels"]["alert"] = 8.0  # below caution
    doc["stations"].append(dict(next(s for s in doc["stations"] if s["id"] == "108")))
    doc["stations"].append({**doc["stations"][5], "id": "X1", "gateway": "nobody"})
    with pytest.raises(RegistryError) as err:
        parse_registry(doc)
    problems = err.value.problems
    assert any(p.startswith("stations[0] (id='1018640'): kind:") for p in problems)
    assert any(
        "(id='1018683'): levels" in p and "caution (8.5) must be below alert (8.0)" in p
        for p in problems
    )
    assert any("duplicate station id" in p for p in problems)
    assert any("(id='X1'): gateway 'nobody' is not declared" in p for p in problems)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lat": 51.5}, "lat"),
        ({"kind": "structural"}, "a structural station needs 'allowable'"),
        ({"allowable": {"tilt_rad": 0.002}}, "allowable is only for structural stations"),
        ({"id": "has space"}, "id"),
    ],
)
def test_invalid_station_fields(change: dict, message: str) -> None:
    doc = _doc()
    station = next(s for s in doc["stations"] if s["id"] == "108")
    station.update(change)
    with pytest.raises(RegistryError) as err:
        parse_registry(doc)
    assert any(message in p for p in err.value.problems), err.value.problems


def test_unknown_structural_channel_is_refused() -> None:
    doc = _doc()
    s = next(s for s in doc["stations"] if s["kind"] == "structural")
    s["allowable"]["strain"] = 1.0
    with pytest.raises(RegistryError, match="unknown structural channel"):
        parse_registry(doc)


def test_broken_file_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("stations: [\n")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(bad)
    with pytest.raises(RegistryError, match="file not found"):
        load_registry(tmp_path / "none.yaml")


def test_json_registry_is_the_same_document(tmp_path: Path) -> None:
    p = tmp_path / "s.json"
    p.write_text(json.dumps(_doc()))
    assert load_registry(p).stations == load_registry(STATIONS).stations


def test_settings_from_environment_nested_and_secrets_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GYEONGBO_KAFKA__BOOTSTRAP", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("GYEONGBO_KAFKA__TOPICS__READINGS__PARTITIONS", "32")
    monkeypatch.setenv("GYEONGBO_TWILIO__AUTH_TOKEN", "s3cr3t-token")
    monkeypatch.setenv("GYEONGBO_MQTT__PASSWORD", "mqtt-s3cr3t")
    s = Settings(_env_file=None)
    assert s.kafka.bootstrap == "kafka-1:9092,kafka-2:9092"
    assert s.kafka.topics.readings.partitions == 32
    assert s.twilio.auth_token is not None
    assert s.twilio.auth_token.get_secret_value() == "s3cr3t-token"
    assert "s3cr3t" not in repr(s) and "s3cr3t" not in json.dumps(s.public_dict())
    out = CliRunner().invoke(cli, ["config", "show"])
    assert out.exit_code == 0 and "s3cr3t" not in out.output
    assert json.loads(out.output)["kafka"]["topics"]["readings"]["partitions"] == 32


def test_settings_are_frozen_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        s.kafka = s.kafka  # type: ignore[misc]
    monkeypatch.setenv("GYEONGBO_STACK__BROKER", "redpanda")
    with pytest.raises(Exception, match="noida"):
        Settings(_env_file=None)


def test_settings_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "gyeongbo.yaml"
    f.write_text("influx:\n  bucket: situation\nworker:\n  web_port: 17000\n")
    monkeypatch.setenv("GYEONGBO_SETTINGS_FILE", str(f))
    monkeypatch.setenv("GYEONGBO_WORKER__WEB_PORT", "17001")  # the environment wins
    s = Settings(_env_file=None)
    assert s.influx.bucket == "situation" and s.worker.web_port == 17001


def test_config_check_names_the_bad_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _doc()
    doc["stations"][3]["lon"] = 200
    bad = tmp_path / "stations.yaml"
    bad.write_text(yaml.safe_dump(doc, allow_unicode=True))
    monkeypatch.setenv("GYEONGBO_PATHS__STATIONS", str(bad))
    out = CliRunner().invoke(cli, ["config", "check"])
    assert out.exit_code == 1
    assert "stations[3]" in out.output and "lon" in out.output
    monkeypatch.setenv("GYEONGBO_PATHS__STATIONS", str(STATIONS))
    out = CliRunner().invoke(cli, ["config", "check"])
    assert out.exit_code == 0, out.output


def test_every_command_has_help() -> None:
    runner = CliRunner()
    groups = {"": ["config", "topics", "stack", "bridge", "worker", "alerts", "drill", "simulate"]}
    for cmd in groups[""]:
        out = runner.invoke(cli, [cmd, "--help"])
        assert out.exit_code == 0 and "Usage" in out.output, cmd
    for sub in (
        ["stack", "up"],
        ["stack", "down"],
        ["stack", "status"],
        ["config", "check"],
        ["topics", "create"],
        ["bridge", "run"],
        ["bridge", "mqtt-auth"],
        ["alerts", "list"],
        ["alerts", "ack"],
        ["drill", "run"],
        ["simulate", "load"],
    ):
        out = runner.invoke(cli, [*sub, "--help"])
        assert out.exit_code == 0 and "Usage" in out.output, sub


def test_zone_keyed_topics_must_agree_on_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A zone's alerts go to the partition number of its zone command: an ``alerts`` topic
    with fewer partitions would make the stage agent write where nothing exists."""
    monkeypatch.setenv("GYEONGBO_KAFKA__TOPICS__ALERTS__PARTITIONS", "2")
    with pytest.raises(ValidationError, match=r"alerts has 2 partitions; .*zone\.commands \(4\)"):
        Settings(_env_file=None)
    monkeypatch.setenv("GYEONGBO_KAFKA__TOPICS__ZONE_COMMANDS__PARTITIONS", "2")
    monkeypatch.setenv("GYEONGBO_KAFKA__TOPICS__DQ_ALERTS__PARTITIONS", "2")
    monkeypatch.setenv("GYEONGBO_KAFKA__TOPICS__REMINDERS__PARTITIONS", "2")
    assert Settings(_env_file=None).kafka.topics.alerts.partitions == 2
