"""The fake Twilio server, driven over HTTP as a subprocess (the way the stack runs it)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

ACCOUNT = "AC" + "0" * 32
TOKEN = "fake-auth-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_fake(data: Path | None = None, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gyeongbo.stack.fake_twilio",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--auth-token",
        TOKEN,
        *extra,
    ]
    if data is not None:
        argv += ["--data", str(data)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(
        "fake Twilio did not start: " + proc.stderr.read().decode() if proc.stderr else ""
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    proc, base = start_fake()
    yield base
    stop(proc)


def call(
    base: str,
    path: str,
    form: dict[str, str] | None = None,
    *,
    auth: tuple[str, str] | None = (ACCOUNT, TOKEN),
    headers: dict[str, str] | None = None,
    json_body: Any = None,
) -> tuple[int, Any]:
    data = None
    h = dict(headers or {})
    if form is not None:
        data = urlencode(form).encode()
        h["Content-Type"] = "application/x-www-form-urlencoded"
    if json_body is not None:
        data = json.dumps(json_body).encode()
        h["Content-Type"] = "application/json"
    if auth:
        h["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    req = urllib.request.Request(
        base + path, data=data, headers=h, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


MSGS = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


def test_creates_messages_like_twilio_and_checks_auth(fake: str) -> None:
    call(fake, "/_fake/reset", json_body={})
    form = {"To": "+821012345678", "MessagingServiceSid": "MG" + "1" * 32, "Body": "[경보] 테스트"}
    status, msg = call(fake, MSGS, form)
    assert status == 201
    assert msg["sid"].startswith("SM") and len(msg["sid"]) == 34
    assert (msg["status"], msg["to"], msg["body"]) == ("accepted", "+821012345678", "[경보] 테스트")
    assert msg["messaging_service_sid"] == "MG" + "1" * 32 and msg["direction"] == "outbound-api"
    status, one = call(fake, f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{msg['sid']}.json")
    assert status == 200 and one["sid"] == msg["sid"]
    assert call(fake, MSGS, form, auth=(ACCOUNT, "wrong"))[0] == 401
    assert call(fake, MSGS, form, auth=None)[1]["code"] == 20003
    status, err = call(fake, MSGS, dict(form, To="010-1234"))
    assert (status, err["code"], err["status"]) == (400, 21211, 400)
    assert err["more_info"] == "https://www.twilio.com/docs/errors/21211"
    assert call(fake, MSGS, {"To": "+821012345678", "Body": "x"})[1]["code"] == 21603
    assert len(call(fake, "/_fake/messages")[1]["messages"]) == 1
    # the date as Twilio writes it (RFC 2822, GMT), within the last minute
    created = parsedate_to_datetime(msg["date_created"])
    assert msg["date_created"].endswith(" GMT") and abs(time.time() - created.timestamp()) < 60
    # stats: messages per handset, or (for a poll every second) the counts only
    stats = call(fake, "/_fake/stats")[1]
    assert (stats["per_to"], stats["handsets"], stats["messages"]) == ({"+821012345678": 1}, 1, 1)
    brief = call(fake, "/_fake/stats?per_to=0")[1]
    assert "per_to" not in brief and (brief["handsets"], brief["requests"]) == (1, 3)


def test_programmed_failures_idempotency_and_reset(fake: str) -> None:
    call(fake, "/_fake/reset", json_body={})
    assert call(fake, "/_fake/fail", json_body={"status": 429, "code": 20429, "count": 2})[1] == {
        "pending_failures": 2
    }
    call(fake, "/_fake/fail", json_body={"responses": [{"status": 500}]})
    form = {"To": "+821012345678", "From": "+15005550006", "Body": "hi"}
    codes = [call(fake, MSGS, form)[1].get("code") for _ in range(3)]
    assert codes == [20429, 20429, 20500]
    tok = {"I-Twilio-Idempotency-Token": "abc"}
    s1, m1 = call(fake, MSGS, form, headers=tok)
    s2, m2 = call(fake, MSGS, form, headers=tok)
    assert (s1, s2, m1["sid"], m1["status"]) == (201, 201, m2["sid"], "queued")
    state = call(fake, "/_fake/messages")[1]
    assert (len(state["messages"]), state["replays"], state["failures_served"]) == (1, 1, 3)
    call(fake, "/_fake/reset", json_body={})
    assert call(fake, "/_fake/messages")[1]["messages"] == []


def test_data_folder_survives_a_restart(tmp_path: Path) -> None:
    proc, base = start_fake(tmp_path)
    try:
        form = {"To": "+821012345678", "From": "+15005550006", "Body": "hi"}
        _, m1 = call(base, MSGS, form, headers={"I-Twilio-Idempotency-Token": "k"})
    finally:
        stop(proc)
    proc, base = start_fake(tmp_path)
    try:
        _, m2 = call(base, MSGS, form, headers={"I-Twilio-Idempotency-Token": "k"})
        assert m2["sid"] == m1["sid"]
        assert len(call(base, "/_fake/messages")[1]["messages"]) == 1
    finally:
        stop(proc)
