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

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
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
    #: Operators' data-quality alerts (sensor health; docs/design.md §11.7), keyed and
    #: partitioned by zone like ``alerts``. Never public.
    dq_alerts: Topic = Topic(name="dq.alerts", partitions=4)
    #: Operators' reminders of alerts nobody has acknowledged (docs/design.md §4, §11.8),
    #: keyed and partitioned by zone like ``alerts``. Never public.
    reminders: Topic = Topic(name="alerts.reminders", partitions=4)
    #: Worker-internal: every public zone transition again, keyed by namespace|hazard, so
    #: one worker sees all zones of a hazard and groups them into events per person.
    notify: Topic = Topic(name="alerts.notify", partitions=4)

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

    @model_validator(mode="after")
    def _zone_partitions_agree(self) -> Topics:
        """The stage agent writes a zone's alerts, data-quality alerts and reminders to the
        partition number of the ``zone.commands`` record it applied (so each zone's output
        stays in order with its input): those topics need as many partitions."""
        n = self.zone_commands.partitions
        odd = [
            f"{t.name} has {t.partitions}"
            for t in (self.alerts, self.dq_alerts, self.reminders)
            if t.partitions != n
        ]
        if odd:
            raise ValueError(
                f"{', '.join(odd)} partitions; they must have as many as "
                f"{self.zone_commands.name} ({n})"
            )
        return self

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
    """Where Kafka is and how clients authenticate (every producer, consumer and admin client
    of the bridge, the workers, ``topics create`` and the drill runner uses these)."""

    bootstrap: str = "127.0.0.1:19092"
    #: What answers at ``bootstrap``: ``kafka`` (Apache Kafka or a service that conforms to
    #: it; production), or a local stand-in the development stack runs and sets here
    #: (``noida``, ``tansu``). Workers correct the client for noida-db's defects only
    #: (``streams/kafka_compat.py``).
    broker: Literal["kafka", "noida", "tansu"] = "kafka"
    topics: Topics = Topics()
    client_id: str = "gyeongbo"
    #: ``PLAINTEXT`` (the local stack), ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    #: SASL mechanism with a ``SASL_*`` protocol.
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: CA bundle that signs the brokers' certificates (``SSL``/``SASL_SSL``); None = the
    #: system's trust store.
    ssl_cafile: Path | None = None
    #: Client certificate and key (PEM) for brokers that require mutual TLS.
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_check_hostname: bool = True
    #: Replication factor of every topic the project creates (``topics create``) and of the
    #: workers' changelog topics. 1 suits a single development broker; production: 3.
    replication_factor: int = Field(default=1, ge=1)
    #: ``min.insync.replicas`` of those topics: with ``acks=all`` a write succeeds only once
    #: this many replicas have it. None = the broker's default. Production: 2.
    min_insync_replicas: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_username and sasl_password"
            )
        if self.min_insync_replicas is not None and (
            self.min_insync_replicas > self.replication_factor
        ):
            raise ValueError("min_insync_replicas cannot exceed replication_factor")
        return self


