"""What ranking costs: microseconds per decision (``rank_home``) and per learned example.

    .venv/bin/python benchmarks/ranking_cost.py                 # Taobao slice
    .venv/bin/python benchmarks/ranking_cost.py synth.jsonl 0.5 # a schema-v1 stream (context),
                                                                # warm with its first half

Replays the stream through the facade :class:`rtp.engine.Engine` (ticks of
``Settings.tick_records`` records, the user step's own enrichment as the flow does it), then, on
the warm engine, times ``rank_home`` (during the replay: every decision the user step makes; then
again on the warm engine, for up to 5,000 users with an open session (each with its
context values, as the user step passes them), the best of 7 rounds of process time; and the
ranker's ``learn_one`` over the examples the replay produced (a copy of the trained ranker, each
example a positive and its negatives, with their context crosses), the best of 5 rounds. Prints
microseconds per decision and per ``learn_one`` call.
"""

from __future__ import annotations

import copy
import gc
import random
import sys
import time
from pathlib import Path
from typing import Any

from rtp.capture.enrich import Enricher
from rtp.capture.events import Event
from rtp.config import Settings
from rtp.decisions.home import rank_home
from rtp.engine import Engine
from rtp.flow.dataflow import tune_gc
from rtp.flow.sources import FilesSource
from rtp.ranking.ranker import FEATURES

TAOBAO = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/taobao-userbehavior/UserBehavior_timeslice_96k.csv"
)


class _Keep:
    """Collects the ranking examples the global step learns (a copy of each tick's list)."""

    def __init__(self, eng: Engine) -> None:
        self.examples: list[Any] = []
        merge = eng.merge
        original = merge._complete

        def complete(upto: int, log: Any) -> Any:
            for tick, (examples, _r) in merge.pending.items():
                if tick <= upto:
                    self.examples.extend(examples)
            return original(upto, log)

        merge._complete = complete  # type: ignore[method-assign]


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TAOBAO
    share = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0  # of the ticks replayed
    if not path.exists():
        sys.exit(f"skipped: {path} is absent")
    fmt = "taobao" if path.suffix == ".csv" else "jsonl"
    tune_gc()
    s = Settings.from_env()
    src = FilesSource(path, fmt, batch_lines=s.batch_lines, tick_records=s.tick_records)
    ticks: dict[int, list[Event]] = {}
    enricher = Enricher(site_hosts=s.site_hosts.split(",") if s.site_hosts else ())
    for b in src.read_all():
        for e in b.events:
            enricher.enrich(e)
        ticks.setdefault(b.tick, []).extend(b.events)
    import rtp.engine.users as users_module

    spent = [0.0, 0, 0.0]  # time, decisions, paired time already counted
    clock = time.process_time

    paired = [0.0, 0.0]  # decisions with context values: time with them, without
    n_paired = [0]

    def timed(*args: Any, **kw: Any) -> Any:
        gc.disable()  # a collection the rest of the step's garbage triggers is not ranking's
        ctx = kw.get("ctx", ())
        if ctx:  # paired: the same decision without context too, in alternating order
            first = n_paired[0] % 2
            for j in (first, 1 - first):
                t0 = clock()
                got = rank_home(*args, **(kw if j == 0 else {**kw, "ctx": ()}))
                paired[j] += clock() - t0
                if j == 0:
                    out = got
            n_paired[0] += 1
            spent[0] += paired[0] - spent[2]
            spent[2] = paired[0]
        else:
            t0 = clock()
            out = rank_home(*args, **kw)
            spent[0] += clock() - t0
        gc.enable()
        spent[1] += 1
        return out

    users_module.rank_home = timed  # type: ignore[assignment]
    eng = Engine(s)
    keep = _Keep(eng)
    ordered = sorted(ticks.items())
    for _tick, events in ordered[: max(1, int(len(ordered) * share))]:
        eng.process(events)
    users_module.rank_home = rank_home
    print(
        f"{path.name}: replay: rank_home {spent[0] / max(1, spent[1]) * 1e6:.1f} us/decision "
        f"over its {spent[1]:,} decisions"
    )
    if n_paired[0]:
        n = n_paired[0]
        print(
            f"{path.name}: replay: the {n:,} decisions with context values: "
            f"{paired[0] / n * 1e6:.1f} us with them, {paired[1] / n * 1e6:.1f} "
            f"us without (the same decisions, paired)"
        )
    shard, view, rules = eng.users, eng.view, eng.users.rules
    users = [u for u in shard.users.values() if u.session.n]
    users = random.Random(7).sample(users, min(5_000, len(users)))
    context_of = getattr(shard, "context_of", None)  # (older versions: no context)
    ctxs = [context_of(u) if context_of else () for u in users]
    rounds = []
    for _ in range(8):
        memo = getattr(view, "_knn_memo", None)
        if memo:  # session neighbourhoods: each decision computes its own, as in the replay
            memo.clear()
        t = time.process_time()
        for u, ctx in zip(users, ctxs, strict=True):
            rank_home(u, view, rules, ctx=ctx) if ctx else rank_home(u, view, rules)
        rounds.append((time.process_time() - t) / len(users) * 1e6)
    with_ctx = sum(1 for c in ctxs if c)
    n_cross = sum(len(t) for t in getattr(view, "cross", {}).values())
    print(
        f"{path.name}: rank_home {min(rounds[1:]):.1f} us/decision "
        f"({len(users):,} users, {with_ctx:,} with context values, {n_cross:,} cross weights, "
        f"model {view.version})"
    )
    index = getattr(view, "sessions", None)
    if index is not None:  # RTP_SESSION_NEIGHBOURS=1: the neighbourhood alone, per decision
        from rtp.candidates.sessions import own_slot

        args = [(u.session.recent, own_slot(index, u.session.fresh, view.tick)) for u in users]
        rounds = []
        for _ in range(8):
            t = time.process_time()
            for recent, own in args:
                index.neighbours(recent, view.high, own)
            rounds.append((time.process_time() - t) / len(users) * 1e6)
        print(
            f"{path.name}: session neighbourhood {min(rounds[1:]):.1f} us/decision "
            f"({len(index):,} sessions held)"
        )
    merge = eng.merge
    crosses = getattr(merge, "crosses", None)
    if crosses is not None:
        from rtp.ranking.context import cross_keys
    xs: list[tuple[dict[str, float], bool]] = []
    for x in keep.examples:
        ctx = x[5] if len(x) > 5 else ()
        vecs = [(x[3], True), *((n, False) for n in x[4])]
        for j, (vec, y) in enumerate(vecs):
            feats = dict(zip(FEATURES, vec, strict=True))
            if ctx and crosses is not None:
                for k in cross_keys(ctx, x[6][j], crosses.cat, crosses.price):
                    feats[k] = x[7]
            xs.append((feats, y))
    if not xs:
        print("no ranking examples")
        return
    times = []
    for _ in range(5):
        r = copy.deepcopy(merge.ranker)
        t = time.process_time()
        for feats, y in xs:
            r.learn_one(feats, y)
        times.append((time.process_time() - t) / len(xs) * 1e6)
    per_call = sum(len(f) - len(FEATURES) for f, _ in xs) / len(xs)
    print(
        f"learn_one {min(times):.1f} us/call over {len(xs):,} calls "
        f"({len(keep.examples):,} examples; {per_call:.1f} cross features per call)"
    )


if __name__ == "__main__":
    main()
