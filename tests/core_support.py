"""The worker's pure path in one process, for tests that need more than one package at once.

:class:`PureCore` does what ``streams.worker`` does between the MQTT payload and an alert
event, without Faust or Kafka: validate the payload (``streams.validate``), build the
columnar batch, run the detectors, fan each detection out to its zones through the geo join
(``Services.route``) and feed the alert machine.
"""

from __future__ import annotations

from alerting.machine import AlertMachine
from detectors.engine import DetectorSet
from gyeongbo.events import AlertEvent, Detection
from gyeongbo.settings import Settings
from streams.services import Services
from streams.validate import Validator, readings_batch


class PureCore:
    def __init__(self, settings: Settings) -> None:
        self.services = Services(settings)
        self.validator = Validator(self.services.registry, topic_root=settings.mqtt.topic_root)
        self.detectors = DetectorSet(self.services.registry)
        self.machine = AlertMachine()
        self.detections: list[Detection] = []

    def feed(self, topic: str, payload: bytes, *, received_ms: int) -> list[AlertEvent]:
        """One MQTT message in, the alert transitions it caused out."""
        parsed = self.validator.parse(topic, payload, received_ms=received_ms)
        if not parsed.readings:
            return []
        batch = readings_batch(parsed.readings, [received_ms] * len(parsed.readings))
        return self.stage(self.detectors.process(batch))

    def stage(self, detections: list[Detection]) -> list[AlertEvent]:
        """Detections in (as the ``fan-out`` and ``stage`` agents take them), transitions out."""
        out: list[AlertEvent] = []
        for det in detections:
            self.detections.append(det)
            for zone, zdet in self.services.route(det):
                out += self.machine.feed(zdet, [self.services.zone_info(zone, zdet.hazard)])
        return out
