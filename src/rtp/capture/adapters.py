"""Public clickstream formats -> rtp events, one line at a time.

Each :class:`Adapter` turns one line (bytes, no trailing newline) into events and rejections::

    read = adapter.parse(line, "UserBehavior.csv:17", events, rejections)

``read`` is the number of *records* on the line (0 for a header or a blank line, 1 for a CSV
row, one per nested event of an OTTO session) and every record read is appended as exactly one
:class:`~rtp.capture.events.Event` or one :class:`~rtp.capture.events.Rejection`, so
``read == accepted + rejected`` always holds. Parsing never raises on bad data: any bytes on a
line, and any JSON value in any field of a JSON format, give events or rejections (with the
reason codes of :mod:`rtp.capture.events`). A rejection carries the record's user id when it
could be read (``Rejection.user``), and never an IP address (``Rejection`` scrubs them).

:func:`safe_parse` is the safety net around any adapter, for the sources: should a parser still
raise on a record (a bug), the line becomes one ``internal_error`` rejection (whatever the parser
had appended for it is taken back) and the flow goes on::

    read = safe_parse(adapter.parse, line, "UserBehavior.csv:17", events, rejections)

================  ==========================================================  ===========
name              one line                                                    time order
================  ==========================================================  ===========
``jsonl``         rtp schema-v1 JSON (:func:`rtp.capture.events.parse_json`)          yes
``taobao``        ``user_id,item_id,category_id,behavior,timestamp``          yes
``otto``          ``{"session": 7, "events": [{"aid", "ts" (ms), "type"}]}``  no
``rees46``        ``event_time,event_type,product_id,...,user_session``       yes
``diginetica``    ``session_id;user_id;item_id;timeframe;eventdate``          no
``yoochoose``     clicks/buys ``.dat``, or ``SessionId<TAB>ItemId<TAB>Time``  no
``retailrocket``  ``timestamp,visitorid,event,itemid,transactionid``          no
================  ==========================================================  ===========

Files of a format that is not in time order are sorted by :attr:`Adapter.sort_key` before
replay (``rtp.flow.sources.FilesSource`` does it). Timestamps are not range-checked here
(beyond being finite numbers): the source's :class:`~rtp.capture.events.StreamClock` does that.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from datetime import date
from typing import Any

import orjson

from rtp.capture.events import (
    ADD_TO_CART,
    ADD_TO_WISHLIST,
    INVALID_CSV,
    INVALID_FIELD,
    INVALID_JSON,
    INVALID_PRICE,
    MAX_ID_CHARS,
    MAX_INT_ID,
    MAX_RECORD_BYTES,
    MISSING_FIELD,
    OVERSIZED,
    PRODUCT_VIEW,
    PURCHASE,
    REMOVE_FROM_CART,
    UNKNOWN_TYPE,
    Event,
    Rejection,
    brief,
    internal_error,
    parse_json,
    parse_ts,
    validate_price,
)
from rtp.errors import SourceError

ParseFn = Callable[[bytes, str, list[Event], list[Rejection]], int]
SortKey = Callable[[Event], tuple[Any, ...]]

__all__ = [
    "ADAPTERS",
    "Adapter",
    "ParseFn",
    "SortKey",
    "by_time",
    "diginetica_key",
    "get_adapter",
    "recover",
    "safe_parse",
    "utc_time",
]

_NAN = float("nan")
_MAX_INT_TS = 10**15  # |unix seconds or milliseconds| beyond this is garbage (and may overflow)


def by_time(event: Event) -> tuple[Any, ...]:
    """The default sort key: event time (a stable sort keeps file order among equal times)."""
    return (event.ts,)


class Adapter:
    """One input format: how to parse a line, and whether its files are in event-time order."""

    __slots__ = ("name", "parse", "time_ordered", "sort_key", "summary")

    def __init__(
        self,
        name: str,
        parse: ParseFn,
        *,
        time_ordered: bool,
        sort_key: SortKey = by_time,
        summary: str = "",
    ) -> None:
        self.name = name
        self.parse = parse
        self.time_ordered = time_ordered
        self.sort_key = sort_key
        self.summary = summary

    def __repr__(self) -> str:
        return f"Adapter({self.name!r}, time_ordered={self.time_ordered})"


# --- shared helpers (slow paths live here, out of the parsers' way) -------------------------

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIDNIGHTS: dict[str, float] = {}  # "YYYY-MM-DD" -> unix seconds; a file has few distinct days
_UTC_SUFFIXES = frozenset({"Z", " UTC", "+00:00", "+0000"})


def _midnight(day: str) -> float | None:
    """Unix seconds of ``YYYY-MM-DD`` 00:00 UTC, or ``None`` if it is not such a date."""
    t = _MIDNIGHTS.get(day)
    if t is None:
        if len(day) != 10 or day[4] != "-" or day[7] != "-":
            return None
        try:
            d = date(int(day[:4]), int(day[5:7]), int(day[8:10]))
        except ValueError:
            return None
        t = float((d.toordinal() - _EPOCH_ORDINAL) * 86_400)
        if len(_MIDNIGHTS) < 100_000:
            _MIDNIGHTS[day] = t
    return t


def utc_time(text: str) -> float | None:
    """Unix seconds of ``YYYY-MM-DD[T ]HH:MM:SS[.fff](Z| UTC|+00:00)`` without ``datetime``;
    other ISO-8601 forms with a timezone go through :func:`rtp.capture.events.parse_ts`.
    ``None`` if ``text`` is not a time with a timezone."""
    if len(text) >= 20 and text[10] in "T " and text[13] == ":" and text[16] == ":":
        tail = text[19:]
        frac = 0.0
        if tail[0] == ".":
            end = 1
            while end < len(tail) and tail[end].isdigit():
                end += 1
            if end > 1:
                try:
                    frac = float(tail[:end])
                except ValueError:  # digits float() does not read ("²" is a digit)
                    return None
            tail = tail[end:]
        if tail in _UTC_SUFFIXES:
            day = _midnight(text[:10])
            try:
                h, m, s = int(text[11:13]), int(text[14:16]), int(text[17:19])
            except ValueError:
                return None
            if day is None or not (0 <= h <= 23 and 0 <= m <= 59 and 0 <= s <= 60):
                return None
            return day + h * 3_600 + m * 60 + s + frac
    return parse_ts(text)


def _reject(
    rejections: list[Rejection],
    reason: str,
    detail: str,
    pos: str,
    line: bytes,
    user: str | None = None,
) -> int:
    """Append the record's rejection (with ``user`` if it is a plausible id) and count it."""
    if user is not None and not 0 < len(user) <= MAX_ID_CHARS:
        user = None
    rejections.append(Rejection(reason, detail, pos, line, user=user))
    return 1


