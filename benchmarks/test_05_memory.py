"""5. Redis memory per user after the Taobao replay, and the replay's peak RSS.

The replay ran in a subprocess (``conftest.replay_subprocess``) into an empty private
redis-server: bytes/user = (``INFO memory`` used_memory after - before) / users, where users =
the number of ``rtp:d:*`` keys (one per user who got a decision; the HyperLogLog estimate is
shown beside). ``MEMORY USAGE`` (all samples) of 2,000 sampled ``rtp:d:*`` and ``rtp:p:*``
keys, and of the shared keys (items hash, meta, HyperLogLog, dead letters), splits it up.
Peak RSS is ``VmHWM`` of the replay process (Bytewax and Python; the redis-server is another
process).
"""

from __future__ import annotations

import random
from typing import Any

from benchmarks.conftest import Replayed, record, redis_keys_by_kind

SAMPLE = 2_000


def memory_usage(r: Any, keys: list[bytes]) -> list[int]:
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k, samples=0)
    return [int(x) for x in pipe.execute() if x is not None]


def breakdown(rp: Replayed) -> dict[str, Any]:
    r = rp.server.client()
    kinds = redis_keys_by_kind(r)
    rng = random.Random(7)
    out: dict[str, Any] = {"keys": {k: len(v) for k, v in kinds.items()}}
    for kind in ("d", "p"):
        keys = kinds.get(kind, [])
        sample = rng.sample(keys, min(SAMPLE, len(keys)))
        sizes = memory_usage(r, sample)
        vals = [len(v) for v in r.mget(sample) if v is not None] if sample else []
        out[f"{kind}_key_bytes"] = sum(sizes) / len(sizes) if sizes else 0.0
        out[f"{kind}_value_bytes"] = sum(vals) / len(vals) if vals else 0.0
        out[f"{kind}_keys"] = len(keys)
    shared = [k for kind, ks in kinds.items() if kind not in ("d", "p") for k in ks]
    out["shared_bytes"] = sum(memory_usage(r, shared))
    r.close()
    return out


def test_redis_memory_per_user(benchmark: Any, taobao_replayed: Replayed) -> None:
    b = benchmark.pedantic(breakdown, args=(taobao_replayed,), rounds=1, iterations=1)
    before, after, report = taobao_replayed.before, taobao_replayed.after, taobao_replayed.report
    users = b["d_keys"] or report["users"]
    grown = after["used_memory"] - before["used_memory"]
    record(
        benchmark,
        redis_users=users,
        redis_users_hll=report["users"],
        redis_used_memory_growth_bytes=grown,
        redis_bytes_per_user=grown / users,
        redis_dataset_bytes_per_user=(after["used_memory_dataset"] - before["used_memory_dataset"])
        / users,
        redis_decision_key_bytes=b["d_key_bytes"],
        redis_decision_value_bytes=b["d_value_bytes"],
        redis_profile_key_bytes=b["p_key_bytes"],
        redis_profile_value_bytes=b["p_value_bytes"],
        redis_profile_keys=b["p_keys"],
        redis_shared_keys_bytes=b["shared_bytes"],
        redis_keys=str(b["keys"]),
    )


def test_replay_peak_rss(benchmark: Any, taobao_replayed: Replayed) -> None:
    report = taobao_replayed.report
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    rss = report["maxrss_kb"] * 1024
    record(
        benchmark,
        replay_peak_rss_mb=rss / 1e6,
        replay_peak_rss_bytes_per_user=rss / max(1, report["users"]),
        replay_subprocess_events_per_s=report["events_per_s"],
        replay_subprocess_events_per_cpu_s=report["accepted"] / report["cpu_s"],
    )
