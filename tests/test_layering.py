"""The packages' one-way imports (docs/design.md §2, "Layers"), read from the source with ``ast``.

Every ``import`` counts: at module level, inside functions and under ``TYPE_CHECKING``; a module
loaded by a string (``importlib.import_module("…")``) is refused outright, because it hides an
edge from this test and from mypy. The rules:

- each package imports only the packages its layer may (:data:`ALLOWED`): the base
  ``gyeongbo`` none above it; the pure ``detectors``, ``geo``, ``alerting`` only the base and
  one another, in one direction; ``streams`` the pure packages; ``simulators`` and
  ``dashboards`` what is below them; ``gyeongbo_cli`` (the command line) everything;
- the pure packages import no client of a broker, MQTT, HTTP, SMS, database or InfluxDB, no
  process, socket or file system module, none of the base's I/O modules, and open no file
  (:data:`PURE_FORBIDDEN`, :data:`FILE_CALLS`): they receive data, ``streams`` reads it;
- no module imports itself back through others (no cycle among the project's modules);
- the pipeline core (``streams/core.py``) loads no broker, MQTT, HTTP or database client,
  directly or through anything it imports (:data:`CORE_FORBIDDEN`, checked in a fresh
  interpreter).
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gyeongbo.settings import REPO_ROOT

PACKAGES = (
    "gyeongbo",
    "detectors",
    "geo",
    "alerting",
    "streams",
    "simulators",
    "dashboards",
    "gyeongbo_cli",
)
PURE = ("detectors", "geo", "alerting")

#: Which project packages each package may import (itself included).
ALLOWED: dict[str, frozenset[str]] = {
    "gyeongbo": frozenset({"gyeongbo"}),
    "detectors": frozenset({"gyeongbo", "detectors"}),
    "geo": frozenset({"gyeongbo", "geo"}),
    # alerting names the measured seismic intensities as detectors/seismic.py defines them
    "alerting": frozenset({"gyeongbo", "detectors", "alerting"}),
    "streams": frozenset({"gyeongbo", "detectors", "geo", "alerting", "streams"}),
    "dashboards": frozenset({"gyeongbo", "detectors", "geo", "alerting", "dashboards"}),
    "simulators": frozenset({"gyeongbo", "detectors", "geo", "alerting", "streams", "simulators"}),
    "gyeongbo_cli": frozenset(PACKAGES),
}

#: Modules the pure packages never import: I/O clients, servers, processes, the file system,
#: and the base's own I/O (settings read the environment and files; topics and
#: kafka_security talk to the broker; stack runs processes).
PURE_FORBIDDEN = (
    "aiokafka",
    "kafka",
    "faust",
    "mode",
    "paho",
    "aiohttp",
    "requests",
    "httpx",
    "urllib.request",
    "http",
    "twilio",
    "psycopg",
    "psycopg_pool",
    "sqlite3",
    "influxdb_client",
    "prometheus_client",
    "socket",
    "subprocess",
    "shutil",
    "tempfile",
    "glob",
    "os",
    "pathlib",
    "io",
    "gyeongbo.settings",
    "gyeongbo.topics",
    "gyeongbo.kafka_security",
    "gyeongbo.mqtt_auth",
    "gyeongbo.stack",
)

#: Calls that read or write files: ``open(…)`` and the ``pathlib.Path`` methods.
FILE_CALLS = frozenset(
    {"open", "read_text", "read_bytes", "write_text", "write_bytes", "iterdir", "glob", "rglob"}
)


@dataclass(frozen=True)
class Module:
    name: str
    path: Path

    @property
    def package(self) -> str:
        return self.name.split(".")[0]

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"


def project_modules(root: Path = REPO_ROOT) -> dict[str, Module]:
    out: dict[str, Module] = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = Module(".".join(parts), path)
    return out


@functools.cache
def _tree(module: Module) -> ast.Module:
    return ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))


def imports(module: Module, known: dict[str, Module]) -> Iterator[tuple[int, str]]:
    """``(line, imported module)`` for every import of ``module``; ``from p import m`` is an
    import of the module ``p.m`` when there is one, else of ``p``."""
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")
                if not module.is_package:
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if sub in known else target


def string_imports(module: Module) -> Iterator[tuple[int, str]]:
    """``importlib.import_module("…")`` / ``__import__("…")`` calls with a literal name."""
    for node in ast.walk(_tree(module)):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        arg = node.args[0]
        if name in ("import_module", "__import__") and isinstance(arg, ast.Constant):
            yield node.lineno, str(arg.value)


def file_calls(module: Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(_tree(module)):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "open":
            yield node.lineno, "open()"
        elif isinstance(f, ast.Attribute) and f.attr in FILE_CALLS:
            yield node.lineno, f".{f.attr}()"


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _where(module: Module, line: int) -> str:
    return f"{module.path.relative_to(REPO_ROOT)}:{line}"


MODULES = project_modules()


def test_every_package_is_found() -> None:
    assert {m.package for m in MODULES.values()} == set(PACKAGES)
    assert len(MODULES) > 100


def test_each_package_imports_only_the_layers_below_it() -> None:
    bad = []
    for m in MODULES.values():
        for line, target in imports(m, MODULES):
            top = target.split(".")[0]
            if top in ALLOWED and top not in ALLOWED[m.package]:
                bad.append(f"{_where(m, line)}: {m.package} imports {target}")
    assert bad == [], "\n".join(bad)


def test_no_module_is_imported_by_a_string() -> None:
    bad = [
        f"{_where(m, line)}: import_module({target!r}): import it"
        for m in MODULES.values()
        for line, target in string_imports(m)
        if target.split(".")[0] in ALLOWED
    ]
    assert bad == [], "\n".join(bad)


def test_pure_packages_do_no_io() -> None:
    bad = []
    for m in MODULES.values():
        if m.package not in PURE:
            continue
        for line, target in imports(m, MODULES):
            hit = next((f for f in PURE_FORBIDDEN if _under(target, f)), None)
            if hit:
                bad.append(f"{_where(m, line)}: imports {target}")
        for line, call in file_calls(m):
            bad.append(f"{_where(m, line)}: calls {call}")
    assert bad == [], "\n".join(bad)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), and self-imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def import_graph() -> dict[str, set[str]]:
    return {
        m.name: {t for _, t in imports(m, MODULES) if t in MODULES and t != m.name}
        for m in MODULES.values()
    }


def test_no_import_cycles() -> None:
    cycles = _cycles(import_graph())
    assert cycles == [], "\n".join(" ↔ ".join(c) for c in cycles)


def test_cycle_finder_finds_a_cycle() -> None:
    """The checker itself: a three-module ring is found, a chain is not."""
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(ring) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


#: What the pipeline core (``streams/core.py``) never loads, directly or through what it
#: imports: it runs in the Faust agents, the drill runner's offline mode and the tests alike.
CORE_FORBIDDEN = (
    "faust",
    "mode",
    "aiokafka",
    "kafka",
    "paho",
    "aiohttp",
    "requests",
    "httpx",
    "urllib.request",
    "http.client",
    "twilio",
    "psycopg",
    "psycopg_pool",
    "sqlite3",
    "influxdb_client",
    "prometheus_client",
)


def _loaded_by(module: str) -> list[str]:
    """Every module a fresh interpreter has loaded after ``import module``."""
    code = f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    return run.stdout.split()


def _forbidden(names: list[str]) -> list[str]:
    return sorted(n for n in names if any(_under(n, f) for f in CORE_FORBIDDEN))


def test_the_pipeline_core_loads_no_broker_mqtt_http_or_database_client() -> None:
    core = MODULES["streams.core"]
    direct = [f"{_where(core, line)}: imports {t}" for line, t in imports(core, MODULES)]
    assert _forbidden([d.rsplit(" ", 1)[1] for d in direct]) == [], direct
    assert _forbidden(_loaded_by("streams.core")) == []
    # the check sees what the agents load (it can fail)
    assert {"faust", "aiokafka"} <= set(_forbidden(_loaded_by("streams.worker")))
