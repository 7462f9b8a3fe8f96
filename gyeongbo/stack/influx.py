"""InfluxDB for the local stack: Debian's ``influxd`` 1.6.7 with a config written here.

1.6.7 serves the v1 ``/write`` and InfluxQL ``/query`` endpoints but not ``/api/v2/write``,
which ``influxdb-client`` (and InfluxDB 1.8+, 2.x, 3.x) use. :mod:`gyeongbo.stack.influx_compat`
puts that endpoint in front of it; reads go to ``/query`` with InfluxQL, which every version
serves. Only the stack uses this; production talks to InfluxDB 2.x directly.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from gyeongbo.stack.install import ensure_binary
from gyeongbo.stack.procs import Proc, StackError, spawn


def write_config(home: Path, http_port: int, rpc_port: int) -> Path:
    root = home / "influxdb"
    for sub in ("meta", "data", "wal"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    conf = root / "influxdb.conf"
    conf.write_text(
        f"""# written by gyeongbo stack
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
  index-version = "inmem"
  # One series per station: a national deployment has ~10^5 (2.x/3.x have no such limit).
  max-values-per-tag = 0
  max-series-per-database = 0
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
"""
    )
    return conf


def query(base_url: str, q: str, db: str | None = None, timeout: float = 10.0) -> Any:
    """Run an InfluxQL statement through ``/query``; returns the decoded JSON answer."""
    params = {"q": q, "epoch": "ms"}
    if db:
        params["db"] = db
    data = urllib.parse.urlencode(params).encode()
    req = urllib.request.Request(f"{base_url}/query", data=data, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def _pinged(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=1) as r:
            return bool(r.status == 204)
    except (urllib.error.URLError, OSError):
        return False


def start(home: Path, http_port: int, rpc_port: int, databases: list[str]) -> Proc:
    binary = ensure_binary("influxd", "influxdb")
    conf = write_config(home, http_port, rpc_port)
    url = f"http://127.0.0.1:{http_port}"
    proc = spawn(
        "influxd",
        [binary, "-config", str(conf)],
        port=http_port,
        home=home,
        timeout_s=60,
        ready=lambda: _pinged(url),
    )
    for db in databases:
        ans = query(url, f'CREATE DATABASE "{db}"')
        if "error" in json.dumps(ans):
            raise StackError(f"influxd: CREATE DATABASE {db} failed: {ans}")
    return proc


def start_compat(home: Path, port: int, upstream_port: int) -> Proc:
    argv = [
        sys.executable,
        "-m",
        "gyeongbo.stack.influx_compat",
        "--port",
        str(port),
        "--upstream",
        f"http://127.0.0.1:{upstream_port}",
    ]
    return spawn("influx-compat", argv, port=port, home=home, timeout_s=30)
