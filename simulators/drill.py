"""Run a drill: publish a scenario through the real front door and judge what the pipeline did.

:func:`run_drill` does, in order:

1. load and check the scenario (with any faults overlays) against the station registry;
2. use the stack the settings point at, or — when its MQTT broker and Kafka are not
   reachable — start a local one (:class:`gyeongbo.stack.stack.Stack`) and stop it after;
3. start the bridge and worker with :func:`streams.pipeline.start_local_pipeline` (see
   :func:`pipeline_context`) when it started the stack, or when the running stack has no
   worker and bridge answering (:func:`pipeline_running`); ``--start-pipeline`` /
   ``--no-start-pipeline`` decide instead;
4. position Kafka followers on ``alerts``, ``hq.stages`` and ``readings.rejected`` at their
   end offsets, *before* the first reading is published;
5. publish the scenario on a :class:`~simulators.generator.Clock` at the chosen speed, with a
   rich progress bar, then keep following until every expectation is decided or
   ``settle_s`` of wall time has passed;
6. read the SMS sent from the fake Twilio (``GET {twilio.api_base}/_fake/messages``), and
   build the :class:`~simulators.report.DrillReport`.

Alert times are judged in scenario time: an alert's ``ts`` (event time, docs/design.md §11.2) minus
the clock's anchor. When an alert's ``ts`` cannot be read, the receive time is used instead,
scaled by the speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from alerting.cap import cap_wanted
from gyeongbo.events import decode_alert
from gyeongbo.kafka_security import aiokafka_security
from gyeongbo.registry import Registry, load_registry
from gyeongbo.settings import Settings
from gyeongbo.stack.procs import port_open
from gyeongbo.vocab import Level
from simulators.generator import (
    Clock,
    Generated,
    as_gateway,
    batch_publications,
    crossing_time,
    generate,
    rfc3339,
)
from simulators.publisher import drill_gateway, gateway_publisher, play
from simulators.records import Publication
from simulators.report import (
    DrillReport,
    Observed,
    evaluate,
    fmt_t,
    limit_findings,
    print_report,
    recipient_counts,
    reraise_cycles,
    transitions_of,
)
from simulators.scenario import Scenario, load_checked, stage_threshold
from streams.bridge_config import BridgeSettings
from streams.cap_feed import build_index
from streams.pipeline import start_local_pipeline

__all__ = [
    "DrillError",
    "DrillOptions",
    "DrillPayloads",
    "Followed",
    "drill_payloads",
    "judge_run",
    "mask_number",
    "pipeline_context",
    "run_drill",
    "stack_reachable",
    "truth_times",
]

ClockMode = Literal["end-now", "start-now"]


class DrillError(RuntimeError):
    """The drill could not run (as opposed to: it ran and an expectation failed)."""


@dataclass(frozen=True)
class DrillOptions:
    speed: float = 60.0
    seed: int | None = None
    faults: tuple[str, ...] = ()
    batch: bool = False
    max_batch: int = 500
    #: Wall seconds to keep following after the last publication (at most).
    settle_s: float = 30.0
    #: None: start the pipeline only when the drill started the stack itself.
    start_pipeline: bool | None = None
    clock: ClockMode = "end-now"
    #: Epoch ms of scenario t=0 instead of the clock mode's choice (reproduces a payload stream
    #: byte for byte; timestamps in the past must stay within the bridge's backfill window).
    anchor_ms: int | None = None
    show_progress: bool = True
    #: Refuse to run when the worker already holds drill readings newer than this drill's
    #: first one (they would be set aside as late and nothing would fire).
    check_clock: bool = True
    #: None: stop following once every expectation is decided (and a short grace). A number:
    #: keep following until no alert or headquarters stage has arrived for this many seconds
    #: (at most ``settle_s``), so that the report holds every transition of the run, not
    #: only the expected ones (what ``gyeongbo drill compare`` needs).
    quiet_s: float | None = None


# -- the stack and the pipeline ---------------------------------------------------------------
def _host_port(addr: str, default_port: int) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return (host or addr, int(port)) if port.isdigit() else (addr, default_port)


def stack_reachable(settings: Settings) -> bool:
    """The gateways' MQTT listener and the first Kafka bootstrap server accept TCP
    connections."""
    k_host, k_port = _host_port(settings.kafka.bootstrap.split(",")[0], 9092)
    g = settings.gateway
    return port_open(g.port, g.host) and port_open(k_port, k_host)


def pipeline_running(settings: Settings) -> bool:
    """Whether a worker (web port) and a bridge (metrics port, ``GYEONGBO_BRIDGE__*``) answer
    on this machine."""
    if not port_open(settings.worker.web_port, settings.worker.web_host):
        return False
    return port_open(BridgeSettings().metrics_port, "127.0.0.1")


@contextlib.contextmanager
def stack_context(settings: Settings, console: Console) -> Iterator[tuple[Settings, bool]]:
    """Yield ``(settings, started)``: the running stack's settings, or a local stack's."""
    if stack_reachable(settings):
        yield settings, False
        return
    from gyeongbo.stack.stack import Stack

    # A stack of the drill's own starts empty: the drill clock stamps readings up to "now",
    # so a second drill within the scenario's length has readings older than the first's,
    # which the detectors' state would drop as late. Kept after the run for inspection.
    home = Path(settings.stack.home) / "drill-stack"
    # No database server: the drill keeps its subscribers and sent log in SQLite there.
    config = settings.stack.model_copy(update={"home": home, "postgres": False})
    if (home / "stack.json").exists():  # a killed drill's stack may still run: stop it
        with contextlib.suppress(Exception):
            left = Stack(config=config, settings=settings)
            left.load()
            left.down()
    shutil.rmtree(home, ignore_errors=True)
    console.print(
        f"[cyan]drill[/cyan] no stack at mqtt {settings.gateway.host}:{settings.gateway.port} / "
        f"kafka {settings.kafka.bootstrap}: starting an empty local one under {home}"
    )
    stack = Stack(config=config, settings=settings)
    stack.up(report=lambda m: console.print(f"[cyan]stack[/cyan] {m}"))
    try:
        yield stack.app_settings(), True
    finally:
        console.print("[cyan]drill[/cyan] stopping the local stack")
        stack.down()


def pipeline_context(
    settings: Settings,
    start: Callable[[Settings], AbstractContextManager[Any]] = start_local_pipeline,
) -> AbstractContextManager[Any]:
    """Start the bridge and worker(s): ``start(settings)`` returns a context manager whose
    entry returns once the bridge subscribes to MQTT and the worker consumes ``readings``,
    and whose exit stops them (default :func:`streams.pipeline.start_local_pipeline`)."""
    ctx = start(settings)
    if not isinstance(ctx, AbstractContextManager):
        raise DrillError(f"{start!r} must return a context manager, got {type(ctx).__name__}")
    return ctx


# -- following Kafka ----------------------------------------------------------------------------
@dataclass
class Followed:
    """What the followers saw, with receive times (wall clock, seconds)."""

    alerts: list[tuple[float, bytes]] = field(default_factory=list)
    dq: list[tuple[float, bytes]] = field(default_factory=list)
    hq: list[tuple[float, bytes]] = field(default_factory=list)
    rejected: list[tuple[float, bytes]] = field(default_factory=list)


class _Followers:
    """One aiokafka consumer, no group, assigned every partition of the followed topics and
    positioned at their end offsets."""

    def __init__(self, settings: Settings) -> None:
        t = settings.kafka.topics
        self.topics = {
            t.alerts.name: "alerts",
            t.dq_alerts.name: "dq",
            t.hq_stages.name: "hq",
            t.rejected.name: "rejected",
        }
        self.bootstrap = settings.kafka.bootstrap
        self.security = aiokafka_security(settings.kafka)
        self.seen = Followed()
        self._consumer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        c = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            client_id="gyeongbo-drill-follower",
            **self.security,
        )
        await c.start()
        parts = []
        for topic in self.topics:
            ps = c.partitions_for_topic(topic)
            if ps is None:
                await c._client.force_metadata_update()
                ps = c.partitions_for_topic(topic) or set()
            if not ps:
                await c.stop()
                raise DrillError(f"Kafka topic {topic!r} does not exist at {self.bootstrap}")
            parts += [TopicPartition(topic, p) for p in sorted(ps)]
        c.assign(parts)
        await c.seek_to_end(*parts)
        for tp in parts:  # resolve the end offsets now, before anything is published
            await c.position(tp)
        self._consumer = c

    async def poll(self) -> int:
        batches = await self._consumer.getmany(timeout_ms=200, max_records=2000)
        now = time.time()
        n = 0
        for tp, records in batches.items():
            bucket = getattr(self.seen, self.topics[tp.topic])
            for r in records:
                bucket.append((now, bytes(r.value or b"")))
                n += 1
        return n

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


# -- turning what was followed into observations -----------------------------------------------
def _parse_ts_ms(ts: Any) -> int | None:
    if isinstance(ts, int) and not isinstance(ts, bool):
        return ts
    if isinstance(ts, str):
        try:
            t = datetime.fromisoformat(ts)
        except ValueError:
            return None
        if t.tzinfo is not None:
            return round(t.timestamp() * 1000)
    return None


def observe_alerts(
    raw: Sequence[tuple[float, bytes]],
    clock: Clock,
    stations: set[str],
    findings: list[str],
) -> list[Observed]:
    """Alert events (``alerts``) and data-quality alerts (``dq.alerts``: a ``severity`` where
    an alert has its ``level``) → observations in scenario time. Events that are not JSON, that
    name a drill station without ``exercise: true``, or a sensor-health event on the public
    ``alerts`` topic, become findings."""
    out: list[Observed] = []
    for recv, data in raw:
        try:
            ev = json.loads(data)
        except ValueError:
            findings.append(f"an alert event is not JSON: {data[:120]!r}")
            continue
        if isinstance(ev, dict) and "severity" in ev and "level" not in ev:
            ev = {**ev, "hazard": "sensor_health", "level": ev["severity"]}
        elif isinstance(ev, dict) and ev.get("hazard") == "sensor_health":
            findings.append(
                f"a sensor-health event on the public alerts topic: {data[:120]!r} (operators' "
                "data-quality alerts go to dq.alerts, with a severity)"
            )
        if not isinstance(ev, dict) or "level" not in ev or "zone" not in ev:
            findings.append(f"an alert event lacks level/zone: {data[:120]!r}")
            continue
        ev_stations = tuple(str(s) for s in ev.get("stations") or ())
        exercise = bool(ev.get("exercise", False))
        if not exercise:
            if stations & set(ev_stations):
                findings.append(
                    f"alert {ev.get('alert_id', '?')} on drill station(s) "
                    f"{sorted(stations & set(ev_stations))} is not marked exercise: a drill must "
                    "never look real"
                )
            continue  # real alerts are not the drill's business
        ts_ms = _parse_ts_ms(ev.get("ts"))
        t_s = (
            clock.scenario_time(ts_ms)
            if ts_ms is not None
            else (recv - clock.wall_start) * clock.speed
        )
        out.append(
            Observed(
                hazard=str(ev.get("hazard", "?")),
                zone=str(ev["zone"]),
                level=str(ev["level"]),
                previous=str(ev.get("previous", "?")),
                t_s=t_s,
                stations=ev_stations,
                action=str(ev.get("action", "")),
                exercise=exercise,
                event_id=str(ev.get("event_id") or ev.get("alert_id") or ""),
                received_s=recv - clock.wall_start,
            )
        )
    return out


def truth_times(sc: Scenario, reg: Registry, gen: Generated) -> dict[int, float]:
    """Ground-truth crossing times (scenario s) for expectations that name a ``truth``."""
    out: dict[int, float] = {}
    for i, e in enumerate(sc.expect):
        if e.truth is None or (e.truth.station, e.truth.value) not in gen.series:
            continue
        threshold = e.truth.threshold
        if threshold is None:
            threshold = stage_threshold(reg.stations[e.truth.station].levels, e.level)
        if threshold is None:
            continue
        direction = e.truth.direction or ("down" if e.level == "cleared" else "up")
        t, v = gen.series[(e.truth.station, e.truth.value)]
        crossed = crossing_time(t, v, threshold, direction)
        if crossed is not None:
            out[i] = crossed
    return out


def drill_clock(sc: Scenario, options: DrillOptions, wall_start: float) -> Clock:
    """The drill's clock: ``options.anchor_ms`` if given, else the clock mode's choice."""
    if options.anchor_ms is not None:
        return Clock(anchor_ms=options.anchor_ms, wall_start=wall_start, speed=options.speed)
    if options.clock == "start-now":
        return Clock.starting_now(options.speed, wall_start)
    return Clock.ending_now(sc.duration_s, options.speed, wall_start)


class _NoWorker:
    """``fetch_exercise_clock``: no worker answered (or without the field)."""


NO_WORKER = _NoWorker()


def fetch_exercise_clock(settings: Settings, timeout_s: float = 5.0) -> int | _NoWorker | None:
    """The newest drill reading's event time the worker answering on the configured web port
    knows of (``exercise_clock_ms`` of ``/metrics``): None when it has none, :data:`NO_WORKER`
    when no worker answers or it does not report one."""
    url = f"http://{settings.worker.web_host}:{settings.worker.web_port}/metrics"
    try:
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return NO_WORKER
    if not isinstance(doc, dict) or "exercise_clock_ms" not in doc:
        return NO_WORKER
    value = doc["exercise_clock_ms"]
    return int(value) if isinstance(value, int | float) and value > 0 else None


def check_drill_clock(
    settings: Settings, sc: Scenario, options: DrillOptions, console: Console
) -> None:
    """Raise :class:`DrillError` when this drill's readings would start before the drill
    readings the worker already holds: per station, the detectors set a reading older than
    the station's newest aside as late, so a second accelerated drill within the scenario's
    length would fire nothing (and its report would only say "missed"). The clock is the
    newest drill reading of *any* station, so the check is conservative: a drill on other
    stations could run (``--no-clock-check``)."""
    held = fetch_exercise_clock(settings)
    if isinstance(held, _NoWorker):
        console.print(
            "[yellow]drill[/yellow] cannot read the worker's drill clock (no worker on "
            f"{settings.worker.web_host}:{settings.worker.web_port}, or an older one): if an "
            "earlier drill on this stack is newer than this one's readings, nothing will fire"
        )
        return
    if held is None:
        return
    first = drill_clock(sc, options, time.time() + 1.0).anchor_ms
    if first >= held:
        return
    wait_min = math.ceil((held - first) / 60_000.0)
    when = (
        f"Choose an anchor after {rfc3339(held)}"
        if options.anchor_ms is not None
        else f"Run it again in {wait_min // 60} h {wait_min % 60:02d} min"
    )
    raise DrillError(
        f"the worker already holds drill readings up to {rfc3339(held)} (event time, any "
        f"station); this drill's readings would start at {rfc3339(first)}, older, and be set "
        f"aside as late, so nothing would fire. {when}, or use an empty stack: stop the "
        "bridge and worker and `gyeongbo stack down`, move the stack folder "
        "(GYEONGBO_STACK__HOME, default .gyeongbo) away, `gyeongbo stack up`; or run "
        "`./dev drill` with no stack running, which starts an empty one of its own. "
        "--no-clock-check runs it anyway (a drill on other stations than the last one's works)."
    )


def fetch_sms(api_base: str | None, timeout_s: float = 3.0) -> list[dict[str, Any]] | None:
    """Messages the fake Twilio recorded (None when it is not reachable)."""
    if not api_base:
        return None
    try:
        with urllib.request.urlopen(
            api_base.rstrip("/") + "/_fake/messages", timeout=timeout_s
        ) as resp:
            doc = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    msgs = doc.get("messages", doc) if isinstance(doc, dict) else doc
    return [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else None


def fetch_sent(settings: Settings, since_ms: int, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    """The drill's messages from the worker's sent log (``GET /deliveries``): one entry per
    message of an exercise event planned since ``since_ms``, sent or still going out, with
    the subscriber id, hazard, event and kind. Raises OSError/ValueError when unreachable."""
    from urllib.parse import quote

    base = f"http://{settings.worker.web_host}:{settings.worker.web_port}"
    token = settings.operator.token
    headers = {"Accept": "application/json"}
    if token is not None:  # the sent log is for operators (a viewer token is enough)
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"

    def get(path: str) -> Any:
        req = urllib.request.Request(base + path, headers=headers)
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return json.loads(resp.read())

    out: list[dict[str, Any]] = []
    for ev in get("/deliveries?limit=500"):
        if not ev.get("exercise") or int(ev.get("first_planned_ms") or 0) < since_ms:
            continue
        for row in get(f"/deliveries/{quote(str(ev['event_id']), safe='')}?limit=100000"):
            if row.get("state") in ("sent", "dry_run", "planned"):
                out.append(
                    {
                        "recipient": row["subscriber_id"],
                        "hazard": row["hazard"],
                        "event": row["event_id"],
                        "kind": row["kind"],
                    }
                )
    return out


def _sent_from_sms(sms: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without the sent log: the fake's messages, per handset and hazard (by the English
    keyword every template carries; one event per hazard)."""
    from streams.config_files import load_templates

    keywords = {h.keyword: name for name, h in load_templates().hazards.items()}
    out = []
    for m in sms:
        hazard = next((hz for kw, hz in keywords.items() if f" {kw} " in m["body"]), "?")
        out.append({"recipient": m["to"], "hazard": hazard, "event": hazard})
    return out


