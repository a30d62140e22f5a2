"""The model view: what a user step decides with, a replica of the item and global models.

The item step (:mod:`rtp.engine.items`) and the global step (:mod:`rtp.engine.merge`) own the
learned models and publish, per tick of the stream, a part of the model log
(:mod:`rtp.engine.log`): the tick's item records in a canonical order, and the ranker's weights.
Every user step keeps one :class:`ModelView` and applies the log tick by tick, in the same order,
so every worker holds the same models at the same tick whatever the number of workers or the
way Bytewax batched the stream. A user step deciding at tick ``t`` uses the view of tick
``t - lag`` (``Settings.model_lag_ticks``): the models never lag the stream by more than that
(see ``docs/architecture.md``).

What the view holds: co-visitation neighbours and popularity (with trending and category-top
lists) rebuilt from the item records, the past sessions chained from them when
``session_neighbours`` is on (:mod:`rtp.candidates.sessions`), the ranker's frozen weights
(dense, and the context crosses a tick changed) and version, the bandits' state, and the
catalogue the stream has shown (category, price and price band per item).
"""

from __future__ import annotations

import heapq
import pickle
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rtp.candidates.covisit import CoVisitation
from rtp.candidates.popularity import Popularity
from rtp.candidates.sessions import SessionIndex, own_slot
from rtp.ranking.context import ContextFields
from rtp.ranking.ranker import FEATURES, PRIOR, PRIOR_INTERCEPT

if TYPE_CHECKING:
    from rtp.session.state import Session

TREND_N = 4
POP = FEATURES.index("pop")

ItemRecord = tuple[float, str, str, str | None, float | None, float, tuple[str, ...]]
"""``(ts, pos, item, category, price, weight, previous items)``: one event's item signal.

``previous items`` are the session's items before this one (most recent last; empty for users
who opted out of personalization, whose events count for popularity only). ``(ts, pos)`` is the
canonical order every consumer applies records in.
"""


def lru_cutoff(last: dict[str, float], keep: int) -> float:
    """The event time before which items must go so that at most about ``keep`` remain."""
    if len(last) <= keep:
        return float("-inf")
    return sorted(last.values())[len(last) - keep]


def record_key(r: ItemRecord) -> tuple[float, str]:
    return (r[0], r[1])


