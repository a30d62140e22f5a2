"""Shared fixtures: a real redis-server started by the tests themselves (no mocks)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from rtp.errors import ConfigError
from rtp.testing import RedisServer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RTP_DATA_DIR", ROOT.parent / "shared" / "data"))
TAOBAO = DATA / "taobao-userbehavior" / "UserBehavior_timeslice_96k.csv"


def shared_sample(relpath: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason."""
    path = DATA / relpath
    if not path.exists():
        pytest.skip(f"shared sample {path} is absent (set RTP_DATA_DIR to the shared/data folder)")
    return path


def _server() -> RedisServer:
    try:
        return RedisServer()
    except ConfigError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = _server().start()
    yield server
    server.close()


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    """A URL to an empty database of the shared test server."""
    if not redis_server.running:
        redis_server.start()
    c = redis.Redis.from_url(redis_server.url)
    c.flushall()
    c.close()
    return redis_server.url


@pytest.fixture()
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill and restart it."""
    server = _server().start()
    yield server
    server.close()
