"""Behavioural events (schema v1), their validation, and rejections.

An event is one thing a user did. On the wire it is one JSON object (schema version 1)::

    {"v": 1, "type": "product_view", "user": "u42", "ts": 1511658000.5,
     "item": "i7", "category": "shoes", "price": 59.9,
     "session": "s1", "back": false, "dwell": 12.0, "dnp": false,
     "context": {"ua": "Mozilla/5.0 ...", "ip": "81.2.69.160",
                 "referrer": "https://www.google.com/", "utm": {"source": "newsletter",
                 "medium": "email"}, "channel": "web"}}

- ``v`` is absent or exactly ``1`` (anything else: ``unsupported_version``).
- ``user`` or ``anon`` (an anonymous id) is required: a short id, i.e. a string of 1..128
  characters or an integer of up to 38 digits (made a string). ``session`` is optional, and a
  short id when given (rtp splits sessions by an inactivity gap in event time when it is
  absent).
- ``ts`` is event time: unix seconds (int or float), unix milliseconds (values above 1e11) or an
  ISO-8601 string with a timezone. NaN and infinities are not times.
- ``item`` and ``category`` are short ids; ``price`` a number in 0..1,000,000; ``query`` a
  string of at most 256 characters (required by a ``search``).
- ``back`` marks back-navigation (the browser's back button or swipe), ``dwell`` seconds spent on
  the page (help pages, scroll depth: a finite number in 0..86,400), ``dnp`` the
  do-not-personalize flag. ``back`` and ``dnp`` are JSON ``true`` or ``false`` when given:
  ``"true"`` or ``1`` is rejected (a privacy flag is never guessed).
- ``context`` is an object (or absent) of strings ``ua``, ``ip``, ``referrer``, ``channel``, an
  object ``utm`` of string (or integer) values, and ``country``: an ISO 3166-1 alpha-2 code
  already resolved by the producer (``rtp.store.streams.append`` replaces ``context.ip`` by it
  before anything is stored). :class:`~rtp.capture.enrich.Enricher` keeps a given country when
  there is no IP to resolve.
- ``forget`` and ``dnp`` are control events: they carry only a user (``ts`` is optional) and
  ask the flow to delete the user's data / to stop (``"dnp": true``) or resume (``"dnp":
  false``) personalizing for them, in order with the user's other events. A forgotten user's
  tombstone never drops a control event.

Parsing never raises on bad data: every record becomes an :class:`Event` or a :class:`Rejection`
with a reason code and the record's source position. Any JSON value in any field is handled
(arrays or objects where a string belongs, ``bool`` posing as a number, huge integers, NaN).

Rejection reason codes (:data:`REASONS`, stable: dashboards count them):

==========================  ===================================================================
``invalid_json``            not JSON, or not a JSON object (an OTTO line: not a session)
``invalid_csv``             a CSV line of the wrong shape, or not UTF-8
``unknown_type``            an event type (or a data set's behaviour) rtp does not know
``missing_field``           a required field is absent or empty
``invalid_field``           a field of the wrong type, or out of its range
``timestamp_out_of_range``  event time outside 2000..2100, too late or in the future
                            (:class:`StreamClock`, in the sources)
``invalid_price``           a price that is not a number in 0..1,000,000
``oversized``               a record over :data:`MAX_RECORD_BYTES`
``unsupported_version``     a schema version ``v`` other than 1
``internal_error``          a parser raised on the record (a bug): the safety net
                            (:func:`internal_error`, ``rtp.capture.adapters.safe_parse``)
                            turned the exception into this rejection and the flow went on
==========================  ===================================================================

A :class:`Rejection` keeps at most :data:`RAW_PREFIX` bytes of the record, with every IPv4 and
IPv6 address in it (and in its detail) replaced by the address's country code, or ``-`` when
unknown: dead letters never hold an IP address. It carries the record's ``user`` when that
could be read, so that forgetting a user also finds their dead letters.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import time
from collections.abc import Callable
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
UNSUPPORTED_VERSION = "unsupported_version"
INTERNAL_ERROR = "internal_error"
REASONS = (
    INVALID_JSON,
    INVALID_CSV,
    UNKNOWN_TYPE,
    MISSING_FIELD,
    INVALID_FIELD,
    TIMESTAMP_OUT_OF_RANGE,
    INVALID_PRICE,
    OVERSIZED,
    UNSUPPORTED_VERSION,
    INTERNAL_ERROR,
)

MAX_RECORD_BYTES = 16 * 1024
MAX_ID_CHARS = 128
MAX_INT_ID = 10**38  # integer ids: at most 38 digits (a string of them stays a short id)
MAX_QUERY_CHARS = 256
MAX_PRICE = 1_000_000.0
MAX_DWELL_S = 86_400.0
RAW_PREFIX = 1024  # bytes of a rejected record kept in its dead letter
MIN_TS = 946_684_800.0  # 2000-01-01
MAX_TS = 4_102_444_800.0  # 2100-01-01


class Event:
    """One accepted behavioural event. Enrichment fills the derived fields and drops ``ip``.

    ``country`` may be given (``context.country``, already resolved by the producer); the
    enricher replaces it by the IP's country when there is an IP it can resolve.
    """

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
        country: str | None = None,
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
        self.country = country
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
                ("country", self.country),
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
    """A record that is not an event: why, where it came from, and (a prefix of) what it was.

    ``raw`` keeps the first :data:`RAW_PREFIX` bytes of the record and ``detail`` says what is
    wrong; every IP address in either is replaced by its country code (``-`` when unknown)
    here, so no dead letter holds one. ``user`` is the record's user id when it could be read
    (``None`` otherwise): forgetting a user deletes their dead letters too. ``ts`` is the
    record's event time when it could be read: a dead letter of a forgotten user is kept only
    when it is known to be newer than the forget.
    """

    __slots__ = ("reason", "detail", "pos", "raw", "user", "ts")

    def __init__(
        self,
        reason: str,
        detail: str,
        pos: str,
        raw: bytes | str = b"",
        *,
        user: str | None = None,
        ts: float | None = None,
    ) -> None:
        self.reason = reason
        self.pos = pos
        self.user = user
        self.ts = ts
        if type(raw) is not bytes:
            raw = _as_bytes(raw)
        raw = raw[:_RAW_SCAN]
        if (b"." in raw or b":" in raw) and _IP_HINT.search(raw) is not None:
            raw = scrub_ips(raw)
        self.raw = raw[:RAW_PREFIX]
        if not detail.isascii():
            detail = _utf8(detail).decode()  # lone surrogates escaped: JSON can hold it
        if ("." in detail or ":" in detail) and _IP_HINT.search(_utf8(detail)) is not None:
            detail = scrub_ips(_utf8(detail)).decode()
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "reason": self.reason,
            "detail": self.detail,
            "pos": self.pos,
            "raw": self.raw.decode("utf-8", "replace"),
        }
        if self.user is not None:
            d["user"] = self.user
        if self.ts is not None:
            d["ts"] = self.ts
        return d

    def __repr__(self) -> str:
        return f"Rejection({self.reason!r}, {self.detail!r}, pos={self.pos!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Rejection):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


def internal_error(exc: BaseException, pos: str, raw: bytes | str = b"") -> Rejection:
    """The ``internal_error`` rejection of a record whose parser raised ``exc``."""
    try:
        message = str(exc)
    except Exception:  # an exception whose str() raises too
        message = "<no message>"
    return Rejection(INTERNAL_ERROR, f"{type(exc).__name__}: {message}"[:300], pos, raw)


# --- no IP address in a dead letter -----------------------------------------------------------

_RAW_SCAN = 16 * RAW_PREFIX  # scrubbed before the cut: a replacement is at most 8x shorter
# Something that may be an address: a digit, a dot, a digit; or two colons in a run of hex.
_IP_HINT = re.compile(rb"[0-9]\.[0-9]|:[0-9A-Fa-f.]*:")
_IP_CANDIDATE = re.compile(
    rb"(?<![0-9A-Fa-f.:])[0-9A-Fa-f.]*:[0-9A-Fa-f.:]*:[0-9A-Fa-f.:]*"  # a run with 2+ colons
    rb"|(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])"  # a dotted quad
)
_IPV4 = re.compile(rb"(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
_country_of: Callable[[str], str | None] | None = None


def _country_code(address: str) -> bytes:
    global _country_of
    if _country_of is None:
        from rtp.capture.enrich import country_of  # enrich imports this module

        _country_of = country_of
    cc = _country_of(address)
    return cc.encode() if cc is not None and cc.isascii() else b"-"


def _replace_ipv4(m: re.Match[bytes]) -> bytes:
    octets = [int(o) for o in m.group().split(b".")]
    if max(octets) > 255:
        return m.group()  # not an address (999.1.1.1)
    return _country_code(".".join(map(str, octets)))  # leading zeros dropped


def _replace_ip(m: re.Match[bytes]) -> bytes:
    text = m.group()
    if b":" not in text:
        return _replace_ipv4(m)
    core = text.rstrip(b".")
    try:
        address = ipaddress.IPv6Address(core.decode("ascii"))
    except ValueError:
        if b"::" in text or text.count(b":") >= 7:
            return b"-"  # looks like an IPv6 address run into something else: drop it whole
        return _IPV4.sub(_replace_ipv4, text)  # a time (10:51:09), or ::ffff:1.2.3.4-ish
    v4 = address.ipv4_mapped
    return _country_code(str(v4 if v4 is not None else address)) + text[len(core) :]


def scrub_ips(raw: bytes) -> bytes:
    """``raw`` with every IPv4 and IPv6 address replaced by its country code (``-`` if unknown).

    >>> scrub_ips(b'{"ip":"81.2.69.160","x":"[2001:db8::1]:443"}')
    b'{"ip":"GB","x":"[-]:443"}'
    """
    return _IP_CANDIDATE.sub(_replace_ip, raw)


def without_ips(raw: bytes) -> bytes:
    """:func:`scrub_ips` when ``raw`` may hold an address at all (a quick look first), else
    ``raw`` itself: what a producer runs on every record before it is stored."""
    if (b"." in raw or b":" in raw) and _IP_HINT.search(raw) is not None:
        return scrub_ips(raw)
    return raw


def _as_bytes(raw: object) -> bytes:
    if isinstance(raw, str):
        return raw.encode("utf-8", "replace")
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    return b""


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")


class StreamClock:
    """Rejects timestamps far outside the stream.

    - absolute bounds catch garbage (a truncated ``15``): 2000-01-01 .. 2100-01-01;
    - an event more than ``max_lag`` seconds behind the stream's high-water mark is too late;
    - an event more than ``max_ahead`` seconds ahead of the wall clock is from the future.

    Gaps in a replayed history (a quiet week in a sparse data set) are fine: "ahead" is judged
    against the wall clock *now*, not against the previous event nor against the time the clock
    was made, so a flow that runs for weeks keeps accepting today's events (the horizon is
    cached and moved on with ``clock`` when an event passes it). Control events are not checked.

    >>> now = [1_700_000_000.0]
    >>> c = StreamClock(max_ahead=60.0, clock=lambda: now[0])
    >>> c.check(now[0] + 120) is None
    False
    >>> now[0] += 30 * 86_400  # a month of uptime later
    >>> c.check(now[0] + 30) is None
    True
    """

    __slots__ = ("max_lag", "max_ahead", "high", "horizon", "clock")

    def __init__(
        self,
        max_lag: float = 86_400.0,
        max_ahead: float = 86_400.0,
        now: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_lag = max_lag
        self.max_ahead = max_ahead
        self.high = 0.0
        self.clock = clock
        self.horizon = min(MAX_TS, (clock() if now is None else now) + max_ahead)

    def check(self, ts: float) -> str | None:
        """``None`` if ``ts`` is acceptable (and advance the clock), else the detail text."""
        if not MIN_TS <= ts < self.horizon:
            if not MIN_TS <= ts < MAX_TS:
                return f"ts {ts!r} is outside 2000-01-01..2100-01-01"
            # the wall clock may have moved on since the horizon was last set
            self.horizon = min(MAX_TS, self.clock() + self.max_ahead)
            if ts >= self.horizon:
                return f"ts {ts:.0f} is more than {self.max_ahead:.0f}s in the future"
        high = self.high
        if ts > high:
            self.high = ts
            return None
        if ts < high - self.max_lag:
            return f"ts {ts:.0f} is {high - ts:.0f}s behind the stream (max {self.max_lag:.0f}s)"
        return None


def parse_ts(value: Any) -> float | None:
    """Event time in unix seconds from seconds, milliseconds or an ISO-8601 string; ``None``
    for anything else (``bool``, NaN, infinities, a string without a timezone...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        try:
            ts = float(value)
        except OverflowError:  # an integer beyond any float
            return None
        if ts - ts != 0.0:  # NaN or an infinity
            return None
        return ts / 1000.0 if ts > 1e11 else ts
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" UTC", "+00:00"))
            if dt.tzinfo is None:
                return None
            return dt.timestamp()
        except (ValueError, OverflowError):
            return None
    return None


