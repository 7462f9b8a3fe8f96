"""CPU seconds of local processes, read from ``/proc`` (Linux): the benchmarks' CPU figures.

A benchmark's services each run in a session (process group) of their own; a process's
figure here is user + system time, and separately that of its children it has reaped.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

__all__ = ["ProcCpu", "group_cpu_s", "process_table"]


class ProcCpu(NamedTuple):
    ppid: int
    pgrp: int
    cpu_s: float  # user + system
    reaped_s: float  # user + system of children it has waited for


def process_table() -> dict[int, ProcCpu]:
    """Every live process: pid → parent, process group, CPU seconds."""
    tck = os.sysconf("SC_CLK_TCK")
    out: dict[int, ProcCpu] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            f = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the command: state, ppid, pgrp, … utime (11), stime, cutime, cstime (14)
        out[int(entry)] = ProcCpu(
            int(f[1]), int(f[2]), (int(f[11]) + int(f[12])) / tck, (int(f[13]) + int(f[14])) / tck
        )
    return out


def group_cpu_s(groups: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds (reaped children's included) of every process in each named process group
    or descended from one: PostgreSQL's backends call ``setsid`` but are the postmaster's
    children."""
    names = {pgid: name for name, pgid in groups.items()}
    procs = process_table()
    out = dict.fromkeys(groups, 0.0)
    for p in procs.values():
        ppid, pgrp = p.ppid, p.pgrp
        for _ in range(8):  # up the tree to a named group, if any
            name = names.get(pgrp)
            if name is not None:
                out[name] += p.cpu_s + p.reaped_s
                break
            if ppid not in procs:
                break
            ppid, pgrp = procs[ppid].ppid, procs[ppid].pgrp
    return out
