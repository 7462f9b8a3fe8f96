"""Prometheus exposition of the bridge's and the worker's figures, with content negotiation.

Both processes keep their counters as they always did (``streams.bridge_metrics.Metrics``, the
worker's ``snapshot()``); a :class:`SnapshotCollector` turns a snapshot into metric families
at scrape time, so nothing is counted twice. Names follow Prometheus' conventions: a
``gyeongbo_<component>_`` prefix, base units (seconds, not milliseconds), ``_total`` on
counters, and labels only of small fixed sets (a reject reason, an SMS outcome, a detector
set-aside reason). Each registry also carries the process collector (CPU seconds, memory,
open files, start time).

``GET /metrics`` answers, by the request's ``Accept`` header:

* ``application/openmetrics-text`` → OpenMetrics (what Prometheus asks for first);
* ``application/json`` preferred (or ``?format=json``) → the JSON snapshot the project's own
  tools read (the drill runner's ``exercise_clock_ms``, the benchmarks, the tests);
* anything else, no header included → the text exposition format 0.0.4.

>>> pick_format("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
'openmetrics'
>>> pick_format("application/json"), pick_format(""), pick_format("*/*")
('json', 'text', 'text')
>>> pick_format("text/plain;q=0.5, application/json;q=0.9")
'json'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import (
    CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE,
)
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

__all__ = [
    "CONTENT_TYPE_TEXT",
    "Family",
    "SnapshotCollector",
    "make_registry",
    "pick_format",
    "render",
]

CONTENT_TYPE_TEXT = "text/plain; version=0.0.4; charset=utf-8"
Format = Literal["openmetrics", "text", "json"]


def pick_format(accept: str, query_format: str | None = None) -> Format:
    """The representation a ``/metrics`` request gets (see the module docstring)."""
    if query_format in ("json", "prometheus", "openmetrics"):
        return "json" if query_format == "json" else "text"
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media:
            best[media.lower()] = max(q, best.get(media.lower(), 0.0))
    om = best.get("application/openmetrics-text", 0.0)
    js = best.get("application/json", 0.0)
    text = max(best.get("text/plain", 0.0), best.get("*/*", 0.0), best.get("text/*", 0.0))
    if js > 0 and js > max(om, text):
        return "json"
    if om > 0 and om >= text:
        return "openmetrics"
    return "text"


#: (name without prefix, kind, help, {label: value}, value)
Family = tuple[str, Literal["counter", "gauge"], str, Mapping[str, str], float]


class SnapshotCollector:
    """A collector whose families come from a function called at each scrape."""

    def __init__(self, prefix: str, families: Callable[[], list[Family]]) -> None:
        self.prefix = prefix
        self.families = families

    def collect(self) -> Iterator[Metric]:
        grouped: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for name, kind, doc, labels, value in self.families():
            full = f"{self.prefix}_{name}"
            fam = grouped.get(full)
            if fam is None:
                cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                fam = grouped[full] = cls(full, doc, labels=sorted(labels))
            fam.add_metric([labels[k] for k in sorted(labels)], float(value))
        yield from grouped.values()


def make_registry(prefix: str, families: Callable[[], list[Family]]) -> CollectorRegistry:
    """A registry with the component's families and the process collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(prefix, families))
    ProcessCollector(registry=registry)
    return registry


def render(
    registry: CollectorRegistry, fmt: Format, snapshot: Callable[[], Any]
) -> tuple[bytes, str]:
    """The body and content type of a ``/metrics`` answer in format ``fmt``."""
    if fmt == "json":
        import json

        return json.dumps(snapshot(), default=str).encode(), "application/json"
    if fmt == "openmetrics":
        body: bytes = generate_openmetrics(registry)  # type: ignore[no-untyped-call]
        return body, OPENMETRICS_CONTENT_TYPE
    return generate_latest(registry), CONTENT_TYPE_TEXT
