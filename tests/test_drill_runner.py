"""The drill runner on the real stack: it publishes over MQTT, follows ``alerts`` from the end
offsets, judges in scenario time and reports.

The Faust worker does not run here; a stand-in responder plays its part with the worker's
pure path (:class:`streams.core.Core`: validation, columnar batch, detectors, the geo
join of ``geo.routing``, the alert machine): it subscribes to the seismic readings like
the bridge would and produces the resulting alert events onto Kafka ``alerts``, stamped with
their readings' event time — the accelerometers' district alerts and, when the catalogue
event arrives, the nationwide 긴급재난문자 an M5.8 calls for (docs/design.md §3.4) in every
province. The full-pipeline flood drill is the worker's test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from aiokafka import AIOKafkaProducer
from paho.mqtt.enums import CallbackAPIVersion
from rich.console import Console

from gyeongbo.events import AlertEvent, encode
from gyeongbo.settings import Settings
from simulators.drill import DrillError, DrillOptions, pipeline_context, run_drill
from streams.core import Core, Message, alerts_of
from streams.services import Services

pytestmark = pytest.mark.stack


class Responder:
    """Earthquake stand-in for the worker: seismic readings in, alert events out."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.core = Core(Services(settings))
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.producer: Any = asyncio.run_coroutine_threadsafe(self._producer(), self.loop).result(
            30
        )
        self.sent: list[AlertEvent] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-responder")
        # it reads readings as the bridge does: as the bridge user, on the bridges' listener
        assert settings.mqtt.username and settings.mqtt.password
        self.client.username_pw_set(
            settings.mqtt.username, settings.mqtt.password.get_secret_value()
        )
        ready = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            f"{settings.mqtt.topic_root}/seismic/#", qos=1
        )
        self.client.on_subscribe = lambda c, u, mid, rcs, p: ready.set()
        self.client.on_message = self._on_message
        self.client.connect(settings.mqtt.host, settings.mqtt.port)
        self.client.loop_start()
        assert ready.wait(10)

    async def _producer(self) -> Any:
        p = AIOKafkaProducer(bootstrap_servers=self.settings.kafka.bootstrap)
        await p.start()
        return p

    def _on_message(self, c: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        received_ms = time.time_ns() // 1_000_000
        for ev in alerts_of(self.core.push([Message(msg.topic, msg.payload, received_ms)])):
            self.sent.append(ev)
            asyncio.run_coroutine_threadsafe(
                self.producer.send_and_wait(
                    self.settings.kafka.topics.alerts.name, encode(ev), key=ev.zone.encode()
                ),
                self.loop,
            ).result(30)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        asyncio.run_coroutine_threadsafe(self.producer.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def responder(stack_settings: Settings) -> Iterator[Responder]:
    r = Responder(stack_settings)
    yield r
    r.close()


def test_a_drill_is_judged_in_scenario_time_and_passes(
    stack_settings: Settings, responder: Responder, tmp_path: Path
) -> None:
    console = Console(record=True, width=160)
    # The stand-in writes no CAP feed: point the drill at a folder that is not there (as
    # for remote workers), not at a developer's own .gyeongbo/worker/cap.
    settings = stack_settings.model_copy(
        update={"paths": stack_settings.paths.model_copy(update={"cap_feed": tmp_path / "x"})}
    )
    report = run_drill(
        "gyeongju-earthquake",
        settings,
        DrillOptions(speed=120.0, settle_s=15.0, start_pipeline=False),
        console=console,
    )
    catalogue = [e for e in responder.sent if e.evidence["rule"] == "earthquake.catalogue"]
    provinces = responder.core.services.zones.of_kind("province")
    assert sorted(e.zone for e in catalogue) == sorted(provinces)  # once each: 17 raises
    assert {(e.action, e.level, e.exercise) for e in catalogue} == {("raise", "alert", True)}
    met = [o for o in report.outcomes if o.status == "met"]
    assert [o.zone for o in met] == ["37020", "37", "11"]
    # the alert's ts is its reading's event time: the P wave at the Gyeongju accelerometer at
    # scenario t = 123 s, the catalogue event at 128 s exactly, even though they were
    # published about a second into the run
    assert [o.observed.t_s for o in met if o.observed] == [123.0, 128.0, 128.0]
    for o in met:
        assert o.observed is not None
        assert o.observed.received_s is not None and 0.5 < o.observed.received_s < 4.0
    assert report.passed, console.export_text()
    assert report.messages == 3 * 600 + 3 * 60 and report.readings == report.messages
    assert 4.0 < report.publish_elapsed_s < 8.0  # ten minutes of scenario at ×120
    assert report.sms == []  # the fake Twilio answered, and nothing was sent
    doc = json.loads(report.to_json())
    assert doc["passed"] is True and doc["counts"]["met"] == 3
    assert set(doc["counts"]) <= {"met", "extra", "other"}
    assert "PASSED" in console.export_text()


def test_pipeline_starter_must_be_a_context_manager(stack_settings: Settings) -> None:
    with pipeline_context(stack_settings, start=lambda s: contextlib.nullcontext()):
        pass
    with pytest.raises(DrillError, match="must return a context manager"):
        pipeline_context(stack_settings, start=str)  # type: ignore[arg-type]
