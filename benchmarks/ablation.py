"""Candidate-source ablation on the Taobao slice (prequential, realtime mode).

    .venv/bin/python benchmarks/ablation.py            # all four variants
    .venv/bin/python benchmarks/ablation.py 12 0 4     # co-visited per seed, per category, trending

Prints HR@20, MRR@20 and new-to-session HR@20 for each variant, so the contribution of each
candidate source (co-visitation, category-popular items, trending) is measured, not guessed.

The limits are module constants read by candidate generation (``rtp.candidates.generate``, what
ranking examples are built from), the hot path's scoring (``rtp.ranking.score``, which imports
them) and the model view's trending terms (``rtp.engine.view.TREND_N``): each variant sets them
in all three, then runs ``rtp evaluate``'s flow in this process.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rtp.candidates.generate as generate
import rtp.engine.view as view
import rtp.ranking.score as score
from rtp.config import Settings
from rtp.tools.evaluate import evaluate

TAOBAO = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/taobao-userbehavior/UserBehavior_timeslice_96k.csv"
)
VARIANTS = [(12, 15, 4), (0, 15, 4), (12, 0, 4), (12, 15, 0)]


def run(cv: int, cat: int, trend: int) -> str:
    generate.CV_PER_SEED, generate.CAT_PER_CAT, generate.TREND_N = cv, cat, trend
    score.CV_PER_SEED, score.CAT_PER_CAT = cv, cat  # imported by name: set here too
    view.TREND_N = trend
    r = evaluate([TAOBAO], "taobao", Settings(), modes=["realtime"], n_boot=200)
    x = r["modes"]["realtime"]
    return (
        f"co-visited/seed {cv:>2}  category-popular {cat:>2}  trending {trend}:  "
        f"HR@20 {x['hr@20']['value']:.4f}  MRR@20 {x['mrr@20']['value']:.4f}  "
        f"new-to-session HR@20 {x['new_to_session']['hr@20']['value']:.4f}"
    )


if __name__ == "__main__":
    if not TAOBAO.exists():
        sys.exit(f"skipped: {TAOBAO} is absent")
    variants = [tuple(int(a) for a in sys.argv[1:4])] if len(sys.argv) == 4 else VARIANTS
    for v in variants:
        print(run(*v))
