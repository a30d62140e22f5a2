"""The Redis store: applies the engine's :class:`rtp.engine.writes.Writes` and reads keys back.

The key schema is documented in :mod:`rtp.engine.writes`. Everything here is set explicitly from
:class:`rtp.config.Settings` (client defaults drift between redis-py releases): socket and
connect timeouts, the pool size, and redis-py's own retries, which are *off*: the store retries
itself, whole batches, with jittered exponential backoff, logging each retry, and raises
:class:`rtp.errors.StoreUnavailable` carrying the writes that did not land when Redis stays
away. Nothing is dropped silently.

Writing a batch is one non-transactional pipeline. It is packed here into the Redis protocol
directly rather than through redis-py's ``Pipeline``: for 2,000 decision keys of ~300 bytes
that costs ~1.4-2 µs per key instead of ~8.5-10 µs (measured on a local server, unix socket and
TCP; packing is ~0.4 µs of it, the server's own work ~0.5 µs). Every value is whole, so
replaying a pipeline after a failure, or a batch after a resume, leaves the same state.

Values are written as the engine encoded them (:mod:`rtp.store.codec`: compact, versioned) and
decoded here on read, the JSON of earlier versions included. Product pages go into bucket
hashes (:func:`page_key`), each bucket with the pages' TTL, refreshed by every write to it; an
item the item step evicts leaves its bucket with it.

Order inside a batch: ``forget`` deletes, then do-not-personalize changes, then decisions,
profiles, product pages, items, meta and the users HyperLogLog. The engine lists end-of-batch
state, so a user forgotten and seen again within one batch keeps only what was made after the
forget. ``forget`` keeps the user's ``dnp`` membership on purpose: a user who asked not to be
personalized and then to be forgotten must stay unpersonalized (the flag is the only thing
kept; remove it with ``dnp_remove`` / ``Client.set_do_not_personalize(user, False)``). The users
HyperLogLog cannot un-count anyone; it holds no user id.

Needs Redis >= 6.2 (``SMISMEMBER``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import select
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import orjson
import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from rtp.capture.events import Rejection
from rtp.config import Settings
from rtp.engine.writes import Writes
from rtp.errors import ConfigError, StoreError, StoreUnavailable
from rtp.store.codec import decode_decision, decode_page, decode_profile

__all__ = [
    "Store",
    "connect",
    "roundtrip",
    "pack_command",
    "page_bucket",
    "page_key",
    "item_key",
    "item_meta_command",
    "DEAD_LETTER_MAXLEN",
    "PAGE_BUCKETS",
]

log = logging.getLogger("rtp.store.store")

DEAD_LETTER_MAXLEN = 1_000_000
# Product pages live in PAGE_BUCKETS hashes (``P pages:{bucket}``, field = item), not one key an
# item: a hash of up to 128 small fields is a listpack (~30 bytes a page on the Taobao slice,
# instead of ~160 for a key of its own with its TTL). 1,024 buckets hold ~100,000 pages as
# listpacks; past that Redis turns a bucket into a hashtable, still without a key per page.
PAGE_BUCKETS = 1_024
# The catalogue ("category|price" per item) lives in as many hashes (``P items:{bucket}``, the
# same buckets as the pages) for the same reason: one hash of every item is a hashtable, ~75
# bytes an item on the Taobao slice, where a listpack bucket takes ~17. ``P items``, the one
# hash of earlier versions, is still read and is moved into the buckets when a flow starts
# (:meth:`Store.migrate_items`).
_CHUNK_COMMANDS = 8_000  # commands per send/read round trip inside one pipeline
_CHUNK_BYTES = 8 << 20
_HSET_FIELDS = 1_000  # fields per HSET / members per PFADD, SADD, SREM
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError)

T = TypeVar("T")

# KEYS[1] stream, KEYS[2] positions (a sorted set scored by time), KEYS[3] the tombstones hash;
# ARGV[1] maxlen, ARGV[2] now, ARGV[3] ttl, ARGV[4] the prefix of the per-user index keys, then
# (pos, reason, detail, raw, user hash, event time or '')*. A position already recorded is not
# appended again: rewriting a batch adds nothing. Entries and positions older than the ttl are
# dropped; each entry with a user is listed in that user's index (so a forget can delete it),
# which expires with it. A forgotten user's entry is not kept unless its event time is known
# and later than the forget (checked here, atomically with the append: no forget slips in).
_DEAD_LETTER_LUA = """
local now = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local minid = string.format('%d-0', math.floor((now - ttl) * 1000))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - ttl)
local n = 0
local forgotten = 0
for i = 5, #ARGV, 6 do
  local h = ARGV[i + 4]
  local keep = true
  if h ~= '' then
    local t = redis.call('HGET', KEYS[3], h)
    if t and (ARGV[i + 5] == '' or tonumber(ARGV[i + 5]) < tonumber(t)) then
      keep = false
      forgotten = forgotten + 1
    end
  end
  if keep and redis.call('ZADD', KEYS[2], 'NX', now, ARGV[i]) == 1 then
    local id = redis.call('XADD', KEYS[1], 'MINID', minid, '*', 'reason', ARGV[i + 1],
                          'detail', ARGV[i + 2], 'pos', ARGV[i], 'raw', ARGV[i + 3])
    if h ~= '' then
      local k = ARGV[4] .. h
      redis.call('SADD', k, id)
      redis.call('EXPIRE', k, math.floor(ttl))
    end
    n = n + 1
  end
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[1])
return {n, forgotten}
"""

# KEYS[1] d:{user}, KEYS[2] p:{user}, KEYS[3] the tombstones hash, KEYS[4] the user's dead-letter
# index, KEYS[5] the dead-letter stream; ARGV[1] the user's hash, ARGV[2] the time of the forget.
# One atomic operation: everything stored about the user goes, the tombstone stays.
FORGET_LUA = """
local ids = redis.call('SMEMBERS', KEYS[4])
for _, id in ipairs(ids) do
  redis.call('XDEL', KEYS[5], id)
