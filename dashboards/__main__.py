"""``python -m dashboards``: regenerate the dashboard JSON (see :mod:`dashboards.build`)."""

from __future__ import annotations

import sys

from dashboards.build import main

sys.exit(main())
