"""Decisions: candidates (stage one), ranking (stage two), then business rules, with reasons.

:func:`rank_home` is the hot path (it runs for every user whose context changed in a batch);
:func:`decide` adds the cheaper placements around it. Every list entry carries a reason code that
:data:`REASONS` turns into a sentence; every placement carries one sentence for the whole.

Placements: ``home`` and ``product`` recommendations, ``recent`` (continue shopping: re-views are
a placement in their own right), ``nav`` (category order), ``hero`` (banner theme), ``offer``
(intent discount or cart reminder, capped and cooled down) and ``assist`` (proactive chat on
frustration, cooled down). Search re-ranking runs in the client (``rtp.Client.rerank``) from the
context written beside these.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from rtp.candidates import CoVisitation, Popularity
from rtp.ranking import FEATURES, OnlineRanker
from rtp.session import DEEP, RAPID, UserState

_second = itemgetter(1)
N_FEATURES = len(FEATURES)
SEED_FACTORS = (1.0, 0.6, 0.4)
CV_PER_SEED = 8  # neighbours taken from each of the last three items (measured in BENCHMARKS.md)
CAT_PER_CAT = 15  # popular items from each of the two strongest categories (the main discovery signal)
TREND_N = 4

REASONS = {
    "cv": "viewed together with {0}",
    "re": "you viewed this",
    "cart": "still in your cart",
    "cat": "popular in {0}, a category you browse",
    "pop": "trending now",
    "fav": "one of your favourites",
    "ex": "something different: trending elsewhere",
}


@dataclass(frozen=True)
class Rules:
    """Per-placement business rules (from :class:`rtp.config.Settings`)."""

    home_n: int = 20
    product_n: int = 10
    reshow_slots: int = 4  # session items allowed in the home list ("continue shopping")
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

    def __init__(self, neighbours_k: int = 30, seed: int = 0) -> None:
        self.cv = CoVisitation(k=neighbours_k)
        self.pop = Popularity()
        self.ranker = OnlineRanker(seed=seed)

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
    seeds = recent[-1:-4:-1]
    for idx, s in enumerate(seeds):
        lst = m.cv.top(s, CV_PER_SEED)
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
    return dict(zip(FEATURES, v))


def fast_scores(
    u: UserState,
    m: Models,
    cats: dict[str, float],
    top_cats: list[str],
    band: tuple[float, float] | None,
    slack: float,
    cur_cat: str | None,
) -> dict[str, float]:
    """Stage one and two in one pass: every candidate's linear score under the frozen weights.

    Computes exactly ``intercept + frozen . features`` for the features :func:`candidates` and
    :func:`fill_context` describe (a test checks it), without building a vector per candidate:
    generators add their terms as they go, then one pass adds the context terms.
    """
    w0, w1, w2, w3, w4, w5, w6, w7, w8, w9, w10 = m.ranker.frozen
    sc: dict[str, float] = {}
    get = sc.get
    recent = u.recent
    cv_top = m.cv.top
    for idx, seed in enumerate(recent[-1:-4:-1]):
        lst = cv_top(seed, CV_PER_SEED)
        if not lst:
            continue
        a = SEED_FACTORS[idx] * w0 + (w1 if idx == 0 else 0.0)
        a /= lst[0][1]
        for nbr, w in lst:
            sc[nbr] = get(nbr, 0.0) + a * w
    if top_cats:
        cat_top = m.pop.cat_top
        for c in top_cats:
            lst2 = cat_top.get(c)
            if not lst2:
                continue
            b = w5 / lst2[0][1]
            for it, s in lst2[:CAT_PER_CAT]:
                sc[it] = get(it, 0.0) + b * s
    trending = m.pop.trending
    for it, _ in trending[:TREND_N]:
        if it not in sc:
            sc[it] = 0.0
    n = len(recent)
    for pos in range(n):
        it = recent[n - 1 - pos]
        sc[it] = get(it, 0.0) + w8 / (1 + pos)
    for it in u.cart:
        if it not in sc:
            sc[it] = 0.0
    favs: Any = ()
    if u.profile is not None:
        favs = u.profile.favs
        for it in favs[:5]:
            if it not in sc:
                sc[it] = 0.0
    cat_of = m.pop.cat_of.get
    cats_get = cats.get
    pop_get = m.pop.score.get
    top_pop = trending[0][1] if trending else 1.0
    seen = u.seen
    cart = u.cart
    base = m.ranker.model.intercept
    if band is None:
        base += 0.5 * w6
        lo = hi = 0.0
    else:
        lo = band[0] / slack
        hi = band[1] * slack
        price_get = m.pop.price_of.get
    w4n = w4 / top_pop
    for it, s in sc.items():
        s += base
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
        if it in seen:
            s += w7
        if it in cart:
            s += w9
        if it in favs:
            s += w10
        sc[it] = s
    return sc


def _reason_code(u: UserState, m: Models, it: str, top_cats: list[str]) -> str:
    if it in u.cart:
        return "cart"
    if it in u.seen:
        return "re"
    nb = m.cv.nb
    for seed in u.recent[-1:-4:-1]:
        d = nb.get(seed)
        if d is not None and it in d:
            return "cv"
    if m.pop.cat_of.get(it) in top_cats:
        return "cat"
    if u.profile is not None and it in u.profile.favs:
        return "fav"
    return "pop"


def rank_home(
    u: UserState,
    m: Models,
    rules: Rules,
    reshow_slots: int | None = None,
    explore: bool = True,
    cats: dict[str, float] | None = None,
) -> list[tuple[str, float, str]]:
    """Home recommendations: ``[(item, score, reason code)]``, best first."""
    if cats is None:
        cats = u.blended_categories()
    top_cats = [c for c, _ in heapq.nlargest(2, cats.items(), key=_second)] if cats else []
    cur = u.current
    cur_cat = u.item_cat.get(cur) if cur is not None else None
    sc = fast_scores(u, m, cats, top_cats, u.price_range(), rules.price_slack, cur_cat)
    if rules.suppress_bought:
        for it in u.bought:
            sc.pop(it, None)
        if u.profile is not None:
            for it in u.profile.bought:
                sc.pop(it, None)
    n = rules.home_n
    slots = rules.reshow_slots if reshow_slots is None else reshow_slots
    n_explore = int(rules.explore_share * n) if explore else 0
    limit = n - n_explore
    seen = u.seen
    best = heapq.nlargest(limit + min(slots, len(seen)) + 2, sc.items(), key=_second)
    out: list[tuple[str, float, str]] = []
    reshown = 0
    for it, s in best:
        if it in seen:
            if reshown >= slots:
                continue
            reshown += 1
        out.append((it, int(s * 1000) / 1000, _reason_code(u, m, it, top_cats)))
        if len(out) >= limit:
            break
    if n_explore:
        _explore(u, m, cats, out, n_explore, set(u.bought))
    return out


def _explore(
    u: UserState,
    m: Models,
    cats: dict[str, float],
    out: list[tuple[str, float, str]],
    k: int,
    bought: set[str],
) -> None:
    """Exploration slots: trending items outside the user's categories, rotated per event."""
    trending = m.pop.trending
    if not trending:
        return
    have = {it for it, _, _ in out}
    cat_of = m.pop.cat_of
    start = (u.n * 7) % max(1, len(trending))
    picked = 0
    for j in range(len(trending)):
        it = trending[(start + j) % len(trending)][0]
        if it in have or it in bought or it in u.seen or cat_of.get(it) in cats:
            continue
        out.append((it, 0.0, "ex"))
        picked += 1
        if picked >= k:
            break


