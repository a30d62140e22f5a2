"""The live flow as a child process: ``rtp live --redis-url URL``, the one interface to the flow
that the doors rely on (its in-process API is not theirs to use).

``RTP_LIVE_PYTHONPATH``, when set, becomes the child's ``PYTHONPATH`` (and only the child's): a
development aid to run a known-good flow while the one in the tree is being reworked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import IO, Any

__all__ = ["PROBE_USER", "live_command", "start_live", "stop_live", "wait_ready"]

PROBE_USER = "__rtp_probe__"


def live_command(redis_url: str) -> list[str]:
    """``rtp live --redis-url URL`` with this interpreter."""
    return [sys.executable, "-m", "rtp.tools.cli", "live", "--redis-url", redis_url]


def start_live(redis_url: str, out: IO[bytes] | int | None = None) -> subprocess.Popen[bytes]:
    """Start ``rtp live`` on ``redis_url`` (output to ``out``; default: discarded)."""
    env = dict(os.environ)
    if env.get("RTP_LIVE_PYTHONPATH"):
        env["PYTHONPATH"] = env["RTP_LIVE_PYTHONPATH"]
    return subprocess.Popen(
        live_command(redis_url),
        stdout=subprocess.DEVNULL if out is None else out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def stop_live(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the flow (SIGTERM, then SIGKILL after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_ready(
    proc: subprocess.Popen[bytes], r: Any, prefix: str = "rtp:", timeout_s: float = 90.0
) -> float:
    """Wait until the flow turns a probe event into a decision, then delete the probe's keys.
    Returns the seconds it took; raises ``RuntimeError`` if the flow exits or never decides."""
    from rtp.store import streams

    t0 = time.monotonic()
    sent = 0.0
    key = f"{prefix}d:{PROBE_USER}"
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"rtp live exited with code {proc.returncode}")
        if r.exists(key):
            r.delete(key, f"{prefix}p:{PROBE_USER}")
            return time.monotonic() - t0
        if time.monotonic() - sent > 2.0:
            probe = {"v": 1, "type": "page_view", "user": PROBE_USER, "ts": time.time()}
            streams.append(r, [probe])
            sent = time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"rtp live did not decide for a probe event within {timeout_s:.0f} s")