def safe_parse(
    parse: ParseFn, line: bytes, pos: str, events: list[Event], rejections: list[Rejection]
) -> int:
    """``parse(line, pos, events, rejections)``, or, should it raise (a bug), one
    ``internal_error`` rejection for the line in place of whatever it appended: the caller's
    counts still add up (``read == accepted + rejected``) and the flow goes on.

    It costs a function call and two ``len`` calls per line (~80 ns on the Taobao adapter's
    ~1 µs, measured). A source loop that already takes ``len(events)`` can inline it for ~15 ns
    (the ``try`` itself is free in CPython 3.11)::

        n, m = len(events), len(rejections)
        try:
            read += parse(line, pos, events, rejections)
        except Exception as e:
            read += recover(e, line, pos, events, rejections, n, m)
    """
    n_events = len(events)
    n_rejections = len(rejections)
    try:
        return parse(line, pos, events, rejections)
    except Exception as e:
        return recover(e, line, pos, events, rejections, n_events, n_rejections)


def recover(
    exc: Exception,
    line: bytes,
    pos: str,
    events: list[Event],
    rejections: list[Rejection],
    n_events: int,
    n_rejections: int,
) -> int:
    """After ``parse`` raised ``exc`` on ``line``: take back what it appended (the lists had
    ``n_events`` and ``n_rejections`` items before), append the line's ``internal_error``
    rejection, and count the line as one record (the return value)."""
    del events[n_events:]
    del rejections[n_rejections:]
    rejections.append(internal_error(exc, pos, line))
    return 1


