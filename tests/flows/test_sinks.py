"""Bytewax sinks in tiny real flows against a real redis-server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from rtp.capture.events import Rejection
from rtp.client import Client
from rtp.config import Settings
from rtp.engine.writes import Writes
from rtp.flow.sinks import DeadLetterSink, RedisSink
from rtp.store.store import Store
from tests.conftest import RedisServer


def batch(n: int, users: range) -> Writes:
    w = Writes()
    w.decisions = [(f"u{u}", orjson.dumps({"v": 1, "ts": float(n), "batch": n})) for u in users]
    w.items = {f"i{n}": f"c{n}|{n}.5".encode()}
    w.users = [f"u{u}" for u in users]
    return w


def test_redis_sink_lands_writes(redis_url: str) -> None:
    forget = Writes()
    forget.forget = ["u0"]
    writes = [batch(1, range(0, 3)), batch(2, range(2, 5)), forget, batch(3, range(4, 5))]
    # the catalogue of an earlier version: moved into the buckets when the sink starts (an
    # entry the flow writes again is overwritten)
    old = redis.Redis.from_url(redis_url)
    old.hset("rtp:items", mapping={"i0": b"c0|0.5", "i1": b"old|0"})
    old.close()
    flow = Dataflow("sink-test")
    stream = op.input("in", flow, TestingSource(writes, batch_size=2))
    op.output("out", stream, RedisSink(redis_url, Settings(context_ttl_s=600)))
    run_main(flow)

    r = redis.Redis.from_url(redis_url)
    assert r.exists("rtp:d:u0") == 0  # forgotten after its batch-1 write
    assert orjson.loads(r.get("rtp:d:u1"))["batch"] == 1
    assert orjson.loads(r.get("rtp:d:u2"))["batch"] == 2  # later batch wins
    assert orjson.loads(r.get("rtp:d:u4"))["batch"] == 3
    assert 0 < r.ttl("rtp:d:u4") <= 600
    store = Store.from_url(redis_url)
    assert store.catalogue() == {"i0": b"c0|0.5", "i1": b"c1|1.5", "i2": b"c2|2.5", "i3": b"c3|3.5"}
    assert not r.exists("rtp:items")
    store.close()
    assert r.pfcount("rtp:hll:users") == 5
    r.close()


def test_dead_letter_sink_writes_stream_and_jsonl(redis_url: str, tmp_path: Path) -> None:
    path = tmp_path / "dead" / "letters.jsonl"
    batches = [
        [Rejection("invalid_json", "bad", "f:1", b"{"), Rejection("oversized", "big", "f:2")],
        [],
        [Rejection("unknown_type", "type 'x'", "f:3", b'{"type":"x"}')],
    ]
    flow = Dataflow("dead-letter-test")
    stream = op.input("in", flow, TestingSource(batches))
    op.output("out", stream, DeadLetterSink(redis_url, Settings(dead_letter_file=str(path))))
    run_main(flow)

    r = redis.Redis.from_url(redis_url)
    assert r.xlen("rtp:deadletter") == 3
    assert r.zcard("rtp:deadletter:pos") == 3
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    expected = [rej.to_dict() for b in batches for rej in b]
    assert [{k: v for k, v in x.items() if k != "at"} for x in lines] == expected
    assert all(abs(x["at"] - time.time()) < 60 for x in lines)  # when written: the TTL's clock
    r.close()


def test_a_user_forgotten_after_the_last_tidy_leaves_the_file_at_close(
    redis_url: str, tmp_path: Path
) -> None:
    """The file is tidied at most every 10 s while the flow runs; a forget between the last
    tidy and the end of the flow (a replay's last seconds) is honoured when the sink closes."""
    path = tmp_path / "letters.jsonl"
    settings = Settings(redis_url=redis_url, dead_letter_file=str(path))

    def forget_after_first(b: list[Rejection]) -> list[Rejection]:
        if b and b[0].pos == "f:3":  # the first batch is written (and tidied) by now
            with Client.from_url(redis_url) as c:
                c.forget("u1")
        return b

    batches = [
        [Rejection("invalid_json", "bad", "f:1", b"{", user="u1", ts=100.0),
         Rejection("invalid_json", "bad", "f:2", b"{", user="u2", ts=100.0)],
        [Rejection("unknown_type", "type 'x'", "f:3", b"{", user="u3", ts=101.0)],
    ]  # fmt: skip
    flow = Dataflow("dead-letter-forget")
    stream = op.input("in", flow, TestingSource(batches))
    stream = op.map("forget", stream, forget_after_first)
    op.output("out", stream, DeadLetterSink(redis_url, settings))
    run_main(flow)
    users = [orjson.loads(line)["user"] for line in path.read_bytes().splitlines()]
    assert users == ["u2", "u3"]


def test_redis_sink_waits_out_an_outage_and_writes_everything(own_redis: RedisServer) -> None:
    """A Redis outage longer than the store's own retries pauses the sink, which writes the
    batch once Redis is back: nothing is dropped, nothing raised."""
    settings = Settings(redis_retries=1, redis_backoff_s=0.01, redis_timeout_s=0.5)
    url = own_redis.url
    restarted = threading.Event()

    def outage(w: Writes) -> Writes:  # the sink is built (and pinged) by now
        own_redis.stop()

        def back() -> None:
            time.sleep(1.5)  # longer than the store's retries (one, ~10 ms)
            own_redis.start()
            restarted.set()

        threading.Thread(target=back, daemon=True).start()
        return w

    flow = Dataflow("sink-outage")
    stream = op.input("in", flow, TestingSource([batch(1, range(3))]))
    stream = op.map("outage", stream, outage)
    op.output("out", stream, RedisSink(url, settings))
    run_main(flow)
    assert restarted.is_set()
    r = redis.Redis.from_url(url)
    assert sorted(k.decode() for k in r.keys("rtp:d:*")) == ["rtp:d:u0", "rtp:d:u1", "rtp:d:u2"]
    r.close()


def test_a_sink_that_cannot_reach_redis_at_start_says_so(own_redis: RedisServer) -> None:
    settings = Settings(redis_retries=1, redis_backoff_s=0.01, redis_timeout_s=0.5)
    own_redis.stop()
    flow = Dataflow("sink-no-redis")
    stream = op.input("in", flow, TestingSource([batch(1, range(2))]))
    op.output("out", stream, RedisSink(own_redis.url, settings))
    with pytest.raises(Exception) as info:
        run_main(flow)
    text = "".join(f"{type(e).__name__}: {e}" for e in _chain(info.value))
    assert "StoreUnavailable: Redis did not answer ping" in text


def _chain(e: BaseException | None) -> list[BaseException]:
    out = []
    while e is not None:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out
