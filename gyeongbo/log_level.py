"""The ``--log-level`` option of every command that has one, and the one logging set-up.

Levels are Python's: ``debug``, ``info``, ``warning``, ``error``, ``critical``, in any case
(``WARNING``, ``Info``); ``warn`` is taken as ``warning``. Anything else is a usage error
(exit 2) naming the choices, before the command starts.

One handler on the root logger, installed once: a second one (a framework's own set-up on top
of ours) would print every line twice.

>>> normalize_log_level("WARNING"), normalize_log_level("warn"), normalize_log_level(" Info ")
('warning', 'warning', 'info')
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

__all__ = ["LEVELS", "LOG_FORMAT", "LogLevelOpt", "configure_logging", "normalize_log_level"]

LEVELS = ("debug", "info", "warning", "error", "critical")
_ALIASES = {"warn": "warning", "fatal": "critical"}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def normalize_log_level(value: str) -> str:
    """The level's lower-case name; :class:`typer.BadParameter` (exit 2) when unknown."""
    name = value.strip().lower()
    name = _ALIASES.get(name, name)
    if name not in LEVELS:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(LEVELS)}")
    return name


LogLevelOpt = Annotated[
    str,
    typer.Option(
        "--log-level",
        metavar="LEVEL",
        callback=normalize_log_level,
        help=f"Log level: {', '.join(LEVELS)} (any case).",
    ),
]


def configure_logging(level: str) -> None:
    """Log to stderr at ``level`` through one root handler (replacing any earlier one)."""
    logging.basicConfig(
        level=getattr(logging, normalize_log_level(level).upper()),
        format=LOG_FORMAT,
        stream=sys.stderr,
        force=True,
    )
