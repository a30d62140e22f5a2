"""Session context: what a user is doing right now, bounded, in event time.

A :class:`UserState` holds one user's current session (time-decayed categories, the price range
explored, recent queries, recently viewed items, cart, pace, engagement mode, purchase intent and
frustration signals) and their long-term :class:`~rtp.session.profile.Profile`. Sessions split on an
inactivity gap in event time (or when an explicit session id changes); a finished session is
folded into the profile by :func:`fold_session`. Every collection is bounded, so a user costs the
same after a thousand events as after ten.

Category weights decay without touching every entry on every event: each event adds
``2 ** ((ts - t0) / half_life)`` to its category, so later events weigh more, and reading divides
by the total. ``t0`` is the session start.
"""

from __future__ import annotations

from typing import Any, Literal

from rtp.capture import events as ev
from rtp.session.profile import Profile

MAX_SEEN = 60
MAX_SESSION_CATS = 16
MAX_CART = 30
MAX_BOUGHT = 20
MAX_QUERIES = 20
MAX_PRICES = 64

# Engagement modes
RAPID = "rapid"  # many short page views: scanning
DEEP = "deep"  # long dwell on few items: deliberating
BROWSING = "browsing"

VIEW_TYPES = frozenset({ev.PRODUCT_VIEW, ev.CLICK, ev.HOVER})


