"""``python -m gyeongbo_cli``: the ``gyeongbo`` command."""

from __future__ import annotations

from gyeongbo_cli.main import main

main()
