"""The model log: how the item and global steps publish models to every user step.

Bytewax graphs are acyclic, so the models learned downstream of the user step reach it through
a log. Per *tick* of the stream (a fixed number of records in a replay, a slice of capture time
live), each writer (one per item shard, plus the global step ``"g"``) publishes

- its **part** of the tick (item records in canonical order; or the ranker's weights after the
  tick), only for ticks where it has something, and
- its **progress**: the newest tick whose parts it has published (every earlier tick is done).

A user step about to process tick ``t`` reads every part of the ticks after its view's tick up
to ``t - lag`` and applies them in ``(tick, writer)`` order (:class:`rtp.engine.view.ModelView`).
Sources hold back tick ``t`` until every writer's progress reached ``t - lag`` (the *gate*), so
that read always finds the parts complete: the models a decision uses depend on the stream only,
not on timing, batching or the number of workers, and the sources can never run ahead of the
models (backpressure).

Two implementations: :class:`LocalModelLog` (in memory, for workers that are threads of one
process) and ``rtp.store.modellog.RedisModelLog`` (Redis, for several processes or machines).
Parts and progress are whole values: writing them twice after a resume is harmless. A writer
deletes its parts once every user step's view has passed them (``prune``).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

GLOBAL = "g"


def item_writer(shard: int) -> str:
    return f"i{shard}"


class ModelLog(Protocol):
    """Where model parts and progress go (see the module docstring)."""

    def publish(self, writer: str, parts: Sequence[tuple[int, Any]], progress: int) -> None:
        """Store ``(tick, part)`` pairs of one writer, then its progress (in that order)."""

    def read(self, writers: Sequence[str], after: int, upto: int) -> list[tuple[int, str, Any]]:
        """Every part of ``writers`` with ``after < tick <= upto``, sorted by (tick, writer)."""

    def progress(self, writers: Sequence[str]) -> int:
        """The lowest progress among ``writers`` (-1 for a writer that has published none)."""

    def prune(self, writer: str, upto: int) -> None:
        """Delete the writer's parts of ticks ``<= upto``."""


class LocalModelLog:
    """The model log in memory, shared by the workers (threads) of one process."""

    def __init__(self) -> None:
        self._parts: dict[str, dict[int, Any]] = {}
        self._progress: dict[str, int] = {}
        self._lock = threading.Lock()

    def publish(self, writer: str, parts: Sequence[tuple[int, Any]], progress: int) -> None:
        with self._lock:
            mine = self._parts.setdefault(writer, {})
            for tick, part in parts:
                mine[tick] = part
            if progress > self._progress.get(writer, -1):
                self._progress[writer] = progress

    def read(self, writers: Sequence[str], after: int, upto: int) -> list[tuple[int, str, Any]]:
        out: list[tuple[int, str, Any]] = []
        with self._lock:
            for w in writers:
                for tick, part in self._parts.get(w, {}).items():
                    if after < tick <= upto:
                        out.append((tick, w, part))
        out.sort(key=lambda x: (x[0], x[1]))
        return out

    def progress(self, writers: Sequence[str]) -> int:
        with self._lock:
            return min((self._progress.get(w, -1) for w in writers), default=-1)

    def prune(self, writer: str, upto: int) -> None:
        with self._lock:
            mine = self._parts.get(writer)
            if mine:
                for tick in [t for t in mine if t <= upto]:
                    del mine[tick]
