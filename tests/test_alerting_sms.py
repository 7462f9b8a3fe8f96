"""SMS through the real twilio client to the fake Twilio server (a subprocess on a free port)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.model import Recipient
from alerting.sentlog import SqliteSentLog
from alerting.sms import (
    Delivery,
    Dispatcher,
    DrillLeakError,
    DryRunProvider,
    TokenBucket,
    TwilioProvider,
    plan_deliveries,
    provider_from_settings,
)
from alerting.status import make_status_handler
from alerting.templates import DEFAULT_TEMPLATES, TemplateError, load_templates, parse_templates
from gyeongbo.events import AlertEvent
from gyeongbo.settings import TwilioSettings
from tests.test_fake_twilio import ACCOUNT, TOKEN, call, free_port, start_fake, stop

MG = "MG" + "a" * 32
TEMPLATES = load_templates()


def event(
    level: str = "caution",
    previous: str = "attention",
    *,
    exercise: bool = False,
    n: int = 1,
    action: str = "escalate",
    hazard: str = "flood",
) -> AlertEvent:
    aid = ("exercise:" if exercise else "") + f"{hazard}:11030:2020-08-06T10:40:00+09:00"
    return AlertEvent(
        alert_id=aid,
        hazard=hazard,
        zone="11030",
        zone_name="용산구",
        level=level,
        previous=previous,
        level_ko="주의",  # type: ignore[arg-type]
        ts="2020-08-06T11:00:00+09:00",
        action=action,  # type: ignore[arg-type]
        exercise=exercise,
        stations=["1018683"],
        evidence={"station": "1018683", "value": 8.62, "threshold": 8.5},
        event_id=f"{aid}#{n}",
    )


def phones(n: int, start: int = 0) -> list[str]:
    return [f"+8210{5550000 + i:08d}" for i in range(start, start + n)]


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    proc, base = start_fake(None, "--callback-delay", "0.05")
    yield base
    stop(proc)


@pytest.fixture
def base(fake: str) -> str:
    call(fake, "/_fake/reset", json_body={})
    return fake


def twilio_settings(base: str, callback: str | None = None) -> TwilioSettings:
    return TwilioSettings(
        api_base=base,
        account_sid=ACCOUNT,
        auth_token=TOKEN,  # type: ignore[arg-type]
        messaging_service_sid=MG,
        status_callback_url=callback,
    )


def dispatcher(base: str, log: SqliteSentLog, **kw: Any) -> Dispatcher:
    kw.setdefault("rate", TokenBucket(rate=200, burst=50))
    kw.setdefault("backoff_s", 0.01)
    return Dispatcher(TwilioProvider(twilio_settings(base)), log, TEMPLATES, **kw)


def messages(base: str) -> list[dict[str, Any]]:
    return list(call(base, "/_fake/messages")[1]["messages"])


def test_form_fields_and_sent_log(
    base: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log = SqliteSentLog(tmp_path / "sent.db")
    rs = [Recipient(p) for p in phones(2)] + [
        Recipient(phones(1, 9)[0], hazards=frozenset({"pm10"}))
    ]
    report = dispatcher(base, log).dispatch(event(), rs, station_names={"1018683": "한강대교"})
    assert sorted(report.outcomes.values()) == ["sent", "sent"]  # the third opted out of floods
    got = messages(base)
    body = (
        "[경보] Flood 홍수주의보 용산구: 한강대교 수위 8.6m. 하천변 접근 금지, 대피 준비. "
        "-한강홍수통제소"
    )
    assert sorted(m["to"] for m in got) == phones(2)
    assert {(m["body"], m["messaging_service_sid"], m["from"]) for m in got} == {(body, MG, None)}
    assert all(len(m["idempotency_token"]) == 64 for m in got)
    recs = log.records()
    assert [r.state for r in recs] == ["sent", "sent"]
    assert {r.sid for r in recs} == {m["sid"] for m in got}
    assert all(p not in caplog.text for p in phones(3))  # phone numbers masked in every line
    assert "+8210****0000" in caplog.text


def test_rate_limited_429_then_success(base: str, tmp_path: Path) -> None:
    call(base, "/_fake/fail", json_body={"status": 429, "code": 20429, "count": 2})
    log = SqliteSentLog(tmp_path / "sent.db")
    t0 = time.monotonic()
    report = dispatcher(base, log, backoff_s=0.1).dispatch(event(), [Recipient(phones(1)[0])])
    assert list(report.outcomes.values()) == ["sent"]
    assert time.monotonic() - t0 >= 0.1 + 0.2  # backed off 0.1 s, then 0.2 s
    (rec,) = log.records()
    assert (rec.state, rec.attempts) == ("sent", 3)
    state = call(base, "/_fake/messages")[1]
    assert (state["failures_served"], len(state["messages"])) == (2, 1)


def test_5xx_retried_then_failed_then_sent_by_a_later_dispatch(base: str, tmp_path: Path) -> None:
    call(base, "/_fake/fail", json_body={"status": 500, "count": 3})
    log = SqliteSentLog(tmp_path / "sent.db")
    d = dispatcher(base, log, max_attempts=3)
    r = Recipient(phones(1)[0])
    assert list(d.dispatch(event(), [r]).outcomes.values()) == ["failed"]
    assert log.records()[0].error_code == 20500
    assert list(d.dispatch(event(), [r]).outcomes.values()) == ["sent"]
    assert list(d.dispatch(event(), [r]).outcomes.values()) == ["already_sent"]
    assert len(messages(base)) == 1


def test_permanent_errors_are_recorded_and_not_retried(base: str, tmp_path: Path) -> None:
    log = SqliteSentLog(tmp_path / "sent.db")
    d = dispatcher(base, log)
    rs = [Recipient("+15005550001"), Recipient("+15005550009"), Recipient(phones(1)[0])]
    assert sorted(d.dispatch(event(), rs).outcomes.values()) == ["permanent", "permanent", "sent"]
    assert sorted((r.state, r.error_code) for r in log.records()) == [
        ("permanent", 21211),
        ("permanent", 21614),
        ("sent", None),
    ]
    before = call(base, "/_fake/messages")[1]["requests"]
    assert sorted(d.dispatch(event(), rs).outcomes.values()) == [
        "already_permanent",
        "already_permanent",
        "already_sent",
    ]
    assert call(base, "/_fake/messages")[1]["requests"] == before


def test_crash_between_request_and_outcome_resends_with_same_token(
    base: str, tmp_path: Path
) -> None:
    log = SqliteSentLog(tmp_path / "sent.db")
    r = Recipient(phones(1)[0])
    (d,) = plan_deliveries(event(), [r], TEMPLATES)
    # The crashed process: intent recorded, request reached Twilio, outcome never recorded.
    log.begin(d.event_id, r.phone, token=d.token, now_ms=0)
    first = TwilioProvider(twilio_settings(base)).send(r.phone, d.body, token=d.token)
    assert list(dispatcher(base, log).dispatch(event(), [r]).outcomes.values()) == ["sent"]
    state = call(base, "/_fake/messages")[1]
    assert (len(state["messages"]), state["replays"]) == (1, 1)
    assert log.get(d.event_id, r.phone).sid == first.sid  # type: ignore[union-attr]
    # at-most-once instead: the unknown delivery is flagged, not re-sent
    log2 = SqliteSentLog(tmp_path / "sent2.db")
    log2.begin(d.event_id, r.phone, token=d.token, now_ms=0)
    out = dispatcher(base, log2, on_unknown="skip").dispatch(event(), [r])
    assert list(out.outcomes.values()) == ["unknown"]
    assert call(base, "/_fake/messages")[1]["requests"] == state["requests"]


WORKER = textwrap.dedent("""
    import sys
    from alerting.model import Recipient
    from alerting.sentlog import SqliteSentLog
    from alerting.sms import Dispatcher, TokenBucket, TwilioProvider
    from alerting.templates import load_templates
    from gyeongbo.settings import TwilioSettings
    from tests.test_alerting_sms import event, phones, MG
    from tests.test_fake_twilio import ACCOUNT, TOKEN

    base, db = sys.argv[1], sys.argv[2]
    s = TwilioSettings(api_base=base, account_sid=ACCOUNT, auth_token=TOKEN,
                       messaging_service_sid=MG)
    d = Dispatcher(TwilioProvider(s), SqliteSentLog(db), load_templates(),
                   rate=TokenBucket(rate=25, burst=1))
    for n in (1, 2):
        d.dispatch(event(n=n, level="caution" if n == 1 else "alert", previous="attention"),
                   [Recipient(p) for p in phones(20)])
    print("done", flush=True)