def _decode(line: bytes, pos: str, rejections: list[Rejection]) -> str | None:
    """The line as text, or ``None`` after appending its rejection (oversized, not UTF-8)."""
    if len(line) > MAX_RECORD_BYTES:
        _reject(rejections, OVERSIZED, f"{len(line)} bytes > {MAX_RECORD_BYTES}", pos, line)
        return None
    try:
        return line.decode()
    except UnicodeDecodeError as e:
        _reject(rejections, INVALID_CSV, f"not UTF-8: {e}"[:200], pos, line)
        return None


def _check_ids(
    pos: str, line: bytes, rejections: list[Rejection], user: str | None, **ids: str
) -> int:
    """Slow path for long lines or empty ids: 1 (and the rejection) if an id is bad, else 0.

    ``ids`` are given in order of importance; each must be non-empty except ``category`` and
    ``user`` (callers pass only what is required) and at most ``MAX_ID_CHARS`` long. ``user``
    is the record's user id for the rejection, if plausible.
    """
    for name, value in ids.items():
        if not value:
            return _reject(rejections, MISSING_FIELD, f"{name} is empty", pos, line, user)
        if len(value) > MAX_ID_CHARS:
            detail = f"{name} {value[:40]!r}... is longer than {MAX_ID_CHARS} characters"
            return _reject(rejections, INVALID_FIELD, detail, pos, line, user)
    return 0


def _split_csv(text: str, sep: str) -> list[str]:
    """Fields of a CSV line; quotes are honoured only when the line has any (else str.split)."""
    if '"' not in text:
        return text.split(sep)
    try:
        return next(csv.reader([text], delimiter=sep))
    except (csv.Error, StopIteration):
        return []


def _price(
    text: str, pos: str, line: bytes, rejections: list[Rejection], user: str | None
) -> float | None:
    """A validated price, or ``None`` after appending the record's rejection."""
    try:
        price = float(text)
    except ValueError:
        detail = f"price {text[:40]!r} is not a number"
        _reject(rejections, INVALID_PRICE, detail, pos, line, user)
        return None
    why = validate_price(price)  # also NaN and infinities ("nan", "1e999")
    if why:
        _reject(rejections, INVALID_PRICE, why, pos, line, user)
        return None
    return price


# --- jsonl ----------------------------------------------------------------------------------


def parse_jsonl(line: bytes, pos: str, events: list[Event], rejections: list[Rejection]) -> int:
    """One rtp schema-v1 JSON object per line."""
    if not line or line.isspace():
        return 0
    result = parse_json(line, pos)
    if isinstance(result, Event):
        events.append(result)
    else:
        rejections.append(result)
    return 1


# --- Taobao UserBehavior --------------------------------------------------------------------

_TAOBAO_TYPES = {"pv": PRODUCT_VIEW, "cart": ADD_TO_CART, "fav": ADD_TO_WISHLIST, "buy": PURCHASE}
_TAOBAO_HEADER = b"user_id,item_id,"


