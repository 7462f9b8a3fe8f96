"""Start the pipeline's processes locally: one bridge and N workers, as subprocesses.

Used by the drill runner (``gyeongbo drill run`` starts what a drill needs), the end-to-end
tests and the benchmarks. Each process gets the settings as ``GYEONGBO_*`` environment
variables and is ready when its HTTP endpoint answers: the bridge's ``/metrics``, each
worker's ``/health`` with partitions assigned. Leaving the context stops them (SIGTERM,
then SIGKILL) and leaves their logs under ``<stack home>/logs``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from gyeongbo.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """``settings`` as ``GYEONGBO_*`` variables (secrets in clear: for child processes only)."""
    out: dict[str, str] = {}

    def walk(prefix: str, model: BaseModel) -> None:
        for name in type(model).model_fields:
            value = getattr(model, name)
            key = f"{prefix}{name.upper()}"
            if isinstance(value, BaseModel):
                walk(key + "__", value)
            elif value is None:
                continue
            elif isinstance(value, SecretStr):
                out[key] = value.get_secret_value()
            elif isinstance(value, bool):
                out[key] = "true" if value else "false"
            elif isinstance(value, str | int | float | Path):
                out[key] = str(value)

    walk("GYEONGBO_", settings)
    return out


def _get_json(url: str, timeout: float = 1.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


@dataclass
class LocalProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    url: str

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int | None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: a crash, for the tests that prove nothing is lost."""
        self.stop(signal.SIGKILL, timeout_s=5)


@dataclass
class LocalPipeline:
    settings: Settings
    logs: Path
    bridge: LocalProcess | None = None
    workers: list[LocalProcess] = field(default_factory=list)
    #: Give worker i the instance id ``{app_id}-w{i}`` (Kafka static membership): a
    #: restarted worker takes its partitions straight back, but a stopped one keeps them
    #: until its session expires.
    static_membership: bool = False
    #: A viewer's token issued for whoever started this pipeline (the drill runner reads the
    #: sent log with it); revoked when the pipeline stops.
    viewer_token: str | None = None
    _viewer_id: str | None = None

    def issue_viewer_token(self, operator: str = "local-pipeline") -> str:
        """A viewer's token in the workers' tokens file (as ``gyeongbo operators add``)."""
        from streams.operators import TokenStore

        path = Path(self.settings.operator.tokens_file)
        store = TokenStore.load(path)
        token, entry = store.issue(operator, "viewer", now_ms=time.time_ns() // 1_000_000)
        store.save(path)
        self.viewer_token, self._viewer_id = str(token), entry.token_id
        return self.viewer_token

    def revoke_viewer_token(self) -> None:
        from streams.operators import TokenStore

        if self._viewer_id is None:
            return
        path = Path(self.settings.operator.tokens_file)
        store = TokenStore.load(path)
        store.revoke(self._viewer_id, now_ms=time.time_ns() // 1_000_000)
        store.save(path)
        self.viewer_token = self._viewer_id = None

    def start_bridge(
        self, extra_env: Mapping[str, str] | None = None, *, wait: bool = True
    ) -> LocalProcess:
        port = _bridge_port(extra_env)
        env = {
            **settings_env(self.settings),
            "GYEONGBO_BRIDGE__METRICS_PORT": str(port),
            **(extra_env or {}),
        }
        p = _spawn("bridge", ["bridge", "run"], env, self.logs, f"http://127.0.0.1:{port}")
        self.bridge = p
        if wait:
            self.wait_bridge()
        return p

    def wait_bridge(self) -> None:
        """Until the bridge answers on ``/metrics`` (it has connected to MQTT and Kafka)."""
        p = self.bridge
        assert p is not None, "no bridge started"
        _wait(p, lambda: bool(_get_json(p.url + "/metrics?format=json")), what="bridge /metrics")

    def start_worker(
        self,
        index: int | None = None,
        *,
        extra_env: Mapping[str, str] | None = None,
        wait: bool = True,
    ) -> LocalProcess:
        i = len(self.workers) if index is None else index
        w = self.settings.worker
        port = w.web_port + i
        data = Path(w.data_dir) / f"w{i}"
        env = {
            **settings_env(self.settings),
            "GYEONGBO_WORKER__WEB_PORT": str(port),
            "GYEONGBO_WORKER__DATA_DIR": str(data),
            **(extra_env or {}),
        }
        if self.static_membership:
            env["GYEONGBO_WORKER__INSTANCE_ID"] = f"{w.app_id}-w{i}"
        if self.settings.twilio.status_callback_url is None:
            # Delivery-status callbacks come back to this worker's /twilio/status.
            env["GYEONGBO_TWILIO__STATUS_CALLBACK_URL"] = f"http://127.0.0.1:{port}/twilio/status"
        p = _spawn(
            f"worker-{i}",
            ["worker", "--log-level", "info"],
            env,
            self.logs,
            f"http://127.0.0.1:{port}",
        )
        if wait:
            _wait(
                p,
                lambda: _get_json(p.url + "/health").get("status") == "ok",
                what=f"worker-{i} /health",
                timeout_s=120,
            )
        if index is None:
            self.workers.append(p)
        else:
            self.workers[index] = p
        return p

    def stop(self) -> None:
        """Stop the workers and the bridge side by side (each SIGTERM, then SIGKILL)."""
        self.revoke_viewer_token()
        procs = [*self.workers, *([self.bridge] if self.bridge is not None else [])]
        if len(procs) > 1:
            with ThreadPoolExecutor(len(procs), thread_name_prefix="stop") as ex:
                list(ex.map(LocalProcess.stop, procs))
        else:
            for p in procs:
                p.stop()


def _bridge_port(extra_env: Mapping[str, str] | None) -> int:
    if extra_env and "GYEONGBO_BRIDGE__METRICS_PORT" in extra_env:
        return int(extra_env["GYEONGBO_BRIDGE__METRICS_PORT"])
    from gyeongbo.stack.procs import free_port

    return free_port()


def _spawn(
    name: str, args: list[str], env: Mapping[str, str], logs: Path, url: str
) -> LocalProcess:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gyeongbo_cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    return LocalProcess(name=name, proc=proc, log=log, url=url)


def _wait(p: LocalProcess, ready: Any, *, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not p.alive():
            tail = "\n".join(p.log.read_text(errors="replace").splitlines()[-25:])
            raise RuntimeError(f"{p.name} exited with {p.proc.returncode}; log {p.log}:\n{tail}")
        with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
            if ready():
                return
        time.sleep(0.3)
    p.stop()
    raise RuntimeError(f"{what} not ready in {timeout_s:.0f}s; log {p.log}")


@contextlib.contextmanager
def start_local_pipeline(
    settings: Settings,
    *,
    workers: int = 1,
    logs: Path | None = None,
    static_membership: bool = False,
) -> Iterator[LocalPipeline]:
    """Run a bridge and ``workers`` workers against the stack ``settings`` points at."""
    pipe = LocalPipeline(
        settings=settings,
        logs=logs or Path(settings.stack.home) / "logs",
        static_membership=static_membership,
    )
    try:
        # The bridge starts while the workers do (neither needs the other to start); the
        # workers one after another, as a deployment's would.
        pipe.start_bridge(wait=False)
        for _ in range(workers):
            pipe.start_worker()
        pipe.wait_bridge()
        pipe.issue_viewer_token()
        yield pipe
    finally:
        pipe.stop()
