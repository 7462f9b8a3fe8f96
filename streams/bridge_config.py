"""The bridge's own settings, read from ``GYEONGBO_BRIDGE__*`` environment variables.

Connection settings (MQTT host/port/credentials/client id/topic root, Kafka bootstrap and the
``readings``/``readings.rejected`` topics) come from the shared
:class:`gyeongbo.settings.Settings`; the knobs below are the bridge's alone. They use the same
``GYEONGBO_`` prefix and ``__`` nesting as the shared tree, so moving this model into it as
``Settings.bridge`` later changes no variable name: ``GYEONGBO_BRIDGE__MAX_FUTURE_S=60``.

>>> BridgeSettings(_env_file=None).max_inflight
1000
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.validate import Limits

__all__ = ["BridgeSettings"]


class BridgeSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GYEONGBO_BRIDGE__", env_file=".env", frozen=True, extra="ignore"
    )

    # -- validation ----------------------------------------------------------------------
    max_payload_bytes: int = Field(default=1_048_576, ge=1)
    max_batch_readings: int = Field(default=20_000, ge=1)
    max_future_s: float = Field(default=300.0, ge=0)
    max_past_s: float = Field(default=7 * 86_400.0, ge=0)
    # -- duplicates ----------------------------------------------------------------------
    #: How many (station, seq) pairs delivered to Kafka are remembered to drop retries.
    dedup_window: int = Field(default=500_000, ge=0)
    # -- flow control --------------------------------------------------------------------
    #: MQTT messages received but not yet acknowledged (the MQTT v5 Receive Maximum the
    #: bridge announces; the broker holds the rest). Bounds the bridge's memory.
    max_inflight: int = Field(default=1000, ge=1, le=65535)
    #: A flush is sent to Kafka when this many readings are waiting …
    flush_readings: int = Field(default=20_000, ge=1)
    #: … or when the oldest waiting message is this old.
    linger_ms: int = Field(default=20, ge=0)
    #: At most this many readings in one ``readings`` record (bigger partition groups split).
    max_record_readings: int = Field(default=5_000, ge=1)
    #: Persistent MQTT session kept by the broker while the bridge is away.
    session_expiry_s: int = Field(default=7 * 86_400, ge=1)
    #: MQTT v5 shared-subscription group (``$share/{group}/…``) for several bridges; None =
    #: one bridge receives everything.
    shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    #: QoS 0 messages (outside the contract, which is QoS 1) are shed, and counted as
    #: ``qos0_dropped``, when this many messages already wait in the bridge.
    qos0_backlog: int = Field(default=100_000, ge=1)
    # -- Kafka producer ------------------------------------------------------------------
    producer_linger_ms: int = Field(default=5, ge=0)
    #: Under Apache Kafka's default message.max.bytes (1 MiB) with room to spare; one
    #: `readings` record (≤ max_record_readings) is at most ~0.6 MB.
    producer_max_batch_bytes: int = Field(default=524_288, ge=1024)
    producer_max_request_bytes: int = Field(default=4_194_304, ge=1024)
    request_timeout_ms: int = Field(default=15_000, ge=1000)
    compression: str | None = None
    #: Wait this long before re-sending a flush Kafka did not accept (doubles up to 10 s).
    retry_backoff_s: float = Field(default=0.5, gt=0)
    # -- metrics -------------------------------------------------------------------------
    #: HTTP port for ``GET /metrics`` (Prometheus; JSON when asked) and ``/healthz``; 0 = off.
    metrics_port: int = Field(default=16067, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    #: Write the bridge's figures to InfluxDB's ``pipeline`` measurement this often
    #: (the Operations dashboard's bridge series: throughput, lag, rejected); 0 = never.
    influx_interval_s: float = Field(default=10.0, ge=0)
    #: Log a metrics line this often; 0 = never.
    log_interval_s: float = Field(default=30.0, ge=0)

    def limits(self) -> Limits:
        return Limits(
            max_payload_bytes=self.max_payload_bytes,
            max_batch_readings=self.max_batch_readings,
            max_future_s=self.max_future_s,
            max_past_s=self.max_past_s,
        )