def mask_number(number: str) -> str:
    return number[:-8] + "****" + number[-4:] if len(number) > 8 else "****"


def cap_statuses(folder: Path) -> dict[str, str] | None:
    """Identifier → CAP ``status`` of every document in the worker's CAP feed folder, or
    None when the folder is not on this machine (a drill against remote workers)."""
    if not folder.is_dir():
        return None
    return {
        str(e["identifier"]): str(e.get("status") or "")
        for e in build_index(folder)["entries"]
        if e.get("identifier")
    }


def cap_entries(folder: Path, before: dict[str, str] | None) -> list[dict[str, Any]] | None:
    """The CAP documents of this drill (not in ``before``): identifier, status, msgType,
    severity and the number of documents each references; None when the folder is not on
    this machine."""
    if not folder.is_dir():
        return None
    out = []
    for e in build_index(folder)["entries"]:
        ident = str(e.get("identifier") or "")
        if not ident.startswith("exercise:") or ident in (before or {}):
            continue
        out.append(
            {
                "identifier": ident,
                "status": e.get("status"),
                "msgType": e.get("msgType"),
                "severity": e.get("severity"),
                "references": len(str(e.get("references") or "").split()),
            }
        )
    return sorted(out, key=lambda d: d["identifier"])


def check_cap_documents(
    alerts: Sequence[tuple[float, bytes]],
    folder: Path,
    before: dict[str, str] | None,
    *,
    wait_s: float = 10.0,
) -> tuple[int | None, list[str]]:
    """Count the drill's CAP documents and say what is wrong with them.

    Every public exercise transition on ``alerts`` (:func:`alerting.cap.cap_wanted`) must have
    its own CAP document (identifier = the transition's ``event_id``) with status
    ``Exercise``. The worker writes them after the alert, so this waits up to ``wait_s``
    for the last ones. Returns (documents of this drill, findings); (None, []) when the
    feed folder is not on this machine.
    """
    wanted: list[str] = []
    for _, raw in alerts:
        try:
            ev = decode_alert(raw)
        except ValueError:
            continue
        if ev.exercise and cap_wanted(ev):
            wanted.append(ev.event_id)
    deadline = time.monotonic() + wait_s
    while True:
        now = cap_statuses(folder)
        if now is None:
            return None, []
        missing = [e for e in wanted if e not in now]
        if not missing or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    ours = {i: st for i, st in now.items() if i not in (before or {})}
    findings = [f"no CAP document for the public transition {e}" for e in missing]
    findings += [
        f"CAP document {i} of this drill has status {st!r}, not 'Exercise'"
        for i, st in sorted(ours.items())
        if i.startswith("exercise:") and st != "Exercise"
    ]
    return len([i for i in ours if i.startswith("exercise:")]), findings


