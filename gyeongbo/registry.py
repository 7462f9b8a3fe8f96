"""The station registry: every sensor station the system accepts, with its thresholds.

Configuration is data (``config/stations.yaml``, versioned in the repo). Each station names its
gateway (the MQTT identity allowed to publish for it), its kind, its location, the impact
zones its alerts apply to, and the per-station thresholds of the rules that decide public
stages (docs/design.md §3):

* ``water_level``: the flood-forecast stage levels in metres at the gauge, ``attention`` <
  ``caution`` (홍수주의보, wrnwl) < ``alert`` (홍수경보, almwl) < ``serious`` (대홍수경보, srswl).
  A gauge with no official levels is still accepted: it feeds forecasts and anomaly
  detection but never raises a public stage on its own.
* ``structural``: the structure's allowable value per channel (``tilt_rad``, ``crack_mm``,
  ``vibration_cms``); stages are 60/80/100 % of it (관리기준 1차/2차/3차).
* ``rainfall``, ``air_quality``, ``seismic``: national criteria (KMA, Air Quality Conservation
  Act, KMA earthquake rules) apply, so no per-station thresholds are needed; an air-quality
  station names its region (권역).

Errors name the bad entry: ``stations[3] (id='1018683'): levels: …``.

>>> reg = load_registry(REPO_ROOT / "config" / "stations.yaml")
>>> reg.stations["1018683"].levels.caution
8.5
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gyeongbo.errors import ConfigError
from gyeongbo.settings import REPO_ROOT
from gyeongbo.vocab import KIND_VALUES, Kind

__all__ = [
    "REPO_ROOT",
    "Gateway",
    "Registry",
    "RegistryError",
    "StageLevels",
    "Station",
    "load_registry",
]


class RegistryError(ConfigError):
    """The registry file is invalid."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageLevels(_Model):
    """Flood-forecast stage levels of one gauge, metres at the gauge datum."""

    attention: float | None = None
    caution: float
    alert: float
    serious: float
    source: str | None = None

    @model_validator(mode="after")
    def _increasing(self) -> StageLevels:
        seq = [("caution", self.caution), ("alert", self.alert), ("serious", self.serious)]
        if self.attention is not None:
            seq.insert(0, ("attention", self.attention))
        for (n1, v1), (n2, v2) in itertools.pairwise(seq):
            if not v1 < v2:
                raise ValueError(f"{n1} ({v1}) must be below {n2} ({v2})")
        return self


class Gateway(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,62}$")
    name: str
    operator: str | None = None
    #: A drill gateway (the simulators, the drill runner) publishes readings for any station,
    #: only on its own batch topics, and every reading it publishes is an exercise.
    drill: bool = False


class Station(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", min_length=1)
    kind: Kind
    name: str
    name_en: str
    lat: float = Field(ge=33.0, le=38.7)  # the Korean peninsula south of the MDL, with Jeju
    lon: float = Field(ge=124.5, le=131.0)
    gateway: str
    #: Expected reporting interval; the deadman fires after k times this.
    interval_s: float = Field(default=600.0, gt=0)
    #: Impact zones (administrative codes or custom zone ids) the station's alerts apply to.
    zones: tuple[str, ...] = ()
    river: str | None = None
    #: Air-quality region (권역) the station belongs to.
    region: str | None = None
    structure: str | None = None
    levels: StageLevels | None = None
    allowable: dict[str, float] | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _kind_specific(self) -> Station:
        if self.kind is not Kind.WATER_LEVEL and self.levels is not None:
            raise ValueError(f"levels are only for water_level stations, not {self.kind}")
        if self.kind is Kind.STRUCTURAL:
            if not self.allowable:
                raise ValueError("a structural station needs 'allowable' per channel")
            unknown = set(self.allowable) - set(KIND_VALUES[Kind.STRUCTURAL])
            if unknown:
                raise ValueError(
                    f"unknown structural channel(s) {sorted(unknown)}; "
                    f"expected {sorted(KIND_VALUES[Kind.STRUCTURAL])}"
                )
            bad = {k: v for k, v in self.allowable.items() if not v > 0}
            if bad:
                raise ValueError(f"allowable values must be positive: {bad}")
        elif self.allowable is not None:
            raise ValueError(f"allowable is only for structural stations, not {self.kind}")
        return self


@dataclass(frozen=True)
class Registry:
    """The validated registry; ``version`` changes whenever the file does."""

    stations: Mapping[str, Station]
    gateways: Mapping[str, Gateway]
    version: str
    path: Path | None = None
    by_gateway: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def station_ids(self) -> list[str]:
        return sorted(self.stations)

    def index_of(self) -> dict[str, int]:
        """A dense index per station (sorted ids), for per-station state arrays."""
        return {sid: i for i, sid in enumerate(self.station_ids())}

    def ids_digest(self) -> int:
        """:func:`ids_digest` of this registry's station ids (names :meth:`index_of`)."""
        return ids_digest(self.stations)


def ids_digest(ids: Iterable[str]) -> int:
    """A 64-bit digest of a set of station ids (BLAKE2b of the sorted ids), never 0.

    Two registries with the same digest give every station the same :meth:`Registry.index_of`
    position, so a position computed by the bridge can be trusted by a worker whose registry
    has the same digest (the ``readings`` record carries both, ``streams.codec`` v2).

    >>> ids_digest(["b", "a"]) == ids_digest(["a", "b"]) != ids_digest(["a", "b", "c"])
    True
    """
    h = hashlib.blake2b(digest_size=8)
    for sid in sorted(ids):
        h.update(sid.encode("utf-8") + b"\n")
    return int.from_bytes(h.digest(), "little") or 1


def _describe_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"{loc}: {e['msg']}" if loc else str(e["msg"]))
    return "; ".join(parts)


