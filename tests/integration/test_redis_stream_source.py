"""rtp.flow.sources.RedisStreamSource against a real redis-server (tests/conftest.py)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import bytewax.operators as op
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
from rtp.flow.sources import Batch, RedisStreamPartition, RedisStreamSource
from tests.conftest import RedisServer

T0 = 1_511_658_000


def view(i: int) -> dict[str, object]:
    return {"v": 1, "type": "product_view", "user": f"u{i % 3}", "ts": T0 + i, "item": f"i{i}"}


def run_flow(source: RedisStreamSource, recovery: Path | None = None) -> list[Batch]:
    out: list[Batch] = []
    flow = Dataflow("test_redis_stream")
    op.output("out", op.input("in", flow, source), TestingSink(out))
    run_main(flow, recovery_config=RecoveryConfig(str(recovery)) if recovery else None)
    return out


def records(batches: list[Batch]) -> tuple[list[Event], list[Rejection]]:
    events: list[Event] = []
    rejections: list[Rejection] = []
    for b in batches:
        assert b.read == len(b.events) + len(b.rejections) > 0
        events.extend(b.events)
        rejections.extend(b.rejections)
    return events, rejections


def drain(part: RedisStreamPartition, limit: int) -> list[Batch]:
    out: list[Batch] = []
    while len(out) < limit:
        try:
            out.extend(part.next_batch())
        except StopIteration:
            break
    return out


@pytest.fixture()
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, socket_timeout=2)


def test_events_until_eof(redis_url: str, r: redis.Redis) -> None:
    ids = streams.append(r, [view(i) for i in range(25)])
    streams.append_eof(r)
    streams.append(r, [view(99)])  # after the end: not read
    before = time.time()
    out = run_flow(RedisStreamSource(redis_url, batch_size=10))
    events, rejections = records(out)
    assert not rejections
    assert [e.item for e in events] == [f"i{i}" for i in range(25)]
    assert [e.pos for e in events] == [f"{streams.DEFAULT_STREAM}:{i.decode()}" for i in ids]
    assert [b.read for b in out] == [10, 10, 5]
    assert all(b.part == streams.DEFAULT_STREAM for b in out)
    newest_ms = int(ids[-1].split(b"-")[0])
    assert out[-1].lag_ref == newest_ms / 1000.0
    assert before - 60 < out[-1].lag_ref <= out[-1].read_at


def test_bad_entries_are_rejected_with_reasons(redis_url: str, r: redis.Redis) -> None:
    stream = "rtp:test-bad"
    streams.append(r, [view(0)], stream=stream)
    streams.append(r, [b"{not json"], stream=stream)
    streams.append(r, [{"type": "teleport", "user": "u", "ts": T0}], stream=stream)
    streams.append(r, [{"type": "product_view", "user": "u", "ts": T0}], stream=stream)
    r.xadd(stream, {b"other": b"1"})
    streams.append(r, [{**view(1), "ts": 15}, view(2)], stream=stream)
    streams.append(r, [{"type": "forget", "user": "u1"}], stream=stream)
    streams.append_eof(r, stream=stream)
    events, rejections = records(run_flow(RedisStreamSource(redis_url, stream=stream)))
    assert [(e.type, e.item) for e in events] == [
        ("product_view", "i0"),
        ("product_view", "i2"),
        ("forget", None),
    ]
    assert [r.reason for r in rejections] == [
        INVALID_JSON,
        UNKNOWN_TYPE,
        MISSING_FIELD,
        INVALID_FIELD,
        TIMESTAMP_OUT_OF_RANGE,
    ]
    assert rejections[3].raw == b"other=1"
    assert all(x.pos.startswith(stream + ":") for x in rejections)


def test_one_partition_per_stream(redis_url: str, r: redis.Redis) -> None:
    for stream, n in (("rtp:a", 3), ("rtp:b", 4)):
        streams.append(r, [view(i) for i in range(n)], stream=stream)
        streams.append_eof(r, stream=stream)
    source = RedisStreamSource(redis_url, stream=["rtp:a", "rtp:b"])
    assert source.list_parts() == ["rtp:a", "rtp:b"]
    out = run_flow(source)
    assert sorted((b.part, b.read) for b in out) == [("rtp:a", 3), ("rtp:b", 4)]


def test_empty_stream_sleeps_instead_of_spinning(redis_url: str, r: redis.Redis) -> None:
    part = RedisStreamSource(redis_url, poll_ms=50).build_part("s", streams.DEFAULT_STREAM, None)
    assert part.next_batch() == []
    awake = part.next_awake()
    assert awake is not None
    ahead = (awake - datetime.now(timezone.utc)).total_seconds()
    assert 0.0 < ahead <= 0.05
    streams.append(r, [view(1)])
    [batch] = part.next_batch()
    assert batch.read == 1 and part.next_awake() is None
    part.close()


def test_resume_from_a_snapshot_id(redis_url: str, r: redis.Redis) -> None:
    ids = streams.append(r, [view(i) for i in range(12)])
    streams.append_eof(r)
    source = RedisStreamSource(redis_url, batch_size=5)
    part = source.build_part("s", streams.DEFAULT_STREAM, None)
    assert part.snapshot() == "0-0"
    first = drain(part, 1)
    state = part.snapshot()
    assert state == ids[4].decode()
    part.close()
    rest = drain(source.build_part("s", streams.DEFAULT_STREAM, state), 10)
    events, _ = records(first + rest)
    assert [e.item for e in events] == [f"i{i}" for i in range(12)]


def test_flow_recovery_reads_only_new_entries(
    redis_url: str, r: redis.Redis, tmp_path: Path
) -> None:
    init_db_dir(tmp_path, 1)
    streams.append(r, [view(i) for i in range(7)])
    streams.append_eof(r)
    first, _ = records(run_flow(RedisStreamSource(redis_url, batch_size=3), tmp_path))
    assert [e.item for e in first] == [f"i{i}" for i in range(7)]

    streams.append(r, [view(i) for i in range(7, 11)])
    streams.append_eof(r)
    second, _ = records(run_flow(RedisStreamSource(redis_url, batch_size=3), tmp_path))
    assert [e.item for e in second] == [f"i{i}" for i in range(7, 11)]


def test_a_redis_outage_is_waited_out(own_redis: RedisServer) -> None:
    c = redis.Redis.from_url(own_redis.url)
    streams.append(c, [view(0)])
    part = RedisStreamSource(own_redis.url, timeout_s=0.5).build_part(
        "s", streams.DEFAULT_STREAM, None
    )
    assert [b.read for b in part.next_batch()] == [1]
    own_redis.stop()
    assert part.next_batch() == []  # no exception, no lost position
    awake = part.next_awake()
    assert awake is not None and awake > datetime.now(timezone.utc)
    own_redis.start()  # an empty server (no persistence): the position is kept
    c = redis.Redis.from_url(own_redis.url)
    streams.append(c, [view(i) for i in range(1, 4)])
    events, _ = records(drain(part, 1))
    assert [e.item for e in events] == ["i1", "i2", "i3"]
    part.close()