def _utf8_ok(text: str) -> bool:
    """Whether ``text`` encodes to UTF-8 (no lone surrogates: a Python caller's strings)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _ident(value: Any) -> str | None:
    """A short id (a string of 1..128 characters, or an integer) as a string, else ``None``."""
    if type(value) is str:
        if 0 < len(value) <= MAX_ID_CHARS and (value.isascii() or _utf8_ok(value)):
            return value
        return None
    if type(value) is int and -MAX_INT_ID < value < MAX_INT_ID:
        return str(value)
    return None


def brief(value: Any) -> str:
    """A short description of any decoded value for a rejection's detail (never raises: no
    ``repr`` of a deep array or of a 5,000-digit integer)."""
    t = type(value)
    if t is str:
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if t is int:
        return repr(value) if -MAX_INT_ID < value < MAX_INT_ID else "a huge integer"
    if t is float or t is bool or value is None:
        return repr(value)
    if t is list:
        return f"an array ({len(value)} items)"
    if t is dict:
        return f"an object ({len(value)} keys)"
    return f"a {t.__name__}"


def _text(value: Any) -> str | None:
    """A context string, ``None`` when absent; raises ``TypeError`` for anything else."""
    if value is None or (type(value) is str and (value.isascii() or _utf8_ok(value))):
        return value
    raise TypeError


def validate_price(price: Any) -> str | None:
    """``None`` for an acceptable price, else why not."""
    if isinstance(price, bool) or not isinstance(price, (int, float)):
        return f"price {brief(price)} is not a number"
    if price != price or price < 0 or price > MAX_PRICE:
        return f"price {brief(price)} is negative or absurd (0..{MAX_PRICE:.0f})"
    return None


def from_dict(d: Any, pos: str, raw: bytes = b"") -> Event | Rejection:
    """Validate one decoded schema-v1 object: an :class:`Event`, or a :class:`Rejection` with
    the reason (``internal_error`` if validation itself raised, which is a bug)."""
    try:
        out = _from_dict(d, pos, raw)
        if type(out) is Rejection and out.user is not None and "ts" in d:
            out.ts = parse_ts(d["ts"])  # (a rejection is rare: read here, not on the way)
        return out
    except Exception as e:  # the safety net: one record, never the flow
        rejection = internal_error(e, pos, raw)
        with contextlib.suppress(Exception):  # best effort
            rejection.user = _ident(d.get("user") if d.get("user") is not None else d.get("anon"))
        return rejection


def _from_dict(d: Any, pos: str, raw: bytes) -> Event | Rejection:
    if not isinstance(d, dict):
        return Rejection(INVALID_JSON, "record is not a JSON object", pos, raw)
    anonymous = False
    user = d.get("user")
    if user is None:
        user = d.get("anon")
        anonymous = user is not None
    uid = _ident(user)  # read first: a rejection carries it when it is valid
    v = d.get("v", SCHEMA_VERSION)
    if type(v) is not int or v != SCHEMA_VERSION:
        detail = f"schema version {brief(v)} is not {SCHEMA_VERSION}"
        return Rejection(UNSUPPORTED_VERSION, detail, pos, raw, user=uid)
    etype = d.get("type")
    if type(etype) is not str or etype not in EVENT_TYPES:
        return Rejection(UNKNOWN_TYPE, f"unknown event type {brief(etype)}", pos, raw, user=uid)
    if user is None:
        return Rejection(MISSING_FIELD, "neither 'user' nor 'anon' is given", pos, raw)
    if uid is None:
        detail = f"user id {brief(user)} is not a short string"
        return Rejection(INVALID_FIELD, detail, pos, raw)
    if "ts" in d:
        ts = parse_ts(d["ts"])
        if ts is None:
            detail = f"ts {brief(d['ts'])} is not a time"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
    elif etype in CONTROL_TYPES:
        ts = 0.0
    else:
        return Rejection(MISSING_FIELD, "'ts' is missing", pos, raw, user=uid)
    item = d.get("item")
    if item is not None:
        item = _ident(item)
        if item is None:
            detail = f"item {brief(d['item'])} is not a short id"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
    elif etype in ITEM_TYPES:
        return Rejection(MISSING_FIELD, f"a {etype} needs 'item'", pos, raw, user=uid)
    category = d.get("category")
    if category is not None:
        category = _ident(category)
        if category is None:
            detail = f"category {brief(d['category'])} is invalid"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
    price = d.get("price")
    if price is not None:
        why = validate_price(price)
        if why:
            return Rejection(INVALID_PRICE, why, pos, raw, user=uid)
        price = float(price)
    query = d.get("query")
    if query is not None:
        if (
            type(query) is not str
            or len(query) > MAX_QUERY_CHARS
            or not (query.isascii() or _utf8_ok(query))
        ):
            detail = f"query {brief(query)} is not a string of <= 256 chars"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
        query = " ".join(query.lower().split())
    if etype == SEARCH and not query:
        return Rejection(MISSING_FIELD, "a search needs 'query'", pos, raw, user=uid)
    dwell = d.get("dwell")
    if dwell is not None:
        if (
            isinstance(dwell, bool)
            or not isinstance(dwell, (int, float))
            or not 0 <= dwell <= MAX_DWELL_S  # also NaN
        ):
            detail = f"dwell {brief(dwell)} is not seconds in 0..{MAX_DWELL_S:.0f}"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
        dwell = float(dwell)
    session = d.get("session")
    if session is not None:
        session = _ident(session)
        if session is None:
            detail = f"session {brief(d['session'])} is not a short id"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
    back = d.get("back", False)
    dnp = d.get("dnp", False)
    if type(back) is not bool or type(dnp) is not bool:
        bad = "back" if type(back) is not bool else "dnp"
        detail = f"{bad} {brief(d[bad])} is not true or false"
        return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
    ctx = d.get("context")
    if ctx is None:
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
            back=back,
            dwell=dwell,
            dnp=dnp,
            pos=pos,
        )
    if not isinstance(ctx, dict):
        return Rejection(INVALID_FIELD, "context is not an object", pos, raw, user=uid)
    try:
        ua = _text(ctx.get("ua"))
        ip = _text(ctx.get("ip"))
        referrer = _text(ctx.get("referrer"))
        channel = _text(ctx.get("channel"))
    except TypeError:
        detail = "context.ua, .ip, .referrer and .channel must be strings"
        return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
    country = ctx.get("country")
    if country is not None:
        if type(country) is not str or len(country) != 2 or not country.isascii():
            detail = f"context.country {brief(country)} is not an ISO 3166-1 alpha-2 code"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
        country = country.upper()
        if not country.isalpha():
            detail = f"context.country {brief(country)} is not an ISO 3166-1 alpha-2 code"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
    utm = ctx.get("utm")
    if utm is not None:
        utm = _utm(utm)
        if utm is None:
            detail = "context.utm is not an object of strings"
            return Rejection(INVALID_FIELD, detail, pos, raw, user=uid)
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
        back=back,
        dwell=dwell,
        dnp=dnp,
        pos=pos,
        ua=ua,
        ip=ip,
        referrer=referrer,
        utm=utm,
        channel=channel,
        country=country,
    )


def _utm(value: Any) -> dict[str, str] | None:
    """UTM parameters as strings (integers become strings, ``null`` values are dropped), or
    ``None`` if ``value`` is not an object of such values."""
    if not isinstance(value, dict):
        return None
    out: dict[str, str] = {}
    for k, v in value.items():
        if type(k) is not str or not (k.isascii() or _utf8_ok(k)):
            return None
        if type(v) is str:
            if not (v.isascii() or _utf8_ok(v)):
                return None
            out[k] = v
        elif type(v) is int and -MAX_INT_ID < v < MAX_INT_ID:
            out[k] = str(v)
        elif v is not None:
            return None
    return out


def parse_json(raw: bytes, pos: str) -> Event | Rejection:
    """One JSON line (schema v1) into an :class:`Event` or a :class:`Rejection`."""
    if len(raw) > MAX_RECORD_BYTES:
        return Rejection(OVERSIZED, f"{len(raw)} bytes > {MAX_RECORD_BYTES}", pos, raw)
    try:
        d = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        user, ts = _hints(raw)
        return Rejection(INVALID_JSON, str(e)[:200], pos, raw, user=user, ts=ts)
    return from_dict(d, pos, raw)


_USER_HINT = re.compile(rb'"(?:user|anon)"\s*:\s*(?:"([^"\\]{1,128})"|(-?[0-9]{1,18})[,}\s])')
_TS_HINT = re.compile(rb'"ts"\s*:\s*([0-9]{9,13}(?:\.[0-9]+)?)[,}\s]')


def _hints(raw: bytes) -> tuple[str | None, float | None]:
    """The user id and event time a record that is not JSON (a truncated line) seems to hold,
    so its dead letter can still be forgotten with the user; ``None`` where none is seen."""
    m = _USER_HINT.search(raw, 0, _RAW_SCAN)
    if m is None:
        return None, None
    user = _ident((m.group(1) or m.group(2)).decode("utf-8", "replace"))
    t = _TS_HINT.search(raw, 0, _RAW_SCAN)
    return user, (parse_ts(float(t.group(1))) if t is not None else None)


def dumps(event: Event) -> bytes:
    """The JSON line for an event (no trailing newline)."""
    return orjson.dumps(event.to_dict())