def parse_taobao(line: bytes, pos: str, events: list[Event], rejections: list[Rejection]) -> int:
    """``user_id,item_id,category_id,behavior,timestamp`` (unix seconds; no header)."""
    if not line:
        return 0
    long = len(line) > MAX_ID_CHARS  # only then can an id be too long
    if long:
        decoded = _decode(line, pos, rejections)
        if decoded is None:
            return 1
        text = decoded
    else:
        try:
            text = line.decode()
        except UnicodeDecodeError as e:
            return _reject(rejections, INVALID_CSV, f"not UTF-8: {e}"[:200], pos, line)
    f = text.split(",")
    if len(f) != 5:
        if not text.strip():
            return 0
        detail = f"{len(f)} fields, expected 5"
        return _reject(rejections, INVALID_CSV, detail, pos, line, f[0] if len(f) > 1 else None)
    user, item, category, behavior, ts = f
    etype = _TAOBAO_TYPES.get(behavior)
    if etype is None:
        if line.startswith(_TAOBAO_HEADER):
            return 0
        return _reject(rejections, UNKNOWN_TYPE, f"behavior {behavior[:40]!r}", pos, line, user)
    try:
        t = int(ts)
    except ValueError:
        detail = f"timestamp {ts[:40]!r} is no integer"
        return _reject(rejections, INVALID_FIELD, detail, pos, line, user)
    if (long or not user or not item) and _check_ids(
        pos, line, rejections, user, user_id=user, item_id=item, category_id=category or "-"
    ):
        return 1
    # |t| <= _MAX_INT_TS, spelled out: two compares with constants cost less than a chained
    # comparison with globals on this hot path (measured); beyond it no event time fits
    if t > 1_000_000_000_000_000 or t < -1_000_000_000_000_000:
        detail = f"timestamp {ts[:40]!r} is absurd"
        return _reject(rejections, INVALID_FIELD, detail, pos, line, user)
    event = Event(etype, user, t, item, category or None)
    event.pos = pos  # cheaper than the keyword argument on this hot path
    events.append(event)
    return 1


# --- OTTO -----------------------------------------------------------------------------------

_OTTO_TYPES = {"clicks": PRODUCT_VIEW, "carts": ADD_TO_CART, "orders": PURCHASE}


def _otto_record(ev: Any, user: str | None, pos: str) -> Event | Rejection:
    """One nested OTTO event ``{"aid": int, "ts": ms, "type": "clicks"|"carts"|"orders"}``."""
    if type(ev) is dict:
        try:
            etype = _OTTO_TYPES.get(ev.get("type"))  # type: ignore[arg-type]
        except TypeError:  # an array or an object as the type: the slow path says so
            etype = None
        aid = ev.get("aid")
        ts = ev.get("ts")
        if (
            user is not None
            and etype is not None
            and type(aid) is int
            and (type(ts) is int or type(ts) is float)
        ):
            return Event(etype, user, ts / 1000.0, str(aid), None, None, None, user, pos=pos)
    # Slow path: say what is wrong (or accept a string aid).
    try:
        raw = orjson.dumps(ev)
    except TypeError:  # nested deeper than orjson writes
        raw = b"(an event nested too deep to show)"
    if user is None:
        detail = "the session id is not an integer or a short id"
        return Rejection(INVALID_FIELD, detail, pos, raw)
    if type(ev) is not dict:
        return Rejection(INVALID_JSON, "an event is not a JSON object", pos, raw, user=user)
    kind = ev.get("type")
    etype = _OTTO_TYPES.get(kind) if type(kind) is str else None
    if etype is None:
        return Rejection(UNKNOWN_TYPE, f"type {brief(kind)}", pos, raw, user=user)
    aid = ev.get("aid")
    if not (type(aid) is int and -MAX_INT_ID < aid < MAX_INT_ID) and not (
        type(aid) is str and 0 < len(aid) <= MAX_ID_CHARS
    ):
        reason = MISSING_FIELD if aid is None else INVALID_FIELD
        return Rejection(reason, f"aid {brief(aid)} is not an id", pos, raw, user=user)
    ts = ev.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or ts - ts != 0.0:
        reason = MISSING_FIELD if ts is None else INVALID_FIELD
        detail = f"ts {brief(ts)} is not unix milliseconds"
        return Rejection(reason, detail, pos, raw, user=user)
    return Event(etype, user, ts / 1000.0, str(aid), session=user, pos=pos)


