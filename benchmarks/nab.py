"""Run the streaming anomaly detector over the Numenta Anomaly Benchmark and score it.

One parameter set for every file (``detectors.anomaly.AnomalyParams`` defaults unless
overridden with ``--param name=value``), no look-ahead: the 58 series are fed as 58 stations,
one reading per series per step, through the same vectorized ``update`` the engine uses.
Scored with ``detectors.nab_score`` (windows, scaled sigmoid, 15 % probation, three profiles,
one corpus-wide threshold per profile chosen by exact sweep, null = 0 and perfect = 100).

The parameters were chosen on this corpus (half of it in the last round; see
``CHANGELOG.md``), so the figures are largely in-sample: ``benchmarks/anomaly.py`` reports
the held-out half separately, and the operators' alarm on a synthetic corpus.

The last line printed is a JSON object ``{"standard": …, "reward_low_FP_rate": …,
"reward_low_FN_rate": …}`` (plus thresholds under ``"thresholds"``).

The corpus is not shipped with Gyeongbo (it is Numenta's, MIT licence). Get it once::

    git clone --depth 1 https://github.com/numenta/NAB.git ~/NAB

then pass its root (the folder holding ``data/``, ``labels/`` and ``config/``)::

    python benchmarks/nab.py --nab ~/NAB [--out results/]

or set ``GYEONGBO_NAB=~/NAB``. Without either, or with a folder that is not a NAB checkout,
the script stops with these instructions.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detectors.anomaly import ANOMALY_DTYPE, AnomalyParams, new_profiles, update
from detectors.nab_score import (
    PROFILES,
    FileScoring,
    Profile,
    best_threshold,
    normalised,
    sweep_scores,
)

DETECTOR = "gyeongbo"


def load_corpus(
    nab: Path,
) -> tuple[
    list[str],
    list[npt.NDArray[np.datetime64]],
    list[npt.NDArray[np.float64]],
    dict[str, list[list[str]]],
]:
    windows: dict[str, list[list[str]]] = json.loads(
        (nab / "labels" / "combined_windows.json").read_text()
    )
    names, stamps, values = [], [], []
    for name in sorted(windows):
        rows = list(csv.reader((nab / "data" / name).read_text().splitlines()))[1:]
        names.append(name)
        stamps.append(np.array([r[0] for r in rows], dtype="datetime64[s]"))
        values.append(np.array([float(r[1]) for r in rows]))
    return names, stamps, values, windows


def run_detector(
    values: list[npt.NDArray[np.float64]],
    params: AnomalyParams,
    progress: bool = True,
    stamps: list[npt.NDArray[np.datetime64]] | None = None,
) -> list[npt.NDArray[np.float64]]:
    """Feed all series in lock-step, one vectorized update per time step.

    ``stamps`` (each reading's time, as a station reports it) feed the detector's
    time-of-day profile; without them that part is off.
    """
    k = len(values)
    lengths = np.array([len(v) for v in values])
    tmax = int(lengths.max())
    mat = np.full((tmax, k), np.nan)
    tsm = np.zeros((tmax, k))
    for j, v in enumerate(values):
        mat[: len(v), j] = v
        if stamps is not None:
            tsm[: len(v), j] = stamps[j].astype("datetime64[s]").astype(np.int64)
    st = np.zeros(k, ANOMALY_DTYPE)
    tod = new_profiles(k)
    out = np.full((tmax, k), np.nan)
    t0 = time.monotonic()
    for t in range(tmax):
        ts = tsm[t] if stamps is not None else None
        out[t] = update(st, mat[t], params, ts=ts, tod=tod)[0]
        if progress and t % 5000 == 0 and t:
            print(f"  step {t}/{tmax} ({time.monotonic() - t0:.1f} s)", file=sys.stderr)
    return [out[: len(v), j] for j, v in enumerate(values)]


NAB_HOWTO = (
    "The Numenta Anomaly Benchmark is not shipped with Gyeongbo. Get it with\n"
    "    git clone --depth 1 https://github.com/numenta/NAB.git ~/NAB\n"
    "and run: python benchmarks/nab.py --nab ~/NAB   (or set GYEONGBO_NAB=~/NAB)"
)


def nab_problem(root: Path | None) -> str | None:
    """Why ``root`` is not a usable NAB checkout, or None when it is."""
    if root is None:
        return "no NAB corpus given (--nab PATH or GYEONGBO_NAB)"
    need = [root / "data", root / "labels" / "combined_windows.json"]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        return f"{root} is not a NAB checkout: missing {', '.join(missing)}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--nab",
        type=Path,
        default=Path(os.environ["GYEONGBO_NAB"]) if os.environ.get("GYEONGBO_NAB") else None,
        help="root of a NAB checkout (git clone https://github.com/numenta/NAB.git); "
        "default $GYEONGBO_NAB",
    )
    ap.add_argument("--out", type=Path, default=None, help="write NAB-format result CSVs here")
    ap.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override one AnomalyParams field (for the parameter search; report the defaults)",
    )
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)

    overrides: dict[str, float | int] = {}
    fields = {f.name: f.type for f in dataclasses.fields(AnomalyParams)}
    for item in args.param:
        key, _, val = item.partition("=")
        if key not in fields:
            ap.error(f"unknown parameter {key!r}; known: {sorted(fields)}")
        overrides[key] = int(val) if fields[key] in ("int", int) else float(val)
    params = dataclasses.replace(AnomalyParams(), **overrides)  # type: ignore[arg-type]
    problem = nab_problem(args.nab)
    if problem:
        ap.exit(2, f"nab.py: {problem}\n{NAB_HOWTO}\n")

    t0 = time.monotonic()
    names, stamps, values, windows = load_corpus(args.nab)
    if not args.quiet:
        print(f"loaded {len(names)} series, {sum(map(len, values))} points", file=sys.stderr)
    scores = run_detector(values, params, progress=not args.quiet, stamps=stamps)
    scores = [np.nan_to_num(s, nan=0.0) for s in scores]
    files: list[FileScoring] = []
    for name, ts in zip(names, stamps, strict=True):
        wins = [(np.datetime64(a[:19], "s"), np.datetime64(b[:19], "s")) for a, b in windows[name]]
        files.append(sweep_scores(ts, wins))
    n_windows = sum(f.n_windows for f in files)
    result: dict[str, object] = {}
    thresholds: dict[str, float] = {}
    for pname, prof in PROFILES.items():
        thr, raw = best_threshold(files, scores, prof)
        result[pname] = round(normalised(raw, prof, n_windows), 2)
        thresholds[pname] = thr
    if args.out is not None:
        _write_results(args.out, names, stamps, values, scores, files)
    if not args.quiet:
        print(f"scored {n_windows} windows in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    result["thresholds"] = thresholds
    result["params"] = dataclasses.asdict(params)
    print(json.dumps(result))
    return 0


def _write_results(
    out: Path,
    names: list[str],
    stamps: list[npt.NDArray[np.datetime64]],
    values: list[npt.NDArray[np.float64]],
    scores: list[npt.NDArray[np.float64]],
    files: list[FileScoring],
) -> None:
    for name, ts, v, s, f in zip(names, stamps, values, scores, files, strict=True):
        group, fname = name.split("/")
        path = out / group / f"{DETECTOR}_{fname}"
        path.parent.mkdir(parents=True, exist_ok=True)
        label = (f.window >= 0).astype(int)
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", "value", "anomaly_score", "label"])
            for i in range(len(v)):
                w.writerow(
                    [str(ts[i]).replace("T", " "), repr(float(v[i])), f"{s[i]:.6f}", label[i]]
                )


def _unused(_: Profile) -> None:  # keep the import for type readers
    return None


if __name__ == "__main__":
    raise SystemExit(main())