end
local n = redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return n + #ids
"""

# KEYS[1] the tombstones hash; ARGV[1] a time, ARGV[2] the key prefix, then (user hash, user)
# pairs. Sent after a batch's writes, in the same pipeline: the decisions and profile of a user
# forgotten since the batch read the tombstones (``Writes.checked_at``) are deleted again. A
# forget either ran before this (seen here) or after the writes (and deleted them itself).
# No tombstones at all (no forget ever): nothing to look up. Otherwise the times are read with
# HMGET, up to 1,000 users a call (Lua's unpack has a limit), not one HGET per user.
RECHECK_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local since = tonumber(ARGV[1])
local n = 0
local first = 3
while first <= #ARGV do
  local last = math.min(first + 1998, #ARGV - 1)
  local hashes = {}
  for i = first, last, 2 do
    hashes[#hashes + 1] = ARGV[i]
  end
  local times = redis.call('HMGET', KEYS[1], unpack(hashes))
  for j = 1, #hashes do
    local t = times[j]
    if t and tonumber(t) >= since then
      local user = ARGV[first + 2 * j - 1]
      n = n + redis.call('DEL', ARGV[2] .. 'd:' .. user, ARGV[2] .. 'p:' .. user)
    end
  end
  first = last + 2
end
return n
"""

# A forget's tombstone time comes from the machine that called it; a flow's read time from its
# own. This much clock skew between them is absorbed: a forget this close before the read is
# applied again at the write, so a returning user's first decision after it may be deleted
# too (written again with their next event).
RECHECK_SKEW_S = 1.0

# KEYS[1] the catalogue hash of earlier versions, KEYS[1 + i] the bucket of ARGV[i]: each
# entry still in the old hash goes to its bucket unless the bucket has a newer one, and leaves
# the old hash. The number moved.
_MIGRATE_ITEMS_LUA = """
local moved = 0
for i, field in ipairs(ARGV) do
  local v = redis.call('HGET', KEYS[1], field)
  if v then
    if redis.call('HSETNX', KEYS[i + 1], field, v) == 1 then moved = moved + 1 end
    redis.call('HDEL', KEYS[1], field)
  end
end
return moved
"""

RETRY_LOG_EVERY_S = 10.0  # an outage logs its first failed attempt, then one line this often


def page_bucket(item: str) -> int:
    """The bucket of ``item``'s product page: CRC-32 of its UTF-8 bytes, modulo the buckets."""
    return zlib.crc32(item.encode("utf-8", "surrogatepass")) % PAGE_BUCKETS


def page_key(prefix: str, item: str) -> str:
    """The hash holding ``item``'s product page (the field is the item)."""
    return f"{prefix}pages:{page_bucket(item)}"


