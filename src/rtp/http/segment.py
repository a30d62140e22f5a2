"""Segment-style calls mapped to rtp schema-v1 events (the e-commerce spec v2 names).

A site that already sends Segment's ``track`` / ``page`` / ``identify`` calls can point them at
``POST /v1/events`` unchanged. :func:`to_events` maps one call to zero or more schema-v1 dicts,
which the collector then validates with :func:`rtp.capture.events.from_dict` like any event:

======================================  =====================================================
Segment call                            rtp event
======================================  =====================================================
``track`` Products Searched             ``search`` (``properties.query``)
``track`` Product List Viewed/Filtered  ``page_view`` (``properties.category``)
``track`` Product Clicked               ``click``
``track`` Product Viewed                ``product_view``
``track`` Product Added                 ``add_to_cart``
``track`` Product Removed               ``remove_from_cart``
``track`` Product Added to Wishlist     ``add_to_wishlist``
``track`` Cart Viewed, Checkout         ``page_view``
Started, Checkout Step Viewed/Completed,
Payment Info Entered
``track`` Order Completed               one ``purchase`` per ``properties.products`` entry
``track`` Promotion Clicked             ``click``
``track`` Product Hovered               ``hover``
``track`` Page Scrolled                 ``scroll``
``track`` Help Viewed, Support Viewed,  ``help_view``
FAQ Viewed
``page`` / ``screen``                   ``page_view``, or ``help_view`` for a help, support or
                                        FAQ page (by name, category or path)
``identify``, ``group``, ``alias``      nothing (accepted and counted as ignored)
``track`` with any other name           rejected: ``unknown_type``
======================================  =====================================================

Fields: ``userId`` (else ``anonymousId`` as ``anon``), ``timestamp`` or ``originalTimestamp``
(ISO-8601 or epoch; the time of receipt when absent), ``properties.product_id`` / ``sku`` / ``id``
(the item), ``category``, ``price``, ``query``; ``context.userAgent``, ``context.ip``,
``context.page.referrer`` and ``context.campaign`` (to ``utm``). A batch's own ``context``
applies to each call that lacks those fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rtp.capture.events import (
    ADD_TO_CART,
    ADD_TO_WISHLIST,
    CLICK,
    HELP_VIEW,
    HOVER,
    PAGE_VIEW,
    PRODUCT_VIEW,
    PURCHASE,
    REMOVE_FROM_CART,
    SCHEMA_VERSION,
    SCROLL,
    SEARCH,
)

__all__ = ["SEGMENT_CALLS", "TRACK_EVENTS", "IGNORED_CALLS", "is_segment", "to_events"]

SEGMENT_CALLS = frozenset({"track", "page", "screen", "identify", "group", "alias"})
IGNORED_CALLS = frozenset({"identify", "group", "alias"})

# Segment e-commerce spec v2 event names (lower case, single spaces) -> rtp event type.
TRACK_EVENTS: dict[str, str] = {
    "products searched": SEARCH,
    "product searched": SEARCH,
    "product list viewed": PAGE_VIEW,
    "product list filtered": PAGE_VIEW,
    "product clicked": CLICK,
    "promotion clicked": CLICK,
    "product viewed": PRODUCT_VIEW,
    "product added": ADD_TO_CART,
    "product removed": REMOVE_FROM_CART,
    "product added to wishlist": ADD_TO_WISHLIST,
    "cart viewed": PAGE_VIEW,
    "checkout started": PAGE_VIEW,
    "checkout step viewed": PAGE_VIEW,
    "checkout step completed": PAGE_VIEW,
    "payment info entered": PAGE_VIEW,
    "order completed": PURCHASE,
    "product hovered": HOVER,
    "page scrolled": SCROLL,
    "help viewed": HELP_VIEW,
    "support viewed": HELP_VIEW,
    "faq viewed": HELP_VIEW,
}
_HELP_WORDS = ("help", "support", "faq", "contact")
_CAMPAIGN_KEYS = (("name", "campaign"), ("source", "source"), ("medium", "medium"),
                  ("term", "term"), ("content", "content"))  # fmt: skip


class Unmapped(Exception):
    """A call that maps to no event: ``reason`` is a rejection code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def is_segment(record: Mapping[str, Any]) -> bool:
    """Whether a JSON object is a Segment-style call (rather than an rtp schema-v1 event)."""
    kind = record.get("type")
    return isinstance(kind, str) and kind in SEGMENT_CALLS