class UserState:
    """One user's session context and profile (the per-user Bytewax state, inside a shard)."""

    __slots__ = (
        "uid",
        "dnp",
        "profile",
        "sid",
        "sn",
        "start",
        "cat_ref",
        "last",
        "n",
        "views",
        "carts",
        "buys",
        "revenue",
        "cats",
        "prices",
        "queries",
        "qcount",
        "recent",
        "seen",
        "item_cat",
        "cart",
        "bought",
        "backs",
        "help_s",
        "assist_ts",
        "assist_n",
        "offer_n",
        "served",
        "served_ts",
        "served_hit",
        "arms",
        "strategy",
        "attributed",
        "offer",
        "offer_until",
        "offer_ts",
        "assist_key",
        "assist_done",
        "device",
        "country",
        "referral",
        "hour",
        "returning",
    )

    def __init__(self, uid: str, profile: Profile | None = None, dnp: bool = False) -> None:
        self.uid = uid
        self.dnp = dnp
        self.profile = profile
        self.returning = profile is not None and profile.sessions > 0
        self.sid: str | None = None
        self.sn = 0  # sessions started in this process
        self.start = 0.0
        self.cat_ref = 0.0
        self.last = 0.0
        self.arms: dict[str, str] | None = None
        self.strategy: str | None = None
        self.served: list[str] | None = None
        self.served_ts = 0.0
        self.served_hit = False
        self.assist_ts = 0.0
        self.device: str | None = None
        self.country: str | None = None
        self.referral: str | None = None
        self.hour = -1
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.views = 0
        self.carts = 0
        self.buys = 0
        self.revenue = 0.0
        self.cats: dict[str, float] = {}
        self.prices: list[float] = []
        self.queries: list[str] = []
        self.qcount: dict[str, int] = {}
        self.recent: list[str] = []  # unique, most recent last
        self.seen: dict[str, int] = {}  # item -> interactions this session
        self.item_cat: dict[str, str] = {}
        self.cart: dict[str, float | None] = {}
        self.bought: list[str] = []
        self.backs: list[float] = []
        self.help_s = 0.0
        self.assist_n = 0
        self.offer_n = 0
        self.attributed = 0
        self.offer: dict[str, object] | None = None
        self.offer_until = 0.0
        self.offer_ts = 0.0  # when this session issued its offer (folded into the profile)
        self.assist_key: str | None = None
        self.assist_done: list[str] = []

    # -- updates -----------------------------------------------------------------------------
    def starts_new_session(self, e: ev.Event, gap_s: float) -> bool:
        if self.n == 0:
            return True
        if e.session is not None and e.session != self.sid:
            return True
        return e.ts - self.last > gap_s

    def begin(self, e: ev.Event) -> None:
        """Start a session at event ``e`` (after the previous one was folded)."""
        self._reset()
        self.sn += 1
        self.sid = e.session if e.session is not None else f"{int(e.ts)}"
        self.start = e.ts
        self.cat_ref = e.ts
        self.last = e.ts

    def update(self, e: ev.Event, half_life_s: float, recent_n: int, queries_n: int) -> None:
        """Fold one event into the session (the caller split sessions first)."""
        self.n += 1
        self.last = e.ts
        t = e.type
        item = e.item
        if e.device is not None:
            self.device = e.device
            self.country = e.country
        if e.referral is not None and self.n == 1:
            self.referral = e.referral
        if e.hour >= 0:
            self.hour = e.hour
        cat = e.category
        weight = 1.0
        if t in VIEW_TYPES:
            self.views += 1
        elif t == ev.ADD_TO_CART:
            self.carts += 1
            weight = 3.0
            if len(self.cart) < MAX_CART and item is not None:
                self.cart[item] = e.price
        elif t == ev.PURCHASE:
            self.buys += 1
            weight = 4.0
            if e.price is not None:
                self.revenue += e.price
            if item is not None:
                bought = self.bought
                bought.append(item)
                if len(bought) > MAX_BOUGHT:
                    del bought[0]
                self.cart.pop(item, None)
        elif t == ev.ADD_TO_WISHLIST:
            weight = 2.0
        elif t == ev.REMOVE_FROM_CART:
            weight = 0.5
            if item is not None:
                self.cart.pop(item, None)
        elif t == ev.SEARCH:
            q = e.query or ""
            if len(self.queries) >= queries_n:
                self.queries.pop(0)
            self.queries.append(q)
            qc = self.qcount
            qc[q] = qc.get(q, 0) + 1
            if len(qc) > MAX_QUERIES:
                del qc[next(iter(qc))]
        elif t == ev.HELP_VIEW:
            self.help_s += e.dwell or 0.0
        if e.back:
            backs = self.backs
            backs.append(e.ts)
            if len(backs) > 8:
                del backs[0]
        if cat is not None:
            cats = self.cats
            x = (e.ts - self.cat_ref) / half_life_s
            if x > 500.0:  # a session that never pauses for days: rescale, keep ratios
                f = 2.0**-x
                self.cats = cats = {c: w * f for c, w in cats.items()}
                self.cat_ref = e.ts
                x = 0.0
            cats[cat] = cats.get(cat, 0.0) + weight * 2.0**x
            if len(cats) > MAX_SESSION_CATS:
                weakest = min(cats, key=cats.__getitem__)
                del cats[weakest]
        if e.price is not None:
            prices = self.prices
            prices.append(e.price)
            if len(prices) > MAX_PRICES:
                del prices[0]  # the latest prices describe the session's band
        if item is not None:
            seen = self.seen
            if item in seen:
                seen[item] += 1
                recent = self.recent
                if not recent or recent[-1] != item:
                    if item in recent:
                        recent.remove(item)
                    recent.append(item)
                    if len(recent) > recent_n:
                        old = recent.pop(0)
                        self.item_cat.pop(old, None)
            else:
                if len(seen) >= MAX_SEEN:
                    del seen[next(iter(seen))]
                seen[item] = 1
                recent = self.recent
                if item in recent:  # evicted from `seen` but still recent
                    recent.remove(item)
                recent.append(item)
                if len(recent) > recent_n:
                    old = recent.pop(0)
                    self.item_cat.pop(old, None)
            if cat is not None:
                self.item_cat[item] = cat

    # -- reading -----------------------------------------------------------------------------
    @property
    def current(self) -> str | None:
        """The item the user is on (their most recent item)."""
        return self.recent[-1] if self.recent else None

    def session_categories(self) -> dict[str, float]:
        total = sum(self.cats.values())
        if total <= 0:
            return {}
        return {c: w / total for c, w in self.cats.items()}

    def blend_alpha(self) -> float:
        """How much the session has shown: 0 before any event, 0.5 after 4, towards 1."""
        return self.n / (self.n + 4.0)

    def blended_categories(self) -> dict[str, float]:
        """Session and profile category weights, blended by :meth:`blend_alpha`."""
        s = self.session_categories()
        p = self.profile.category_weights() if self.profile is not None and not self.dnp else {}
        if not p:
            return s
        a = self.blend_alpha()
        out = {c: (1.0 - a) * w for c, w in p.items()}
        for c, w in s.items():
            out[c] = out.get(c, 0.0) + a * w
        return out

    def price_range(self) -> tuple[float, float] | None:
        """The price band to respect: the session's once it has shown three prices, else the
        profile's widened to include what the session has shown."""
        prices = self.prices
        if len(prices) >= 3:
            return (min(prices), max(prices))
        pr = self.profile.price_range() if self.profile is not None and not self.dnp else None
        if pr is None:
            return (min(prices), max(prices)) if prices else None
        if prices:
            return (min(pr[0], min(prices)), max(pr[1], max(prices)))
        return pr

    def pace(self) -> float:
        """Events per minute in this session."""
        minutes = (self.last - self.start) / 60.0
        return self.n / minutes if minutes > 0.5 else float(self.n)

    def dwell(self) -> float:
        """Mean seconds between events."""
        return (self.last - self.start) / (self.n - 1) if self.n > 1 else 0.0

    def mode(self) -> str:
        if self.n >= 4:
            d = self.dwell()
            if d < 15.0:
                return RAPID
            if d > 45.0:
                return DEEP
        return BROWSING

    def intent(self) -> float:
        """Purchase intent in [0, 1]: carts, repeated views of one item, deep engagement."""
        score = 0.35 * min(self.carts, 2) + 0.1 * min(self.views, 5) / 5
        if self.seen:
            top = max(self.seen.values())
            if top >= 3:
                score += 0.25
            elif top == 2:
                score += 0.1
        if self.mode() == DEEP:
            score += 0.1
        if self.buys:
            score *= 0.5  # they just bought: less need for a nudge
        return min(score, 1.0)

    def context(
        self,
        top: list[tuple[str, float]] | None = None,
        band: tuple[float, float] | None | Literal[False] = False,
        intent: float | None = None,
    ) -> dict[str, Any]:
        """The JSON-able context written beside the decisions.

        ``top`` (the five strongest blended categories), ``band`` and ``intent`` may be passed
        when the caller computed them already.
        """
        if top is None:
            cats = self.blended_categories()
            top = sorted(cats.items(), key=lambda kv: kv[1], reverse=True)[:5]
        pr = self.price_range() if band is False else band
        n = self.n
        span = self.last - self.start
        recent = self.recent
        ctx: dict[str, Any] = {
            "session": self.sid,
            "started": self.start,
            "events": n,
            "categories": [[c, int(w * 1000) / 1000] for c, w in top],
            "recent": recent[-1:-6:-1],
            "mode": self.mode(),
            "intent": int((self.intent() if intent is None else intent) * 100) / 100,
            "blend": int(n / (n + 4.0) * 100) / 100,
        }
        if pr:
            ctx["price"] = [pr[0], pr[1]]
        if self.queries:
            ctx["queries"] = self.queries[-3:]
        if self.cart:
            ctx["cart"] = list(self.cart)[:10]
        if n > 1:
            ctx["pace"] = int(self.pace() * 100) / 100
            ctx["dwell"] = int(span / (n - 1) * 10) / 10
        if self.device is not None:
            ctx["device"] = self.device
        if self.country is not None:
            ctx["country"] = self.country
        if self.referral is not None:
            ctx["referral"] = self.referral
        if self.hour >= 0:
            ctx["hour"] = self.hour
        if self.returning:
            ctx["returning"] = True
        return ctx


