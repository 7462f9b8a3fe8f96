"""Mosquitto (Debian package) with a config written by the project.

Listeners are on 127.0.0.1 only. ``persistence`` keeps QoS 1 messages of persistent
sessions across a broker restart. ``log_dest stdout``: mosquitto drops root privileges and
could not write a log file in a root-owned folder, so its output goes to the stack's log.

The local stack's mosquitto is secure by default (:class:`Listener`, ``gyeongbo.stack.stack``):
no anonymous client; the gateways' listener authenticates every gateway of the registry and
enforces the topic ACL (``gyeongbo.mqtt_auth`` generates both from the station registry),
with each client's id forced to its user name; the bridges have a listener of their own.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gyeongbo.stack.install import ensure_binary
from gyeongbo.stack.procs import Proc, spawn

#: Mosquitto's ``message_size_limit`` (bytes). Above it mosquitto drops a publish: an MQTT v5
#: client is disconnected (protocol error: the limit is its CONNACK's Maximum Packet Size), an
#: MQTT 3.1.1 client even gets its PUBACK, and nothing reaches the bridge. The bridge's own
#: limit (``GYEONGBO_BRIDGE__MAX_PAYLOAD_BYTES``, 1 MiB) is below it, so that payloads between
#: the two are recorded as ``payload_too_large``.
MESSAGE_SIZE_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class Listener:
    """One authenticated listener (``per_listener_settings``): its users and their ACL."""

    port: int
    password_file: Path
    acl_file: Path
    #: A client's id is its user name: no client can take another's (the bridge's) id.
    username_is_client_id: bool = False


def write_config(
    home: Path,
    port: int,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    name: str = "mosquitto",
    listeners: list[Listener] | None = None,
) -> Path:
    """The config: ``listeners`` (each with its own users and ACL), or one listener on
    ``port``, authenticated when ``password_file`` is given, else anonymous (tests that need
    a bare broker)."""
    data = home / name
    data.mkdir(parents=True, exist_ok=True)
    lines = [
        f"# written by gyeongbo stack; port {port}",
        "persistence true",
        f"persistence_location {data}/",
        "autosave_interval 5",
        "log_dest stdout",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
        "connection_messages true",
        # Gateways may send large batches; the bridge rejects what is above its own limit,
        # which is below this one so that an oversized payload reaches it and is recorded.
        f"message_size_limit {MESSAGE_SIZE_LIMIT}",
        "max_inflight_messages 1000",
        "max_queued_messages 1000000",
        "max_queued_bytes 0",
    ]
    if listeners:
        lines.append("per_listener_settings true")
        for li in listeners:
            lines += [
                "",
                f"listener {li.port} 127.0.0.1",
                "allow_anonymous false",
                f"password_file {li.password_file}",
                f"acl_file {li.acl_file}",
            ]
            if li.username_is_client_id:
                lines.append("use_username_as_clientid true")
    else:
        lines.insert(1, f"listener {port} 127.0.0.1")
        if password_file is not None:
            lines += ["allow_anonymous false", f"password_file {password_file}"]
            if acl_file is not None:
                lines.append(f"acl_file {acl_file}")
        else:
            lines.append("allow_anonymous true")
    if os.geteuid() == 0:
        # Stay root so the persistence folder under the project's home stays writable (and
        # the private password files readable: mosquitto would otherwise drop to its user).
        lines.insert(1, "user root")
    conf = data / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def start(
    home: Path,
    port: int,
    *,
    password_file: Path | None = None,
    acl_file: Path | None = None,
    name: str = "mosquitto",
    listeners: list[Listener] | None = None,
) -> Proc:
    binary = ensure_binary("mosquitto", "mosquitto")
    ensure_binary("mosquitto_passwd", "mosquitto")
    conf = write_config(
        home, port, password_file=password_file, acl_file=acl_file, name=name, listeners=listeners
    )
    return spawn(name, [binary, "-c", str(conf)], port=port, home=home)


def passwd_binary() -> str:
    return shutil.which("mosquitto_passwd") or ensure_binary("mosquitto_passwd", "mosquitto")
