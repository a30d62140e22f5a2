"""Per-user state: the current visit (:class:`Session`), what was served to the user
(:class:`~rtp.session.serving.Serving`) and the long-term :class:`~rtp.session.profile.Profile`,
held together by :class:`UserState`.

A :class:`Session` is what a user is doing right now, bounded, in event time: time-decayed
categories, the price range explored, recent queries, recently viewed items, cart, pace and
engagement mode, purchase intent and frustration signals. Sessions split on an inactivity gap
in event time (or when an explicit session id changes); a finished session is folded into the
profile by :func:`fold_session`. Every collection is bounded, so a user costs the same after a
thousand events as after ten.

Category weights decay without touching every entry on every event: each event adds
``2 ** ((ts - t0) / half_life)`` to its category, so later events weigh more, and reading divides
by the total. ``t0`` is the session start.

>>> from rtp.capture.events import Event
>>> u = UserState("u1")
>>> e = Event("product_view", "u1", 1_700_000_000.0, "i1", "shoes", 59.0)
>>> u.starts_new_session(e, 1_800.0)
True
>>> u.begin(e); u.session.update(e, 600.0, 12, 5); u.observe(e)
>>> u.session.recent, round(u.blended_categories()["shoes"], 2)
(['i1'], 1.0)
"""

from __future__ import annotations

from typing import Any, Literal

from rtp.capture import events as ev
from rtp.session.profile import Profile
from rtp.session.serving import Serving

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


class Session:
    """One visit: what the user did since the session began (bounded collections)."""

    __slots__ = (
        "sid",
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
        "fresh",
    )

    def __getstate__(self) -> tuple[Any, ...]:  # compact and fast to pickle (snapshots)
        return tuple([getattr(self, s) for s in self.__slots__])

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for s, v in zip(self.__slots__, state, strict=True):
            setattr(self, s, v)

    def __init__(self, sid: str | None = None, ts: float = 0.0) -> None:
        self.sid = sid
        self.start = ts
        self.cat_ref = ts
        self.last = ts
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
        # this visit's latest item records (tick, ts, item, weight, previous items): the pairs
        # the model view may not hold yet (rtp.candidates.generate.seed_lists)
        self.fresh: list[tuple[int, float, str, float, tuple[str, ...]]] = []

    def update(self, e: ev.Event, half_life_s: float, recent_n: int, queries_n: int) -> None:
        """Fold one event into the session (the caller split sessions first)."""
        self.n += 1
        self.last = e.ts
        t = e.type
        item = e.item
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
            recent = self.recent
            if item in seen:
                seen[item] += 1
                if not recent or recent[-1] != item:
                    if item in recent:
                        recent.remove(item)
                    recent.append(item)
                    if len(recent) > recent_n:
                        self.item_cat.pop(recent.pop(0), None)
            else:
                if len(seen) >= MAX_SEEN:
                    del seen[next(iter(seen))]
                seen[item] = 1
                if item in recent:  # evicted from `seen` but still recent
                    recent.remove(item)
                recent.append(item)
                if len(recent) > recent_n:
                    self.item_cat.pop(recent.pop(0), None)
            if cat is not None:
                self.item_cat[item] = cat

    # -- reading -----------------------------------------------------------------------------
    @property
    def current(self) -> str | None:
        """The item the user is on (their most recent item)."""
        return self.recent[-1] if self.recent else None

    def categories(self) -> dict[str, float]:
        """The session's category weights, normalised to sum 1."""
        total = sum(self.cats.values())
        if total <= 0:
            return {}
        return {c: w / total for c, w in self.cats.items()}

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


