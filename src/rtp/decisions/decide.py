"""Decisions: candidates (stage one), ranking (stage two), then business rules, with reasons.

:func:`rank_home` is the hot path (it runs for every user whose context changed in a batch);
:func:`decide` adds the cheaper placements around it. Every list entry carries a reason code that
:mod:`rtp.decisions.reasons` turns into a sentence; every placement carries one sentence for the
whole.

Placements: ``home`` and ``product`` recommendations, ``recent`` (continue shopping: re-views are
a placement in their own right), ``nav`` (category order), ``hero`` (banner theme), ``offer``
(intent discount or cart reminder, capped and cooled down) and ``assist`` (proactive chat on
frustration, cooled down). Search re-ranking runs in the client (``rtp.Client.rerank``) from the
context written beside these.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Literal

import orjson

from rtp.candidates.learners import CoVisitation, Popularity
from rtp.decisions.reasons import CHAR
from rtp.ranking.ranker import FEATURES, OnlineRanker
from rtp.session.state import DEEP, RAPID, UserState

_second = itemgetter(1)
N_FEATURES = len(FEATURES)
SEEDS = 5  # the session's last items whose neighbours are candidates
SEED_FACTORS = (1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.12, 0.1, 0.08, 0.06)  # by recency; SEEDS <= 10
CV_PER_SEED = 12  # neighbours taken from each seed item (measured in BENCHMARKS.md)
CAT_PER_CAT = 15  # popular items from each of the two strongest categories (discovery)
TREND_N = 4


class Ranked:
    """A ranked list kept as the three parallel lists it is stored as (items, scores, reason
    codes); it iterates, indexes and compares as ``(item, score, code)`` tuples."""

    __slots__ = ("items", "scores", "codes")

    def __init__(
        self,
        items: list[str] | None = None,
        scores: list[float] | None = None,
        codes: list[str] | None = None,
    ) -> None:
        self.items = items if items is not None else []
        self.scores = scores if scores is not None else []
        self.codes = codes if codes is not None else []

    @classmethod
    def of(cls, entries: Ranked | Iterable[tuple[str, float, str]]) -> Ranked:
        """A :class:`Ranked` from ``(item, score, code)`` tuples (or itself)."""
        if isinstance(entries, Ranked):
            return entries
        out = cls()
        for it, sc, code in entries:
            out.append(it, sc, code)
        return out

    def append(self, item: str, score: float, code: str) -> None:
        self.items.append(item)
        self.scores.append(score)
        self.codes.append(code)

    def __iter__(self) -> Iterator[tuple[str, float, str]]:
        return zip(self.items, self.scores, self.codes, strict=True)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[str, float, str]:
        return (self.items[i], self.scores[i], self.codes[i])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Ranked, list)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Ranked({list(self)!r})"


@dataclass(frozen=True)
class Rules:
    """Per-placement business rules (from :class:`rtp.config.Settings`)."""

    home_n: int = 20
    product_n: int = 10
    reshow_slots: int = 8  # session items allowed in the home list ("continue shopping")
    explore_share: float = 0.1
    suppress_bought: bool = True
    product_suppress_viewed: bool = True  # the product page never recommends its own item
    price_slack: float = 2.0  # outside [lo / slack, hi * slack] is out of band
    assist_cooldown_s: float = 600.0
    offer_cooldown_s: float = 86_400.0
    offer_per_session: int = 1
    offer_show_s: float = 900.0
    intent_offer: float = 0.6


class Models:
    """The learners one shard shares across its users."""

    def __init__(self, neighbours_k: int = 30, seed: int = 0, ranker: str = "lr") -> None:
        self.cv = CoVisitation(k=neighbours_k)
        self.pop = Popularity()
        self.ranker = OnlineRanker(seed=seed, kind=ranker)
        # trending candidates' user-independent terms, for the current weights and trending list
        self._trend: list[tuple[str, str | None, float, float | None]] = []
        self._trend_key: tuple[int, int] = (0, 0)

    def trend_terms(self) -> list[tuple[str, str | None, float, float | None]]:
        """``(item, category, popularity term, price)`` of the trending candidates, cached until
        the weights are frozen anew or the trending list is refreshed (both are new objects)."""
        frozen, trending = self.ranker.frozen, self.pop.trending
        key = (id(frozen), id(trending))
        if key != self._trend_key:
            w4 = frozen[4]
            top = trending[0][1] if trending else 1.0
            cat_of, price_of = self.pop.cat_of.get, self.pop.price_of.get
            self._trend = [
                (it, cat_of(it), w4 * (sc / top if sc < top else 1.0), price_of(it))
                for it, sc in trending[:TREND_N]
            ]
            self._trend_key = key
        return self._trend

    def boundary(self, ts: float) -> None:
        """Batch-boundary upkeep: prune neighbours, refresh top lists, freeze ranking weights."""
        self.cv.prune()
        self.pop.refresh()
        self.ranker.freeze()
        self.cv.rebase(ts)
        self.pop.rebase(ts)


def fill_context(
    u: UserState,
    m: Models,
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
    seen = u.seen
    cart = u.cart
    favs = u.profile.favs if u.profile is not None else ()
    lo = band[0] / slack if band else 0.0
    hi = band[1] * slack if band else 0.0
    for it, v in cands.items():
        c = cat_of.get(it)
        if c is not None:
            v[2] = cats.get(c, 0.0)
            if c == cur_cat:
                v[3] = 1.0
        if v[4] == 0.0:
            s = score.get(it)
            if s is not None:
                v[4] = s / top_pop if s < top_pop else 1.0
        if band is not None:
            p = price_of.get(it)
            v[6] = 0.5 if p is None else (1.0 if lo <= p <= hi else 0.0)
        else:
            v[6] = 0.5
        if it in seen:
            v[7] = 1.0
        if it in cart:
            v[9] = 1.0
        if it in favs:
            v[10] = 1.0


def candidates(u: UserState, m: Models, cats: dict[str, float]) -> dict[str, list[float]]:
    """Stage one: every candidate with its generator features (context features are zero)."""
    cands: dict[str, list[float]] = {}
    get = cands.get
    recent = u.recent
    seeds = recent[-1 : -min(SEEDS, len(SEED_FACTORS)) - 1 : -1]
    for idx, seed in enumerate(seeds):
        lst = m.cv.top(seed, CV_PER_SEED)
        if not lst:
            continue
        top_w = lst[0][1]
        f = SEED_FACTORS[idx]
        for nbr, w in lst:
            v = get(nbr)
            if v is None:
                v = cands[nbr] = [0.0] * N_FEATURES
            x = w / top_w
            v[0] += f * x
            if idx == 0:
                v[1] = x
    if cats:
        cat_top = m.pop.cat_top
        for c, _ in heapq.nlargest(2, cats.items(), key=_second):
            lst2 = cat_top.get(c)
            if not lst2:
                continue
            top = lst2[0][1]
            for it, s in lst2[:CAT_PER_CAT]:
                v = get(it)
                if v is None:
                    v = cands[it] = [0.0] * N_FEATURES
                v[5] = s / top
    for it, _ in m.pop.trending[:TREND_N]:
        if it not in cands:
            cands[it] = [0.0] * N_FEATURES
    n = len(recent)
    for pos in range(n):
        it = recent[n - 1 - pos]
        v = get(it)
        if v is None:
            v = cands[it] = [0.0] * N_FEATURES
        v[8] = 1.0 / (1 + pos)
    for it in u.cart:
        if it not in cands:
            cands[it] = [0.0] * N_FEATURES
    if u.profile is not None:
        for it in u.profile.favs[:5]:
            if it not in cands:
                cands[it] = [0.0] * N_FEATURES
    return cands


def feature_dict(v: list[float]) -> dict[str, float]:
    return dict(zip(FEATURES, v, strict=True))


def fast_scores(
    u: UserState,
    m: Models,
    cats: dict[str, float],
    top_cats: list[str],
    band: tuple[float, float] | None,
    slack: float,
    cur_cat: str | None,
    why: dict[str, str],
    streams: list[tuple[str, float]] | None = None,
) -> dict[str, float]:
    """Stage one and two in one pass: every candidate's linear score under the frozen weights.

    Computes ``intercept + frozen . features`` for the features :func:`candidates` and
    :func:`fill_context` describe (a test checks it), without a vector per candidate: a
    candidate's context terms are added once, when a generator first proposes it, and each
    generator adds its own term. Category-popular items need no look-ups at all: their category
    (hence its blended weight) is the list's, and their popularity is the list's own count.
    ``why`` receives each candidate's reason code (its generator; a re-show or cart wins).
    With ``streams``, category-popular items new to the candidates are appended there as
    ``(item, score)`` instead of entering the dict (their reason code is ``cat``); the result is
    the same as without, and cheaper.
    """
    w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10 = m.ranker.frozen
    sc: dict[str, float] = {}
    get = sc.get
    pop = m.pop
    cat_of = pop.cat_of.get
    cats_get = cats.get
    pop_get = pop.score.get
    trending = pop.trending
    top_pop = trending[0][1] if trending else 1.0
    w4n = w4 / top_pop
    base = float(m.ranker.model.intercept)
    if band is None:
        base += 0.5 * w6
        lo = hi = 0.0
    else:
        lo = band[0] / slack
        hi = band[1] * slack
    price_get = pop.price_of.get

    def context(it: str) -> float:
        s = base
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

    recent = u.recent
    cv_top = m.cv.top
    for idx, seed in enumerate(recent[-1 : -min(SEEDS, len(SEED_FACTORS)) - 1 : -1]):
        lst = cv_top(seed, CV_PER_SEED)
        if not lst:
            continue
        a = (SEED_FACTORS[idx] * w0 + (w1 if idx == 0 else 0.0)) / lst[0][1]
        for nbr, w in lst:
            v = get(nbr)
            if v is None:
                v = context(nbr)
                why[nbr] = "cv"
            sc[nbr] = v + a * w
    for it, c, pop_term, pr in m.trend_terms():
        if it in sc:
            continue
        v = base + pop_term
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
        sc[it] = (context(it) if v is None else v) + w8 / (1 + pos)
    for it in u.cart:
        v = get(it)
        sc[it] = (context(it) if v is None else v) + w9
    favs: Any = ()
    if u.profile is not None:
        favs = u.profile.favs
        for it in favs[:5]:
            if it not in sc:
                sc[it] = context(it)
                why[it] = "fav"
    seen = u.seen
    if top_cats:
        cat_top = pop.cat_top
        for c in top_cats:
            lst2 = cat_top.get(c)
            if not lst2:
                continue
            lst2 = lst2[:CAT_PER_CAT]
            if not lst2:
                continue
            b = w5 / lst2[0][1]
            if band is None and streams is not None:
                # Items that are new candidates and carry no per-user term (not seen, not a
                # favourite) take their context terms from the list itself (its category, its
                # counts), so they are scored in one comprehension and merged by the caller.
                off = base + w2 * cats_get(c, 0.0) + (w3 if c == cur_cat else 0.0)
                a4 = w4n + b
                streams.extend(
                    [
                        (it, off + a4 * s if s < top_pop else off + b * s + w4)
                        for it, s in lst2
                        if it not in sc and it not in seen and it not in favs
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
    for it in seen:
        v = get(it)
        if v is not None:
            sc[it] = v + w7
            why[it] = "re"
    for it in u.cart:
        why[it] = "cart"
    for it in favs:
        v = get(it)
        if v is not None:
            sc[it] = v + w10
    return sc


def rank_home(
    u: UserState,
    m: Models,
    rules: Rules,
    reshow_slots: int | None = None,
    explore: bool = True,
    cats: dict[str, float] | None = None,
    band: tuple[float, float] | None | Literal[False] = False,
) -> Ranked:
    """Home recommendations, best first: items, scores and reason codes."""
    if cats is None:
        cats = u.blended_categories()
    top_cats = top_keys(cats, 2)
    cur = u.current
    cur_cat = u.item_cat.get(cur) if cur is not None else None
    why: dict[str, str] = {}
    streams: list[tuple[str, float]] = []
    price_band = u.price_range() if band is False else band  # False: the caller did not compute it
    sc = fast_scores(u, m, cats, top_cats, price_band, rules.price_slack, cur_cat, why, streams)
    if rules.suppress_bought and (u.bought or (u.profile is not None and u.profile.bought)):
        bought = set(u.bought)
        if u.profile is not None:
            bought.update(u.profile.bought)
        for it in bought:
            sc.pop(it, None)
        streams = [kv for kv in streams if kv[0] not in bought]
    n = rules.home_n
    slots = rules.reshow_slots if reshow_slots is None else reshow_slots
    n_explore = int(rules.explore_share * n) if explore else 0
    limit = n - n_explore
    seen = u.seen
    pool = list(sc.items())
    if streams:
        pool += streams
    pool.sort(key=_second, reverse=True)
    best = pool[: limit + min(slots, len(seen)) + 2]
    items: list[str] = []
    scores: list[float] = []
    reshown = 0
    for it, s in best:
        if it in seen:
            if reshown >= slots:
                continue
            reshown += 1
        items.append(it)
        scores.append(int(s * 1000) / 1000)
        if len(items) >= limit:
            break
    wget = why.get
    out = Ranked(items, scores, [wget(it, "cat") for it in items])
    if n_explore:
        _explore(u, m, cats, out, n_explore, u.bought)
    return out


def top_keys(weights: dict[str, float], k: int) -> list[str]:
    """The ``k`` heaviest keys, heaviest first (cheap for the one or two a session has)."""
    if len(weights) <= 1:
        return list(weights)
    if len(weights) <= k:
        return sorted(weights, key=weights.__getitem__, reverse=True)
    return [c for c, _ in heapq.nlargest(k, weights.items(), key=_second)]


def _explore(
    u: UserState,
    m: Models,
    cats: dict[str, float],
    out: Ranked,
    k: int,
    bought: list[str],
) -> None:
    """Exploration slots: trending items outside the user's categories, rotated per event."""
    trending = m.pop.trending
    if not trending:
        return
    have = set(out.items)
    cat_of = m.pop.cat_of
    start = (u.n * 7) % max(1, len(trending))
    picked = 0
    for j in range(len(trending)):
        it = trending[(start + j) % len(trending)][0]
        if it in have or it in bought or it in u.seen or cat_of.get(it) in cats:
            continue
        out.append(it, 0.0, "ex")
        picked += 1
        if picked >= k:
            break


