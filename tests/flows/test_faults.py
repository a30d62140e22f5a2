"""Small, fast versions of the fault trials (``make faults`` runs the full ones).

Against a real redis-server and the real live flow: a poison event and a bug met by one event
do not stop the flow; a forget holds against history replayed later; a Redis restart is waited
out; no raw IP is stored anywhere; the same input gives byte-identical Redis state whatever
``PYTHONHASHSEED`` is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import redis
from bytewax.testing import run_main

from rtp import streams
from rtp.capture.events import Event
from rtp.client import Client
from rtp.config import Settings
from rtp.engine.hooks import Hook
from rtp.flow.ready import FlowSpec, build
from rtp.session.state import UserState
from rtp.store.store import Store
from rtp.testing import RedisServer
from rtp.tools.replay import replay
from tests.builders import T0, synthetic_stream, view, wait_for, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _view(user: str, item: str, ts: float, **kw: Any) -> dict[str, Any]:
    return {"v": 1, "type": "product_view", "user": user, "ts": ts, "item": item,
            "category": "c", "price": 10.0, **kw}  # fmt: skip


def _live(url: str, **settings: Any) -> threading.Thread:
    flow = build(FlowSpec(kind="live", run="faults"), Settings(redis_url=url, **settings))
    worker = threading.Thread(target=run_main, args=(flow,), daemon=True)
    worker.start()
    return worker


def _stop(r: redis.Redis, worker: threading.Thread) -> None:
    streams.append_eof(r)
    worker.join(timeout=30)
    assert not worker.is_alive()


def test_poison_events_do_not_stop_the_live_flow(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    worker = _live(redis_url)
    now = time.time()
    poison = [
        {"v": 1, "type": ["click"], "user": "p1", "ts": now},
        {"v": 1, "type": {"a": 1}, "user": "p2", "ts": now},
        {"v": 2, "type": "click", "user": "p3", "ts": now},
        {"v": 1, "type": "product_view", "user": ["x"], "ts": now, "item": "i"},
        {"v": 1, "type": "product_view", "user": "p4", "ts": now, "item": "i", "dwell": 1e12},
    ]
    streams.append(r, [*poison, *[_view(f"after-{k}", f"i{k}", now + k) for k in range(20)]])
    with Client.from_url(redis_url) as c:
        assert wait_for(lambda: all(c.decision(f"after-{k}") is not None for k in range(20)))
    assert worker.is_alive()
    reasons = sorted(f[b"reason"].decode() for _, f in r.xrange("rtp:deadletter"))
    assert reasons == sorted(
        ["unknown_type", "unknown_type", "unsupported_version", "invalid_field", "invalid_field"]
    )
    _stop(r, worker)


class _Boom(Hook):
    """A bug met by one user's events (a hook raising): the user step must survive it."""

    def on_target(self, u: UserState, e: Event, rank: int) -> None:
        if u.uid == "boom":
            raise RuntimeError("a bug")


def test_a_bug_met_by_one_event_is_dead_lettered_and_the_flow_goes_on(
    redis_url: str, tmp_path: Path
) -> None:
    from rtp.engine.facade import Engine

    eng = Engine(Settings(), hooks=[_Boom()])
    w = eng.process(
        [view("ok", "a", T0), view("boom", "b", T0 + 1), view("boom", "c", T0 + 2),
         view("ok2", "c", T0 + 3)]
    )  # fmt: skip
    assert [r.reason for r in w.rejections] == ["internal_error"]
    assert w.rejections[0].user == "boom" and "RuntimeError: a bug" in w.rejections[0].detail
    assert eng.users.stats["internal_errors"] == 1
    assert "boom" not in eng.users.users  # its half-updated state is dropped
    assert sorted(u for u, _ in w.decisions) == ["ok", "ok2"]
    w2 = eng.process([view("ok", "d", T0 + 4)])
    assert [u for u, _ in w2.decisions] == ["ok"]


def test_a_forget_holds_against_history_replayed_later(redis_url: str, tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_url)
    old = synthetic_stream(30, seed=3)
    users = sorted({e.user for e in old})
    gone = users[:10]
    with Client.from_url(redis_url, settings) as c:
        for u in gone:
            c.forget(u)
    time.sleep(1.1)  # beyond the store's clock-skew margin (a forget is re-applied within it)
    # history from before the forget, then the same users coming back afterwards
    later = time.time() + 5
    back = [view(u, "new-item", later + k) for k, u in enumerate(gone[:3])]
    report = replay([write_jsonl(tmp_path / "history.jsonl", old + back)], "jsonl", settings,
                    progress=False)  # fmt: skip
    r = redis.Redis.from_url(redis_url)
    with Client.from_url(redis_url, settings) as c:
        for u in gone[3:]:
            assert c.profile(u) is None and c.context(u) is None, u
            assert not [k for k in r.scan_iter(match=f"*{u}*")], u
        for u in gone[:3]:  # after the forget: a new, empty user
            ctx = c.context(u)
            assert ctx is not None and ctx["events"] == 1 and ctx["recent"] == ["new-item"]
            assert c.profile(u) is None or c.profile(u)["sessions"] == 1
        for u in users[10:]:
            assert c.context(u) is not None
    dropped = sum(1 for e in old if e.user in gone)
    assert report["read"] == report["accepted"] == len(old) + len(back)
    stats = Store.from_url(redis_url).meta_prefix(f"stats:{report['run']}:u")
    assert sum(s["dropped_forgotten"] for s in stats.values()) == dropped


