"""The SMS fan-out (streams.fanout) with the real twilio client against the fake Twilio
server (a subprocess), the sent log in a real store; counts are taken at the fake."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from alerting.delivery import token_of
from alerting.model import Recipient
from gyeongbo.settings import DeliverySettings, TwilioSettings
from streams.fanout import FanOut
from streams.store import PlannedDelivery, Subscriber, SubscriberStore, open_store
from streams.twilio_client import TwilioSender
from tests.test_fake_twilio import ACCOUNT, TOKEN, call, start_fake, stop

MG = "MG" + "a" * 32
BODY = "[경보] Earthquake 지진 긴급재난 경상북도: 규모5.8. 탁자 밑 대피 후 밖으로. -기상청"


@pytest.fixture(scope="module")
def fake() -> Iterator[str]:
    proc, base = start_fake(None, "--no-callbacks")
    yield base
    stop(proc)


@pytest.fixture
def base(fake: str) -> str:
    call(fake, "/_fake/reset", json_body={})
    call(fake, "/_fake/config", json_body={"latency_ms": [0, 0], "stop_numbers": []})
    return fake


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SubscriberStore]:
    s = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    s.migrate()
    yield s
    s.close()


def phone(i: int) -> str:
    return f"+8210{5550000 + i:08d}"


def people(store: SubscriberStore, n: int) -> dict[str, Recipient]:
    subs = [
        Subscriber(id=f"p{i:05d}", phone=phone(i), hazards=("earthquake",), zones_version="v")
        for i in range(n)
    ]
    store.upsert(subs, now_ms=0)
    return {s.id: s.recipient() for s in subs}


def plan(store: SubscriberStore, rs: dict[str, Recipient], **kw: Any) -> list[PlannedDelivery]:
    rows = []
    for k, (pid, _r) in enumerate(sorted(rs.items())):
        key = f"{pid}|quake:event:t|3|quake:37:t#1"
        rows.append(
            PlannedDelivery(
                key=key,
                event_id="earthquake:event:t",
                notify_key="real|earthquake",
                hazard="earthquake",
                exercise=False,
                subscriber_id=pid,
                phone_masked="+8210****0000",
                level=3,
                kind="rise",
                seq=1,
                trigger="quake:37:t#1",
                area="경상북도",
                body=BODY,
                priority=kw.get("priority", lambda k: 0.0)(k),
                token=token_of(key),
                planned_ms=0,
            )
        )
    assert len(store.plan(rows)) == len(rows)
    return rows


def sender(base: str, token: str = TOKEN) -> TwilioSender:
    return TwilioSender(
        TwilioSettings(
            api_base=base,
            account_sid=ACCOUNT,
            auth_token=token,  # type: ignore[arg-type]
            messaging_service_sid=MG,
        )
    )


def run_fanout(
    store: SubscriberStore,
    base: str,
    rows: list[PlannedDelivery],
    rs: dict[str, Recipient],
    *,
    token: str = TOKEN,
    timeout_s: float = 60,
    **settings: Any,
) -> FanOut:
    settings.setdefault("backoff_s", 0.05)
    settings.setdefault("flush_s", 0.05)

    async def go() -> FanOut:
        f = FanOut(store, sender(base, token), DeliverySettings(**settings))
        f.start()
        f.submit(rows, rs)
        await f.idle(timeout_s)
        await f.stop()
        return f

    return asyncio.run(go())


def stats(base: str) -> dict[str, Any]:
    return call(base, "/_fake/stats")[1]  # type: ignore[no-any-return]


def test_concurrency_bound_is_respected_and_each_person_gets_one(
    base: str, store: SubscriberStore
) -> None:
    rs = people(store, 400)
    rows = plan(store, rs)
    call(base, "/_fake/config", json_body={"latency_ms": [30, 60]})
    t0 = time.monotonic()
    f = run_fanout(store, base, rows, rs, max_in_flight=20)
    took = time.monotonic() - t0
    st = stats(base)
    assert st["messages"] == 400 and st["replays"] == 0
    assert set(st["per_to"].values()) == {1} and len(st["per_to"]) == 400
    assert st["max_in_flight"] <= 20 and f.max_in_flight_seen <= 20
    assert st["max_in_flight"] >= 15  # and it was used: concurrent, not one at a time
    assert took < 400 * 0.03  # far below one-at-a-time
    recs = store.deliveries(limit=1000)
    assert {r.state for r in recs} == {"sent"} and all(r.sid for r in recs)
    assert f.counters["outcome_batches"] < 400  # written in batches, not per message


def test_a_429_burst_slows_the_whole_fan_out_and_nothing_is_lost(
    base: str, store: SubscriberStore
) -> None:
    rs = people(store, 300)
    rows = plan(store, rs)
    call(base, "/_fake/config", json_body={"latency_ms": [20, 40]})
    call(base, "/_fake/burst", json_body={"count": 60, "after": 50})
    f = run_fanout(store, base, rows, rs, max_in_flight=40, min_in_flight=2)
    st = stats(base)
    assert st["rate_limited"] == 60
    assert f.limit.cuts >= 1 and f.counters["answer_rate_limited"] == 60
    assert st["messages"] == 300 and set(st["per_to"].values()) == {1}
    assert {r.state for r in store.deliveries(limit=1000)} == {"sent"}
    # the refused requests were sent again after the pause; a 429 is not a failed attempt
    assert st["requests"] == 300 + 60
    assert {r.attempts for r in store.deliveries(limit=1000)} == {1}


def test_5xx_is_retried_with_backoff(base: str, store: SubscriberStore) -> None:
    rs = people(store, 1)
    rows = plan(store, rs)
    call(base, "/_fake/fail", json_body={"status": 503, "count": 3})
    t0 = time.monotonic()
    run_fanout(store, base, rows, rs, backoff_s=0.1)
    assert time.monotonic() - t0 >= 0.1 + 0.2 + 0.4
    (rec,) = store.deliveries()
    assert (rec.state, rec.attempts) == ("sent", 4)
    assert stats(base)["failures_served"] == 3


def test_5xx_until_attempts_run_out_is_recorded_failed(base: str, store: SubscriberStore) -> None:
    rs = people(store, 1)
    rows = plan(store, rs)
    call(base, "/_fake/fail", json_body={"status": 500, "count": 5})
    run_fanout(store, base, rows, rs, max_attempts=3, backoff_s=0.01)
    (rec,) = store.deliveries()
    assert (rec.state, rec.attempts, rec.error_code) == ("failed", 3, 20500)
    assert stats(base)["messages"] == 0


def test_21610_opts_the_subscriber_out_and_is_never_retried(
    base: str, store: SubscriberStore
) -> None:
    rs = people(store, 3)
    rows = plan(store, rs)
    call(base, "/_fake/config", json_body={"stop_numbers": [phone(1)]})
    run_fanout(store, base, rows, rs)
    by = {r.subscriber_id: r for r in store.deliveries()}
    assert (by["p00001"].state, by["p00001"].error_code, by["p00001"].attempts) == (
        "opted_out",
        21610,
        1,
    )
    s = store.get("p00001")
    assert s is not None and s.opted_out_ms is not None and "21610" in (s.opt_out_reason or "")
    assert [r.id for r in store.audience("x", "earthquake", exercise=False)] == []  # none zoned
    assert store.recipients(["p00001"]) == {}
    st = stats(base)
    assert st["opted_out"] == 1 and st["messages"] == 2
    (summary,) = store.summaries()
    assert (summary.submitted, summary.opted_out) == (2, 1)


def test_permanent_codes_are_recorded_and_not_retried(base: str, store: SubscriberStore) -> None:
    subs = [
        Subscriber(id="bad", phone="+15005550001", hazards=("earthquake",), zones_version="v"),
        Subscriber(id="landline", phone="+15005550009", hazards=("earthquake",), zones_version="v"),
    ]
    store.upsert(subs, now_ms=0)
    rs = {s.id: s.recipient() for s in subs}
    rows = plan(store, rs)
    run_fanout(store, base, rows, rs)
    got = {r.subscriber_id: (r.state, r.error_code, r.attempts) for r in store.deliveries()}
    assert got == {"bad": ("permanent", 21211, 1), "landline": ("permanent", 21614, 1)}
    assert stats(base)["requests"] == 2


def test_priority_order_higher_first(base: str, store: SubscriberStore) -> None:
    rs = people(store, 30)
    rows = plan(store, rs, priority=lambda k: float(30 - k))  # the last planned goes first
    run_fanout(store, base, rows, rs, max_in_flight=1, min_in_flight=1)
    msgs = call(base, "/_fake/messages")[1]["messages"]
    assert [m["to"] for m in msgs] == [phone(i) for i in reversed(range(30))]


def test_bad_credentials_stop_the_fan_out_and_keep_rows_planned(
    base: str, store: SubscriberStore
) -> None:
    rs = people(store, 20)
    rows = plan(store, rs)
    f = run_fanout(store, base, rows, rs, token="wrong", timeout_s=2, max_in_flight=5)
    assert f.fatal is not None and f.fatal.kind == "fatal"
    assert len(store.pending()) == 20  # nothing lost: a restart with good ones sends them
    assert stats(base)["messages"] == 0
    run_fanout(store, base, store.pending(), rs)
    assert Counter(r.state for r in store.deliveries()) == {"sent": 20}


def test_a_resumed_row_is_sent_with_its_token_and_not_twice(
    base: str, store: SubscriberStore
) -> None:
    """A row answered by the provider but not yet written (a crash in that window) is
    resumed with the same token: the fake answers the original message, no second SMS."""
    rs = people(store, 5)
    rows = plan(store, rs)
    for r in rows[:3]:  # these reached the provider before the "crash"
        form = {"To": rs[r.subscriber_id].phone, "MessagingServiceSid": MG, "Body": r.body}
        call(
            base,
            f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
            form,
            headers={"I-Twilio-Idempotency-Token": r.token},
        )
    run_fanout(store, base, store.pending(), rs)
    st = stats(base)
    assert st["messages"] == 5 and st["replays"] == 3 and set(st["per_to"].values()) == {1}
    assert Counter(r.state for r in store.deliveries()) == {"sent": 5}


def test_exercise_rows_never_reach_a_non_drill_handset(base: str, store: SubscriberStore) -> None:
    rs = people(store, 1)
    (row,) = plan(store, rs)
    drill_row = PlannedDelivery(
        **{
            **{f: getattr(row, f) for f in row.__struct_fields__},
            "key": "k-ex",
            "exercise": True,
            "body": "[훈련]" + BODY,
        }
    )
    store.plan([drill_row])
    run_fanout(store, base, [drill_row], rs)
    rec = next(r for r in store.deliveries() if r.key == "k-ex")
    assert rec.state == "failed" and "non-drill" in (rec.error or "")
    assert stats(base)["requests"] == 0


def test_rows_answered_but_not_yet_written_are_not_resumed_twice(
    base: str, store: SubscriberStore
) -> None:
    """A rebalance resumes the store's ``planned`` rows while this worker still holds their
    outcomes in its next batch: they must not be sent again."""
    rs = people(store, 50)
    rows = plan(store, rs)

    async def go() -> None:
        f = FanOut(store, sender(base), DeliverySettings(flush_s=30, batch_rows=1000))
        f.start()
        f.submit(rows, rs)
        while f.counters["sent"] < 50:
            await asyncio.sleep(0.02)
        assert len(store.pending()) == 50  # answered, not written yet
        assert f.submit(store.pending(), rs) == 0
        await f.stop()

    asyncio.run(go())
    assert stats(base)["requests"] == 50
    assert store.pending() == []
