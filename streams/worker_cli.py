"""``gyeongbo worker``: run one Faust worker of the pipeline."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from gyeongbo.settings import Settings


def worker(
    log_level: Annotated[str, typer.Option(help="Log level: debug, info, warn, error.")] = "info",
    web_port: Annotated[
        int | None, typer.Option(help="Port of the worker's HTTP API (default from settings).")
    ] = None,
    no_sink: Annotated[bool, typer.Option("--no-sink", help="Do not write to InfluxDB.")] = False,
) -> None:
    """Run a worker: readings → detectors → zones → stages → alerts, SMS, CAP, InfluxDB.

    Start as many as you like with the same GYEONGBO_WORKER__APP_ID: they share the
    partitions (each needs its own --web-port on one machine). Settings come from GYEONGBO_*
    variables; `gyeongbo config show` prints them. Stop with Ctrl-C (SIGTERM).
    """
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
    logging.basicConfig(level=log_level.upper().replace("WARN", "WARNING"))
    w = Worker(settings, sink=not no_sink)
    level = {"warning": "warn"}.get(log_level.lower(), log_level.lower())
    FaustWorker(w.app, loglevel=level, quiet=True).execute_from_commandline()
