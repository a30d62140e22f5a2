"""Stage one: the candidates of one user's decision, with their generator features.

Generators: co-visitation neighbours of the session's last items (recency-weighted), their
two-hop neighbours (:meth:`rtp.candidates.covisit.CoVisitation.top2`), the items of the past
sessions most like this one (:mod:`rtp.candidates.sessions`), the popular items of the
user's two strongest categories, trending items, the session's own items (re-shows), the cart,
and long-term favourites. :func:`candidates` returns every candidate with a feature
vector over :data:`rtp.ranking.ranker.FEATURES` whose generator features are filled; the ranking
stage fills the context features (:func:`rtp.ranking.score.fill_context`). The hot path
(:func:`rtp.ranking.score.fast_scores`) fuses both stages without building vectors; this module
is the reference it is tested against, and what ranking examples are built from.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING

from rtp.ranking.ranker import (
    AT_LAST,
    AT_PREV,
    CAT_POP,
    CV,
    CV2,
    CV_LAST,
    FEATURES,
    KNN,
    RE_CV,
    RECENCY,
)

if TYPE_CHECKING:
    from rtp.engine.view import ModelView
    from rtp.session.state import UserState

_second = itemgetter(1)
N_FEATURES = len(FEATURES)
SEEDS = 5  # the session's last items whose neighbours are candidates
SEED_FACTORS = (1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06)  # by recency; SEEDS <= 10
CV_PER_SEED = 12  # neighbours taken from each seed item (measured in BENCHMARKS.md)
HOP_SEEDS = 2  # the session's last items whose two-hop neighbours are candidates
HOP_PER_SEED = 12  # two-hop neighbours taken from each of them (docs/quality.md)
CAT_PER_CAT = 15  # popular items from each of the two strongest categories (discovery)
TREND_N = 4


def seed_lists(u: UserState, m: ModelView, seeds: list[str]) -> list[list[tuple[str, float]]]:
    """Each seed's co-visited neighbours, strongest first: the model view's list plus the pairs
    of the user's own session that the view does not hold yet (their records are of ticks after
    the view's), weighted exactly as the co-visitation model weighs them.

    The view lags the stream by a tick or two (see ``docs/architecture.md``); a user's own last
    events must not: they are in the user's state, so they count at once, the same in every
    worker.
    """
    cv = m.cv
    top = cv.top
    fresh = u.session.fresh
    if not fresh or fresh[-1][0] <= m.tick or cv.ref is None and not fresh:
        return [top(seed, CV_PER_SEED) for seed in seeds]
    ref = cv.ref if cv.ref is not None else fresh[0][1]
    hl = cv.half_life_s
    back = cv.backward
    window = cv.window
    wanted = set(seeds)
    extra: dict[str, dict[str, float]] = {}
    view_tick = m.tick
    for tick, ts, item, weight, prev in fresh:
        if tick <= view_tick or not prev:
            continue
        inflate = weight * 2.0 ** ((ts - ref) / hl)
        dist = 1
        for p in reversed(prev[-window:]):
            if p == item:
                continue
            w = inflate / dist
            dist += 1
            if p in wanted:
                d = extra.setdefault(p, {})
                d[item] = d.get(item, 0.0) + w
            if item in wanted:
                d = extra.setdefault(item, {})
                d[p] = d.get(p, 0.0) + w * back
    out = []
    for seed in seeds:
        add = extra.get(seed)
        if not add:
            out.append(top(seed, CV_PER_SEED))
            continue
        merged = dict(top(seed, cv.k))
        for k, w in add.items():
            merged[k] = merged.get(k, 0.0) + w
        out.append(sorted(merged.items(), key=_second, reverse=True)[:CV_PER_SEED])
    return out


def candidates(u: UserState, m: ModelView, cats: dict[str, float]) -> dict[str, list[float]]:
    """Every candidate with its generator features (context features are zero).

    :func:`is_candidate` asks the same generators for one item: a change to which items a
    generator contributes here changes it too (``tests/unit/test_decide.py`` holds them
    together)."""
    cands: dict[str, list[float]] = {}
    get = cands.get
    s = u.session
    recent = s.recent
    seeds = recent[-1 : -min(SEEDS, len(SEED_FACTORS)) - 1 : -1]
    seen = s.seen
    for idx, lst in enumerate(seed_lists(u, m, seeds)):
        if not lst:
            continue
        top_w = lst[0][1]
        f = SEED_FACTORS[idx]
        for nbr, w in lst:
            v = get(nbr)
            if v is None:
                v = cands[nbr] = [0.0] * N_FEATURES
            x = w / top_w
            if nbr in seen:  # a re-show: its own feature, learned apart from new items'
                v[RE_CV] += f * x
                continue
            v[CV] += f * x
            if idx == 0:
                v[CV_LAST] = x
    top2 = m.cv.top2
    for idx, seed in enumerate(seeds[:HOP_SEEDS]):
        lst = top2(seed, HOP_PER_SEED)
        if not lst:
            continue
        top_w = lst[0][1]
        f = SEED_FACTORS[idx]
        for nbr, w in lst:
            if nbr in seen:
                continue
            v = get(nbr)
            if v is None:
                v = cands[nbr] = [0.0] * N_FEATURES
            v[CV2] += f * w / top_w
    nbh = m.knn(u.uid, s)
    if nbh:
        top_w = nbh[0][1]
        for nbr, w in nbh:
            if nbr in seen:  # re-shows: a neighbourhood term lowered their ranking (quality.md)
                continue
            v = get(nbr)
            if v is None:
                v = cands[nbr] = [0.0] * N_FEATURES
            v[KNN] = w / top_w
    if cats:
        top_of = m.pop.top_of
        for c, _ in sorted(cats.items(), key=_second, reverse=True)[:2]:
            lst2 = top_of(c)
            if not lst2:
                continue
            top = lst2[0][1]
            for it, sc in lst2[:CAT_PER_CAT]:
                v = get(it)
                if v is None:
                    v = cands[it] = [0.0] * N_FEATURES
                v[CAT_POP] = sc / top
    for it, _ in m.pop.trending[:TREND_N]:
        if it not in cands:
            cands[it] = [0.0] * N_FEATURES
    n = len(recent)
    for pos in range(n):
        it = recent[n - 1 - pos]
        v = get(it)
        if v is None:
            v = cands[it] = [0.0] * N_FEATURES
        v[RECENCY] = 1.0 / (1 + pos)
        if pos < 2:
            v[AT_LAST if pos == 0 else AT_PREV] = 1.0
    for it in s.cart:
        if it not in cands:
            cands[it] = [0.0] * N_FEATURES
    if u.profile is not None:
        for it in u.profile.favs[:5]:
            if it not in cands:
                cands[it] = [0.0] * N_FEATURES
    return cands


def is_candidate(u: UserState, m: ModelView, cats: dict[str, float], item: str) -> bool:
    """Whether ``item`` is among :func:`candidates` ``(u, m, cats)``, without building them.

    A ranking example needs the item the user chose among the candidates, and most targets are
    not (on the Taobao slice, 2,071 of 32,952): this asks every generator the same questions
    :func:`candidates` asks (the model view's lists are memoized, so asking twice changes
    nothing) and stops at the first that has the item.
    """
    s = u.session
    recent = s.recent
    if item in s.cart or item in recent:
        return True
    if u.profile is not None and item in u.profile.favs[:5]:
        return True
    for it, _ in m.pop.trending[:TREND_N]:
        if it == item:
            return True
    seeds = recent[-1 : -min(SEEDS, len(SEED_FACTORS)) - 1 : -1]
    for lst in seed_lists(u, m, seeds):  # re-shows included: a seen item counts here
        for nbr, _ in lst:
            if nbr == item:
                return True
    if cats:
        top_of = m.pop.top_of
        for c, _ in sorted(cats.items(), key=_second, reverse=True)[:2]:
            lst2 = top_of(c)
            if lst2:
                for it, _ in lst2[:CAT_PER_CAT]:
                    if it == item:
                        return True
    if item in s.seen:  # two-hop and neighbourhood lists leave seen items out
        return False
    top2 = m.cv.top2
    for seed in seeds[:HOP_SEEDS]:
        for nbr, _ in top2(seed, HOP_PER_SEED):
            if nbr == item:
                return True
    return any(nbr == item for nbr, _ in m.knn(u.uid, s))
