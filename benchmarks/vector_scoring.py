"""Would numpy make candidate scoring cheaper? Candidate counts, and each way's cost (issue #12).

    .venv/bin/python -m benchmarks.vector_scoring [PATH]   # default: the Taobao slice

Replays the stream through the facade :class:`rtp.engine.Engine` (ticks of
``Settings.tick_records``, as ``benchmarks/engine_harness.py`` does), then, on the warm engine,
for up to 5,000 users with an open session:

- counts the candidates :func:`rtp.ranking.score.fast_scores` scores for each (its dict and the
  category-popular stream it appends; the pool ``rank_home`` sorts), and prints their spread;
- scores every user's candidates with the per-item terms of ``fast_scores`` (category weight,
  current category, popularity, price band: what its ``context`` closure adds to each candidate)
  three ways, best of 7 rounds of process time each:

  1. **python**: one pass over the candidates, as ``fast_scores`` does;
  2. **numpy**: the inputs gathered from the model's dicts into arrays, then vectorized
     arithmetic (what a vectorized ``fast_scores`` would have to do);
  3. **numpy, arithmetic only**: the same arithmetic on arrays gathered beforehand, a lower bound
     no vectorized scorer can beat (its inputs live in dicts keyed by item id).

Each way's scores are compared with the first's (the largest absolute difference is printed). The
question it answers (#12: "consider vectorizing candidate scoring with numpy where candidates are
many, but measure first"): at the candidate counts rtp sees, does numpy pay for its per-call
overhead?
"""

from __future__ import annotations

import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.conftest import TAOBAO
from benchmarks.engine_harness import taobao_ticks
from rtp.config import Settings
from rtp.decisions.home import rank_home
from rtp.engine import Engine
from rtp.flow.dataflow import tune_gc
from rtp.ranking import score as score_module
from rtp.ranking.ranker import CAT, FEATURES, POP, PRICE_FIT, SAME_CAT
from rtp.ranking.score import fill_context

Terms = tuple[float, float, float, float, float, float, float, float, Any, Any]


def _terms(u: Any, m: Any, rules: Any) -> tuple[dict[str, float], str | None, Terms]:
    """What ``fast_scores`` derives per decision before its candidates (no context values)."""
    w = m.weights
    w2, w3, w4, w6 = w[CAT], w[SAME_CAT], w[POP], w[PRICE_FIT]
    trending = m.pop.trending
    top_pop = trending[0][1] if trending else 1.0
    band = u.price_range()
    base = m.intercept
    if band is None:
        base += 0.5 * w6
        lo = hi = 0.0
    else:
        lo, hi = band[0] / rules.price_slack, band[1] * rules.price_slack
    s = u.session
    cur_cat = s.item_cat.get(s.current) if s.current is not None else None
    return (
        u.blended_categories(),
        cur_cat,
        (base, w2, w3, w4 / top_pop, w4, w6, lo, hi, band, top_pop),
    )


def python_scores(
    cands: list[str], cats: dict[str, float], cur: str | None, t: Terms, m: Any
) -> list[float]:
    base, w2, w3, w4n, w4, w6, lo, hi, band, top_pop = t
    cat_of, pop_get, price_get, cats_get = (
        m.pop.cat_of.get,
        m.pop.score.get,
        m.pop.price_of.get,
        cats.get,
    )
    out = []
    # the body of fast_scores' `context` closure (no context values); checked in `main` against
    # the features' own definition (rtp.ranking.score.fill_context)
    for it in cands:
        s = base
        c = cat_of(it)
        if c is not None:
            s += w2 * cats_get(c, 0.0)
            if c == cur:
                s += w3
        p = pop_get(it)
        if p is not None:
            s += w4n * p if p < top_pop else w4
        if band is not None:
            pr = price_get(it)
            if pr is None:
                s += 0.5 * w6
            elif lo <= pr <= hi:
                s += w6
        out.append(s)
    return out


def gather(
    cands: list[str], cats: dict[str, float], cur: str | None, m: Any
) -> tuple[np.ndarray, ...]:
    """The per-candidate inputs as arrays (NaN: unknown)."""
    cat_of, pop_get, price_get, cats_get = (
        m.pop.cat_of.get,
        m.pop.score.get,
        m.pop.price_of.get,
        cats.get,
    )
    cs = [cat_of(it) for it in cands]
    n = len(cands)
    catw = np.fromiter([0.0 if c is None else cats_get(c, 0.0) for c in cs], float, n)
    same = np.fromiter([c is not None and c == cur for c in cs], bool, n)
    pop = np.fromiter([np.nan if (p := pop_get(it)) is None else p for it in cands], float, n)
    price = np.fromiter([np.nan if (p := price_get(it)) is None else p for it in cands], float, n)
    return catw, same, pop, price


