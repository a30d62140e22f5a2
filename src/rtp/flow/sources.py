"""Bytewax sources: files of a public format (replay) and the live Redis stream.

Every source emits :class:`Batch` items, one per ``next_batch`` call, so Bytewax's per-item
overhead is paid per batch of thousands of records rather than per event. Each batch keeps
the count invariant ``read == len(events) + len(rejections)``.

- :class:`FilesSource` replays files in order through an :mod:`rtp.capture.adapters` format. Formats
  that are not in event-time order are parsed whole, file by file, and sorted first.
- :class:`RedisStreamSource` reads the live stream that :func:`rtp.store.streams.append` writes.
- :func:`kafka_batches` feeds rtp from Kafka through Bytewax's own Kafka connector.

All of them check event times with a :class:`~rtp.capture.events.StreamClock`: an event far outside
the stream becomes a ``timestamp_out_of_range`` rejection. Control events (``forget``,
``dnp``) carry no meaningful time and bypass the clock. Sources resume exactly after the last
emitted batch under Bytewax recovery.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from itertools import islice
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import redis
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from rtp.capture.adapters import Adapter, get_adapter
from rtp.capture.events import (
    CONTROL_TYPES,
    INVALID_FIELD,
    TIMESTAMP_OUT_OF_RANGE,
    Event,
    Rejection,
    StreamClock,
    parse_json,
)
from rtp.errors import SourceError
from rtp.store import streams

if TYPE_CHECKING:
    from bytewax.dataflow import Dataflow, Stream

__all__ = [
    "Batch",
    "FilesSnapshot",
    "FilesSource",
    "RedisStreamSource",
    "expand_paths",
    "kafka_batches",
]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
FilesSnapshot = tuple[str, int, int, float, int, str]
"""``(mode, file index, position, clock high-water mark, line number, file name)``.

