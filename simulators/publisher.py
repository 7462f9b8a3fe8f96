"""Publish over MQTT exactly like a gateway: paho-mqtt 2.x, MQTT v5, QoS 1, docs/design.md
§11.1 topics, authenticated as a gateway of the registry.

:class:`MqttPublisher` wraps one paho client (callback API version 2, its network loop in a
background thread) and counts broker acknowledgements (PUBACK), so :meth:`flush` can wait
until every QoS 1 message is in the broker's hands and :meth:`publish` can bound the number
in flight. MQTT v5, so that a publish the broker refuses (the topic ACL: reason 0x87 *Not
authorized*) is a failure here, not a silent loss: :meth:`flush` raises on any. :func:`play`
sends a list of publications on a :class:`~simulators.generator.Clock`: each one when its
scenario time comes round at the chosen speed.

The drill runner and the load mode publish as the registry's drill gateway
(:func:`drill_gateway`): the ACL lets it publish only on ``{kind}/_batch/{gateway}`` and the
bridge takes everything it publishes as an exercise.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode

from gyeongbo.registry import Registry
from gyeongbo.settings import Settings
from gyeongbo.stack.credentials import mqtt_password
from simulators.generator import Clock, Publication

__all__ = [
    "MqttPublisher",
    "PlayStats",
    "PublishError",
    "drill_gateway",
    "gateway_publisher",
    "play",
]


def drill_gateway(registry: Registry) -> str:
    """The registry's drill gateway (``drill: true``): what drills and load publish as."""
    for gid, gw in sorted(registry.gateways.items()):
        if gw.drill:
            return gid
    raise PublishError(
        "the station registry has no drill gateway (a gateway with `drill: true`): drills and "
        "load publish as one, and the bridge marks everything it sends as an exercise"
    )


def gateway_publisher(settings: Settings, gateway: str, **kw: Any) -> MqttPublisher:
    """A publisher for ``gateway`` on the gateways' listener (``settings.gateway``), with its
    password from ``GYEONGBO_MQTT_PASSWORD__<GATEWAY>`` or the local stack."""
    password = mqtt_password(settings, gateway)
    if password is None:
        raise PublishError(
            f"no MQTT password for gateway {gateway!r}: set "
            f"GYEONGBO_MQTT_PASSWORD__{gateway.upper().replace('-', '_')}, or run against a "
            "local stack (its passwords are under GYEONGBO_STACK__HOME)"
        )
    g = settings.gateway
    return MqttPublisher(
        g.host, g.port, client_id=gateway, username=gateway, password=password, **kw
    )


class PublishError(RuntimeError):
    """The broker could not be reached or refused or lost messages."""


class MqttPublisher:
    """A QoS 1 publisher with acknowledgement counting and a bounded in-flight window."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        client_id: str = "gyeongbo-drill",
        username: str | None = None,
        password: str | None = None,
        qos: int = 1,
        max_in_flight: int = 500,
        keepalive_s: int = 30,
    ) -> None:
        self.host = host
        self.port = port
        self.qos = qos
        self.max_in_flight = max_in_flight
        self.keepalive_s = keepalive_s
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.refusal = ""
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.max_inflight_messages_set(max_in_flight)
        self._client.on_connect = self._on_connect
        self._client.on_publish = self._on_publish
        self._client.on_disconnect = self._on_disconnect

    # -- callbacks (network thread) ---------------------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        if rc.is_failure:
            self._connect_error = f"broker refused the connection: {rc}"
        self._connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: ReasonCode, props: Any
    ) -> None:
        self._connected.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, rc: ReasonCode, props: Any
    ) -> None:
        with self._cond:
            if rc.is_failure:
                self.failed += 1
                self.refusal = str(rc)
            self.acked += 1
            self._cond.notify_all()

    # -- API --------------------------------------------------------------------------------
    def connect(self, timeout_s: float = 10.0) -> None:
        try:
            self._client.connect(self.host, self.port, keepalive=self.keepalive_s)
        except OSError as err:
            raise PublishError(
                f"cannot reach the MQTT broker at {self.host}:{self.port}: {err}"
            ) from None
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            self._client.loop_stop()
            # a broker that does not answer: the CLI tells it apart by the TimeoutError (exit 3)
            raise PublishError(
                f"no CONNACK from {self.host}:{self.port} in {timeout_s:g}s"
            ) from TimeoutError()
        if self._connect_error:
            self._client.loop_stop()
            raise PublishError(self._connect_error)

    def publish(self, topic: str, payload: bytes, *, timeout_s: float = 60.0) -> None:
        """Queue one message; blocks while ``max_in_flight`` messages await their PUBACK."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self.sent - self.acked < self.max_in_flight, timeout=timeout_s
            )
            if not ok:
                raise PublishError(f"no PUBACK for {self.max_in_flight} messages in {timeout_s}s")
            self.sent += 1
        info = self._client.publish(topic, payload, qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            with self._cond:
                self.sent -= 1
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until the broker acknowledged every message sent; raise if it refused any."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.acked >= self.sent, timeout=timeout_s):
                raise PublishError(
                    f"{self.sent - self.acked} of {self.sent} messages unacknowledged "
                    f"after {timeout_s:g}s"
                )
            if self.failed:
                raise PublishError(
                    f"the broker refused {self.failed} of {self.sent} messages "
                    f"({self.refusal}): is the topic this gateway's?"
                )

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> MqttPublisher:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class PlayStats:
    messages: int = 0
    readings: int = 0
    bytes: int = 0
    started: float = 0.0
    finished: float = 0.0
    #: Largest delay behind schedule (s): > 0 means the publisher could not keep up.
    max_lag_s: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return self.finished - self.started


Progress = Callable[[int, Publication], None]


def play(
    pubs: Sequence[Publication],
    publisher: MqttPublisher,
    clock: Clock,
    *,
    on_progress: Progress | None = None,
    stop: threading.Event | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PlayStats:
    """Publish each publication when ``clock.wall_due(t_s)`` arrives, then wait for PUBACKs."""
    stats = PlayStats(started=time.time())
    for i, p in enumerate(pubs):
        if stop is not None and stop.is_set():
            break
        while True:
            delay = clock.wall_due(p.t_s) - time.time()
            if delay <= 0:
                stats.max_lag_s = max(stats.max_lag_s, -delay)
                break
            sleep(min(delay, 0.25))
            if stop is not None and stop.is_set():
                break
        publisher.publish(p.topic, p.payload)
        stats.messages += 1
        stats.readings += p.readings
        stats.bytes += len(p.payload)
        if on_progress is not None:
            on_progress(i + 1, p)
    publisher.flush()
    stats.finished = time.time()
    return stats
