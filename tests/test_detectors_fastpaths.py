"""Fast paths of the detector set give the same answers as the general ones.

Each shortcut (small-batch reductions, the hash matmul, the id probe, uniform anomaly
weights, skipped hourly closing, the per-batch grouping) is taken or not depending on the
batch, so the same data is pushed through both and compared bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors import anomaly, flood_forecast, health, structural
from detectors.engine import (
    _HASH_MUL,
    _PACK_MUL,
    DetectorSet,
    _by_slot,
    _hash_ids,
    _HashTable,
    _pack_ids,
    _PackedTable,
)
from gyeongbo.batch import KIND_CODES, NO_SEQ, ReadingBatch
from gyeongbo.registry import parse_registry
from gyeongbo.vocab import Kind


def _ids(rng: np.random.Generator, n: int, width: int) -> list[str]:
    return [
        "".join(chr(int(c)) for c in rng.integers(33, 127, int(rng.integers(1, width + 1))))
        for _ in range(n)
    ]


def test_hash_matmul_equals_the_column_loop() -> None:
    rng = np.random.default_rng(1)
    ids = np.array(_ids(rng, 5000, 12))
    whole = _hash_ids(ids)  # > 4096 rows: the column loop
    assert whole is not None
    for lo, hi in ((0, 7), (100, 4196)):  # ≤ 4096 rows: the matmul
        part = _hash_ids(ids[lo:hi])
        assert part is not None and part.tolist() == whole[lo:hi].tolist()
    codes = np.ascontiguousarray(ids[:50]).view(np.uint32).reshape(50, -1)
    ref = [
        sum(int(c) * int(k) for c, k in zip(row, _HASH_MUL[: len(row)], strict=True)) % 2**64
        for row in codes
    ]
    assert whole[:50].tolist() == ref


def test_id_probe_matches_a_sorted_search_with_collisions_and_absent_ids() -> None:
    rng = np.random.default_rng(2)
    reg = np.unique(np.array(_ids(rng, 3000, 9)))
    h = _hash_ids(reg)
    assert h is not None
    # Crowd the table: every hash shares its top bits with many others (long probe runs).
    crowded = h & np.uint64(0x0000_FFFF_FFFF_FFFF)
    for keys in (h, crowded):
        table = _HashTable(keys)
        wanted = np.concatenate(
            [reg[rng.permutation(len(reg))[:2000]], np.array(_ids(rng, 500, 9))]
        )
        hw = _hash_ids(wanted)
        assert hw is not None
        if keys is crowded:
            hw = hw & np.uint64(0x0000_FFFF_FFFF_FFFF)
        got = table.find_ids(hw, reg, wanted)
        i = np.minimum(np.searchsorted(reg, wanted), len(reg) - 1)
        ref = np.where(reg[i] == wanted, i, -1)
        assert got.tolist() == ref.tolist()


def test_packed_id_table_finds_ids_at_the_end_of_long_probe_runs() -> None:
    # 40 ids with the same home cell make a probe run of 40 cells: ids are found past the
    # first gathered window of cells and past the run-by-run loop, absent ids miss.
    rng = np.random.default_rng(12)
    n = 2000
    bits = (4 * n - 1).bit_length()  # the table size _HashTable picks for n ids
    cand = np.unique(np.array([f"{int(v):08d}" for v in rng.integers(0, 10**8, 400_000)]))
    packed = _pack_ids(cand)
    assert packed is not None
    home = (packed[0] * _PACK_MUL) >> np.uint64(64 - bits)
    cells, counts = np.unique(home, return_counts=True)
    crowd = cand[home == cells[np.argmax(counts)]]
    assert len(crowd) >= 40
    rest = cand[home != cells[np.argmax(counts)]]
    reg = np.unique(np.concatenate([crowd[:40], rest[: n - 40]]))
    table = _PackedTable.build(reg)
    assert table is not None and table.mask == (1 << bits) - 1
    wanted = np.concatenate([crowd[:40][::-1], rng.permutation(reg)[:500], crowd[40:], rest[-50:]])
    got = table.find(wanted)
    assert got is not None
    i = np.minimum(np.searchsorted(reg, wanted), len(reg) - 1)
    assert got.tolist() == np.where(reg[i] == wanted, i, -1).tolist()
    assert int(np.count_nonzero(got >= 0)) == 540


def test_packed_id_table_matches_a_sorted_search() -> None:
    # Short ids (≤ 8 code points < 256) are looked up as packed integers: absent ids, ids
    # longer than 8, and ids whose code points only agree in their low byte must miss.
    rng = np.random.default_rng(9)
    reg = np.unique(np.array([*_ids(rng, 3000, 8), "\xe9t\xe9", "S0000001", "a"]))
    table = _PackedTable.build(reg)
    assert table is not None
    shifted = [chr(ord(i[0]) + 256) + i[1:] for i in reg[:50].tolist()]  # same low bytes
    longer = [i + "x" * (9 - len(i)) for i in reg[50:100].tolist()]  # 9 code points
    wanted = np.array(
        reg[rng.permutation(len(reg))].tolist() + _ids(rng, 500, 8) + shifted + longer + [""]
    )
    got = table.find(wanted)
    assert got is not None
    i = np.minimum(np.searchsorted(reg, wanted), len(reg) - 1)
    ref = np.where(reg[i] == wanted, i, -1)
    assert got.tolist() == ref.tolist()
    assert int(np.count_nonzero(ref >= 0)) >= len(reg)
    narrow = reg[:10].astype("<U8")  # another width: the same keys
    found = table.find(narrow)
    assert found is not None and found.tolist() == list(range(10))
    assert table.find(np.array([1, 2])) is None  # not strings: the caller falls back
    assert _PackedTable.build(np.array(["a" * 9, "b"])) is None
    assert _PackedTable.build(np.array(["\uac00", "b"])) is None


def test_long_or_non_latin_ids_use_the_hash_probe() -> None:
    stations = [
        {"id": sid, "kind": "seismic", "name": "q", "name_en": "q", "lat": 36.0,
         "lon": 127.0, "gateway": "bench", "interval_s": 10}
        for sid in ("LONG-STATION-ID-1", "S1")
    ]  # fmt: skip
    reg = parse_registry(
        {"gateways": [{"id": "bench", "name": "bench"}], "stations": stations}, path="<t>"
    )
    ds = DetectorSet(reg)
    assert ds._ids.packed is None and ds._ids.table is not None
    ids = np.array(["S1", "\uac00\uac01", "nope", "LONG-STATION-ID-1"])
    idx, known = ds._lookup(ids)
    assert known.tolist() == [True, False, False, True]
    assert [str(ds.ids[j]) for j in idx[known].tolist()] == ["S1", "LONG-STATION-ID-1"]


def test_row_reductions_small_and_large_paths_agree() -> None:
    rng = np.random.default_rng(3)
    a = rng.normal(size=(600, 12))
    a[rng.random(a.shape) < 0.2] = np.inf
    mask = rng.random((600, 12)) < 0.5
    lv = np.sort(rng.normal(size=(600, 4)), axis=1)
    lv[rng.random(600) < 0.3, 0] = np.nan
    hh = rng.normal(size=600)
    f = flood_forecast  # 600 rows: the column loops; 100 rows: one axis=1 call
    assert f._rows_min(a)[:100].tolist() == f._rows_min(a[:100]).tolist()
    assert f._rows_max(a)[:100].tolist() == f._rows_max(a[:100]).tolist()
    assert f._rows_count(mask)[:100].tolist() == f._rows_count(mask[:100]).tolist()
    assert f._stage(hh, lv)[:100].tolist() == f._stage(hh[:100], lv[:100]).tolist()


def test_anomaly_batch_equals_row_by_row_whatever_the_counts() -> None:
    # Rows young, past the scale window (1/alpha) and past the likelihood window, mixed in
    # one batch (np.where weights) and alone (uniform weights).
    rng = np.random.default_rng(4)
    m = 60
    st = np.zeros(m, anomaly.ANOMALY_DTYPE)
    warm_n = np.array([0, 5, 1332, 1333, 1334, 3999, 4000, 4001, 90_000] * 7)[:m]
    for _ in range(3):
        anomaly.update(st, rng.normal(10, 1, m))
    st["n"] = warm_n[:m]
    for step in range(5):
        x = rng.normal(10, 1 + step, m)
        one = st.copy()
        score, raw = anomaly.update(st, x)
        for j in range(m):
            s1, r1 = anomaly.update(one[j : j + 1], x[j : j + 1])
            assert (s1[0], r1[0]) == (score[j], raw[j])
        assert one.tobytes() == st.tobytes()


def test_anomaly_likelihood_only_where_it_can_reach_the_line() -> None:
    # score_from skips the normal CDF where it cannot reach the line: same state and raw
    # evidence, the same decision at every line at or above it, the same score above it.
    rng = np.random.default_rng(7)
    m = 400
    full = np.zeros(m, anomaly.ANOMALY_DTYPE)
    x = rng.normal(10, 1, m)
    for step in range(300):
        # Level shifts on a few rows push the short mean of ρ (the likelihood) up.
        x = x + np.where(rng.random(m) < 0.01, rng.normal(0, 8, m), rng.normal(0, 0.3, m))
        xs = np.where(rng.random(m) < 0.02, np.nan, x)
        fast = full.copy()
        s_full, r_full = anomaly.update(full, xs)
        s_fast, r_fast = anomaly.update(fast, xs, score_from=0.995)
        assert fast.tobytes() == full.tobytes()
        assert np.array_equal(r_fast, r_full, equal_nan=True)
        for line in (0.995, 0.999, 1.0):
            assert ((s_fast >= line) == (s_full >= line)).all()
        hi = s_full >= 0.995
        assert s_fast[hi].tolist() == s_full[hi].tolist()
        if step == 299:
            assert int(np.count_nonzero(hi)) > 0


def test_health_batch_equals_row_by_row_through_every_branch() -> None:
    # health.update skips the spike/step and out-of-range arithmetic when no row of the
    # batch needs it: a batch mixing every case must match each row alone (where a row
    # takes only its own branch), NaN rows included.
    rng = np.random.default_rng(6)
    m = 64
    lim = [np.full(m, v[0]) for v in health.limits_for("level_m")]
    st = np.zeros(m, health.HEALTH_DTYPE)
    t = 1_700_000_000_000
    x = rng.uniform(1.0, 3.0, m)
    for _ in range(40):
        t += 600_000
        kind = rng.integers(0, 6, m)
        x = np.where(kind == 0, x + rng.normal(0, 0.01, m), x)  # normal
        x = np.where(kind == 1, x + rng.choice([-2.0, 2.0], m), x)  # spike / step
        xs = np.where(kind == 3, rng.choice([-50.0, 1e4], m), x)  # out of range
        xs = np.where(kind == 4, np.nan, xs)
        ts = np.full(m, t, dtype=np.int64)
        interval = np.full(m, 600.0)
        for sub in (np.arange(m), np.flatnonzero(kind != 4), np.flatnonzero(kind == 0)):
            if len(sub) == 0:
                continue
            one = st.copy()
            args = [a[sub] for a in lim]
            part = st[sub]
            got = health.update(part, ts[sub], xs[sub], *args, interval[sub])
            for i, j in enumerate(sub.tolist()):
                r1 = health.update(
                    one[j : j + 1], ts[j : j + 1], xs[j : j + 1], *[a[j : j + 1] for a in lim],
                    interval[j : j + 1],
                )  # fmt: skip
                assert bool(r1[0]) == bool(got[i])
            assert one[sub].tobytes() == part.tobytes()
        health.update(st, ts, xs, *lim, interval)


def _registry(rng: np.random.Generator, n: int) -> DetectorSet:
    kinds = [Kind.WATER_LEVEL, Kind.RAINFALL, Kind.AIR_QUALITY, Kind.STRUCTURAL, Kind.SEISMIC]
    stations = []
    for i in range(n):
        k = kinds[i % 5]
        st: dict[str, object] = {
            "id": f"T{i:04d}",
            "kind": k.value,
            "name": f"t{i}",
            "name_en": f"t{i}",
            "lat": 36.0,
            "lon": 127.0,
            "gateway": "bench",
            "interval_s": int(rng.choice([10, 60, 300])),
        }
        if k is Kind.WATER_LEVEL:
            st["levels"] = {"attention": 3.0, "caution": 4.0, "alert": 5.0, "serious": 6.0}
        if k is Kind.STRUCTURAL:
            st["allowable"] = {"tilt_rad": 0.002, "crack_mm": 5.0, "vibration_cms": 0.3}
        if k is Kind.AIR_QUALITY:
            st["region"] = "r"
        stations.append(st)
    reg = parse_registry(
        {"gateways": [{"id": "bench", "name": "bench"}], "stations": stations}, path="<t>"
    )
    return DetectorSet(reg)


def _stream(rng: np.random.Generator, ds: DetectorSet, rounds: int) -> ReadingBatch:
    """Each station's readings in time order (so any batching sees the same sequence)."""
    names = {
        Kind.WATER_LEVEL: (("level_m", 1.0, 7.0),),
        Kind.RAINFALL: (("rain_mm", 0.0, 30.0),),
        Kind.AIR_QUALITY: (("pm10_ugm3", 50, 400), ("pm25_ugm3", 20, 200), ("o3_ppm", 0, 0.6)),
        Kind.STRUCTURAL: (("tilt_rad", 0, 0.003), ("crack_mm", 0, 6), ("vibration_cms", 0, 0.4)),
        Kind.SEISMIC: (("pga_g", 0, 0.3),),
    }
    code_kind = {KIND_CODES[k]: k for k in names}
    n = len(ds.ids)
    cols: dict[str, list[float]] = {v[0]: [] for vs in names.values() for v in vs}
    station, kind, ts = [], [], []
    t = 1_700_000_000_000
    level = rng.uniform(0.2, 0.8, n)
    for _ in range(rounds):
        t += int(rng.choice([10_000, 300_000, 900_000]))
        level = np.clip(level + rng.normal(0, 0.08, n), 0, 1)
        for i in range(n):
            k = code_kind[int(ds.kind[i])]
            station.append(str(ds.ids[i]))
            kind.append(KIND_CODES[k])
            ts.append(t + int(rng.integers(0, 5000)))
            own = {name: lo + level[i] * (hi - lo) for name, lo, hi in names[k]}
            for name, col in cols.items():
                col.append(own.get(name, np.nan) if rng.random() > 0.05 else np.nan)
    m = len(station)
    return ReadingBatch(
        station=np.array(station),
        kind=np.array(kind, dtype=np.uint8),
        ts_ms=np.array(ts, dtype=np.int64),
        seq=np.full(m, NO_SEQ, dtype=np.int64),
        exercise=rng.random(m) < 0.1,
        values={k: np.array(v) for k, v in cols.items()},
    )


