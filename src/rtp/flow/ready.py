"""Ready-made flows: live (the Redis stream) and replay (files), both the one rtp dataflow.

``flows/personalize.py`` exposes :func:`flow_from_env` as a module-level ``flow`` for
``python -m bytewax.run flows.personalize:flow``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from bytewax.dataflow import Dataflow

from rtp.config import Settings
from rtp.store.streams import DEFAULT_STREAM


def _experiments(settings: Settings) -> tuple[Any, Any]:
    if not settings.experiments_file:
        return None, None
    from rtp.experiments.design import load_experiments

    exps = load_experiments(settings.experiments_file)
    if not exps.bandits:
        return exps, None
    return exps, lambda: list(exps.make_bandits().values())


def _flow(settings: Settings, source: Any, url: str, metrics_mode: str, run: str) -> Dataflow:
    from rtp.flow.dataflow import build_flow
    from rtp.flow.sinks import DeadLetterSink, RedisSink
    from rtp.store.store import Store

    exps, bandits = _experiments(settings)
    return build_flow(
        source,
        settings,
        RedisSink(url, settings),
        DeadLetterSink(url, settings),
        loader_factory=lambda: Store.from_url(url, settings).load_users,
        experiments=exps,
        bandits_factory=bandits,
        run=run,
        engine_kwargs={"metrics_mode": metrics_mode},
    )


def live_flow(settings: Settings, stream: str = DEFAULT_STREAM, run: str = "live") -> Dataflow:
    """The flow on the live Redis stream (``settings.redis_url`` must be set)."""
    from rtp.flow.sources import RedisStreamSource

    if not settings.redis_url:
        from rtp.errors import ConfigError

        raise ConfigError("a live flow needs RTP_REDIS_URL: its stream and decisions live there")
    source = RedisStreamSource(
        settings.redis_url,
        stream=stream,
        max_lag_s=settings.max_lag_s,
        max_ahead_s=settings.max_ahead_s,
    )
    return _flow(settings, source, settings.redis_url, "live", run)


def file_flow(
    settings: Settings, paths: Sequence[str], fmt: str, url: str, run: str = "replay"
) -> Dataflow:
    """The flow replaying ``paths`` into the Redis at ``url``."""
    from rtp.flow.sources import FilesSource

    source = FilesSource(
        list(paths),
        fmt,
        batch_lines=settings.batch_lines,
        max_lag_s=settings.max_lag_s,
        max_ahead_s=settings.max_ahead_s,
    )
    return _flow(settings, source, url, "replay", run)


def flow_from_env(env: Mapping[str, str] | None = None) -> Dataflow:
    """``RTP_SOURCE`` = ``redis`` (default: the live stream ``RTP_STREAM``) or file paths
    separated by ``:`` with ``RTP_FORMAT``; Redis from ``RTP_REDIS_URL`` (else an embedded
    server that lives as long as the process)."""
    env = os.environ if env is None else env
    settings = Settings.from_env(env)
    source = env.get("RTP_SOURCE", "redis")
    if not settings.redis_url:
        from rtp.store.server import EmbeddedRedis

        server = EmbeddedRedis().start()  # stopped at exit
        settings = settings.replace(redis_url=server.url)
    assert settings.redis_url is not None
    if source == "redis":
        return live_flow(settings, env.get("RTP_STREAM", DEFAULT_STREAM))
    fmt = env.get("RTP_FORMAT", "jsonl")
    return file_flow(settings, source.split(":"), fmt, settings.redis_url)
