"""Regenerate the committed dashboard JSON: ``python -m dashboards`` (or ``dashboards/build.py``).

Writes one file per dashboard into ``dashboards/json/`` from the station registry
(``GYEONGBO_PATHS__STATIONS``, default ``config/stations.yaml``). ``--check`` writes nothing
and exits 1 when a committed file differs from what the code generates (for CI).

Grafana loads the files through the provider in ``dashboards/provisioning/dashboards/`` and
queries the datasource in ``dashboards/provisioning/datasources/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dashboards.gyeongbo import Built, build_all
from dashboards.model import encode_dashboard
from gyeongbo.registry import load_registry
from gyeongbo.settings import Settings

JSON_DIR = Path(__file__).resolve().parent / "json"


def generate(stations: Path | None = None) -> list[Built]:
    path = stations or Settings(_env_file=None).paths.stations
    return build_all(load_registry(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dashboards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--out", type=Path, default=JSON_DIR, help="output folder")
    ap.add_argument("--stations", type=Path, default=None, help="station registry file")
    ap.add_argument("--check", action="store_true", help="only compare with the files")
    args = ap.parse_args(argv)
    stale = []
    for built in generate(args.stations):
        path = args.out / built.filename
        text = encode_dashboard(built.dashboard)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path} ({len(built.dashboard.panels)} panels)")
    if stale:
        print("out of date (run `python -m dashboards`): " + ", ".join(map(str, stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
