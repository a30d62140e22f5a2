"""Minimal reproductions of what the fault suite found (RELIABILITY.md, "Findings").

Each case starts its own redis-server and ``rtp live`` (stopped at the end), shows what happens
and exits 1 while the problem is there, 0 once it is fixed::

    .venv/bin/python benchmarks/_faults_repro.py            # every case
    .venv/bin/python benchmarks/_faults_repro.py forget-race dnp-type
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _faults_lib import (  # noqa: E402
    REAPER,
    Live,
    RedisProc,
    dead_letters,
    flow_stats,
    install_cleanup,
)
from rtp import streams  # noqa: E402
from rtp.client import Client  # noqa: E402


def _view(user: str, item: str, ts: float | None = None, **kw: Any) -> dict[str, Any]:
    return {"v": 1, "type": "product_view", "user": user, "ts": time.time() if ts is None else ts,
            "item": item, "category": "c", "price": 5.0, **kw}  # fmt: skip


def _flow() -> tuple[redis.Redis, Client, str]:
    srv = RedisProc("repro")
    srv.start()
    r = srv.client()
    live = Live(srv.url, REAPER.tmpdir("rtp-faults-repro-"), "repro")
    live.start()
    live.wait_ready(r)
    return r, Client.from_url(srv.url), srv.url


def dnp_type() -> bool:
    """A dnp control event whose flag is the string "true" (or 1): read as false, no dead
    letter; the user is personalized."""
    r, c, _ = _flow()
    streams.append(r, [_view("a", "i1"), {"v": 1, "type": "dnp", "user": "a", "dnp": "true"},
                       _view("a", "i2")])  # fmt: skip
    time.sleep(3)
    mode = (c.decision("a") or {}).get("mode")
    print(f"dnp-type: in rtp:dnp {bool(r.sismember('rtp:dnp', 'a'))}, decision mode {mode}, "
          f"dead letters {len(dead_letters(r))}")  # fmt: skip
    return mode == "non_personalized" or bool(dead_letters(r))


def dnp_after_forget() -> bool:
    """Forgotten, back, then opted out with Client.set_do_not_personalize: the flow drops the
    dnp event (no ts: read as 0.0, older than the tombstone) and goes on personalizing."""
    r, c, _ = _flow()
    streams.append(r, [_view("b", "i1")])
    time.sleep(2)
    c.forget("b")
    time.sleep(0.5)
    streams.append(r, [_view("b", "i2")])
    time.sleep(2)
    c.set_do_not_personalize("b", True)
    time.sleep(1)
    streams.append(r, [_view("b", "i3")])
    time.sleep(3)
    mode = (c.decision("b") or {}).get("mode")
    ctx = c.context("b") or {}
    print(f"dnp-after-forget: in rtp:dnp {bool(r.sismember('rtp:dnp', 'b'))}, decision mode "
          f"{mode}, stored context {sorted(ctx)}, dropped_forgotten "
          f"{flow_stats(r)['dropped_forgotten']:.0f}")  # fmt: skip
    return mode == "non_personalized"


def dnp_optin() -> bool:
    """Opted out with a dnp event, then opted back in with one (both as the README shows them,
    "carrying only a user"): the opt-in is dropped as older than the opt-out's tombstone."""
    r, c, _ = _flow()
    streams.append(r, [_view("c", "i1"), {"v": 1, "type": "dnp", "user": "c", "dnp": True}])
    time.sleep(2)
    streams.append(r, [{"v": 1, "type": "dnp", "user": "c", "dnp": False}])
    time.sleep(1)
    streams.append(r, [_view("c", "i2")])
    time.sleep(3)
    mode = (c.decision("c") or {}).get("mode")
    print(f"dnp-optin: in rtp:dnp {bool(r.sismember('rtp:dnp', 'c'))}, decision mode {mode}, "
          f"dropped_forgotten {flow_stats(r)['dropped_forgotten']:.0f}")  # fmt: skip
    return not r.sismember("rtp:dnp", "c")


def forget_race(users: int = 20) -> bool:
    """Every event of the user is older than the forget, and their events keep coming while
    it happens: once the flow has settled no key of theirs may exist."""
    r, c, url = _flow()
    left = []
    for k in range(users):
        u = f"race-{k}"
        old = time.time() - 60
        stop = threading.Event()
        w = redis.Redis.from_url(url)

        def produce(
            u: str = u, old: float = old, w: redis.Redis = w, stop: threading.Event = stop
        ) -> None:
            n = 0
            while not stop.is_set():
                streams.append(w, [_view(u, f"i{(n + j) % 50}", old + (n + j) * 0.001)
                                   for j in range(5)])  # fmt: skip
                n += 5
                time.sleep(0.002)

        t = threading.Thread(target=produce)
        t.start()
        time.sleep(0.5)
        c.forget(u)
        time.sleep(0.5)
        stop.set()
        t.join()
        time.sleep(1.5)
        keys = sorted(k.decode() for k in r.scan_iter(match=f"rtp:*{u}"))
        if keys:
            left.append(f"{keys} (ttl {r.ttl(keys[0])} s)")
    print(f"forget-race: {len(left)} of {users} users forgotten while their (older) events were "
          f"in flight still have keys: {left[:3]}")  # fmt: skip
    return not left


def dead_letter_after_forget() -> bool:
    """A forgotten user's older events are dropped, but an older *bad* event of theirs arriving
    after the forget is dead-lettered (and indexed for a forget that already happened)."""
    r, c, _ = _flow()
    c.forget("d")
    old = time.time() - 60
    streams.append(r, [_view("d", "ok", old), _view("d", "bad", old, price=-1)])
    time.sleep(3)
    dl = [f for f in dead_letters(r).values() if b'"user":"d"' in f.get("raw", b"")]
    print(
        f"dead-letter-after-forget: the older valid event dropped "
        f"({flow_stats(r)['dropped_forgotten']:.0f}), its bad twin kept as {len(dl)} dead "
        f"letter(s), per-user index keys {len(list(r.scan_iter(match='rtp:dlu:*')))}"
    )
    return not dl


CASES: dict[str, Callable[[], bool]] = {
    "dnp-type": dnp_type,
    "dnp-after-forget": dnp_after_forget,
    "dnp-optin": dnp_optin,
    "forget-race": forget_race,
    "dead-letter-after-forget": dead_letter_after_forget,
}


def main(names: list[str]) -> int:
    install_cleanup()
    bad = []
    for name in names or list(CASES):
        try:
            if not CASES[name]():
                bad.append(name)
        finally:
            REAPER.cleanup()
    REAPER.cleanup(dirs=True)
    print(f"still there: {', '.join(bad) or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
