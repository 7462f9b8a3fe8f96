"""A synthetic corpus of drifting, noisy multichannel sensors with labelled anomalies.

Deterministic from a seed (numpy's PCG64): the same seed gives the same values, times and
labels on every machine. Each *machine* has three channels sampled together, either every
second (``"1s"``, two days) or every ten minutes (``"10min"``, sixty days). The processes are
the same families at both rates, with their time scales in seconds, so a detector whose
baselines are time constants should treat them alike per unit of time; the 10-minute machines
also have a daily cycle (outdoor sensors).

Normal behaviour of a channel (none of it is labelled):

* a level and Gaussian noise ``σ`` (some channels quantised to a resolution of ``σ/4``);
* a slow wander shared by the machine's channels (load, ambient temperature), each channel
  with its own gain: an Ornstein-Uhlenbeck process with a time constant of 20 min to 4 h and
  a standard deviation of 0.5-3 σ;
* slow thermal drifts: about two a day, each a smooth (raised-cosine) move over 1-8 h of
  the channel's thermal offset to a new value drawn around 0 with a standard deviation of
  twice the channel's wander (bounded: the channel drifts within its usual range);
* on 10-minute machines, a daily cycle of 0-4 σ.

Labelled anomalies, each on one channel, an eighth of the recording apart or more:

* ``level_shift``: a step of 5-10 times the channel's standard deviation in normal
  operation (noise, wander, thermal offset and daily cycle), which stays (the channel has a
  new level);
* ``spike``: one reading (three at 1 s) off by 8-20 such standard deviations;
* ``stuck``: the channel repeats its last value for 20 min to 3 h (1 s) or 6-24 h (10 min);
* ``drift``: a ramp of 6-12 such standard deviations over 5-30 min that stays, much faster
  than the normal drifts.

Each label is ``(machine, channel, kind, start_s, end_s)`` (seconds from the recording's
start; ``end_s`` is when the faulty behaviour stops: the step time for a level shift, the last
faulty reading for the others).

>>> c = generate(seed=7, machines_1s=1, machines_10min=1, days_1s=0.25, days_10min=10)
>>> [g.rate for g in c], [g.values.shape for g in c]
(['1s', '10min'], [(21600, 3), (1440, 3)])
>>> c2 = generate(seed=7, machines_1s=1, machines_10min=1, days_1s=0.25, days_10min=10)
>>> all((a.values == b.values).all() and a.labels == b.labels for a, b in zip(c, c2))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

__all__ = ["KINDS", "Label", "Machine", "generate"]

KINDS = ("level_shift", "spike", "stuck", "drift")
DAY_S = 86_400.0
EPOCH0 = 1_700_006_400  # a UTC midnight: times are seconds since the epoch from here


@dataclass(frozen=True)
class Label:
    """One labelled anomaly: channel ``channel`` of machine ``machine`` from ``start_s`` to
    ``end_s`` (seconds from the recording's start)."""

    machine: int
    channel: int
    kind: str
    start_s: float
    end_s: float


@dataclass
class Machine:
    """One machine: its sampling (``"1s"`` or ``"10min"``), reading times (s since the epoch),
    values (readings × 3 channels) and labels."""

    rate: str
    interval_s: float
    ts: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    labels: list[Label] = field(default_factory=list)


def _ou(
    rng: np.random.Generator, n: int, dt: float, tau: float, sd: float
) -> npt.NDArray[np.float64]:
    """An Ornstein-Uhlenbeck path sampled every ``dt`` s (stationary, standard deviation
    ``sd``, time constant ``tau`` s)."""
    a = np.exp(-dt / tau)
    eps = rng.normal(0.0, sd * np.sqrt(1.0 - a * a), n)
    eps[0] = rng.normal(0.0, sd)
    # x_k = a x_{k-1} + eps_k, as a linear filter (vectorized through scipy's lfilter)
    from scipy.signal import lfilter

    return np.asarray(lfilter([1.0], [1.0, -a], eps), dtype=np.float64)


def _ramp(t: npt.NDArray[np.float64], t0: float, dur: float) -> npt.NDArray[np.float64]:
    """0 before ``t0``, 1 after ``t0 + dur``, a raised cosine in between."""
    u = np.clip((t - t0) / dur, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(np.pi * u)


def _machine(rng: np.random.Generator, idx: int, rate: str, days: float) -> Machine:
    dt = 1.0 if rate == "1s" else 600.0
    n = round(days * DAY_S / dt)
    t = np.arange(n) * dt
    ch = 3
    level = rng.uniform(-50.0, 200.0, ch)
    sigma = 10.0 ** rng.uniform(-2.0, 0.5, ch)
    tau = rng.uniform(1200.0, 4 * 3600.0)
    shared = _ou(rng, n, dt, tau, 1.0)
    wander_sd = rng.uniform(0.5, 3.0, ch) * sigma
    x = level + shared[:, None] * wander_sd + rng.normal(0.0, 1.0, (n, ch)) * sigma
    # slow thermal drifts: about one per 12 h, each a smooth move of the channel's thermal
    # offset, over 1-8 h, to a new value drawn around 0 (bounded: sd 2 wanders)
    offset = np.zeros(ch)
    for t0 in np.sort(rng.uniform(0.0, t[-1], rng.poisson(days * 2.0) + 1)):
        target = rng.normal(0.0, 2.0, ch) * wander_sd
        x += _ramp(t, t0, rng.uniform(3600.0, 8 * 3600.0))[:, None] * (target - offset)
        offset = target
    if rate == "10min":
        phase = rng.uniform(0.0, 2 * np.pi, ch)
        daily = rng.uniform(0.0, 4.0, ch) * sigma
        x += daily * np.sin(2 * np.pi * t[:, None] / DAY_S + phase)
    else:
        daily = np.zeros(ch)
    quantised = rng.random(ch) < 0.3
    # the channel's variability in normal operation: noise, wander, thermal offset, daily cycle
    recent_sd = np.sqrt(sigma**2 + 5.0 * wander_sd**2 + daily**2 / 2.0)
    labels: list[Label] = []
    # anomalies: an eighth of the recording apart or more (6 h at 1 s, 7.5 days at 10 min),
    # none in the first 12 h (the detector's warm-up)
    gap = days * DAY_S / 8.0
    start = 12 * 3600.0
    cur = start + rng.uniform(0.0, gap)
    while cur < t[-1] - gap:
        kind = KINDS[int(rng.integers(len(KINDS)))]
        c = int(rng.integers(ch))
        i0 = int(cur // dt)
        sign = rng.choice([-1.0, 1.0])
        if kind == "level_shift":
            x[i0:, c] += sign * rng.uniform(5.0, 10.0) * recent_sd[c]
            end = cur
        elif kind == "spike":
            k = 3 if rate == "1s" else 1
            x[i0 : i0 + k, c] += sign * rng.uniform(8.0, 20.0) * recent_sd[c]
            end = t[i0 + k - 1]
        elif kind == "stuck":
            dur = rng.uniform(1200.0, 3 * 3600.0) if rate == "1s" else rng.uniform(6, 24) * 3600
            i1 = min(n, i0 + int(dur // dt))
            x[i0:i1, c] = x[i0 - 1, c]
            end = t[i1 - 1]
        else:  # drift
            dur = rng.uniform(300.0, 1800.0) if rate == "1s" else rng.uniform(1800.0, 3 * 3600.0)
            x[:, c] += sign * rng.uniform(6.0, 12.0) * recent_sd[c] * _ramp(t, cur, dur)
            end = cur + dur
        labels.append(Label(idx, c, kind, float(t[i0]), float(end)))
        cur = end + gap + rng.uniform(0.0, gap)
    res = sigma / 4.0
    for c in np.flatnonzero(quantised):
        x[:, c] = np.round(x[:, c] / res[c]) * res[c]
    # a stuck value stays exactly the same after quantisation
    for lab in labels:
        if lab.kind == "stuck":
            i0, i1 = int(lab.start_s // dt), int(lab.end_s // dt) + 1
            x[i0:i1, lab.channel] = x[i0 - 1, lab.channel]
    return Machine(rate, dt, EPOCH0 + t, x, labels)


def generate(
    seed: int = 1,
    *,
    machines_1s: int = 8,
    machines_10min: int = 8,
    days_1s: float = 2.0,
    days_10min: float = 60.0,
) -> list[Machine]:
    """The corpus for ``seed``: ``machines_1s`` machines read every second for ``days_1s``
    days, then ``machines_10min`` read every 10 minutes for ``days_10min`` days."""
    rng = np.random.default_rng(seed)
    out = [_machine(rng, i, "1s", days_1s) for i in range(machines_1s)]
    out += [_machine(rng, machines_1s + i, "10min", days_10min) for i in range(machines_10min)]
    return out
