"""The model log in Redis, for user steps in several processes or on several machines.

See :mod:`rtp.engine.log` for what the log is. Keys (``P`` is the key prefix, ``run`` the flow
run's name), each with one writer:

- ``P m:{run}:{writer}``: a sorted set of the writer's parts, scored by tick (the member is the
  tick followed by the pickled part, so each tick's member is unique and rewriting it after a
  resume changes nothing);
- ``P m:{run}:p:{writer}``: the writer's progress (the newest tick it has published).

Both expire a day after their last write, so the log of a finished run leaves nothing behind.
A Redis outage pauses whoever calls (sources waiting at the gate, steps publishing) with backoff
and a log line at most every few seconds, and resumes where it stood: nothing is lost.
"""

from __future__ import annotations

import logging
import pickle
import random
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis

log = logging.getLogger("rtp.store.modellog")

TTL_S = 86_400
_TICK = struct.Struct(">q")
T = TypeVar("T")


class RedisModelLog:
    """:class:`rtp.engine.log.ModelLog` on Redis (see the module docstring)."""

    def __init__(self, url: str, run: str, prefix: str = "rtp:", timeout_s: float = 2.0) -> None:
        self.url = url
        self.run = run
        self.prefix = prefix
        self.timeout_s = timeout_s
        self._r: redis.Redis | None = None
        self._last_warning = 0.0

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_r"] = None
        return state

    @property
    def r(self) -> redis.Redis:
        if self._r is None:
            self._r = redis.Redis.from_url(
                self.url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
            )
        return self._r

    def _parts_key(self, writer: str) -> str:
        return f"{self.prefix}m:{self.run}:{writer}"

    def _progress_key(self, writer: str) -> str:
        return f"{self.prefix}m:{self.run}:p:{writer}"

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        """``fn()``, retried through any outage with capped, jittered backoff."""
        delay = 0.05
        while True:
            try:
                return fn()
            except (redis.ConnectionError, redis.TimeoutError, redis.exceptions.ReadOnlyError) as e:
                now = time.monotonic()
                if now - self._last_warning > 5.0:
                    self._last_warning = now
                    log.warning("model log: Redis unavailable for %s (%s); retrying", what, e)
                self._r = None
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2.0, 2.0)

    def publish(self, writer: str, parts: Sequence[tuple[int, Any]], progress: int) -> None:
        key = self._parts_key(writer)
        pkey = self._progress_key(writer)

        def call() -> None:
            pipe = self.r.pipeline(transaction=False)
            if parts:
                pipe.zadd(
                    key,
                    {
                        _TICK.pack(tick)
                        + pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL): tick
                        for tick, part in parts
                    },
                )
                pipe.expire(key, TTL_S)
            pipe.set(pkey, progress, ex=TTL_S)
            pipe.execute()

        self._call("publishing models", call)

    def read(self, writers: Sequence[str], after: int, upto: int) -> list[tuple[int, str, Any]]:
        def call() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            for w in writers:
                pipe.zrangebyscore(self._parts_key(w), f"({after}", upto)
            return list(pipe.execute())

        replies = self._call("reading models", call)
        out: list[tuple[int, str, Any]] = []
        for w, members in zip(writers, replies, strict=True):
            for m in members:
                out.append((_TICK.unpack_from(m)[0], w, pickle.loads(m[_TICK.size :])))
        out.sort(key=lambda x: (x[0], x[1]))
        return out

    def progress(self, writers: Sequence[str]) -> int:
        keys = [self._progress_key(w) for w in writers]
        values = self._call("reading model progress", lambda: self.r.mget(keys))
        return min((int(v) if v is not None else -1 for v in values), default=-1)

    def prune(self, writer: str, upto: int) -> None:
        key = self._parts_key(writer)
        self._call("pruning models", lambda: self.r.zremrangebyscore(key, "-inf", upto))

    def clear(self, writers: Sequence[str]) -> None:
        """Delete the run's log (a fresh run under the same name)."""
        keys = [self._parts_key(w) for w in writers] + [self._progress_key(w) for w in writers]
        self._call("clearing models", lambda: self.r.delete(*keys))

    def close(self) -> None:
        if self._r is not None:
            self._r.close()
            self._r = None
