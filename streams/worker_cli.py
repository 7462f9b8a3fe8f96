"""``gyeongbo worker``: run one Faust worker of the pipeline."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from gyeongbo.log_level import LogLevelOpt, configure_logging
from gyeongbo.settings import Settings


def worker(
    log_level: LogLevelOpt = "info",
    web_port: Annotated[
        int | None, typer.Option(help="Port of the worker's HTTP API (default from settings).")
    ] = None,
    no_sink: Annotated[bool, typer.Option("--no-sink", help="Do not write to InfluxDB.")] = False,
) -> None:
    """Run a worker: readings → detectors → zones → stages → alerts, SMS, CAP, InfluxDB.

    Start as many as you like with the same GYEONGBO_WORKER__APP_ID: they share the
    partitions (each needs its own --web-port on one machine). Settings come from GYEONGBO_*
    variables; `gyeongbo config show` prints them. Stop with Ctrl-C (SIGTERM). While Kafka or
    the subscriber store is down the worker waits and retries.
    """
    # Logging is set up here, once, before anything logs: Faust is told not to set up its
    # own (override_logging=False), which would replace this handler, print the lines logged
    # before it in another format, and at warning and above turn the root logger to DEBUG and
    # hang a terminal spinner on it, whose control characters end up in log files.
    configure_logging(log_level)
    from faust.worker import Worker as FaustWorker

    from streams.worker import Worker

    try:  # libuv's event loop: the SMS fan-out keeps a hundred requests in flight
        import mode.loop

        mode.loop.use("uvloop")
    except ImportError:
        logging.getLogger("gyeongbo.worker").info("uvloop not installed: asyncio's own loop")

    settings = Settings()
    if web_port is not None:
        settings = settings.model_copy(
            update={"worker": settings.worker.model_copy(update={"web_port": web_port})}
        )
    w = Worker(settings, sink=not no_sink)
    fw = FaustWorker(w.app, loglevel=log_level.upper(), quiet=True, override_logging=False)
    fw.spinner = None  # no terminal control characters in the log
    fw.execute_from_commandline()
