"""Recipient-centred delivery through the whole worker on the real local stack: a nationwide
quake to thousands of subscribers in PostgreSQL, with the worker SIGKILLed in the middle of
its fan-out; counted per handset at the fake Twilio."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest

from geo.zones import ZoneKind
from gyeongbo.stack.stack import Stack
from streams.config_files import load_zones
from streams.pipeline import start_local_pipeline
from streams.store import Subscriber, open_store
from streams.store.indexing import indexed
from tests.pipeline_support import get_json, isolated_settings, issue_token, post_json, wait_for
from tests.test_pipeline_e2e import produce_readings

pytestmark = [pytest.mark.stack, pytest.mark.slow]

GYEONGJU = {"magnitude": 5.8, "lat": 35.76, "lon": 129.19, "depth_km": 15.0}


def subscribers(n: int, block: int) -> list[Subscriber]:
    """``n`` residents spread over every province (area subscribers and located ones), on
    numbers of their own (+82 10-<block>…) so counts at the shared fake are theirs."""
    zones = load_zones()
    provinces = list(zones.of_kind(ZoneKind.PROVINCE))
    rng = random.Random(block)
    subs = []
    for i in range(n):
        p = provinces[i % len(provinces)]
        rp = zones[p].geometry.representative_point()
        located = i % 2 == 0
        subs.append(
            Subscriber(
                id=f"q{block}-{i:05d}",
                phone=f"+8210{block:03d}{i:05d}",
                lat=round(rp.y + rng.uniform(-0.01, 0.01), 5) if located else None,
                lon=round(rp.x + rng.uniform(-0.01, 0.01), 5) if located else None,
                declared_zones=() if located else (p,),
                hazards=("earthquake",),
            )
        )
    return indexed(subs, zones)


def fake_stats(stack: Stack) -> dict[str, Any]:
    return get_json(stack.twilio_url + "/_fake/stats")  # type: ignore[no-any-return]


def ours(stats: dict[str, Any], block: int) -> dict[str, int]:
    prefix = f"+8210{block:03d}"
    return {k: v for k, v in stats["per_to"].items() if k.startswith(prefix)}


def test_worker_killed_mid_fan_out_sends_each_person_exactly_once(
    stack: Stack, tmp_path: Path
) -> None:
    n, block = 2000, 771
    base = isolated_settings(stack, tmp_path)
    settings = base.model_copy(
        update={"delivery": base.delivery.model_copy(update={"max_in_flight": 40})}
    )
    store = open_store(settings.store.url.get_secret_value())
    store.migrate()
    store.upsert(subscribers(n, block), now_ms=0)
    assert post_json(stack.twilio_url + "/_fake/config", {"latency_ms": [50, 150]})[0] == 200
    try:
        with start_local_pipeline(settings, static_membership=True) as pipe:
            now = int(time.time() * 1000)
            produce_readings(
                settings,
                [
                    {
                        "station": "KMA-GYEONGJU-ACC",
                        "kind": "seismic",
                        "ts_ms": now,
                        "seq": 1,
                        "values": {"pga_g": 0.0004},
                        "event": GYEONGJU,
                        "received_ms": now,
                    }
                ],
            )
            # half-way through the fan-out (40 in flight × ~10/s each ≈ 400/s): kill it
            wait_for(lambda: len(ours(fake_stats(stack), block)) >= n // 3, 60, "a third sent")
            pipe.workers[0].kill()
            sent_at_kill = len(ours(fake_stats(stack), block))
            assert sent_at_kill < n, "the fan-out finished before the kill"
            pipe.start_worker(0)
            wait_for(lambda: len(ours(fake_stats(stack), block)) >= n, 120, "every person")
            time.sleep(3)  # a duplicate, if any, would come right behind
            per = ours(fake_stats(stack), block)
            metrics = get_json(pipe.workers[0].url + "/metrics")
            sums = get_json(
                pipe.workers[0].url + "/deliveries", issue_token(settings, "op", "viewer")
            )
    finally:
        post_json(stack.twilio_url + "/_fake/config", {"latency_ms": [0, 0]})
    assert len(per) == n, f"missed {n - len(per)}"  # nobody missed
    assert set(per.values()) == {1}, {k: v for k, v in per.items() if v > 1}  # nobody twice
    assert metrics["sms_resumed"] > 0  # the restarted worker resumed the planned rows
    assert metrics["sms_in_flight_max"] <= 40
    (event,) = [s for s in sums if s["hazard"] == "earthquake"]
    assert event["recipients"] == n and event["submitted"] == n and event["planned"] == 0
    rows = store.deliveries(event["event_id"], limit=n + 10)
    assert len(rows) == n and {r.state for r in rows} == {"sent"}
    assert {r.level for r in rows} == {3}  # M5.8: 긴급재난 (경계) nationwide, once each
    assert all("긴급재난" in r.body for r in rows)
    store.close()


def test_gyeongju_drill_on_the_embedded_store_one_class_one_upgrade_one_all_clear(
    stack: Stack, tmp_path: Path
) -> None:
    """The quake drill through the pipeline with subscribers and the sent log in SQLite (the
    drills' default, no database server): every handset gets at most one class, one upgrade
    and one all-clear for the one quake event, and the report counts it per person."""
    from pydantic import SecretStr

    from simulators.drill import DrillOptions, run_drill

    base = isolated_settings(stack, tmp_path)
    sqlite = f"sqlite:///{tmp_path / 'subscribers.sqlite'}"
    worker = base.worker.model_copy(update={"state_checkpoint_s": 0.0})
    viewer = issue_token(base, "drill-officer", "viewer")  # the report reads /deliveries
    settings = base.model_copy(
        update={
            "store": base.store.model_copy(update={"url": SecretStr(sqlite)}),
            "worker": worker,
            "operator": base.operator.model_copy(update={"token": SecretStr(viewer)}),
        }
    )
    report = run_drill(
        "gyeongju-earthquake",
        settings,
        DrillOptions(speed=20, start_pipeline=True, show_progress=False, settle_s=20),
    )
    assert report.passed, ([o for o in report.outcomes if o.failed], report.findings)
    assert report.per_recipient is not None
    quake = [c for c in report.per_recipient if c["hazard"] == "earthquake"]
    gb = [c for c in quake if c["recipient"] == "drill-gyeongju"]
    assert len(gb) == 1  # one event: catalogue and accelerometer alerts grouped
    assert 1 <= gb[0]["messages"] <= 3 and gb[0]["kinds"][0] == "rise"
    assert gb[0]["kinds"].count("step_down") == 0  # never a lower class after a higher one
    store = open_store(sqlite)
    assert store.dialect == "sqlite" and store.count(drill=True) == 3  # seeded from the YAML
    sent = store.deliveries(limit=100)
    assert sent and all(d.exercise and d.body.startswith("[훈련]") for d in sent)
    store.close()
