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
``hold_s`` / ``min_dwell_s``
    A de-escalation needs the zone below the stage continuously for ``hold_s`` *and* the stage
    to have stood for ``min_dwell_s``. These are the off-delay (debounce) timer and the minimum
    duration of alarm management (ANSI/ISA-18.2-2016 and its technical report ISA-TR18.2.3 on
    deadband and on/off-delay; EEMUA 191 on chattering alarms): a signal oscillating around a
    line raises once and stays raised until it has really gone away. A rise during the hold is
    a rise from the held stage (the same alert: nothing if it comes back to the held stage, one
    ``escalate`` if it goes above it), so residents never get a lift and a re-issue for one
    event. The hold runs in event time: it ends at ``max(below since + hold_s, stage since +
    min_dwell_s)`` whoever looks at the zone then — a tick or the next detection — so the
    transitions depend on the detections alone, never on when the clock happened to be read.
    Where the law gives cancel levels the detector's station level already carries them, so
    the policy adds no delay on top. The holds are settings
    (``GYEONGBO_ALERTING__HOLD_S__<HAZARD>``, :func:`with_holds`); the defaults and their
    sources are in :data:`DEFAULT_POLICIES`.
``step_down_one``
    De-escalate one stage per transition above 주의 (O₃: 중대경보 → 경보 → 주의보 → 해제).
``expire_s``
    A station level older than this no longer counts (earthquake alerts are events: they lapse
    when no new detection confirms them).
``public``
    False for operator-only hazards (sensor health, docs/design.md §4): never SMS, never CAP.
``repeat_s``
    Remind operators of an alert nobody has acknowledged this long after they were last told
    of it, and again every ``repeat_s`` until it is acknowledged, silenced or cleared (None =
    never: an earthquake message is an event, not a condition that stands). Reminders go to
    operators only (``alerts.reminders``), never to residents. 30 min by default: our choice,
    not a published figure (a 10-minute gauge has reported three times meanwhile). A setting
    (``GYEONGBO_ALERTING__REPEAT_S__<HAZARD>``, 0 = never; :func:`with_repeats`).

>>> DEFAULT_POLICIES["flood"].hold_s
1800
>>> with_holds({"heavy_rain": 10_800})["heavy_rain"].hold_s
10800
>>> DEFAULT_POLICIES["ozone"].step_down_one
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

__all__ = ["DEFAULT_POLICIES", "StagePolicy", "policy_for", "with_holds", "with_repeats"]


@dataclass(frozen=True, slots=True)
class StagePolicy:
    quorum: int = 1
    confirm: tuple[int, int] = (1, 1)
    hold_s: int = 0
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
        if self.hold_s < 0 or self.min_dwell_s < 0:
            raise ValueError("hold_s and min_dwell_s must be >= 0")
        if self.repeat_s is not None and self.repeat_s <= 0:
            raise ValueError("repeat_s must be > 0 (None = never)")


DEFAULT_POLICIES: dict[str, StagePolicy] = {
    # Gauges are compared with fixed lines and chatter on them by a centimetre or two; a
    # receding flood wave falls by centimetres per hour. 30 min (three 10-minute HRFCO
    # readings) below the line before a stage steps down: our choice on ISA-TR18.2.3's
    # off-delay, long against gauge noise, short against a real recession.
    "flood": StagePolicy(hold_s=1800, min_dwell_s=1800),
    # Heavy rain is judged on 3 h and 12 h sums: after the 3 h sum falls below its line the 12 h
    # sum may still cross 110 mm while moderate rain goes on, and KMA lifts a 호우특보 only when
    # the criteria are no longer expected to be met. Observation alone can only show that as
    # time: 6 h, the minimum inter-event time that separates two storms in rainfall practice
    # (Wischmeier & Smith 1978, USDA Agriculture Handbook 537; the choice is reviewed by
    # Dunkerley 2008, Hydrological Processes 22, doi:10.1002/hyp.7122). Rain that comes back
    # within 6 h is the same storm, and the same alert.
    "heavy_rain": StagePolicy(hold_s=21_600, min_dwell_s=3600),
    # Legal cancel levels and the 2 h rule live in the detector's station level.
    "pm10": StagePolicy(),
    "pm25": StagePolicy(),
    # The law steps an ozone alert down one stage per hour (docs/design.md §3.2); the zone
    # likewise holds each stage an hour before the next step, whatever its stations do.
    "ozone": StagePolicy(step_down_one=True, min_dwell_s=3600),
    # Structural channels chatter on their lines: the detector confirms each stage by 2 of
    # the channel's last 3 readings (detectors/structural.py), so the zone takes it at once;
    # a vote here would count detections, which come only when a stage changes, and wait for
    # one that may never come. 30 min off-delay and dwell.
    "structural": StagePolicy(hold_s=1800, min_dwell_s=1800),
    # An earthquake message is an event: raise at once, lapse 30 min after the last detection.
    "earthquake": StagePolicy(expire_s=1800, repeat_s=None),
    "sensor_health": StagePolicy(hold_s=600, public=False),
}

_FALLBACK = StagePolicy(hold_s=1800, min_dwell_s=1800)


def policy_for(hazard: str, policies: dict[str, StagePolicy] | None = None) -> StagePolicy:
    table = DEFAULT_POLICIES if policies is None else policies
    return table.get(hazard, _FALLBACK)


def with_holds(
    holds: Mapping[str, int | None], base: Mapping[str, StagePolicy] | None = None
) -> dict[str, StagePolicy]:
    """The policies with the given holds (seconds) in place of the defaults; None keeps one.

    A hazard without a policy of its own gets the fallback's with that hold.
    """
    table = dict(DEFAULT_POLICIES if base is None else base)
    for hazard, hold in holds.items():
        if hold is not None:
            table[hazard] = replace(table.get(hazard, _FALLBACK), hold_s=int(hold))
    return table


def with_repeats(
    repeats: Mapping[str, int | None], base: Mapping[str, StagePolicy] | None = None
) -> dict[str, StagePolicy]:
    """The policies with the given reminder periods (seconds; 0 = never remind) in place of
    the defaults; None keeps one.

    >>> with_repeats({"flood": 60})["flood"].repeat_s
    60
    >>> with_repeats({"flood": 0})["flood"].repeat_s is None
    True
    """
    table = dict(DEFAULT_POLICIES if base is None else base)
    for hazard, repeat in repeats.items():
        if repeat is not None:
            table[hazard] = replace(
                table.get(hazard, _FALLBACK), repeat_s=int(repeat) if repeat > 0 else None
            )
    return table
