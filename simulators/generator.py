"""Turn a scenario into the exact MQTT publications a set of gateways would send.

Time
----
Scenario time ``t`` (seconds from the scenario's start) maps to two clocks:

* **event time** — the ``ts`` in the payload — is ``anchor + t``: the scenario's own cadence,
  never compressed. A 10-minute gauge interval is 10 minutes of event time at any speed, so
  detectors see real rates of rise, real 2-hour means and real deadman intervals.
* **wall time** — when the payload is published — is ``wall_start + t / speed``.

:class:`Clock` chooses the anchor. By default (:meth:`Clock.ending_now`) the scenario is laid
out so that its *last* reading's event time is the wall-clock time it is published at:
``anchor = wall_start - duration * (1 - 1/speed)``. Then no payload is ever stamped in the
future (the bridge rejects future timestamps), at ``--speed 1`` event time equals wall time,
and at ``--speed 60`` a 15-hour flood is published in 15 minutes with event times that
start 14¾ hours back and catch up with the wall clock at the end. (The bridge must accept
drill readings that old; a gateway flushing its buffer after an outage sends the same.)

Determinism
-----------
Every random draw comes from a NumPy generator seeded by ``(seed, crc32(station),
crc32(value))`` (faults: ``(seed, crc32(station), fault index)``), so the same scenario, seed,
anchor and ``seq_base`` give a byte-identical payload stream, and one station's noise does
not change when another station is added.

>>> from gyeongbo.registry import load_registry
>>> from simulators.scenario import SCENARIO_DIR, load_scenario
>>> reg = load_registry(REPO_ROOT / "config" / "stations.yaml")
>>> sc = load_scenario(SCENARIO_DIR / "seongsu-bridge-damage.yaml")
>>> gen = generate(sc, reg, seed=1, anchor_ms=1_600_000_000_000)
>>> gen.publications[0].topic
'gyeongbo/v1/readings/structural/SFC-SEONGSU-P7'
>>> rfc3339(1596678000000), rfc3339(1596678000123)
('2020-08-06T10:40:00+09:00', '2020-08-06T10:40:00.123+09:00')
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from gyeongbo.registry import Registry
from gyeongbo.settings import REPO_ROOT
from simulators.faults import apply_faults, malformed_publications
from simulators.records import (
    KST,
    Publication,
    Reading,
    out_of_range_value,
    rfc3339,
    seeded_rng,
    value_names,
)
from simulators.scenario import Fault, Scenario, Signal, StationSpec

__all__ = [
    "KST",
    "REPO_ROOT",
    "Clock",
    "Generated",
    "Publication",
    "Reading",
    "as_gateway",
    "batch_publications",
    "crossing_time",
    "evaluate_signal",
    "generate",
    "out_of_range_value",
    "rfc3339",
    "seeded_rng",
    "value_names",
]

TOPIC_ROOT = "gyeongbo/v1/readings"
_enc = msgspec.json.Encoder()
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Clock:
    """Maps scenario time to event time (``anchor_ms + t``) and wall time (``wall_start +
    t/speed``)."""

    anchor_ms: int
    wall_start: float
    speed: float = 1.0

    def __post_init__(self) -> None:
        if not self.speed > 0:
            raise ValueError(f"speed must be positive, not {self.speed}")

    @classmethod
    def ending_now(cls, duration_s: float, speed: float, wall_start: float) -> Clock:
        """The default: the last reading is stamped with the wall time it is sent at."""
        lag_s = duration_s * (1.0 - 1.0 / speed)
        anchor_ms = math.floor(wall_start - lag_s) * 1000
        return cls(anchor_ms=anchor_ms, wall_start=wall_start, speed=speed)

    @classmethod
    def starting_now(cls, speed: float, wall_start: float) -> Clock:
        """Scenario start = now; with speed > 1 later readings are stamped in the future."""
        return cls(anchor_ms=math.floor(wall_start) * 1000, wall_start=wall_start, speed=speed)

    def event_ms(self, t_s: float) -> int:
        return self.anchor_ms + round(t_s * 1000.0)

    def wall_due(self, t_s: float) -> float:
        return self.wall_start + t_s / self.speed

    def scenario_time(self, event_ms: int) -> float:
        return (event_ms - self.anchor_ms) / 1000.0


@dataclass(frozen=True)
class Generated:
    publications: list[Publication]
    #: Clean (pre-fault) series per (station, value): scenario times and values.
    series: dict[tuple[str, str], tuple[FloatArray, FloatArray]]

    @property
    def expected_rejections(self) -> int:
        return sum(1 for p in self.publications if p.expect_rejected)

    def payloads(self) -> list[bytes]:
        return [p.payload for p in self.publications]


def _keyframes(pts: Sequence[tuple[float, float]], t: FloatArray) -> FloatArray:
    xs = np.array([p[0] for p in pts], dtype=np.float64)
    ys = np.array([p[1] for p in pts], dtype=np.float64)
    return np.interp(t, xs, ys)


def evaluate_signal(
    sig: Signal,
    t: FloatArray,
    curves: dict[str, list[tuple[float, float]]],
    *,
    station_shift: float = 0.0,
    station_scale: float = 1.0,
    rng: np.random.Generator | None = None,
) -> FloatArray:
    """Values of a signal at scenario times ``t`` (noise only when ``rng`` is given)."""
    if sig.constant is not None:
        v = np.full(t.shape, sig.constant, dtype=np.float64)
    elif sig.points is not None:
        v = _keyframes(sig.points, t)
    else:
        assert sig.curve is not None
        shift = sig.shift + station_shift
        v = _keyframes(curves[sig.curve], t - shift) * (sig.scale * station_scale) + sig.offset
    for p in sig.pulses:
        dt = t - p.at
        rise = np.clip((dt + p.rise) / p.rise, 0.0, 1.0)  # 0 → 1 over [at - rise, at]
        decay = np.where(dt > 0, np.exp(-np.maximum(dt, 0.0) / p.decay), 1.0)
        v = v + p.peak * rise * decay
    lo = sig.min
    if rng is not None and sig.noise > 0:
        noise = rng.normal(0.0, sig.noise, size=t.shape)
        if lo is not None:
            # At its floor the quantity is absent (no rain): the reading is the floor. Noise
            # there, clipped below, would only ever add: ~0.4 σ per reading on average.
            noise = np.where(v <= lo, 0.0, noise)
        v = v + noise
    hi = sig.max
    if lo is not None or hi is not None:
        v = np.clip(v, lo if lo is not None else -np.inf, hi if hi is not None else np.inf)
    if sig.step is not None:
        v = np.round(v / sig.step) * sig.step
    return np.round(v, sig.round)


def _times(spec: StationSpec, interval_s: float, duration_s: float) -> FloatArray:
    end = duration_s if spec.end is None else min(spec.end, duration_s)
    n = max(0, math.ceil((end - spec.start) / interval_s - 1e-9))
    return spec.start + np.arange(n, dtype=np.float64) * interval_s


def _clean_number(x: float, decimals: int) -> float | int:
    # Whole-number signals (round: 0) go out as integers; -0.0 would encode as "-0.0".
    if decimals == 0:
        return int(x)
    return 0.0 if x == 0 else float(x)


def generate(
    sc: Scenario,
    reg: Registry,
    *,
    seed: int | None = None,
    anchor_ms: int,
    seq_base: int = 0,
    topic_root: str = TOPIC_ROOT,
    exercise: bool = True,
) -> Generated:
    """Every publication of the scenario, in publishing order (by scenario time, then station
    order). ``seq`` of the k-th reading of a station is ``seq_base + k + 1``."""
    seed = sc.seed if seed is None else seed
    pubs: list[tuple[float, int, Publication]] = []
    series: dict[tuple[str, str], tuple[FloatArray, FloatArray]] = {}
    order = 0
    faults_by_station: dict[str, list[tuple[int, Fault]]] = {}
    for i, f in enumerate(sc.faults):
        faults_by_station.setdefault(f.station, []).append((i, f))
    for spec in sc.stations:
        st = reg.stations[spec.station]
        interval = spec.interval if spec.interval is not None else st.interval_s
        t = _times(spec, interval, sc.duration_s)
        cols: dict[str, FloatArray] = {}
        for vname, sig in spec.values.items():
            cols[vname] = evaluate_signal(
                sig,
                t,
                sc.curves,
                station_shift=spec.shift,
                station_scale=spec.scale,
                rng=seeded_rng(seed, spec.station, vname),
            )
            series[(spec.station, vname)] = (t, cols[vname])
        readings = []
        for k in range(len(t)):
            readings.append(
                Reading(
                    t_s=float(t[k]),
                    ts_ms=anchor_ms + round(float(t[k]) * 1000.0),
                    seq=seq_base + k + 1,
                    values={
                        n: _clean_number(float(c[k]), spec.values[n].round) for n, c in cols.items()
                    },
                )
            )
        if spec.catalogue is not None:
            cat = spec.catalogue
            for r in readings:
                if r.t_s >= cat.at:
                    r.event = {
                        "magnitude": cat.magnitude,
                        "lat": cat.lat,
                        "lon": cat.lon,
                        "depth_km": cat.depth_km,
                    }
                    break
        kind = st.kind.value
        topic = f"{topic_root}/{kind}/{spec.station}"
        extra: list[Publication] = []
        for idx, fault in faults_by_station.get(spec.station, []):
            if fault.type == "malformed":
                extra += malformed_publications(
                    fault,
                    idx,
                    sc,
                    reg,
                    readings,
                    anchor_ms=anchor_ms,
                    seed=seed,
                    topic_root=topic_root,
                    exercise=exercise,
                )
            else:
                readings = apply_faults(fault, idx, readings, seed=seed)
        for r in readings:
            obj: dict[str, Any] = {
                "station": spec.station,
                "ts": rfc3339(r.ts_ms),
                "seq": r.seq,
                "values": r.values,
                "exercise": exercise,
            }
            if r.event is not None:
                obj["event"] = r.event
            pubs.append(
                (
                    r.t_s,
                    order,
                    Publication(
                        t_s=r.t_s,
                        topic=topic,
                        payload=_enc.encode(obj),
                        station=spec.station,
                        kind=kind,
                        gateway=st.gateway,
                        tag=r.tag,
                        expect_rejected=r.expect_rejected,
                        obj=obj,
                    ),
                )
            )
            order += 1
        for p in extra:
            pubs.append((p.t_s, order, p))
            order += 1
    pubs.sort(key=lambda x: (x[0], x[1]))
    return Generated(publications=[p for _, _, p in pubs], series=series)


#: Malformed variants whose fault is the topic (it names another station than the payload):
#: a batch topic names no station, so a drill gateway cannot send them.
TOPIC_VARIANTS = frozenset({"malformed:station_mismatch"})


def as_gateway(
    pubs: Iterable[Publication], gateway: str, *, topic_root: str = TOPIC_ROOT
) -> tuple[list[Publication], list[Publication]]:
    """The publications as ``gateway`` (the drill gateway) sends them, each on its batch topic
    ``{root}/{kind}/_batch/{gateway}`` (the only topics the ACL gives it); and apart, those it
    cannot send (:data:`TOPIC_VARIANTS`).

    >>> p = Publication(t_s=0, topic="r/water_level/1018683", payload=b"{}", station="1018683",
    ...                 kind="water_level", gateway="hrfco-seoul")
    >>> [q.topic for q in as_gateway([p], "drill-lab", topic_root="r")[0]]
    ['r/water_level/_batch/drill-lab']
    """
    sent: list[Publication] = []
    skipped: list[Publication] = []
    for p in pubs:
        if p.tag in TOPIC_VARIANTS:
            skipped.append(p)
            continue
        topic = f"{topic_root}/{p.kind}/_batch/{gateway}"
        sent.append(dataclasses.replace(p, topic=topic, gateway=gateway))
    return sent, skipped


def batch_publications(
    pubs: Iterable[Publication],
    *,
    max_readings: int = 500,
    topic_root: str = TOPIC_ROOT,
    gateway: str | None = None,
) -> list[Publication]:
    """Pack readings due at the same scenario time, from the same gateway and of the same kind,
    into gateway batches (a JSON array on ``{root}/{kind}/_batch``, docs/design.md §11.1); with
    ``gateway`` (the drill gateway, which publishes every station), per kind on
    ``{root}/{kind}/_batch/{gateway}``.

    Malformed payloads, duplicates and readings that must be rejected stay single messages,
    so a test can tell exactly what the bridge did with each.
    """
    out: list[Publication] = []
    pending: dict[tuple[str, str], list[Publication]] = {}
    current_t: float | None = None

    def flush() -> None:
        for (gw, kind), group in pending.items():
            for i in range(0, len(group), max_readings):
                chunk = group[i : i + max_readings]
                if len(chunk) == 1:
                    out.append(chunk[0])
                    continue
                objs = [p.obj for p in chunk]
                suffix = f"/{gateway}" if gateway is not None else ""
                out.append(
                    Publication(
                        t_s=chunk[0].t_s,
                        topic=f"{topic_root}/{kind}/_batch{suffix}",
                        payload=_enc.encode(objs),
                        station="_batch",
                        kind=kind,
                        gateway=gw,
                        tag="batch",
                        readings=len(chunk),
                        obj=objs,
                    )
                )
        pending.clear()

    for p in pubs:
        if current_t is None or p.t_s != current_t:
            flush()
            current_t = p.t_s
        batchable = p.obj is not None and not p.expect_rejected and p.tag != "duplicate"
        if batchable:
            pending.setdefault((gateway or p.gateway, p.kind), []).append(p)
        else:
            flush()
            out.append(p)
    flush()
    return out


def crossing_time(
    t: FloatArray, v: FloatArray, threshold: float, direction: str = "up"
) -> float | None:
    """Scenario time of the first reading at/over ``threshold`` (``up``), or — for ``down`` —
    the first reading below it after having been at/over it.

    >>> crossing_time(np.array([0., 10, 20, 30]), np.array([1., 2, 3, 1]), 2.5)
    20.0
    >>> crossing_time(np.array([0., 10, 20, 30]), np.array([1., 2, 3, 1]), 2.5, "down")
    30.0
    """
    above = v >= threshold
    if direction == "up":
        idx = np.flatnonzero(above)
        return float(t[idx[0]]) if idx.size else None
    first = np.flatnonzero(above)
    if not first.size:
        return None
    below = np.flatnonzero(~above[first[-1] :])
    return float(t[first[-1] + below[0]]) if below.size else None