def fallback_home(m: Models, n: int) -> list[tuple[str, float, str]]:
    top = m.pop.trending
    t = top[0][1] if top else 1.0
    return [(it, round(s / t, 3), "pop") for it, s in top[:n]]


def product_list(u: UserState, m: Models, rules: Rules) -> tuple[str | None, list[list[Any]]]:
    cur = u.current
    if cur is None:
        return None, []
    bought = set(u.bought)
    items: list[list[Any]] = []
    for nbr, w in m.cv.top(cur, rules.product_n + 2):
        if nbr == cur or nbr in bought:
            continue
        items.append([nbr, round(w, 3)])
        if len(items) >= rules.product_n:
            break
    if len(items) < rules.product_n:
        c = u.item_cat.get(cur)
        have = {i for i, _ in items}
        for it, s in m.pop.cat_top.get(c, ()) if c is not None else ():
            if it != cur and it not in have and it not in bought:
                items.append([it, 0.0])
                if len(items) >= rules.product_n:
                    break
    return cur, items


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
    return "trending now"


def decide(
    u: UserState,
    m: Models,
    rules: Rules,
    home: list[tuple[str, float, str]],
    ts: float,
    mode: str,
    cats: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Every placement for ``u`` around an already ranked home list."""
    if cats is None:
        cats = u.blended_categories()
    personal = mode == "ranked"
    d: dict[str, Any] = {
        "home": {
            "items": [[it, s] for it, s, _ in home],
            "why": [c for _, _, c in home],
            "reason": (
                _sentence(home[0][2], u, m, home[0][0]) if home and personal else "trending now"
            ),
        }
    }
    if not personal:
        if mode == "degraded":
            d["home"]["reason"] = "popular right now (personalization is catching up)"
        else:
            d["home"]["reason"] = "popular right now (not personalized)"
        d["nav"] = {"categories": _popular_categories(m), "reason": "most popular categories"}
        d["hero"] = {"theme": "trending", "reason": "what is popular right now"}
        if mode == "degraded":
            _, plist = product_list(u, m, rules)
            d["product"] = {"for": u.current, "items": plist, "reason": "viewed together"}
        return d
    cur, plist = product_list(u, m, rules)
    if cur is not None:
        d["product"] = {
            "for": cur,
            "items": plist,
            "reason": f"shoppers who viewed {cur} also viewed these",
        }
    rec = [it for it in u.cart] + [it for it in reversed(u.recent) if it not in u.cart]
    rec = [it for it in rec if it not in u.bought][:8]
    if rec:
        d["recent"] = {
            "items": rec,
            "reason": "still in your cart" if u.cart else "continue shopping",
        }
    top = heapq.nlargest(5, cats.items(), key=_second)
    if top:
        d["nav"] = {
            "categories": [c for c, _ in top],
            "reason": f"you browse {top[0][0]} most",
        }
    else:
        d["nav"] = {"categories": _popular_categories(m), "reason": "most popular categories"}
    d["hero"] = _hero(u, top)
    d["offer"] = _offer(u, rules, ts)
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


def _hero(u: UserState, cats: list[tuple[str, float]]) -> dict[str, str]:
    p = u.profile
    if u.cart and u.intent() >= 0.5:
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


def _offer(u: UserState, rules: Rules, ts: float) -> dict[str, Any]:
    if u.offer is not None:
        if ts <= u.offer_until:
            return u.offer
        return {"show": False, "reason": "offer already shown this visit (cap 1 per visit)"}
    p = u.profile
    if u.offer_n >= rules.offer_per_session:
        return {"show": False, "reason": "offer cap reached for this visit"}
    if p is not None and p.offer_ts and ts - p.offer_ts < rules.offer_cooldown_s:
        return {"show": False, "reason": "an offer was shown recently (cooldown)"}
    offer: dict[str, Any] | None = None
    if p is not None and p.abandoned and u.n <= 3 and not u.buys:
        n = len(p.abandoned)
        offer = {
            "show": True,
            "type": "cart_reminder",
            "items": p.abandoned[:3],
            "reason": f"you left {n} item{'s' if n != 1 else ''} in your cart last visit",
        }
    elif not u.buys:
        intent = u.intent()
        if intent >= rules.intent_offer:
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
        return {"show": False, "reason": "no offer: intent is not high enough"}
    u.offer = offer
    u.offer_n += 1
    u.offer_until = ts + rules.offer_show_s
    if p is not None:
        p.offer_ts = ts
    return offer


def _assist(u: UserState, rules: Rules, ts: float) -> dict[str, Any]:
    trigger = None
    if u.qcount:
        q, times = max(u.qcount.items(), key=_second)
        if times >= 3:
            trigger = ("repeated_search", f"you searched '{q}' {times} times", f"q:{q}")
    if trigger is None and len(u.backs) >= 3 and u.backs[-1] - u.backs[-3] <= 60.0:
        trigger = ("back_navigation", "you went back several times in a minute", "back")
    if trigger is None and u.help_s >= 60.0:
        trigger = ("help_dwell", f"you spent {u.help_s:.0f}s on help pages", "help")
    if trigger is None:
        return {"show": False, "reason": "no sign of frustration"}
    if u.assist_ts and ts - u.assist_ts < rules.assist_cooldown_s:
        return {"show": False, "reason": "chat was offered recently (cooldown)"}
    if u.assist_key == trigger[2] and u.assist_ts:
        return {"show": False, "reason": "chat was already offered for this"}
    u.assist_ts = ts
    u.assist_n += 1
    u.assist_key = trigger[2]
    return {"show": True, "trigger": trigger[0], "reason": trigger[1]}
