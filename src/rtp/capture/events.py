"""Behavioural events (schema v1), their validation, and rejections.

An event is one thing a user did. On the wire it is one JSON object (schema version 1)::

    {"v": 1, "type": "product_view", "user": "u42", "ts": 1511658000.5,
     "item": "i7", "category": "shoes", "price": 59.9,
     "session": "s1", "back": false, "dwell": 12.0, "dnp": false,
     "context": {"ua": "Mozilla/5.0 ...", "ip": "81.2.69.160",
                 "referrer": "https://www.google.com/", "utm": {"source": "newsletter",
                 "medium": "email"}, "channel": "web"}}

- ``user`` or ``anon`` (an anonymous id) is required; ``session`` is optional (rtp splits sessions
  by an inactivity gap in event time when it is absent).
- ``ts`` is event time: unix seconds (int or float), unix milliseconds (values above 1e11) or an
  ISO-8601 string with a timezone.
- ``back`` marks back-navigation (the browser's back button or swipe), ``dwell`` seconds spent on
  the page (help pages, scroll depth), ``dnp`` the do-not-personalize flag.
- ``forget`` and ``dnp`` are control events: they carry only a user and ask the flow to delete
  the user's data / to stop personalizing for them, in order with the user's other events.

Parsing never raises on bad data: every record becomes an :class:`Event` or a :class:`Rejection`
with a reason code and the record's source position.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import orjson

SCHEMA_VERSION = 1

PAGE_VIEW = "page_view"
PRODUCT_VIEW = "product_view"
CLICK = "click"
SEARCH = "search"
SCROLL = "scroll"
HOVER = "hover"
ADD_TO_CART = "add_to_cart"
REMOVE_FROM_CART = "remove_from_cart"
PURCHASE = "purchase"
HELP_VIEW = "help_view"
ADD_TO_WISHLIST = "add_to_wishlist"
FORGET = "forget"
DO_NOT_PERSONALIZE = "dnp"

BEHAVIOUR_TYPES = frozenset(
    {
        PAGE_VIEW,
        PRODUCT_VIEW,
        CLICK,
        SEARCH,
        SCROLL,
        HOVER,
        ADD_TO_CART,
        REMOVE_FROM_CART,
        PURCHASE,
        HELP_VIEW,
        ADD_TO_WISHLIST,
    }
)
CONTROL_TYPES = frozenset({FORGET, DO_NOT_PERSONALIZE})
EVENT_TYPES = BEHAVIOUR_TYPES | CONTROL_TYPES
ITEM_TYPES = frozenset(
    {PRODUCT_VIEW, ADD_TO_CART, REMOVE_FROM_CART, PURCHASE, ADD_TO_WISHLIST}
)  # these must name an item

# Rejection reason codes (stable: dashboards count them).
INVALID_JSON = "invalid_json"
INVALID_CSV = "invalid_csv"
UNKNOWN_TYPE = "unknown_type"
MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"
TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
INVALID_PRICE = "invalid_price"
OVERSIZED = "oversized"
REASONS = (
    INVALID_JSON,
    INVALID_CSV,
    UNKNOWN_TYPE,
    MISSING_FIELD,
    INVALID_FIELD,
    TIMESTAMP_OUT_OF_RANGE,
    INVALID_PRICE,
    OVERSIZED,
)

MAX_RECORD_BYTES = 16 * 1024
MAX_ID_CHARS = 128
MAX_QUERY_CHARS = 256
MAX_PRICE = 1_000_000.0
MIN_TS = 946_684_800.0  # 2000-01-01
MAX_TS = 4_102_444_800.0  # 2100-01-01


class Event:
    """One accepted behavioural event. Enrichment fills the derived fields and drops ``ip``."""

    __slots__ = (
        "type",
        "user",
        "ts",
        "item",
        "category",
        "price",
        "query",
        "session",
        "anonymous",
        "back",
        "dwell",
        "dnp",
        "pos",
        "ua",
        "ip",
        "referrer",
        "utm",
        "channel",
        "device",
        "browser",
        "os",
        "country",
        "referral",
        "hour",
        "weekday",
    )

    def __init__(
        self,
        type: str,
        user: str,
        ts: float,
        item: str | None = None,
        category: str | None = None,
        price: float | None = None,
        query: str | None = None,
        session: str | None = None,
        *,
        anonymous: bool = False,
        back: bool = False,
        dwell: float | None = None,
        dnp: bool = False,
        pos: str = "",
        ua: str | None = None,
        ip: str | None = None,
        referrer: str | None = None,
        utm: dict[str, str] | None = None,
        channel: str | None = None,
    ) -> None:
        self.type = type
        self.user = user
        self.ts = ts
        self.item = item
        self.category = category
        self.price = price
        self.query = query
        self.session = session
        self.anonymous = anonymous
        self.back = back
        self.dwell = dwell
        self.dnp = dnp
        self.pos = pos
        self.ua = ua
        self.ip = ip
        self.referrer = referrer
        self.utm = utm
        self.channel = channel
        self.device: str | None = None
        self.browser: str | None = None
        self.os: str | None = None
        self.country: str | None = None
        self.referral: str | None = None
        self.hour: int = -1
        self.weekday: int = -1

    def to_dict(self) -> dict[str, Any]:
        """The schema-v1 JSON object for this event (what :func:`parse_json` reads back)."""
        d: dict[str, Any] = {"v": SCHEMA_VERSION, "type": self.type, "ts": self.ts}
        d["anon" if self.anonymous else "user"] = self.user
        for name in ("item", "category", "price", "query", "session", "dwell"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if self.back:
            d["back"] = True
        if self.dnp:
            d["dnp"] = True
        ctx = {
            k: v
            for k, v in (
                ("ua", self.ua),
                ("ip", self.ip),
                ("referrer", self.referrer),
                ("utm", self.utm),
                ("channel", self.channel),
            )
            if v is not None
        }
        if ctx:
            d["context"] = ctx
        return d

    def __repr__(self) -> str:
        return (
            f"Event({self.type!r}, user={self.user!r}, ts={self.ts!r}, item={self.item!r}, "
            f"category={self.category!r}, price={self.price!r}, query={self.query!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


class Rejection:
    """A record that is not an event: why, where it came from, and (a prefix of) what it was."""

    __slots__ = ("reason", "detail", "pos", "raw")

    def __init__(self, reason: str, detail: str, pos: str, raw: bytes | str = b"") -> None:
        self.reason = reason
        self.detail = detail
        self.pos = pos
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "replace")
        self.raw = raw[:1024]

    def to_dict(self) -> dict[str, str]:
        return {
            "reason": self.reason,
            "detail": self.detail,
            "pos": self.pos,
            "raw": self.raw.decode("utf-8", "replace"),
        }

    def __repr__(self) -> str:
        return f"Rejection({self.reason!r}, {self.detail!r}, pos={self.pos!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rejection):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


class StreamClock:
    """Rejects timestamps far outside the stream.

    - absolute bounds catch garbage (a truncated ``15``): 2000-01-01 .. 2100-01-01;
    - an event more than ``max_lag`` seconds behind the stream's high-water mark is too late;
    - an event more than ``max_ahead`` seconds ahead of the wall clock is from the future.

    Gaps in a replayed history (a quiet week in a sparse data set) are fine: "ahead" is judged
    against the wall clock, not against the previous event. Control events are not checked.
    """

    __slots__ = ("max_lag", "max_ahead", "high", "horizon")

    def __init__(
        self, max_lag: float = 86_400.0, max_ahead: float = 86_400.0, now: float | None = None
    ) -> None:
        self.max_lag = max_lag
        self.max_ahead = max_ahead
        self.high = 0.0
        self.horizon = min(MAX_TS, (time.time() if now is None else now) + max_ahead)

    def check(self, ts: float) -> str | None:
        """``None`` if ``ts`` is acceptable (and advance the clock), else the detail text."""
        if not MIN_TS <= ts < self.horizon:
            if MIN_TS <= ts < MAX_TS:
                return f"ts {ts:.0f} is more than {self.max_ahead:.0f}s in the future"
            return f"ts {ts!r} is outside 2000-01-01..2100-01-01"
        high = self.high
        if ts > high:
            self.high = ts
            return None
        if ts < high - self.max_lag:
            return f"ts {ts:.0f} is {high - ts:.0f}s behind the stream (max {self.max_lag:.0f}s)"
        return None


def parse_ts(value: Any) -> float | None:
    """Event time in unix seconds from seconds, milliseconds or an ISO-8601 string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        ts = float(value)
        return ts / 1000.0 if ts > 1e11 else ts
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" UTC", "+00:00"))
        except ValueError:
            return None
        if dt.tzinfo is None:
            return None
        return dt.timestamp()
    return None


