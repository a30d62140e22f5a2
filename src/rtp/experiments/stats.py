"""Comparisons of an experiment's arms against its control, as plain JSON-able dicts.

``a`` is the control arm and ``b`` the treatment everywhere: ``diff = b - a`` and
``lift = b / a - 1``. Statistics come from statsmodels and scipy; the bootstrap uses numpy. Empty
or degenerate inputs (no sessions, no variance) give ``None`` fields instead of raising.

>>> r = compare_proportions(100, 1000, 130, 1000)
>>> round(r["diff"], 3), round(r["lift"], 3), r["significant"]
(0.03, 0.3, True)
>>> compare_proportions(0, 0, 5, 10)["p_value"] is None
True
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats as sps
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

SRM_THRESHOLD = 0.001


def _f(x: Any) -> float | None:
    """A finite Python float, or ``None``."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def _ci(lo: Any, hi: Any) -> list[float | None] | None:
    a, b = _f(lo), _f(hi)
    return None if a is None and b is None else [a, b]


def _minus_one(x: Any) -> float | None:
    v = _f(x)
    return None if v is None else v - 1.0


def _significant(p: float | None, alpha: float) -> bool | None:
    return None if p is None else p < alpha


def proportion_ci(
    success: int, n: int, alpha: float = 0.05, method: str = "wilson"
) -> list[float | None] | None:
    """Confidence interval of one proportion (statsmodels ``proportion_confint``, Wilson).

    >>> [round(x, 4) for x in proportion_ci(10, 100)]
    [0.0552, 0.1744]
    >>> proportion_ci(0, 0) is None
    True
    """
    if n <= 0:
        return None
    lo, hi = proportion_confint(success, n, alpha=alpha, method=method)
    return _ci(lo, hi)


def compare_proportions(
    success_a: int,
    n_a: int,
    success_b: int,
    n_b: int,
    alpha: float = 0.05,
    *,
    method_diff: str = "newcomb",
    method_ratio: str = "log-adjusted",
) -> dict[str, Any]:
    """Two-proportion comparison of treatment ``b`` against control ``a``.

    The p-value is statsmodels' pooled two-sided z test (``proportions_ztest``); the intervals
    come from ``confint_proportions_2indep``: the difference ``p_b - p_a`` (Newcomb's hybrid
    score interval by default) and the ratio ``p_b / p_a`` (log-adjusted), shifted by -1 to give
    the relative lift's interval.

    >>> r = compare_proportions(50, 1000, 50, 1000)
    >>> r["diff"], r["lift"], round(r["p_value"], 6)
    (0.0, 0.0, 1.0)
    """
    for s, n in ((success_a, n_a), (success_b, n_b)):
        if n < 0 or s < 0 or s > n:
            raise ValueError(f"a proportion needs 0 <= successes <= n, got {s} of {n}")
    out: dict[str, Any] = {
        "test": "two-proportion z (pooled)",
        "alpha": alpha,
        "n_a": n_a,
        "n_b": n_b,
        "success_a": success_a,
        "success_b": success_b,
        "rate_a": success_a / n_a if n_a else None,
        "rate_b": success_b / n_b if n_b else None,
        "diff": None,
        "diff_ci": None,
        "lift": None,
        "lift_ci": None,
        "statistic": None,
        "p_value": None,
        "significant": None,
    }
    if n_a == 0 or n_b == 0:
        return out
    pa, pb = success_a / n_a, success_b / n_b
    out["diff"] = pb - pa
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        lo, hi = confint_proportions_2indep(
            success_b, n_b, success_a, n_a, method=method_diff, compare="diff", alpha=alpha
        )
        out["diff_ci"] = _ci(lo, hi)
        if success_a > 0:
            out["lift"] = pb / pa - 1.0
            lo, hi = confint_proportions_2indep(
                success_b, n_b, success_a, n_a, method=method_ratio, compare="ratio", alpha=alpha
            )
            out["lift_ci"] = _ci(_minus_one(lo), _minus_one(hi))
        pooled = (success_a + success_b) / (n_a + n_b)
        if 0.0 < pooled < 1.0:
            z, p = proportions_ztest([success_b, success_a], [n_b, n_a])
            out["statistic"], out["p_value"] = _f(z), _f(p)
    out["significant"] = _significant(out["p_value"], alpha)
    return out


