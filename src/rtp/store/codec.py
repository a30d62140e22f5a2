"""The compact, versioned byte form of what rtp keeps in Redis, and its decoders.

Three values are written per user or item, millions of times over, so their size is Redis's
memory: the decision document (``P d:{user}``: every placement and the session context), the
long-term profile (``P p:{user}``) and the product page (a field of ``P pages:{bucket}``). They
were JSON; they are now one kind byte followed by a tagged binary encoding of the same document:

- **lossless**: ``decode(encode(doc)) == orjson.loads(orjson.dumps(doc))``, key order included
  (so ``GET /v1/decisions`` answers the same JSON, with the same ETag). Scores are written as the
  integers they are (the engine truncates them to 3 decimals), deltas down the ranked list;
  event times as decimals, context times relative to the decision's ``ts``;
- **fields stored once, nothing derivable stored**: a string met twice in one value is written
  once and referred to (the item you viewed, in ``recent``, in the home list and in the reason
  sentence); reason sentences, hero themes and the model version are a template code and their
  parameters (``"you browse 1320293"`` is 2 bytes after the category); the session id, ``blend``,
  ``pace``, ``dwell`` and the profile's ``price`` are recomputed from the fields they follow
  from (each only when the recomputation gives exactly the stored value, checked on encode);
- **compact ids**: item and category ids that are decimal numbers (``"2280518"``) are stored
  as integers, lists of them in a fixed width (3 bytes each for Taobao's ids), ids with a common
  prefix (``"i1282"``) as the prefix once and the numbers; keys of known dicts are a bit mask;
- **versioned**: the first byte says what follows (:data:`DECISION`, :data:`PROFILE`,
  :data:`PAGE`; ``{`` is the JSON that earlier versions wrote, which every decoder still
  reads). Tables of strings, templates and dict schemas are append-only: a new entry never
  changes what an old value means; a change of meaning gets a new kind byte.

Layout of a value after its kind byte (every integer a LEB128 varint, signed ones zigzagged)::

    0x00-0x3f  int 0..63                    0x40 int, varint   0x41 negative int, varint(-1-n)
    0x42+s     float k / 10**s (s = 0..6), zigzag k            0x49 float64 (8 bytes, LE)
    0x4a/4b/4c None/False/True   0x4d derived (recomputed)     0x4e/4f time relative to ts
    0x50+n     dict of n <= 14 entries: (key, value)*          0x5f dict, varint n
    0x60+n     list of n <= 14 values                          0x6f list, varint n
    0x70       schema dict: schema id, varint key mask, the present values in schema order
    0x71       list of decimal-number strings: varint n, width w, n w-byte little-endian ints
    0x72       the same with a common prefix: prefix string first
    0x73       list of floats k / 10**s: s, varint n, zigzag deltas of k
    0x74       sparse list of floats k / 10**s: s, varint n, bitmap of non-zeros, zigzag ks
    0x78       string: varint length, UTF-8     0x79 decimal-number string: varint value
    0x7a       prefixed decimal string: prefix string, varint value
    0x7b       run-length string: varint runs, (ASCII byte, varint count)*
    0x75       reason codes in runs: n < 128 runs, a byte each (code | (length - 1) << 4)
    0x7c       reason-code string (4 bits a character of ``vrckpfxbsen``): varint length, bytes
    0x7d       template: template id, its parameters (strings)
    0x7e       reference to an earlier string of this value: varint index
    0x7f       static string: varint index >= 64
    0x80-0xbf  static string 0..63          0xc0-0xdf reference 0..31     0xe0+n string of n <= 31

Example: ``{"v": 1}`` is ``d1 70 00 10 01`` (a decision; the decision's schema dict with only
key 4, ``v``; the int 1), and the page ``{"items": ["7", "9"], "scores": [1.0, 0.5]}`` is
``b1 71 02 01 07 09 73 01 02 14 09`` (a page; 2 decimal ids of 1 byte: 7, 9; 2 floats k / 10**1
as zigzag deltas: +10, -5). A Taobao decision is ~145 bytes instead of ~760 (its home list, 20
ids, 20 scores and their reasons, ~95), its profile ~35 instead of ~170. The cost is CPU:
encoding is pure Python (tens of µs a decision where ``orjson.dumps`` takes one or two; see
``benchmarks/test_04_reads.py`` for encode and decode per read).

This module imports neither redis nor anything of the engine (the session package uses it).
"""

from __future__ import annotations

import logging
import math
import struct
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from operator import sub
from typing import Any

import orjson
import zstandard as zstd

log = logging.getLogger(__name__)

__all__ = [
    "DECISION",
    "DECISION_Z",
    "PROFILE",
    "PAGE",
    "CodecError",
    "band_range",
    "encode_decision",
    "encode_decision_v1",
    "encode_decision_fast",
    "decode_decision",
    "encode_profile",
    "decode_profile",
    "encode_page",
    "decode_page",
    "loads",
]

DECISION = 0xD1  # P d:{user}: the decision document (placements + ctx)
PROFILE = 0xE1  # P p:{user}: the long-term profile (Profile.to_dict)
PAGE = 0xB1  # a product page {"items": [...], "scores": [...]}
_JSON = 0x7B  # "{": JSON, as written before the compact form
_DECISION_Z = b"\xd2"  # the zstd form of a decision (below)

_DEC_MAX = 6
_POW = [10**s for s in range(_DEC_MAX + 1)]
_F64 = struct.Struct("<d")
_INF = float("inf")

# Strings common in the stored documents: keys first, then values. APPEND ONLY (an index, once
# written to Redis, must keep its meaning); the first 64 cost one byte, the rest two.
STATIC: tuple[str, ...] = (
    # 0-63
    "home", "items", "scores", "why", "reason", "hero", "theme", "offer",
    "assist", "v", "ts", "mode", "model", "exp", "ctx", "session",
    "started", "events", "categories", "recent", "intent", "blend", "price", "queries",
    "cart", "pace", "dwell", "device", "country", "referral", "hour", "returning",
    "show", "type", "pct", "item", "trigger", "dnp", "strategy", "name",
    "arm", "ranked", "browsing", "rapid", "deep", "no_intent", "no_frustration", "offer_cap",
    "offer_cooldown", "assist_cooldown", "assist_done", "discount", "cart_reminder", "checkout",
    "welcome", "trending", "mobile", "desktop", "tablet", "search", "direct", "social",
    # 64-
    "you viewed this earlier in this visit", "still in your cart", "trending now",
    "one of your favourites", "what is popular right now", "first visit: a welcome banner",
    "nothing specific yet this visit", "you left items in your cart last time",
    "popular right now (not personalized)", "recommended for you (refreshed periodically)",
    "recommended for you earlier in this visit (personalization is catching up)",
    "popular right now (personalization is catching up)",
    "you went back several times in a minute", "repeated_search", "back_navigation",
    "help_dwell", "degraded", "non_personalized", "not_personalized", "paid", "email", "other",
    "bot", "realtime", "batch", "popular", "none", "control", "cats", "sessions", "views",
    "carts", "purchases", "revenue", "bands", "bought", "favs", "abandoned",
    "last_purchase_ts", "abandoned_ts", "offer_ts", "first_seen", "bandit", "upto", "code",
    "US", "GB", "DE", "FR", "IN", "CA", "JP", "BR", "AU", "NL", "SE", "ZA", "ES", "IT", "CN",
)  # fmt: skip

# Sentences and codes with parameters ("{}": a string). APPEND ONLY.
TEMPLATES: tuple[str, ...] = (
    "because you viewed {}",
    "popular in {}, a category you browse",
    "you browse {}",
    "you are scanning {}",
    "you are comparing {}",
    "category:{}",
    "deals:{}",
    "guide:{}",
    "{} item(s) waiting in your cart",
    "you left {} item in your cart last visit",
    "you left {} items in your cart last visit",
    "high purchase intent: you viewed {} {} times",
    "high purchase intent: {} item(s) in your cart",
    "you searched '{}' {} times",
    "you spent {}s on help pages",
    "lr-{}",
)

