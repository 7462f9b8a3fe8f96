"""One frozen, typed settings tree, read from ``GYEONGBO_`` environment variables and files.

Sources, highest priority first: keyword arguments, environment variables, a ``.env`` file in
the working directory, a YAML file named by ``GYEONGBO_SETTINGS_FILE``, then the defaults
below. The defaults point at the local stack that ``gyeongbo stack up`` starts on loopback
ports of its own, so a fresh checkout works with no configuration at all.

Nested fields use ``__``: ``GYEONGBO_KAFKA__BOOTSTRAP=broker:9092``,
``GYEONGBO_TWILIO__AUTH_TOKEN=…``. Secrets are :class:`~pydantic.SecretStr`: masked in
``repr`` and in ``gyeongbo config show``, never logged.

>>> s = Settings(_env_file=None)
>>> s.kafka.topics.readings.name
'readings'
>>> "auth_token=SecretStr('**********')" in repr(Settings(twilio={"auth_token": "x"}))
True
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

#: Repository root (where ``config/`` lives) when running from a checkout.
REPO_ROOT = Path(__file__).resolve().parent.parent


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Topic(_Frozen):
    name: str
    partitions: int = Field(ge=1)
    #: Compacted topics keep the latest value per key (used for state-like streams).
    compacted: bool = False


class Topics(_Frozen):
    """Every topic the project uses; all are created explicitly with their partition count
    (Faust creates only its internal topics; a local broker auto-creates with 1 partition)."""

    readings: Topic = Topic(name="readings", partitions=8)
    rejected: Topic = Topic(name="readings.rejected", partitions=1)
    detections: Topic = Topic(name="detections", partitions=8)
    alerts: Topic = Topic(name="alerts", partitions=4)
    hq_stages: Topic = Topic(name="hq.stages", partitions=1)
    #: Worker-internal: detections fanned out per zone, operator actions and timer ticks,
    #: keyed (and partitioned) by zone like ``alerts``, so one worker owns each zone's stage.
    zone_commands: Topic = Topic(name="zone.commands", partitions=4)
    #: Worker-internal: every alert transition, on one partition, for the HQ stage machine.
    hq_inputs: Topic = Topic(name="hq.inputs", partitions=1)
    sms_status: Topic = Topic(name="sms.status", partitions=1)

    @model_validator(mode="before")
    @classmethod
    def _merge_partial(cls, data: Any) -> Any:
        """``GYEONGBO_KAFKA__TOPICS__READINGS__PARTITIONS=32`` alone keeps the default name."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if isinstance(value, dict) and field is not None and field.default is not None:
                merged[name] = {**field.default.model_dump(), **value}
        return merged

    def all(self) -> list[Topic]:
        return [getattr(self, name) for name in type(self).model_fields]


class MqttSettings(_Frozen):
    """The bridge's MQTT connection (the local stack gives bridges a listener of their own,
    ``stack.mqtt_port + 1``; gateways use ``stack.mqtt_port``: :class:`GatewaySettings`)."""

    host: str = "127.0.0.1"
    port: int = 18832
    username: str | None = "gyeongbo-bridge"
    #: None: ``GYEONGBO_MQTT_PASSWORD__<USERNAME>``, else the local stack's development
    #: password (``gyeongbo.stack.credentials``).
    password: SecretStr | None = None
    tls: bool = False
    topic_root: str = "gyeongbo/v1/readings"
    client_id: str = "gyeongbo-bridge"
    keepalive_s: int = 30


class GatewaySettings(_Frozen):
    """Where the drill runner, the simulators and the benchmarks publish, as gateways do (the
    gateways' listener). Each publishes as a gateway of the registry: the drill runner as the
    registry's drill gateway; a gateway's password comes from
    ``GYEONGBO_MQTT_PASSWORD__<GATEWAY>``, else from the local stack's development passwords."""

    host: str = "127.0.0.1"
    port: int = 18831
    tls: bool = False


class KafkaSettings(_Frozen):
    bootstrap: str = "127.0.0.1:19092"
    topics: Topics = Topics()
    client_id: str = "gyeongbo"


class InfluxSettings(_Frozen):
    #: Base URL of an InfluxDB that serves ``/api/v2/write`` and InfluxQL ``/query``.
    url: str = "http://127.0.0.1:18087"
    org: str = "gyeongbo"
    bucket: str = "gyeongbo"
    token: SecretStr = SecretStr("gyeongbo-dev-token")


