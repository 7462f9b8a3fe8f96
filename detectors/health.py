"""Sensor health per station channel: out-of-range, impossible spike/step, stuck, flat-line.

A faulty channel is *not trusted*: its readings are held out of every public stage until it
recovers (docs/design.md §4, §6). Deadman (silence) is checked by the engine against each
station's ``interval_s`` (:func:`deadman`). All tests are per reading, vectorized over rows:

* **out of range** — ``x`` outside the physical range of its value name
  (:data:`gyeongbo.vocab.PHYSICAL_RANGE`: records, not typical values).
* **spike / step** — ``|x - x_trusted| > rate · max(Δt, interval)``, a change faster than the
  physics allows (rates in :class:`HealthLimits`; water level 3 m/h is above the fastest
  rises of Korean gauged rivers, e.g. ~1 m/h at Hangang Bridge in 1990 and 2020). A single
  such reading is a *spike* (dropped, the channel stays trusted); ``step_n`` consecutive ones
  that agree with each other are a *step* fault (the baseline moves to the new value, the
  channel is untrusted until it recovers).
* **stuck** — the exact same value ``stuck_n`` times in a row although the channel was moving
  (EW mean of ``|Δx|/Δt`` ≥ ``active`` per hour) before it froze: a gauge that stops during a
  real rise is flagged, not trusted.
* **flat-line** — no change beyond ``flat_eps`` for ``flat_s`` seconds of event time.
* **recovery** — persistent faults clear after ``recover_n`` consecutive healthy readings.

Fault bits (:data:`SPIKE`, :data:`STEP`, :data:`STUCK`, :data:`FLAT`, :data:`RANGE`) live in
``faults``; the channel is trusted iff ``faults == 0``. State: 40 bytes per channel.

>>> st = np.zeros(1, HEALTH_DTYPE)
>>> lim = limits_for("level_m")
>>> xs = [5.0, 5.1, 5.2, 5.3, 5.3, 5.3, 5.3, 5.3, 5.3]
>>> [int(update(st, np.array([i * 600_000]), np.array([x]), *lim, np.array([600.0]))[0])
...  for i, x in enumerate(xs)]
[1, 1, 1, 1, 1, 1, 1, 1, 0]
>>> fault_names(int(st["faults"][0]))
['stuck']
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gyeongbo.vocab import PHYSICAL_RANGE

__all__ = [
    "FAULT_NAMES",
    "FLAT",
    "HEALTH_DTYPE",
    "RANGE",
    "SPIKE",
    "STEP",
    "STUCK",
    "HealthLimits",
    "fault_names",
    "limits_for",
    "update",
]

FloatArray = npt.NDArray[np.float64]

SPIKE, STEP, STUCK, FLAT, RANGE = 1, 2, 4, 8, 16
FAULT_NAMES = {
    SPIKE: "spike",
    STEP: "step",
    STUCK: "stuck",
    FLAT: "flat_line",
    RANGE: "out_of_range",
}
PERSISTENT = STEP | STUCK | FLAT | RANGE

HEALTH_DTYPE = np.dtype(
    [
        ("t_last", np.int64),  # event time of the last trusted-baseline value (ms)
        ("flat_since", np.int64),  # event time the value last moved beyond flat_eps (ms)
        ("last", np.float32),  # baseline value (last plausible reading)
        ("cand", np.float32),  # candidate new level during a step
        ("flat_ref", np.float32),
        ("act", np.float32),  # EW mean of |Δx| per hour while moving
        ("same_n", np.uint16),
        ("bad_n", np.uint8),
        ("good_n", np.uint8),
        ("faults", np.uint8),
        ("seen", np.uint8),
        ("_pad", np.uint8, (2,)),
    ]
)


@dataclass(frozen=True)
class HealthLimits:
    """Physical limits of one value name."""

    lo: float
    hi: float
    rate_per_h: float  # fastest physically possible change per hour
    active_per_h: float  # "was moving" for the stuck test
    flat_eps: float
    flat_s: float  # inf: never flat-line (e.g. rain is legitimately 0 for days)


#: Limits per value name. Rates: water level 3 m/h; tilt 0.01 rad/h; crack 10 mm/h. No rate
#: test where a real signal may jump: PM and O₃ at a point change by an order of magnitude
#: within minutes in a plume; vibration and PGA are peak values; rainfall per interval is not
#: a level (and 0 for days is normal: no stuck at 0, no flat-line).
LIMITS: dict[str, HealthLimits] = {
    "level_m": HealthLimits(*PHYSICAL_RANGE["level_m"], 3.0, 0.05, 0.0005, 24 * 3600.0),
    "rain_mm": HealthLimits(*PHYSICAL_RANGE["rain_mm"], np.inf, np.inf, 0.0, np.inf),
    "pm10_ugm3": HealthLimits(*PHYSICAL_RANGE["pm10_ugm3"], np.inf, 5.0, 0.05, 12 * 3600.0),
    "pm25_ugm3": HealthLimits(*PHYSICAL_RANGE["pm25_ugm3"], np.inf, 5.0, 0.05, 12 * 3600.0),
    "o3_ppm": HealthLimits(*PHYSICAL_RANGE["o3_ppm"], np.inf, 0.005, 1e-5, 12 * 3600.0),
    "tilt_rad": HealthLimits(*PHYSICAL_RANGE["tilt_rad"], 0.01, 1e-5, 0.0, 24 * 3600.0),
    "crack_mm": HealthLimits(*PHYSICAL_RANGE["crack_mm"], 10.0, 0.05, 0.0, 7 * 24 * 3600.0),
    "vibration_cms": HealthLimits(*PHYSICAL_RANGE["vibration_cms"], np.inf, np.inf, 0.0, 3600.0),
    "pga_g": HealthLimits(*PHYSICAL_RANGE["pga_g"], np.inf, np.inf, 0.0, 600.0),
}


def limits_for(name: str) -> tuple[FloatArray, ...]:
    """The limits of one value name as 1-element arrays, in :func:`update`'s order."""
    lim = LIMITS[name]
    return tuple(
        np.array([v], dtype=np.float64)
        for v in (lim.lo, lim.hi, lim.rate_per_h, lim.active_per_h, lim.flat_eps, lim.flat_s)
    )