def _pack_buckets(
    packer: _Packer, base: bytes, values: dict[str, bytes], removed: Sequence[str], ttl: Any
) -> None:
    """Fields of bucket hashes (``base{bucket}``, field = item, :func:`page_bucket`): the
    removed items out first, unless ``values`` writes them again, then ``values`` in (and each
    written bucket's TTL, with ``ttl``)."""
    gone: dict[int, list[bytes]] = {}
    for item in removed:
        if item not in values:
            gone.setdefault(page_bucket(item), []).append(_str_bytes(item))
    for b, items in sorted(gone.items()):
        key = base + b"%d" % b
        for i in range(0, len(items), _HSET_FIELDS):
            packer.add(_command(b"HDEL", key, *items[i : i + _HSET_FIELDS]))
    buckets: dict[int, list[bytes]] = {}
    for item, value in values.items():
        buckets.setdefault(page_bucket(item), []).extend((_str_bytes(item), value))
    step = 2 * _HSET_FIELDS
    for b, fields in sorted(buckets.items()):
        key = base + b"%d" % b
        for i in range(0, len(fields), step):
            packer.add(_command(b"HSET", key, *fields[i : i + step]))
        if ttl is not None:
            packer.add(_command(b"EXPIRE", key, ttl))


def item_key(prefix: str, item: str) -> str:
    """The hash holding ``item``'s catalogue entry ``"category|price"`` (the field is the item)."""
    return f"{prefix}items:{page_bucket(item)}"


# KEYS[i] the bucket of ARGV[i], KEYS[#ARGV + 1] the catalogue hash of earlier versions: each
# item's entry, from its bucket, else from the old hash (nil: unknown). One command for any
# number of items: a read of 100 items costs one reply to parse, not one per bucket.
ITEM_META_LUA = """
local old = KEYS[#ARGV + 1]
local out = {}
for i, item in ipairs(ARGV) do
  local v = redis.call('HGET', KEYS[i], item)
  if not v then v = redis.call('HGET', old, item) end
  out[i] = v
end
return out
"""


def item_meta_command(prefix: str, items: Sequence[str]) -> tuple[str, ...]:
    """The one command that reads the catalogue entries of ``items`` (at least one): an
    ``EVAL`` of :data:`ITEM_META_LUA` (it carries the script, so no ``NOSCRIPT`` can arise,
    and Redis caches its compilation), whose reply is each item's value in ``items``' order
    (nil: unknown)."""
    keys = [item_key(prefix, item) for item in items]
    return ("EVAL", ITEM_META_LUA, str(len(items) + 1), *keys, f"{prefix}items", *items)


def user_hash(user: str) -> str:
    """A user's key in the tombstones and dead-letter indexes: 16 hex digits of BLAKE2b, so
    what rtp keeps about a forgotten user is not their id."""
    return hashlib.blake2b(user.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def forget_keys(prefix: str, dead_letter_stream: str, user: str) -> tuple[list[str], list[Any]]:
    """The keys and arguments of :data:`FORGET_LUA` for ``user`` (forgotten now)."""
    h = user_hash(user)
    keys = [f"{prefix}d:{user}", f"{prefix}p:{user}", f"{prefix}tomb", f"{prefix}dlu:{h}",
            dead_letter_stream]  # fmt: skip
    return keys, [h, repr(time.time())]


def connect(url: str, settings: Settings) -> redis.Redis:
    """A redis-py client whose timeouts, pool and retries all come from ``settings``.

    The pool blocks (up to ``redis_timeout_s``) for a free connection instead of failing when
    ``redis_pool_size`` connections are busy; redis-py's own retries are disabled.
    """
    if not url:
        raise ConfigError("no Redis URL: set RTP_REDIS_URL or use rtp.store.server.redis_url()")
    try:
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=settings.redis_pool_size,
            timeout=settings.redis_timeout_s,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
        )
    except ValueError as e:
        raise ConfigError(f"bad Redis URL {url!r}: {e}") from None
    return redis.Redis.from_pool(pool)


_hiredis_pack: Callable[[Any], bytes] | None
try:  # redis[hiredis] is a dependency: its C packer is ~3x faster than Python formatting
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover
    _hiredis_pack = None