def test_batch_size_changes_neither_state_nor_detections() -> None:
    rng = np.random.default_rng(5)
    ref = _registry(rng, 40)
    stream = _stream(rng, ref, 40)
    key = lambda d: (d.station, d.exercise, d.rule, d.ts_ms, d.level)  # noqa: E731
    whole = sorted(ref.process(stream), key=key)
    assert len(whole) > 100
    for sizes in ([1, 2, 3], [7, 80, 100], [500, 33]):
        ds = _registry(np.random.default_rng(5), 40)
        got = []
        i, k = 0, 0
        while i < len(stream):
            b = sizes[k % len(sizes)]
            got += ds.process(stream.take(np.arange(i, min(i + b, len(stream)))))
            i, k = i + b, k + 1
        assert sorted(got, key=key) == whole
        assert ds.export_state() == ref.export_state()
        assert ds.stats == ref.stats


def test_structural_stages_land_on_their_own_station_and_channel() -> None:
    # The three stages of a station move as one 3-byte record (take/put on a void view).
    rng = np.random.default_rng(8)
    ds = _registry(rng, 60)
    rows = np.flatnonzero(ds.kind == KIND_CODES[Kind.STRUCTURAL])
    allow = np.array([0.002, 5.0, 0.3])
    frac = rng.choice([0.1, 0.7, 0.9, 1.2], size=(len(rows), 3))
    vals = frac * allow
    nan = np.full(len(rows), np.nan)
    batch = ReadingBatch(
        station=ds.ids[rows][::-1].copy(),
        kind=ds.kind[rows][::-1].copy(),
        ts_ms=np.full(len(rows), 1_700_000_000_000, dtype=np.int64),
        seq=np.full(len(rows), NO_SEQ, dtype=np.int64),
        exercise=np.zeros(len(rows), dtype=bool),
        values={
            "tilt_rad": vals[::-1, 0].copy(),
            "crack_mm": vals[::-1, 1].copy(),
            "vibration_cms": vals[::-1, 2].copy(),
            "level_m": nan,
        },
    )
    ds.process(batch)
    later = batch.take(np.arange(len(rows)))
    later.ts_ms[:] += 60_000
    ds.process(later)  # the second reading at each stage confirms it (2 of the last 3)
    want = np.searchsorted([0.6, 0.8, 1.0], frac, side="right") + np.where(frac >= 0.6, 1, 0)
    got = structural.level(ds._a["struct"][rows]).astype(np.int64)
    assert got.tolist() == want.tolist()
    others = np.setdiff1d(np.arange(len(ds.ids)), rows)
    assert not ds._a["struct"][others].any()


