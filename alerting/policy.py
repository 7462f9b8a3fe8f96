"""Per-hazard staging policy: how station levels become a zone's public stage.

The rules that turn readings into *station* levels live in ``detectors/`` and carry the legal
hysteresis where the law sets it (PM10/PM2.5 cancel levels below their issue levels, O₃ stepping
down one stage at a time, the PM ≥ 2 h persistence rule; Air Quality Conservation Act,
Enforcement Rule Annex 7; docs/design.md §3.2). This module decides how the *zone* follows them:

``quorum``
    Spatial N-of-M: a zone stands at level L when at least ``quorum`` of its M stations stand at
    L or above (1 = the maximum over stations, Seoul's per-zone ozone practice;
    docs/design.md §3.2).
    When the zone has fewer than ``quorum`` stations, all of them must agree.
``confirm``
    Temporal N-of-M (``n``, ``m``): a raise or escalation to L needs ``n`` of the zone's last
    ``m`` evaluated samples at L or above — the "m-of-n" debounce of alarm practice.
``off_delay_s`` / ``min_dwell_s``
    A de-escalation needs the zone below the stage continuously for ``off_delay_s`` *and* the
    stage to have stood for ``min_dwell_s``. These are the off-delay (debounce) timer and the
    minimum duration of alarm management (ANSI/ISA-18.2-2016 and its technical report
    ISA-TR18.2.3 on deadband and on/off-delay; EEMUA 191 on chattering alarms): a signal
    oscillating around a line raises once and stays raised until it has really gone away.
    Where the law gives cancel levels the detector's station level already carries them, so
    the policy adds no delay on top.
``step_down_one``
    De-escalate one stage per transition above 주의 (O₃: 중대경보 → 경보 → 주의보 → 해제).
``expire_s``
    A station level older than this no longer counts (earthquake alerts are events: they lapse
    when no new detection confirms them).
``public``
    False for operator-only hazards (sensor health, docs/design.md §4): never SMS, never CAP.

>>> DEFAULT_POLICIES["flood"].off_delay_s
1800
>>> DEFAULT_POLICIES["ozone"].step_down_one
True
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_POLICIES", "StagePolicy", "policy_for"]


@dataclass(frozen=True, slots=True)
class StagePolicy:
    quorum: int = 1
    confirm: tuple[int, int] = (1, 1)
    off_delay_s: int = 0
    min_dwell_s: int = 0
    step_down_one: bool = False
    expire_s: int | None = None
    public: bool = True
    #: Re-notify operators of an unacknowledged alert this often (None = never).
    repeat_s: int | None = 1800

    def __post_init__(self) -> None:
        n, m = self.confirm
        if not 1 <= n <= m:
            raise ValueError(f"confirm must be 1 <= n <= m, got {self.confirm}")
        if self.quorum < 1:
            raise ValueError("quorum must be >= 1")


DEFAULT_POLICIES: dict[str, StagePolicy] = {
    # Gauges are compared with fixed lines and may chatter on them: 30 min off-delay.
    "flood": StagePolicy(off_delay_s=1800, min_dwell_s=1800),
    "heavy_rain": StagePolicy(off_delay_s=3600, min_dwell_s=3600),
    # Legal cancel levels and the 2 h rule live in the detector's station level.
    "pm10": StagePolicy(),
    "pm25": StagePolicy(),
    "ozone": StagePolicy(step_down_one=True),
    # Structural channels are noisy: 2 of the last 3 samples over the line, 30 min off-delay.
    "structural": StagePolicy(confirm=(2, 3), off_delay_s=1800, min_dwell_s=1800),
    # An earthquake message is an event: raise at once, lapse 30 min after the last detection.
    "earthquake": StagePolicy(expire_s=1800, repeat_s=None),
    "sensor_health": StagePolicy(off_delay_s=600, public=False),
}

_FALLBACK = StagePolicy(off_delay_s=1800, min_dwell_s=1800)


def policy_for(hazard: str, policies: dict[str, StagePolicy] | None = None) -> StagePolicy:
    table = DEFAULT_POLICIES if policies is None else policies
    return table.get(hazard, _FALLBACK)
