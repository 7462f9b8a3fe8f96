"""Shared fixtures: one real local stack per test session.

The ``stack`` fixture starts mosquitto, the Kafka-protocol broker, influxd (+ v2-write
compat), the fake Twilio server and a PostgreSQL cluster of its own on free loopback ports
under a temporary folder, and stops them at the end of the session. Every test that needs
real components uses it (or a fixture built on it) instead of repeating set-up.

Order: the longest modules (:data:`LONG_FIRST`) run first. ``./dev test`` runs the suite on two
xdist workers, each a whole module at a time (``--dist loadfile``, every module's fixtures as in
a serial run); started first, the long modules run side by side and the short ones fill in
around them, instead of one of them starting last and running alone.

Environment:
- ``GYEONGBO_TEST_BROKER=tansu`` runs the whole suite against Tansu instead of noida-db.
- ``GYEONGBO_TEST_KAFKA=host:port`` points the Kafka tests at an external broker (e.g. an
  Apache Kafka) instead of a local one; the rest of the stack still starts locally.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from gyeongbo.settings import Settings, StackSettings
from gyeongbo.stack.stack import Stack

#: Modules of a minute or more (drills, fault drills, the compose services), longest first.
LONG_FIRST = (
    "test_pipeline_e2e.py",
    "test_faults.py",
    "test_dashboards_queries.py",
    "test_delivery_e2e.py",
    "test_stage_holds.py",
    "test_compose.py",
)
TESTS_DIR = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run :data:`LONG_FIRST` first; every other item keeps its place (a stable sort, so each
    module's tests stay together and in order)."""
    rank = {name: i for i, name in enumerate(LONG_FIRST)}

    def key(item: pytest.Item) -> int:
        if item.path.parent != TESTS_DIR:
            return len(rank)
        return rank.get(item.path.name, len(rank))

    items.sort(key=key)


#: Where stack ports are drawn: above the well-known ports, below the kernel's ephemeral range.
STACK_PORTS_FROM = 10_000


def _stack_port_slice() -> tuple[int, int]:
    """This process's slice of the ports below the kernel's ephemeral range.

    A port there is only ever taken by a bind that names it: never handed to a client's
    outgoing connection (a client reconnecting to a stopped broker can otherwise connect to
    itself on the broker's port) nor to another process's bind to port 0. So a broker
    restarted on its port (test_faults, test_broker_conformance) finds it free whatever runs
    meanwhile. Each xdist worker draws from its own slice; influxd also needs port + 1000.
    """
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            ephemeral = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    top = ephemeral - 1000
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    width = (top - STACK_PORTS_FROM) // max(count, 1)
    if width < 100:
        raise RuntimeError(f"too few ports below the ephemeral range ({ephemeral}) for the stack")
    lo = STACK_PORTS_FROM + (index % max(count, 1)) * width
    return lo, lo + width


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports(n: int) -> list[int]:
    """``n`` free ports of :func:`_stack_port_slice`, each with port + 1000 free too (influxd's
    RPC port), none another's + 1000."""
    lo, hi = _stack_port_slice()
    rng = random.SystemRandom()
    ports: set[int] = set()
    for _ in range(10_000):
        if len(ports) == n:
            return sorted(ports)
        p = rng.randrange(lo, hi)
        taken = ports | {q + 1000 for q in ports}
        if p in taken or p + 1000 in taken or p - 1000 in ports:
            continue
        if _bindable(p) and _bindable(p + 1000):
            ports.add(p)
    raise RuntimeError(f"no {n} free ports in {lo}..{hi}")


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
