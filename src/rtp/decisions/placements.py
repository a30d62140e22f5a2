"""Every stored placement of one decision around the ranked home list: ``hero`` (banner theme),
``offer`` (intent discount or cart reminder, capped and cooled down) and ``assist`` (proactive
chat on frustration, cooled down), each with one sentence a person reads.

``recent`` (continue shopping) and ``nav`` (category order) are derived by the client from the
context written beside these, and ``product`` pages are stored once per item by the item step
(:mod:`rtp.decisions.product`), so nothing is stored twice. Search re-ranking runs in the client
(``rtp.Client.rerank``) from the same context.
"""

from __future__ import annotations

from operator import itemgetter
from typing import TYPE_CHECKING, Any

from rtp.decisions.ranked import Ranked, Rules
from rtp.decisions.reasons import CHAR
from rtp.session.state import DEEP, RAPID, UserState

if TYPE_CHECKING:
    from rtp.engine.view import ModelView

_second = itemgetter(1)


def _sentence(code: str, u: UserState, m: ModelView, item: str) -> str:
    if code == "cv":
        return f"because you viewed {u.session.current}"
    if code == "cv2":
        return f"goes with items viewed with {u.session.current}"
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
    m: ModelView,
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
        reason = (
            "recommended for you earlier in this visit (personalization is catching up)"
            if home.codes and home.codes[0] == "pre"
            else "popular right now (personalization is catching up)"
        )
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
        top_cats = sorted(u.blended_categories().items(), key=_second, reverse=True)[:5]
    if intent is None:
        intent = u.session.intent()
    d["hero"] = _hero(u, top_cats, intent)
    d["offer"] = _offer(u, rules, ts, intent)
    d["assist"] = _assist(u, rules, ts)
    return d


def _hero(u: UserState, cats: list[tuple[str, float]], intent: float) -> dict[str, str]:
    p = u.profile
    if u.session.cart and intent >= 0.5:
        return {
            "theme": "checkout",
            "reason": f"{len(u.session.cart)} item(s) waiting in your cart",
        }
    if p is not None and p.abandoned and u.session.n <= 3:
        return {"theme": "cart_reminder", "reason": "you left items in your cart last time"}
    mode = u.session.mode()
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
    if u.serving.offer is not None:
        if ts <= u.serving.offer_until:
            return u.serving.offer
        return "offer_cap"
    p = u.profile
    if u.serving.offer_n >= rules.offer_per_session:
        return "offer_cap"
    # (an offer_ts after ts comes from a profile a resumed run reads back: no cooldown then)
    if p is not None and p.offer_ts and 0.0 <= ts - p.offer_ts < rules.offer_cooldown_s:
        return "offer_cooldown"
    offer: dict[str, Any] | None = None
    if p is not None and p.abandoned and u.session.n <= 3 and not u.session.buys:
        n = len(p.abandoned)
        offer = {
            "show": True,
            "type": "cart_reminder",
            "items": p.abandoned[:3],
            "reason": f"you left {n} item{'s' if n != 1 else ''} in your cart last visit",
        }
    elif not u.session.buys and intent >= rules.intent_offer:
        item, times = max(u.session.seen.items(), key=_second) if u.session.seen else (None, 0)
        target = next(iter(u.session.cart), item)
        why = (
            f"you viewed {item} {times} times"
            if times >= 3
            else f"{len(u.session.cart)} item(s) in your cart"
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
    u.serving.offer = offer
    u.serving.offer_n += 1
    u.serving.offer_until = ts + rules.offer_show_s
    u.serving.offer_ts = ts
    return offer


def _assist(u: UserState, rules: Rules, ts: float) -> dict[str, Any] | str:
    """The chat trigger to show, or the code of why none is shown."""
    if not u.session.qcount and len(u.session.backs) < 3 and u.session.help_s < 60.0:
        return "no_frustration"
    triggers: list[tuple[str, str, str]] = []
    if u.session.qcount:
        q, times = max(u.session.qcount.items(), key=_second)
        if times >= 3:
            triggers.append(("repeated_search", f"you searched '{q}' {times} times", f"q:{q}"))
    if len(u.session.backs) >= 3 and u.session.backs[-1] - u.session.backs[-3] <= 60.0:
        triggers.append(("back_navigation", "you went back several times in a minute", "back"))
    if u.session.help_s >= 60.0:
        triggers.append(("help_dwell", f"you spent {u.session.help_s:.0f}s on help pages", "help"))
    # one offer of chat per kind of trouble per visit: a new kind may trigger after the cooldown
    fresh = [
        t for t in triggers if t[2] != u.serving.assist_key and t[2] not in u.serving.assist_done
    ]
    trigger = fresh[0] if fresh else (triggers[0] if triggers else None)
    if trigger is None:
        return "no_frustration"
    if u.serving.assist_ts and ts - u.serving.assist_ts < rules.assist_cooldown_s:
        return "assist_cooldown"
    if not fresh:
        return "assist_done"
    u.serving.assist_ts = ts
    u.serving.assist_n += 1
    u.serving.assist_key = trigger[2]
    u.serving.assist_done.append(trigger[2])
    return {"show": True, "trigger": trigger[0], "reason": trigger[1]}
