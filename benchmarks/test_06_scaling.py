"""6. Scaling with users: events/s and memory for generated streams of 5,000 and 50,000 users
with the same number of events per user (so 10x the events, over the same span of event time:
10x the concurrent sessions), each replayed in its own subprocess into an empty private
redis-server. Per-user and per-event costs should stay flat: the figures are the 50k / 5k
ratios (1.0 = flat; events/s below 1, memory above 1 = worse with more users).

RSS per live user: a process's peak RSS holds a base that does not depend on users (Python,
Bytewax, River and SciPy imported, the flow built, the models). ``test_scaling_base`` replays
the first ``BASE_EVENTS`` events of the small stream to measure it, and each size's peak RSS
above that base, divided by its users, is its RSS per live user (every user of these streams
is live to the end: their events span the whole stream).

Ticks: the engine decides once per user per batch, and a replay's ticks (so its batches) count
records by default. Ten times the users over the same event time then puts a tenth of the event
time in a tick: fewer of a user's events share a decision, and the streams differ in decisions
per event (1.9x), not only in users. The live flow's ticks are capture time, which a larger
audience fills with more records. ``ticks="time"`` replays both streams as the live flow would
cut them: ticks of ``TIME_TICKS["tick_span_s"]`` of event time (joined from ticks of 100
records) in batches that hold a whole tick, the same settings for both sizes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks._streams import generated_users, stream_dir
from benchmarks.conftest import FIGURES, RedisServer, record, replay_subprocess

SIZES = (5_000, 50_000)
EVENTS_PER_USER = 10
BASE_EVENTS = 500  # one replay tick: the flow, its imports and models, next to no users
# ticks of event time (Settings.tick_span_s), the same for both sizes; batches hold a tick
TIME_TICKS = {"tick_span_s": 1_800.0, "tick_records": 100, "batch_lines": 10_000}
TICKS = {"records": None, "time": TIME_TICKS}


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Path, str, str]]:
    tmp = stream_dir(tmp_path_factory)
    return {n: generated_users(n, tmp, EVENTS_PER_USER) for n in SIZES}


def test_scaling_base(
    benchmark: Any, streams: dict[int, tuple[Path, str, str]], fresh_redis: RedisServer
) -> None:
    """The peak RSS of the same flow over the small stream's first ``BASE_EVENTS`` events."""
    path, fmt, _how = streams[SIZES[0]]
    head = path.with_name(f"head{BASE_EVENTS}_{path.name}")
    with path.open("rb") as src, head.open("wb") as dst:
        for _, line in zip(range(BASE_EVENTS), src, strict=False):
            dst.write(line)
    out: dict[str, Any] = {}

    def once() -> None:
        out.update(replay_subprocess([head], fmt, fresh_redis.url))

    benchmark.pedantic(once, rounds=1, iterations=1)
    assert out["accepted"] == BASE_EVENTS
    record(
        benchmark,
        scaling_base_users=out["users"],
        scaling_base_peak_rss_mb=out["maxrss_kb"] * 1024 / 1e6,
    )


@pytest.mark.parametrize("ticks", list(TICKS))
@pytest.mark.parametrize("users", SIZES)
def test_scaling_users(
    benchmark: Any,
    users: int,
    ticks: str,
    streams: dict[int, tuple[Path, str, str]],
    fresh_redis: RedisServer,
) -> None:
    path, fmt, how = streams[users]
    before = fresh_redis.used_memory()
    out: dict[str, Any] = {}

    def once() -> None:
        out.update(replay_subprocess([path], fmt, fresh_redis.url, settings=TICKS[ticks]))

    benchmark.pedantic(once, rounds=1, iterations=1)
    after = fresh_redis.used_memory()
    r = fresh_redis.client()
    d_keys = sum(1 for _ in r.scan_iter(match="rtp:d:*", count=10_000))
    r.close()
    n_users = d_keys or out["users"]
    suffix = "" if ticks == "records" else f"_{ticks}"
    tag = f"scaling_{users // 1000}k{suffix}"
    record(
        benchmark,
        **{
            f"{tag}_stream": how,
            f"{tag}_events": out["accepted"],
            f"{tag}_events_per_s": out["events_per_s"],
            # decisions per event: a denser stream coalesces more of a user's events per batch
            f"{tag}_decisions_per_event": _decisions(out) / max(1, out["accepted"]),
            f"{tag}_coalesced_events": int(out.get("decisions", {}).get("coalesced_events", 0)),
            f"{tag}_events_per_cpu_s": out["accepted"] / out["cpu_s"],
            f"{tag}_redis_bytes_per_user": (after["used_memory"] - before["used_memory"]) / n_users,
            f"{tag}_peak_rss_mb": out["maxrss_kb"] * 1024 / 1e6,
        },
    )
    if "scaling_base_peak_rss_mb" in FIGURES:
        above = out["maxrss_kb"] * 1024 - FIGURES["scaling_base_peak_rss_mb"] * 1e6
        record(benchmark, **{f"{tag}_rss_bytes_per_live_user": above / out["users"]})
    small = f"scaling_{SIZES[0] // 1000}k{suffix}"
    if users == SIZES[-1] and f"{small}_events_per_s" in FIGURES:
        rss_small = FIGURES[f"{small}_peak_rss_mb"]
        ratio = f"scaling{suffix}"
        record(
            benchmark,
            **{
                f"{ratio}_events_per_s_ratio": out["events_per_s"]
                / FIGURES[f"{small}_events_per_s"],
                f"{ratio}_decisions_per_event_ratio": FIGURES[f"{tag}_decisions_per_event"]
                / FIGURES[f"{small}_decisions_per_event"],
                f"{ratio}_events_per_cpu_s_ratio": FIGURES[f"{tag}_events_per_cpu_s"]
                / FIGURES[f"{small}_events_per_cpu_s"],
                f"{ratio}_redis_bytes_per_user_ratio": FIGURES[f"{tag}_redis_bytes_per_user"]
                / FIGURES[f"{small}_redis_bytes_per_user"],
                f"{ratio}_peak_rss_ratio": FIGURES[f"{tag}_peak_rss_mb"] / rss_small,
                f"{ratio}_peak_rss_growth_bytes_per_added_user": (
                    FIGURES[f"{tag}_peak_rss_mb"] - rss_small
                )
                * 1e6
                / (SIZES[-1] - SIZES[0]),
            },
        )
        per_user = [FIGURES.get(f"{t}_rss_bytes_per_live_user") for t in (small, tag)]
        if None not in per_user:  # issue #8's "RSS per live user flat": 1.0, the base set aside
            record(benchmark, **{f"{ratio}_rss_per_live_user_ratio": per_user[1] / per_user[0]})


def _decisions(report: dict[str, Any]) -> int:
    """Decisions written in a replay (ranked, degraded and non-personalized)."""
    d = report.get("decisions", {})
    return int(d.get("ranked", 0)) + int(d.get("degraded", 0)) + int(d.get("non_personalized", 0))
