"""Vectorized detectors: official stage rules, forecasts, anomaly scores and sensor health.

Pure numpy/scipy on columnar micro-batches (:class:`gyeongbo.batch.ReadingBatch`); no Kafka,
MQTT or Faust here.
"""

from __future__ import annotations
