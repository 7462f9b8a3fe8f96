"""Operators' reminders of unacknowledged alerts: ``AlertMachine.reminders`` → operators.

On every tick the stage agent asks its partition's machine which alerts nobody has
acknowledged for their hazard's ``repeat_s`` (docs/design.md §4) and hands them here. Each
reminder goes where operators already look for alerts, never to residents:

* the ``alerts.reminders`` topic (key = zone, the zone's partition, like ``dq.alerts``), for a
  paging or situation-room integration; SMS, CAP and the HQ machine read ``alerts`` only, so
  nothing public can be made from a reminder;
* InfluxDB ``alert_reminder`` (the operations dashboard's source);
* the worker's log, one WARNING line per reminder;
* the ``alert_reminders`` counter on ``/metrics`` (``exercise_alert_reminders`` for drills).

``/alerts`` and ``gyeongbo alerts list`` show each alert's last notification, the reminders
since and when the next is due, from the machine itself.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import faust

from gyeongbo.events import AlertReminder, encode
from gyeongbo.settings import Settings
from streams.influx_lines import reminder_message
from streams.influx_sink import InfluxSink

__all__ = ["ReminderChannel"]

log = logging.getLogger("gyeongbo.reminders")


class ReminderChannel:
    """Sends a stage agent's reminders to operators (topic, InfluxDB, log, counter)."""

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        *,
        sink: InfluxSink | None,
        counters: Counter[str],
    ) -> None:
        t = settings.kafka.topics.reminders
        self.topic = app.topic(
            t.name, partitions=t.partitions, key_serializer="raw", value_serializer="raw"
        )
        self.sink = sink
        self.counters = counters

    async def send(self, reminders: list[AlertReminder], partition: int) -> list[Any]:
        """Send each reminder; returns the delivery futures (the stage agent waits for them
        before it records the machine that sent them, as for alert events)."""
        futs = []
        for r in reminders:
            futs.append(
                await self.topic.send(key=r.zone.encode(), value=encode(r), partition=partition)
            )
            log.warning("reminder %s: %s", r.event_id, reminder_message(r))
            self.counters["exercise_alert_reminders" if r.exercise else "alert_reminders"] += 1
        if reminders and self.sink is not None:
            self.sink.write_reminders(reminders)
        return futs
