"""The public read API: what a web or app backend calls at request time.

::

    from rtp.store.client import Client

    with Client.from_url("redis://localhost:6379/0") as rtp_client:
        home = rtp_client.decision("u42", "home")          # {"items": [...], "reason": ..., ...}
        hits = rtp_client.rerank("u42", "shoes", search_result_ids)

Reads are single round trips (a decision read costs one ``GET``) and decode the compact values
of :mod:`rtp.store.codec`, or the JSON that earlier versions wrote, to the same documents; the
client never retries (a request has a deadline: on a Redis error it raises
:class:`rtp.errors.StoreUnavailable` at once and the caller serves its default experience).
It imports neither bytewax nor the engine.

``forget`` and ``set_do_not_personalize`` act on Redis *now* and also append a control event
to the live stream, so a running flow drops (or stops using) its in-memory state for the user
in order with the user's other events.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rtp.capture.events import DO_NOT_PERSONALIZE, SCHEMA_VERSION
from rtp.config import Settings
from rtp.decisions.reasons import expand_why, item_reason, quiet_reason
from rtp.errors import StoreError, StoreUnavailable
from rtp.store import streams
from rtp.store.codec import (
    DECISION,
    DECISION_Z,
    PROFILE,
    decode_decision,
    decode_page,
    decode_profile,
)
from rtp.store.store import (
    FORGET_LUA,
    PAGE_BUCKETS,
    connect,
    forget_keys,
    item_meta_command,
    pack_command,
    page_key,
    roundtrip,
)

__all__ = ["Client", "RERANK_WEIGHTS", "rerank_scores", "stored_decision"]

T = TypeVar("T")

# Context signals of Client.rerank and their weights (scores are sums of these).
RERANK_WEIGHTS: dict[str, float] = {
    "category": 1.0,  # x the session's weight of the item's category (weights sum to ~1)
    "recent": 0.5,  # viewed in this session
    "cart": 0.25,  # in the cart
    "home": 0.75,  # x its score in the home recommendations
    "price": 0.25,  # price inside the session's price band
}
_TOP_FIELDS = ("ts", "mode", "model", "exp")
_ERRORS = (RedisConnectionError, RedisTimeoutError)


class Client:
    """Reads decisions and context from Redis; records forget / do-not-personalize requests.

    :param r: a redis-py client (see :meth:`from_url`, which sets timeouts and the pool from
        :class:`Settings`).
    :param settings: the key prefix.
    :param stream: the live event stream that control events are appended to.
    """

    def __init__(
        self, r: redis.Redis, settings: Settings | None = None, stream: str = streams.DEFAULT_STREAM
    ) -> None:
        self.settings = settings or Settings()
        self.r = r
        self.stream = stream
        self.prefix = self.settings.key_prefix
        self._d = self.prefix + "d:"
        self._n = self.prefix + "n:"  # product pages as written before the buckets (read only)
        self._items = self.prefix + "items"
        self._dnp = self.prefix + "dnp"
        self._forget_script: Any = None
        self._spin_ns = max(0, self.settings.read_spin_us) * 1000
        # items-hash value -> (category, price or -1.0): parsed once, most searches repeat items
        self._item_cache: dict[bytes, tuple[bytes, float]] = {}

    @classmethod
    def from_url(
        cls, url: str, settings: Settings | None = None, stream: str = streams.DEFAULT_STREAM
    ) -> Client:
        """A client on ``url`` with ``settings``' timeouts and pool size (no retries)."""
        settings = settings or Settings()
        return cls(connect(url, settings), settings, stream)

    # -- reads --------------------------------------------------------------------------------

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except _ERRORS as e:
            raise StoreUnavailable(f"Redis did not answer {what}: {e}") from e

    def _fetch(self, what: str, commands: Sequence[tuple[str, ...]]) -> list[Any]:
        """The replies to read ``commands``, sent in one round trip."""
        packed = b"".join([pack_command(*c) for c in commands])
        replies: list[Any] = self._call(
            what, roundtrip, self.r, (packed,), (len(commands),), self._spin_ns
        )
        for reply in replies:
            if isinstance(reply, Exception):
                raise StoreError(f"Redis refused {what}: {reply}")
        return replies

    def _doc(self, user_id: str) -> dict[str, Any] | None:
        raw = self._fetch("a decision read", (("GET", self._d + str(user_id)),))[0]
        return None if raw is None else stored_decision(raw)

    def context(self, user_id: str) -> dict[str, Any] | None:
        """The session context the user's decisions were made from (``"ctx"``), or ``None``."""
        doc = self._doc(user_id)
        if doc is None:
            return None
        ctx = doc.get("ctx")
        return ctx if isinstance(ctx, dict) else None

    def profile(self, user_id: str) -> dict[str, Any] | None:
        """The user's long-term profile, or ``None``."""
        raw = self._fetch("a profile read", (("GET", f"{self.prefix}p:{user_id}"),))[0]
        if raw is None or raw[:1] not in (b"{", _PROFILE):
            return None
        return decode_profile(raw)

    def decision(
        self, user_id: str, placement: str = "home", item: str | None = None
    ) -> dict[str, Any] | None:
        """The placement's decision merged with ``ts, mode, model, exp`` and ``placement``.

        Placements: ``home``, ``product`` (for ``item``'s page, default: the item the user is
        on), ``recent`` (continue shopping), ``nav`` (category order), ``hero``, ``offer``,
        ``assist``. Lists come back as ``items: [[item, score], ...]`` with a reason per item
        (``why`` codes, ``reasons`` sentences) and one ``reason`` for the placement. ``recent``
        and ``nav`` are derived from the stored context and ``product`` from the item's shared
        neighbours (nothing is stored twice); a quiet ``offer``/``assist`` is stored as a code
        and comes back as ``{"show": False, "reason": ...}``. ``None`` when the user has no
        decisions or none for this placement.
        """
        if placement == "product":
            return self._product(user_id, item)
        doc = self._doc(user_id)
        if doc is None:
            return None
        part = doc.get(placement)
        if part is None:
            part = _derived(doc, placement)
        elif isinstance(part, str):
            part = {"show": False, "reason": quiet_reason(part), "code": part}
        if not isinstance(part, dict):
            return None
        out = _expand(part)
        for name in _TOP_FIELDS:
            if name in doc:
                out[name] = doc[name]
        out["placement"] = placement
        return out

    def _page_reads(self, item: str) -> tuple[tuple[str, ...], ...]:
        # the page in its bucket, and where earlier versions kept it (until that expires)
        return ("HGET", page_key(self.prefix, item), item), ("GET", self._n + item)

    def _product(self, user_id: str, item: str | None) -> dict[str, Any] | None:
        commands: tuple[tuple[str, ...], ...] = (("GET", self._d + str(user_id)),)
        if item is not None:
            item = str(item)
            commands += self._page_reads(item)
        raws = self._fetch("a decision read", commands)
        doc = None if raws[0] is None else stored_decision(raws[0])
        if doc is None:
            return None
        if item is None:
            recent = (doc.get("ctx") or {}).get("recent") or []
            if not recent:
                return None
            item = str(recent[0])
            raws = [None, *self._fetch("a decision read", self._page_reads(item))]
        raw = raws[1] if raws[1] is not None else raws[2]
        if raw is None:
            return None
        part = decode_page(raw)
        out = _expand(part)
        out["items"] = [pair for pair in out["items"] if pair[0] != item]
        out["for"] = item
        out["reason"] = f"shoppers who viewed {item} also viewed these"
        for name in _TOP_FIELDS:
            if name in doc:
                out[name] = doc[name]
        out["placement"] = "product"
        return out

    def decisions(self, user_id: str) -> dict[str, Any] | None:
        """The whole decoded decision document (every placement and ``ctx``), or ``None``."""
        return self._doc(user_id)

    def rerank(self, user_id: str, query: str, item_ids: Sequence[T]) -> list[T]:
        """``item_ids`` reordered by the user's session context (a permutation of the input).

        One round trip (the decision document, the user's ``dnp`` flag and the items' category
        and price), then each item scores the sum of :data:`RERANK_WEIGHTS` signals: its
        category's session weight, viewed in this session, in the cart, its score in the home
        recommendations, its price inside the session's band. Higher scores first; equal scores
        keep the input order. When ``query`` is new to the session (not among its recent
        queries) the category signal counts half: the user may be after something else now.
        Unknown users, do-not-personalize users and empty contexts get the input order back.
        """
        items = list(item_ids)
        if len(items) < 2:
            return items
        keys = [str(i) for i in items]
        uid = str(user_id)
        packed = _pack(
            ("GET", self._d + uid),
            ("SISMEMBER", self._dnp, uid),
            item_meta_command(self.prefix, keys),
        )
        raw, dnp, meta = self._call(
            "a rerank read", roundtrip, self.r, (packed,), (3,), self._spin_ns
        )
        for reply in (raw, dnp, meta):
            if isinstance(reply, Exception):
                raise StoreError(f"Redis refused a rerank read: {reply}")
        if raw is None or dnp:
            return items
        doc = stored_decision(raw)
        if doc is None or not isinstance(doc.get("ctx"), dict):
            return items
        scores = rerank_scores(doc, query, keys, meta, self._item_cache)
        if len(self._item_cache) > 100_000:
            self._item_cache.clear()
        order = sorted(range(len(items)), key=scores.__getitem__, reverse=True)  # stable
        return [items[n] for n in order]

    def stats(self) -> dict[str, Any]:
        """Store-wide counts in one round trip: users (estimate), dnp users, items, dead
        letters, keys and Redis memory."""
        p = self.prefix
        pipe = self.r.pipeline(transaction=False)
        pipe.pfcount(p + "hll:users")
        pipe.scard(self._dnp)
        pipe.xlen(self.settings.dead_letter_stream)
        pipe.dbsize()
        pipe.info("memory")
        pipe.hlen(self._items)  # the catalogue: the hash of earlier versions, then the buckets
        for b in range(PAGE_BUCKETS):
            pipe.hlen(f"{self._items}:{b}")
        users, dnp, dead, keys, memory, *items = self._call("stats", pipe.execute)
        return {
            "users": int(users),
            "dnp_users": int(dnp),
            "items": sum(map(int, items)),
            "dead_letters": int(dead),
            "keys": int(keys),
            "used_memory_bytes": int(memory.get("used_memory", 0)),
        }

    # -- control ------------------------------------------------------------------------------

    def forget(self, user_id: str) -> None:
        """Forget the user now, in one atomic operation: their decisions, profile and dead
        letters are deleted, and a tombstone (a hash of the id and the time) makes every flow,
        live or replaying history, drop their events from before now and start afresh with
        later ones. The ``dnp`` flag, if set, is kept."""
        keys, args = forget_keys(self.prefix, self.settings.dead_letter_stream, str(user_id))
        script = self._forget_script
        if script is None:
            script = self._forget_script = self.r.register_script(FORGET_LUA)
        self._call("forget", script, keys, args)

    def set_do_not_personalize(self, user_id: str, flag: bool = True) -> None:
        """Add the user to (or remove them from) the do-not-personalize set now, and tell a
        running flow (a ``dnp`` event). Setting the flag also deletes the user's current
        decisions, which were personalized; the flow writes unpersonalized ones next time."""
        uid = str(user_id)
        pipe = self.r.pipeline(transaction=False)
        if flag:
            pipe.sadd(self._dnp, uid)
            pipe.delete(self._d + uid)
        else:
            pipe.srem(self._dnp, uid)
        self._call("do-not-personalize", pipe.execute)
        event = {"v": SCHEMA_VERSION, "type": DO_NOT_PERSONALIZE, "user": uid, "dnp": bool(flag)}
        self._call("do-not-personalize", streams.append, self.r, [event], self.stream)

    def is_do_not_personalize(self, user_id: str) -> bool:
        return bool(self._call("a dnp read", self.r.sismember, self._dnp, str(user_id)))

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        self.r.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def rerank_scores(
    doc: dict[str, Any],
    query: str,
    keys: Sequence[str],
    meta: Sequence[bytes | None],
    cache: dict[bytes, tuple[bytes, float]] | None = None,
) -> list[float]:
    """The context score of each item (see :meth:`Client.rerank`).

    ``doc`` is a decoded decision document, ``keys`` the item ids as strings and ``meta`` their
    ``b"category|price"`` values from the items hash (``None`` when unknown); ``cache`` keeps
    parsed values between calls.
    """
    ctx: dict[str, Any] = doc.get("ctx") or {}
    w = RERANK_WEIGHTS
    cat_scale = w["category"]
    queries = ctx.get("queries") or ()
    if query and queries and " ".join(query.lower().split()) not in queries:
        cat_scale *= 0.5
    cats = {str(c[0]).encode(): float(c[1]) * cat_scale for c in ctx.get("categories") or ()}
    recent = set(ctx.get("recent") or ())
    cart = set(ctx.get("cart") or ())
    home = doc.get("home")
    w_home = w["home"]
    home_items = home.get("items") or () if isinstance(home, dict) else ()
    home_raw = home.get("scores") or () if isinstance(home, dict) else ()
    home_scores = {str(i): float(sc) * w_home for i, sc in zip(home_items, home_raw, strict=False)}
    band = ctx.get("price")
    lo, hi = (float(band[0]), float(band[1])) if band and len(band) == 2 else (1.0, 0.0)
    w_recent, w_cart, w_price = w["recent"], w["cart"], w["price"]
    cats_get = cats.get
    home_get = home_scores.get
    if cache is None:
        cache = {}
    cache_get = cache.get
    scores: list[float] = []
    append = scores.append
    for key, value in zip(keys, meta, strict=True):
        score = home_get(key, 0.0)
        if key in recent:
            score += w_recent
        if key in cart:
            score += w_cart
        if value:
            parsed = cache_get(value)
            if parsed is None:
                parsed = cache[value] = _parse_item(value)
            cat, price = parsed
            score += cats_get(cat, 0.0)
            if lo <= price <= hi:
                score += w_price
        append(score)
    return scores


