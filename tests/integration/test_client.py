"""Client against a real redis-server: reads, rerank, forget / do-not-personalize, stats."""

from __future__ import annotations

import copy
import socket
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import redis

from rtp import streams
from rtp.capture.events import Event, parse_json
from rtp.client import Client
from rtp.config import Settings
from rtp.decisions.reasons import item_reason, quiet_reason
from rtp.errors import StoreUnavailable
from rtp.store.store import Store, await_reply, item_key
from tests.conftest import RedisServer

DOC: dict[str, Any] = {
    "v": 1,
    "ts": 1511658000.0,
    "mode": "ranked",
    "model": "lr-42",
    "exp": {"name": "rt-vs-batch", "arm": "realtime"},
    "ctx": {
        "session": "1",
        "events": 3,
        "categories": [["shoes", 0.7], ["bags", 0.3]],
        "price": [10.0, 80.0],
        "queries": ["shoes"],
        "recent": ["r1", "r2"],
        "cart": ["k1"],
        "device": "mobile",
        "country": "DE",
        "referral": "search",
        "hour": 9,
    },
    # the stored form: ids, scores and one reason character per item (rtp.decisions.reasons.CHAR)
    "home": {
        "items": ["h1", "h2"],
        "scores": [0.9, 0.2],
        "why": "rk",
        "reason": "because you viewed",
    },
    "offer": "no_intent",  # a quiet placement is stored as its reason code
}
# product pages are stored once per item (P n:{item}), shared by every user on that page
NEIGHBOURS: dict[str, dict[str, Any]] = {
    "r1": {"items": ["p1", "r1", "p2"], "scores": [0.5, 0.4, 0.1]},
    "p1": {"items": ["r2"], "scores": [1.0]},
}
ITEMS = {
    "shoe-cheap": b"shoes|20.0",
    "shoe-dear": b"shoes|500",
    "bag": b"bags|",
    "toy": b"toys|30",
    "noprice": b"shoes|",
    "badprice": b"shoes|n/a",
    "r1": b"toys|1000",
    "k1": b"toys|1000",
    "h1": b"toys|1000",
    "h2": b"toys|1000",
}
STALE = "shoe-dear"  # in a bucket, and with an older value in the hash of earlier versions


