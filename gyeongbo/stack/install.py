"""Make sure a Debian package's binary is present; install it with apt-get when we may.

The stack needs ``mosquitto`` and ``influxd`` (Debian packages ``mosquitto`` and
``influxdb``). When a binary is missing and we run as root with apt-get available, it is
installed (``apt-get update`` once, then ``apt-get install -y``); otherwise the error says
exactly what to install. ``recommends=False`` leaves out the package's recommended packages
(Debian's ``prometheus`` recommends the node exporter and its collectors, which a test that
only runs Prometheus has no use for).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from gyeongbo.stack.procs import StackError

_updated = False


def ensure_binary(
    binary: str,
    package: str,
    *,
    search: tuple[str, ...] = ("/usr/sbin", "/usr/bin"),
    recommends: bool = True,
) -> str:
    found = shutil.which(binary) or next(
        (f"{d}/{binary}" for d in search if os.access(f"{d}/{binary}", os.X_OK)), None
    )
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StackError(
            f"{binary} is not installed. Install the Debian package: "
            f"`sudo apt-get install -y {package}`"
        )
    global _updated
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _updated:
        subprocess.run(
            ["apt-get", "update", "-qq"],
            check=False,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _updated = True
    extra = [] if recommends else ["--no-install-recommends"]
    r = subprocess.run(
        ["apt-get", "install", "-y", "-qq", *extra, package],
        env=env,
        capture_output=True,
        text=True,
    )
    found = shutil.which(binary) or next(
        (f"{d}/{binary}" for d in search if os.access(f"{d}/{binary}", os.X_OK)), None
    )
    if r.returncode != 0 or not found:
        raise StackError(f"apt-get install {package} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return found