def fallback_home(m: Models, n: int) -> Ranked:
    top = m.pop.trending[:n]
    t = top[0][1] if top else 1.0
    return Ranked([it for it, _ in top], [round(s / t, 3) for _, s in top], ["pop"] * len(top))


def product_list(m: Models, cur: str, cat: str | None, n: int) -> bytes:
    """The product page of ``cur``: its strongest co-visited neighbours, then its category's
    popular items; the same for every user on that page (stored once per item)."""
    items: list[str] = []
    scores: list[float] = []
    lst = m.cv.top(cur, n + 1)
    top = lst[0][1] if lst else 1.0
    for nbr, w in lst:
        if nbr == cur:
            continue
        items.append(nbr)
        scores.append(int(w / top * 1000) / 1000)  # strength relative to the strongest
        if len(items) >= n:
            break
    if len(items) < n and cat is not None:
        for it, _ in m.pop.cat_top.get(cat, ()):
            if it != cur and it not in items:
                items.append(it)
                scores.append(0.0)
                if len(items) >= n:
                    break
    return orjson.dumps({"items": items, "scores": scores})


def _sentence(code: str, u: UserState, m: Models, item: str) -> str:
    if code == "cv":
        return f"because you viewed {u.current}"
    if code == "cat":
        return f"popular in {m.pop.cat_of.get(item, 'a category')}, a category you browse"
    if code == "re":
        return "you viewed this earlier in this visit"
    if code == "cart":
        return "still in your cart"
    if code == "fav":
        return "one of your favourites"
    if code == "batch":
        return "recommended for you (refreshed periodically)"
    return "trending now"


