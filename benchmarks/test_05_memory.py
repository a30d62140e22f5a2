"""5. Redis memory per user after the Taobao replay and after a 10x synthetic stream, per key kind,
and the replay's peak RSS.

Each replay ran in a subprocess (``conftest.replay_subprocess``) into an empty private
redis-server: bytes/user = (``INFO memory`` used_memory after - before) / users, where users =
the number of ``rtp:d:*`` keys (one per user who got a decision; the HyperLogLog estimate is
shown beside). ``MEMORY USAGE`` (all samples) of 2,000 sampled keys of each kind, scaled to the
kind's key count, splits it up: ``d`` (decisions + context), ``p`` (profiles), ``pages``
(product pages: bucket hashes, listpacks), ``items`` (the catalogue hash) and the rest (meta,
HyperLogLog, dead letters); what ``MEMORY USAGE`` does not see (Redis's key and expiry tables,
its own overhead) is ``unattributed``. Peak RSS is ``VmHWM`` of the replay process (Bytewax and
Python; the redis-server is another process).

The 10x stream is ``python -m rtp.tools.synth --users 50000 --seed 7`` (~1M events of the
synthetic shop: prices, carts, queries, devices, prefixed ids), generated into pytest's tmp
dir.
"""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.conftest import RedisServer, Replayed, record, redis_keys_by_kind, replay_subprocess

SAMPLE = 2_000
SYNTH_USERS = 50_000


def memory_usage(r: Any, keys: list[bytes]) -> list[int]:
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.memory_usage(k, samples=0)
    return [int(x) for x in pipe.execute() if x is not None]


def breakdown(rp: Replayed) -> dict[str, Any]:
    """Keys, value sizes and ``MEMORY USAGE`` per kind (scaled from a sample)."""
    r = rp.server.client()
    kinds = redis_keys_by_kind(r)
    rng = random.Random(7)
    out: dict[str, Any] = {"keys": {k: len(v) for k, v in kinds.items()}}
    for kind, keys in kinds.items():
        sample = rng.sample(keys, min(SAMPLE, len(keys)))
        sizes = memory_usage(r, sample)
        mean = sum(sizes) / len(sizes) if sizes else 0.0
        out[f"{kind}_bytes"] = mean * len(keys)
        out[f"{kind}_key_bytes"] = mean
        if kind in ("d", "p"):
            vals = [len(v) for v in r.mget(sample) if v is not None] if sample else []
            out[f"{kind}_value_bytes"] = sum(vals) / len(vals) if vals else 0.0
    pages = kinds.get("pages", [])
    out["pages"] = sum(int(r.hlen(k)) for k in pages)
    out["pages_listpack_share"] = (
        sum(r.object("encoding", k) == b"listpack" for k in pages) / len(pages) if pages else 0.0
    )
    sample = rng.sample(pages, min(50, len(pages)))
    values = [len(v) for k in sample for v in r.hvals(k)]
    out["page_value_bytes"] = sum(values) / len(values) if values else 0.0
    r.close()
    return out


def record_memory(benchmark: Any, tag: str, rp: Replayed, b: dict[str, Any]) -> None:
    before, after, report = rp.before, rp.after, rp.report
    users = b["keys"].get("d") or report["users"]
    grown = after["used_memory"] - before["used_memory"]
    kinds = ("d", "p", "pages", "items")
    attributed = sum(v for k, v in b.items() if k.endswith("_bytes") and k[:-6] in b["keys"])
    figures: dict[str, Any] = {
        f"{tag}redis_users": users,
        f"{tag}redis_users_hll": report["users"],
        f"{tag}redis_used_memory_growth_bytes": grown,
        f"{tag}redis_bytes_per_user": grown / users,
        f"{tag}redis_dataset_bytes_per_user": (
            after["used_memory_dataset"] - before["used_memory_dataset"]
        )
        / users,
        f"{tag}redis_decision_key_bytes": b.get("d_key_bytes", 0.0),
        f"{tag}redis_decision_value_bytes": b.get("d_value_bytes", 0.0),
        f"{tag}redis_profile_key_bytes": b.get("p_key_bytes", 0.0),
        f"{tag}redis_profile_value_bytes": b.get("p_value_bytes", 0.0),
        f"{tag}redis_profile_keys": b["keys"].get("p", 0),
        f"{tag}redis_pages": b["pages"],
        f"{tag}redis_page_value_bytes": b["page_value_bytes"],
        f"{tag}redis_page_bytes": b.get("pages_bytes", 0.0) / max(1, b["pages"]),
        f"{tag}redis_pages_listpack_share": b["pages_listpack_share"],
    }
    for kind in kinds:
        figures[f"{tag}redis_per_user_{kind}"] = b.get(f"{kind}_bytes", 0.0) / users
    figures[f"{tag}redis_per_user_other_keys"] = (
        attributed - sum(b.get(f"{k}_bytes", 0.0) for k in kinds)
    ) / users
    figures[f"{tag}redis_per_user_unattributed"] = (grown - attributed) / users
    figures[f"{tag}redis_keys"] = str(b["keys"])
    record(benchmark, **figures)


def test_redis_memory_per_user(benchmark: Any, taobao_replayed: Replayed) -> None:
    b = benchmark.pedantic(breakdown, args=(taobao_replayed,), rounds=1, iterations=1)
    record_memory(benchmark, "", taobao_replayed, b)


@pytest.fixture(scope="module")
def synth_replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    """``rtp.tools.synth --users 50000`` replayed (subprocess) into a private redis-server."""
    path = tmp_path_factory.mktemp("synth") / f"synth_{SYNTH_USERS}.jsonl"
    subprocess.run(
        [sys.executable, "-m", "rtp.tools.synth", "--users", str(SYNTH_USERS), "--seed", "7",
         "--out", str(path)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = RedisServer().start()
    before = server.used_memory()
    report = replay_subprocess([Path(path)], "jsonl", server.url, timeout=3_600)
    yield Replayed(server, before, report)
    server.close()


def test_redis_memory_per_user_synthetic_10x(benchmark: Any, synth_replayed: Replayed) -> None:
    b = benchmark.pedantic(breakdown, args=(synth_replayed,), rounds=1, iterations=1)
    record_memory(benchmark, "synth50k_", synth_replayed, b)


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