def test_a_redis_restart_is_waited_out(own_redis: RedisServer) -> None:
    url = own_redis.url
    r = redis.Redis.from_url(url)
    worker = _live(url, redis_timeout_s=0.5, redis_retries=1, redis_backoff_s=0.01)
    now = time.time()
    streams.append(r, [_view("before", "a", now)])
    with Client.from_url(url) as c:
        assert wait_for(lambda: c.decision("before") is not None)
    own_redis.stop()
    time.sleep(1.5)  # an outage longer than every retry budget
    own_redis.start()  # an empty server: the flow sets its stream up again and goes on
    r = redis.Redis.from_url(url)
    streams.configure(r, streams.StreamConfig(partitions=4))
    streams.append(r, [_view(f"after-{k}", f"i{k}", time.time() + k) for k in range(5)])
    with Client.from_url(url) as c:
        assert wait_for(lambda: all(c.decision(f"after-{k}") is not None for k in range(5)), 40)
    assert worker.is_alive()
    _stop(r, worker)


def test_no_raw_ip_is_stored_anywhere(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    worker = _live(redis_url)
    now = time.time()
    ctx = {"ip": "81.2.69.160", "ua": "Mozilla/5.0 (X11; Linux x86_64)"}
    bad = {**_view("ip-bad", "x", now), "price": -1, "context": {"ip": "2001:db8::7"}}
    streams.append(r, [_view(f"ip-{k}", f"i{k}", now + k, context=ctx) for k in range(5)] + [bad])
    with Client.from_url(redis_url) as c:
        assert wait_for(lambda: all(c.decision(f"ip-{k}") is not None for k in range(5)))
        assert c.context("ip-0")["country"] == "GB"  # type: ignore[index]
    _stop(r, worker)
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        blob = (
            r.get(key) if kind == b"string"
            else repr(r.hgetall(key)).encode() if kind == b"hash"
            else repr(r.xrange(key)).encode() if kind == b"stream"
            else repr(r.dump(key)).encode()
        )  # fmt: skip
        assert b"81.2.69.160" not in (blob or b""), key
        assert b"2001:db8::7" not in (blob or b""), key


def test_no_raw_ip_waits_in_the_live_stream(redis_url: str) -> None:
    """Whatever shape a record has, no address is stored while it waits to be processed."""
    r = redis.Redis.from_url(redis_url)
    now = time.time()
    records = [
        {**_view("w1", "x", now), "context": {"ip": "81.2.69.160"}},  # resolved to GB
        {**_view("w2", "x", now), "query": "from 81.2.69.160", "context": {"ua": "2001:db8::7"}},
        b'{"v":1,"type":"product_view","user":"w3","ip":"81.2.69.160"',  # not even JSON
        b'["81.2.69.160"]',  # JSON, not an object
    ]
    streams.append(r, records, stream="rtp:ipcheck")
    stored = repr([r.xrange(k) for k in r.scan_iter(match="rtp:ipcheck:*")]).encode()
    assert b"81.2.69.160" not in stored and b"2001:db8::7" not in stored
    assert b'"country":"GB"' in stored and stored.count(b"w3") == 1


def _replay_state(path: Path, seed: str, server: RedisServer) -> dict[bytes, bytes]:
    c = redis.Redis.from_url(server.url)
    c.flushall()
    env = {**os.environ, "PYTHONHASHSEED": seed, "RTP_REDIS_URL": server.url}
    code = (
        "import sys; from rtp.tools.cli import main; "
        f"sys.exit(main(['replay', {str(path)!r}, '--format', 'jsonl', '-q']))"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    out = {}
    for key in c.scan_iter(count=1000):
        if key.startswith(b"rtp:meta:stats:") or key.startswith(b"rtp:m:"):
            continue  # run bookkeeping: wall-clock times and the run's own name
        out[key] = c.dump(key)
    return out


def test_the_same_input_gives_byte_identical_state_whatever_the_hash_seed(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    events = synthetic_stream(60, seed=11)
    path = write_jsonl(tmp_path / "same.jsonl", events)
    a = _replay_state(path, "1", redis_server)
    b = _replay_state(path, "4242", redis_server)
    assert a and set(a) == set(b)
    diff = [k for k in a if a[k] != b[k]]
    assert not diff, diff[:5]
    assert orjson.loads(Store.from_url(redis_server.url).get_raw("rtp:meta:ranker") or b"{}")
