"""8. The cost of experiment assignment (a hash of user id and salt; nothing cached per user)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.conftest import record
from rtp.experiments.design import load_experiments

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "experiments.toml"
N = 100_000


def test_assignment_cost(benchmark: Any) -> None:
    exps = load_experiments(CONFIG)
    users = [f"u{i}" for i in range(N)]

    def assign_all() -> float:
        t = time.perf_counter()
        for u in users:
            exps.assign(u, "home")
        return (time.perf_counter() - t) / N * 1e6

    us = benchmark.pedantic(assign_all, rounds=3, iterations=1)
    record(benchmark, experiment_assign_us=round(us, 2))