class ModelView:
    """Co-visitation, popularity, ranker weights and bandit state as of one tick."""

    def __init__(
        self,
        neighbours_k: int = 30,
        cv_half_life_s: float = 6 * 3_600.0,
        pop_half_life_s: float = 3_600.0,
        item_ttl_s: float = 90 * 86_400.0,
        ranker: str = "lr",
        max_items: int = 2_000_000,
        context: ContextFields | None = None,
        drop: tuple[str, ...] = (),
        utc_offset_h: float = 0.0,
        session_neighbours: bool = False,
        max_sessions: int = 200_000,
    ) -> None:
        self.cv = CoVisitation(k=neighbours_k, half_life_s=cv_half_life_s)
        self.pop = Popularity(half_life_s=pop_half_life_s)
        # session neighbourhoods (Settings.session_neighbours; off: None, nothing kept)
        self.sessions = SessionIndex(max_sessions=max_sessions) if session_neighbours else None
        # a decision's session neighbourhood, by (user, session start, events, tick): the
        # decision and the ranking example of the next event ask for the same one
        self._knn_memo: dict[tuple[str, float, int, int], list[tuple[str, float]]] = {}
        self.item_ttl_s = item_ttl_s
        self.max_items = max_items
        self.context = context if context is not None else ContextFields()
        self.utc_offset_h = utc_offset_h  # local time of users whose country is unknown
        self.drop = frozenset(FEATURES.index(f) for f in drop)  # features left out (ablations)
        self.weights: tuple[float, ...] = self._kept(tuple(PRIOR[f] for f in FEATURES))
        # context x (category | price band) weights, by context value: {"d:mobile": {"shoes": w}}
        self.cross: dict[str, dict[str, float]] = {}
        # per context: its sums of cross weights by (category, band), while the weights hold
        self.cross_memo: dict[tuple[str, ...], dict[tuple[str | None, str | None], float]] = {}
        self.intercept = PRIOR_INTERCEPT
        self.version = f"{ranker}-0"
        self.tick = -1  # the view holds every tick <= this one
        self.high = 0.0  # event time of the newest record applied
        self.records = 0
        self.bandits: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}  # other global parts (edge model, ...), by name
        self._next_evict = 0.0
        # trending candidates' user-independent terms, for the current weights and trending list
        self._trend: list[tuple[str, str | None, float, float | None]] = []
        # the weights and trending list the terms were made from: the objects themselves, not
        # their ids (a freed list's id may be reused by the next one)
        self._trend_src: tuple[Any, Any] = (None, None)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A snapshot of a build before session neighbourhoods: no index (the resumed view keeps
        none), and the prior weight of every feature it did not have, until the global step
        publishes its own; before the category tops' rebuilds: none pending."""
        self.__dict__.update(state)
        self.__dict__.setdefault("sessions", None)
        self.__dict__.setdefault("_knn_memo", {})
        pop = self.__dict__.get("pop")
        if pop is not None and not hasattr(pop, "_rescan"):  # before the category rebuilds
            pop._rescan = {}
        w = self.weights
        if len(w) < len(FEATURES):
            self.weights = self._kept(w + tuple(PRIOR[f] for f in FEATURES[len(w) :]))

    # -- applying the log ---------------------------------------------------------------------
    def apply_items(self, records: Iterable[ItemRecord]) -> None:
        """Apply item records in the order given (the caller merges parts canonically)."""
        cv_add = self.cv.add
        pop_add = self.pop.add
        sess_add = self.sessions.add if self.sessions is not None else None
        n = 0
        high = self.high
        for ts, _pos, item, cat, price, weight, prev in records:
            pop_add(item, cat, price, weight, ts)
            if prev:
                cv_add(prev, item, weight, ts)
                if sess_add is not None:
                    sess_add(prev, item, ts)
            if ts > high:
                high = ts
            n += 1
        self.high = high
        self.records += n

    def apply_global(self, part: dict[str, Any]) -> None:
        """Adopt the global step's part: ranker weights and version, bandits, extras."""
        w = part.get("w")
        if w is not None:
            self.weights = self._kept(tuple(float(x) for x in w))
            self.intercept = float(part["b"])
            self.version = str(part["v"])
        x = part.get("x")
        if x:
            self.cross_memo = {}
            cross = self.cross
            for key, weight in x.items():
                value, _, what = key.partition("|")
                table = cross.get(value)
                if table is None:
                    table = cross[value] = {}
                table[what] = float(weight)
        bandits = part.get("bandits")
        if bandits:
            for name, blob in bandits.items():
                self.bandits[name] = pickle.loads(blob) if isinstance(blob, bytes) else blob
        for name, value in part.get("extra", {}).items():
            self.extra[name] = value

    def _kept(self, w: tuple[float, ...]) -> tuple[float, ...]:
        if not self.drop:
            return w
        return tuple(0.0 if i in self.drop else x for i, x in enumerate(w))

    def finish_tick(self, tick: int) -> None:
        """Tick boundary upkeep: prune neighbours, refresh top lists, rescale, evict."""
        self.cv.prune()
        self.pop.refresh()
        high = self.high
        self.cv.rebase(high)
        self.pop.rebase(high)
        over = len(self.pop) > self.max_items
        if high >= self._next_evict or over:
            if self._next_evict or over:
                cutoff = high - self.item_ttl_s
                if over:  # beyond the cap: the least recently touched go, down to 90 % of it
                    cutoff = max(cutoff, lru_cutoff(self.pop.last, int(self.max_items * 0.9)))
                self.cv.evict(cutoff)
                self.pop.evict(cutoff)
                if self.sessions is not None:
                    self.sessions.evict(cutoff)
            self._next_evict = high + self.item_ttl_s / 8.0
        if self.sessions is not None:
            if len(self.sessions) > self.sessions.max_sessions:
                self.sessions.evict(float("-inf"))
            if self._knn_memo:
                self._knn_memo = {}
        self.tick = tick

    # -- reading ------------------------------------------------------------------------------
    def knn(self, uid: str, s: Session) -> list[tuple[str, float]]:
        """The items of the session neighbourhood of ``uid``'s session ``s``, best first
        (:meth:`rtp.candidates.sessions.SessionIndex.neighbours`; the session's own entry in the
        index is never its neighbour); none when the view keeps no session index."""
        if self.sessions is None:
            return []
        key = (uid, s.start, s.n, self.tick)
        got = self._knn_memo.get(key)
        if got is None:
            own = own_slot(self.sessions, s.fresh, self.tick)
            got = self._knn_memo[key] = self.sessions.neighbours(s.recent, self.high, own)
        return got

    def trend_terms(self) -> list[tuple[str, str | None, float, float | None]]:
        """``(item, category, popularity term, price)`` of the trending candidates, cached until
        the weights or the trending list change (both are new objects then)."""
        weights, trending = self.weights, self.pop.trending
        src = self._trend_src
        if weights is not src[0] or trending is not src[1]:
            w4 = weights[POP]
            top = trending[0][1] if trending else 1.0
            cat_of, price_of = self.pop.cat_of.get, self.pop.price_of.get
            self._trend = [
                (it, cat_of(it), w4 * (sc / top if sc < top else 1.0), price_of(it))
                for it, sc in trending[:TREND_N]
            ]
            self._trend_src = (weights, trending)
        return self._trend

    def stats(self) -> dict[str, Any]:
        return {
            "tick": self.tick,
            "event_time": self.high,
            "records": self.records,
            "items": len(self.pop),
            "neighbour_lists": len(self.cv),
            "sessions": 0 if self.sessions is None else len(self.sessions),
            "model": self.version,
        }


def merge_parts(parts: Sequence[Sequence[ItemRecord]]) -> Iterable[ItemRecord]:
    """Records of several item-shard parts of one tick in the canonical ``(ts, pos)`` order."""
    if len(parts) == 1:
        return parts[0]
    return heapq.merge(*parts, key=record_key)
