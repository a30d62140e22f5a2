"""Historical replay: files through the one dataflow into Redis, and a report that adds up.

Speed: by default a replay runs as fast as the flow goes; ``speed=F`` (``--speed F``) paces it at
F times event time (``--speed 1`` replays history as it happened, ``--speed 60`` an hour a
minute), which is how to rehearse the live path, lag and degraded mode on recorded data.

Order rule: a replay feeds events in the order of the files given (a directory's files in name
order), and within a file in line order, except for formats that are not in time order
(DIGINETICA, OTTO), which are sorted in memory by their adapter's key first. Event time, not
arrival, drives sessions, decay and evaluation, so a month replayed in a minute builds the same
state as the month lived.

Scale: ``processes=N`` (``--processes N``) runs the flow on N local processes joined as one
Bytewax cluster (:mod:`rtp.flow.runner`); the decisions are the same as on one.

The report (``--report FILE.json``) always satisfies ``read == accepted + rejected``. Its
``events_per_s`` is the flow's rate from its first to its last event (process start-up excluded;
``wall_s`` includes it).
"""

from __future__ import annotations

import sys
import time
import uuid
import zlib
from collections.abc import Sequence
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
    """Sum the per-shard user-step stats of one run."""
    parts = store.meta_prefix(f"stats:{run}:u")
    total: dict[str, Any] = {}
    firsts, lasts = [], []
    for stats in parts.values():
        for k, v in stats.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if k in ("max_lag_s", "view_lag_ticks_max", "view_staleness_s_max",
                         "staleness_max_s"):  # fmt: skip
                    total[k] = max(total.get(k, 0.0), v)
                elif k == "first_wall":
                    firsts.append(v)
                elif k in ("last_wall", "wall"):
                    lasts.append(v)
                elif k != "event_time":
                    total[k] = total.get(k, 0) + v
            elif k == "model":
                total.setdefault("models", []).append(v)
    total["shards"] = len(parts)
    if firsts and lasts:
        total["busy_s"] = max(lasts) - min(firsts)
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
    run: str | None = None,
    speed: float | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    """Replay ``paths`` into Redis (``settings.redis_url``, else an embedded server)."""
    from rtp.flow.ready import FlowSpec
    from rtp.flow.runner import run as run_flow
    from rtp.store.server import redis_url
    from rtp.store.store import Store

    if run is None:
        # A resumed run keeps the state (and run id) of the first: derive it from the store.
        run = (
            f"r{zlib.crc32(str(Path(recovery_dir).resolve()).encode()):08x}"
            if recovery_dir is not None
            else uuid.uuid4().hex[:8]
        )
    with redis_url(settings) as url:
        settings = settings.replace(redis_url=url)
        spec = FlowSpec(
            kind="files", paths=[str(p) for p in paths], fmt=fmt, sort=sort, speed=speed, run=run
        )
        on_progress = _progress_printer(progress) if processes == 1 else None
        seconds = run_flow(
            spec,
            settings,
            processes=processes,
            recovery_dir=recovery_dir,
            snapshot_s=snapshot_s,
            on_progress=on_progress,
        )
        store = Store.from_url(url, settings)
        stats = collect_stats(store, run)
        users = store.users_estimate()
        store.close()
    read = int(stats.get("read", 0))
    rejected = int(stats.get("rejected", 0))
    accepted = read - rejected
    busy = float(stats.get("busy_s", 0.0)) or seconds
    report: dict[str, Any] = {
        "run": run,
        "paths": [str(p) for p in paths],
        "format": fmt,
        "processes": processes,
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
        "model_staleness_s": {
            "mean": round(
                stats.get("staleness_sum_s", 0.0) / max(1, stats.get("staleness_n", 0)), 1
            ),
            "max": round(stats.get("staleness_max_s", 0.0), 1),
        },
        # the most ticks the item models lagged a decision by (rtp.flow.sources.ModelLag)
        "model_lag_ticks_max": int(stats.get("view_lag_ticks_max", 0)),
        "model": (stats.get("models") or [None])[0],
        "shards": stats.get("shards", 0),
        "seconds": round(busy, 3),
        "wall_s": round(seconds, 3),
        "events_per_s": round(accepted / busy, 1) if busy > 0 else 0.0,
        "redis": "embedded" if not settings.redis_url else settings.redis_url,
    }
    if report_path is not None:
        Path(report_path).write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return report


def summary(report: dict[str, Any]) -> str:
    d = report["decisions"]
    return (
        f"read {report['read']:,}  accepted {report['accepted']:,}  "
        f"rejected {report['rejected']:,}  users ~{report['users']:,}  "
        f"sessions {report['sessions']:,}\n"
        f"decisions: ranked {d['ranked']:,}  degraded {d['degraded']:,}  "
        f"non-personalized {d['non_personalized']:,}  "
        f"(coalesced events {d['coalesced_events']:,})\n"
        f"{report['seconds']:.2f} s on {report.get('processes', 1)} process(es), "
        f"{report['events_per_s']:,.0f} events/s, model {report['model']}"
    )
