"""Replay evaluation (rtp.tools.evaluate): DIGINETICA, and a stream where realtime must win."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from rtp.config import Settings
from rtp.tools.evaluate import evaluate
from tests.builders import HOUR, T0, view, write_jsonl
from tests.conftest import shared_sample

DIGINETICA = "diginetica-sample/sample_train-item-views.csv"


@pytest.mark.slow
def test_diginetica_realtime_batch_popular(tmp_path: Path) -> None:
    path = shared_sample(DIGINETICA)
    report_path, plot_path = tmp_path / "eval.json", tmp_path / "eval.png"
    report = evaluate(
        [path],
        "diginetica",
        Settings(),
        modes=["realtime", "batch", "popular"],
        split=0.8,
        ks=[5, 20],
        report_path=report_path,
        plot_path=plot_path,
        n_boot=200,
    )
    assert report["split"] == 0.8
    assert set(report["modes"]) == {"realtime", "batch", "popular"}
    targets = {rep["targets"] for rep in report["modes"].values()}
    assert len(targets) == 1 and targets.pop() > 0  # the same targets for every mode
    for rep in report["modes"].values():
        for k in (5, 20):
            for name in ("hr", "mrr", "ndcg"):
                stat = rep[f"{name}@{k}"]
                lo, hi = stat["ci"]
                assert 0.0 <= lo <= stat["value"] <= hi <= 1.0, (name, k, stat)
            assert 0.0 <= rep[f"coverage@{k}"] <= 1.0
        assert rep["mrr@20"]["value"] <= rep["hr@20"]["value"]
        assert rep["hr@5"]["value"] <= rep["hr@20"]["value"]
    assert set(report["lift"]) == {"realtime_over_batch", "realtime_over_popular"}
    saved = orjson.loads(report_path.read_bytes())
    assert saved["modes"]["realtime"]["hr@20"] == report["modes"]["realtime"]["hr@20"]
    assert plot_path.stat().st_size > 0
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_realtime_beats_batch_when_users_repeat_items_within_sessions(tmp_path: Path) -> None:
    # 120 users, each circling three items of their own within one session; a few popular
    # items that everyone sees once. A nightly list cannot know this session's items.
    events = []
    for n in range(120):
        t = T0 + 30 * n
        own = [f"u{n}-i{k}" for k in range(3)]
        events.append(view(f"u{n}", f"pop{n % 4}", t, "pop"))
        for j in range(9):
            events.append(view(f"u{n}", own[j % 3], t + 20 * (j + 1), f"c{n}"))
    events.sort(key=lambda e: e.ts)
    path = write_jsonl(tmp_path / "repeat.jsonl", events)
    report = evaluate(
        [path],
        "jsonl",
        Settings(),
        modes=["realtime", "batch"],
        ks=[20],
        refresh_s=24 * HOUR,
        n_boot=100,
    )
    rt = report["modes"]["realtime"]["hr@20"]["value"]
    batch = report["modes"]["batch"]["hr@20"]["value"]
    # by hand: of the 9 targets per user (events after the first), the first view of each own
    # item is new to the session (3 per user, at most hit by chance); the other 6 are re-views
    assert report["modes"]["realtime"]["targets"] == 120 * 9
    assert rt >= 6 / 9 - 0.01
    assert rt > batch