def decide(
    u: UserState,
    m: Models,
    rules: Rules,
    home: Ranked | list[tuple[str, float, str]],
    ts: float,
    mode: str,
    top_cats: list[tuple[str, float]] | None = None,
    intent: float | None = None,
) -> dict[str, Any]:
    """Every stored placement for ``u`` around an already ranked home list.

    ``recent`` (continue shopping) and ``nav`` (category order) are derived by the client from
    the context written beside these (``ctx.cart``, ``ctx.recent``, ``ctx.categories``), so
    they cost nothing here and are never stored twice.
    """
    home = Ranked.of(home)
    if home.items and mode == "ranked":
        reason = _sentence(home.codes[0], u, m, home.items[0])
    elif mode == "degraded":
        reason = "popular right now (personalization is catching up)"
    elif mode == "ranked":
        reason = "trending now"
    else:
        reason = "popular right now (not personalized)"
    d: dict[str, Any] = {
        "home": {
            "items": home.items,
            "scores": home.scores,
            "why": "".join(map(CHAR.__getitem__, home.codes)),
            "reason": reason,
        }
    }
    if mode != "ranked":
        d["hero"] = {"theme": "trending", "reason": "what is popular right now"}
        return d
    if top_cats is None:
        top_cats = heapq.nlargest(5, u.blended_categories().items(), key=_second)
    if intent is None:
        intent = u.intent()
    d["hero"] = _hero(u, top_cats, intent)
    d["offer"] = _offer(u, rules, ts, intent)
    d["assist"] = _assist(u, rules, ts)
    return d


