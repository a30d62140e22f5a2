"""Store against a real redis-server: round trips, TTLs, idempotency, dead letters, outages."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
import redis

from rtp.capture.events import Rejection
from rtp.config import Settings
from rtp.engine.writes import Writes
from rtp.errors import StoreError, StoreUnavailable
from rtp.store.codec import encode_page
from rtp.store.store import (
    FORGET_LUA,
    PAGE_BUCKETS,
    RECHECK_LUA,
    Store,
    _py_command,
    item_key,
    pack_command,
    page_bucket,
    page_key,
    user_hash,
)
from tests.conftest import RedisServer

SETTINGS = Settings(context_ttl_s=3_600, profile_ttl_s=7_200)


@pytest.fixture()
def store(redis_url: str) -> Iterator[Store]:
    s = Store.from_url(redis_url, SETTINGS)
    yield s
    s.close()


@pytest.fixture()
def raw(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def decision(user: str, n: int = 0) -> bytes:
    return orjson.dumps({"v": 1, "ts": 1.0 + n, "mode": "ranked", "ctx": {"session": user}})


def sample_writes() -> Writes:
    w = Writes()
    w.decisions = [(f"u{i}", decision(f"u{i}")) for i in range(5)]
    w.profiles = [("u1", orjson.dumps({"cats": {"c1": 1.0}}))]
    w.items = {"i1": b"c1|9.5", "i2": b"c2|"}
    w.neighbours = {"i1": encode_page(["i2"], [1.0])}
    w.meta = [("fallback", orjson.dumps(["i1", "i2"])), ("stats:r:0", orjson.dumps({"n": 3}))]
    w.dnp_add = ["u9"]
    w.users = [f"u{i}" for i in range(5)]
    return w


def test_write_round_trip_with_ttls(store: Store, raw: redis.Redis) -> None:
    w = sample_writes()
    sent = store.write(w)
    assert sent >= len(w)
    for user, value in w.decisions:
        assert raw.get(f"rtp:d:{user}") == value
        assert 0 < raw.ttl(f"rtp:d:{user}") <= SETTINGS.context_ttl_s
        assert store.get_decisions(user) == orjson.loads(value)
    assert 0 < raw.ttl("rtp:p:u1") <= SETTINGS.profile_ttl_s
    assert SETTINGS.context_ttl_s < raw.ttl("rtp:p:u1")
    assert store.get_profile("u1") == {"cats": {"c1": 1.0}}
    assert store.catalogue() == {"i1": b"c1|9.5", "i2": b"c2|"}
    assert raw.hget(item_key("rtp:", "i1"), "i1") == b"c1|9.5"
    assert raw.ttl(item_key("rtp:", "i1")) == -1
    assert raw.object("encoding", item_key("rtp:", "i1")) == b"listpack"
    assert store.meta("fallback") == ["i1", "i2"]
    assert store.meta_prefix("stats:") == {"stats:r:0": {"n": 3}}
    assert store.meta("absent") is None
    assert raw.smembers("rtp:dnp") == {b"u9"}
    assert store.users_estimate() == 5
    assert store.get_decisions("nobody") is None
    assert store.memory_per_key([f"rtp:d:u{i}" for i in range(5)]) > 0


def test_product_pages_go_into_bucket_hashes(store: Store, raw: redis.Redis) -> None:
    w = Writes()
    w.neighbours = {f"i{n}": encode_page([f"i{n + 1}"], [1.0]) for n in range(300)}
    store.write(w)
    keys = sorted(raw.keys("rtp:pages:*"))
    assert 1 < len(keys) <= PAGE_BUCKETS
    assert not raw.keys("rtp:n:*")  # no key an item
    for key in keys:
        assert raw.object("encoding", key) == b"listpack"  # Redis's compact small hash
        assert 0 < raw.ttl(key) <= SETTINGS.context_ttl_s
    assert page_key("rtp:", "i7") == f"rtp:pages:{page_bucket('i7')}"
    assert raw.hget(page_key("rtp:", "i7"), "i7") == w.neighbours["i7"]
    assert store.get_page("i7") == {"items": ["i8"], "scores": [1.0]}
    assert store.get_page("nothing") is None
    assert len(store.pages()) == 300
    # an evicted item's page leaves its bucket, unless the same batch writes it again
    gone = Writes()
    gone.items_removed = ["i7", "i8"]
    gone.neighbours = {"i8": encode_page(["i1"], [0.5])}
    store.write(gone)
    assert store.get_page("i7") is None
    assert store.get_page("i8") == {"items": ["i1"], "scores": [0.5]}
    assert len(store.pages()) == 299


def test_old_json_values_still_read(store: Store, raw: redis.Redis) -> None:
    raw.set("rtp:d:old", orjson.dumps({"v": 1, "ts": 3.0, "ctx": {"session": "s"}}))
    raw.set("rtp:p:old", orjson.dumps({"cats": {"c": 1.0}}))
    assert store.get_decisions("old") == {"v": 1, "ts": 3.0, "ctx": {"session": "s"}}
    assert store.get_profile("old") == {"cats": {"c": 1.0}}


def test_idempotent_rewrite(store: Store, raw: redis.Redis) -> None:
    w = sample_writes()
    store.write(w)
    first = {k: raw.dump(k) for k in raw.keys("*") if raw.type(k) != b"string"}
    values = {k: raw.get(k) for k in raw.keys("*") if raw.type(k) == b"string"}
    store.write(w)
    assert {k: raw.dump(k) for k in raw.keys("*") if raw.type(k) != b"string"} == first
    assert {k: raw.get(k) for k in raw.keys("*") if raw.type(k) == b"string"} == values
    assert store.users_estimate() == 5


def test_key_prefix_is_used(redis_url: str, raw: redis.Redis) -> None:
    s = Store.from_url(redis_url, SETTINGS.replace(key_prefix="shop%1:"))
    w = Writes()
    w.decisions = [("u1", b"{}")]
    w.profiles = [("u1", b"{}")]
    s.write(w)
    assert raw.exists("shop%1:d:u1", "shop%1:p:u1") == 2
    assert raw.exists("rtp:d:u1") == 0
    s.close()


def test_large_write_spans_chunks(store: Store, raw: redis.Redis) -> None:
    w = Writes()
    w.decisions = [(f"user-{i}", b"x" * 300) for i in range(12_000)]
    w.users = [u for u, _ in w.decisions]
    w.items = {f"i{i}": b"c|1" for i in range(2_500)}
    store.write(w)
    buckets = {page_bucket(f"i{i}") for i in range(2_500)}
    assert raw.dbsize() == 12_000 + len(buckets) + 1  # decisions, catalogue buckets, HLL
    assert len(store.catalogue()) == 2_500
    assert raw.get("rtp:d:user-11999") == b"x" * 300


def test_forget_keeps_dnp_and_applies_before_new_values(store: Store, raw: redis.Redis) -> None:
    store.write(sample_writes())
    w = Writes()
    w.forget = ["u1", "u2", "u9"]
    w.decisions = [("u2", decision("u2", 1))]  # u2 seen again after the forget
    store.write(w)
    assert raw.exists("rtp:d:u1", "rtp:p:u1") == 0
    assert store.get_decisions("u2") == orjson.loads(decision("u2", 1))
    assert raw.sismember("rtp:dnp", "u9")  # forgetting does not re-enable personalization
    store.write(sample_writes())
    assert store.forget("u3") == 1
    assert raw.exists("rtp:d:u3") == 0


def test_write_many_keeps_order_across_batches(store: Store) -> None:
    a, b, c = Writes(), Writes(), Writes()
    a.decisions = [("u1", decision("u1", 1))]
    b.forget = ["u1"]
    c.dnp_add = ["u5"]
    d = Writes()
    d.dnp_remove = ["u5"]
    store.write_many([a, b, c, d])
    assert store.get_decisions("u1") is None
    assert not store.is_dnp("u5")


def test_load_users_in_one_round_trip(store: Store, raw: redis.Redis) -> None:
    store.write(sample_writes())
    users = ["u1", "u2", "u9", "never"]
    before = raw.info("commandstats")
    found = store.load_users(users)
    after = raw.info("commandstats")
    assert found["u1"] == (raw.get("rtp:p:u1"), False)
    assert found["u2"] == (None, False)
    assert found["u9"] == (None, True)
    assert found["never"] == (None, False)
    assert set(found) == set(users)

    def calls(stats: dict[str, dict[str, int]], name: str) -> int:
        return stats.get(f"cmdstat_{name}", {}).get("calls", 0)

    assert calls(after, "mget") - calls(before, "mget") == 1
    assert calls(after, "smismember") - calls(before, "smismember") == 1
    assert calls(after, "get") == calls(before, "get")
    assert store.load_users([]) == {}


def test_dead_letters_idempotent_by_position(store: Store, raw: redis.Redis) -> None:
    rejections = [
        Rejection("invalid_json", "unexpected end", "f.jsonl:1", b'{"v":1'),
        Rejection("unknown_type", "unknown event type 'x'", "f.jsonl:7", b'{"type":"x"}'),
    ]
    assert store.write_rejections(rejections) == 2
    assert store.write_rejections(rejections) == 0
    assert raw.xlen("rtp:deadletter") == 2
    entries = raw.xrange("rtp:deadletter")
    fields = entries[0][1]
    assert fields[b"reason"] == b"invalid_json"
    assert fields[b"pos"] == b"f.jsonl:1"
    assert fields[b"raw"] == b'{"v":1'
    assert raw.zscore("rtp:deadletter:pos", "f.jsonl:7") is not None
    more = [Rejection("invalid_price", "price -1", "f.jsonl:9", b"")]
    assert store.write_rejections(rejections + more) == 1
    assert raw.xlen("rtp:deadletter") == 3
    assert raw.zcard("rtp:deadletter:pos") == 3


def test_dead_letters_expire_after_their_ttl(raw: redis.Redis, redis_url: str) -> None:
    store = Store.from_url(redis_url, Settings(dead_letter_ttl_s=1.0))
    assert store.write_rejections([Rejection("invalid_json", "x", "a:1", b"{", user="u1")]) == 1
    time.sleep(1.2)
    assert store.write_rejections([Rejection("invalid_json", "y", "a:2", b"{")]) == 1
    assert [f[b"pos"] for _, f in raw.xrange("rtp:deadletter")] == [b"a:2"]
    assert raw.zrange("rtp:deadletter:pos", 0, -1) == [b"a:2"]
    assert raw.ttl(f"rtp:dlu:{user_hash('u1')}") in (-2, 0, 1)  # the index expires with it
    store.close()


def test_forget_is_atomic_and_leaves_only_a_tombstone(
    store: Store, raw: redis.Redis, redis_url: str
) -> None:
    raw.set("rtp:d:u1", b"{}")
    raw.set("rtp:p:u1", b"{}")
    raw.set("rtp:d:u2", b"{}")
    store.write_rejections(
        [
            Rejection("invalid_price", "price -1", "f:1", b'{"user":"u1"}', user="u1"),
            Rejection("invalid_price", "price -2", "f:2", b'{"user":"u2"}', user="u2"),
        ]
    )
    before = time.time()
    store.forget("u1")
    assert raw.exists("rtp:d:u1", "rtp:p:u1") == 0
    assert raw.exists("rtp:d:u2") == 1  # nobody else's
    assert [f[b"pos"] for _, f in raw.xrange("rtp:deadletter")] == [b"f:2"]
    assert not [k for k in raw.scan_iter() if b"u1" in k]  # no key names the forgotten user
    stones = store.tombstones(["u1", "u2"])
    assert list(stones) == ["u1"] and before <= stones["u1"] <= time.time()


def test_refused_write_raises_store_error(store: Store, raw: redis.Redis) -> None:
    raw.set(item_key("rtp:", "i1"), "not a hash")
    w = Writes()
    w.items = {"i1": b"c|1"}
    w.decisions = [("u1", b"{}")]
    with pytest.raises(StoreError) as info:
        store.write(w)
    assert not isinstance(info.value, StoreUnavailable)
    assert "WRONGTYPE" in str(info.value)
    assert store.ping()  # the connection stayed usable


def test_outage_write_lands_after_restart(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = SETTINGS.replace(redis_retries=10, redis_backoff_s=0.05, redis_backoff_max_s=0.4)
    store = Store.from_url(own_redis.url, settings)
    store.write(sample_writes())
    own_redis.stop()

    def restart_soon() -> None:
        time.sleep(0.3)
        own_redis.start()

    restarter = threading.Thread(target=restart_soon)
    restarter.start()
    w = Writes()
    w.decisions = [("during", decision("during"))]
    w.users = ["during"]
    with caplog.at_level(logging.WARNING, logger="rtp.store.store"):
        store.write(w)
    restarter.join()
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 1  # several attempts, one line (then at most one every 10 s)
    assert store.get_decisions("during") == orjson.loads(decision("during"))
    store.close()


def test_outage_past_all_retries_raises_with_pending(own_redis: RedisServer) -> None:
    settings = SETTINGS.replace(redis_retries=2, redis_backoff_s=0.01, redis_backoff_max_s=0.02)
    store = Store.from_url(own_redis.url, settings)
    assert store.ping()
    own_redis.stop()
    w = sample_writes()
    with pytest.raises(StoreUnavailable) as info:
        store.write(w)
    assert info.value.pending is w
    rejections = [Rejection("invalid_json", "x", "f:1", b"{")]
    with pytest.raises(StoreUnavailable) as info2:
        store.write_rejections(rejections)
    assert info2.value.pending == rejections
    with pytest.raises(StoreUnavailable):
        store.load_users(["u1"])
    own_redis.start()  # and the same store works again once Redis is back
    store.write(w)
    assert store.write_rejections(rejections) == 1  # the Lua script is reloaded after restart
    assert store.get_decisions("u1") is not None
    store.close()


def test_python_packer_matches_hiredis() -> None:
    args: tuple[bytes | str, ...] = (b"HSET", "rtp:items", "caf\u00e9", b"c|1.5", b"", "x" * 300)
    assert _py_command(args) == pack_command(*args)
    assert _py_command((b"PING",)) == b"*1\r\n$4\r\nPING\r\n"


def test_a_forget_landing_after_the_tombstone_read_is_applied_at_the_write(
    store: Store, raw: redis.Redis
) -> None:
    """The user step read the tombstones (``checked_at``), a forget landed, then the sink
    wrote the batch: what it wrote of that user is deleted again in the same pipeline; a user
    forgotten long before the read (and back since) keeps what the batch wrote."""
    raw.hset("rtp:tomb", user_hash("back"), repr(time.time() - 60))
    w = Writes()
    w.checked_at = time.time()
    w.decisions = [(u, decision(u)) for u in ("late", "other", "back")]
    w.profiles = [("late", orjson.dumps({"cats": {}})), ("other", orjson.dumps({"cats": {}}))]
    time.sleep(0.01)
    store.forget("late")  # after the read, before the write
    store.write(w)
    assert raw.exists("rtp:d:late", "rtp:p:late") == 0
    assert raw.exists("rtp:d:other", "rtp:p:other", "rtp:d:back") == 3
    unchecked = Writes()  # a batch that read no tombstones (no Redis reads) writes as it is
    unchecked.decisions = [("late", decision("late"))]
    store.write(unchecked)
    assert raw.exists("rtp:d:late") == 1


def test_the_recheck_covers_batches_of_thousands_of_users(store: Store, raw: redis.Redis) -> None:
    """The re-check reads the tombstones a thousand users at a time: a user forgotten after the
    read is found wherever they are in a batch of 2,500, and with no tombstone at all nothing
    is looked up (and nothing deleted)."""
    users = [f"u{k:04d}" for k in range(2_500)]
    w = Writes()
    w.checked_at = time.time()
    w.decisions = [(u, decision(u)) for u in users]
    store.write(w)  # no tombstones hash yet: the script returns at once
    assert raw.exists(*[f"rtp:d:{u}" for u in users]) == 2_500
    time.sleep(0.01)
    for u in ("u0000", "u0999", "u1000", "u2499"):  # first and last of the chunks
        store.forget(u)
    store.write(w)  # read before those forgets: what it writes of them is deleted again
    gone = [u for u in users if not raw.exists(f"rtp:d:{u}")]
    assert gone == ["u0000", "u0999", "u1000", "u2499"]


def test_writes_run_their_scripts_on_a_redis_that_forgot_them(
    store: Store, raw: redis.Redis
) -> None:
    """A Redis restarted since the last write has forgotten the forget and re-check scripts:
    the pipeline loads them at its head, so its EVALSHAs still run."""
    store.write(sample_writes())
    raw.script_flush()
    w = Writes()
    w.forget = ["u1"]
    w.checked_at = time.time()
    w.decisions = [("u2", decision("u2", 1))]
    calls = raw.info("commandstats").get("cmdstat_script|load", {}).get("calls", 0)
    store.write(w)
    assert raw.exists("rtp:d:u1", "rtp:p:u1") == 0
    assert store.get_decisions("u2") == orjson.loads(decision("u2", 1))
    assert raw.info("commandstats")["cmdstat_script|load"]["calls"] == calls + 2
    raw.script_flush()
    plain = Writes()  # nothing to run: no script loaded
    plain.decisions = [("u3", decision("u3"))]
    store.write(plain)
    assert raw.info("commandstats")["cmdstat_script|load"]["calls"] == calls + 2
    assert raw.script_exists(
        *[hashlib.sha1(x.encode()).hexdigest() for x in (FORGET_LUA, RECHECK_LUA)]
    ) == [False, False]


def test_erase_deletes_a_users_values_without_a_tombstone(store: Store, raw: redis.Redis) -> None:
    store.write(sample_writes())
    w = Writes()
    w.erase = ["u1"]
    w.decisions = [("u1", decision("u1", 2))]  # written after the erase: kept
    store.write(w)
    assert raw.exists("rtp:p:u1") == 0
    assert store.get_decisions("u1") == orjson.loads(decision("u1", 2))
    assert store.tombstones(["u1"]) == {}


def test_dead_letters_of_a_forgotten_user_are_kept_only_when_newer_than_the_forget(
    store: Store, raw: redis.Redis
) -> None:
    store.forget("gone")
    now = time.time()
    rejections = [
        Rejection("invalid_price", "price -1", "f:1", b'{"user":"gone"}', user="gone", ts=now - 60),
        Rejection("invalid_json", "truncated", "f:2", b'{"user":"gone"', user="gone"),
        Rejection("invalid_price", "price -2", "f:3", b'{"user":"gone"}', user="gone", ts=now + 60),
        Rejection("invalid_price", "price -3", "f:4", b'{"user":"kept"}', user="kept", ts=now - 60),
        Rejection("invalid_json", "no user", "f:5", b"{"),
    ]
    assert store.write_rejections(rejections) == 3
    assert store.dead_letters_forgotten == 2
    assert [f[b"pos"] for _, f in raw.xrange("rtp:deadletter")] == [b"f:3", b"f:4", b"f:5"]
    assert raw.scard(f"rtp:dlu:{user_hash('gone')}") == 1  # only the newer one is indexed
    assert [r.pos for r in store.without_forgotten(rejections)] == ["f:3", "f:4", "f:5"]


def test_the_catalogue_goes_into_bucket_hashes_and_evictions_leave_them(
    store: Store, raw: redis.Redis
) -> None:
    w = Writes()
    w.items = {f"i{n}": b"c%d|%d.5" % (n % 7, n) for n in range(300)}
    store.write(w)
    keys = sorted(raw.keys("rtp:items:*"))
    assert 1 < len(keys) <= PAGE_BUCKETS and not raw.exists("rtp:items")
    for key in keys:
        assert raw.object("encoding", key) == b"listpack"  # not a hashtable of every item
        assert raw.ttl(key) == -1  # entries leave with their items, not by age
    assert item_key("rtp:", "i7") == f"rtp:items:{page_bucket('i7')}"
    assert raw.hget(item_key("rtp:", "i7"), "i7") == b"c0|7.5"
    # an evicted item leaves its bucket and the hash of earlier versions, unless the same
    # batch writes it again
    raw.hset("rtp:items", mapping={"i7": b"old|1", "i9": b"old|2"})
    gone = Writes()
    gone.items_removed = ["i7", "i8", "i9"]
    gone.items = {"i8": b"c9|1"}
    store.write(gone)
    got = store.catalogue()
    assert "i7" not in got and "i9" not in got and got["i8"] == b"c9|1"
    assert len(got) == 298 and not raw.exists("rtp:items")


def test_the_catalogue_of_earlier_versions_moves_into_the_buckets(
    store: Store, raw: redis.Redis
) -> None:
    """``P items`` (one hash of every item, as earlier versions wrote it) is moved entry by
    entry into the buckets; an entry a bucket already holds is newer and stays."""
    old = {f"i{n}": b"c|%d" % n for n in range(2_345)}
    raw.hset("rtp:items", mapping=old)
    raw.hset(item_key("rtp:", "i5"), "i5", b"new|5")
    assert store.migrate_items(chunk=100) == len(old) - 1
    assert not raw.exists("rtp:items")
    assert store.catalogue() == {**old, "i5": b"new|5"}
    assert raw.hget(item_key("rtp:", "i42"), "i42") == b"c|42"
    assert store.migrate_items() == 0  # nothing left: safe to repeat
