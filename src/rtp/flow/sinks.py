"""Bytewax sinks: the engine's writes into Redis, rejections into the dead-letter outputs.

This is the only rtp module that imports bytewax. Each worker's partition owns a
:class:`rtp.store.store.Store` (pinged when it is built, so a wrong URL fails at start-up, not at
the first batch).

Neither sink ever drops output silently: when Redis stays unreachable through the store's
retries, :class:`rtp.errors.StoreUnavailable` propagates and stops the flow. Run with Bytewax
recovery and the flow resumes from its last snapshot and writes again; every write is a whole
value (and dead letters are idempotent by source position), so writing twice is harmless.
"""

from __future__ import annotations

import logging
import os
import pickle
from typing import IO, Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from rtp.capture.events import Rejection
from rtp.config import Settings
from rtp.engine.writes import Writes
from rtp.errors import StoreUnavailable
from rtp.store.store import Store

__all__ = ["RedisSink", "DeadLetterSink", "EvalSink", "collect_evals"]

log = logging.getLogger("rtp.flow.sinks")


class _RedisPartition(StatelessSinkPartition[Writes]):
    def __init__(self, store: Store) -> None:
        self.store = store

    def write_batch(self, items: list[Writes]) -> None:
        # All of a batch's Writes go out in order in one pipeline (one round trip, one retry
        # unit): same result as writing them one by one.
        try:
            self.store.write_many(items)
        except StoreUnavailable:
            log.error("Redis unavailable: stopping the flow with %d unwritten batches", len(items))
            raise

    def close(self) -> None:
        self.store.close()


class RedisSink(DynamicSink[Writes]):
    """Writes each :class:`rtp.engine.writes.Writes` the engine emits to Redis.

    :param url: the Redis URL (``redis://``, ``rediss://``, ``unix://``).
    :param settings: key prefix, TTLs, timeouts, pool size and retry policy.
    """

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[Writes]:
        store = Store.from_url(self.url, self.settings)
        store.ping()
        return _RedisPartition(store)


class _DeadLetterPartition(StatelessSinkPartition[list[Rejection]]):
    def __init__(self, store: Store, file: IO[bytes] | None) -> None:
        self.store = store
        self.file = file

    def write_batch(self, items: list[list[Rejection]]) -> None:
        rejections = [r for batch in items for r in batch]
        if not rejections:
            return
        self.store.write_rejections(rejections)
        if self.file is not None:
            # One write call per batch (O_APPEND): lines of concurrent workers do not interleave.
            data = b"".join(orjson.dumps(r.to_dict()) + b"\n" for r in rejections)
            view = memoryview(data)
            while view:
                written = self.file.write(view)
                view = view[written or 0 :]
            self.file.flush()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.store.close()


class DeadLetterSink(DynamicSink[list[Rejection]]):
    """Writes lists of :class:`rtp.capture.events.Rejection` to the dead-letter stream and hash, and
    appends them as JSONL to ``settings.dead_letter_file`` when that is set (the file is
    at-least-once: a resumed flow may append a batch twice; the Redis hash is idempotent by
    position)."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[list[Rejection]]:
        store = Store.from_url(self.url, self.settings)
        store.ping()
        file: IO[bytes] | None = None
        path = self.settings.dead_letter_file
        if path:
            parent = os.path.dirname(os.path.abspath(path))
            os.makedirs(parent, exist_ok=True)
            file = open(path, "ab", buffering=0)  # noqa: SIM115 (closed by the partition)
        return _DeadLetterPartition(store, file)


class _EvalPartition(StatelessSinkPartition[Writes]):
    def __init__(self, r: Any, key: str) -> None:
        self.r = r
        self.key = key

    def write_batch(self, items: list[Writes]) -> None:
        blobs = [pickle.dumps(p, protocol=pickle.HIGHEST_PROTOCOL) for w in items for p in w.evals]
        if blobs:
            self.r.rpush(self.key, *blobs)

    def close(self) -> None:
        self.r.close()


class EvalSink(DynamicSink[Writes]):
    """Where an evaluation on several processes leaves its scores: every worker's
    :class:`rtp.evaluation.metrics.Prequential`, pickled, on the Redis list ``key``
    (:func:`collect_evals` reads them back). Decisions are not stored in an evaluation."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key

    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSinkPartition[Writes]:
        import redis

        return _EvalPartition(redis.Redis.from_url(self.url), self.key)


def collect_evals(url: str, key: str) -> list[Any]:
    """The scores an :class:`EvalSink` collected (and the list deleted)."""
    import redis

    r = redis.Redis.from_url(url)
    try:
        blobs = r.lrange(key, 0, -1)
        r.delete(key)
    finally:
        r.close()
    return [pickle.loads(b) for b in blobs]  # type: ignore[union-attr]
