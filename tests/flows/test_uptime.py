"""Weeks of uptime: the live flow through 30 simulated days with an injected clock.

The live flow runs on a real redis-server; the test owns the clock (the stream clock's "ahead"
check, the idle partitions' ticks and the lag all read it) and writes each day's events with
entry ids of that simulated time, so 30 days pass in seconds. Every day's events must be
accepted and decided, and memory must stay bounded: idle users leave after a day, items nobody
touched for a week are evicted from the item models.
"""

from __future__ import annotations

import threading

import orjson
import redis
from bytewax.testing import run_main

from rtp import streams
from rtp.client import Client
from rtp.config import Settings
from rtp.flow.ready import FlowSpec, build
from tests.builders import wait_for

DAY = 86_400.0
START = 1_800_000_000.0  # 2027-01-15: "now" of the simulation
DAYS = 30
USERS_A_DAY = 6


def test_thirty_simulated_days_of_live_traffic(redis_url: str) -> None:
    now = [START]
    r = redis.Redis.from_url(redis_url)
    settings = Settings(
        redis_url=redis_url, stream_partitions=1, max_ahead_s=3_600.0, item_ttl_s=7 * DAY
    )
    spec = FlowSpec(kind="live", run="uptime", metrics_mode="live")
    flow = build(spec, settings, clock=lambda: now[0])
    worker = threading.Thread(target=run_main, args=(flow,), daemon=True)
    worker.start()
    part = f"{streams.DEFAULT_STREAM}:0"
    seq = [0]

    def add(events: list[dict[str, object]]) -> None:
        ms = int(now[0] * 1000)
        for e in events:
            seq[0] += 1
            r.xadd(part, {streams.EVENT_FIELD: orjson.dumps(e)}, id=f"{ms}-{seq[0]}")

    client = Client.from_url(redis_url, settings)
    views = []
    for day in range(DAYS):
        now[0] = START + day * DAY
        users = [f"d{day}-u{k}" for k in range(USERS_A_DAY)]
        events = []
        for k, user in enumerate(users):
            for j in range(3):  # three views of that day's items, one category a day
                events.append({"v": 1, "type": "product_view", "user": user,
                               "ts": now[0] + 10 * k + j, "item": f"d{day}-i{(k + j) % 4}",
                               "category": f"c{day}", "price": 10.0 + j})  # fmt: skip
        add(events)
        now[0] += 60.0  # a minute later: the day's ticks are over
        assert wait_for(lambda us=users: all(client.decision(u) is not None for u in us)), day
        home = client.decision(users[0])
        assert home is not None and home["ts"] == START + day * DAY + 2
        stats = client.stats()
        views.append(stats)
    r.xadd(part, {streams.EOF_FIELD: b"1"}, id=f"{int(now[0] * 1000)}-{seq[0] + 1}")
    worker.join(timeout=30)
    assert not worker.is_alive()
    raw = r.get("rtp:meta:stats:uptime:u0")
    assert raw is not None
    stats = orjson.loads(raw)
    # every event of every day was accepted: none judged "in the future" by a stale horizon
    assert stats["events"] == DAYS * USERS_A_DAY * 3
    assert stats["rejected"] == 0
    # bounded: users idle for over a day left memory; items untouched for a week were evicted
    assert stats["users_in_memory"] <= 2 * USERS_A_DAY
    items_a_day = 4
    assert stats["view"]["items"] <= 9 * items_a_day  # ~ the last week's items, not 30 days'
    assert Client(r).stats()["items"] <= 9 * items_a_day
