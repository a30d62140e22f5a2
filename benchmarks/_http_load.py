"""A bounded HTTP/1.1 load generator for the HTTP doors benchmarks (benchmarks/test_09_http.py).

A small asyncio client on raw sockets (keep-alive connections, pre-built requests, minimal
response parsing): it costs far less per request than an HTTP library, so on a 2-core machine
more of the CPU goes to the server under test. Every run is bounded in requests and in time,
and talks only to 127.0.0.1.

- :func:`run_closed`: ``clients`` connections, each sending its next request when the previous
  answer has arrived (closed loop), until a list of requests is used up or a deadline passes;
- :func:`run_open`: requests at a fixed rate over ``connections`` (open loop: latency counts from
  each request's scheduled time, so queueing is not hidden);
- :func:`serve`: ``rtp serve`` (or any ASGI factory on uvicorn) in a subprocess, ready when
  ``/healthz`` answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rtp.testing import free_port

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def request(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> bytes:
    """One HTTP/1.1 request, ready to write."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}", "User-Agent: rtp-bench/1 (Mozilla/5.0)"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body or method in ("POST", "PUT"):
        lines.append("Content-Type: application/json")
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Connection:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    async def send(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    """What a run measured: latencies (ms), answers by status, bodies kept on request."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    bodies: list[bytes] = field(default_factory=list)
    sent: int = 0
    wall_s: float = 0.0

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())


async def _closed(
    port: int, requests: Sequence[bytes], clients: int, keep_bodies: bool, deadline_s: float
) -> Result:
    res = Result()
    nxt = 0
    stop = time.monotonic() + deadline_s
    clock = time.perf_counter

    async def worker() -> None:
        nonlocal nxt
        conn = await Connection.open(port)
        try:
            while nxt < len(requests) and time.monotonic() < stop:
                raw = requests[nxt]
                nxt += 1
                res.sent += 1
                t0 = clock()
                status, body = await conn.send(raw)
                res.latencies_ms.append((clock() - t0) * 1e3)
                res.statuses[status] = res.statuses.get(status, 0) + 1
                if keep_bodies:
                    res.bodies.append(body)
        finally:
            conn.close()

    t0 = clock()
    await asyncio.gather(*(worker() for _ in range(clients)))
    res.wall_s = clock() - t0
    return res


def run_closed(
    port: int,
    requests: Sequence[bytes],
    clients: int,
    keep_bodies: bool = False,
    deadline_s: float = 120.0,
) -> Result:
    """Send ``requests`` over ``clients`` keep-alive connections, closed loop (bounded)."""
    return asyncio.run(_closed(port, requests, clients, keep_bodies, deadline_s))


async def _open(
    port: int, requests: Sequence[bytes], rate: float, connections: int, deadline_s: float
) -> Result:
    """Requests sent at a fixed rate, spread over connections; a request's latency counts from
    its scheduled send time, so a slow answer that delays the next send is not hidden."""
    res = Result()
    clock = time.perf_counter
    t0 = clock() + 0.05
    interval = 1.0 / rate
    stop = time.monotonic() + deadline_s

    async def worker(first: int) -> None:
        conn = await Connection.open(port)
        try:
            for n in range(first, len(requests), connections):
                due = t0 + n * interval
                wait = due - clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                if time.monotonic() > stop:
                    return
                res.sent += 1
                status, _ = await conn.send(requests[n])
                res.latencies_ms.append((clock() - due) * 1e3)
                res.statuses[status] = res.statuses.get(status, 0) + 1
        finally:
            conn.close()

    await asyncio.gather(*(worker(i) for i in range(connections)))
    res.wall_s = clock() - t0
    return res


def run_open(
    port: int, requests: Sequence[bytes], rate: float, connections: int, deadline_s: float = 120.0
) -> Result:
    """Send ``requests`` at ``rate`` per second over ``connections`` (open loop, bounded)."""
    return asyncio.run(_open(port, requests, rate, connections, deadline_s))


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(url + "/healthz", timeout=1) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("the server did not answer /healthz")


@contextlib.contextmanager
def serve(
    redis_url: str, factory: str | None = None, workers: int = 1, env: dict[str, str] | None = None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``rtp serve --redis-url URL`` (or ``uvicorn FACTORY --factory``) in a subprocess."""
    port = free_port()
    if factory is None:
        cmd = [sys.executable, "-m", "rtp.tools.cli", "serve", "--redis-url", redis_url,
               "--port", str(port), "--workers", str(workers)]  # fmt: skip
    else:
        cmd = [sys.executable, "-m", "uvicorn", factory, "--factory", "--port", str(port),
               "--no-access-log", "--log-level", "warning", "--workers", str(workers)]  # fmt: skip
    full_env = {**os.environ, "RTP_REDIS_URL": redis_url, **(env or {})}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_healthy(f"http://{HOST}:{port}", proc)
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
