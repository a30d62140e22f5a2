"""The live event stream in Redis: N partitions, one JSON field per entry, a user per partition.

Producers (web servers, the HTTP collector, ``rtp.Client.forget``, benchmarks) append schema-v1
events with :func:`append`; the flow reads the partitions with
``rtp.flow.sources.RedisStreamSource`` through a consumer group. Both sides agree on the layout
through :func:`partition_of` and the stream's config hash (``{stream}:config``), which the flow
writes when it starts (:func:`configure`) and :func:`append` reads (cached for a few seconds):

- ``{stream}:{p}`` for ``p`` in ``0 .. partitions - 1``: the partition streams; a user's events
  always go to ``partition_of(user, partitions)`` (CRC-32 of the id), so one user's events stay
  in order;
- ``{stream}:config``: ``partitions`` and ``max_backlog`` (entries a partition may hold before
  producers are refused).

**Backpressure, not loss.** The flow trims a partition only below what its consumer group has
acknowledged, so a partition's length is its backlog. :func:`append` checks the target
partitions' lengths and adds the events in one server-side script, all or nothing: when a
partition is over ``max_backlog`` nothing is added and :class:`rtp.errors.Backpressure` is raised
with a suggested ``retry_after_s``; the producer keeps its events and retries (the HTTP collector
answers 429 with ``Retry-After``).

**No raw IP is stored.** An event's ``context.ip`` is resolved to ``context.country`` (offline)
before it is appended, so not even the stream holds the address.

An entry with the field ``eof`` ends the partition's reader (tests and benchmarks use it; live
producers never send it).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable
from typing import Any

import orjson

from rtp.capture.enrich import country_of
from rtp.capture.events import without_ips
from rtp.config import Settings
from rtp.errors import Backpressure

__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "DEFAULT_PARTITIONS",
    "DEFAULT_STREAM",
    "EOF_FIELD",
    "EVENT_FIELD",
    "StreamConfig",
    "append",
    "append_eof",
    "configure",
    "partition_of",
    "partition_names",
    "read_config",
    "scrub",
]

EVENT_FIELD = b"e"
EOF_FIELD = b"eof"
DEFAULT_STREAM = "rtp:events"
DEFAULT_PARTITIONS = 4
DEFAULT_MAX_BACKLOG = 500_000  # entries per partition (~0.3 KB each in Redis)
CONFIG_CACHE_S = 5.0

# KEYS: the partitions that receive events. ARGV[1] = max backlog (0: no bound), then for each
# key the number of its events, then every event. All or nothing: the first partition over the
# bound refuses the whole call ({-1, key index, length}); else every event is added and the ids
# are returned in order.
_APPEND_LUA = """
local bound = tonumber(ARGV[1])
if bound > 0 then
  for i = 1, #KEYS do
    local n = redis.call('XLEN', KEYS[i])
    if n + tonumber(ARGV[1 + i]) > bound then
      return {-1, i, n}
    end
  end
