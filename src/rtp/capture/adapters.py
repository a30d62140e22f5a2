"""Public clickstream formats -> rtp events, one line at a time.

Each :class:`Adapter` turns one line (bytes, no trailing newline) into events and rejections::

    read = adapter.parse(line, "UserBehavior.csv:17", events, rejections)

``read`` is the number of *records* on the line (0 for a header or a blank line, 1 for a CSV
row, one per nested event of an OTTO session) and every record read is appended as exactly one
:class:`~rtp.capture.events.Event` or one :class:`~rtp.capture.events.Rejection`, so
``read == accepted + rejected`` always holds. Parsing never raises on bad data.

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
replay (``rtp.flow.sources.FilesSource`` does it). Timestamps are not range-checked here: the
source's :class:`~rtp.capture.events.StreamClock` does that.
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
    MAX_RECORD_BYTES,
    MISSING_FIELD,
    OVERSIZED,
    PRODUCT_VIEW,
    PURCHASE,
    REMOVE_FROM_CART,
    UNKNOWN_TYPE,
    Event,
    Rejection,
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
    "utc_time",
]


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
                frac = float(tail[:end])
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


def _reject(rejections: list[Rejection], reason: str, detail: str, pos: str, line: bytes) -> int:
    """Append the record's rejection and count the record."""
    rejections.append(Rejection(reason, detail, pos, line))
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


def _check_ids(pos: str, line: bytes, rejections: list[Rejection], **ids: str) -> int:
    """Slow path for long lines or empty ids: 1 (and the rejection) if an id is bad, else 0.

    ``ids`` are given in order of importance; each must be non-empty except ``category`` and
    ``user`` (callers pass only what is required) and at most ``MAX_ID_CHARS`` long.
    """
    for name, value in ids.items():
        if not value:
            return _reject(rejections, MISSING_FIELD, f"{name} is empty", pos, line)
        if len(value) > MAX_ID_CHARS:
            detail = f"{name} {value[:40]!r}... is longer than {MAX_ID_CHARS} characters"
            return _reject(rejections, INVALID_FIELD, detail, pos, line)
    return 0


def _split_csv(text: str, sep: str) -> list[str]:
    """Fields of a CSV line; quotes are honoured only when the line has any (else str.split)."""
    if '"' not in text:
        return text.split(sep)
    try:
        return next(csv.reader([text], delimiter=sep))
    except (csv.Error, StopIteration):
        return []


def _price(text: str, pos: str, line: bytes, rejections: list[Rejection]) -> float | None:
    """A validated price, or ``None`` after appending the record's rejection."""
    try:
        price = float(text)
    except ValueError:
        _reject(rejections, INVALID_PRICE, f"price {text[:40]!r} is not a number", pos, line)
        return None
    why = validate_price(price)
    if why:
        _reject(rejections, INVALID_PRICE, why, pos, line)
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
        return _reject(rejections, INVALID_CSV, f"{len(f)} fields, expected 5", pos, line)
    user, item, category, behavior, ts = f
    etype = _TAOBAO_TYPES.get(behavior)
    if etype is None:
        if line.startswith(_TAOBAO_HEADER):
            return 0
        return _reject(rejections, UNKNOWN_TYPE, f"behavior {behavior[:40]!r}", pos, line)
    try:
        t = int(ts)
    except ValueError:
        return _reject(rejections, INVALID_FIELD, f"timestamp {ts[:40]!r} is no integer", pos, line)
    if (long or not user or not item) and _check_ids(
        pos, line, rejections, user_id=user, item_id=item, category_id=category or "-"
    ):
        return 1
    event = Event(etype, user, t, item, category or None)
    event.pos = pos  # cheaper than the keyword argument on this hot path
    events.append(event)
    return 1


# --- OTTO -----------------------------------------------------------------------------------

_OTTO_TYPES = {"clicks": PRODUCT_VIEW, "carts": ADD_TO_CART, "orders": PURCHASE}