class TwilioSettings(_Frozen):
    """Twilio Messaging. With no ``account_sid``/``auth_token`` the dispatcher runs dry."""

    #: Where ``https://*.twilio.com`` requests go; None = the real Twilio.
    api_base: str | None = None
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    messaging_service_sid: str | None = None
    status_callback_url: str | None = None
    max_sms_chars: int = Field(default=90, ge=40, le=157)
    #: Messages per second to Twilio (token bucket); Twilio queues above its account limit.
    rate_per_s: float = Field(default=10.0, gt=0)
    #: CAP <sender> of every alert document.
    cap_sender: str = "gyeongbo@situation-room.example.kr"


class PathSettings(_Frozen):
    stations: Path = REPO_ROOT / "config" / "stations.yaml"
    zones: Path = REPO_ROOT / "config" / "zones"
    recipients: Path = REPO_ROOT / "config" / "recipients.yaml"
    templates: Path = REPO_ROOT / "config" / "templates.yaml"
    scenarios: Path = REPO_ROOT / "simulators" / "scenarios"
    #: KOSTAT administrative boundaries (GeoJSON); see config/boundaries/ATTRIBUTION.md.
    admin_boundaries: Path = REPO_ROOT / "config" / "boundaries"
    #: Durable SMS sent log (SQLite) of the dispatcher.
    sent_log: Path = Path(".gyeongbo") / "worker" / "sms-sent.sqlite"
    #: Folder the CAP 1.2 feed (documents + index.json) is written to.
    cap_feed: Path = Path(".gyeongbo") / "worker" / "cap"


class StackSettings(_Frozen):
    """The local development stack (``gyeongbo stack``); not used in production."""

    home: Path = Path(".gyeongbo")
    broker: Literal["noida", "tansu"] = "noida"
    #: The gateways' MQTT listener (password file and ACL from the registry; a client's id is
    #: its user name, so no gateway can take the bridge's).
    mqtt_port: int = 18831
    #: The bridges' MQTT listener (the bridge user only); None = ``mqtt_port + 1``.
    mqtt_bridge_port: int | None = None
    kafka_port: int = 19092
    influxd_port: int = 18086
    influx_compat_port: int = 18087
    fake_twilio_port: int = 18088


class WorkerSettings(_Frozen):
    """The Faust worker (``gyeongbo worker``)."""

    #: Faust app id: the consumer group and the prefix of its changelog topics.
    app_id: str = "gyeongbo"
    web_host: str = "127.0.0.1"
    web_port: int = 16066
    #: Local folder for the worker's files (CAP documents, the SMS sent log's local copy).
    data_dir: Path = Path(".gyeongbo") / "worker"
    #: How often the stage machines are advanced (minimum durations, reminders), seconds.
    tick_s: float = 5.0
    #: Seconds between metric log lines.
    log_every_s: float = 30.0
    #: Faust broker session timeout (a stopped worker's partitions move after this).
    session_timeout_s: float = 10.0
    #: Detector state is checkpointed to its changelog at most this often per partition
    #: (seconds); after a crash a station's detector state is at most this old.
    state_checkpoint_s: float = Field(default=60.0, ge=0)
    #: Static group membership (Kafka KIP-345): a restarted worker with the same instance id
    #: takes its partitions straight back instead of waiting for the session to expire.
    #: Give each worker a stable, unique one (e.g. the pod name); None = dynamic membership.
    instance_id: str | None = None
    #: Raise a data-quality alert for stations that go silent (docs/design.md §4).
    deadman: bool = True
    #: Seconds between the detectors' clock sweeps over every station's state: deadman, and
    #: closing air-quality hours that no later reading closed.
    deadman_every_s: float = Field(default=30.0, gt=0)
    #: ``readings`` records already waiting when one arrives are joined into one detector
    #: call of at most this many readings (1 = one record per call). Nothing waits for
    #: records to come; a backlog is processed in big batches (README, Benchmarks).
    coalesce_readings: int = Field(default=5_000, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GYEONGBO_",
        env_nested_delimiter="__",
        env_file=".env",
        frozen=True,
        extra="ignore",
    )

    mqtt: MqttSettings = MqttSettings()
    gateway: GatewaySettings = GatewaySettings()
    kafka: KafkaSettings = KafkaSettings()
    influx: InfluxSettings = InfluxSettings()
    twilio: TwilioSettings = TwilioSettings()
    paths: PathSettings = PathSettings()
    stack: StackSettings = StackSettings()
    worker: WorkerSettings = WorkerSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        yaml_file = os.environ.get("GYEONGBO_SETTINGS_FILE")
        if yaml_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=yaml_file))
        sources.append(file_secret_settings)
        return tuple(sources)

    def public_dict(self) -> dict[str, Any]:
        """A JSON-able view with every secret masked (for ``gyeongbo config show``)."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********'


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
