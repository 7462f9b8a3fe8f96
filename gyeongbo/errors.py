"""The one error shape of every configuration file: the path and one message per bad entry.

>>> err = ConfigError("config/stations.yaml", ["stations[3] (id='x'): lat: too large"])
>>> print(err)
config/stations.yaml: 1 problem(s):
  stations[3] (id='x'): lat: too large
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class ConfigError(ValueError):
    """A configuration file is invalid; ``problems`` lists every bad entry, not just the first."""

    def __init__(self, path: Path | str, problems: Sequence[str]) -> None:
        self.path = str(path)
        self.problems = list(problems)
        super().__init__(
            f"{path}: {len(self.problems)} problem(s):\n  " + "\n  ".join(self.problems)
        )
