"""7. The ranking models rtp can use (``Settings.ranker``): the cost of one learn and one score.

Quality is measured by ``rtp evaluate ... --ranker KIND`` (BENCHMARKS.md); here, µs per
``learn_one`` (a River update) and per frozen-weight score of one candidate (what a decision
pays per candidate, whatever the kind).
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from benchmarks.conftest import record
from rtp.ranking.ranker import FEATURES, KINDS, OnlineRanker

N = 20_000


def _examples(n: int) -> list[tuple[dict[str, float], bool]]:
    rng = random.Random(5)
    out = []
    for _ in range(n):
        x = {f: rng.random() if rng.random() < 0.5 else 0.0 for f in FEATURES}
        out.append((x, x["cv"] + x["recency"] > 0.9))
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_ranker_learn_cost(benchmark: Any, kind: str) -> None:
    examples = _examples(N)

    def learn() -> float:
        r = OnlineRanker(seed=1, kind=kind)
        t = time.perf_counter()
        for x, y in examples:
            r.learn_one(x, y)
        return (time.perf_counter() - t) / N * 1e6

    us = benchmark.pedantic(learn, rounds=3, iterations=1)
    record(benchmark, **{f"ranker_{kind}_learn_us": round(us, 2)})


def test_frozen_score_cost(benchmark: Any) -> None:
    r = OnlineRanker(seed=1)
    w = r.freeze()
    vectors = [list(x.values()) for x, _ in _examples(N)]

    def score() -> float:
        t = time.perf_counter()
        for v in vectors:
            sum(a * b for a, b in zip(w, v, strict=True))
        return (time.perf_counter() - t) / N * 1e6

    us = benchmark.pedantic(score, rounds=3, iterations=1)
    record(benchmark, ranker_frozen_dot_product_us=round(us, 2))
