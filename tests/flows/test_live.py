"""The live path: the Redis stream through the same dataflow, and control events reaching it."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

import redis
from bytewax.testing import run_main

from rtp import streams
from rtp.client import Client
from rtp.config import Settings
from rtp.flow.ready import live_flow
from tests.builders import wait_for

T0 = 1_700_000_000.0


def _view(user: str, item: str, ts: float) -> dict[str, object]:
    return {"v": 1, "type": "product_view", "user": user, "ts": ts, "item": item, "category": "c"}


def test_live_stream_events_become_decisions(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    streams.append(r, [_view("ann", f"i{k}", T0 + k) for k in range(5)] + [b"{broken"])
    streams.append_eof(r)
    run_main(live_flow(Settings(redis_url=redis_url)))
    c = Client.from_url(redis_url)
    home = c.decision("ann", "home")
    assert home is not None and home["reason"] and home["ts"] == T0 + 4
    assert c.context("ann")["recent"][0] == "i4"  # type: ignore[index]
    assert r.xlen("rtp:deadletter") == 1  # the broken entry, with its reason


def test_forget_and_dnp_reach_a_running_flow(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    flow = live_flow(Settings(redis_url=redis_url))
    worker = threading.Thread(target=run_main, args=(flow,), daemon=True)
    worker.start()
    c = Client.from_url(redis_url)
    streams.append(r, [_view("bob", "b1", T0), _view("cat", "c1", T0 + 1)])
    assert wait_for(lambda: c.decision("bob") is not None and c.decision("cat") is not None)
    c.forget("bob")  # deletes now; its tombstone keeps the flow from writing bob back
    c.set_do_not_personalize("cat")
    streams.append(r, [_view("cat", "c2", T0 + 2), _view("dan", "d1", T0 + 3)])
    assert wait_for(lambda: c.decision("dan") is not None)
    streams.append_eof(r)
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert c.decision("bob") is None and c.profile("bob") is None  # not written back
    cat = c.decision("cat")
    assert cat is not None and cat["mode"] == "non_personalized"
    assert c.profile("cat") is None  # do-not-personalize stores no profile


def test_live_on_two_processes_decides_and_stops_cleanly_on_sigterm(redis_url: str) -> None:
    """``rtp live --processes 2``: two processes of Bytewax's production runner read the
    partitioned stream (a user's events on one partition), decide, and stop cleanly on SIGTERM
    (forwarded to both; their main threads, idle where pinned, still see it)."""
    r = redis.Redis.from_url(redis_url)
    cmd = [sys.executable, "-m", "rtp.tools.cli", "live", "--processes", "2"]
    proc = subprocess.Popen(
        [*cmd, "--redis-url", redis_url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        c = Client.from_url(redis_url)
        users = [f"u{k}" for k in range(8)]  # spread over the partitions
        streams.append(r, [_view(u, f"i{k}", T0 + k) for k, u in enumerate(users)])
        assert wait_for(lambda: all(c.decision(u) is not None for u in users), timeout=60)
        assert all(c.decision(u)["ts"] == T0 + k for k, u in enumerate(users))  # type: ignore[index]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)  # a hang guard, not a speed assertion
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out.decode()[-2000:]
    assert out.decode().count("stopping cleanly") == 2  # each process saw the signal
