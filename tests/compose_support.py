"""Run docker-compose.yml's services here, without Docker: the same command, user id, mounts
and environment, with only the addresses moved to the local stack.

A service's volumes become folders under one root: a named volume is a folder made as
Docker makes a fresh one (owner and mode of the image's folder it is mounted on), a bind
mount is the repository's file. Its environment is the compose file's, interpolated from a
secrets file as ``docker compose --env-file`` does (``${VAR}``, ``${VAR:-default}``,
``${VAR:?message}``), then rewritten by :meth:`Deployment.env` from container paths to those
folders. Processes run as the service's user with ``setpriv`` (root needed).

The services see the code and the bind-mounted files as a container would: the checkout may
sit in a folder other users cannot enter (a clone under ``/root``, or CI's ``mktemp -d``), and
in an image ``/app`` and a bind mount are readable whatever the host's parent folders are. So
:meth:`Deployment.create` first hard-links the repository (without ``.git`` and local state)
and this interpreter's environment under the deployment's root, mode 0755, and the services
run from there (``PYTHONPATH`` on the staged repository, as the image's ``/app``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gyeongbo.settings import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
SECRETS_EXAMPLE = REPO_ROOT / "deploy" / "secrets.env.example"
APP_UID = 10001

_VAR = re.compile(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}")


class MissingVariable(KeyError):
    pass


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation (the forms the compose file uses).

    >>> interpolate("a=${X:-d} b=${Y}", {"Y": "y"})
    'a=d b=y'
    """

    def sub(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name)
        if op == ":-":
            return value or (arg or "")
        if op == ":?" and not value:
            raise MissingVariable(f"{name}: {arg}")
        if value is None:
            raise MissingVariable(name)
        return value

    return _VAR.sub(sub, text)


def load_compose() -> dict[str, Any]:
    doc = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(doc, dict)
    return doc


def generated_secrets() -> dict[str, str]:
    """A value for every variable of deploy/secrets.env.example, as an operator fills it."""
    out = {}
    for line in SECRETS_EXAMPLE.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            out[line.split("=", 1)[0]] = f"s3cret-{secrets.token_hex(8)}"
    out["GYEONGBO_TWILIO__STATUS_CALLBACK_URL"] = ""
    return out


