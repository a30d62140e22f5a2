"""Prequential metrics: hand-computed values, bootstrap intervals, subsets, coverage, lift, plot."""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path

import numpy as np
import pytest

from rtp.evaluation.metrics import (
    MAX_BUCKETS,
    NICE_BUCKETS_S,
    SMOOTH_BUCKETS,
    EvalRecord,
    Prequential,
    _plot_lines,
    _ylim,
    moving_average,
    nice_bucket_s,
    paired_lift,
    plot_series,
    source_of,
)


def rec(
    rank: int,
    key: str = "",
    ts: float = 1_700_000_000.0,
    etype: str = "product_view",
    seen: bool = False,
    item: str = "x",
    listed: tuple[str, ...] | None = None,
) -> EvalRecord:
    return EvalRecord(ts, key, "u1", item, etype, rank, seen, listed)


def filled(ranks: list[int], ks: tuple[int, ...] = (1, 5, 10), seed: int = 0) -> Prequential:
    p = Prequential(ks=ks, seed=seed)
    p.add_many(rec(r, key=f"k{i}") for i, r in enumerate(ranks))
    return p


def test_hand_computed_hr_mrr_ndcg() -> None:
    # ranks: 0 (1st), 2 (3rd), 7 (8th), absent, 12 (13th: beyond every cut-off)
    r = filled([0, 2, 7, -1, 12]).report(n_boot=200)
    n = 5
    assert r["targets"] == n
    assert r["ks"] == [1, 5, 10]
    assert r["hr@1"]["value"] == pytest.approx(1 / n)
    assert r["hr@5"]["value"] == pytest.approx(2 / n)
    assert r["hr@10"]["value"] == pytest.approx(3 / n)
    assert r["mrr@1"]["value"] == pytest.approx(1 / n)
    assert r["mrr@5"]["value"] == pytest.approx((1 + 1 / 3) / n)
    assert r["mrr@10"]["value"] == pytest.approx((1 + 1 / 3 + 1 / 8) / n)
    assert r["ndcg@1"]["value"] == pytest.approx(1 / n)
    assert r["ndcg@5"]["value"] == pytest.approx((1 + 1 / math.log2(4)) / n)
    assert r["ndcg@10"]["value"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(9)) / n)


def test_ci_contains_value_and_shrinks_with_more_data() -> None:
    rng = np.random.default_rng(7)
    ranks = [int(x) if x < 30 else -1 for x in rng.integers(0, 60, size=200)]
    small = filled(ranks, ks=(5, 20)).report()
    big = filled(ranks * 25, ks=(5, 20)).report()
    for name in ("hr@5", "hr@20", "mrr@20", "ndcg@20"):
        for r in (small, big):
            lo, hi = r[name]["ci"]
            assert lo <= r[name]["value"] <= hi
            assert lo < hi
        assert big[name]["value"] == pytest.approx(small[name]["value"])
        w_small = small[name]["ci"][1] - small[name]["ci"][0]
        w_big = big[name]["ci"][1] - big[name]["ci"][0]
        assert w_big < w_small / 3  # ~ 1/sqrt(25) = 1/5


def test_bootstrap_matches_resampling_targets() -> None:
    """The multinomial shortcut gives the interval of the textbook index-resampling bootstrap."""
    rng = np.random.default_rng(3)
    ranks = [int(x) if x < 20 else -1 for x in rng.integers(0, 45, size=400)]
    r = filled(ranks, ks=(20,)).report(n_boot=4000)
    arr = np.array([x if 0 <= x < 20 else 20 for x in ranks])
    rr = np.append(1 / np.arange(1, 21), 0.0)[arr]
    idx = np.random.default_rng(11).integers(0, arr.size, size=(4000, arr.size))
    for name, per_target in (("hr@20", (arr < 20).astype(float)), ("mrr@20", rr)):
        means = per_target[idx].mean(axis=1)
        lo, hi = np.percentile(means, [2.5, 97.5])
        width = hi - lo
        assert r[name]["ci"][0] == pytest.approx(lo, abs=width * 0.1)
        assert r[name]["ci"][1] == pytest.approx(hi, abs=width * 0.1)


