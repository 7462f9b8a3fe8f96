"""A PostgreSQL cluster of the stack's own, from Debian's ``postgresql`` package.

``initdb`` creates the cluster under ``<home>/postgres/data`` the first time (superuser
``gyeongbo``, trust authentication on loopback only: a development cluster); the server
listens on 127.0.0.1 at the stack's own port (never the machine's server on 5432) with no
Unix socket, and ``stop`` shuts it down with ``pg_ctl stop -m fast``. PostgreSQL refuses to
run as root: as root the cluster belongs to the ``postgres`` system user (the package
creates it), and the folders above ``<home>`` get the search (x) bit for others where they
lack it, so that user can reach its data.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from gyeongbo.stack.install import ensure_binary
from gyeongbo.stack.procs import Proc, StackError, as_user, spawn

__all__ = ["DATABASE", "SUPERUSER", "admin_url", "bindir", "start", "stop", "url"]

log = logging.getLogger("gyeongbo.stack.postgres")

SUPERUSER = "gyeongbo"
DATABASE = "gyeongbo"


def bindir() -> Path:
    """The server binaries (``/usr/lib/postgresql/<major>/bin``), installing the package
    with apt-get when missing."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major)
    if not found:
        ensure_binary("pg_ctlcluster", "postgresql")
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_major)
    if not found:
        raise StackError("postgresql is installed but no /usr/lib/postgresql/*/bin/postgres")
    return Path(found[-1]).parent


def _major(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


def url(port: int, database: str = DATABASE) -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{database}"


def admin_url(port: int) -> str:
    return url(port, "postgres")


def _owner() -> tuple[str | None, int | None, int | None]:
    if os.geteuid() != 0:
        return None, None, None
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise StackError(
            "PostgreSQL refuses to run as root and there is no 'postgres' system user; "
            "install the Debian package postgresql (it creates it)"
        ) from None
    return "postgres", pw.pw_uid, pw.pw_gid


def _reachable(path: Path) -> None:
    """Give others the search bit on the folders above ``path`` that lack it."""
    for parent in [*reversed(path.parents)]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            log.info("stack: adding o+x to %s so the postgres user can reach its data", parent)
            parent.chmod(mode | stat.S_IXOTH)


def start(home: Path, port: int) -> Proc:
    bins = bindir()
    root = home / "postgres"
    data = root / "data"
    user, uid, gid = _owner()
    root.mkdir(parents=True, exist_ok=True)
    if uid is not None and gid is not None:
        _reachable(root)
        os.chown(root, uid, gid)
    if not (data / "PG_VERSION").exists():
        if data.exists():
            shutil.rmtree(data)
        r = subprocess.run(
            [
                str(bins / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-locale",
            ],
            capture_output=True,
            text=True,
            cwd=root,
            **as_user(user),
        )
        if r.returncode != 0:
            raise StackError(f"initdb failed ({r.returncode}):\n{r.stderr[-2000:]}")
    conf = data / "postgresql.auto.conf"
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": "''",
        "max_connections": "100",
        "shared_buffers": "'128MB'",
        "logging_collector": "off",
        "log_min_messages": "warning",
    }
    conf.write_text(
        "# written by gyeongbo stack\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
    )
    if uid is not None and gid is not None:
        os.chown(conf, uid, gid)
    proc = spawn(
        "postgres",
        [str(bins / "postgres"), "-D", str(data)],
        port=port,
        home=home,
        user=user,
        cwd=root,
        ready=lambda: _ready(bins, port),
    )
    _ensure_database(port)
    return proc


def _ready(bins: Path, port: int) -> bool:
    r = subprocess.run(
        [str(bins / "pg_isready"), "-h", "127.0.0.1", "-p", str(port), "-U", SUPERUSER],
        capture_output=True,
    )
    return r.returncode == 0


def _ensure_database(port: int, name: str = DATABASE) -> None:
    create_database(port, name, exist_ok=True)


def create_database(port: int, name: str, *, exist_ok: bool = False) -> str:
    """Create a database in the stack's cluster (tests give each run its own); its URL."""
    import psycopg

    with psycopg.connect(admin_url(port), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and not exist_ok:
            raise StackError(f"database {name} already exists")
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    return url(port, name)


def stop(home: Path) -> None:
    """Fast shutdown (disconnects clients) of the cluster under ``home``."""
    data = home / "postgres" / "data"
    if not (data / "postmaster.pid").exists():
        return
    user, _, _ = _owner()
    subprocess.run(
        [str(bindir() / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "20"],
        capture_output=True,
        cwd=home / "postgres",
        **as_user(user),
    )