def compare_means(
    mean_a: float,
    var_a: float | None,
    n_a: int,
    mean_b: float,
    var_b: float | None,
    n_b: int,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Welch's t test of treatment ``b`` against control ``a`` from summary statistics.

    ``var_*`` are sample variances (ddof=1). The p-value is scipy's
    ``ttest_ind_from_stats(..., equal_var=False)``; the interval of ``mean_b - mean_a`` uses the
    t quantile at the Welch–Satterthwaite degrees of freedom.

    >>> r = compare_means(10.0, 4.0, 50, 11.0, 9.0, 60)
    >>> round(r["diff"], 3), round(r["lift"], 3), round(r["df"], 1)
    (1.0, 0.1, 103.3)
    >>> compare_means(1.0, None, 1, 2.0, 1.0, 10)["p_value"] is None
    True
    """
    out: dict[str, Any] = {
        "test": "Welch t",
        "alpha": alpha,
        "n_a": n_a,
        "n_b": n_b,
        "mean_a": _f(mean_a) if n_a else None,
        "mean_b": _f(mean_b) if n_b else None,
        "diff": None,
        "diff_ci": None,
        "lift": None,
        "statistic": None,
        "df": None,
        "p_value": None,
        "significant": None,
    }
    if n_a == 0 or n_b == 0:
        return out
    out["diff"] = mean_b - mean_a
    out["lift"] = mean_b / mean_a - 1.0 if mean_a else None
    if n_a < 2 or n_b < 2 or var_a is None or var_b is None:
        return out
    va, vb = var_a / n_a, var_b / n_b
    se = math.sqrt(va + vb)
    if se == 0.0:
        return out
    df = (va + vb) ** 2 / (va * va / (n_a - 1) + vb * vb / (n_b - 1))
    t, p = sps.ttest_ind_from_stats(
        mean_b, math.sqrt(var_b), n_b, mean_a, math.sqrt(var_a), n_a, equal_var=False
    )
    half = float(sps.t.ppf(1.0 - alpha / 2.0, df)) * se
    out.update(
        statistic=_f(t),
        df=df,
        p_value=_f(p),
        diff_ci=[out["diff"] - half, out["diff"] + half],
    )
    out["significant"] = _significant(out["p_value"], alpha)
    return out


def bootstrap_diff(
    values_a: Sequence[float] | np.ndarray[Any, Any],
    values_b: Sequence[float] | np.ndarray[Any, Any],
    n_boot: int = 2_000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Percentile bootstrap of ``mean(b) - mean(a)`` and of ``mean(b) / mean(a) - 1``.

    Each replicate resamples both samples with replacement (numpy, seeded). The p-value is the
    two-sided bootstrap share: twice the smaller tail of the replicates around 0.

    >>> r = bootstrap_diff([1.0, 2.0, 3.0] * 20, [2.0, 3.0, 4.0] * 20, n_boot=500, seed=1)
    >>> r["diff"], r["diff_ci"][0] > 0, r["p_value"] < 0.01
    (1.0, True, True)
    """
    a = np.asarray(values_a, dtype=np.float64)
    b = np.asarray(values_b, dtype=np.float64)
    out: dict[str, Any] = {
        "test": "bootstrap (percentile)",
        "alpha": alpha,
        "n_boot": n_boot,
        "seed": seed,
        "n_a": int(a.size),
        "n_b": int(b.size),
        "mean_a": _f(a.mean()) if a.size else None,
        "mean_b": _f(b.mean()) if b.size else None,
        "diff": None,
        "diff_ci": None,
        "lift": None,
        "lift_ci": None,
        "p_value": None,
        "significant": None,
    }
    if a.size == 0 or b.size == 0 or n_boot < 1:
        return out
    ma, mb = float(a.mean()), float(b.mean())
    out["diff"] = mb - ma
    out["lift"] = mb / ma - 1.0 if ma else None
    rng = np.random.default_rng(seed)
    boot_a = np.empty(n_boot)
    boot_b = np.empty(n_boot)
    # Chunks keep the index matrices small (a 5,000-session reservoir, 2,000 replicates).
    chunk = max(1, 2_000_000 // max(a.size, b.size))
    for start in range(0, n_boot, chunk):
        k = min(chunk, n_boot - start)
        boot_a[start : start + k] = a[rng.integers(0, a.size, size=(k, a.size))].mean(axis=1)
        boot_b[start : start + k] = b[rng.integers(0, b.size, size=(k, b.size))].mean(axis=1)
    diffs = boot_b - boot_a
    q = [alpha / 2.0, 1.0 - alpha / 2.0]
    lo, hi = np.quantile(diffs, q)
    out["diff_ci"] = _ci(lo, hi)
    positive = boot_a > 0
    if ma > 0 and positive.all():
        lo, hi = np.quantile(boot_b[positive] / boot_a[positive] - 1.0, q)
        out["lift_ci"] = _ci(lo, hi)
    p = 2.0 * min(float(np.mean(diffs <= 0.0)), float(np.mean(diffs >= 0.0)))
    out["p_value"] = min(1.0, p)
    out["significant"] = _significant(out["p_value"], alpha)
    return out


def sample_ratio_mismatch(
    counts: Mapping[str, int],
    shares: Mapping[str, float],
    threshold: float = SRM_THRESHOLD,
) -> dict[str, Any]:
    """Chi-square goodness-of-fit of observed units per arm against the configured shares.

    ``mismatch`` is ``True`` when ``p_value < threshold`` (0.001 by default): assignment or
    logging is broken and the comparisons should not be trusted. Units seen in an arm with no
    configured share are a mismatch by themselves (``p_value`` 0).

    >>> r = sample_ratio_mismatch({"a": 5_000, "b": 5_100}, {"a": 0.5, "b": 0.5})
    >>> r["mismatch"], round(r["p_value"], 3)
    (False, 0.32)
    >>> sample_ratio_mismatch({"a": 0, "b": 0}, {"a": 0.5, "b": 0.5})["p_value"] is None
    True
    """
    arms = list(shares) + [a for a in counts if a not in shares]
    total_share = math.fsum(max(0.0, float(shares.get(a, 0.0))) for a in arms)
    total = sum(int(counts.get(a, 0)) for a in arms)
    observed = {a: int(counts.get(a, 0)) for a in arms}
    expected = {
        a: (total * max(0.0, float(shares.get(a, 0.0))) / total_share if total_share else 0.0)
        for a in arms
    }
    out: dict[str, Any] = {
        "test": "chi-square goodness of fit",
        "threshold": threshold,
        "total": total,
        "observed": observed,
        "expected": expected,
        "statistic": None,
        "p_value": None,
        "mismatch": None,
    }
    if total == 0 or total_share == 0:
        return out
    unexpected = [a for a in arms if expected[a] == 0 and observed[a] > 0]
    if unexpected:
        out.update(p_value=0.0, mismatch=True, unexpected=unexpected)
        return out
    tested = [a for a in arms if expected[a] > 0]
    if len(tested) < 2:
        return out
    chi2, p = sps.chisquare([observed[a] for a in tested], [expected[a] for a in tested])
    out["statistic"], out["p_value"] = _f(chi2), _f(p)
    out["mismatch"] = None if out["p_value"] is None else out["p_value"] < threshold
    return out
