"""The global step: the models every user shares, merged from every user shard, one key.

When every user shard has finished a tick (:mod:`rtp.engine.messages`), the step takes that
tick's signals in the canonical order (event time, then source position), whatever shard or
batch they came in:

- **ranking examples** train the online ranker (:class:`rtp.ranking.ranker.OnlineRanker`,
  River): its weights after the tick are published as the tick's global part of the model log;
- **bandit rewards** update each bandit (:class:`rtp.experiments.bandits.BanditTuner`); its
  state after the tick is published beside the weights, and user steps choose from it.

It is the only writer of ``meta:ranker`` and ``meta:bandit:*``. The edge model, which no
decision reads, is learned by a step of its own (:mod:`rtp.engine.edges`), off the path every
tick waits on. Plain Python: ``rtp.flow.dataflow`` wraps it in Bytewax.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import orjson

from rtp.config import Settings
from rtp.engine.log import GLOBAL, ModelLog
from rtp.engine.messages import GlobalSignals, canonical
from rtp.engine.writes import Writes
from rtp.ranking.context import ContextFields, cross_keys
from rtp.ranking.ranker import FEATURES, OnlineRanker

Example = tuple[Any, ...]
"""``(ts, pos, n, chosen features, negatives' features[, context values, (category, band) of
the chosen and of each negative, the value of a cross feature])``: one ranking example. The
context values are crossed with each candidate's category and band
(:func:`rtp.ranking.context.cross_keys`), each cross worth the visit's
:func:`rtp.ranking.context.session_scale`."""
Reward = tuple[float, str, str, str, float]
"""``(ts, key, bandit name, arm, reward)``: one session's reward for the arm it was served."""


