"""Arm comparisons agree with scipy/statsmodels, and with a worked example by hand."""

from __future__ import annotations

import doctest
import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

import rtp.experiments.stats
from rtp.experiments.stats import (
    bootstrap_diff,
    compare_means,
    compare_proportions,
    proportion_ci,
    sample_ratio_mismatch,
)


def test_doctests() -> None:
    result = doctest.testmod(rtp.experiments.stats)
    assert result.failed == 0 and result.attempted > 0


@pytest.mark.parametrize(("sa", "na", "sb", "nb"), [(120, 4_000, 150, 4_100), (7, 90, 2, 80)])
def test_proportions_equal_statsmodels(sa: int, na: int, sb: int, nb: int) -> None:
    r = compare_proportions(sa, na, sb, nb, alpha=0.05)
    z, p = proportions_ztest([sb, sa], [nb, na])
    lo, hi = confint_proportions_2indep(sb, nb, sa, na, compare="diff", method="newcomb")
    rlo, rhi = confint_proportions_2indep(sb, nb, sa, na, compare="ratio", method="log-adjusted")
    assert r["statistic"] == pytest.approx(z) and r["p_value"] == pytest.approx(p)
    assert r["diff"] == pytest.approx(sb / nb - sa / na)
    assert r["diff_ci"] == pytest.approx([lo, hi])
    assert r["lift"] == pytest.approx((sb / nb) / (sa / na) - 1)
    assert r["lift_ci"] == pytest.approx([rlo - 1, rhi - 1])
    assert r["significant"] == (p < 0.05)


def test_proportions_worked_example_by_hand() -> None:
    # Control 100/1000 = 10%, treatment 130/1000 = 13%: +3 points, +30% relative.
    r = compare_proportions(100, 1_000, 130, 1_000, method_diff="wald", method_ratio="log")
    pa, pb, n = 0.10, 0.13, 1_000
    z975 = NormalDist().inv_cdf(0.975)
    assert r["diff"] == pytest.approx(0.03) and r["lift"] == pytest.approx(0.30)
    # Wald interval of the difference: 0.03 +- 1.96 * sqrt(.1*.9/1000 + .13*.87/1000)
    se = math.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    assert r["diff_ci"] == pytest.approx([0.03 - z975 * se, 0.03 + z975 * se])
    assert r["diff_ci"] == pytest.approx([0.00207, 0.05793], abs=1e-5)  # the numbers on paper
    # Log interval of the ratio 1.3: exp(log 1.3 +- 1.96 * sqrt(1/130 - 1/1000 + 1/100 - 1/1000))
    se_log = math.sqrt(1 / 130 - 1 / 1_000 + 1 / 100 - 1 / 1_000)
    lo = 1.3 * math.exp(-z975 * se_log) - 1
    hi = 1.3 * math.exp(z975 * se_log) - 1
    assert r["lift_ci"] == pytest.approx([lo, hi])
    assert r["lift_ci"] == pytest.approx([0.0170, 0.6618], abs=1e-4)
    # Pooled z: p = 230/2000, z = 0.03 / sqrt(p (1-p) (2/1000)), two-sided.
    pool = 230 / 2_000
    zz = 0.03 / math.sqrt(pool * (1 - pool) * 2 / n)
    assert r["statistic"] == pytest.approx(zz)
    assert r["p_value"] == pytest.approx(2 * (1 - NormalDist().cdf(zz)))
    assert r["significant"] is True and 0.03 < r["p_value"] < 0.04


def test_proportions_degenerate_inputs() -> None:
    empty = compare_proportions(0, 0, 0, 0)
    assert empty["diff"] is None and empty["p_value"] is None and empty["significant"] is None
    one_side = compare_proportions(3, 10, 0, 0)
    assert one_side["rate_a"] == 0.3 and one_side["rate_b"] is None and one_side["diff"] is None
    zeros = compare_proportions(0, 100, 0, 100)  # no variance: no test, but a difference of 0
    assert zeros["diff"] == 0.0 and zeros["p_value"] is None and zeros["lift"] is None
    assert zeros["diff_ci"] is not None and zeros["diff_ci"][0] <= 0 <= zeros["diff_ci"][1]
    all_ones = compare_proportions(50, 50, 40, 40)
    assert all_ones["p_value"] is None and all_ones["lift"] == 0.0
    with pytest.raises(ValueError, match="successes <= n"):
        compare_proportions(11, 10, 0, 10)
    assert proportion_ci(0, 0) is None


