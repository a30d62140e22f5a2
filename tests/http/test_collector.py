"""POST /v1/events over HTTP: shapes, Segment mapping, limits, dedupe, bots, IPs, backpressure."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import orjson
import pytest
import redis

from rtp.config import Settings
from rtp.http.segment import TRACK_EVENTS
from rtp.store import streams
from rtp.testing import RedisServer

from .conftest import BROWSER_UA, client, everything, serve, stream_events

IP = "81.2.69.160"  # a public address in GB


def track(name: str, i: int = 0, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": name,
        "userId": "u1",
        "messageId": f"m-{name}-{i}",
        "timestamp": time.time() + i,
        "context": {"userAgent": BROWSER_UA, "ip": IP},
        "properties": {"product_id": f"p{i}", "category": "sofas", "price": 499.0, **props},
    }


def test_one_rtp_event(http: httpx.Client, r: redis.Redis) -> None:
    event = {"v": 1, "type": "product_view", "user": "u1", "ts": time.time(), "item": "i1"}
    res = http.post("/v1/events", json=event)
    assert res.status_code == 202
    assert res.json() == {
        "accepted": 1, "appended": 1, "rejected": [], "duplicates": 0, "bots": 0, "ignored": 0,
    }  # fmt: skip
    [stored] = stream_events(r)
    assert stored["type"] == "product_view" and stored["item"] == "i1"
    assert stored["context"]["ua"] == BROWSER_UA  # the request's user agent fills a gap


def test_array_and_batch(http: httpx.Client, r: redis.Redis) -> None:
    t = time.time()
    events = [{"type": "page_view", "anon": "a1", "ts": t + i} for i in range(5)]
    assert http.post("/v1/events", json=events).json()["accepted"] == 5
    batch = {"batch": [track("Product Viewed", i) for i in range(3)], "sentAt": t}
    assert http.post("/v1/events", json=batch).json()["accepted"] == 3
    assert len(stream_events(r)) == 8


def test_the_202_body_counts_every_record(http: httpx.Client, r: redis.Redis) -> None:
    batch = [track("Product Viewed", i) for i in range(3)]
    batch.append({**track("No Such Event"), "messageId": "bad"})
    batch.append({"type": "identify", "userId": "u1", "traits": {"plan": "pro"}})
    batch.append({**track("Product Viewed", 9), "context": {"userAgent": "Googlebot/2.1"}})
    batch.append(7)
    res = http.post("/v1/events", json={"batch": batch})
    assert res.status_code == 202
    body = res.json()
    assert body["accepted"] == 3 and body["ignored"] == 1 and body["bots"] == 1
    assert [(x["index"], x["reason"]) for x in body["rejected"]] == [
        (3, "unknown_type"),
        (6, "invalid_json"),
    ]
    assert all(x["detail"] for x in body["rejected"])
    assert len(stream_events(r)) == body["appended"] == 3


@pytest.mark.parametrize("name", sorted(TRACK_EVENTS))
def test_every_segment_name_maps(http: httpx.Client, r: redis.Redis, name: str) -> None:
    call = track(name, query="Blue Sofa")
    if name == "order completed":
        call["properties"] = {
            "order_id": "o1",
            "products": [
                {"product_id": "p1", "category": "sofas", "price": 499},
                {"sku": "p2", "category": "lamps", "price": "19.90"},
            ],
        }
    res = http.post("/v1/events", json=call).json()
    assert res["accepted"] == 1, res
    got = stream_events(r)
    assert {e["type"] for e in got} == {TRACK_EVENTS[name]}
    if name == "order completed":
        assert [(e["item"], e["category"], e["price"]) for e in got] == [
            ("p1", "sofas", 499.0),
            ("p2", "lamps", 19.9),
        ]
    elif TRACK_EVENTS[name] == "search":
        assert got[0]["query"] == "blue sofa"
    else:
        assert got[0]["category"] == "sofas"
    assert got[0]["user"] == "u1"
    assert got[0]["context"]["country"] == "GB" and "ip" not in got[0]["context"]


def test_segment_fields(http: httpx.Client, r: redis.Redis) -> None:
    calls = [
        {
            "type": "page",
            "anonymousId": "anon-7",
            "name": "Help center",
            "timestamp": "2026-01-05T10:00:00Z",
            "context": {
                "page": {"referrer": "https://www.google.com/"},
                "campaign": {"name": "winter", "source": "newsletter", "medium": "email"},
            },
        },
        {"type": "page", "userId": 42, "timestamp": 1767607200000, "properties": {"path": "/"}},
        {"type": "screen", "userId": "u9", "name": "Home"},
    ]
    res = http.post("/v1/events", json={"batch": calls, "context": {"userAgent": BROWSER_UA}})
    assert res.json()["accepted"] == 3
    page, help_, screen = sorted(stream_events(r), key=lambda e: str(e.get("user", e.get("anon"))))
    assert help_["type"] == "help_view" and help_["anon"] == "anon-7"
    assert help_["ts"] == 1767607200.0
    assert help_["context"]["referrer"] == "https://www.google.com/"
    assert help_["context"]["utm"] == {
        "campaign": "winter",
        "source": "newsletter",
        "medium": "email",
    }
    assert help_["context"]["ua"] == BROWSER_UA  # from the batch's context
    assert page["type"] == "page_view" and page["user"] == "42" and page["ts"] == 1767607200.0
    assert screen["context"]["channel"] == "app" and abs(screen["ts"] - time.time()) < 60


def test_invalid_events_are_rejected_with_reasons(http: httpx.Client, r: redis.Redis) -> None:
    t = time.time()
    batch = [
        {"type": "product_view", "user": "u1", "ts": t},  # no item
        {"type": "search", "user": "u1", "ts": t},  # no query
        {"type": "page_view", "ts": t},  # no user
        {"type": "page_view", "user": "u1", "ts": "yesterday"},
        {"type": "page_view", "user": "u1", "ts": 15},  # garbage time
        {"type": "add_to_cart", "user": "u1", "ts": t, "item": "i1", "price": -3},
        {**track("Order Completed"), "properties": {}},
        {"type": "teleport", "user": "u1", "ts": t},
    ]
    res = http.post("/v1/events", json=batch).json()
    assert res["accepted"] == 0
    assert [x["reason"] for x in res["rejected"]] == [
        "missing_field", "missing_field", "missing_field", "invalid_field",
        "timestamp_out_of_range", "invalid_price", "missing_field", "unknown_type",
    ]  # fmt: skip
    assert stream_events(r) == []
    assert r.xlen("rtp:deadletter") == len(batch)


def test_dead_letters_hold_no_ip(http: httpx.Client, r: redis.Redis) -> None:
    bad = {**track("No Such Event"), "properties": {"note": f"seen at {IP}"}}
    res = http.post(
        "/v1/events", json=[bad, track("Product Viewed")], headers={"X-Forwarded-For": IP}
    )
    assert res.json()["accepted"] == 1
    [(_, entry)] = r.xrange("rtp:deadletter")
    assert entry[b"reason"] == b"unknown_type" and entry[b"pos"].startswith(b"http:")
    assert b"No Such Event" in entry[b"raw"]
    assert IP.encode() not in everything(r)


def test_invalid_json_and_shapes(http: httpx.Client) -> None:
    res = http.post("/v1/events", content=b"{not json")
    assert res.status_code == 400 and res.json()["error"]["code"] == "invalid_json"
    for body in (b"5", b'"x"', b'{"batch": 3}'):
        res = http.post("/v1/events", content=body)
        assert res.status_code == 400 and res.json()["error"]["code"] == "invalid_request"
    empty = http.post("/v1/events", json=[])
    assert empty.status_code == 202 and empty.json()["accepted"] == 0


def _raw_post(url: str, body: bytes, chunked: bool = False) -> tuple[int, bytes]:
    """POST over a plain socket (the whole body is sent before the answer is read)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        head = f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        if chunked:
            s.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            for i in range(0, len(body), 16_384):
                part = body[i : i + 16_384]
                s.sendall(b"%x\r\n%b\r\n" % (len(part), part))
            s.sendall(b"0\r\n\r\n")
        else:
            s.sendall((head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = s.recv(65_536)
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_request_over_500_kb_is_413(http: httpx.Client, server: Any, r: redis.Redis) -> None:
    body = b"[" + b",".join([b'{"type":"page_view","user":"x","ts":1}'] * 20_000) + b"]"
    assert len(body) > 500 * 1024
    res = http.post("/v1/events", content=body)
    assert res.status_code == 413 and res.json()["error"]["code"] == "request_too_large"
    status, data = _raw_post(server.url, body)
    assert status == 413 and b"request_too_large" in data
    status, data = _raw_post(server.url, body, chunked=True)  # no Content-Length: counted
    assert status == 413 and b"request_too_large" in data
    assert stream_events(r) == []


def test_event_over_32_kb(http: httpx.Client, r: redis.Redis) -> None:
    big = {**track("Product Viewed"), "properties": {"product_id": "p", "blob": "x" * 40_000}}
    res = http.post("/v1/events", json=big)
    assert res.status_code == 413 and res.json()["error"]["code"] == "event_too_large"
    res = http.post("/v1/events", json=[big, track("Product Viewed", 1)])
    assert res.status_code == 202
    body = res.json()
    assert body["accepted"] == 1 and body["rejected"][0]["reason"] == "oversized"


def test_retries_are_deduplicated(http: httpx.Client, r: redis.Redis) -> None:
    batch = {"batch": [track("Product Viewed", i) for i in range(3)]}
    assert http.post("/v1/events", json=batch).json()["accepted"] == 3
    again = http.post("/v1/events", json=batch).json()
    assert again["accepted"] == 0 and again["duplicates"] == 3
    # no messageId: a fingerprint of the record without its send time
    t = time.time()
    plain = {"type": "product_view", "user": "u2", "ts": t, "item": "i1"}
    assert http.post("/v1/events", json={**plain, "sentAt": t}).json()["accepted"] == 1
    assert http.post("/v1/events", json={**plain, "sentAt": t + 5}).json()["duplicates"] == 1
    assert http.post("/v1/events", json={**plain, "ts": t + 1}).json()["accepted"] == 1
    # the same messageId twice in one request
    twice = [track("Product Viewed", 7), track("Product Viewed", 7)]
    assert http.post("/v1/events", json=twice).json() | {"rejected": []} == {
        "accepted": 1, "appended": 1, "rejected": [], "duplicates": 1, "bots": 0, "ignored": 0,
    }  # fmt: skip
    assert len(stream_events(r)) == 3 + 2 + 1
    ttl = r.ttl(next(iter(r.scan_iter(match="rtp:seen:*"))))
    assert 0 < ttl <= 900


def test_concurrent_requests_are_committed_together_and_apart(
    http: httpx.Client, r: redis.Redis
) -> None:
    """Requests that arrive together share a group commit; each gets its own answer."""
    from concurrent.futures import ThreadPoolExecutor

    calls = [{"batch": [track("Product Viewed", i), track("Product Viewed", 100 + i)]}
             for i in range(30)]  # fmt: skip
    calls += [{"batch": [track("Product Viewed", 0)]}] * 5  # the same record as call 0's first
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda c: http.post("/v1/events", json=c).json(), calls))
    assert sum(a["accepted"] for a in answers) == 60
    assert sum(a["duplicates"] for a in answers) == 5
    assert all(
        a["accepted"] + a["duplicates"] == len(c["batch"])
        for a, c in zip(answers, calls, strict=True)
    )
    assert len(stream_events(r)) == 60


