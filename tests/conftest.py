"""Shared fixtures: a real redis-server started by the tests themselves (no mocks)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RTP_DATA_DIR", ROOT.parent / "shared" / "data"))
TAOBAO = DATA / "taobao-userbehavior" / "UserBehavior_timeslice_96k.csv"


def shared_sample(relpath: str) -> Path:
    """A file of ../shared/data, or skip the test with the reason."""
    path = DATA / relpath
    if not path.exists():
        pytest.skip(f"shared sample {path} is absent (set RTP_DATA_DIR to the shared/data folder)")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a free port; can be killed and restarted (outage tests)."""

    def __init__(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("no redis-server on PATH: `make test` installs Debian's package as root")
        self.exe = exe
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="rtp-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        c = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        for _ in range(100):
            try:
                if c.ping():
                    c.close()
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture()
def redis_url(redis_server: RedisServer) -> str:
    """A URL to an empty database of the shared test server."""
    if redis_server.proc is None or redis_server.proc.poll() is not None:
        redis_server.start()
    c = redis.Redis.from_url(redis_server.url)
    c.flushall()
    c.close()
    return redis_server.url


@pytest.fixture()
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of the test's own, for tests that kill and restart it."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()
    shutil.rmtree(server.dir, ignore_errors=True)
