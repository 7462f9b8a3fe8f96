"""Heavy rain, structural and seismic rules: readings in, detections out."""

from __future__ import annotations

import numpy as np
import pytest

from detectors import seismic
from detectors.engine import DetectorSet
from gyeongbo.batch import ReadingBatch
from gyeongbo.registry import REPO_ROOT, Registry, load_registry

T0 = 1_596_672_000_000  # 2020-08-06 00:00 UTC, a 10-minute boundary
M = 60_000


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(REPO_ROOT / "config" / "stations.yaml")


def run(registry: Registry, rows: list[dict]) -> list[tuple[int, str, str, float]]:  # type: ignore[type-arg]
    dets = DetectorSet(registry).process(ReadingBatch.from_rows(rows))
    return [((d.ts_ms - T0) // M, d.rule, d.level, round(d.value, 4)) for d in dets if d.public]


def test_heavy_rain_3h_and_12h_criteria(registry: Registry) -> None:
    # Seoul ASOS: 10 mm per 10 min for 100 min, then dry, then drizzle for 12 h.
    rows = [
        {
            "station": "108",
            "kind": "rainfall",
            "ts_ms": T0 + k * 10 * M,
            "values": {"rain_mm": 10.0 if 1 <= k <= 10 else 0.0, "interval_s": 600},
        }
        for k in range(1, 40)
    ]
    # 3-h window at minute 200 holds the readings of minutes 30–100 (80 mm): back to caution;
    # at minute 230 it holds 60–100 (50 mm) and 12 h holds 100 mm < 110: cleared. Each change
    # reports the window nearest its line: 3 h until the clear, where 12 h (100 of 110 mm)
    # is nearer than 3 h (50 of 60).
    assert run(registry, rows) == [
        (60, "rain.kma_heavy_rain", "caution", 60.0),
        (90, "rain.kma_heavy_rain", "alert", 90.0),
        (200, "rain.kma_heavy_rain", "caution", 80.0),
        (230, "rain.kma_heavy_rain", "cleared", 100.0),
    ]


def test_heavy_rain_12h_accumulation_alone_raises_caution(registry: Registry) -> None:
    # 2 mm every 10 min: 3 h = 36 mm never reaches 60; 12 h reaches 110 mm at reading 55 and
    # tops out at 144 mm (< 180), so caution is raised once and held, on the 12-hour sum and
    # line (a 3-hour 36 mm against 60 would read as no reason to warn).
    rows = [
        {"station": "108", "kind": "rainfall", "ts_ms": T0 + k * 10 * M, "values": {"rain_mm": 2.0}}
        for k in range(1, 115)
    ]
    assert run(registry, rows) == [(550, "rain.kma_heavy_rain", "caution", 110.0)]
    (det,) = [d for d in DetectorSet(registry).process(ReadingBatch.from_rows(rows)) if d.public]
    assert det.threshold == 110.0 and det.details["window_h"] == 12
    assert det.details["rain_3h_mm"] == 36.0


def test_structural_60_80_100_percent_of_allowable(registry: Registry) -> None:
    # Seongsu pier 7: tilt allowable 0.002 rad, crack 5 mm. Each stage on two readings in a
    # row: the channel moves at the second (2 of its last 3 readings; one alone moves nothing).
    sid = "SFC-SEONGSU-P7"
    seq = [0.0010, 0.0012, 0.0012, 0.0016, 0.0016, 0.0020, 0.0020]
    seq += [0.0017, 0.0017, 0.0011, 0.0011]
    rows = [
        {
            "station": sid,
            "kind": "structural",
            "ts_ms": T0 + 10 * k * M,
            "values": {"tilt_rad": v, "crack_mm": 1.0 + 0.01 * k},
        }
        for k, v in enumerate(seq)
    ]
    for k, crack in ((11, 2.6), (12, 4.1), (13, 4.1)):  # a crack opening (≤ 10 mm/h is possible)
        rows.append(
            {
                "station": sid,
                "kind": "structural",
                "ts_ms": T0 + 10 * k * M,
                "values": {"tilt_rad": 0.0011, "crack_mm": crack},
            }
        )
    assert run(registry, rows) == [
        (20, "structural.tilt_rad", "caution", 0.0012),
        (40, "structural.tilt_rad", "alert", 0.0016),
        (60, "structural.tilt_rad", "serious", 0.002),
        (80, "structural.tilt_rad", "alert", 0.0017),
        (100, "structural.tilt_rad", "cleared", 0.0011),
        (130, "structural.crack_mm", "alert", 4.1),
    ]


def test_seismic_pga_intensity_level_is_held_then_cleared(registry: Registry) -> None:
    sid = "KMA-GYEONGJU-ACC"
    pga = [0.0005, 0.01, 0.12, 0.05, 0.001] + [0.001] * 60
    rows = [
        {"station": sid, "kind": "seismic", "ts_ms": T0 + k * 1000, "values": {"pga_g": v}}
        for k, v in enumerate(pga)
    ]
    dets = DetectorSet(registry).process(ReadingBatch.from_rows(rows))
    got = [((d.ts_ms - T0) // 1000, d.level, d.details["intensity"]) for d in dets if d.public]
    # 0.01 g → MMI 3.18 (III, 주의); 0.12 g → 5.92 (VI, 경계); 0.05 g → 4.72 (V, 경계) renews
    # the hold at 3 s; held 60 s, then cleared by the first quiet reading after 63 s.
    assert got == [(1, "caution", 3.18), (2, "alert", 5.92), (63, "cleared", 1.0)]


def test_catalogue_magnitude_lines() -> None:
    """The catalogue detection's own level and nationwide flag (KMA classes: geo.kma_quake)."""
    mags = np.array([6.0, 5.99, 5.0, 4.99, 3.5, 3.49, 2.0, 1.99])
    assert seismic.magnitude_level(mags).tolist() == [4, 3, 3, 2, 2, 1, 1, 0]
    assert seismic.nationwide(mags).tolist() == [True] * 3 + [False] * 5


def test_wald_1999_relation_is_continuous_at_intensity_v() -> None:
    pga_gal = 10 ** ((5.0 + 1.66) / 3.66)  # where the upper branch gives V
    i = seismic.intensity(np.array([pga_gal * 0.999, pga_gal * 1.001]) / 980.665)
    assert i[0] == pytest.approx(5.0, abs=0.01) and i[1] == pytest.approx(5.0, abs=0.01)