def _popular_categories(m: Models) -> list[str]:
    out: list[str] = []
    cat_of = m.pop.cat_of
    for it, _ in m.pop.trending:
        c = cat_of.get(it)
        if c is not None and c not in out:
            out.append(c)
            if len(out) >= 5:
                break
    return out


def _hero(u: UserState, cats: list[tuple[str, float]], intent: float) -> dict[str, str]:
    p = u.profile
    if u.cart and intent >= 0.5:
        return {"theme": "checkout", "reason": f"{len(u.cart)} item(s) waiting in your cart"}
    if p is not None and p.abandoned and u.n <= 3:
        return {"theme": "cart_reminder", "reason": "you left items in your cart last time"}
    mode = u.mode()
    if cats:
        if mode == RAPID:
            return {"theme": f"deals:{cats[0][0]}", "reason": f"you are scanning {cats[0][0]}"}
        if mode == DEEP:
            return {"theme": f"guide:{cats[0][0]}", "reason": f"you are comparing {cats[0][0]}"}
        return {"theme": f"category:{cats[0][0]}", "reason": f"you browse {cats[0][0]}"}
    if p is None or p.sessions == 0:
        return {"theme": "welcome", "reason": "first visit: a welcome banner"}
    return {"theme": "trending", "reason": "nothing specific yet this visit"}


