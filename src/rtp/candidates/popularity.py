"""Popularity: trending items, category-popular items and the catalogue the stream has shown.

Decayed counts per item (:mod:`rtp.candidates.decay`), with each item's category and price as
the latest event stated them, and its price band within its category (:meth:`Popularity.key_of`:
``$low``, ``$mid`` or ``$high`` against the mean log price of the category's items, as of the
item's latest event). Top lists (``trending``, ``cat_top``) are refreshed at batch
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

import math
from operator import itemgetter

from rtp.candidates.decay import REBASE_EXPONENT, anchor, rescale_factor

_second = itemgetter(1)
BAND_WIDTH = math.log(1.5)  # within x/÷ 1.5 of the category's geometric mean price: "$mid"
_NO_KEY: tuple[str | None, str | None] = (None, None)


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
        # categories whose top lost an item to another category since the last tick boundary:
        # rebuilt there from every item of theirs, all in one pass (an eviction rebuilds the
        # tops it cut at once)
        self._rescan: dict[str, None] = {}
        self.new_items: dict[str, None] = {}  # first seen (or re-described) since the last drain
        self.keys: dict[str, tuple[str | None, str | None]] = {}  # item -> (category, band)
        self._cat_logp: dict[str, list[float]] = {}  # category -> [sum of log prices, items]

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
            was = self.cat_of.get(item)
            if was != cat:
                self.cat_of[item] = cat
                self.new_items[item] = None
                if was is not None:  # it leaves that category's top: rebuilt at the boundary
                    top = self.cat_top.get(was)
                    if top and any(e[0] == item for e in top):
                        self._rescan[was] = None
            tc = self._touched_cats.get(cat)
            if tc is None:
                self._touched_cats[cat] = {item: None}
            else:
                tc[item] = None
        if price is not None:
            old_price = self.price_of.get(item)
            if old_price != price:
                self.price_of[item] = price
                self.new_items[item] = None
            if cat is not None and price > 0.0:
                self._band(item, cat, price, old_price)
        elif cat is not None and item not in self.keys:
            self.keys[item] = (cat, None)

    def _band(self, item: str, cat: str, price: float, old_price: float | None) -> None:
        """Update the category's mean log price with the item's price; the item's band."""
        lp = math.log(price)
        stats = self._cat_logp.get(cat)
        key = self.keys.get(item)
        if stats is None:
            stats = self._cat_logp[cat] = [0.0, 0.0]
        if key is None or key[0] != cat or key[1] is None:
            stats[0] += lp
            stats[1] += 1.0
        elif old_price is not None and old_price != price and old_price > 0.0:
            stats[0] += lp - math.log(old_price)
        d = lp - stats[0] / stats[1]
        band = "$low" if d < -BAND_WIDTH else "$high" if d > BAND_WIDTH else "$mid"
        if key is None or key[0] != cat or key[1] != band:
            self.keys[item] = (cat, band)

    def key_of(self, item: str) -> tuple[str | None, str | None]:
        """``(category, price band)`` of ``item`` (``None`` where unknown)."""
        return self.keys.get(item, _NO_KEY)

    def refresh(self) -> None:
        """Recompute the trending list from the previous top and what changed (a batch
        boundary), and rebuild the category tops that lost an item to another category since
        the last one. The other category tops are refreshed lazily, when :meth:`top_of` asks."""
        score = self.score
        if self._touched:
            pool = dict.fromkeys(i for i, _ in self.trending)
            pool.update(self._touched)
            self.trending = sorted(
                [(i, score[i]) for i in pool if i in score], key=_second, reverse=True
            )[: self.top_n]
            self._touched = {}
        if self._rescan:
            self._rebuild(self._rescan)

    def _rebuild(self, cats: dict[str, None]) -> None:
        """The tops of ``cats`` from every item of theirs, in one pass over the catalogue (a
        tick boundary, or an eviction: so each view rebuilds them at the same point of the
        stream, whenever it asks)."""
        pools: dict[str, list[tuple[str, float]]] = {c: [] for c in cats}
        score = self.score
        get = pools.get
        for i, c in self.cat_of.items():
            pool = get(c)
            if pool is not None and i in score:
                pool.append((i, score[i]))
        for c, pool in pools.items():
            self._touched_cats.pop(c, None)
            self._store_top(c, pool)
        self._rescan = {}

    def top_of(self, cat: str) -> list[tuple[str, float]] | None:
        """The category's most popular items, strongest first, refreshed when asked for: from
        its previous top and the items touched since (exact, since counts only grow and an
        untouched item keeps its score). A top that lost an item to another category or to
        eviction was rebuilt from every item of its category at the tick boundary, so the
        answer never depends on when a view asked before."""
        if self._rescan:  # not at a tick boundary yet (the flow never asks then)
            self._rebuild(self._rescan)
        items = self._touched_cats.pop(cat, None)
        if items is None:
            return self.cat_top.get(cat)
        score = self.score
        cat_of = self.cat_of
        old = self.cat_top.get(cat)
        n = self.cat_top_n
        # the pool in its tie order: the old top's items, then the touched ones it lacked; an
        # untouched entry keeps the score it has (no lookups), a touched one is looked up
        pool: list[tuple[str, float]] = []
        changed = False
        if old:
            for entry in old:
                i = entry[0]
                if i in items:
                    changed = True
                    if i in score and cat_of.get(i) == cat:
                        pool.append((i, score[i]))
                else:
                    pool.append(entry)
            floor = old[-1][1] if len(old) >= n else float("-inf")
            members = {e[0] for e in old} if changed else ()
            low: list[tuple[str, float]] = []  # at or under a full top's floor: they enter only
            for i in items:  # the places its leavers free
                if i not in members:
                    w = score.get(i)
                    if w is not None and cat_of.get(i) == cat:
                        if w > floor:
                            pool.append((i, w))
                            changed = True
                        else:
                            low.append((i, w))
            if not changed:
                return old
            pool += low
        else:
            for i in items:
                w = score.get(i)
                if w is not None and cat_of.get(i) == cat:
                    pool.append((i, w))
        return self._store_top(cat, pool)

    def _store_top(self, cat: str, pool: list[tuple[str, float]]) -> list[tuple[str, float]] | None:
        top = sorted(pool, key=_second, reverse=True)[: self.cat_top_n]
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
            self.keys.pop(i, None)
            self.new_items.pop(i, None)
            self._touched.pop(i, None)
        self.trending = [kv for kv in self.trending if kv[0] not in gone]
        for items in self._touched_cats.values():
            for i in old:
                items.pop(i, None)
        lost: dict[str, None] = {}
        for cat in list(self.cat_top):
            top = self.cat_top[cat]
            lst = [kv for kv in top if kv[0] not in gone]
            if len(lst) < len(top):
                lost[cat] = None  # what it lost, the category's next items replace
            if lst:
                self.cat_top[cat] = lst
            else:
                del self.cat_top[cat]
        if lost:
            self._rescan.update(lost)
            self._rebuild(self._rescan)
        return old

    def __len__(self) -> int:
        return len(self.score)
