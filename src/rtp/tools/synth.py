"""A seeded synthetic clickstream: realistic shoppers as schema-v1 events, made on the spot.

rtp never ships data files; demos, tests and benchmarks make their streams here::

    from rtp.tools.synth import generate, write_jsonl

    n = write_jsonl(generate(3_000, seed=1), "stream.jsonl")   # ~60k events, in time order

or ``python -m rtp.tools.synth --users 50000 --out stream.jsonl`` (about 1M events: ten times the
Taobao sample). The same arguments always give the same bytes. ``--kind news``
(:func:`generate_news_records`) makes the reading stream of a news site instead (below).

What the shoppers do
    Every user has one to three favourite categories, a price level (``budget``, ``mid``,
    ``premium``), a device with its user agent, a country (real public IP addresses of that
    country, checked with ``iptocc``) and a persona:

    ============  =====  ===============================================================
    persona       share  sessions
    ============  =====  ===============================================================
    loyal         15 %   twice as many visits, mostly in their favourite categories, buy
    browser       52 %   look around (product and listing pages), rarely buy
    abandoner     15 %   fill carts and leave; often come back later to buy them
    frustrated    8 %    search the same words again and again, go back, read help pages
    bargain       10 %   scan quickly (a few seconds per page), budget items
    ============  =====  ===============================================================

    About 2 % of users (any persona) opt out with a ``dnp`` control event at their first visit.
    Sessions are product views with category locality (the next view stays in the category
    three times out of four) and popular-item skew (Zipf within each category), re-views of
    items seen earlier, back-navigation, searches, help pages with dwell time, add-to-cart,
    remove-from-cart and purchases with prices. A session's first event carries the raw
    context (user agent, IP, referrer and UTM parameters: search, social, email, paid, direct
    or internal); later events of the session carry none, as a tracker that sends the context
    once per visit.

Context effects (``context_effect``, default 1; 0 gives exactly the stream made before they
existed, byte for byte)
    The context of a visit (what rtp's enrichment derives from its first event: device from the
    user agent, country from the IP, referral class, local hour and weekday) changes what it
    looks at, so contextual ranking features have something to find:

    - *landing*: a phone or tablet visit after 18:00 local time comes from social media with
      probability 0.35 (instead of its drawn landing); a desktop visit in weekday office hours
      (09-17) comes from a search engine with probability 0.3.
    - *mood*: :func:`casual_score` adds +1 for a phone or tablet (-1 desktop), +1 for the evening
      (-1 weekday office hours) and +1 for social media (-1 search or an ad): -3 .. +3. Each
      category draw of the visit (its first category and every move to another) goes, with
      probability ``0.15 * |score|``, to :data:`IMPULSE` categories (score > 0: shoes,
      dresses, bags, toys, beauty, skincare ...) or :data:`CONSIDERED` ones (score < 0:
      laptops, phones, cameras, watches, furniture, tools ...); each product's price tier is,
      with probability ``0.2 * |score|``, the budget third of the category (score > 0) or the
      premium third (score < 0).
    - *weekend*: on a local Saturday or Sunday a category draw goes to :data:`LEISURE` (garden,
      camping, cycling, running, kitchen ...) with probability 0.3.
    - *country*: a category draw goes to the two favourites of the visitor's country
      (:data:`COUNTRY_FAVOURITES`: US running and tools, FR dresses and beauty, JP cameras and
      skincare ...) with probability 0.25.

    The draws that are not pulled stay the user's own (favourite categories, personal price
    level). Measured on ``generate(3000, seed=1)`` (~40k product views), share of product views
    with the effects (and without them):

    ==========================================  ========  ==========  =============
    visits                                      impulse   considered  median price
    ==========================================  ========  ==========  =============
    mobile, evening, from social (score +3)     62 % (45)  13 % (24)  39 (67)
    desktop, office hours, from search (-3)     17 % (38)  59 % (27)  164 (74)
    all                                         35 % (45)  29 % (23)  69 (68)
    ==========================================  ========  ==========  =============

    Leisure categories take 40 % of weekend views and 16 % of weekday views (8 % and 8 %
    without). The views of a country's visitors fall in its two favourites 24-36 % of the time,
    against 4-14 % for the same categories among other countries' visitors (equal without).
    ``country_field=True`` also writes the country code as ``context.country``.

News readers (``--kind news``, :func:`generate_news_records`)
    Articles ``a1`` ... (120 a day, published from a day before the start, more by day than by
    night) each have a primary topic (Zipf over :data:`NEWS_TOPICS`) and up to two related
    ones. A read is a ``product_view`` of the article with ``category`` its primary topic,
    ``topics`` the full list, ``published`` its publish time (unix seconds) and ``dwell`` the
    seconds spent reading (log-normal, median 40 s). Reading probability is the article's
    appeal (log-normal) times ``2 ** (-age / 4 h)``: news goes stale within hours. About 3 % of
    the articles are *important* stories: six times the appeal, a 2.5 times longer half-life,
    and 12 % of all reads go to them whatever the reader's interests (with the reads they get
    through their topics: ~28 % of reads, ~10x the readers of another article).

    A reader has two to four topics of interest with weights; interests drift (a third of the
    visits start with one weight multiplied by a log-normal factor, one in ten with the weakest
    topic swapped for a new one). A visit lands on the front page, a section page
    (``page_view`` with the topic as ``category``) or, from social media, search or the
    newsletter, straight on an article, then reads several articles (3.8 on average): the next
    one stays in the previous one's topic 40 % of the time, else comes from the reader's
    interests (85 %) or anywhere. Readers have devices, countries and referrers as shoppers do;
    visits are sessions (``session``). Measured on ``generate_news_records(3000, seed=1)``
    (~66k events, 22 per reader): median age of a read article 6 h, half of the reads are of
    articles younger than 6 h and 93 % younger than a day; a reader's two most read topics take
    58 % of their reads (39 % for the two most read topics overall).

:func:`bad_lines` yields malformed records, one or more of every rejection kind, with the reason
rtp must give for each: append them to a stream to watch the dead-letter path.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import math
import random
import sys
import time
from bisect import bisect, bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from rtp.capture.events import (
    ADD_TO_CART,
    DO_NOT_PERSONALIZE,
    HELP_VIEW,
    INVALID_JSON,
    INVALID_PRICE,
    MAX_RECORD_BYTES,
    MISSING_FIELD,
    OVERSIZED,
    PAGE_VIEW,
    PRODUCT_VIEW,
    PURCHASE,
    REMOVE_FROM_CART,
    SCHEMA_VERSION,
    SEARCH,
    TIMESTAMP_OUT_OF_RANGE,
    UNKNOWN_TYPE,
    Event,
)

__all__ = [
    "CONSIDERED",
    "COUNTRY_FAVOURITES",
    "DEFAULT_START_TS",
    "IMPULSE",
    "KINDS",
    "LEISURE",
    "NEWS_HOST",
    "NEWS_TOPICS",
    "PERSONAS",
    "SITE_HOST",
    "bad_lines",
    "casual_score",
    "generate",
    "generate_news_records",
    "generate_records",
    "main",
    "write_jsonl",
]

_V = TypeVar("_V", bound="_Visitor")

DEFAULT_START_TS = 1_730_678_400.0  # 2024-11-04 00:00 UTC, a Monday (fixed: runs reproduce)
SITE_HOST = "shop.example"  # the synthetic shop; its own pages are the internal referrers
KINDS = ("shop", "news")

CATEGORY_NAMES = (
    "shoes", "dresses", "jeans", "jackets", "bags", "watches", "laptops", "phones",
    "headphones", "cameras", "books", "toys", "beauty", "skincare", "kitchen", "furniture",
    "bedding", "lighting", "garden", "tools", "running", "cycling", "camping", "pet-supplies",
    "coffee", "wine", "office", "gaming", "baby", "jewelry", "fragrance", "stationery",
)  # fmt: skip
# typical price of an item per category (others: 40)
BASE_PRICE = {
    "shoes": 70.0, "dresses": 55.0, "jeans": 60.0, "jackets": 120.0, "bags": 80.0,
    "watches": 180.0, "laptops": 900.0, "phones": 600.0, "headphones": 120.0, "cameras": 550.0,
    "books": 15.0, "toys": 25.0, "beauty": 20.0, "skincare": 30.0, "kitchen": 45.0,
    "furniture": 300.0, "bedding": 60.0, "lighting": 50.0, "garden": 40.0, "tools": 65.0,
    "running": 90.0, "cycling": 250.0, "camping": 110.0, "pet-supplies": 20.0, "coffee": 12.0,
    "wine": 18.0, "office": 35.0, "gaming": 70.0, "baby": 35.0, "jewelry": 150.0,
    "fragrance": 65.0, "stationery": 8.0,
}  # fmt: skip
QUERY_WORDS = (
    "black", "red", "wireless", "waterproof", "kids", "leather", "large", "sale", "new",
    "organic", "gift", "cheap", "best", "size 44", "blue", "lightweight",
)  # fmt: skip
PRICE_LEVELS = ("budget", "mid", "premium")

# (persona, share, visits factor, P(buy the cart at the end of a visit), P(add to cart per
# product view), events per visit, seconds between events)
PERSONAS: tuple[tuple[str, float, float, float, float, float, float], ...] = (
    ("loyal", 0.15, 2.0, 0.55, 0.12, 7.0, 35.0),
    ("browser", 0.52, 1.0, 0.10, 0.04, 5.0, 25.0),
    ("abandoner", 0.15, 1.0, 0.08, 0.25, 6.0, 30.0),
    ("frustrated", 0.08, 1.0, 0.05, 0.03, 6.0, 30.0),
    ("bargain", 0.10, 1.3, 0.25, 0.08, 10.0, 6.0),
)
DNP_SHARE = 0.02

# A handful of real user agents: (device, user agent); mobile ones also shop in the app.
USER_AGENTS: tuple[tuple[str, str], ...] = (
    ("desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.0.0 Safari/537.36"),
    ("desktop", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"),
    ("desktop", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.4.1 Safari/605.1.15"),
    ("desktop", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    ("mobile", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1"),
    ("mobile", "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36"),
    ("mobile", "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/123.0.6312.99 Mobile Safari/537.36"),
    ("tablet", "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"),
    ("tablet", "Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like "
     "Gecko) Chrome/124.0.6367.82 Safari/537.36"),
)  # fmt: skip
UA_WEIGHTS = (22, 6, 10, 4, 24, 16, 8, 6, 4)

# Country, share, UTC offset (hours) and public IPs there (each checked with iptocc).
COUNTRIES: tuple[tuple[str, float, float, tuple[str, ...]], ...] = (
    ("US", 30, -5.0, ("8.8.8.8", "151.101.1.69", "128.30.2.1", "98.137.11.163")),
    ("GB", 12, 0.0, ("81.2.69.160", "212.58.244.22", "62.252.172.241")),
    ("DE", 12, 1.0, ("194.25.0.68", "88.198.0.1")),
    ("FR", 8, 1.0, ("80.67.169.12", "212.27.48.10", "217.70.184.38")),
    ("NL", 4, 1.0, ("193.0.6.139",)),
    ("IN", 8, 5.5, ("164.100.1.1", "14.139.0.1", "117.239.0.1")),
    ("JP", 6, 9.0, ("133.242.0.3", "210.152.12.1", "183.79.0.1")),
    ("BR", 6, -3.0, ("200.160.2.3", "177.67.80.1")),
    ("CA", 6, -5.0, ("142.150.1.1", "24.48.0.1")),
    ("AU", 4, 10.0, ("203.2.218.214", "1.1.1.1")),
    ("SE", 2, 1.0, ("192.121.103.1",)),
    ("ZA", 2, 2.0, ("196.25.1.1",)),
)

# Where a visit comes from: (channel, share, referrer or None, utm or None).
_SEARCH = ("https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/")
_SOCIAL = ("https://www.facebook.com/", "https://t.co/", "https://www.instagram.com/",
           "https://www.pinterest.com/")  # fmt: skip
LANDINGS: tuple[tuple[str, float], ...] = (
    ("search", 30),
    ("direct", 25),
    ("social", 14),
    ("email", 10),
    ("paid", 12),
    ("internal", 9),
)

# Context effects (see the module docstring): category groups a visit's context pulls towards.
IMPULSE = ("shoes", "dresses", "bags", "toys", "beauty", "skincare", "jewelry", "fragrance",
           "gaming")  # fmt: skip
CONSIDERED = ("laptops", "phones", "cameras", "watches", "headphones", "furniture", "tools",
              "office")  # fmt: skip
LEISURE = ("garden", "camping", "cycling", "running", "kitchen", "wine", "coffee")
COUNTRY_FAVOURITES: dict[str, tuple[str, ...]] = {
    "US": ("running", "tools"), "GB": ("garden", "books"), "DE": ("cycling", "kitchen"),
    "FR": ("dresses", "beauty"), "NL": ("cycling", "bedding"), "IN": ("phones", "watches"),
    "JP": ("cameras", "skincare"), "BR": ("shoes", "toys"), "CA": ("camping", "jackets"),
    "AU": ("camping", "running"), "SE": ("lighting", "furniture"),
    "ZA": ("camping", "pet-supplies"),
}  # fmt: skip
MOOD_PULL = 0.15  # P(a category draw goes to the mood's group) per unit of |casual| (max 3)
TIER_PULL = 0.2  # P(a product's price tier is the mood's) per unit of |casual|
WEEKEND_PULL = 0.3  # P(a category draw goes to LEISURE) on a local Saturday or Sunday
COUNTRY_PULL = 0.25  # P(a category draw goes to the country's favourites)
SOCIAL_EVENING = 0.35  # P(a mobile evening visit comes from social media instead)
SEARCH_OFFICE = 0.3  # P(a desktop visit in office hours comes from a search engine instead)


class _Pull:
    """What a visit's context does to its category and price-tier draws (see :func:`_pull`)."""

    __slots__ = ("cum", "groups", "tier", "p_tier")

    def __init__(
        self, cum: list[float], groups: list[tuple[int, ...]], tier: int, p_tier: float
    ) -> None:
        self.cum = cum  # cumulative P of each group; past the last, the user's own draw stands
        self.groups = groups
        self.tier = tier
        self.p_tier = p_tier

    def category(self, rng: random.Random, own: int) -> int:
        r = rng.random()
        for p, group in zip(self.cum, self.groups, strict=True):
            if r < p:
                return group[int(rng.random() * len(group))]
        return own