def test_seeded_and_reproducible() -> None:
    ranks = [0, 3, -1, 8, 1, -1, -1, 15]
    a = filled(ranks, seed=5).report()
    b = filled(ranks, seed=5).report()
    c = filled(ranks, seed=6).report()
    assert a == b
    assert a["hr@10"]["ci"] != c["hr@10"]["ci"] or a["mrr@10"]["ci"] != c["mrr@10"]["ci"]


def test_subsets_and_reshow_share() -> None:
    p = Prequential(ks=(5,))
    p.add(rec(0, "a", etype="product_view", seen=True))  # hit, re-view
    p.add(rec(1, "b", etype="add_to_cart", seen=True))  # hit, re-view, cart
    p.add(rec(3, "c", etype="purchase", seen=False))  # hit, new, purchase
    p.add(rec(-1, "d", etype="add_to_cart", seen=False))  # miss, new, cart
    p.add(rec(9, "e", etype="product_view", seen=False))  # miss (beyond 5), new
    p.add(rec(2, "f", etype="add_to_wishlist", seen=False))  # hit, new
    p.add(rec(5, "g", etype="product_view", seen=True))  # miss (rank 5 is the 6th), re-view
    r = p.report(n_boot=300)
    assert r["targets"] == 7
    assert r["hr@5"]["value"] == pytest.approx(4 / 7)

    cp = r["cart_purchase"]
    assert cp["targets"] == 3
    assert cp["hr@5"]["value"] == pytest.approx(2 / 3)
    assert cp["mrr@5"]["value"] == pytest.approx((1 / 2 + 1 / 4) / 3)

    new = r["new_to_session"]
    assert new["targets"] == 4
    assert new["hr@5"]["value"] == pytest.approx(2 / 4)
    assert new["mrr@5"]["value"] == pytest.approx((1 / 4 + 1 / 3) / 4)

    rev = r["reviews"]
    assert rev["targets"] == 3
    assert rev["hr@5"]["value"] == pytest.approx(2 / 3)
    assert rev["ndcg@5"]["value"] == pytest.approx((1 + 1 / math.log2(3)) / 3)

    share = r["reshow_share_of_hits@5"]
    assert share["value"] == pytest.approx(2 / 4)
    assert share["ci"][0] <= share["value"] <= share["ci"][1]


def test_coverage() -> None:
    p = Prequential(ks=(1, 2, 3))
    for item in "abcdefgh":  # 8 distinct items in the stream (one repeated)
        p.note_item(item)
    p.note_item("a")
    p.note_served(["a", "b", "c"])
    p.note_served(["b", "d", "e", "f"])  # f at position 3: beyond max(ks), ignored
    p.add(rec(0, "t1", item="g", listed=("c", "a", "b")))  # via the record's list
    r = p.report(n_boot=0)
    assert r["items_seen"] == 8
    assert r["coverage@1"] == pytest.approx(3 / 8)  # a, b, c
    assert r["coverage@2"] == pytest.approx(4 / 8)  # + d
    assert r["coverage@3"] == pytest.approx(5 / 8)  # + e
    assert r["hr@1"]["ci"] is None  # n_boot=0: no intervals


def test_series_buckets() -> None:
    p = Prequential(ks=(1, 5), bucket_s=600)
    t0 = 1_700_000_400.0  # a 600 s boundary
    p.add(rec(0, "a", ts=t0 + 10))
    p.add(rec(-1, "b", ts=t0 + 500))
    p.add(rec(3, "c", ts=t0 + 1300))  # skips one bucket
    s = p.report(n_boot=0)["series"]
    assert s["bucket_s"] == 600
    assert s["t"] == [t0, t0 + 1200]
    assert s["targets"] == [2, 1]
    assert s["hr@1"] == pytest.approx([0.5, 0.0])
    assert s["hr@5"] == pytest.approx([0.5, 1.0])
    assert s["mrr@5"] == pytest.approx([0.5, 0.25])
    hourly = p.series(bucket_s=3600)
    assert hourly["targets"] == [3]


