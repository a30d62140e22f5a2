"""9. The HTTP doors over loopback: the collector, the decision API, event -> decision over HTTP,
the read path's Redis client, and rtp.js in a real browser.

Every server here is ``rtp serve --redis-url URL`` in a subprocess (one uvicorn worker, whatever
HTTP implementation uvicorn finds: h11 unless ``httptools`` is installed; the figures say which),
driven by the raw-socket asyncio load generator of ``benchmarks/_http_load.py`` in this process:
both share the machine's cores with redis-server (and, for freshness, ``rtp live``).

- collector: single events and batches of 100 (Segment ``Product Viewed`` calls with a user
  agent and an IP), 16 connections, closed loop; events/s per worker, every request answered and
  accepted == appended (the stream's length grows by exactly what the 202 bodies accepted);
- decisions: ``GET /v1/decisions/{user}?placement=home`` for 10,000 users with realistic
  documents, at 1, 8 and 64 concurrent clients (closed loop: a client sends its next request when
  the answer arrives, so at 64 clients the latency is 64 / throughput), and 64 connections at a
  fixed rate (open loop, half the measured capacity: the latency a site sees when it is not
  saturating the worker);
- read paths: one ``GET`` through ``redis.asyncio``, a blocking redis-py call in a thread and
  ``rtp.http.resp.AsyncRedis`` (what the app uses), in one process;
- freshness: ``rtp live`` + ``rtp serve``; background load of 500 events/s; probes post one
  product view for a new user and poll ``placement=recent`` until the item shows (p50/p99);
- rtp.js: gzipped bytes of what ``/rtp.js`` serves, and the edge evaluation time in chromium
  (``rtp.edgeMs``: ``performance.now()`` around the rule match) with a 75-rule edge model.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gzip
import http.client
import importlib.util
import os
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from benchmarks._http_load import Result, request, run_closed, run_open, serve
from benchmarks.conftest import RedisServer, percentile, record
from rtp.store import streams

UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPS = ("81.2.69.160", "8.8.8.8", "194.25.0.68", "133.242.0.3")
USERS = 10_000
TABLE: list[tuple[str, str, str]] = []  # (figure, value, target) printed at the end
HTTP_IMPL = "httptools" if importlib.util.find_spec("httptools") else "h11"


def note(name: str, value: str, target: str = "") -> None:
    TABLE.append((name, value, target))


@pytest.fixture(scope="module", autouse=True)
def _table() -> Iterator[None]:
    yield
    if TABLE:
        print(
            f"\n\nHTTP doors (loopback, 1 uvicorn worker, {HTTP_IMPL}, nproc={os.cpu_count()}, "
            f"load avg {os.getloadavg()[0]:.2f})"
        )
        for name, value, target in TABLE:
            print(f"  {name:<46} {value:>18}   {target}")


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def port(redis_server: RedisServer) -> Iterator[int]:
    with serve(redis_server.url) as (p, _):
        yield p


def _stream_length(r: redis.Redis) -> int:
    names = streams.partition_names("rtp:events", streams.read_config(r, cache=False).partitions)
    return sum(int(r.xlen(n)) for n in names)


def _event(n: int, now: float) -> dict[str, Any]:
    return {
        "type": "track",
        "event": "Product Viewed",
        "userId": f"u{n % USERS}",
        "messageId": f"bench-{n}",
        "timestamp": now + (n % 10_000) * 1e-3,
        "context": {"userAgent": UA, "ip": IPS[n % len(IPS)]},
        "properties": {"product_id": f"i{n % 5_000}", "category": f"c{n % 24}", "price": 19.9},
    }


def _accepted(res: Result) -> int:
    return sum(orjson.loads(b)["accepted"] for b in res.bodies)


def _collector(benchmark: Any, port: int, r: redis.Redis, name: str, per: int, n_req: int) -> None:
    now = time.time()
    start = int(now * 1000) % 1_000_000_000 * 1000  # messageIds unique across runs
    bodies = []
    for k in range(n_req + 50):
        events = [_event(start + k * per + j, now) for j in range(per)]
        bodies.append(orjson.dumps(events[0] if per == 1 else {"batch": events}))
    reqs = [request("POST", "/v1/events", b) for b in bodies]
    run_closed(port, reqs[:50], 16)  # warm-up
    before = _stream_length(r)
    out: list[Result] = []
    benchmark.pedantic(
        lambda: out.append(run_closed(port, reqs[50:], 16, keep_bodies=True)),
        rounds=1,
        iterations=1,
    )
    res = out[0]
    appended = _stream_length(r) - before
    accepted = _accepted(res)
    rate = res.answered * per / res.wall_s
    record(
        benchmark,
        **{
            f"{name}_events_per_s": rate,
            f"{name}_requests": res.sent,
            f"{name}_answered": res.answered,
            f"{name}_p50_ms": percentile(res.latencies_ms, 50),
            f"{name}_p99_ms": percentile(res.latencies_ms, 99),
            f"{name}_accepted": accepted,
            f"{name}_appended": appended,
        },
    )
    target = ">= 5,000 events/s per worker" if per > 1 else ""
    note(f"{name} events/s", f"{rate:,.0f}", target)
    note(
        f"{name} request p50 / p99 ms",
        f"{percentile(res.latencies_ms, 50):.1f} / {percentile(res.latencies_ms, 99):.1f}",
    )
    note(
        f"{name} answered / accepted / appended",
        f"{res.answered}/{accepted}/{appended}",
        "every request answered, accepted == appended",
    )
    assert res.answered == res.sent == n_req and res.statuses == {202: n_req}
    assert accepted == appended == n_req * per


def test_collector_single_events(benchmark: Any, port: int, redis_server: RedisServer) -> None:
    r = redis_server.client()
    _collector(benchmark, port, r, "collector_single", 1, 4_000)


def test_collector_batches_of_100(benchmark: Any, port: int, redis_server: RedisServer) -> None:
    r = redis_server.client()
    _collector(benchmark, port, r, "collector_batch100", 100, 400)


@pytest.fixture(scope="module")
def decisions(redis_server: RedisServer) -> None:
    """10,000 users with a decision document like the flow's (20 home items and the context)."""
    r = redis_server.client()
    rng = random.Random(3)
    pipe = r.pipeline(transaction=False)
    now = time.time()
    for u in range(USERS):
        items = [f"i{rng.randrange(5_000)}" for _ in range(20)]
        doc = {
            "home": {
                "items": items,
                "scores": [round(rng.random(), 3) for _ in items],
                "why": "".join(rng.choice("rvkpfx") for _ in items),
                "reason": "trending now",
            },
            "hero": {"theme": "category:c3", "reason": "you browse c3"},
            "offer": "no_intent",
            "assist": "no_frustration",
            "v": 1,
            "ts": now,
            "mode": "ranked",
            "model": "lr-9",
            "ctx": {
                "categories": [["c3", 0.7], ["c9", 0.3]],
                "recent": items[:4],
                "cart": [],
                "price": [10.0, 40.0],
                "device": "mobile",
                "referral": "search",
                "hour": 20,
            },
        }
        pipe.set(f"rtp:d:u{u}", orjson.dumps(doc))
    pipe.set("rtp:meta:fallback", orjson.dumps([f"i{k}" for k in range(50)]))
    pipe.execute()


