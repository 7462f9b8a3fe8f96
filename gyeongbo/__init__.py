"""Gyeongbo (경보): real-time IoT disaster detection and staged alerting.

The core package holds what every concern shares: the closed vocabularies
(:mod:`gyeongbo.vocab`), typed settings (:mod:`gyeongbo.settings`), the station registry
(:mod:`gyeongbo.registry`), the CLI (:mod:`gyeongbo.cli`) and the local development stack
(:mod:`gyeongbo.stack`). The concerns themselves are the top-level packages ``streams``,
``detectors``, ``geo``, ``alerting``, ``simulators`` and ``dashboards``.
"""

from __future__ import annotations

__version__ = "0.1.0"