def test_bots_are_dropped(server: Any, redis_url: str, r: redis.Redis) -> None:
    event = {"type": "page_view", "user": "u1", "ts": time.time()}
    with client(
        server, headers={"User-Agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"}
    ) as c:
        res = c.post("/v1/events", json=[event, {**event, "context": {"ua": BROWSER_UA}}]).json()
    assert res["bots"] == 1 and res["accepted"] == 1
    [stored] = stream_events(r)
    assert stored["context"]["ua"] == BROWSER_UA


def test_request_ip_is_used_only_through_forwarded_when_trusted(
    redis_url: str, r: redis.Redis
) -> None:
    event = {"type": "page_view", "user": "u1", "ts": time.time()}
    hop = {"X-Forwarded-For": f"{IP}, 10.0.0.1"}
    with serve(redis_url, trust_forwarded=True) as s, client(s) as c:
        assert c.post("/v1/events", json=event, headers=hop).json()["accepted"] == 1
    with serve(redis_url) as s, client(s) as c:  # not trusted: the peer (loopback) is used
        assert (
            c.post("/v1/events", json={**event, "ts": event["ts"] + 1}, headers=hop).status_code
            == 202
        )
    first, second = sorted(stream_events(r), key=lambda e: e["ts"])
    assert first["context"].get("country") == "GB"
    assert "country" not in second["context"]
    assert IP.encode() not in everything(r)


