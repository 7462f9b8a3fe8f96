"""The worker's figures as Prometheus families (``gyeongbo_worker_*``, :mod:`streams.prom`).

Read from :meth:`streams.worker.Worker.snapshot` at each scrape, the same figures ``/metrics``
gives as JSON, renamed by Prometheus' conventions:

=============================================  ==========================================
``readings_total``, ``batches_total``,          the worker's counters (``records``: Kafka
``records_total``, ``detections_total``,        records of ``readings``; ``alert_events``:
``alert_events_total``, …                       transitions sent to ``alerts``)
``sms_total{outcome}``                          SMS by final outcome (sent, failed, …)
``detector_readings_set_aside_total{reason}``   late, duplicate, unknown_station,
                                                kind_mismatch
``detector_seconds_total``                      time spent in the detector set
``reading_lag_p50_seconds``, ``…_p99_seconds``  bridge received → detected (sampled)
``influx_lines_written_total``, ``…_dropped``,  the InfluxDB sink (``influx_lines_buffered``
``…_retries``, ``…_errors``                     is a gauge)
``exercise_clock_seconds``                      the newest drill reading's event time
``sms_backlog``, ``sms_in_flight``,             the SMS fan-out now: queued or waiting to
``sms_in_flight_limit``, ``sms_in_flight_max``  retry, requests in flight, the adaptive
                                                limit, the most seen
``sms_request_p50_seconds``, ``…_p99_seconds``  SMS request latency (recent requests)
=============================================  ==========================================

>>> fams = {n: (labels, v) for n, _, _, labels, v in families({"readings": 3, "sms_sent": 2,
...     "detector_late": 1, "lag_ms_p99": 250.0, "exercise_clock_ms": None, "uptime_s": 1.0})}
>>> fams["readings_total"], fams["sms_total"], fams["reading_lag_p99_seconds"]
(({}, 3), ({'outcome': 'sent'}, 2.0), ({}, 0.25))
>>> fams["detector_readings_set_aside_total"], fams["alert_events_total"]
(({'reason': 'late'}, 1), ({}, 0))
>>> "exercise_clock_seconds" in fams
False
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from streams.prom import Family

__all__ = ["families"]

C: Literal["counter"] = "counter"
G: Literal["gauge"] = "gauge"

_HELP = {
    "readings": "Readings run through the detectors.",
    "batches": "Detector calls.",
    "records": "readings records processed.",
    "stale_records": "Records of an earlier consumer generation, skipped.",
    "detections": "Detections sent.",
    "alert_events": "Alert transitions sent.",
    "alert_reminders": "Reminders of unacknowledged alerts sent to operators.",
    "exercise_alert_reminders": "Reminders of unacknowledged exercise alerts sent to operators.",
    "rebalances": "Partition assignments.",
    "processing_errors": "Record groups that failed (logged, skipped).",
    "poison_records": "Undecodable records (logged, skipped).",
    "operator_rejected": "Operator actions the stage machine refused.",
    "state_checkpoints": "Detector-state checkpoints.",
    "state_chunks_written": "Detector-state chunks written.",
}
#: Snapshot keys that are not counters of their own.
_SKIP = {
    "uptime_s",
    "readings_per_s",
    "batch_size_mean",
    "detector_s_total",
    "lag_ms_p50",
    "lag_ms_p99",
    "exercise_clock_ms",
    "influx_written_total",
    "influx_dropped_total",
    "influx_retries_total",
    "influx_errors_total",
    "influx_buffered",
}


#: The SMS fan-out's gauges (``streams.fanout.FanOut.snapshot``): name, help, scale.
_SMS_GAUGES = {
    "sms_backlog": ("sms_backlog", "SMS queued, waiting to retry or in flight.", 1.0),
    "sms_in_flight": ("sms_in_flight", "SMS requests in flight.", 1.0),
    "sms_limit": ("sms_in_flight_limit", "Adaptive limit of SMS requests in flight.", 1.0),
    "sms_in_flight_max": ("sms_in_flight_max", "Most SMS requests in flight so far.", 1.0),
    "sms_latency_ms_p50": ("sms_request_p50_seconds", "SMS request latency, p50.", 0.001),
    "sms_latency_ms_p99": ("sms_request_p99_seconds", "SMS request latency, p99.", 0.001),
}


def families(snap: Mapping[str, Any]) -> list[Family]:
    """The families of one snapshot (names without the ``gyeongbo_worker`` prefix)."""
    out: list[Family] = []
    # Every counter exists from the start (at 0), so a rate sees its first increment.
    for key, value in {**dict.fromkeys(_HELP, 0), **snap}.items():
        if key in _SKIP or not isinstance(value, int | float) or isinstance(value, bool):
            continue
        if key in _SMS_GAUGES:
            name, doc, scale = _SMS_GAUGES[key]
            out.append((name, G, doc, {}, float(value) * scale))
            continue
        if key.startswith("sms_"):
            out.append(
                ("sms_total", C, "SMS by final outcome.", {"outcome": key[4:]}, float(value))
            )
        elif key in ("detector_catalogue_events", "detector_catalogue_repeats"):
            doc = "Earthquake catalogue events the detectors took / dropped as repeats."
            out.append((f"{key}_total", C, doc, {}, value))
        elif key.startswith("detector_"):
            if key != "detector_readings":  # the same count as readings_total
                doc = "Readings the detectors set aside (counted, never silent), by reason."
                out.append(
                    (
                        "detector_readings_set_aside_total",
                        C,
                        doc,
                        {"reason": key.removeprefix("detector_")},
                        value,
                    )
                )
        else:
            out.append((f"{key}_total", C, _HELP.get(key, key.replace("_", " ")), {}, value))
    if snap.get("detector_s_total") is not None:
        out.append(
            (
                "detector_seconds_total",
                C,
                "Time spent in the detector set.",
                {},
                float(snap["detector_s_total"]),
            )
        )
    for q in ("p50", "p99"):
        v = snap.get(f"lag_ms_{q}")
        if v is not None:
            doc = f"Bridge received to detected, {q} of recent readings."
            out.append((f"reading_lag_{q}_seconds", G, doc, {}, float(v) / 1000))
    sink = {
        "influx_written_total": "influx_lines_written_total",
        "influx_dropped_total": "influx_lines_dropped_total",
        "influx_retries_total": "influx_write_retries_total",
        "influx_errors_total": "influx_write_errors_total",
    }
    for key, name in sink.items():
        if key in snap:
            out.append((name, C, f"InfluxDB sink: {name[7:-6].replace('_', ' ')}.", {}, snap[key]))
    if "influx_buffered" in snap:
        doc = "InfluxDB sink: lines buffered or in flight."
        out.append(("influx_lines_buffered", G, doc, {}, float(snap["influx_buffered"])))
    clock = snap.get("exercise_clock_ms")
    if isinstance(clock, int | float) and clock:
        doc = "Event time of the newest drill reading held (Unix seconds)."
        out.append(("exercise_clock_seconds", G, doc, {}, float(clock) / 1000))
    return out
