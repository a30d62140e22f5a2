"""rtp.flow.sources.FilesSource through real Bytewax flows, its resume state, and kafka_batches."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, run_main

from rtp.capture.adapters import diginetica_key
from rtp.capture.events import TIMESTAMP_OUT_OF_RANGE, Event, Rejection
from rtp.errors import SourceError
from rtp.flow.sources import Batch, FilesPartition, FilesSource, GatedPartition, ModelLag
from tests.conftest import shared_sample

TAOBAO = "taobao-userbehavior/UserBehavior_timeslice_96k.csv"
DIGINETICA = "diginetica-sample/sample_train-item-views.csv"
T0 = 1_511_658_000


def run_flow(
    source: FixedPartitionedSource[Batch, object], recovery: Path | None = None
) -> list[Batch]:
    out: list[Batch] = []
    flow = Dataflow("test_sources")
    batches = op.input("in", flow, source)
    op.output("out", batches, TestingSink(out))
    run_main(flow, recovery_config=RecoveryConfig(str(recovery)) if recovery else None)
    return out


def taobao_lines(start: int, stop: int, per_s: int = 1) -> bytes:
    """Taobao lines ``start`` to ``stop``, ``per_s`` events per second of event time."""
    return b"".join(b"%d,%d,7,pv,%d\n" % (i % 5, i, T0 + i // per_s) for i in range(start, stop))


def drain(part: FilesPartition, limit: int | None = None) -> list[Batch]:
    """Batches of a partition until it ends (or ``limit`` batches)."""
    out: list[Batch] = []
    while limit is None or len(out) < limit:
        try:
            out.extend(part.next_batch())
        except StopIteration:
            break
    return out


def records(batches: Iterable[Batch]) -> tuple[list[Event], list[Rejection]]:
    events: list[Event] = []
    rejections: list[Rejection] = []
    for b in batches:
        assert b.read == len(b.events) + len(b.rejections)
        events.extend(b.events)
        rejections.extend(b.rejections)
    return events, rejections


# --- a whole replay -------------------------------------------------------------------------


def test_taobao_slice_replay_rejects_only_the_truncated_line() -> None:
    path = shared_sample(TAOBAO)
    out = run_flow(FilesSource(path, "taobao", batch_lines=5_000, tick_records=5_000))
    assert all(isinstance(b, Batch) and b.part == FilesSource.PART for b in out)
    assert max(b.read for b in out) == 5_000
    # ticks: 64, 128, 256, ... records, then 5,000 each; a batch never spans two
    ticks = [b.tick for b in out if b.read]
    assert ticks == sorted(ticks) and len(set(ticks)) == len(ticks)
    assert [b.read for b in out if b.read][:4] == [64, 128, 256, 512]
    events, rejections = records(out)
    assert sum(b.read for b in out) == 96_169
    assert len(events) == 96_168
    assert [(r.reason, r.pos, r.raw) for r in rejections] == [
        (TIMESTAMP_OUT_OF_RANGE, f"{path.name}:96169", b"301780,543546,4181361,pv,15")
    ]
    assert [e.pos for e in events[:2]] == [f"{path.name}:1", f"{path.name}:2"]
    assert all(b.lag_ref is None for b in out)  # a replay has no capture lag (not paced)


def test_directory_replays_its_files_in_name_order(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_bytes(taobao_lines(50, 80))
    (tmp_path / "a.csv").write_bytes(taobao_lines(0, 50))
    (tmp_path / ".hidden").write_bytes(b"garbage\n")
    out = run_flow(FilesSource(tmp_path, "taobao", batch_lines=7))
    events, rejections = records(out)
    assert not rejections
    assert [e.item for e in events] == [str(i) for i in range(80)]
    assert events[49].pos == "a.csv:50" and events[50].pos == "b.csv:1"


def test_crlf_lines_and_a_header(tmp_path: Path) -> None:
    path = tmp_path / "rees.csv"
    path.write_bytes(
        b"event_time,event_type,product_id,category_id,category_code,brand,price,user_id,"
        b"user_session\r\n"
        b"2019-10-01 00:00:00 UTC,view,1,2,a.b,brand,1.5,3,sess-1\r\n"
        b"2019-10-01 00:00:05 UTC,purchase,1,2,,,1.5,3,sess-1\r\n"
    )
    out = run_flow(FilesSource(path, "rees46"))
    events, rejections = records(out)
    assert sum(b.read for b in out) == 2 and not rejections
    assert [(e.type, e.session, e.category, e.pos) for e in events] == [
        ("product_view", "sess-1", "a.b", "rees.csv:2"),
        ("purchase", "sess-1", "2", "rees.csv:3"),
    ]


def test_missing_path_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        FilesSource(tmp_path / "nope.csv", "taobao")
    with pytest.raises(SourceError, match="no input files"):
        FilesSource(tmp_path, "taobao")
    (tmp_path / "a.csv").write_bytes(b"")
    with pytest.raises(SourceError, match="known formats"):
        FilesSource(tmp_path, "excel")


def test_clock_rejects_far_behind_and_ahead_but_not_control_events(tmp_path: Path) -> None:
    lines = [
        {"type": "product_view", "user": "u", "ts": T0, "item": "i1"},
        {"type": "product_view", "user": "u", "ts": T0 - 7_200, "item": "i2"},  # behind
        {"type": "product_view", "user": "u", "ts": time.time() + 7_200, "item": "i3"},  # future
        {"type": "product_view", "user": "u", "ts": T0 + 30 * 86_400, "item": "i5"},  # a gap
        {"type": "forget", "user": "u"},  # no time at all
        {"type": "dnp", "user": "u", "ts": 5},
        {"type": "product_view", "user": "u", "ts": T0 + 60, "item": "i4"},
    ]
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(d) for d in lines) + b"\n")
    events, rejections = records(
        run_flow(FilesSource(path, "jsonl", max_lag_s=3_600, max_ahead_s=3_600))
    )
    # a month-long gap in history is fine; the future (by the wall clock) is not, and an event
    # far behind the new high-water mark is too late
    assert [(e.type, e.item) for e in events] == [
        ("product_view", "i1"),
        ("product_view", "i5"),
        ("forget", None),
        ("dnp", None),
    ]
    assert [(r.reason, r.pos) for r in rejections] == [
        (TIMESTAMP_OUT_OF_RANGE, "e.jsonl:2"),
        (TIMESTAMP_OUT_OF_RANGE, "e.jsonl:3"),
        (TIMESTAMP_OUT_OF_RANGE, "e.jsonl:7"),
    ]
    assert "future" in rejections[1].detail
    assert b'"i2"' in rejections[0].raw and "behind" in rejections[0].detail
    assert "future" in rejections[1].detail


def test_progress_reaches_the_total_once(tmp_path: Path) -> None:
    for name, (a, b) in {"a.csv": (0, 30), "b.csv": (30, 45), "c.csv": (45, 100)}.items():
        (tmp_path / name).write_bytes(taobao_lines(a, b))
    total = sum(f.stat().st_size for f in tmp_path.iterdir())
    for sort in (False, True):
        calls: list[tuple[int, int]] = []
        source = FilesSource(
            tmp_path, "taobao", batch_lines=10, sort=sort, on_progress=_append_to(calls)
        )
        run_flow(source)
        assert calls[-1] == (total, total)
        dones = [d for d, _ in calls]
        assert dones == sorted(dones) and all(t == total for _, t in calls)
        assert len(calls) >= 10


def _append_to(calls: list[tuple[int, int]]) -> Callable[[int, int], None]:
    return lambda done, total: calls.append((done, total))


# --- tick spans -----------------------------------------------------------------------------


def _ticks(batches: Iterable[Batch]) -> list[tuple[int, int]]:
    """``(tick, records)`` of each tick, in order."""
    out: dict[int, int] = {}
    for b in batches:
        if b.read:
            out[b.tick] = out.get(b.tick, 0) + b.read
    return list(out.items())


def test_ticks_span_event_time_with_a_span(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(taobao_lines(0, 1_000))  # one event a second
    plain = drain(FilesSource(path, "taobao", batch_lines=1_000, tick_records=100).build_part(
        "s", FilesSource.PART, None))  # fmt: skip
    # records only: the warm-up tick of 64, then ticks of 100 records
    assert _ticks(plain) == [(0, 64)] + [(t, 100) for t in range(1, 10)] + [(10, 36)]
    spanned = drain(
        FilesSource(
            path, "taobao", batch_lines=1_000, tick_records=100, tick_span_s=350
        ).build_part("s", FilesSource.PART, None)
    )
    # after the warm-up, whole ticks of 100 records until one spans 350 s of event time
    # (from the newest event before it to its own newest): 400 records each here
    assert _ticks(spanned) == [(0, 64), (1, 400), (2, 400), (3, 136)]
    assert [b.read for b in spanned if b.read] == [64, 400, 400, 136]  # a batch per tick here
    small = drain(
        FilesSource(path, "taobao", batch_lines=150, tick_records=100, tick_span_s=350).build_part(
            "s", FilesSource.PART, None
        )
    )  # batches of at most 150 records, none across two ticks
    assert [b.read for b in small if b.read] == [64, 150, 150, 100, 150, 150, 100, 136]
    assert _ticks(small) == _ticks(spanned)
    assert records(spanned) == records(plain)
    assert [b.tick for b in spanned] == sorted(b.tick for b in spanned)


def test_a_denser_stream_gets_bigger_ticks_not_more(tmp_path: Path) -> None:
    """The point of a span: ten times the events over the same event time give ten times the
    records per tick (as the live flow's ticks of capture time do), not ten times the ticks."""
    counts = {}
    for per_s in (1, 10):
        path = tmp_path / f"d{per_s}.csv"
        path.write_bytes(taobao_lines(0, 600 * per_s, per_s))  # 600 s of event time
        src = FilesSource(path, "taobao", batch_lines=500, tick_records=50, tick_span_s=100)
        counts[per_s] = _ticks(drain(src.build_part("s", FilesSource.PART, None)))
    # no warm-up below 64 records: the first tick is one of 50 records, the last what is left
    assert counts[1] == [(0, 50)] + [(t, 100) for t in range(1, 6)] + [(6, 50)]
    assert counts[10] == [(0, 50)] + [(t, 1_000) for t in range(1, 6)] + [(6, 950)]


def test_the_batch_that_ends_a_tick_carries_the_next_watermark(tmp_path: Path) -> None:
    """A replay knows where its ticks end: the batch that ends one says so (its watermark is the
    next tick), so the steps close the tick with its last events and the gate sends no marker."""
    path = tmp_path / "w.csv"
    path.write_bytes(taobao_lines(0, 250))
    src = FilesSource(path, "taobao", batch_lines=60, tick_records=100)
    inner = drain(FilesPartition(src, None))
    # the warm-up tick of 64 records, then ticks of 100; batches of 60 never cross a tick
    assert [(b.tick, b.read, b.wm) for b in inner] == [
        (0, 60, 0), (0, 4, 1), (1, 60, 1), (1, 40, 2), (2, 60, 2), (2, 26, 2),
    ]  # fmt: skip

    allowed = [0]  # the gate: ticks up to this one may go out
    part = FilesSource(
        path,
        "taobao",
        batch_lines=60,
        tick_records=100,
        gate=lambda: lambda t, need: t <= allowed[0],
    ).build_part("s", FilesSource.PART, None)
    out: list[Batch] = []
    for _ in range(5):  # tick 1 is held: the partition waits without a marker
        out.extend(part.next_batch())
    assert [(b.tick, b.read, b.wm) for b in out] == [(0, 60, 0), (0, 4, 1)]
    allowed[0] = 5
    out += drain(part)
    # no empty batch but the final one (its watermark is past every tick)
    assert [(b.tick, b.read) for b in out if not b.read] == [(2, 0)]
    assert out[-1].wm > 2
    assert records(out) == records(inner)


def test_a_partition_whose_batches_do_not_end_ticks_gets_markers() -> None:
    """A source that cannot know where a tick ends (the live stream, Kafka) emits batches whose
    watermark is their own tick: while the gate holds the next tick, the partition sends a
    marker, so the steps can close the previous one."""

    class Inner:
        def __init__(self) -> None:
            self.left = [Batch([_event(0)], [], 1, "p", 0.0, None, 0, 0),
                         Batch([_event(1)], [], 1, "p", 0.0, None, 1, 1)]  # fmt: skip

        def snapshot(self) -> None:
            return None

        def next_batch(self) -> list[Batch]:
            if not self.left:
                raise StopIteration
            return [self.left.pop(0)]

    allowed = [0]
    part = GatedPartition(Inner(), "p", lambda t, need: t <= allowed[0])
    out: list[Batch] = []
    for _ in range(4):
        out.extend(part.next_batch())
    assert [(b.tick, b.read, b.wm) for b in out] == [(0, 1, 0), (1, 0, 1)]  # a marker
    allowed[0] = 1
    out.extend(part.next_batch())
    assert [(b.tick, b.read, b.wm) for b in out[2:]] == [(1, 1, 1)]


def _event(i: int) -> Event:
    return Event("product_view", "u1", float(T0 + i), item=str(i))


@pytest.mark.parametrize("sort", [False, True])
@pytest.mark.parametrize("taken", [1, 3, 6])
def test_resume_inside_a_spanned_tick(tmp_path: Path, taken: int, sort: bool) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(taobao_lines(0, 700))
    source = FilesSource(
        path, "taobao", batch_lines=50, tick_records=100, tick_span_s=250, sort=sort
    )
    whole = drain(source.build_part("s", FilesSource.PART, None))
    assert [n for _, n in _ticks(whole)] == [64, 300, 300, 36]  # joined ticks of 100 records
    part = source.build_part("s", FilesSource.PART, None)
    first = drain(part, taken)
    resumed = source.build_part("s", FilesSource.PART, part.snapshot())
    rest = drain(resumed)
    assert rest
    assert _ticks(first + rest) == _ticks(whole)
    assert records(first + rest) == records(whole)


def test_a_snapshot_without_ticks_resumes_on_records(tmp_path: Path) -> None:
    """A snapshot taken before tick spans existed has no tick: TickRule's is the one it had."""
    path = tmp_path / "o.csv"
    path.write_bytes(taobao_lines(0, 500))
    source = FilesSource(path, "taobao", batch_lines=100, tick_records=100)
    whole = drain(FilesPartition(source, None))
    part = FilesPartition(source, None)
    first = drain(part, 3)
    state = part.snapshot()
    del state["tick"], state["t0"]
    rest = drain(FilesPartition(source, state))
    assert _ticks(first + rest) == _ticks(whole)


# --- the model lag ----------------------------------------------------------------------------


def _needs(batches: Iterable[Batch]) -> list[tuple[int, int | None]]:
    """``(tick, need)`` of each tick, in order."""
    out: list[tuple[int, int | None]] = []
    for b in batches:
        if b.read and (not out or out[-1][0] != b.tick):
            out.append((b.tick, b.need))
    return out


@pytest.mark.parametrize(("per_s", "lags"), [(10, [1, 1, 2, 3, 3, 3, 3]), (1, [1] * 7)])
def test_a_replay_lets_the_models_lag_by_event_time(
    tmp_path: Path, per_s: int, lags: list[int]
) -> None:
    """Ticks of 100 records: 10 s of event time at 10 events/s, so two ticks skipped span 20 s,
    within the 25 s allowed (three would be 30 s: the lag stops at 3 ticks, under the most of
    4); at 1 event/s a tick is 100 s and the lag stays at the least, 1. The warm-up tick
    keeps the least lag."""
    path = tmp_path / "lag.csv"
    path.write_bytes(taobao_lines(0, 664, per_s))
    src = FilesSource(path, "taobao", batch_lines=40, tick_records=100, model_lag=(1, 4, 25.0))
    needs = _needs(drain(FilesPartition(src, None)))
    assert [t for t, _ in needs] == list(range(7))
    assert [t - need for t, need in needs if need is not None] == lags
    got = [n for _, n in needs]
    assert got == sorted(got)  # type: ignore[type-var]
    # without the allowance (the default), every tick lags by one
    plain = _needs(drain(FilesPartition(FilesSource(path, "taobao", batch_lines=40,
                                                    tick_records=100), None)))  # fmt: skip
    assert [t - need for t, need in plain] == [1] * 7  # type: ignore[operator]


def test_every_partition_and_a_resumed_one_lag_alike(tmp_path: Path) -> None:
    """Each partition reads every record, so all compute the same model tick for each tick (the
    decisions do not depend on the processes); a resume continues with the same ones."""
    path = tmp_path / "lag2.csv"
    path.write_bytes(taobao_lines(0, 964, 10))
    kw: dict[str, Any] = {"batch_lines": 30, "tick_records": 100, "model_lag": (1, 4, 25.0)}
    one = _needs(drain(FilesPartition(FilesSource(path, "taobao", **kw), None)))
    two = FilesSource(path, "taobao", partitions=2, **kw)
    for i, name in enumerate(two.list_parts()):
        assert _needs(drain(FilesPartition(two, None, i, name))) == one
    src = FilesSource(path, "taobao", **kw)
    part = FilesPartition(src, None)
    first = drain(part, 13)  # inside tick 4, after lags of 1, 1, 2, 3
    rest = drain(FilesPartition(src, part.snapshot()))
    assert _needs(first + rest) == one
    assert max(t - n for t, n in one) == 3  # type: ignore[operator]


def test_a_snapshot_without_a_lag_resumes_with_the_least_lag(tmp_path: Path) -> None:
    """A snapshot taken before model lags in event time: the resumed partition starts again
    from the least lag (it has no history of tick starts) and the lag grows back."""
    path = tmp_path / "lag3.csv"
    path.write_bytes(taobao_lines(0, 964, 10))
    src = FilesSource(path, "taobao", batch_lines=30, tick_records=100, model_lag=(1, 4, 25.0))
    part = FilesPartition(src, None)
    first = drain(part, 13)
    state = part.snapshot()
    del state["lag"]
    rest = _needs(drain(FilesPartition(src, state)))
    lags = [t - n for t, n in rest]  # type: ignore[operator]
    assert lags[0] == 1 and lags[1] == 1 and max(lags) == 3  # the history refills
    assert _needs(first)[-1][0] == rest[0][0]  # the same tick goes on


def test_the_gate_asks_for_the_batch_model_tick(tmp_path: Path) -> None:
    """The gate is asked for the models the batch uses (its ``need``), not ``tick - 1``."""
    path = tmp_path / "g.csv"
    path.write_bytes(taobao_lines(0, 400, 10))
    asked: list[tuple[int, int | None]] = []

    def gate(tick: int, need: int | None) -> bool:
        asked.append((tick, need))
        return True

    src = FilesSource(path, "taobao", batch_lines=100, tick_records=100,
                      model_lag=(1, 4, 1_000.0), gate=lambda: gate)  # fmt: skip
    drain(src.build_part("s", FilesSource.PART, None))
    assert (3, 0) in asked and all(n is not None and n <= t - 1 for t, n in asked)


def test_a_model_lag_must_make_sense(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(taobao_lines(0, 5))
    for bad in ((0, 1, 0.0), (2, 1, 0.0), (1, 4, -1.0)):
        with pytest.raises(SourceError, match="model_lag"):
            FilesSource(path, "taobao", model_lag=bad)


def test_model_lag_never_moves_back() -> None:
    lag = ModelLag(1, 3, 50.0)
    got = [lag.begin(t, t0, warm=False) for t, t0 in enumerate([0, 10, 20, 200, 210, 220])]
    assert got == [-1, -1, -1, 2, 2, 2]  # the jump of 180 s: lag 1 at tick 3, then it grows back
    state = lag.state()
    again = ModelLag(1, 3, 50.0)
    again.restore(state)
    assert again.begin(6, 230.0, warm=False) == lag.begin(6, 230.0, warm=False) == 3


def test_a_negative_span_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "n.csv"
    path.write_bytes(taobao_lines(0, 5))
    with pytest.raises(SourceError, match="tick_span_s"):
        FilesSource(path, "taobao", tick_span_s=-1)


# --- sorting --------------------------------------------------------------------------------


def test_diginetica_is_sorted_before_replay() -> None:
    path = shared_sample(DIGINETICA)
    # The sample has gaps of days between its dates: a StreamClock never moves past a gap
    # longer than max_ahead_s, so a sparse replay needs a wide (here unbounded) max_ahead_s.
    source = FilesSource(path, "diginetica", batch_lines=1_000, max_ahead_s=86_400)
    assert source.sort
    events, rejections = records(run_flow(source))
    assert not rejections and len(events) == 12_391
    keys = [diginetica_key(e) for e in events]
    assert keys == sorted(keys)
    unsorted, _ = records(
        run_flow(FilesSource(path, "diginetica", sort=False, max_lag_s=1e10, max_ahead_s=1e10))
    )
    assert [e.pos for e in unsorted] != [e.pos for e in events]
    assert sorted(e.pos for e in unsorted) == sorted(e.pos for e in events)


def test_otto_sessions_are_merged_in_time_order() -> None:
    path = shared_sample("otto-fixture/train.jsonl")
    source = FilesSource(path, "otto", batch_lines=100, max_ahead_s=86_400)
    events, rejections = records(run_flow(source))
    assert not rejections and len(events) == 862
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert len({e.session for e in events}) == 20


def test_sorted_mode_rejections_keep_their_line(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes(taobao_lines(10, 20) + b"1,2,3,pv,15\n" + taobao_lines(0, 10) + b"bad\n")
    events, rejections = records(run_flow(FilesSource(path, "taobao", batch_lines=4, sort=True)))
    assert [e.item for e in events] == [str(i) for i in range(20)]
    assert [(r.reason, r.pos, r.raw) for r in rejections] == [
        ("invalid_csv", "s.csv:22", b"bad"),
        (TIMESTAMP_OUT_OF_RANGE, "s.csv:11", b"1,2,3,pv,15"),
    ]


# --- resume ---------------------------------------------------------------------------------


def _resume_equals_uninterrupted(source: FilesSource, taken: int) -> None:
    whole = records(drain(source.build_part("s", FilesSource.PART, None)))
    part = source.build_part("s", FilesSource.PART, None)
    first = drain(part, taken)
    assert len(first) == taken
    state = part.snapshot()
    part.close()
    resumed = source.build_part("s", FilesSource.PART, state)
    rest = drain(resumed)
    assert rest, "nothing left after the snapshot: take fewer batches"
    assert records(first + rest) == whole


@pytest.mark.parametrize("taken", [1, 2, 5, 8])
def test_resume_byte_offsets_across_files(tmp_path: Path, taken: int) -> None:
    (tmp_path / "a.csv").write_bytes(taobao_lines(0, 23) + b"1,2,3,pv,15\n")
    (tmp_path / "b.csv").write_bytes(b"\r\n" + taobao_lines(23, 41).replace(b"\n", b"\r\n"))
    _resume_equals_uninterrupted(FilesSource(tmp_path, "taobao", batch_lines=5), taken)


@pytest.mark.parametrize("taken", [1, 2, 5, 8])
def test_resume_sorted_records_across_files(tmp_path: Path, taken: int) -> None:
    (tmp_path / "a.csv").write_bytes(taobao_lines(10, 23) + taobao_lines(0, 10))
    (tmp_path / "b.csv").write_bytes(taobao_lines(30, 41) + b"x\n" + taobao_lines(23, 30))
    _resume_equals_uninterrupted(FilesSource(tmp_path, "taobao", batch_lines=5, sort=True), taken)


def test_resume_on_the_real_samples() -> None:
    _resume_equals_uninterrupted(
        FilesSource(shared_sample(TAOBAO), "taobao", batch_lines=20_000), 2
    )
    _resume_equals_uninterrupted(
        FilesSource(shared_sample(DIGINETICA), "diginetica", batch_lines=3_000), 2
    )


def test_resume_keeps_the_clock(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_bytes(taobao_lines(0, 10) + b"1,2,3,pv,%d\n" % (T0 - 10_000))
    source = FilesSource(path, "taobao", batch_lines=10, max_lag_s=3_600)
    part = source.build_part("s", FilesSource.PART, None)
    drain(part, 1)
    resumed = source.build_part("s", FilesSource.PART, part.snapshot())
    events, rejections = records(drain(resumed))
    assert not events and [r.reason for r in rejections] == [TIMESTAMP_OUT_OF_RANGE]


def test_resume_state_from_another_mode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(taobao_lines(0, 10))
    part = FilesSource(path, "taobao", batch_lines=3).build_part("s", FilesSource.PART, None)
    drain(part, 1)
    with pytest.raises(SourceError, match="mode"):
        FilesSource(path, "taobao", sort=True).build_part("s", FilesSource.PART, part.snapshot())


def test_flow_recovery_resumes_an_appended_input(tmp_path: Path) -> None:
    recovery = tmp_path / "recovery"
    recovery.mkdir()
    init_db_dir(recovery, 1)  # what `python -m bytewax.recovery DIR 1` does
    data = tmp_path / "in"
    data.mkdir()
    (data / "a.csv").write_bytes(taobao_lines(0, 40))

    first = records(run_flow(FilesSource(data, "taobao", batch_lines=6), recovery))[0]
    assert [e.item for e in first] == [str(i) for i in range(40)]

    with (data / "a.csv").open("ab") as f:
        f.write(taobao_lines(40, 55))
    (data / "b.csv").write_bytes(taobao_lines(55, 60))
    second = records(run_flow(FilesSource(data, "taobao", batch_lines=6), recovery))[0]
    assert [e.item for e in second] == [str(i) for i in range(40, 60)]
    assert second[0].pos == "a.csv:41"

    third = run_flow(FilesSource(data, "taobao", batch_lines=6), recovery)
    assert sum(b.read for b in third) == 0


# --- Kafka ----------------------------------------------------------------------------------


def test_kafka_batches_against_a_broker() -> None:
    brokers = os.environ.get("RTP_KAFKA_BROKERS")
    if not brokers:
        pytest.skip("set RTP_KAFKA_BROKERS=host:port to test kafka_batches against a broker")
    kafka = pytest.importorskip("confluent_kafka", reason="kafka_batches needs confluent-kafka")
    from rtp.flow.sources import kafka_batches

    topic = f"rtp-test-{os.getpid()}"
    producer = kafka.Producer({"bootstrap.servers": brokers})
    sent = [{"type": "product_view", "user": f"u{i}", "ts": T0 + i, "item": "i"} for i in range(5)]
    for d in sent:
        producer.produce(topic, orjson.dumps(d))
    producer.produce(topic, b"{broken")
    producer.flush(10)

    out: list[Batch] = []
    flow = Dataflow("kafka")
    stream = kafka_batches(flow, "kafka", brokers.split(","), [topic], tail=False)
    op.output("out", stream, TestingSink(out))
    run_main(flow)
    events, rejections = records(out)
    assert [e.user for e in events] == [d["user"] for d in sent]
    assert [r.reason for r in rejections] == ["invalid_json"]