def parse_otto(line: bytes, pos: str, events: list[Event], rejections: list[Rejection]) -> int:
    """One OTTO session per line; each nested event is one record, at ``pos#k`` (k from 1).

    The user and the session are both the session id (OTTO has no user ids).
    """
    if not line or line.isspace():
        return 0
    if len(line) > 64 * MAX_RECORD_BYTES:  # a session line holds up to hundreds of events
        return _reject(rejections, OVERSIZED, f"{len(line)} bytes", pos, line)
    try:
        d = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return _reject(rejections, INVALID_JSON, str(e)[:200], pos, line)
    if type(d) is not dict:
        return _reject(rejections, INVALID_JSON, "not an OTTO session {session, events}", pos, line)
    sid = d.get("session")
    user = str(sid) if type(sid) is int and -MAX_INT_ID < sid < MAX_INT_ID else None
    if type(sid) is str and 0 < len(sid) <= MAX_ID_CHARS:
        user = sid
    evs = d.get("events")
    if type(evs) is not list:
        detail = "not an OTTO session {session, events}"
        return _reject(rejections, INVALID_JSON, detail, pos, line, user)
    for k, ev in enumerate(evs, 1):
        try:
            result = _otto_record(ev, user, f"{pos}#{k}")
        except Exception as e:  # a bug: this record is lost, not the line or the flow
            result = internal_error(e, f"{pos}#{k}", line)
            result.user = user
        if type(result) is Event:
            events.append(result)
        else:
            rejections.append(result)  # type: ignore[arg-type]
    return len(evs)


# --- REES46 ---------------------------------------------------------------------------------

_REES46_TYPES = {
    "view": PRODUCT_VIEW,
    "cart": ADD_TO_CART,
    "remove_from_cart": REMOVE_FROM_CART,
    "purchase": PURCHASE,
}


def parse_rees46(line: bytes, pos: str, events: list[Event], rejections: list[Rejection]) -> int:
    """``event_time,event_type,product_id,category_id,category_code,brand,price,user_id,
    user_session`` (with a header). The category is ``category_code`` when given, else
    ``category_id``; ``user_session`` is the session."""
    if not line or line.startswith(b"event_time,"):
        return 0
    text = _decode(line, pos, rejections)
    if text is None:
        return 1
    f = _split_csv(text, ",")
    if len(f) != 9:
        if not text.strip():
            return 0
        detail = f"{len(f)} fields, expected 9"
        return _reject(rejections, INVALID_CSV, detail, pos, line, f[7] if len(f) > 7 else None)
    when, kind, item, category_id, category_code, _brand, price_s, user, session = f
    etype = _REES46_TYPES.get(kind)
    if etype is None:
        return _reject(rejections, UNKNOWN_TYPE, f"event_type {kind[:40]!r}", pos, line, user)
    ts = utc_time(when)
    if ts is None:
        return _reject(rejections, INVALID_FIELD, f"event_time {when[:40]!r}", pos, line, user)
    category = category_code or category_id or None
    if (len(line) > MAX_ID_CHARS or not user or not item) and _check_ids(
        pos, line, rejections, user, user_id=user, product_id=item, category=category or "-"
    ):
        return 1
    price = None
    if price_s:
        price = _price(price_s, pos, line, rejections, user)
        if price is None:
            return 1
    if len(session) > MAX_ID_CHARS:
        session = ""
    events.append(Event(etype, user, ts, item, category, price, None, session or None, pos=pos))
    return 1


# --- DIGINETICA -----------------------------------------------------------------------------


