"""Gyeongbo (경보): real-time IoT disaster detection and staged alerting.

The base package holds what every concern shares: the closed vocabularies
(:mod:`gyeongbo.vocab`), typed settings (:mod:`gyeongbo.settings`), the station registry
(:mod:`gyeongbo.registry`) and the local development stack (:mod:`gyeongbo.stack`); it imports
none of the packages above it. The concerns themselves are the top-level packages ``streams``,
``detectors``, ``geo``, ``alerting``, ``simulators`` and ``dashboards``; the command line is
``gyeongbo_cli`` (docs/design.md §2, "Layers").
"""

from __future__ import annotations

__version__ = "0.1.0"
