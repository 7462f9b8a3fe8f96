"""Operators confirm or set the headquarters' 비상 stage on a real worker (docs/design.md §4).

One worker on the local stack: heavy-rain alerts stand in four provinces (operators' manual
escalations, which travel the same way detected ones do: ``zone.commands`` → stage agent →
``alerts`` and ``hq.inputs``), the HQ machine proposes 비상 1단계, and operators act through the
API and ``gyeongbo hq``; what they did reaches ``hq.stages`` with who and why.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from gyeongbo.events import HQStageEvent, decode_hq
from gyeongbo.settings import Settings
from gyeongbo.stack.stack import Stack
from gyeongbo_cli.main import app as cli
from streams.commands import HQCommand, encode_hq_command
from streams.pipeline import LocalPipeline, LocalProcess
from tests.kafka_helpers import consume_all, produce, run
from tests.pipeline_support import get_json, isolated_settings, issue_token, post_json, wait_for

pytestmark = [pytest.mark.stack]

#: One zone in each of four provinces: Seoul, Busan, Daegu, Incheon.
ZONES = ("11030", "21310", "22310", "23320")


@pytest.fixture(scope="module")
def worker(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, LocalProcess]]:
    tmp = tmp_path_factory.mktemp("hq")
    settings = isolated_settings(stack, tmp)
    pipe = LocalPipeline(settings=settings, logs=tmp / "logs")
    try:
        yield settings, pipe.start_worker()
    finally:
        pipe.stop()


def hq_stages(settings: Settings) -> list[HQStageEvent]:
    recs = run(consume_all(settings.kafka.bootstrap, settings.kafka.topics.hq_stages.name, None, 5))
    return [decode_hq(r.value) for r in recs]


def test_an_operator_confirms_the_proposal_and_a_viewer_cannot(
    worker: tuple[Settings, LocalProcess],
) -> None:
    settings, w = worker
    viewer = issue_token(settings, "desk-viewer", "viewer")
    operator = issue_token(settings, "op-park", "operator")
    for zone in ZONES:
        status, _ = post_json(
            f"{w.url}/zones/{zone}/escalate",
            {"hazard": "heavy_rain", "level": "caution", "reason": "호우주의보", "exercise": True},
            operator,
        )
        assert status == 202
    view = wait_for(
        lambda: (d := get_json(w.url + "/hq", viewer))["exercise"]["proposed"] == 1 and d,
        60,
        "the exercise HQ proposal of 비상 1단계",
    )
    assert view["exercise"]["stage"] == 0
    assert view["exercise"]["provinces"] == {p[:2]: "caution" for p in ZONES}
    assert view["real"] == {"stage": 0, "proposed": None, "provinces": {}, "history": []}

    confirm = {"reason": "호우주의보 4개 시도", "exercise": True}
    assert post_json(w.url + "/hq/confirm", confirm)[0] == 401
    status, text = post_json(w.url + "/hq/confirm", confirm, viewer)
    assert status == 403 and "viewer" in text
    status, text = post_json(w.url + "/hq/confirm", {"exercise": True}, operator)
    assert status == 400 and "reason" in text
    status, answer = post_json(w.url + "/hq/confirm", confirm, operator)
    assert status == 202, answer

    event = wait_for(
        lambda: next((e for e in hq_stages(settings) if e.action == "confirm"), None),
        30,
        "the confirm on hq.stages",
    )
    assert (event.stage, event.previous, event.exercise) == (1, 0, True)
    assert event.actor == "op-park" and event.evidence["reason"] == "호우주의보 4개 시도"
    view = get_json(w.url + "/hq", viewer)["exercise"]
    assert (view["stage"], view["proposed"]) == (1, None)
    assert [(r["action"], r["stage"], r["actor"]) for r in view["history"]] == [
        ("propose", 1, None),
        ("confirm", 1, "op-park"),
    ]
    audit = get_json(w.url + "/audit", viewer)
    assert ("op-park", "hq_confirm", "hq:exercise:storm_flood", "ok") in {
        (a["actor"], a["action"], a["target"], a["result"]) for a in audit
    }
    # nothing proposed any more: a second confirm is refused at once, and says why
    status, text = post_json(w.url + "/hq/confirm", confirm, operator)
    assert status == 409 and "no stage proposal" in text


def test_confirm_without_a_proposal_is_refused_and_a_stage_is_set_by_hand(
    worker: tuple[Settings, LocalProcess],
) -> None:
    settings, w = worker
    token = issue_token(settings, "op-yoon", "operator")
    status, text = post_json(w.url + "/hq/confirm", {"reason": "r"}, token)
    assert status == 409 and "no stage proposal" in text and "real" in text
    for body in ({"stage": 4, "reason": "r"}, {"stage": "3", "reason": "r"}, {"stage": 3}):
        assert post_json(w.url + "/hq/stage", body, token)[0] == 400, body

    env = {"GYEONGBO_OPERATOR__TOKEN": token}
    runner = CliRunner()
    out = runner.invoke(
        cli, ["hq", "set", "3", "--reason", "전국 대규모 피해", "--url", w.url], env=env
    )
    assert out.exit_code == 0, out.output
    event = wait_for(
        lambda: next((e for e in hq_stages(settings) if e.action == "manual"), None),
        30,
        "the manual stage on hq.stages",
    )
    assert (event.stage, event.previous, event.exercise, event.actor) == (3, 0, False, "op-yoon")
    assert event.evidence["reason"] == "전국 대규모 피해"

    def shown() -> dict[str, object]:
        res = runner.invoke(cli, ["hq", "show", "--json", "--url", w.url], env=env)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)["real"]  # type: ignore[no-any-return]

    assert shown()["stage"] == 3
    out = runner.invoke(cli, ["hq", "confirm", "--reason", "r", "--url", w.url], env=env)
    assert out.exit_code == 1 and "409" in out.output
    table = runner.invoke(cli, ["hq", "show", "--url", w.url], env={**env, "COLUMNS": "120"})
    assert table.exit_code == 0 and "비상 3단계" in table.output and "op-yoon" in table.output


def test_a_replayed_operator_command_is_applied_once(
    worker: tuple[Settings, LocalProcess],
) -> None:
    """A command record again on ``hq.inputs`` after a later one (a producer retry, a crash
    before the machine was recorded): applied once, the later decision stands."""
    settings, w = worker
    viewer = issue_token(settings, "desk-viewer-2", "viewer")
    first = HQCommand(
        action="stage",
        stage=2,
        actor="op-replay",
        ts_ms=1,
        reason="replay check",
        command_id="replayed-command-1",
        exercise=True,
    )
    later = HQCommand(
        action="stage",
        stage=0,
        actor="op-replay",
        ts_ms=2,
        reason="stand down",
        command_id="replayed-command-2",
        exercise=True,
    )
    # a last command marks the end: once it is applied, the replay before it was too
    marker = HQCommand(
        action="stage",
        stage=1,
        actor="op-replay",
        ts_ms=3,
        reason="marker",
        command_id="replayed-command-3",
        exercise=True,
    )
    raws = [encode_hq_command(c) for c in (first, later, first, marker)]
    run(produce(settings.kafka.bootstrap, settings.kafka.topics.hq_inputs.name, raws, None, 0))

    def audited() -> list[dict[str, object]]:
        return [a for a in get_json(w.url + "/audit", viewer) if a["actor"] == "op-replay"]

    wait_for(
        lambda: any(a["reason"].startswith("marker") for a in audited()),
        30,
        "the marker command applied",
    )
    ours = [e for e in hq_stages(settings) if e.actor == "op-replay"]
    assert [(e.action, e.stage) for e in ours] == [("manual", 2), ("deescalate", 0), ("manual", 1)]
    assert get_json(w.url + "/hq", viewer)["exercise"]["stage"] == 1
    assert len(audited()) == 3
