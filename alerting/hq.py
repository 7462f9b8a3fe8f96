"""The headquarters' emergency stage machine (비상 1·2·3단계), separate from alert stages.

Rules (Ministry of the Interior and Safety, storm and flood countermeasures for heavy rain,
heavy snow and typhoons; docs/design.md §4), counted over provinces (시도) where a warning of the
hazard group stands:

* 비상 1단계 when a 주의보 (our 주의 or above) stands in ≥ 4 provinces, or a 경보 (경계 or above)
  in ≥ 3;
* 비상 2단계 when a 경보 stands in ≥ 4 provinces;
* 비상 3단계 on nationwide large-scale damage: an operator decision, never computed.

The machine follows the alert events of its hazard group (``heavy_rain`` by default), keeps
which level stands in which zone of which province, and **proposes** a stage when the rule's
stage differs from the standing one (docs/design.md §4: stage changes are proposed to operators and
recorded). Operators confirm a proposal or set a stage by hand; stages may jump (2022 typhoon
Hinnamnor: 1 → 3) and come down independently of the alerts (2023-07-19: 3 → 1 while the
crisis level stayed 심각). While at 3단계 the rule proposes no de-escalation: leaving 3 is the
operator's call. With ``auto_escalate`` a computed rise is applied at once (action
``confirm`` by ``rule``); de-escalations are always proposals.

A proposal stands until it is confirmed, replaced by a different computed stage, or the rule
has agreed with the standing stage for ``withdraw_after_s`` of event time (default 1 h). A dip
shorter than that is not a new situation: operators are not asked twice. It also keeps the
machine's output independent of the order in which alert events of the same instant arrive
from different partitions (one province clearing and another rising at the same timestamp
would otherwise withdraw and re-issue the proposal, or not, by arrival order).

Exercise alerts drive a separate exercise headquarters state.

Operators' decisions (:meth:`HQMachine.confirm`, :meth:`HQMachine.set_stage`) reach the machine
as commands on the same ordered input as the alert events; each carries a ``command_id``, and
a command applied already is ignored (a replay after a crash changes nothing and audits
nothing). Every operator decision, applied or refused, is kept in the namespace's audit log
(:meth:`HQMachine.audit_log`) with who, when, what and why.

>>> hq = HQMachine()
>>> evs = hq.feed_levels({"11": "caution", "41": "caution", "42": "caution", "43": "caution"},
...                      ts_ms=0)
>>> [(e.action, e.previous, e.stage) for e in evs]
[('propose', 0, 1)]
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from alerting.machine import AuditEntry
from alerting.model import parse_rfc3339_ms, province_of, rfc3339
from gyeongbo.events import AlertEvent, HQStageEvent
from gyeongbo.vocab import Level

__all__ = ["HQMachine", "HQRecord", "compute_stage", "stage_name"]

_HISTORY_MAX = 500
#: Alert events remembered per namespace to recognise a replayed one (a worker that crashed
#: after sending an alert transition and before recording it sends it again).
_APPLIED_MAX = 4096


def compute_stage(levels: Mapping[str, str]) -> int:
    """The rule's stage from the level standing per province.

    >>> compute_stage({"11": "alert", "41": "alert", "42": "alert"})
    1
    >>> compute_stage({"11": "alert", "41": "serious", "42": "alert", "43": "alert"})
    2
    >>> compute_stage({"11": "caution", "41": "caution", "42": "alert"})
    0
    """
    lv = [Level.parse(v) for v in levels.values()]
    n_warn = sum(1 for v in lv if v >= Level.ALERT)
    n_watch = sum(1 for v in lv if v >= Level.CAUTION)
    if n_warn >= 4:
        return 2
    if n_watch >= 4 or n_warn >= 3:
        return 1
    return 0


def stage_name(stage: int) -> str:
    """The stage as operators say it.

    >>> stage_name(0), stage_name(2)
    ('평시', '비상 2단계')
    """
    return "평시" if stage == 0 else f"비상 {stage}단계"


class HQRecord(msgspec.Struct, frozen=True):
    ts_ms: int
    action: str
    previous: int
    stage: int
    actor: str | None
    reason: str | None
    event_id: str


class _NS(msgspec.Struct):
    stage: int = 0
    proposed: int | None = None
    #: province -> zone -> level name standing there
    zones: dict[str, dict[str, str]] = {}
    seq: int = 0
    history: list[HQRecord] = []
    #: The last alert events applied (``event_id``), oldest first: a repeat is a replay.
    applied: list[str] = []
    #: Event time (ms) since when the rule has agreed with the standing stage while a
    #: proposal stands; None when it does not.
    agreed_since_ms: int | None = None
    #: Operators' decisions, applied or refused (newest last).
    audit: list[AuditEntry] = []


class _HQState(msgspec.Struct):
    real: _NS = msgspec.field(default_factory=_NS)
    exercise: _NS = msgspec.field(default_factory=_NS)


class HQMachine:
    def __init__(
        self,
        *,
        hazard_group: str = "storm_flood",
        hazards: frozenset[str] = frozenset({"heavy_rain"}),
        auto_escalate: bool = False,
        withdraw_after_s: float = 3600.0,
    ) -> None:
        self.hazard_group = hazard_group
        self.hazards = hazards
        self.auto_escalate = auto_escalate
        self.withdraw_after_ms = int(withdraw_after_s * 1000)
        self._s = _HQState()

    def to_bytes(self) -> bytes:
        return msgspec.json.encode(self._s)

    def restore(self, data: bytes) -> HQMachine:
        self._s = msgspec.json.decode(data, type=_HQState)
        return self

    def _ns(self, exercise: bool) -> _NS:
        return self._s.exercise if exercise else self._s.real

    def stage(self, *, exercise: bool = False) -> int:
        return self._ns(exercise).stage

    def proposed(self, *, exercise: bool = False) -> int | None:
        return self._ns(exercise).proposed

    def history(self, *, exercise: bool = False) -> list[HQRecord]:
        return list(self._ns(exercise).history)

    def audit_log(self, *, exercise: bool = False) -> list[AuditEntry]:
        """Operators' decisions in this namespace: who, when, what, why, and the result."""
        return list(self._ns(exercise).audit)

    def province_levels(self, *, exercise: bool = False) -> dict[str, str]:
        """The highest level standing in each province (provinces with none are left out)."""
        out = {}
        for prov, zones in self._ns(exercise).zones.items():
            if zones:
                out[prov] = max(zones.values(), key=lambda v: Level.parse(v)).lower()
        return dict(sorted(out.items()))

    # ----------------------------------------------------------------- input
    def feed(self, event: AlertEvent, province: str | None = None) -> list[HQStageEvent]:
        """Follow one alert event; ``province`` defaults to the zone code's first two digits."""
        if event.hazard not in self.hazards or event.action in ("ack", "silence"):
            return []
        prov = province or province_of(event.zone)
        if prov is None:
            return []
        ns = self._ns(event.exercise)
        if event.event_id in ns.applied:
            return []  # a replay: applied already
        ns.applied.append(event.event_id)
        del ns.applied[:-_APPLIED_MAX]
        zones = ns.zones.setdefault(prov, {})
        if event.level == "cleared":
            zones.pop(event.zone, None)
        else:
            zones[event.zone] = event.level
        if not zones:
            del ns.zones[prov]
        return self._reconsider(ns, event.exercise, _ms(event.ts))

    def feed_levels(
        self, levels: Mapping[str, str], *, ts_ms: int, exercise: bool = False
    ) -> list[HQStageEvent]:
        """Replace the standing levels wholesale (province -> level), e.g. from geo's counts."""
        ns = self._ns(exercise)
        ns.zones = {p: {p: v} for p, v in levels.items() if v != "cleared"}
        return self._reconsider(ns, exercise, ts_ms)

    def _reconsider(self, ns: _NS, exercise: bool, ts_ms: int) -> list[HQStageEvent]:
        computed = compute_stage(self.province_levels(exercise=exercise))
        if computed == ns.stage or (ns.stage == 3 and computed < 3):
            if ns.proposed is not None:
                if ns.agreed_since_ms is None:
                    ns.agreed_since_ms = ts_ms
                if ts_ms - ns.agreed_since_ms >= self.withdraw_after_ms:
                    ns.proposed = ns.agreed_since_ms = None
            return []
        ns.agreed_since_ms = None
        if computed == ns.proposed:
            return []
        ns.proposed = computed
        out = [self._emit(ns, exercise, ts_ms, "propose", computed, None, "rule")]
        if self.auto_escalate and computed > ns.stage:
            out += self.confirm(actor="rule", ts_ms=ts_ms, reason="auto", exercise=exercise)
        return out

    # ----------------------------------------------------------------- operators
    def confirm(
        self,
        *,
        actor: str,
        ts_ms: int,
        reason: str = "",
        exercise: bool = False,
        command_id: str | None = None,
    ) -> list[HQStageEvent]:
        """Apply the standing proposal; ValueError (audited as refused) when none stands.

        A ``command_id`` already applied is a replay: nothing changes, nothing is audited."""
        ns = self._ns(exercise)
        if self._replayed(ns, command_id):
            return []
        target = self._target(exercise)
        if ns.proposed is None:
            why = "no stage proposal to confirm"
            self._audit(ns, ts_ms, actor, "hq_confirm", target, reason, f"rejected: {why}")
            raise ValueError(why)
        stage, ns.proposed, ns.agreed_since_ms = ns.proposed, None, None
        action = "confirm" if stage > ns.stage else "deescalate"
        self._audit(
            ns, ts_ms, actor, "hq_confirm", target, f"{reason} (→ {stage_name(stage)})", "ok"
        )
        return [self._emit(ns, exercise, ts_ms, action, stage, actor, reason)]

    def set_stage(
        self,
        stage: int,
        *,
        actor: str,
        ts_ms: int,
        reason: str,
        exercise: bool = False,
        command_id: str | None = None,
    ) -> list[HQStageEvent]:
        """Set the stage by hand (any jump, up or down); needs a reason. Setting the standing
        stage changes nothing (audited ``ok (unchanged)``) and leaves a proposal standing."""
        ns = self._ns(exercise)
        if self._replayed(ns, command_id):
            return []
        target = self._target(exercise)
        why = None
        if not 0 <= stage <= 3:
            why = "headquarters stage is 0..3"
        elif not reason:
            why = "a manual stage change needs a reason"
        if why is not None:
            self._audit(ns, ts_ms, actor, "hq_stage", target, reason, f"rejected: {why}")
            raise ValueError(why)
        said = f"{reason} (→ {stage_name(stage)})"
        if stage == ns.stage:
            self._audit(ns, ts_ms, actor, "hq_stage", target, said, "ok (unchanged)")
            return []
        ns.proposed = ns.agreed_since_ms = None
        action = "manual" if stage > ns.stage else "deescalate"
        self._audit(ns, ts_ms, actor, "hq_stage", target, said, "ok")
        return [self._emit(ns, exercise, ts_ms, action, stage, actor, reason)]

    def _replayed(self, ns: _NS, command_id: str | None) -> bool:
        """Whether the operator command ``command_id`` was applied already (else note it)."""
        if not command_id:
            return False
        key = f"cmd:{command_id}"
        if key in ns.applied:
            return True
        ns.applied.append(key)
        del ns.applied[:-_APPLIED_MAX]
        return False

    def _target(self, exercise: bool) -> str:
        return f"hq:{'exercise' if exercise else 'real'}:{self.hazard_group}"

    @staticmethod
    def _audit(
        ns: _NS, ts_ms: int, actor: str, action: str, target: str, reason: str, result: str
    ) -> None:
        ns.audit.append(AuditEntry(ts_ms, actor, action, target, reason, result))
        del ns.audit[:-_HISTORY_MAX]

    def _emit(
        self,
        ns: _NS,
        exercise: bool,
        ts_ms: int,
        action: str,
        stage: int,
        actor: str | None,
        reason: str | None,
    ) -> HQStageEvent:
        ns.seq += 1
        event_id = f"hq:{'exercise' if exercise else 'real'}:{self.hazard_group}#{ns.seq}"
        previous = ns.stage
        if action != "propose":
            ns.stage = stage
        provinces = self.province_levels(exercise=exercise)
        ns.history.append(HQRecord(ts_ms, action, previous, stage, actor, reason, event_id))
        del ns.history[:-_HISTORY_MAX]
        return HQStageEvent(
            hazard_group=self.hazard_group,
            stage=stage,
            previous=previous,
            ts=rfc3339(ts_ms),
            action=action,  # type: ignore[arg-type]
            exercise=exercise,
            provinces=provinces,
            evidence={
                "rule_stage": compute_stage(provinces),
                "reason": reason,
                "counts": {
                    "caution_or_above": sum(
                        1 for v in provinces.values() if Level.parse(v) >= Level.CAUTION
                    ),
                    "alert_or_above": sum(
                        1 for v in provinces.values() if Level.parse(v) >= Level.ALERT
                    ),
                },
            },
            event_id=event_id,
            actor=actor,
        )


def _ms(ts: str) -> int:
    return parse_rfc3339_ms(ts)
