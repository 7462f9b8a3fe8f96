"""SMS pieces: drill isolation, which transitions are public, templates, the real twilio
client's requests (against the fake Twilio server), dry runs and status callbacks."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.delivery import Board, apply, plan_notices
from alerting.model import Recipient
from alerting.sms import DrillLeakError, check_drill
from alerting.templates import TemplateError, parse_templates, sms_stage
from gyeongbo.events import AlertEvent
from gyeongbo.settings import TwilioSettings
from streams.config_files import DEFAULT_TEMPLATES, load_templates
from streams.sms_status import make_status_handler
from streams.store import Outcome, open_store
from streams.twilio_client import DryRunSender, TwilioSender, sender_from_settings
from tests.test_fake_twilio import ACCOUNT, TOKEN, call, free_port, start_fake, stop

MG = "MG" + "a" * 32
TEMPLATES = load_templates()


def event(
    level: str = "caution",
    previous: str = "attention",
    *,
    exercise: bool = False,
    action: str = "escalate",
    hazard: str = "flood",
) -> AlertEvent:
    aid = ("exercise:" if exercise else "") + f"{hazard}:11030:2020-08-06T10:40:00+09:00"
    return AlertEvent(
        alert_id=aid,
        hazard=hazard,
        zone="11030",
        zone_name="용산구",
        level=level,  # type: ignore[arg-type]
        previous=previous,  # type: ignore[arg-type]
        level_ko="주의",
        ts="2020-08-06T11:00:00+09:00",
        action=action,  # type: ignore[arg-type]
        exercise=exercise,
        stations=["1018683"],
        evidence={"station": "1018683", "value": 8.62, "threshold": 8.5},
        event_id=f"{aid}#1",
    )


def phones(n: int, start: int = 0) -> list[str]:
    return [f"+8210{5550000 + i:08d}" for i in range(start, start + n)]


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    proc, base = start_fake(None, "--callback-delay", "0.05")
    yield base
    stop(proc)


def twilio_settings(base: str, callback: str | None = None) -> TwilioSettings:
    return TwilioSettings(
        api_base=base,
        account_sid=ACCOUNT,
        auth_token=TOKEN,  # type: ignore[arg-type]
        messaging_service_sid=MG,
        status_callback_url=callback,
    )


def test_drill_isolation_checks() -> None:
    drill, resident = Recipient(phones(1)[0], drill=True), Recipient(phones(1)[0])
    check_drill(True, drill, "[훈련][경보] …", "[훈련]")
    check_drill(False, resident, "[경보] …", "[훈련]")
    for exercise, r, body in [
        (True, resident, "[훈련][경보] …"),  # an exercise to a resident
        (True, drill, "[경보] …"),  # an exercise without the prefix
        (False, resident, "[훈련][경보] …"),  # a real alert that looks like a drill
        (False, drill, "[경보] …"),  # a real alert to a drill handset
    ]:
        with pytest.raises(DrillLeakError):
            check_drill(exercise, r, body, "[훈련]")


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 50),
            st.booleans(),
            st.sets(st.sampled_from(["flood", "pm10", "earthquake"])),
        ),
        max_size=30,
    ),
    st.booleans(),
    st.sampled_from(["caution", "alert", "serious"]),
)
def test_no_drill_ever_reaches_a_non_drill_recipient(
    people: list[tuple[int, bool, set[str]]], exercise: bool, level: str
) -> None:
    rs = [
        Recipient(f"+82105550{i:04d}", drill=d, hazards=frozenset(h), id=f"p{i}", zones=("11030",))
        for i, d, h in people
    ]
    board = Board(hazard="flood", exercise=exercise)
    step = apply(board, event(level=level, exercise=exercise), hold_ms=0)
    assert step is not None
    plan = plan_notices(board, step, rs, {}, TEMPLATES)
    for n in plan:
        assert n.recipient.drill == exercise
        assert n.body.startswith("[훈련]") == exercise
        assert len(n.body) <= 90
    expected = {r.id for r in rs if r.wants("flood") and r.drill == exercise}
    assert {n.recipient.id for n in plan} == expected


def test_which_transitions_are_public() -> None:
    assert sms_stage(event("attention", "cleared", action="raise")) is None
    assert sms_stage(event("caution", "caution", action="ack")) is None
    assert sms_stage(event("serious", "caution", hazard="sensor_health")) is None
    assert sms_stage(event("attention", "alert", action="deescalate")) == "cleared"
    assert sms_stage(event("cleared", "attention", action="clear")) is None


def test_real_client_sends_form_fields_and_token_phones_masked(
    fake: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    call(fake, "/_fake/reset", json_body={})
    body = TEMPLATES.render_fields("flood", "caution", zone="용산구", station="한강대교", value=8.6)

    async def go() -> None:
        s = TwilioSender(twilio_settings(fake))
        try:
            res = await s.send(phones(1)[0], body, token="t" * 64)
            again = await s.send(phones(1)[0], body, token="t" * 64)  # a retry: same message
            assert res.sid == again.sid and res.status == "accepted"
        finally:
            await s.close()

    asyncio.run(go())
    (m,) = call(fake, "/_fake/messages")[1]["messages"]
    assert (m["to"], m["body"], m["messaging_service_sid"], m["from"]) == (
        phones(1)[0],
        body,
        MG,
        None,
    )
    assert m["idempotency_token"] == "t" * 64
    assert phones(1)[0] not in caplog.text


def test_dry_run_without_credentials_logs_loudly_and_masks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    sender = sender_from_settings(TwilioSettings())
    assert isinstance(sender, DryRunSender)
    res = asyncio.run(sender.send(phones(1)[0], "[경보] x", token="abc" * 10))
    assert res.status == "dry_run"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("DRY RUN: no Twilio credentials" in w for w in warnings)
    assert any("SMS DRY RUN (not sent) to +8210****0000" in w for w in warnings)
    assert phones(1)[0] not in caplog.text


def test_status_callbacks_from_the_fake_are_verified_and_recorded(tmp_path: Path) -> None:
    from aiohttp import web

    from tests.test_fanout import people, plan

    store = open_store(f"sqlite:///{tmp_path / 's.sqlite'}")
    store.migrate()
    rs = people(store, 1)
    (row,) = plan(store, rs)
    port = free_port()
    url = f"http://127.0.0.1:{port}/twilio/status"
    loop = asyncio.new_event_loop()
    app = web.Application()

    def record(status: object, at_ms: int) -> None:
        store.record_statuses([(status.sid, status.status, status.error_code, at_ms)])  # type: ignore[attr-defined]

    app.router.add_post("/twilio/status", make_status_handler(record, auth_token=TOKEN))
    runner = web.AppRunner(app)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    proc, base = start_fake(None, "--callback-delay", "0.05")
    try:

        async def send() -> str:
            s = TwilioSender(twilio_settings(base, url))
            try:
                return (await s.send(rs[row.subscriber_id].phone, row.body, token=row.token)).sid
            finally:
                await s.close()

        sid = asyncio.run(send())
        store.record_outcomes([Outcome(key=row.key, state="sent", attempts=1, now_ms=1, sid=sid)])
        deadline = time.monotonic() + 10
        while store.deliveries()[0].delivery_status != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.deliveries()[0].delivery_status == "delivered"
        cbs = call(base, "/_fake/messages")[1]["callbacks"]
        assert [c["http_status"] for c in cbs] == [204, 204]
        forged = urllib.request.Request(
            url,
            data=b"MessageSid=SMx&MessageStatus=failed",
            method="POST",
            headers={
                "X-Twilio-Signature": "forged",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(forged, timeout=5)
        assert err.value.code == 403
    finally:
        stop(proc)
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        store.close()


def test_templates_are_validated_at_load() -> None:
    data = yaml.safe_load(DEFAULT_TEMPLATES.read_text())
    assert load_templates(max_chars=157).max_chars == 157
    bad = dict(data, hazards=dict(data["hazards"]))
    bad["hazards"]["flood"] = dict(
        bad["hazards"]["flood"],
        stages=dict(
            bad["hazards"]["flood"]["stages"],
            alert="{prefix} 홍수경보 {zone}: {station} {value}m {oops}",
            serious="{prefix} Flood " + "가" * 80 + " {zone}",
            caution="{prefix} Flood 홍수주의보 {zone}: {value:.q}m",
        ),
    )
    del bad["hazards"]["pm25"]
    with pytest.raises(TemplateError) as err:
        parse_templates(bad)
    text = str(err.value)
    assert "hazards.flood.stages.alert: unknown placeholder(s) ['oops']" in text
    assert "hazards.flood.stages.serious: up to " in text and "over 90" in text
    assert "hazards.pm25: missing" in text
    assert "hazards.flood.stages.caution: ValueError: Format specifier missing precision" in text
    with pytest.raises(TemplateError):
        parse_templates(dict(data, max_chars=200))


def test_long_names_are_cut_never_the_limit_exceeded() -> None:
    t = load_templates()
    body = t.render_fields(
        "flood",
        "serious",
        zone="아주아주아주긴행정구역이름",
        station="긴" * 30,
        value=12345678.9,
        drill=True,
    )
    assert len(body) <= 90 and "…" in body


def test_earthquake_sms_says_magnitude_for_a_catalogue_event_and_intensity_for_shaking() -> None:
    t = load_templates()

    def quake(rule: str, value: float) -> AlertEvent:
        return AlertEvent(
            alert_id="a",
            hazard="earthquake",
            zone="47130",
            zone_name="경주시",
            level="alert",
            previous="cleared",
            level_ko="경계",
            ts="2016-09-12T20:32:54+09:00",
            action="raise",
            evidence={"rule": rule, "value": value, "station": "X"},
        )

    catalogue = t.render(quake("earthquake.catalogue", 5.8))
    shaking = t.render(quake("earthquake.pga_intensity", 0.1))  # 0.1 g → VI
    assert catalogue is not None and ": 규모5.8." in catalogue
    assert shaking is not None and ": 진도VI." in shaking and "규모" not in shaking
    bad = yaml.safe_load(DEFAULT_TEMPLATES.read_text())
    bad["hazards"]["earthquake"]["value_formats"] = {"earthquake.pga_intensity": "PGA {:.4f} g"}
    with pytest.raises(TemplateError, match="longer than the value limit 6"):
        parse_templates(bad)