def parse_diginetica(
    line: bytes, pos: str, events: list[Event], rejections: list[Rejection]
) -> int:
    """``session_id;user_id;item_id;timeframe;eventdate`` item views (with a header).

    ``ts`` is ``eventdate`` 00:00 UTC plus ``timeframe`` milliseconds; a ``user_id`` of ``NA``
    makes the event anonymous, with the id ``s<session_id>``.
    """
    if not line or line.startswith(b"session_id;"):
        return 0
    text = _decode(line, pos, rejections)
    if text is None:
        return 1
    f = text.split(";")
    if len(f) != 5:
        if not text.strip():
            return 0
        who = f[1] if len(f) > 1 and f[1] != "NA" else None
        return _reject(rejections, INVALID_CSV, f"{len(f)} fields, expected 5", pos, line, who)
    session_s, user, item, timeframe, day = f
    try:
        session = str(int(session_s))
        offset_ms = int(timeframe)
    except ValueError:
        detail = "session_id and timeframe must be integers"
        who = None if not user or user == "NA" else user
        return _reject(rejections, INVALID_FIELD, detail, pos, line, who)
    midnight = _midnight(day)
    if midnight is None:
        detail = f"eventdate {day[:40]!r}"
        return _reject(rejections, INVALID_FIELD, detail, pos, line, _digi_user(user, session))
    if len(line) > MAX_ID_CHARS or not item:
        who = _digi_user(user, session)
        if _check_ids(pos, line, rejections, who, item_id=item, user_id=user or "-"):
            return 1
        if len(session) >= MAX_ID_CHARS or not -_MAX_INT_TS < offset_ms < _MAX_INT_TS:
            detail = "session_id or timeframe is absurdly long"
            return _reject(rejections, INVALID_FIELD, detail, pos, line, who)
    anonymous = not user or user == "NA"
    events.append(
        Event(
            PRODUCT_VIEW,
            "s" + session if anonymous else user,
            midnight + offset_ms / 1000.0,
            item,
            None,
            None,
            None,
            session,
            anonymous=anonymous,
            pos=pos,
        )
    )
    return 1


def _digi_user(user: str, session: str) -> str:
    """A DIGINETICA record's user id (for its rejection): ``s<session_id>`` when anonymous."""
    return "s" + session if not user or user == "NA" else user


