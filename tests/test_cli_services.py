"""The CLI against real services on the local stack: ``worker`` and ``bridge run`` at any
``--log-level`` (each line logged once, in one format), and ``alerts list`` at 80 columns
showing the ids operators pass to ``alerts ack``.

The worker and the bridge are started as an operator starts them, ``gyeongbo worker
--log-level WARNING`` in a child process, with the test's isolated settings.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from gyeongbo.settings import REPO_ROOT, Settings
from gyeongbo.stack.procs import free_port
from gyeongbo.stack.stack import Stack
from gyeongbo_cli.main import app
from streams.pipeline import LocalProcess, _spawn, settings_env
from tests.pipeline_support import isolated_settings, issue_token, wait_for

pytestmark = [pytest.mark.stack]

#: The level the worker runs at: `warning` was "WARNINGING" and crashed the worker.
WORKER_LEVEL = "WARNING"
#: One log record: the format of every line a worker or bridge writes (gyeongbo.log_level).
LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: "
)
#: A long custom zone id, so that the alert id is longer than half an 80-column terminal.
ZONE = "hangang-riverside-central"


def _child_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The test's settings as variables (the pipeline's spawner adds the environment)."""
    return {**settings_env(settings), **extra}


def _get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


def _up(p: LocalProcess, path: str, ok: Any, timeout_s: float = 120) -> None:
    def ready() -> bool:
        assert p.alive(), p.log.read_text(errors="replace")[-3000:]
        try:
            return bool(ok(_get(p.url + path)))
        except OSError:
            return False

    wait_for(ready, timeout_s, f"{p.name} {path}")


@pytest.fixture(scope="module")
def worker(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, LocalProcess]]:
    tmp = tmp_path_factory.mktemp("cli-worker")
    settings = isolated_settings(stack, tmp)
    url = f"http://127.0.0.1:{settings.worker.web_port}"
    p = _spawn("worker", ["worker", "--log-level", WORKER_LEVEL], _child_env(settings), tmp, url)
    try:
        _up(p, "/health", lambda r: r[0] == 200 and r[1].get("status") == "ok")
        yield settings, p
    finally:
        assert p.stop() == 0, p.log.read_text(errors="replace")[-3000:]


def test_worker_at_warning_logs_each_line_once_and_nothing_below(
    worker: tuple[Settings, LocalProcess],
) -> None:
    _, w = worker
    for _ in range(3):
        assert _get(w.url + "/alerts")[0] == 401
    refused = "refused GET /alerts from 127.0.0.1: no bearer token"
    text = wait_for(
        lambda: (t := w.log.read_text(errors="replace")).count(refused) >= 3 and t,
        10,
        "three refusals in the log",
    )
    time.sleep(1.0)  # a duplicate handler would have written its copy by now
    text = w.log.read_text(errors="replace")
    assert text.count(refused) == 3, text[-3000:]
    records = [line for line in text.splitlines() if LINE.match(line)]
    assert records and all(" INFO " not in r and " DEBUG " not in r for r in records), text
    assert sum(refused in r for r in records) == 3
    # one format: no line of Faust's own set-up ("[…] [pid] [WARNING] …") next to ours
    assert not re.search(r"^\[\d{4}-", text, re.M), text[-3000:]
    assert "Traceback" not in text
    assert "\x1b" not in text and "\b" not in text  # no terminal spinner in a log file


def test_alerts_list_shows_whole_ids_at_80_columns_and_ack_takes_them(
    worker: tuple[Settings, LocalProcess],
) -> None:
    settings, w = worker
    env = {"GYEONGBO_OPERATOR__TOKEN": issue_token(settings, "cli-desk-operator", "operator")}
    run = CliRunner()
    escalate = ["alerts", "escalate", ZONE, "--hazard", "flood", "--level", "caution"]
    reason = ["--reason", "levee seepage reported", "--exercise", "--url", w.url]
    out = run.invoke(app, [*escalate, *reason], env=env)
    assert out.exit_code == 0, out.output

    def listed() -> list[dict[str, Any]]:
        res = run.invoke(app, ["alerts", "list", "--json", "--url", w.url], env=env)
        assert res.exit_code == 0, res.output
        return [a for a in json.loads(res.stdout) if a["zone"] == ZONE]

    (alert,) = wait_for(listed, 60, "the manual escalation in alerts list")
    alert_id = alert["alert_id"]
    assert len(alert_id) > 45, alert_id
    for columns in (80, 120):
        table = subprocess.run(
            [sys.executable, "-m", "gyeongbo_cli", "alerts", "list", "--url", w.url],
            env={**os.environ, **_child_env(settings, **env), "COLUMNS": str(columns)},
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO_ROOT,
        )
        assert table.returncode == 0, table.stderr
        assert alert_id in table.stdout.replace("│", " ").split(), (columns, table.stdout)
        assert max(len(line) for line in table.stdout.splitlines()) <= columns
    # the id as the table shows it is what ack takes
    out = run.invoke(
        app, ["alerts", "ack", alert_id, "--reason", "crew on site", "--url", w.url], env=env
    )
    assert out.exit_code == 0, out.output
    wait_for(lambda: listed()[0]["acked"], 60, "the alert acknowledged")
    out = run.invoke(app, ["alerts", "audit", "--url", w.url], env={**env, "COLUMNS": "80"})
    assert out.exit_code == 0 and alert_id in out.stdout.split(), out.stdout


def test_bridge_at_info_logs_each_line_once_in_one_format(stack: Stack, tmp_path: Path) -> None:
    settings = isolated_settings(stack, tmp_path)
    port = free_port()
    env = _child_env(settings, GYEONGBO_BRIDGE__METRICS_PORT=str(port))
    b = _spawn(
        "bridge",
        ["bridge", "run", "--log-level", "Info"],
        env,
        tmp_path,
        f"http://127.0.0.1:{port}",
    )
    try:
        _up(b, "/metrics?format=json", lambda r: r[0] == 200 and r[1]["ready"], 60)
    finally:
        code = b.stop(signal.SIGTERM)
    text = b.log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    stopped = [line for line in text.splitlines() if "gyeongbo.bridge: bridge stopped" in line]
    assert len(stopped) == 1, text[-3000:]
    assert LINE.match(stopped[0]) and " INFO " in stopped[0]
    assert " DEBUG " not in text