end
local ids = {}
local a = 2 + #KEYS
for i = 1, #KEYS do
  for _ = 1, tonumber(ARGV[1 + i]) do
    ids[#ids + 1] = redis.call('XADD', KEYS[i], '*', 'e', ARGV[a])
    a = a + 1
  end
end
return ids
"""


class StreamConfig:
    """How a live stream is laid out: its partition count and backlog bound."""

    __slots__ = ("stream", "partitions", "max_backlog")

    def __init__(
        self,
        stream: str = DEFAULT_STREAM,
        partitions: int = DEFAULT_PARTITIONS,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"a stream needs at least one partition, not {partitions}")
        self.stream = stream
        self.partitions = partitions
        self.max_backlog = max_backlog

    def names(self) -> list[str]:
        return partition_names(self.stream, self.partitions)

    def __repr__(self) -> str:
        return (
            f"StreamConfig({self.stream!r}, partitions={self.partitions}, "
            f"max_backlog={self.max_backlog})"
        )


def partition_of(user: str, partitions: int) -> int:
    """The partition a user's events go to (stable across processes, unlike ``hash``)."""
    if partitions == 1:
        return 0
    return zlib.crc32(user.encode("utf-8", "surrogatepass")) % partitions


def partition_names(stream: str, partitions: int) -> list[str]:
    return [f"{stream}:{p}" for p in range(partitions)]


def configure(r: Any, config: StreamConfig) -> StreamConfig:
    """Record the stream's layout (the flow calls this at start). A stream that already has a
    different partition count keeps it: the returned config is what producers will use."""
    key = f"{config.stream}:config"
    r.hsetnx(key, "partitions", config.partitions)
    r.hset(key, "max_backlog", config.max_backlog)
    stored = read_config(r, config.stream, cache=False)
    return stored


_CLIENTS: dict[str, Any] = {}


def _client(r: Any) -> Any:
    """``r`` itself when it is a client; the client kept for it when it is a Redis URL."""
    if isinstance(r, str):
        client = _CLIENTS.get(r)
        if client is None:
            import redis

            if not r.startswith(("redis://", "rediss://", "unix://")):
                raise ValueError(f"not a Redis URL (redis://host:port/db): {r!r}")
            timeout = Settings().redis_timeout_s  # as rtp's own clients: never hang forever
            client = _CLIENTS[r] = redis.Redis.from_url(r, socket_timeout=timeout)
        return client
    if not callable(getattr(r, "register_script", None)):
        raise TypeError(f"append needs a redis.Redis client or a Redis URL, not {type(r).__name__}")
    return r


def read_config(r: Any, stream: str = DEFAULT_STREAM, cache: bool = True) -> StreamConfig:
    """The stream's layout from ``{stream}:config`` (defaults when no flow has set it yet)."""
    now = time.monotonic()
    cached: dict[str, tuple[float, StreamConfig]] | None = getattr(r, "_rtp_stream_config", None)
    if cached is None:
        cached = {}
        r._rtp_stream_config = cached
    if cache:
        hit = cached.get(stream)
        if hit is not None and now - hit[0] < CONFIG_CACHE_S:
            return hit[1]
    raw: Any = r.hgetall(f"{stream}:config")
    parts = int(raw.get(b"partitions", DEFAULT_PARTITIONS)) if raw else DEFAULT_PARTITIONS
    bound = int(raw.get(b"max_backlog", DEFAULT_MAX_BACKLOG)) if raw else DEFAULT_MAX_BACKLOG
    config = StreamConfig(stream, parts, bound)
    cached[stream] = (now, config)
    return config


def scrub(d: dict[str, Any]) -> dict[str, Any]:
    """``d`` with ``context.ip`` replaced by ``context.country`` (a copy when it changes)."""
    ctx = d.get("context")
    if isinstance(ctx, dict) and "ip" in ctx:
        ctx = dict(ctx)
        ip = ctx.pop("ip")
        if "country" not in ctx and isinstance(ip, str):
            cc = country_of(ip)
            if cc is not None:
                ctx["country"] = cc
        d = {**d, "context": ctx}
    return d


def _user_and_raw(e: Any) -> tuple[str, bytes]:
    """The user (partition key) and the bytes to store: ``context.ip`` resolved to a country,
    then any other IP address anywhere in the record replaced by its country code (a record
    that is not even JSON included: nothing waiting in the stream holds an address)."""
    if isinstance(e, (bytes, bytearray, memoryview)):
        raw = bytes(e)
        try:
            d = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return "", without_ips(raw)  # the flow rejects it with a reason (invalid_json)
        if not isinstance(d, dict):
            return "", without_ips(raw)
        if isinstance(d.get("context"), dict) and "ip" in d["context"]:
            raw = orjson.dumps(scrub(d))
        return _user_key(d), without_ips(raw)
    if isinstance(e, dict):
        return _user_key(e), without_ips(orjson.dumps(scrub(e)))
    d = e.to_dict()
    return _user_key(d), without_ips(orjson.dumps(scrub(d)))


def _user_key(d: dict[str, Any]) -> str:
    user = d.get("user")
    if user is None:
        user = d.get("anon")
    return user if isinstance(user, str) else str(user) if user is not None else ""


def append(
    r: Any,
    events: Iterable[Any],
    stream: str = DEFAULT_STREAM,
    partitions: int | None = None,
    max_backlog: int | None = None,
) -> list[bytes]:
    """Append events (``Event`` objects, schema-v1 dicts, or JSON bytes) to the live stream.

    ``r`` is a ``redis.Redis`` client, or a Redis URL (``redis://host:port/db``; one client per
    URL is kept and reused). Each event goes to its user's partition; all of them are added in
    one atomic server-side call, or none is. Returns the entry ids in the order of ``events``.

    :param partitions: the partition count; by default the stream's own (``{stream}:config``).
    :param max_backlog: refuse when a target partition would hold more entries than this; by
        default the stream's bound, ``0`` for none.
    :raises rtp.errors.Backpressure: a partition's backlog is over the bound; nothing was added.
    """
    r = _client(r)
    items = [_user_and_raw(e) for e in events]
    if not items:
        return []
    if partitions is None or max_backlog is None:
        config = read_config(r, stream)
        partitions = config.partitions if partitions is None else partitions
        max_backlog = config.max_backlog if max_backlog is None else max_backlog
    groups: dict[int, list[int]] = {}
    for i, (user, _) in enumerate(items):
        groups.setdefault(partition_of(user, partitions), []).append(i)
    parts = sorted(groups)
    keys = [f"{stream}:{p}" for p in parts]
    argv: list[Any] = [max_backlog or 0, *(len(groups[p]) for p in parts)]
    order: list[int] = []
    for p in parts:
        for i in groups[p]:
            argv.append(items[i][1])
            order.append(i)
    reply = _script(r)(keys=keys, args=argv)
    if reply and reply[0] == -1:
        key, length = keys[int(reply[1]) - 1], int(reply[2])
        raise Backpressure(
            f"the live stream partition {key} holds {length:,} unprocessed events "
            f"(bound {max_backlog:,}): back off and retry",
            backlog=length,
            retry_after_s=1.0,
        )
    ids: list[bytes] = [b""] * len(items)
    for i, entry_id in zip(order, reply, strict=True):
        ids[i] = bytes(entry_id)
    return ids


def _script(r: Any) -> Any:
    s = getattr(r, "_rtp_append_script", None)
    if s is None:
        s = r.register_script(_APPEND_LUA)
        r._rtp_append_script = s
    return s


def append_eof(r: Any, stream: str = DEFAULT_STREAM, partitions: int | None = None) -> list[bytes]:
    """Ask every partition's reader to end (for tests and benchmarks)."""
    if partitions is None:
        partitions = read_config(r, stream).partitions
    pipe = r.pipeline(transaction=False)
    for name in partition_names(stream, partitions):
        pipe.xadd(name, {EOF_FIELD: b"1"})
    return [bytes(x) for x in pipe.execute()]
