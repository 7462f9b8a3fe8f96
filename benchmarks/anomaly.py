"""The operators' anomaly alarm, judged on NAB and on a synthetic drifting-sensor corpus.

One parameter set (``detectors.anomaly.AnomalyParams`` defaults, or ``--param name=value``)
for both corpora. For every channel the detector's alarm (the record's ``level``: raised at
a score ≥ ``fire``, cleared once the channel has settled) is followed reading by reading, and
the benchmark reports per corpus:

* ``alarm_time_normal``: the fraction of normal readings during which an alarm stands
  (time-weighted for regular sampling); normal = outside every labelled window and its
  settling allowance, and on NAB after each file's probation (its first 15 %);
* ``caught``: the share of labelled anomalies during which the alarm is *raised* (an alarm
  already standing when the anomaly begins does not count);
* ``median_delay_s``: the median time from the anomaly's start to that raise.

On NAB also the published scores (``standard``, ``reward_low_FP_rate``, ``reward_low_FN_rate``;
``detectors.nab_score``, one threshold per profile swept over the corpus). An anomaly is NAB's
window (caught: a raise inside the window; delay from the labelled point, so a raise early in
the window has a negative delay). On the synthetic corpus (``benchmarks/anomaly_corpus.py``)
an anomaly is caught by a raise between its start and one hour (or six readings) after its
last faulty reading, and normal time excludes its start to two hours (or twelve readings)
after that.

Held out: the parameters were chosen on NAB's even-numbered files of each group (sorted by
name) and on the synthetic corpus of seed 1; the figures under ``held_out`` are NAB's
odd-numbered files and the synthetic corpus of seed 2, which were looked at only to report.

``--jitter N`` also scores NAB (standard profile, all files) with N parameter sets near the
given one: each time constant and the settling and adoption lines (:data:`JITTERED`) scaled by
its own factor drawn uniformly from [0.95, 1.05] (a fixed seed, the same draws every run).
The figure moves by about a point between such neighbours, because an alarm raised or not
near the line moves the refractory and everything after it; under ``nab.jitter`` its mean,
standard deviation and range say whether a change moved the detector or only the draw.

The last line printed is one JSON object; progress goes to stderr. NAB is not shipped with
Gyeongbo (see ``benchmarks/nab.py``): without ``--nab`` (or ``GYEONGBO_NAB``) only the
synthetic corpus is run.

Usage::

    python benchmarks/anomaly.py [--nab PATH] [--seed 1 --held-out-seed 2] [--param k=v]
                                 [--only nab|synthetic] [--jitter N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.anomaly_corpus import Machine, generate
from benchmarks.nab import load_corpus, nab_problem
from detectors.anomaly import ANOMALY_DTYPE, AnomalyParams, new_profiles, update
from detectors.nab_score import PROFILES, best_threshold, normalised, sweep_scores

F64 = npt.NDArray[np.float64]
HOUR = 3600.0
#: The parameters ``--jitter`` scales (time constants, settling and adoption lines).
JITTERED = (
    "tau_level",
    "tau_fast",
    "tau_fast_scale",
    "tau_short",
    "lik_window",
    "refractory",
    "tau_settle",
    "settle",
    "rebase",
)


def run_channels(
    values: F64, ts: F64, params: AnomalyParams, *, label: str = ""
) -> tuple[F64, npt.NDArray[np.uint8]]:
    """Scores and alarm levels of the channels in the columns of ``values`` (NaN: no reading),
    fed in lock-step, one vectorized update per row."""
    steps, k = values.shape
    st = np.zeros(k, ANOMALY_DTYPE)
    tod = new_profiles(k)
    score = np.full((steps, k), np.nan)
    level = np.zeros((steps, k), np.uint8)
    t0 = time.monotonic()
    for i in range(steps):
        score[i] = update(st, values[i], params, ts=ts[i], tod=tod)[0]
        level[i] = st["level"]
        if i and i % 20000 == 0:
            print(f"  {label} step {i}/{steps} ({time.monotonic() - t0:.1f} s)", file=sys.stderr)
    return score, level


def _raises(level: npt.NDArray[np.uint8]) -> npt.NDArray[np.intp]:
    lv = level.astype(np.int8)
    return np.flatnonzero(np.diff(np.r_[0, lv]) > 0)


@dataclasses.dataclass
class Tally:
    """Counts behind the reported fractions (added up over channels)."""

    normal: float = 0.0
    alarmed: float = 0.0
    anomalies: int = 0
    caught: int = 0
    delays: list[float] = dataclasses.field(default_factory=list)
    by_kind: dict[str, list[int]] = dataclasses.field(default_factory=dict)

    def add(
        self,
        level: npt.NDArray[np.uint8],
        normal: npt.NDArray[np.bool_],
        windows: Sequence[tuple[int, int, float, str]],
        ts: F64,
    ) -> None:
        """One channel: its alarm per reading, its normal readings, its anomalies as
        (first index, last index for a raise, start time, kind)."""
        self.normal += float(normal.sum())
        self.alarmed += float((normal & (level > 0)).sum())
        up = _raises(level)
        for a, b, t_start, kind in windows:
            hit = up[(up >= a) & (up <= b)]
            got = len(hit) > 0
            self.anomalies += 1
            self.caught += got
            tally = self.by_kind.setdefault(kind, [0, 0])
            tally[0] += got
            tally[1] += 1
            if got:
                self.delays.append(float(ts[hit[0]] - t_start))

    def summary(self) -> dict[str, Any]:
        return {
            "alarm_time_normal": round(self.alarmed / max(self.normal, 1.0), 4),
            "caught": round(self.caught / max(self.anomalies, 1), 4),
            "anomalies": self.anomalies,
            "median_delay_s": round(float(np.median(self.delays)), 1) if self.delays else None,
            "caught_by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(self.by_kind.items())},
        }


def synthetic(machines: list[Machine], params: AnomalyParams) -> dict[str, Any]:
    """Alarm time, catches and delays on a synthetic corpus, per sampling rate and in all."""
    out: dict[str, Any] = {}
    total = Tally()
    for rate in ("1s", "10min"):
        group = [m for m in machines if m.rate == rate]
        if not group:
            continue
        vals = np.concatenate([m.values for m in group], axis=1)
        ts = np.repeat(group[0].ts[:, None], vals.shape[1], axis=1)
        _, level = run_channels(vals, ts, params, label=rate)
        dt = group[0].interval_s
        t_rel = group[0].ts - group[0].ts[0]
        tally = Tally()
        for j, m in enumerate(group):
            for c in range(m.values.shape[1]):
                normal = np.ones(len(t_rel), bool)
                wins = []
                for lab in m.labels:
                    if lab.channel != c:
                        continue
                    a = int(np.searchsorted(t_rel, lab.start_s))
                    b = int(np.searchsorted(t_rel, lab.end_s + max(HOUR, 6 * dt), side="right"))
                    e = int(np.searchsorted(t_rel, lab.end_s + max(2 * HOUR, 12 * dt), "right"))
                    normal[a:e] = False
                    wins.append((a, b - 1, float(group[0].ts[a]), lab.kind))
                col = level[:, j * 3 + c]
                tally.add(col, normal, wins, group[0].ts)
                total.add(col, normal, wins, group[0].ts)
        out[rate] = tally.summary()
    out["all"] = total.summary()
    return out


def _nab_matrix(values: list[F64], stamps: list[npt.NDArray[np.datetime64]]) -> tuple[F64, F64]:
    """NAB's series as columns (NaN after a series ends) and their times (s)."""
    steps = max(len(v) for v in values)
    mat = np.full((steps, len(values)), np.nan)
    tsm = np.zeros((steps, len(values)))
    for j, (v, s) in enumerate(zip(values, stamps, strict=True)):
        mat[: len(v), j] = v
        tsm[: len(v), j] = s.astype("datetime64[s]").astype(np.int64)
    return mat, tsm


