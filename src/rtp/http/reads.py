"""Decision reads over async Redis, with :class:`rtp.store.client.Client`'s own logic.

``Client`` is the public read API, but it is synchronous. The HTTP app reads the values a call
needs in one round trip (the decision document, the fallback list and, for a product page, the
page in its bucket, through the small asyncio client of :mod:`rtp.http.resp`), then runs
``Client.decision`` on a :class:`_Snapshot` of those replies, so the answer is exactly what a
Python backend would get, decoded the same way (:mod:`rtp.store.codec`). Should ``Client`` ask
for a value the snapshot does not hold (a product page without ``item`` needs the user's last
item first), it is fetched and the call repeated.

:func:`fallback` is the non-personalized answer for a visitor rtp has never seen (or forgot):
the flow's trending list at ``{prefix}meta:fallback``, marked ``"mode": "fallback"``.
:func:`rerank` reorders search results with :func:`rtp.store.client.rerank_scores` and adds a
reason per item from the user's session context.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from rtp.config import Settings
from rtp.decisions.reasons import item_reason
from rtp.http.resp import AsyncRedis
from rtp.store.client import Client, rerank_scores, stored_decision
from rtp.store.store import item_meta_command, page_key

__all__ = ["fallback", "read_decision", "rerank"]

FALLBACK_REASON = "popular right now"
_NO_DATA_REASON = "our selection (nothing learned yet)"
_LIST_PLACEMENTS = ("home", "product", "recent")


Command = tuple[str, ...]


class _Miss(Exception):
    def __init__(self, commands: list[Command]) -> None:
        super().__init__(commands)
        self.commands = commands


class _Snapshot(Client):
    """``Client`` reading the replies fetched beforehand (by command) instead of Redis."""

    def __init__(self, settings: Settings, values: dict[Command, Any]) -> None:
        super().__init__(None, settings)  # type: ignore[arg-type]
        self.values = values

    def _fetch(self, what: str, commands: Sequence[Command]) -> list[Any]:
        missing = [c for c in commands if c not in self.values]
        if missing:
            raise _Miss(missing)
        return [self.values[c] for c in commands]


async def read_decision(
    aio: AsyncRedis,
    settings: Settings,
    user: str,
    placement: str,
    item: str | None = None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """``Client.decision(user, placement, item)`` and the fallback item ids, in one round trip
    (two for a product page without ``item``)."""
    p = settings.key_prefix
    commands: list[Command] = [("GET", f"{p}d:{user}"), ("GET", f"{p}meta:fallback")]
    if placement == "product" and item is not None:
        commands += [("HGET", page_key(p, item), item), ("GET", f"{p}n:{item}")]
    replies: list[Any] = await aio.pipeline([list(c) for c in commands])
    snap = _Snapshot(settings, dict(zip(commands, replies, strict=True)))
    fallback_ids = _ids(replies[1])
    for _ in range(4):
        try:
            return snap.decision(user, placement, item), fallback_ids
        except _Miss as miss:
            more: list[Any] = await aio.pipeline([list(c) for c in miss.commands])
            snap.values.update(zip(miss.commands, more, strict=True))
    return None, fallback_ids  # pragma: no cover - Client reads at most twice


def _ids(raw: bytes | None) -> list[str]:
    if not raw:
        return []
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    return [str(i) for i in doc] if isinstance(doc, list) else []


def fallback(placement: str, ids: Sequence[str], n: int, item: str | None = None) -> dict[str, Any]:
    """The non-personalized answer for a placement, marked ``"mode": "fallback"``."""
    reason = FALLBACK_REASON if ids else _NO_DATA_REASON
    out: dict[str, Any] = {"placement": placement, "mode": "fallback", "reason": reason}
    if placement in _LIST_PLACEMENTS:
        chosen = [i for i in ids if i != item][:n]
        out["items"] = [[i, 0.0] for i in chosen]
        out["why"] = ["pop"] * len(chosen)
        out["reasons"] = [item_reason("pop")] * len(chosen)
        if item is not None:
            out["for"] = item
    elif placement == "hero":
        out["theme"] = "default"
    elif placement == "nav":
        out["categories"] = []
    else:  # offer, assist and anything else: show nothing
        out["show"] = False
        out["code"] = "fallback"
        out["reason"] = "nothing to show a visitor we do not know yet"
    return out


async def rerank(
    aio: AsyncRedis, settings: Settings, user: str, query: str, items: Sequence[str]
) -> tuple[list[dict[str, Any]], str]:
    """Items reordered by the user's context, each with its score and reason, and the mode
    (``personalized``, or ``original`` for an unknown or do-not-personalize user). One round
    trip: the decision document, the ``dnp`` flag and the items' category and price."""
    p = settings.key_prefix
    keys = [str(i) for i in items]
    commands: list[list[str]] = [["GET", f"{p}d:{user}"], ["SISMEMBER", f"{p}dnp", user]]
    if keys:
        commands.append(list(item_meta_command(p, keys)))
    replies = await aio.pipeline(commands)
    raw, dnp = replies[0], replies[1]
    meta: list[bytes | None] = list(replies[2]) if keys else []
    doc = stored_decision(raw) if raw else None
    if dnp or doc is None or not isinstance(doc.get("ctx"), dict):
        why = "your search order" if dnp or doc is None else "no browsing in this visit yet"
        return [{"id": i, "score": 0.0, "reason": why} for i in keys], "original"
    scores = rerank_scores(doc, query, keys, meta)
    order = sorted(range(len(keys)), key=scores.__getitem__, reverse=True)
    ctx: dict[str, Any] = doc["ctx"]
    reasons = _Reasons(doc, ctx)
    out = [
        {"id": keys[n], "score": round(scores[n], 4), "reason": reasons.of(keys[n], meta[n])}
        for n in order
    ]
    return out, "personalized"


class _Reasons:
    """The strongest context signal behind an item's rerank score, as a sentence."""

    def __init__(self, doc: dict[str, Any], ctx: dict[str, Any]) -> None:
        self.cart = set(ctx.get("cart") or ())
        self.recent = set(ctx.get("recent") or ())
        cats = [str(c[0]) for c in ctx.get("categories") or () if c]
        self.top = cats[:3]
        home = doc.get("home")
        self.home = set(home.get("items") or ()) if isinstance(home, dict) else set()
        band = ctx.get("price")
        self.band = (float(band[0]), float(band[1])) if band and len(band) == 2 else None
        recent = list(ctx.get("recent") or ())
        self.last = str(recent[0]) if recent else None

    def of(self, item: str, meta: bytes | None) -> str:
        if item in self.cart:
            return "still in your cart"
        if item in self.recent:
            return "you viewed this earlier in this visit"
        cat, price = "", -1.0
        if meta:
            c, _, pr = meta.partition(b"|")
            cat = c.decode("utf-8", "replace")
            try:
                price = float(pr) if pr else -1.0
            except ValueError:
                price = -1.0
        if cat and cat in self.top:
            if self.last:
                return f"because you viewed {self.last} ({cat})"
            return f"you are browsing {cat}"
        if item in self.home:
            return "recommended for you"
        if self.band and self.band[0] <= price <= self.band[1]:
            return "in your price range"
        return "matches your search"