def _bulk(arg: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


def _py_command(args: Sequence[bytes | str]) -> bytes:
    parts = [a.encode("utf-8") if isinstance(a, str) else a for a in args]
    return b"*%d\r\n%b" % (len(parts), b"".join([_bulk(a) for a in parts]))


def pack_command(*args: bytes | str) -> bytes:
    """One command in the Redis protocol (RESP2 multi-bulk; ``str`` arguments as UTF-8)."""
    if _hiredis_pack is not None:
        return _hiredis_pack(args)
    return _py_command(args)


_command = pack_command
_LOAD_FORGET = _command(b"SCRIPT", b"LOAD", FORGET_LUA)
_LOAD_RECHECK = _command(b"SCRIPT", b"LOAD", RECHECK_LUA)


class _Packer:
    """Commands packed into the Redis protocol, grouped into round-trip sized chunks."""

    __slots__ = ("chunks", "counts", "_parts", "_count", "_size")

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.counts: list[int] = []
        self._parts: list[bytes] = []
        self._count = 0
        self._size = 0

    def add(self, packed: bytes, commands: int = 1) -> None:
        self._parts.append(packed)
        self._count += commands
        self._size += len(packed)
        if self._count >= _CHUNK_COMMANDS or self._size >= _CHUNK_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._count:
            self.chunks.append(b"".join(self._parts))
            self.counts.append(self._count)
            self._parts = []
            self._count = 0
            self._size = 0

    def done(self) -> tuple[list[bytes], list[int]]:
        self.flush()
        return self.chunks, self.counts


def await_reply(sock: Any, spin_ns: int) -> None:
    """Poll ``sock`` without sleeping until a reply has arrived or ``spin_ns`` have passed.

    A thread that blocks on a socket lets its CPU go idle, and on a virtual machine an idle
    CPU can take milliseconds to wake when the reply lands (BENCHMARKS.md §4.6: a bare ``GET``
    round trip's p99 on an idle host, blocking against polling). Polling spends the time the
    call would have waited anyway, ``spin_ns`` at most; then the read blocks as usual. TLS
    sockets are not polled: decrypted data can wait in the TLS layer, where ``poll`` does not
    see it."""
    if sock is None or isinstance(sock, ssl.SSLSocket):
        return
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
    except (OSError, ValueError):  # a closed socket: the read reports it
        return
    poll = poller.poll
    clock = time.perf_counter_ns
    deadline = clock() + spin_ns
    while not poll(0):  # readable, or an error or hang-up: either way the read goes on
        if clock() >= deadline:
            return


def roundtrip(
    r: redis.Redis, chunks: Sequence[bytes], counts: Sequence[int], spin_ns: int = 0
) -> list[Any]:
    """Send already packed commands on one pooled connection and read every reply, in order.

    ``counts[i]`` is the number of commands in ``chunks[i]``; each chunk is one round trip.
    A refused command's reply is its ``ResponseError`` (returned, not raised: the connection
    stays in sync); socket errors and timeouts raise, and the connection is dropped.
    ``spin_ns``: poll for each round trip's first reply up to this long before blocking
    (:func:`await_reply`).
    """
    pool = r.connection_pool
    conn: Any = pool.get_connection()
    replies: list[Any] = []
    try:
        for chunk, count in zip(chunks, counts, strict=True):
            conn.send_packed_command([chunk])
            if spin_ns:
                await_reply(conn._sock, spin_ns)
            read = conn.read_response
            for _ in range(count):
                try:
                    replies.append(read())
                except ResponseError as e:
                    replies.append(e)
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)
    return replies


def _str_bytes(text: str) -> bytes:
    return text.encode("utf-8")


