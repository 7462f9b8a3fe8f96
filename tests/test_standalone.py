"""The repository is the whole product: a clone with nothing beside it must work.

These checks walk the files git tracks, as a user's clone has them: no path may lead out of
the repository, every design reference must land on a heading of ``docs/design.md``, and
the NAB benchmark (whose corpus is not shipped) must say how to get it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gyeongbo.settings import REPO_ROOT, PathSettings

DESIGN = REPO_ROOT / "docs" / "design.md"
_REF = re.compile(r"docs/design\.md\s*§\s*(\d+(?:\.\d+)*)")


def _tracked() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True
    ).stdout
    return [REPO_ROOT / p for p in out.decode().split("\0") if p]


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, IsADirectoryError, FileNotFoundError):
        return None


def test_no_file_reaches_outside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|/work/shared|parents\[2\]")
    hits = [
        f"{p.relative_to(REPO_ROOT)}:{n}: {line.strip()}"
        for p in _tracked()
        if p.name != Path(__file__).name and (text := _text(p)) is not None
        for n, line in enumerate(text.splitlines(), 1)
        if outside.search(line)
    ]
    assert not hits, "\n".join(hits)


def test_every_design_reference_resolves() -> None:
    headings = {
        m.group(1) for m in re.finditer(r"^#{2,4}\s+(\d+(?:\.\d+)*)\.?\s", DESIGN.read_text(), re.M)
    }
    refs: dict[str, list[str]] = {}
    for p in _tracked():
        text = _text(p)
        if text is None:
            continue
        if p.name != Path(__file__).name:
            assert "DESIGN.md" not in text, f"{p.relative_to(REPO_ROOT)} cites DESIGN.md"
        for m in _REF.finditer(text):
            refs.setdefault(m.group(1).rstrip("."), []).append(str(p.relative_to(REPO_ROOT)))
    assert refs, "no design references found: the pattern is wrong"
    missing = {ref: files for ref, files in refs.items() if ref not in headings}
    assert not missing, f"design references without a heading in docs/design.md: {missing}"


def test_default_paths_point_into_the_repository() -> None:
    paths = PathSettings()
    for name in ("stations", "zones", "recipients", "templates", "scenarios", "admin_boundaries"):
        p = Path(getattr(paths, name)).resolve()
        assert p.is_relative_to(REPO_ROOT), f"{name} default {p} is outside the repository"
        assert p.exists(), f"{name} default {p} does not exist"


def test_licence_files_ship() -> None:
    assert "Apache License" in (REPO_ROOT / "LICENSE").read_text()
    notice = (REPO_ROOT / "NOTICE").read_text()
    assert "KOSTAT" in notice and "Open Government Licence" in notice


@pytest.mark.parametrize("args", [[], ["--nab", "{tmp}"]])
def test_nab_benchmark_says_how_to_get_the_corpus(tmp_path: Path, args: list[str]) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    env = {"PATH": "/usr/bin:/bin"}
    r = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "nab.py"), *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 2
    assert "git clone" in r.stderr and "numenta/NAB" in r.stderr and "--nab" in r.stderr
