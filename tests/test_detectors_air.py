"""Air-quality rules: PM 2-hour persistence and cancel levels, O₃ step-down, hourly means."""

from __future__ import annotations

import math

import pytest

from detectors.engine import DetectorSet
from gyeongbo.batch import ReadingBatch
from gyeongbo.registry import REPO_ROOT, Registry, load_registry

YONGSAN = "111131"  # interval 300 s → 12 readings an hour, 9 make a valid hourly mean
H = 3_600_000
T0 = 1_700_000_000_000 // H * H  # an hour boundary


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def hours(means: list[float], name: str, *, station: str = YONGSAN) -> ReadingBatch:
    """Twelve 5-minute readings per hour at the given hourly means, then one closing reading."""
    rows = []
    for k, mean in enumerate([*means, math.nan]):
        for j in range(12 if k < len(means) else 2):
            v = mean + (2.0 if j % 2 else -2.0) * (0.001 if name == "o3_ppm" else 1.0)
            rows.append(
                {
                    "station": station,
                    "kind": "air_quality",
                    "ts_ms": T0 + k * H + j * 300_000,
                    "values": {name: v},
                }
            )
    return ReadingBatch.from_rows(rows)


def public(dets: list) -> list[tuple[int, str, str, float]]:  # type: ignore[type-arg]
    return [((d.ts_ms - T0) // H, d.rule, d.level, round(d.value, 3)) for d in dets if d.public]


def test_pm10_needs_two_hours_and_cancels_below_100(registry: Registry) -> None:
    means = [120, 160, 140, 160, 170, 310, 320, 140, 120, 99]
    dets = DetectorSet(registry).process(hours([float(m) for m in means], "pm10_ugm3"))
    # ts is the end of the hour that decided: hour 4 (170 after 160) closes at T0 + 5 h.
    assert public(dets) == [
        (5, "air.pm10", "caution", 170.0),
        (7, "air.pm10", "alert", 320.0),
        (8, "air.pm10", "caution", 140.0),
        (10, "air.pm10", "cleared", 99.0),
    ]
    pub = [d for d in dets if d.public]
    assert [d.threshold for d in pub] == [150.0, 300.0, 150.0, 100.0]


def test_pm25_lines_and_the_cancel_level_holds_between_35_and_75(registry: Registry) -> None:
    means = [80.0, 76.0, 60.0, 40.0, 36.0, 34.0]
    got = public(DetectorSet(registry).process(hours(means, "pm25_ugm3")))
    assert got == [(2, "air.pm25", "caution", 76.0), (6, "air.pm25", "cleared", 34.0)]


def test_pm_missing_hour_breaks_persistence(registry: Registry) -> None:
    # Hour 1 has only 3 readings (< 75 % capture) → missing: 160 | gap | 160 does not issue.
    b = hours([160.0, 160.0, 160.0], "pm10_ugm3")
    rows = [r for r in b.to_rows() if not (H <= r["ts_ms"] - T0 < 2 * H and r["ts_ms"] % 1_200_000)]
    dets = DetectorSet(registry).process(ReadingBatch.from_rows(rows))
    assert public(dets) == []


def test_ozone_steps_down_one_level_per_hour(registry: Registry) -> None:
    means = [0.10, 0.13, 0.55, 0.05, 0.05, 0.05]
    got = public(DetectorSet(registry).process(hours(means, "o3_ppm")))
    assert got == [
        (2, "air.o3", "caution", 0.13),
        (3, "air.o3", "serious", 0.55),
        (4, "air.o3", "alert", 0.05),
        (5, "air.o3", "caution", 0.05),
        (6, "air.o3", "cleared", 0.05),
    ]


def test_hourly_means_are_exposed_for_regional_averages(registry: Registry) -> None:
    ds = DetectorSet(registry)
    ds.process(hours([50.0, 60.0], "pm10_ugm3"))
    hm = ds.closed_hourly_means()
    pm10 = [
        (int((h - T0) // H), float(m))
        for h, n, m in zip(hm.hour_ms, hm.name, hm.mean, strict=True)
        if n == "pm10_ugm3"
    ]
    assert pm10 == [(0, 50.0), (1, 60.0)]
    assert set(hm.station.tolist()) == {YONGSAN} and not hm.exercise.any()
    assert len(ds.closed_hourly_means()) == 6  # (the other channels' hours are missing)
    assert ds.close_hours(T0 + 2 * H + 60_000) == []
    assert len(ds.closed_hourly_means()) == 0  # the last call closed nothing
    assert ds.latest_hourly_means()[YONGSAN]["pm10_ugm3"] == 60.0


def test_late_reading_within_grace_lands_in_its_hour(registry: Registry) -> None:
    ds = DetectorSet(registry)
    rows = [
        {
            "station": YONGSAN,
            "kind": "air_quality",
            "ts_ms": T0 + j * 300_000,
            "values": {"pm25_ugm3": 10.0},
        }
        for j in range(11)
    ]
    rows.append(
        {
            "station": YONGSAN,
            "kind": "air_quality",
            "ts_ms": T0 + H + 60_000,
            "values": {"pm25_ugm3": 10.0},
        }
    )
    ds.process(ReadingBatch.from_rows(rows))
    # The 11th five-minute reading of hour 0 arrives after a reading of hour 1 (out of order).
    late = {
        "station": YONGSAN,
        "kind": "air_quality",
        "ts_ms": T0 + 11 * 300_000,
        "values": {"pm25_ugm3": 130.0},
    }
    ds.process(ReadingBatch.from_rows([late]))
    closing = {
        "station": YONGSAN,
        "kind": "air_quality",
        "ts_ms": T0 + H + 600_000,
        "values": {"pm25_ugm3": 10.0},
    }
    ds.process(ReadingBatch.from_rows([closing]))
    hm = ds.closed_hourly_means()
    assert hm.mean[hm.name == "pm25_ugm3"].tolist() == [20.0]  # (11 × 10 + 130) / 12
    assert ds.stats["late"] == 0


def _without_closing_reading(means: list[float], name: str) -> ReadingBatch:
    full = hours(means, name)
    keep = full.ts_ms < T0 + len(means) * H  # drop the readings of the hour after
    return full.take(keep)


def test_a_station_that_falls_silent_has_its_last_hour_closed_on_the_clock(
    registry: Registry,
) -> None:
    """Two hours over 75 µg/m³, then silence: the second hour closes at 2 h + grace on the
    clock, not never, and decides the 주의 (Annex 7 persistence)."""
    ds = DetectorSet(registry)
    assert public(ds.process(_without_closing_reading([80.0, 90.0], "pm25_ugm3"))) == []
    grace = ds.params.hour_grace_ms
    assert ds.close_hours(T0 + 2 * H + grace - 1) == []  # not yet: late readings may come
    got = ds.close_hours(T0 + 2 * H + grace)
    assert public(got) == [(2, "air.pm25", "caution", 90.0)]
    hm = ds.closed_hourly_means()  # the hour the clock closed, for its reader
    assert [(int((h - T0) // H), float(m)) for h, n, m in zip(
        hm.hour_ms, hm.name, hm.mean, strict=True) if n == "pm25_ugm3"] == [(1, 90.0)]  # fmt: skip
    assert ds.touched_stations() == [YONGSAN]
    assert ds.close_hours(T0 + 2 * H + grace + 60_000) == []  # closed once
    # The station comes back in hour 3: its readings land in hour 3, nothing re-closes.
    back = ReadingBatch.from_rows(
        [
            {
                "station": YONGSAN,
                "kind": "air_quality",
                "ts_ms": T0 + 3 * H + j * 300_000,
                "values": {"pm25_ugm3": 95.0},
            }
            for j in range(12)
        ]
    )
    assert public(ds.process(back)) == []
    assert public(ds.close_hours(T0 + 4 * H + grace)) == []  # 주의 already stands


def test_clock_closing_keeps_drills_on_their_own_clock(registry: Registry) -> None:
    ds = DetectorSet(registry)
    drill = _without_closing_reading([80.0, 90.0], "pm25_ugm3")
    drill = ReadingBatch.from_rows({**r, "exercise": True} for r in drill.to_rows())
    ds.process(drill)
    late = T0 + 2 * H + ds.params.hour_grace_ms
    assert ds.close_hours(late + 10 * H) == []  # the wall clock does not close drill hours
    got = ds.close_hours(late + 10 * H, exercise_now_ms=late)
    assert [(d.rule, d.level, d.exercise) for d in got if d.public] == [
        ("air.pm25", "caution", True)
    ]


def test_closed_hours_reach_a_reader_once_each_and_are_not_kept_for_the_workers_life(
    registry: Registry,
) -> None:
    """A worker runs for months and nothing reads its closed hours: they are held for the
    call that closed them only, each hour once, so the detector set does not grow with them."""
    ds = DetectorSet(registry)

    def hour(k: int) -> ReadingBatch:  # hour k's readings from :05; the first closes k - 1
        return ReadingBatch.from_rows(
            {
                "station": YONGSAN,
                "kind": "air_quality",
                "ts_ms": T0 + k * H + (j + 1) * 300_000,
                "values": {
                    "pm10_ugm3": 40.0 + k % 7 + wiggle(j),
                    "pm25_ugm3": 20.0 + wiggle(j),
                    "o3_ppm": 0.03 + 0.001 * wiggle(j),
                },
            }
            for j in range(11)
        )

    def wiggle(j: int) -> float:  # a live analyser is never flat; the mean is the centre
        return 0.0 if j == 10 else (1.0 if j % 2 else -1.0)

    def seen() -> list[tuple[int, str, float]]:
        hm = ds.closed_hourly_means()
        return [
            (int((h - T0) // H), str(n), round(float(m), 4))
            for h, n, m in zip(hm.hour_ms, hm.name, hm.mean, strict=True)
        ]

    for k in range(30):
        ds.process(hour(k))
        got = seen()
        assert got == ([] if k == 0 else [
            (k - 1, "pm10_ugm3", 40.0 + (k - 1) % 7),
            (k - 1, "pm25_ugm3", 20.0),
            (k - 1, "o3_ppm", 0.03),
        ])  # fmt: skip
    for k in range(30, 150):  # five days of hours that nobody reads
        ds.process(hour(k))
    # Only the last call's hour is held: before, the 360 channel-hours nobody read stayed
    # in the detector set (and in a worker's memory for its life).
    assert [h for h, _, _ in seen()] == [148, 148, 148]