class Store:
    """Applies :class:`Writes` in one pipeline each and reads the key schema back.

    :param settings: prefix, TTLs, timeouts, pool size and the retry policy.
    :param client: a redis-py client to use; by default one is made from
        ``settings.redis_url`` with :func:`connect`.

    A ``Store`` is safe to share between threads (every call takes a pooled connection).
    """

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        if client is None:
            if not settings.redis_url:
                raise ConfigError(
                    "Store needs settings.redis_url (RTP_REDIS_URL) or a client; "
                    "rtp.store.server.redis_url() starts a private server"
                )
            client = connect(settings.redis_url, settings)
        self.r = client
        self.prefix = settings.key_prefix
        p = settings.key_prefix.encode("utf-8")
        self._p = p
        self._d = p + b"d:"
        self._pp = p + b"p:"
        self._items = p + b"items"
        self._meta = p + b"meta:"
        self._dnp = p + b"dnp"
        self._hll = p + b"hll:users"
        self._dl_stream = settings.dead_letter_stream
        self._dl_pos = settings.dead_letter_stream + ":pos"
        ctx_ttl = b"%d" % settings.context_ttl_s
        prof_ttl = b"%d" % settings.profile_ttl_s
        # SET <P d:user> <value> EX <ttl>, with the key prefix inside the template.
        self._set_d = (
            b"*5\r\n$3\r\nSET\r\n$%d\r\n" + self._d.replace(b"%", b"%%") + b"%b\r\n$%d\r\n%b\r\n"
            b"$2\r\nEX\r\n$" + b"%d" % len(ctx_ttl) + b"\r\n" + ctx_ttl + b"\r\n"
        )
        self._set_p = (
            b"*5\r\n$3\r\nSET\r\n$%d\r\n" + self._pp.replace(b"%", b"%%") + b"%b\r\n$%d\r\n%b\r\n"
            b"$2\r\nEX\r\n$" + b"%d" % len(prof_ttl) + b"\r\n" + prof_ttl + b"\r\n"
        )
        self._ctx_ttl = ctx_ttl
        self._pages = p + b"pages:"
        self._dead_letter = self.r.register_script(_DEAD_LETTER_LUA)
        self._forget = self.r.register_script(FORGET_LUA)
        self._forget_sha = self._forget.sha.encode()
        self._recheck_sha = self.r.register_script(RECHECK_LUA).sha.encode()
        self._migrate_items = self.r.register_script(_MIGRATE_ITEMS_LUA)
        self.dead_letters_forgotten = 0  # rejections of forgotten users not dead-lettered
        self._quiet_until = 0.0  # retries are logged at most every RETRY_LOG_EVERY_S
        self._tomb = p + b"tomb"
        self._dlu = settings.key_prefix + "dlu:"

    @classmethod
    def from_url(cls, url: str, settings: Settings | None = None) -> Store:
        """A store on ``url`` (``redis://``, ``rediss://`` or ``unix://``)."""
        settings = settings or Settings()
        return cls(settings, connect(url, settings))

    # -- keys ---------------------------------------------------------------------------------

    def decision_key(self, user: str) -> str:
        return f"{self.prefix}d:{user}"

    def profile_key(self, user: str) -> str:
        return f"{self.prefix}p:{user}"

    def meta_key(self, name: str) -> str:
        return f"{self.prefix}meta:{name}"

    # -- retry --------------------------------------------------------------------------------

    def _retry(self, what: str, call: Callable[[], T], pending: Any) -> T:
        """``call()``, retried on connection errors and timeouts with jittered backoff."""
        s = self.settings
        delay = s.redis_backoff_s
        attempt = 0
        while True:
            try:
                return call()
            except _RETRYABLE as e:
                if attempt >= s.redis_retries:
                    raise StoreUnavailable(
                        f"Redis did not answer {what} after {attempt + 1} attempts: {e}",
                        pending=pending,
                    ) from e
                attempt += 1
                wait = delay * random.uniform(0.5, 1.0)
                now = time.monotonic()
                if now >= self._quiet_until:  # one line per outage, then one every 10 s
                    self._quiet_until = now + RETRY_LOG_EVERY_S
                    log.warning(
                        "redis %s failed (%s: %s); retry %d/%d in %.3fs",
                        what, type(e).__name__, e, attempt, s.redis_retries, wait,
                    )  # fmt: skip
                time.sleep(wait)
                delay = min(delay * 2.0, s.redis_backoff_max_s)

    def _send(self, chunks: list[bytes], counts: list[int]) -> list[Any]:
        """Send packed commands; every reply, raising on a refused command."""
        replies = roundtrip(self.r, chunks, counts)
        for reply in replies:
            if isinstance(reply, ReadOnlyError):
                raise reply  # a failover in progress: retried
            if isinstance(reply, ResponseError):
                raise StoreError(f"Redis refused a write: {reply}")
        return replies

    # -- writes -------------------------------------------------------------------------------

    def _pack(self, packer: _Packer, w: Writes) -> None:
        add = packer.add
        d, pp = self._d, self._pp
        for user in w.forget:  # the atomic forget (a tombstone stays)
            keys, args = forget_keys(self.prefix, self._dl_stream, user)
            add(_command(b"EVALSHA", self._forget_sha, b"5", *keys, *args))
        for user in w.erase:  # opted out: no stored profile, no personalized decisions
            u = _str_bytes(user)
            add(_command(b"DEL", d + u, pp + u))
        step = _HSET_FIELDS
        for verb, users in ((b"SREM", w.dnp_remove), (b"SADD", w.dnp_add)):
            for i in range(0, len(users), step):
                add(_command(verb, self._dnp, *[_str_bytes(u) for u in users[i : i + step]]))
        for template, prefix_len, pairs in (
            (self._set_d, len(d), w.decisions),
            (self._set_p, len(pp), w.profiles),
        ):
            for user, value in pairs:
                u = _str_bytes(user)
                add(template % (prefix_len + len(u), u, len(value), value))
        if w.neighbours or w.items_removed:
            self._pack_pages(packer, w)
        if w.items or w.items_removed:
            self._pack_items(packer, w)
        for name, value in w.meta:
            add(_command(b"SET", self._meta + _str_bytes(name), value))
        users = w.users
        for i in range(0, len(users), step):
            add(_command(b"PFADD", self._hll, *[_str_bytes(u) for u in users[i : i + step]]))

    def _pack_items(self, packer: _Packer, w: Writes) -> None:
        """Catalogue entries into their buckets, evicted items out of them and out of the hash
        of earlier versions (so that an old entry does not outlive its item)."""
        _pack_buckets(packer, self._items + b":", w.items, w.items_removed, None)
        removed = w.items_removed
        for i in range(0, len(removed), _HSET_FIELDS):
            packer.add(
                _command(
                    b"HDEL", self._items, *[_str_bytes(x) for x in removed[i : i + _HSET_FIELDS]]
                )
            )

    def _pack_pages(self, packer: _Packer, w: Writes) -> None:
        """Product pages into their buckets (HSET, then the bucket's TTL), evicted items' pages
        out of them."""
        _pack_buckets(packer, self._pages, w.neighbours, w.items_removed, self._ctx_ttl)

    def write(self, w: Writes) -> int:
        """Apply one batch's writes in one pipeline; the number of commands sent."""
        return self.write_many([w])

    def write_many(self, ws: Sequence[Writes]) -> int:
        """Apply several batches' writes, in order, in one pipeline (one retry unit).

        Raises :class:`StoreUnavailable` (``.pending`` = the list of ``Writes``) when Redis
        stays unreachable through every retry; nothing of it is assumed to have landed.
        """
        packer = _Packer()
        for w in ws:
            self._pack(packer, w)
        recheck = self._pack_recheck(packer, ws)
        chunks, counts = packer.done()
        if not chunks:
            return 0
        pending: Any = ws[0] if len(ws) == 1 else list(ws)
        # The scripts the pipeline runs are loaded at its head, in the same round trip: a Redis
        # restarted since the last write has forgotten them, and commands run in order.
        loads = ([_LOAD_FORGET] if any(w.forget for w in ws) else []) + (
            [_LOAD_RECHECK] if recheck else []
        )
        if loads:
            chunks[0] = b"".join(loads) + chunks[0]
            counts[0] += len(loads)

        def send() -> list[Any]:
            return self._send(chunks, counts)

        self._retry("write", send, pending)
        return sum(counts)

    def _pack_recheck(self, packer: _Packer, ws: Sequence[Writes]) -> bool:
        """After the writes, delete again what they wrote of a user forgotten since their
        batch read the tombstones (:data:`RECHECK_LUA`); whether anything was packed."""
        since = min((w.checked_at for w in ws if w.checked_at is not None), default=None)
        if since is None:
            return False
        users = dict.fromkeys(u for w in ws for u, _ in w.decisions)
        users.update(dict.fromkeys(u for w in ws for u, _ in w.profiles))
        if not users:
            return False
        args: list[bytes] = [repr(since - RECHECK_SKEW_S).encode(), self.prefix.encode()]
        for u in users:
            args += [user_hash(u).encode(), _str_bytes(u)]
        packer.add(_command(b"EVALSHA", self._recheck_sha, b"1", self._tomb, *args))
        return True

    def write_rejections(self, rejections: Iterable[Rejection]) -> int:
        """Dead-letter rejections into the stream (entries older than
        ``Settings.dead_letter_ttl_s`` are dropped, and at most ``DEAD_LETTER_MAXLEN`` kept).
        Idempotent by position: a position already recorded is not appended again. A rejection
        with a user is indexed for forget. Returns how many were new."""
        batch = list(rejections)
        if not batch:
            return 0
        ttl = self.settings.dead_letter_ttl_s
        args: list[Any] = [DEAD_LETTER_MAXLEN, repr(time.time()), repr(ttl), self._dlu]
        for rej in batch:
            h = user_hash(rej.user) if rej.user else ""
            ts = "" if rej.ts is None else repr(rej.ts)
            args += [rej.pos, rej.reason, rej.detail, rej.raw, h, ts]
        keys: list[Any] = [self._dl_stream, self._dl_pos, self._tomb]

        def call() -> int:
            new, forgotten = self._dead_letter(keys=keys, args=args)
            self.dead_letters_forgotten += int(forgotten)
            return int(new)

        return self._retry("dead-letter write", call, batch)

    def without_forgotten(self, rejections: Sequence[Rejection]) -> list[Rejection]:
        """``rejections`` but those of forgotten users older than their forget (or of unknown
        time): what a copy of the dead letters outside Redis (the JSONL file) may keep."""
        users = sorted({r.user for r in rejections if r.user})
        gone = self.tombstones(users) if users else {}
        if not gone:
            return list(rejections)
        return [
            r
            for r in rejections
            if r.user not in gone or (r.ts is not None and r.ts >= gone[r.user])
        ]

    def forget(self, user: str) -> int:
        """Forget the user now, atomically: their decisions, profile and dead letters are
        deleted and a tombstone (their hash and the time) is left, so a flow drops their
        events from before now, live or replayed (the ``dnp`` flag stays)."""
        keys, args = forget_keys(self.prefix, self._dl_stream, user)
        return int(self._retry("forget", lambda: self._forget(keys=keys, args=args), None))

    def tombstones(self, users: Sequence[str]) -> dict[str, float]:
        """The time each of ``users`` was forgotten, for those who were (one round trip)."""
        if not users:
            return {}
        hashes = [user_hash(u) for u in users]
        values: Any = self._retry("tombstones", lambda: self.r.hmget(self._tomb, hashes), None)
        return {u: float(v) for u, v in zip(users, values, strict=True) if v is not None}

    # -- reads --------------------------------------------------------------------------------

    def ping(self) -> bool:
        """``True`` once Redis answers (retried like a write, then StoreUnavailable)."""
        return bool(self._retry("ping", self.r.ping, None))

    def load_users(self, users: list[str]) -> dict[str, tuple[bytes | None, bool]]:
        """Each user's profile bytes (or ``None``) and ``dnp`` membership, in one round trip.

        (``MGET`` of the profiles and ``SMISMEMBER`` of the dnp set in one pipeline; very long
        lists are split into 10,000-user commands within that pipeline.)
        """
        if not users:
            return {}
        step = 10_000

        def call() -> list[Any]:
            pipe = self.r.pipeline(transaction=False)
            for i in range(0, len(users), step):
                part = users[i : i + step]
                pipe.mget([f"{self.prefix}p:{u}" for u in part])
                pipe.smismember(self._dnp, part)
            return list(pipe.execute())

        replies = self._retry("load users", call, None)
        out: dict[str, tuple[bytes | None, bool]] = {}
        for n, i in enumerate(range(0, len(users), step)):
            profiles, flags = replies[2 * n], replies[2 * n + 1]
            for user, profile, flag in zip(users[i : i + step], profiles, flags, strict=True):
                out[user] = (profile, bool(flag))
        return out

    def get_raw(self, key: str) -> bytes | None:
        """The raw value of a key (full name, prefix included), ``None`` if absent."""
        value: Any = self.r.get(key)
        return None if value is None else bytes(value)

    def get_decisions(self, user: str) -> dict[str, Any] | None:
        """The decoded ``P d:{user}`` value (compact or the JSON of earlier versions), ``None``
        if absent."""
        raw = self.get_raw(self.decision_key(user))
        return None if raw is None else decode_decision(raw)

    def get_profile(self, user: str) -> Any | None:
        """The decoded ``P p:{user}`` value, ``None`` if absent."""
        raw = self.get_raw(self.profile_key(user))
        return None if raw is None else decode_profile(raw)

    def get_page(self, item: str) -> dict[str, Any] | None:
        """``item``'s product page ``{"items": [...], "scores": [...]}``, ``None`` if absent."""
        raw: Any = self.r.hget(page_key(self.prefix, item), item)
        return None if raw is None else decode_page(bytes(raw))

    def pages(self) -> dict[str, dict[str, Any]]:
        """Every stored product page, item -> page (a scan of the buckets: tests and tools)."""
        out: dict[str, dict[str, Any]] = {}
        pattern = _glob_escape(f"{self.prefix}pages:") + "*"
        for key in sorted({bytes(k) for k in self.r.scan_iter(match=pattern, count=1_000)}):
            fields: Any = self.r.hgetall(key)
            for item, raw in sorted(fields.items()):
                out[bytes(item).decode("utf-8", "surrogatepass")] = decode_page(bytes(raw))
        return out

    def catalogue(self) -> dict[str, bytes]:
        """Every catalogue entry, item -> ``b"category|price"`` (a scan of the buckets and of
        the hash earlier versions wrote; the buckets win: tests and tools)."""
        out: dict[str, bytes] = {}
        pattern = _glob_escape(f"{self.prefix}items:") + "*"
        keys = sorted({bytes(k) for k in self.r.scan_iter(match=pattern, count=1_000)})
        for key in [self._items, *keys]:
            fields: Any = self.r.hgetall(key)
            for item, raw in sorted(fields.items()):
                out[bytes(item).decode("utf-8", "surrogatepass")] = bytes(raw)
        return out

    def migrate_items(self, chunk: int = 1_000) -> int:
        """Move the catalogue hash of earlier versions (``P items``) into the buckets, an entry
        a bucket already holds (newer) excepted; the number of entries moved. Each chunk moves
        atomically, so it is safe beside a running flow and safe to repeat."""
        moved = 0
        cursor = 0
        script = self._migrate_items

        def move(names: list[bytes]) -> int:
            buckets = [page_bucket(f.decode("utf-8", "surrogatepass")) for f in names]
            keys = [self._items, *[self._items + b":%d" % b for b in buckets]]
            return int(self._retry("a catalogue move", lambda: script(keys, names), None))

        def scan(c: int) -> tuple[int, list[bytes]]:
            got: Any = self.r.hscan(self._items, c, count=chunk)
            return int(got[0]), [bytes(f) for f in got[1]]

        while True:
            cursor, names = self._retry("a catalogue scan", functools.partial(scan, cursor), None)
            if names:
                moved += move(names)
            if not cursor:
                return moved

    def meta(self, name: str) -> Any | None:
        """The decoded ``P meta:{name}`` value, ``None`` if absent."""
        raw = self.get_raw(self.meta_key(name))
        return None if raw is None else orjson.loads(raw)

    def meta_prefix(self, prefix: str) -> dict[str, Any]:
        """Every ``P meta:{name}`` whose name starts with ``prefix``: name -> decoded value."""
        base = self.meta_key("")
        pattern = _glob_escape(base + prefix) + "*"
        keys = sorted({bytes(k) for k in self.r.scan_iter(match=pattern, count=1_000)})
        if not keys:
            return {}
        values = self.r.mget(keys)
        skip = len(base.encode("utf-8"))
        return {
            k[skip:].decode("utf-8", "replace"): orjson.loads(v)
            for k, v in zip(keys, values, strict=True)
            if v is not None
        }

    def users_estimate(self) -> int:
        """Distinct users seen (HyperLogLog estimate, ~0.81% standard error)."""
        return int(self.r.pfcount(self._hll))

    def is_dnp(self, user: str) -> bool:
        return bool(self.r.sismember(self._dnp, user))

    def ttl(self, key: str) -> int:
        return int(self.r.ttl(key))

    def memory_per_key(self, sample_keys: Iterable[str]) -> float:
        """Mean ``MEMORY USAGE`` in bytes over the sample keys that exist (0.0 if none)."""
        keys = list(sample_keys)
        if not keys:
            return 0.0
        pipe = self.r.pipeline(transaction=False)
        for k in keys:
            pipe.memory_usage(k, samples=0)
        sizes = [int(s) for s in pipe.execute() if s is not None]
        return sum(sizes) / len(sizes) if sizes else 0.0

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        self.r.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store(prefix={self.prefix!r}, {self.r.connection_pool!r})"


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
