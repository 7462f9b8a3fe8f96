"""Staged alerting: the alert and headquarters stage machines, operator actions, SMS, CAP 1.2.

Pure state machines (no I/O, JSON-serializable state; docs/design.md §4):

* :mod:`alerting.machine` — :class:`AlertMachine`: detections in, ``AlertEvent`` transitions
  out; operator actions (acknowledge, silence, manual escalate, clear) with an audit log; the
  active-alerts listing; reminders for unacknowledged alerts.
* :mod:`alerting.policy` — per-hazard staging policy (quorum, N-of-M, off-delay, dwell).
* :mod:`alerting.hq` — :class:`HQMachine`: 비상 1·2·3단계 from province counts, proposals.

Delivery rules (docs/design.md §5), imported from their modules:

* :mod:`alerting.delivery` — zone transitions grouped into events per hazard, one message per
  person per change of their level, the area each message names.
* :mod:`alerting.templates` — SMS templates, validated at load.
* :mod:`alerting.sms` — drill isolation, what a provider's answer means, adaptive pacing.
* :mod:`alerting.cap`, :mod:`alerting.cap_check` — CAP 1.2 documents.

Nothing here imports Kafka, MQTT, Faust, HTTP clients, databases or ``geo``: the fan-out,
the sent log, status callbacks and the CAP feed folder are adapters in ``streams/``; the
worker adapts geo's zones and the store's subscribers to :class:`ZoneInfo` and
:class:`Recipient`.
"""

from __future__ import annotations

from alerting.hq import HQMachine, compute_stage
from alerting.machine import ActiveAlert, AlertMachine, AuditEntry, OperatorError, Reminder
from alerting.model import Recipient, ZoneInfo, mask_phone
from alerting.policy import DEFAULT_POLICIES, StagePolicy

__all__ = [
    "DEFAULT_POLICIES",
    "ActiveAlert",
    "AlertMachine",
    "AuditEntry",
    "HQMachine",
    "OperatorError",
    "Recipient",
    "Reminder",
    "StagePolicy",
    "ZoneInfo",
    "compute_stage",
    "mask_phone",
]
