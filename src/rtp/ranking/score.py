"""Stage two on the hot path: every candidate's linear score under the frozen weights.

:func:`fast_scores` fuses stage one (:mod:`rtp.candidates.generate`) and stage two: it computes
``intercept + weights . features`` for the features :func:`rtp.candidates.generate.candidates`
and :func:`fill_context` describe (a test checks it), without a vector per candidate: a
candidate's context terms are added once, when a generator first proposes it, and each generator
adds its own term. Category-popular items need no look-ups at all: their category (hence its
blended weight) is the list's, and their popularity is the list's own count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rtp.candidates.generate import (
    CAT_PER_CAT,
    HOP_PER_SEED,
    HOP_SEEDS,
    SEED_FACTORS,
    SEEDS,
    seed_lists,
)
from rtp.ranking.context import BANDS, CrossTerms, session_scale
from rtp.ranking.ranker import (
    CART,
    CAT,
    FAV,
    FEATURES,
    POP,
    PRICE_FIT,
    SAME_CAT,
    SEEN,
    SEEN_N,
)

if TYPE_CHECKING:
    from rtp.engine.view import ModelView
    from rtp.session.state import UserState


def feature_dict(v: list[float]) -> dict[str, float]:
    return dict(zip(FEATURES, v, strict=True))


def fill_context(
    u: UserState,
    m: ModelView,
    cats: dict[str, float],
    band: tuple[float, float] | None,
    slack: float,
    cur_cat: str | None,
    cands: dict[str, list[float]],
) -> None:
    """Fill the context features of every candidate vector in place."""
    cat_of = m.pop.cat_of
    price_of = m.pop.price_of
    score = m.pop.score
    trending = m.pop.trending
    top_pop = trending[0][1] if trending else 1.0
    s = u.session
    seen = s.seen
    cart = s.cart
    favs = u.profile.favs if u.profile is not None else ()
    lo = band[0] / slack if band else 0.0
    hi = band[1] * slack if band else 0.0
    for it, v in cands.items():
        c = cat_of.get(it)
        if c is not None:
            v[CAT] = cats.get(c, 0.0)
            if c == cur_cat:
                v[SAME_CAT] = 1.0
        if v[POP] == 0.0:
            sc = score.get(it)
            if sc is not None:
                v[POP] = sc / top_pop if sc < top_pop else 1.0
        if band is not None:
            p = price_of.get(it)
            v[PRICE_FIT] = 0.5 if p is None else (1.0 if lo <= p <= hi else 0.0)
        else:
            v[PRICE_FIT] = 0.5
        k = seen.get(it)
        if k:
            v[SEEN] = 1.0
            v[SEEN_N] = k / 4.0 if k < 4 else 1.0
        if it in cart:
            v[CART] = 1.0
        if it in favs:
            v[FAV] = 1.0


CROSS_MEMOS = 20_000  # contexts whose sums a model view keeps (per set of weights)


def cross_terms(ctx: Sequence[str], m: ModelView, n: int) -> CrossTerms | None:
    """The context term of a decision's candidates after ``n`` events of the visit, or
    ``None`` (no context, or no cross weight learned yet)."""
    if not ctx or not m.cross:
        return None
    f = m.context
    memos = m.cross_memo
    key = ctx if isinstance(ctx, tuple) else tuple(ctx)
    memo = memos.get(key)
    if memo is None:
        if len(memos) >= CROSS_MEMOS:
            memos.clear()
        memo = memos[key] = {}
    xt = CrossTerms(ctx, m.cross, f.cat, f.price, session_scale(n), memo)
    return xt if xt.tables else None


def cross_term(ctx: Sequence[str], m: ModelView, n: int, item: str) -> float:
    """What the context adds to ``item``'s score (the reference of :func:`fast_scores`)."""
    xt = cross_terms(ctx, m, n)
    return 0.0 if xt is None else xt(m.pop.key_of(item))


