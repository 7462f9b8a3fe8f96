"""Operator tokens: who may use the worker's HTTP API, stored hashed (docs/design.md §9).

Each operator gets a bearer token from ``gyeongbo operators add`` (printed once, never
stored in clear). The tokens file (``GYEONGBO_OPERATOR__TOKENS_FILE``, shared by every
worker, JSON) keeps, per token: the token's public id, the operator's id, a role, the SHA-256
of the token, when it was created and, once revoked, when. A token is
``gyb_<id>_<secret>``: the id finds the entry without trying every hash, the secret is 32
random bytes (256 bits, ``secrets.token_urlsafe``), so a fast hash is enough — a slow KDF
guards guessable passwords, and nobody can guess 2²⁵⁶; the comparison is constant-time.

Roles, each including the one before:

* ``viewer`` — read: ``/alerts``, ``/audit``, the CAP feed;
* ``operator`` — act: acknowledge, silence, escalate, clear;
* ``admin`` — also the list of operators (``GET /operators``) and Faust's own views.

>>> store = TokenStore(entries={})
>>> token, entry = store.issue("kim", "operator", now_ms=0)
>>> store.verify(token).operator, store.verify(token).role
('kim', 'operator')
>>> store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
True
>>> store.revoke(entry.token_id, now_ms=1) and store.verify(token) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

__all__ = ["ROLES", "Role", "TokenEntry", "TokenFileWatcher", "TokenStore", "role_at_least"]

Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_TOKEN = re.compile(r"^gyb_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_OPERATOR = re.compile(r"^[\w.@-]{1,64}$")


def role_at_least(role: str, needed: Role) -> bool:
    """``admin`` ⊇ ``operator`` ⊇ ``viewer``.

    >>> role_at_least("admin", "operator"), role_at_least("viewer", "operator")
    (True, False)
    """
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenEntry:
    token_id: str
    operator: str
    role: Role
    sha256: str
    created_ms: int
    revoked_ms: int | None = None
    note: str = ""

    @property
    def active(self) -> bool:
        return self.revoked_ms is None

    def public(self) -> dict[str, object]:
        """What ``list`` and ``GET /operators`` show (never the hash)."""
        d = asdict(self)
        d.pop("sha256")
        return d


@dataclass
class TokenStore:
    """The tokens file's content; :meth:`load` and :meth:`save` read and write it."""

    entries: dict[str, TokenEntry] = field(default_factory=dict)

    def issue(
        self, operator: str, role: str, *, now_ms: int, note: str = ""
    ) -> tuple[str, TokenEntry]:
        """A new token for ``operator`` (returned once, in clear) and its stored entry."""
        if not _OPERATOR.match(operator):
            raise ValueError(
                f"operator id {operator!r}: 1-64 letters, digits, '.', '_', '@' or '-'"
            )
        if role not in ROLES:
            raise ValueError(f"role {role!r}: one of {', '.join(ROLES)}")
        token_id = secrets.token_hex(6)
        while token_id in self.entries:  # pragma: no cover - 48 random bits
            token_id = secrets.token_hex(6)
        token = f"gyb_{token_id}_{secrets.token_urlsafe(32)}"
        entry = TokenEntry(token_id, operator, role, _digest(token), now_ms, note=note)
        self.entries[token_id] = entry
        return token, entry

    def verify(self, token: str) -> TokenEntry | None:
        """The active entry ``token`` belongs to, or None (unknown, malformed, revoked)."""
        m = _TOKEN.match(token)
        entry = self.entries.get(m.group(1)) if m else None
        if entry is None or not entry.active:
            # Compare anyway, so a miss and a wrong secret take the same time.
            hmac.compare_digest(_digest(token), "0" * 64)
            return None
        return entry if hmac.compare_digest(_digest(token), entry.sha256) else None

    def revoke(self, key: str, *, now_ms: int) -> list[TokenEntry]:
        """Revoke the token with id ``key``, or every active token of operator ``key``."""
        hits = [
            e
            for e in self.entries.values()
            if e.active and (e.token_id == key or e.operator == key)
        ]
        for e in hits:
            self.entries[e.token_id] = replace(e, revoked_ms=now_ms)
        return hits

    # -- the file ---------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> TokenStore:
        """The store in ``path``; an absent file is an empty store (nobody gets in)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls()
        entries = {}
        for d in raw.get("tokens", []):
            e = TokenEntry(**d)
            if e.role not in ROLES:
                raise ValueError(f"{path}: token {e.token_id} has unknown role {e.role!r}")
            entries[e.token_id] = e
        return cls(entries)

    def save(self, path: Path) -> None:
        """Write atomically (a reader never sees half a file), mode 0640."""
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"version": 1, "tokens": [asdict(e) for e in self.entries.values()]}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)


class TokenFileWatcher:
    """The tokens file as the worker sees it: re-read when its modification time or size
    changes, so ``operators add`` and ``revoke`` take effect without a restart. A file that
    cannot be read keeps the last good store (and says why once)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._store = TokenStore()
        self.error: str | None = None

    def store(self) -> TokenStore:
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, -1)
        with self._lock:
            if stamp != self._stamp:
                try:
                    self._store = TokenStore.load(self.path)
                    self.error = None
                except (OSError, ValueError, TypeError) as err:
                    self.error = f"{self.path}: {err}"
                self._stamp = stamp
            return self._store
