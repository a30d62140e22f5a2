"""The ``home`` placement: candidates ranked by the online model, then the rules (suppress what
was bought, cap re-shows, exploration slots), each item with its reason code.

:func:`rank_home` is the hot path: it runs for every user whose context changed in a batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Literal

from rtp.decisions.ranked import Ranked, Rules
from rtp.ranking.score import fast_scores

if TYPE_CHECKING:
    from rtp.engine.view import ModelView
    from rtp.session.state import UserState

_second = itemgetter(1)


def rank_home(
    u: UserState,
    m: ModelView,
    rules: Rules,
    reshow_slots: int | None = None,
    explore: bool = True,
    cats: dict[str, float] | None = None,
    band: tuple[float, float] | None | Literal[False] = False,
    ctx: Sequence[str] = (),
) -> Ranked:
    """Home recommendations, best first: items, scores and reason codes. ``ctx``: the visit's
    context values (:func:`rtp.ranking.context.context_values`; none: no context terms)."""
    if cats is None:
        cats = u.blended_categories()
    top_cats = top_keys(cats, 2)
    s = u.session
    cur = s.current
    cur_cat = s.item_cat.get(cur) if cur is not None else None
    why: dict[str, str] = {}
    streams: list[tuple[str, float]] = []
    price_band = u.price_range() if band is False else band  # False: the caller did not compute it
    sc = fast_scores(
        u, m, cats, top_cats, price_band, rules.price_slack, cur_cat, why, streams, ctx
    )
    profile = u.profile
    if rules.suppress_bought and (s.bought or (profile is not None and profile.bought)):
        bought = set(s.bought)
        if profile is not None:
            bought.update(profile.bought)
        for it in bought:
            sc.pop(it, None)
        streams = [kv for kv in streams if kv[0] not in bought]
    n = rules.home_n
    slots = rules.reshow_slots if reshow_slots is None else reshow_slots
    n_explore = int(rules.explore_share * n) if explore else 0
    limit = n - n_explore
    seen = s.seen
    pool = list(sc.items())
    if streams:
        pool += streams
    pool.sort(key=_second, reverse=True)  # stable: ties keep the generators' order
    best = pool[: limit + min(slots, len(seen)) + 2]
    items: list[str] = []
    scores: list[float] = []
    reshown = 0
    for it, score in best:
        if it in seen:
            if reshown >= slots:
                continue
            reshown += 1
        items.append(it)
        scores.append(int(score * 1000) / 1000)
        if len(items) >= limit:
            break
    wget = why.get
    out = Ranked(items, scores, [wget(it, "cat") for it in items])
    if n_explore:
        _explore(u, m, cats, out, n_explore)
    return out


def top_keys(weights: dict[str, float], k: int) -> list[str]:
    """The ``k`` heaviest keys, heaviest first (cheap for the one or two a session has)."""
    if len(weights) <= 1:
        return list(weights)
    return sorted(weights, key=weights.__getitem__, reverse=True)[:k]


def _explore(u: UserState, m: ModelView, cats: dict[str, float], out: Ranked, k: int) -> None:
    """Exploration slots: trending items outside the user's categories, rotated per event."""
    trending = m.pop.trending
    if not trending:
        return
    s = u.session
    have = set(out.items)
    cat_of = m.pop.cat_of
    start = (s.n * 7) % max(1, len(trending))
    picked = 0
    for j in range(len(trending)):
        it = trending[(start + j) % len(trending)][0]
        if it in have or it in s.bought or it in s.seen or cat_of.get(it) in cats:
            continue
        out.append(it, 0.0, "ex")
        picked += 1
        if picked >= k:
            break


def fallback_home(m: ModelView, n: int) -> Ranked:
    """The non-personalized home list: what is trending."""
    top = m.pop.trending[:n]
    t = top[0][1] if top else 1.0
    return Ranked([it for it, _ in top], [round(s / t, 3) for _, s in top], ["pop"] * len(top))