def fast_scores(
    u: UserState,
    m: ModelView,
    cats: dict[str, float],
    top_cats: list[str],
    band: tuple[float, float] | None,
    slack: float,
    cur_cat: str | None,
    why: dict[str, str],
    streams: list[tuple[str, float]] | None = None,
    ctx: Sequence[str] = (),
) -> dict[str, float]:
    """Every candidate's score (see the module docstring).

    ``why`` receives each candidate's reason code (its generator; a re-show or cart wins).
    With ``streams``, category-popular items new to the candidates are appended there as
    ``(item, score)`` instead of entering the dict (their reason code is ``cat``); the result is
    the same as without, and cheaper. ``ctx``: the visit's context values
    (:func:`rtp.ranking.context.context_values`), crossed with each candidate's category and
    price band (:func:`cross_term`).
    """
    w0, w1, wx, w2, w3, w4, w5, w6, w7, wr, w8, wl, wp, wn, w9, w10, wk = m.weights
    sc: dict[str, float] = {}
    get = sc.get
    pop = m.pop
    cat_of = pop.cat_of.get
    cats_get = cats.get
    pop_get = pop.score.get
    trending = pop.trending
    top_pop = trending[0][1] if trending else 1.0
    w4n = w4 / top_pop
    base = m.intercept
    if band is None:
        base += 0.5 * w6
        lo = hi = 0.0
    else:
        lo = band[0] / slack
        hi = band[1] * slack
    price_get = pop.price_of.get
    xt = cross_terms(ctx, m, u.session.n)
    key_get = pop.keys.get
    # crossed with the price band only (the default): three sums per decision, no memo look-ups
    bt: dict[str | None, float] | None = None
    if xt is not None:
        xmemo = xt.memo.get
        xs = xt.scale
        if not xt.cat:
            bt = {b: xt((None, b)) for b in BANDS}

    def context(it: str) -> float:
        s = base
        if xt is not None:
            k = key_get(it)
            if k is not None:
                if bt is not None:
                    s += bt.get(k[1], 0.0)
                else:
                    t = xmemo(k)
                    s += xt(k) if t is None else t * xs
        c = cat_of(it)
        if c is not None:
            s += w2 * cats_get(c, 0.0)
            if c == cur_cat:
                s += w3
        p = pop_get(it)
        if p is not None:
            s += w4n * p if p < top_pop else w4
        if band is not None:
            pr = price_get(it)
            if pr is None:
                s += 0.5 * w6
            elif lo <= pr <= hi:
                s += w6
        return s

    sess = u.session
    recent = sess.recent
    seen = sess.seen
    seeds = recent[-1 : -min(SEEDS, len(SEED_FACTORS)) - 1 : -1]
    for idx, lst in enumerate(seed_lists(u, m, seeds)):
        if not lst:
            continue
        top_w = lst[0][1]
        a = (SEED_FACTORS[idx] * w0 + (w1 if idx == 0 else 0.0)) / top_w
        ar = SEED_FACTORS[idx] * wr / top_w
        for nbr, w in lst:
            v = get(nbr)
            if nbr in seen:
                sc[nbr] = (context(nbr) if v is None else v) + ar * w
                continue
            if v is None:
                v = context(nbr)
                why[nbr] = "cv"
            sc[nbr] = v + a * w
    top2 = m.cv.top2
    # new items only: the two-hop lists of the last seeds, then the session neighbourhood
    # (rtp.candidates.sessions; reason "cv": viewed in one visit with what this one viewed)
    lists = [
        (SEED_FACTORS[idx] * wx, top2(seed, HOP_PER_SEED), "cv2")
        for idx, seed in enumerate(seeds[:HOP_SEEDS])
    ]
    lists.append((wk, m.knn(u.uid, sess), "cv"))
    for f, lst, code in lists:
        if not lst:
            continue
        a = f / lst[0][1]
        for nbr, w in lst:
            if nbr in seen:
                continue
            v = get(nbr)
            if v is None:
                v = context(nbr)
                why[nbr] = code
            sc[nbr] = v + a * w
    for it, c, pop_term, pr in m.trend_terms():
        if it in sc:
            continue
        v = base + pop_term
        if xt is not None:
            k = key_get(it)
            if k is not None:
                v += bt.get(k[1], 0.0) if bt is not None else xt(k)
        if c is not None:
            v += w2 * cats_get(c, 0.0)
            if c == cur_cat:
                v += w3
        if band is not None:
            if pr is None:
                v += 0.5 * w6
            elif lo <= pr <= hi:
                v += w6
        sc[it] = v
        why[it] = "pop"
    n = len(recent)
    for pos in range(n):
        it = recent[n - 1 - pos]
        v = get(it)
        v = (context(it) if v is None else v) + w8 / (1 + pos)
        if pos < 2:
            v += wl if pos == 0 else wp
        sc[it] = v
    cart = sess.cart
    for it in cart:
        v = get(it)
        sc[it] = (context(it) if v is None else v) + w9
    favs: Any = ()
    if u.profile is not None:
        favs = u.profile.favs
        for it in favs[:5]:
            if it not in sc:
                sc[it] = context(it)
                why[it] = "fav"
    if top_cats:
        top_of = pop.top_of
        for c in top_cats:
            lst2 = top_of(c)
            if not lst2:
                continue
            lst2 = lst2[:CAT_PER_CAT]
            b = w5 / lst2[0][1]
            if band is None and streams is not None:
                # Items that are new candidates and carry no per-user term (not seen, not a
                # favourite) take their context terms from the list itself (its category, its
                # counts), so they are scored in one comprehension and merged by the caller.
                off = base + w2 * cats_get(c, 0.0) + (w3 if c == cur_cat else 0.0)
                a4 = w4n + b
                if xt is None:
                    streams.extend(
                        [
                            (it, off + a4 * s if s < top_pop else off + b * s + w4)
                            for it, s in lst2
                            if it not in sc and it not in seen and it not in favs
                        ]
                    )
                elif bt is not None:  # the price band's cross term of an item with one
                    streams.extend(
                        [
                            (
                                it,
                                (off + a4 * s if s < top_pop else off + b * s + w4)
                                + (0.0 if k is None else bt.get(k[1], 0.0)),
                            )
                            for it, s in lst2
                            if it not in sc and it not in seen and it not in favs
                            for k in (key_get(it),)
                        ]
                    )
                else:  # the category's cross term, and the price band's of an item with one
                    kc = (c, None)
                    off += xt(kc)
                    streams.extend(
                        [
                            (
                                it,
                                (off + a4 * s if s < top_pop else off + b * s + w4)
                                + (0.0 if k is None or k[1] is None else xt(k) - xt(kc)),
                            )
                            for it, s in lst2
                            if it not in sc and it not in seen and it not in favs
                            for k in (key_get(it),)
                        ]
                    )
                for it, s in [kv for kv in lst2 if kv[0] in sc or kv[0] in seen or kv[0] in favs]:
                    v = get(it)
                    if v is not None:
                        sc[it] = v + b * s
                    else:
                        sc[it] = context(it) + b * s
                        why[it] = "cat"
                continue
            for it, s in lst2:
                v = get(it)
                if v is None:
                    v = context(it)
                    why[it] = "cat"
                sc[it] = v + b * s
    for it, times in seen.items():
        v = get(it)
        if v is not None:
            sc[it] = v + w7 + wn * (times / 4.0 if times < 4 else 1.0)
            why[it] = "re"
    for it in cart:
        why[it] = "cart"
    for it in favs:
        v = get(it)
        if v is not None:
            sc[it] = v + w10
    return sc