def test_backpressure_is_429_and_nothing_is_kept(redis_url: str, r: redis.Redis) -> None:
    config = streams.configure(r, streams.StreamConfig("rtp:events", partitions=1, max_backlog=5))
    streams.append(r, [{"type": "page_view", "user": "x", "ts": time.time()}] * 5)
    batch = {"batch": [track("Product Viewed", i) for i in range(3)]}
    with serve(redis_url) as s, client(s) as c:
        res = c.post("/v1/events", json=batch)
        assert res.status_code == 429
        assert res.json()["error"]["code"] == "backpressure"
        assert int(res.headers["Retry-After"]) >= 1
        assert r.xlen(config.names()[0]) == 5
        assert list(r.scan_iter(match="rtp:seen:*")) == []  # the retry is not a duplicate
        metrics = c.get("/metrics").text
    r.hset("rtp:events:config", "max_backlog", 100)  # the flow caught up
    with serve(redis_url) as s, client(s) as c:  # (a fresh producer: no cached config)
        res = c.post("/v1/events", json=batch)
        assert res.status_code == 202 and res.json()["accepted"] == 3
    assert 'rtp_http_backpressure_total{worker="' in metrics
    assert r.xlen(config.names()[0]) == 8


def test_redis_down_is_503_then_recovers(own_redis: RedisServer) -> None:
    with serve(own_redis.url, rtp=Settings(redis_url=own_redis.url, redis_timeout_s=0.5)) as s:
        own_redis.stop()
        with client(s) as c:
            res = c.post("/v1/events", json={"type": "page_view", "user": "u", "ts": time.time()})
            assert res.status_code == 503 and res.headers["Retry-After"] == "1"
            assert res.json()["error"]["code"] == "store_unavailable"
            assert c.get("/healthz").status_code == 503
            assert c.get("/v1/decisions/u").status_code == 503
            own_redis.start()  # back on the same port: the next requests reconnect
            assert c.get("/healthz").status_code == 200
            assert c.get("/v1/decisions/u").json()["mode"] == "fallback"
            event = {"type": "page_view", "user": "u", "ts": time.time()}
            assert c.post("/v1/events", json=event).json()["accepted"] == 1