def _ident(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS:
        return value
    return None


def validate_price(price: Any) -> str | None:
    """``None`` for an acceptable price, else why not."""
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        return f"price {price!r} is not a number"
    if price != price or price < 0 or price > MAX_PRICE:
        return f"price {price!r} is negative or absurd (0..{MAX_PRICE:.0f})"
    return None


def from_dict(d: Any, pos: str, raw: bytes = b"") -> Event | Rejection:
    """Validate one decoded schema-v1 object."""
    if not isinstance(d, dict):
        return Rejection(INVALID_JSON, "record is not a JSON object", pos, raw)
    etype = d.get("type")
    if etype not in EVENT_TYPES:
        return Rejection(UNKNOWN_TYPE, f"unknown event type {etype!r}", pos, raw)
    anonymous = False
    user = d.get("user")
    if user is None:
        user = d.get("anon")
        anonymous = user is not None
    if user is None:
        return Rejection(MISSING_FIELD, "neither 'user' nor 'anon' is given", pos, raw)
    uid = _ident(user)
    if uid is None:
        return Rejection(INVALID_FIELD, f"user id {user!r} is not a short string", pos, raw)
    if "ts" not in d and etype not in CONTROL_TYPES:
        return Rejection(MISSING_FIELD, "'ts' is missing", pos, raw)
    ts = parse_ts(d.get("ts", 0.0)) if "ts" in d else 0.0
    if ts is None:
        return Rejection(INVALID_FIELD, f"ts {d.get('ts')!r} is not a time", pos, raw)
    item = d.get("item")
    if item is not None:
        item = _ident(item)
        if item is None:
            return Rejection(INVALID_FIELD, f"item {d.get('item')!r} is not a short id", pos, raw)
    elif etype in ITEM_TYPES:
        return Rejection(MISSING_FIELD, f"a {etype} needs 'item'", pos, raw)
    category = d.get("category")
    if category is not None:
        category = _ident(category)
        if category is None:
            return Rejection(INVALID_FIELD, f"category {d.get('category')!r} is invalid", pos, raw)
    price = d.get("price")
    if price is not None:
        why = validate_price(price)
        if why:
            return Rejection(INVALID_PRICE, why, pos, raw)
        price = float(price)
    query = d.get("query")
    if query is not None:
        if not isinstance(query, str) or len(query) > MAX_QUERY_CHARS:
            return Rejection(INVALID_FIELD, "query is not a string of <= 256 chars", pos, raw)
        query = " ".join(query.lower().split())
    if etype == SEARCH and not query:
        return Rejection(MISSING_FIELD, "a search needs 'query'", pos, raw)
    dwell = d.get("dwell")
    if dwell is not None:
        if isinstance(dwell, bool) or not isinstance(dwell, (int, float)) or dwell < 0:
            return Rejection(INVALID_FIELD, f"dwell {dwell!r} is not seconds", pos, raw)
        dwell = float(dwell)
    session = d.get("session")
    if session is not None:
        session = _ident(session)
    ctx = d.get("context") or {}
    if not isinstance(ctx, dict):
        return Rejection(INVALID_FIELD, "context is not an object", pos, raw)
    utm = ctx.get("utm")
    if utm is not None and not isinstance(utm, dict):
        return Rejection(INVALID_FIELD, "context.utm is not an object", pos, raw)

    def _s(v: Any) -> str | None:
        return v if isinstance(v, str) else None

    return Event(
        etype,
        uid,
        ts,
        item,
        category,
        price,
        query,
        session,
        anonymous=anonymous,
        back=d.get("back") is True,
        dwell=dwell,
        dnp=d.get("dnp") is True,
        pos=pos,
        ua=_s(ctx.get("ua")),
        ip=_s(ctx.get("ip")),
        referrer=_s(ctx.get("referrer")),
        utm=utm,
        channel=_s(ctx.get("channel")),
    )


def parse_json(raw: bytes, pos: str) -> Event | Rejection:
    """One JSON line (schema v1) into an :class:`Event` or a :class:`Rejection`."""
    if len(raw) > MAX_RECORD_BYTES:
        return Rejection(OVERSIZED, f"{len(raw)} bytes > {MAX_RECORD_BYTES}", pos, raw)
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return Rejection(INVALID_JSON, str(e)[:200], pos, raw)
    return from_dict(d, pos, raw)


def dumps(event: Event) -> bytes:
    """The JSON line for an event (no trailing newline)."""
    return orjson.dumps(event.to_dict())
