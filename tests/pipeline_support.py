"""Helpers for end-to-end tests of the whole pipeline on the real local stack.

Each test gets an isolated namespace on the shared stack: its own Kafka topics (suffixed),
MQTT topic root, worker app id (consumer group and changelogs), web ports, CAP folder and SMS
sent log, so tests never see each other's readings or state.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from gyeongbo.events import AlertEvent, DataQualityAlert, decode_alert, decode_dq_alert
from gyeongbo.settings import Settings, Topics, WorkerSettings
from gyeongbo.stack.procs import free_port
from gyeongbo.stack.stack import Stack
from gyeongbo.topics import create_topics
from streams.operators import TokenStore
from tests.kafka_helpers import consume_all, end_offsets, run


def isolated_settings(stack: Stack, tmp: Path, *, tick_s: float = 1.0) -> Settings:
    uid = uuid.uuid4().hex[:8]
    base = stack.app_settings()
    stack.lend_credentials(tmp)  # the test's stack home is its tmp folder
    topics = Topics.model_validate(
        {
            name: {**t, "name": f"{t['name']}-{uid}"}
            for name, t in base.kafka.topics.model_dump().items()
        }
    )
    create_topics(stack.kafka_bootstrap, topics.all())
    worker = WorkerSettings(
        app_id=f"gy-{uid}",
        web_port=_free_port_pair(),
        data_dir=tmp / "worker",
        tick_s=tick_s,
        log_every_s=5.0,
        session_timeout_s=6.0,
        # Drills run at 1500×: a sweep every second is 25 min of drill time.
        deadman_every_s=1.0,
    )
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(update={"topics": topics}),
            "worker": worker,
            "operator": base.operator.model_copy(update={"tokens_file": tmp / "tokens.json"}),
            "paths": base.paths.model_copy(update={"cap_feed": tmp / "cap"}),
            "store": base.store.model_copy(update={"url": SecretStr(store_url(stack, tmp, uid))}),
            "mqtt": base.mqtt.model_copy(
                update={"client_id": f"bridge-{uid}", "topic_root": f"t{uid}/gyeongbo/v1/readings"}
            ),
            "stack": base.stack.model_copy(update={"home": tmp}),
        }
    )


def store_url(stack: Stack, tmp: Path, uid: str) -> str:
    """The test's own store: a fresh database in the stack's PostgreSQL (each test isolated,
    as production runs), or SQLite in the test's folder when the stack runs without one."""
    if stack.config.postgres:
        from gyeongbo.stack.postgres import create_database

        return create_database(stack.config.postgres_port, f"gy_{uid}")
    return f"sqlite:///{tmp / 'subscribers.sqlite'}"


def _free_port_pair() -> int:
    """A port p with p+1 free too (second worker's web port)."""
    import socket

    for _ in range(50):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
                return p
            except OSError:
                continue
    raise RuntimeError("no free port pair")


def alert_events(settings: Settings, *, timeout_s: float = 10.0) -> list[AlertEvent]:
    """Every event on the test's ``alerts`` topic so far."""
    recs = run(
        consume_all(
            settings.kafka.bootstrap, settings.kafka.topics.alerts.name, None, timeout_s=timeout_s
        )
    )
    return sorted((decode_alert(r.value) for r in recs), key=lambda e: e.event_id)


def dq_alert_events(settings: Settings, *, timeout_s: float = 10.0) -> list[DataQualityAlert]:
    """Every operators' data-quality alert on the test's ``dq.alerts`` topic so far."""
    recs = run(
        consume_all(
            settings.kafka.bootstrap,
            settings.kafka.topics.dq_alerts.name,
            None,
            timeout_s=timeout_s,
        )
    )
    return sorted((decode_dq_alert(r.value) for r in recs), key=lambda e: e.event_id)


def wait_for(pred: Any, timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}; last={last!r}")


def issue_token(settings: Settings, operator: str, role: str = "operator") -> str:
    """A new token for ``operator`` in the test's tokens file (as `gyeongbo operators add`)."""
    path = settings.operator.tokens_file
    store = TokenStore.load(path)
    token, _ = store.issue(operator, role, now_ms=int(time.time() * 1000))
    store.save(path)
    return token


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def get_json(url: str, token: str | None = None) -> Any:
    """GET ``url`` asking for JSON (``/metrics`` answers Prometheus text otherwise)."""
    req = urllib.request.Request(url, headers={"Accept": "application/json", **_auth(token)})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def post_json(url: str, body: dict[str, Any], token: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **_auth(token)},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def fake_sms(stack: Stack) -> list[dict[str, Any]]:
    doc = get_json(stack.twilio_url + "/_fake/messages")
    msgs = doc.get("messages", doc) if isinstance(doc, dict) else doc
    return list(msgs)


def topic_total(settings: Settings, topic: str) -> int:
    return sum(run(end_offsets(settings.kafka.bootstrap, topic)).values())