def diginetica_key(event: Event) -> tuple[Any, ...]:
    """DIGINETICA replay order: ``eventdate``, then the session (numerically), then
    ``timeframe`` (``ts`` is the date's midnight plus the timeframe)."""
    return (event.ts // 86_400, int(event.session or 0), event.ts)


# --- YooChoose (RecSys Challenge 2015) ------------------------------------------------------


def parse_yoochoose(line: bytes, pos: str, events: list[Event], rejections: list[Rejection]) -> int:
    """The challenge's ``yoochoose-clicks.dat`` (``SessionId,Timestamp,ItemId,Category``) and
    ``yoochoose-buys.dat`` (``SessionId,Timestamp,ItemId,Price,Quantity``: purchases), or the
    tab-separated ``SessionId<TAB>ItemId<TAB>Time`` form (unix seconds, with a header).

    The variant is told per line (a tab; 4 or 5 fields). YooChoose has no user ids: the user
    and the session are the session id. Category ``0`` and price ``0`` mean unknown (``None``).
    """
    if not line or line.startswith(b"SessionId"):
        return 0
    text = _decode(line, pos, rejections)
    if text is None:
        return 1
    category: str | None = None
    price: float | None = None
    etype = PRODUCT_VIEW
    if "\t" in text:
        f = text.split("\t")
        if len(f) != 3:
            detail = f"{len(f)} tab fields, expected 3"
            return _reject(rejections, INVALID_CSV, detail, pos, line, f[0])
        session, item, when = f
        try:
            seconds = float(when)
        except ValueError:
            seconds = _NAN
        ts: float | None = seconds if seconds - seconds == 0.0 else None  # not NaN, not inf
    else:
        f = text.split(",")
        if len(f) == 4:
            session, when, item, category_s = f
            category = None if category_s in ("", "0") else category_s
        elif len(f) == 5:
            session, when, item, price_s, _quantity = f
            etype = PURCHASE
            if price_s:
                price = _price(price_s, pos, line, rejections, session)
                if price is None:
                    return 1
                price = price or None  # 0 means unknown
        else:
            if not text.strip():
                return 0
            detail = f"{len(f)} fields, expected 4 (clicks) or 5 (buys)"
            return _reject(rejections, INVALID_CSV, detail, pos, line, f[0] if len(f) > 1 else None)
        ts = utc_time(when)
    if ts is None:
        return _reject(rejections, INVALID_FIELD, f"time {when[:40]!r}", pos, line, session)
    if (len(line) > MAX_ID_CHARS or not session or not item) and _check_ids(
        pos, line, rejections, session, SessionId=session, ItemId=item, Category=category or "-"
    ):
        return 1
    events.append(Event(etype, session, ts, item, category, price, None, session, pos=pos))
    return 1


# --- RetailRocket ---------------------------------------------------------------------------

_RETAILROCKET_TYPES = {"view": PRODUCT_VIEW, "addtocart": ADD_TO_CART, "transaction": PURCHASE}


def parse_retailrocket(
    line: bytes, pos: str, events: list[Event], rejections: list[Rejection]
) -> int:
    """``events.csv``: ``timestamp,visitorid,event,itemid,transactionid`` (ms; with a header)."""
    if not line or line.startswith(b"timestamp,"):
        return 0
    text = _decode(line, pos, rejections)
    if text is None:
        return 1
    f = text.split(",")
    if len(f) != 5:
        if not text.strip():
            return 0
        detail = f"{len(f)} fields, expected 5"
        return _reject(rejections, INVALID_CSV, detail, pos, line, f[1] if len(f) > 2 else None)
    ts_s, user, kind, item, _transaction = f
    etype = _RETAILROCKET_TYPES.get(kind)
    if etype is None:
        return _reject(rejections, UNKNOWN_TYPE, f"event {kind[:40]!r}", pos, line, user)
    try:
        ts = int(ts_s) / 1000.0
    except (ValueError, OverflowError):  # OverflowError: more digits than a float holds
        detail = f"timestamp {ts_s[:40]!r} is not ms"
        return _reject(rejections, INVALID_FIELD, detail, pos, line, user)
    if (len(line) > MAX_ID_CHARS or not user or not item) and _check_ids(
        pos, line, rejections, user, visitorid=user, itemid=item
    ):
        return 1
    events.append(Event(etype, user, ts, item, pos=pos))
    return 1


# --- registry -------------------------------------------------------------------------------

ADAPTERS: dict[str, Adapter] = {
    a.name: a
    for a in (
        Adapter("jsonl", parse_jsonl, time_ordered=True, summary="rtp schema-v1 JSON lines"),
        Adapter("taobao", parse_taobao, time_ordered=True, summary="Taobao UserBehavior CSV"),
        Adapter("otto", parse_otto, time_ordered=False, summary="OTTO sessions, JSON lines"),
        Adapter("rees46", parse_rees46, time_ordered=True, summary="REES46 store events CSV"),
        Adapter(
            "diginetica",
            parse_diginetica,
            time_ordered=False,
            sort_key=diginetica_key,
            summary="DIGINETICA train-item-views (;-separated)",
        ),
        Adapter(
            "yoochoose",
            parse_yoochoose,
            time_ordered=False,
            summary="YooChoose clicks/buys .dat or SessionId/ItemId/Time TSV",
        ),
        Adapter(
            "retailrocket",
            parse_retailrocket,
            time_ordered=False,
            summary="RetailRocket events.csv",
        ),
    )
}


def get_adapter(name: str) -> Adapter:
    """The adapter called ``name``; :class:`~rtp.errors.SourceError` lists the known ones."""
    try:
        return ADAPTERS[name]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise SourceError(f"unknown input format {name!r}; known formats: {known}") from None
