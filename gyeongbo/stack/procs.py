"""Start, watch and stop local service processes (the stack's roles).

Each service runs in its own session (process group) with stdout/stderr in
``<home>/logs/<name>.log``; :func:`stop` sends SIGTERM to the group, waits, then SIGKILL, so
no child outlives ``gyeongbo stack down``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StackError(RuntimeError):
    """A stack component could not be installed, started or health-checked."""


@dataclass(frozen=True)
class Proc:
    name: str
    pid: int
    port: int
    log: Path


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.25) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def as_user(user: str | None) -> dict[str, Any]:
    """``subprocess`` arguments that run a child as ``user`` with that user's group only (as
    root, keeping root's group would deny it folders that only others may search)."""
    if user is None:
        return {}
    import pwd

    pw = pwd.getpwnam(user)
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    port: int,
    home: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout_s: float = 30.0,
    ready: Callable[[], bool] | None = None,
    user: str | None = None,
) -> Proc:
    """Start ``argv`` in its own session and wait until ``port`` answers (and ``ready()``);
    as ``user`` when given (PostgreSQL refuses to run as root)."""
    if port_open(port):
        raise StackError(
            f"{name}: port 127.0.0.1:{port} is already in use; stop what holds it "
            f"(`gyeongbo stack down`, or `ss -ltnp 'sport = :{port}'`) or choose another port"
        )
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "ab") as out:
        p = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            **as_user(user),
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise StackError(f"{name} exited with {p.returncode} at start; log {log}:\n{tail(log)}")
        if port_open(port) and (ready is None or ready()):
            return Proc(name=name, pid=p.pid, port=port, log=log)
        time.sleep(0.1)
    stop(p.pid)
    raise StackError(
        f"{name} did not become healthy on port {port} in {timeout_s:.0f}s; log {log}:\n{tail(log)}"
    )


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is still running (not a zombie)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields after the command: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop(pid: int, *, timeout_s: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Signal the process group of ``pid``; escalate to SIGKILL after ``timeout_s``.

    Returns when every process of the group is gone, not just its leader: noida-db's
    launcher exits before the broker it started, which would otherwise still hold the port
    (and its data files) when the stack starts it again.
    """
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not pid_alive(pid) and not group_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    for _ in range(100):
        _reap(pid)
        if not pid_alive(pid) and not group_alive(pid):
            return
        time.sleep(0.05)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