``mode`` is ``"bytes"`` (``position`` is the byte offset after the last emitted batch) or
``"sorted"`` (``position`` is the index of the next record of the sorted file)."""


class Batch:
    """What a source emits: the records of one read, parsed.

    ``read`` counts records (``len(events) + len(rejections)``); ``read_at`` is the wall-clock
    time of the read and ``lag_ref`` the wall-clock time the newest record was captured (the
    Redis entry id's time for the live stream; ``read_at`` for files), so
    ``time.time() - lag_ref`` is how far the flow is behind its producers.
    """

    __slots__ = ("events", "rejections", "read", "part", "read_at", "lag_ref")

    def __init__(
        self,
        events: list[Event],
        rejections: list[Rejection],
        read: int,
        part: str,
        read_at: float,
        lag_ref: float | None = None,
    ) -> None:
        self.events = events
        self.rejections = rejections
        self.read = read
        self.part = part
        self.read_at = read_at
        self.lag_ref = read_at if lag_ref is None else lag_ref

    def __repr__(self) -> str:
        return (
            f"Batch(part={self.part!r}, read={self.read}, events={len(self.events)}, "
            f"rejections={len(self.rejections)})"
        )


def _clock_filter(
    clock: StreamClock,
    events: list[Event],
    start: int,
    rejections: list[Rejection],
    raw: bytes,
) -> None:
    """Move ``events[start:]`` that fail the clock to ``rejections`` (``raw`` is their line)."""
    check = clock.check
    i = start
    while i < len(events):
        e = events[i]
        if e.type not in CONTROL_TYPES:
            why = check(e.ts)
            if why is not None:
                del events[i]
                rejections.append(Rejection(TIMESTAMP_OUT_OF_RANGE, why, e.pos, raw))
                continue
        i += 1


# --- files ----------------------------------------------------------------------------------


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files to replay, in order: a directory stands for its files (not hidden ones, not
    subdirectories) in sorted name order. :class:`SourceError` for a missing path."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")))
        elif p.is_file():
            out.append(p)
        else:
            raise SourceError(f"input path {str(p)!r} does not exist")
    if not out:
        raise SourceError(f"no input files in {[str(p) for p in map(Path, paths)]}")
    return out


class FilesSource(FixedPartitionedSource[Batch, FilesSnapshot]):
    """Replay files of one format, in order, as :class:`Batch` items (one partition).

    :arg paths: files and/or directories (a directory's files replay in sorted name order).
    :arg fmt: an :data:`rtp.capture.adapters.ADAPTERS` name or an
        :class:`~rtp.capture.adapters.Adapter`.
    :arg batch_lines: lines per batch (records, when sorting).
    :arg sort: sort each file by the adapter's ``sort_key`` before replay; ``None`` sorts the
        formats that are not in time order. A sorted file is read and parsed whole in memory.
    :arg max_lag_s: events further behind the stream's newest time are rejected.
    :arg max_ahead_s: events further ahead of it are rejected.
    :arg on_progress: called after every batch with ``(bytes_done, bytes_total)``.
    """

    PART = "files"

    def __init__(
        self,
        paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
        fmt: str | Adapter,
        batch_lines: int = 2_000,
        sort: bool | None = None,
        max_lag_s: float = 86_400.0,
        max_ahead_s: float = 86_400.0,
        on_progress: ProgressFn | None = None,
        speed: float | None = None,
    ) -> None:
        if batch_lines < 1:
            raise SourceError(f"batch_lines must be at least 1, not {batch_lines}")
        self.paths = expand_paths(paths)
        self.adapter = get_adapter(fmt) if isinstance(fmt, str) else fmt
        self.sort = (not self.adapter.time_ordered) if sort is None else sort
        self.batch_lines = batch_lines
        self.max_lag_s = max_lag_s
        self.max_ahead_s = max_ahead_s
        self.on_progress = on_progress
        if speed is not None and speed <= 0:
            raise SourceError(f"speed must be positive, not {speed}")
        self.speed = speed

    def list_parts(self) -> list[str]:
        return [self.PART]

    def build_part(
        self, step_id: str, for_part: str, resume_state: Any
    ) -> StatefulSourcePartition[Batch, Any]:
        if self.speed is not None:
            return PacedPartition(self, resume_state, self.speed)
        return FilesPartition(self, resume_state)


class FilesPartition(StatefulSourcePartition[Batch, FilesSnapshot]):
    """The one partition of a :class:`FilesSource` (see :data:`FilesSnapshot` for its state)."""

    def __init__(self, source: FilesSource, resume: FilesSnapshot | None) -> None:
        self._paths = source.paths
        self._adapter = source.adapter
        self._parse = source.adapter.parse
        self._sort = source.sort
        self._mode = "sorted" if source.sort else "bytes"
        self._batch_lines = source.batch_lines
        self._on_progress = source.on_progress
        self._clock = StreamClock(source.max_lag_s, source.max_ahead_s)
        self._sizes = [p.stat().st_size if p.exists() else 0 for p in self._paths]
        self._index = 0
        self._position = 0  # byte offset, or record index when sorting
        self._lineno = 0
        self._done = False
        self._fh: IO[bytes] | None = None
        self._records: list[Event | Rejection] | None = None  # the sorted file
        self._raws: list[bytes] = []  # each sorted record's line (for clock rejections)
        if resume is not None:
            self._resume(resume)

    def _resume(self, state: FilesSnapshot) -> None:
        mode, index, position, high, lineno, name = state
        if mode != self._mode:
            raise SourceError(
                f"the recovery state was taken in {mode!r} mode, this run is in {self._mode!r} "
                "mode: replay with the same sort setting or start a new recovery directory"
            )
        if index >= len(self._paths) or self._paths[index].name != name:
            names = [p.name for p in self._paths]
            if name not in names:
                raise SourceError(f"the recovery state's file {name!r} is not in the input")
            index = names.index(name)
        self._index, self._position, self._lineno = index, position, lineno
        self._clock.high = high

    # -- reading --

    def next_batch(self) -> list[Batch]:
        if self._done:
            raise StopIteration
        read_at = time.time()
        events: list[Event] = []
        rejections: list[Rejection] = []
        read = 0
        budget = self._batch_lines
        while budget > 0:
            if self._sort:
                n, got = self._read_sorted(budget, events, rejections)
            else:
                n, got = self._read_lines(budget, events, rejections)
            read += got
            budget -= n
            if budget > 0:  # this file is exhausted
                if self._index + 1 >= len(self._paths):
                    # Stay on the last file, at its end: a resumed replay reads what was
                    # appended to it since.
                    self._done = True
                    break
                self._next_file()
        if self._on_progress is not None:
            self._on_progress(*self.progress())
        if read == 0:
            if self._done:
                raise StopIteration
            return []
        return [Batch(events, rejections, read, FilesSource.PART, read_at)]

    def _read_lines(
        self, budget: int, events: list[Event], rejections: list[Rejection]
    ) -> tuple[int, int]:
        """Up to ``budget`` lines of the current file: ``(lines consumed, records read)``."""
        fh = self._fh
        if fh is None:
            fh = self._fh = open(self._paths[self._index], "rb", buffering=1 << 20)  # noqa: SIM115
            fh.seek(self._position)
        name = self._paths[self._index].name
        parse = self._parse
        clock = self._clock
        check = clock.check
        offset, lineno, read = self._position, self._lineno, 0
        for raw in islice(fh, budget):
            offset += len(raw)
            lineno += 1
            line = raw.rstrip(b"\r\n")
            n = len(events)
            read += parse(line, f"{name}:{lineno}", events, rejections)
            added = len(events) - n
            if added == 1:  # the common case, inlined: one event per line
                e = events[n]
                if e.type not in CONTROL_TYPES:
                    why = check(e.ts)
                    if why is not None:
                        events.pop()
                        rejections.append(Rejection(TIMESTAMP_OUT_OF_RANGE, why, e.pos, line))
            elif added:
                _clock_filter(clock, events, n, rejections, line)
        consumed = lineno - self._lineno
        self._position, self._lineno = offset, lineno
        return consumed, read

    def _read_sorted(
        self, budget: int, events: list[Event], rejections: list[Rejection]
    ) -> tuple[int, int]:
        """Up to ``budget`` records of the current file, sorted: ``(records, records)``."""
        records = self._records
        if records is None:
            records = self._records = self._load_sorted()
        start = self._position
        end = min(start + budget, len(records))
        check = self._clock.check
        raws = self._raws
        for i in range(start, end):
            r = records[i]
            if type(r) is Event:
                if r.type not in CONTROL_TYPES:
                    why = check(r.ts)
                    if why is not None:
                        rejections.append(Rejection(TIMESTAMP_OUT_OF_RANGE, why, r.pos, raws[i]))
                        continue
                events.append(r)
            else:
                rejections.append(r)  # type: ignore[arg-type]
        self._position = end
        return end - start, end - start

    def _load_sorted(self) -> list[Event | Rejection]:
        """The current file parsed whole: its parse rejections, then its events sorted."""
        path = self._paths[self._index]
        name = path.name
        parse = self._parse
        events: list[Event] = []
        rejections: list[Rejection] = []
        lines: list[bytes] = []
        lineno = 0
        for lineno, raw in enumerate(path.read_bytes().split(b"\n"), 1):  # noqa: B007
            line = raw.rstrip(b"\r")
            n = len(events)
            parse(line, f"{name}:{lineno}", events, rejections)
            if len(events) > n:
                lines.extend([line] * (len(events) - n))
        self._lineno = lineno
        key = self._adapter.sort_key
        order = sorted(range(len(events)), key=lambda i: key(events[i]))
        self._raws = [b""] * len(rejections) + [lines[i] for i in order]
        return [*rejections, *(events[i] for i in order)]

    def _next_file(self) -> None:
        self._close_file()
        self._index += 1
        self._position = 0
        self._lineno = 0

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._records = None
        self._raws = []

    def progress(self) -> tuple[int, int]:
        """``(bytes_done, bytes_total)`` of the whole replay (never counts a file twice)."""
        total = sum(self._sizes)
        done = sum(self._sizes[: self._index])
        if self._index < len(self._sizes):
            if not self._sort:
                done += self._position
            elif self._records:
                done += self._sizes[self._index] * self._position // len(self._records)
            elif self._done:
                done += self._sizes[self._index]
        return done, max(total, done)

    def snapshot(self) -> FilesSnapshot:
        name = self._paths[self._index].name
        return (self._mode, self._index, self._position, self._clock.high, self._lineno, name)

    def close(self) -> None:
        self._close_file()


class PacedPartition(StatefulSourcePartition[Batch, tuple[FilesSnapshot, int]]):
    """A :class:`FilesPartition` replayed at ``speed`` times event time (``--speed``).

    It reads a batch ahead and releases its events as the wall clock reaches their event time
    (scaled by ``speed``), waking Bytewax at the next one's due time. Its snapshot is the file
    position before the batch it is releasing plus how many of its events went out, so a resumed
    replay neither repeats nor skips one. The batch's rejections and read count go out with its
    first part.
    """

    def __init__(self, source: FilesSource, resume: tuple[FilesSnapshot, int] | None, speed: float):
        inner_state, skip = resume if resume is not None else (None, 0)
        self.inner = FilesPartition(source, inner_state)
        self.speed = speed
        self.pre = self.inner.snapshot()
        self.skip = skip
        self.held: list[Event] = []
        self.i = 0
        self.anchor: tuple[float, float] | None = None
        self.awake: datetime | None = None

    def next_batch(self) -> list[Batch]:
        rejections: list[Rejection] = []
        read = 0
        if self.i >= len(self.held):
            self.pre = self.inner.snapshot()
            got = self.inner.next_batch()  # StopIteration at the end passes through
            if not got:
                return []
            b = got[0]
            self.held, self.i = b.events, 0
            if self.skip:  # resumed inside this batch: its first part went out before
                self.i, self.skip = min(self.skip, len(self.held)), 0
            else:
                rejections, read = b.rejections, b.read
        now = time.time()
        held, i = self.held, self.i
        if self.anchor is None and i < len(held):
            self.anchor = (held[i].ts, now)
        j = i
        if self.anchor is not None:
            t0, w0 = self.anchor
            horizon = t0 + (now - w0) * self.speed
            while j < len(held) and held[j].ts <= horizon:
                j += 1
            self.awake = (
                datetime.fromtimestamp(w0 + (held[j].ts - t0) / self.speed, timezone.utc)
                if j < len(held)
                else None
            )
        self.i = j
        if j == i and not rejections and not read:
            return []
        return [Batch(held[i:j], rejections, read, FilesSource.PART, now)]

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> tuple[FilesSnapshot, int]:
        if self.i < len(self.held):
            return (self.pre, self.i)
        return (self.inner.snapshot(), 0)

    def close(self) -> None:
        self.inner.close()


# --- the live Redis stream ------------------------------------------------------------------


def _entry_ms(entry_id: bytes) -> float:
    """Capture time (unix seconds) of a stream entry id ``<ms>-<seq>``."""
    return int(entry_id.split(b"-", 1)[0]) / 1000.0


class RedisStreamSource(FixedPartitionedSource[Batch, str]):
    """Read rtp's live event stream(s) in Redis, one partition per stream.

    Non-blocking ``XREAD COUNT batch_size`` from the last id read (the snapshot; ``"0-0"`` at
    first). An entry with :data:`rtp.store.streams.EOF_FIELD` ends the partition. A Redis outage is
    waited out (with backoff) without losing the position.
    """

    def __init__(
        self,
        url: str,
        stream: str | Sequence[str] = streams.DEFAULT_STREAM,
        batch_size: int = 1_000,
        max_lag_s: float = 86_400.0,
        max_ahead_s: float = 86_400.0,
        poll_ms: float = 2.0,
        timeout_s: float = 2.0,
    ) -> None:
        self.url = url
        self.streams = [stream] if isinstance(stream, str) else list(stream)
        if not self.streams:
            raise SourceError("RedisStreamSource needs at least one stream")
        self.batch_size = batch_size
        self.max_lag_s = max_lag_s
        self.max_ahead_s = max_ahead_s
        self.poll_ms = poll_ms
        self.timeout_s = timeout_s

    def list_parts(self) -> list[str]:
        return list(self.streams)

    def build_part(
        self, step_id: str, for_part: str, resume_state: str | None
    ) -> RedisStreamPartition:
        return RedisStreamPartition(self, for_part, resume_state)


class RedisStreamPartition(StatefulSourcePartition[Batch, str]):
    """One stream of a :class:`RedisStreamSource`; its state is the last entry id read."""

    _BACKOFF_MAX_S = 2.0

    def __init__(self, source: RedisStreamSource, stream: str, last_id: str | None) -> None:
        self._stream = stream
        self._last = last_id or "0-0"
        self._count = source.batch_size
        self._poll = timedelta(milliseconds=source.poll_ms)
        self._clock = StreamClock(source.max_lag_s, source.max_ahead_s)
        self._r = redis.Redis.from_url(
            source.url,
            socket_timeout=source.timeout_s,
            socket_connect_timeout=source.timeout_s,
        )
        self._awake: datetime | None = None
        self._backoff = 0.0
        self._done = False

    def next_batch(self) -> list[Batch]:
        if self._done:
            raise StopIteration
        try:
            reply: Any = self._r.xread({self._stream: self._last}, count=self._count)
        except (redis.ConnectionError, redis.TimeoutError) as e:
            self._backoff = min(max(self._backoff * 2, 0.05), self._BACKOFF_MAX_S)
            log.warning("redis stream %s: %s; retrying in %.2fs", self._stream, e, self._backoff)
            self._awake = datetime.now(timezone.utc) + timedelta(seconds=self._backoff)
            return []
        self._backoff = 0.0
        if not reply:
            self._awake = datetime.now(timezone.utc) + self._poll
            return []
        self._awake = None
        read_at = time.time()
        events: list[Event] = []
        rejections: list[Rejection] = []
        newest = b""
        prefix = self._stream + ":"
        entries: list[tuple[bytes, dict[bytes, bytes]]] = reply[0][1]
        for entry_id, fields in entries:
            raw = fields.get(streams.EVENT_FIELD)
            if raw is None:
                if streams.EOF_FIELD in fields:
                    self._last = entry_id.decode()
                    self._done = True
                    break
                pos = prefix + entry_id.decode()
                detail = f"the entry has no {streams.EVENT_FIELD.decode()!r} field"
                flat = b" ".join(k + b"=" + v for k, v in fields.items())
                rejections.append(Rejection(INVALID_FIELD, detail, pos, flat))
            else:
                result = parse_json(raw, prefix + entry_id.decode())
                if type(result) is Event:
                    events.append(result)
                    _clock_filter(self._clock, events, len(events) - 1, rejections, raw)
                else:
                    rejections.append(result)  # type: ignore[arg-type]
            newest = entry_id
            self._last = entry_id.decode()
        if not newest:
            raise StopIteration  # an EOF entry came first
        read = len(events) + len(rejections)
        return [Batch(events, rejections, read, self._stream, read_at, _entry_ms(newest))]

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> str:
        return self._last

    def close(self) -> None:
        self._r.close()


# --- Kafka ----------------------------------------------------------------------------------


def kafka_batches(
    flow: Dataflow,
    step_id: str,
    brokers: Sequence[str],
    topics: Sequence[str],
    *,
    batch_size: int = 1_000,
    tail: bool = True,
    max_lag_s: float = 86_400.0,
    max_ahead_s: float = 86_400.0,
    add_config: dict[str, str] | None = None,
) -> Stream[Batch]:
    """A stream of :class:`Batch` from Kafka topics of schema-v1 JSON messages.

    A thin wrapper over Bytewax's own ``bytewax.connectors.kafka.KafkaSource`` (install
    ``confluent-kafka``; it is imported only here): Kafka partitions are the source's
    partitions and Bytewax recovery keeps their offsets. Each batch of messages the connector
    emits becomes one :class:`Batch` (``pos`` is ``topic:partition:offset``; ``lag_ref`` the
    message timestamp)::

        flow = Dataflow("rtp")
        batches = kafka_batches(flow, "kafka", ["localhost:9092"], ["rtp-events"])
        # ... then the same steps as after ``op.input("in", flow, RedisStreamSource(...))``

    The stream clock is per worker and starts afresh after a restart.
    """
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSource

    source = KafkaSource(
        list(brokers), list(topics), tail=tail, batch_size=batch_size, add_config=add_config
    )
    messages = op.input(step_id, flow, source)
    clock = StreamClock(max_lag_s, max_ahead_s)

    def to_batches(msgs: list[Any]) -> list[Batch]:
        read_at = time.time()
        events: list[Event] = []
        rejections: list[Rejection] = []
        newest = 0.0
        for m in msgs:
            pos = f"{m.topic}:{m.partition}:{m.offset}"
            result = parse_json(m.value or b"", pos)
            if type(result) is Event:
                events.append(result)
                _clock_filter(clock, events, len(events) - 1, rejections, m.value or b"")
            else:
                rejections.append(result)  # type: ignore[arg-type]
            if m.timestamp is not None and m.timestamp[1] > 0:
                newest = max(newest, m.timestamp[1] / 1000.0)
        if not msgs:
            return []
        read = len(events) + len(rejections)
        return [Batch(events, rejections, read, step_id, read_at, newest or read_at)]

    return op.flat_map_batch(f"{step_id}_batches", messages, to_batches)
