"""Content feeds: fresh, topic-diverse lists with editorial picks (pure functions, no I/O).

A content site's ``feed`` placement starts from the ranker's relevance scores of candidate
articles and applies, in this order:

1. **Freshness**: an article published ``age`` hours ago scores ``max(score, 0) *
   2 ** (-age / half_life_h)`` (:func:`freshness`): an article loses half its score every
   ``half_life_h`` hours. An article without a publish time is not decayed; one "published" in
   the future (clock skew) has age 0. Scores should be relevances >= 0 (probabilities, counts):
   a negative score counts as 0, so it would not keep its order by multiplication.
2. **Editorial picks** (:class:`EditorialPicks`, changeable at run time: the flow reads their
   JSON form from Redis and parses it with :meth:`EditorialPicks.from_json`). A pick is an item
   with a guaranteed 1-based ``position``, or one that must appear ``within`` the first N slots
   (default: the configuration's ``slots``). Picks are placed first and never dropped for
   diversity; they carry the reason code :data:`EDITORS_PICK`. A pick with ``until`` in the
   past, or in ``exclude`` (already read), is not shown.
3. **Diversity**, on each article's *primary* topic (the first of its topics): at most
   ``max_topic_share`` of the feed's ``n`` slots (:meth:`FeedRules.topic_cap`, at least one)
   from one topic, and at least ``min_topics`` distinct topics when the candidates allow it.
   Articles without topics form one group (``""``) that is capped like a topic but never counts
   as a distinct topic.

The ranked slots are filled greedily, slot by slot, with the best admissible article (highest
fresh score, then the earlier candidate): admissible means its topic is below the cap; when the
topics still missing are as many as the free slots left, only an article of a new topic is. A
``within`` pick goes in the first slot where it outscores the best admissible article, and at
the latest where its deadline (and the other pending picks' deadlines) require it (earliest
deadline first). Caps are a partition constraint, so the greedy fills every slot whenever a
full feed within the caps exists, and reaches ``min(min_topics, topics available)`` distinct
topics (see :func:`build_feed` for the exact guarantee). When the caps leave slots empty,
``fill=True`` (the default) fills them with the best remaining articles regardless of topic
and marks the feed ``relaxed``.

The result is a :class:`Feed`: parallel lists ``items``, ``scores`` and ``codes`` (the shape of
``rtp.decisions.ranked.Ranked``: ``Ranked(feed.items, feed.scores, feed.codes)``).

>>> scores = {"a1": 0.9, "a2": 0.8, "a3": 0.7, "a4": 0.6, "a5": 0.5}
>>> hour = 3_600.0
>>> published = {"a1": 0.0, "a2": 10 * hour, "a3": 10 * hour, "a4": 10 * hour, "a5": 9 * hour}
>>> topics = {"a1": ["politics"], "a2": ["politics"], "a3": ["politics"], "a4": ["sports"],
...           "a5": ["film", "culture"]}
>>> picks = EditorialPicks.from_json('{"picks": [{"item": "a5", "position": 1}]}')
>>> rules = FeedRules(n=4, half_life_h=2.0, max_topic_share=0.5, min_topics=3)
>>> feed = build_feed(scores, published, topics, now=10 * hour, rules=rules, picks=picks)
>>> list(zip(feed.items, feed.codes))
[('a5', 'ed'), ('a2', 'feed'), ('a3', 'feed'), ('a4', 'feed')]
>>> feed.scores[0], feed.relaxed  # a5: 0.5 decayed over one hour at a 2-hour half-life
(0.354, False)
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "EDITORS_PICK",
    "FEED",
    "ITEM_REASONS",
    "STORAGE_CHARS",
    "EditorialPicks",
    "Feed",
    "FeedRules",
    "Pick",
    "PicksError",
    "build_feed",
    "freshness",
]

EDITORS_PICK = "ed"  # reason code of an editor's pick
FEED = "feed"  # default reason code of a ranked feed item
# Proposed additions to rtp.decisions.reasons (ITEM and CHAR), kept here until they move there.
ITEM_REASONS = {EDITORS_PICK: "an editor's pick", FEED: "fresh in the topics you read"}
STORAGE_CHARS = {EDITORS_PICK: "e", FEED: "n"}

MAX_PICKS = 100  # a configuration with more is rejected (the hot path stays bounded)
MAX_ID_CHARS = 128
SCORE_DIGITS = 3  # scores are rounded as stored
_UNKNOWN = ""  # the topic group of an article without topics


class PicksError(ValueError):
    """An editorial-picks configuration that cannot be used (the message says why)."""


@dataclass(frozen=True, slots=True)
class FeedRules:
    """The rules of one feed placement (stored as given)."""

    n: int = 20
    """Slots of the feed."""
    half_life_h: float | None = 6.0
    """Hours after which an article's score halves; None: no freshness decay."""
    max_topic_share: float = 0.4
    """At most this share of the ``n`` slots from one (primary) topic; 1.0: no cap."""
    min_topics: int = 3
    """At least this many distinct topics when the candidates allow it; 0 or 1: no rule."""
    fill: bool = True
    """Fill slots the caps leave empty with the best remaining articles (``Feed.relaxed``)."""
    code: str = FEED
    """Reason code of ranked items that the caller gives no code for."""

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"n must be positive, got {self.n!r}")
        if self.half_life_h is not None and not self.half_life_h > 0:
            raise ValueError(f"half_life_h must be positive or None, got {self.half_life_h!r}")
        if not 0.0 < self.max_topic_share <= 1.0:
            raise ValueError(f"max_topic_share must be in (0, 1], got {self.max_topic_share!r}")
        if self.min_topics < 0:
            raise ValueError(f"min_topics must be >= 0, got {self.min_topics!r}")

    def topic_cap(self) -> int:
        """Most slots one topic may take: ``floor(max_topic_share * n)``, at least 1.

        >>> FeedRules(n=20, max_topic_share=0.4).topic_cap(), FeedRules(n=4).topic_cap()
        (8, 1)
        """
        return max(1, math.floor(self.max_topic_share * self.n + 1e-9))