@pytest.fixture()
def raw(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    r.set("rtp:d:u1", orjson.dumps(DOC))
    r.set("rtp:p:u1", orjson.dumps({"cats": {"shoes": 2.0}}))
    # the catalogue: half in its buckets, half in the one hash earlier versions wrote (read
    # until a flow moves it), and one old entry that its bucket has since replaced
    for n, (item, value) in enumerate(ITEMS.items()):
        r.hset(item_key("rtp:", item) if n % 2 else "rtp:items", item, value)
    r.hset("rtp:items", STALE, b"stale|1")
    for item, page in NEIGHBOURS.items():
        r.set(f"rtp:n:{item}", orjson.dumps(page))
    yield r
    r.close()


@pytest.fixture(params=[0, Settings().read_spin_us], ids=["blocking-reads", "polling-reads"])
def client(redis_url: str, raw: redis.Redis, request: pytest.FixtureRequest) -> Iterator[Client]:
    """Every read test runs with replies awaited by blocking, and by polling first."""
    with Client.from_url(redis_url, Settings(read_spin_us=request.param)) as c:
        yield c


def test_context_profile_decision(client: Client) -> None:
    assert client.context("u1") == DOC["ctx"]
    assert client.profile("u1") == {"cats": {"shoes": 2.0}}
    home = client.decision("u1")
    assert home is not None
    assert home["items"] == [["h1", 0.9], ["h2", 0.2]]  # public form: [id, score] pairs
    assert home["why"] == ["re", "cat"]
    assert home["reasons"] == [item_reason("re"), item_reason("cat")]
    assert home["reason"] == DOC["home"]["reason"]
    for name in ("ts", "mode", "model", "exp"):
        assert home[name] == DOC[name]
    assert home["placement"] == "home"
    # product defaults to the page the user is on (ctx.recent[0]) and never lists that item
    product = client.decision("u1", "product")
    assert product is not None and product["for"] == "r1" and product["placement"] == "product"
    assert product["items"] == [["p1", 0.5], ["p2", 0.1]]
    assert product["reason"]
    for name in ("ts", "mode", "model", "exp"):
        assert product[name] == DOC[name]
    other = client.decision("u1", "product", item="p1")
    assert other is not None and other["for"] == "p1" and other["items"] == [["r2", 1.0]]
    assert client.decision("u1", "product", item="no-page") is None
    assert client.decision("nobody", "product", item="r1") is None
    # a quiet placement comes back with its sentence and code
    offer = client.decision("u1", "offer")
    assert offer is not None
    assert (offer["show"], offer["code"]) == (False, "no_intent")
    assert offer["reason"] == quiet_reason("no_intent")
    # recent / nav are derived from the context
    recent = client.decision("u1", "recent")
    assert recent is not None and recent["items"] == ["k1", "r1", "r2"]  # cart first
    nav = client.decision("u1", "nav")
    assert nav is not None and nav["categories"][0] == "shoes"
    assert client.decisions("u1") == DOC


def test_absent_cases(client: Client, raw: redis.Redis) -> None:
    assert client.context("nobody") is None
    assert client.profile("nobody") is None
    assert client.decision("nobody") is None
    assert client.decision("u1", "no-such-placement") is None
    raw.set("rtp:d:u2", orjson.dumps({"v": 1, "ts": 1.0, "home": {"items": []}}))
    assert client.context("u2") is None
    decided = client.decision("u2")
    assert decided is not None and "model" not in decided and decided["ts"] == 1.0


def test_rerank_orders_by_context_and_is_a_permutation(client: Client) -> None:
    ids = ["toy", "unknown-item", "noprice", "shoe-dear", "bag", "shoe-cheap", "badprice"]
    out = client.rerank("u1", "shoes", ids)
    assert sorted(out) == sorted(ids) and len(out) == len(ids)
    assert all(any(o is i for i in ids) for o in out)  # the same objects
    # shoes (weight 0.7) in the price band beat shoes outside it, which beat bags (0.3);
    # items without any signal keep their input order at the end
    assert out.index("shoe-cheap") < out.index("shoe-dear")
    assert out.index("shoe-cheap") < out.index("noprice")
    assert out.index("noprice") < out.index("badprice")  # same score: input order
    assert out.index("noprice") < out.index("bag")
    assert out.index("bag") < out.index("toy")  # a weak category beats a price match alone
    assert out.index("toy") < out.index("unknown-item")  # the price match beats nothing


def test_rerank_session_signals(client: Client) -> None:
    ids = ["zzz", "h2", "k1", "r1", "h1"]
    out = client.rerank("u1", "shoes", ids)
    # in the home list with score 0.9, viewed recently, in the cart, home 0.2, nothing
    assert out == ["h1", "r1", "k1", "h2", "zzz"]


def test_rerank_ties_keep_input_order_and_types(client: Client) -> None:
    ids: list[Any] = [7, "zzz", 3, "yyy", 5]  # nothing known about any of them
    assert client.rerank("u1", "shoes", ids) == ids
    mixed: list[Any] = [7, 3, "toy", 5]
    out = client.rerank("u1", "shoes", mixed)
    assert out == ["toy", 7, 3, 5]
    assert [type(x) for x in out] == [str, int, int, int]
    assert client.rerank("u1", "shoes", []) == []
    assert client.rerank("u1", "shoes", ("bag",)) == ["bag"]


def test_rerank_unknown_and_dnp_users_keep_input_order(client: Client, raw: redis.Redis) -> None:
    ids = ["toy", "bag", "shoe-cheap"]
    assert client.rerank("stranger", "shoes", ids) == ids
    raw.sadd("rtp:dnp", "u1")
    assert client.rerank("u1", "shoes", ids) == ids


def test_rerank_new_query_weakens_category(client: Client, raw: redis.Redis) -> None:
    doc = copy.deepcopy(DOC)
    doc["ctx"]["recent"] = ["toy"]
    doc["ctx"]["price"] = [0.0, 0.0]
    doc["ctx"]["categories"] = [["shoes", 0.9]]
    raw.set("rtp:d:u3", orjson.dumps(doc))
    ids = ["shoe-cheap", "toy"]
    # shoes 0.9 beat a recent view (0.5) for the session's query, not for a new one (0.45)
    assert client.rerank("u3", "Shoes", ids) == ["shoe-cheap", "toy"]
    assert client.rerank("u3", "garden hose", ids) == ["toy", "shoe-cheap"]


def _stream_events(raw: redis.Redis) -> list[Event]:
    out = []
    config = streams.read_config(raw, streams.DEFAULT_STREAM, cache=False)
    for name in config.names():  # a user's events are all in one partition, in order
        for _, fields in raw.xrange(name):
            e = parse_json(fields[streams.EVENT_FIELD], "stream")
            assert isinstance(e, Event)
            out.append(e)
    return out


def test_forget_deletes_now_and_leaves_a_tombstone_for_the_flows(
    client: Client, raw: redis.Redis, redis_url: str
) -> None:
    raw.sadd("rtp:dnp", "u1")
    raw.set("rtp:d:u1", b"{}")
    client.forget("u1")
    assert raw.exists("rtp:d:u1", "rtp:p:u1") == 0
    assert raw.sismember("rtp:dnp", "u1")  # the do-not-personalize wish is kept
    assert _stream_events(raw) == []  # no control event naming the user in the stream
    stones = Store.from_url(redis_url).tombstones(["u1"])
    assert list(stones) == ["u1"] and abs(stones["u1"] - time.time()) < 60


def test_do_not_personalize_round_trip(client: Client, raw: redis.Redis) -> None:
    client.set_do_not_personalize("u1")
    assert client.is_do_not_personalize("u1")
    assert raw.exists("rtp:d:u1") == 0  # personalized decisions are withdrawn at once
    assert raw.exists("rtp:p:u1") == 1  # the profile is not forgotten
    client.set_do_not_personalize("u1", False)
    assert not client.is_do_not_personalize("u1")
    events = _stream_events(raw)
    assert [(e.type, e.user, e.dnp) for e in events] == [("dnp", "u1", True), ("dnp", "u1", False)]


def test_stats(client: Client, raw: redis.Redis) -> None:
    raw.pfadd("rtp:hll:users", "u1", "u2", "u3")
    raw.sadd("rtp:dnp", "u7")
    stats = client.stats()
    assert stats["users"] == 3
    assert stats["dnp_users"] == 1
    assert stats["items"] == len(ITEMS) + 1  # an entry still in both counts twice
    assert stats["dead_letters"] == 0
    assert stats["keys"] == raw.dbsize()
    assert stats["used_memory_bytes"] > 0


@pytest.mark.parametrize("spin_us", [0, Settings().read_spin_us])
def test_reads_fail_fast_when_redis_is_down(own_redis: RedisServer, spin_us: int) -> None:
    c = Client.from_url(own_redis.url, Settings(redis_timeout_s=0.5, read_spin_us=spin_us))
    assert c.decision("u1") is None
    own_redis.stop()
    with pytest.raises(StoreUnavailable):
        c.decision("u1")
    with pytest.raises(StoreUnavailable):
        c.rerank("u1", "q", ["a", "b"])
    c.close()


def test_compact_values_read_as_the_json_ones(redis_url: str, raw: redis.Redis) -> None:
    """What the flow writes now (rtp.store.codec) and what earlier versions wrote (JSON) give
    the same answers; product pages are read from their bucket, or from the old key."""
    from rtp.store.codec import encode_decision, encode_page, encode_profile
    from rtp.store.store import page_key

    raw.set("rtp:d:c1", encode_decision(DOC))
    raw.set("rtp:p:c1", encode_profile({"cats": {"shoes": 2.0}}))
    for item, page in NEIGHBOURS.items():
        raw.hset(page_key("rtp:", item), item, encode_page(page["items"], page["scores"]))
    with Client.from_url(redis_url) as c:
        assert c.decisions("c1") == c.decisions("u1") == DOC
        assert c.context("c1") == DOC["ctx"]
        assert c.profile("c1") == c.profile("u1")
        for placement in ("home", "recent", "nav", "offer", "hero", "assist", "product"):
            assert c.decision("c1", placement) == c.decision("u1", placement), placement
        assert c.decision("c1", "product", item="p1") == c.decision("u1", "product", item="p1")
        ids = ["toy", "h2", "k1", "r1", "h1", "shoe-cheap", "bag"]
        assert c.rerank("c1", "shoes", ids) == c.rerank("u1", "shoes", ids)
        # a page in its bucket wins over the key of earlier versions
        raw.hset(page_key("rtp:", "r1"), "r1", encode_page(["p9"], [1.0]))
        product = c.decision("u1", "product")
        assert product is not None and product["items"] == [["p9", 1.0]]
        raw.set("rtp:p:junk", b"[1]")  # JSON that is not an object: no profile
        assert c.profile("junk") is None


def test_await_reply_returns_on_data_on_silence_and_on_a_closed_socket() -> None:
    """The poll before a read ends when a reply is there, when its budget is spent with none,
    and at once on a socket that is closed or has no peer, leaving the data to the read."""
    a, b = socket.socketpair()
    try:
        await_reply(a, 10_000_000)  # nothing sent: the 10 ms budget ends the poll
        b.sendall(b"+OK\r\n")
        await_reply(a, 10_000_000_000)  # would hang the test for 10 s if it missed the data
        assert a.recv(16) == b"+OK\r\n"  # peeked at, not consumed
        b.close()
        await_reply(a, 10_000_000_000)  # hang-up: the read reports it
        assert a.recv(16) == b""
    finally:
        a.close()
        b.close()
    await_reply(a, 10_000_000_000)  # a closed socket object
    await_reply(None, 10_000_000_000)  # no socket yet
