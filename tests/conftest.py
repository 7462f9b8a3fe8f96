"""Shared fixtures: one real local stack per test session.

The ``stack`` fixture starts mosquitto, the Kafka-protocol broker, influxd (+ v2-write
compat), the fake Twilio server and a PostgreSQL cluster of its own on free loopback ports
under a temporary folder, and stops them at the end of the session. Every test that needs
real components uses it (or a fixture built on it) instead of repeating set-up.

Environment:
- ``GYEONGBO_TEST_BROKER=tansu`` runs the whole suite against Tansu instead of noida-db.
- ``GYEONGBO_TEST_KAFKA=host:port`` points the Kafka tests at an external broker (e.g. an
  Apache Kafka) instead of a local one; the rest of the stack still starts locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gyeongbo.settings import Settings, StackSettings
from gyeongbo.stack.procs import free_port
from gyeongbo.stack.stack import Stack


def _free_ports(n: int) -> list[int]:
    import socket

    ports: set[int] = set()
    while len(ports) < n:
        p = free_port()
        # influxd's RPC port is its HTTP port + 1000: that one must be free too.
        if p + 1000 >= 65536:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1000))
            except OSError:
                continue
        ports.add(p)
    return sorted(ports)


def make_stack(home: Path, broker: str | None = None, *, postgres: bool = True) -> Stack:
    mqtt, mqtt_bridge, kafka, influxd, compat, twilio, pg = _free_ports(7)
    cfg = StackSettings(
        home=home,
        broker=(broker or os.environ.get("GYEONGBO_TEST_BROKER", "noida")),  # type: ignore[arg-type]
        mqtt_port=mqtt,
        mqtt_bridge_port=mqtt_bridge,
        kafka_port=kafka,
        influxd_port=influxd,
        influx_compat_port=compat,
        fake_twilio_port=twilio,
        postgres=postgres,
        postgres_port=pg,
    )
    return Stack(config=cfg, settings=Settings(_env_file=None))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A running local stack for the whole session (started once, stopped at the end)."""
    st = make_stack(tmp_path_factory.mktemp("stack"))
    st.up()
    try:
        yield st
    finally:
        st.down()


@pytest.fixture(scope="session")
def stack_settings(stack: Stack) -> Settings:
    """Settings pointing at the session's stack."""
    return stack.app_settings()