@dataclass(frozen=True, slots=True)
class Pick:
    """One editorial pick: an item at a 1-based ``position``, or ``within`` the first N slots
    (neither: within the configuration's ``slots``), shown until ``until`` (unix seconds)."""

    item: str
    position: int | None = None
    within: int | None = None
    until: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"item": self.item}
        for name in ("position", "within", "until"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        return d


@dataclass(frozen=True, slots=True)
class EditorialPicks:
    """The editorial picks of a feed, in priority order; ``slots`` is the default "within the
    first N slots" of a pick that has neither ``position`` nor ``within``.

    Its JSON form (what the flow reads from Redis)::

        {"picks": [{"item": "a1", "position": 2},
                   {"item": "a7", "within": 5, "until": 1730700000},
                   {"item": "a9"}],
         "slots": 3}

    Other top-level keys (``updated``, ``by`` ...) are ignored; a pick with an unknown key, a
    position below 1, an item listed twice or more than :data:`MAX_PICKS` picks is an error
    (:class:`PicksError`): the caller keeps the configuration it had.
    """

    picks: tuple[Pick, ...] = ()
    slots: int = 3

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any] | None) -> EditorialPicks:
        """Parse and validate the JSON form (bytes, text or decoded); None or empty: no picks.

        >>> EditorialPicks.from_json(b'{"picks": [{"item": "a1", "position": 2}], "slots": 2}')
        EditorialPicks(picks=(Pick(item='a1', position=2, within=None, until=None),), slots=2)
        >>> EditorialPicks.from_json('{"picks": [{"item": "a1", "postion": 2}]}')
        Traceback (most recent call last):
        ...
        rtp.decisions.feed.PicksError: pick 1: unknown key 'postion'
        """
        if data is None or (isinstance(data, (bytes, str)) and not data.strip()):
            return cls()
        if isinstance(data, (bytes, str)):
            try:
                data = orjson.loads(data)
            except orjson.JSONDecodeError as e:
                raise PicksError(f"not JSON: {e}") from None
        if not isinstance(data, Mapping):
            raise PicksError("the configuration is not a JSON object")
        slots = _positive_int(data.get("slots", 3), "slots")
        raw = data.get("picks", [])
        if not isinstance(raw, list):
            raise PicksError("'picks' is not a list")
        if len(raw) > MAX_PICKS:
            raise PicksError(f"{len(raw)} picks: at most {MAX_PICKS}")
        picks: list[Pick] = []
        seen: set[str] = set()
        for n, entry in enumerate(raw, start=1):
            pick = _parse_pick(entry, n)
            if pick.item in seen:
                raise PicksError(f"pick {n}: item {pick.item!r} is listed twice")
            seen.add(pick.item)
            picks.append(pick)
        return cls(tuple(picks), slots)

    def to_json(self) -> bytes:
        """The JSON form (:meth:`from_json` reads it back)."""
        return orjson.dumps({"picks": [p.to_dict() for p in self.picks], "slots": self.slots})

    def active(self, now: float) -> tuple[Pick, ...]:
        """The picks still to show at ``now``."""
        return tuple(p for p in self.picks if p.until is None or now < p.until)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PicksError(f"{what} {value!r} is not an integer >= 1")
    return value


