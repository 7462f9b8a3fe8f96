"""docker-compose.yml, checked statically (no Docker engine here): it parses, every service is
consistent with the settings and commands the code reads, volumes are declared, ports are
unique, and every file it mounts exists in the repo."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

from gyeongbo.cli import app as cli
from gyeongbo.settings import REPO_ROOT, Settings
from streams.bridge_config import BridgeSettings

COMPOSE = REPO_ROOT / "docker-compose.yml"
APP_SERVICES = ("mqtt-auth", "kafka-init", "bridge", "worker")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of environment"
    return {k: str(v) for k, v in env.items()}


def _settings_paths(model: type[BaseModel], prefix: str = "GYEONGBO_") -> set[str]:
    out = set()
    for name, f in model.model_fields.items():
        key = f"{prefix}{name.upper()}"
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= _settings_paths(ann, key + "__")
        else:
            out.add(key)
    return out


def test_parses_with_the_services_production_needs(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "mosquitto",
        "mqtt-auth",
        "kafka",
        "kafka-init",
        "influxdb",
        "postgres",
        "grafana",
        "bridge",
        "worker",
    }
    for name in ("mosquitto", "kafka", "influxdb", "postgres", "grafana", "bridge", "worker"):
        svc = compose["services"][name]
        assert "healthcheck" in svc, name
        assert svc.get("restart") == "unless-stopped", name
        assert re.search(r":\d+\.\d+", svc["image"]), f"{name}: pin the image version"


def test_every_gyeongbo_variable_is_a_setting_the_code_reads(compose: dict[str, Any]) -> None:
    known = _settings_paths(Settings) | {
        f"GYEONGBO_BRIDGE__{n.upper()}" for n in BridgeSettings.model_fields
    }
    for name in APP_SERVICES:
        for key in _env(compose["services"][name]):
            if key.startswith("GYEONGBO_"):
                assert key in known, f"{name}: {key} is not read by gyeongbo"
    for key in (REPO_ROOT / "deploy" / "secrets.env.example").read_text().split():
        var = key.split("=")[0]
        if var.startswith("GYEONGBO_") and not var.startswith(
            (
                "GYEONGBO_MQTT_PASSWORD__",
                "GYEONGBO_INFLUX_ADMIN",
                "GYEONGBO_GRAFANA_",
                "GYEONGBO_POSTGRES_",
            )
        ):
            assert var in known, f"secrets.env.example: {var} is not read by gyeongbo"


def test_app_settings_from_compose_point_at_the_compose_services(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(compose["services"]["worker"])
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings(_env_file=None)
    kafka = compose["services"]["kafka"]["environment"]
    assert f"PLAINTEXT://{s.kafka.bootstrap}" == kafka["KAFKA_ADVERTISED_LISTENERS"]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert s.mqtt.host == "mosquitto"
    conf = (REPO_ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert f"listener {s.mqtt.port}" in conf
    assert s.influx.url == "http://influxdb:8086"
    influx = compose["services"]["influxdb"]["environment"]
    assert influx["DOCKER_INFLUXDB_INIT_ORG"] == s.influx.org
    assert influx["DOCKER_INFLUXDB_INIT_BUCKET"] == s.influx.bucket
    assert s.worker.web_port == 16066 and s.worker.web_host == "0.0.0.0"
    # the worker's health check asks the port the worker serves
    assert str(s.worker.web_port) in " ".join(compose["services"]["worker"]["healthcheck"]["test"])
    bridge_env = _env(compose["services"]["bridge"])
    assert bridge_env["GYEONGBO_BRIDGE__METRICS_PORT"] in " ".join(
        compose["services"]["bridge"]["healthcheck"]["test"]
    )


def test_every_app_command_exists(compose: dict[str, Any]) -> None:
    runner = CliRunner()
    for name in APP_SERVICES:
        cmd = compose["services"][name]["command"]
        words = [w for w in cmd if not w.startswith("-")]
        sub = words[:2] if words[0] in {"bridge", "topics"} else words[:1]
        out = runner.invoke(cli, [*sub, "--help"])
        assert out.exit_code == 0, f"{name}: gyeongbo {' '.join(sub)} --help: {out.output}"
        for opt in (w for w in cmd if w.startswith("--")):
            assert opt in out.output, f"{name}: option {opt} unknown to gyeongbo {' '.join(sub)}"


def test_volumes_declared_and_mounted_files_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    used = set()
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":")[0]
            if src.startswith("."):
                assert (REPO_ROOT / src).exists(), f"{name}: {src} does not exist in the repo"
            else:
                used.add(src)
    assert used == declared


def test_published_ports_do_not_clash(compose: dict[str, Any]) -> None:
    published = [
        str(p).split(":")[0] for svc in compose["services"].values() for p in svc.get("ports", [])
    ]
    assert len(published) == len(set(published)), published


def test_mosquitto_reads_the_files_mqtt_auth_writes(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    out_dir = svcs["mqtt-auth"]["command"][svcs["mqtt-auth"]["command"].index("--out") + 1]
    auth_mount = next(v for v in svcs["mqtt-auth"]["volumes"] if v.startswith("mosquitto-auth"))
    assert auth_mount.split(":")[1] == out_dir
    mosq_mount = next(v for v in svcs["mosquitto"]["volumes"] if v.startswith("mosquitto-auth"))
    conf = (REPO_ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert f"password_file {mosq_mount.split(':')[1]}/passwords" in conf
    assert f"acl_file {mosq_mount.split(':')[1]}/acl" in conf


def test_grafana_provisioning_points_at_the_committed_dashboards(compose: dict[str, Any]) -> None:
    g = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: REPO_ROOT / v.split(":")[0] for v in g["volumes"] if v[0] == "."}
    provider = yaml.safe_load(
        next((mounts["/etc/grafana/provisioning/dashboards"]).glob("*.yaml")).read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert path in mounts and any(Path(mounts[path]).glob("*.json"))
    assert "GYEONGBO_INFLUX__TOKEN" in g["environment"]
