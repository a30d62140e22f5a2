"""A minimal asyncio Redis client for the read path of the HTTP doors (RESP2, hiredis parser).

Why not ``redis.asyncio``: measured on the 2-core benchmark machine against a local
redis-server, one ``GET`` costs ~225 µs through ``redis.asyncio`` and ~150 µs as a blocking
redis-py call handed to a thread (``anyio.to_thread``), against ~26 µs here (~13 µs each when 64
requests share a connection). The decision API's whole budget is a few hundred microseconds, so
the reads use this client: an ``asyncio.Protocol`` per connection that writes commands packed by
hiredis and resolves one future per reply, in order. Concurrent requests pipeline naturally on a
connection; a few connections (the least busy is used) keep one slow reply from holding the
others up.

Errors are redis-py's, so callers catch one family: a connection that fails or times out raises
``redis.exceptions.ConnectionError`` / ``TimeoutError`` (and is dropped, so no later reply can be
matched to the wrong request; the next call reconnects), an error reply raises
``ResponseError``. Writes and scripts stay on redis-py (``rtp.store.streams.append``).

Supported URLs: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (TLS) and
``unix:///path/to/socket[?db=N]``.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rtp.errors import ConfigError

__all__ = ["AsyncRedis"]

Command = Sequence[str | bytes | int | float]


class _Protocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: Any = None  # asyncio's or uvloop's transport
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        waiters = self.waiters
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if waiters:
                fut = waiters.popleft()
                if not fut.done():
                    fut.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = RedisConnectionError(f"Redis closed the connection: {exc or 'EOF'}")
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(self.lost)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.lost = self.lost or RedisConnectionError("connection closed")


class AsyncRedis:
    """A few pipelined asyncio connections to one Redis (see the module docstring).

    :param url: the Redis URL.
    :param timeout_s: connect timeout and the deadline of every call.
    :param connections: connections kept (opened on first use).
    """

    def __init__(self, url: str, timeout_s: float = 2.0, connections: int = 4) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.size = max(1, connections)
        self._conns: list[_Protocol | None] = [None] * self.size
        self._locks = [asyncio.Lock() for _ in range(self.size)]
        u = urlparse(url)
        self.scheme = u.scheme
        if u.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(f"unsupported Redis URL scheme in {url!r}")
        self.host = u.hostname or "localhost"
        self.port = u.port or 6379
        self.path = unquote(u.path) if u.scheme == "unix" else ""
        query = parse_qs(u.query)
        db = query.get("db", [""])[0]
        if u.scheme != "unix" and u.path.strip("/"):
            db = u.path.strip("/")
        self.db = int(db) if db else 0
        self.username = unquote(u.username) if u.username else None
        self.password = unquote(u.password) if u.password else None

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        if self.scheme == "unix":
            coro = loop.create_unix_connection(_Protocol, self.path)
        else:
            tls = ssl.create_default_context() if self.scheme == "rediss" else None
            coro = loop.create_connection(
                _Protocol, self.host, self.port, ssl=tls, server_hostname=self.host if tls else None
            )
        try:
            _, proto = await asyncio.wait_for(coro, self.timeout_s)
        except (OSError, asyncio.TimeoutError) as e:
            raise RedisConnectionError(f"cannot connect to Redis: {e}") from e
        setup: list[Command] = []
        if self.password is not None:
            auth: list[str] = ["AUTH", self.password]
            if self.username:
                auth.insert(1, self.username)
            setup.append(auth)
        if self.db:
            setup.append(["SELECT", self.db])
        if setup:
            for reply in await self._send(proto, setup):
                if isinstance(reply, hiredis.ReplyError):
                    proto.close()
                    raise RedisConnectionError(f"Redis refused the connection setup: {reply}")
        return proto

    async def _conn(self) -> tuple[int, _Protocol]:
        best, load = 0, -1
        for n, c in enumerate(self._conns):
            if c is None or c.lost is not None:
                best = n
                break
            if load < 0 or len(c.waiters) < load:
                best, load = n, len(c.waiters)
        c = self._conns[best]
        if c is None or c.lost is not None:
            async with self._locks[best]:
                c = self._conns[best]
                if c is None or c.lost is not None:
                    c = self._conns[best] = await self._connect()
        return best, c

    async def _send(self, proto: _Protocol, commands: Sequence[Command]) -> list[Any]:
        if proto.lost is not None or proto.transport is None:
            raise proto.lost or RedisConnectionError("not connected")
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in commands]
        proto.waiters.extend(futs)
        pack: Any = hiredis.pack_command
        proto.transport.write(b"".join([pack(tuple(c)) for c in commands]))
        timer = loop.call_later(self.timeout_s, self._expire, proto, futs)
        try:
            return [await f for f in futs]
        finally:
            timer.cancel()

    def _expire(self, proto: _Protocol, futs: list[asyncio.Future[Any]]) -> None:
        """A call's deadline passed: drop the connection (its replies may still come and must
        never be matched to a later request) and fail what is still waiting."""
        if all(f.done() for f in futs):
            return
        proto.close()
        error = RedisTimeoutError(f"Redis did not answer within {self.timeout_s}s")
        while proto.waiters:
            fut = proto.waiters.popleft()
            if not fut.done():
                fut.set_exception(error)

    async def pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Every command's reply, in one round trip; an error reply raises ``ResponseError``."""
        _, proto = await self._conn()
        replies = await self._send(proto, commands)
        for reply in replies:
            if isinstance(reply, hiredis.ReplyError):
                raise ResponseError(str(reply))
        return replies

    async def execute(self, *command: str | bytes | int | float) -> Any:
        return (await self.pipeline([command]))[0]

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self.execute("GET", key)
        return value

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        values: list[bytes | None] = await self.execute("MGET", *keys)
        return values

    async def ping(self) -> bool:
        return bool(await self.execute("PING") == b"PONG")

    async def scan(self, match: str, count: int = 1_000, limit: int = 100_000) -> list[bytes]:
        """Keys matching a glob pattern (SCAN, at most ``limit`` keys)."""
        cursor: bytes = b"0"
        out: list[bytes] = []
        while True:
            cursor, keys = await self.execute("SCAN", cursor, "MATCH", match, "COUNT", count)
            out.extend(keys)
            if cursor == b"0" or len(out) >= limit:
                return out[:limit]

    async def aclose(self) -> None:
        for c in self._conns:
            if c is not None:
                c.close()
        self._conns = [None] * self.size
