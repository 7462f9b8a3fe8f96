"""The drill report's per-person section: counts, cycles, the scenario's bounds."""

from __future__ import annotations

from gyeongbo.registry import load_registry
from gyeongbo.settings import Settings
from simulators.report import (
    Observed,
    limit_findings,
    recipient_counts,
    reraise_cycles,
)
from simulators.scenario import load_checked


def test_every_shipped_scenario_states_its_per_person_bounds() -> None:
    settings = Settings()
    reg = load_registry(settings.paths.stations)
    scenarios = [
        p.stem
        for p in sorted(settings.paths.scenarios.glob("*.yaml"))
        if "gyeongbo.faults/v1" not in p.read_text()
    ]
    assert len(scenarios) >= 4
    for name in scenarios:
        sc = load_checked(name, reg, directory=settings.paths.scenarios)
        assert sc.max_messages_per_recipient is not None, name
        assert sc.max_cycles is not None, name


def test_counts_per_recipient_and_event_and_the_bounds_fail_a_drill() -> None:
    sent = [
        {"recipient": "drill-seoul-hq", "hazard": "flood", "event": "f1", "kind": k}
        for k in ("rise", "rise", "step_down", "all_clear")
    ] + [
        {"recipient": "drill-seoul-hq", "hazard": "heavy_rain", "event": "r1", "kind": k}
        for k in ("rise", "all_clear", "rise", "rise", "step_down", "all_clear")
    ]
    counts = recipient_counts(sent)
    assert [(c.hazard, c.messages) for c in counts] == [("heavy_rain", 6), ("flood", 4)]
    obs = [
        Observed("heavy_rain", "11010", lv, pv, float(t))
        for t, (pv, lv) in enumerate(
            [
                ("cleared", "caution"),
                ("caution", "cleared"),
                ("cleared", "caution"),
                ("caution", "alert"),
                ("alert", "caution"),
                ("caution", "cleared"),
            ]
        )
    ] + [Observed("flood", "11030", "caution", "attention", 0.0)]
    cycles = reraise_cycles(obs)
    assert [(c.hazard, c.zone, c.cycles) for c in cycles] == [
        ("heavy_rain", "11010", 1),
        ("flood", "11030", 0),
    ]
    ok = limit_findings(counts, cycles, max_messages={"flood": 4, "heavy_rain": 6}, max_cycles=1)
    assert ok == []
    bad = limit_findings(counts, cycles, max_messages={"*": 4}, max_cycles={"heavy_rain": 0})
    assert bad == [
        "drill-seoul-hq got 6 heavy_rain messages for event r1 (at most 4)",
        "heavy_rain in 11010 was lifted and raised again 1 time(s) (at most 0)",
    ]
