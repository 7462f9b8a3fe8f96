"""``python -m streams.zonegen [--admin-dir DIR] [--out DIR]``: write the generated custom zone
files (:mod:`geo.zonegen`) into ``config/zones/`` from the KOSTAT boundaries."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from geo.zonegen import SEOUL_GU_FILE, dumps
from geo.zonegen import build_all as _build_all
from gyeongbo.settings import REPO_ROOT
from streams.config_files import default_admin_dir, read_geojson

__all__ = ["build_all", "main"]


def build_all(admin_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """File name → GeoJSON document, from the boundaries in ``admin_dir`` (default:
    :func:`~streams.config_files.default_admin_dir`)."""
    return _build_all(read_geojson((admin_dir or default_admin_dir()) / SEOUL_GU_FILE))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m streams.zonegen",
        description="Write the generated custom zone files from the KOSTAT boundaries.",
    )
    ap.add_argument("--admin-dir", type=Path, default=None, help="KOSTAT boundary files")
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "config" / "zones")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, doc in build_all(args.admin_dir).items():
        (args.out / name).write_text(dumps(doc), encoding="utf-8")
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
