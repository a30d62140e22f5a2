"""The one dataflow: replay and live differ only in the source.

::

    source ─► Batch ─┬─► rejections ─────────────────────────────────────► dead letters
                     └─► enrich, split by user shard (every shard gets every batch's watermark)
                            │
                            ▼
                   users (keyed by user shard) ──► Writes: d:{user}, p:{user} ──────► Redis
                     │ item records      │ ranking examples, bandit rewards, sessions
                     ▼                   ▼
                   items (item shard)   global (one key) ──► Writes: n:{item}, items, meta
                     │                   │  └─ finished sessions ─► edge (one key) ─► meta:edge
                     └──► model log (tick parts) ◄┘ ──► read back by every user shard's view;
                                                        the sources wait for it (the gate)

Items crossing Bytewax steps are whole batches (a source batch, one shard's part of it, one
shard's signals), never single events: Bytewax's per-item cost is paid per batch.

Keys: user shard ``j`` and item shard ``j`` use the key Bytewax routes to worker ``j``
(:mod:`rtp.flow.routing`), one of each per worker; the global step is one key (worker 0's), the
edge step another (the last worker's), outside the model log: nothing waits for it. Nothing decided
depends on the number of workers or shards, or on how Bytewax batches (see
``docs/architecture.md``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import Sink

from rtp.config import Settings, pin_mode
from rtp.engine.edges import EdgeLearner
from rtp.engine.hooks import REALTIME, Hook
from rtp.engine.items import ItemShard
from rtp.engine.log import GLOBAL, ModelLog, item_writer
from rtp.engine.merge import GlobalMerge
from rtp.engine.messages import EdgeSignals, GlobalSignals, ItemSignals, UserBatch, split_edge
from rtp.engine.shards import user_shard_of
from rtp.engine.users import Output, UserShard
from rtp.engine.writes import Writes
from rtp.errors import ConfigError
from rtp.flow.routing import shard_keys

log = logging.getLogger(__name__)

STATE_VERSION = 3
"""The version of every step's recovery snapshot (``{"v": 3, "kind": ..., "state": ...}``;
3: the edge model moved from the global step's state to the edge step's)."""


def tune_gc() -> None:
    """The engine makes many small objects that live for a whole session; CPython's default
    thresholds run full collections far too often for that (measured in BENCHMARKS.md)."""
    import gc

    gc.set_threshold(100_000, 50, 100)


def tune_switch_interval(settings: Settings) -> None:
    """In a cluster process whose one worker thread runs the whole flow: let the worker keep
    the GIL ``settings.switch_interval_ms`` before Python makes it hand over. The only other
    thread that wants the GIL is Bytewax's main thread, which checks for signals every
    millisecond; it gets the GIL while the worker waits on Redis, and a signal is seen within
    the interval. Not with several worker threads in a process (they share the GIL: a long
    interval would let one hold the others up at each tick)."""
    if settings.switch_interval_ms > 0:
        sys.setswitchinterval(settings.switch_interval_ms / 1000.0)


def pin_to_cpu(
    settings: Settings,
    process_id: int,
    processes: int,
    started_by_rtp: bool,
    live: bool = False,
) -> int | None:
    """Pin this process to one CPU as ``settings.pin_cpu`` says: process ``process_id`` of
    ``processes`` to that place among the CPUs it may use (modulo their count). ``"auto"`` pins
    only the processes rtp started itself (``started_by_rtp``) for a replay (not ``live``), and
    only when each can have a CPU of its own: a replay keeps its CPUs busy, while a live flow
    shares its machine with Redis, the producers and the HTTP doors, and a worker pinned to a
    core they are using cannot move to the other one (on two processes at 2,000
    events/s the decision p50 was 213-469 ms pinned, 18-29 ms unpinned, BENCHMARKS.md §4.7).
    Returns the CPU, or ``None`` (not pinned). Linux pins one thread at a time:
    this pins the calling thread and the threads already running (libraries start some at
    import), and the threads started later inherit it, so call this before Bytewax starts its
    own."""
    mode = pin_mode(settings.pin_cpu)  # checked when the settings were made
    if mode == "off" or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "auto" and (live or not started_by_rtp or processes > len(cpus)):
        return None
    cpu = cpus[process_id % len(cpus)]
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]  # the calling thread among them
    except OSError:
        tids = [0]  # the calling thread alone
    for tid in tids:
        with contextlib.suppress(OSError):  # a thread that has ended since
            os.sched_setaffinity(tid, {cpu})
    return cpu


_IDLE_MAIN: int | None = None
"""The native id of the main thread :func:`demote_main_thread` is to demote, once."""


def idle_main_thread_later(settings: Settings, pinned: bool) -> bool:
    """Called in the main thread of a cluster process before Bytewax starts its threads: have
    the first worker-side builder demote this thread (:func:`demote_main_thread`), as
    ``settings.main_thread_idle`` says (``"auto"``: if the process is ``pinned`` to a CPU).
    Not now: the threads Bytewax starts would inherit the idle policy, and an unprivileged
    thread cannot leave it. Whether it was asked."""
    global _IDLE_MAIN
    mode = pin_mode(settings.main_thread_idle)  # checked when the settings were made
    if (
        mode == "off"
        or (mode == "auto" and not pinned)
        or not hasattr(os, "SCHED_IDLE")
        or threading.current_thread() is not threading.main_thread()
    ):
        return False
    _IDLE_MAIN = threading.get_native_id()
    return True


def demote_main_thread() -> bool:
    """In a worker thread: move the main thread :func:`idle_main_thread_later` named to the
    idle scheduling policy (once; whether it was moved now).

    Bytewax's main thread in a cluster process waits for its workers in a loop that sleeps a
    millisecond and takes the GIL to check for signals. On the worker's core every wake-up
    preempts the worker: ~12,000 voluntary switches of the main thread and 13,000-14,000
    preemptions of the worker ~10 s into a 2-process Taobao replay, against 2,100-2,600 and
    3,300-4,000 with the main thread idle (BENCHMARKS.md §4.5). An idle thread still runs
    when the core has nothing else to run (the worker waiting on Redis, or the end of the
    run), so signals are still seen."""
    global _IDLE_MAIN
    tid = _IDLE_MAIN
    if tid is None or threading.get_native_id() == tid:
        return False
    _IDLE_MAIN = None
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
    except OSError as e:  # the thread has ended, or the platform refuses: leave it as it is
        log.debug("main thread %d not moved to idle priority: %s", tid, e)
        return False
    return True


def process_id_from_argv(argv: Sequence[str] | None = None) -> int | None:
    """This process's place in a cluster started by ``python -m bytewax.run -i K`` (or by
    ``bytewax.testing -p N``, which tells its processes in ``__BYTEWAX_PROC_ID``); ``None``
    when the process was not started by either."""
    return _cluster_argv(argv)[2]


def tune_cluster_process(
    settings: Settings,
    process_id: int,
    processes: int,
    started_by_rtp: bool,
    live: bool = False,
) -> None:
    """What a process of a cluster of one-worker processes sets before Bytewax starts its
    threads: the switch interval (:func:`tune_switch_interval`), its CPU (:func:`pin_to_cpu`)
    and, once the worker runs, the main thread's idle priority (:func:`idle_main_thread_later`).
    """
    tune_switch_interval(settings)
    cpu = pin_to_cpu(settings, process_id, processes, started_by_rtp, live)
    idle_main_thread_later(settings, pinned=cpu is not None)


def one_worker_per_process(argv: Sequence[str] | None = None) -> bool:
    """Whether ``python -m bytewax.run``/``bytewax.testing`` were told to run several processes
    (``-a`` with two or more addresses, or ``-p`` two or more) of one worker thread each."""
    per_process, processes, _ = _cluster_argv(argv)
    return per_process == 1 and processes > 1


def workers_from_argv(argv: Sequence[str] | None = None) -> int:
    """The cluster's worker count as ``python -m bytewax.run``/``bytewax.testing`` were told
    (``-w``, ``-p``, ``-a``), 1 when none is given."""
    per_process, processes, _ = _cluster_argv(argv)
    return max(1, per_process * processes)


def _cluster_argv(argv: Sequence[str] | None) -> tuple[int, int, int | None]:
    """``(workers per process, processes, this process's id)`` from a Bytewax runner's command
    line (``-i``, or ``__BYTEWAX_PROC_ID`` from ``bytewax.testing``); ``(1, 1, None)`` when the
    process was not started by one."""
    args = list(sys.argv if argv is None else argv)
    per_process, processes, process_id = 1, 1, None
    if not args or "bytewax" not in args[0]:
        return per_process, processes, process_id  # not started by bytewax.run / .testing
    env = os.environ.get("__BYTEWAX_PROC_ID", "")
    if env.isdigit():
        process_id = int(env)
    for i, a in enumerate(args[:-1]):
        nxt = args[i + 1]
        if a in ("-i", "--process-id") and nxt.isdigit():
            process_id = int(nxt)
        elif a in ("-w", "--workers-per-process") and nxt.isdigit():
            per_process = int(nxt)
        elif a in ("-p", "--processes") and nxt.isdigit():
            processes = int(nxt)
        elif a in ("-a", "--addresses"):
            processes = len([x for x in nxt.split(";") if x])
    return per_process, processes, process_id


class Layout:
    """How many user and item shards there are, and their Bytewax keys; and those of the
    global step (on the first worker) and the edge step (on the last one, so that a cluster
    does not run both on one worker)."""

    def __init__(self, workers: int, shards: int = 0) -> None:
        if workers < 1:
            raise ConfigError(f"a flow needs at least one worker, not {workers}")
        self.workers = workers
        self.shards = shards or workers
        keys = shard_keys(workers)
        if self.shards == workers:
            self.keys = list(keys)
            self.global_key, self.edge_key = keys[0], keys[-1]
        else:
            self.keys = [f"s{j}" for j in range(self.shards)]
            self.global_key, self.edge_key = GLOBAL, "e"
        self.writers = [item_writer(i) for i in range(self.shards)] + [GLOBAL]

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        return cls(settings.workers or workers_from_argv(), settings.shards)


def gate_factory(
    log_factory: Callable[[], ModelLog], writers: list[str], lag: int
) -> Callable[[], Callable[[int, int | None], bool]]:
    """Makes a source partition's gate: a batch of tick ``t`` that uses the models of tick
    ``need`` (``None``: ``t - lag``) may go out once every writer of the model log has
    published that tick."""

    def make() -> Callable[[int, int | None], bool]:
        mlog = log_factory()
        known = [-1]

        def gate(tick: int, need: int | None = None) -> bool:
            if need is None:
                need = tick - lag
            if known[0] >= need:
                return True
            known[0] = mlog.progress(writers)
            return known[0] >= need

        return gate

    return make


class _Users(StatefulBatchLogic[UserBatch, Output, Any]):
    def __init__(self, shard: UserShard, mlog: ModelLog) -> None:
        self.shard = shard
        self.mlog = mlog

    def on_batch(self, values: list[UserBatch]) -> tuple[list[Output], bool]:
        out: list[Output] = []
        process = self.shard.process
        for b in values:  # one source batch at a time: batching never changes a decision
            out.extend(process(b, self.mlog))
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Output], bool]:
        return self.shard.finish(self.mlog), StatefulBatchLogic.RETAIN

    def snapshot(self) -> Any:
        self.shard.snapshot_taken()
        return {"v": STATE_VERSION, "kind": "users", "state": self.shard}


class _Items(StatefulBatchLogic[ItemSignals, Writes, Any]):
    def __init__(self, shard: ItemShard, mlog: ModelLog) -> None:
        self.shard = shard
        self.mlog = mlog

    def on_batch(self, values: list[ItemSignals]) -> tuple[list[Writes], bool]:
        out = []
        for msg in values:
            w = self.shard.on_signals(msg, self.mlog)
            if w is not None and len(w):
                out.append(w)
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Writes], bool]:
        w = self.shard.finish(self.mlog)
        return ([w] if w is not None and len(w) else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> Any:
        return {"v": STATE_VERSION, "kind": "items", "state": self.shard}


class _Global(StatefulBatchLogic[GlobalSignals, Writes, Any]):
    def __init__(self, merge: GlobalMerge, mlog: ModelLog) -> None:
        self.merge = merge
        self.mlog = mlog

    def on_batch(self, values: list[GlobalSignals]) -> tuple[list[Writes], bool]:
        out = []
        for msg in values:
            w = self.merge.on_signals(msg, self.mlog)
            if w is not None and len(w):
                out.append(w)
        return out, StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Writes], bool]:
        w = self.merge.finish(self.mlog)
        return ([w] if w is not None and len(w) else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> Any:
        return {"v": STATE_VERSION, "kind": "global", "state": self.merge}


class _Edge(StatefulBatchLogic[EdgeSignals, Writes, Any]):
    def __init__(self, learner: EdgeLearner) -> None:
        self.learner = learner

    def on_batch(self, values: list[EdgeSignals]) -> tuple[list[Writes], bool]:
        got = [self.learner.on_signals(msg) for msg in values]
        return [w for w in got if w is not None and len(w)], StatefulBatchLogic.RETAIN

    def on_eof(self) -> tuple[list[Writes], bool]:
        w = self.learner.finish()
        return ([w] if w is not None and len(w) else []), StatefulBatchLogic.RETAIN

    def snapshot(self) -> Any:
        return {"v": STATE_VERSION, "kind": "edge", "state": self.learner}


def _resumed(state: Any, kind: str) -> Any:
    if not isinstance(state, dict) or state.get("v") != STATE_VERSION or state.get("kind") != kind:
        raise ConfigError(
            f"the recovery store holds a {kind} snapshot of another rtp version: start a new "
            "recovery directory (python -m bytewax.recovery DIR N)"
        )
    return state["state"]


def build_flow(
    source: Source[Any],
    settings: Settings,
    sink: Sink[Writes],
    dead_letter: Sink[list[Any]] | None = None,
    *,
    parts: Sequence[str],
    model_log: Callable[[], ModelLog],
    loader_factory: Callable[[], Any] | None = None,
    enricher: Any = None,
    mode: str = REALTIME,
    hooks_factory: Callable[[], list[Hook]] | None = None,
    experiments: Any = None,
    bandits_factory: Callable[[], dict[str, Any]] | None = None,
    edge_factory: Callable[[], Any] | None = None,
    run: str = "default",
    name: str = "rtp",
    layout: Layout | None = None,
    keep_idle: bool = False,
    clock: Callable[[], float] | None = None,
    sweep_by_home: bool = False,
) -> Dataflow:
    """The rtp dataflow from ``source`` (any source of :class:`rtp.flow.sources.Batch`) to
    ``sink``.

    :param parts: the source's partition names (a user shard waits for every one's watermark).
    :param model_log: makes the model log (one ``rtp.engine.log.LocalModelLog`` for workers
        that are threads of one process, ``rtp.store.modellog.RedisModelLog`` otherwise).
    :param loader_factory: makes, once per user shard, what reads returning users' profiles
        and the tombstones of forgotten users (an object with ``load_users`` and ``tombstones``,
        like ``rtp.store.store.Store``); ``None`` starts every user fresh.
    :param hooks_factory: makes the user step's hooks (evaluation, batch serving, metrics).
    """
    tune_gc()
    if edge_factory is None and settings.edge_model:
        # no edge step (an evaluation): the user step need not gather what sessions did for it
        settings = replace(settings, edge_model=False)
    per_process, processes, process_id = _cluster_argv(None)
    if per_process == 1 and processes > 1:  # one_worker_per_process()
        if process_id is None:
            tune_switch_interval(settings)
        else:
            tune_cluster_process(settings, process_id, processes, started_by_rtp=False)
    layout = layout or Layout.from_settings(settings)
    n = layout.shards
    ukeys = layout.keys
    ikeys = layout.keys
    part_names = list(parts)
    if enricher is None:
        from rtp.capture.enrich import Enricher

        enricher = Enricher(
            site_hosts=tuple(h.strip() for h in settings.site_hosts.split(",") if h.strip()),
            default_utc_offset_h=settings.default_utc_offset_h,
        )
    enrich = enricher.enrich_all
    lag = max(1, settings.model_lag_ticks)
    gate = gate_factory(model_log, layout.writers, lag)
    if hasattr(source, "gate"):
        source.gate = gate
    if hasattr(source, "progress") and getattr(source, "ack", None) == "progress":

        def progress() -> Callable[[], int]:
            mlog = model_log()
            return lambda: mlog.progress(layout.writers)

        source.progress = progress

    flow = Dataflow(name)
    batches = op.input("events", flow, source)
    if dead_letter is not None:
        rejected = op.filter_map(
            "rejections", batches, lambda b: b.rejections if b.rejections else None
        )
        op.output("dead_letter", rejected, dead_letter)

    def split(b: Any) -> list[tuple[str, UserBatch]]:
        events = b.events
        if events:
            enrich(events)
        n_rej = len(b.rejections)
        if n == 1:
            return [(ukeys[0], UserBatch(events, b.tick, b.part, b.wm, b.high, b.read, n_rej,
                                         b.lag_ref, b.need))]  # fmt: skip
        per: list[list[Any]] = [[] for _ in range(n)]
        for e in events:
            per[user_shard_of(e.user, n)].append(e)
        out = []
        for j in range(n):
            read, rej = (b.read, n_rej) if j == 0 else (0, 0)
            out.append((ukeys[j], UserBatch(per[j], b.tick, b.part, b.wm, b.high, read, rej,
                                            b.lag_ref, b.need)))  # fmt: skip
        return out

    keyed = op.flat_map("enrich_and_shard", batches, split)

    def users_builder(resume: Any) -> _Users:
        demote_main_thread()  # a builder runs in the worker thread (a no-op unless asked)
        mlog = model_log()
        if resume is not None:
            shard: UserShard = _resumed(resume, "users")
        else:
            key_index = 0  # replaced below: the key is not passed to builders
            shard = UserShard(
                settings,
                key_index,
                n,
                n,
                part_names,
                mode=mode,
                hooks=hooks_factory() if hooks_factory else (),
                experiments=experiments,
                run=run,
                keep_idle=keep_idle,
                sweep_by_home=sweep_by_home,
            )
        if loader_factory is not None:
            reads = loader_factory()
            shard.loader = reads.load_users
            shard.tombstones = reads.tombstones
        if clock is not None:
            shard.clock = clock
        return _Users(shard, mlog)

    # Bytewax builders do not receive the key: bind it through a per-key wrapper stream.
    keyed_idx = op.map("user_shard_index", keyed, lambda kv: (kv[0], (ukeys.index(kv[0]), kv[1])))

    def users_step_builder(resume: Any) -> _IndexedUsers:
        return _IndexedUsers(users_builder(resume))

    users = op.stateful_batch("users", keyed_idx, users_step_builder)

    def pick_writes(kv: tuple[str, Output]) -> Writes | None:
        kind, value = kv[1]
        return value if kind == "w" else None

    def pick_items(kv: tuple[str, Output]) -> tuple[str, tuple[int, ItemSignals]] | None:
        kind, value = kv[1]
        if kind != "i":
            return None
        i, sig = value
        return (ikeys[i], (i, sig))

    global_key, edge_key = layout.global_key, layout.edge_key

    def pick_global(kv: tuple[str, Output]) -> list[tuple[str, Any]]:
        """A user shard's global signals for the global step, and their edge observations
        for the edge step (dropped when there is none)."""
        kind, value = kv[1]
        if kind != "g":
            return []
        if edge_factory is None:  # the user step gathered none (settings.edge_model is off)
            return [(global_key, value)]
        learned = split_edge(value)
        return [(global_key, value), (edge_key, learned)]

    user_writes = op.filter_map("user_writes", users, pick_writes)
    item_in = op.filter_map("item_signals", users, pick_items)
    signals = op.branch(
        "global_or_edge",
        op.flat_map("global_signals", users, pick_global),
        lambda kv: isinstance(kv[1], GlobalSignals),
    )

    def items_builder(resume: Any) -> _IndexedItems:
        demote_main_thread()
        return _IndexedItems(settings, n, model_log(), resume)

    items = op.stateful_batch("items", item_in, items_builder)

    def global_builder(resume: Any) -> _Global:
        mlog = model_log()
        if resume is not None:
            merge: GlobalMerge = _resumed(resume, "global")
            merge.republish(mlog)
        else:
            merge = GlobalMerge(
                settings,
                n,
                bandits=bandits_factory() if bandits_factory else None,
            )
        return _Global(merge, mlog)

    glob = op.stateful_batch("global", signals.trues, global_builder)
    item_writes = op.map("item_writes", items, lambda kv: kv[1])
    global_writes = op.map("global_writes", glob, lambda kv: kv[1])
    all_writes = [user_writes, item_writes, global_writes]
    if edge_factory is not None:
        make_model = edge_factory

        def edge_builder(resume: Any) -> _Edge:
            if resume is not None:
                return _Edge(_resumed(resume, "edge"))
            return _Edge(EdgeLearner(n, make_model()))

        edge = op.stateful_batch("edge", signals.falses, edge_builder)
        all_writes.append(op.map("edge_writes", edge, lambda kv: kv[1]))
    writes = op.merge("writes", *all_writes)
    op.output("store", writes, sink)
    return flow


class _IndexedUsers(StatefulBatchLogic[tuple[int, UserBatch], Output, Any]):
    """The user step's logic, told its shard index by its first item (builders get no key)."""

    def __init__(self, inner: _Users) -> None:
        self.inner = inner

    def on_batch(self, values: list[tuple[int, UserBatch]]) -> tuple[list[Output], bool]:
        shard = self.inner.shard
        if values:
            shard.shard = values[0][0]
        return self.inner.on_batch([b for _, b in values])

    def on_eof(self) -> tuple[list[Output], bool]:
        return self.inner.on_eof()

    def snapshot(self) -> Any:
        return self.inner.snapshot()


class _IndexedItems(StatefulBatchLogic[tuple[int, ItemSignals], Writes, Any]):
    """The item step's logic, built on its first item (it needs its shard index)."""

    def __init__(self, settings: Settings, user_shards: int, mlog: ModelLog, resume: Any) -> None:
        self.settings = settings
        self.user_shards = user_shards
        self.mlog = mlog
        self.inner: _Items | None = None
        if resume is not None:
            shard: ItemShard = _resumed(resume, "items")
            shard.republish(mlog)
            self.inner = _Items(shard, mlog)

    def on_batch(self, values: list[tuple[int, ItemSignals]]) -> tuple[list[Writes], bool]:
        if self.inner is None:
            i = values[0][0]
            n = self.user_shards
            self.inner = _Items(ItemShard(self.settings, i, n, n), self.mlog)
        return self.inner.on_batch([m for _, m in values])

    def on_eof(self) -> tuple[list[Writes], bool]:
        if self.inner is None:
            return [], StatefulBatchLogic.RETAIN
        return self.inner.on_eof()

    def snapshot(self) -> Any:
        return self.inner.snapshot() if self.inner is not None else None
