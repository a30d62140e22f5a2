"""The experiments report on synthetic per-shard metrics: numbers, reading, text, plot, CLI."""

from __future__ import annotations

import argparse
import doctest
import json
import random
import re
from pathlib import Path
from typing import Any

import orjson
import pytest

import rtp.experiments.report
from rtp.experiments.bandits import BanditTuner
from rtp.experiments.cli import add_cli
from rtp.experiments.design import ArmMetrics, ExperimentSet, load_experiments
from rtp.experiments.report import (
    build_report,
    group_meta,
    plot,
    render_text,
    run_report,
)
from rtp.experiments.stats import compare_means, compare_proportions, sample_ratio_mismatch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "experiments.toml"
CONFIG = load_experiments(EXAMPLE)
EXP = "rt-vs-batch"
BANDIT = "home-reshow"
BANDIT_MEANS = {"reshow-4": 0.3, "reshow-0": 0.1, "reshow-8": 0.15}


def synthetic(
    mode: str,
    conversion: dict[str, float],
    ctr: dict[str, float],
    users: int = 6_000,
    drop: tuple[str, float] | None = None,
    shards: int = 2,
    seed: int = 1,
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """Per-shard metric and bandit dicts, as the flow would write them."""
    rng = random.Random(seed)
    metrics = [
        ArmMetrics(EXP, CONFIG.experiments[EXP].arm_names, mode=mode, seed=s) for s in range(shards)
    ]
    tuners = [CONFIG.bandits[BANDIT].make() for _ in range(shards)]
    for t in tuners:
        t.true_means = dict(BANDIT_MEANS)
    ts0 = 1_511_600_000.0
    for i in range(users):
        uid = f"u{i}"
        hit = CONFIG.assign(uid, "home")
        assert hit is not None
        arm = hit[1]
        if drop and arm == drop[0] and rng.random() < drop[1]:
            continue  # lost users (a logging bug): what the SRM check is for
        shard = i % shards
        m = metrics[shard]
        for k in range(rng.choice([1, 1, 2])):
            ts = ts0 + rng.uniform(0, 5 * 86_400)
            shown = 0 if arm == "none" else rng.randint(1, 4)
            for _ in range(shown):
                m.on_shown(arm, 20, ts)
                if rng.random() < ctr[arm]:
                    m.on_attributed(arm, ts + 30)
            bought = rng.random() < conversion[arm]
            m.on_session_end(
                arm,
                rng.randint(1, 15),
                int(bought),
                rng.expovariate(1 / 40) if bought else 0.0,
                k > 0,
                ts,
            )
            if arm == "realtime":
                t = tuners[shard]
                choice = t.choose()
                t.reward(choice, 1.0 if rng.random() < BANDIT_MEANS[choice] else 0.0)
    return (
        {EXP: [json.loads(json.dumps(m.to_dict())) for m in metrics]},
        {BANDIT: [json.loads(json.dumps(t.to_dict())) for t in tuners]},
    )


FLAT = {"realtime": 0.05, "batch": 0.05, "none": 0.05}
CTR = {"realtime": 0.12, "batch": 0.08, "none": 0.0}


def test_doctests() -> None:
    result = doctest.testmod(rtp.experiments.report)
    assert result.failed == 0 and result.attempted > 0


def test_live_report_numbers_match_the_stats_on_merged_metrics() -> None:
    conversion = {"realtime": 0.08, "batch": 0.04, "none": 0.05}
    metrics, bandits = synthetic("live", conversion, CTR)
    report = build_report(CONFIG, metrics, bandits, n_boot=400)
    e = report["experiments"][EXP]
    merged = ArmMetrics.merge(metrics[EXP]).summary()
    for arm in ("realtime", "batch", "none"):
        assert e["arms"][arm]["sessions"] == merged[arm]["sessions"]
        assert e["arms"][arm]["conversion"] == merged[arm]["conversion"]
    c, t = merged["realtime"], merged["batch"]
    cmp = e["comparisons"]["batch"]
    assert cmp["conversion"] == compare_proportions(
        c["conversions"], c["sessions"], t["conversions"], t["sessions"]
    )
    assert cmp["ctr"] == compare_proportions(
        c["attributed"], c["shown"], t["attributed"], t["shown"]
    )
    assert cmp["revenue"]["welch"] == compare_means(
        c["revenue_per_session"],
        c["revenue_var"],
        c["sessions"],
        t["revenue_per_session"],
        t["revenue_var"],
        t["sessions"],
    )
    assert cmp["depth"]["bootstrap"]["n_a"] == c["reservoir"]
    assert e["srm"] == sample_ratio_mismatch(
        {a: merged[a]["new_users"] for a in merged}, CONFIG.experiments[EXP].shares
    ) | {"unit": "users (first sessions)"}
    assert e["srm"]["mismatch"] is False
    assert cmp["conversion"]["significant"] is True  # 8% vs 4% on ~2,500 sessions an arm
    assert e["reading"].startswith("Live: users saw their arm's decisions")
    assert "batch conversion" in e["reading"]
    assert "none shows no recommendations" in e["reading"]
    assert e["arms"]["none"]["ctr"] is None
    assert e["comparisons"]["none"]["ctr"]["p_value"] is None
    json.dumps(report)  # JSON-able

    b = report["bandits"][BANDIT]
    assert b["shards"] == 2
    assert b["n_pulls"] == sum(d["n_pulls"] for d in bandits[BANDIT])
    assert max(b["pulls"], key=lambda a: b["pulls"][a]) == "reshow-4"
    assert b["regret_true"] is not None and b["regret_est"] >= 0
    assert "reshow-4" in b["reading"]


def test_replay_reading_says_only_click_through_can_differ() -> None:
    metrics, bandits = synthetic("replay", FLAT, CTR)
    report = build_report(CONFIG, metrics, bandits, n_boot=300)
    reading = report["experiments"][EXP]["reading"]
    assert reading.startswith("Offline replay: the logged users never saw rtp's decisions")
    assert "only attributed click-through can differ by arm" in reading
    assert "batch" in reading and "vs realtime" in reading
    # The mode argument overrides what the metrics recorded.
    live = build_report(CONFIG, metrics, bandits, n_boot=50, mode="live")
    assert live["experiments"][EXP]["reading"].startswith("Live:")


def test_srm_is_flagged_when_users_go_missing() -> None:
    metrics, bandits = synthetic("live", FLAT, CTR, drop=("batch", 0.15))
    e = build_report(CONFIG, metrics, bandits, n_boot=100)["experiments"][EXP]
    assert e["srm"]["mismatch"] is True
    assert e["reading"].startswith("SAMPLE RATIO MISMATCH")


def test_empty_metrics_do_not_crash() -> None:
    report = build_report(CONFIG, {}, {})
    e = report["experiments"][EXP]
    assert e["arms"]["realtime"]["sessions"] == 0
    assert e["reading"].startswith("No sessions recorded")
    assert report["bandits"][BANDIT]["n_pulls"] == 0
    text = render_text(report)
    assert "rt-vs-batch" in text and "home-reshow" in text


def test_render_text_and_plot(tmp_path: Path) -> None:
    metrics, bandits = synthetic("replay", FLAT, CTR, users=3_000)
    report = build_report(CONFIG, metrics, bandits, n_boot=200)
    text = render_text(report)
    for needle in (
        "experiment rt-vs-batch",
        "realtime",
        "batch",
        "none",
        "click-through",
        "revenue/session",
        "SRM on users",
        "reading:",
        "bandit home-reshow",
        "reshow-4",
    ):
        assert needle in text, needle
    path = tmp_path / "report.png"
    plot(report, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    empty = tmp_path / "empty.png"
    plot(build_report(ExperimentSet(), {}, {}), empty)
    assert empty.stat().st_size > 0


def test_group_meta_orders_shards() -> None:
    d = {"exp:e:10": {"i": 10}, "exp:e:2": {"i": 2}, "exp:f:0": b'{"i": 0}'}
    assert group_meta(d, "exp:") == {"e": [{"i": 2}, {"i": 10}], "f": [{"i": 0}]}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtp")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_report_with_a_loader(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics, bandits = synthetic("replay", FLAT, CTR, users=2_000)
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    args = _parser().parse_args(
        [
            "experiments",
            "report",
            "--config",
            str(EXAMPLE),
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--experiment",
            EXP,
        ]
    )
    assert args.func.__name__ == "_report_command"
    assert run_report(args, lambda: (metrics, bandits)) == 0
    printed = capsys.readouterr().out
    assert "experiment rt-vs-batch" in printed and "bandit home-reshow" in printed
    saved = orjson.loads(out_json.read_bytes())
    assert saved["experiments"][EXP]["arms"]["realtime"]["sessions"] > 0
    assert out_png.stat().st_size > 0

    bad = _parser().parse_args(
        ["experiments", "report", "--config", str(EXAMPLE), "--experiment", "nope"]
    )
    assert run_report(bad, lambda: (metrics, bandits)) == 2
    assert "no experiment or bandit 'nope'" in capsys.readouterr().err


def test_cli_needs_a_config_and_a_redis_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RTP_REDIS_URL", raising=False)
    monkeypatch.delenv("RTP_EXPERIMENTS_FILE", raising=False)
    args = _parser().parse_args(["experiments", "report", "--config", str(EXAMPLE)])
    assert args.func(args) == 2
    assert "pass --redis-url" in capsys.readouterr().err
    args = _parser().parse_args(["experiments", "report"])
    assert run_report(args, lambda: ({}, {})) == 2
    assert "no experiments config" in capsys.readouterr().err


def test_cli_reads_meta_keys_from_redis(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from rtp.config import Settings
    from rtp.engine.writes import Writes
    from rtp.store.store import Store

    metrics, bandits = synthetic("replay", FLAT, CTR, users=1_000)
    w = Writes()
    for i, d in enumerate(metrics[EXP]):
        w.meta.append((f"exp:{EXP}:{i}", orjson.dumps(d)))
    for i, d in enumerate(bandits[BANDIT]):
        w.meta.append((f"bandit:{BANDIT}:{i}", orjson.dumps(d)))
    with Store.from_url(redis_url, Settings()) as store:
        store.write(w)
    args = _parser().parse_args(
        ["experiments", "report", "--config", str(EXAMPLE), "--redis-url", redis_url]
    )
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    sessions = ArmMetrics.merge(metrics[EXP]).summary()["realtime"]["sessions"]
    pulls = BanditTuner.merge(bandits[BANDIT])["n_pulls"]
    assert re.search(rf"realtime\s+0\.34\s+{sessions:,}\s", printed)
    assert f"2 shard(s); {pulls:,} pulls" in printed