def _local_hour_weekday(ts: float, offset_h: float) -> tuple[int, int]:
    """Local hour and weekday (0 = Monday) at a UTC offset, as rtp's enrichment computes them."""
    local_h = int((ts + offset_h * 3_600.0) // 3_600.0)
    return local_h % 24, (local_h // 24 + 3) % 7  # 1970-01-01 was a Thursday


def casual_score(device: str, hour: int, weekday: int, referral: str) -> int:
    """-3 (desktop, weekday office hours, from a search engine or an ad) .. +3 (a phone or
    tablet, evening, from social media): how casual a visit is.

    >>> casual_score("mobile", 21, 2, "social"), casual_score("desktop", 11, 1, "search")
    (3, -3)
    """
    score = -1 if device == "desktop" else 1
    if hour >= 18:
        score += 1
    elif weekday < 5 and 9 <= hour < 17:
        score -= 1
    if referral == "social":
        score += 1
    elif referral in ("search", "paid"):
        score -= 1
    return score


class _Groups:
    """Category indices of the context groups in one catalogue (names absent from a catalogue
    with few categories are replaced by every fourth category, so a group is never empty)."""

    def __init__(self, names: Sequence[str]) -> None:
        index = {name: n for n, name in enumerate(names)}

        def group(wanted: Sequence[str], fallback: int) -> tuple[int, ...]:
            found = tuple(index[w] for w in wanted if w in index)
            return found or tuple(range(fallback % 4, len(names), 4)) or (0,)

        self.impulse = group(IMPULSE, 0)
        self.considered = group(CONSIDERED, 1)
        self.leisure = group(LEISURE, 2)
        self.country = {cc: group(favs, 3 + k) for k, (cc, favs) in
                        enumerate(COUNTRY_FAVOURITES.items())}  # fmt: skip


def _pull(
    u: _User, groups: _Groups, t: float, landing: str, effect: float, rng: random.Random
) -> tuple[str, _Pull]:
    """The visit's landing (context shifts it) and what its context does to its draws."""
    hour, weekday = _local_hour_weekday(t, u.offset_h)
    mobile = u.device != "desktop"
    evening_phone = mobile and hour >= 18
    office_desktop = not mobile and weekday < 5 and 9 <= hour < 17
    if evening_phone and landing != "social" and rng.random() < SOCIAL_EVENING * effect:
        landing = "social"
    elif office_desktop and landing != "search" and rng.random() < SEARCH_OFFICE * effect:
        landing = "search"
    casual = casual_score(u.device, hour, weekday, landing)
    probs: list[float] = []
    chosen: list[tuple[int, ...]] = []
    if casual:
        probs.append(MOOD_PULL * abs(casual) * effect)
        chosen.append(groups.impulse if casual > 0 else groups.considered)
    if weekday >= 5:
        probs.append(WEEKEND_PULL * effect)
        chosen.append(groups.leisure)
    favourites = groups.country.get(u.country)
    if favourites:
        probs.append(COUNTRY_PULL * effect)
        chosen.append(favourites)
    total = sum(probs)
    scale = 0.9 / total if total > 0.9 else 1.0
    cum = list(itertools.accumulate(p * scale for p in probs))
    tier = 0 if casual > 0 else 2
    p_tier = min(0.9, TIER_PULL * abs(casual) * effect)
    return landing, _Pull(cum, chosen, tier, p_tier)


class _Catalog:
    """Items, their categories and prices, and Zipf popularity per category and price tier."""

    def __init__(self, n_items: int, n_categories: int, rng: random.Random) -> None:
        names = list(CATEGORY_NAMES[:n_categories])
        names += [f"cat{n}" for n in range(len(names), n_categories)]
        self.categories = names
        self.items = [f"i{n}" for n in range(1, n_items + 1)]
        self.cat_of: list[int] = []
        self.price: list[float] = []
        # category -> tier -> (items, cumulative Zipf weights); tier 3 = the whole category
        self.tiers: list[list[tuple[list[int], list[float]]]] = []
        members: list[list[int]] = [[] for _ in names]
        for n in range(n_items):
            c = n % len(names) if n < len(names) else int(rng.paretovariate(0.9)) % len(names)
            members[c].append(n)
            self.cat_of.append(c)
            base = BASE_PRICE.get(names[c], 40.0)
            p = base * math.exp(rng.gauss(0.0, 0.55))
            self.price.append(_shop_price(p))
        for its in members:
            rng.shuffle(its)  # popularity rank is independent of price and id
            rank = {it: r for r, it in enumerate(its)}
            by_price = sorted(its, key=self.price.__getitem__)
            k = len(by_price)
            cuts = (by_price[: max(1, k // 3)], by_price[k // 3 : 2 * k // 3 or 1],
                    by_price[2 * k // 3 :] or by_price[-1:])  # fmt: skip
            tiers = []
            for tier_items in (*cuts, its):
                tier_items = sorted(tier_items, key=rank.__getitem__)
                cum = list(itertools.accumulate(1.0 / (rank[i] + 1) ** 1.1 for i in tier_items))
                tiers.append((tier_items, cum))
            self.tiers.append(tiers)
        cat_weights = [1.0 / (r + 1) ** 0.8 for r in range(len(names))]
        self.cat_cum = list(itertools.accumulate(cat_weights))
        self.meta = [(self.items[n], names[self.cat_of[n]], self.price[n]) for n in range(n_items)]

    def pick(self, rng: random.Random, cat: int, tier: int) -> int:
        items, cum = self.tiers[cat][tier]
        if not items:
            items, cum = self.tiers[cat][3]
        return items[bisect(cum, rng.random() * cum[-1])]

    def random_category(self, rng: random.Random) -> int:
        return bisect(self.cat_cum, rng.random() * self.cat_cum[-1])


def _shop_price(p: float) -> float:
    """A shop-looking price: 4.99, 19.99, 349.0 ..."""
    if p < 10:
        return round(max(1.0, round(p)) - 0.01, 2)
    if p < 200:
        return round(round(p) - 0.01, 2)
    return float(round(p / 10) * 10 - 1)


class _User:
    """One synthetic shopper and what carries over between their visits."""

    __slots__ = (
        "uid", "rng", "persona", "visits", "buy_p", "cart_p", "length", "gap", "favs", "tier",
        "ua", "ip", "offset_h", "app", "dnp", "cart", "bought", "history", "k", "left",
        "device", "country",
    )  # fmt: skip

    def __init__(self, n: int, catalog: _Catalog, rng: random.Random, mean_sessions: float) -> None:
        self.rng = rng
        self.uid = f"u{n}"
        r = rng.random()
        for persona in PERSONAS:
            r -= persona[1]
            if r < 0:
                break
        name, _, visits, buy_p, cart_p, length, gap = persona
        self.persona = name
        self.buy_p = buy_p
        self.cart_p = cart_p
        self.length = length
        self.gap = gap
        self.favs = [catalog.random_category(rng) for _ in range(rng.choice((1, 1, 2, 2, 3)))]
        self.favs = list(dict.fromkeys(self.favs))
        self.tier = 0 if name == "bargain" else rng.choices((0, 1, 2), (3, 5, 2))[0]
        ua_n = rng.choices(range(len(USER_AGENTS)), UA_WEIGHTS)[0]
        self.ua = USER_AGENTS[ua_n][1]
        self.device = USER_AGENTS[ua_n][0]
        self.app = self.device == "mobile" and rng.random() < 0.3
        country = rng.choices(COUNTRIES, [c[1] for c in COUNTRIES])[0]
        self.country = country[0]
        self.ip = rng.choice(country[3])
        self.offset_h = country[2]
        self.dnp = rng.random() < DNP_SHARE
        mean_extra = max(0.0, mean_sessions * visits - 1.0)
        n_sessions = 1 + (int(rng.expovariate(1.0 / mean_extra)) if mean_extra > 0 else 0)
        self.left = min(n_sessions, 1 + int(4 * mean_sessions * visits))
        self.visits = self.left
        self.cart: dict[int, float] = {}
        self.bought: set[int] = set()
        self.history: list[int] = []  # items viewed in earlier visits, most recent last
        self.k = 0


def _awake(ts: float, offset_h: float) -> float:
    """Push a visit out of the user's local night (01:00-07:00) into the morning."""
    hour = ((ts / 3_600.0) + offset_h) % 24.0
    if 1.0 <= hour < 7.0:
        ts += (7.0 - hour) * 3_600.0
    return ts


def _context(
    u: _User, rng: random.Random, landing: str, cat_name: str, country: bool = False
) -> dict[str, Any]:
    ctx: dict[str, Any] = {"ua": u.ua, "ip": u.ip, "channel": "app" if u.app else "web"}
    if country:
        ctx["country"] = u.country
    if landing == "search":
        ctx["referrer"] = rng.choice(_SEARCH)
    elif landing == "social":
        ctx["referrer"] = rng.choice(_SOCIAL)
        if rng.random() < 0.4:
            ctx["utm"] = {"source": "instagram", "medium": "social", "campaign": "autumn"}
    elif landing == "email":
        ctx["utm"] = {"source": "newsletter", "medium": "email", "campaign": "weekly-picks"}
        if rng.random() < 0.5:
            ctx["referrer"] = "https://mail.google.com/"
    elif landing == "paid":
        ctx["referrer"] = "https://www.google.com/"
        ctx["utm"] = {"source": "google", "medium": "cpc", "campaign": f"{cat_name}-generic"}
    elif landing == "internal":
        ctx["referrer"] = f"https://{SITE_HOST}/c/{cat_name}"
    return ctx


_LANDING_NAMES = [name for name, _ in LANDINGS]
_LANDING_CUM = list(itertools.accumulate(w for _, w in LANDINGS))


class _Options:
    """How visits are written: context or not, the context effect and its own random stream."""

    __slots__ = ("with_context", "effect", "rng", "groups", "country")

    def __init__(
        self, with_context: bool, effect: float, seed: int, groups: _Groups, country: bool
    ) -> None:
        self.with_context = with_context
        self.effect = effect
        # The context effect draws from its own stream: with effect 0 it draws nothing, and the
        # main stream (so the whole output) is exactly the stream without the effect.
        self.rng = random.Random(f"rtp-synth-context-{seed}")
        self.groups = groups
        self.country = country


def _session(u: _User, cat: _Catalog, t: float, opts: _Options) -> list[dict[str, Any]]:
    """One visit of ``u`` starting at ``t``: its records, in time order.

    Written for speed (a million events in a few seconds): records are dict literals and the
    pause between events multiplies the persona's pace by a precomputed log-normal factor.
    """
    rng = u.rng
    rand = rng.random
    uid = u.uid
    u.k += 1
    sid = f"{uid}.{u.k}"
    out: list[dict[str, Any]] = []
    add = out.append
    names = cat.categories
    meta = cat.meta
    cat_of = cat.cat_of
    pick = cat.pick
    persona = u.persona
    gap = u.gap
    tier = u.tier
    favs = u.favs
    cart = u.cart
    bought = u.bought
    history = u.history
    jitter = _JITTER
    seen: list[int] = []
    v = SCHEMA_VERSION

    current = rng.choice(favs) if rand() < 0.8 else cat.random_category(rng)
    landing = _LANDING_NAMES[bisect(_LANDING_CUM, rand() * _LANDING_CUM[-1])]
    pull: _Pull | None = None
    crng = opts.rng
    if opts.effect > 0.0:
        landing, pull = _pull(u, opts.groups, t, landing, opts.effect, crng)
        current = pull.category(crng, current)
    if u.dnp and u.k == 1:  # the consent banner, before anything else
        add({"v": v, "type": DO_NOT_PERSONALIZE, "user": uid, "ts": int(t * 1000) / 1000,
             "dnp": True})  # fmt: skip
    first: dict[str, Any] = {"v": v, "type": PAGE_VIEW, "user": uid,
                             "ts": int(t * 1000) / 1000, "session": sid}  # fmt: skip
    if landing in ("search", "paid") and rand() < 0.5:
        first["type"] = SEARCH
        first["query"] = _query(rng, names[current])
    elif cart and rand() < 0.6:  # back for what they left in the cart
        item = rng.choice(list(cart))
        current = cat_of[item]
        first["type"] = PRODUCT_VIEW
        first["item"], first["category"], first["price"] = meta[item]
        seen.append(item)
    elif landing != "direct" and rand() < 0.7:
        first["category"] = names[current]
    if opts.with_context:
        first["context"] = _context(u, rng, landing, names[current], opts.country)
    add(first)

    n_events = int(rng.expovariate(1.0 / u.length))
    if persona == "frustrated" and rand() < 0.7:
        # the same words again and again, nothing clicked for long, back, help pages
        q = _query(rng, names[current])
        for rep in range(3 + int(rng.expovariate(1.0))):
            t += 8.0 + rand() * 20.0
            add({"v": v, "type": SEARCH, "user": uid, "ts": int(t * 1000) / 1000,
                 "session": sid, "query": q})  # fmt: skip
            if rep == 0 or rand() < 0.5:
                t += gap * jitter[int(rand() * 1024)] + 1.0
                item = pick(rng, current, 3)
                it, c, price = meta[item]
                add({"v": v, "type": PRODUCT_VIEW, "user": uid, "ts": int(t * 1000) / 1000,
                     "session": sid, "item": it, "category": c, "price": price})  # fmt: skip
                seen.append(item)
                t += 3.0 + rand() * 6.0
                add({"v": v, "type": PAGE_VIEW, "user": uid, "ts": int(t * 1000) / 1000,
                     "session": sid, "category": c, "back": True})  # fmt: skip
        if rand() < 0.7:
            t += gap * jitter[int(rand() * 1024)] + 1.0
            add({"v": v, "type": HELP_VIEW, "user": uid, "ts": int(t * 1000) / 1000,
                 "session": sid, "dwell": round(40.0 + rng.expovariate(1 / 60.0), 1)})  # fmt: skip
        n_events = min(n_events, 2)
    for _ in range(n_events):
        t += gap * jitter[int(rand() * 1024)] + 1.0
        ts = int(t * 1000) / 1000
        r = rand()
        if r < 0.06 and persona != "bargain":
            add({"v": v, "type": SEARCH, "user": uid, "ts": ts, "session": sid,
                 "query": _query(rng, names[current])})  # fmt: skip
        elif r < 0.08:
            add({"v": v, "type": HELP_VIEW, "user": uid, "ts": ts, "session": sid,
                 "dwell": round(10.0 + rng.expovariate(1 / 30.0), 1)})  # fmt: skip
        elif r < 0.18 and seen:
            item = seen[-1 - int(rand() * min(4, len(seen)))]  # a re-view, often by "back"
            it, c, price = meta[item]
            rec = {"v": v, "type": PRODUCT_VIEW, "user": uid, "ts": ts, "session": sid,
                   "item": it, "category": c, "price": price}  # fmt: skip
            if rand() < 0.5:
                rec["back"] = True
            add(rec)
            seen.append(item)
        elif r < 0.24:
            rec = {"v": v, "type": PAGE_VIEW, "user": uid, "ts": ts, "session": sid,
                   "category": names[current]}  # fmt: skip
            if rand() < 0.3:
                rec["back"] = True
            add(rec)
        else:
            if rand() < 0.25:  # move on to another category
                current = rng.choice(favs) if rand() < 0.6 else cat.random_category(rng)
                if pull is not None:
                    current = pull.category(crng, current)
            if rand() < 0.12 and history:
                item = history[-1 - int(rand() * len(history))]  # seen on an earlier visit
            else:
                level = tier if rand() < 0.7 else 3
                if pull is not None and crng.random() < pull.p_tier:
                    level = pull.tier
                item = pick(rng, current, level)
            if item in bought and rand() < 0.7:
                item = pick(rng, current, 3)
            it, c, price = meta[item]
            add({"v": v, "type": PRODUCT_VIEW, "user": uid, "ts": ts, "session": sid,
                 "item": it, "category": c, "price": price})  # fmt: skip
            again = item in seen
            seen.append(item)
            if item not in cart and rand() < u.cart_p * (2.0 if again else 1.0):
                t += gap * jitter[int(rand() * 1024)] + 1.0
                cart[item] = price
                add({"v": v, "type": ADD_TO_CART, "user": uid, "ts": int(t * 1000) / 1000,
                     "session": sid, "item": it, "category": c, "price": price})  # fmt: skip
                if rand() < 0.12:
                    t += gap * jitter[int(rand() * 1024)] + 1.0
                    del cart[item]
                    add({"v": v, "type": REMOVE_FROM_CART, "user": uid,
                         "ts": int(t * 1000) / 1000, "session": sid, "item": it,
                         "category": c})  # fmt: skip
    buy_p = u.buy_p
    if persona == "abandoner" and u.k > 1:
        buy_p = 0.45  # they come back to buy what they left
    if cart and rand() < buy_p:
        for item, price in list(cart.items()):
            t += 2.0 + rand() * 8.0
            it, c, _ = meta[item]
            add({"v": v, "type": PURCHASE, "user": uid, "ts": int(t * 1000) / 1000,
                 "session": sid, "item": it, "category": c, "price": price})  # fmt: skip
            bought.add(item)
        cart.clear()
    elif cart and rand() < 0.15:
        cart.clear()  # gave up on the cart for good (it stays abandoned in their profile)
    if seen:
        u.history = list(dict.fromkeys(history + seen))[-20:]
    return out


# log-normal pace factors (median 1, sigma 0.6), drawn once: cheaper than a gauss per event
_JITTER = tuple(math.exp(random.Random(12345).gauss(0.0, 0.6)) for _ in range(1024))


def _query(rng: random.Random, cat_name: str) -> str:
    word = rng.choice(QUERY_WORDS)
    return f"{word} {cat_name.replace('-', ' ')}"


def generate_records(
    n_users: int,
    n_items: int = 5_000,
    n_categories: int = 24,
    sessions_per_user: float = 3.0,
    seed: int = 0,
    start_ts: float = DEFAULT_START_TS,
    with_context: bool = True,
    days: float = 8.0,
    *,
    context_effect: float = 1.0,
    country_field: bool = False,
) -> Iterator[dict[str, Any]]:
    """The stream of :func:`generate` as schema-v1 JSON objects (the fast path for files).

    ``context_effect`` scales the context effects of the module docstring (0: none, and then
    the stream is exactly the one made before they existed); ``country_field`` also writes the
    country code as ``context.country`` (the IP address always maps to the same country).
    """
    if n_users < 0 or n_items < 1 or n_categories < 1 or sessions_per_user < 1 or days <= 0:
        raise ValueError("need n_users >= 0, n_items >= 1, n_categories >= 1, "
                         "sessions_per_user >= 1 and days > 0")  # fmt: skip
    if not 0.0 <= context_effect <= 1.5:
        raise ValueError(f"context_effect must be within 0..1.5, got {context_effect!r}")
    rng = random.Random(seed)
    catalog = _Catalog(n_items, min(n_categories, n_items), rng)
    opts = _Options(with_context, context_effect, seed, _Groups(catalog.categories), country_field)
    span = days * 86_400.0
    # (users are made one by one as the merge draws their first visits: the random stream's
    # order is the one of the streams made before, so old seeds give the same shoppers)
    users = (_User(n, catalog, rng, sessions_per_user) for n in range(1, n_users + 1))
    yield from _interleave(users, lambda u, ts: _session(u, catalog, ts, opts), rng, start_ts, span)


class _Visitor(Protocol):
    """What :func:`_interleave` needs of a user."""

    left: int  # visits still to make
    visits: int  # visits in all
    offset_h: float  # UTC offset of the user's country


def _interleave(
    users: Iterable[_V],
    visit: Callable[[_V, float], list[dict[str, Any]]],
    rng: random.Random,
    start_ts: float,
    span: float,
) -> Iterator[dict[str, Any]]:
    """The records of every visit of ``users``, in time order.

    Visits are generated whole when they start, then merged in windows of event time: every
    record before the window's end is sorted and yielded; later ones wait for the next window.
    Nothing not yet generated can be earlier: a visit starts at or after the end of the window
    it is generated in, and a user's next visit starts after their last ends. (One heap entry per
    user: ties on time compare the user number, never the user.)
    """
    end = start_ts + span
    starts: list[tuple[float, int, _V]] = []
    for n, u in enumerate(users, start=1):
        first = _awake(start_ts + rng.random() * span / u.visits, u.offset_h)
        if first < end:
            starts.append((first, n, u))
    heapq.heapify(starts)
    pending: list[dict[str, Any]] = []
    by_ts = itemgetter("ts")
    window_end = start_ts
    while starts or pending:
        window_end += _WINDOW_S
        if starts and not pending and starts[0][0] >= window_end:
            window_end = starts[0][0] + _WINDOW_S  # skip a quiet stretch
        while starts and starts[0][0] < window_end:
            ts, n, u = starts[0]
            recs = visit(u, ts)
            pending += recs
            u.left -= 1
            if u.left > 0:
                nxt = recs[-1]["ts"] + max(2_700.0, rng.expovariate(u.visits / span))
                nxt = _awake(nxt, u.offset_h)
                if nxt < end:
                    heapq.heapreplace(starts, (nxt, n, u))
                    continue
            heapq.heappop(starts)
        pending.sort(key=by_ts)
        if not starts:
            yield from pending
            return
        cut = bisect_left(pending, window_end, key=by_ts)
        yield from pending[:cut]
        del pending[:cut]


_WINDOW_S = 3_600.0


def _event(d: Mapping[str, Any]) -> Event:
    ctx = d.get("context") or {}
    return Event(
        d["type"],
        d["user"],
        d["ts"],
        d.get("item"),
        d.get("category"),
        d.get("price"),
        d.get("query"),
        d.get("session"),
        back=d.get("back", False),
        dwell=d.get("dwell"),
        dnp=d.get("dnp", False),
        ua=ctx.get("ua"),
        ip=ctx.get("ip"),
        referrer=ctx.get("referrer"),
        utm=ctx.get("utm"),
        channel=ctx.get("channel"),
    )


def generate(
    n_users: int,
    n_items: int = 5_000,
    n_categories: int = 24,
    sessions_per_user: float = 3.0,
    seed: int = 0,
    start_ts: float = DEFAULT_START_TS,
    with_context: bool = True,
    days: float = 8.0,
    *,
    context_effect: float = 1.0,
) -> Iterator[Event]:
    """A seeded synthetic clickstream of ``n_users`` shoppers, in event-time order.

    :param n_items: catalogue size (items ``i1`` ...); a category's items have Zipf popularity.
    :param n_categories: categories (real names for the first 32, then ``cat32`` ...).
    :param sessions_per_user: mean visits per user (loyal users make twice as many).
    :param seed: the same seed and arguments give the same stream.
    :param start_ts: event time of the first day (default 2024-11-04 00:00 UTC).
    :param with_context: give each visit's first event its raw context (user agent, IP,
        referrer, UTM); without it the stream is smaller and enrichment has nothing to do.
    :param days: the stream's span; visits start inside ``[start_ts, start_ts + days)``.
    :param context_effect: strength of the context effects (module docstring); 0 turns them off.

    About 20 events per user with the defaults (3,000 users: ~60k events).

    >>> events = list(generate(50, seed=3))
    >>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
    True
    """
    for d in generate_records(
        n_users,
        n_items,
        n_categories,
        sessions_per_user,
        seed,
        start_ts,
        with_context,
        days,
        context_effect=context_effect,
    ):
        yield _event(d)


# --- news: a reading stream for a content site ---------------------------------------------------

NEWS_HOST = "news.example"  # the synthetic news site; its own pages are the internal referrers
NEWS_TOPICS = (
    "politics", "world", "business", "tech", "science", "health", "sports", "football",
    "culture", "film", "music", "travel", "food", "climate", "local", "opinion",
)  # fmt: skip
# Secondary topics an article of a primary topic may also carry.
RELATED_TOPICS: dict[str, tuple[str, ...]] = {
    "politics": ("world", "opinion", "business", "local"), "world": ("politics", "climate"),
    "business": ("tech", "politics"), "tech": ("science", "business"),
    "science": ("tech", "health", "climate"), "health": ("science", "food"),
    "sports": ("football", "local"), "football": ("sports",), "culture": ("film", "music"),
    "film": ("culture",), "music": ("culture",), "travel": ("food", "culture"),
    "food": ("health", "travel"), "climate": ("science", "world", "politics"),
    "local": ("politics", "sports"), "opinion": ("politics", "culture"),
}  # fmt: skip
NEWS_LANDINGS: tuple[tuple[str, float], ...] = (
    ("direct", 35), ("social", 25), ("search", 18), ("email", 10), ("internal", 12),
)  # fmt: skip
ARTICLES_PER_DAY = 120
HALF_LIFE_H = 4.0  # reading probability halves every 4 hours of an article's age
IMPORTANT_SHARE = 0.03  # "important" stories: read across interests, go stale 2.5x slower
IMPORTANT_APPEAL = 6.0
IMPORTANT_SLOWER = 2.5
READS_PER_VISIT = 4.5  # mean articles read per visit (about 4 after the landing)
P_IMPORTANT = 0.12  # P(a read is an important story, whatever the reader's interests)
P_RELATED = 0.4  # P(a read stays in the primary topic of the previous one)
P_INTEREST = 0.85  # otherwise P(a topic of the reader's interests), else any topic
DRIFT_REWEIGHT = 0.3  # P(a visit starts with one interest reweighted by a log-normal factor)
DRIFT_NEW = 0.1  # P(a visit starts with the weakest interest swapped for a new topic)
_SLOT_S = 600.0  # read weights are recomputed every 10 minutes of event time


class _Newsroom:
    """Articles (publish time, topics, appeal) and, per 10-minute slot, what can be read.

    A slot's tables hold the articles published before the slot starts and younger than 10
    half-lives, each weighted ``appeal * 2 ** (-age_h / half_life_h)`` (a secondary topic at
    half weight); the tables of the current slot are cached (visits arrive in time order).
    """

    def __init__(
        self, n_articles: int, n_topics: int, t0: float, t1: float, half_life_h: float,
        rng: random.Random,
    ) -> None:  # fmt: skip
        names = list(NEWS_TOPICS[:n_topics]) + [f"topic{n}" for n in range(16, n_topics)]
        self.topics = names
        index = {name: n for n, name in enumerate(names)}
        self.topic_cum = list(itertools.accumulate(1.0 / (r + 1) ** 0.7 for r in range(n_topics)))
        times: list[float] = []
        while len(times) < n_articles:  # more is published by day (06-22 UTC) than by night
            t = t0 + rng.random() * (t1 - t0)
            hour = (t / 3_600.0) % 24.0
            if 6.0 <= hour < 22.0 or rng.random() < 0.3:
                times.append(t)
        times.sort()
        self.published = [int(t) for t in times]
        self.items = [f"a{n}" for n in range(1, n_articles + 1)]
        self.topic_ids: list[tuple[int, ...]] = []
        self.appeal: list[float] = []
        self.half_life_s: list[float] = []
        self.important: list[bool] = []
        for _ in range(n_articles):
            primary = bisect(self.topic_cum, rng.random() * self.topic_cum[-1])
            ids = [primary]
            related = [index[r] for r in RELATED_TOPICS.get(names[primary], ()) if r in index]
            for _extra in range(rng.choices((0, 1, 2), (4, 4, 2))[0]):
                if related:
                    r = rng.choice(related)
                    if r not in ids:
                        ids.append(r)
            self.topic_ids.append(tuple(ids))
            big = rng.random() < IMPORTANT_SHARE
            self.important.append(big)
            self.appeal.append(math.exp(rng.gauss(0.0, 0.6)) * (IMPORTANT_APPEAL if big else 1.0))
            self.half_life_s.append(half_life_h * 3_600.0 * (IMPORTANT_SLOWER if big else 1.0))
        self.meta = [
            (self.items[n], names[ids[0]], [names[i] for i in ids], self.published[n])
            for n, ids in enumerate(self.topic_ids)
        ]
        self.horizon_s = 10.0 * IMPORTANT_SLOWER * half_life_h * 3_600.0  # older: never read
        self._slot = -1
        self._tables: tuple[list[tuple[list[int], list[float]]], tuple[list[int], list[float]]]
        self._tables = ([], ([], []))

    def tables(
        self, t: float
    ) -> tuple[list[tuple[list[int], list[float]]], tuple[list[int], list[float]]]:
        """Per topic ``(articles, cumulative weights)`` and the same for the important stories."""
        slot = int(t // _SLOT_S)
        if slot != self._slot:
            self._slot = slot
            now = slot * _SLOT_S
            hi = bisect(self.published, now)
            per_topic: list[tuple[list[int], list[float]]] = [([], []) for _ in self.topics]
            top: tuple[list[int], list[float]] = ([], [])
            for n in range(hi - 1, -1, -1):
                age = now - self.published[n]
                if age > self.horizon_s:
                    break
                half_life = self.half_life_s[n]
                if age > 10.0 * half_life:  # weight below 0.001: out of the news
                    continue
                w = self.appeal[n] * 2.0 ** (-age / half_life)
                for k, topic in enumerate(self.topic_ids[n]):
                    arts, cum = per_topic[topic]
                    arts.append(n)
                    cum.append((cum[-1] if cum else 0.0) + (w if k == 0 else 0.5 * w))
                if self.important[n]:
                    top[0].append(n)
                    top[1].append((top[1][-1] if top[1] else 0.0) + w)
            self._tables = (per_topic, top)
        return self._tables


class _Reader:
    """One synthetic reader: topic interests (that drift) and a device and country."""

    __slots__ = (
        "uid", "interests", "weights", "ua", "device", "app", "ip", "country", "offset_h",
        "dnp", "read", "k", "left", "visits",
    )  # fmt: skip

    def __init__(self, n: int, room: _Newsroom, rng: random.Random, mean_sessions: float) -> None:
        self.uid = f"r{n}"
        k = rng.choice((2, 2, 3, 3, 4))
        cum = room.topic_cum
        topics = list(dict.fromkeys(bisect(cum, rng.random() * cum[-1]) for _ in range(k)))
        self.interests = topics
        self.weights = [rng.expovariate(1.0) + 0.2 for _ in topics]
        ua_n = rng.choices(range(len(USER_AGENTS)), UA_WEIGHTS)[0]
        self.ua = USER_AGENTS[ua_n][1]
        self.device = USER_AGENTS[ua_n][0]
        self.app = self.device == "mobile" and rng.random() < 0.4
        country = rng.choices(COUNTRIES, [c[1] for c in COUNTRIES])[0]
        self.country = country[0]
        self.ip = rng.choice(country[3])
        self.offset_h = country[2]
        self.dnp = rng.random() < DNP_SHARE
        extra = max(0.0, mean_sessions - 1.0)
        n_sessions = 1 + (int(rng.expovariate(1.0 / extra)) if extra > 0 else 0)
        self.left = self.visits = min(n_sessions, 1 + int(4 * mean_sessions))
        self.read: set[int] = set()
        self.k = 0

    def drift(self, rng: random.Random, room: _Newsroom) -> None:
        """Interests drift between visits: a weight changes, now and then a topic is replaced."""
        if rng.random() < DRIFT_REWEIGHT:
            i = int(rng.random() * len(self.weights))
            self.weights[i] *= math.exp(rng.gauss(0.0, 0.7))
        if rng.random() < DRIFT_NEW:
            cum = room.topic_cum
            new = bisect(cum, rng.random() * cum[-1])
            if new not in self.interests:
                weakest = min(range(len(self.weights)), key=self.weights.__getitem__)
                self.interests[weakest] = new
                self.weights[weakest] = sum(self.weights) / len(self.weights)

    def topic(self, rng: random.Random) -> int:
        r = rng.random() * sum(self.weights)
        for topic, w in zip(self.interests, self.weights, strict=True):
            r -= w
            if r < 0:
                return topic
        return self.interests[-1]


_NEWS_LANDING_NAMES = [name for name, _ in NEWS_LANDINGS]
_NEWS_LANDING_CUM = list(itertools.accumulate(w for _, w in NEWS_LANDINGS))


def _news_context(u: _Reader, rng: random.Random, landing: str, topic: str) -> dict[str, Any]:
    ctx: dict[str, Any] = {"ua": u.ua, "ip": u.ip, "channel": "app" if u.app else "web"}
    if landing == "search":
        ctx["referrer"] = rng.choice(_SEARCH)
    elif landing == "social":
        ctx["referrer"] = rng.choice(_SOCIAL)
    elif landing == "email":
        ctx["utm"] = {"source": "newsletter", "medium": "email", "campaign": "morning-briefing"}
    elif landing == "internal":
        ctx["referrer"] = f"https://{NEWS_HOST}/section/{topic}"
    return ctx


def _draw(rng: random.Random, table: tuple[list[int], list[float]]) -> int | None:
    arts, cum = table
    if not arts:
        return None
    return arts[bisect(cum, rng.random() * cum[-1])]


def _news_visit(
    u: _Reader, room: _Newsroom, t: float, rng: random.Random, with_context: bool
) -> list[dict[str, Any]]:
    """One visit of reader ``u`` starting at ``t``: a landing, then several reads."""
    v = SCHEMA_VERSION
    uid = u.uid
    u.k += 1
    sid = f"{uid}.{u.k}"
    u.drift(rng, room)
    per_topic, top = room.tables(t)
    names = room.topics
    meta = room.meta
    read = u.read
    out: list[dict[str, Any]] = []
    landing = _NEWS_LANDING_NAMES[bisect(_NEWS_LANDING_CUM, rng.random() * _NEWS_LANDING_CUM[-1])]
    topic = u.topic(rng)
    if u.dnp and u.k == 1:
        out.append({"v": v, "type": DO_NOT_PERSONALIZE, "user": uid, "ts": int(t * 1000) / 1000,
                    "dnp": True})  # fmt: skip
    previous: int | None = None
    first: dict[str, Any] = {"v": v, "type": PAGE_VIEW, "user": uid, "ts": int(t * 1000) / 1000,
                             "session": sid}  # fmt: skip
    if landing in ("social", "search", "email"):  # straight onto an article
        pick = _draw(rng, top) if landing != "search" and rng.random() < 0.5 else None
        if pick is None:
            pick = _draw(rng, per_topic[topic])
        if pick is not None:
            previous = pick
    elif landing == "internal" or rng.random() < 0.2:
        first["category"] = names[topic]  # a section page
    if previous is not None:
        it, primary, topics, published = meta[previous]
        first.update(type=PRODUCT_VIEW, item=it, category=primary, topics=topics,
                     published=published, dwell=_reading_s(rng))  # fmt: skip
        read.add(previous)
    if with_context:
        first["context"] = _news_context(u, rng, landing, names[topic])
    out.append(first)
    t += first.get("dwell", 5.0 + rng.random() * 10.0)
    n_reads = min(15, int(rng.expovariate(1.0 / (READS_PER_VISIT - 1.0))) + 1)
    if previous is not None:
        n_reads -= 1
    for _ in range(n_reads):
        pick = None
        for _try in range(6):
            r = rng.random()
            if r < P_IMPORTANT:
                pick = _draw(rng, top)
            elif previous is not None and r < P_IMPORTANT + P_RELATED:
                pick = _draw(rng, per_topic[room.topic_ids[previous][0]])
            elif rng.random() < P_INTEREST:
                pick = _draw(rng, per_topic[u.topic(rng)])
            else:
                cum = room.topic_cum
                pick = _draw(rng, per_topic[bisect(cum, rng.random() * cum[-1])])
            if pick is not None and pick not in read:
                break
            pick = None
        if pick is None:
            break
        t += 2.0 + rng.random() * 12.0
        if rng.random() < 0.12:  # through a section page
            out.append({"v": v, "type": PAGE_VIEW, "user": uid, "ts": int(t * 1000) / 1000,
                        "session": sid, "category": names[room.topic_ids[pick][0]]})  # fmt: skip
            t += 3.0 + rng.random() * 8.0
        it, primary, topics, published = meta[pick]
        dwell = _reading_s(rng)
        out.append({"v": v, "type": PRODUCT_VIEW, "user": uid, "ts": int(t * 1000) / 1000,
                    "session": sid, "item": it, "category": primary, "topics": topics,
                    "published": published, "dwell": dwell})  # fmt: skip
        read.add(pick)
        previous = pick
        t += dwell
    if len(read) > 400:  # old reads can no longer be drawn anyway: keep the set small
        horizon = t - room.horizon_s
        u.read = {n for n in read if room.published[n] >= horizon}
    return out


def _reading_s(rng: random.Random) -> float:
    """Seconds spent on an article: log-normal, median 40 s, a long tail of careful reads."""
    return round(min(1_800.0, 40.0 * math.exp(rng.gauss(0.0, 0.8))), 1)


def generate_news_records(
    n_users: int,
    n_articles: int | None = None,
    n_topics: int = 12,
    sessions_per_user: float = 6.0,
    seed: int = 0,
    start_ts: float = DEFAULT_START_TS,
    with_context: bool = True,
    days: float = 4.0,
    half_life_h: float = HALF_LIFE_H,
) -> Iterator[dict[str, Any]]:
    """A seeded reading stream of a news site as schema-v1 JSON objects, in time order.

    :param n_articles: articles (``a1`` ... in publish order); default 120 a day, published
        from a day before ``start_ts`` to the end of the span.
    :param n_topics: topics (the first of :data:`NEWS_TOPICS`, then ``topic16`` ...).
    :param sessions_per_user: mean visits per reader over the span.
    :param half_life_h: hours after which an article is read half as often (important stories
        2.5 times longer).

    See the module docstring for what the readers do. About 25 events per reader with the
    defaults.

    >>> recs = list(generate_news_records(20, seed=1))
    >>> read = [r for r in recs if r["type"] == "product_view"]
    >>> all(r["published"] <= r["ts"] and r["category"] == r["topics"][0] for r in read)
    True
    """
    if n_users < 0 or n_topics < 1 or sessions_per_user < 1 or days <= 0 or half_life_h <= 0:
        raise ValueError("need n_users >= 0, n_topics >= 1, sessions_per_user >= 1, days > 0 "
                         "and half_life_h > 0")  # fmt: skip
    span = days * 86_400.0
    if n_articles is None:
        n_articles = int(ARTICLES_PER_DAY * (days + 1.0))
    if n_articles < 1:
        raise ValueError(f"need n_articles >= 1, got {n_articles}")
    rng = random.Random(seed)
    room = _Newsroom(n_articles, n_topics, start_ts - 86_400.0, start_ts + span, half_life_h, rng)
    readers = (_Reader(n, room, rng, sessions_per_user) for n in range(1, n_users + 1))
    yield from _interleave(
        readers, lambda u, ts: _news_visit(u, room, ts, rng, with_context), rng, start_ts, span
    )


def write_jsonl(events: Iterable[Event | Mapping[str, Any]], path: str | Path) -> int:
    """Write events (or schema-v1 dicts such as :func:`generate_records` yields) as JSON
    lines to ``path`` (replacing it); the number of lines written."""
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    n = 0
    with open(path, "wb") as f:
        write = f.write
        chunk: list[bytes] = []
        append = chunk.append
        for e in events:
            append(dumps(e.to_dict() if type(e) is Event else e, option=newline))
            if len(chunk) >= 8_192:
                n += len(chunk)
                write(b"".join(chunk))
                chunk.clear()
        n += len(chunk)
        write(b"".join(chunk))
    return n


def bad_lines(ts: float = DEFAULT_START_TS) -> Iterator[tuple[str, bytes]]:
    """Malformed records, each with the rejection reason rtp gives it: ``(reason, line)``.

    ``ts`` is the event time of the records whose time is not their fault: use one near the
    end of the stream they are appended to, so that only the intended defect rejects them.
    Every kind is here: invalid JSON, unknown type, missing user, bad price, oversized and a
    timestamp from the far future (the last is rejected by the source's clock, not the parser).
    """

    def line(**fields: Any) -> bytes:
        return orjson.dumps({"v": SCHEMA_VERSION, **fields})

    ok = {"user": "u1", "ts": ts, "item": "i1", "category": "shoes"}
    yield INVALID_JSON, line(type=PRODUCT_VIEW, **ok)[:-9]  # truncated mid-record
    yield INVALID_JSON, b"GET /products/i1 HTTP/1.1"  # not JSON at all
    yield INVALID_JSON, b'[1511658000, "u1", "i1"]'  # JSON, but not an object
    yield UNKNOWN_TYPE, line(type="teleport", **ok)
    yield UNKNOWN_TYPE, line(**ok)  # no type at all
    yield MISSING_FIELD, line(type=PRODUCT_VIEW, ts=ts, item="i1")  # neither user nor anon
    yield INVALID_PRICE, line(type=PURCHASE, price=-19.99, **ok)
    yield INVALID_PRICE, line(type=PURCHASE, price="12,99", **ok)
    yield OVERSIZED, line(type=SEARCH, user="u1", ts=ts, query="x" * (MAX_RECORD_BYTES + 10))
    yield TIMESTAMP_OUT_OF_RANGE, line(type=PRODUCT_VIEW, **{**ok, "ts": ts + 10 * 365 * 86_400})


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m rtp.tools.synth",
        description="Write a seeded synthetic clickstream (rtp schema-v1 JSON lines).",
    )
    p.add_argument("--users", type=int, required=True,
                   help="shoppers (~20 events each) or readers (~25 events each)")  # fmt: skip
    p.add_argument("--out", required=True, help="the JSONL file to write (replaced)")
    p.add_argument("--kind", choices=KINDS, default="shop",
                   help="shop: an online shop (default); news: a news site's readers")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--items", type=int, default=None,
                   help="catalogue size (shop: 5000) or articles (news: 120 a day)")  # fmt: skip
    p.add_argument("--categories", type=int, default=None,
                   help="categories (shop: 24) or topics (news: 12)")  # fmt: skip
    p.add_argument("--sessions", type=float, default=None,
                   help="mean visits per user (shop: 3, news: 6)")  # fmt: skip
    p.add_argument("--days", type=float, default=None, help="time span (shop: 8 days, news: 4)")
    p.add_argument("--start", type=float, default=DEFAULT_START_TS, help="first day, unix s")
    p.add_argument("--no-context", action="store_true", help="no user agent, IP or referrer")
    p.add_argument("--context-effect", type=float, default=1.0,
                   help="shop: strength of the context effects (0 = none; default 1)")  # fmt: skip
    p.add_argument("--country-field", action="store_true",
                   help="shop: also write the country code as context.country")  # fmt: skip
    p.add_argument("--half-life", type=float, default=HALF_LIFE_H,
                   help="news: hours for an article's readership to halve (default 4)")  # fmt: skip
    p.add_argument("--bad-lines", action="store_true", help="append the malformed records")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m rtp.tools.synth --users N --out FILE.jsonl [--kind news] [--seed S]``."""
    args = _parse_args(argv)
    t0 = time.perf_counter()
    records: Iterator[dict[str, Any]]
    if args.kind == "news":
        records = generate_news_records(
            args.users,
            n_articles=args.items,
            n_topics=12 if args.categories is None else args.categories,
            sessions_per_user=6.0 if args.sessions is None else args.sessions,
            seed=args.seed,
            start_ts=args.start,
            with_context=not args.no_context,
            days=4.0 if args.days is None else args.days,
            half_life_h=args.half_life,
        )
    else:
        records = generate_records(
            args.users,
            n_items=5_000 if args.items is None else args.items,
            n_categories=24 if args.categories is None else args.categories,
            sessions_per_user=3.0 if args.sessions is None else args.sessions,
            seed=args.seed,
            start_ts=args.start,
            with_context=not args.no_context,
            days=8.0 if args.days is None else args.days,
            context_effect=args.context_effect,
            country_field=args.country_field,
        )
    last = [args.start]

    def tracked() -> Iterator[dict[str, Any]]:
        for d in records:
            last[0] = d["ts"]
            yield d

    n = write_jsonl(tracked() if args.bad_lines else records, args.out)
    if args.bad_lines:
        with open(args.out, "ab") as f:
            bad = [raw + b"\n" for _, raw in bad_lines(last[0])]
            f.write(b"".join(bad))
        n += len(bad)
    seconds = time.perf_counter() - t0
    size = Path(args.out).stat().st_size
    print(
        f"wrote {n:,} {args.kind} events of {args.users:,} users to {args.out} "
        f"({size / 1e6:.1f} MB) in {seconds:.2f} s "
        f"({n / seconds if seconds > 0 else 0:,.0f} events/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