def jitter(root: Path, params: AnomalyParams, runs: int) -> dict[str, Any]:
    """NAB's standard score for ``runs`` parameter sets near ``params`` (see ``--jitter``)."""
    names, stamps, values, windows = load_corpus(root)
    mat, tsm = _nab_matrix(values, stamps)
    files = [
        sweep_scores(
            ts, [(np.datetime64(a[:19], "s"), np.datetime64(b[:19], "s")) for a, b in windows[nm]]
        )
        for nm, ts in zip(names, stamps, strict=True)
    ]
    n_windows = sum(f.n_windows for f in files)
    prof = PROFILES["standard"]
    rng = np.random.default_rng(0)
    got = []
    for k in range(runs):
        near = dataclasses.replace(
            params,
            **{f: getattr(params, f) * float(rng.uniform(0.95, 1.05)) for f in JITTERED},
        )
        score, _ = run_channels(mat, tsm, near, label=f"NAB jitter {k + 1}/{runs}")
        scores = [np.nan_to_num(score[: len(v), j], nan=0.0) for j, v in enumerate(values)]
        got.append(normalised(best_threshold(files, scores, prof)[1], prof, n_windows))
    a = np.array(got)
    return {
        "runs": runs,
        "standard_mean": round(float(a.mean()), 2),
        "standard_sd": round(float(a.std()), 2),
        "standard_min": round(float(a.min()), 2),
        "standard_max": round(float(a.max()), 2),
    }


