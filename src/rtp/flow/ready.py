"""Ready-made flows: live (the partitioned Redis stream) and replay (files), both the one rtp
dataflow, described by a :class:`FlowSpec` so that a process of a cluster can build the same
flow from its environment.

``flows/personalize.py`` exposes :func:`flow_from_env` as a module-level ``flow`` for
``python -m bytewax.run flows.personalize:flow``; :mod:`rtp.flow.runner` runs specs on one or
several processes with Bytewax's production runner.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from bytewax.dataflow import Dataflow

from rtp.config import Settings
from rtp.engine.hooks import REALTIME, BatchServing, Evaluation, ExperimentMetrics, Hook
from rtp.engine.log import LocalModelLog, ModelLog
from rtp.errors import ConfigError
from rtp.flow.dataflow import Layout, build_flow
from rtp.store.streams import DEFAULT_STREAM

SPEC_ENV = "RTP_FLOW_SPEC"


@dataclasses.dataclass
class FlowSpec:
    """What flow to build: its source, mode and run name (JSON-able, for child processes).

    ``kind``: ``"live"`` (the Redis stream ``stream``) or ``"files"`` (``paths`` in ``fmt``).
    ``evaluate``: score prequentially (``ks``; ``targets``: only events of these source files
    are targets, all when empty) instead of writing decisions; the scores go to the sink.
    ``model_log``: ``"local"`` (threads of one process) or ``"redis"`` (several processes).
    ``ack``: how the live source acknowledges entries (``"progress"`` or ``"snapshot"``).
    """

    kind: str = "files"
    paths: list[str] = dataclasses.field(default_factory=list)
    fmt: str = "jsonl"
    sort: bool | None = None
    speed: float | None = None
    stream: str = DEFAULT_STREAM
    run: str = "default"
    mode: str = REALTIME
    refresh_s: float = 86_400.0
    evaluate: bool = False
    ks: list[int] = dataclasses.field(default_factory=lambda: [5, 10, 20])
    targets: list[str] = dataclasses.field(default_factory=list)
    score_from_ts: float = 0.0
    model_log: str = "local"
    ack: str = "progress"
    metrics_mode: str = "replay"
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return orjson.dumps(dataclasses.asdict(self)).decode()

    @classmethod
    def from_json(cls, text: str) -> FlowSpec:
        return cls(**orjson.loads(text))


def _experiments(settings: Settings) -> Any:
    if not settings.experiments_file:
        return None
    from rtp.experiments.design import load_experiments

    return load_experiments(settings.experiments_file)


def model_log_factory(spec: FlowSpec, settings: Settings) -> Callable[[], ModelLog]:
    if spec.model_log == "redis":
        if not settings.redis_url:
            raise ConfigError("a flow on several processes needs Redis for its model log")
        from rtp.store.modellog import RedisModelLog

        url, run, prefix = settings.redis_url, spec.run, settings.key_prefix
        return lambda: RedisModelLog(url, run, prefix, settings.redis_timeout_s)
    # One log per built flow, shared by its workers (threads of this process). Not a registry
    # keyed by the run's name: two flows of one run built in one process (a notebook, a test)
    # would share a log, and the second would start from the first one's progress.
    log = LocalModelLog()
    return lambda: log


def build(
    spec: FlowSpec,
    settings: Settings,
    *,
    layout: Layout | None = None,
    sink: Any = None,
    dead_letter: Any = None,
    on_progress: Any = None,
    clock: Callable[[], float] | None = None,
) -> Dataflow:
    """The dataflow a spec describes (sinks default to Redis at ``settings.redis_url``).

    ``clock`` replaces the wall clock of the live source and the user steps (tests simulate
    weeks of uptime with it)."""
    from rtp.flow.sinks import DeadLetterSink, RedisSink

    settings = settings.replace(**spec.settings) if spec.settings else settings
    layout = layout or Layout.from_settings(settings)
    url = settings.redis_url
    source: Any
    if spec.kind == "live":
        if not url:
            raise ConfigError(
                "a live flow needs RTP_REDIS_URL: its stream and decisions live there"
            )
        source = _live_source(spec, settings, url)
        if clock is not None:
            source.clock = clock
        parts = source.list_parts()
    elif spec.kind == "files":
        from rtp.flow.sources import FilesSource

        source = FilesSource(
            spec.paths,
            spec.fmt,
            batch_lines=settings.batch_lines,
            sort=spec.sort,
            max_lag_s=settings.max_lag_s,
            max_ahead_s=settings.max_ahead_s,
            on_progress=on_progress,
            speed=spec.speed,
            tick_records=settings.tick_records,
            tick_span_s=settings.tick_span_s,
            model_lag=_model_lag(settings),
            partitions=layout.workers,
            shards=layout.shards,
        )
        parts = source.list_parts()
    else:
        raise ConfigError(f"unknown flow kind {spec.kind!r}")
    experiments = None if spec.evaluate else _experiments(settings)

    def hooks() -> list[Hook]:
        out: list[Hook] = []
        batch = None
        wants_batch = spec.mode == "batch" or (experiments is not None and not spec.evaluate)
        if wants_batch:
            batch = BatchServing(spec.refresh_s, everyone=spec.mode == "batch")
            out.append(batch)
        if spec.evaluate:
            out.append(Evaluation(spec.mode, tuple(spec.ks), _target_filter(spec), batch))
        if experiments is not None:
            out.append(ExperimentMetrics(experiments, spec.metrics_mode, settings.seed))
        return out

    bandits = None
    if experiments is not None and experiments.bandits:

        def bandits() -> dict[str, Any]:
            return dict(experiments.make_bandits())

    edge = None
    if settings.edge_model and not spec.evaluate:
        from rtp.decisions.edge import EdgeModel

        edge = EdgeModel
    if sink is None:
        if not url:
            raise ConfigError("no Redis URL for the flow's writes")
        if spec.evaluate:
            from rtp.flow.sinks import EvalSink

            sink = EvalSink(url, f"{settings.key_prefix}eval:{spec.run}")
        else:
            sink = RedisSink(url, settings)
    if dead_letter is None and url and not spec.evaluate:
        dead_letter = DeadLetterSink(url, settings)
    loader = None
    if url and not spec.evaluate:
        from rtp.store.store import Store

        def loader() -> Any:
            return _PatientReads(Store.from_url(url, settings))

    return build_flow(
        source,
        settings,
        sink,
        dead_letter,
        parts=parts,
        model_log=model_log_factory(spec, settings),
        loader_factory=loader,
        mode=spec.mode,
        hooks_factory=hooks,
        experiments=experiments,
        bandits_factory=bandits,
        edge_factory=edge,
        run=spec.run,
        name="rtp_eval" if spec.evaluate else "rtp",
        layout=layout,
        keep_idle=spec.evaluate,
        clock=clock,
        sweep_by_home=spec.kind == "files",
    )


class _PatientReads:
    """What the user step reads from Redis (returning users' profiles, tombstones), waited for
    through any outage (:func:`rtp.flow.sinks.patiently`)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def load_users(self, users: list[str]) -> Any:
        from rtp.flow.sinks import patiently

        return patiently("a profile read", lambda: self.store.load_users(users))

    def tombstones(self, users: list[str]) -> Any:
        from rtp.flow.sinks import patiently

        return patiently("a tombstone read", lambda: self.store.tombstones(users))


def _model_lag(settings: Settings) -> tuple[int, int, float]:
    """A replay's model lag (``rtp.flow.sources.ModelLag``): least and most ticks, seconds."""
    least = max(1, settings.model_lag_ticks)
    return least, max(least, settings.model_lag_max_ticks), max(0.0, settings.model_lag_s)


def _target_filter(spec: FlowSpec) -> Callable[[Any], bool] | None:
    """Which events are targets: of the evaluated files (warm-up protocol), after the split."""
    targets = frozenset(spec.targets)
    start = spec.score_from_ts
    if not targets and not start:
        return None
    if not targets:
        return lambda e: bool(e.ts >= start)
    if not start:
        return lambda e: e.pos.rsplit(":", 1)[0] in targets
    return lambda e: e.ts >= start and e.pos.rsplit(":", 1)[0] in targets


def _live_source(spec: FlowSpec, settings: Settings, url: str) -> Any:
    import redis

    from rtp.flow.sources import RedisStreamSource
    from rtp.store.streams import StreamConfig, configure

    r = redis.Redis.from_url(url, socket_timeout=settings.redis_timeout_s)
    try:
        config = configure(
            r, StreamConfig(spec.stream, settings.stream_partitions, settings.max_backlog)
        )
    finally:
        r.close()
    return RedisStreamSource(
        url,
        stream=config.names(),
        max_lag_s=settings.max_lag_s,
        max_ahead_s=settings.max_ahead_s,
        timeout_s=settings.redis_timeout_s,
        tick_s=settings.tick_s,
        ack=spec.ack,
    )


def live_flow(settings: Settings, stream: str = DEFAULT_STREAM, run: str = "live") -> Dataflow:
    """The flow on the live Redis stream (``settings.redis_url`` must be set)."""
    spec = FlowSpec(kind="live", stream=stream, run=run, metrics_mode="live")
    return build(spec, settings)


def file_flow(
    settings: Settings, paths: list[str], fmt: str, url: str, run: str = "replay"
) -> Dataflow:
    """The flow replaying ``paths`` into the Redis at ``url``."""
    spec = FlowSpec(kind="files", paths=list(paths), fmt=fmt, run=run)
    return build(spec, settings.replace(redis_url=url))


def flow_from_env(env: Mapping[str, str] | None = None) -> Dataflow:
    """The flow of ``RTP_FLOW_SPEC`` (JSON, set by :mod:`rtp.flow.runner`), else of
    ``RTP_SOURCE`` = ``redis`` (default: the live stream ``RTP_STREAM``) or file paths separated
    by ``:`` with ``RTP_FORMAT``; Redis from ``RTP_REDIS_URL`` (else an embedded server that
    lives as long as the process). The worker count comes from the command line of
    ``bytewax.run`` / ``bytewax.testing`` (``-w``, ``-p``, ``-a``) or ``RTP_WORKERS``."""
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    text = env.get(SPEC_ENV)
    if text:
        spec = FlowSpec.from_json(text)
    else:
        source = env.get("RTP_SOURCE", "redis")
        if source == "redis":
            spec = FlowSpec(kind="live", stream=env.get("RTP_STREAM", DEFAULT_STREAM), run="live")
        else:
            spec = FlowSpec(
                kind="files", paths=source.split(":"), fmt=env.get("RTP_FORMAT", "jsonl"),
                run=env.get("RTP_RUN", "replay"),
            )  # fmt: skip
    layout = Layout.from_settings(settings)
    if layout.workers > 1 and spec.model_log == "local":
        # several processes cannot share memory: the model log goes to Redis
        spec.model_log = "redis" if _several_processes() else "local"
    if not settings.redis_url:
        from rtp.store.server import EmbeddedRedis

        server = EmbeddedRedis().start()  # stopped at exit
        settings = settings.replace(redis_url=server.url)
    return build(spec, settings, layout=layout)


def _several_processes() -> bool:
    import sys

    args = sys.argv
    return any(flag in args for flag in ("-p", "--processes", "-a", "--addresses"))
