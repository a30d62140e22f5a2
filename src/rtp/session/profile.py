"""Long-term profiles: what a user's finished sessions add up to.

A profile is folded from each finished session (:meth:`Profile.fold`) and decays in event time,
so last month's interest in prams fades while a steady taste stays. It holds decayed category
preferences, a decayed histogram of price bands, a purchase summary, lifetime counts, favourite
items and the cart a user left behind (for the next session's reminder).

>>> p = Profile()
>>> p.fold_counts(ts=1000.0, events=5, views=4, carts=1, purchases=0, revenue=0.0)
>>> p.sessions, p.events
(1, 5)
"""

from __future__ import annotations

import math
from typing import Any

from rtp.store.codec import band_range, decode_profile, encode_profile

PRICE_BANDS = 16  # log2 buckets: band b holds prices in [2**b, 2**(b+1))
MAX_CATS = 24
MAX_FAVS = 10
MAX_BOUGHT = 20


def price_band(price: float) -> int:
    """The log2 bucket of a price (0 for prices below 2)."""
    if price < 2.0:
        return 0
    b = int(math.log2(price))
    return b if b < PRICE_BANDS else PRICE_BANDS - 1


class Profile:
    """A user's long-term preferences (plain data; stored with to_bytes/from_bytes in the
    compact form of :mod:`rtp.store.codec`, which also reads the JSON of earlier versions)."""

    __slots__ = (
        "ts",
        "cats",
        "bands",
        "sessions",
        "events",
        "views",
        "carts",
        "purchases",
        "revenue",
        "last_purchase_ts",
        "bought",
        "favs",
        "abandoned",
        "abandoned_ts",
        "offer_ts",
        "first_seen",
        "bandit",
        "upto",
    )

    def __getstate__(self) -> tuple[Any, ...]:  # compact and fast to pickle (snapshots)
        return tuple([getattr(self, s) for s in self.__slots__])

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for s, v in zip(self.__slots__, state, strict=True):
            setattr(self, s, v)

    def __init__(self) -> None:
        self.ts = 0.0  # event time the decayed weights refer to
        self.cats: dict[str, float] = {}
        self.bands: list[float] = [0.0] * PRICE_BANDS
        self.sessions = 0
        self.events = 0
        self.views = 0
        self.carts = 0
        self.purchases = 0
        self.revenue = 0.0
        self.last_purchase_ts = 0.0
        self.bought: list[str] = []
        self.favs: list[str] = []
        self.abandoned: list[str] = []
        self.abandoned_ts = 0.0
        self.offer_ts = 0.0
        self.first_seen = 0.0
        self.bandit: str | None = None  # last strategy a bandit chose for this user
        self.upto = 0.0  # event time of the end of the last session folded in

    # -- folding ---------------------------------------------------------------------------
    def decay_to(self, ts: float, half_life_s: float) -> None:
        """Bring decayed weights to event time ``ts``."""
        if self.ts and ts > self.ts:
            f = 0.5 ** ((ts - self.ts) / half_life_s)
            if f < 0.999:
                self.cats = {c: w * f for c, w in self.cats.items() if w * f > 1e-3}
                self.bands = [w * f for w in self.bands]
        if ts > self.ts:
            self.ts = ts

    def fold_counts(
        self, ts: float, events: int, views: int, carts: int, purchases: int, revenue: float
    ) -> None:
        if not self.first_seen:
            self.first_seen = ts
        self.sessions += 1
        self.events += events
        self.views += views
        self.carts += carts
        self.purchases += purchases
        self.revenue += revenue
        if ts > self.ts:
            self.ts = ts

    def add_categories(self, weights: dict[str, float]) -> None:
        """Add a session's normalised category weights; keep the strongest MAX_CATS."""
        cats = self.cats
        for c, w in weights.items():
            cats[c] = cats.get(c, 0.0) + w
        if len(cats) > MAX_CATS:
            keep = sorted(cats.items(), key=lambda kv: kv[1], reverse=True)[:MAX_CATS]
            self.cats = dict(keep)

    def add_prices(self, prices: list[float], weight: float = 1.0) -> None:
        for p in prices:
            self.bands[price_band(p)] += weight

    def add_favourites(self, items: list[str]) -> None:
        """Most recent first; bounded."""
        favs = [i for i in dict.fromkeys(items) if i not in self.favs] + self.favs
        self.favs = favs[:MAX_FAVS]

    def add_bought(self, items: list[str], ts: float) -> None:
        if items:
            self.bought = (items + [i for i in self.bought if i not in items])[:MAX_BOUGHT]
            self.last_purchase_ts = ts

    # -- reading ---------------------------------------------------------------------------
    def category_weights(self) -> dict[str, float]:
        """Normalised (sum 1) category preferences."""
        total = sum(self.cats.values())
        if total <= 0:
            return {}
        return {c: w / total for c, w in self.cats.items()}

    def price_range(self) -> tuple[float, float] | None:
        """The band range holding the middle of the user's decayed price history."""
        return band_range(self.bands)

    @property
    def loyal(self) -> bool:
        return self.sessions >= 3 or self.purchases >= 2

    # -- storage ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "ts": self.ts,
            "cats": self.cats,  # rounded by every fold (storage keeps what memory keeps)
            "sessions": self.sessions,
            "events": self.events,
            "views": self.views,
            "carts": self.carts,
            "purchases": self.purchases,
            "revenue": round(self.revenue, 2),
        }
        if any(self.bands):
            d["bands"] = [round(w, 3) for w in self.bands]
            pr = self.price_range()
            if pr:
                d["price"] = list(pr)
        for name in ("bought", "favs", "abandoned"):
            v = getattr(self, name)
            if v:
                d[name] = v
        for name in ("last_purchase_ts", "abandoned_ts", "offer_ts", "first_seen"):
            v = getattr(self, name)
            if v:
                d[name] = v
        if self.bandit:
            d["bandit"] = self.bandit
        if self.upto:
            d["upto"] = self.upto
        return d

    def to_bytes(self) -> bytes:
        return encode_profile(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        p = cls()
        p.ts = float(d.get("ts", 0.0))
        p.cats = {str(c): float(w) for c, w in d.get("cats", {}).items()}
        bands = d.get("bands")
        if bands and len(bands) == PRICE_BANDS:
            p.bands = [float(w) for w in bands]
        for name in ("sessions", "events", "views", "carts", "purchases"):
            setattr(p, name, int(d.get(name, 0)))
        p.revenue = float(d.get("revenue", 0.0))
        for name in ("bought", "favs", "abandoned"):
            setattr(p, name, [str(i) for i in d.get(name, [])])
        for name in ("last_purchase_ts", "abandoned_ts", "offer_ts", "first_seen"):
            setattr(p, name, float(d.get(name, 0.0)))
        p.bandit = d.get("bandit")
        p.upto = float(d.get("upto", 0.0))
        return p

    @classmethod
    def from_bytes(cls, raw: bytes) -> Profile:
        return cls.from_dict(decode_profile(raw))

    def __repr__(self) -> str:
        return f"Profile(sessions={self.sessions}, events={self.events}, cats={len(self.cats)})"