def fault_names(bits: int) -> list[str]:
    return [name for bit, name in FAULT_NAMES.items() if bits & bit]


def update(
    st: npt.NDArray[np.void],
    ts: npt.NDArray[np.int64],
    x: FloatArray,
    lo: FloatArray,
    hi: FloatArray,
    rate_per_h: FloatArray,
    active_per_h: FloatArray,
    flat_eps: FloatArray,
    flat_s: FloatArray,
    interval_s: FloatArray,
    *,
    stuck_n: int = 6,
    step_n: int = 3,
    recover_n: int = 3,
) -> npt.NDArray[np.bool_]:
    """Update the records ``st`` in place with in-order readings; return *trusted* per row.

    Rows with NaN ``x`` leave the record unchanged and return False (nothing to trust).
    """
    ok = ~np.isnan(x)
    all_ok = bool(ok.all())  # the engine's case: rows are readings that carry the channel
    xf = x if all_ok else np.where(ok, x, 0.0)
    # Each field is read once into a contiguous array (strided field views are slow), and
    # the quantities of the rare branches (spike/step) are computed only when one occurs.
    seen = st["seen"] > 0
    faults = st["faults"]
    last = st["last"].astype(np.float64)
    act32 = st["act"]
    last_f32 = xf.astype(np.float32).astype(np.float64)
    dt_s = np.maximum((ts - st["t_last"]) / 1000.0, interval_s)
    bad_range = (xf < lo) | (xf > hi)
    if not all_ok:
        bad_range &= ok
    any_bad = bool(bad_range.any())
    allowed = rate_per_h * dt_s / 3600.0
    tol = allowed * (1 + 1e-6) + 1e-9
    dlast = np.abs(last_f32 - last)
    jump = (dlast > tol) & seen
    if not all_ok:
        jump &= ok
    if any_bad:
        jump &= ~bad_range
    any_jump = bool(jump.any())
    if any_jump:
        bad_n0 = st["bad_n"]
        consistent = np.abs(last_f32 - st["cand"].astype(np.float64)) <= tol
        bad_n = np.where(jump, np.where(consistent | (bad_n0 == 0), bad_n0 + 1, 1), 0)
        step = jump & (bad_n >= step_n)
        plausible = ~jump | step
        if any_bad:
            plausible &= ~bad_range
    elif any_bad:
        plausible = ~bad_range
    else:
        plausible = np.ones(len(x), dtype=bool)
    if not all_ok:
        plausible &= ok
    # The usual case, every reading plausible: no selection against the old baseline.
    all_pl = all_ok and not any_jump and not any_bad
    same = seen & (last_f32 == last)
    if not all_pl:
        same &= plausible
    same_n = st["same_n"].astype(np.int32)
    same_n += 1
    same_n *= same
    stuck = same & (same_n >= stuck_n - 1) & (act32 >= active_per_h)
    moving = seen & ~same
    if not all_pl:
        moving &= plausible
    if any_jump:
        moving &= ~step
    act_obs = dlast / (dt_s / 3600.0)
    act = 0.8 * act32 + 0.2 * act_obs
    if not moving.all():
        act = np.where(moving, act, act32)
    flat_ref0 = st["flat_ref"]
    moved = ~seen | (np.abs(last_f32 - flat_ref0) > flat_eps)
    if not all_pl:
        moved &= plausible
    flat_since = np.where(moved, ts, st["flat_since"])
    flat_ref = np.where(moved, last_f32, flat_ref0)
    flat = (ts - flat_since) / 1000.0 >= flat_s
    if not all_pl:
        flat &= plausible
    # Fault bits as uint8 (bool views are 0/1): the same values as the int64 expression.
    new = (stuck.view(np.uint8) << 2) | (flat.view(np.uint8) << 3)
    if any_bad:
        new |= bad_range.view(np.uint8) << 4
    healthy = ~stuck & ~flat
    if not all_pl:
        healthy &= plausible
    if any_jump:
        new |= step.view(np.uint8) << 1
        healthy &= ~step
    good_n = st["good_n"].astype(np.int32)
    good_n += 1
    np.minimum(good_n, 255, out=good_n)
    good_n *= healthy
    persistent = faults & PERSISTENT
    recovered = healthy & (good_n >= recover_n)
    if recovered.any():
        persistent = np.where(recovered, 0, persistent)
    persistent |= new
    faults_new = persistent | ((jump & ~step).view(np.uint8) * SPIKE) if any_jump else persistent
    if all_pl:
        st["last"] = last_f32
        st["t_last"] = ts
    else:
        st["last"] = np.where(plausible, last_f32, last)
        st["t_last"] = np.where(plausible, ts, st["t_last"])
    if any_jump:
        st["cand"] = np.where(jump, last_f32, st["cand"])
    if all_ok:
        if any_jump:
            st["bad_n"] = np.where(step, 0, bad_n)
        else:
            st["bad_n"] = 0
        st["same_n"] = np.minimum(same_n, 65535)
        st["flat_since"] = flat_since
        st["good_n"] = good_n
        st["faults"] = faults_new
    else:
        if any_jump:
            st["bad_n"] = np.where(ok, np.where(step, 0, bad_n), st["bad_n"])
        else:
            st["bad_n"] = np.where(ok, 0, st["bad_n"])
        st["same_n"] = np.where(ok, np.minimum(same_n, 65535), st["same_n"])
        st["flat_since"] = np.where(ok, flat_since, st["flat_since"])
        st["good_n"] = np.where(ok, good_n, st["good_n"])
        faults_new = np.where(ok, faults_new, faults)
        st["faults"] = faults_new
    st["act"] = act
    st["flat_ref"] = flat_ref
    st["seen"] = 1 if all_pl else np.where(plausible, 1, st["seen"])
    trusted: npt.NDArray[np.bool_] = ok & (faults_new == 0)
    return trusted
