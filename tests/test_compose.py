"""docker-compose.yml, as an operator deploying it would meet it. No Docker engine runs here, so:

* statically: the file validates against the compose-spec JSON schema shipped in
  ``deploy/schema/`` (source and licence in its README); every variable is a setting the code
  reads; each service gets only its own secrets; replication and standby defaults; mounts,
  volumes, ports, the TLS listener, the token hand-over from influx-init, the scrape config;
* by running the services' own commands here (``tests/compose_support.py``), as their users,
  on folders made as fresh volumes are: ``mqtt-auth`` as uid 10001 writes mosquitto's files,
  the real mosquitto (Debian's) reads them after dropping to its own user and serves the TLS
  and the plain listener; ``kafka-init``, the bridge and a worker run as uid 10001 on fresh
  data folders, carry a gateway's TLS reading through Kafka into the worker, answer a
  Prometheus scrape and refuse the API without an operator's token; Prometheus itself
  (Debian's package, installed when missing) checks and runs the compose's scrape config
  against them.

What cannot run here, and is checked statically only: Apache Kafka (three KRaft nodes with
SASL; the local broker speaks PLAINTEXT, so the reproductions use it without SASL and with
one replica), InfluxDB 2.x and its init scripts (``sh -n`` and their variables; the local
influxd is 1.x, so the sink's token file is written here as influx-init would write it) and
Grafana.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from typer.testing import CliRunner

from gyeongbo.mqtt_auth import password_env_var
from gyeongbo.registry import load_registry
from gyeongbo.settings import REPO_ROOT, Settings
from gyeongbo.stack.install import ensure_binary
from gyeongbo.stack.postgres import create_database
from gyeongbo.stack.procs import free_port, port_open
from gyeongbo.stack.stack import Stack
from gyeongbo_cli.main import app as cli
from streams.bridge_config import BridgeSettings
from tests.compose_support import (
    APP_UID,
    Deployment,
    Running,
    generated_secrets,
    interpolate,
    load_compose,
    make_certificates,
)

COMPOSE = REPO_ROOT / "docker-compose.yml"
SCHEMA = REPO_ROOT / "deploy" / "schema" / "compose-spec.json"
APP_SERVICES = ("mqtt-auth", "kafka-init", "bridge", "worker-1", "worker-2", "operators")
WORKERS = ("worker-1", "worker-2")
KAFKA_CLIENTS = ("kafka-init", "bridge", *WORKERS)
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


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


# -- static ---------------------------------------------------------------------------------
def test_validates_against_the_compose_spec_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []
    # the schema does catch mistakes
    broken = {**compose, "services": {"x": {"image": "a", "restat": "always"}}}  # a typo
    assert list(validator.iter_errors(broken))
    readme = (SCHEMA.parent / "README.md").read_text()
    import hashlib

    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() in readme
    assert "Apache License 2.0" in readme and (SCHEMA.parent / "LICENSE.compose-spec").exists()


def test_parses_with_the_services_production_needs(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {
        "mosquitto",
        "mqtt-auth",
        "kafka-1",
        "kafka-2",
        "kafka-3",
        "kafka-init",
        "influxdb",
        "influx-init",
        "grafana",
        "bridge",
        "worker-1",
        "worker-2",
        "prometheus",
        "operators",
        "postgres",
    }
    for name in (
        "mosquitto",
        "kafka-1",
        "influxdb",
        "postgres",
        "grafana",
        "bridge",
        "worker-1",
        "worker-2",
        "prometheus",
    ):
        svc = compose["services"][name]
        assert "healthcheck" in svc, name
        assert svc.get("restart") == "unless-stopped", name
        assert re.search(r":v?\d+\.\d+", svc["image"]), f"{name}: pin the image version"


def test_every_gyeongbo_variable_is_a_setting_the_code_reads(compose: dict[str, Any]) -> None:
    known = _settings_paths(Settings) | {
        f"GYEONGBO_BRIDGE__{n.upper()}" for n in BridgeSettings.model_fields
    }
    for name in APP_SERVICES:
        for key in _env(compose["services"][name]):
            if key.startswith("GYEONGBO_") and not key.startswith("GYEONGBO_MQTT_PASSWORD__"):
                assert key in known, f"{name}: {key} is not read by gyeongbo"


def test_each_service_gets_only_its_own_secrets(compose: dict[str, Any]) -> None:
    """No service reads the secrets file as a whole; each secret is interpolated into the
    services that need it, and only those."""
    svcs = compose["services"]
    assert not any("env_file" in s for s in svcs.values())
    secrets = generated_secrets()
    gets: dict[str, set[str]] = {k: set() for k in secrets}
    for name, svc in svcs.items():
        text = yaml.safe_dump(svc.get("environment") or {})
        for var in secrets:
            if re.search(r"\$\{" + var + r"\b", text):
                gets[var].add(name)
    kafka = {"kafka-1", "kafka-2", "kafka-3"}
    expected = {
        "KAFKA_BROKER_PASSWORD": kafka,
        "GYEONGBO_KAFKA__SASL_PASSWORD": kafka | set(KAFKA_CLIENTS),
        "GYEONGBO_INFLUX_ADMIN_PASSWORD": {"influxdb"},
        "GYEONGBO_INFLUX_ADMIN_TOKEN": {"influxdb", "influx-init"},
        "GYEONGBO_GRAFANA_ADMIN_PASSWORD": {"grafana"},
        "GYEONGBO_MQTT__PASSWORD": {"mqtt-auth", "bridge"},
        "GYEONGBO_TWILIO__ACCOUNT_SID": set(WORKERS),
        "GYEONGBO_TWILIO__AUTH_TOKEN": set(WORKERS),
        "GYEONGBO_TWILIO__MESSAGING_SERVICE_SID": set(WORKERS),
        "GYEONGBO_TWILIO__STATUS_CALLBACK_URL": set(WORKERS),
        "GYEONGBO_POSTGRES_PASSWORD": {"postgres"} | set(WORKERS),
    }
    for var, services in gets.items():
        want = expected.get(var, {"mqtt-auth"})  # gateway passwords: mqtt-auth alone
        assert services == want, f"{var} goes to {sorted(services)}, should go to {sorted(want)}"


def test_every_gateway_of_the_registry_has_its_password(compose: dict[str, Any]) -> None:
    registry = load_registry(REPO_ROOT / "config" / "stations.yaml")
    env = _env(compose["services"]["mqtt-auth"])
    example = (REPO_ROOT / "deploy" / "secrets.env.example").read_text()
    for gw in registry.gateways:
        var = password_env_var(gw)
        assert var in env, f"mqtt-auth lacks {var}"
        assert f"\n{var}=" in example, f"secrets.env.example lacks {var}"


def test_replication_and_standby_defaults_and_one_instance_per_worker(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    svcs = compose["services"]
    for name in KAFKA_CLIENTS:
        env = _env(svcs[name])
        assert env["GYEONGBO_KAFKA__REPLICATION_FACTOR"] == "3", name
        assert env["GYEONGBO_KAFKA__MIN_INSYNC_REPLICAS"] == "2", name
        assert env["GYEONGBO_KAFKA__SECURITY_PROTOCOL"] == "SASL_PLAINTEXT", name
    nodes = [n for n in svcs if n.startswith("kafka-") and n != "kafka-init"]
    assert len(nodes) == 3
    voters = _env(svcs["kafka-1"])["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert sorted(v.split("@")[1] for v in voters) == [f"{n}:9093" for n in sorted(nodes)]
    bootstrap = _env(svcs["bridge"])["GYEONGBO_KAFKA__BOOTSTRAP"].split(",")
    advertised = [_env(svcs[n])["KAFKA_ADVERTISED_LISTENERS"].split("//")[1] for n in nodes]
    assert sorted(bootstrap) == sorted(advertised)
    for n in nodes:
        env = _env(svcs[n])
        assert (
            env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
            and env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3"
        )
        assert "user_gyeongbo=" in env["KAFKA_LISTENER_NAME_INTERNAL_PLAIN_SASL_JAAS_CONFIG"]
    ids, data = set(), set()
    for w in WORKERS:
        env = _env(svcs[w])
        assert env["GYEONGBO_WORKER__STANDBY_REPLICAS"] == "1"
        ids.add(env["GYEONGBO_WORKER__INSTANCE_ID"])
        data |= {
            v.split(":")[0] for v in svcs[w]["volumes"] if v.endswith(":/var/lib/gyeongbo/worker")
        }
    assert len(ids) == len(data) == len(WORKERS)
    # the settings accept the production values
    env = {k: interpolate(v, generated_secrets()) for k, v in _env(svcs["worker-1"]).items()}
    env.pop("GYEONGBO_INFLUX__TOKEN_FILE")  # the file exists only in the container
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    s = Settings(_env_file=None)
    assert (s.kafka.replication_factor, s.kafka.min_insync_replicas) == (3, 2)
    assert s.worker.standby_replicas == 1 and s.worker.instance() == "worker-1"
    assert s.kafka.sasl_password is not None and s.twilio.status_callback_url is None


def test_app_settings_from_compose_point_at_the_compose_services(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    w = _env(svcs["worker-1"])
    assert w["GYEONGBO_INFLUX__URL"] == "http://influxdb:8086"
    influx = svcs["influxdb"]["environment"]
    assert influx["DOCKER_INFLUXDB_INIT_ORG"] == w["GYEONGBO_INFLUX__ORG"]
    assert influx["DOCKER_INFLUXDB_INIT_BUCKET"] == w["GYEONGBO_INFLUX__BUCKET"]
    assert _env(svcs["bridge"])["GYEONGBO_MQTT__HOST"] == "mosquitto"
    for name, port_var, path in (
        ("worker-1", "GYEONGBO_WORKER__WEB_PORT", "/health"),
        ("bridge", "GYEONGBO_BRIDGE__METRICS_PORT", "/healthz"),
    ):
        port = _env(svcs[name])[port_var]
        assert f"127.0.0.1:{port}{path}" in " ".join(svcs[name]["healthcheck"]["test"])


def test_every_app_command_exists(compose: dict[str, Any]) -> None:
    runner = CliRunner()
    for name in APP_SERVICES:
        svc = compose["services"][name]
        entry = [w for w in svc.get("entrypoint", ["gyeongbo"])][1:]
        cmd = [*entry, *svc["command"]]
        words = [w for w in cmd if not w.startswith("-")]
        sub = words[:2] if words[0] in {"bridge", "topics", "operators"} else words[:1]
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


def test_published_ports_do_not_clash_and_only_tls_mqtt_is_published(
    compose: dict[str, Any],
) -> None:
    published = []
    for name, svc in compose["services"].items():
        for p in svc.get("ports", []):
            parts = str(p).split(":")
            host = (parts[0] if len(parts) == 3 else "0.0.0.0", parts[-2])
            published.append(host)
            if name in WORKERS or name == "prometheus":
                assert host[0] == "127.0.0.1", f"{name}: publish on the host's loopback only"
    assert len(published) == len(set(published)), published
    assert compose["services"]["mosquitto"]["ports"] == ["8883:8883"]
    assert compose["networks"]["backend"]["internal"] is True
    for name in ("kafka-1", "influxdb", "bridge"):
        assert compose["services"][name]["networks"] == ["backend"], name


def test_mosquitto_reads_the_files_mqtt_auth_writes_and_serves_tls(
    compose: dict[str, Any],
) -> None:
    svcs = compose["services"]
    cmd = svcs["mqtt-auth"]["command"]
    out_dir = cmd[cmd.index("--out") + 1]
    assert cmd[cmd.index("--group") + 1] == "1883"  # mosquitto's gid in eclipse-mosquitto
    assert "1883" in svcs["mqtt-auth"]["group_add"]
    auth_mount = next(v for v in svcs["mqtt-auth"]["volumes"] if v.startswith("mosquitto-auth"))
    assert auth_mount.split(":")[1] == out_dir
    mosq = {v.split(":")[1]: v.split(":")[0] for v in svcs["mosquitto"]["volumes"]}
    conf = (REPO_ROOT / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert mosq["/mosquitto/auth"] == "mosquitto-auth"
    assert "password_file /mosquitto/auth/passwords" in conf
    assert "acl_file /mosquitto/auth/acl" in conf
    assert re.search(r"^listener 8883$", conf, re.M) and re.search(r"^listener 1883$", conf, re.M)
    for f in re.findall(r"^(?:certfile|keyfile|cafile) (\S+)$", conf, re.M):
        assert f.startswith("/mosquitto/certs/") and mosq["/mosquitto/certs"] == "./deploy/certs"
        assert Path(f).name in (REPO_ROOT / "deploy" / "certs" / "README.md").read_text()
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"install -d -o {APP_UID} -g 1883 -m 2750 {out_dir}" in dockerfile


def test_influx_tokens_are_handed_to_their_readers_only(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    script = REPO_ROOT / "deploy" / "influxdb" / "influx-tokens.sh"
    subprocess.run(["sh", "-n", str(script)], check=True)
    init = svcs["influx-init"]
    env = _env(init)
    used = set(re.findall(r"\$\{?([A-Z_]+)", script.read_text())) - {"bucket_id", "token"}
    assert used <= set(env), f"influx-tokens.sh uses {sorted(used - set(env))} unset"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in init["volumes"]}
    sink_vol = mounts[str(Path(env["SINK_TOKEN_FILE"]).parent)]
    grafana_vol = mounts[str(Path(env["GRAFANA_TOKEN_FILE"]).parent)]
    assert env["SINK_UID"] == str(APP_UID)
    readers = {
        vol: {n for n, s in svcs.items() for v in s.get("volumes", []) if v.startswith(vol + ":")}
        for vol in (sink_vol, grafana_vol)
    }
    assert readers[sink_vol] == {"influx-init", "bridge", *WORKERS}
    assert readers[grafana_vol] == {"influx-init", "grafana"}
    for name in ("bridge", *WORKERS):
        token_file = _env(svcs[name])["GYEONGBO_INFLUX__TOKEN_FILE"]
        mount = next(v for v in svcs[name]["volumes"] if v.startswith(sink_vol + ":"))
        assert token_file == f"{mount.split(':')[1]}/{Path(env['SINK_TOKEN_FILE']).name}"
        assert mount.endswith(":ro")
    ds = (REPO_ROOT / "dashboards/provisioning/datasources/gyeongbo-influxdb.yaml").read_text()
    (grafana_file,) = re.findall(r"\$__file\{([^}]+)\}", ds)
    g_mount = next(v for v in svcs["grafana"]["volumes"] if v.startswith(grafana_vol + ":"))
    assert grafana_file == f"{g_mount.split(':')[1]}/{Path(env['GRAFANA_TOKEN_FILE']).name}"
    assert "INFLUX" not in yaml.safe_dump(svcs["grafana"]["environment"])  # no admin token


def test_grafana_provisioning_points_at_the_committed_dashboards(compose: dict[str, Any]) -> None:
    g = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: REPO_ROOT / v.split(":")[0] for v in g["volumes"] if v[0] == "."}
    provider = yaml.safe_load(
        next((mounts["/etc/grafana/provisioning/dashboards"]).glob("*.yaml")).read_text()
    )
    path = provider["providers"][0]["options"]["path"]
    assert path in mounts and any(Path(mounts[path]).glob("*.json"))


def test_prometheus_scrapes_the_bridge_and_every_worker(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    prom = svcs["prometheus"]
    mount = next(v for v in prom["volumes"] if v.endswith(":/etc/prometheus/prometheus.yml:ro"))
    cfg = yaml.safe_load((REPO_ROOT / mount.split(":")[0]).read_text())
    targets = {
        t for job in cfg["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    want = {f"bridge:{_env(svcs['bridge'])['GYEONGBO_BRIDGE__METRICS_PORT']}"}
    want |= {f"{w}:{_env(svcs[w])['GYEONGBO_WORKER__WEB_PORT']}" for w in WORKERS}
    assert targets == want
    assert all(j.get("metrics_path", "/metrics") == "/metrics" for j in cfg["scrape_configs"])


# -- the services, run here -----------------------------------------------------------------
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="runs services as uid 10001 and as mosquitto (needs root)"
)


class TlsGateway:
    """A gateway's MQTT v5 client over TLS, recording PUBACK reason codes."""

    def __init__(
        self, port: int, user: str, password: str | None, ca: Path, client_id: str | None = None
    ) -> None:
        self.acks: dict[int, int] = {}
        self.connected = threading.Event()
        self.rc: Any = None
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{user}-gw",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
        if password is not None:
            c.username_pw_set(user, password)
        c.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc.value)

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
            self.rc = rc
            self.connected.set()

        c.on_connect = on_connect
        c.connect("localhost", port)
        c.loop_start()
        assert self.connected.wait(10)
        self.client = c

    def publish(self, topic: str, payload: Any) -> int:
        info = self.client.publish(topic, json.dumps(payload), qos=1)
        info.wait_for_publish(10)
        return self.acks[info.mid]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait(pred: Any, timeout_s: float, what: str, proc: Running | None = None) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(
                f"{proc.name} exited {proc.proc.returncode}:\n{proc.text()[-3000:]}"
            )
        try:
            got = pred()
        except OSError:
            got = None
        if got:
            return got
        time.sleep(0.3)
    tail = f"\n{proc.text()[-3000:]}" if proc is not None else ""
    raise AssertionError(f"timed out waiting for {what}{tail}")


