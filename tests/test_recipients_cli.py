"""``gyeongbo recipients …`` on an SQLite store: import the YAML, list and show (masked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gyeongbo.settings import REPO_ROOT
from gyeongbo_cli.main import app as cli


def test_import_list_show_opt_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GYEONGBO_STORE__URL", f"sqlite:///{tmp_path / 's.sqlite'}")
    run = CliRunner()
    out = run.invoke(cli, ["recipients", "import", str(REPO_ROOT / "config/recipients.yaml")])
    assert out.exit_code == 0, out.output
    assert "imported 14" in out.output
    out = run.invoke(cli, ["recipients", "list", "--json"])
    assert out.exit_code == 0
    rows = json.loads(out.output)
    assert len(rows) == 14 and all("****" in r["phone"] for r in rows)
    assert "+821000000101" not in out.output  # never the number itself
    out = run.invoke(cli, ["recipients", "show", "drill-yongsan-field"])
    shown = json.loads(out.output)
    assert shown["drill"] is True and shown["located"][0] == "1103064"
    assert "hangang-riverside-central" in shown["member_zones"]
    out = run.invoke(cli, ["recipients", "opt-out", "res-mapo-001", "--reason", "asked"])
    assert out.exit_code == 0
    again = json.loads(run.invoke(cli, ["recipients", "show", "res-mapo-001"]).output)
    assert again["opt_out_reason"] == "asked"
    # a broken file is refused with every problem named, nothing written
    bad = tmp_path / "bad.yaml"
    bad.write_text("recipients:\n  - {id: x, phone: '010-1', hazards: [flood], zones: ['99']}\n")
    out = run.invoke(cli, ["recipients", "import", str(bad)])
    assert out.exit_code == 1 and "invalid recipients file" in out.output
    assert len(json.loads(run.invoke(cli, ["recipients", "list", "--json"]).output)) == 14