def nab(root: Path, params: AnomalyParams) -> dict[str, Any]:
    """NAB scores, alarm time on the normal stretches, catches and delays; for the whole
    corpus and for its tuning and held-out halves."""
    names, stamps, values, windows = load_corpus(root)
    labels: dict[str, list[str]] = json.loads(
        (root / "labels" / "combined_labels.json").read_text()
    )
    mat, tsm = _nab_matrix(values, stamps)
    score, level = run_channels(mat, tsm, params, label="NAB")
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        groups.setdefault(name.split("/")[0], []).append(j)
    half = {
        j: ("tune" if k % 2 == 0 else "held_out") for g in groups.values() for k, j in enumerate(g)
    }
    out: dict[str, Any] = {}
    for part in ("all", "tune", "held_out"):
        sel = [j for j in range(len(names)) if part == "all" or half[j] == part]
        files, scores = [], []
        tally = Tally()
        for j in sel:
            n = len(values[j])
            ts = stamps[j]
            wins = [
                (np.datetime64(a[:19], "s"), np.datetime64(b[:19], "s"))
                for a, b in windows[names[j]]
            ]
            f = sweep_scores(ts, wins)
            files.append(f)
            scores.append(np.nan_to_num(score[:n, j], nan=0.0))
            tsec = ts.astype(np.int64).astype(np.float64)
            spans = []
            points = np.array([lab[:19] for lab in labels[names[j]]], dtype="datetime64[s]")
            for a, b in wins:
                ia = int(np.searchsorted(ts, a))
                ib = int(np.searchsorted(ts, b, side="right")) - 1
                if ib < ia or not f.scored[ib]:
                    continue
                inside = points[(points >= a) & (points <= b)]  # the labelled point(s)
                ref = inside[0] if len(inside) else a
                spans.append((ia, ib, float(ref.astype(np.int64)), "nab"))
            tally.add(level[:n, j], f.scored & (f.window < 0), spans, tsec)
        res: dict[str, Any] = {}
        n_windows = sum(f.n_windows for f in files)
        for pname, prof in PROFILES.items():
            _, raw = best_threshold(files, scores, prof)
            res[pname] = round(normalised(raw, prof, n_windows), 2)
        s = tally.summary()
        del s["caught_by_kind"]
        res.update(s)
        res["files"] = len(sel)
        out[part] = res
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--nab",
        type=Path,
        default=Path(os.environ["GYEONGBO_NAB"]) if os.environ.get("GYEONGBO_NAB") else None,
        help="root of a NAB checkout (see benchmarks/nab.py); default $GYEONGBO_NAB; "
        "without it only the synthetic corpus runs",
    )
    ap.add_argument(
        "--seed", type=int, default=1, help="synthetic corpus the parameters were chosen on"
    )
    ap.add_argument("--held-out-seed", type=int, default=2, help="synthetic corpus held out")
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one AnomalyParams field (for a parameter search)",
    )
    ap.add_argument("--only", choices=("nab", "synthetic"), default=None, help="run one corpus")
    ap.add_argument(
        "--jitter",
        type=int,
        default=0,
        metavar="N",
        help="also score NAB with N parameter sets near the given one (see above)",
    )
    args = ap.parse_args(argv)
    fields = {f.name: f.type for f in dataclasses.fields(AnomalyParams)}
    over: dict[str, float | int] = {}
    for item in args.param:
        key, _, val = item.partition("=")
        if key not in fields:
            ap.error(f"unknown parameter {key!r}; known: {sorted(fields)}")
        over[key] = int(val) if fields[key] in ("int", int) else float(val)
    params = dataclasses.replace(AnomalyParams(), **over)  # type: ignore[arg-type]
    result: dict[str, Any] = {}
    t0 = time.monotonic()
    if args.only != "synthetic":
        problem = nab_problem(args.nab)
        if problem is None:
            assert args.nab is not None
            print("NAB …", file=sys.stderr)
            result["nab"] = nab(args.nab, params)
            if args.jitter > 0:
                result["nab"]["jitter"] = jitter(args.nab, params, args.jitter)
        else:
            print(f"skipping NAB: {problem}", file=sys.stderr)
    if args.only != "nab":
        syn: dict[str, Any] = {"tune_seed": args.seed, "held_out_seed": args.held_out_seed}
        for part, seed in (("tune", args.seed), ("held_out", args.held_out_seed)):
            print(f"synthetic corpus, seed {seed} …", file=sys.stderr)
            syn[part] = synthetic(generate(seed), params)
        result["synthetic"] = syn
    print(f"done in {time.monotonic() - t0:.0f} s", file=sys.stderr)
    result["params"] = dataclasses.asdict(params)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