def numpy_arith(arrays: tuple[np.ndarray, ...], t: Terms) -> np.ndarray:
    base, w2, w3, w4n, w4, w6, lo, hi, band, top_pop = t
    catw, same, pop, price = arrays
    s = base + w2 * catw  # the additions in fast_scores' order (adding 0.0 changes nothing)
    s = s + np.where(same, w3, 0.0)
    s = s + np.where(np.isnan(pop), 0.0, np.where(pop < top_pop, w4n * pop, w4))
    if band is not None:
        s = s + np.where(
            np.isnan(price), 0.5 * w6, np.where((lo <= price) & (price <= hi), w6, 0.0)
        )
    return s


def best_of(rounds: int, f: Callable[[], Any]) -> float:
    times = []
    for _ in range(rounds):
        t = time.process_time()
        f()
        times.append(time.process_time() - t)
    return min(times)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TAOBAO
    if not path.exists():
        sys.exit(f"skipped: {path} is absent (set RTP_DATA_DIR or pass a path)")
    tune_gc()
    s = Settings.from_env()
    eng = Engine(s)
    for _tick, events in sorted(taobao_ticks(s, path).items()):
        eng.process(events)
    view, rules = eng.view, eng.users.rules
    users = [u for u in eng.users.users.values() if u.session.n]
    users = random.Random(7).sample(users, min(5_000, len(users)))

    # the candidates of each decision: fast_scores' dict and its category-popular stream
    pools: list[list[str]] = []
    original = score_module.fast_scores

    def spy(*a: Any, **k: Any) -> dict[str, float]:
        streams = a[8] if len(a) > 8 else k.get("streams")
        sc = original(*a, **k)
        pools.append([*sc, *(it for it, _ in streams or ())])
        return sc

    import rtp.decisions.home as home

    home.fast_scores = spy  # type: ignore[assignment]
    try:
        for u in users:
            rank_home(u, view, rules)
    finally:
        home.fast_scores = original  # type: ignore[assignment]
    counts = sorted(len(p) for p in pools)
    q = statistics.quantiles(counts, n=10)
    print(
        f"{path.name}: {len(users):,} warm users; candidates per decision: mean "
        f"{statistics.fmean(counts):.1f}, median {statistics.median(counts):.0f}, p10 {q[0]:.0f}, "
        f"p90 {q[-1]:.0f}, max {counts[-1]} (home list: {rules.home_n})"
    )

    inputs = [(p, *_terms(u, view, rules)) for u, p in zip(users, pools, strict=True)]
    ref = [python_scores(p, c, cur, t, view) for p, c, cur, t in inputs]
    # the copy of the closure against the model's features: intercept + these four terms
    w = view.weights
    drift = 0.0
    for u, (p, c, cur, t), r in zip(users, inputs, ref, strict=True):
        vecs = {it: [0.0] * len(FEATURES) for it in p}
        fill_context(u, view, c, t[8], rules.price_slack, cur, vecs)
        for it, x in zip(p, r, strict=True):
            v = vecs[it]
            want = view.intercept + sum(w[f] * v[f] for f in (CAT, SAME_CAT, POP, PRICE_FIT))
            drift = max(drift, abs(want - x))
    if drift > 1e-9:
        sys.exit(f"the Python pass no longer scores as fill_context says (off by {drift:.3g})")
    gathered = [gather(p, c, cur, view) for p, c, cur, _t in inputs]
    got = [numpy_arith(a, t) for a, (_p, _c, _cur, t) in zip(gathered, inputs, strict=True)]
    diff = max(
        (float(np.max(np.abs(np.asarray(r) - g))) for r, g in zip(ref, got, strict=True) if r),
        default=0.0,
    )
    n = len(inputs)
    py = best_of(7, lambda: [python_scores(p, c, cur, t, view) for p, c, cur, t in inputs])
    nps = best_of(7, lambda: [numpy_arith(gather(p, c, cur, view), t) for p, c, cur, t in inputs])
    arith = best_of(
        7,
        lambda: [numpy_arith(a, t) for a, (_p, _c, _cur, t) in zip(gathered, inputs, strict=True)],
    )
    print(f"  python, one pass:              {py / n * 1e6:6.1f} us/decision")
    print(f"  numpy, gathered + vectorized:  {nps / n * 1e6:6.1f} us/decision")
    print(f"  numpy, arithmetic only:        {arith / n * 1e6:6.1f} us/decision")
    print(
        f"  largest difference from python: {diff:.3g} "
        "(the whole rank_home: benchmarks/ranking_cost.py)"
    )


if __name__ == "__main__":
    main()
