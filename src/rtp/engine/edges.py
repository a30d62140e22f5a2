"""The edge step: the edge model (first-page decisions per context, for the HTTP doors and
``rtp.js``), learned from every user shard's finished sessions, one key.

When every user shard has finished a tick (:mod:`rtp.engine.messages`), the step learns that
tick's finished sessions in the canonical order (session start, then key), whatever shard or
batch they came in, and writes the model's document to ``meta:edge``: the only writer of that
key. Plain Python: ``rtp.flow.dataflow`` wraps it in Bytewax.

It is not a writer of the model log: no decision reads the edge model, so no source waits for
it, and in a cluster it runs on another worker than the global step (it was the dearest part of
what used to be one step: with context-rich traffic, where every finished session updates up
to ten context rules, three quarters of the global step's CPU, and the other workers waited
for it at each tick; BENCHMARKS.md §4.5).
"""

from __future__ import annotations

from typing import Any

import orjson

from rtp.engine.messages import EdgeSignals, canonical
from rtp.engine.writes import Writes

EdgeObservation = tuple[float, str, dict[str, Any], list[str], list[str]]
"""``(ts, key, context signals, categories, items)``: what a finished session went on to do."""


class EdgeLearner:
    """The edge model, fed in the canonical order (see the module docstring).

    :param model: the model learned (:class:`rtp.decisions.edge.EdgeModel`).
    :param write_meta: write its document to ``meta:edge`` after each tick that taught it.
    """

    def __init__(self, user_shards: int, model: Any, write_meta: bool = True) -> None:
        self.model = model
        self.write_meta = write_meta
        self.pending: dict[int, list[EdgeObservation]] = {}
        self.dones = [-1] * user_shards
        self.complete = -1
        self.sessions = 0

    def on_signals(self, msg: EdgeSignals) -> Writes | None:
        for tick, obs in msg.edge.items():
            got = self.pending.get(tick)
            if got is None:
                self.pending[tick] = list(obs)
            else:
                got.extend(obs)
        j = msg.user_shard
        if msg.done > self.dones[j]:
            self.dones[j] = msg.done
        upto = min(self.dones)
        if upto <= self.complete:
            return None
        return self._complete(upto)

    def _complete(self, upto: int) -> Writes:
        learned = 0
        for tick in sorted(t for t in self.pending if t <= upto):
            obs = self.pending.pop(tick)
            obs.sort(key=canonical)
            # sessions of one context are learned together (the same result, cheaper)
            groups: dict[tuple[Any, ...], list[Any]] = {}
            for ts, _k, signals, seen_cats, seen_items in obs:
                signature = tuple(sorted((k, v) for k, v in signals.items() if k != "ts"))
                groups.setdefault(signature, []).append((seen_cats, seen_items, ts))
            for signature, outcomes in groups.items():
                self.model.observe_many(dict(signature), outcomes)
            learned += len(obs)
        self.complete = upto
        self.sessions += learned
        w = Writes()
        if learned and self.write_meta:
            w.meta.append(("edge", orjson.dumps(self.model.document())))
        return w

    def finish(self) -> Writes | None:
        if not self.pending:
            return None
        return self._complete(max(self.pending))