def _decision_requests(n: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [
        request("GET", f"/v1/decisions/u{rng.randrange(USERS)}?placement=home") for _ in range(n)
    ]


CAPACITY: dict[str, float] = {}


@pytest.mark.parametrize("clients", [1, 8, 64])
def test_decisions_closed_loop(benchmark: Any, port: int, decisions: None, clients: int) -> None:
    n = {1: 3_000, 8: 6_000, 64: 10_000}[clients]
    reqs = _decision_requests(n + 500, clients)
    run_closed(port, reqs[:500], clients)  # warm-up
    out: list[Result] = []
    benchmark.pedantic(
        lambda: out.append(run_closed(port, reqs[500:], clients)), rounds=1, iterations=1
    )
    res = out[0]
    assert res.statuses == {200: n}
    rate = res.answered / res.wall_s
    CAPACITY["rps"] = max(CAPACITY.get("rps", 0.0), rate)
    p50, p99 = percentile(res.latencies_ms, 50), percentile(res.latencies_ms, 99)
    record(
        benchmark,
        **{
            f"decisions_c{clients}_p50_ms": p50,
            f"decisions_c{clients}_p99_ms": p99,
            f"decisions_c{clients}_requests_per_s": rate,
        },
    )
    target = "p99 <= 5 ms" if clients == 64 else ""
    note(f"GET /v1/decisions, {clients} clients p50 / p99 ms", f"{p50:.2f} / {p99:.2f}", target)
    note(f"GET /v1/decisions, {clients} clients requests/s", f"{rate:,.0f}")


def test_decisions_open_loop_64(benchmark: Any, port: int, decisions: None) -> None:
    rate = max(200.0, 0.5 * CAPACITY.get("rps", 1_000.0))
    n = int(rate * 8)
    reqs = _decision_requests(n, 64)
    out: list[Result] = []
    benchmark.pedantic(lambda: out.append(run_open(port, reqs, rate, 64)), rounds=1, iterations=1)
    res = out[0]
    assert res.statuses == {200: n}
    p50, p99 = percentile(res.latencies_ms, 50), percentile(res.latencies_ms, 99)
    record(
        benchmark,
        decisions_open64_rate=rate,
        decisions_open64_p50_ms=p50,
        decisions_open64_p99_ms=p99,
    )
    note(
        f"GET /v1/decisions, 64 conns at {rate:,.0f}/s p50 / p99 ms",
        f"{p50:.2f} / {p99:.2f}",
        "p99 <= 5 ms",
    )


def test_read_paths(benchmark: Any, redis_server: RedisServer, decisions: None) -> None:
    """One GET of a decision document by each way the app could read Redis."""
    import redis.asyncio as aioredis

    from rtp.http.resp import AsyncRedis

    url, n = redis_server.url, 3_000
    keys = [f"rtp:d:u{k}" for k in range(n)]
    sync = redis.Redis.from_url(url)
    figures: dict[str, float] = {}

    async def measure() -> None:
        loop = asyncio.get_running_loop()
        a = aioredis.Redis.from_url(url)
        ours = AsyncRedis(url)
        pool = concurrent.futures.ThreadPoolExecutor(8)
        for name, call in (
            ("redis_asyncio", lambda k: a.get(k)),
            ("thread_pool", lambda k: loop.run_in_executor(pool, sync.get, k)),
            ("asyncredis", lambda k: ours.get(k)),
        ):
            for k in keys[:200]:
                await call(k)
            t0 = time.perf_counter()
            for k in keys:
                await call(k)
            figures[f"read_{name}_us"] = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for i in range(0, n, 64):
            await asyncio.gather(*(ours.get(k) for k in keys[i : i + 64]))
        figures["read_asyncredis_64_concurrent_us"] = (time.perf_counter() - t0) / n * 1e6
        await a.aclose()
        await ours.aclose()
        pool.shutdown()

    benchmark.pedantic(lambda: asyncio.run(measure()), rounds=1, iterations=1)
    sync.close()
    record(benchmark, **figures)
    note(
        "one GET: redis.asyncio / thread / AsyncRedis us",
        f"{figures['read_redis_asyncio_us']:.0f} / {figures['read_thread_pool_us']:.0f} / "
        f"{figures['read_asyncredis_us']:.0f}",
    )
    note(
        "one GET: AsyncRedis, 64 concurrent us",
        f"{figures['read_asyncredis_64_concurrent_us']:.0f}",
    )


def test_event_to_decision_over_http(benchmark: Any) -> None:
    """500 events/s in; probes measure post -> visible in GET /v1/decisions (placement=recent)."""
    from rtp.http.live import start_live, stop_live, wait_ready

    server = RedisServer().start()
    r = server.client()
    proc = start_live(server.url)
    try:
        wait_ready(proc, r)
        with serve(server.url) as (p, _):
            lat = _freshness(p)
    finally:
        stop_live(proc)
        server.close()
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    p50, p99 = percentile(lat, 50), percentile(lat, 99)
    record(
        benchmark,
        http_freshness_probes=len(lat),
        http_freshness_p50_ms=p50,
        http_freshness_p99_ms=p99,
    )
    note(
        "event -> decision over HTTP at 500 ev/s p50 / p99 ms",
        f"{p50:.0f} / {p99:.0f}",
        f"{len(lat)} probes",
    )


def _freshness(port: int, seconds: float = 20.0, probes_per_s: float = 8.0) -> list[float]:
    now = time.time()
    per, rate = 10, 50.0  # 10 events per request, 50 requests/s: 500 events/s
    n_req = int(seconds * rate) + 100
    bodies = [
        orjson.dumps({"batch": [_event(10**8 + k * per + j, now) for j in range(per)]})
        for k in range(n_req)
    ]
    background: list[Result] = []
    loader = threading.Thread(
        target=lambda: background.append(
            run_open(
                port,
                [request("POST", "/v1/events", b) for b in bodies],
                rate,
                4,
                deadline_s=seconds + 5,
            )
        )
    )
    loader.start()
    post = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    poll = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    lat: list[float] = []
    t_end = time.monotonic() + seconds
    k = 0
    while time.monotonic() < t_end:
        k += 1
        user, item = f"probe-{k}", f"probe-item-{k}"
        event = {
            "type": "product_view",
            "user": user,
            "ts": time.time(),
            "item": item,
            "category": "c1",
            "price": 9.9,
            "context": {"ua": UA},
        }
        t0 = time.perf_counter()
        post.request("POST", "/v1/events", orjson.dumps(event), {"User-Agent": UA})
        assert post.getresponse().read() and True
        deadline = t0 + 10.0
        while time.perf_counter() < deadline:
            poll.request("GET", f"/v1/decisions/{user}?placement=recent&fallback=0")
            res = poll.getresponse()
            body = res.read()
            if res.status == 200 and item.encode() in body:
                lat.append((time.perf_counter() - t0) * 1e3)
                break
            time.sleep(0.002)
        time.sleep(max(0.0, 1.0 / probes_per_s - (time.perf_counter() - t0)))
    loader.join()
    assert background and set(background[0].statuses) == {202}
    return lat


def test_rtp_js(benchmark: Any, redis_server: RedisServer) -> None:
    """The served rtp.js gzipped, and its edge evaluation time in chromium (75-rule model)."""
    from rtp.config import Settings
    from rtp.http import ServeSettings, create_app
    from rtp.http.app import compact_js, static_bytes
    from rtp.http.demo.seed import edge_model_of, history
    from rtp.http.testing import ServerThread

    js_gz = len(gzip.compress(compact_js(static_bytes("rtp.js")), 9))
    doc = edge_model_of(history(400)).document()
    edge_gz = len(gzip.compress(orjson.dumps(doc), 9))
    record(
        benchmark,
        rtp_js_gzip_bytes=js_gz,
        edge_model_gzip_bytes=edge_gz,
        edge_model_rules=len(doc["rules"]),
    )
    note("rtp.js served, gzipped bytes", f"{js_gz:,}", "<= 4,096")
    note(f"edge model ({len(doc['rules'])} rules), gzipped bytes", f"{edge_gz:,}", "<= 8,192")
    chromium = os.environ.get("RTP_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        benchmark.pedantic(lambda: None, rounds=1, iterations=1)
        pytest.skip(f"no chromium at {chromium}: the evaluation time is not measured")
    from playwright.sync_api import sync_playwright

    from rtp.http.testing import CHROMIUM_ARGS, IPHONE_UA

    r = redis_server.client()
    r.set("rtp:meta:edge", orjson.dumps(doc))
    app = create_app(ServeSettings(rtp=Settings(redis_url=redis_server.url), demo=True))
    times: list[float] = []
    with ServerThread(app) as shop, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        ctx = browser.new_context(user_agent=IPHONE_UA)
        ctx.route("**/v1/decisions/**", lambda route: route.abort())

        def loads() -> None:
            for _ in range(20):
                page = ctx.new_page()
                page.goto(shop.url + "/shop/", referer="https://www.google.com/")
                page.wait_for_function("rtp.edgeMs !== undefined")
                times.append(float(page.evaluate("rtp.edgeMs")))
                page.close()

        benchmark.pedantic(loads, rounds=1, iterations=1)
        browser.close()
    record(
        benchmark, rtp_js_edge_eval_ms_p50=percentile(times, 50), rtp_js_edge_eval_ms_max=max(times)
    )
    note(
        "rtp.js edge evaluation in chromium p50 / max ms",
        f"{percentile(times, 50):.2f} / {max(times):.2f}",
        "(timer resolution 0.1 ms)",
    )
