"""Who may use a real worker's HTTP API: bearer tokens, roles, no browsers, loopback only.

One worker on the local stack (its own topics and tokens file); requests as an operator's
tools, a stranger and a foreign web page would send them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from gyeongbo.settings import Settings
from gyeongbo.stack.stack import Stack
from gyeongbo_cli.main import app as cli
from streams.pipeline import LocalPipeline, LocalProcess
from tests.pipeline_support import alert_events, isolated_settings, issue_token, wait_for

pytestmark = [pytest.mark.stack]


def call(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], str]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def worker(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, LocalProcess]]:
    tmp = tmp_path_factory.mktemp("access")
    settings = isolated_settings(stack, tmp)
    settings = settings.model_copy(
        update={
            "operator": settings.operator.model_copy(update={"max_failures": 20, "lockout_s": 30})
        }
    )
    pipe = LocalPipeline(settings=settings, logs=tmp / "logs")
    try:
        yield settings, pipe.start_worker()
    finally:
        pipe.stop()


def test_reads_need_a_token_and_health_and_metrics_stay_open(
    worker: tuple[Settings, LocalProcess],
) -> None:
    settings, w = worker
    viewer = issue_token(settings, "desk-viewer", "viewer")
    for path in ("/alerts", "/audit", "/cap/index.json", "/operators", "/table/", "/nope"):
        status, headers, _ = call(w.url + path)
        assert status == 401, path
        assert headers["WWW-Authenticate"].startswith("Bearer")
    status, _, _ = call(w.url + "/alerts", headers=bearer(viewer + "x"))
    assert status == 401
    status, headers, text = call(w.url + "/alerts", headers=bearer(viewer))
    assert status == 200 and json.loads(text) == []
    assert "Set-Cookie" not in headers and "Access-Control-Allow-Origin" not in headers
    assert call(w.url + "/operators", headers=bearer(viewer))[0] == 403  # admin only
    assert call(w.url + "/health")[0] == 200
    status, headers, text = call(w.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "gyeongbo_worker_readings" in names  # a counter family: samples end in _total


def test_a_viewer_cannot_act_and_an_operator_acts_as_themselves(
    worker: tuple[Settings, LocalProcess],
) -> None:
    settings, w = worker
    viewer = issue_token(settings, "desk-viewer-2", "viewer")
    operator = issue_token(settings, "op-choi", "operator")
    admin = issue_token(settings, "hq-admin", "admin")
    url = w.url + "/zones/11030/escalate"
    body = json.dumps(
        {"hazard": "flood", "level": "alert", "reason": "levee breach reported", "exercise": True}
    ).encode()
    assert call(url, method="POST", body=body, headers=JSON)[0] == 401
    status, _, text = call(url, method="POST", body=body, headers={**JSON, **bearer(viewer)})
    assert status == 403 and "viewer" in text
    status, _, text = call(url, method="POST", body=body, headers={**JSON, **bearer(operator)})
    assert status == 202, text
    event = wait_for(
        lambda: next((e for e in alert_events(settings) if e.action == "manual"), None),
        30,
        "the manual escalation on alerts",
    )
    assert (event.zone, event.level, event.actor) == ("11030", "alert", "op-choi")
    audit = wait_for(
        lambda: json.loads(call(w.url + "/audit", headers=bearer(viewer))[2]),
        30,
        "the audit entry",
    )
    assert [(a["actor"], a["action"], a["result"]) for a in audit] == [("op-choi", "manual", "ok")]
    status, _, text = call(w.url + "/operators", headers=bearer(admin))
    listed = {e["operator"]: e for e in json.loads(text)}
    assert status == 200 and listed["op-choi"]["role"] == "operator"
    assert not any("sha256" in e for e in listed.values())


def test_a_foreign_page_cannot_act_even_with_a_token(
    worker: tuple[Settings, LocalProcess],
) -> None:
    """A page elsewhere can POST text/plain cross-site without a preflight; it never gets
    through: no cookies to ride on, a foreign Origin is refused, and POSTs must be JSON."""
    settings, w = worker
    operator = issue_token(settings, "op-seo", "operator")
    url = w.url + "/zones/11030/silence"
    body = json.dumps({"duration_s": 3600, "reason": "forged"}).encode()
    page = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
    for headers in (page, {**page, **bearer(operator)}, {**JSON, **page, **bearer(operator)}):
        status, got, _ = call(url, method="POST", body=body, headers=headers)
        assert status in (401, 403), headers
        assert "Access-Control-Allow-Origin" not in got
    status, _, _ = call(
        url, method="POST", body=body, headers={"Content-Type": "text/plain", **bearer(operator)}
    )
    assert status == 415
    status, _, _ = call(
        url, method="OPTIONS", headers={**page, "Access-Control-Request-Method": "POST"}
    )
    assert status in (401, 403)
    viewer = issue_token(settings, "desk-viewer-3", "viewer")
    audit = json.loads(call(w.url + "/audit", headers=bearer(viewer))[2])
    assert not any(a["action"] == "silence" for a in audit)


def test_failed_attempts_are_rate_limited_and_a_revoked_token_stops_working(
    worker: tuple[Settings, LocalProcess],
) -> None:
    settings, w = worker
    token = issue_token(settings, "op-han", "operator")
    assert call(w.url + "/alerts", headers=bearer(token))[0] == 200
    codes = [call(w.url + "/alerts", headers=bearer("gyb_guess"))[0] for _ in range(21)]
    assert 429 in codes, codes  # 20 failures within 30 s (the earlier tests' count too)
    first = codes.index(429)
    assert set(codes[:first]) == {401} and set(codes[first:]) == {429}
    status, headers, _ = call(w.url + "/alerts", headers=bearer(token))
    assert status == 429 and int(headers["Retry-After"]) > 0  # this address waits
    log = w.log.read_text(errors="replace")
    assert "refused GET /alerts from 127.0.0.1: unknown or revoked token" in log
    assert "too many failed attempts" in log
    assert token not in log
    out = CliRunner().invoke(
        cli, ["operators", "revoke", "op-han", "--file", str(settings.operator.tokens_file)]
    )
    assert out.exit_code == 0, out.output
    out = CliRunner().invoke(
        cli, ["operators", "list", "--all", "--json", "--file", str(settings.operator.tokens_file)]
    )
    rows = {r["operator"]: r for r in json.loads(out.stdout)}
    assert rows["op-han"]["revoked_ms"] is not None


def test_the_api_listens_on_loopback_only(worker: tuple[Settings, LocalProcess]) -> None:
    _, w = worker
    port = int(w.url.rsplit(":", 1)[1])
    listening = _listening(port)
    assert listening == {"127.0.0.1"}, listening


def _listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp{,6})."""
    out: set[str] = set()
    for name in ("tcp", "tcp6"):
        path = Path("/proc/net") / name
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            f: list[Any] = line.split()
            addr, state = f[1], f[3]
            host, hport = addr.split(":")
            if state != "0A" or int(hport, 16) != port:
                continue
            if len(host) == 8:
                out.add(".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0)))
            else:
                out.add("::" if set(host) == {"0"} else host)
    return out


def test_operators_cli_prints_a_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    out = CliRunner().invoke(
        cli, ["operators", "add", "kim", "--role", "admin", "--file", str(path)]
    )
    assert out.exit_code == 0, out.output
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("gyb_") and token not in path.read_text()
    assert (path.stat().st_mode & 0o777) == 0o640
    out = CliRunner().invoke(
        cli, ["operators", "add", "lee", "--role", "boss", "--file", str(path)]
    )
    assert out.exit_code == 2
