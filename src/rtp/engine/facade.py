"""The whole engine in one process, without Bytewax: for tests, notebooks and benchmarks.

:class:`Engine` wires one user shard, one item shard, the global step and (given an edge
model) the edge step through an in-memory model log, exactly as the dataflow does, and treats
every :meth:`Engine.process` call as one tick of the stream: the decisions of a call use the
models learned from every earlier call. The flow on any number of workers, given the same
batches as ticks, decides the same.

>>> from rtp.capture.events import Event
>>> eng = Engine(Settings())
>>> t = 1_700_000_000.0
>>> _ = eng.process([Event("product_view", "a", t, "i1"), Event("product_view", "a", t + 1, "i2")])
>>> _ = eng.process([Event("product_view", "b", t + 2, "i1")])
>>> w = eng.process([Event("product_view", "b", t + 3, "i3")])
>>> [n for n, _ in eng.view.cv.top("i1", 5)]
['i2']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from rtp.capture.events import Event
from rtp.config import Settings
from rtp.engine.edges import EdgeLearner
from rtp.engine.hooks import REALTIME, Hook
from rtp.engine.items import ItemShard
from rtp.engine.log import LocalModelLog
from rtp.engine.merge import GlobalMerge
from rtp.engine.messages import INF_TICK, UserBatch, split_edge
from rtp.engine.users import Loader, Output, UserShard
from rtp.engine.view import ModelView
from rtp.engine.writes import Writes

PART = "engine"


class Engine:
    """A user shard, an item shard, the global step and the edge step, run synchronously (one
    tick a call)."""

    def __init__(
        self,
        settings: Settings,
        *,
        mode: str = REALTIME,
        hooks: Sequence[Hook] = (),
        experiments: Any = None,
        bandits: dict[str, Any] | None = None,
        edge: Any = None,
        run: str = "default",
        keep_idle: bool = False,
        hold_profiles: bool = False,
    ) -> None:
        if edge is None and settings.edge_model:  # no edge step: the sessions need not say
            settings = replace(settings, edge_model=False)
        self.settings = settings
        self.log = LocalModelLog()
        self.users = UserShard(
            settings,
            parts=[PART],
            mode=mode,
            hooks=hooks,
            experiments=experiments,
            run=run,
            keep_idle=keep_idle,
            hold_profiles=hold_profiles,
        )
        self.items = ItemShard(settings, 0, 1, 1)
        self.merge = GlobalMerge(settings, 1, bandits=bandits)
        self.edge = EdgeLearner(1, edge) if edge is not None else None
        self.tick = 0
        self.high = 0.0

    @property
    def view(self) -> ModelView:
        return self.users.view

    @property
    def loader(self) -> Loader | None:
        return self.users.loader

    @loader.setter
    def loader(self, fn: Loader | None) -> None:
        self.users.loader = fn

    def process(self, events: Sequence[Event], lag_ref: float | None = None) -> Writes:
        """One tick: the events (in event-time order) through every step; all their writes."""
        events = list(events)
        for e in events:
            if e.ts > self.high:
                self.high = e.ts
        t = self.tick
        self.tick += 1
        b = UserBatch(events, t, PART, t + 1, self.high, len(events), 0, lag_ref)
        return self._route(self.users.process(b, self.log))

    def finish(self) -> Writes:
        """End of the stream: fold open sessions, complete every pending tick."""
        w = self._route(
            self.users.process(UserBatch([], self.tick, PART, INF_TICK, self.high), self.log)
        )
        w.extend(self._route(self.users.finish(self.log)))
        edge = self.edge.finish() if self.edge is not None else None
        for extra in (self.items.finish(self.log), self.merge.finish(self.log), edge):
            if extra is not None:
                w.extend(extra)
        return w

    def snapshot_taken(self) -> None:
        self.users.snapshot_taken()

    def _route(self, outputs: list[Output]) -> Writes:
        w = Writes()
        for kind, value in outputs:
            if kind == "w":
                w.extend(value)
            elif kind == "i":
                got = self.items.on_signals(value[1], self.log)
                if got is not None:
                    w.extend(got)
            else:
                learned = split_edge(value)
                got = self.merge.on_signals(value, self.log)
                if got is not None:
                    w.extend(got)
                if self.edge is not None:
                    got = self.edge.on_signals(learned)
                    if got is not None:
                        w.extend(got)
        return w
