"""The item step: the owner of item-level knowledge, keyed by item shard.

Each item shard receives, from every user shard, the item records of the events whose item it
owns (and copies of records it needs for links towards its items). When every user shard has
finished a tick (:mod:`rtp.engine.messages`), the shard applies that tick's records in the
canonical ``(ts, pos)`` order and

- publishes them as its part of the model log (every user step's model view replays them);
- keeps the co-visitation lists of its own items (authoritative, decayed, evicted when stale)
  and writes the product page ``n:{item}`` of every item of its shard viewed in the tick;
- keeps the catalogue of its items (category, price) and writes it to the ``items`` hash, and
  removes items nobody has touched for ``Settings.item_ttl_s`` of event time.

It is the only writer of those keys. Plain Python: ``rtp.flow.dataflow`` wraps it in Bytewax.
"""

from __future__ import annotations

from typing import Any

from rtp.candidates.covisit import CoVisitation
from rtp.config import Settings
from rtp.decisions.product import product_list
from rtp.engine.log import ModelLog, item_writer
from rtp.engine.messages import ItemSignals
from rtp.engine.shards import item_shard_of
from rtp.engine.view import ItemRecord, lru_cutoff, record_key
from rtp.engine.writes import Writes
from rtp.store.codec import encode_page


class ItemShard:
    """One item shard's models, catalogue and log part (see the module docstring)."""

    def __init__(self, settings: Settings, shard: int, shards: int, user_shards: int) -> None:
        self.settings = settings
        self.shard = shard
        self.shards = shards
        self.user_shards = user_shards
        self.writer = item_writer(shard)
        n = shards
        me = shard
        self.cv = CoVisitation(
            k=settings.neighbours_k,
            half_life_s=settings.covisit_half_life_s,
            owns=None if n == 1 else (lambda x: item_shard_of(x, n) == me),
        )
        self.catalogue: dict[str, tuple[str | None, float | None, float]] = {}
        self.pending: dict[int, tuple[list[ItemRecord], list[ItemRecord]]] = {}
        self.dones = [-1] * user_shards
        self.views = [-1] * user_shards
        self.complete = -1
        self.high = 0.0
        self._next_evict = 0.0
        self.unpublished: list[tuple[int, Any]] = []  # parts kept until every view passed them
        self.stats: dict[str, float] = dict.fromkeys(
            ("records", "ticks", "pages", "items_evicted", "lists_evicted"), 0
        )

    def on_signals(self, msg: ItemSignals, log: ModelLog) -> Writes | None:
        """Take one user shard's records; complete the ticks every shard has finished."""
        for tick, recs in msg.primary.items():
            self._pending(tick)[0].extend(recs)
        for tick, recs in msg.secondary.items():
            self._pending(tick)[1].extend(recs)
        j = msg.user_shard
        if msg.done > self.dones[j]:
            self.dones[j] = msg.done
        if msg.view_tick > self.views[j]:
            self.views[j] = msg.view_tick
        upto = min(self.dones)
        if upto <= self.complete:
            return None
        return self._complete(upto, log)

    def _pending(self, tick: int) -> tuple[list[ItemRecord], list[ItemRecord]]:
        p = self.pending.get(tick)
        if p is None:
            p = self.pending[tick] = ([], [])
        return p

    def _complete(self, upto: int, log: ModelLog) -> Writes:
        w = Writes()
        parts: list[tuple[int, Any]] = []
        for tick in sorted(t for t in self.pending if t <= upto):
            primary, secondary = self.pending.pop(tick)
            primary.sort(key=record_key)
            self._apply(primary, secondary, w)
            if primary:
                parts.append((tick, primary))
            self.stats["ticks"] += 1
        self.complete = upto
        self._evict(w)
        log.publish(self.writer, parts, upto)
        self.unpublished.extend(parts)
        oldest_view = min(self.views)
        if oldest_view >= 0 and self.unpublished and self.unpublished[0][0] <= oldest_view:
            self.unpublished = [p for p in self.unpublished if p[0] > oldest_view]
            log.prune(self.writer, oldest_view)
        return w

    def _apply(self, primary: list[ItemRecord], secondary: list[ItemRecord], w: Writes) -> None:
        cv = self.cv
        records = sorted(primary + secondary, key=record_key) if secondary else primary
        for ts, _pos, item, _cat, _price, weight, prev in records:
            if prev:
                cv.add(prev, item, weight, ts)
        cv.prune()
        cat_cache = self.catalogue
        viewed: dict[str, None] = {}
        high = self.high
        for ts, _pos, item, cat, price, _weight, _prev in primary:
            old = cat_cache.get(item)
            if (
                old is None
                or (cat is not None and old[0] != cat)
                or (price is not None and old[1] != price)
            ):
                c = cat if cat is not None else (old[0] if old else None)
                p = price if price is not None else (old[1] if old else None)
                cat_cache[item] = (c, p, ts)
                w.items[item] = f"{c or ''}|{'' if p is None else p}".encode()
            else:
                cat_cache[item] = (old[0], old[1], ts)
            viewed[item] = None
            if ts > high:
                high = ts
        self.high = high
        self.stats["records"] += len(primary)
        n = self.settings.product_n
        for item in viewed:
            items, scores = product_list(cv, item, n)
            if items:
                w.neighbours[item] = encode_page(items, scores)
                self.stats["pages"] += 1
        cv.rebase(high)

    def _evict(self, w: Writes) -> None:
        high = self.high
        cap = self.settings.max_items
        over = len(self.catalogue) > cap
        if high < self._next_evict and not over:
            return
        ttl = self.settings.item_ttl_s
        if self._next_evict or over:
            cutoff = high - ttl
            if over:
                last = {i: c[2] for i, c in self.catalogue.items()}
                cutoff = max(cutoff, lru_cutoff(last, int(cap * 0.9)))
            old = [i for i, (_c, _p, t) in self.catalogue.items() if t < cutoff]
            for i in old:
                del self.catalogue[i]
            w.items_removed.extend(old)
            self.stats["items_evicted"] += len(old)
            self.stats["lists_evicted"] += self.cv.evict(cutoff)
        self._next_evict = high + ttl / 8.0

    def finish(self, log: ModelLog) -> Writes | None:
        """End of a finite stream: complete whatever is pending."""
        if not self.pending:
            return None
        return self._complete(max(self.pending), log)

    def republish(self, log: ModelLog) -> None:
        """After a resume: publish again the parts some view may not have read yet."""
        log.publish(self.writer, self.unpublished, self.complete)

    def meta(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.stats)
        out.update(
            complete=self.complete,
            items=len(self.catalogue),
            lists=len(self.cv),
            event_time=self.high,
        )
        return out