def test_grouping_by_slot_is_a_stable_argsort_in_32_and_64_bits() -> None:
    rng = np.random.default_rng(10)
    for m, nslots in ((1, 5), (7, 5), (500, 100_000), (10_000, 100_000), (3000, 2**30)):
        slot = rng.integers(0, min(nslots, 3 * m), m).astype(np.int64)
        ref = np.argsort(slot, kind="stable")
        s_sorted, order = _by_slot(slot, nslots)  # 2**30 slots: the 64-bit keys
        assert order.tolist() == ref.tolist()
        assert s_sorted.tolist() == slot[ref].tolist()
        assert s_sorted.dtype == np.int64 and order.dtype == np.int64


def test_the_quick_forecast_bound_skips_only_fits_that_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Gauges rising, falling and flat near and far from their lines, irregular intervals,
    # readings older than the ring's newest by up to 3 h: every output and the state are the
    # same with the quick bound as without it (the exact bound and the fit then decide).
    def run(quick: bool) -> list[object]:
        if not quick:
            monkeypatch.setattr(
                flood_forecast, "_surely_unchanged", lambda h_arr, *a: np.zeros(len(h_arr), bool)
            )
        rng = np.random.default_rng(21)
        outs: list[object] = []
        for _ in range(25):
            m = int(rng.integers(1, 400))
            st = np.zeros(m, flood_forecast.FORECAST_DTYPE)
            lv = np.sort(rng.uniform(0, 10, (m, 4)), axis=1)
            lv[rng.random((m, 4)) < 0.1] = np.nan
            h = rng.uniform(0, 10, m)
            rate = rng.normal(0, 1, m) * rng.choice([0, 0.01, 0.3, 2.0], m)  # m per 10 min
            t = np.full(m, 1_700_000_000_000, np.int64)
            for _ in range(50):
                dt = rng.choice([10_000, 60_000, 300_000, 600_000, 1_800_000, 4_000_000], m)
                back = rng.random(m) < 0.03
                t = t + np.where(back, -rng.integers(0, 3 * 3_600_000, m), dt)
                h = h + rate * dt / 600_000 + rng.normal(0, 0.005, m)
                rows = np.flatnonzero(rng.random(m) < 0.8)
                part = st[rows]
                o = flood_forecast.update(part, t[rows], np.round(h[rows], 3), lv[rows])
                st[rows] = part
                outs += [getattr(o, f).tobytes() for f in o.__dataclass_fields__]
            outs.append(st.tobytes())
        return outs

    quick = run(True)
    exact = run(False)
    assert quick == exact


