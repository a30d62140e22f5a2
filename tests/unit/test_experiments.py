"""Experiment config, sticky assignment and per-arm session metrics."""

from __future__ import annotations

import doctest
import json
import math
import os
import pickle
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as sps

import rtp.experiments.design
from rtp.errors import ConfigError
from rtp.experiments.design import (
    ArmMetrics,
    ExperimentSet,
    load_experiments,
    parse_arm,
    unit_hash,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "experiments.toml"
N_USERS = 100_000
USERS = [f"u{i}" for i in range(N_USERS)]


def _exp(
    name: str,
    placements: list[str],
    shares: dict[str, float],
    salt: str | None = None,
    control: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "salt": salt or f"{name}-salt",
        "placements": placements,
        "control": control or next(iter(shares)),
        "arm": [{"name": a, "share": s} for a, s in shares.items()],
    }


def test_doctests() -> None:
    result = doctest.testmod(rtp.experiments.design)
    assert result.failed == 0 and result.attempted > 0


# --- config --------------------------------------------------------------------------------


def test_example_config_loads() -> None:
    exps = load_experiments(EXAMPLE)
    e = exps.experiments["rt-vs-batch"]
    assert e.shares == {"realtime": 0.34, "batch": 0.33, "none": 0.33}
    assert e.placements == ("home", "product") and e.control == "realtime"
    assert exps.experiment_for("home") is e and exps.experiment_for("product") is e
    b = exps.bandits["home-reshow"]
    assert (b.placement, b.policy, b.arms) == (
        "home",
        "thompson",
        ("reshow-4", "reshow-0", "reshow-8"),
    )
    assert exps.bandit_for("home") is b
    assert e.arm("batch").params == {"strategy": "batch"}
    tuner = b.make()
    assert tuner.choose() in b.arms


def test_shares_must_sum_to_one() -> None:
    bad = {"experiment": [_exp("e", ["home"], {"a": 0.5, "b": 0.45})]}
    with pytest.raises(ConfigError, match=r"experiment 'e': arm shares sum to 0\.95, not 1"):
        ExperimentSet.from_dict(bad)
    # Within the tolerance is fine.
    ok = {"experiment": [_exp("e", ["home"], {"a": 0.5, "b": 0.5 - 5e-7})]}
    assert ExperimentSet.from_dict(ok).experiments["e"].shares["b"] == 0.5 - 5e-7


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["experiment"][0].update(colour="red"), "unknown key"),
        (lambda d: d["experiment"][0].update(control="zzz"), "'control' must name one of"),
        (lambda d: d["experiment"][0]["arm"].pop(), "at least two"),
        (lambda d: d["experiment"][0].update(placements=[]), "placements"),
        (lambda d: d["experiment"][0]["arm"][0].update(share=-0.1), "share"),
        (lambda d: d["experiment"][0]["arm"][0].update(share=True), "expected a number"),
        (lambda d: d["experiment"][0].update(name="a:b"), "must not contain ':'"),
        (
            lambda d: d["experiment"].append(_exp("f", ["home"], {"x": 0.5, "y": 0.5})),
            "placement 'home' is in experiments 'e' and 'f'",
        ),
        (
            lambda d: d["experiment"].append(
                _exp("f", ["cart"], {"x": 0.5, "y": 0.5}, salt="e-salt")
            ),
            "share the salt",
        ),
        (
            lambda d: d.update(
                bandit=[{"name": "b", "placement": "home", "policy": "greedy", "arms": ["x", "y"]}]
            ),
            "policy 'greedy'",
        ),
        (
            lambda d: d.update(bandit=[{"name": "b", "placement": "home", "arms": ["x"]}]),
            "at least two",
        ),
        (lambda d: d.update(extra=1), "top level: unknown key"),
    ],
)
def test_config_errors_are_clear(mutate: Any, message: str) -> None:
    data = {"experiment": [_exp("e", ["home"], {"a": 0.5, "b": 0.5})]}
    mutate(data)
    with pytest.raises(ConfigError, match=message):
        ExperimentSet.from_dict(data)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read experiments file"):
        load_experiments(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[[experiment]\nname = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_experiments(broken)
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[[experiment]]\nname = "e"\nplacements = ["home"]\ncontrol = "a"\n'
        '[[experiment.arm]]\nname = "a"\nshare = 0.7\n[[experiment.arm]]\nname = "b"\nshare = 0.7\n'
    )
    with pytest.raises(ConfigError, match=rf"{bad.name}: experiment 'e': arm shares sum to 1\.4"):
        load_experiments(bad)


def test_parse_arm() -> None:
    assert parse_arm("reshow-8") == ("reshow", 8.0)
    assert parse_arm("none") == ("none", None)
    assert parse_arm("rt-vs-batch") == ("rt-vs-batch", None)


# --- assignment ----------------------------------------------------------------------------


def test_unit_hash_is_uniform() -> None:
    us = [unit_hash("salt", u) for u in USERS]
    assert all(0.0 <= u < 1.0 for u in us)
    assert sps.kstest(us, "uniform").pvalue > 0.001


def test_assignment_is_stable_and_matches_shares() -> None:
    shares = {"realtime": 0.34, "batch": 0.33, "none": 0.33}
    data = {"experiment": [_exp("e", ["home", "product"], shares)]}
    exps = ExperimentSet.from_dict(data)
    first = [exps.assign(u, "home") for u in USERS]
    assert first == [exps.assign(u, "home") for u in USERS]  # stable across calls
    assert first == [exps.assign(u, "product") for u in USERS]  # same arm on every placement
    again = ExperimentSet.from_dict(data)  # a fresh object (another shard, a restart)
    assert first == [again.assign(u, "home") for u in USERS]
    thawed = pickle.loads(pickle.dumps(exps))  # Bytewax state
    assert first == [thawed.assign(u, "home") for u in USERS]

    counts = {a: 0 for a in shares}
    for hit in first:
        assert hit is not None and hit[0] == "e"
        counts[hit[1]] += 1
    observed = [counts[a] for a in shares]
    expected = [N_USERS * s for s in shares.values()]
    assert sps.chisquare(observed, expected).pvalue > 0.001
    for a, s in shares.items():  # and each arm within 4.5 binomial standard deviations
        assert abs(counts[a] - N_USERS * s) < 4.5 * math.sqrt(N_USERS * s * (1 - s))
    assert exps.assign("u1", "cart") is None
    assert exps.arms_for("u1") == {"e": first[1][1]}


def test_assignment_is_the_same_in_another_process() -> None:
    data = {"experiment": [_exp("e", ["home"], {"a": 0.2, "b": 0.3, "c": 0.5})]}
    here = [ExperimentSet.from_dict(data).assign(u, "home")[1] for u in USERS[:500]]
    code = (
        "import json, sys\n"
        "from rtp.experiments.design import ExperimentSet\n"
        "data = json.loads(sys.argv[1])\n"
        "e = ExperimentSet.from_dict(data)\n"
        "print(json.dumps([e.assign(f'u{i}', 'home')[1] for i in range(500)]))\n"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(data)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    assert json.loads(out.stdout) == here


def test_share_change_does_not_reshuffle_other_experiments() -> None:
    other = _exp("other", ["product"], {"x": 0.5, "y": 0.5})
    before = ExperimentSet.from_dict(
        {"experiment": [_exp("e", ["home"], {"a": 0.5, "b": 0.5}), other]}
    )
    after = ExperimentSet.from_dict(
        {"experiment": [_exp("e", ["home"], {"a": 0.6, "b": 0.4}), other]}
    )
    resalted = ExperimentSet.from_dict(
        {"experiment": [_exp("e", ["home"], {"a": 0.5, "b": 0.5}, salt="new"), other]}
    )
    b_e = [before.assign(u, "home") for u in USERS]
    a_e = [after.assign(u, "home") for u in USERS]
    moved = sum(x != y for x, y in zip(b_e, a_e, strict=True))
    assert 0.08 * N_USERS < moved < 0.12 * N_USERS  # ~10% of e's users move from b to a
    # Growing a's share only moves users into a: nobody leaves it.
    assert all(y == ("e", "a") for x, y in zip(b_e, a_e, strict=True) if x == ("e", "a"))
    b_o = [before.assign(u, "product") for u in USERS]
    assert b_o == [after.assign(u, "product") for u in USERS]
    assert b_o == [resalted.assign(u, "product") for u in USERS]
    # A new salt re-randomizes e itself (about half its users change arm).
    r_e = [resalted.assign(u, "home") for u in USERS]
    assert 0.45 < sum(x != y for x, y in zip(b_e, r_e, strict=True)) / N_USERS < 0.55
    # Two experiments with different salts are independent: a 2x2 table passes chi-square.
    table = [[0, 0], [0, 0]]
    for x, y in zip(b_e, b_o, strict=True):
        table[x[1] == "b"][y[1] == "y"] += 1
    assert sps.chi2_contingency(table).pvalue > 0.001


def test_zero_share_arm_gets_nobody() -> None:
    exps = ExperimentSet.from_dict(
        {"experiment": [_exp("e", ["home"], {"a": 0.5, "off": 0.0, "b": 0.5, "tail": 0.0})]}
    )
    arms = {exps.assign(u, "home")[1] for u in USERS[:20_000]}
    assert arms == {"a", "b"}


def test_assignment_cost_is_about_a_microsecond() -> None:
    exps = load_experiments(EXAMPLE)
    users = USERS[:50_000]
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for u in users:
            exps.assign(u, "home")
        best = min(best, time.perf_counter() - t0)
    us = best / len(users) * 1e6
    print(f"assign: {us:.2f} us per call")
    assert us < 20.0  # generous: ~1 us on a laptop; only catches accidental slowness


# --- metrics -------------------------------------------------------------------------------

SESSIONS = [  # arm, events, purchases, revenue, returning, ts
    ("realtime", 5, 1, 20.0, False, 100.0),
    ("realtime", 2, 0, 0.0, True, 4_000.0),
    ("realtime", 9, 2, 55.5, True, 4_100.0),
    ("batch", 3, 0, 0.0, False, 200.0),
    ("batch", 7, 1, 12.25, False, 8_000.0),
]


def _feed(m: ArmMetrics, sessions: list[tuple[str, int, int, float, bool, float]]) -> None:
    for arm, events, purchases, revenue, returning, ts in sessions:
        m.on_session_end(arm, events, purchases, revenue, returning, ts)


def test_metrics_equal_hand_computed_values() -> None:
    m = ArmMetrics("rt-vs-batch", ["realtime", "batch", "none"])
    _feed(m, SESSIONS)
    for _ in range(4):
        m.on_shown("realtime", 20)
    m.on_shown("batch", 10)
    m.on_attributed("realtime", 150.0)
    s = m.summary()
    for arm in ("realtime", "batch"):
        rows = [r for r in SESSIONS if r[0] == arm]
        revenue = [r[3] for r in rows]
        events = [float(r[1]) for r in rows]
        got = s[arm]
        assert got["sessions"] == len(rows)
        assert got["conversion"] == sum(r[2] > 0 for r in rows) / len(rows)
        assert got["purchases"] == sum(r[2] for r in rows)
        assert got["revenue_per_session"] == pytest.approx(statistics.mean(revenue))
        assert got["revenue_var"] == pytest.approx(statistics.variance(revenue))
        assert got["depth"] == pytest.approx(statistics.mean(events))
        assert got["depth_var"] == pytest.approx(statistics.variance(events))
        assert got["return_rate"] == sum(r[4] for r in rows) / len(rows)
        assert got["new_users"] == sum(not r[4] for r in rows)
        rev, ev = m.reservoir(arm)
        assert sorted(rev) == sorted(revenue) and sorted(ev) == sorted(events)
    assert s["realtime"]["ctr"] == 1 / 4 and s["realtime"]["shown_items"] == 80
    assert s["batch"]["ctr"] == 0.0
    assert s["none"]["sessions"] == 0 and s["none"]["conversion"] is None
    assert s["none"]["ctr"] is None and s["none"]["revenue_var"] is None
    assert (m.first_ts, m.last_ts) == (100.0, 8_000.0)

    series = m.series("realtime")  # hourly buckets, cumulative
    assert [p["ts"] for p in series] == [0, 3_600]
    assert [p["sessions"] for p in series] == [1, 3]
    assert [p["conversions"] for p in series] == [1, 2]
    assert [p["attributed"] for p in series] == [1, 1]


def test_metrics_serialize_pickle_and_merge_like_one_shard() -> None:
    rng = random.Random(5)
    rows = [
        (
            rng.choice(["a", "b"]),
            rng.randint(1, 20),
            int(rng.random() < 0.1),
            round(rng.expovariate(0.05), 2),
            rng.random() < 0.4,
            rng.uniform(0, 86_400 * 3),
        )
        for _ in range(3_000)
    ]
    whole = ArmMetrics("e", mode="live", reservoir_size=10_000)
    shards = [ArmMetrics("e", mode="live", reservoir_size=10_000, seed=i) for i in range(3)]
    _feed(whole, rows)
    for i, r in enumerate(rows):
        _feed(shards[i % 3], [r])
    dicts = [json.loads(json.dumps(s.to_dict())) for s in shards]  # what Redis holds
    merged = ArmMetrics.merge(dicts)
    assert merged.mode == "live" and merged.experiment == "e"
    sw, sm = whole.summary(), merged.summary()
    for arm in ("a", "b"):
        for key, value in sw[arm].items():
            assert sm[arm][key] == pytest.approx(value), key
        assert merged.series(arm) == whole.series(arm)
    thawed = pickle.loads(pickle.dumps(shards[0]))
    assert thawed.to_dict() == shards[0].to_dict()
    assert ArmMetrics.from_dict(shards[0].to_dict()).summary() == shards[0].summary()
    with pytest.raises(ValueError, match="different experiments"):
        ArmMetrics.merge([shards[0].to_dict(), ArmMetrics("other").to_dict()])


def test_reservoir_is_bounded_uniform_and_merges_uniformly() -> None:
    big = ArmMetrics("e", reservoir_size=2_000, seed=1)
    for i in range(20_000):
        big.on_session_end("a", 1, 0, float(i), False, 0.0)
    rev, _ = big.reservoir("a")
    assert len(rev) == 2_000 and len(set(rev)) == 2_000
    # A uniform sample of 0..19999: KS against the discrete uniform (continuous approx.).
    assert sps.kstest([r / 20_000 for r in rev], "uniform").pvalue > 0.001

    again = ArmMetrics("e", reservoir_size=2_000, seed=1)
    for i in range(20_000):
        again.on_session_end("a", 1, 0, float(i), False, 0.0)
    assert again.reservoir("a") == big.reservoir("a")  # seeded

    # Two shards, 15,000 and 5,000 sessions: the merged sample keeps their 3:1 proportion.
    s0 = ArmMetrics("e", reservoir_size=2_000, seed=2)
    s1 = ArmMetrics("e", reservoir_size=2_000, seed=3)
    for _ in range(15_000):
        s0.on_session_end("a", 1, 0, 0.0, False, 0.0)
    for _ in range(5_000):
        s1.on_session_end("a", 1, 0, 1.0, False, 0.0)
    rev, _ = ArmMetrics.merge([s0.to_dict(), s1.to_dict()]).reservoir("a")
    assert len(rev) == 2_000
    from_s1 = sum(rev)
    p = 5_000 / 20_000  # hypergeometric: at most the binomial's spread
    assert abs(from_s1 - 2_000 * p) < 4.5 * math.sqrt(2_000 * p * (1 - p))


def test_buckets_coarsen_when_too_many() -> None:
    m = ArmMetrics("e", bucket_s=3_600, max_buckets=10)
    for h in range(50):
        m.on_session_end("a", 1, 1, 1.0, False, h * 3_600.0 + 1)
    assert len(m.to_dict()["arms"]["a"]["buckets"]) <= 10
    assert m.bucket_s in (3_600 * 8, 3_600 * 16)
    series = m.series("a")
    assert series[-1]["sessions"] == 50 and series[-1]["conversions"] == 50
    assert all(x["sessions"] <= y["sessions"] for x, y in zip(series, series[1:], strict=False))