def test_empty_report() -> None:
    r = Prequential().report()
    assert r["targets"] == 0
    assert math.isnan(r["hr@20"]["value"])
    assert r["reviews"]["targets"] == 0
    assert r["series"]["t"] == []


def test_pickle_roundtrip() -> None:
    r = rec(4, "k", seen=True, listed=("a", "b"))
    assert pickle.loads(pickle.dumps(r)) == r
    p = filled([0, 1, -1])
    p.note_served(["q"])
    q = pickle.loads(pickle.dumps(p))
    assert q.report() == p.report()


def test_merge_equals_one_accumulator() -> None:
    ranks = [0, 5, -1, 2, 9, 1]
    whole = filled(ranks)
    a, b = Prequential(ks=(1, 5, 10)), Prequential(ks=(1, 5, 10))
    a.add_many(rec(r, key=f"k{i}") for i, r in enumerate(ranks[:2]))
    b.add_many(rec(r, key=f"k{i + 2}") for i, r in enumerate(ranks[2:]))
    a.merge(b)
    assert a.report() == whole.report()


def test_paired_lift_on_constructed_pairs() -> None:
    a, b = Prequential(ks=(20,)), Prequential(ks=(20,))
    n = 400
    for i in range(n):
        # a hits 60 %, b hits 30 %, and b's hits are a subset of a's (strongly paired)
        a.add(rec(0 if i % 10 < 6 else -1, f"e{i}"))
        b.add(rec(1 if i % 10 < 3 else -1, f"e{i}"))
    for i in range(100):  # only in a: all misses, so a's unpaired hr@20 is lower
        a.add(rec(-1, f"a-only{i}"))
    b.add(rec(0, "b-only"))
    lift = paired_lift(a, b, k=20, n_boot=2000)
    assert lift["paired_targets"] == n
    assert lift["only_a"] == 100 and lift["only_b"] == 1
    hr = "hr@20"
    assert lift["a"][hr]["value"] == pytest.approx(0.6)
    assert lift["b"][hr]["value"] == pytest.approx(0.3)
    assert lift["ratio"][hr]["value"] == pytest.approx(2.0)
    assert lift["diff"][hr]["value"] == pytest.approx(0.3)
    assert lift["a"]["mrr@20"]["value"] == pytest.approx(0.6)
    assert lift["b"]["mrr@20"]["value"] == pytest.approx(0.3 / 2)
    for part in ("a", "b", "ratio", "diff"):
        lo, hi = lift[part][hr]["ci"]
        assert lo <= lift[part][hr]["value"] <= hi
    assert lift["ratio"][hr]["ci"][0] > 1.0
    # paired differences vary less than independent ones: here diff = 1 on 30 % of targets
    paired_width = lift["diff"][hr]["ci"][1] - lift["diff"][hr]["ci"][0]
    se_indep = math.sqrt(0.6 * 0.4 / n + 0.3 * 0.7 / n)
    assert paired_width < 2 * 1.96 * se_indep * 0.9
    unpaired = lift["unpaired_ratio"][hr]
    assert unpaired["value"] == pytest.approx((240 / 500) / (121 / 401))
    assert unpaired["ci"][0] <= unpaired["value"] <= unpaired["ci"][1]


def test_paired_lift_zero_denominator_is_nan() -> None:
    a, b = filled([0, 1], ks=(20,)), filled([-1, -1], ks=(20,))
    lift = paired_lift(a, b, k=20, n_boot=100)
    assert math.isnan(lift["ratio"]["hr@20"]["value"])
    assert lift["diff"]["hr@20"]["value"] == pytest.approx(1.0)


