"""Helpers for tests and benchmarks of the HTTP doors: a real uvicorn server in a thread, and the
``rtp live`` command line.

::

    with ServerThread(create_app(settings)) as server:
        httpx.get(server.url + "/healthz")
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn

from rtp.testing import free_port

__all__ = ["ServerThread", "live_command", "start_live"]


class ServerThread:
    """uvicorn serving ``app`` on a free localhost port, in a daemon thread (a context manager)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20.0
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10.0)


def live_command(redis_url: str) -> list[str]:
    """``rtp live --redis-url URL`` with this interpreter: the one interface to the flow."""
    return [sys.executable, "-m", "rtp.tools.cli", "live", "--redis-url", redis_url]


def start_live(redis_url: str, log_path: str | None = None) -> subprocess.Popen[bytes]:
    """Start ``rtp live`` on ``redis_url`` and wait until it has configured the stream.

    ``RTP_LIVE_PYTHONPATH``, when set, is the ``PYTHONPATH`` of the flow process only (to run a
    known-good flow while the one in the tree is being reworked).
    """
    import redis

    env = dict(os.environ)
    if env.get("RTP_LIVE_PYTHONPATH"):
        env["PYTHONPATH"] = env["RTP_LIVE_PYTHONPATH"]
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        live_command(redis_url),
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    r = redis.Redis.from_url(redis_url)
    try:
        _wait_ready(proc, r)
        return proc
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        r.close()


PROBE_USER = "__rtp_probe__"


def _wait_ready(proc: subprocess.Popen[bytes], r: Any, timeout_s: float = 90.0) -> None:
    """Wait until the flow turns a probe event into a decision (then delete the probe's keys)."""
    from rtp.store import streams

    deadline = time.monotonic() + timeout_s
    sent = 0.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rtp live exited with code {proc.returncode}")
        if r.exists("rtp:d:" + PROBE_USER):
            r.delete("rtp:d:" + PROBE_USER, "rtp:p:" + PROBE_USER)
            return
        if r.exists("rtp:events:config") and time.monotonic() - sent > 2.0:
            probe = {"v": 1, "type": "page_view", "user": PROBE_USER, "ts": time.time()}
            streams.append(r, [probe])
            sent = time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"rtp live did not decide for a probe event within {timeout_s:.0f} s")