@dataclass
class Running:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@dataclass
class Deployment:
    """The compose file's services on this machine (see the module docstring)."""

    compose: dict[str, Any]
    secrets: dict[str, str]
    root: Path
    #: named volume → folder; created on first use with the owner/mode given to volume().
    volumes: dict[str, Path] = field(default_factory=dict)
    running: list[Running] = field(default_factory=list)
    #: the repository and the interpreter as the services see them (see :meth:`_stage`).
    app: Path = REPO_ROOT
    python: str = sys.executable

    def _stage(self) -> None:
        """Hard-link the repository and ``sys.prefix`` under the root (module docstring)."""
        app, env = self.root / "app", self.root / "env"
        skip = shutil.ignore_patterns(
            ".git", ".venv", ".gyeongbo", "__pycache__", ".mypy_cache", ".ruff_cache"
        )
        shutil.copytree(REPO_ROOT, app, ignore=skip, copy_function=_link)
        self.app = app
        if sys.prefix != sys.base_prefix:  # a virtual environment: the services use it too
            shutil.copytree(sys.prefix, env, symlinks=True, ignore=skip, copy_function=_link)
            self.python = str(env / Path(sys.executable).relative_to(sys.prefix))

    @classmethod
    @contextlib.contextmanager
    def create(cls) -> Iterator[Deployment]:
        root = Path(tempfile.mkdtemp(prefix="gyeongbo-compose-", dir="/tmp"))
        root.chmod(0o755)
        dep = cls(load_compose(), generated_secrets(), root)
        dep._stage()
        try:
            yield dep
        finally:
            for r in reversed(dep.running):
                r.stop()
            shutil.rmtree(root, ignore_errors=True)

    def service(self, name: str) -> dict[str, Any]:
        svc = self.compose["services"][name]
        assert isinstance(svc, dict)
        return svc

    def volume(self, name: str, *, uid: int = 0, gid: int = 0, mode: int = 0o755) -> Path:
        """A fresh named volume, owned as the image's folder it is first mounted on."""
        if name not in self.volumes:
            assert name in self.compose["volumes"], f"volume {name} is not declared"
            path = self.root / "volumes" / name
            path.mkdir(parents=True)
            os.chown(path, uid, gid)
            path.chmod(mode)
            self.volumes[name] = path
        return self.volumes[name]

    def mounts(self, service: str) -> dict[str, Path]:
        """Container path → local path of each of a service's mounts (volumes must exist)."""
        out = {}
        for spec in self.service(service).get("volumes", []):
            src, dst = spec.split(":")[:2]
            if src.startswith("."):
                out[dst] = (self.app / src).resolve()
            else:
                assert src in self.volumes, f"{service}: create volume {src} first"
                out[dst] = self.volumes[src]
        return out

    def env(self, service: str, **overrides: str) -> dict[str, str]:
        """The service's environment, interpolated, container paths mapped to local ones
        (longest mount first), then ``overrides`` (addresses of the local stack)."""
        raw = self.service(service).get("environment") or {}
        mounts = sorted(self.mounts(service).items(), key=lambda kv: -len(kv[0]))
        env = {}
        for key, value in raw.items():
            text = interpolate(str(value), self.secrets)
            for dst, local in mounts:
                if text == dst or text.startswith(dst + "/"):
                    text = str(local) + text[len(dst) :]
                    break
            env[key] = text
        env.update(overrides)
        return env

    def command(self, service: str, **path_args: str) -> list[str]:
        """The service's command with container paths among its words mapped to local ones."""
        mounts = self.mounts(service)
        words = [str(w) for w in self.service(service)["command"]]
        return [str(mounts.get(w, path_args.get(w, w))) for w in words]

    def run_as(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        *,
        uid: int = APP_UID,
        gid: int = APP_UID,
        groups: tuple[int, ...] = (),
        background: bool = False,
        timeout_s: float = 120,
    ) -> Running | subprocess.CompletedProcess[str]:
        """``gyeongbo <args>`` as uid/gid (as the image's USER), with only ``env`` set from
        GYEONGBO_* (the rest of this process's GYEONGBO_* variables are dropped)."""
        home = self.root / "home"
        home.mkdir(exist_ok=True)
        home.chmod(0o777)
        base = {k: v for k, v in os.environ.items() if not k.startswith("GYEONGBO_")}
        full = {
            **base,
            "HOME": str(home),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(self.app),
            **env,
        }
        cmd = [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups",
            "--",
            self.python,
            "-m",
            "gyeongbo_cli",
            *args,
        ]
        if not background:
            return subprocess.run(
                cmd, env=full, cwd=home, capture_output=True, text=True, timeout=timeout_s
            )
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd,
                env=full,
                cwd=home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        running = Running(name, proc, log)
        self.running.append(running)
        return running

    def start(self, name: str, cmd: list[str]) -> Running:
        """A non-Python service (mosquitto) as root: it drops to its own user itself."""
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        running = Running(name, proc, log)
        self.running.append(running)
        return running


def _link(src: str, dst: str) -> None:
    """Hard-link a file (same file system), else copy it."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def make_certificates(folder: Path, group: int) -> None:
    """A CA and a server certificate for 127.0.0.1/localhost (as deploy/certs/README.md asks:
    the key readable by mosquitto's group)."""
    folder.mkdir(parents=True, exist_ok=True)

    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout",
        "server.key", "-out", "server.csr")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")  # fmt: skip
    os.chown(folder / "server.key", 0, group)
    (folder / "server.key").chmod(0o640)
    folder.chmod(0o755)
