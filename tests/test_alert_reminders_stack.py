"""Operators are reminded of an unacknowledged alert on a real worker (docs/design.md §4).

One worker on the local stack with heavy-rain reminders every few seconds: two alerts are
raised by hand (operators' escalations travel as detected ones do: ``zone.commands`` → stage
agent → ``alerts``), one is acknowledged. The other is recalled on ``alerts.reminders`` every
period, shows in ``/alerts``, ``gyeongbo alerts list``, ``/metrics`` and InfluxDB; the
acknowledged one never is; no resident gets a message from a reminder; and a restarted worker
goes on where it stopped, without a burst of repeats.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any
from urllib.parse import quote

import pytest
from typer.testing import CliRunner

from alerting.model import parse_rfc3339_ms
from gyeongbo.events import AlertReminder, decode_reminder
from gyeongbo.settings import Settings
from gyeongbo.stack import influx
from gyeongbo.stack.stack import Stack
from gyeongbo_cli.main import app as cli
from streams.pipeline import LocalPipeline
from tests.kafka_helpers import consume_all, run
from tests.pipeline_support import (
    alert_events,
    get_json,
    isolated_settings,
    issue_token,
    post_json,
    wait_for,
)

pytestmark = [pytest.mark.stack]

REPEAT_S = 5
LEFT, ACKED = "11030", "21310"  # 용산구 (left alone), 부산 기장군 (acknowledged at once)


@pytest.fixture(scope="module")
def pipe(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPipeline]:
    tmp = tmp_path_factory.mktemp("remind")
    settings = isolated_settings(stack, tmp)
    settings = settings.model_copy(
        update={
            "alerting": settings.alerting.model_copy(
                update={
                    "repeat_s": settings.alerting.repeat_s.model_copy(
                        update={"heavy_rain": REPEAT_S}
                    )
                }
            )
        }
    )
    p = LocalPipeline(settings=settings, logs=tmp / "logs")
    try:
        p.start_worker()
        yield p
    finally:
        p.stop()


def reminders(settings: Settings) -> list[AlertReminder]:
    recs = run(consume_all(settings.kafka.bootstrap, settings.kafka.topics.reminders.name, None, 3))
    return [decode_reminder(r.value) for r in recs]


def test_unacknowledged_alerts_are_recalled_to_operators_and_acknowledged_ones_are_not(
    pipe: LocalPipeline, stack: Stack
) -> None:
    settings, w = pipe.settings, pipe.workers[0]
    viewer = issue_token(settings, "desk-viewer", "viewer")
    operator = issue_token(settings, "op-han", "operator")
    for zone in (LEFT, ACKED):
        status, _ = post_json(
            f"{w.url}/zones/{zone}/escalate",
            {"hazard": "heavy_rain", "level": "caution", "reason": "호우주의보 발표"},
            operator,
        )
        assert status == 202

    def active() -> dict[str, dict[str, Any]]:
        return {a["zone"]: a for a in get_json(w.url + "/alerts", viewer)}

    rows = wait_for(lambda: len(a := active()) == 2 and a, 30, "both alerts raised")
    acked_id = str(rows[ACKED]["alert_id"])
    status, _ = post_json(f"{w.url}/alerts/{acked_id}/ack", {"reason": "확인"}, operator)
    assert status == 202
    left = rows[LEFT]
    assert left["reminders"] == 0 and left["last_notified"] == left["since"]
    assert parse_rfc3339_ms(str(left["next_reminder"])) == (
        parse_rfc3339_ms(str(left["since"])) + REPEAT_S * 1000
    )

    # the one left alone is recalled every period; the acknowledged one never
    rows = wait_for(
        lambda: (a := active())[LEFT]["reminders"] >= 3 and a, 60, "three reminders of one alert"
    )
    assert rows[ACKED]["acked"] is True and rows[ACKED]["next_reminder"] is None
    assert rows[ACKED]["reminders"] == 0
    got = reminders(settings)
    assert {r.alert_id for r in got} == {rows[LEFT]["alert_id"]}
    ns = [r.n for r in got]
    assert ns == list(range(1, len(got) + 1)), ns
    times = [parse_rfc3339_ms(r.ts) for r in got]
    assert all(b - a >= REPEAT_S * 1000 for a, b in pairwise(times))
    first = got[0]
    assert parse_rfc3339_ms(first.last_notified) == parse_rfc3339_ms(str(left["since"]))
    assert (first.hazard, first.zone, first.level, first.exercise) == (
        "heavy_rain",
        LEFT,
        "caution",
        False,
    )
    assert times[0] - parse_rfc3339_ms(first.last_notified) >= REPEAT_S * 1000

    # operators see it: the CLI's listing, the counter, InfluxDB
    env = {"GYEONGBO_OPERATOR__TOKEN": viewer, "COLUMNS": "250"}
    out = CliRunner().invoke(cli, ["alerts", "list", "--url", w.url], env=env)
    assert out.exit_code == 0, out.output
    line = next(ln for ln in out.output.splitlines() if LEFT in ln)
    assert " sent, next " in line
    metrics = get_json(w.url + "/metrics")
    assert metrics["alert_reminders"] >= len(got)

    def stored() -> list[object]:
        q = f"SELECT n FROM alert_reminder WHERE alert_id = '{first.alert_id}'"
        ans = influx.query(stack.influx_url, q, db=settings.influx.bucket)
        series = ans["results"][0].get("series") or [{"values": []}]
        return list(series[0]["values"])

    wait_for(lambda: len(stored()) >= len(got), 30, "the reminders in InfluxDB")

    # never public: alerts carries the two raises and the ack only, and no resident got an
    # SMS of any other event
    events = [e for e in alert_events(settings, timeout_s=3) if e.hazard == "heavy_rain"]
    assert sorted(e.action for e in events) == ["ack", "manual", "manual"]
    transitions = {e.event_id for e in events}

    def messages() -> list[str]:
        """The sent log's keys (person|event|level|the transition that triggered it)."""
        out = []
        for ev in get_json(w.url + "/deliveries?limit=1000", viewer):
            rows = get_json(f"{w.url}/deliveries/{quote(ev['event_id'], safe='')}", viewer)
            out += [str(r["key"]) for r in rows]
        return sorted(out)

    before = wait_for(messages, 30, "the raise's messages to 용산구's residents")
    assert all(k.rsplit("|", 1)[1] in transitions for k in before), before
    n = get_json(w.url + "/metrics")["alert_reminders"]
    wait_for(lambda: get_json(w.url + "/metrics")["alert_reminders"] > n, 30, "one more reminder")
    assert messages() == before


def test_a_restarted_worker_goes_on_without_a_burst(pipe: LocalPipeline) -> None:
    settings = pipe.settings
    before = reminders(settings)
    assert before
    pipe.workers[0].stop()
    stopped = len(reminders(settings))
    w = pipe.start_worker(0)
    viewer = issue_token(settings, "desk-viewer-2", "viewer")
    wait_for(lambda: len(reminders(settings)) >= stopped + 2, 90, "two reminders after the restart")
    sent = reminders(settings)
    # A stop between a tick's reminder and the write of the machine that sent it replays the
    # tick: the same reminder again, with the same event_id (at most this one). Otherwise one
    # series, numbered on without a gap, each a period after the one before.
    got = list({r.event_id: r for r in sent}.values())
    assert len(sent) - len(got) <= 1
    assert [r.n for r in got] == list(range(1, len(got) + 1))
    times = [parse_rfc3339_ms(r.ts) for r in got]
    assert all(b - a >= REPEAT_S * 1000 for a, b in pairwise(times))
    (left,) = [a for a in get_json(w.url + "/alerts", viewer) if a["zone"] == LEFT]
    assert left["reminders"] >= got[-1].n