""")


def test_dispatcher_killed_mid_dispatch_and_restarted_sends_no_duplicate(
    base: str, tmp_path: Path
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    db = tmp_path / "sent.db"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    argv = [sys.executable, str(script), base, str(db)]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while len(messages(base)) < 12 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(messages(base))
    assert 12 <= killed_at < 40, "the kill must land mid-dispatch"
    out = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    got = messages(base)
    pairs = [(m["to"], m["idempotency_token"]) for m in got]
    assert len(got) == 40 and len(set(pairs)) == 40  # 20 recipients × 2 transitions, once each
    assert sorted({m["to"] for m in got}) == phones(20)
    log = SqliteSentLog(db)
    assert sorted({r.state for r in log.records()}) == ["sent"] and len(log.records()) == 40


def test_drill_sms_only_to_drill_recipients_with_prefix(base: str, tmp_path: Path) -> None:
    log = SqliteSentLog(tmp_path / "sent.db")
    rs = [Recipient(p, drill=(i % 3 == 0)) for i, p in enumerate(phones(9))]
    report = dispatcher(base, log).dispatch(event(exercise=True), rs)
    got = messages(base)
    assert sorted(m["to"] for m in got) == [r.phone for r in rs if r.drill]
    assert len(report.outcomes) == 3
    assert all(m["body"].startswith("[훈련][경보] Flood") for m in got)
    with pytest.raises(DrillLeakError):
        Delivery("x#1", Recipient(phones(1)[0]), "[훈련][경보] …", exercise=True)
    with pytest.raises(DrillLeakError):
        Delivery("x#1", Recipient(phones(1)[0], drill=True), "[경보] …", exercise=True)
    with pytest.raises(DrillLeakError):
        Delivery("x#1", Recipient(phones(1)[0]), "[훈련][경보] …", exercise=False)


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
    st.sampled_from(["caution", "alert", "serious", "cleared"]),
)
def test_no_drill_ever_reaches_a_non_drill_recipient(
    people: list[tuple[int, bool, set[str]]], exercise: bool, level: str
) -> None:
    rs = [Recipient(f"+82105550{i:04d}", drill=d, hazards=frozenset(h)) for i, d, h in people]
    ev = event(
        level=level, previous="alert" if level == "cleared" else "attention", exercise=exercise
    )
    plan = plan_deliveries(ev, rs, TEMPLATES)
    for d in plan:
        assert d.recipient.drill or not exercise
        assert d.body.startswith("[훈련]") == exercise
        assert len(d.body) <= 90
    expected = {r.phone for r in rs if r.wants("flood") and (r.drill or not exercise)}
    assert {d.recipient.phone for d in plan} == expected


def test_which_events_get_sms() -> None:
    rs = [Recipient(phones(1)[0])]
    assert plan_deliveries(event("attention", "cleared", action="raise"), rs, TEMPLATES) == []
    assert plan_deliveries(event("caution", "caution", action="ack"), rs, TEMPLATES) == []
    assert plan_deliveries(event("serious", "caution", hazard="sensor_health"), rs, TEMPLATES) == []
    (clear,) = plan_deliveries(event("attention", "alert", action="deescalate"), rs, TEMPLATES)
    assert clear.body.startswith("[해제] Flood 홍수특보 해제 용산구")
    assert plan_deliveries(event("cleared", "attention", action="clear"), rs, TEMPLATES) == []


def test_dry_run_without_credentials_logs_loudly_and_masks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    provider = provider_from_settings(TwilioSettings())
    assert isinstance(provider, DryRunProvider)
    d = Dispatcher(provider, SqliteSentLog(tmp_path / "s.db"), TEMPLATES)
    assert list(d.dispatch(event(), [Recipient(phones(1)[0])]).outcomes.values()) == ["dry_run"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("DRY RUN: no Twilio credentials" in w for w in warnings)
    assert any("SMS DRY RUN (not sent) to +8210****0000" in w for w in warnings)
    assert phones(1)[0] not in caplog.text


def test_status_callbacks_from_the_fake_are_verified_and_recorded(tmp_path: Path) -> None:
    from aiohttp import web

    log = SqliteSentLog(tmp_path / "sent.db")
    port = free_port()
    url = f"http://127.0.0.1:{port}/twilio/status"
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/twilio/status", make_status_handler(log, auth_token=TOKEN))
    runner = web.AppRunner(app)

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        loop.run_forever()

    threading.Thread(target=serve, daemon=True).start()
    proc, base = start_fake(None, "--callback-delay", "0.05")
    try:
        d = Dispatcher(TwilioProvider(twilio_settings(base, url)), log, TEMPLATES)
        d.dispatch(event(), [Recipient(phones(1)[0])])
        deadline = time.monotonic() + 10
        while log.records()[0].delivery_status != "delivered" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.records()[0].delivery_status == "delivered"
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
        ),
    )
    del bad["hazards"]["pm25"]
    with pytest.raises(TemplateError) as err:
        parse_templates(bad)
    text = str(err.value)
    assert "hazards.flood.stages.alert: unknown placeholder(s) ['oops']" in text
    assert "hazards.flood.stages.serious: up to " in text and "over 90" in text
    assert "hazards.pm25: missing" in text
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
