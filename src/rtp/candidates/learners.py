"""Stage one: candidate generators learned incrementally from the stream.

- :class:`CoVisitation`: item-to-item neighbours from co-visits within sessions, weighted by event
  type (views < wishlist < carts < purchases) and by distance in the session, decayed in event
  time, bounded to the top ``k`` neighbours per item.
- :class:`Popularity`: trending items and category-popular items (decayed counts), plus the item
  catalogue the stream has shown (category and price of each item).

Decay uses inflation instead of touching every count: an event at time ``ts`` adds
``weight * 2 ** ((ts - ref) / half_life)``; all counts share the same factor, so rankings are the
same as with explicit decay, and :meth:`rebase` rescales everything once the exponent grows large.
Top lists are refreshed at batch boundaries from the previous top plus what the batch touched,
which is exact because untouched counts keep their relative order.

>>> cv = CoVisitation(k=5)
>>> for _ in range(3):
...     cv.add(["a"], "b", 1.0, ts=0.0)
>>> cv.add(["a"], "c", 1.0, ts=0.0)
>>> [n for n, _ in cv.top("a", 2)]
['b', 'c']
"""

from __future__ import annotations

import heapq
from operator import itemgetter

_second = itemgetter(1)
REBASE_EXPONENT = 500.0


def rescale_factor(ref: float | None, ts: float, half_life_s: float) -> float | None:
    """The factor that brings counts inflated since ``ref`` back to scale at ``ts``, or
    ``None`` while the inflation exponent is still small."""
    if ref is None:
        return None
    x = (ts - ref) / half_life_s
    return 2.0**-x if x >= REBASE_EXPONENT else None


class CoVisitation:
    """Bounded, decayed item-to-item co-visitation neighbours."""

    def __init__(
        self, k: int = 30, half_life_s: float = 6 * 3_600.0, window: int = 5, backward: float = 0.5
    ) -> None:
        self.k = k
        self.half_life_s = half_life_s
        self.window = window
        self.backward = backward
        self.ref: float | None = None
        self.nb: dict[str, dict[str, float]] = {}
        self._grown: set[str] = set()
        self._cache: dict[str, list[tuple[str, float]]] = {}

    def add(self, prev: list[str], item: str, weight: float, ts: float) -> None:
        """Pair ``item`` with the session's previous items (most recent last)."""
        if not prev:
            return
        if self.ref is None:
            self.ref = ts
        x = (ts - self.ref) / self.half_life_s
        if x > REBASE_EXPONENT:  # a long gap in event time: rescale before floats overflow
            self.rebase(ts)
            x = 0.0
        inflate = weight * 2.0**x
        nb = self.nb
        cache = self._cache
        limit = 2 * self.k
        back = self.backward
        dist = 1
        for p in reversed(prev[-self.window :]):
            if p == item:
                continue
            w = inflate / dist
            dist += 1
            d = nb.get(p)
            if d is None:
                nb[p] = {item: w}
            else:
                d[item] = d.get(item, 0.0) + w
                if len(d) > limit:
                    self._grown.add(p)
            cache.pop(p, None)
            d = nb.get(item)
            if d is None:
                nb[item] = {p: w * back}
            else:
                d[p] = d.get(p, 0.0) + w * back
                if len(d) > limit:
                    self._grown.add(item)
            cache.pop(item, None)

    def top(self, item: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` strongest neighbours of ``item``, strongest first (cached until it changes)."""
        lst = self._cache.get(item)
        if lst is None:
            d = self.nb.get(item)
            if not d:
                return []
            lst = sorted(d.items(), key=_second, reverse=True)[: self.k]
            self._cache[item] = lst
        return lst[:n]

    def prune(self) -> None:
        """Keep the top ``k`` neighbours of items whose lists grew (a batch boundary)."""
        nb = self.nb
        k = self.k
        for item in self._grown:
            d = nb.get(item)
            if d is not None and len(d) > k:
                nb[item] = dict(heapq.nlargest(k, d.items(), key=_second))
                self._cache.pop(item, None)
        self._grown.clear()

    def rebase(self, ts: float) -> None:
        """Rescale counts when the inflation exponent grows large (keeps floats finite)."""
        f = rescale_factor(self.ref, ts, self.half_life_s)
        if f is None:
            return
        self.nb = {i: {j: w * f for j, w in d.items()} for i, d in self.nb.items()}
        self._cache.clear()
        self.ref = ts

    def __len__(self) -> int:
        return len(self.nb)


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
        self.trending: list[tuple[str, float]] = []
        self.cat_top: dict[str, list[tuple[str, float]]] = {}
        self._touched: set[str] = set()
        self._touched_cats: dict[str, set[str]] = {}
        self.new_items: list[str] = []  # items first seen (or re-priced) since the last drain

    def add(
        self, item: str, cat: str | None, price: float | None, weight: float, ts: float
    ) -> None:
        if self.ref is None:
            self.ref = ts
        x = (ts - self.ref) / self.half_life_s
        if x > REBASE_EXPONENT:  # a long gap in event time: rescale before floats overflow
            self.rebase(ts)
            x = 0.0
        score = self.score
        w = weight * 2.0**x
        old = score.get(item)
        if old is None:
            score[item] = w
            self.new_items.append(item)
        else:
            score[item] = old + w
        self._touched.add(item)
        if cat is not None:
            if self.cat_of.get(item) != cat:
                self.cat_of[item] = cat
                if old is not None:
                    self.new_items.append(item)
            tc = self._touched_cats.get(cat)
            if tc is None:
                self._touched_cats[cat] = {item}
            else:
                tc.add(item)
        if price is not None and self.price_of.get(item) != price:
            self.price_of[item] = price
            if old is not None:
                self.new_items.append(item)

    def refresh(self) -> None:
        """Recompute the top lists from the previous tops and what changed (a batch boundary)."""
        score = self.score
        if self._touched:
            pool = self._touched.union(i for i, _ in self.trending)
            self.trending = heapq.nlargest(self.top_n, ((i, score[i]) for i in pool), key=_second)
            self._touched = set()
        n = self.cat_top_n
        cat_top = self.cat_top
        for cat, items in self._touched_cats.items():
            old = cat_top.get(cat)
            if old:
                if len(old) >= n:
                    # counts only grow (inflation), so an untouched item keeps its place: the
                    # top changes only if a touched item is in it or now beats its last entry
                    floor = old[-1][1]
                    members = {i for i, _ in old}
                    if not any(i in members or score[i] > floor for i in items):
                        continue
                items.update(i for i, _ in old)
            if len(items) == 1:
                (only,) = items
                cat_top[cat] = [(only, score[only])]
                continue
            cat_top[cat] = heapq.nlargest(n, ((i, score[i]) for i in items), key=_second)
        self._touched_cats = {}

    def drain_new_items(self) -> list[str]:
        out = self.new_items
        self.new_items = []
        return out

    def trending_items(self, n: int) -> list[str]:
        return [i for i, _ in self.trending[:n]]

    def rebase(self, ts: float) -> None:
        f = rescale_factor(self.ref, ts, self.half_life_s)
        if f is None:
            return
        self.score = {i: w * f for i, w in self.score.items()}
        self.trending = [(i, w * f) for i, w in self.trending]
        self.cat_top = {c: [(i, w * f) for i, w in lst] for c, lst in self.cat_top.items()}
        self.ref = ts