def _offer(u: UserState, rules: Rules, ts: float, intent: float) -> dict[str, Any] | str:
    """The offer to show, or the code of why none is shown (see :mod:`rtp.decisions.reasons`)."""
    if u.offer is not None:
        if ts <= u.offer_until:
            return u.offer
        return "offer_cap"
    p = u.profile
    if u.offer_n >= rules.offer_per_session:
        return "offer_cap"
    # (an offer_ts after ts comes from a profile a resumed run reads back: no cooldown then)
    if p is not None and p.offer_ts and 0.0 <= ts - p.offer_ts < rules.offer_cooldown_s:
        return "offer_cooldown"
    offer: dict[str, Any] | None = None
    if p is not None and p.abandoned and u.n <= 3 and not u.buys:
        n = len(p.abandoned)
        offer = {
            "show": True,
            "type": "cart_reminder",
            "items": p.abandoned[:3],
            "reason": f"you left {n} item{'s' if n != 1 else ''} in your cart last visit",
        }
    elif not u.buys and intent >= rules.intent_offer:
        item, times = max(u.seen.items(), key=_second) if u.seen else (None, 0)
        target = next(iter(u.cart), item)
        why = (
            f"you viewed {item} {times} times"
            if times >= 3
            else f"{len(u.cart)} item(s) in your cart"
        )
        offer = {
            "show": True,
            "type": "discount",
            "pct": 10,
            "item": target,
            "reason": f"high purchase intent: {why}",
        }
    if offer is None:
        return "no_intent"
    u.offer = offer
    u.offer_n += 1
    u.offer_until = ts + rules.offer_show_s
    u.offer_ts = ts
    return offer


def _assist(u: UserState, rules: Rules, ts: float) -> dict[str, Any] | str:
    """The chat trigger to show, or the code of why none is shown."""
    if not u.qcount and len(u.backs) < 3 and u.help_s < 60.0:
        return "no_frustration"
    triggers: list[tuple[str, str, str]] = []
    if u.qcount:
        q, times = max(u.qcount.items(), key=_second)
        if times >= 3:
            triggers.append(("repeated_search", f"you searched '{q}' {times} times", f"q:{q}"))
    if len(u.backs) >= 3 and u.backs[-1] - u.backs[-3] <= 60.0:
        triggers.append(("back_navigation", "you went back several times in a minute", "back"))
    if u.help_s >= 60.0:
        triggers.append(("help_dwell", f"you spent {u.help_s:.0f}s on help pages", "help"))
    # one offer of chat per kind of trouble per visit: a new kind may trigger after the cooldown
    fresh = [t for t in triggers if t[2] != u.assist_key and t[2] not in u.assist_done]
    trigger = fresh[0] if fresh else (triggers[0] if triggers else None)
    if trigger is None:
        return "no_frustration"
    if u.assist_ts and ts - u.assist_ts < rules.assist_cooldown_s:
        return "assist_cooldown"
    if not fresh:
        return "assist_done"
    u.assist_ts = ts
    u.assist_n += 1
    u.assist_key = trigger[2]
    u.assist_done.append(trigger[2])
    return {"show": True, "trigger": trigger[0], "reason": trigger[1]}