_PICK_KEYS = frozenset({"item", "position", "within", "until"})


def _parse_pick(entry: Any, n: int) -> Pick:
    if not isinstance(entry, Mapping):
        raise PicksError(f"pick {n}: not a JSON object")
    for key in entry:
        if key not in _PICK_KEYS:
            raise PicksError(f"pick {n}: unknown key {key!r}")
    item = entry.get("item")
    if isinstance(item, int) and not isinstance(item, bool):
        item = str(item)
    if not isinstance(item, str) or not 0 < len(item) <= MAX_ID_CHARS:
        raise PicksError(f"pick {n}: item {item!r} is not a short id")
    position = entry.get("position")
    within = entry.get("within")
    if position is not None and within is not None:
        raise PicksError(f"pick {n}: give 'position' or 'within', not both")
    if position is not None:
        position = _positive_int(position, f"pick {n}: position")
    if within is not None:
        within = _positive_int(within, f"pick {n}: within")
    until = entry.get("until")
    if until is not None and (
        isinstance(until, bool) or not isinstance(until, (int, float)) or not math.isfinite(until)
    ):
        raise PicksError(f"pick {n}: until {until!r} is not unix seconds")
    return Pick(item, position, within, None if until is None else float(until))


@dataclass(slots=True)
class Feed:
    """A served feed: parallel lists of items, (fresh) scores and reason codes.

    ``relaxed`` says the topic cap was exceeded to fill the feed (``FeedRules.fill``);
    ``dropped`` lists active picks that could not be placed (a position beyond the feed, or
    more picks than slots).
    """

    items: list[str] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    codes: list[str] = field(default_factory=list)
    relaxed: bool = False
    dropped: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[str, float, str]]:
        return zip(self.items, self.scores, self.codes, strict=True)

    def __len__(self) -> int:
        return len(self.items)


def freshness(score: float, age_s: float, half_life_h: float | None) -> float:
    """``max(score, 0) * 2 ** (-age / half_life)``; no decay without a half-life; age >= 0.

    >>> freshness(0.8, 6 * 3_600.0, 6.0), freshness(0.8, -60.0, 6.0), freshness(-1.0, 0.0, 6.0)
    (0.4, 0.8, 0.0)
    """
    s = score if score > 0.0 else 0.0
    if half_life_h is None or age_s <= 0.0:
        return s
    return s * math.pow(2.0, -age_s / (half_life_h * 3_600.0))


_DEFAULT_RULES = FeedRules()


def _primary(topics: Sequence[str] | None) -> str:
    return topics[0] if topics else _UNKNOWN


