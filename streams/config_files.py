"""Read the configuration files that the pure packages parse: zones, SMS templates, recipients.

``geo`` and ``alerting`` never open a file (docs/design.md §2, "Layers"): they validate data
they are given (:func:`geo.zones.build_zones`, :func:`alerting.templates.parse_templates`,
:func:`geo.recipients.parse_recipients`). This module is where those files are found and read,
for the worker, the command line, the drill tools and the benchmarks. A missing or unreadable
file is a :class:`~gyeongbo.errors.ConfigError` of the file's kind naming the path, like every
problem the parsers find.

>>> zones = load_zones()
>>> zones["11030"].name
'용산구'
>>> load_templates().render_fields("flood", "cleared", zone="용산구", station="", value=0)[:9]
'[해제] Floo'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from alerting.templates import Templates, parse_templates
from geo.geojson import ZoneError
from geo.recipients import RecipientDirectory, RecipientError, parse_recipients
from geo.zones import ADMIN_FILES, SourceFile, ZoneRegistry, build_zones
from gyeongbo.settings import REPO_ROOT, Settings

__all__ = [
    "ADMIN_DIR_ENV",
    "DEFAULT_TEMPLATES",
    "default_admin_dir",
    "load_recipients",
    "load_templates",
    "load_zones",
    "read_geojson",
]

#: The SMS templates shipped in the repository (``Settings.paths.templates``' default).
DEFAULT_TEMPLATES = REPO_ROOT / "config" / "templates.yaml"

#: Environment variable read when neither an argument nor the settings name the directory.
ADMIN_DIR_ENV = "GYEONGBO_PATHS__ADMIN_BOUNDARIES"


def default_admin_dir(settings: Settings | None = None) -> Path:
    """Where the KOSTAT boundary files are.

    In order: ``settings.paths.admin_boundaries`` when the settings have that field, the
    ``GYEONGBO_PATHS__ADMIN_BOUNDARIES`` environment variable, then the copy shipped in the
    repository, ``config/boundaries`` (the settings' default too).
    """
    configured = getattr(settings.paths, "admin_boundaries", None) if settings else None
    if configured:
        return Path(configured)
    env = os.environ.get(ADMIN_DIR_ENV)
    if env:
        return Path(env)
    return REPO_ROOT / "config" / "boundaries"


def load_zones(
    zones_dir: Path | str | None = None,
    admin_dir: Path | str | None = None,
    *,
    settings: Settings | None = None,
) -> ZoneRegistry:
    """Read and validate every zone (:func:`geo.zones.build_zones`). Defaults:
    ``settings.paths.zones`` (or the repo's ``config/zones``) and :func:`default_admin_dir`;
    the custom zones are every ``*.geojson`` there, in name order."""
    zdir = Path(zones_dir) if zones_dir else (settings.paths.zones if settings else None)
    zdir = zdir or REPO_ROOT / "config" / "zones"
    adir = Path(admin_dir) if admin_dir else default_admin_dir(settings)
    admin = []
    for spec in ADMIN_FILES:
        path = adir / spec.name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise ZoneError(
                path,
                [f"administrative boundary file not found (set {ADMIN_DIR_ENV} or pass admin_dir)"],
            ) from None
        admin.append(SourceFile(spec.name, str(path), raw))
    custom = (
        [SourceFile(p.name, str(p), p.read_bytes()) for p in sorted(zdir.glob("*.geojson"))]
        if zdir.is_dir()
        else None
    )
    return build_zones(admin, custom, origin=str(zdir))


def read_geojson(path: Path | str) -> Any:
    """Parse a JSON file; a missing or broken file raises :class:`~geo.geojson.ZoneError`."""
    p = Path(path)
    try:
        with p.open(encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise ZoneError(p, [f"file not found: {p}"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ZoneError(p, [f"not valid JSON: {err}"]) from None


def load_templates(
    path: Path | str = DEFAULT_TEMPLATES, *, max_chars: int | None = None
) -> Templates:
    """Read and validate the SMS templates (:func:`alerting.templates.parse_templates`)."""
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    return parse_templates(data, max_chars=max_chars, path=str(path))


def load_recipients(
    path: Path | str | None = None, *, zones: ZoneRegistry, settings: Settings | None = None
) -> RecipientDirectory:
    """Read ``path`` (default ``settings.paths.recipients``) and index it on ``zones``
    (:func:`geo.recipients.parse_recipients`)."""
    p = Path(path) if path else (settings or Settings()).paths.recipients
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipientError(p, [f"file not found: {p}"]) from None
    except yaml.YAMLError as err:
        # Only the position: the parser's snippet of the line could show a phone number.
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipientError(p, [f"not valid YAML{where}"]) from None
    return parse_recipients(data, zones, path=str(p))