class UserState:
    """One user: the current :class:`Session`, what was :class:`Serving` them, their
    :class:`Profile`, where they come from (device, country, referral, local hour) and their
    experiment arms. The per-user state of the user step."""

    __slots__ = (
        "uid",
        "dnp",
        "profile",
        "returning",
        "session",
        "serving",
        "arms",
        "strategy",
        "device",
        "country",
        "referral",
        "campaign",
        "hour",
    )

    def __getstate__(self) -> tuple[Any, ...]:  # compact and fast to pickle (snapshots)
        return tuple([getattr(self, s) for s in self.__slots__])

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for s, v in zip(self.__slots__, state, strict=True):
            setattr(self, s, v)

    def __init__(self, uid: str, profile: Profile | None = None, dnp: bool = False) -> None:
        self.uid = uid
        self.dnp = dnp
        self.profile = profile
        self.returning = profile is not None and profile.sessions > 0
        self.session = Session()
        self.serving = Serving()
        self.arms: dict[str, str] | None = None
        self.strategy: str | None = None  # a bandit's choice for this session
        self.device: str | None = None
        self.country: str | None = None
        self.referral: str | None = None
        self.campaign: str | None = None
        self.hour = -1

    # -- updates -----------------------------------------------------------------------------
    def starts_new_session(self, e: ev.Event, gap_s: float) -> bool:
        s = self.session
        if s.n == 0:
            return True
        if e.session is not None and e.session != s.sid:
            return True
        return e.ts - s.last > gap_s

    def begin(self, e: ev.Event) -> None:
        """Start a session at event ``e`` (after the previous one was folded)."""
        self.session = Session(e.session if e.session is not None else f"{int(e.ts)}", e.ts)
        self.serving.new_session()

    def observe(self, e: ev.Event) -> None:
        """Where the user comes from, as the event says (device, country, referral, hour,
        campaign). Called after the session took the event: the referral and campaign are the
        visit's first event's."""
        if e.device is not None:
            self.device = e.device
            self.country = e.country
        elif e.country is not None:
            self.country = e.country
        if self.session.n == 1:
            self.referral = e.referral
            utm = e.utm
            c = utm.get("campaign") if utm else None
            self.campaign = c if isinstance(c, str) else None
        if e.hour >= 0:
            self.hour = e.hour

    # -- reading -----------------------------------------------------------------------------
    @property
    def current(self) -> str | None:
        return self.session.current

    def blend_alpha(self) -> float:
        """How much the session has shown: 0 before any event, 0.5 after 4, towards 1."""
        n = self.session.n
        return n / (n + 4.0)

    def blended_categories(self) -> dict[str, float]:
        """Session and profile category weights, blended by :meth:`blend_alpha`."""
        s = self.session.categories()
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
        prices = self.session.prices
        if len(prices) >= 3:
            return (min(prices), max(prices))
        pr = self.profile.price_range() if self.profile is not None and not self.dnp else None
        if pr is None:
            return (min(prices), max(prices)) if prices else None
        if prices:
            return (min(pr[0], min(prices)), max(pr[1], max(prices)))
        return pr

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
        s = self.session
        if top is None:
            cats = self.blended_categories()
            top = sorted(cats.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        pr = self.price_range() if band is False else band
        n = s.n
        span = s.last - s.start
        ctx: dict[str, Any] = {
            "session": s.sid,
            "started": s.start,
            "events": n,
            "categories": [[c, int(w * 1000) / 1000] for c, w in top],
            "recent": s.recent[-1:-6:-1],
            "mode": s.mode(),
            "intent": int((s.intent() if intent is None else intent) * 100) / 100,
            "blend": int(n / (n + 4.0) * 100) / 100,
        }
        if pr:
            ctx["price"] = [pr[0], pr[1]]
        if s.queries:
            ctx["queries"] = s.queries[-3:]
        if s.cart:
            ctx["cart"] = list(s.cart)[:10]
        if n > 1:
            ctx["pace"] = int(s.pace() * 100) / 100
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
    s = u.session
    p = u.profile if u.profile is not None else Profile()
    if p.upto and s.last <= p.upto:
        # Already folded: a run resumed from a snapshot replays a session whose fold the
        # interrupted run had written (at-least-once output). Folding is idempotent.
        return p
    p.upto = s.last
    p.decay_to(s.last, profile_half_life_s)
    p.fold_counts(s.last, s.n, s.views, s.carts, s.buys, s.revenue)
    p.add_categories(s.categories())
    prices = s.prices[-16:]
    if prices:
        p.add_prices(prices, 1.0 / len(prices))
    favs = [i for i, c in s.seen.items() if c >= 2]
    if len(favs) > 1:
        favs.sort(key=s.seen.__getitem__, reverse=True)
    if s.cart or favs:
        p.add_favourites(list(s.cart) + favs)
    if s.bought:
        p.add_bought(s.bought, s.last)
    if s.cart:
        p.abandoned = list(s.cart)[:10]
        p.abandoned_ts = s.last
    elif s.n:
        p.abandoned = []
    p.bandit = u.strategy
    if u.serving.offer_ts:
        p.offer_ts = u.serving.offer_ts
    # keep in memory exactly what storage keeps, so a profile read back equals the one folded
    p.cats = {c: round(w, 4) for c, w in p.cats.items()}
    if prices or p.sessions > 1:
        p.bands = [round(w, 3) for w in p.bands]
    u.profile = p
    return p