def test_registry_positions_from_the_bridge_give_what_the_id_lookup_gives() -> None:
    # Positions resolved against the same registry are used as they are; positions of
    # another registry (another digest) are ignored and the ids looked up; a position out of
    # range with the right digest is an unknown station, not a crash or another station.
    rng = np.random.default_rng(7)
    ref = _registry(rng, 40)
    stream = _stream(rng, ref, 30)
    unknown = ReadingBatch.from_rows(
        [{"station": "NOPE", "kind": "rainfall", "ts_ms": 1, "values": {"rain_mm": 1.0}}]
    )
    stream = ReadingBatch.concat([stream, unknown])
    pos = np.searchsorted(ref.ids, stream.station).astype(np.int32)
    pos[-1] = len(ref.ids)  # the unknown id: past the end
    want = ref.process(stream)
    assert len(want) > 50 and ref.stats["unknown_station"] == 1

    def indexed(p: np.ndarray, digest: int) -> ReadingBatch:
        return ReadingBatch(**{**stream.__dict__, "station_index": p, "index_digest": digest})

    same = _registry(np.random.default_rng(7), 40)
    assert same.ids_digest == ref.ids_digest
    lookups = 0
    real = same._lookup

    def counted(station: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        nonlocal lookups
        lookups += 1
        return real(station)

    same._lookup = counted  # type: ignore[method-assign]
    assert same.process(indexed(pos, same.ids_digest)) == want and lookups == 0
    assert same.export_state() == ref.export_state() and same.stats == ref.stats
    other = _registry(np.random.default_rng(7), 40)
    garbage = np.zeros(len(stream), np.int32)  # positions in another registry: not trusted
    assert other.process(indexed(garbage, other.ids_digest ^ 1)) == want
    assert other.export_state() == ref.export_state()
    # positions written wrongly under the right digest: the sampled id does not match them
    wrong = _registry(np.random.default_rng(7), 40)
    assert wrong.process(indexed(np.roll(pos, 1), wrong.ids_digest)) == want
