"""A private ``redis-server`` for runs that are not given ``RTP_REDIS_URL``.

:class:`EmbeddedRedis` starts ``redis-server`` as a child process listening only on a unix
socket in a fresh temporary directory (no TCP port, nothing else can reach it), waits until it
answers ``PING`` and stops it on exit, at interpreter exit too, removing the directory::

    with EmbeddedRedis() as server:
        store = Store.from_url(server.url)

Nothing is persisted unless ``persist_dir`` is given (then an append-only file is written
there, fsynced every second, and read back by the next server started on that directory).

:func:`redis_url` is what runners use: the configured URL if there is one, else an embedded
server's.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import redis

from rtp.config import Settings
from rtp.errors import ConfigError, StoreError

__all__ = ["EmbeddedRedis", "redis_url", "NO_SERVER_HELP"]

NO_SERVER_HELP = (
    "no `redis-server` on PATH, and RTP_REDIS_URL is not set. Either install Redis "
    "(Debian/Ubuntu: `sudo apt-get install redis-server`; macOS: `brew install redis`) so rtp "
    "can start a private server, or point rtp at a running one with "
    "RTP_REDIS_URL=redis://host:6379/0"
)

_SOCKET_NAME = "redis.sock"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS


class EmbeddedRedis:
    """A ``redis-server`` child process on a private unix socket (a context manager).

    :param persist_dir: keep the data in an append-only file in this directory (created if
        needed); by default nothing is written to disk.
    :param exe: the ``redis-server`` binary (default: found on ``PATH``).
    :param start_timeout_s: how long to wait for the first ``PONG``.
    """

    def __init__(
        self,
        persist_dir: str | os.PathLike[str] | None = None,
        *,
        exe: str | None = None,
        start_timeout_s: float = 10.0,
    ) -> None:
        found = exe or shutil.which("redis-server")
        if found is None:
            raise ConfigError(NO_SERVER_HELP)
        self.exe = found
        self.persist_dir = Path(persist_dir) if persist_dir is not None else None
        self.start_timeout_s = start_timeout_s
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> str:
        if self.dir is None:
            raise StoreError("the embedded redis-server is not running")
        return str(self.dir / _SOCKET_NAME)

    @property
    def url(self) -> str:
        """A ``unix://`` URL that ``redis.Redis.from_url`` and :meth:`Store.from_url` accept."""
        return f"unix://{self.socket_path}?db=0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> EmbeddedRedis:
        """Start the server and wait until it answers ``PING``."""
        if self.running:
            return self
        self.dir = Path(_short_tempdir())
        args = [
            self.exe,
            "--port", "0",
            "--unixsocket", self.socket_path,
            "--unixsocketperm", "700",
            "--daemonize", "no",
            "--save", "",
        ]  # fmt: skip
        if self.persist_dir is not None:
            self.persist_dir.mkdir(parents=True, exist_ok=True)
            args += ["--dir", str(self.persist_dir.resolve()), "--appendonly", "yes",
                     "--appendfsync", "everysec"]  # fmt: skip
        else:
            args += ["--dir", str(self.dir), "--appendonly", "no"]
        log_path = self.dir / "redis.log"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        atexit.register(self.stop)
        try:
            self._wait_ready(log_path)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, log_path: Path) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        client = redis.Redis(
            unix_socket_path=self.socket_path, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        try:
            while True:
                if self.proc.poll() is not None:
                    tail = log_path.read_text(errors="replace")[-2_000:]
                    raise StoreError(
                        f"redis-server exited with code {self.proc.returncode}:\n{tail}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"redis-server did not answer PING within {self.start_timeout_s:.0f}s"
                    )
                time.sleep(0.01)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s) and remove its directory."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5.0)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            atexit.unregister(self.stop)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = self.url if self.running else "stopped"
        return f"EmbeddedRedis({state})"


def _short_tempdir() -> str:
    """A new temporary directory whose socket path fits in ``sun_path``."""
    path = tempfile.mkdtemp(prefix="rtp-redis-")
    if len(os.path.join(path, _SOCKET_NAME)) > _MAX_SOCKET_PATH and os.path.isdir("/tmp"):
        os.rmdir(path)
        path = tempfile.mkdtemp(prefix="rtp-redis-", dir="/tmp")
    return path


@contextlib.contextmanager
def redis_url(
    settings: Settings, persist_dir: str | os.PathLike[str] | None = None
) -> Iterator[str]:
    """``settings.redis_url`` if set, else the URL of an embedded server (stopped on exit)."""
    if settings.redis_url:
        yield settings.redis_url
        return
    with EmbeddedRedis(persist_dir) as server:
        yield server.url
