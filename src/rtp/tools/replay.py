"""Historical replay: files through the one dataflow into Redis, and a report that adds up.

Speed: by default a replay runs as fast as the flow goes; ``speed=F`` (``--speed F``) paces it at
F times event time (``--speed 1`` replays history as it happened, ``--speed 60`` an hour a
minute), which is how to rehearse the live path, lag and degraded mode on recorded data.

Order rule: a replay feeds events in the order of the files given (a directory's files in name
order), and within a file in line order, except for formats that are not in time order
(DIGINETICA, OTTO), which are sorted in memory by their adapter's key first. Event time, not
arrival, drives sessions, decay and evaluation, so a month replayed in a minute builds the same
state as the month lived.

The report (``--report FILE.json``) always satisfies ``read == accepted + rejected``.
"""

from __future__ import annotations

import sys
import time
import uuid
import zlib
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from rtp.config import Settings


def _progress_printer(enabled: bool) -> Any:
    if not enabled or not sys.stderr.isatty():
        return None
    t0 = time.perf_counter()
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] < 0.5 and done < total:
            return
        last[0] = now
        pct = 100.0 * done / total if total else 100.0
        rate = done / (now - t0) / 1e6 if now > t0 else 0.0
        bar = "#" * int(pct / 4)
        sys.stderr.write(f"\r  replay [{bar:<25}] {pct:5.1f}%  {rate:5.1f} MB/s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def collect_stats(store: Any, run: str) -> dict[str, Any]:
    """Sum the per-shard engine stats of one run."""
    parts = store.meta_prefix(f"stats:{run}:")
    total: dict[str, Any] = {}
    for stats in parts.values():
        for k, v in stats.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if k == "max_lag_s":
                    total[k] = max(total.get(k, 0.0), v)
                elif k != "event_time":
                    total[k] = total.get(k, 0) + v
            elif k == "model":
                total.setdefault("models", []).append(v)
    total["shards"] = len(parts)
    return total


def replay(
    paths: Sequence[str | Path],
    fmt: str,
    settings: Settings,
    *,
    report_path: str | Path | None = None,
    recovery_dir: str | Path | None = None,
    snapshot_s: float = 10.0,
    progress: bool = True,
    sort: bool | None = None,
    experiments: Any = None,
    bandits_factory: Any = None,
    run: str | None = None,
    speed: float | None = None,
) -> dict[str, Any]:
    """Replay ``paths`` into Redis (``settings.redis_url``, else an embedded server)."""
    from bytewax.recovery import RecoveryConfig
    from bytewax.testing import run_main

    from rtp.flow.dataflow import build_flow
    from rtp.flow.sinks import DeadLetterSink, RedisSink
    from rtp.flow.sources import FilesSource
    from rtp.store.server import redis_url
    from rtp.store.store import Store

    if run is None:
        # A resumed run keeps the engine (and its run id) of the first: derive it from the store.
        run = (
            f"r{zlib.crc32(str(Path(recovery_dir).resolve()).encode()):08x}"
            if recovery_dir is not None
            else uuid.uuid4().hex[:8]
        )
    if experiments is None and settings.experiments_file:
        from rtp.experiments.design import load_experiments

        experiments = load_experiments(settings.experiments_file)
    if experiments is not None and bandits_factory is None:
        bandits_factory = _bandits_factory(experiments, settings.seed)
    if recovery_dir is not None:
        settings = settings.replace(hold_profiles=True)
    with redis_url(settings) as url:
        source = FilesSource(
            [str(p) for p in paths],
            fmt,
            batch_lines=settings.batch_lines,
            sort=sort,
            max_lag_s=settings.max_lag_s,
            max_ahead_s=settings.max_ahead_s,
            on_progress=_progress_printer(progress),
            speed=speed,
        )

        def loader_factory() -> Any:
            return Store.from_url(url, settings).load_users

        flow = build_flow(
            source,
            settings,
            RedisSink(url, settings),
            DeadLetterSink(url, settings),
            loader_factory=loader_factory,
            experiments=experiments,
            bandits_factory=bandits_factory,
            run=run,
        )
        recovery = None
        if recovery_dir is not None:
            from rtp.flow.recovery import ensure_store

            ensure_store(Path(recovery_dir))
            recovery = RecoveryConfig(str(recovery_dir))
        t0 = time.perf_counter()
        run_main(flow, epoch_interval=timedelta(seconds=snapshot_s), recovery_config=recovery)
        seconds = time.perf_counter() - t0
        store = Store.from_url(url, settings)
        stats = collect_stats(store, run)
        users = store.users_estimate()
        store.close()
    read = int(stats.get("read", 0))
    rejected = int(stats.get("rejected", 0))
    accepted = read - rejected
    report: dict[str, Any] = {
        "run": run,
        "paths": [str(p) for p in paths],
        "format": fmt,
        "read": read,
        "accepted": accepted,
        "rejected": rejected,
        "events": int(stats.get("events", 0)),
        "users": users,
        "sessions": int(stats.get("sessions", 0)),
        "profiles_written": int(stats.get("profiles_written", 0)),
        "decisions": {
            "ranked": int(stats.get("decisions_ranked", 0)),
            "degraded": int(stats.get("decisions_degraded", 0)),
            "non_personalized": int(stats.get("decisions_non_personalized", 0)),
            "coalesced_events": int(stats.get("coalesced", 0)),
        },
        "learned_examples": int(stats.get("learned", 0)),
        "attributed": int(stats.get("attributed", 0)),
        "max_lag_s": stats.get("max_lag_s", 0.0),
        "model": (stats.get("models") or [None])[0],
        "shards": stats.get("shards", 0),
        "seconds": round(seconds, 3),
        "events_per_s": round(accepted / seconds, 1) if seconds > 0 else 0.0,
        "redis": "embedded" if not settings.redis_url else settings.redis_url,
    }
    if report_path is not None:
        Path(report_path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report


def _bandits_factory(experiments: Any, seed: int) -> Any:
    if not getattr(experiments, "bandits", None):
        return None

    def make() -> list[Any]:
        return list(experiments.make_bandits().values())

    return make


def summary(report: dict[str, Any]) -> str:
    d = report["decisions"]
    return (
        f"read {report['read']:,}  accepted {report['accepted']:,}  "
        f"rejected {report['rejected']:,}  users ~{report['users']:,}  "
        f"sessions {report['sessions']:,}\n"
        f"decisions: ranked {d['ranked']:,}  degraded {d['degraded']:,}  "
        f"non-personalized {d['non_personalized']:,}  "
        f"(coalesced events {d['coalesced_events']:,})\n"
        f"{report['seconds']:.2f} s, {report['events_per_s']:,.0f} events/s, "
        f"model {report['model']}"
    )