def parse_registry(data: Any, *, path: Path | str = "<registry>") -> Registry:
    """Validate a parsed registry document; every problem is reported, not just the first."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise RegistryError(path, ["top level must be a mapping with 'gateways' and 'stations'"])
    unknown_keys = set(data) - {"version", "gateways", "stations"}
    if unknown_keys:
        problems.append(f"unknown top-level key(s): {sorted(unknown_keys)}")
    gateways: dict[str, Gateway] = {}
    for i, raw in enumerate(data.get("gateways") or []):
        gid = raw.get("id") if isinstance(raw, dict) else None
        try:
            gw = Gateway.model_validate(raw)
        except ValidationError as err:
            problems.append(f"gateways[{i}] (id={gid!r}): {_describe_error(err)}")
            continue
        if gw.id in gateways:
            problems.append(f"gateways[{i}] (id={gw.id!r}): duplicate gateway id")
        gateways[gw.id] = gw
    stations: dict[str, Station] = {}
    raw_stations = data.get("stations")
    if not isinstance(raw_stations, list) or not raw_stations:
        problems.append("'stations' must be a non-empty list")
        raw_stations = []
    for i, raw in enumerate(raw_stations):
        sid = raw.get("id") if isinstance(raw, dict) else None
        where = f"stations[{i}] (id={sid!r})"
        try:
            st = Station.model_validate(raw)
        except ValidationError as err:
            problems.append(f"{where}: {_describe_error(err)}")
            continue
        if st.id in stations:
            problems.append(f"{where}: duplicate station id")
        if st.gateway not in gateways:
            problems.append(f"{where}: gateway {st.gateway!r} is not declared under 'gateways'")
        stations[st.id] = st
    if problems:
        raise RegistryError(path, problems)
    by_gateway: dict[str, list[str]] = {g: [] for g in gateways}
    for st in stations.values():
        by_gateway[st.gateway].append(st.id)
    version = str(data.get("version", "0"))
    return Registry(
        stations=stations,
        gateways=gateways,
        version=version,
        path=Path(path) if isinstance(path, Path) else None,
        by_gateway={g: tuple(sorted(ids)) for g, ids in by_gateway.items()},
    )


#: libyaml's parser when PyYAML was built with it (an order of magnitude faster).
_YamlLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_registry(path: Path | str) -> Registry:
    """Load a registry from YAML, or JSON (``.json``; same document, parsed ~30× faster,
    for generated registries of 10⁵ stations)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(p, [f"file not found: {p}"]) from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.load(text, Loader=_YamlLoader)
    except (yaml.YAMLError, ValueError) as err:
        kind = "JSON" if p.suffix == ".json" else "YAML"
        raise RegistryError(p, [f"not valid {kind}: {err}"]) from None
    reg = parse_registry(data, path=p)
    return reg