def _item(props: Mapping[str, Any]) -> Any:
    for name in ("product_id", "sku", "id"):
        value = props.get(name)
        if value is not None and value != "":
            return value
    return None


def _price(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value  # rejected by validation with its own reason
    return value


def _context(record: Mapping[str, Any], batch_ctx: Mapping[str, Any] | None) -> dict[str, Any]:
    ctx = record.get("context")
    src: dict[str, Any] = dict(batch_ctx or {})
    if isinstance(ctx, Mapping):
        src.update(ctx)
    out: dict[str, Any] = {}
    ua = src.get("userAgent")
    if isinstance(ua, str):
        out["ua"] = ua
    ip = src.get("ip")
    if isinstance(ip, str):
        out["ip"] = ip
    page = src.get("page")
    if isinstance(page, Mapping) and isinstance(page.get("referrer"), str):
        out["referrer"] = page["referrer"]
    campaign = src.get("campaign")
    if isinstance(campaign, Mapping):
        utm = {
            key: campaign[name]
            for name, key in _CAMPAIGN_KEYS
            if isinstance(campaign.get(name), str) and campaign[name]
        }
        if utm:
            out["utm"] = utm
    channel = record.get("channel")
    if isinstance(channel, str):
        out["channel"] = "web" if channel == "browser" else channel
    elif record.get("type") == "screen":
        out["channel"] = "app"
    return out


def _is_help(record: Mapping[str, Any], props: Mapping[str, Any]) -> bool:
    for value in (record.get("name"), record.get("category"), props.get("path"), props.get("url")):
        if isinstance(value, str):
            low = value.lower()
            if any(word in low for word in _HELP_WORDS):
                return True
    return False


def to_events(
    record: Mapping[str, Any], received_ts: float, batch_ctx: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The schema-v1 events one Segment call stands for (not yet validated).

    ``identify``, ``group`` and ``alias`` give ``[]``. Raises :class:`Unmapped` for a ``track``
    whose name maps to no rtp type (``unknown_type``) or an ``Order Completed`` without
    products (``missing_field``).
    """
    call = record.get("type")
    if call in IGNORED_CALLS:
        return []
    props_raw = record.get("properties")
    props: Mapping[str, Any] = props_raw if isinstance(props_raw, Mapping) else {}
    if call == "track":
        name = record.get("event")
        key = " ".join(name.lower().split()) if isinstance(name, str) else ""
        etype = TRACK_EVENTS.get(key)
        if etype is None:
            raise Unmapped("unknown_type", f"no rtp event type for the track {name!r}")
    elif call in ("page", "screen"):
        etype = HELP_VIEW if _is_help(record, props) else PAGE_VIEW
    else:  # pragma: no cover - is_segment() filters the calls
        raise Unmapped("unknown_type", f"unknown call type {call!r}")
    base: dict[str, Any] = {"v": SCHEMA_VERSION, "type": etype}
    user = record.get("userId")
    if user is not None and user != "":
        base["user"] = user
    else:
        anon = record.get("anonymousId")
        if anon is not None and anon != "":
            base["anon"] = anon
    ts = record.get("timestamp")
    if ts is None:
        ts = record.get("originalTimestamp")
    base["ts"] = received_ts if ts is None else ts
    ctx = _context(record, batch_ctx)
    if ctx:
        base["context"] = ctx
    if etype == PURCHASE:
        products = props.get("products")
        if not isinstance(products, list) or not products:
            item = _item(props)
            if item is None:
                raise Unmapped("missing_field", "an Order Completed needs properties.products")
            products = [props]
        out = []
        for product in products:
            if not isinstance(product, Mapping):
                raise Unmapped("invalid_field", "properties.products holds a non-object")
            event = dict(base)
            _fill(event, product)
            out.append(event)
        return out
    event = base
    _fill(event, props)
    if etype == SEARCH and "query" not in event and isinstance(props.get("search"), str):
        event["query"] = props["search"]
    return [event]


def _fill(event: dict[str, Any], props: Mapping[str, Any]) -> None:
    item = _item(props)
    if item is not None:
        event["item"] = item
    category = props.get("category")
    if category is not None and category != "":
        event["category"] = category
    price = props.get("price")
    if price is not None:
        event["price"] = _price(price)
    query = props.get("query")
    if query is not None:
        event["query"] = query
