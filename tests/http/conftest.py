"""Fixtures for the HTTP doors: the real app on a real uvicorn, against a real redis-server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis

from rtp.config import Settings
from rtp.http import ServeSettings, create_app
from rtp.http.testing import ServerThread
from rtp.store import streams
from rtp.testing import RedisServer

BROWSER_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"
)


@contextlib.contextmanager
def serve(url: str, **settings: Any) -> Iterator[ServerThread]:
    """A server of its own, with these ServeSettings fields."""
    rtp = settings.pop("rtp", None) or Settings(redis_url=url)
    with ServerThread(create_app(ServeSettings(rtp=rtp, **settings))) as server:
        yield server


def client(server: ServerThread, **kw: Any) -> httpx.Client:
    headers = {"User-Agent": BROWSER_UA, **kw.pop("headers", {})}
    return httpx.Client(base_url=server.url, timeout=10.0, headers=headers, **kw)


@pytest.fixture(scope="module")
def server(redis_server: RedisServer) -> Iterator[ServerThread]:
    with serve(redis_server.url) as s:
        yield s


@pytest.fixture()
def http(server: ServerThread, redis_url: str) -> Iterator[httpx.Client]:
    """A client of the shared server, on an empty Redis."""
    with client(server) as c:
        yield c


@pytest.fixture()
def r(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


def stream_events(r: redis.Redis, stream: str = "rtp:events") -> list[dict[str, Any]]:
    """Every event on the live stream's partitions (in partition order)."""
    out: list[dict[str, Any]] = []
    for name in streams.partition_names(
        stream, streams.read_config(r, stream, cache=False).partitions
    ):
        for _, fields in r.xrange(name):
            if streams.EVENT_FIELD in fields:
                out.append(orjson.loads(fields[streams.EVENT_FIELD]))
    return out


def everything(r: redis.Redis) -> bytes:
    """Every byte stored in Redis (keys, strings, hashes, sets, streams), for "no IP" checks."""
    parts: list[bytes] = []
    for key in r.scan_iter(count=1000):
        parts.append(key)
        kind = r.type(key)
        if kind == b"string":
            parts.append(r.get(key) or b"")
        elif kind == b"hash":
            for k, v in r.hgetall(key).items():
                parts += [k, v]
        elif kind == b"set":
            parts += list(r.smembers(key))
        elif kind == b"stream":
            for _, fields in r.xrange(key):
                for k, v in fields.items():
                    parts += [k, v]
        elif kind == b"list":
            parts += r.lrange(key, 0, -1)
    return b"\n".join(parts)
