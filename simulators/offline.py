"""A drill without services: the scenario's payloads through the pipeline core, in one process.

``gyeongbo drill run NAME --offline`` generates the same payloads a drill publishes (same
scenario, seed, overlays, gateway batches and clock) and pushes them, in publishing order,
through :class:`streams.core.Core` — the functions the worker's agents run — with the
worker's timers played on the drill's wall clock: a tick every ``worker.tick_s`` and a
deadman sweep every ``worker.deadman_every_s`` of wall time at the drill's speed. No broker,
bridge, worker, database server or Twilio: the subscribers are the seed recipients in an
in-memory SQLite store, the CAP documents are written to a temporary folder, and the SMS
are the sent log's planned rows.

What comes out is judged by the same code as a drill through the stack
(:func:`simulators.drill.judge_run`), so the report has the same transitions, SMS, CAP
documents and headquarters stages (``gyeongbo drill compare`` says so or lists the
differences); only timings (``publish_elapsed_s``, receive times) are the core's.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from gyeongbo.events import AlertEvent, DataQualityAlert, HQStageEvent, encode
from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import Settings
from simulators.drill import (
    DrillOptions,
    Followed,
    drill_payloads,
    judge_run,
    mask_number,
    truth_times,
)
from simulators.records import Publication
from simulators.report import DrillReport, print_report
from simulators.scenario import load_checked
from streams.bridge_config import BridgeSettings
from streams.cap_feed import CapFeed
from streams.core import (
    CapIntent,
    Core,
    Flush,
    Input,
    Message,
    Rejected,
    SmsIntent,
    Sweep,
    Tick,
)
from streams.services import Services
from streams.store import open_store
from streams.store.indexing import prepare
from streams.validate import Validator, rejection_record

__all__ = ["run_offline", "timeline"]


def timeline(
    pubs: list[Publication],
    *,
    wall_start_s: float,
    speed: float,
    tick_s: float,
    sweep_s: float,
    settle_s: float,
) -> list[tuple[float, Input]]:
    """The records of an offline drill with their wall time (s): each publication when the
    drill would publish it, the worker's timers in between, and ``settle_s`` of timers after
    the last publication (then one more tick and sweep, so the run always ends with both).

    >>> from simulators.records import Publication
    >>> pubs = [Publication(t, "t", b"{}", "108", "rainfall", "gw") for t in (0.0, 600.0)]
    >>> [(w, type(r).__name__) for w, r in timeline(
    ...     pubs, wall_start_s=0, speed=60, tick_s=5, sweep_s=8, settle_s=0)]
    ... # doctest: +NORMALIZE_WHITESPACE
    [(0.0, 'Message'), (5.0, 'Tick'), (8.0, 'Sweep'), (10.0, 'Message'), (10.0, 'Tick'),
     (10.0, 'Sweep')]
    """
    out: list[tuple[float, Input]] = []
    next_tick, next_sweep = float(wall_start_s + tick_s), float(wall_start_s + sweep_s)

    def timers(until: float) -> None:
        nonlocal next_tick, next_sweep
        while min(next_tick, next_sweep) <= until:
            if next_tick <= next_sweep:
                out.append((next_tick, Tick(round(next_tick * 1000))))
                next_tick += tick_s
            else:
                out.append((next_sweep, Sweep(round(next_sweep * 1000))))
                next_sweep += sweep_s

    last = float(wall_start_s)
    for t_s, due in itertools.groupby(pubs, key=lambda p: p.t_s):
        w = wall_start_s + t_s / speed
        timers(w - 1e-9)  # a timer due at the same instant fires after the messages
        msgs = tuple(Message(p.topic, p.payload, round(w * 1000)) for p in due)
        out.append((w, msgs[0] if len(msgs) == 1 else Flush(msgs)))
        last = max(last, w)
    end = last + settle_s
    timers(end - 1e-9)
    out += [(end, Tick(round(end * 1000))), (end, Sweep(round(end * 1000)))]
    return out


def run_offline(
    scenario: str,
    settings: Settings,
    options: DrillOptions | None = None,
    *,
    console: Console | None = None,
    registry: Registry | None = None,
) -> DrillReport:
    """Run one drill through the pipeline core and return its report (also printed)."""
    options = options or DrillOptions()
    console = console or Console(stderr=True)
    reg = registry or load_registry(settings.paths.stations)
    sc = load_checked(scenario, reg, overlays=options.faults, directory=settings.paths.scenarios)
    seed = sc.seed if options.seed is None else options.seed
    drill = drill_payloads(sc, reg, settings, options, seed)
    clock, pubs, report = drill.clock, drill.publications, drill.report
    report.messages, report.readings = len(pubs), sum(p.readings for p in pubs)
    wall_start, root = clock.wall_start, settings.mqtt.topic_root
    services = Services(settings)
    store = open_store("sqlite:///:memory:")
    prepare(store, services.zones, settings.store.seed_recipients)
    core = Core(
        services,
        validator=Validator(services.registry, BridgeSettings().limits(), topic_root=root),
        sent_log=store,
    )
    w = settings.worker
    records = timeline(
        pubs,
        wall_start_s=wall_start,
        speed=options.speed,
        tick_s=w.tick_s,
        sweep_s=w.deadman_every_s,
        settle_s=options.quiet_s if options.quiet_s is not None else 3.0,
    )
    seen = Followed()
    sms: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gyeongbo-offline-cap-") as tmp:
        cap = CapFeed(Path(tmp), sender=settings.twilio.cap_sender)
        for wall, rec in records:
            for out in core.push([rec]):
                if isinstance(out, AlertEvent):
                    seen.alerts.append((wall, encode(out)))
                elif isinstance(out, DataQualityAlert):
                    seen.dq.append((wall, encode(out)))
                elif isinstance(out, HQStageEvent):
                    seen.hq.append((wall, encode(out)))
                elif isinstance(out, Rejected):
                    m = out.message
                    doc = rejection_record(
                        out.rejection, topic=m.topic, payload=m.payload, received_ms=m.received_ms
                    )
                    seen.rejected.append((wall, json.dumps(doc).encode()))
                elif isinstance(out, CapIntent):
                    cap.publish(out.event, out.zone)
                elif isinstance(out, SmsIntent):
                    row = out.row
                    sms.append(
                        {
                            "sid": f"offline-{len(sms) + 1:06d}",
                            "to": mask_number(out.recipient.phone),
                            "body": row.body,
                        }
                    )
                    sent.append(
                        {
                            "recipient": row.subscriber_id,
                            "hazard": row.hazard,
                            "event": row.event_id,
                            "kind": row.kind,
                        }
                    )
        report.publish_elapsed_s = round(time.perf_counter() - t0, 3)
        report.notes.append(
            f"offline: {len(records)} records through the pipeline core in one process "
            f"({report.publish_elapsed_s:.1f} s), no broker, bridge, worker or Twilio"
        )
        judge_run(
            report,
            sc,
            clock,
            seen,
            truths=truth_times(sc, reg, drill.generated),
            rejected_topic=settings.kafka.topics.rejected.name,
            sms=sms,
            sent=sent,
            cap_folder=Path(tmp),
            cap_before=None,
            cap_wait_s=0.0,
        )
    store.close()
    print_report(report, console)
    return report
