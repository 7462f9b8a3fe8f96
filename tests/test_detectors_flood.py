"""Flood rules through the detector set: readings in, detections out (exact stages and times)."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from detectors.engine import DetectorSet
from gyeongbo.batch import ReadingBatch
from gyeongbo.registry import REPO_ROOT, Registry, load_registry

KST = timezone(timedelta(hours=9))
HANGANG = "1018683"  # 주의보 8.50 m, 경보 10.50 m, 심각 13.30 m, attention 4.5 m


def kst(h: int, m: int, day: int = 6) -> int:
    return int(datetime(2020, 8, day, h, m, tzinfo=KST).timestamp() * 1000)


def hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, KST).strftime("%H:%M")


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def water(points: list[tuple[int, float]], station: str = HANGANG, **kw: Any) -> ReadingBatch:
    return ReadingBatch.from_rows(
        {"station": station, "kind": "water_level", "ts_ms": t, "values": {"level_m": h}, **kw}
        for t, h in points
    )


def hangang_2020_08_06() -> list[tuple[int, float]]:
    """Hangang Bridge gauge, 2020-08-06 08:00–15:00 KST, every 10 min.

    Real anchors (HRFCO, docs/design.md §3.1): 8.36 m at 10:50 and 8.73 m at 14:40. In between
    and before, the level is interpolated linearly (07:… rise from an assumed 7.70 m at
    08:00, i.e. ~0.23 m/h, then ~0.10 m/h after 10:50), rounded to the gauge's cm.
    """
    out = []
    for k in range(43):
        mins = 10 * k
        h = 7.70 + 0.66 * mins / 170 if mins <= 170 else 8.36 + 0.37 * (mins - 170) / 230
        out.append((kst(8, 0) + mins * 60_000, round(h, 2)))
    return out


def test_hangang_real_event_forecast_raises_caution_before_the_crossing(registry: Registry) -> None:
    pts = hangang_2020_08_06()
    assert dict(pts)[kst(10, 50)] == 8.36 and dict(pts)[kst(14, 40)] == 8.73
    dets = DetectorSet(registry).process(water(pts))
    got = [(hhmm(d.ts_ms), d.rule, d.level, d.value, d.threshold) for d in dets]
    assert got == [
        ("08:00", "flood.gauge_stage", "attention", 7.7, 4.5),
        ("08:30", "flood.forecast", "attention", 7.82, 4.5),
        ("10:30", "flood.forecast", "caution", 8.28, 8.5),
        ("12:20", "flood.gauge_stage", "caution", 8.5, 8.5),
    ]
    fc = dets[2]
    assert fc.public and fc.hazard == "flood"
    # Raised before the official 11:00 주의보 and 110 min before the observed crossing.
    assert fc.ts_ms < kst(11, 0) < kst(12, 20)
    assert fc.projected_crossing_ms is not None and hhmm(fc.projected_crossing_ms) == "11:27"
    assert fc.confidence == pytest.approx(5 / 7)


def test_stages_follow_the_gauge_up_and_down_one_detection_per_change(registry: Registry) -> None:
    t0 = kst(0, 0)
    levels = [4.0, 4.6, 4.7, 8.6, 10.6, 13.4, 13.5, 9.0, 3.0]
    # Readings a day apart: no forecast fit spans them (gaps larger than the 60 min window).
    pts = [(t0 + k * 86_400_000, h) for k, h in enumerate(levels)]
    ds = DetectorSet(registry)
    got = [(d.rule, d.level, d.value, d.threshold) for d in ds.process(water(pts))]
    assert got == [
        ("flood.gauge_stage", "attention", 4.6, 4.5),
        ("flood.gauge_stage", "caution", 8.6, 8.5),
        ("flood.gauge_stage", "alert", 10.6, 10.5),
        ("flood.gauge_stage", "serious", 13.4, 13.3),
        ("flood.gauge_stage", "caution", 9.0, 13.3),
        ("flood.gauge_stage", "cleared", 3.0, 8.5),
    ]


def test_a_gauge_reporting_every_minute_gets_the_same_forecast(registry: Registry) -> None:
    """The ring keeps a point per 5 minutes of the gauge's time, whatever its interval: the
    same event at one reading a minute raises 주의 two hours ahead, as at ten minutes. (The
    ring used to replace its newest point with every reading within 5 minutes of it, so the
    newest time moved on with each reading and a gauge reporting more often than every
    5 minutes never had a second point, nor a forecast.)"""
    ten = hangang_2020_08_06()
    pts = [
        (t + k * 60_000, round(h + (h2 - h) * k / 10, 3))
        for (t, h), (_, h2) in itertools.pairwise(ten)
        for k in range(10)
    ]
    dets = DetectorSet(registry).process(water(pts))
    got = [(hhmm(d.ts_ms), d.rule, d.level, d.value, d.threshold) for d in dets]
    assert got == [
        ("08:00", "flood.gauge_stage", "attention", 7.7, 4.5),
        ("08:30", "flood.forecast", "attention", 7.82, 4.5),
        ("10:29", "flood.forecast", "caution", 8.276, 8.5),
        ("12:20", "flood.gauge_stage", "caution", 8.5, 8.5),
    ]
    caution = dets[2]
    assert caution.projected_crossing_ms is not None
    assert hhmm(caution.projected_crossing_ms) == "11:28"  # forecast ahead of the real 12:20


def test_forecast_clears_when_forecast_to_fall_back(registry: Registry) -> None:
    t0 = kst(9, 0)
    rise = [8.0, 8.1, 8.2, 8.3, 8.4]  # 0.6 m/h: caution forecast from the 4th point
    fall = [8.35, 8.3, 8.25, 8.2, 8.15, 8.1, 8.05]
    pts = [(t0 + k * 600_000, h) for k, h in enumerate(rise + fall)]
    dets = DetectorSet(registry).process(water(pts))
    got = [(hhmm(d.ts_ms), d.rule, d.level) for d in dets if d.rule == "flood.forecast"]
    assert got == [("09:30", "flood.forecast", "caution"), ("10:20", "flood.forecast", "attention")]
    assert dets[-1].confidence is not None and dets[-1].confidence >= 0.6
    assert dets[-1].projected_crossing_ms is None  # the fitted level is already below 8.5


def test_gauge_without_levels_never_raises_a_public_stage(registry: Registry) -> None:
    pts = [(kst(9, 0) + k * 600_000, 20.0 + k) for k in range(10)]
    dets = DetectorSet(registry).process(water(pts, station="1018640"))
    assert [d for d in dets if d.public] == []


def test_nan_and_gap_do_not_move_stages_or_fake_a_rate(registry: Registry) -> None:
    t0 = kst(9, 0)
    pts = [(t0, 8.0), (t0 + 600_000, float("nan")), (t0 + 1_200_000, 8.05)]
    # A 5-hour gap, then readings: the fit needs 4 points over 30 min inside the window again.
    later = t0 + 5 * 3_600_000
    pts += [(later + k * 600_000, 8.6 + 0.01 * k) for k in range(4)]
    ds = DetectorSet(registry)
    got = [(hhmm(d.ts_ms), d.rule, d.level) for d in ds.process(water(pts))]
    assert got == [
        ("09:00", "flood.gauge_stage", "attention"),
        ("14:00", "flood.gauge_stage", "caution"),
        ("14:30", "flood.forecast", "caution"),
    ]


def test_rise_forecast_is_per_micro_batch_independent(registry: Registry) -> None:
    """The same readings in one batch or one reading per batch give the same detections."""
    pts = hangang_2020_08_06()
    one = DetectorSet(registry).process(water(pts))
    ds = DetectorSet(registry)
    many = [d for p in pts for d in ds.process(water([p]))]
    assert one == many


def test_forecast_skip_bound_never_changes_a_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    # The fit is skipped where an interval bound proves the stage cannot change; compare with
    # the fit forced on every row, over random rises, falls, noise and reading spacings.
    from detectors import flood_forecast as ff

    rng = np.random.default_rng(5)
    m = 300
    levels = np.tile([4.0, 6.0, 8.0, 10.0], (m, 1))
    levels[: m // 4, 0] = np.nan
    forced, skipping = np.zeros(m, ff.FORECAST_DTYPE), np.zeros(m, ff.FORECAST_DTYPE)
    h = rng.uniform(2, 11, m)
    drift = rng.normal(0, 10 ** rng.uniform(-4, -1, m))
    t = 1_700_000_000_000
    skipped = 0
    real = ff._may_change
    for _ in range(80):
        t += int(rng.choice([10_000, 300_000, 600_000]))
        h = h + drift * rng.uniform(0, 3) + rng.normal(0, 0.02, m) * (rng.random(m) < 0.3)
        ts = np.full(m, t)
        monkeypatch.setattr(ff, "_may_change", lambda tt, *a: np.ones(len(tt), dtype=bool))
        a = ff.update(forced, ts, h, levels)
        monkeypatch.setattr(ff, "_may_change", real)
        b = ff.update(skipping, ts, h, levels)
        assert np.array_equal(a.level, b.level) and np.array_equal(a.changed, b.changed)
        for name in ("threshold", "crossing_ms", "confidence"):
            assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True)
        skipped += int(np.isnan(b.fitted).sum() - np.isnan(a.fitted).sum())
    assert skipped > 0.1 * 80 * m  # the bound does skip work
