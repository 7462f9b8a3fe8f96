"""Sensor faults layered on a station's readings: what broken gateways really send.

Each fault acts over ``[from, until)`` of scenario time on one station (see
:class:`~simulators.scenario.Fault`). Faults that change readings (``stuck``, ``dropout``,
``spikes``, ``clock_skew``, ``duplicates``) transform the station's list of
:class:`~simulators.generator.Reading`; ``malformed`` adds payloads that no valid reading
looks like, one variant each:

=================  ==========================================================================
``not_json``        truncated JSON
``empty``           a zero-byte payload
``missing_ts``      no ``ts``
``bad_ts``          a ``ts`` that is not a time
``nan_value``       a ``NaN`` literal as a value (not JSON; Python's parser accepts it)
``string_value``    a number sent as a string
``unknown_value``   a value name (and unit) the kind does not have
``out_of_range``    a physically impossible value (ten times the range's upper bound)
``unknown_station`` a station id the registry does not know
``station_mismatch`` the payload names another station than the topic
=================  ==========================================================================

Random choices (which readings spike or repeat) come from ``(seed, station, fault index)``.

>>> from simulators.records import Reading
>>> from simulators.scenario import Fault
>>> rs = [Reading(t_s=60.0 * k, ts_ms=60_000 * k, seq=k + 1, values={"level_m": 1.0 + k})
...       for k in range(5)]
>>> [r.values["level_m"] for r in apply_faults(
...     Fault(type="stuck", station="x", **{"from": 120}), 0, rs, seed=0)]
[1.0, 2.0, 3.0, 3.0, 3.0]
>>> [r.seq for r in apply_faults(Fault(type="duplicates", station="x", nth=2), 0, rs, seed=0)]
[1, 2, 2, 3, 4, 4, 5]
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec

from gyeongbo.registry import Registry
from simulators.records import (
    Publication,
    Reading,
    out_of_range_value,
    rfc3339,
    seeded_rng,
    value_names,
)
from simulators.scenario import MALFORMED_VARIANTS, Fault, Scenario

__all__ = ["apply_faults", "malformed_payload", "malformed_publications"]

_enc = msgspec.json.Encoder()


def _in_window(f: Fault, t_s: float) -> bool:
    return t_s >= f.from_ and (f.until is None or t_s < f.until)


def apply_faults(f: Fault, index: int, readings: list[Reading], *, seed: int) -> list[Reading]:
    """The station's readings with fault ``f`` (number ``index`` in the scenario) applied."""
    rng = seeded_rng(seed, f.station, "fault", index)
    out: list[Reading] = []
    if f.type == "dropout":
        return [r for r in readings if not _in_window(f, r.t_s)]
    if f.type == "stuck":
        held: dict[str, float] | None = None
        for r in readings:
            if _in_window(f, r.t_s):
                if held is None:
                    held = dict(r.values)
                names = [f.value_name] if f.value_name else list(held)
                vals = dict(r.values)
                for n in names:
                    if n in held:
                        vals[n] = held[n]
                out.append(dataclasses.replace(r, values=vals, tag="stuck"))
            else:
                out.append(r)
        return out
    if f.type == "spikes":
        window = [i for i, r in enumerate(readings) if _in_window(f, r.t_s)]
        hit: set[int] = set()
        for t in f.times:
            for i in window:
                if readings[i].t_s >= t:
                    hit.add(i)
                    break
        if f.probability is not None:
            draws = rng.random(len(window))
            hit.update(i for i, d in zip(window, draws, strict=True) if d < f.probability)
        for i, r in enumerate(readings):
            if i in hit:
                name = f.value_name or next(iter(r.values))
                vals = dict(r.values)
                new = f.to if f.to is not None else vals[name] + (f.delta or 0.0)
                vals[name] = round(float(new), 6)
                out.append(dataclasses.replace(r, values=vals, tag="spike"))
            else:
                out.append(r)
        return out
    if f.type == "clock_skew":
        assert f.skew is not None
        skew_ms = round(f.skew * 1000.0)
        for r in readings:
            if _in_window(f, r.t_s):
                out.append(
                    dataclasses.replace(
                        r, ts_ms=r.ts_ms + skew_ms, tag="skewed", expect_rejected=f.expect_rejected
                    )
                )
            else:
                out.append(r)
        return out
    if f.type == "duplicates":
        n_in = 0
        window_flags = [_in_window(f, r.t_s) for r in readings]
        draws = rng.random(sum(window_flags))
        for r, inside in zip(readings, window_flags, strict=True):
            out.append(r)
            if not inside:
                continue
            dup = (f.nth is not None and (n_in + 1) % f.nth == 0) or (
                f.probability is not None and draws[n_in] < f.probability
            )
            n_in += 1
            if dup:
                out.append(dataclasses.replace(r, values=dict(r.values), tag="duplicate"))
        return out
    raise ValueError(f"fault type {f.type!r} is not a reading transform")