def test_report_over_100k_targets_is_fast() -> None:
    rng = np.random.default_rng(1)
    ranks = rng.integers(-1, 40, size=100_000)
    seen = rng.random(100_000) < 0.3
    p = Prequential()
    t0 = time.perf_counter()
    for i in range(100_000):
        p.add(
            EvalRecord(
                1_700_000_000.0 + i * 0.07,
                f"f:{i}",
                "u",
                f"i{i % 5000}",
                "purchase" if i % 50 == 0 else "product_view",
                int(ranks[i]),
                bool(seen[i]),
            )
        )
    added = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = p.report(n_boot=1000)
    reported = time.perf_counter() - t0
    assert r["targets"] == 100_000
    assert reported < 1.5, f"report took {reported:.2f}s"
    assert added < 3.0, f"adding took {added:.2f}s"
    lift = paired_lift(p, p, k=20)
    assert lift["ratio"]["hr@20"]["value"] == pytest.approx(1.0)


def test_plot_series_writes_png(tmp_path: Path) -> None:
    reports = {}
    for mode, shift in (("realtime", 0), ("batch", 2), ("sknn", 1)):
        p = Prequential(ks=(20,), bucket_s=600)
        for i in range(300):
            p.add(rec((i + shift) % 30 - 5, f"e{i}", ts=1_511_658_000.0 + 20 * i))
        reports[mode] = p.report(n_boot=200)
    out = plot_series(reports, tmp_path / "eval.png", k=20)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


# --- buckets fit to the span, smoothing, sources ------------------------------------------------


@pytest.mark.parametrize(
    "span_s",
    [600.0, 3_600.0, 3 * 3_600.0, 86_400.0, 8 * 86_400.0, 30 * 86_400.0, 365 * 86_400.0],
)
def test_bucket_width_is_nice_and_fits_the_span(span_s: float) -> None:
    width = nice_bucket_s(span_s)
    assert width in NICE_BUCKETS_S
    assert 40 <= span_s / width < MAX_BUCKETS  # between ~50 and 150 buckets
    smaller = [w for w in NICE_BUCKETS_S if w < width]
    assert not smaller or span_s / smaller[-1] >= MAX_BUCKETS  # the finest that fits


def test_bucket_width_by_data_length() -> None:
    assert nice_bucket_s(6 * 3_600.0) == 300.0  # hours of data: minutes
    assert nice_bucket_s(9 * 86_400.0) == 7_200.0  # days: hours
    assert nice_bucket_s(60 * 86_400.0) == 43_200.0  # two months: half days
    assert nice_bucket_s(20 * 365 * 86_400.0) == 56 * 86_400.0  # beyond the table: 4-week steps


def test_moving_average_weighted_by_targets_with_gaps() -> None:
    buckets = np.array([0, 1, 2, 5, 6], dtype=np.int64)  # 3 and 4 are empty
    weights = np.array([10.0, 0.0, 30.0, 1.0, 3.0])
    sums = np.array([5.0, 0.0, 3.0, 1.0, 0.0])
    got = moving_average(buckets, weights, sums, window=3)
    # bucket 0: (0,1) -> 5/10; 1: (0,1,2) -> 8/40; 2: (1,2) -> 3/30; 5: (5,6) -> 1/4; 6: 1/4
    assert got.tolist() == pytest.approx([0.5, 0.2, 0.1, 0.25, 0.25])
    assert moving_average(buckets, weights, sums, window=1).tolist()[1] != pytest.approx(0.2)
    assert moving_average(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0)).size == 0
    with pytest.raises(ValueError):
        moving_average(buckets, weights, sums, window=0)


