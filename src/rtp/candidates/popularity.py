"""Popularity: trending items, category-popular items and the catalogue the stream has shown.

Decayed counts per item (:mod:`rtp.candidates.decay`), with each item's category and price as
the latest event stated them. Top lists (``trending``, ``cat_top``) are refreshed at batch
boundaries from the previous top plus what the batch touched, which is exact because untouched
counts keep their relative order. Ties keep a deterministic order (the order items were touched
in), never the order of a hash.

:meth:`Popularity.evict` forgets items untouched for longer than a time to live, so the state
holds only what the stream still talks about.

>>> pop = Popularity(top_n=2)
>>> for item in ["a", "b", "a", "c"]:
...     pop.add(item, "shoes", None, 1.0, ts=0.0)
>>> pop.refresh()
>>> [i for i, _ in pop.trending]
['a', 'b']
>>> [i for i, _ in pop.top_of("shoes")]
['a', 'b', 'c']
"""

from __future__ import annotations

import heapq
from operator import itemgetter

from rtp.candidates.decay import REBASE_EXPONENT, anchor, rescale_factor

_second = itemgetter(1)


class Popularity:
    """Trending and category-popular items (decayed counts) and the catalogue seen so far."""

    def __init__(self, half_life_s: float = 3_600.0, top_n: int = 50, cat_top_n: int = 15) -> None:
        self.half_life_s = half_life_s
        self.top_n = top_n
        self.cat_top_n = cat_top_n
        self.ref: float | None = None
        self.score: dict[str, float] = {}
        self.cat_of: dict[str, str] = {}
        self.price_of: dict[str, float] = {}
        self.last: dict[str, float] = {}  # item -> last event time
        self.trending: list[tuple[str, float]] = []
        self.cat_top: dict[str, list[tuple[str, float]]] = {}
        self._touched: dict[str, None] = {}
        self._touched_cats: dict[str, dict[str, None]] = {}
        self.new_items: dict[str, None] = {}  # first seen (or re-described) since the last drain

    def add(
        self, item: str, cat: str | None, price: float | None, weight: float, ts: float
    ) -> None:
        if self.ref is None:
            self.ref = anchor(ts, self.half_life_s)
        x = (ts - self.ref) / self.half_life_s
        if x >= REBASE_EXPONENT:  # the next span of the grid: rescale before floats overflow
            self.rebase(ts)
            x = (ts - self.ref) / self.half_life_s
        score = self.score
        w = weight * 2.0**x
        old = score.get(item)
        if old is None:
            score[item] = w
            self.new_items[item] = None
        else:
            score[item] = old + w
        self.last[item] = ts
        self._touched[item] = None
        if cat is not None:
            if self.cat_of.get(item) != cat:
                self.cat_of[item] = cat
                self.new_items[item] = None
            tc = self._touched_cats.get(cat)
            if tc is None:
                self._touched_cats[cat] = {item: None}
            else:
                tc[item] = None
        if price is not None and self.price_of.get(item) != price:
            self.price_of[item] = price
            self.new_items[item] = None

    def refresh(self) -> None:
        """Recompute the trending list from the previous top and what changed (a batch
        boundary). Category tops are refreshed lazily, when :meth:`top_of` asks for one."""
        score = self.score
        if self._touched:
            pool = dict.fromkeys(i for i, _ in self.trending)
            pool.update(self._touched)
            self.trending = heapq.nlargest(
                self.top_n, ((i, score[i]) for i in pool if i in score), key=_second
            )
            self._touched = {}

    def top_of(self, cat: str) -> list[tuple[str, float]] | None:
        """The category's most popular items, strongest first (refreshed when asked for, from
        its previous top and the items touched since: exact, since counts only grow)."""
        items = self._touched_cats.pop(cat, None)
        if items is None:
            return self.cat_top.get(cat)
        score = self.score
        old = self.cat_top.get(cat)
        n = self.cat_top_n
        if old:
            if len(old) >= n:
                # an untouched item keeps its place: the top changes only if a touched item
                # is in it or now beats its last entry
                floor = old[-1][1]
                members = {i for i, _ in old}
                if not any(i in members or score.get(i, 0.0) > floor for i in items):
                    return old
            pool = dict.fromkeys(i for i, _ in old)
            pool.update(items)
        else:
            pool = items
        top = heapq.nlargest(
            n,
            ((i, score[i]) for i in pool if i in score and self.cat_of.get(i) == cat),
            key=_second,
        )
        if top:
            self.cat_top[cat] = top
        else:
            self.cat_top.pop(cat, None)
        return top or None

    def drain_new_items(self) -> list[str]:
        out = list(self.new_items)
        self.new_items = {}
        return out

    def trending_items(self, n: int) -> list[str]:
        return [i for i, _ in self.trending[:n]]

    def rebase(self, ts: float) -> None:
        got = rescale_factor(self.ref, ts, self.half_life_s)
        if got is None:
            return
        f, new_ref = got
        self.score = {i: w * f for i, w in self.score.items()}
        self.trending = [(i, w * f) for i, w in self.trending]
        self.cat_top = {c: [(i, w * f) for i, w in lst] for c, lst in self.cat_top.items()}
        self.ref = new_ref

    def evict(self, before: float) -> list[str]:
        """Forget items last seen before event time ``before``; the items dropped."""
        old = [i for i, t in self.last.items() if t < before]
        if not old:
            return old
        gone = set(old)
        for i in old:
            del self.last[i]
            self.score.pop(i, None)
            self.cat_of.pop(i, None)
            self.price_of.pop(i, None)
            self.new_items.pop(i, None)
            self._touched.pop(i, None)
        self.trending = [kv for kv in self.trending if kv[0] not in gone]
        for items in self._touched_cats.values():
            for i in old:
                items.pop(i, None)
        for cat in list(self.cat_top):
            lst = [kv for kv in self.cat_top[cat] if kv[0] not in gone]
            if lst:
                self.cat_top[cat] = lst
            else:
                del self.cat_top[cat]
        return old

    def __len__(self) -> int:
        return len(self.score)