def malformed_payload(
    variant: str,
    *,
    station: str,
    kind: str,
    ts_ms: int,
    values: dict[str, float],
    other_station: str,
    exercise: bool = True,
) -> tuple[str, bytes]:
    """``(topic station, payload)`` of one malformed variant."""
    ts = rfc3339(ts_ms)
    name = next(iter(values), value_names(kind)[0])
    value = values.get(name, 1.0)
    good: dict[str, Any] = {"station": station, "ts": ts, "values": {name: value}}
    good["exercise"] = exercise
    if variant == "not_json":
        return station, _enc.encode(good)[:-7]
    if variant == "empty":
        return station, b""
    if variant == "missing_ts":
        return station, _enc.encode({k: v for k, v in good.items() if k != "ts"})
    if variant == "bad_ts":
        return station, _enc.encode({**good, "ts": "yesterday 25:61"})
    if variant == "nan_value":
        text = _enc.encode({**good, "values": {name: 0.0}}).decode()
        return station, text.replace(f'"{name}":0.0', f'"{name}":NaN').encode()
    if variant == "string_value":
        return station, _enc.encode({**good, "values": {name: str(value)}})
    if variant == "unknown_value":
        return station, _enc.encode({**good, "values": {"depth_ft": round(value * 3.28084, 2)}})
    if variant == "out_of_range":
        return station, _enc.encode({**good, "values": {name: out_of_range_value(name)}})
    if variant == "unknown_station":
        ghost = "ZZ-UNKNOWN-0000"
        return ghost, _enc.encode({**good, "station": ghost})
    if variant == "station_mismatch":
        return station, _enc.encode({**good, "station": other_station})
    raise ValueError(f"unknown malformed variant {variant!r}")


def malformed_publications(
    f: Fault,
    index: int,
    sc: Scenario,
    reg: Registry,
    readings: list[Reading],
    *,
    anchor_ms: int,
    seed: int,
    topic_root: str,
    exercise: bool = True,
) -> list[Publication]:
    """The bad payloads of a ``malformed`` fault, cycling through its variants."""
    del seed, index  # deterministic without draws: times and variants are given
    st = reg.stations[f.station]
    kind = st.kind.value
    until = f.until if f.until is not None else sc.duration_s
    if f.times:
        times = [t for t in f.times if f.from_ <= t < until]
    else:
        assert f.every is not None
        times = []
        t = f.from_
        while t < until:
            times.append(t)
            t += f.every
    variants: list[str] = list(f.variants) or list(MALFORMED_VARIANTS)
    same_kind = sorted(s.id for s in reg.stations.values() if s.kind is st.kind and s.id != st.id)
    other = same_kind[0] if same_kind else f"{f.station}-X"
    out: list[Publication] = []
    for k, t in enumerate(times):
        ref = [r for r in readings if r.t_s <= t]
        values = ref[-1].values if ref else (readings[0].values if readings else {})
        variant = variants[k % len(variants)]
        topic_station, payload = malformed_payload(
            variant,
            station=f.station,
            kind=kind,
            ts_ms=anchor_ms + round(t * 1000.0),
            values=values,
            other_station=other,
            exercise=exercise,
        )
        out.append(
            Publication(
                t_s=t,
                topic=f"{topic_root}/{kind}/{topic_station}",
                payload=payload,
                station=f.station,
                kind=kind,
                gateway=st.gateway,
                tag=f"malformed:{variant}",
                expect_rejected=f.expect_rejected,
                readings=0,
            )
        )
    return out