def fold_session(u: UserState, profile_half_life_s: float) -> Profile:
    """Fold ``u``'s finished session into their profile (created if absent) and return it."""
    p = u.profile if u.profile is not None else Profile()
    if p.upto and u.last <= p.upto:
        # Already folded: a run resumed from a snapshot replays a session whose fold the
        # interrupted run had written (at-least-once output). Folding is idempotent.
        return p
    p.upto = u.last
    p.decay_to(u.last, profile_half_life_s)
    p.fold_counts(u.last, u.n, u.views, u.carts, u.buys, u.revenue)
    p.add_categories(u.session_categories())
    prices = u.prices[-16:]
    if prices:
        p.add_prices(prices, 1.0 / len(prices))
    favs = [i for i, c in u.seen.items() if c >= 2]
    if len(favs) > 1:
        favs.sort(key=u.seen.__getitem__, reverse=True)
    if u.cart or favs:
        p.add_favourites(list(u.cart) + favs)
    if u.bought:
        p.add_bought(u.bought, u.last)
    if u.cart:
        p.abandoned = list(u.cart)[:10]
        p.abandoned_ts = u.last
    elif u.n:
        p.abandoned = []
    p.bandit = u.strategy
    if u.offer_ts:
        p.offer_ts = u.offer_ts
    # keep in memory exactly what storage keeps, so a profile read back equals the one folded
    p.cats = {c: round(w, 4) for c, w in p.cats.items()}
    if prices or p.sessions > 1:
        p.bands = [round(w, 3) for w in p.bands]
    u.profile = p
    return p
