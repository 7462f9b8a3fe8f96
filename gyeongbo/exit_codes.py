"""Exit status of every ``gyeongbo`` command, one meaning each (the README's exit-status table).

* ``0`` done; a check found nothing wrong.
* ``1`` a check failed (``config check``, ``drill run`` expectations, ``drill compare``,
  ``stack status``) or the operation was refused or failed (an HTTP error from a worker, an
  unknown subscriber, an invalid configuration file).
* ``2`` usage: a bad option or argument (click's own message, or ours in the same form), or
  a ``GYEONGBO_*`` setting that is invalid or missing where the command needs it (an
  operator token, a password). Nothing was attempted.
* ``3`` a service did not answer: MQTT, Kafka, PostgreSQL or a worker's API refused the
  connection, timed out or has no address. Try again once it is up.

Long-running services (``bridge run``, ``worker``) wait for what they need and retry
instead; they exit 0 when stopped.

>>> unreachable(FileNotFoundError(2, "No such file or directory"))
False
>>> unreachable(OSError(111, "Connection refused"))  # Python makes it a ConnectionRefusedError
True
"""

from __future__ import annotations

import socket

__all__ = ["EPILOG", "FAILED", "OK", "UNREACHABLE", "USAGE", "unreachable"]

OK = 0
FAILED = 1
USAGE = 2
UNREACHABLE = 3

#: The top-level ``--help`` epilog (typer's rich help keeps its lines).
EPILOG = "\n".join(
    [
        "Exit status:",
        "0  ok",
        "1  a check failed, or the operation failed",
        "2  usage: a bad option, argument or GYEONGBO_* setting",
        "3  a service did not answer (MQTT, Kafka, PostgreSQL, a worker's API)",
    ]
)

#: Client errors that mean "nobody answered", by class name: the CLI names them without
#: importing every client library (aiokafka, psycopg_pool) into the base package.
_UNREACHABLE_NAMES = frozenset(
    {
        "KafkaConnectionError",
        "NodeNotReadyError",
        "KafkaTimeoutError",
        "RequestTimedOutError",
        "NoBrokersAvailable",
        "PoolTimeout",
    }
)


def unreachable(err: BaseException | None) -> bool:
    """Whether ``err``, or an exception it was raised from or during, says that a service
    did not answer: connection refused or reset, a timeout, an unknown host name, or one of
    the Kafka/PostgreSQL clients' own "no connection" errors."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, ConnectionError | TimeoutError | socket.gaierror):
            return True
        if any(c.__name__ in _UNREACHABLE_NAMES for c in type(err).__mro__):
            return True
        reason = getattr(err, "reason", None)  # urllib.error.URLError wraps the socket error
        if isinstance(reason, BaseException) and unreachable(reason):
            return True
        err = err.__cause__ or err.__context__
    return False
