"""Item-to-item co-visitation: which items sessions visit together.

Each event pairs its item with the session's previous items (a window of the last ``window``),
weighted by event type (views < wishlist < carts < purchases, the caller's ``weight``) and by
distance in the session, decayed in event time (:mod:`rtp.candidates.decay`), and bounded to the
top ``k`` neighbours per item (lists are pruned at batch boundaries once they pass ``2 k``).
A pair adds ``w`` to the forward link ``prev -> item`` and ``w * backward`` to the link back.

Bounded in time as well: :meth:`CoVisitation.evict` drops the lists of items untouched for longer
than a time to live, so the model holds only items the stream still talks about.

Two hops (:meth:`CoVisitation.top2`): the neighbours of an item's strongest neighbours that are
not its own neighbours, each weighted by the product of the two links (each relative to its
list's strongest). Sparse data leave most lists short; the second hop fills a decision's slots
with items one step further instead of with what is merely popular (docs/quality.md). A two-hop
list is computed when asked for and kept until its item's list or the list of one of the
neighbours it went through changes (checked at batch boundaries, :meth:`CoVisitation.prune`),
so it is always what the current lists give, whenever it is asked for (every model view holds
the same ones at the same tick).

>>> cv = CoVisitation(k=5)
>>> for _ in range(3):
...     cv.add(["a"], "b", 1.0, ts=0.0)
>>> cv.add(["a"], "c", 1.0, ts=0.0)
>>> [n for n, _ in cv.top("a", 2)]
['b', 'c']
>>> cv.add(["c"], "d", 1.0, ts=0.0); cv.prune()
>>> [n for n, _ in cv.top2("a", 5)]  # a - c - d
['d']
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from operator import itemgetter

from rtp.candidates.decay import REBASE_EXPONENT, anchor, rescale_factor

_second = itemgetter(1)
HOP1 = 10  # neighbours of an item whose own neighbours make its two-hop list
HOP2 = 10  # neighbours taken from each of them
HOP_N = 20  # length of a two-hop list


class CoVisitation:
    """Bounded, decayed item-to-item co-visitation neighbours.

    ``owns`` (optional) restricts the lists this instance keeps to the items it owns (an item
    shard keeps only its own items' lists; a model view keeps them all).
    """

    def __init__(
        self,
        k: int = 30,
        half_life_s: float = 6 * 3_600.0,
        window: int = 5,
        backward: float = 0.5,
        owns: Callable[[str], bool] | None = None,
    ) -> None:
        self.k = k
        self.half_life_s = half_life_s
        self.window = window
        self.backward = backward
        self.owns = owns
        self.ref: float | None = None
        self.nb: dict[str, dict[str, float]] = {}
        self.touched: dict[str, float] = {}  # item -> last event time its list changed
        self._grown: dict[str, None] = {}
        self._cache: dict[str, list[tuple[str, float]]] = {}
        self._changed: dict[str, None] = {}  # lists changed since the last prune
        self._x2: dict[str, list[tuple[str, float]]] = {}  # two-hop lists
        self._via: dict[str, set[str]] = {}  # item -> items whose two-hop list went through it

    def add(self, prev: list[str] | tuple[str, ...], item: str, weight: float, ts: float) -> None:
        """Pair ``item`` with the session's previous items (most recent last)."""
        if not prev:
            return
        if self.ref is None:
            self.ref = anchor(ts, self.half_life_s)
        x = (ts - self.ref) / self.half_life_s
        if x >= REBASE_EXPONENT:  # the next span of the grid: rescale before floats overflow
            self.rebase(ts)
            x = (ts - self.ref) / self.half_life_s
        inflate = weight * 2.0**x
        nb = self.nb
        cache = self._cache
        touched = self.touched
        changed = self._changed
        limit = 2 * self.k
        back = self.backward
        owns = self.owns
        mine = owns is None or owns(item)
        dist = 1
        for p in reversed(prev[-self.window :]):
            if p == item:
                continue
            w = inflate / dist
            dist += 1
            if owns is None or owns(p):
                d = nb.get(p)
                if d is None:
                    nb[p] = {item: w}
                else:
                    d[item] = d.get(item, 0.0) + w
                    if len(d) > limit:
                        self._grown[p] = None
                cache.pop(p, None)
                changed[p] = None
                touched[p] = ts
            if mine:
                d = nb.get(item)
                if d is None:
                    nb[item] = {p: w * back}
                else:
                    d[p] = d.get(p, 0.0) + w * back
                    if len(d) > limit:
                        self._grown[item] = None
                cache.pop(item, None)
                changed[item] = None
                touched[item] = ts

    def top(self, item: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` strongest neighbours of ``item``, strongest first (cached until it changes;
        ties keep the order the neighbours were first seen in)."""
        lst = self._cache.get(item)
        if lst is None:
            d = self.nb.get(item)
            if not d:
                return []
            lst = sorted(d.items(), key=_second, reverse=True)[: self.k]
            self._cache[item] = lst
        return lst[:n]

    def top2(self, item: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` strongest two-hop neighbours of ``item`` (see the module docstring),
        strongest first, with relative weights (the strongest path weighs at most 1)."""
        lst = self._x2.get(item)
        if lst is None:
            lst = self._x2[item] = self._two_hops(item)
        return lst[:n]

    def _two_hops(self, item: str) -> list[tuple[str, float]]:
        first = self.top(item, HOP1)
        if not first:
            return []
        direct = self.nb.get(item, {})
        via = self._via
        acc: dict[str, float] = {}
        get = acc.get
        t1 = first[0][1]
        top = self.top
        for nbr, w in first:
            users = via.get(nbr)
            if users is None:
                via[nbr] = {item}
            else:
                users.add(item)
            second = top(nbr, HOP2)
            if not second:
                continue
            f = w / t1 / second[0][1]
            for m, w2 in second:
                if m == item or m in direct:
                    continue
                acc[m] = get(m, 0.0) + f * w2
        return sorted(acc.items(), key=_second, reverse=True)[:HOP_N]  # ties: first found first

    def prune(self) -> None:
        """Keep the top ``k`` neighbours of items whose lists grew, and drop the two-hop lists
        the batch's changes touched (a batch boundary)."""
        nb = self.nb
        k = self.k
        for item in self._grown:
            d = nb.get(item)
            if d is not None and len(d) > k:
                nb[item] = dict(sorted(d.items(), key=_second, reverse=True)[:k])
                self._cache.pop(item, None)
        self._grown.clear()
        if self._x2:
            self._invalidate(self._changed)
        self._changed.clear()

    def _invalidate(self, items: Iterable[str]) -> None:
        """Drop the two-hop lists of ``items`` and of every item whose list went through one."""
        x2 = self._x2
        via = self._via
        for j in items:
            x2.pop(j, None)
            users = via.pop(j, None)
            if users:
                for i in users:
                    x2.pop(i, None)

    def rebase(self, ts: float) -> None:
        """Rescale counts when the inflation exponent grows large (keeps floats finite)."""
        got = rescale_factor(self.ref, ts, self.half_life_s)
        if got is None:
            return
        f, new_ref = got
        self.nb = {i: {j: w * f for j, w in d.items()} for i, d in self.nb.items()}
        self._cache.clear()
        self._x2.clear()  # relative weights, but rounded anew: recompute them all
        self._via.clear()
        self.ref = new_ref

    def evict(self, before: float) -> int:
        """Drop the lists of items untouched since event time ``before``; how many."""
        old = [i for i, t in self.touched.items() if t < before]
        nb, cache, touched = self.nb, self._cache, self.touched
        for i in old:
            nb.pop(i, None)
            cache.pop(i, None)
            del touched[i]
            self._grown.pop(i, None)
            self._changed.pop(i, None)
        if self._x2:
            self._invalidate(old)
        return len(old)

    def __len__(self) -> int:
        return len(self.nb)