# Dicts whose keys are a subsequence of one of these are written as a key mask. APPEND ONLY.
SCHEMAS: tuple[tuple[str, ...], ...] = (
    # the decision document
    ("home", "hero", "offer", "assist", "v", "ts", "mode", "model", "exp", "strategy", "ctx"),
    # its session context (rtp.session.state.UserState.context)
    ("session", "started", "events", "categories", "recent", "mode", "intent", "blend", "price",
     "queries", "cart", "pace", "dwell", "device", "country", "referral", "hour", "returning"),
    # a ranked list placement (and a product page)
    ("items", "scores", "why", "reason"),
    # hero
    ("theme", "reason"),
    # an offer or assist shown
    ("show", "type", "pct", "item", "items", "trigger", "reason"),
    # the experiment
    ("name", "arm"),
    # the profile (rtp.session.profile.Profile.to_dict)
    ("ts", "cats", "sessions", "events", "views", "carts", "purchases", "revenue", "bands",
     "price", "bought", "favs", "abandoned", "last_purchase_ts", "abandoned_ts", "offer_ts",
     "first_seen", "bandit", "upto"),
)  # fmt: skip

WHY_ALPHABET = "vrckpfxbsenw"  # rtp.decisions.reasons.CHAR (4 bits each; APPEND ONLY, <= 16)

_STATIC_INDEX = {s: i for i, s in enumerate(STATIC)}
_SCHEMA_INDEX = [{k: i for i, k in enumerate(keys)} for keys in SCHEMAS]
_SCHEMAS_BY_FIRST: dict[str, list[int]] = {}
for _schema, _keys in enumerate(SCHEMAS):
    for _k in _keys:  # a dict may start with any key of the schema
        _SCHEMAS_BY_FIRST.setdefault(_k, []).append(_schema)
_WHY_INDEX = {c: i for i, c in enumerate(WHY_ALPHABET)}
_WHY_SET = frozenset(WHY_ALPHABET)


def _template_parts(t: str) -> tuple[str, ...]:
    return tuple(t.split("{}"))


_TEMPLATE_PARTS = [_template_parts(t) for t in TEMPLATES]
# candidates by the first 3 characters of their literal start (or, for templates that start
# with a parameter, of their literal end)
_TEMPLATES_BY_HEAD: dict[str, list[int]] = {}
_TEMPLATES_BY_TAIL: dict[str, list[int]] = {}
for _tid, _parts in enumerate(_TEMPLATE_PARTS):
    if len(_parts[0]) >= 3:
        _TEMPLATES_BY_HEAD.setdefault(_parts[0][:3], []).append(_tid)
    else:
        _TEMPLATES_BY_TAIL.setdefault(_parts[-1][-3:], []).append(_tid)


class CodecError(ValueError):
    """A stored value that is neither JSON nor a compact value this version knows."""


class _Derived:
    """A field recomputed by the decoder from the fields it follows from."""

    __slots__ = ()


DERIVED: Any = _Derived()


class _Rel:
    """A time written relative to the value's anchor (the document's ``ts``)."""

    __slots__ = ("value", "anchor")

    def __init__(self, value: Any, anchor: Any) -> None:
        self.value = value
        self.anchor = anchor


class _RelRead:
    """A relative time as read: resolved against the anchor once it is known."""

    __slots__ = ("d", "scale")

    def __init__(self, d: int, scale: int) -> None:
        self.d = d
        self.scale = scale  # -1: an int

    def resolve(self, anchor: Any) -> Any:
        if self.scale < 0:
            return int(anchor) - self.d
        p = _POW[self.scale]
        return (round(anchor * p) - self.d) / p


# -- numbers -------------------------------------------------------------------------------------


def _decimal(x: float) -> tuple[int, int] | None:
    """``(k, s)`` with ``k / 10**s == x`` exactly for the smallest ``s <= 6``, or ``None``."""
    if x == 0.0:
        return None if math.copysign(1.0, x) < 0 else (0, 0)
    if not -1e15 < x < 1e15:
        return None
    for s in (3, 4, 5, 6):  # a decimal of 0-2 digits passes at 3 and is reduced below
        p = _POW[s]
        k = round(x * p)
        if k / p == x:
            while s and not k % 10:
                k //= 10
                s -= 1
            return k, s
    return None


def _rel(value: Any, anchor: Any) -> tuple[int, int] | None:
    """``(d, scale)`` such that ``_RelRead(d, scale).resolve(anchor) == value`` exactly (same
    type too), or ``None``."""
    tv, ta = type(value), type(anchor)
    if tv is int and ta is int:
        return anchor - value, -1
    if tv is not float or ta not in (int, float):
        return None
    dv = _decimal(value)
    da = _decimal(float(anchor)) if ta is float else (anchor, 0)
    if dv is None or da is None:
        return None
    s = max(dv[1], da[1])
    p = _POW[s]
    d = round(anchor * p) - round(value * p)
    if (round(anchor * p) - d) / p != value:
        return None
    return d, s


# -- the encoder ---------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VAR = [_varint(n) for n in range(1 << 14)]  # every one- and two-byte varint, ready made
_VAR_N = 1 << 14
_DIGITS = "0123456789"
_CACHE_MAX = 8192


def _zigzag_deltas(ks: list[int]) -> list[int]:
    """The zigzagged differences of ``ks`` (the first from 0): small either way round."""
    return [d << 1 if d >= 0 else (-d << 1) - 1 for d in map(sub, ks, [0, *ks[:-1]])]


# a difference -> its zigzag varint, for every difference whose varint has one or two bytes
_VAR_DELTA = {
    d: _VAR[d << 1 if d >= 0 else (-d << 1) - 1] for d in range(-(_VAR_N >> 1), _VAR_N >> 1)
}


def _delta_varints(ks: list[int]) -> bytes | None:
    """The zigzag varints of the differences of ``ks`` (the first from 0), or ``None`` when a
    difference needs more than two bytes."""
    try:
        return b"".join(map(_VAR_DELTA.__getitem__, map(sub, ks, [0, *ks[:-1]])))
    except KeyError:
        return None


def _dict_header(keys: tuple[Any, ...]) -> bytes | None:
    """The schema header of a dict with these keys (in this order), ``None`` if none fits."""
    if not keys or type(keys[0]) is not str:
        return None
    for sid in _SCHEMAS_BY_FIRST.get(keys[0], ()):
        index = _SCHEMA_INDEX[sid]
        last = -1
        mask = 0
        for k in keys:
            p = index.get(k) if type(k) is str else None
            if p is None or p <= last:
                break
            last = p
            mask |= 1 << p
        else:
            return bytes((0x70, sid)) + _varint(mask)
    return None


_STRUCTS: dict[tuple[int, str], struct.Struct] = {}


def _structs(n: int, code: str) -> struct.Struct:
    """``struct.Struct("<{n}{code}")``, made once."""
    st = _STRUCTS.get((n, code))
    if st is None:
        st = _STRUCTS[(n, code)] = struct.Struct(f"<{n}{code}")
    return st


_HEADERS: dict[tuple[Any, ...], bytes | None] = {}  # key tuple -> schema header (a cache)
_TEXTS: dict[str, bytes | None] = {}  # string -> its packed form or None (a cache)
_MATCHES: dict[str, tuple[int, list[str]] | None] = {}  # string -> template match (a cache)
_DECIMALS: dict[str, bytes] = {}  # decimal-number string -> its bytes, 0x79 varint (a cache)
_REALS: dict[float, bytes] = {}  # non-zero float -> its bytes as a decimal (a cache)


