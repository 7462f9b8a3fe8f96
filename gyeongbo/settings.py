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
    sms_status: Topic = Topic(name="sms.status", partitions=1)
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

    def all(self) -> list[Topic]:
        return [getattr(self, name) for name in type(self).model_fields]


class MqttSettings(_Frozen):
    host: str = "127.0.0.1"
    port: int = 18831
    username: str | None = None
    password: SecretStr | None = None
    tls: bool = False
    topic_root: str = "gyeongbo/v1/readings"
    client_id: str = "gyeongbo-bridge"
    keepalive_s: int = 30


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
    #: Seconds before a request to Twilio is abandoned (then retried as a transient error).
    timeout_s: float = Field(default=15.0, gt=0)
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
    #: Folder the CAP 1.2 feed (documents + index.json) is written to.
    cap_feed: Path = Path(".gyeongbo") / "worker" / "cap"


class StackSettings(_Frozen):
    """The local development stack (``gyeongbo stack``); not used in production."""

    home: Path = Path(".gyeongbo")
    broker: Literal["noida", "tansu"] = "noida"
    mqtt_port: int = 18831
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
    kafka: KafkaSettings = KafkaSettings()
    influx: InfluxSettings = InfluxSettings()
    twilio: TwilioSettings = TwilioSettings()
    paths: PathSettings = PathSettings()
    stack: StackSettings = StackSettings()
    worker: WorkerSettings = WorkerSettings()
    store: StoreSettings = StoreSettings()
    delivery: DeliverySettings = DeliverySettings()

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
