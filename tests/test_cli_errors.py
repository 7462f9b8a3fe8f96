"""A failing command tells what went wrong in one line and never prints a secret.

Run as an operator would: the installed CLI in a child process, with gateway passwords and
other secrets in its environment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import typer

from gyeongbo.settings import REPO_ROOT, Settings
from gyeongbo_cli.main import app

SECRETS = {
    "GYEONGBO_MQTT_PASSWORD__GYEONGBO_BRIDGE": "bridge-pw-Zq81",
    "GYEONGBO_MQTT_PASSWORD__HRFCO_SEOUL": "gateway-pw-Xk27",
    "GYEONGBO_KAFKA__SASL_PASSWORD": "kafka-pw-Wm55",
    "GYEONGBO_TWILIO__AUTH_TOKEN": "twilio-token-Vn40",
}


def gyeongbo(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GYEONGBO_")}
    return subprocess.run(
        [sys.executable, "-m", "gyeongbo_cli", *args],
        env={**clean, **SECRETS, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
    )


def assert_one_line_without_secrets(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode != 0
    for secret in SECRETS.values():
        assert secret not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    return lines[0]


def test_mqtt_auth_failing_on_io_prints_one_line_and_no_password(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = gyeongbo("bridge", "mqtt-auth", "--out", str(blocker / "auth"), "--dev-passwords", env={})
    line = assert_one_line_without_secrets(out)
    assert out.returncode == 1
    assert line == f"gyeongbo: Not a directory: {blocker / 'auth'}"


def test_a_bad_setting_prints_one_line_naming_the_variable() -> None:
    out = gyeongbo("bridge", "mqtt-auth", "--out", "/tmp/x", env={"GYEONGBO_MQTT__PORT": "x"})
    line = assert_one_line_without_secrets(out)
    assert out.returncode == 2
    assert line.startswith("gyeongbo: invalid settings: GYEONGBO_MQTT__PORT: ")
    out = gyeongbo(
        "config", "show", env={"GYEONGBO_KAFKA__SECURITY_PROTOCOL": "SASL_SSL"}
    )  # a password without a user
    line = assert_one_line_without_secrets(out)
    assert "needs sasl_username and sasl_password" in line


def test_no_cli_shows_local_variables_in_a_traceback() -> None:
    def walk(t: typer.Typer) -> list[typer.Typer]:
        return [
            t,
            *(x for g in t.registered_groups if g.typer_instance for x in walk(g.typer_instance)),
        ]

    apps = walk(app)
    assert len(apps) >= 8
    assert all(a.pretty_exceptions_show_locals is False for a in apps)
    deps = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (typer_dep,) = [d for d in deps if d.startswith("typer")]
    floor = re.search(r">=(\d+)\.(\d+)", typer_dep)
    assert floor and (int(floor[1]), int(floor[2])) >= (0, 23)


def test_a_store_that_does_not_answer_is_exit_3_at_once_a_refusal_exit_1(
    stack_settings: Settings,
) -> None:
    from gyeongbo.stack.procs import free_port

    nobody = f"postgresql://gyeongbo@127.0.0.1:{free_port()}/gyeongbo"
    started = time.monotonic()
    out = gyeongbo("recipients", "list", env={"GYEONGBO_STORE__URL": nobody})
    assert time.monotonic() - started < 15  # not the connection pool's 30 s of retries
    line = assert_one_line_without_secrets(out)
    assert out.returncode == 3 and "Connection refused" in line
    url = stack_settings.store.url.get_secret_value()
    assert url.startswith("postgresql://")
    wrong_db = url.rsplit("/", 1)[0] + "/no_such_database"
    out = gyeongbo("recipients", "list", env={"GYEONGBO_STORE__URL": wrong_db})
    assert out.returncode == 1 and 'database "no_such_database" does not exist' in out.stderr