def test_means_equal_scipy_and_statsmodels() -> None:
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 5.0, size=400)
    b = rng.gamma(2.2, 5.0, size=350)
    r = compare_means(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size)
    t, p = sps.ttest_ind(b, a, equal_var=False)
    assert r["statistic"] == pytest.approx(t) and r["p_value"] == pytest.approx(p)
    cm = CompareMeans(DescrStatsW(b), DescrStatsW(a))
    lo, hi = cm.tconfint_diff(alpha=0.05, usevar="unequal")
    assert r["diff_ci"] == pytest.approx([lo, hi])
    _, _, df = cm.ttest_ind(usevar="unequal")
    assert r["df"] == pytest.approx(df)
    assert r["diff"] == pytest.approx(b.mean() - a.mean())
    assert r["lift"] == pytest.approx(b.mean() / a.mean() - 1)


def test_means_degenerate_inputs() -> None:
    assert compare_means(0.0, None, 0, 1.0, 1.0, 10)["diff"] is None
    one = compare_means(1.0, None, 1, 2.0, 1.0, 10)
    assert one["diff"] == 1.0 and one["p_value"] is None and one["diff_ci"] is None
    flat = compare_means(5.0, 0.0, 10, 5.0, 0.0, 10)
    assert flat["diff"] == 0.0 and flat["p_value"] is None
    assert compare_means(0.0, 1.0, 10, 1.0, 1.0, 10)["lift"] is None


def test_bootstrap_is_seeded_and_agrees_with_scipy() -> None:
    rng = np.random.default_rng(8)
    a = rng.exponential(10.0, size=600)
    b = rng.exponential(12.0, size=500)
    r = bootstrap_diff(a, b, n_boot=2_000, seed=4)
    assert r == bootstrap_diff(list(a), list(b), n_boot=2_000, seed=4)  # reproducible
    assert r["diff"] == pytest.approx(b.mean() - a.mean())
    ref = sps.bootstrap(
        (b, a),
        lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        n_resamples=2_000,
        method="percentile",
        random_state=np.random.default_rng(1),
    ).confidence_interval
    width = ref.high - ref.low
    assert r["diff_ci"][0] == pytest.approx(ref.low, abs=0.1 * width)
    assert r["diff_ci"][1] == pytest.approx(ref.high, abs=0.1 * width)
    # Close to Welch on samples this size, and the p-value tells the same story.
    w = compare_means(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size)
    assert r["diff_ci"][0] == pytest.approx(w["diff_ci"][0], abs=0.15 * width)
    assert (r["p_value"] < 0.05) == (w["p_value"] < 0.05)
    lo, hi = r["lift_ci"]
    assert lo < r["lift"] < hi


def test_bootstrap_empty() -> None:
    r = bootstrap_diff([], [1.0, 2.0])
    assert r["diff"] is None and r["diff_ci"] is None and r["p_value"] is None
    same = bootstrap_diff([1.0] * 10, [1.0] * 10, n_boot=100)
    assert same["diff"] == 0.0 and same["p_value"] == 1.0


def test_srm_equals_scipy_and_flags_mismatch() -> None:
    counts = {"realtime": 3_480, "batch": 3_270, "none": 3_250}
    shares = {"realtime": 0.34, "batch": 0.33, "none": 0.33}
    r = sample_ratio_mismatch(counts, shares)
    total = sum(counts.values())
    chi2, p = sps.chisquare(list(counts.values()), [total * s for s in shares.values()])
    assert r["statistic"] == pytest.approx(chi2) and r["p_value"] == pytest.approx(p)
    assert r["mismatch"] is bool(p < 0.001)
    skewed = sample_ratio_mismatch({"a": 5_300, "b": 4_700}, {"a": 0.5, "b": 0.5})
    assert skewed["mismatch"] is True and skewed["p_value"] < 0.001
    assert sample_ratio_mismatch({"a": 0, "b": 0}, {"a": 0.5, "b": 0.5})["mismatch"] is None
    stray = sample_ratio_mismatch({"a": 10, "b": 10, "ghost": 1}, {"a": 0.5, "b": 0.5})
    assert stray["mismatch"] is True and stray["unexpected"] == ["ghost"]
    # A zero-share arm with no units is left out of the test.
    off = sample_ratio_mismatch({"a": 500, "b": 510, "off": 0}, {"a": 0.5, "b": 0.5, "off": 0.0})
    assert off["mismatch"] is False
