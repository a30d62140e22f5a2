"""How far the peer targets are from what the data allows (docs/quality.md section 5).

    .venv/bin/python benchmarks/peer_ceiling.py diginetica     # --split 0.8
    .venv/bin/python benchmarks/peer_ceiling.py taobao-split   # the session-rec split
    .venv/bin/python benchmarks/peer_ceiling.py diginetica 0 500 1000   # + staleness

Splits the targets of an evaluation of section 3 into re-views and new-to-session, and the
new-to-session ones into

- ``cold``: the item never occurred in the stream before (no model can propose it);
- ``co``: the item occurred, in an earlier session, together with an item of the current
  session (co-visitation and session neighbourhoods can reach it);
- ``noco``: the item occurred, but never with an item of the current session (only popularity,
  categories or two hops can);

and counts the hits of rtp (realtime, the flow, default settings) and of session-kNN in each,
and the union of both. With lags after the data set's name, it also scores the session
neighbourhood of :mod:`rtp.candidates.sessions` alone (the session's own items first, as the
baselines do), learning every event at once (``0``) or only after that many later records, as a
model view that lags the stream does.

The Taobao split needs its two files (``../shared/acceptance/peer-taobao-split`` builds them
under ``$TMPDIR/rtp-acceptance/taobao-split``; ``RTP_TAOBAO_SPLIT`` points elsewhere).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from rtp.candidates import sessions as S
from rtp.capture.events import CONTROL_TYPES, Event
from rtp.config import Settings
from rtp.evaluation.baselines import SessionKNN, _Sessions, run_baseline
from rtp.tools.evaluate import load_events, run_mode

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DIGINETICA = SHARED / "data/diginetica-sample/sample_train-item-views.csv"
SPLIT = Path(
    os.environ.get(
        "RTP_TAOBAO_SPLIT", Path(tempfile.gettempdir()) / "rtp-acceptance" / "taobao-split"
    )
)


class Neighbourhood:
    """:class:`rtp.candidates.sessions.SessionIndex` as a baseline session model: records
    built as the user step builds them, learned ``lag`` records late."""

    def __init__(self, lag: int) -> None:
        self.ix = S.SessionIndex()
        self.lag = lag
        self.pending: list[tuple[tuple[str, ...], str, float]] = []
        self.recent: dict[str, list[str]] = {}
        self.last: dict[str, tuple[tuple[str, ...], str]] = {}
        self.now = 0.0

    def observe(self, session_id: str, item: str, ts: float) -> None:
        r = self.recent.setdefault(session_id, [])
        prev = tuple(r[-S.KEY_ITEMS :])
        self.pending.append((prev, item, ts))
        while len(self.pending) > self.lag:
            self.ix.add(*self.pending.pop(0))
        self.last[session_id] = (prev, item)
        if item in r:
            r.remove(item)
        r.append(item)
        self.now = max(self.now, ts)

    def recommend(
        self,
        session_items: Sequence[str],
        n: int = 20,
        exclude: Collection[str] | None = None,
        *,
        session_id: str | None = None,
        now: float | None = None,
    ) -> list[str]:
        r = self.recent.get(session_id or "", [])
        own = None
        if session_id in self.last and not self.lag:
            own = self.ix.slot(*self.last[session_id])
        mine = r[::-1]
        got = [i for i, _ in self.ix.neighbours(r, now or self.now, own, n=100) if i not in r]
        return (mine + got)[:n]


def _ranks(preq: Any) -> dict[str, tuple[int, bool]]:
    """Target key -> (rank, re-view) of a Prequential."""
    return {k: (preq._rank[i], bool(preq._flags[i] & 1)) for i, k in enumerate(preq._keys)}


def main() -> None:
    which = sys.argv[1] if len(sys.argv) > 1 else "diginetica"
    lags = [int(x) for x in sys.argv[2:]]
    settings = Settings()
    is_target: Callable[[Event], bool]
    if which == "diginetica":
        paths, fmt = [DIGINETICA], "diginetica"
        events = load_events(paths, fmt)
        t0, t1 = events[0].ts, events[-1].ts
        score_from = t0 + 0.8 * (t1 - t0)
        preq, _ = run_mode(paths, fmt, settings, "realtime", 86_400.0, (20,), score_from)

        def is_target(e: Event) -> bool:
            return e.ts >= score_from

    elif which == "taobao-split":
        train, test = SPLIT / "taobao96k_train_full.txt", SPLIT / "taobao96k_test.txt"
        if not test.exists():
            sys.exit(f"no split at {SPLIT}: run ../shared/acceptance/peer-taobao-split first")
        paths, fmt = [train, test], "yoochoose"
        events = load_events(paths, fmt)
        preq, _ = run_mode(paths, fmt, settings, "realtime", 86_400.0, (20,), targets=[test])

        def is_target(e: Event) -> bool:
            return e.pos.rsplit(":", 1)[0] == test.name

    else:
        sys.exit("diginetica or taobao-split")
    items = [e for e in events if e.type not in CONTROL_TYPES]
    gap = settings.session_gap_s
    # classes of the new-to-session targets, as the baselines split sessions
    sessions = _Sessions(gap)
    seen_items: set[str] = set()
    pairs: dict[str, set[str]] = {}
    kind: dict[str, str] = {}
    for e in items:
        s = sessions.get(e)
        s.events += 1
        if e.item is None:
            continue
        if s.events > 1 and is_target(e) and e.item not in s.item_set:
            if e.item not in seen_items:
                kind[e.pos] = "cold"
            elif any(e.item in pairs.get(x, ()) for x in s.item_set):
                kind[e.pos] = "co"
            else:
                kind[e.pos] = "noco"
        for x in s.item_set:
            pairs.setdefault(x, set()).add(e.item)
            pairs.setdefault(e.item, set()).add(x)
        seen_items.add(e.item)
        s.items.append(e.item)
        s.item_set.add(e.item)
    rtp = _ranks(preq)
    sknn = _ranks(run_baseline(SessionKNN(), items, session_gap_s=gap, is_target=is_target))

    def hits(r: dict[str, tuple[int, bool]], keys: Collection[str]) -> int:
        return sum(1 for k in keys if 0 <= r.get(k, (-1, False))[0] < 20)

    reviews = [k for k, (_r, seen) in rtp.items() if seen]
    print(f"{which}: {len(rtp)} targets; re-views {len(reviews)}: "
          f"rtp {hits(rtp, reviews)}, session-kNN {hits(sknn, reviews)}")  # fmt: skip
    total = Counter(kind.values())
    for c in ("cold", "co", "noco"):
        keys = [k for k, v in kind.items() if v == c]
        both = sum(1 for k in keys if hits(rtp, [k]) or hits(sknn, [k]))
        print(f"  new-to-session, {c:>4}: {total[c]:>5} targets; hits: rtp {hits(rtp, keys)}, "
              f"session-kNN {hits(sknn, keys)}, either {both}")  # fmt: skip
    for lag in lags:
        nb = _ranks(run_baseline(Neighbourhood(lag), items, session_gap_s=gap, is_target=is_target))
        keys = list(kind)
        print(f"  session neighbourhood alone, learned {lag} records late: new-to-session hits "
              f"{hits(nb, keys)}, re-views {hits(nb, reviews)}")  # fmt: skip


if __name__ == "__main__":
    main()
