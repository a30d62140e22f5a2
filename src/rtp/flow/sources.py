"""Bytewax sources: files of a public format (replay), the partitioned live Redis stream, Kafka.

Every source emits :class:`Batch` items, one per ``next_batch`` call, so Bytewax's per-item cost
is paid per batch of thousands of records. Each batch keeps ``read == len(events) +
len(rejections)``.

**Ticks.** Every batch belongs to one *tick* of its partition: the unit in which the models are
published (:mod:`rtp.engine.log`). A replay counts ticks in source records
(``Settings.tick_records``; with ``Settings.tick_span_s``, whole numbers of those that span at
least that much event time), the live stream in capture time (``Settings.tick_s``, from the
entry ids), Kafka in message time. A batch never spans two ticks, and its ``wm`` (watermark)
says that no event of an earlier tick will follow from its partition.

**The gate.** Before emitting a batch of tick ``t`` a partition checks that the models of tick
``t - lag`` (the batch's ``need``; a replay's lag follows :class:`ModelLag`) are published (every
item shard's and the global step's progress); until then it emits a marker (an empty batch
carrying the new watermark, so the steps can finish tick ``t - 1``; a replay's batch that ends
its tick carries the next tick as its watermark already, so no marker follows it) and waits
without blocking. So decisions never depend on timing, and a source can never run ahead of the
models: that is the flow's backpressure.

- :class:`FilesSource` replays files in order through a :mod:`rtp.capture.adapters` format
  (formats not in event-time order are parsed whole, file by file, and sorted first).
- :class:`RedisStreamSource` reads the live stream's partitions (``rtp.store.streams``) through a
  consumer group: a restart resumes where the group stands, entries are acknowledged once
  processed and trimmed only below that, and entries trimmed unread are counted as a gap.
- :func:`kafka_batches` feeds the flow from Kafka through Bytewax's own Kafka connector.

All of them check event times with a :class:`~rtp.capture.events.StreamClock`, and parse every
record through :func:`rtp.capture.adapters.safe_parse`: a record that breaks a parser becomes an
``internal_error`` dead letter and the flow goes on. Snapshots are versioned dictionaries.
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

from rtp.capture.adapters import Adapter, get_adapter, safe_parse
from rtp.capture.events import (
    CONTROL_TYPES,
    INVALID_FIELD,
    TIMESTAMP_OUT_OF_RANGE,
    Event,
    Rejection,
    StreamClock,
    parse_json,
)
from rtp.config import LIVE_TICK_S
from rtp.engine.messages import INF_TICK
from rtp.engine.shards import user_shard_of
from rtp.errors import SourceError
from rtp.store import streams

if TYPE_CHECKING:
    from bytewax.dataflow import Dataflow, Stream

__all__ = [
    "Batch",
    "FilesSource",
    "Gate",
    "ModelLag",
    "RedisStreamSource",
    "SNAPSHOT_VERSION",
    "expand_paths",
    "kafka_batches",
]

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 2
ProgressFn = Callable[[int, int], None]
Gate = Callable[[int, "int | None"], bool]
"""``gate(tick, need) -> bool``: may a batch of ``tick`` that uses the models of tick ``need``
(``None``: ``tick`` minus the flow's ``model_lag_ticks``) go out now (are they published)?"""


class Batch:
    """What a source emits: the records of one read, parsed, all of one tick.

    ``read`` counts records (``len(events) + len(rejections)``); ``tick`` is the batch's tick,
    ``wm`` its partition's watermark after it, ``high`` the partition's event-time high-water
    mark, ``need`` the tick of the models its decisions use (``None``: ``tick`` minus
    ``Settings.model_lag_ticks``; a replay sets it by :class:`ModelLag`); ``lag_ref`` the
    wall-clock capture time of the newest record (live only; ``None`` in a replay, which has
    no capture lag), so ``time.time() - lag_ref`` is how far the flow is behind its producers.
    """

    __slots__ = (
        "events", "rejections", "read", "part", "read_at", "lag_ref", "tick", "wm", "high", "need"
    )  # fmt: skip

    def __init__(
        self,
        events: list[Event],
        rejections: list[Rejection],
        read: int,
        part: str,
        read_at: float,
        lag_ref: float | None = None,
        tick: int = 0,
        wm: int = 0,
        high: float = 0.0,
        need: int | None = None,
    ) -> None:
        self.events = events
        self.rejections = rejections
        self.read = read
        self.part = part
        self.read_at = read_at
        self.lag_ref = lag_ref
        self.tick = tick
        self.wm = wm
        self.high = high
        self.need = need

    def __repr__(self) -> str:
        return (
            f"Batch(part={self.part!r}, tick={self.tick}, wm={self.wm}, read={self.read}, "
            f"events={len(self.events)}, rejections={len(self.rejections)})"
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
                rejections.append(Rejection(TIMESTAMP_OUT_OF_RANGE, why, e.pos, raw, user=e.user))
                continue
        i += 1


def _high(events: list[Event], high: float) -> float:
    for e in events:
        if e.ts > high and e.type not in CONTROL_TYPES:
            high = e.ts
    return high


# --- stopping ---------------------------------------------------------------------------------

_stop = [False]


def request_stop() -> None:
    """End every source of this process at its next read (a clean stop: SIGINT, SIGTERM)."""
    _stop[0] = True


def stop_requested() -> bool:
    return _stop[0]


def reset_stop() -> None:
    _stop[0] = False


# --- the gate ---------------------------------------------------------------------------------


class GatedPartition(StatefulSourcePartition[Batch, Any]):
    """Holds each batch until its tick may go out (see the module docstring); emits a marker
    when the tick advances (unless the batch that ended the tick announced it) and a final
    marker (watermark past every tick) at the end.

    The inner partition's batches must be of one tick each, in non-decreasing tick order.
    The snapshot is the inner one taken before the held batch, so a resume neither repeats nor
    skips a batch.
    """

    SETTLE_S = 5.0  # the longest an ended partition waits for its inner source to settle

    def __init__(
        self,
        inner: Any,
        part: str,
        gate: Gate | None,
        poll_s: float = 0.002,
        start_tick: int = -1,
        start_high: float = 0.0,
    ) -> None:
        self.inner = inner
        self.part = part
        self.gate = gate
        self.poll = timedelta(seconds=poll_s)
        self.held: Batch | None = None
        self.pre: Any = inner.snapshot()
        self.marked = start_tick  # the newest tick announced (watermark)
        self.announced = start_tick  # the newest watermark emitted (a batch may end its tick)
        self.admitted = start_tick  # the newest tick whose events passed the gate
        self.high = start_high
        self.ended = False
        self.awake: datetime | None = None
        self.waits = 0
        self._settle_until: float | None = None

    def next_batch(self) -> list[Batch]:
        self.awake = None
        if _stop[0] and not self.ended:
            # stopping: a held batch stays unsent (the snapshot and the live stream's consumer
            # group both keep it for the next run); the steps finish what they hold
            self.ended = True
            return [Batch([], [], 0, self.part, time.time(), None, self.marked, INF_TICK,
                          self.high)]  # fmt: skip
        if self.held is None:
            if self.ended:
                self._settle()
                return []
            self.pre = self.inner.snapshot()
            try:
                got = self.inner.next_batch()
            except StopIteration:
                self.ended = True
                return [Batch([], [], 0, self.part, time.time(), None, self.marked, INF_TICK,
                              self.high)]  # fmt: skip
            if not got:
                awake = getattr(self.inner, "next_awake", None)
                self.awake = awake() if awake is not None else None
                return []
            self.held = got[0]
        b = self.held
        gate = self.gate
        if not b.events or gate is None or b.tick <= self.admitted or gate(b.tick, b.need):
            self.held = None
            if b.wm < b.tick:
                b.wm = b.tick
            if b.high < self.high:
                b.high = self.high
            self.high = b.high
            self.marked = max(self.marked, b.tick)
            self.announced = max(self.announced, b.wm)
            if b.events:
                self.admitted = max(self.admitted, b.tick)
            return [b]
        if self.marked < b.tick:
            # the tick advances: tell the steps that everything before it is out (unless the
            # batch that ended it said so), then wait
            self.marked = b.tick
            if self.announced < b.tick:
                self.announced = b.tick
                return [Batch([], [], 0, self.part, time.time(), None, b.tick, b.tick, self.high)]
        self.waits += 1
        self.awake = datetime.now(timezone.utc) + self.poll
        return []

    def _settle(self) -> None:
        """After the end: give the inner source up to :attr:`SETTLE_S` to settle what it
        emitted (the live stream acknowledges what the steps have processed, so a clean stop
        leaves nothing to process twice), then end (StopIteration)."""
        settle = getattr(self.inner, "settle", None)
        now = time.monotonic()
        if self._settle_until is None:
            self._settle_until = now + self.SETTLE_S
        if settle is None or settle() or now >= self._settle_until:
            raise StopIteration
        self.awake = datetime.now(timezone.utc) + timedelta(seconds=0.05)

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> Any:
        inner = self.pre if self.held is not None or self.ended else self.inner.snapshot()
        return {"v": SNAPSHOT_VERSION, "inner": inner, "marked": self.marked,
                "admitted": self.admitted, "high": self.high}  # fmt: skip

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def _unwrap(resume: Any) -> tuple[Any, int, float]:
    """The inner snapshot, admitted tick and high-water mark of a gated snapshot."""
    if resume is None:
        return None, -1, 0.0
    if not isinstance(resume, dict) or resume.get("v") != SNAPSHOT_VERSION:
        raise SourceError(
            f"the recovery state was written by another rtp version (source snapshot "
            f"{resume!r:.80}): start a new recovery directory"
        )
    return resume["inner"], int(resume["admitted"]), float(resume["high"])


# --- files ------------------------------------------------------------------------------------


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


class FilesSource(FixedPartitionedSource[Batch, Any]):
    """Replay files of one format, in order, as :class:`Batch` items (one partition).

    :arg paths: files and/or directories (a directory's files replay in sorted name order).
    :arg fmt: an :data:`rtp.capture.adapters.ADAPTERS` name or an
        :class:`~rtp.capture.adapters.Adapter`.
    :arg batch_lines: lines per batch (records, when sorting).
    :arg sort: sort each file by the adapter's ``sort_key`` before replay; ``None`` sorts the
        formats that are not in time order. A sorted file is read and parsed whole in memory.
    :arg max_lag_s: events further behind the stream's newest time are rejected.
    :arg max_ahead_s: events further ahead of the wall clock are rejected.
    :arg on_progress: called after every batch with ``(bytes_done, bytes_total)``.
    :arg speed: pace the replay at ``speed`` times event time.
    :arg tick_records: the replay's tick, in source lines (records, when sorting).
    :arg tick_span_s: with it, a tick (after the warm-up ticks) runs over whole numbers of
        ``tick_records`` until it spans at least this much event time (from the newest event
        before it to its newest event), so a denser stream gets more records per tick, not more
        ticks: as the live flow's ticks of capture time do (``0``: records only).
    :arg model_lag: ``(least ticks, most ticks, span_s)``: how far the decisions of each tick may
        lag the item models (:class:`ModelLag`); ``(1, 1, 0.0)``: always one tick.
    :arg gate: makes the gate of a partition (``None``: no gate, e.g. a source read alone).
    :arg partitions: read the files as this many partitions, one per worker: each reads every
        line (the clock and the ticks see the whole stream) but emits only the events of the
        users of its shards (``user_shard_of(user, shards) % partitions``), so a user's events
        are parsed on the worker that owns the user and never cross to another process.
        Partition 0 also emits the rejections. Bytewax gives the ``i``-th partition (in sorted
        name order) to worker ``i % workers``.
    :arg shards: the user shards (for ``partitions > 1``).
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
        tick_records: int = 2_000,
        gate: Callable[[], Gate] | None = None,
        partitions: int = 1,
        shards: int = 0,
        tick_span_s: float = 0.0,
        model_lag: tuple[int, int, float] = (1, 1, 0.0),
    ) -> None:
        if batch_lines < 1:
            raise SourceError(f"batch_lines must be at least 1, not {batch_lines}")
        if tick_records < 1:
            raise SourceError(f"tick_records must be at least 1, not {tick_records}")
        if not tick_span_s >= 0:
            raise SourceError(f"tick_span_s must be 0 or more seconds, not {tick_span_s}")
        self.tick_span_s = float(tick_span_s)
        least, most, lag_s = model_lag
        if least < 1 or most < least or not lag_s >= 0:
            raise SourceError(
                f"model_lag must be (least >= 1, most >= least, seconds >= 0), not {model_lag}"
            )
        self.model_lag = (int(least), int(most), float(lag_s))
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
        self.tick_records = tick_records
        self.gate = gate
        if partitions < 1:
            raise SourceError(f"partitions must be at least 1, not {partitions}")
        self.partitions = partitions
        self.shards = shards or partitions

    def list_parts(self) -> list[str]:
        if self.partitions == 1:
            return [self.PART]
        return [f"{self.PART}{i:03d}" for i in range(self.partitions)]

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> GatedPartition:
        inner_state, marked, high = _unwrap(resume_state)
        index = 0 if for_part == self.PART else int(for_part[len(self.PART) :])
        inner: Any
        if self.speed is not None:
            inner = PacedPartition(self, inner_state, self.speed, index, for_part)
        else:
            inner = FilesPartition(self, inner_state, index, for_part)
        gate = self.gate() if self.gate is not None else None
        return GatedPartition(inner, for_part, gate, start_tick=marked, start_high=high)

    def read_all(self) -> Iterable[Batch]:
        """Every batch of the replay, without Bytewax and without the gate."""
        part = FilesPartition(self, None)
        try:
            while True:
                try:
                    yield from part.next_batch()
                except StopIteration:
                    return
        finally:
            part.close()


FIRST_TICK = 64  # a replay's first tick, in records; each next one doubles up to tick_records


class TickRule:
    """A replay's ticks in source records: 64, 128, 256, ... records, then ``size`` each (a cold
    stream gets its first models early). ``tick_of(n)`` is the tick of the ``n``-th record,
    ``end_of(tick)`` the record count where that tick ends. (With a tick span, the partition
    joins consecutive ticks of this rule after the warm-up ones: :class:`FilesPartition`.)

    >>> r = TickRule(1000)
    >>> [r.tick_of(n) for n in (0, 63, 64, 191, 192, 447, 448, 959, 960, 1959, 1960)]
    [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5]
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.ends: list[int] = []
        n, step = 0, FIRST_TICK
        while step < size:
            n += step
            self.ends.append(n)
            step *= 2
        self.warm = n  # the warm-up ticks end here; from then on every tick is `size` records

    def tick_of(self, n: int) -> int:
        if n >= self.warm:
            return len(self.ends) + (n - self.warm) // self.size
        return next(k for k, end in enumerate(self.ends) if n < end)

    def end_of(self, tick: int) -> int:
        w = len(self.ends)
        if tick < w:
            return self.ends[tick]
        return self.warm + (tick - w + 1) * self.size


class ModelLag:
    """How far a replay's decisions lag the item models, tick by tick.

    The decisions of tick ``t`` use the models of tick ``t - k``. ``k`` is at least ``least``;
    it grows, up to ``most``, while the ticks it lets the models skip (``t - k + 1`` to
    ``t - 1``) began at most ``span_s`` of event time before ``t`` began. So a dense stream,
    whose ticks last seconds, gives the workers several ticks of slack before they must meet
    (a cluster waits less), while a sparse one, whose ticks last hours, keeps the least lag;
    beyond the least lag, the ticks skipped add at most ``span_s`` of event time to the
    models' staleness. The warm-up ticks keep the least lag, and the model tick never moves
    back.

    Every partition of a replay reads every record, so each one computes the same model tick
    for every tick: the decisions do not depend on the number of processes.

    >>> lag = ModelLag(1, 4, 60.0)
    >>> [lag.begin(t, 30.0 * t, warm=False) for t in range(6)]  # ticks of 30 s
    [-1, -1, -1, 0, 1, 2]
    >>> lag = ModelLag(1, 4, 60.0)
    >>> [lag.begin(t, 3600.0 * t, warm=False) for t in range(4)]  # ticks of an hour
    [-1, 0, 1, 2]
    """

    __slots__ = ("least", "most", "span_s", "starts", "need")

    def __init__(self, least: int = 1, most: int = 1, span_s: float = 0.0) -> None:
        self.least = least
        self.most = max(least, most)
        self.span_s = span_s
        self.starts: list[float] = []  # the event time each of the last ticks began at
        self.need = -1 - least  # the model tick of the newest tick begun

    def begin(self, tick: int, t0: float, warm: bool) -> int:
        """Tick ``tick`` begins at event time ``t0``: the tick of the models it uses."""
        starts = self.starts
        starts.append(t0)
        if len(starts) > self.most:
            del starts[0]
        k = self.least
        if not warm:
            span = self.span_s
            while k < self.most and k < len(starts) and t0 - starts[-1 - k] <= span:
                k += 1
        need = tick - k
        if need < self.need:
            need = self.need
        self.need = need
        return need

    def state(self) -> tuple[list[float], int]:
        return list(self.starts), self.need

    def restore(self, state: Any) -> None:
        starts, need = state
        self.starts = [float(x) for x in starts][-self.most :]
        self.need = int(need)


class FilesPartition(StatefulSourcePartition[Batch, Any]):
    """The one partition of a :class:`FilesSource`; its snapshot is a dict (file, position,
    line, units read, clock)."""

    def __init__(
        self,
        source: FilesSource,
        resume: dict[str, Any] | None,
        index: int = 0,
        part: str = FilesSource.PART,
    ) -> None:
        self._part = part
        self._index_of = index
        self._count = source.partitions
        self._shards = source.shards
        self._paths = source.paths
        self._adapter = source.adapter
        self._parse = source.adapter.parse
        self._sort = source.sort
        self._mode = "sorted" if source.sort else "bytes"
        self._batch_lines = source.batch_lines
        self._ticks = TickRule(source.tick_records)
        self._span = source.tick_span_s
        self._tick = 0  # the tick the next record belongs to (TickRule's, joined with a span)
        self._t0 = 0.0  # the event-time high-water mark when that tick began
        self._lag = ModelLag(*source.model_lag)
        self._need = self._lag.begin(0, 0.0, warm=True)  # the tick of the models it uses
        self._on_progress = source.on_progress
        self._clock = StreamClock(source.max_lag_s, source.max_ahead_s)
        self._sizes = [p.stat().st_size if p.exists() else 0 for p in self._paths]
        self._index = 0
        self._position = 0  # byte offset, or record index when sorting
        self._lineno = 0
        self._units = 0  # lines (records, when sorting) consumed over every file: the tick clock
        self._done = False
        self._fh: IO[bytes] | None = None
        self._records: list[Event | Rejection] | None = None  # the sorted file
        self._raws: list[bytes] = []  # each sorted record's line (for clock rejections)
        if resume is not None:
            self._resume(resume)

    def _resume(self, state: dict[str, Any]) -> None:
        mode, index, position = state["mode"], state["index"], state["position"]
        if mode != self._mode:
            raise SourceError(
                f"the recovery state was taken in {mode!r} mode, this run is in {self._mode!r} "
                "mode: replay with the same sort setting or start a new recovery directory"
            )
        name = state["name"]
        if index >= len(self._paths) or self._paths[index].name != name:
            names = [p.name for p in self._paths]
            if name not in names:
                raise SourceError(f"the recovery state's file {name!r} is not in the input")
            index = names.index(name)
        self._index, self._position, self._lineno = index, position, state["lineno"]
        self._units = state["units"]
        self._clock.high = state["clock"]
        # snapshots before tick spans existed: TickRule's tick (what they were taken with)
        self._tick = state.get("tick", self._ticks.tick_of(self._units))
        self._t0 = state.get("t0", 0.0)
        if "lag" in state:
            self._lag.restore(state["lag"])
            self._need = self._lag.need
        else:  # snapshots before model lags in event time: the least lag
            self._need = self._lag.need = self._tick - self._lag.least

    # -- reading --

    def next_batch(self) -> list[Batch]:
        if self._done:
            raise StopIteration
        read_at = time.time()
        events: list[Event] = []
        rejections: list[Rejection] = []
        read = 0
        tick, need = self._tick, self._need
        left = self._batch_lines
        while left > 0 and not self._done:
            rule = self._ticks.tick_of(self._units)
            end = self._ticks.end_of(rule)
            budget = min(left, end - self._units)
            left -= budget
            while budget > 0:
                if self._sort:
                    n, got = self._read_sorted(budget, events, rejections)
                else:
                    n, got = self._read_lines(budget, events, rejections)
                read += got
                budget -= n
                self._units += n
                if budget > 0:  # this file is exhausted
                    if self._index + 1 >= len(self._paths):
                        # Stay on the last file, at its end: a resumed replay reads what was
                        # appended to it since.
                        self._done = True
                        break
                    self._next_file()
            if self._units < end:
                break
            # TickRule's tick is complete: the tick ends here, and so does the batch (a batch
            # never crosses a tick boundary); with a span, only once it spans enough event time
            if rule < len(self._ticks.ends) or self._clock.high - self._t0 >= self._span:
                self._tick += 1
                self._t0 = self._clock.high
                warm = self._tick < len(self._ticks.ends)
                self._need = self._lag.begin(self._tick, self._t0, warm)
                break
        if self._on_progress is not None:
            self._on_progress(*self.progress())
        if read == 0:
            if self._done:
                raise StopIteration
            return []
        high = _high(events, self._clock.high)
        if self._count > 1:
            events, rejections = self._mine(events, rejections)
            read = len(events) + len(rejections)
        # the watermark: the tick of the next record, so the batch that ends a tick also says
        # that the tick is over (no marker needed: the steps close it with its last events)
        return [
            Batch(events, rejections, read, self._part, read_at, None, tick, self._tick, high, need)
        ]

    def _mine(
        self, events: list[Event], rejections: list[Rejection]
    ) -> tuple[list[Event], list[Rejection]]:
        """This partition's share: its users' events (and, for partition 0, the rejections)."""
        n, count, me = self._shards, self._count, self._index_of
        mine = [e for e in events if user_shard_of(e.user, n) % count == me]
        return mine, (rejections if me == 0 else [])

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
            read += safe_parse(parse, line, f"{name}:{lineno}", events, rejections)
            added = len(events) - n
            if added == 1:  # the common case, inlined: one event per line
                e = events[n]
                if e.type not in CONTROL_TYPES:
                    why = check(e.ts)
                    if why is not None:
                        events.pop()
                        rejections.append(
                            Rejection(TIMESTAMP_OUT_OF_RANGE, why, e.pos, line, user=e.user)
                        )
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
                        rejections.append(
                            Rejection(TIMESTAMP_OUT_OF_RANGE, why, r.pos, raws[i], user=r.user)
                        )
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
            safe_parse(parse, line, f"{name}:{lineno}", events, rejections)
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

    def snapshot(self) -> dict[str, Any]:
        return {
            "mode": self._mode,
            "index": self._index,
            "position": self._position,
            "lineno": self._lineno,
            "units": self._units,
            "clock": self._clock.high,
            "tick": self._tick,
            "t0": self._t0,
            "lag": self._lag.state(),
            "name": self._paths[self._index].name,
        }

    def close(self) -> None:
        self._close_file()


class PacedPartition(StatefulSourcePartition[Batch, Any]):
    """A :class:`FilesPartition` replayed at ``speed`` times event time (``--speed``).

    It reads a batch ahead and releases its events as the wall clock reaches their event time
    (scaled by ``speed``), waking Bytewax at the next one's due time. Its snapshot is the file
    position before the batch it is releasing plus how many of its events went out, so a resumed
    replay neither repeats nor skips one. The batch's rejections and read count go out with its
    first part. A paced replay has a capture lag (``lag_ref`` is the release time), so it
    rehearses the live path's degraded mode.
    """

    def __init__(
        self,
        source: FilesSource,
        resume: dict[str, Any] | None,
        speed: float,
        index: int = 0,
        part: str = FilesSource.PART,
    ):
        inner_state, skip = (resume["inner"], resume["skip"]) if resume is not None else (None, 0)
        self.part = part
        self.inner = FilesPartition(source, inner_state, index, part)
        self.speed = speed
        self.pre = self.inner.snapshot()
        self.skip = skip
        self.held: list[Event] = []
        self.tick = 0
        self.need: int | None = None
        self.high = 0.0
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
            self.held, self.i, self.tick, self.high = b.events, 0, b.tick, b.high
            self.need = b.need
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
        out = held[i:j]
        high = _high(out, 0.0) or self.high
        return [Batch(out, rejections, read, self.part, now, now, self.tick, self.tick,
                      high, self.need)]  # fmt: skip

    def next_awake(self) -> datetime | None:
        return self.awake

    def snapshot(self) -> dict[str, Any]:
        if self.i < len(self.held):
            return {"inner": self.pre, "skip": self.i}
        return {"inner": self.inner.snapshot(), "skip": 0}

    def close(self) -> None:
        self.inner.close()


# --- the live Redis stream --------------------------------------------------------------------


def _entry_ms(entry_id: bytes) -> int:
    """Capture time (unix milliseconds) of a stream entry id ``<ms>-<seq>``."""
    return int(entry_id.split(b"-", 1)[0])


class RedisStreamSource(FixedPartitionedSource[Batch, Any]):
    """Read the live stream's partitions (``rtp.store.streams``), one source partition each,
    through the consumer group ``group``.

    :arg url: the Redis URL.
    :arg stream: a stream name (its partitions are read from ``{stream}:config``), or a list of
        partition stream names.
    :arg tick_s: the tick in capture time (entry ids).
    :arg lateness_s: how long an idle partition waits before declaring a tick over.
    :arg gate: makes the gate of a partition (``None``: no gate).
    :arg ack: acknowledge and trim what the flow has processed (``"progress"``: once the models
        of its tick are published; ``"snapshot"``: once a Bytewax snapshot holds it, under
        recovery; ``None``: never, for a source read on its own).
    :arg clock: the wall clock (tests inject one).
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
        *,
        group: str = "rtp",
        tick_s: float = LIVE_TICK_S,
        lateness_s: float = 0.05,
        gate: Callable[[], Gate] | None = None,
        ack: str | None = "progress",
        progress: Callable[[], Callable[[], int]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        if isinstance(stream, str):
            r = redis.Redis.from_url(url, socket_timeout=timeout_s)
            try:
                self.streams = streams.read_config(r, stream, cache=False).names()
            finally:
                r.close()
        else:
            self.streams = list(stream)
        if not self.streams:
            raise SourceError("RedisStreamSource needs at least one stream")
        self.batch_size = batch_size
        self.max_lag_s = max_lag_s
        self.max_ahead_s = max_ahead_s
        self.poll_ms = poll_ms
        self.timeout_s = timeout_s
        self.group = group
        self.tick_ms = max(1, int(tick_s * 1000))
        self.lateness_ms = int(lateness_s * 1000)
        self.gate = gate
        self.ack = ack
        self.progress = progress
        self.clock = clock

    def list_parts(self) -> list[str]:
        return list(self.streams)

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> GatedPartition:
        inner_state, marked, high = _unwrap(resume_state)
        inner = RedisStreamPartition(self, for_part, inner_state)
        gate = self.gate() if self.gate is not None else None
        return GatedPartition(inner, for_part, gate, poll_s=self.poll_ms / 1000.0,
                              start_tick=marked, start_high=high)  # fmt: skip


class RedisStreamPartition(StatefulSourcePartition[Batch, Any]):
    """One partition stream of a :class:`RedisStreamSource`.

    Reads through the consumer group (its own delivered-but-unacknowledged entries first, after
    a restart), tags each batch with the tick of its newest entry, advances an idle partition's
    tick with the wall clock, and acknowledges and trims what was processed. Its snapshot is the
    last entry id emitted. A Redis outage is waited out with backoff (log lines at most every
    few seconds) without losing the position; an EOF entry (tests) ends the partition.
    """

    _BACKOFF_MAX_S = 2.0
    _ACK_EVERY_S = 0.05

    def __init__(self, source: RedisStreamSource, stream: str, state: Any) -> None:
        self._source = source
        self._stream = stream
        self._group = source.group
        self._consumer = f"{source.group}-{stream}"
        self._count = source.batch_size
        self._poll = timedelta(milliseconds=source.poll_ms)
        self._tick_ms = source.tick_ms
        self._lateness_ms = source.lateness_ms
        self._clock = StreamClock(source.max_lag_s, source.max_ahead_s, clock=source.clock)
        self._now = source.clock
        self._r = redis.Redis.from_url(
            source.url,
            socket_timeout=source.timeout_s,
            socket_connect_timeout=source.timeout_s,
        )
        self._last = "0-0"
        self._tick = -1
        self._high = 0.0
        if state is not None:
            self._last = state["last"]
            self._tick = state["tick"]
            self._high = state["high"]
            self._clock.high = state["clock"]
        self._pending_first = True  # re-read our own delivered-but-unacked entries first
        self._pending_cursor = "0"
        self._awake: datetime | None = None
        self._backoff = 0.0
        self._last_warning = 0.0
        self._done = False
        self._ready = False
        self._unacked: list[tuple[int, bytes]] = []  # (tick, entry id) emitted, not acknowledged
        self._snapshots: list[str] = []
        self._progress = source.progress() if source.progress is not None else None
        self._last_ack = 0.0
        self._last_gap_check = 0.0
        self.gaps = 0

    # -- Redis with backoff --

    def _outage(self, e: Exception) -> list[Batch]:
        self._backoff = min(max(self._backoff * 2, 0.05), self._BACKOFF_MAX_S)
        now = time.monotonic()
        if now - self._last_warning > 5.0:
            self._last_warning = now
            log.warning("live stream %s: Redis unavailable (%s); waiting, position kept at %s",
                        self._stream, e, self._last)  # fmt: skip
        self._awake = datetime.now(timezone.utc) + timedelta(seconds=self._backoff)
        self._ready = False
        return []

    def _setup(self) -> None:
        try:
            self._r.xgroup_create(self._stream, self._group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        if self._last != "0-0":
            # resumed from a snapshot: read on from there, whatever the group delivered since
            self._r.xgroup_setid(self._stream, self._group, self._last)
            self._pending_first = False
        self._ready = True

    # -- reading --

    def next_batch(self) -> list[Batch]:
        if self._done:
            raise StopIteration
        try:
            if not self._ready:
                self._setup()
            self._acknowledge()
            entries = self._read()
        except (redis.ConnectionError, redis.TimeoutError) as e:
            return self._outage(e)
        if self._backoff:
            log.warning("live stream %s: Redis is back; reading on from %s", self._stream,
                        self._last)  # fmt: skip
            self._backoff = 0.0
        if not entries:
            return self._idle()
        return self._emit(entries)

    def _read(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        now = time.monotonic()
        if now - self._last_gap_check > 5.0:
            self._last_gap_check = now
            self._check_gap()
        entries: list[Any] = []
        if self._pending_first:
            # after a restart: what the group delivered to us before and we never acknowledged
            reply: Any = self._r.xreadgroup(
                self._group, self._consumer, {self._stream: self._pending_cursor},
                count=self._count,
            )  # fmt: skip
            got = reply[0][1] if reply else []
            if got:
                self._pending_cursor = got[-1][0].decode()
                entries = [(i, f) for i, f in got if f]  # deleted entries come back empty
            if not got:
                self._pending_first = False
        if not entries and not self._pending_first:
            reply = self._r.xreadgroup(
                self._group, self._consumer, {self._stream: ">"}, count=self._count
            )
            entries = reply[0][1] if reply else []
        return entries

    def _idle(self) -> list[Batch]:
        """No entry: let the tick advance with the wall clock (a quiet partition must not hold
        the others back)."""
        tick = (int(self._now() * 1000) - self._lateness_ms) // self._tick_ms
        self._awake = datetime.now(timezone.utc) + self._poll
        if tick > self._tick:
            self._tick = tick
            return [Batch([], [], 0, self._stream, time.time(), None, tick, tick, self._high)]
        return []

    def _emit(self, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Batch]:
        self._awake = None
        events: list[Event] = []
        rejections: list[Rejection] = []
        prefix = self._stream + ":"
        last = b""
        for entry_id, fields in entries:
            raw = fields.get(streams.EVENT_FIELD)
            if raw is None:
                if streams.EOF_FIELD in fields:
                    self._done = True
                    last = entry_id  # consumed: a resumed run reads on after it
                    break
                pos = prefix + entry_id.decode()
                detail = f"the entry has no {streams.EVENT_FIELD.decode()!r} field"
                flat = b" ".join(k + b"=" + v for k, v in fields.items())
                rejections.append(Rejection(INVALID_FIELD, detail, pos, flat))
            else:
                pos = prefix + entry_id.decode()
                got = _safe_json(raw, pos)
                if type(got) is Event:
                    events.append(got)
                    _clock_filter(self._clock, events, len(events) - 1, rejections, raw)
                else:
                    rejections.append(got)  # type: ignore[arg-type]
            last = entry_id
        if not last:
            return []
        # the batch's tick is its newest entry's (never earlier than the partition's)
        tick = max(_entry_ms(last) // self._tick_ms, self._tick)
        self._tick = tick
        self._last = last.decode()
        ids = [i for i, _ in entries if _id_tuple(i) <= _id_tuple(last)]
        self._unacked.extend((tick, i) for i in ids)
        read = len(events) + len(rejections)
        self._high = _high(events, self._high)
        if not read:
            return []
        lag_ref = _entry_ms(last) / 1000.0
        return [Batch(events, rejections, read, self._stream, time.time(), lag_ref, tick, tick,
                      self._high)]  # fmt: skip

    # -- acknowledging and trimming --

    def settle(self) -> bool:
        """Acknowledge what is settled now (the end of a run); whether nothing emitted is left
        unacknowledged. Only acknowledging by progress settles at the end (by snapshots, no
        further snapshot comes); Redis away: nothing more can be done (they are redelivered)."""
        if self._source.ack != "progress" or self._progress is None:
            return True
        self._last_ack = 0.0
        try:
            self._acknowledge()
        except (redis.ConnectionError, redis.TimeoutError):
            return True
        return not self._unacked

    def _acknowledge(self) -> None:
        """Acknowledge (and trim below) the entries whose processing is settled: their tick's
        models are published (every step has processed them), or, under recovery, a snapshot
        that holds them has been followed by another."""
        if not self._unacked:
            return
        now = time.monotonic()
        if now - self._last_ack < self._ACK_EVERY_S:
            return
        self._last_ack = now
        mode = self._source.ack
        n = 0
        if mode == "progress" and self._progress is not None:
            done = self._progress()
            while n < len(self._unacked) and self._unacked[n][0] <= done:
                n += 1
        elif mode == "snapshot" and len(self._snapshots) >= 2:
            safe = _id_tuple(self._snapshots[-2])
            del self._snapshots[:-1]
            while n < len(self._unacked) and _id_tuple(self._unacked[n][1]) <= safe:
                n += 1
        if not n:
            return
        ids = [i for _, i in self._unacked[:n]]
        pipe = self._r.pipeline(transaction=False)
        pipe.xack(self._stream, self._group, *ids)
        pipe.xtrim(self._stream, minid=_next_id(ids[-1]), approximate=False)
        pipe.execute()
        del self._unacked[:n]

    def _check_gap(self) -> None:
        """Entries trimmed before this group read them (a producer's MAXLEN, a manual trim) are
        a gap: counted, logged, never silent; reading goes on from the oldest entry left.

        Redis counts every entry ever added to the stream and every entry delivered to the
        group; what was added, not delivered and is no longer in the stream was lost."""
        try:
            groups: Any = self._r.xinfo_groups(self._stream)
            info: Any = self._r.xinfo_stream(self._stream)
        except redis.ResponseError:
            return
        mine = next((g for g in groups if _text(g.get("name")) == self._group), None)
        if mine is None:
            return
        added = info.get("entries-added")
        entries_read = mine.get("entries-read")
        first = info.get("first-entry")
        delivered = mine.get("last-delivered-id") or b"0-0"
        if added is None or entries_read is None or not first:
            return
        if _id_tuple(first[0]) <= _id_tuple(_next_id(delivered)):
            return  # every entry the group has not read yet is still in the stream
        # every entry left is undelivered: what was added and never delivered, minus those
        length = int(info.get("length") or 0)
        missed = int(added) - int(entries_read) - length
        if missed <= 0:
            return
        self.gaps += 1
        log.error("live stream %s: %d events were trimmed before the flow read them (after %s): "
                  "recorded as a gap in %s:gaps", self._stream, missed, _text(delivered),
                  self._stream)  # fmt: skip
        pipe = self._r.pipeline(transaction=False)
        pipe.hincrby(f"{self._stream}:gaps", "gaps", 1)
        pipe.hincrby(f"{self._stream}:gaps", "events", missed)
        # on from the oldest entry left, with the group's counters made consistent again
        pipe.xgroup_setid(
            self._stream, self._group, _prev_id(first[0]), entries_read=int(added) - length
        )
        pipe.execute()

    def next_awake(self) -> datetime | None:
        return self._awake

    def snapshot(self) -> dict[str, Any]:
        self._snapshots.append(self._last)
        return {"last": self._last, "tick": self._tick, "high": self._high,
                "clock": self._clock.high}  # fmt: skip

    def close(self) -> None:
        self._r.close()


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _id_tuple(entry_id: bytes | str) -> tuple[int, int]:
    s = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = s.partition("-")
    return (int(ms), int(seq or 0))


def _next_id(entry_id: bytes | str) -> str:
    ms, seq = _id_tuple(entry_id)
    return f"{ms}-{seq + 1}"


def _prev_id(entry_id: bytes | str) -> str:
    ms, seq = _id_tuple(entry_id)
    return f"{ms}-{seq - 1}" if seq else f"{ms - 1}-{(1 << 64) - 1}"


def _safe_json(raw: bytes, pos: str) -> Event | Rejection:
    try:
        return parse_json(raw, pos)
    except Exception as e:  # a bug in the parser: a dead letter, not a dead flow
        from rtp.capture.events import internal_error

        return internal_error(e, pos, raw)


# --- Kafka ------------------------------------------------------------------------------------


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
    tick_s: float = LIVE_TICK_S,
    gate: Callable[[], Gate] | None = None,
    add_config: dict[str, str] | None = None,
) -> Stream[Batch]:
    """A stream of :class:`Batch` from Kafka topics of schema-v1 JSON messages.

    Bytewax's own connector (``bytewax.connectors.kafka.KafkaSource``; install
    ``bytewax[kafka]``, imported only here) reads the topics partition by partition, each Kafka
    partition a source partition whose offsets Bytewax recovery keeps. Each partition is gated
    like the other sources and ticks by message time. ``pos`` is ``topic:partition:offset``.
    """
    import bytewax.operators as op
    from bytewax.connectors.kafka import KafkaSource

    class _GatedKafka(KafkaSource):
        def build_part(  # type: ignore[override]
            self, step_id: str, for_part: str, resume_state: Any
        ) -> GatedPartition:
            inner_state, marked, high = _unwrap(resume_state)
            inner = _KafkaPartition(
                super().build_part(step_id, for_part, inner_state),
                for_part,
                StreamClock(max_lag_s, max_ahead_s),
                max(1, int(tick_s * 1000)),
            )
            return GatedPartition(inner, for_part, gate() if gate is not None else None,
                                  start_tick=marked, start_high=high)  # fmt: skip

    source = _GatedKafka(
        list(brokers), list(topics), tail=tail, batch_size=batch_size, add_config=add_config
    )
    return op.input(step_id, flow, source)  # type: ignore[arg-type]


class _KafkaPartition:
    """Bytewax's Kafka partition, its messages turned into :class:`Batch` items (a batch's tick
    is its newest message's, never earlier than the partition's)."""

    def __init__(self, inner: Any, part: str, clock: StreamClock, tick_ms: int) -> None:
        self.inner = inner
        self.part = part
        self.clock = clock
        self.tick_ms = tick_ms
        self.tick = -1
        self.high = 0.0

    def next_batch(self) -> list[Batch]:
        msgs = [m for m in self.inner.next_batch() if not hasattr(m, "err")]
        if not msgs:
            # a quiet partition lets its tick advance with the wall clock (never holds back)
            tick = (int(time.time() * 1000) - 50) // self.tick_ms
            if tick > self.tick:
                self.tick = tick
                return [Batch([], [], 0, self.part, time.time(), None, tick, tick, self.high)]
            return []
        events: list[Event] = []
        rejections: list[Rejection] = []
        newest = 0
        for m in msgs:
            ms = m.timestamp[1] if m.timestamp is not None and m.timestamp[1] > 0 else 0
            newest = max(newest, ms)
            got = _safe_json(m.value or b"", f"{m.topic}:{m.partition}:{m.offset}")
            if type(got) is Event:
                events.append(got)
                _clock_filter(self.clock, events, len(events) - 1, rejections, m.value or b"")
            else:
                rejections.append(got)  # type: ignore[arg-type]
        self.tick = max(newest // self.tick_ms, self.tick)
        self.high = _high(events, self.high)
        read = len(events) + len(rejections)
        lag_ref = newest / 1000.0 if newest else None
        return [Batch(events, rejections, read, self.part, time.time(), lag_ref, self.tick,
                      self.tick, self.high)]  # fmt: skip

    def next_awake(self) -> datetime | None:
        awake = getattr(self.inner, "next_awake", None)
        return awake() if awake is not None else None

    def snapshot(self) -> Any:
        return self.inner.snapshot()

    def close(self) -> None:
        self.inner.close()
