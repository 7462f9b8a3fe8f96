"""The subscriber store's contract, run on both stores: SQLite (a file) and PostgreSQL (the
session stack's own cluster, a fresh database per test)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from geo.zones import ZoneRegistry
from gyeongbo.stack import postgres
from gyeongbo.stack.stack import Stack
from streams.config_files import load_recipients, load_zones
from streams.store import Outcome, PlannedDelivery, Subscriber, SubscriberStore, open_store
from streams.store.indexing import from_directory, prepare

T = 1_800_000_000_000


@pytest.fixture(scope="module")
def zones() -> ZoneRegistry:
    return load_zones()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SubscriberStore]:
    if request.param == "sqlite":
        s = open_store(f"sqlite:///{tmp_path / 'store.sqlite'}")
    else:
        stack: Stack = request.getfixturevalue("stack")
        url = postgres.create_database(stack.config.postgres_port, f"t_{uuid.uuid4().hex[:12]}")
        s = open_store(url)
    s.migrate()
    try:
        yield s
    finally:
        s.close()


def seeded(store: SubscriberStore, zones: ZoneRegistry) -> list[Subscriber]:
    subs = from_directory(load_recipients(zones=zones), zones)
    store.upsert(subs, now_ms=T)
    return subs


def row(key: str, person: str, level: int = 2, seq: int = 1, **kw: object) -> PlannedDelivery:
    base = {
        "key": key,
        "event_id": "flood:event:t:11030",
        "notify_key": "real|flood",
        "hazard": "flood",
        "exercise": False,
        "subscriber_id": person,
        "phone_masked": "+82******0101",
        "level": level,
        "kind": "rise",
        "seq": seq,
        "trigger": f"flood:11030:t#{seq}",
        "area": "용산구",
        "body": "[경보] Flood 홍수주의보 용산구",
        "priority": 3e6,
        "token": "tok-" + key,
        "planned_ms": T + seq,
    }
    base.update(kw)
    return msgspec.convert(base, PlannedDelivery)


def test_migrations_apply_once_and_are_recorded(store: SubscriberStore) -> None:
    assert store.migrate() == []  # applied by the fixture already
    assert store.count() == 0


def test_import_and_query_by_zone_hazard_and_drill(
    store: SubscriberStore, zones: ZoneRegistry
) -> None:
    subs = seeded(store, zones)
    assert store.count() == len(subs) and store.count(drill=True) == 3
    yongsan = store.get("res-yongsan-001")
    assert yongsan is not None
    assert yongsan.phone == "+821000000101" and yongsan.zones_version == zones.version
    assert yongsan.located[-1] == "11" and "11030" in yongsan.member_zones
    assert yongsan.public()["phone"] == "+8210****0101"
    flood = {r.id for r in store.audience("11030", "flood", exercise=False)}
    assert {"res-yongsan-001", "res-yongsan-002"} <= flood
    assert "res-dongjak-002" not in flood  # air quality only
    assert not any(i.startswith("drill-") for i in flood)
    drill = {r.id for r in store.audience("11030", "flood", exercise=True)}
    assert drill == {"drill-seoul-hq", "drill-yongsan-field"}
    r = next(r for r in store.audience("11030", "flood", exercise=True) if r.id == "drill-seoul-hq")
    assert r.drill and "11200" in r.zones and r.point is not None
    assert [s.id for s in store.listing(limit=2)] == sorted(s.id for s in subs)[:2]


def test_opt_out_is_kept_across_a_reimport(store: SubscriberStore, zones: ZoneRegistry) -> None:
    seeded(store, zones)
    assert store.opt_out("res-yongsan-001", reason="twilio 21610: replied STOP", now_ms=T)
    assert not store.opt_out("res-yongsan-001", reason="again", now_ms=T + 1)
    seeded(store, zones)  # the same YAML imported again
    s = store.get("res-yongsan-001")
    assert s is not None and s.opted_out_ms == T and s.opt_out_reason.startswith("twilio 21610")
    assert "res-yongsan-001" not in {r.id for r in store.audience("11030", "flood", exercise=False)}
    assert "res-yongsan-001" not in store.recipients(["res-yongsan-001", "res-yongsan-002"])


def test_membership_is_recomputed_when_the_zones_change(
    store: SubscriberStore, zones: ZoneRegistry
) -> None:
    old = Subscriber(
        id="moved",
        phone="+821000007777",
        lat=37.5175,
        lon=126.97,
        hazards=("flood",),
        zones_version="zones-before",
    )
    store.upsert([old], now_ms=T)
    assert store.audience("11030", "flood", exercise=False) == []  # indexed on nothing
    done = prepare(store, zones, seed=None)
    assert done["reindexed"] == 1
    got = store.get("moved")
    assert got is not None and got.zones_version == zones.version
    assert [r.id for r in store.audience("11030", "flood", exercise=False)] == ["moved"]
    assert prepare(store, zones, seed=None)["reindexed"] == 0


def test_seed_only_an_empty_store(store: SubscriberStore, zones: ZoneRegistry) -> None:
    from gyeongbo.settings import REPO_ROOT

    seed = REPO_ROOT / "config" / "recipients.yaml"
    assert prepare(store, zones, seed=seed)["seeded"] == 14
    assert prepare(store, zones, seed=seed)["seeded"] == 0


def test_plan_is_idempotent_and_returns_what_is_left_to_send(store: SubscriberStore) -> None:
    rows = [row("a", "p1"), row("b", "p2")]
    assert sorted(store.plan(rows)) == ["a", "b"]
    assert sorted(store.plan(rows)) == ["a", "b"]  # replayed before sending: still to send
    store.record_outcomes(
        [Outcome(key="a", state="sent", attempts=1, now_ms=T + 5, sid="SM1", submitted_ms=T + 5)]
    )
    assert store.plan(rows) == ["b"]  # a is final: never sent again
    assert [p.key for p in store.pending()] == ["b"]
    assert store.pending(["exercise|flood"]) == []
    (a,) = store.deliveries("flood:event:t:11030")[:1]
    assert (a.key, a.state, a.sid, a.submitted_ms) == ("a", "sent", "SM1", T + 5)


def test_last_levels_follow_the_latest_step(store: SubscriberStore) -> None:
    store.plan([row("1", "p1", 2, 1), row("2", "p1", 3, 2), row("3", "p1", 0, 3)])
    store.plan([row("4", "p2", 2, 1), row("x", "p3", 4, 1, event_id="other")])
    assert store.last_levels("flood:event:t:11030", ["p1", "p2", "p3"]) == {"p1": 0, "p2": 2}


def test_statuses_update_by_sid_and_never_move_back(store: SubscriberStore) -> None:
    store.plan([row("a", "p1"), row("b", "p2")])
    store.record_outcomes(
        [
            Outcome(key="a", state="sent", attempts=1, now_ms=T, sid="SMa", submitted_ms=T),
            Outcome(key="b", state="sent", attempts=2, now_ms=T, sid="SMb", submitted_ms=T + 9),
        ]
    )
    n = store.record_statuses(
        [("SMa", "sent", None, T + 1), ("SMa", "delivered", None, T + 2), ("SMx", "sent", None, 0)]
    )
    assert n == 1
    store.record_statuses([("SMa", "sent", None, T + 3)])  # late: ignored
    store.record_statuses([("SMb", "undelivered", 30003, T + 4)])
    by = {d.key: d for d in store.deliveries()}
    assert by["a"].delivery_status == "delivered"
    assert (by["b"].delivery_status, by["b"].error_code) == ("undelivered", 30003)
    (s,) = store.summaries()
    assert (s.messages, s.recipients, s.submitted, s.delivered, s.undelivered) == (2, 2, 2, 1, 1)
    assert s.fanout_s == 0.008


def test_summary_counts_failed_permanent_and_opted_out(store: SubscriberStore) -> None:
    keys = "abcde"
    store.plan([row(k, f"p{k}") for k in keys])
    store.record_outcomes(
        [
            Outcome(key="a", state="sent", attempts=1, now_ms=T, sid="SMa", submitted_ms=T),
            Outcome(key="b", state="failed", attempts=8, now_ms=T, error_code=20500),
            Outcome(key="c", state="permanent", attempts=1, now_ms=T, error_code=21211),
            Outcome(key="d", state="opted_out", attempts=1, now_ms=T, error_code=21610),
        ]
    )
    (s,) = store.summaries(event_id="flood:event:t:11030")
    assert (s.planned, s.submitted, s.failed, s.permanent, s.opted_out) == (1, 1, 1, 1, 1)


def test_a_fan_out_of_thousands_is_planned_and_recorded_in_batches(
    store: SubscriberStore,
) -> None:
    rows = [row(f"k{i:05d}", f"p{i}", 3, 1, priority=float(i)) for i in range(5000)]
    assert len(store.plan(rows)) == 5000
    pend = store.pending(["real|flood"])
    assert [p.key for p in pend[:3]] == ["k00000", "k00001", "k00002"]  # priority order
    for i in range(0, 5000, 500):
        store.record_outcomes(
            [
                Outcome(key=r.key, state="sent", attempts=1, now_ms=T, sid=f"SM{r.key}")
                for r in rows[i : i + 500]
            ]
        )
    assert store.pending() == []
    (s,) = store.summaries()
    assert s.submitted == 5000 and s.recipients == 5000


def test_audience_within_the_board_zones(store: SubscriberStore, zones: ZoneRegistry) -> None:
    seeded(store, zones)
    full = {r.id: r for r in store.audience("11030", "flood", exercise=True)}
    assert len(full["drill-seoul-hq"].zones) > 400  # every zone of Seoul
    near = {
        r.id: r for r in store.audience("11030", "flood", exercise=True, within=["11030", "11"])
    }
    assert set(near) == set(full)
    assert set(near["drill-seoul-hq"].zones) == {"11", "11030"}
    assert near["drill-seoul-hq"].located == full["drill-seoul-hq"].located
