"""The only package that knows Kafka, MQTT, Faust and InfluxDB: bridge, worker, sinks."""

from __future__ import annotations
