"""The local stack as one object: start every role, health-check it, stop it.

``Stack.up()`` starts, in order: mosquitto, the Kafka-protocol broker (then creates every
topic with its partition count), influxd with the v2-write compatibility endpoint, the
fake Twilio Messages API and (``postgres``, on by default) a PostgreSQL cluster of its own
for the subscriber store (:mod:`gyeongbo.stack.postgres`).

Mosquitto is secure by default: no anonymous client. Gateways (every gateway of the station
registry) connect to ``mqtt_port``, authenticated, held to the registry's topic ACL, each
with its user name as client id; bridges connect to ``mqtt_bridge_port`` (``mqtt_port + 1``)
as the bridge user, who may read the readings topics and nothing else. Passwords are
development passwords generated once under ``<home>/mqtt`` (``gyeongbo.stack.credentials``),
never printed; the tools read them from there. The ACL grants the configured topic root
and, for tests and benchmarks that isolate themselves, the same under one more leading
level (``+/gyeongbo/v1/readings/…``). Ports come from :class:`~gyeongbo.settings.StackSettings`; the
state (pids, ports) is written to ``<home>/stack.json`` so ``status`` and ``down`` work from
another process. Everything lives under ``home`` (default ``.gyeongbo/``, git-ignored).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gyeongbo.registry import load_registry
from gyeongbo.settings import Settings, StackSettings
from gyeongbo.stack import brokers, influx, mosquitto, postgres
from gyeongbo.stack.credentials import credentials_path, stack_password, write_mosquitto_files
from gyeongbo.stack.procs import Proc, StackError, pid_alive, port_open, spawn, stop
from gyeongbo.topics import create_topics

Report = Callable[[str], None]

#: Credentials the local fake Twilio accepts (not secrets: it is a local test double).
FAKE_TWILIO_SID = "AC" + "0" * 32
FAKE_TWILIO_TOKEN = "fake-twilio-auth-token"
FAKE_TWILIO_SERVICE = "MG" + "0" * 32


def _quiet(_: str) -> None:
    pass


@dataclass
class Stack:
    config: StackSettings
    settings: Settings = field(default_factory=Settings)
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.config.home.resolve()

    @property
    def state_file(self) -> Path:
        return self.home / "stack.json"

    # -- the addresses apps use --------------------------------------------------------
    @property
    def bridge_mqtt_port(self) -> int:
        """The bridges' MQTT listener."""
        return self.config.mqtt_bridge_port or self.config.mqtt_port + 1

    @property
    def bridge_user(self) -> str:
        return self.settings.mqtt.username or "gyeongbo-bridge"

    def mqtt_password(self, user: str) -> str:
        """The development password of a gateway (or of the bridge user) of this stack."""
        pw = stack_password(self.home, user)
        if pw is None:
            raise StackError(f"no MQTT user {user!r} in this stack (is it in the registry?)")
        return pw

    def lend_credentials(self, home: Path) -> None:
        """Copy this stack's development passwords under another home: a pipeline that keeps
        its files apart (``GYEONGBO_STACK__HOME`` elsewhere, as tests and benchmarks do) still
        finds them there."""
        src, dst = credentials_path(self.home), credentials_path(home)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        dst.chmod(0o600)

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.config.kafka_port}"

    @property
    def influx_url(self) -> str:
        """The compat endpoint: serves /api/v2/write and /query."""
        return f"http://127.0.0.1:{self.config.influx_compat_port}"

    @property
    def influxd_url(self) -> str:
        return f"http://127.0.0.1:{self.config.influxd_port}"

    @property
    def twilio_url(self) -> str:
        return f"http://127.0.0.1:{self.config.fake_twilio_port}"

    @property
    def postgres_url(self) -> str | None:
        """The store URL of the stack's PostgreSQL (None when the stack runs without)."""
        return postgres.url(self.config.postgres_port) if self.config.postgres else None

    @property
    def store_url(self) -> str:
        """Where apps on this stack keep subscribers and the sent log: the stack's
        PostgreSQL, or without it an SQLite file in the stack's folder."""
        return self.postgres_url or f"sqlite:///{self.home / 'subscribers.sqlite'}"

    def env(self) -> dict[str, str]:
        """``GYEONGBO_*`` variables that point any gyeongbo process at this stack."""
        return {
            "GYEONGBO_MQTT__HOST": "127.0.0.1",
            "GYEONGBO_MQTT__PORT": str(self.bridge_mqtt_port),
            "GYEONGBO_MQTT__USERNAME": self.bridge_user,
            "GYEONGBO_GATEWAY__HOST": "127.0.0.1",
            "GYEONGBO_GATEWAY__PORT": str(self.config.mqtt_port),
            "GYEONGBO_KAFKA__BOOTSTRAP": self.kafka_bootstrap,
            "GYEONGBO_KAFKA__BROKER": self.config.broker,
            "GYEONGBO_INFLUX__URL": self.influx_url,
            "GYEONGBO_TWILIO__API_BASE": self.twilio_url,
            # The fake Twilio accepts these; the real twilio client is used end to end.
            "GYEONGBO_TWILIO__ACCOUNT_SID": FAKE_TWILIO_SID,
            "GYEONGBO_TWILIO__AUTH_TOKEN": FAKE_TWILIO_TOKEN,
            "GYEONGBO_TWILIO__MESSAGING_SERVICE_SID": FAKE_TWILIO_SERVICE,
            "GYEONGBO_STACK__HOME": str(self.home),
            "GYEONGBO_STACK__BROKER": self.config.broker,
            "GYEONGBO_STACK__MQTT_PORT": str(self.config.mqtt_port),
            "GYEONGBO_STACK__MQTT_BRIDGE_PORT": str(self.bridge_mqtt_port),
            "GYEONGBO_STACK__KAFKA_PORT": str(self.config.kafka_port),
            "GYEONGBO_STACK__INFLUXD_PORT": str(self.config.influxd_port),
            "GYEONGBO_STACK__INFLUX_COMPAT_PORT": str(self.config.influx_compat_port),
            "GYEONGBO_STACK__FAKE_TWILIO_PORT": str(self.config.fake_twilio_port),
            "GYEONGBO_STACK__POSTGRES": "true" if self.config.postgres else "false",
            "GYEONGBO_STACK__POSTGRES_PORT": str(self.config.postgres_port),
            "GYEONGBO_STORE__URL": self.store_url,
        }

    def app_settings(self) -> Settings:
        """Settings for apps that talk to this stack (the defaults with the stack's ports)."""
        base = self.settings.model_dump()
        base["mqtt"].update(
            host="127.0.0.1",
            port=self.bridge_mqtt_port,
            username=self.bridge_user,
            password=stack_password(self.home, self.bridge_user),
        )
        base["gateway"].update(host="127.0.0.1", port=self.config.mqtt_port)
        base["kafka"].update(bootstrap=self.kafka_bootstrap, broker=self.config.broker)
        base["influx"].update(url=self.influx_url)
        base["twilio"].update(
            api_base=self.twilio_url,
            account_sid=FAKE_TWILIO_SID,
            auth_token=FAKE_TWILIO_TOKEN,
            messaging_service_sid=FAKE_TWILIO_SERVICE,
        )
        base["stack"] = self.config.model_dump()
        base["store"]["url"] = self.store_url
        return Settings.model_validate(base)

    # -- lifecycle ------------------------------------------------------------------------
    def up(self, report: Report = _quiet) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.state_file.exists():
            self.load()
            if self.healthy():
                report("stack already running")
                return
            self.down(report)
        try:
            self._up(report)
        except BaseException:
            self.down(report)
            raise
        self.save()

    def _up(self, report: Report) -> None:
        c = self.config
        t0 = time.monotonic()
        self.start_mosquitto(report)
        self.start_broker(report)
        report(f"influxd on 127.0.0.1:{c.influxd_port}")
        self.procs["influxd"] = influx.start(
            self.home, c.influxd_port, c.influxd_port + 1000, [self.settings.influx.bucket]
        )
        report(f"influx v2-write compat on 127.0.0.1:{c.influx_compat_port}")
        self.procs["influx-compat"] = influx.start_compat(
            self.home, c.influx_compat_port, c.influxd_port
        )
        report(f"fake Twilio on 127.0.0.1:{c.fake_twilio_port}")
        self.procs["fake-twilio"] = spawn(
            "fake-twilio",
            [
                sys.executable,
                "-m",
                "gyeongbo.stack.fake_twilio",
                "--host",
                "127.0.0.1",
                "--port",
                str(c.fake_twilio_port),
                "--data",
                str(self.home / "fake-twilio"),
                "--auth-token",
                FAKE_TWILIO_TOKEN,
            ],
            port=c.fake_twilio_port,
            home=self.home,
        )
        if c.postgres:
            report(f"PostgreSQL on 127.0.0.1:{c.postgres_port}")
            self.procs["postgres"] = postgres.start(self.home, c.postgres_port)
        report(f"stack up in {time.monotonic() - t0:.1f}s")

    def start_mosquitto(self, report: Report = _quiet) -> Proc:
        """Mosquitto with its two authenticated listeners (the module docstring)."""
        c = self.config
        registry = load_registry(self.settings.paths.stations)
        root = self.settings.mqtt.topic_root.rstrip("/")
        files = write_mosquitto_files(
            self.home, registry, bridge_user=self.bridge_user, roots=[root, f"+/{root}"]
        )
        report(
            f"mosquitto: gateways on 127.0.0.1:{c.mqtt_port} ({len(registry.gateways)} "
            f"authenticated, topic ACL), bridges on 127.0.0.1:{self.bridge_mqtt_port}; "
            f"development passwords in {files.gateway_passwords.parent}"
        )
        self.procs["mosquitto"] = mosquitto.start(
            self.home,
            c.mqtt_port,
            listeners=[
                mosquitto.Listener(
                    c.mqtt_port,
                    files.gateway_passwords,
                    files.gateway_acl,
                    username_is_client_id=True,
                ),
                mosquitto.Listener(self.bridge_mqtt_port, files.bridge_passwords, files.bridge_acl),
            ],
        )
        return self.procs["mosquitto"]

    def start_broker(self, report: Report = _quiet) -> Proc:
        c = self.config
        report(f"Kafka-protocol broker ({c.broker}) on 127.0.0.1:{c.kafka_port}")
        proc = brokers.launcher(c.broker).start(self.home, c.kafka_port)
        self.procs["kafka"] = proc
        counts = create_topics(self.kafka_bootstrap, self.settings.kafka.topics.all())
        for t in self.settings.kafka.topics.all():
            if counts.get(t.name) != t.partitions:
                raise StackError(
                    f"topic {t.name}: broker reports {counts.get(t.name)} partitions, "
                    f"expected {t.partitions}"
                )
        report(f"topics ready: {', '.join(f'{k}×{v}' for k, v in counts.items())}")
        self.save()
        return proc

    def stop_broker(self, *, kill: bool = False) -> None:
        import signal

        proc = self.procs.pop("kafka", None)
        if proc is not None:
            stop(proc.pid, sig=signal.SIGKILL if kill else signal.SIGTERM)
            self.save()

    def down(self, report: Report = _quiet) -> None:
        if not self.procs and self.state_file.exists():
            self.load()
        for name in reversed(list(self.procs)):
            report(f"stopping {name}")
            if name == "postgres":
                postgres.stop(self.home)  # fast shutdown, then the group if still there
            stop(self.procs[name].pid)
        self.procs.clear()
        self.state_file.unlink(missing_ok=True)

    def status(self) -> dict[str, dict[str, Any]]:
        if not self.procs and self.state_file.exists():
            self.load()
        return {
            name: {
                "pid": p.pid,
                "port": p.port,
                "alive": pid_alive(p.pid),
                "listening": port_open(p.port),
                "log": str(p.log),
            }
            for name, p in self.procs.items()
        }

    def healthy(self) -> bool:
        st = self.status()
        return bool(st) and all(s["alive"] and s["listening"] for s in st.values())

    # -- persistence of the process table ------------------------------------------------
    def save(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        data = {
            "config": self.config.model_dump(mode="json"),
            "procs": {n: {**asdict(p), "log": str(p.log)} for n, p in self.procs.items()},
        }
        self.state_file.write_text(json.dumps(data, indent=2))

    def load(self) -> None:
        data = json.loads(self.state_file.read_text())
        self.procs = {
            n: Proc(name=p["name"], pid=p["pid"], port=p["port"], log=Path(p["log"]))
            for n, p in data["procs"].items()
        }
        self.config = StackSettings.model_validate(data["config"])