_DECISIONS = (b"{", bytes((DECISION,)), bytes((DECISION_Z,)))
_PROFILE = bytes((PROFILE,))


def stored_decision(raw: bytes) -> dict[str, Any] | None:
    """A stored decision document (compact or JSON), ``None`` if it is not one (JSON that is
    not an object, as earlier versions treated it)."""
    if raw[:1] not in _DECISIONS:
        return None
    return decode_decision(raw)


def _parse_item(value: bytes) -> tuple[bytes, float]:
    cat, _, price = value.partition(b"|")
    try:
        p = float(price) if price else -1.0
    except ValueError:
        p = -1.0
    return cat, p if p >= 0.0 else -1.0


def _pack(*commands: tuple[str, ...]) -> bytes:
    return b"".join([pack_command(*c) for c in commands])


def _derived(doc: dict[str, Any], placement: str) -> dict[str, Any] | None:
    """``recent`` and ``nav`` from the context stored beside the decisions."""
    ctx = doc.get("ctx") or {}
    if placement == "recent":
        cart = list(ctx.get("cart") or [])
        items = cart + [i for i in ctx.get("recent") or [] if i not in cart]
        if not items:
            return None
        return {
            "items": items[:8],
            "reason": "still in your cart" if cart else "continue shopping",
        }
    if placement == "nav":
        cats = [c for c, _ in ctx.get("categories") or []]
        if not cats:
            return {"categories": [], "reason": "no browsing yet: the default order"}
        return {"categories": cats, "reason": f"you browse {cats[0]} most"}
    return None


def _expand(part: dict[str, Any]) -> dict[str, Any]:
    """Stored list form (``items``, ``scores``, one-character ``why``) -> the public form."""
    out = dict(part)
    items = out.get("items")
    scores = out.pop("scores", None)
    if isinstance(items, list) and isinstance(scores, list):
        out["items"] = [[i, s] for i, s in zip(items, scores, strict=False)]
    why = out.get("why")
    if why is not None:
        codes = expand_why(why)
        out["why"] = codes
        out["reasons"] = [item_reason(c) for c in codes]
    return out
