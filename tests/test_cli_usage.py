"""The command line as a new user meets it, without a stack: --version, --help on every
command, --log-level in any case, one exit status per class of failure, and listings that
show ids and names whole on an 80-column terminal.

Exit statuses are asserted on the installed entry point in a child process (what scripts
see); the rest through typer's runner.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from gyeongbo.exit_codes import EPILOG
from gyeongbo.log_level import LEVELS, configure_logging
from gyeongbo.settings import REPO_ROOT
from gyeongbo.stack.procs import free_port
from gyeongbo_cli.main import app
from simulators.scenario import list_scenarios


def gyeongbo(
    *args: str, env: dict[str, str] | None = None, columns: int = 80
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GYEONGBO_")}
    return subprocess.run(
        [sys.executable, "-m", "gyeongbo_cli", *args],
        env={**clean, "COLUMNS": str(columns), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )


def flat(text: str) -> str:
    """Text without rich's box drawing and line breaks (click's errors come in a box)."""
    for ch in "│╭╮╰╯─":
        text = text.replace(ch, " ")
    return " ".join(text.split())


def commands() -> list[tuple[list[str], Any]]:
    """Every command and group of the CLI with its path (``[]`` is ``gyeongbo`` itself).
    (typer builds them on its own copy of click: groups are known by their ``commands``.)"""
    out: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        out.append((path, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


def test_version_comes_from_the_package_metadata() -> None:
    out = gyeongbo("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"gyeongbo {metadata.version('gyeongbo')}"


def test_every_command_has_a_help_a_new_user_can_follow() -> None:
    runner = CliRunner()
    found = commands()
    assert len(found) >= 35  # the groups and their commands
    missing = []
    for path, cmd in found:
        out = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "80"})
        assert out.exit_code == 0, (path, out.output)
        assert "Usage" in out.output
        first = (cmd.help or "").strip().splitlines()
        if not first or len(first[0]) < 15:
            missing.append(f"{' '.join(path) or 'gyeongbo'}: no description")
        for p in cmd.params:
            if p.name != "help" and not (getattr(p, "help", None) or "").strip():
                missing.append(f"{' '.join(path)}: {p.human_readable_name} is not explained")
    assert missing == [], "\n".join(missing)


def test_the_top_level_help_says_what_each_exit_status_means() -> None:
    out = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "100"})
    assert out.exit_code == 0
    for line in EPILOG.splitlines():
        assert line in out.output, line
    for code in ("0  ok", "1  a check failed", "2  usage", "3  a service did not answer"):
        assert code in out.output


# -- --log-level ------------------------------------------------------------------------------


def _with_log_level() -> list[list[str]]:
    return [p for p, c in commands() if any(o.name == "log_level" for o in c.params)]


def test_every_log_level_option_takes_the_five_levels_in_any_case() -> None:
    paths = _with_log_level()
    assert ["bridge", "run"] in paths and ["worker"] in paths and ["drill", "run"] in paths
    for path in paths:
        out = gyeongbo(*path, "--log-level", "verbose")
        assert out.returncode == 2, (path, out.stderr)
        assert "'verbose' is not one of debug, info, warning, error, critical" in flat(out.stderr)
        assert "Traceback" not in out.stderr
        help_text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
        assert "debug, info, warning, error, critical" in flat(help_text), path


@pytest.mark.parametrize("level", ["warning", "WARNING", "Critical", "debug", "INFO", "error"])
def test_drill_run_log_level_through_the_cli(level: str) -> None:
    """The drill's own logging (a dry run publishes nothing and needs no stack)."""
    out = gyeongbo("drill", "run", "gyeongju-earthquake", "--dry-run", "--log-level", level)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("\t") > 10  # topic TAB payload lines


def test_logging_is_set_up_once_with_one_handler() -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        for level in (*LEVELS, "WARN", "Info"):
            configure_logging(level)
            configure_logging(level)
            assert len(root.handlers) == 1
        assert root.level == logging.INFO
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


# -- exit status per class ----------------------------------------------------------------------


def test_exit_2_for_a_bad_option_an_unknown_scenario_and_a_bad_setting() -> None:
    out = gyeongbo("alerts", "list", "--bogus")
    assert out.returncode == 2 and "No such option" in flat(out.stderr)
    out = gyeongbo("drill", "run", "han-river-flod", "--dry-run")
    assert out.returncode == 2
    assert "no scenario named 'han-river-flod'" in flat(out.stderr)
    assert "han-river-flood" in flat(out.stderr)
    out = gyeongbo("drill", "run", "han-river-flood", "--clock", "midnight", "--dry-run")
    assert out.returncode == 2 and "'midnight' is neither end-now nor start-now" in flat(out.stderr)
    out = gyeongbo("alerts", "list", env={"GYEONGBO_WORKER__WEB_PORT": "many"})
    assert out.returncode == 2
    assert out.stderr.startswith("gyeongbo: invalid settings: GYEONGBO_WORKER__WEB_PORT:")
    out = gyeongbo("alerts", "list")  # no operator token set
    assert out.returncode == 2 and "GYEONGBO_OPERATOR__TOKEN" in out.stderr