def _otto_record(ev: Any, user: str | None, pos: str) -> Event | Rejection:
    """One nested OTTO event ``{"aid": int, "ts": ms, "type": "clicks"|"carts"|"orders"}``."""
    if type(ev) is dict:
        etype = _OTTO_TYPES.get(ev.get("type"))  # type: ignore[arg-type]
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
    raw = orjson.dumps(ev)
    if user is None:
        return Rejection(INVALID_FIELD, "the session id is not an integer or a short id", pos, raw)
    if type(ev) is not dict:
        return Rejection(INVALID_JSON, "an event is not a JSON object", pos, raw)
    etype = _OTTO_TYPES.get(ev.get("type"))  # type: ignore[arg-type]
    if etype is None:
        return Rejection(UNKNOWN_TYPE, f"type {ev.get('type')!r}"[:200], pos, raw)
    aid = ev.get("aid")
    if type(aid) is not int and not (type(aid) is str and 0 < len(aid) <= MAX_ID_CHARS):
        reason = MISSING_FIELD if aid is None else INVALID_FIELD
        return Rejection(reason, f"aid {aid!r} is not an id"[:200], pos, raw)
    ts = ev.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        reason = MISSING_FIELD if ts is None else INVALID_FIELD
        return Rejection(reason, f"ts {ts!r} is not unix milliseconds"[:200], pos, raw)
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
    evs = d.get("events") if type(d) is dict else None
    if type(evs) is not list:
        return _reject(rejections, INVALID_JSON, "not an OTTO session {session, events}", pos, line)
    sid = d.get("session")
    user = str(sid) if type(sid) is int else sid if type(sid) is str else None
    if user is not None and not 0 < len(user) <= MAX_ID_CHARS:
        user = None
    for k, ev in enumerate(evs, 1):
        result = _otto_record(ev, user, f"{pos}#{k}")
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
        return _reject(rejections, INVALID_CSV, f"{len(f)} fields, expected 9", pos, line)
    when, kind, item, category_id, category_code, _brand, price_s, user, session = f
    etype = _REES46_TYPES.get(kind)
    if etype is None:
        return _reject(rejections, UNKNOWN_TYPE, f"event_type {kind[:40]!r}", pos, line)
    ts = utc_time(when)
    if ts is None:
        return _reject(rejections, INVALID_FIELD, f"event_time {when[:40]!r}", pos, line)
    category = category_code or category_id or None
    if (len(line) > MAX_ID_CHARS or not user or not item) and _check_ids(
        pos, line, rejections, user_id=user, product_id=item, category=category or "-"
    ):
        return 1
    price = None
    if price_s:
        price = _price(price_s, pos, line, rejections)
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
        return _reject(rejections, INVALID_CSV, f"{len(f)} fields, expected 5", pos, line)
    session_s, user, item, timeframe, day = f
    try:
        session = str(int(session_s))
        offset_ms = int(timeframe)
    except ValueError:
        detail = "session_id and timeframe must be integers"
        return _reject(rejections, INVALID_FIELD, detail, pos, line)
    midnight = _midnight(day)
    if midnight is None:
        return _reject(rejections, INVALID_FIELD, f"eventdate {day[:40]!r}", pos, line)
    if (len(line) > MAX_ID_CHARS or not item) and _check_ids(
        pos, line, rejections, item_id=item, user_id=user or "-"
    ):
        return 1
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
            return _reject(rejections, INVALID_CSV, f"{len(f)} tab fields, expected 3", pos, line)
        session, item, when = f
        try:
            ts: float | None = float(when)
        except ValueError:
            ts = None
    else:
        f = text.split(",")
        if len(f) == 4:
            session, when, item, category_s = f
            category = None if category_s in ("", "0") else category_s
        elif len(f) == 5:
            session, when, item, price_s, _quantity = f
            etype = PURCHASE
            if price_s:
                price = _price(price_s, pos, line, rejections)
                if price is None:
                    return 1
                price = price or None  # 0 means unknown
        else:
            if not text.strip():
                return 0
            detail = f"{len(f)} fields, expected 4 (clicks) or 5 (buys)"
            return _reject(rejections, INVALID_CSV, detail, pos, line)
        ts = utc_time(when)
    if ts is None:
        return _reject(rejections, INVALID_FIELD, f"time {when[:40]!r}", pos, line)
    if (len(line) > MAX_ID_CHARS or not session or not item) and _check_ids(
        pos, line, rejections, SessionId=session, ItemId=item, Category=category or "-"
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
        return _reject(rejections, INVALID_CSV, f"{len(f)} fields, expected 5", pos, line)
    ts_s, user, kind, item, _transaction = f
    etype = _RETAILROCKET_TYPES.get(kind)
    if etype is None:
        return _reject(rejections, UNKNOWN_TYPE, f"event {kind[:40]!r}", pos, line)
    try:
        ts = int(ts_s) / 1000.0
    except ValueError:
        return _reject(rejections, INVALID_FIELD, f"timestamp {ts_s[:40]!r} is not ms", pos, line)
    if (len(line) > MAX_ID_CHARS or not user or not item) and _check_ids(
        pos, line, rejections, visitorid=user, itemid=item
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
