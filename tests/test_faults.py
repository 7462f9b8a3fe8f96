"""Faults lose nothing: a drill through a worker SIGKILLed at three points of its detector-state
checkpoint interval, a restart of the Kafka-protocol broker, or a SIGKILLed bridge, gives
exactly the transitions, SMS (as the handsets receive them) and CAP documents of a clean run
of the same drill (:func:`simulators.compare.compare_reports`): none missing, none extra.

Every run plays the same payload stream (same scenario, seed, speed and anchor) into a
pipeline of its own (topics, consumer group, CAP folder and SMS log: ``isolated_settings``)
on the session's stack, with a short checkpoint interval so that a crash can fall anywhere
in it. The clean reference runs once for the module.

The same drill offline (``gyeongbo drill run --offline``: the payloads through the pipeline
core in one process, :mod:`simulators.offline`) gives the clean run's report too: the core
the agents call is the core the drill runs without them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gyeongbo.settings import Settings
from gyeongbo.stack.procs import port_open
from gyeongbo.stack.stack import Stack
from simulators.compare import compare_reports
from simulators.drill import DrillOptions, run_drill
from simulators.offline import run_offline
from streams.pipeline import LocalPipeline, start_local_pipeline
from tests.pipeline_support import get_json, isolated_settings, wait_for

pytestmark = [pytest.mark.stack, pytest.mark.slow]

#: A compressed flood wave whose transitions are all decided by its readings (see the file).
SCENARIO = str(Path(__file__).parent / "scenarios" / "flood-faults.yaml")
SPEED = 1200.0
#: Detector-state checkpoint interval of the worker under test (seconds).
CHECKPOINT_S = 4.0
#: Scenario seconds of the scenario (14 h).
DURATION_S = 14 * 3600.0

Fault = Callable[[LocalPipeline, Stack, Settings], list[str]]


DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def anchor_ms() -> Iterator[Callable[[], int]]:
    """The anchor of each run: the same payloads, shifted by whole days per run.

    Whole days keep every reading at the same time of day (hourly means, the anomaly
    detector's daily profile), and give each run its own alert ids: the SMS idempotency
    token derives from them, and the shared fake Twilio would take a second run's messages
    for repeats of the first's. Five runs stay within the bridge's 7-day backfill window."""
    base = time.time_ns() // 1_000_000 - int(DURATION_S * 1000) - 60_000
    runs = iter(range(5))
    yield lambda: base - next(runs) * DAY_MS


def _settings(stack: Stack, tmp: Path) -> Settings:
    base = isolated_settings(stack, tmp)
    worker = base.worker.model_copy(update={"state_checkpoint_s": CHECKPOINT_S})
    return base.model_copy(update={"worker": worker})


def _drill(stack: Stack, tmp: Path, anchor_ms: int, fault: Fault | None) -> dict[str, Any]:
    """One run of the drill, in a pipeline of its own, with ``fault`` injected meanwhile."""
    settings = _settings(stack, tmp)
    done: list[str] = []
    errors: list[BaseException] = []
    with start_local_pipeline(settings, static_membership=True) as pipe:
        th = None
        if fault is not None:

            def main() -> None:
                try:
                    done.extend(fault(pipe, stack, settings))
                except BaseException as err:  # surfaced below
                    errors.append(err)

            th = threading.Thread(target=main, name="fault", daemon=True)
            th.start()
        report = run_drill(
            SCENARIO,
            settings,
            DrillOptions(
                speed=SPEED,
                anchor_ms=anchor_ms,
                start_pipeline=False,
                show_progress=False,
                settle_s=90,
                quiet_s=8.0,
                check_clock=False,
            ),
        )
        if th is not None:
            th.join(120)
    assert not errors, errors
    doc = report.to_dict()
    doc["faults_done"] = done
    return doc


@pytest.fixture(scope="module")
def reference(
    stack: Stack, tmp_path_factory: pytest.TempPathFactory, anchor_ms: Callable[[], int]
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("reference")
    doc = _drill(stack, tmp, anchor_ms(), None)
    (tmp / "reference.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1))
    assert doc["passed"], doc["findings"]
    assert doc["transitions"] and doc["sms"] and doc["cap"]
    yield doc


def _worker_metrics(pipe: LocalPipeline) -> dict[str, Any]:
    m: dict[str, Any] = get_json(pipe.workers[0].url + "/metrics")
    return m


def _after_checkpoint(pipe: LocalPipeline, fraction: float) -> float:
    """Wait for the worker's next detector-state checkpoint, then until ``fraction`` of the
    interval has passed since; return the seconds since the checkpoint."""
    c0 = _worker_metrics(pipe).get("state_checkpoints", 0)
    deadline = time.monotonic() + 4 * CHECKPOINT_S + 30
    while _worker_metrics(pipe).get("state_checkpoints", 0) == c0:
        assert time.monotonic() < deadline, "no detector-state checkpoint"
        time.sleep(0.02)
    t_cp = time.monotonic()
    time.sleep(max(0.0, fraction * CHECKPOINT_S - (time.monotonic() - t_cp)))
    return time.monotonic() - t_cp


def _wait_readings(pipe: LocalPipeline, n: int) -> None:
    wait_for(
        lambda: _worker_metrics(pipe).get("readings", 0) >= n,
        120,
        f"the worker to process {n} readings",
        every_s=0.1,
    )


def kill_worker_three_times(pipe: LocalPipeline, stack: Stack, settings: Settings) -> list[str]:
    done = []
    for fraction in (0.15, 0.5, 0.85):
        _wait_readings(pipe, 60)
        since = _after_checkpoint(pipe, fraction)
        pipe.workers[0].kill()  # SIGKILL: no shutdown, no final commit or checkpoint
        done.append(f"worker SIGKILL {since:.2f}s after a checkpoint")
        pipe.start_worker(0)
    return done


def restart_broker(pipe: LocalPipeline, stack: Stack, settings: Settings) -> list[str]:
    _wait_readings(pipe, 300)
    stack.stop_broker()
    deadline = time.monotonic() + 30
    while port_open(stack.config.kafka_port):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(5.0)
    stack.start_broker()
    return ["broker stopped 5 s and started"]


def kill_bridge(pipe: LocalPipeline, stack: Stack, settings: Settings) -> list[str]:
    _wait_readings(pipe, 300)
    assert pipe.bridge is not None
    pipe.bridge.kill()
    time.sleep(1.0)
    pipe.start_bridge()
    return ["bridge SIGKILL"]


@pytest.mark.parametrize(
    "fault",
    [kill_worker_three_times, restart_broker, kill_bridge],
    ids=["worker-sigkill-x3", "broker-restart", "bridge-sigkill"],
)
def test_a_fault_changes_nothing_people_receive(
    stack: Stack,
    tmp_path: Path,
    anchor_ms: Callable[[], int],
    reference: dict[str, Any],
    fault: Fault,
) -> None:
    run = _drill(stack, tmp_path, anchor_ms(), fault)
    assert run["faults_done"], "the fault was not injected during the drill"
    diffs = compare_reports(reference, run)
    assert diffs == [], "\n".join([*run["faults_done"], *diffs])
    assert run["passed"], run["findings"]


def test_the_offline_drill_reports_what_the_pipeline_did(
    stack: Stack, tmp_path: Path, anchor_ms: Callable[[], int], reference: dict[str, Any]
) -> None:
    options = DrillOptions(speed=SPEED, anchor_ms=anchor_ms(), show_progress=False, quiet_s=8.0)
    offline = run_offline(SCENARIO, _settings(stack, tmp_path), options).to_dict()
    assert offline["passed"], offline["findings"]
    assert compare_reports(reference, offline) == []
    # the people's side is compared, not only present: as many messages and documents
    assert len(offline["sms"]) == len(reference["sms"]) > 0
    assert len(offline["cap"]) == len(reference["cap"]) > 0