def test_exit_1_when_config_check_fails(tmp_path: Path) -> None:
    bad = tmp_path / "templates.yaml"
    bad.write_text("version: 1\nhazards: {}\n")
    out = gyeongbo("config", "check", "--templates", str(bad))
    assert out.returncode == 1
    assert f"invalid  templates {bad}: hazards.flood: missing" in out.stdout


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["alerts", "list"],
        ["alerts", "ack", "flood:11030:2026-12-07T17:24:11+09:00", "--reason", "seen"],
        ["deliveries", "list"],
        ["alerts", "audit"],
    ],
)
def test_exit_3_in_one_line_when_no_worker_answers(args: list[str]) -> None:
    port = free_port()  # bound and released: nobody listens there
    env = {"GYEONGBO_OPERATOR__TOKEN": "gyb_test-token"}
    out = gyeongbo(*args, "--url", f"http://127.0.0.1:{port}", env=env)
    assert out.returncode == 3, out.stderr
    line = _one_line(out)
    assert line.startswith(f"no worker answers at http://127.0.0.1:{port}/")
    assert "Connection refused" in line and "gyb_test-token" not in line


def test_exit_3_when_kafka_or_mqtt_do_not_answer() -> None:
    kafka = f"127.0.0.1:{free_port()}"
    out = gyeongbo("topics", "create", "--timeout-s", "1", env={"GYEONGBO_KAFKA__BOOTSTRAP": kafka})
    assert out.returncode == 3, out.stderr
    assert f"could not create topics on {kafka}" in out.stderr
    env = {
        "GYEONGBO_GATEWAY__PORT": str(free_port()),
        "GYEONGBO_MQTT_PASSWORD__DRILL_LAB": "not-used",
    }
    out = gyeongbo("simulate", "load", "--stations", "10", "--duration", "0.5", env=env)
    assert out.returncode == 3, out.stderr
    assert "cannot reach the MQTT broker" in _one_line(out)


# -- listings at 80 columns ---------------------------------------------------------------------


def _scenario_names() -> list[str]:
    names = [p.stem for p in list_scenarios(REPO_ROOT / "simulators" / "scenarios")]
    assert max(len(n) for n in names) >= 20  # seongsu-bridge-damage: the one that was cut
    return names


@pytest.mark.parametrize("columns", [80, 60, 200])
def test_drill_list_shows_every_scenario_name_whole(columns: int) -> None:
    out = gyeongbo("drill", "list", columns=columns)
    assert out.returncode == 0, out.stderr
    words = out.stdout.replace("│", " ").replace("┃", " ").split()
    for name in _scenario_names():
        assert name in words, (name, out.stdout)
    assert max(len(line) for line in out.stdout.splitlines()) <= columns
    runner = CliRunner()
    again = runner.invoke(app, ["drill", "list"], env={"COLUMNS": str(columns)})
    assert again.exit_code == 0 and all(n in again.output.split() for n in _scenario_names())


def test_drill_list_json() -> None:
    out = CliRunner().invoke(app, ["drill", "list", "--json"])
    assert out.exit_code == 0
    rows = json.loads(out.stdout)
    assert sorted(r["name"] for r in rows) == sorted(_scenario_names())
    flood = next(r for r in rows if r["name"] == "han-river-flood")
    assert flood["kind"] == "scenario" and flood["expect"] >= 1


def test_operators_list_shows_token_ids_whole_at_80_columns(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    runner = CliRunner()
    for op in ("situation-room-desk-seoul-01", "han-river-flood-control-office-duty"):
        out = runner.invoke(
            app, ["operators", "add", op, "--note", "night shift", "--file", str(tokens)]
        )
        assert out.exit_code == 0
    ids = [
        r["token_id"]
        for r in json.loads(
            runner.invoke(app, ["operators", "list", "--json", "--file", str(tokens)]).stdout
        )
    ]
    out = runner.invoke(app, ["operators", "list", "--file", str(tokens)], env={"COLUMNS": "80"})
    assert out.exit_code == 0
    words = out.stdout.replace("│", " ").split()
    for key in [*ids, "situation-room-desk-seoul-01", "han-river-flood-control-office-duty"]:
        assert key in words, (key, out.stdout)
