"""Subscribers in and out of the store, with their zone membership computed by geo.

* :func:`from_directory` — a validated YAML directory (``geo.recipients``) as store rows;
  YAML is an import format (``gyeongbo recipients import FILE``), not where subscribers live.
* :func:`indexed` — compute (again) the zones that concern each subscriber
  (:func:`geo.recipients.memberships`), stamped with the zones' version.
* :func:`reindex` — every subscriber indexed against another zones version is re-indexed
  (zones were redrawn or added), in chunks; opt-outs are kept.
* :func:`prepare` — what a worker does when it opens the store: migrate, re-index if the
  zones changed, and seed an empty store from ``store.seed_recipients`` (drills, demos).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import msgspec

from geo.recipients import RecipientDirectory, memberships
from geo.zones import ZoneRegistry
from gyeongbo.settings import Settings
from streams.config_files import load_recipients
from streams.store import StoreError, Subscriber, SubscriberStore, now_ms, open_store

__all__ = ["from_directory", "indexed", "open_configured", "prepare", "reindex"]

log = logging.getLogger("gyeongbo.store")

ZONES_VERSION_KEY = "zones_version"


def from_directory(directory: RecipientDirectory, zones: ZoneRegistry) -> list[Subscriber]:
    out = []
    for r in directory.values():
        out.append(
            Subscriber(
                id=r.id,
                phone=r.phone.e164,
                language=r.language,
                lat=r.location[0] if r.location else None,
                lon=r.location[1] if r.location else None,
                declared_zones=tuple(r.declared),
                hazards=tuple(sorted(h.value for h in r.hazards)),
                drill=r.drill,
                consent_ms=r.consent_ms,
                member_zones=r.zones,
                located=r.located,
                point_lat=r.point[0] if r.point else None,
                point_lon=r.point[1] if r.point else None,
                zones_version=zones.version,
            )
        )
    return out


def indexed(subscribers: Sequence[Subscriber], zones: ZoneRegistry) -> list[Subscriber]:
    """The subscribers with their membership computed against ``zones`` (a declared zone
    that no longer exists is dropped, and logged)."""
    declared = []
    for s in subscribers:
        keep = tuple(z for z in s.declared_zones if z in zones)
        if len(keep) != len(s.declared_zones):
            log.warning(
                "subscriber %s: zone(s) %s no longer exist; dropped from their areas",
                s.id,
                sorted(set(s.declared_zones) - set(keep)),
            )
        declared.append(keep)
    member = memberships(
        zones,
        [(s.lat, s.lon) if s.lat is not None and s.lon is not None else None for s in subscribers],
        declared,
    )
    out = []
    for s, d, m in zip(subscribers, declared, member, strict=True):
        if m is None:
            log.warning("subscriber %s: location is outside every zone; no located zones", s.id)
            m_zones: tuple[str, ...] = ()
            located: tuple[str, ...] = ()
            point = (s.lat, s.lon) if s.lat is not None and s.lon is not None else None
        else:
            m_zones, located, point = m.zones, m.located, m.point
        out.append(
            msgspec.structs.replace(
                s,
                declared_zones=d,
                member_zones=m_zones,
                located=located,
                point_lat=point[0] if point else None,
                point_lon=point[1] if point else None,
                zones_version=zones.version,
            )
        )
    return out


def reindex(store: SubscriberStore, zones: ZoneRegistry, *, chunk: int = 10_000) -> int:
    """Re-index subscribers of another zones version; returns how many."""
    n = 0
    while True:
        stale = store.stale(zones.version, limit=chunk)
        if not stale:
            break
        store.upsert(indexed(stale, zones), now_ms=now_ms())
        n += len(stale)
    store.set_meta(ZONES_VERSION_KEY, zones.version)
    if n:
        log.info("re-indexed %d subscribers against zones version %s", n, zones.version)
    return n


def prepare(store: SubscriberStore, zones: ZoneRegistry, seed: Path | None) -> dict[str, int]:
    """Migrate, re-index when the zones changed, seed an empty store from ``seed``."""
    applied = store.migrate()
    reindexed = 0
    if store.get_meta(ZONES_VERSION_KEY) != zones.version:
        reindexed = reindex(store, zones)
    seeded = 0
    if seed is not None and str(seed) and store.count() == 0:
        subs = from_directory(load_recipients(seed, zones=zones), zones)
        seeded = store.upsert(subs, now_ms=now_ms())
        log.info("store was empty: imported %d subscribers from %s", seeded, seed)
    return {"migrations": len(applied), "reindexed": reindexed, "seeded": seeded}


def open_configured(settings: Settings, *, fail_fast: bool = False) -> SubscriberStore:
    """The store named by ``settings.store.url`` (``fail_fast``: see :func:`open_store`)."""
    try:
        url = settings.store.url.get_secret_value()
        return open_store(url, pool_size=settings.store.pool_size, fail_fast=fail_fast)
    except StoreError:
        raise
    except Exception as err:  # a broken path, a driver error: say which store
        raise StoreError(f"cannot open the subscriber store: {err}") from None
