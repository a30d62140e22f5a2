"""The edge model: what a first page should show a visitor rtp has never seen, from context alone.

A first visit has no history, only its context: where the visitor came from (the ``referral``
class), their ``device``, their local hour (banded into a ``daypart``), their ``country`` and the
UTM ``campaign``. :class:`EdgeModel` learns, per combination of those signals, what sessions
that started in that context went on to view, cart and buy (decayed in event time), and
:meth:`EdgeModel.document` turns that into a small versioned JSON document of rules that
``rtp.js`` evaluates in the browser, with no request, before the first paint::

    {"v": 1, "kind": "rtp.edge", "version": "3f0c9a1e", "ts": 1730700000.0,
     "dayparts": [["night", 0], ["morning", 6], ["afternoon", 12], ["evening", 18]],
     "rules": [{"when": {"referral": "search", "device": "mobile", "daypart": "evening"},
                "hero": "category:furniture", "categories": ["furniture", "lighting"],
                "items": ["i16", "i40"], "message": "Welcome! Discover our furniture",
                "reason": "Popular with visitors from search on mobile this evening",
                "support": 12.5}, ...]}

Rules are sorted so that the first one whose ``when`` conditions all hold is the one to use (the
most specific, then the best supported); a rule with an empty ``when`` matches everyone. A
document with no rules (a model that has seen nothing) tells ``rtp.js`` to keep the page's
static content.

The flow calls :meth:`EdgeModel.observe` once per finished session and publishes
:meth:`EdgeModel.document` at ``{prefix}meta:edge``; ``GET /v1/edge-model`` serves it.

Bounded by construction: at most ``max_rules`` rule states are kept (the least supported are
evicted), each with at most ``max_entries`` categories and items; a document holds at most
``doc_rules`` rules of ``top_categories`` categories and ``top_items`` items, ids and labels are
cut to :data:`MAX_ID_CHARS`, and a final guard drops the least supported rules until the
document is at most ``max_gzip_bytes`` gzipped. Pure Python: no bytewax, no redis, no wall clock
(time is the event time given to :meth:`observe`), so the same sessions give the same document.

>>> m = EdgeModel(min_support=1.0)
>>> t = 1_730_700_000.0
>>> for n in range(3):
...     m.observe({"referral": "search", "device": "mobile", "hour": 20},
...               {"furniture": 3.0, "lighting": 1.0}, {"i16": 2.0, f"i{n}": 1.0}, t + n)
>>> m.observe({"referral": "direct", "device": "desktop", "hour": 9}, ["books"], ["b1"], t + 9)
>>> doc = m.document()
>>> rule = match(doc, {"referral": "search", "device": "mobile", "hour": 21})
>>> rule["hero"], rule["reason"]
('category:furniture', 'Popular with visitors from search on mobile this evening')
>>> round(rule["support"], 3)
3.0
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import heapq
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

__all__ = [
    "COMBOS",
    "DAYPARTS",
    "EDGE_FORMAT",
    "SIGNALS",
    "EdgeModel",
    "daypart",
    "empty_document",
    "match",
    "reason_for",
    "signals_of",
]

EDGE_FORMAT = 1
MAX_ID_CHARS = 64
SIGNALS = ("referral", "device", "daypart", "country", "campaign")
# (name, first local hour) in order; a band lasts until the next one starts.
DAYPARTS: tuple[tuple[str, int], ...] = (
    ("night", 0),
    ("morning", 6),
    ("afternoon", 12),
    ("evening", 18),
)
# The signal combinations a rule can be keyed by (the empty one is everyone).
COMBOS: tuple[tuple[str, ...], ...] = (
    (),
    ("referral",),
    ("device",),
    ("daypart",),
    ("country",),
    ("campaign",),
    ("referral", "device"),
    ("referral", "daypart"),
    ("device", "daypart"),
    ("referral", "device", "daypart"),
)
_UNKNOWN = frozenset({"", "unknown", "bot", "none"})
_REFERRAL_WORDS = {
    "search": "from search",
    "social": "from social media",
    "email": "from our emails",
    "paid": "from our ads",
    "direct": "who come straight to us",
    "internal": "browsing our pages",
    "other": "from other sites",
}
_DEVICE_WORDS = {"mobile": "on mobile", "tablet": "on tablets", "desktop": "on desktop"}
_DAYPART_WORDS = {
    "night": "tonight",
    "morning": "this morning",
    "afternoon": "this afternoon",
    "evening": "this evening",
}

Weights = Mapping[str, float] | Iterable[str | tuple[str, float]]
RuleKey = tuple[tuple[str, str], ...]


def daypart(hour: int) -> str:
    """The band of a local hour (0-23): ``night`` (0-5), ``morning``, ``afternoon``, ``evening``."""
    name = DAYPARTS[0][0]
    for band, start in DAYPARTS:
        if hour >= start:
            name = band
    return name


def _label(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    text = str(value).strip().lower()[:MAX_ID_CHARS]
    return "" if text in _UNKNOWN else text


def signals_of(signals: Mapping[str, Any]) -> dict[str, str]:
    """The known signals of a context, normalized: lower case, ``hour`` banded to ``daypart``.

    ``signals`` may hold ``referral``, ``device``, ``hour`` (local, 0-23) or ``daypart``,
    ``country`` and ``campaign``; unknown or empty values are left out.
    """
    out: dict[str, str] = {}
    for name in ("referral", "device", "campaign"):
        value = _label(signals.get(name))
        if value:
            out[name] = value
    country = _label(signals.get("country"))
    if country:
        out["country"] = country.upper()
    hour = signals.get("hour")
    if isinstance(hour, int) and not isinstance(hour, bool) and 0 <= hour <= 23:
        out["daypart"] = daypart(hour)
    else:
        band = _label(signals.get("daypart"))
        if band in _DAYPARTS_SET:
            out["daypart"] = band
    return out


_DAYPARTS_SET = frozenset(name for name, _ in DAYPARTS)


def _weights(values: Weights) -> dict[str, float]:
    out: dict[str, float] = {}
    pairs: Iterable[Any] = values.items() if isinstance(values, Mapping) else values
    for entry in pairs:
        if isinstance(entry, tuple):
            name, w = entry[0], float(entry[1])
        else:
            name, w = entry, 1.0
        key = _label(name) if not isinstance(name, str) else name.strip()[:MAX_ID_CHARS]
        if key and w > 0.0 and math.isfinite(w):
            out[key] = out.get(key, 0.0) + w
    return out


class _Rule:
    """The decayed evidence of one signal combination.

    Values are kept relative to the reference time ``ts`` by inflation (an observation at
    ``t`` adds ``2 ** ((t - ts) / half_life)``), so learning never touches the other entries;
    the values decayed to a time ``now`` are ``value * 0.5 ** ((now - ts) / half_life)``.
    """

    __slots__ = ("mass", "cats", "items", "ts")

    def __init__(self, ts: float) -> None:
        self.mass = 0.0
        self.cats: dict[str, float] = {}
        self.items: dict[str, float] = {}
        self.ts = ts

    def weight_at(self, ts: float, half_life_s: float) -> float:
        """The weight of an observation at ``ts`` (rescaling first when it grows large)."""
        x = (ts - self.ts) / half_life_s
        if x > 64.0:
            self.decay_to(ts, half_life_s)
            return 1.0
        return float(2.0**x)

    def decay_to(self, ts: float, half_life_s: float) -> None:
        """Move the reference time to ``ts`` (values decayed accordingly)."""
        if ts <= self.ts:
            return
        f = 0.5 ** ((ts - self.ts) / half_life_s)
        self.ts = ts
        self.mass *= f
        for table in (self.cats, self.items):
            for k in table:
                table[k] *= f


def _strongest(kv: tuple[str, float]) -> tuple[float, str]:
    return (-kv[1], kv[0])


def _top(table: Mapping[str, float], n: int) -> list[str]:
    """The ``n`` heaviest keys, heaviest first, ties by name. For a few of many, only the
    entries at or above the ``n``-th heaviest value are sorted (the same list as sorting the
    whole table)."""
    if n <= 0:
        return []
    entries: Iterable[tuple[str, float]] = table.items()
    if len(table) > 4 * n:
        cut = heapq.nlargest(n, table.values())[-1]
        entries = [kv for kv in entries if kv[1] >= cut]
    return [k for k, _ in sorted(entries, key=_strongest)[:n]]


def _prune(table: dict[str, float], cap: int) -> None:
    if len(table) > 2 * cap:
        keep = _top(table, cap)
        kept = {k: table[k] for k in keep}
        table.clear()
        table.update(kept)


class EdgeModel:
    """Learns first-page decisions per context from finished sessions (decayed in event time).

    :param half_life_s: evidence halves every this many seconds of event time.
    :param min_support: a rule needs this many (decayed) sessions to be published.
    :param max_rules: rule states kept in memory (the least supported are evicted).
    :param max_entries: categories and items kept per rule state.
    :param doc_rules: rules in a published document, at most.
    :param top_categories: categories per published rule.
    :param top_items: items per published rule.
    :param max_gzip_bytes: the published document's bound, gzipped.
    """

    def __init__(
        self,
        half_life_s: float = 3 * 86_400.0,
        min_support: float = 3.0,
        max_rules: int = 256,
        max_entries: int = 32,
        doc_rules: int = 128,
        top_categories: int = 3,
        top_items: int = 4,
        max_gzip_bytes: int = 8_192,
    ) -> None:
        if half_life_s <= 0 or max_rules < 1 or max_entries < 1:
            raise ValueError("need half_life_s > 0, max_rules >= 1 and max_entries >= 1")
        self.half_life_s = half_life_s
        self.min_support = min_support
        self.max_rules = max_rules
        self.max_entries = max_entries
        self.doc_rules = doc_rules
        self.top_categories = top_categories
        self.top_items = top_items
        self.max_gzip_bytes = max_gzip_bytes
        self.rules: dict[RuleKey, _Rule] = {}
        self.now = 0.0  # the latest event time observed
        self.sessions = 0  # sessions observed (not decayed)
        # each rule's published categories and items, kept until the rule learns again (a
        # document decays only the support, never a rule's tables)
        self._tops: dict[RuleKey, tuple[list[str], list[str]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_tops", None)  # a cache: not snapshotted
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tops = {}

    # -- learning -------------------------------------------------------------------------------

    def observe(
        self,
        signals: Mapping[str, Any],
        categories: Weights,
        items: Weights,
        ts: float,
    ) -> None:
        """Learn from one finished session.

        :param signals: the context of the session's first event: ``referral``, ``device``,
            ``hour`` (local, 0-23; or ``daypart``), ``country``, ``campaign``.
        :param categories: what the session went on to view, cart or buy: ``{name: weight}`` or
            names (weight 1) or ``(name, weight)`` pairs.
        :param items: the same for items.
        :param ts: the session's event time (its start or end; seconds).
        """
        self.observe_many(signals, ((categories, items, ts),))

    def observe_many(
        self,
        signals: Mapping[str, Any],
        outcomes: Iterable[tuple[Weights, Weights, float]],
    ) -> None:
        """Learn from several finished sessions of the same context at once: the same as
        :meth:`observe` for each ``(categories, items, ts)``, in that order, at a fraction of
        the cost (every rule the context matches is updated once)."""
        known = signals_of(signals)
        rows: list[tuple[float, list[tuple[str, float]], list[tuple[str, float]]]] = []
        for categories, items, ts in outcomes:
            cats = _weights(categories)
            its = _weights(items)
            if not cats and not its:
                continue
            total = sum(cats.values()) or 1.0
            cs = [(name, v / total) for name, v in cats.items()]
            total = sum(its.values()) or 1.0
            rows.append((ts, cs, [(name, v / total) for name, v in its.items()]))
        if not rows:
            return
        self.sessions += len(rows)
        latest = max(r[0] for r in rows)
        if latest > self.now:
            self.now = latest
        hl = self.half_life_s
        cap = 2 * self.max_entries
        rules = self.rules
        tops = self._tops
        for combo in COMBOS:
            key: RuleKey = ()
            for name in combo:
                value = known.get(name)
                if value is None:
                    break
                key += ((name, value),)
            else:
                rule = rules.get(key)
                if rule is None:
                    rule = rules[key] = _Rule(rows[0][0])
                tops.pop(key, None)
                cats_t, items_t = rule.cats, rule.items
                for row_ts, row_cats, row_items in rows:
                    w = rule.weight_at(row_ts, hl)
                    rule.mass += w
                    for name, share in row_cats:
                        cats_t[name] = cats_t.get(name, 0.0) + w * share
                    for name, share in row_items:
                        items_t[name] = items_t.get(name, 0.0) + w * share
                    if len(cats_t) > cap:
                        _prune(cats_t, self.max_entries)
                    if len(items_t) > cap:
                        _prune(items_t, self.max_entries)
        if len(self.rules) > self.max_rules + self.max_rules // 4:
            self._evict()

    def merge(self, other: EdgeModel) -> None:
        """Add another model's evidence (say, another shard's) into this one."""
        hl = self.half_life_s
        now = max(self.now, other.now)
        for key, theirs in other.rules.items():
            mine = self.rules.get(key)
            if mine is None:
                mine = self.rules[key] = _Rule(now)
            self._tops.pop(key, None)
            f = 0.5 ** ((mine.ts - theirs.ts) / hl)  # theirs, relative to mine's reference
            mine.mass += theirs.mass * f
            for table, src in ((mine.cats, theirs.cats), (mine.items, theirs.items)):
                for k, v in src.items():
                    table[k] = table.get(k, 0.0) + v * f
                _prune(table, self.max_entries)
        self.now = now
        self.sessions += other.sessions
        if len(self.rules) > self.max_rules:
            self._evict()

    def _support(self, rule: _Rule) -> float:
        return rule.mass * math.pow(0.5, (self.now - rule.ts) / self.half_life_s)

    def _evict(self) -> None:
        # everyone's rule () sorts first: it is never evicted
        ranked = sorted(
            self.rules.items(), key=lambda kv: (kv[0] != (), -self._support(kv[1]), kv[0])
        )
        self.rules = dict(ranked[: self.max_rules])
        self._tops = {k: v for k, v in self._tops.items() if k in self.rules}

    # -- publishing -----------------------------------------------------------------------------

    def document(self) -> dict[str, Any]:
        """The versioned rules document ``rtp.js`` evaluates (at most ``max_gzip_bytes`` gz)."""
        published: list[tuple[int, float, RuleKey, dict[str, Any]]] = []
        tops = self._tops
        for key, rule in self.rules.items():
            support = self._support(rule)
            if support < self.min_support or not rule.cats and not rule.items:
                continue
            got = tops.get(key)
            if got is None:
                got = tops[key] = (
                    _top(rule.cats, self.top_categories),
                    _top(rule.items, self.top_items),
                )
            cats = list(got[0])
            entry: dict[str, Any] = {"when": dict(key)}
            if cats:
                entry["hero"] = f"category:{cats[0]}"
            entry["categories"] = cats
            entry["items"] = list(got[1])
            entry["message"] = (
                f"Welcome! Discover our {cats[0]}" if cats else "Welcome! Our picks for you"
            )
            entry["reason"] = _reason_of(key)
            entry["support"] = round(support, 3)
            published.append((len(key), support, key, entry))
        # keep the general rules first (they cover every visitor), then the best supported;
        # publish the kept ones most specific first (the first match wins in rtp.js)
        published.sort(key=lambda t: (t[0], -t[1], t[2]))
        kept = sorted(published[: self.doc_rules], key=lambda t: (-t[0], -t[1], t[2]))
        rules = [entry for _, _, _, entry in kept]
        while True:
            doc = self._wrap(rules)
            if not rules or len(gzip.compress(orjson.dumps(doc), mtime=0)) <= self.max_gzip_bytes:
                return doc
            weakest = min(range(len(rules)), key=lambda n: (rules[n]["support"], -n))
            del rules[weakest]

    def _wrap(self, rules: list[dict[str, Any]]) -> dict[str, Any]:
        body = orjson.dumps(rules, option=orjson.OPT_SORT_KEYS)
        return {
            "v": EDGE_FORMAT,
            "kind": "rtp.edge",
            "version": hashlib.blake2b(body, digest_size=4).hexdigest(),
            "ts": self.now,
            "half_life_s": self.half_life_s,
            "sessions": self.sessions,
            "dayparts": [[name, start] for name, start in DAYPARTS],
            "rules": rules,
        }

    def __repr__(self) -> str:
        return (
            f"EdgeModel(half_life_s={self.half_life_s!r}, rules={len(self.rules)}, "
            f"sessions={self.sessions}, now={self.now!r})"
        )


@functools.lru_cache(maxsize=4096)
def _reason_of(key: RuleKey) -> str:
    return reason_for(dict(key))


def reason_for(when: Mapping[str, str]) -> str:
    """The sentence a visitor reads for a rule: "Popular with visitors from search on mobile"."""
    words: list[str] = []
    referral = when.get("referral")
    if referral:
        words.append(_REFERRAL_WORDS.get(referral, f"from {referral}"))
    if when.get("campaign"):
        words.append(f"from our {when['campaign']} campaign")
    if when.get("device"):
        words.append(_DEVICE_WORDS.get(when["device"], f"on {when['device']}"))
    if when.get("country"):
        words.append(f"in {when['country']}")
    if when.get("daypart"):
        words.append(_DAYPART_WORDS.get(when["daypart"], f"in the {when['daypart']}"))
    if not words:
        return "Popular with our visitors"
    return "Popular with visitors " + " ".join(words)


def empty_document() -> dict[str, Any]:
    """The document of a model that has seen nothing: no rules (pages keep static content)."""
    return EdgeModel().document()


def match(doc: Mapping[str, Any], signals: Mapping[str, Any]) -> dict[str, Any] | None:
    """The rule ``rtp.js`` would pick for a visitor with these signals (``None``: no rule).

    The reference implementation of the browser's evaluation, for tests and server-side use.
    """
    known = signals_of(signals)
    for rule in doc.get("rules") or ():
        when = rule.get("when") or {}
        if all(known.get(name) == value for name, value in when.items()):
            return dict(rule)
    return None