def build_feed(
    scores: Mapping[str, float],
    published: Mapping[str, float],
    topics: Mapping[str, Sequence[str]],
    now: float,
    rules: FeedRules | None = None,
    picks: EditorialPicks | Sequence[Pick] = (),
    codes: Mapping[str, str] | None = None,
    exclude: Collection[str] = (),
) -> Feed:
    """The ``feed`` placement for candidates ``scores`` (item -> relevance) at time ``now``.

    :param published: item -> publish time (unix seconds); absent: not decayed.
    :param topics: item -> topics, the primary one first; absent or empty: no topic.
    :param picks: editorial picks (an :class:`EditorialPicks`, whose ``active(now)`` are used,
        or picks already chosen); a pick need not be a candidate (its score is then 0).
    :param rules: the feed's rules (default :class:`FeedRules` ()).
    :param codes: item -> reason code of ranked items (default ``rules.code``).
    :param exclude: items never to show (already read), picks included.

    Guarantees, with ``cap = rules.topic_cap()``: every placeable pick is in the feed, at its
    position (a later one wanting a taken position goes to the next free slot) or within its
    first N slots (when the picks' deadlines can all be met); the feed has ``min(n,
    candidates + picks)`` items whenever ``fill`` is on or the caps allow that many; no topic
    takes more than ``cap`` slots unless picks alone do or ``relaxed`` is set; and the feed
    holds at least ``min(min_topics, distinct topics of the picks and candidates, feed
    length)`` distinct primary topics.
    """
    if rules is None:
        rules = _DEFAULT_RULES
    n = rules.n
    half_life = rules.half_life_h
    cap = rules.topic_cap()
    code_of = codes.get if codes is not None else None
    default_code = rules.code
    pub = published.get
    top = topics.get

    # -- the picks: exact positions first, then "within N" picks pending with a deadline
    chosen = picks.active(now) if isinstance(picks, EditorialPicks) else tuple(picks)
    default_within = picks.slots if isinstance(picks, EditorialPicks) else 3
    slots: list[str | None] = [None] * n
    pick_items: set[str] = set()
    dropped: list[str] = []
    pending: list[tuple[int, int, str]] = []  # (deadline, order, item)
    for order, p in enumerate(chosen):
        if p.item in exclude or p.item in pick_items:
            continue
        pick_items.add(p.item)
        if p.position is None:
            pending.append((min(p.within or default_within, n), order, p.item))
            continue
        i = p.position - 1
        while i < n and slots[i] is not None:
            i += 1
        if i < n:
            slots[i] = p.item
        else:
            dropped.append(p.item)
    pending.sort()
    free = sum(1 for s in slots if s is None)
    if len(pending) > free:
        dropped += [it for _, _, it in pending[free:]]
        pending = pending[:free]
    pick_items.difference_update(dropped)

    def fresh(item: str) -> float:
        t = pub(item)
        return freshness(scores.get(item, 0.0), 0.0 if t is None else now - t, half_life)

    # -- ranked candidates: per primary topic, best first (ties: the earlier candidate)
    by_topic: dict[str, list[tuple[float, int, str]]] = {}
    for order, cand in enumerate(scores):
        if cand in pick_items or cand in exclude:
            continue
        by_topic.setdefault(_primary(top(cand)), []).append((-fresh(cand), order, cand))
    for queue in by_topic.values():
        queue.sort()
    head = dict.fromkeys(by_topic, 0)
    count: dict[str, int] = {}
    present: set[str] = set()
    for it in pick_items:
        t = _primary(top(it))
        count[t] = count.get(t, 0) + 1
        if t != _UNKNOWN:
            present.add(t)

    # how many distinct topics the feed must reach
    new_topics = len([t for t in by_topic if t != _UNKNOWN and t not in present])
    ranked_slots = free - len(pending)
    if rules.fill:
        placeable = sum(len(q) for q in by_topic.values())
    else:
        placeable = sum(min(len(q), max(0, cap - count.get(t, 0))) for t, q in by_topic.items())
    target = min(rules.min_topics, len(present) + min(new_topics, ranked_slots, placeable))

    def best(new_only: bool, capped: bool) -> str | None:
        found: tuple[float, int, str] | None = None
        found_topic = ""
        for t, queue in by_topic.items():
            h = head[t]
            if h >= len(queue):
                continue
            if new_only and (t == _UNKNOWN or t in present):
                continue
            if capped and count.get(t, 0) >= cap:
                continue
            if found is None or queue[h] < found:
                found, found_topic = queue[h], t
        if found is None:
            return None
        head[found_topic] += 1
        return found[2]

    relaxed = False
    free_after = [0] * (n + 1)  # free slots at index >= i (before ranked filling)
    for i in range(n - 1, -1, -1):
        free_after[i] = free_after[i + 1] + (slots[i] is None)
    for i in range(n):
        if slots[i] is not None:
            continue
        item: str | None = None
        if pending and any(
            # earliest deadline first: the k picks due by a deadline need every free slot
            # left before it (an overdue deadline has none left)
            k >= free_after[i] - free_after[deadline]
            for k, (deadline, _, _) in enumerate(pending, start=1)
        ):
            item = pending.pop(0)[2]
        if item is None:
            missing = target - len(present)
            left = free_after[i] - len(pending)
            new_only = missing > 0 and missing >= left
            candidate = best(new_only, capped=True)
            if candidate is None and new_only:
                candidate = best(False, capped=True)
            if pending:
                # a pick goes here if it outscores the best admissible article
                p_best = min(range(len(pending)), key=lambda k: (-fresh(pending[k][2]), k))
                if candidate is None or fresh(pending[p_best][2]) >= fresh(candidate):
                    if candidate is not None:
                        t = _primary(top(candidate))
                        head[t] -= 1  # put the article back
                    item = pending.pop(p_best)[2]
            if item is None:
                item = candidate
            if item is None and rules.fill:
                item = best(False, capped=False)
                relaxed = relaxed or item is not None
        if item is None:
            continue
        slots[i] = item
        if item not in pick_items:
            t = _primary(top(item))
            count[t] = count.get(t, 0) + 1
            if t != _UNKNOWN:
                present.add(t)

    out = Feed(relaxed=relaxed, dropped=dropped)
    for placed in slots:
        if placed is None:
            continue
        out.items.append(placed)
        out.scores.append(round(fresh(placed), SCORE_DIGITS))
        if placed in pick_items:
            out.codes.append(EDITORS_PICK)
        elif code_of is not None:
            out.codes.append(code_of(placed, default_code))
        else:
            out.codes.append(default_code)
    return out
