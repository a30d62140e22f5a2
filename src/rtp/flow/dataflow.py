"""The one dataflow: replay and live differ only in the source.

::

    source ─► Batch ─┬─► rejections ───────────────────────────────► dead letter (Redis, JSONL)
                     └─► enrich + split by shard ─► engine (stateful_batch, keyed by shard)
                                                        └─► Writes ─► Redis sink

Items crossing Bytewax steps are whole batches (a source batch, one shard's part of it, one
``Writes``), never single events: Bytewax's per-item cost is paid per batch, and the Python in
the engine sets the throughput.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from rtp.capture.events import Event
from rtp.config import Settings
from rtp.engine.shard import REALTIME, Engine, shard_of, tune_gc
from rtp.engine.writes import Writes


class ShardBatch:
    """One shard's events from one source batch, with the counts the report adds up."""

    __slots__ = ("shard", "events", "lag_ref", "read", "rejected")

    def __init__(
        self, shard: str, events: list[Event], lag_ref: float | None, read: int, rejected: int
    ) -> None:
        self.shard = shard
        self.events = events
        self.lag_ref = lag_ref
        self.read = read
        self.rejected = rejected


class EngineLogic(StatefulBatchLogic[ShardBatch, Writes, Engine]):
    """Bytewax wrapper of :class:`rtp.engine.shard.Engine`; the engine itself is the snapshot."""

    def __init__(self, engine: Engine, loader: Callable[[list[str]], Any] | None) -> None:
        self.engine = engine
        engine.loader = loader

    def on_batch(self, values: list[ShardBatch]) -> tuple[Iterable[Writes], bool]:
        eng = self.engine
        eng.shard = values[0].shard
        events = values[0].events if len(values) == 1 else [e for v in values for e in v.events]
        lag_ref = None
        for v in values:
            eng.stats["read"] = eng.stats.get("read", 0) + v.read
            eng.stats["rejected"] = eng.stats.get("rejected", 0) + v.rejected
            if v.lag_ref is not None:
                lag_ref = v.lag_ref if lag_ref is None else min(lag_ref, v.lag_ref)
        w = eng.process(events, lag_ref)
        return ([w], StatefulBatchLogic.RETAIN)

    def on_eof(self) -> tuple[Iterable[Writes], bool]:
        return ([self.engine.finish()], StatefulBatchLogic.RETAIN)

    def snapshot(self) -> Engine:
        self.engine.snapshot_taken()
        return self.engine


def build_flow(
    source: Source[Any],
    settings: Settings,
    sink: Sink[Writes],
    dead_letter: Sink[list[Any]] | None = None,
    *,
    loader_factory: Callable[[], Callable[[list[str]], Any]] | None = None,
    enricher: Any = None,
    mode: str = REALTIME,
    refresh_s: float = 86_400.0,
    evaluate: bool = False,
    experiments: Any = None,
    bandits_factory: Callable[[], list[Any]] | None = None,
    run: str = "default",
    track_lag: bool = True,
    name: str = "rtp",
    engine_kwargs: dict[str, Any] | None = None,
) -> Dataflow:
    """The rtp dataflow from ``source`` (any source of :class:`rtp.flow.sources.Batch`) to ``sink``.

    ``loader_factory`` makes, once per shard, the function that reads returning users' profiles
    (``rtp.store.store.Store.load_users``); ``None`` starts every user fresh (evaluation).
    """
    tune_gc()
    shards = max(1, settings.shards)
    if enricher is None:
        from rtp.capture.enrich import Enricher

        enricher = Enricher(
            site_hosts=tuple(h.strip() for h in settings.site_hosts.split(",") if h.strip()),
            default_utc_offset_h=settings.default_utc_offset_h,
        )
    enrich = enricher.enrich_all

    flow = Dataflow(name)
    batches = op.input("events", flow, source)
    if dead_letter is not None:
        rejected = op.filter_map(
            "rejections", batches, lambda b: b.rejections if b.rejections else None
        )
        op.output("dead_letter", rejected, dead_letter)

    def split(b: Any) -> list[tuple[str, ShardBatch]]:
        events = b.events
        enrich(events)
        lag_ref = b.lag_ref if track_lag else None
        n_rej = len(b.rejections)
        if shards == 1:
            return [("0", ShardBatch("0", events, lag_ref, b.read, n_rej))]
        parts: dict[int, list[Event]] = {}
        for e in events:
            parts.setdefault(shard_of(e.user, shards), []).append(e)
        out = [(str(k), ShardBatch(str(k), v, lag_ref, 0, 0)) for k, v in parts.items()]
        if out:
            first = out[0][1]
            first.read, first.rejected = b.read, n_rej
        elif b.read:
            out.append(("0", ShardBatch("0", [], lag_ref, b.read, n_rej)))
        return out

    keyed = op.flat_map("enrich_and_shard", batches, split)

    def builder(resume: Engine | None) -> EngineLogic:
        if resume is not None:
            engine = resume
        else:
            engine = Engine(
                settings,
                mode=mode,
                refresh_s=refresh_s,
                evaluate=evaluate,
                experiments=experiments,
                bandits=bandits_factory() if bandits_factory else (),
                run=run,
                **(engine_kwargs or {}),
            )
        return EngineLogic(engine, loader_factory() if loader_factory else None)

    out = op.stateful_batch("engine", keyed, builder)
    writes = op.map("writes", out, _value)
    op.output("store", writes, sink)
    return flow


def _value(kv: tuple[str, Writes]) -> Writes:
    engine_shard, w = kv
    return w
