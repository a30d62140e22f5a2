"""Session neighbourhoods: the past sessions most similar to the current one.

Session-kNN, V-SKNN and STAN (:mod:`rtp.evaluation.baselines`) recommend the items of the past
sessions that share the most (recency-weighted) items with the current session. This is the
same idea as a candidate generator of the model view: built from the item records every view
replays (so every worker holds the same index at the same tick), bounded, and cheap enough to
ask on every decision.

**Sessions from item records.** An item record carries the session's previous items (its last
``KEY_ITEMS``, most recent last, unique: ``Session.recent``), not the session's id. The index
chains them: a record ``(prev, item)`` continues the session whose last record left it with
``prev`` as its last items (:func:`next_key`), and a record whose ``prev`` no session ends with
starts one (with ``prev`` and ``item``). A session's first record (no ``prev``) and those of users
who opted out (never a ``prev``) add nothing: a one-item session has no neighbour to offer.
Two open sessions whose last ``KEY_ITEMS`` items are the same share a key; the later one takes
it (deterministic: records are applied in the canonical order).

**Scoring** (STAN's three decays, :meth:`SessionIndex.neighbours`): the current session's last
``QUERY`` items weigh ``exp(-j / LAMBDA_SPW)`` (``j`` = 0 for the item the user is on); a past
session that holds some of them (among the ``PER_ITEM`` most recent sessions of each) scores the
sum of their weights over ``sqrt(its length)``, times ``exp(-age / LAMBDA_SNH)``; the ``K`` best
are the neighbours; an item of a neighbour scores the neighbour's similarity times
``exp(-d / LAMBDA_INH)``, ``d`` its distance in the neighbour from the most recent item the
neighbour shares with the current session.

**Bounds.** At most ``max_len`` items per session (later ones are not added), ``PER_ITEM``
sessions remembered per item, ``max_sessions`` sessions (least recently extended go first) and
none untouched for longer than the model's item time to live (:meth:`SessionIndex.evict`).

>>> ix = SessionIndex()
>>> ix.add(("a",), "b", 0.0); ix.add(("a", "b"), "c", 1.0)  # one session: a, b, c
>>> ix.add(("x",), "b", 2.0); ix.add(("x", "b"), "d", 3.0)  # another: x, b, d
>>> [i for i, _ in ix.neighbours(["y", "b"], now=4.0)]  # the more recent session first
['b', 'x', 'd', 'a', 'c']

The current session's own items (``b``) come too: the caller decides what to do with them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence

KEY_ITEMS = 5  # items a record's ``prev`` holds (rtp.engine.users.WINDOW)
QUERY = 3  # the current session's last items that find neighbours
PER_ITEM = 40  # most recent sessions remembered per item
K = 30  # neighbours per decision
N = 30  # items returned per decision
LAMBDA_SPW = 1.02  # STAN: weight of the current session's items by position
LAMBDA_SNH = 5 * 86_400.0  # STAN: decay of a neighbour's age, seconds
LAMBDA_INH = 2.05  # STAN: decay by distance inside a neighbour
_POS_W = tuple(math.exp(-j / LAMBDA_SPW) for j in range(16))
_NEAR = tuple(math.exp(-d / LAMBDA_INH) for d in range(64))


def next_key(prev: Sequence[str], item: str) -> tuple[str, ...]:
    """The ``prev`` the session's next record will carry after ``(prev, item)``.

    >>> next_key(("a", "b", "c", "d", "e"), "f")
    ('b', 'c', 'd', 'e', 'f')
    >>> next_key(("a", "b", "c"), "a")  # a re-view moves the item to the end
    ('b', 'c', 'a')
    """
    if item in prev:
        return tuple([p for p in prev if p != item]) + (item,)
    key = tuple(prev) + (item,)
    return key[-KEY_ITEMS:] if len(key) > KEY_ITEMS else key


class SessionIndex:
    """Past sessions chained from item records, and their neighbourhoods (module docstring)."""

    def __init__(self, max_sessions: int = 200_000, max_len: int = 30) -> None:
        self.max_sessions = max_sessions
        self.max_len = max_len
        # session -> item -> position (1-based, first occurrence); least recently extended first
        self.items: dict[int, dict[str, int]] = {}
        self.ts: dict[int, float] = {}  # session -> event time of its last record
        self.key: dict[int, tuple[str, ...]] = {}  # session -> the prev its next record carries
        self.by_key: dict[tuple[str, ...], int] = {}
        self.index: dict[str, deque[int]] = {}  # item -> its most recent sessions, newest last
        self.next_id = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, prev: Sequence[str], item: str, ts: float) -> None:
        """Learn one item record (``prev``: the session's previous items, most recent last)."""
        if not prev:
            return
        key = prev if isinstance(prev, tuple) else tuple(prev)
        sid = self.by_key.pop(key, None)
        items = self.items
        if sid is None:
            sid = self.next_id
            self.next_id += 1
            got: dict[str, int] = {}
            for p in key:
                if p not in got:
                    got[p] = len(got) + 1
                    self._index(p, sid)
        else:
            got = items.pop(sid)  # re-inserted last: the order is least recently extended first
        if item not in got and len(got) < self.max_len:
            got[item] = len(got) + 1
            self._index(item, sid)
        items[sid] = got
        self.ts[sid] = ts
        nk = next_key(key, item)
        self.key[sid] = nk
        self.by_key[nk] = sid

    def _index(self, item: str, sid: int) -> None:
        q = self.index.get(item)
        if q is None:
            self.index[item] = deque((sid,), maxlen=PER_ITEM)
        else:
            q.append(sid)

    def slot(self, prev: Sequence[str], item: str) -> int | None:
        """The session the record ``(prev, item)`` left open, if the index holds it."""
        if not prev:
            return None
        return self.by_key.get(next_key(prev, item))

    def neighbours(
        self, recent: Sequence[str], now: float, own: int | None = None, n: int = N
    ) -> list[tuple[str, float]]:
        """The ``n`` best items of the neighbour sessions of a session whose items are
        ``recent`` (unique, most recent last), best first, with their scores; ``own``: the
        current session's own entry, never its neighbour."""
        length = len(recent)
        if not length:
            return []
        index = self.index
        store = self.items
        dots: dict[int, float] = {}
        get = dots.get
        for j in range(QUERY if length > QUERY else length):
            sids = index.get(recent[length - 1 - j])
            if sids is None:
                continue
            w = _POS_W[j]
            for sid in sids:
                dots[sid] = get(sid, 0.0) + w
        if own is not None:
            dots.pop(own, None)
        if not dots:
            return []
        times = self.ts
        scored: list[tuple[float, int]] = []
        exp = math.exp
        for sid, dot in dots.items():
            other = store.get(sid)
            if other is None:  # evicted since the item's deque held it
                continue
            age = now - times[sid]
            sim = dot / math.sqrt(len(other))
            if age > 0.0:
                sim *= exp(-age / LAMBDA_SNH)
            scored.append((sim, sid))
        best = sorted(scored, reverse=True)[:K] if len(scored) > K else scored
        scores: dict[str, float] = {}
        sget = scores.get
        near = _NEAR
        last = recent[length - 1]
        for sim, sid in best:
            other = store[sid]
            anchor = other.get(last)
            if anchor is None:
                for j in range(1, QUERY if length > QUERY else length):
                    anchor = other.get(recent[length - 1 - j])
                    if anchor is not None:
                        break
            a = anchor or 1
            for it, q in other.items():
                d = q - a if q >= a else a - q
                scores[it] = sget(it, 0.0) + sim * (near[d] if d < 64 else 0.0)
        return sorted(scores.items(), key=_second, reverse=True)[:n]

    def evict(self, before: float) -> int:
        """Drop sessions not extended since event time ``before``, and, once there are more
        than ``max_sessions``, the least recently extended down to 90 % of it; how many."""
        items, times = self.items, self.ts
        old: list[int] = []
        over = len(items) - self.max_sessions
        if over > 0:
            over = len(items) - int(self.max_sessions * 0.9)
        for sid in items:  # least recently extended first
            if times[sid] >= before and len(old) >= over:
                break
            old.append(sid)
        if not old:
            return 0
        touched: dict[str, None] = {}
        for sid in old:
            for it in items.pop(sid):
                touched[it] = None
            del times[sid]
            k = self.key.pop(sid)
            if self.by_key.get(k) == sid:
                del self.by_key[k]
        index = self.index
        for it in touched:
            q = index.get(it)
            if q is None:
                continue
            alive = [s for s in q if s in items]
            if not alive:
                del index[it]
            elif len(alive) < len(q):
                index[it] = deque(alive, maxlen=PER_ITEM)
        return len(old)


def _second(kv: tuple[str, float]) -> float:
    return kv[1]


def own_slot(
    ix: SessionIndex,
    fresh: Iterable[tuple[int, float, str, float, tuple[str, ...]]],
    view_tick: int,
) -> int | None:
    """The index's entry of a session whose latest records are ``fresh`` (``Session.fresh``),
    as of a view that holds every tick up to ``view_tick``."""
    slot = None
    for tick, _ts, item, _w, prev in fresh:
        if tick > view_tick:
            break
        if prev:
            slot = ix.slot(prev, item)
    return slot