def _sms_summary(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen = {m.get("sid") for m in before}
    new = [m for m in after if m.get("sid") not in seen] if seen else after[len(before) :]
    return [
        {
            "sid": m.get("sid"),
            "to": mask_number(str(m.get("to") or m.get("To") or "")),
            "body": str(m.get("body") or m.get("Body") or ""),
        }
        for m in new
    ]


@dataclass
class DrillPayloads:
    """What a drill publishes, on its clock, and its report as far as the payloads tell."""

    clock: Clock
    generated: Generated
    gateway: str
    publications: list[Publication]
    report: DrillReport


def drill_payloads(
    sc: Scenario, reg: Registry, settings: Settings, options: DrillOptions, seed: int
) -> DrillPayloads:
    """The drill's clock (starting a second from now), its payloads as the drill gateway
    publishes them (in gateway batches with ``options.batch``), and the report's header:
    scenario, seed, speed, anchor, the rejections expected, and a note on the malformed
    payloads the drill gateway cannot send."""
    clock = drill_clock(sc, options, time.time() + 1.0)
    root = settings.mqtt.topic_root
    gen = generate(
        sc,
        reg,
        seed=seed,
        anchor_ms=clock.anchor_ms,
        seq_base=int(clock.wall_start * 1000) * 1000,
        topic_root=root,
    )
    gateway = drill_gateway(reg)
    pubs, unsendable = as_gateway(gen.publications, gateway, topic_root=root)
    if options.batch:
        pubs = batch_publications(
            pubs, max_readings=options.max_batch, topic_root=root, gateway=gateway
        )
    report = DrillReport(
        scenario=sc.name,
        seed=seed,
        speed=options.speed,
        overlays=list(sc.overlays),
        anchor=rfc3339(clock.anchor_ms),
        wall_start=rfc3339(round(clock.wall_start * 1000)),
        expected_rejections=sum(1 for p in pubs if p.expect_rejected),
    )
    if unsendable:
        report.notes.append(
            f"{len(unsendable)} malformed payload(s) not sent: the drill gateway {gateway} "
            "publishes on batch topics, which name no station for a payload to contradict "
            f"({', '.join(sorted({p.tag for p in unsendable}))})"
        )
    return DrillPayloads(clock, gen, gateway, pubs, report)


# -- the drill ------------------------------------------------------------------------------------
def run_drill(
    scenario: str,
    settings: Settings,
    options: DrillOptions = DrillOptions(),
    *,
    console: Console | None = None,
    registry: Registry | None = None,
) -> DrillReport:
    """Run one drill end to end and return its report (also printed to ``console``)."""
    console = console or Console(stderr=True)
    reg = registry or load_registry(settings.paths.stations)
    sc = load_checked(scenario, reg, overlays=options.faults, directory=settings.paths.scenarios)
    seed = sc.seed if options.seed is None else options.seed
    with stack_context(settings, console) as (live, started):
        if options.start_pipeline is not None:
            want_pipeline = options.start_pipeline
        elif started:
            want_pipeline = True
        else:
            # A running stack: use its bridge and worker if they answer, else start ours —
            # a drill into a stack that nobody consumes would only report every step missed.
            running = pipeline_running(live)
            want_pipeline = not running
            console.print(
                "[cyan]drill[/cyan] "
                + (
                    "using the running bridge and worker"
                    if running
                    else "no bridge/worker answering on "
                    f"{live.worker.web_host}:{live.worker.web_port} and the bridge's metrics "
                    "port: starting them for the drill"
                )
            )
        pipe: AbstractContextManager[Any] = (
            pipeline_context(live) if want_pipeline else contextlib.nullcontext()
        )
        with pipe as running:
            token = getattr(running, "viewer_token", None)
            if token and live.operator.token is None:
                # the pipeline the drill started lets it read the sent log (per-person counts)
                op = live.operator.model_copy(update={"token": SecretStr(str(token))})
                live = live.model_copy(update={"operator": op})
            if options.check_clock:
                check_drill_clock(live, sc, options, console)
            report = asyncio.run(_drill(sc, reg, live, options, seed, console))
    print_report(report, console)
    return report


async def _drill(
    sc: Scenario,
    reg: Registry,
    settings: Settings,
    options: DrillOptions,
    seed: int,
    console: Console,
) -> DrillReport:
    followers = _Followers(settings)
    await followers.start()
    sms_before = fetch_sms(settings.twilio.api_base)
    cap_before = cap_statuses(Path(settings.paths.cap_feed))
    drill = drill_payloads(sc, reg, settings, options, seed)
    clock, gen, gateway, pubs, report = (
        drill.clock,
        drill.generated,
        drill.gateway,
        drill.publications,
        drill.report,
    )
    wall_start = clock.wall_start
    expected_rejections = report.expected_rejections
    publisher = gateway_publisher(settings, gateway)
    stop = threading.Event()
    progress = Progress(
        TextColumn("[cyan]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[clock]}"),
        TextColumn("alerts {task.fields[alerts]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not options.show_progress,
        transient=False,
    )
    task = progress.add_task(f"drill {sc.name}", total=len(pubs), clock="+00:00:00", alerts=0)

    def on_progress(n: int, p: Any) -> None:
        progress.update(task, completed=n, clock=fmt_t(p.t_s))

    truths = truth_times(sc, reg, gen)
    stations = set(sc.station_ids())
    try:
        publisher.connect()
        with progress:
            fut = asyncio.get_running_loop().run_in_executor(
                None,
                lambda: play(pubs, publisher, clock, on_progress=on_progress, stop=stop),
            )
            while not fut.done():
                await followers.poll()
                progress.update(task, alerts=len(followers.seen.alerts))
            stats = await fut
            deadline = time.time() + options.settle_s
            heard, heard_at = -1, time.time()
            while time.time() < deadline:
                await followers.poll()
                progress.update(task, alerts=len(followers.seen.alerts))
                rejections_done = len(followers.seen.rejected) >= expected_rejections
                if options.quiet_s is not None:
                    now_heard = len(followers.seen.alerts) + len(followers.seen.hq)
                    if now_heard != heard:
                        heard, heard_at = now_heard, time.time()
                    if rejections_done and time.time() - heard_at >= options.quiet_s:
                        break
                    continue
                scratch: list[str] = []
                obs = observe_alerts(
                    followers.seen.alerts + followers.seen.dq, clock, stations, scratch
                )
                outcomes = evaluate(sc.expect, sc.never, obs, truths=truths)
                if rejections_done and not any(o.status == "missed" for o in outcomes):
                    # everything decided; a short grace for late never-rule violations
                    grace_end = time.time() + min(3.0, options.settle_s)
                    while time.time() < min(grace_end, deadline):
                        await followers.poll()
                    break
    finally:
        stop.set()
        publisher.close()
        await followers.stop()
    report.messages = stats.messages
    report.readings = stats.readings
    sms_after = fetch_sms(settings.twilio.api_base)
    sms = (
        _sms_summary(sms_before, sms_after)
        if sms_before is not None and sms_after is not None
        else None
    )
    notes: list[str] = []
    # residents' view: messages per recipient per event, clear → re-raise cycles
    try:
        sent: list[dict[str, Any]] | None = fetch_sent(settings, int(wall_start * 1000) - 1000)
    except (urllib.error.URLError, OSError, ValueError):
        sent = _sent_from_sms(sms) if sms is not None else None
        notes.append(
            "per-person counts from the fake Twilio, per handset and hazard (the worker's "
            "/deliveries needs GYEONGBO_OPERATOR__TOKEN, a viewer's token)"
        )
    judge_run(
        report,
        sc,
        clock,
        followers.seen,
        truths=truths,
        rejected_topic=settings.kafka.topics.rejected.name,
        sms=sms,
        sent=sent,
        notes=notes,
        cap_folder=Path(settings.paths.cap_feed),
        cap_before=cap_before,
    )
    report.publish_elapsed_s = round(stats.elapsed_s, 3)
    if stats.max_lag_s > 1.0:
        report.notes.append(
            f"the publisher fell up to {stats.max_lag_s:.1f}s behind schedule; lower --speed"
        )
    return report


def judge_run(
    report: DrillReport,
    sc: Scenario,
    clock: Clock,
    seen: Followed,
    *,
    truths: dict[int, float],
    rejected_topic: str,
    sms: list[dict[str, Any]] | None,
    sent: list[dict[str, Any]] | None,
    notes: Sequence[str] = (),
    cap_folder: Path,
    cap_before: dict[str, str] | None,
    cap_wait_s: float = 10.0,
) -> None:
    """Fill ``report`` from what a run produced, whichever way it ran (through the stack, or
    offline through the pipeline core): alert events, data-quality alerts, HQ stages and
    rejections as their Kafka records (``seen``), the SMS the handsets got (``sms``: masked
    number and body), the sent log's rows (``sent``: recipient, hazard, event, kind), and
    the CAP documents in ``cap_folder`` that were not in ``cap_before``."""
    stations = set(sc.station_ids())
    findings: list[str] = []
    obs = observe_alerts(seen.alerts + seen.dq, clock, stations, findings)
    report.outcomes = evaluate(sc.expect, sc.never, obs, truths=truths)
    report.transitions, report.duplicate_alerts = transitions_of(obs)
    report.observed_rejections = len(seen.rejected)
    expected_rejections = report.expected_rejections
    if report.observed_rejections < expected_rejections:
        findings.append(
            f"{expected_rejections} payloads should have been dead-lettered to "
            f"{rejected_topic}, {report.observed_rejections} were"
        )
    reasons: dict[str, int] = {}
    for _, data in seen.rejected:
        try:
            reason = str(json.loads(data).get("reason", "?"))
        except (ValueError, AttributeError):
            reason = "?"
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        report.notes.append(f"rejection reasons: {reasons}")
    hq_seen: set[str] = set()
    for _, data in seen.hq:
        try:
            doc = json.loads(data)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("exercise", False):
            eid = str(doc.get("event_id") or "")
            if eid and eid in hq_seen:
                continue  # delivered twice (a replay after a crash): one stage change
            hq_seen.add(eid)
            report.hq_stages.append(doc)
    if sms is not None:
        report.sms = sms
        for m in report.sms:
            if "[훈련]" not in m["body"]:
                findings.append(f"SMS {m['sid']} to {m['to']} lacks the [훈련] drill prefix")
    report.notes += notes
    counts = recipient_counts(sent) if sent is not None else []
    report.per_recipient = [asdict(c) for c in counts] if sent is not None else None
    cycles = reraise_cycles(obs)
    report.cycles = [asdict(c) for c in cycles]
    findings += limit_findings(
        counts, cycles, max_messages=sc.max_messages_per_recipient, max_cycles=sc.max_cycles
    )
    public = [
        o
        for o in obs
        if o.hazard != "sensor_health"
        and (
            Level.parse(o.level) >= Level.CAUTION
            or (o.level == "cleared" and o.previous not in ("cleared", "attention", "?"))
        )
    ]
    report.cap_documents, cap_findings = check_cap_documents(
        seen.alerts, cap_folder, cap_before, wait_s=cap_wait_s
    )
    findings += cap_findings
    report.cap = cap_entries(cap_folder, cap_before)
    if report.cap_documents is None:
        report.notes.append(
            f"{len(public)} public transitions observed; CAP not checked (the worker's feed "
            f"folder {cap_folder} is not on this machine)"
        )
    report.findings = findings