def test_api_key(redis_url: str) -> None:
    event = {"type": "page_view", "user": "u1", "ts": time.time()}
    with serve(redis_url, api_key="s3cret") as s, client(s) as c:
        res = c.post("/v1/events", json=event)
        assert res.status_code == 401 and res.json()["error"]["code"] == "unauthorized"
        assert res.headers["WWW-Authenticate"] == "Bearer"
        assert c.post("/v1/events", json=event, headers={"X-API-Key": "nope"}).status_code == 401
        ok = c.post("/v1/events", json=event, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 202
        assert c.post("/v1/events", json=event, headers={"X-API-Key": "s3cret"}).status_code == 202
        assert c.delete("/v1/users/u1").status_code == 401
        assert c.delete("/v1/users/u1", headers={"X-API-Key": "s3cret"}).status_code == 202
        consent = c.put("/v1/users/u1/consent", json={"personalize": False})
        assert consent.status_code == 401
        assert c.get("/v1/decisions/u1").status_code == 200  # reads need no key
        assert c.get("/v1/edge-model").status_code == 200


def test_plan_is_fast_enough_to_matter() -> None:
    """The in-loop part of a 100-event batch (parse, map, validate, bots) stays well under 5 ms."""
    from rtp.http.collector import Collector
    from rtp.http.settings import ServeSettings

    collector = Collector(ServeSettings())
    body = orjson.dumps({"batch": [track("Product Viewed", i) for i in range(100)]})
    collector.plan(body)  # warm the user-agent cache
    t0 = time.perf_counter()
    for _ in range(10):
        plan = collector.plan(body)
    per_batch = (time.perf_counter() - t0) / 10
    assert len(plan.keys) == 100
    assert per_batch < 0.02, f"{per_batch * 1e3:.1f} ms per 100-event batch"
