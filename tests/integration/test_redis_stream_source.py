"""rtp.flow.sources.RedisStreamSource against a real redis-server (tests/conftest.py): the
partitioned live stream read through a consumer group."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
import redis
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, run_main

from rtp import streams
from rtp.capture.events import (
    INVALID_FIELD,
    INVALID_JSON,
    MISSING_FIELD,
    TIMESTAMP_OUT_OF_RANGE,
    UNKNOWN_TYPE,
    Event,
    Rejection,
)
from rtp.config import LIVE_TICK_S, Settings
from rtp.flow.sources import Batch, RedisStreamSource, request_stop, reset_stop
from tests.conftest import RedisServer

T0 = 1_511_658_000
ONE = "rtp:one"  # a stream of one partition: rtp:one:0


def view(i: int, user: str | None = None) -> dict[str, object]:
    return {
        "v": 1,
        "type": "product_view",
        "user": user or f"u{i % 3}",
        "ts": T0 + i,
        "item": f"i{i}",
    }


def run_flow(source: RedisStreamSource, recovery: Path | None = None) -> list[Batch]:
    out: list[Batch] = []
    flow = Dataflow("test_redis_stream")
    op.output("out", op.input("in", flow, source), TestingSink(out))
    run_main(flow, recovery_config=RecoveryConfig(str(recovery)) if recovery else None)
    return out


def records(batches: list[Batch]) -> tuple[list[Event], list[Rejection]]:
    """Events and rejections of the batches (markers, which carry only a watermark, skipped)."""
    events: list[Event] = []
    rejections: list[Rejection] = []
    for b in batches:
        assert b.read == len(b.events) + len(b.rejections)
        events.extend(b.events)
        rejections.extend(b.rejections)
    return events, rejections


def drain(part: object, limit: int) -> list[Batch]:
    out: list[Batch] = []
    while len([b for b in out if b.read]) < limit:
        try:
            out.extend(part.next_batch())  # type: ignore[attr-defined]
        except StopIteration:
            break
    return out


@pytest.fixture()
def r(redis_url: str) -> redis.Redis:
    c = redis.Redis.from_url(redis_url, socket_timeout=2)
    streams.configure(c, streams.StreamConfig(ONE, partitions=1))
    return c


def source(url: str, **kw: object) -> RedisStreamSource:
    return RedisStreamSource(url, stream=ONE, ack=None, **kw)  # type: ignore[arg-type]


def test_events_until_eof(redis_url: str, r: redis.Redis) -> None:
    ids = streams.append(r, [view(i) for i in range(25)], stream=ONE)
    eof = streams.append_eof(r, stream=ONE)
    streams.append(r, [view(99)], stream=ONE)  # after the end: not read
    before = time.time()
    out = run_flow(source(redis_url, batch_size=10))
    events, rejections = records(out)
    assert not rejections
    assert [e.item for e in events] == [f"i{i}" for i in range(25)]
    assert [e.pos for e in events] == [f"{ONE}:0:{i.decode()}" for i in ids]
    data = [b for b in out if b.read]
    assert [b.read for b in data] == [10, 10, 5]
    assert all(b.part == f"{ONE}:0" for b in out)
    ticks = [b.tick for b in out]
    assert ticks == sorted(ticks)  # a partition's ticks never go back
    newest_ms = int(ids[-1].split(b"-")[0])
    eof_ms = int(eof[0].split(b"-")[0])  # the end marker read with the last batch
    assert newest_ms / 1000.0 <= data[-1].lag_ref <= eof_ms / 1000.0
    assert before - 60 < data[-1].lag_ref <= data[-1].read_at
    assert out[-1].wm > 1 << 60  # the end: a watermark past every tick


def test_append_takes_a_redis_url_too(redis_url: str, r: redis.Redis) -> None:
    ids = streams.append(redis_url, [view(i) for i in range(3)], stream=ONE)
    assert streams.append(redis_url, [view(3)], stream=ONE)  # the URL's client, kept
    got = r.xrange(f"{ONE}:0")
    assert [i for i, _ in got][:3] == ids and len(got) == 4
    with pytest.raises(ValueError, match="not a Redis URL"):
        streams.append("localhost:6379", [view(0)], stream=ONE)
    with pytest.raises(TypeError, match="redis.Redis client or a Redis URL"):
        streams.append(object(), [view(0)], stream=ONE)


def test_bad_entries_are_rejected_with_reasons(redis_url: str, r: redis.Redis) -> None:
    streams.append(r, [view(0)], stream=ONE)
    streams.append(r, [b"{not json"], stream=ONE)
    streams.append(r, [{"type": "teleport", "user": "u", "ts": T0}], stream=ONE)
    streams.append(r, [{"type": "product_view", "user": "u", "ts": T0}], stream=ONE)
    r.xadd(f"{ONE}:0", {b"other": b"1"})
    streams.append(r, [{**view(1), "ts": 15}, view(2)], stream=ONE)
    streams.append(r, [{"type": "forget", "user": "u1"}], stream=ONE)
    streams.append_eof(r, stream=ONE)
    events, rejections = records(run_flow(source(redis_url)))
    assert [(e.type, e.item) for e in events] == [
        ("product_view", "i0"),
        ("product_view", "i2"),
        ("forget", None),
    ]
    assert [x.reason for x in rejections] == [
        INVALID_JSON,
        UNKNOWN_TYPE,
        MISSING_FIELD,
        INVALID_FIELD,
        TIMESTAMP_OUT_OF_RANGE,
    ]
    assert rejections[3].raw == b"other=1"
    assert all(x.pos.startswith(ONE + ":0:") for x in rejections)


def test_partitions_by_user_and_one_source_partition_each(redis_url: str) -> None:
    c = redis.Redis.from_url(redis_url)
    config = streams.configure(c, streams.StreamConfig("rtp:p", partitions=3))
    events = [view(i, user=f"user{i % 7}") for i in range(40)]
    streams.append(c, events, stream="rtp:p")
    streams.append_eof(c, stream="rtp:p")
    src = RedisStreamSource(redis_url, stream="rtp:p", ack=None)
    assert src.list_parts() == config.names() == ["rtp:p:0", "rtp:p:1", "rtp:p:2"]
    out = run_flow(src)
    got, _ = records(out)
    assert sorted(e.item for e in got) == sorted(str(e["item"]) for e in events)
    for e in got:  # every user's events in the partition the producer chose, in order
        part = e.pos.rsplit(":", 1)[0]
        assert part == f"rtp:p:{streams.partition_of(e.user, 3)}"
    for user in {e.user for e in got}:
        mine = [e.ts for e in got if e.user == user]
        assert mine == sorted(mine)


def test_live_ticks_are_quarter_seconds_of_entry_ids_by_default(
    redis_url: str, r: redis.Redis
) -> None:
    """The default tick (Settings.tick_s, the sources' default too) cuts capture time into
    quarter seconds: a shorter tick is a shorter fold at each boundary (BENCHMARKS.md §4.7)."""
    assert Settings().tick_s == LIVE_TICK_S == 0.25
    base = 1_700_000_000_000  # ms, a multiple of 250
    offsets = [0, 100, 260, 520, 760, 990]
    for i, off in enumerate(offsets):
        r.xadd(f"{ONE}:0", {streams.EVENT_FIELD: orjson.dumps(view(i))}, id=f"{base + off}-0")
    part = source(redis_url, batch_size=1).build_part("s", f"{ONE}:0", None)
    data = [b for b in drain(part, len(offsets)) if b.read]
    assert [b.events[0].item for b in data] == [f"i{i}" for i in range(len(offsets))]
    assert [b.tick for b in data] == [(base + off) // 250 for off in offsets]
    assert len({b.tick for b in data}) == 4  # one tick of 1 s would have held them all


def test_an_idle_partition_lets_its_tick_advance_and_sleeps(redis_url: str, r: redis.Redis) -> None:
    now = [1_700_000_000.0]
    src = RedisStreamSource(
        redis_url, stream=ONE, poll_ms=50, ack=None, tick_s=1.0, clock=lambda: now[0]
    )
    part = src.build_part("s", f"{ONE}:0", None)
    [marker] = part.next_batch()  # the first read: the tick moves to the clock's
    assert marker.read == 0 and marker.events == [] and marker.wm == marker.tick
    assert part.next_batch() == []  # same second: nothing to say
    awake = part.next_awake()
    assert awake is not None
    ahead = (awake - datetime.now(timezone.utc)).total_seconds()
    assert 0.0 < ahead <= 0.05
    now[0] += 2.0
    [later] = part.next_batch()
    assert later.read == 0 and later.tick == marker.tick + 2
    streams.append(r, [view(1)], stream=ONE)
    got = [b for b in part.next_batch() if b.read]
    assert [b.read for b in got] == [1]
    part.close()


def test_resume_from_a_snapshot(redis_url: str, r: redis.Redis) -> None:
    ids = streams.append(r, [view(i) for i in range(12)], stream=ONE)
    streams.append_eof(r, stream=ONE)
    src = source(redis_url, batch_size=5)
    part = src.build_part("s", f"{ONE}:0", None)
    first = drain(part, 1)
    state = part.snapshot()
    assert state["v"] == 2 and state["inner"]["last"] == ids[4].decode()
    part.close()
    rest = drain(src.build_part("s", f"{ONE}:0", state), 10)
    events, _ = records(first + rest)
    assert [e.item for e in events] == [f"i{i}" for i in range(12)]


def test_a_restart_without_recovery_rereads_what_was_never_acknowledged(
    redis_url: str, r: redis.Redis
) -> None:
    streams.append(r, [view(i) for i in range(8)], stream=ONE)
    src = source(redis_url, batch_size=5)
    part = src.build_part("s", f"{ONE}:0", None)
    first, _ = records(drain(part, 1))
    assert [e.item for e in first] == [f"i{i}" for i in range(5)]
    part.close()  # a crash: delivered to the group, never acknowledged
    streams.append(r, [view(i) for i in range(8, 10)], stream=ONE)
    streams.append_eof(r, stream=ONE)
    again, _ = records(drain(src.build_part("s", f"{ONE}:0", None), 10))
    # nothing from 0-0 again, nothing skipped: the unacknowledged five first, then the rest
    assert [e.item for e in again] == [f"i{i}" for i in range(10)]


def test_processed_entries_are_acknowledged_and_trimmed(redis_url: str, r: redis.Redis) -> None:
    done = [-1]
    src = RedisStreamSource(redis_url, stream=ONE, ack="progress", batch_size=4)
    src.progress = lambda: lambda: done[0]
    part = src.build_part("s", f"{ONE}:0", None)
    streams.append(r, [view(i) for i in range(10)], stream=ONE)
    got = [b for b in drain(part, 3) if b.read]
    assert sum(b.read for b in got) == 10
    assert r.xlen(f"{ONE}:0") == 10  # nothing settled yet: nothing trimmed
    done[0] = max(b.tick for b in got)  # the models of their ticks are published
    time.sleep(0.06)
    part.next_batch()
    assert r.xlen(f"{ONE}:0") == 0
    assert r.xpending(f"{ONE}:0", "rtp")["pending"] == 0
    part.close()


def test_a_clean_stop_acknowledges_what_the_steps_processed_before_ending(
    redis_url: str, r: redis.Redis
) -> None:
    done = [-1]
    src = RedisStreamSource(redis_url, stream=ONE, ack="progress", batch_size=4)
    src.progress = lambda: lambda: done[0]
    part = src.build_part("s", f"{ONE}:0", None)
    streams.append(r, [view(i) for i in range(6)], stream=ONE)
    got = [b for b in drain(part, 2) if b.read]
    request_stop()  # SIGTERM
    try:
        end = part.next_batch()
        assert len(end) == 1 and not end[0].read and end[0].wm > 1 << 60
        assert part.next_batch() == []  # the steps have not processed them yet: wait
        assert r.xpending(f"{ONE}:0", "rtp")["pending"] == 6
        done[0] = max(b.tick for b in got)  # they have now
        with pytest.raises(StopIteration):
            part.next_batch()
        assert r.xpending(f"{ONE}:0", "rtp")["pending"] == 0  # nothing to process twice
    finally:
        reset_stop()
        part.close()


def test_entries_trimmed_unread_are_counted_as_a_gap(redis_url: str, r: redis.Redis) -> None:
    streams.append(r, [view(i) for i in range(3)], stream=ONE)
    part = source(redis_url, batch_size=3).build_part("s", f"{ONE}:0", None)
    drain(part, 1)
    streams.append(r, [view(i) for i in range(3, 9)], stream=ONE)
    r.xtrim(f"{ONE}:0", maxlen=2, approximate=False)  # somebody trims unread entries
    part.inner._last_gap_check = 0.0  # check now
    got, _ = records(drain(part, 1))
    gaps = r.hgetall(f"{ONE}:0:gaps")
    assert int(gaps[b"gaps"]) == 1 and int(gaps[b"events"]) == 4
    assert [e.item for e in got] == ["i7", "i8"]  # reading goes on from what is left
    part.close()


def test_flow_recovery_reads_only_new_entries(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    init_db_dir(tmp_path, 1)
    streams.append(r, [view(i) for i in range(7)], stream=ONE)
    streams.append_eof(r, stream=ONE)
    first, _ = records(run_flow(source(redis_url, batch_size=3), tmp_path))
    assert [e.item for e in first] == [f"i{i}" for i in range(7)]

    streams.append(r, [view(i) for i in range(7, 11)], stream=ONE)
    streams.append_eof(r, stream=ONE)
    second, _ = records(run_flow(source(redis_url, batch_size=3), tmp_path))
    assert [e.item for e in second] == [f"i{i}" for i in range(7, 11)]


def test_a_redis_outage_is_waited_out(own_redis: RedisServer) -> None:
    c = redis.Redis.from_url(own_redis.url)
    streams.configure(c, streams.StreamConfig(ONE, partitions=1))
    streams.append(c, [view(0)], stream=ONE)
    part = RedisStreamSource(own_redis.url, stream=[f"{ONE}:0"], timeout_s=0.5, ack=None)
    p = part.build_part("s", f"{ONE}:0", None)
    assert [b.read for b in p.next_batch() if b.read] == [1]
    own_redis.stop()
    assert p.next_batch() == []  # no exception, no lost position
    awake = p.next_awake()
    assert awake is not None and awake > datetime.now(timezone.utc)
    own_redis.start()  # an empty server (no persistence): the group is made again
    c = redis.Redis.from_url(own_redis.url)
    streams.configure(c, streams.StreamConfig(ONE, partitions=1))
    streams.append(c, [view(i) for i in range(1, 4)], stream=ONE)
    events, _ = records(drain(p, 1))
    assert [e.item for e in events] == ["i1", "i2", "i3"]
    p.close()
