"""A real, private ``redis-server`` for tests and benchmarks (rtp's own and its users').

Not a fake: it starts Debian's (or any) ``redis-server`` binary on a free localhost port with
no persistence, and can be stopped and started again on the same port (outage tests)::

    server = RedisServer().start()
    ...  # use server.url
    server.stop()
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time

import redis

from rtp.errors import ConfigError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A private redis-server on a free localhost TCP port, restartable on the same port."""

    def __init__(self, prefix: str = "rtp-redis-") -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise ConfigError(
                "no redis-server on PATH: `make test` installs Debian's package as root, or run "
                "`apt-get install redis-server`"
            )
        self.exe = exe
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        c = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            for _ in range(200):
                try:
                    if c.ping():
                        return self
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            c.close()
        raise RuntimeError("redis-server did not start")

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=10)

    def flush(self) -> None:
        c = self.client()
        c.flushall()
        c.close()

    def used_memory(self) -> dict[str, int]:
        c = self.client()
        info = c.info("memory")
        c.close()
        return {k: int(info[k]) for k in ("used_memory", "used_memory_dataset")}

    def stop(self) -> None:
        """Kill the server (the port and directory stay, so :meth:`start` can bring it back)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
