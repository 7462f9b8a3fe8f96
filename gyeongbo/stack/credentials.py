"""The local stack's MQTT users: development passwords generated once, kept under its home.

``gyeongbo stack up`` gives every gateway of the station registry and the bridge a random
password (``<home>/mqtt/credentials.json``, mode 0600: readable by the user who runs the
stack and its tools, never printed) and writes mosquitto's files from them
(:func:`write_mosquitto_files`): the gateways' password file and ACL
(:mod:`gyeongbo.mqtt_auth`), and the bridge's own. The tools find a password with
:func:`mqtt_password`: ``GYEONGBO_MQTT_PASSWORD__<USER>`` first (how production passes it),
then this file. A password once generated is kept, so a restarted stack takes the same ones.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gyeongbo.mqtt_auth import acl_text, bridge_acl_text, password_env_var, password_file_text
from gyeongbo.registry import Registry
from gyeongbo.settings import Settings

__all__ = [
    "MosquittoFiles",
    "credentials_path",
    "mqtt_password",
    "stack_password",
    "write_mosquitto_files",
]


def credentials_path(home: Path) -> Path:
    return Path(home) / "mqtt" / "credentials.json"


def _load(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def ensure_credentials(home: Path, users: list[str]) -> dict[str, str]:
    """The development password of each of ``users``, generating the missing ones."""
    path = credentials_path(home)
    creds = _load(path)
    missing = [u for u in users if u not in creds]
    if missing or not path.exists():
        creds.update({u: secrets.token_urlsafe(18) for u in missing})
        _write_private(path, json.dumps(creds, indent=1, sort_keys=True) + "\n")
    return {u: creds[u] for u in users}


def mqtt_password(
    settings: Settings, user: str, env: Mapping[str, str] | None = None
) -> str | None:
    """``user``'s MQTT password: ``GYEONGBO_MQTT_PASSWORD__<USER>``, else the local stack's
    development password under ``settings.stack.home``; None when neither has one."""
    env = os.environ if env is None else env
    value = env.get(password_env_var(user))
    if value:
        return value
    return stack_password(settings.stack.home, user)


def stack_password(home: Path, user: str) -> str | None:
    """``user``'s development password in the local stack under ``home``, if any."""
    return _load(credentials_path(home)).get(user)


@dataclass(frozen=True)
class MosquittoFiles:
    gateway_passwords: Path
    gateway_acl: Path
    bridge_passwords: Path
    bridge_acl: Path


def write_mosquitto_files(
    home: Path, registry: Registry, *, bridge_user: str, roots: list[str]
) -> MosquittoFiles:
    """The two listeners' password files and ACLs for ``registry``'s gateways and the bridge.

    Mosquitto reads them after it started (as the stack's user, or root when the stack runs
    as root: ``gyeongbo.stack.mosquitto``), so they stay private to that user."""
    if bridge_user in registry.gateways:
        raise ValueError(f"the bridge user {bridge_user!r} is also a gateway of the registry")
    gateways = sorted(registry.gateways)
    creds = ensure_credentials(home, [bridge_user, *gateways])
    folder = Path(home) / "mqtt"
    files = MosquittoFiles(
        gateway_passwords=folder / "gateways.passwords",
        gateway_acl=folder / "gateways.acl",
        bridge_passwords=folder / "bridge.passwords",
        bridge_acl=folder / "bridge.acl",
    )
    _write_private(files.gateway_passwords, password_file_text({g: creds[g] for g in gateways}))
    _write_private(files.gateway_acl, acl_text(registry, roots, bridge_user=None))
    _write_private(files.bridge_passwords, password_file_text({bridge_user: creds[bridge_user]}))
    _write_private(files.bridge_acl, bridge_acl_text(bridge_user, roots))
    return files