def _cached(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def _packed_text(s: str) -> bytes | None:
    """Reason codes (4 bits a character) or runs of one character, when either is shorter."""
    runs: list[list[Any]] = []
    last = ""
    for c in s:
        if c == last:
            runs[-1][1] += 1
        else:
            runs.append([c, 1])
            last = c
    n = len(s)
    rle = 1 + 2 * len(runs) if len(runs) < 64 else n + 2
    codes = _WHY_SET.issuperset(s)
    nib = (n + 1) // 2 + 1 if codes else n + 2
    short = [(c, min(16, k - j)) for c, k in runs for j in range(0, k, 16)]
    coded = 1 + len(short) if codes and len(short) < 128 else n + 2
    if min(rle, nib, coded) >= n:
        return None
    out = bytearray()
    if coded <= min(rle, nib):  # reason codes in runs: a byte a run (code, length - 1)
        out.append(0x75)
        out.append(len(short))
        idx = _WHY_INDEX
        for c, k in short:
            out.append(idx[c] | (k - 1) << 4)
    elif rle <= nib:
        out.append(0x7B)
        out += _varint(len(runs))
        for c, k in runs:
            out.append(ord(c))
            out += _varint(k)
    else:
        out.append(0x7C)
        out += _varint(n)
        idx = _WHY_INDEX
        for j in range(0, n - 1, 2):
            out.append(idx[s[j]] | idx[s[j + 1]] << 4)
        if n & 1:
            out.append(idx[s[-1]])
    return bytes(out)


def _template_of(s: str) -> tuple[int, list[str]] | None:
    cands = _TEMPLATES_BY_HEAD.get(s[:3])
    if cands is None:
        cands = _TEMPLATES_BY_TAIL.get(s[-3:])
        if cands is None:
            return None
    for tid in cands:
        params = _match(_TEMPLATE_PARTS[tid], s)
        if params is not None:
            return tid, params
    return None


_MILLI: dict[float, int] = {0.0: 0}  # float that is k / 1000 exactly -> k (a cache)
_ID_INT: dict[str, int] = {}  # decimal id (no sign, no leading zero, < 2**64) -> int (a cache)
_ID_CACHE_MAX = 1 << 17
_NEG_ZERO = _F64.pack(-0.0)


def _scaled(xs: Sequence[float], n: int) -> tuple[list[int], int] | None:
    """``(ks, s)``: the smallest ``s`` in 3..6 with ``ks[j] / 10**s == xs[j]`` bit for bit for
    every ``j``, or ``None``. Non-zero floats found at ``s = 3`` go to the cache."""
    f64 = _structs(n, "d").pack
    exact = f64(*xs)  # compared bit for bit (-0.0 is not 0.0)
    try:
        for s in (3, 4, 5, 6):
            p = _POW[s]
            ks = [round(x * p) for x in xs]
            if f64(*[k / p for k in ks]) == exact:
                break
        else:
            return None
    except (OverflowError, ValueError):  # infinities, NaN
        return None
    if s == 3:
        _remember_thousandths(xs, ks)
    return ks, s


def _remember_thousandths(xs: Sequence[float], ks: list[int]) -> None:
    """Cache ``x -> k`` for floats found to be ``k / 1000`` exactly (a -0.0 finds 0.0's entry,
    which is why a zero is always checked in the bits)."""
    if len(_MILLI) >= _ID_CACHE_MAX:
        _MILLI.clear()
        _MILLI[0.0] = 0
    _MILLI.update(zip(xs, ks, strict=True))


def _id_int(x: Any) -> int | None:
    """A decimal id's integer (no sign, no leading zero, below 2**64), remembered."""
    if type(x) is not str or not x.isdigit() or not x.isascii() or (x[0] == "0" and x != "0"):
        return None
    k = int(x)
    if k >= 1 << 64:
        return None
    if len(_ID_INT) >= _ID_CACHE_MAX:
        _ID_INT.clear()
    _ID_INT[x] = k
    return k


def _decimal_ids(xs: Sequence[Any]) -> tuple[str, list[int]] | None:
    """``(prefix, numbers)`` when every element of ``xs`` is one common prefix (usually "")
    followed by a decimal id (:func:`_id_int`), else ``None``. Ids without a prefix met before
    cost a dict look-up each."""
    try:
        ints: list[Any] = list(map(_ID_INT.get, xs))
    except TypeError:  # an unhashable element: not an id
        return None
    if None not in ints:
        return "", ints
    first = xs[0]
    if type(first) is not str:
        return None
    head = first.rstrip(_DIGITS)
    if head:  # ids behind a common prefix ("i1282"): looked at every time
        h = len(head)
        if not all(type(x) is str and x.startswith(head) for x in xs):
            return None
        ints = [_id_int(x[h:]) for x in xs]
    else:  # decimal ids: those not met before
        ints = [_id_int(x) if k is None else k for x, k in zip(xs, ints, strict=True)]
    return None if None in ints else (head, ints)


class _Encoder:
    __slots__ = ("out", "table", "count")

    def __init__(self, kind: int) -> None:
        self.out = bytearray((kind,))
        self.table: dict[str, int] = {}  # string -> its index in the decoder's list
        self.count = 0  # the length of the decoder's list of strings

    def add(self, s: str) -> None:
        self.table[s] = self.count
        self.count += 1

    def uv(self, n: int) -> None:
        if n < _VAR_N:
            self.out += _VAR[n]
        else:
            self.out += _varint(n)

    def zz(self, n: int) -> None:
        z = n << 1 if n >= 0 else ((-n) << 1) - 1
        self.out += _VAR[z] if z < _VAR_N else _varint(z)

    # strings ------------------------------------------------------------------------------

    def string(self, s: str) -> None:
        out = self.out
        i = _STATIC_INDEX.get(s)
        if i is not None:
            if i < 64:
                out.append(0x80 | i)
            else:
                out.append(0x7F)
                out += _VAR[i]
            return
        i = self.table.get(s)
        if i is not None:
            if i < 32:
                out.append(0xC0 | i)
            else:
                out.append(0x7E)
                self.uv(i)
            return
        enc = _DECIMALS.get(s)
        if enc is not None:  # a decimal-number string met before: its bytes are known
            out += enc
            self.add(s)
            return
        n = len(s)
        if n and s.isascii():
            if s.isdigit():
                if (s[0] != "0" or n == 1) and n <= 18:
                    k = int(s)
                    enc = b"\x79" + (_VAR[k] if k < _VAR_N else _varint(k))
                    if len(_DECIMALS) >= _ID_CACHE_MAX:
                        _DECIMALS.clear()
                    _DECIMALS[s] = enc
                    out += enc
                    self.add(s)
                    return
            elif self.template(s):
                self.add(s)
                return
            elif s[-1].isdigit():
                head = s.rstrip(_DIGITS)
                tail = s[len(head) :]
                if (
                    (tail[0] != "0" or len(tail) == 1)
                    and len(tail) <= 18
                    and (len(head) <= 3 or head in self.table or head in _STATIC_INDEX)
                ):
                    out.append(0x7A)
                    self.string(head)
                    self.uv(int(tail))
                    self.add(s)
                    return
            if n >= 6:
                packed = _TEXTS.get(s, b"")
                if packed == b"":
                    packed = _cached(_TEXTS, s, _packed_text(s))
                if packed is not None:
                    out += packed
                    self.add(s)
                    return
        elif n and self.template(s):
            self.add(s)
            return
        b = s.encode("utf-8", "surrogatepass")
        if len(b) < 32:
            out.append(0xE0 | len(b))
        else:
            out.append(0x78)
            self.uv(len(b))
        out += b
        self.add(s)

    def template(self, s: str) -> bool:
        m: Any = _MATCHES.get(s, 0)
        if m == 0:
            m = _cached(_MATCHES, s, _template_of(s))
        if m is None:
            return False
        tid, params = m
        self.out.append(0x7D)
        self.out.append(tid)
        for p in params:
            self.string(p)
        return True

    # values -------------------------------------------------------------------------------

    def value(self, x: Any) -> None:
        t = type(x)
        if t is str:
            self.string(x)
        elif t is _Derived:
            self.out.append(0x4D)
        elif t is dict:
            self.mapping(x)
        elif t is list or t is tuple:
            self.sequence(x)
        elif t is int:
            if 0 <= x < 64:
                self.out.append(x)
            else:
                self.integer(x)
        elif t is float:
            self.real(x)
        elif x is None:
            self.out.append(0x4A)
        elif x is True:
            self.out.append(0x4C)
        elif x is False:
            self.out.append(0x4B)
        elif t is _Rel:
            self.relative(x)
        elif isinstance(x, str):
            self.string(str(x))
        elif isinstance(x, int):
            self.integer(int(x))
        elif isinstance(x, float):
            self.real(float(x))
        elif isinstance(x, dict):
            self.mapping(dict(x))
        elif isinstance(x, (list, tuple)):
            self.sequence(list(x))
        else:
            raise TypeError(f"cannot encode {t.__name__}")

    def integer(self, n: int) -> None:
        if 0 <= n < 64:
            self.out.append(n)
        elif n >= 0:
            self.out.append(0x40)
            self.uv(n)
        else:
            self.out.append(0x41)
            self.uv(-1 - n)

    def real(self, x: float) -> None:
        enc = _REALS.get(x)  # never 0.0 or -0.0 (they would find each other), never NaN
        if enc is not None:
            self.out += enc
            return
        dec = _decimal(x)
        if dec is None:
            if x != x or x in (_INF, -_INF):
                self.out.append(0x4A)  # as JSON writes them: null
            else:
                self.out.append(0x49)
                self.out += _F64.pack(x)
            return
        k, s = dec
        z = k << 1 if k >= 0 else ((-k) << 1) - 1
        enc = bytes((0x42 + s,)) + (_VAR[z] if z < _VAR_N else _varint(z))
        if x:
            _cached(_REALS, x, enc)
        self.out += enc

    def relative(self, r: _Rel) -> None:
        rel = _rel(r.value, r.anchor)
        if rel is None:
            self.value(r.value)
            return
        d, s = rel
        if s < 0:
            self.out.append(0x4E)
        else:
            self.out.append(0x4F)
            self.out.append(s)
        self.zz(d)

    def mapping(self, d: dict[Any, Any]) -> None:
        keys = tuple(d)
        header = _HEADERS.get(keys, b"")
        if header == b"":
            header = _cached(_HEADERS, keys, _dict_header(keys))
        if header is not None:
            out = self.out
            out += header
            value = self.value
            static = _STATIC_INDEX.get
            for v in d.values():  # the common cases inline: one-byte strings, small ints
                t = type(v)
                if t is str:
                    i = static(v)
                    if i is not None and i < 64:
                        out.append(0x80 | i)
                    else:
                        self.string(v)
                elif t is int and 0 <= v < 64:
                    out.append(v)
                else:
                    value(v)
            return
        n = len(keys)
        if n <= 14:
            self.out.append(0x50 + n)
        else:
            self.out.append(0x5F)
            self.uv(n)
        for k, v in d.items():
            if type(k) is not str:
                raise TypeError(f"dict key must be str, not {type(k).__name__}")
            self.string(k)
            self.value(v)

    def sequence(self, xs: Sequence[Any]) -> None:
        n = len(xs)
        if n >= 2:
            t = type(xs[0])
            if t is str:
                if self.packed_ids(xs):
                    return
            elif t is float and self.packed_floats(xs):
                return
        if n <= 14:
            self.out.append(0x60 + n)
        else:
            self.out.append(0x6F)
            self.uv(n)
        value = self.value
        for x in xs:
            value(x)

    def context(self, ctx: dict[str, Any], doc: dict[str, Any]) -> None:
        """The session context, with what follows from other fields marked derived."""
        keys = tuple(ctx)
        header = _HEADERS.get(keys, b"")
        if header == b"":
            header = _cached(_HEADERS, keys, _dict_header(keys))
        if header is None:
            self.mapping(ctx)  # an unknown shape: stored as it is
            return
        out = self.out
        out += header
        string, value = self.string, self.value
        ts: Any = doc.get("ts")
        started: Any = ctx.get("started")
        timed = type(ts) in (int, float) and type(started) in (int, float)
        for k, v in ctx.items():
            t = type(v)
            if k == "started" and timed:
                if t is int and type(ts) is int:  # what _rel gives for two ints
                    out.append(0x4E)
                    self.zz(ts - v)
                else:
                    self.relative(_Rel(v, ts))
            elif k == "session" and timed and t is str and v == f"{int(started)}":
                out.append(0x4D)
            elif k == "categories" and t is list:
                n = len(v)
                if n > 14:
                    value(v)
                    continue
                out.append(0x60 + n)
                for pair in v:
                    if type(pair) is list and len(pair) == 2 and type(pair[1]) is float:
                        out.append(0x62)
                        value(pair[0])
                        self.real(pair[1])
                    else:
                        value(pair)
            elif t is str:
                string(v)
            elif t is int and 0 <= v < 64 and k != "blend":
                out.append(v)
            elif k in _DERIVED_FIELDS and _same(v, _DERIVED_FIELDS[k](doc, ctx)):
                out.append(0x4D)
            else:
                value(v)

    def packed_ids(self, xs: Sequence[Any]) -> bool:
        """Decimal-number strings (optionally behind one common prefix) in a fixed width."""
        found = _decimal_ids(xs)
        if found is None:
            return False
        table = self.table
        if table and not table.keys().isdisjoint(xs):
            return False
        self._put_ids(xs, found[1], found[0])
        return True

    def _put_ids(self, xs: Sequence[Any], ints: list[int], head: str) -> None:
        top = max(ints)
        width = (top.bit_length() + 7) // 8 or 1
        out = self.out
        if head:
            out.append(0x72)
            self.string(head)
        else:
            out.append(0x71)
        n = len(ints)
        out += _VAR[n] if n < _VAR_N else _varint(n)
        out.append(width)
        # every id as 8 little-endian bytes, then the first `width` bytes of each, by strided
        # slices (C loops, not one call per id)
        wide = _structs(n, "Q").pack(*ints)
        if width == 8:
            out += wide
        else:
            packed = bytearray(n * width)
            for j in range(width):
                packed[j::width] = wide[j::8]
            out += packed
        table = self.table
        count = self.count
        if table:
            table.update(zip(xs, range(count, count + n), strict=False))  # as long as xs
        else:
            self.table = dict(zip(xs, range(count, count + n), strict=False))
        self.count = count + n

    def packed_floats(self, xs: Sequence[Any]) -> bool:
        """Floats that are all ``k / 10**s``: deltas of ``k`` (or a sparse form)."""
        if len(set(map(type, xs))) != 1:
            return False
        n = len(xs)
        # Floats met before that are k / 1000 exactly (most scores: the engine truncates them
        # to 3 decimals) are in a cache. 0.0 is one of them, and -0.0 finds it too: a -0.0 is
        # looked for in the bits.
        ks: list[Any] = list(map(_MILLI.get, xs))
        s = 3
        if None in ks or (0 in ks and _NEG_ZERO in _structs(n, "d").pack(*xs)):
            found = _scaled(xs, n)
            if found is None:
                return False
            ks, s = found
        if ks.count(0) * 2 < n:
            return self._deltas(ks, s, n)
        while s and not any(k % 10 for k in ks):
            s -= 1
            ks = [k // 10 for k in ks]
        out = self.out
        var, var_n = _VAR, _VAR_N
        out.append(0x74)  # mostly zeros: a bitmap of the others
        out.append(s)
        out += var[n] if n < var_n else _varint(n)
        bits = 0
        for j, k in enumerate(ks):
            if k:
                bits |= 1 << j
        out += bits.to_bytes((n + 7) // 8, "little")
        zs = [k << 1 if k >= 0 else (-k << 1) - 1 for k in ks if k]
        if max(zs, default=0) < var_n:
            out += b"".join(map(var.__getitem__, zs))
        else:
            out += b"".join([var[z] if z < var_n else _varint(z) for z in zs])
        return True

    def _deltas(self, ks: list[int], s: int, n: int) -> bool:
        while s and not any(k % 10 for k in ks):
            s -= 1
            ks = [k // 10 for k in ks]
        out = self.out
        out.append(0x73)
        out.append(s)
        out += _VAR[n] if n < _VAR_N else _varint(n)
        short = _delta_varints(ks)
        if short is None:  # a difference beyond two bytes: every varint as long as it needs
            short = b"".join([_VAR[z] if z < _VAR_N else _varint(z) for z in _zigzag_deltas(ks)])
        out += short
        return True


def _match(parts: tuple[str, ...], s: str) -> list[str] | None:
    """The parameters of template ``parts`` that give ``s`` exactly, or ``None``."""
    head, tail = parts[0], parts[-1]
    if not s.startswith(head) or not s.endswith(tail) or len(s) < len(head) + len(tail):
        return None
    mid = s[len(head) : len(s) - len(tail)]
    if len(parts) == 2:
        params = [mid]
    else:  # the separators between parameters, split from the right (ids have no spaces)
        params = []
        rest = mid
        for sep in reversed(parts[1:-1]):
            a, found, b = rest.rpartition(sep)
            if not found:
                return None
            params.append(b)
            rest = a
        params.append(rest)
        params.reverse()
    if not all(params) or _fill(parts, params) != s:
        return None
    return params


def _fill(parts: tuple[str, ...], params: Sequence[str]) -> str:
    out = [parts[0]]
    for p, lit in zip(params, parts[1:], strict=True):
        out.append(p)
        out.append(lit)
    return "".join(out)


# -- the decoder ---------------------------------------------------------------------------------


class _Decoder:
    __slots__ = ("b", "i", "table")

    def __init__(self, b: bytes, start: int) -> None:
        self.b = b
        self.i = start
        self.table: list[str] = []

    def uv(self) -> int:
        b = self.b
        i = self.i
        c = b[i]
        if c < 0x80:
            self.i = i + 1
            return c
        n = c & 0x7F
        shift = 7
        while True:
            i += 1
            c = b[i]
            n |= (c & 0x7F) << shift
            if c < 0x80:
                self.i = i + 1
                return n
            shift += 7

    def zz(self) -> int:
        n = self.uv()
        return -((n + 1) >> 1) if n & 1 else n >> 1

    def value(self) -> Any:
        b = self.b
        i = self.i
        c = b[i]
        self.i = i + 1
        if c < 0x40:
            return c
        if c >= 0x80:
            if c < 0xC0:
                return STATIC[c & 0x3F]
            if c < 0xE0:
                return self.table[c & 0x1F]
            n = c & 0x1F
            s = b[i + 1 : i + 1 + n].decode("utf-8", "surrogatepass")
            self.i = i + 1 + n
            self.table.append(s)
            return s
        return _DISPATCH[c](self, c)

    def string(self) -> str:
        s = self.value()
        if type(s) is not str:
            raise CodecError("a string was expected")
        return s


def _d_int(d: _Decoder, c: int) -> Any:
    return d.uv() if c == 0x40 else -1 - d.uv()


def _d_dec(d: _Decoder, c: int) -> Any:
    return d.zz() / _POW[c - 0x42]


def _d_f64(d: _Decoder, c: int) -> Any:
    i = d.i
    d.i = i + 8
    return _F64.unpack_from(d.b, i)[0]


def _d_const(d: _Decoder, c: int) -> Any:
    return (None, False, True, DERIVED)[c - 0x4A]


def _d_rel(d: _Decoder, c: int) -> Any:
    if c == 0x4E:
        return _RelRead(d.zz(), -1)
    s = d.b[d.i]
    d.i += 1
    return _RelRead(d.zz(), s)


def _d_dict(d: _Decoder, c: int) -> Any:
    n = c - 0x50 if c < 0x5F else d.uv()
    out: dict[str, Any] = {}
    for _ in range(n):
        k = d.string()
        out[k] = d.value()
    return out


def _d_list(d: _Decoder, c: int) -> Any:
    n = c - 0x60 if c < 0x6F else d.uv()
    value = d.value
    return [value() for _ in range(n)]


def _d_schema(d: _Decoder, c: int) -> Any:
    sid = d.b[d.i]
    d.i += 1
    mask = d.uv()
    keys = SCHEMAS[sid]
    out: dict[str, Any] = {}
    value = d.value
    j = 0
    while mask:
        if mask & 1:
            out[keys[j]] = value()
        mask >>= 1
        j += 1
    return out


def _d_ids(d: _Decoder, c: int) -> Any:
    head = d.string() if c == 0x72 else ""
    n = d.uv()
    b = d.b
    i = d.i
    w = b[i]
    i += 1
    end = i + n * w
    if w == 1:
        ids = [head + str(x) for x in b[i:end]]
    else:
        fb = int.from_bytes
        ids = [head + str(fb(b[j : j + w], "little")) for j in range(i, end, w)]
    d.i = end
    d.table.extend(ids)
    return ids


def _d_floats(d: _Decoder, c: int) -> Any:
    b = d.b
    s = b[d.i]
    d.i += 1
    p = _POW[s]
    n = d.uv()
    zz = d.zz
    if c == 0x73:  # the varints inline: this is most of a decision's numbers
        out = []
        k = 0
        i = d.i
        for _ in range(n):
            x = b[i]
            i += 1
            if x >= 0x80:
                z = x & 0x7F
                shift = 7
                while True:
                    x = b[i]
                    i += 1
                    z |= (x & 0x7F) << shift
                    if x < 0x80:
                        break
                    shift += 7
                x = z
            k += -((x + 1) >> 1) if x & 1 else x >> 1
            out.append(k / p)
        d.i = i
        return out
    nb = (n + 7) // 8
    bits = int.from_bytes(b[d.i : d.i + nb], "little")
    d.i += nb
    zero = 0 / p
    return [zz() / p if bits >> j & 1 else zero for j in range(n)]


def _d_str(d: _Decoder, c: int) -> Any:
    if c == 0x78:
        n = d.uv()
        i = d.i
        s = d.b[i : i + n].decode("utf-8", "surrogatepass")
        d.i = i + n
    elif c == 0x79:
        s = str(d.uv())
    elif c == 0x7A:
        head = d.string()
        s = head + str(d.uv())
    elif c == 0x7B:
        runs = d.uv()
        pieces = []
        b = d.b
        for _ in range(runs):
            ch = chr(b[d.i])
            d.i += 1
            pieces.append(ch * d.uv())
        s = "".join(pieces)
    elif c == 0x75:
        runs = d.b[d.i]
        i = d.i + 1
        a = WHY_ALPHABET
        s = "".join([a[x & 0x0F] * ((x >> 4) + 1) for x in d.b[i : i + runs]])
        d.i = i + runs
    elif c == 0x7C:
        n = d.uv()
        i = d.i
        nb = (n + 1) // 2
        a = WHY_ALPHABET
        chars = []
        for x in d.b[i : i + nb]:
            chars.append(a[x & 0x0F])
            chars.append(a[x >> 4])
        d.i = i + nb
        s = "".join(chars[:n])
    else:  # 0x7D template
        tid = d.b[d.i]
        d.i += 1
        parts = _TEMPLATE_PARTS[tid]
        s = _fill(parts, [d.string() for _ in range(len(parts) - 1)])
    d.table.append(s)
    return s


def _d_ref(d: _Decoder, c: int) -> Any:
    return d.table[d.uv()]


def _d_static(d: _Decoder, c: int) -> Any:
    return STATIC[d.uv()]


def _d_bad(d: _Decoder, c: int) -> Any:
    raise CodecError(f"unknown tag 0x{c:02x}")


_DISPATCH: list[Callable[[_Decoder, int], Any]] = [_d_bad] * 0x80
_DISPATCH[0x40] = _DISPATCH[0x41] = _d_int
for _c in range(0x42, 0x42 + _DEC_MAX + 1):
    _DISPATCH[_c] = _d_dec
_DISPATCH[0x49] = _d_f64
for _c in (0x4A, 0x4B, 0x4C, 0x4D):
    _DISPATCH[_c] = _d_const
_DISPATCH[0x4E] = _DISPATCH[0x4F] = _d_rel
for _c in range(0x50, 0x60):
    _DISPATCH[_c] = _d_dict
for _c in range(0x60, 0x70):
    _DISPATCH[_c] = _d_list
_DISPATCH[0x70] = _d_schema
_DISPATCH[0x71] = _DISPATCH[0x72] = _d_ids
_DISPATCH[0x73] = _DISPATCH[0x74] = _d_floats
for _c in (0x75, *range(0x78, 0x7E)):
    _DISPATCH[_c] = _d_str
_DISPATCH[0x7D] = _d_str
_DISPATCH[0x7E] = _d_ref
_DISPATCH[0x7F] = _d_static


def _decode(raw: bytes, kind: int) -> Any:
    if not raw:
        raise CodecError("empty value")
    if raw[0] != kind:
        raise CodecError(f"not a value of kind 0x{kind:02x} (first byte 0x{raw[0]:02x})")
    d = _Decoder(raw, 1)
    try:
        out = d.value()
    except (IndexError, KeyError, UnicodeDecodeError, struct.error) as e:
        raise CodecError(f"truncated or corrupt value: {e!r}") from None
    if d.i != len(raw):
        raise CodecError(f"{len(raw) - d.i} bytes after the value")
    return out


# -- decisions -----------------------------------------------------------------------------------

# The context fields recomputed at read time, and how (rtp.session.state.UserState.context).


def _sid(ctx: dict[str, Any]) -> Any:
    started: Any = ctx.get("started")
    return f"{int(started)}" if type(started) in (int, float) else None


def _blend(ctx: dict[str, Any]) -> Any:
    n = ctx.get("events")
    return int(n / (n + 4.0) * 100) / 100 if type(n) is int and n >= 0 else None


def _span(doc: dict[str, Any], ctx: dict[str, Any]) -> Any:
    ts: Any = doc.get("ts")
    started: Any = ctx.get("started")
    if type(ts) not in (int, float) or type(started) not in (int, float):
        return None
    return ts - started


def _pace(doc: dict[str, Any], ctx: dict[str, Any]) -> Any:
    n, span = ctx.get("events"), _span(doc, ctx)
    if type(n) is not int or n < 2 or span is None:
        return None
    minutes = span / 60.0
    return int((n / minutes if minutes > 0.5 else float(n)) * 100) / 100


def _dwell(doc: dict[str, Any], ctx: dict[str, Any]) -> Any:
    n, span = ctx.get("events"), _span(doc, ctx)
    if type(n) is not int or n < 2 or span is None:
        return None
    return int(span / (n - 1) * 10) / 10


_DERIVED_FIELDS: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
    "blend": lambda doc, ctx: _blend(ctx),
    "pace": _pace,
    "dwell": _dwell,
}


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def encode_decision_v1(doc: dict[str, Any]) -> bytes:
    """The first compact form of a decision document (0xD1; :func:`encode_decision` writes it
    for what the zstd form cannot hold: integers beyond 64 bits)."""
    e = _Encoder(DECISION)
    keys = tuple(doc)
    header = _HEADERS.get(keys, b"")
    if header == b"":
        header = _cached(_HEADERS, keys, _dict_header(keys))
    ctx = doc.get("ctx")
    if header is None or type(ctx) is not dict:
        e.value(doc)
        return bytes(e.out)
    out = e.out
    out += header
    value = e.value
    for k, v in doc.items():
        if k == "ctx":
            e.context(v, doc)
        elif k == "hero" and type(v) is dict and _is_hero(v, ctx):
            out.append(0x4D)
        else:
            value(v)
    return bytes(out)


_HERO = {  # the session's mode -> the banner on its top category (rtp.decisions.placements)
    "rapid": ("deals:", "you are scanning "),
    "deep": ("guide:", "you are comparing "),
}
_HERO_DEFAULT = ("category:", "you browse ")


def _hero_texts(ctx: dict[str, Any]) -> tuple[str, str] | None:
    """The theme and reason of the hero banner that follows from the context's top category
    and mode (None when the context names no category)."""
    cats = ctx.get("categories")
    if type(cats) is not list or not cats or type(cats[0]) is not list or not cats[0]:
        return None
    top = cats[0][0]
    if type(top) is not str:
        return None
    theme, reason = _HERO.get(ctx.get("mode"), _HERO_DEFAULT)  # type: ignore[arg-type]
    return theme + top, reason + top


def _hero(ctx: dict[str, Any]) -> dict[str, str] | None:
    texts = _hero_texts(ctx)
    return None if texts is None else {"theme": texts[0], "reason": texts[1]}


def _is_hero(v: dict[str, Any], ctx: dict[str, Any]) -> bool:
    """``v`` is the hero that follows from the context: the keys and values of
    ``_hero(ctx)``, in its order, of the same types (without making that dict)."""
    if len(v) != 2 or next(iter(v)) != "theme":
        return False
    theme = v.get("theme")
    reason = v.get("reason")
    if type(theme) is not str or type(reason) is not str:
        return False
    return _hero_texts(ctx) == (theme, reason)


def _resolve_ctx(doc: dict[str, Any]) -> None:
    ctx = doc.get("ctx")
    if type(ctx) is not dict:
        if doc.get("hero") is DERIVED:
            raise CodecError("a derived hero without its context")
        return
    started = ctx.get("started")
    if type(started) is _RelRead:
        ctx["started"] = started.resolve(doc["ts"])
    for name, derive in (("session", _sid), ("blend", _blend)):
        if ctx.get(name) is DERIVED:
            ctx[name] = derive(ctx)
    for name, derive2 in (("pace", _pace), ("dwell", _dwell)):
        if ctx.get(name) is DERIVED:
            ctx[name] = derive2(doc, ctx)
    if doc.get("hero") is DERIVED:
        doc["hero"] = _hero(ctx)


def fast_payload(doc: dict[str, Any]) -> bytes | None:
    """What the fast form compresses: the document's JSON behind an empty header (``None``
    for what orjson cannot write, e.g. an integer beyond 64 bits or a lone surrogate)."""
    try:
        return _Z_PLAIN + orjson.dumps(doc)
    except orjson.JSONEncodeError:
        return None


def encode_decision_fast(doc: dict[str, Any]) -> bytes:
    """The fast form of a decision document (a zstd form, 0xD2, with dictionary 2 and nothing
    packed): 4.7 µs against 16.6 per Taobao decision, 52 bytes larger (BENCHMARKS.md §4.2).
    Falls back to :func:`encode_decision` for what it cannot hold, or without the dictionary."""
    payload = fast_payload(doc)
    c = _compressor(_Z_FAST_DICT)
    if payload is None or c is None:
        return encode_decision(doc)
    frame: bytes = c.compress(payload)
    return _Z_FAST_PREFIX + frame


def encode_decision(doc: dict[str, Any]) -> bytes:
    """The stored form of a decision document (``P d:{user}``): the zstd form (0xD2), or
    the first compact form (0xD1) for what it cannot hold."""
    raw = _encode_decision_z(doc)
    return encode_decision_v1(doc) if raw is None else raw


def decode_decision(raw: bytes) -> dict[str, Any]:
    """A decision document from its stored bytes: either compact form, or the JSON of earlier
    versions."""
    if raw[:1] == _DECISION_Z:
        return _decode_decision_z(raw)
    if raw[:1] == b"{":
        doc = orjson.loads(raw)
    else:
        doc = _decode(raw, DECISION)
        if type(doc) is dict:
            _resolve_ctx(doc)
    if type(doc) is not dict:
        raise CodecError("a decision document is a JSON object")
    return doc


# -- decisions, the zstd form (0xD2) -------------------------------------------------------------
#
# The form above is written by pure Python, a call per value, and a decision is written for
# almost every event. The form below is ~8 B longer on Taobao's decisions for about half the
# CPU to write and to read (``python -m benchmarks.codec_zstd``; BENCHMARKS.md): what zstd
# cannot shrink is laid out by C loops or table look-ups (the home list's ids in a fixed width, a
# byte plane per byte, lowest first; its scores as zigzag varint deltas
# of thousandths; ``recent`` as positions in the home list), what follows from other fields is
# left out (as above), and the rest is ``orjson`` compressed by zstd with a dictionary trained
# on decisions (``decision-1.zdict`` beside this module, made by ``python -m rtp.tools.zdict``;
# a new dictionary gets a new number, and every numbered one stays readable).
#
#     0xD2, dictionary number, zstd frame (magicless, no checksum) of:
#       flags (2 bytes, LE: which fields are packed or derived), n (1 byte), id width w (1 byte),
#       if ITEMS: w planes of n bytes (byte j of every id), the ids' prefix in the JSON;
#       if SCORES: n zigzag varints (1-2 bytes), the deltas of the scores in thousandths;
#       the JSON of the document, the packed and derived fields replaced by 0
#
# The fast form (``Settings.decision_form = "fast"``) is the same frame with no flags: the
# document's JSON as it is, compressed with a dictionary trained on such payloads
# (``decision-2.zdict``, ``python -m rtp.tools.zdict --form fast``). It skips the Python
# pre-pass, which is most of the zstd form's CPU, for 52 bytes more per Taobao decision
# (BENCHMARKS.md §4.2, §4.3); every reader of the zstd form reads it unchanged.

DECISION_Z = 0xD2
_Z_DICT = 1  # the dictionary new values are written with
_Z_FAST_DICT = 2  # ... in the fast form

_F_ITEMS, _F_SCORES, _F_RECENT, _F_HERO = 1, 2, 4, 8  # which fields are packed or derived
_F_SESSION, _F_BLEND, _F_PACE, _F_DWELL, _F_STARTED = 16, 32, 64, 128, 256
_ZHEAD = struct.Struct("<HBB")
_Z_PREFIX = bytes((DECISION_Z, _Z_DICT))
_Z_FAST_PREFIX = bytes((DECISION_Z, _Z_FAST_DICT))
_Z_PLAIN = _ZHEAD.pack(0, 0, 0)  # the header of a payload with nothing packed or derived
_MAX_IDS = 255


# A compressor and a decompressor per dictionary and thread (neither is thread-safe). A plain
# threading.local, not a subclass: compiled with mypyc (setup.py) a subclass's attributes were
# shared by every thread, and concurrent compressions corrupted each other's frames.
_ZSTD_LOCAL = threading.local()


def _zstd_state() -> tuple[dict[int, Any], dict[int, Any]]:
    """This thread's (compressors, decompressors) by dictionary number."""
    try:
        state: tuple[dict[int, Any], dict[int, Any]] = _ZSTD_LOCAL.state
    except AttributeError:
        state = _ZSTD_LOCAL.state = ({}, {})
    return state


_ZDICTS: dict[int, Any] = {}


def _zdict(n: int) -> Any:
    """Dictionary number ``n``, or ``None`` when this installation lacks it."""
    if n in _ZDICTS:
        return _ZDICTS[n]
    try:
        data = resources.files("rtp.store").joinpath(f"decision-{n}.zdict").read_bytes()
    except FileNotFoundError:
        zd = None
    else:
        zd = zstd.ZstdCompressionDict(data, dict_type=zstd.DICT_TYPE_FULLDICT)
    _ZDICTS[n] = zd
    return zd


_Z_LEVEL = 3  # zstd's default; 1 is as fast here and a few bytes longer


def _compressor(n: int) -> Any:
    """The thread's compressor for dictionary ``n`` (``None``, warned once per thread, when
    this installation lacks the dictionary)."""
    cs = _zstd_state()[0]
    if n in cs:
        return cs[n]
    params = zstd.ZstdCompressionParameters.from_level(
        _Z_LEVEL, format=zstd.FORMAT_ZSTD1_MAGICLESS, write_checksum=False,
        write_dict_id=False, write_content_size=True,
    )  # fmt: skip
    zd = _zdict(n)
    if zd is None:
        log.warning("rtp.store: no zstd dictionary decision-%d.zdict in this installation: "
                    "decisions are written in the first compact form (0xD1)", n)  # fmt: skip
    c = cs[n] = None if zd is None else zstd.ZstdCompressor(dict_data=zd, compression_params=params)
    return c


def _decompressor(n: int) -> Any:
    ds = _zstd_state()[1]
    d = ds.get(n)
    if d is None:
        zd = _zdict(n)
        if zd is None:
            raise CodecError(f"a decision written with zstd dictionary {n}, which this rtp lacks")
        d = ds[n] = zstd.ZstdDecompressor(dict_data=zd, format=zstd.FORMAT_ZSTD1_MAGICLESS)
    return d


def _z_ids(items: Any) -> tuple[str, list[int], int] | None:
    """The home list's ids as their common prefix, numbers and byte width, or ``None``."""
    if type(items) is not list or not 0 < len(items) <= _MAX_IDS:
        return None
    found = _decimal_ids(items)
    if found is None:
        return None
    head, ints = found
    return head, ints, (max(ints).bit_length() + 7) // 8 or 1


def _z_scores(scores: Any, n: int) -> bytes | None:
    """``n`` float scores that are thousandths, as zigzag varint deltas, or ``None``."""
    if type(scores) is not list or len(scores) != n or set(map(type, scores)) != {float}:
        return None
    ks: list[int]
    try:
        ks = list(map(_MILLI.__getitem__, scores))
    except KeyError:  # a score not met before
        try:
            ks = [round(x * 1000) for x in scores]
            if [k / 1000 for k in ks] != scores:
                return None
        except (OverflowError, ValueError):  # infinities, NaN
            return None
        _remember_thousandths(scores, ks)
    if 0 in ks and _NEG_ZERO in _structs(n, "d").pack(*scores):
        return None
    return _delta_varints(ks)


def _z_payload(doc: dict[str, Any]) -> bytes | None:
    """What the zstd form compresses (``None``: an integer beyond 64 bits)."""
    flags = 0
    head = b""
    n = w = 0
    body = dict(doc)
    home = doc.get("home")
    index: dict[str, int] | None = None
    if type(home) is dict:
        items = home.get("items")
        ids = _z_ids(items)
        if ids is not None:
            prefix, ints, w = ids
            n = len(ints)
            flags |= _F_ITEMS
            wide = _structs(n, "Q").pack(*ints)
            head = b"".join([wide[j::8] for j in range(w)])  # byte planes: lowest bytes first
            home = dict(home)
            home["items"] = prefix  # the ids' common prefix, usually ""
            sc = _z_scores(home.get("scores"), n)
            if sc is not None:
                flags |= _F_SCORES
                head += sc
                home["scores"] = 0
            body["home"] = home
            index = dict(zip(items, range(n), strict=True))  # type: ignore[arg-type]
    ctx = doc.get("ctx")
    if type(ctx) is dict:
        c = dict(ctx)
        ts: Any = doc.get("ts")
        started: Any = ctx.get("started")
        if "started" in c and type(ts) is int and type(started) is int:
            c["started"] = ts - started
            flags |= _F_STARTED
        timed = type(ts) in (int, float) and type(started) in (int, float)
        if (
            timed
            and type(c.get("session")) is str
            and math.isfinite(started)
            and c["session"] == f"{int(started)}"
        ):
            c["session"] = 0
            flags |= _F_SESSION
        recent = ctx.get("recent")
        if index is not None and type(recent) is list and recent:
            try:
                pos: list[Any] = list(map(index.get, recent))
            except TypeError:
                pos = [None]
            if None not in pos:
                c["recent"] = pos
                flags |= _F_RECENT
        if "blend" in c and _same(c["blend"], _blend(ctx)):
            c["blend"] = 0
            flags |= _F_BLEND
        if "pace" in c and _same(c["pace"], _pace(doc, ctx)):
            c["pace"] = 0
            flags |= _F_PACE
        if "dwell" in c and _same(c["dwell"], _dwell(doc, ctx)):
            c["dwell"] = 0
            flags |= _F_DWELL
        body["ctx"] = c
        hero = doc.get("hero")
        if type(hero) is dict and _is_hero(hero, ctx):
            body["hero"] = 0
            flags |= _F_HERO
    try:
        text = orjson.dumps(body)
    except orjson.JSONEncodeError as e:
        if "Integer exceeds 64-bit range" in str(e):
            return None  # the compact form above writes any integer
        raise TypeError(str(e)) from None
    return _ZHEAD.pack(flags, n, w) + head + text


def _encode_decision_z(doc: dict[str, Any]) -> bytes | None:
    c = _compressor(_Z_DICT)
    if c is None:
        return None
    payload = _z_payload(doc)
    if payload is None:
        return None
    frame: bytes = c.compress(payload)
    return _Z_PREFIX + frame


def _decode_decision_z(raw: bytes) -> dict[str, Any]:
    if len(raw) < 3:
        raise CodecError("truncated value")
    try:
        p = _decompressor(raw[1]).decompress(raw[2:], allow_extra_data=False)
    except zstd.ZstdError as e:
        raise CodecError(f"truncated or corrupt value: {e}") from None
    try:
        flags, n, w = _ZHEAD.unpack_from(p)
    except struct.error:
        raise CodecError("truncated value") from None
    i = _ZHEAD.size
    items: list[str] = []
    ints: tuple[int, ...] = ()
    if flags & _F_ITEMS:
        end = i + n * w
        if w > 8 or end > len(p):
            raise CodecError("truncated or corrupt value: the id block")
        wide = bytearray(8 * n)
        for j in range(w):
            wide[j::8] = p[i + j * n : i + (j + 1) * n]
        ints = _structs(n, "Q").unpack(wide)
        i = end
    scores: list[float] = []
    if flags & _F_SCORES:  # n zigzag varints of one or two bytes, inline
        k = 0
        try:
            for _ in range(n):
                x = p[i]
                i += 1
                if x >= 0x80:
                    x = (x & 0x7F) | p[i] << 7
                    i += 1
                k += -((x + 1) >> 1) if x & 1 else x >> 1
                scores.append(k / 1000)
        except IndexError:
            raise CodecError("truncated or corrupt value: the score block") from None
    doc = orjson.loads(memoryview(p)[i:])
    if type(doc) is not dict:
        raise CodecError("a decision document is a JSON object")
    try:
        if flags & (_F_ITEMS | _F_SCORES):
            home = doc["home"]
            if flags & _F_ITEMS:
                prefix = home["items"]
                if type(prefix) is not str:
                    raise TypeError("the ids' prefix")
                items = home["items"] = (
                    [prefix + str(k) for k in ints] if prefix else list(map(str, ints))
                )
            if flags & _F_SCORES:
                home["scores"] = scores
        if flags & ~(_F_ITEMS | _F_SCORES):
            ctx = doc["ctx"]
            if flags & _F_STARTED:
                ctx["started"] = doc["ts"] - ctx["started"]
            if flags & _F_SESSION:
                ctx["session"] = _sid(ctx)
            if flags & _F_RECENT:
                ctx["recent"] = [items[j] for j in ctx["recent"]]
            if flags & _F_BLEND:
                ctx["blend"] = _blend(ctx)
            if flags & _F_PACE:
                ctx["pace"] = _pace(doc, ctx)
            if flags & _F_DWELL:
                ctx["dwell"] = _dwell(doc, ctx)
            if flags & _F_HERO:
                doc["hero"] = _hero(ctx)
    except (KeyError, IndexError, TypeError) as e:
        raise CodecError(f"corrupt value: {e!r}") from None
    return doc


# -- profiles ------------------------------------------------------------------------------------

_PROFILE_TIMES = ("last_purchase_ts", "abandoned_ts", "offer_ts", "first_seen", "upto")


def band_range(bands: Sequence[float]) -> tuple[float, float] | None:
    """The price range holding the middle (20 % to 80 %) of decayed log2 price bands: what
    ``Profile.price_range`` gives, and what a stored profile's ``range`` is derived from."""
    total = sum(bands)
    if total <= 0:
        return None
    lo_b = hi_b = -1
    acc = 0.0
    for b, w in enumerate(bands):
        acc += w
        if lo_b < 0 and acc >= 0.2 * total:
            lo_b = b
        if acc >= 0.8 * total:
            hi_b = b
            break
    return (float(2**lo_b if lo_b > 0 else 0), float(2 ** (hi_b + 1)))


def _band_range(bands: Any) -> Any:
    """``[lo, hi]`` from the stored price bands (None when they are not a list of floats)."""
    if type(bands) is not list or not all(type(w) is float for w in bands):
        return None
    r = band_range(bands)
    return None if r is None else list(r)


def encode_profile(d: dict[str, Any]) -> bytes:
    """The compact form of a profile document (``Profile.to_dict()``; ``P p:{user}``)."""
    ts = d.get("ts")
    if type(ts) in (int, float):
        d = dict(d)
        for name in _PROFILE_TIMES:
            if name in d:
                d[name] = _Rel(d[name], ts)
        if "price" in d and d["price"] == _band_range(d.get("bands")) and _all_float(d["price"]):
            d["price"] = DERIVED
    e = _Encoder(PROFILE)
    e.value(d)
    return bytes(e.out)


def _all_float(xs: Any) -> bool:
    return type(xs) is list and all(type(x) is float for x in xs)


def decode_profile(raw: bytes) -> dict[str, Any]:
    """A profile document from its stored bytes: compact, or the JSON of earlier versions."""
    if raw[:1] == b"{":
        doc = orjson.loads(raw)
    else:
        doc = _decode(raw, PROFILE)
        if type(doc) is dict:
            ts = doc.get("ts")
            for name in _PROFILE_TIMES:
                v = doc.get(name)
                if type(v) is _RelRead:
                    doc[name] = v.resolve(ts)
            if doc.get("price") is DERIVED:
                doc["price"] = _band_range(doc.get("bands"))
    if type(doc) is not dict:
        raise CodecError("a profile document is a JSON object")
    return doc


# -- product pages -------------------------------------------------------------------------------


def encode_page(items: Sequence[str], scores: Sequence[float]) -> bytes:
    """The compact form of a product page ``{"items": items, "scores": scores}``."""
    e = _Encoder(PAGE)
    e.sequence(list(items))
    e.sequence(list(scores))
    return bytes(e.out)


def decode_page(raw: bytes) -> dict[str, Any]:
    """A product page ``{"items": [...], "scores": [...]}`` from its stored bytes."""
    if raw[:1] == b"{":
        doc = orjson.loads(raw)
        if type(doc) is not dict:
            raise CodecError("a product page is a JSON object")
        return doc
    if not raw or raw[0] != PAGE:
        raise CodecError("not a product page")
    d = _Decoder(raw, 1)
    try:
        items = d.value()
        scores = d.value()
    except (IndexError, KeyError, UnicodeDecodeError, struct.error) as e:
        raise CodecError(f"truncated or corrupt value: {e!r}") from None
    if d.i != len(raw):
        raise CodecError(f"{len(raw) - d.i} bytes after the value")
    return {"items": items, "scores": scores}


def loads(raw: bytes) -> Any:
    """Any stored value by its first byte: a decision, profile or page, or JSON."""
    if not raw:
        raise CodecError("empty value")
    kind = raw[0]
    if kind in (DECISION, DECISION_Z):
        return decode_decision(raw)
    if kind == PROFILE:
        return decode_profile(raw)
    if kind == PAGE:
        return decode_page(raw)
    return orjson.loads(raw)
