"""Bytewax sinks: the engine's writes into Redis, rejections into the dead-letter outputs.

Each worker's partition owns a :class:`rtp.store.store.Store` (pinged when it is built, so a
wrong URL fails at start-up, not at the first batch).

**An outage is weather.** When Redis stays unreachable through the store's retries, a sink
keeps the batch and tries again with backoff, logging at most every few seconds, for as long as
the outage lasts: the flow pauses (its sources stop at the gate, since no model is published
either) and goes on where it stood when Redis is back. Nothing is dropped; every write is a
whole value (and dead letters are idempotent by source position), so writing twice is harmless.

**Dead letters** go to the Redis stream (kept ``Settings.dead_letter_ttl_s``, deleted by a
forget) and, when ``Settings.dead_letter_file`` is set, to a JSONL file that obeys the same
rules: lines older than the TTL and lines of forgotten users are removed from it.
"""

from __future__ import annotations

import logging
import os
import pickle
import random
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from rtp.capture.events import Rejection
from rtp.config import Settings
from rtp.engine.writes import Writes
from rtp.errors import StoreUnavailable
from rtp.store.store import Store

__all__ = ["RedisSink", "DeadLetterSink", "EvalSink", "collect_evals"]

log = logging.getLogger("rtp.flow.sinks")
T = TypeVar("T")


def patiently(what: str, call: Callable[[], T]) -> T:
    """``call()`` until it succeeds: a :class:`StoreUnavailable` (the store's own retries are
    spent) is waited out with capped backoff, logged at most every 10 s."""
    delay = 0.5
    since = time.monotonic()
    last_log = 0.0
    while True:
        try:
            result = call()
        except StoreUnavailable as e:
            now = time.monotonic()
            if now - last_log > 10.0:
                last_log = now
                log.warning("Redis unavailable for %.0fs (%s): %s kept, retrying", now - since,
                            e, what)  # fmt: skip
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2.0, 5.0)
            continue
        if time.monotonic() - since > 5.0:
            log.warning("Redis is back: %s written after %.0fs", what, time.monotonic() - since)
        return result


class _RedisPartition(StatelessSinkPartition[Writes]):
    def __init__(self, store: Store) -> None:
        self.store = store

    def write_batch(self, items: list[Writes]) -> None:
        # All of a batch's Writes go out in order in one pipeline (one round trip, one retry
        # unit): same result as writing them one by one.
        store = self.store
        patiently(f"{len(items)} batches of writes", lambda: store.write_many(items))
        rejections = [r for w in items for r in w.rejections]
        if rejections:
            patiently("dead letters", lambda: store.write_rejections(rejections))

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
        if worker_index == 0:  # the catalogue of earlier versions, into its buckets (once)
            moved = patiently("the catalogue's move", store.migrate_items)
            if moved:
                log.info("rtp: moved %d catalogue entries into their buckets", moved)
        return _RedisPartition(store)


class _DeadLetterPartition(StatelessSinkPartition[list[Rejection]]):
    def __init__(self, store: Store, file: IO[bytes] | None, path: str | None) -> None:
        self.store = store
        self.file = file
        self.path = path
        self.ttl_s = store.settings.dead_letter_ttl_s
        self._tombs = -1
        self._next_check = 0.0

    def write_batch(self, items: list[list[Rejection]]) -> None:
        rejections = [r for batch in items for r in batch]
        store = self.store
        if rejections:
            patiently("dead letters", lambda: store.write_rejections(rejections))
        if self.file is None:
            return
        if rejections:
            rejections = patiently("dead letters", lambda: store.without_forgotten(rejections))
        if rejections:
            # One write call per batch (O_APPEND): lines of concurrent workers do not interleave.
            now = round(time.time(), 3)
            data = b"".join(orjson.dumps({**r.to_dict(), "at": now}) + b"\n" for r in rejections)
            view = memoryview(data)
            while view:
                written = self.file.write(view)
                view = view[written or 0 :]
            self.file.flush()
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + 10.0
            self._tidy()

    def _tidy(self) -> None:
        """Drop the file's lines older than the TTL, and those of users forgotten since the
        last look (the tombstones count grew)."""
        assert self.path is not None
        try:
            tombs = int(self.store.r.hlen(self.store.prefix + "tomb"))
        except Exception:  # Redis away: tidy next time
            return
        cutoff = time.time() - self.ttl_s
        with open(self.path, "rb") as fh:
            lines = fh.read().splitlines()
        rows = [orjson.loads(x) for x in lines if x]
        keep = [r for r in rows if float(r.get("at", cutoff)) >= cutoff]
        if tombs != self._tombs:
            users = sorted({r["user"] for r in keep if r.get("user")})
            gone = self.store.tombstones(users) if users else {}
            keep = [
                r
                for r in keep
                if r.get("user") not in gone or float(r.get("ts") or 0.0) >= gone[r["user"]]
            ]
            self._tombs = tombs
        if len(keep) == len(rows):
            return
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as out:
            out.write(b"".join(orjson.dumps(r) + b"\n" for r in keep))
        os.replace(tmp, self.path)
        if self.file is not None:
            self.file.close()
        self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115 (closed by close())

    def close(self) -> None:
        try:
            if self.file is not None:
                # a last look: a user forgotten since the last tidy (up to 10 s ago, e.g. near
                # the end of a replay) must not stay in the file until some later run tidies it
                self._tidy()
        finally:
            if self.file is not None:
                self.file.close()
            self.store.close()


class DeadLetterSink(DynamicSink[list[Rejection]]):
    """Writes lists of :class:`rtp.capture.events.Rejection` to the dead-letter stream, and
    appends them as JSONL to ``settings.dead_letter_file`` when that is set (the file is
    at-least-once: a resumed flow may append a batch twice; the stream is idempotent by
    position). Lines carry ``at`` (when written), by which the TTL is applied."""

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
        return _DeadLetterPartition(store, file, path)


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
    return [pickle.loads(bytes(b)) for b in blobs]  # type: ignore[arg-type]
