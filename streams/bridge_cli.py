"""``gyeongbo bridge``: run the MQTT → Kafka bridge and generate its MQTT auth files.

Register in the main CLI with ``app.add_typer(bridge_app, name="bridge")`` from
``streams.bridge_cli import app as bridge_app``; also runnable as
``python -m streams.bridge_cli run``.

Settings: ``GYEONGBO_MQTT__*`` (host, port, username, password, client_id, topic_root),
``GYEONGBO_KAFKA__*`` (bootstrap, topics), ``GYEONGBO_PATHS__STATIONS`` and the bridge's own
``GYEONGBO_BRIDGE__*`` knobs (:class:`streams.bridge_config.BridgeSettings`).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from gyeongbo.exit_codes import FAILED, USAGE
from gyeongbo.log_level import LogLevelOpt, configure_logging
from gyeongbo.registry import RegistryError, load_registry
from gyeongbo.settings import Settings
from streams.bridge_config import BridgeSettings
from streams.validate import REASON_HELP

__all__ = ["app"]

app = typer.Typer(
    help=(
        "MQTT → Kafka bridge: the front door for sensor gateways. Subscribes to "
        "{topic_root}/# (QoS 1, persistent session), validates readings against the station "
        "registry, writes columnar batch records to `readings` and every rejection with its "
        "reason to `readings.rejected`, and acknowledges MQTT only after Kafka has them."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


@app.command("run")
def run(
    log_level: LogLevelOpt = "info",
    metrics_port: Annotated[
        int | None,
        typer.Option(
            help="HTTP port for /metrics and /healthz (default GYEONGBO_BRIDGE__METRICS_PORT "
            "or 16067; 0 = off)."
        ),
    ] = None,
) -> None:
    """Run the bridge until SIGTERM/SIGINT (finishes the flush in Kafka, then exits 0).

    While MQTT or Kafka is down the bridge waits and retries; /healthz says it is not ready.
    """
    from streams.bridge import Bridge

    configure_logging(log_level)
    settings = Settings()
    cfg = BridgeSettings()
    if metrics_port is not None:
        cfg = cfg.model_copy(update={"metrics_port": metrics_port})
    try:
        registry = load_registry(settings.paths.stations)
    except RegistryError as err:
        typer.echo(f"invalid station registry: {err}", err=True)
        raise typer.Exit(FAILED) from None
    bridge = Bridge(settings, cfg, registry)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, bridge.request_stop)
        await bridge.run()

    asyncio.run(main())


@app.command("mqtt-auth")
def mqtt_auth(
    out: Annotated[Path, typer.Option(help="Folder for `passwords` and `acl` (mosquitto files).")],
    shared_batch: Annotated[
        bool,
        typer.Option(
            help="Also grant the plain {kind}/_batch topic when several gateways share a kind."
        ),
    ] = False,
    group: Annotated[
        str | None,
        typer.Option(
            help="Group (name or id) that may read the files: mosquitto's, which reads them "
            "after dropping to its own user (compose: 1883). Files are then 0640, else 0600."
        ),
    ] = None,
    dev_passwords: Annotated[
        bool,
        typer.Option(
            help="Generate random passwords for users without GYEONGBO_MQTT_PASSWORD__<USER> "
            "and write them to <out>/dev-credentials.env (mode 0600). Development only."
        ),
    ] = False,
) -> None:
    """Write the mosquitto password file and topic ACL from the station registry.

    One user per gateway (may publish only its own stations' topics and its
    {kind}/_batch/{gateway} topics) and the bridge user (reads {topic_root}/#). Passwords
    are read from GYEONGBO_MQTT_PASSWORD__<USER> (upper case, '-' → '_') and stored hashed.
    """
    from gyeongbo.mqtt_auth import credentials_from_env, password_env_var, write_auth_files

    settings = Settings()
    try:
        registry = load_registry(settings.paths.stations)
    except RegistryError as err:
        typer.echo(f"invalid station registry: {err}", err=True)
        raise typer.Exit(FAILED) from None
    bridge_user = settings.mqtt.username or "gyeongbo-bridge"
    users = [bridge_user, *sorted(registry.gateways)]
    creds, missing = credentials_from_env(users)
    if bridge_user not in creds and settings.mqtt.password is not None:
        creds[bridge_user] = settings.mqtt.password.get_secret_value()
        missing.remove(password_env_var(bridge_user))
    if missing and not dev_passwords:
        typer.echo(
            "missing passwords (set these environment variables, or --dev-passwords):\n  "
            + "\n  ".join(missing),
            err=True,
        )
        raise typer.Exit(USAGE)
    generated = {u: secrets.token_urlsafe(18) for u in users if u not in creds}
    creds.update(generated)
    gid = None
    if group is not None:
        import grp

        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise typer.BadParameter(f"no such group: {group}", param_hint="'--group'") from None
    pw, acl = write_auth_files(
        out,
        registry,
        creds,
        root=settings.mqtt.topic_root,
        bridge_user=bridge_user,
        shared_batch=shared_batch,
        group=gid,
    )
    if generated:
        dev = out / "dev-credentials.env"
        fd = os.open(dev, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{password_env_var(u)}={p}\n" for u, p in sorted(generated.items()))
        typer.echo(f"generated {len(generated)} development password(s) in {dev}", err=True)
    typer.echo(json.dumps({"passwords": str(pw), "acl": str(acl), "users": users}))


@app.command("reasons")
def reasons() -> None:
    """List every rejection reason code with its meaning (the `reason` in readings.rejected)."""
    for reason, text in REASON_HELP.items():
        typer.echo(f"{reason.value:<20} {text}")


if __name__ == "__main__":
    sys.exit(app())
