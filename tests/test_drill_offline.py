"""``gyeongbo drill run NAME --offline``: a drill through the pipeline core, no services.

The offline report is judged like a drill through the stack (``simulators.drill.judge_run``)
and compared with ``gyeongbo drill compare``; ``tests/test_faults.py`` compares it with the
clean run through the whole stack. Here: the Gyeongju drill as the people concerned see it,
two offline runs give the same report, and ``drill compare`` tells them apart when they do
not.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gyeongbo.settings import Settings
from gyeongbo_cli.main import app
from simulators.drill import DrillOptions
from simulators.offline import run_offline


def test_the_gyeongju_drill_offline_meets_its_expectations_and_tells_people(
    tmp_path: Path,
) -> None:
    report = run_offline("gyeongju-earthquake", Settings(), DrillOptions(speed=120.0))
    assert report.passed, report.findings
    met = [(o.zone, o.observed and o.observed.t_s) for o in report.outcomes if o.status == "met"]
    assert met == [("37020", 123.0), ("37", 128.0), ("11", 128.0)]
    # the nationwide 긴급재난문자 raises every province once, each with its CAP document
    provinces = [t for t in report.transitions if len(t["zone"]) == 2]
    assert len(provinces) == 17 and {t["action"] for t in provinces} == {"raise"}
    assert report.cap_documents == len(report.transitions) and report.cap is not None
    assert {d["status"] for d in report.cap} == {"Exercise"}
    # the drill handsets: marked as a drill, within the scenario's bound per person
    assert report.sms and all(m["body"].startswith("[훈련][") for m in report.sms)
    assert report.per_recipient is not None
    assert sum(r["messages"] for r in report.per_recipient) == len(report.sms)
    assert report.messages == report.readings == 3 * 600 + 3 * 60
    assert report.observed_rejections == report.expected_rejections == 0


def test_two_offline_runs_compare_equal_and_a_difference_is_reported(tmp_path: Path) -> None:
    runner = CliRunner()
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path in (a, b):
        args = ["drill", "run", "seongsu-bridge-damage", "--offline", "--speed", "600"]
        out = runner.invoke(app, [*args, "--report", str(path)])
        assert out.exit_code == 0, out.output
    doc = json.loads(a.read_text())
    assert doc["passed"] and len(doc["transitions"]) >= 6 and doc["sms"]
    same = runner.invoke(app, ["drill", "compare", str(a), str(b)])
    assert same.exit_code == 0, same.output
    lost = {**doc, "sms": doc["sms"][1:]}
    b.write_text(json.dumps(lost, ensure_ascii=False))
    differ = runner.invoke(app, ["drill", "compare", str(a), str(b)], env={"COLUMNS": "200"})
    assert differ.exit_code == 1
    assert "1 in the reference, 0 in this run" in differ.output