class GlobalMerge:
    """The ranker and the bandits, merged in the canonical order."""

    def __init__(
        self,
        settings: Settings,
        user_shards: int,
        bandits: dict[str, Any] | None = None,
        write_meta: bool = True,
    ) -> None:
        self.settings = settings
        self.user_shards = user_shards
        self.ranker = OnlineRanker(lr=settings.ranker_lr, seed=settings.seed, kind=settings.ranker)
        self.crosses = ContextFields.parse(settings.rank_context, settings.rank_crosses)
        # keyed by placement: a user step asks for the bandit of the placement it decides
        self.bandits: dict[str, Any] = {b.placement: b for b in (bandits or {}).values()}
        self.write_meta = write_meta
        self.pending: dict[int, tuple[list[Example], list[Reward]]] = {}
        self.dones = [-1] * user_shards
        self.views = [-1] * user_shards
        self.complete = -1
        self.unpublished: list[tuple[int, Any]] = []
        self.stats: dict[str, float] = dict.fromkeys(("examples", "rewards"), 0)
        self._bandits_published = False

    def on_signals(self, msg: GlobalSignals, log: ModelLog) -> Writes | None:
        for tick, xs in msg.examples.items():
            self._pending(tick)[0].extend(xs)
        for tick, rs in msg.rewards.items():
            self._pending(tick)[1].extend(rs)
        j = msg.user_shard
        if msg.done > self.dones[j]:
            self.dones[j] = msg.done
        if msg.view_tick > self.views[j]:
            self.views[j] = msg.view_tick
        upto = min(self.dones)
        if upto <= self.complete:
            return None
        return self._complete(upto, log)

    def _pending(self, tick: int) -> tuple[list[Example], list[Reward]]:
        p = self.pending.get(tick)
        if p is None:
            p = self.pending[tick] = ([], [])
        return p

    def _complete(self, upto: int, log: ModelLog) -> Writes:
        parts: list[tuple[int, Any]] = []
        ranker = self.ranker
        learn = ranker.learn_one
        cats, prices = self.crosses.cat, self.crosses.price
        for tick in sorted(t for t in self.pending if t <= upto):
            examples, rewards = self.pending.pop(tick)
            part: dict[str, Any] = {}
            if examples:
                examples.sort(key=lambda x: (x[0], x[1], x[2]))
                crossed: dict[str, None] = {}
                for x in examples:
                    chosen, negatives = x[3], x[4]
                    ctx = x[5] if len(x) > 5 else ()
                    if not ctx:
                        learn(dict(zip(FEATURES, chosen, strict=True)), True)
                        for neg in negatives:
                            learn(dict(zip(FEATURES, neg, strict=True)), False)
                        continue
                    keys = x[6]
                    scale = x[7] if len(x) > 7 else 1.0
                    for j, (vec, y) in enumerate(
                        ((chosen, True), *((neg, False) for neg in negatives))
                    ):
                        feats = dict(zip(FEATURES, vec, strict=True))
                        crosses = cross_keys(ctx, keys[j], cats, prices)
                        for k in crosses:
                            feats[k] = scale
                            crossed[k] = None
                        learn(feats, y)
                ranker.freeze()
                part["w"] = list(ranker.frozen)
                if crossed:
                    part["x"] = ranker.weights_of(crossed)
                part["b"] = float(ranker.model.intercept)
                part["v"] = ranker.version
                self.stats["examples"] += len(examples)
            if rewards:
                rewards.sort(key=canonical)
                for _ts, _k, name, arm, value in rewards:
                    b = self.bandits.get(name)
                    if b is not None and arm in b.pulls:
                        b.pulls[arm] += 1
                        b.n_pulls += 1
                        b.reward(arm, value)
                part["bandits"] = {
                    name: pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL)
                    for name, b in self.bandits.items()
                }
                self.stats["rewards"] += len(rewards)
            if part:
                parts.append((tick, part))
        if self.bandits and not self._bandits_published:
            # the first state of every bandit, so user steps can choose before any reward
            self._bandits_published = True
            first = next((p for t, p in parts if t == upto), None)
            if first is None:
                first = {}
                parts.append((upto, first))
            first.setdefault("bandits", {
                name: pickle.dumps(b, protocol=pickle.HIGHEST_PROTOCOL)
                for name, b in self.bandits.items()
            })  # fmt: skip
        self.complete = upto
        log.publish(GLOBAL, parts, upto)
        self.unpublished.extend(parts)
        oldest_view = min(self.views)
        if oldest_view >= 0 and self.unpublished and self.unpublished[0][0] <= oldest_view:
            # keep the newest part at or below the oldest view: a resumed view may need it
            keep_from = max((p[0] for p in self.unpublished if p[0] <= oldest_view), default=-1)
            self.unpublished = [p for p in self.unpublished if p[0] >= keep_from]
            log.prune(GLOBAL, keep_from - 1)
        return self._meta() if parts else Writes()

    def _meta(self) -> Writes:
        w = Writes()
        if not self.write_meta:
            return w
        r = self.ranker
        w.meta.append(
            (
                "ranker",
                orjson.dumps(
                    {
                        "version": r.version,
                        "kind": r.kind,
                        "updates": r.updates,
                        "weights": dict(zip(FEATURES, r.frozen, strict=True)),
                        "intercept": float(r.model.intercept),
                        "tick": self.complete,
                    }
                ),
            )
        )
        for b in self.bandits.values():
            w.meta.append((b.meta_name("all"), orjson.dumps(b.to_dict())))
        return w

    def finish(self, log: ModelLog) -> Writes | None:
        if not self.pending:
            return None
        return self._complete(max(self.pending), log)

    def republish(self, log: ModelLog) -> None:
        log.publish(GLOBAL, self.unpublished, self.complete)

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.stats)
        out.update(complete=self.complete, model=self.ranker.version)
        return out


def bandit_factory(experiments: Any) -> Callable[[], dict[str, Any]] | None:
    """Fresh bandit tuners for the global step from an experiments config (or ``None``)."""
    if experiments is None or not getattr(experiments, "bandits", None):
        return None

    def make() -> dict[str, Any]:
        return dict(experiments.make_bandits())

    return make