def test_series_fit_raw_counts_and_smooth_curve() -> None:
    p = Prequential(ks=(1, 5))
    t0 = 1_700_006_400.0  # a multiple of 3600 and of 300
    for i in range(360):  # six hours, one target a minute, except a silent hour
        if 120 <= i < 180:
            continue
        p.add(rec(0 if i % 4 == 0 else (3 if i % 4 == 1 else -1), f"f.jsonl:{i}", ts=t0 + 60 * i))
    s = p.series()
    assert s["bucket_s"] == 300.0  # six hours: 5-minute buckets
    assert len(s["t"]) == 60  # 72 buckets, 12 of them silent: gaps, not zeros
    assert all(t1 - t0_ >= 300 for t0_, t1 in zip(s["t"], s["t"][1:], strict=False))
    assert 0 not in s["targets"]
    assert s["targets"][0] == 5 and s["hits@1"][0] == 2 and s["hits@5"][0] == 3
    assert s["hr@5"][0] == pytest.approx(3 / 5)
    smooth = s["smooth"]
    assert smooth["window"] == SMOOTH_BUCKETS
    assert len(smooth["hr@5"]) == len(smooth["mrr@5"]) == len(s["t"])
    hits = sum(s["hits@5"])
    assert hits / sum(s["targets"]) == pytest.approx(0.5)
    # the smoothed curve varies far less than the raw buckets
    assert np.std(smooth["hr@5"]) < np.std(s["hr@5"]) / 2
    assert p.series(bucket_s=3_600.0)["bucket_s"] == 3_600.0
    assert Prequential(bucket_s=600).series()["bucket_s"] == 600.0


def test_targets_by_source_counts_files_and_merges() -> None:
    a, b = Prequential(ks=(5,)), Prequential(ks=(5,))
    for i in range(3):
        a.add(rec(0, f"warm.jsonl:{i + 1}"))
    for i in range(2):
        a.add(rec(0, f"test.jsonl:{i + 1}"))
        b.add(rec(-1, f"test.jsonl:{i + 10}"))
    b.add(rec(-1, "k"))  # a key without a source
    assert a.targets_by_source() == {"test.jsonl": 2, "warm.jsonl": 3}
    a.merge(b)
    assert a.report(n_boot=0)["targets_by_source"] == {"": 1, "test.jsonl": 4, "warm.jsonl": 3}
    assert source_of("data/x:y.csv:12") == "data/x:y.csv"
    assert pickle.loads(pickle.dumps(a)).targets_by_source() == a.targets_by_source()


def test_plot_lines_break_at_empty_buckets() -> None:
    p = Prequential(ks=(20,), bucket_s=600)
    t0 = 1_700_000_400.0
    for i, dt in enumerate([10, 20, 700, 2_000, 2_100]):  # buckets 0, 0, 1, 3, 3
        p.add(rec(i % 2 * 3, f"e{i}", ts=t0 + dt))
    days, hr, _, line_days, line_hr, _ = _plot_lines(p.series(), 20, 3)
    assert len(days) == 3 and len(hr) == 3
    assert len(line_days) == 4 and math.isnan(line_hr[2])  # a break between buckets 1 and 3
    # a report from before the smooth curve existed is smoothed at plot time
    old = {key: v for key, v in p.series().items() if key not in ("smooth", "hits@20")}
    np.testing.assert_allclose(_plot_lines(old, 20, 3)[4], line_hr, equal_nan=True)


def test_plot_handles_gaps_and_extremes(tmp_path: Path) -> None:
    p = Prequential(ks=(20,))
    t0 = 1_511_654_400.0
    for i in range(2_000):
        if 700 <= i < 1_100:  # a quiet night
            continue
        p.add(rec(0 if i % 3 == 0 else -1, f"e{i}", ts=t0 + 60 * i))
    p.add(rec(0, "lone", ts=t0 + 60 * 2_000 + 86_400))  # one target a day later: a 1.0 dot
    out = plot_series({"realtime": p.report(n_boot=50)}, tmp_path / "gaps.png", k=20)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _ylim([0.3, 0.35] * 50 + [1.0], [0.32, 0.34]) == pytest.approx(
        (0.3 - 0.004, 0.35 + 0.004), abs=0.01
    )
