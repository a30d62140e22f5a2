"""``--speed``: a replay paced at a multiple of event time, resumable without loss or repeats."""

from __future__ import annotations

from pathlib import Path

import orjson
from bytewax.testing import TestingSink, run_main

from rtp.config import Settings
from rtp.flow.sources import FilesSource, PacedPartition
from tests.flowkit import file_flow

T0 = 1_700_000_000


def _stream(tmp_path: Path, n: int = 12, step: float = 1.0) -> Path:
    path = tmp_path / "paced.jsonl"
    lines = [
        orjson.dumps(
            {"type": "product_view", "user": f"u{i % 3}", "ts": T0 + i * step, "item": f"i{i}"}
        )
        for i in range(n)
    ]
    lines.insert(5, b"{not json")
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def _drain(part: PacedPartition) -> tuple[list[str], int, int]:
    items: list[str] = []
    read = rejected = 0
    while True:
        try:
            batches = part.next_batch()
        except StopIteration:
            return items, read, rejected
        for b in batches:
            items += [e.item for e in b.events if e.item]
            read += b.read
            rejected += len(b.rejections)


def test_events_are_released_no_earlier_than_their_scaled_event_time(tmp_path: Path) -> None:
    source = FilesSource(_stream(tmp_path, n=6, step=1.0), "jsonl", speed=100.0)
    part = source.build_part("s", FilesSource.PART, None).inner  # the gate holds a paced part
    assert isinstance(part, PacedPartition)
    first = part.next_batch()
    # the first event anchors the clock; the next is due 10 ms later (1 s of event time / 100)
    assert [e.item for b in first for e in b.events] == ["i0"]
    awake = part.next_awake()
    assert awake is not None
    assert part.anchor is not None
    due = part.anchor[1] + 1.0 / 100.0
    assert abs(awake.timestamp() - due) < 1e-3
    items, _, _ = _drain(part)
    assert items == [f"i{i}" for i in range(1, 6)]


def test_a_resume_inside_a_paced_batch_neither_repeats_nor_skips(tmp_path: Path) -> None:
    path = _stream(tmp_path, n=12, step=3_600.0)  # an hour apart: at speed 1 only one is due
    slow = FilesSource(path, "jsonl", speed=1.0, batch_lines=100).build_part("s", "files", None)
    assert isinstance(slow.inner, PacedPartition)
    got = slow.next_batch()
    released = [e.item for b in got for e in b.events]
    read = sum(b.read for b in got)
    rejected = sum(len(b.rejections) for b in got)
    assert released == ["i0"] and read == 13 and rejected == 1  # counts go with the first part
    state = slow.snapshot()
    assert state["v"] == 2 and state["inner"]["skip"] == 1  # one event of the held batch is out
    fast = FilesSource(path, "jsonl", speed=1e9, batch_lines=100)
    resumed = fast.build_part("s", "files", state)
    items, read2, rejected2 = _drain(resumed)  # type: ignore[arg-type]
    assert released + items == [f"i{i}" for i in range(12)]
    assert (read2, rejected2) == (0, 0)  # already counted before the "crash"


def test_a_paced_replay_through_the_flow_accounts_for_every_record(tmp_path: Path) -> None:
    out: list = []
    path = _stream(tmp_path, n=12, step=0.01)
    flow = file_flow(path, Settings(), batch_lines=4, sink=TestingSink(out), speed=10.0)
    run_main(flow)
    stats = {}
    for w in out:
        for name, value in w.meta:
            if name.startswith("stats:"):
                stats = orjson.loads(value)
    assert stats["read"] == 13 and stats["rejected"] == 1 and stats["events"] == 12
