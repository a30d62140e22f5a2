"""4. Read latency at request time, after a Taobao replay: ``rtp.Client.decision`` and
``Client.rerank`` of 100 items, p50/p99 over single calls (one call at a time, as one request
handler does), against the private redis-server the replay filled (localhost TCP).

Users are drawn at random from those with a decision key; rerank gets 100 item ids: the
user's 20 home items and 80 random items of the catalogue (the items hash), shuffled.
"""

from __future__ import annotations

import random
import time
from typing import Any

from benchmarks.conftest import Replayed, freeze_gc, percentile, record
from rtp.client import Client

CALLS = 20_000
RERANK_CALLS = 5_000
ROUNDS = 3  # the headline p99 is the median of the rounds' p99s (one noisy round shows apart)


def summarize(benchmark: Any, name: str, rounds: list[list[float]]) -> None:
    p99s = [percentile(lat, 99) for lat in rounds]
    pooled = [x for lat in rounds for x in lat]
    record(
        benchmark,
        **{
            f"{name}_calls": len(pooled),
            f"{name}_p50_ms": percentile(pooled, 50),
            f"{name}_p99_ms": sorted(p99s)[len(p99s) // 2],
            f"{name}_p99_ms_per_round": str([round(x, 3) for x in p99s]),
            f"{name}_p99_ms_pooled": percentile(pooled, 99),
            f"{name}_max_ms": max(pooled),
        },
    )


def _users(rp: Replayed, n: int) -> list[str]:
    r = rp.server.client()
    users = [k[len(b"rtp:d:") :].decode() for k in r.scan_iter(match="rtp:d:*", count=10_000)]
    r.close()
    rng = random.Random(7)
    return [rng.choice(users) for _ in range(n)]


def _timed(fn: Any, args: list[tuple[Any, ...]]) -> list[float]:
    out: list[float] = []
    clock = time.perf_counter_ns
    for a in args:
        t = clock()
        fn(*a)
        out.append((clock() - t) / 1e6)
    return out


def test_decision_read(benchmark: Any, taobao_replayed: Replayed) -> None:
    client = Client.from_url(taobao_replayed.server.url)
    users = _users(taobao_replayed, CALLS)
    _timed(client.decision, [(u, "home") for u in users[:1_000]])  # warm-up: connection, caches
    rounds: list[list[float]] = []
    args = [(u, "home") for u in users]
    freeze_gc()

    def once() -> None:
        rounds.append(_timed(client.decision, args))

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    found = sum(client.decision(u, "home") is not None for u in users[:1_000])
    client.close()
    summarize(benchmark, "decision_read", rounds)
    record(benchmark, decision_read_found_share=found / 1_000)


def test_rerank_100(benchmark: Any, taobao_replayed: Replayed) -> None:
    url = taobao_replayed.server.url
    client = Client.from_url(url)
    r = taobao_replayed.server.client()
    catalogue = [k.decode() for k in r.hkeys("rtp:items")]
    r.close()
    rng = random.Random(11)
    calls: list[tuple[Any, ...]] = []
    for u in _users(taobao_replayed, RERANK_CALLS):
        d = client.decision(u, "home") or {}
        home = [str(i[0]) for i in d.get("items", [])][:20]
        items = home + rng.sample(catalogue, 100 - len(home))
        rng.shuffle(items)
        calls.append((u, "", items))
    _timed(client.rerank, calls[:500])  # warm-up (the item cache fills as in a live server)
    rounds: list[list[float]] = []
    freeze_gc()  # the 500,000 prepared ids are the benchmark's, not the client's heap

    def once() -> None:
        rounds.append(_timed(client.rerank, calls))

    benchmark.pedantic(once, rounds=ROUNDS, iterations=1)
    client.close()
    summarize(benchmark, "rerank100", rounds)