def _uid_of(pid: int) -> int:
    """The effective uid of a process (/proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    raise AssertionError(f"no process {pid}")


def _get(url: str, accept: str = "application/json", token: str | None = None) -> Any:
    headers = {"Accept": accept, **({"Authorization": f"Bearer {token}"} if token else {})}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
        body = r.read().decode()
        return json.loads(body) if accept == "application/json" else (r.headers, body)


@pytest.fixture(scope="module")
def deployed(stack: Stack) -> Iterator[dict[str, Any]]:
    """mqtt-auth, mosquitto, kafka-init, the bridge and worker-1 of the compose file, run here
    as their users on fresh volumes (see the module docstring)."""
    if os.geteuid() != 0:
        pytest.skip("runs services as uid 10001 and as mosquitto (needs root)")
    mosq_user = pwd.getpwnam("mosquitto")
    mosq_gid = mosq_user.pw_gid  # stands in for the image's 1883
    base = stack.app_settings()
    uid = os.urandom(3).hex()
    topics = {
        f"GYEONGBO_KAFKA__TOPICS__{t.upper()}__NAME": f"{v.name}-c{uid}"
        for t, v in base.kafka.topics
    }
    local_kafka = {
        "GYEONGBO_KAFKA__BOOTSTRAP": stack.kafka_bootstrap,
        "GYEONGBO_KAFKA__BROKER": stack.config.broker,
        # The local broker speaks PLAINTEXT and is one node (module docstring).
        "GYEONGBO_KAFKA__SECURITY_PROTOCOL": "PLAINTEXT",
        "GYEONGBO_KAFKA__REPLICATION_FACTOR": "1",
        **topics,
    }

    def local(env: dict[str, str]) -> dict[str, str]:
        """The service's environment on the local broker (no min.insync.replicas of 2)."""
        env = {**env, **local_kafka}
        env.pop("GYEONGBO_KAFKA__MIN_INSYNC_REPLICAS", None)
        return env

    with Deployment.create() as dep:
        out: dict[str, Any] = {"dep": dep, "mosq_gid": mosq_gid}
        # mqtt-auth: uid 10001 (+ group_add), on a fresh mosquitto-auth volume as the image
        # makes /auth (10001:1883, 2750)
        auth = dep.volume("mosquitto-auth", uid=APP_UID, gid=mosq_gid, mode=0o2750)
        cmd = dep.command("mqtt-auth")
        cmd[cmd.index("--group") + 1] = str(mosq_gid)
        env = dep.env("mqtt-auth", GYEONGBO_MQTT__TOPIC_ROOT=f"c{uid}/gyeongbo/v1/readings")
        res = dep.run_as("mqtt-auth", cmd, env, groups=(mosq_gid,))
        assert isinstance(res, subprocess.CompletedProcess)
        assert res.returncode == 0, res.stderr
        out["mqtt_auth"] = res
        # mosquitto: the deploy config with its mounts and two free ports, started as root
        data = dep.volume("mosquitto-data", uid=mosq_user.pw_uid, gid=mosq_gid, mode=0o755)
        certs = dep.root / "certs"
        make_certificates(certs, mosq_gid)
        plain, tls = free_port(), free_port()
        conf = (REPO_ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
        conf = (
            conf.replace("/mosquitto/auth", str(auth))
            .replace("/mosquitto/certs", str(certs))
            .replace("/mosquitto/data/", f"{data}/")
            .replace("listener 1883", f"listener {plain} 127.0.0.1")
            .replace("listener 8883", f"listener {tls} 127.0.0.1")
        )
        conf_path = dep.root / "mosquitto.conf"
        conf_path.write_text(conf)
        mosq = dep.start(
            "mosquitto", [ensure_binary("mosquitto", "mosquitto"), "-c", str(conf_path)]
        )
        _wait(lambda: port_open(plain) and port_open(tls), 20, "mosquitto's listeners", mosq)
        out.update(mosquitto=mosq, plain=plain, tls=tls, certs=certs)
        # kafka-init: its command as uid 10001
        res = dep.run_as("kafka-init", dep.command("kafka-init"), local(dep.env("kafka-init")))
        assert isinstance(res, subprocess.CompletedProcess)
        assert res.returncode == 0, res.stderr
        # influx-init cannot run here (InfluxDB 2.x): its hand-over, as the script writes it
        sink_vol = dep.volume("influx-sink-token")
        token = sink_vol / "sink.token"
        token.write_text(base.influx.token.get_secret_value() + "\n")
        os.chown(token, APP_UID, 0)
        token.chmod(0o400)
        # the bridge: uid 10001, the plain listener on the internal network
        bport = free_port()
        env = local(
            dep.env(
                "bridge",
                GYEONGBO_MQTT__HOST="127.0.0.1",
                GYEONGBO_MQTT__PORT=str(plain),
                GYEONGBO_MQTT__TOPIC_ROOT=f"c{uid}/gyeongbo/v1/readings",
                GYEONGBO_MQTT__CLIENT_ID=f"bridge-c{uid}",
                GYEONGBO_INFLUX__URL=base.influx.url,
                GYEONGBO_BRIDGE__METRICS_HOST="127.0.0.1",
                GYEONGBO_BRIDGE__METRICS_PORT=str(bport),
            )
        )
        bridge = dep.run_as("bridge", dep.command("bridge"), env, background=True)
        assert isinstance(bridge, Running)
        _wait(
            lambda: _get(f"http://127.0.0.1:{bport}/healthz")["ok"], 60, "bridge /healthz", bridge
        )
        out.update(bridge=bridge, bridge_url=f"http://127.0.0.1:{bport}")
        # worker-1: uid 10001 on fresh worker-data and operator-tokens volumes
        wdata = dep.volume("worker-1-data", uid=APP_UID, gid=APP_UID, mode=0o750)
        ops = dep.volume("operator-tokens", uid=APP_UID, gid=APP_UID, mode=0o750)
        wport = free_port()
        env = local(
            dep.env(
                "worker-1",
                GYEONGBO_WORKER__WEB_HOST="127.0.0.1",
                GYEONGBO_WORKER__WEB_PORT=str(wport),
                GYEONGBO_WORKER__APP_ID=f"gy-c{uid}",
                GYEONGBO_INFLUX__URL=base.influx.url,
                GYEONGBO_TWILIO__API_BASE=stack.twilio_url,
                # the compose file's postgres service: here the stack's own cluster
                GYEONGBO_STORE__URL=create_database(stack.config.postgres_port, f"c{uid}"),
            )
        )
        worker = dep.run_as("worker-1", dep.command("worker-1"), env, background=True)
        assert isinstance(worker, Running)
        _wait(
            lambda: _get(f"http://127.0.0.1:{wport}/health")["status"] == "ok",
            150,
            "worker /health",
            worker,
        )
        out.update(worker=worker, worker_url=f"http://127.0.0.1:{wport}", wdata=wdata, ops=ops)
        out["root"] = f"c{uid}/gyeongbo/v1/readings"
        out["bridge_client_id"] = f"bridge-c{uid}"
        yield out


@needs_root
@pytest.mark.stack
def test_mqtt_auth_as_uid_10001_writes_files_mosquitto_reads_as_its_own_user(
    deployed: dict[str, Any],
) -> None:
    dep: Deployment = deployed["dep"]
    auth = dep.volumes["mosquitto-auth"]
    for name in ("passwords", "acl"):
        st = (auth / name).stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (APP_UID, deployed["mosq_gid"], 0o640)
    mosq: Running = deployed["mosquitto"]
    assert pwd.getpwuid(_uid_of(mosq.proc.pid)).pw_name == "mosquitto"  # it dropped root
    log = mosq.text()
    assert "Unable to open" not in log and "Error" not in log, log
    for secret in filter(None, dep.secrets.values()):
        assert secret not in deployed["mqtt_auth"].stdout + deployed["mqtt_auth"].stderr


@needs_root
@pytest.mark.stack
def test_gateways_get_in_over_tls_with_their_password_only(deployed: dict[str, Any]) -> None:
    dep: Deployment = deployed["dep"]
    ca = deployed["certs"] / "ca.crt"
    pw = dep.secrets["GYEONGBO_MQTT_PASSWORD__HRFCO_SEOUL"]
    gw = TlsGateway(deployed["tls"], "hrfco-seoul", pw, ca)
    try:
        assert not gw.rc.is_failure
        now = time.time_ns() // 1_000_000
        root = deployed["root"]
        reading = {"station": "1018683", "ts": now, "seq": 1, "values": {"level_m": 3.2}}
        assert gw.publish(f"{root}/water_level/1018683", reading) == 0  # own station: accepted
        assert gw.publish(f"{root}/air_quality/111121", reading) == 0x87  # not its station
    finally:
        gw.close()
    for user, password in (("hrfco-seoul", "wrong"), ("anonymous", None)):
        bad = TlsGateway(deployed["tls"], user, password, ca)
        assert bad.rc.is_failure, user
        bad.close()
    # plain MQTT is for the bridge on the internal network; the bridge is connected over it
    assert _get(deployed["bridge_url"] + "/metrics")["mqtt_connected"] is True


@needs_root
@pytest.mark.stack
def test_a_gateway_cannot_take_the_bridges_client_id(deployed: dict[str, Any]) -> None:
    """MQTT hands a client id to whoever connects last: a gateway connecting over TLS with the
    bridge's id would disconnect the bridge. The gateways' listener forces each client id to
    the user name, so the bridge stays connected and keeps carrying readings."""
    dep: Deployment = deployed["dep"]
    bridge_id = deployed["bridge_client_id"]
    before = _get(deployed["bridge_url"] + "/metrics")
    pw = dep.secrets["GYEONGBO_MQTT_PASSWORD__HRFCO_SEOUL"]
    gw = TlsGateway(deployed["tls"], "hrfco-seoul", pw, deployed["certs"] / "ca.crt", bridge_id)
    try:
        assert not gw.rc.is_failure
        now = time.time_ns() // 1_000_000
        reading = {"station": "1018683", "ts": now, "seq": 7, "values": {"level_m": 3.1}}
        assert gw.publish(f"{deployed['root']}/water_level/1018683", reading) == 0
        _wait(
            lambda: (
                _get(deployed["bridge_url"] + "/metrics")["messages_received"]
                > before["messages_received"]
            ),
            30,
            "the reading through the bridge",
            deployed["bridge"],
        )
    finally:
        gw.close()
    after = _get(deployed["bridge_url"] + "/metrics")
    assert after["mqtt_connected"] is True
    assert after["mqtt_disconnects"] == before["mqtt_disconnects"]


@needs_root
@pytest.mark.stack
def test_bridge_and_worker_as_uid_10001_carry_a_reading_and_answer_prometheus(
    deployed: dict[str, Any],
) -> None:
    dep: Deployment = deployed["dep"]
    worker: Running = deployed["worker"]
    for proc in (deployed["bridge"], worker):
        assert _uid_of(proc.proc.pid) == APP_UID
    ca = deployed["certs"] / "ca.crt"
    gw = TlsGateway(
        deployed["tls"], "hrfco-seoul", dep.secrets["GYEONGBO_MQTT_PASSWORD__HRFCO_SEOUL"], ca
    )
    try:
        now = time.time_ns() // 1_000_000
        for i in range(5):
            r = {
                "station": "1018683",
                "ts": now - (5 - i) * 1000,
                "seq": 100 + i,
                "values": {"level_m": 3.0},
            }
            assert gw.publish(f"{deployed['root']}/water_level/1018683", r) == 0
    finally:
        gw.close()
    url = deployed["worker_url"]
    _wait(lambda: _get(url + "/metrics")["readings"] >= 5, 60, "the readings in the worker", worker)
    # its files on the fresh data volume belong to uid 10001
    files = list(deployed["wdata"].rglob("*"))
    assert any(f.name == "cap" and f.is_dir() for f in files)  # the CAP feed's folder
    assert {f.stat().st_uid for f in files} == {APP_UID}
    # a Prometheus scrape of both, parsed by prometheus_client
    for base, prefix in ((deployed["bridge_url"], "gyeongbo_bridge"), (url, "gyeongbo_worker")):
        headers, body = _get(base + "/metrics", accept=PROMETHEUS_ACCEPT)
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        fams = {f.name: f for f in openmetrics_families(body)}
        assert any(n.startswith(prefix) for n in fams)
        headers, body = _get(base + "/metrics", accept="text/plain")
        fams = {f.name: f for f in text_string_to_metric_families(body)}
        readings = fams[
            f"{prefix}_readings_produced" if "bridge" in prefix else f"{prefix}_readings"
        ]
        assert readings.type == "counter" and readings.samples[0].value >= 5
    # the API wants an operator's token; the `operators` tool issues one on its volume
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(url + "/alerts")
    assert err.value.code == 401
    entry = dep.service("operators")["entrypoint"][1:]
    res = dep.run_as(
        "operators",
        [*entry, "add", "kim", "--role", "viewer"],
        dep.env("operators"),
    )
    assert isinstance(res, subprocess.CompletedProcess) and res.returncode == 0, res.stderr
    token = res.stdout.strip().splitlines()[-1]
    assert _get(url + "/alerts", token=token) == []
    tokens = deployed["ops"] / "tokens.json"
    assert tokens.stat().st_uid == APP_UID and token not in tokens.read_text()


#: The prom/prometheus image's user (nobody), which Debian's binary runs as here.
PROMETHEUS_UID = 65534


@needs_root
@pytest.mark.stack
def test_prometheus_with_the_compose_config_finds_the_bridge_and_the_worker_up(
    compose: dict[str, Any], deployed: dict[str, Any]
) -> None:
    """Prometheus itself, with the compose file's scrape config: Debian's package (2.42;
    compose runs the prom/prometheus v2.55.1 image), installed when missing. ``promtool``
    accepts the mounted file as it is; the server, run as the image's user on a fresh
    ``prometheus-data`` volume with the targets' service names mapped to the bridge and
    worker-1 running here, is ready on the compose health check's path, finds both up
    (scraping them as Prometheus does, OpenMetrics first) and stores their counters. worker-2
    does not run here: its target is mapped to a closed port and must show down, as a dead
    worker would in production."""
    dep: Deployment = deployed["dep"]
    promtool = ensure_binary("promtool", "prometheus", recommends=False)
    prometheus = ensure_binary("prometheus", "prometheus", recommends=False)
    data = dep.volume("prometheus-data", uid=PROMETHEUS_UID, gid=PROMETHEUS_UID, mode=0o755)
    config = dep.mounts("prometheus")["/etc/prometheus/prometheus.yml"]
    res = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stdout + res.stderr

    svcs = compose["services"]
    local = {
        f"bridge:{_env(svcs['bridge'])['GYEONGBO_BRIDGE__METRICS_PORT']}": deployed["bridge_url"],
        f"worker-1:{_env(svcs['worker-1'])['GYEONGBO_WORKER__WEB_PORT']}": deployed["worker_url"],
        f"worker-2:{_env(svcs['worker-2'])['GYEONGBO_WORKER__WEB_PORT']}": (
            f"http://127.0.0.1:{free_port()}"  # nothing listens there
        ),
    }
    cfg = yaml.safe_load(config.read_text())
    # A target's first scrape waits up to one interval (Prometheus spreads targets over it):
    # 2 s here instead of the compose's 15 s. promtool has checked the committed file as is.
    cfg["global"]["scrape_interval"] = "2s"
    service_of = {}
    for job in cfg["scrape_configs"]:
        for sc in job["static_configs"]:
            mapped = [local[t].removeprefix("http://") for t in sc["targets"]]
            service_of |= {m: t.split(":")[0] for m, t in zip(mapped, sc["targets"], strict=True)}
            sc["targets"] = mapped
    mapped_config = dep.root / "prometheus.yml"
    mapped_config.write_text(yaml.safe_dump(cfg))
    port = free_port()
    cmd = [
        "setpriv",
        f"--reuid={PROMETHEUS_UID}",
        f"--regid={PROMETHEUS_UID}",
        "--clear-groups",
        "--",
        prometheus,
        f"--config.file={mapped_config}",
        f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    prom = dep.start("prometheus", cmd)
    api = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            with urllib.request.urlopen(api + "/-/ready", timeout=5) as r:
                return bool(r.status == 200)

        _wait(ready, 60, "Prometheus /-/ready", prom)
        assert _uid_of(prom.proc.pid) == PROMETHEUS_UID

        def scraped() -> dict[tuple[str, str], tuple[str, str]] | None:
            targets = _get(api + "/api/v1/targets")["data"]["activeTargets"]
            out = {
                (t["labels"]["job"], service_of[t["labels"]["instance"]]): (
                    t["health"],
                    t["lastError"],
                )
                for t in targets
            }
            return out if all(h != "unknown" for h, _ in out.values()) else None

        # the first scrape of each target falls within the (shortened) interval
        health = _wait(scraped, 60, "a scrape of every target", prom)
        assert {k: h for k, (h, _) in health.items()} == {
            ("gyeongbo-bridge", "bridge"): "up",
            ("gyeongbo-worker", "worker-1"): "up",
            ("gyeongbo-worker", "worker-2"): "down",
        }, health
        assert "connection refused" in health[("gyeongbo-worker", "worker-2")][1]
        for metric, service in (
            ("gyeongbo_bridge_readings_produced_total", "bridge"),
            ("gyeongbo_worker_readings_total", "worker-1"),
        ):
            q = urllib.parse.urlencode({"query": metric})
            result = _get(f"{api}/api/v1/query?{q}")["data"]["result"]
            assert [service_of[r["metric"]["instance"]] for r in result] == [service], result
    finally:
        prom.stop()
