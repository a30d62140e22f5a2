"""Context-feature ablation: each feature group's paired lift (prequential, realtime mode).

    .venv/bin/python -m rtp.tools.synth --users 5000 --seed 1 --out /tmp/synth5k.jsonl
    .venv/bin/python benchmarks/context_ablation.py synth /tmp/synth5k.jsonl
    .venv/bin/python benchmarks/context_ablation.py taobao      # the Taobao slice (no context)
    .venv/bin/python benchmarks/context_ablation.py diginetica  # the DIGINETICA sample, --split 0.8
    .venv/bin/python benchmarks/context_ablation.py synth /tmp/synth5k.jsonl device device,hour

Runs ``rtp evaluate``'s flow in this process with the default context (``Settings.rank_context``,
``Settings.rank_crosses``; ``RTP_*`` variables apply) and with none; on ``synth`` also with every
field and both crosses ("everything") and with everything but each field and each cross. Prints
paired lifts of HR@20 and MRR@20 (the same targets, paired bootstrap 95 % CI). Leave-one-out
rows: above 1, the group pays for itself beside the others. ``taobao`` and ``diginetica`` have no
context (every variant is the default run); their extra row crosses the local hour band and
weekday even when nothing else of the visit is known (what :func:`rtp.ranking.context.
context_values` refuses to do), against the default. With field sets after the path
(``synth PATH device device,hour``): each set alone against no context (forward selection).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import rtp.engine.users as users_module
import rtp.ranking.context as context_module
from rtp.config import Settings
from rtp.evaluation.metrics import paired_lift
from rtp.tools.evaluate import load_events, run_mode

DATA = Path(__file__).resolve().parents[1].parent / "shared/data"
TAOBAO = DATA / "taobao-userbehavior/UserBehavior_timeslice_96k.csv"
DIGINETICA = DATA / "diginetica-sample/sample_train-item-views.csv"
FIELDS = context_module.FIELDS
CROSSES = context_module.CROSSES
ALL = ",".join(FIELDS)
K = 20


def _clock_too(fields: Any, device: Any, referral: Any, channel: Any, country: Any,
               hour: int, weekday: int) -> tuple[str, ...]:  # fmt: skip
    """:func:`rtp.ranking.context.context_values` without its guard: the clock alone counts."""
    out = list(
        context_module.context_values(fields, device, referral, channel, country, hour, weekday)
    )
    if not out:
        band = context_module.hour_band(hour)
        if fields.hour and band is not None:
            out.append("h:" + band)
        if fields.weekend and weekday >= 0:
            out.append("w:weekend" if weekday >= 5 else "w:weekday")
    return tuple(out)


def _run(
    paths: Sequence[Path], fmt: str, score_from: float, settings: Settings,
    values: Callable[..., tuple[str, ...]] | None = None,
) -> Any:  # fmt: skip
    original = users_module.context_values
    if values is not None:
        users_module.context_values = values
    try:
        preq, _seconds = run_mode(paths, fmt, settings, "realtime", 86_400.0, (K,), score_from)
    finally:
        users_module.context_values = original
    return preq


def _row(name: str, a: Any, b: Any) -> str:
    lift = paired_lift(a, b, k=K, n_boot=1000)
    cells = []
    for m in (f"hr@{K}", f"mrr@{K}"):
        r = lift["ratio"][m]
        a, b = lift["a"][m]["value"], lift["b"][m]["value"]
        cells.append(f"{a:.4f} vs {b:.4f}: {r['value']:.3f}x "
                     f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]")  # fmt: skip
    return f"| {name:<22} | " + " | ".join(cells) + f" | {lift['paired_targets']:,} |"


def main(argv: Sequence[str]) -> None:
    kind = argv[0] if argv else "synth"
    score_from = 0.0
    if kind == "synth":
        paths, fmt = [Path(argv[1])], "jsonl"
    elif kind == "taobao":
        paths, fmt = [TAOBAO], "taobao"
    elif kind == "diginetica":
        paths, fmt = [DIGINETICA], "diginetica"
        events = load_events(paths, fmt)
        score_from = events[0].ts + 0.8 * (events[-1].ts - events[0].ts)
    else:
        sys.exit(f"unknown data set {kind!r}: synth PATH, taobao or diginetica")
    if not paths[0].exists():
        sys.exit(f"skipped: {paths[0]} is absent")
    base = Settings.from_env()
    kept = _run(paths, fmt, score_from, base)
    none = _run(paths, fmt, score_from, base.replace(rank_context="none"))
    print(f"{kind}: {paths[0].name}", flush=True)
    print(f"| {'variant':<22} | HR@{K}: a vs b, lift a/b [95 % CI] "
          f"| MRR@{K}: a vs b, lift a/b [95 % CI] | targets |")  # fmt: skip
    print("|---|---|---|---|")
    print(_row(f"a: default ({base.rank_context} x {base.rank_crosses}), b: none", kept, none),
          flush=True)  # fmt: skip
    if kind != "synth":
        clock = _run(paths, fmt, score_from, base, _clock_too)
        print(_row("a: default + clock alone, b: default", clock, kept))
        return
    full = _run(paths, fmt, score_from, base.replace(rank_context=ALL, rank_crosses="cat,price"))
    print(_row("a: everything, b: none", full, none), flush=True)
    everything = base.replace(rank_crosses="cat,price")
    for f in FIELDS:
        rest = ",".join(x for x in FIELDS if x != f)
        variant = everything.replace(rank_context=rest)
        print(_row(f"a: everything, b: without {f}", full, _run(paths, fmt, score_from, variant)),
              flush=True)  # fmt: skip
    for c in CROSSES:
        rest = ",".join(x for x in CROSSES if x != c)
        variant = base.replace(rank_context=ALL, rank_crosses=rest)
        print(_row(f"a: everything, b: without x {c}", full,
                   _run(paths, fmt, score_from, variant)), flush=True)  # fmt: skip
    for fields in argv[2:]:  # forward selection: each set (default crosses) against none
        variant = base.replace(rank_context=fields)
        print(_row(f"a: only {fields}, b: none", _run(paths, fmt, score_from, variant), none),
              flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