class InfluxSettings(_Frozen):
    #: Base URL of an InfluxDB that serves ``/api/v2/write`` and InfluxQL ``/query``.
    url: str = "http://127.0.0.1:18087"
    org: str = "gyeongbo"
    bucket: str = "gyeongbo"
    token: SecretStr = SecretStr("gyeongbo-dev-token")
    #: A file holding the token (a write-only token the InfluxDB init writes in production);
    #: when set, the token is read from it and ``token`` is ignored.
    token_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _token_from_file(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("token_file"):
            path = Path(data["token_file"])
            try:
                token = path.read_text(encoding="utf-8").strip()
            except OSError as err:
                raise ValueError(f"token_file {path}: {err.strerror}") from None
            if not token:
                raise ValueError(f"token_file {path} is empty")
            data = {**data, "token": token}
        return data


class TwilioSettings(_Frozen):
    """Twilio Messaging. With no ``account_sid``/``auth_token`` the dispatcher runs dry."""

    #: Where ``https://*.twilio.com`` requests go; None = the real Twilio.
    api_base: str | None = None
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    messaging_service_sid: str | None = None
    status_callback_url: str | None = None
    max_sms_chars: int = Field(default=90, ge=40, le=157)
    #: Seconds before a request to Twilio is abandoned (then retried as a transient error).
    timeout_s: float = Field(default=15.0, gt=0)
    #: CAP <sender> of every alert document.
    cap_sender: str = "gyeongbo@situation-room.example.kr"

    @field_validator("api_base", "status_callback_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        """An empty variable (compose passes unset optional ones as "") means none."""
        return value or None


class PathSettings(_Frozen):
    stations: Path = REPO_ROOT / "config" / "stations.yaml"
    zones: Path = REPO_ROOT / "config" / "zones"
    recipients: Path = REPO_ROOT / "config" / "recipients.yaml"
    templates: Path = REPO_ROOT / "config" / "templates.yaml"
    scenarios: Path = REPO_ROOT / "simulators" / "scenarios"
    #: KOSTAT administrative boundaries (GeoJSON); see config/boundaries/ATTRIBUTION.md.
    admin_boundaries: Path = REPO_ROOT / "config" / "boundaries"
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
    #: Start a PostgreSQL cluster of the stack's own (Debian's ``postgresql``, under
    #: ``<home>/postgres``) for the subscriber store; never the machine's server on 5432.
    postgres: bool = True
    postgres_port: int = 15432


class StoreSettings(_Frozen):
    """The subscriber store and SMS sent log (``streams/store``).

    ``sqlite:///path`` (embedded; the default, for drills and demos: no server) or
    ``postgresql://user:password@host:port/db`` (production; the local stack prints its
    own). A secret: a PostgreSQL URL may carry a password.
    """

    url: SecretStr = SecretStr("sqlite:///.gyeongbo/subscribers.sqlite")
    #: YAML imported into a store that has no subscribers at all when a worker starts (a
    #: fresh drill or demo); empty = never (production imports with
    #: ``gyeongbo recipients import``).
    seed_recipients: Path | None = REPO_ROOT / "config" / "recipients.yaml"
    #: PostgreSQL connections per process (the fan-out writes in batches from a few threads).
    pool_size: int = Field(default=4, ge=1, le=64)

    @field_validator("seed_recipients", mode="before")
    @classmethod
    def _empty_is_none(cls, v: Any) -> Any:
        return None if v in ("", None) else v


class DeliverySettings(_Frozen):
    """Recipient-centred SMS delivery and its fan-out (docs/design.md §5)."""

    #: Requests to the SMS provider in flight at most (Twilio's default account concurrency
    #: is 100; beyond it answers 429). Adaptive: 429s halve it, successes grow it back.
    max_in_flight: int = Field(default=100, ge=1, le=1000)
    min_in_flight: int = Field(default=4, ge=1)
    #: An event of a hazard closes once every zone has been below 주의 this long; a zone
    #: raised again within it belongs to the same event.
    group_hold_s: float = Field(default=3600.0, ge=0)
    #: Attempts per message for rate-limit and 5xx answers before it is recorded failed.
    max_attempts: int = Field(default=8, ge=1)
    #: Retry backoff: doubling from ``backoff_s`` up to ``backoff_max_s``.
    backoff_s: float = Field(default=0.5, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    #: Outcomes are written to the sent log in batches of at most this many rows, at least
    #: every ``flush_s`` seconds.
    batch_rows: int = Field(default=500, ge=1)
    flush_s: float = Field(default=0.2, gt=0)


class WorkerSettings(_Frozen):
    """The Faust worker (``gyeongbo worker``)."""

    #: Faust app id: the consumer group and the prefix of its changelog topics.
    app_id: str = "gyeongbo"
    #: The interface the HTTP API binds to (loopback unless set; ``0.0.0.0`` in a container).
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
    #: records to come; a backlog is processed in big batches (docs/benchmarks.md).
    coalesce_readings: int = Field(default=5_000, ge=1)
    #: Standby replicas of every table (Faust ``table_standby_replicas``): another worker
    #: keeps a warm copy, so a failed worker's partitions move without replaying the
    #: changelog from the start. 0 with one worker; production: 1.
    standby_replicas: int = Field(default=0, ge=0)

    def instance(self) -> str:
        """This worker's ``instance`` tag in InfluxDB and Prometheus: ``instance_id`` when set,
        else the host name (a container's own), so no two workers write the same series."""
        import socket

        return self.instance_id or socket.gethostname()


class OperatorSettings(_Frozen):
    """Operators' access to the worker's HTTP API (``streams/web_auth.py``) and the token the
    ``gyeongbo alerts …`` commands send."""

    #: Hashed operator tokens (``gyeongbo operators add/list/revoke``); shared by every worker.
    tokens_file: Path = Path(".gyeongbo") / "operators" / "tokens.json"
    #: The token ``gyeongbo alerts …`` sends (``Authorization: Bearer …``).
    token: SecretStr | None = None
    #: Failed authentications a client address may make per ``lockout_s`` before it is
    #: refused with 429 until the window has passed.
    max_failures: int = Field(default=10, ge=1)
    lockout_s: float = Field(default=60.0, gt=0)
    #: Browser origins allowed to call the API (none: a page from anywhere is refused).
    allowed_origins: tuple[str, ...] = ()


class HoldSettings(_Frozen):
    """How long a public stage's condition must stay below its line before the stage steps down
    or clears, per hazard, in seconds of event time (docs/design.md §4). None keeps the
    default of ``alerting/policy.py``, where each default states its source: flood 1,800,
    heavy_rain 21,600 (6 h), structural 1,800, sensor_health 600, pm10 / pm25 / ozone 0 (the
    law's cancel levels are in the detectors), earthquake 0 (it lapses 30 min after its last
    detection)."""

    flood: int | None = Field(default=None, ge=0)
    heavy_rain: int | None = Field(default=None, ge=0)
    pm10: int | None = Field(default=None, ge=0)
    pm25: int | None = Field(default=None, ge=0)
    ozone: int | None = Field(default=None, ge=0)
    structural: int | None = Field(default=None, ge=0)
    earthquake: int | None = Field(default=None, ge=0)
    sensor_health: int | None = Field(default=None, ge=0)


class RepeatSettings(_Frozen):
    """How often operators are reminded of an alert nobody has acknowledged, per hazard, in
    seconds of event time (docs/design.md §4); 0 = never. None keeps the default of
    ``alerting/policy.py``: 1,800 for every hazard but earthquake (never)."""

    flood: int | None = Field(default=None, ge=0)
    heavy_rain: int | None = Field(default=None, ge=0)
    pm10: int | None = Field(default=None, ge=0)
    pm25: int | None = Field(default=None, ge=0)
    ozone: int | None = Field(default=None, ge=0)
    structural: int | None = Field(default=None, ge=0)
    earthquake: int | None = Field(default=None, ge=0)
    sensor_health: int | None = Field(default=None, ge=0)


class AlertingSettings(_Frozen):
    """The alert stage machines (``GYEONGBO_ALERTING__…``)."""

    #: ``GYEONGBO_ALERTING__HOLD_S__HEAVY_RAIN=10800`` and so on (``Services.policies``
    #: applies them with ``alerting.policy.with_holds``).
    hold_s: HoldSettings = HoldSettings()
    #: ``GYEONGBO_ALERTING__REPEAT_S__FLOOD=900`` and so on (``alerting.policy.with_repeats``).
    repeat_s: RepeatSettings = RepeatSettings()


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
    store: StoreSettings = StoreSettings()
    delivery: DeliverySettings = DeliverySettings()
    operator: OperatorSettings = OperatorSettings()
    alerting: AlertingSettings = AlertingSettings()

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
