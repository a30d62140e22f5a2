"""Event enrichment: device, browser, OS, country, referral class and local time (pure domain code).

:class:`Enricher` fills the derived fields of an :class:`rtp.capture.events.Event` in place and
drops the raw IP address (``event.ip = None``: rtp never keeps it)::

    enricher = Enricher(site_hosts=("shop.example",))
    enricher.enrich_all(events)

The derived fields and what they mean when the event carries no context:

==============  ====================================================  ======================
field           values                                                no ``context`` at all
==============  ====================================================  ======================
``device``      ``mobile``, ``tablet``, ``desktop``, ``bot``,         ``None``
                ``unknown`` (a UA that says nothing usable)
``browser``     ua-parser's family (``Chrome``, ``Mobile Safari``,    ``None``
                ``Googlebot``...), ``Other`` if unrecognised
``os``          ua-parser's OS family (``Windows``, ``iOS``...)       ``None``
``country``     ISO 3166-1 alpha-2 from the IP (offline, ``iptocc``),  ``None``
                else ``context.country`` as the producer gave it
``referral``    ``paid``, ``email``, ``social``, ``search``,          ``None`` (not observed,
                ``internal``, ``direct``, ``other``                   rather than ``direct``)
``hour``        local hour 0..23                                      from the default offset
``weekday``     local weekday, 0 = Monday                             from the default offset
==============  ====================================================  ======================

``None`` always means "not observed": ``device``, ``browser`` and ``os`` stay ``None`` without
a user agent, ``country`` without an IP or a given country (the live stream's producer resolves
``context.ip`` to ``context.country`` before storing the event: that country is kept, and sets
the local hour, as an IP's would). An event with some context (a UA, a channel, a country...)
but neither referrer nor UTM parameters is ``direct``.

Cost is what matters here (every event passes through): most public datasets carry no context,
so such an event costs six attribute tests and one cached hour lookup. User agents repeat
heavily and parsing one costs 50-400 µs, so parses are kept in an LRU cache keyed on the UA
string; referrers are classified through an LRU cache too. Country lookups are *not* cached:
``iptocc`` answers in ~0.06-0.12 µs, no faster than a cache hit (measured), so a cache would only
cost memory.

Local time uses one standard (non-DST) UTC offset per country from a small table of common
countries (for the US, Eastern time, where the largest share of users lives), else
``default_utc_offset_h``; it is meant as a feature (morning vs evening shopping), not a clock.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import iptocc

from rtp.capture.events import Event

__all__ = [
    "Enricher",
    "COUNTRY_UTC_OFFSET_H",
    "DEVICES",
    "REFERRALS",
    "referral_from_utm",
    "local_hour_weekday",
]

DEVICES = ("mobile", "tablet", "desktop", "bot", "unknown")
REFERRALS = ("paid", "email", "social", "search", "internal", "direct", "other")

# Standard offsets (hours, no daylight saving) of common countries.
COUNTRY_UTC_OFFSET_H: dict[str, float] = {
    "US": -5.0, "CA": -5.0, "MX": -6.0, "BR": -3.0, "AR": -3.0, "CL": -4.0, "CO": -5.0,
    "PE": -5.0, "VE": -4.0, "GB": 0.0, "IE": 0.0, "PT": 0.0, "IS": 0.0, "ES": 1.0,
    "FR": 1.0, "DE": 1.0, "IT": 1.0, "NL": 1.0, "BE": 1.0, "LU": 1.0, "CH": 1.0, "AT": 1.0,
    "DK": 1.0, "NO": 1.0, "SE": 1.0, "PL": 1.0, "CZ": 1.0, "SK": 1.0, "HU": 1.0, "HR": 1.0,
    "SI": 1.0, "RS": 1.0, "NG": 1.0, "FI": 2.0, "EE": 2.0, "LV": 2.0, "LT": 2.0, "GR": 2.0,
    "RO": 2.0, "BG": 2.0, "UA": 2.0, "IL": 2.0, "EG": 2.0, "ZA": 2.0, "TR": 3.0, "RU": 3.0,
    "BY": 3.0, "SA": 3.0, "KE": 3.0, "AE": 4.0, "IR": 3.5, "PK": 5.0, "IN": 5.5, "LK": 5.5,
    "NP": 5.75, "BD": 6.0, "TH": 7.0, "VN": 7.0, "ID": 7.0, "CN": 8.0, "HK": 8.0, "TW": 8.0,
    "SG": 8.0, "MY": 8.0, "PH": 8.0, "JP": 9.0, "KR": 9.0, "AU": 10.0, "NZ": 12.0,
}  # fmt: skip

_PAID_MEDIA = frozenset(
    {"cpc", "ppc", "paid", "display", "cpm", "cpv", "banner", "retargeting", "remarketing",
     "paidsearch", "paid_search", "paid-search", "paidsocial", "paid_social", "paid-social",
     "sem", "ads", "ad"}
)  # fmt: skip
_CLICK_IDS = ("gclid", "gbraid", "wbraid", "dclid", "msclkid", "ttclid", "twclid", "yclid")
_EMAIL_MEDIA = frozenset({"email", "e-mail", "e_mail", "mail", "newsletter", "emailing"})
_SOCIAL_MEDIA = frozenset(
    {"social", "social-network", "social_network", "social-media", "social_media", "sm",
     "organic_social", "organic-social"}
)  # fmt: skip
_SEARCH_MEDIA = frozenset({"organic", "seo", "search"})

# Referrer brands: the label in front of the public suffix ("google" of news.google.co.uk).
_BRANDS: dict[str, str] = {
    **dict.fromkeys(
        ("google", "bing", "duckduckgo", "yahoo", "baidu", "yandex", "ecosia", "ask", "naver",
         "seznam", "qwant", "startpage", "sogou", "so", "aol", "daum", "petalsearch", "kagi"),
        "search",
    ),
    **dict.fromkeys(
        ("facebook", "fb", "instagram", "twitter", "linkedin", "pinterest", "reddit", "tiktok",
         "youtube", "snapchat", "whatsapp", "telegram", "vk", "weibo", "tumblr", "quora",
         "threads", "discord", "twitch", "messenger", "mastodon", "bsky", "line", "wechat"),
        "social",
    ),
    **dict.fromkeys(("gmail", "outlook", "hotmail", "protonmail", "proton"), "email"),
}  # fmt: skip
# Hosts (after dropping "www.") decided before the brand rule, including Android app referrers.
_HOSTS: dict[str, str] = {
    "t.co": "social", "x.com": "social", "lnkd.in": "social", "youtu.be": "social",
    "pin.it": "social", "redd.it": "social", "t.me": "social", "fb.me": "social",
    "mail.google.com": "email", "inbox.google.com": "email", "mail.yahoo.com": "email",
    "outlook.live.com": "email", "outlook.office.com": "email", "outlook.office365.com": "email",
    "mail.aol.com": "email", "mail.proton.me": "email", "mail.yandex.ru": "email",
    "search.brave.com": "search", "search.yahoo.com": "search",
    "com.google.android.gm": "email", "com.microsoft.office.outlook": "email",
    "com.google.android.googlequicksearchbox": "search", "com.facebook.katana": "social",
    "com.facebook.orca": "social", "com.instagram.android": "social",
    "com.twitter.android": "social", "com.linkedin.android": "social",
    "com.pinterest": "social", "com.reddit.frontpage": "social",
    "com.zhiliaoapp.musically": "social", "com.google.android.youtube": "social",
}  # fmt: skip
_MAIL_LABELS = frozenset({"mail", "webmail", "email", "post"})
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or", "go"})
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday


def local_hour_weekday(ts: float, offset_h: float) -> tuple[int, int]:
    """Local ``(hour, weekday)`` (0 = Monday) of unix time ``ts`` at UTC offset ``offset_h``."""
    local_hours = int((ts + offset_h * 3_600.0) // 3_600.0)
    return local_hours % 24, (local_hours // 24 + _EPOCH_WEEKDAY) % 7


def _utm_get(utm: Mapping[str, Any], name: str) -> str:
    value = utm.get(name)
    if value is None:
        value = utm.get("utm_" + name)
    return value.strip().lower() if isinstance(value, str) else ""


def referral_from_utm(utm: Mapping[str, Any]) -> str | None:
    """The referral class the UTM parameters (or an ad click id) state, ``None`` if unclear."""
    for key in _CLICK_IDS:
        if utm.get(key):
            return "paid"
    medium = _utm_get(utm, "medium")
    if medium:
        if medium in _PAID_MEDIA or medium.startswith(("paid", "cpc")):
            return "paid"
        if medium in _EMAIL_MEDIA:
            return "email"
        if medium in _SOCIAL_MEDIA:
            return "social"
        if medium in _SEARCH_MEDIA:
            return "search"
    source = _utm_get(utm, "source")
    if source:
        if source in _EMAIL_MEDIA:
            return "email"
        brand = _BRANDS.get(source.split(".")[0]) or _HOSTS.get(source)
        if brand is not None:
            return brand
    return None


def _host(url: str) -> tuple[str, bool]:
    """Lower-case host of a referrer URL (``www.`` and port dropped) and whether it is an app."""
    url = url.strip()
    scheme_end = url.find("://")
    app = False
    if scheme_end >= 0:
        app = url[:scheme_end].lower() == "android-app"
        rest = url[scheme_end + 3 :]
    elif url.startswith("//"):
        rest = url[2:]
    else:
        rest = url
    for sep in "/?#":
        cut = rest.find(sep)
        if cut >= 0:
            rest = rest[:cut]
    rest = rest.rpartition("@")[2].lower()
    if rest.startswith("["):  # IPv6 literal
        return rest.partition("]")[0] + "]", app
    host = rest.partition(":")[0].rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    return host, app


def _classify_host(host: str, app: bool, site_hosts: tuple[str, ...]) -> str:
    if not host:
        return "other"
    for site in site_hosts:
        if host == site or host.endswith("." + site):
            return "internal"
    known = _HOSTS.get(host)
    if known is not None:
        return known
    labels = host.split(".")
    if app:  # a package name: com.brand.app
        return _BRANDS.get(labels[1], "other") if len(labels) > 1 else "other"
    if len(labels) >= 3 and labels[0] in _MAIL_LABELS:
        return "email"
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        brand = labels[-3]
    elif len(labels) >= 2:
        brand = labels[-2]
    else:
        brand = labels[0]
    return _BRANDS.get(brand, "other")


class Enricher:
    """Fills an event's derived fields in place; keeps LRU caches of UA parses and referrers.

    :param ua_cache_size: user agents kept parsed (an entry is ~0.3 kB with its key).
    :param site_hosts: the site's own hosts; referrers on them (or their subdomains) are
        ``internal``. ``www.`` is ignored on both sides.
    :param default_utc_offset_h: the offset for events whose country is unknown or not in
        :data:`COUNTRY_UTC_OFFSET_H`.
    :param referrer_cache_size: referrer URLs kept classified.
    """

    def __init__(
        self,
        ua_cache_size: int = 4096,
        site_hosts: Iterable[str] = (),
        default_utc_offset_h: float = 0.0,
        *,
        referrer_cache_size: int = 8192,
    ) -> None:
        self.site_hosts = tuple(
            h.strip().lower().removeprefix("www.") for h in site_hosts if h.strip()
        )
        self.default_utc_offset_h = float(default_utc_offset_h)
        self._parser: Any = None
        self._ua: functools._lru_cache_wrapper[tuple[str, str, str]] = functools.lru_cache(
            maxsize=ua_cache_size
        )(self._parse_ua)
        self._referrer: functools._lru_cache_wrapper[str] = functools.lru_cache(
            maxsize=referrer_cache_size
        )(self._parse_referrer)
        # local hours since the epoch at the default offset -> (hour, weekday).
        self._default_hours: dict[int, tuple[int, int]] = {}
        self._default_offset_s = self.default_utc_offset_h * 3_600.0

    # -- the hot path -------------------------------------------------------------------------

    def enrich(self, event: Event) -> None:
        """Fill ``device, browser, os, country, referral, hour, weekday``; drop ``event.ip``.

        A country already on the event (``context.country``) stays when there is no IP, or
        when the IP's country is unknown.
        """
        ua = event.ua
        ip = event.ip
        referrer = event.referrer
        utm = event.utm
        if ua is None and ip is None and referrer is None and utm is None and event.country is None:
            if event.channel is not None:
                event.referral = "direct"
            key = int(event.ts + self._default_offset_s) // 3_600
            hw = self._default_hours.get(key)
            if hw is None:
                hw = self._default_hour(key)
            event.hour, event.weekday = hw
            return
        if ua is not None:
            event.device, event.browser, event.os = self._ua(ua)
        country = event.country  # given by the producer (context.country), or None
        if ip is not None:
            country = country_of(ip) or country
            event.ip = None
            event.country = country
        referral = referral_from_utm(utm) if utm else None
        if referral is None:
            # an unclassifiable campaign without a referrer is "other", nothing at all "direct"
            referral = self._referrer(referrer) if referrer else ("other" if utm else "direct")
        event.referral = referral
        offset = COUNTRY_UTC_OFFSET_H.get(country) if country is not None else None
        if offset is None:
            key = int(event.ts + self._default_offset_s) // 3_600
            hw = self._default_hours.get(key)
            if hw is None:
                hw = self._default_hour(key)
            event.hour, event.weekday = hw
        else:
            event.hour, event.weekday = local_hour_weekday(event.ts, offset)

    def enrich_all(self, events: list[Event]) -> list[Event]:
        """Enrich every event of ``events`` in place; returns the same list."""
        enrich = self.enrich
        for event in events:
            enrich(event)
        return events

    # -- cache fills --------------------------------------------------------------------------

    def _default_hour(self, key: int) -> tuple[int, int]:
        if len(self._default_hours) >= 65_536:  # ~7 years of hours; never in practice
            self._default_hours.clear()
        hw = (key % 24, (key // 24 + _EPOCH_WEEKDAY) % 7)
        self._default_hours[key] = hw
        return hw

    def _parse_ua(self, ua: str) -> tuple[str, str, str]:
        parser = self._parser
        if parser is None:
            parser = self._parser = _make_ua_parser()
        result = parser.parse(ua)
        browser = result.user_agent.family if result.user_agent is not None else "Other"
        os_family = result.os.family if result.os is not None else "Other"
        device = result.device
        return (
            _device_type(
                ua,
                browser,
                os_family,
                device.family if device is not None else "",
                device.brand or "" if device is not None else "",
            ),
            browser,
            os_family,
        )

    def _parse_referrer(self, referrer: str) -> str:
        host, app = _host(referrer)
        return _classify_host(host, app, self.site_hosts)

    def cache_info(self) -> dict[str, Any]:
        """Hit/miss counts of the UA and referrer caches (for stats and tests)."""
        out: dict[str, Any] = {}
        for name, info in (
            ("ua", self._ua.cache_info()),
            ("referrer", self._referrer.cache_info()),
        ):
            out[name] = {"hits": info.hits, "misses": info.misses, "size": info.currsize}
        return out


def country_of(ip: str) -> str | None:
    """ISO 3166-1 alpha-2 country of an IP address (offline), ``None`` when unknown."""
    try:
        cc = iptocc.country_code(ip)
    except (ValueError, TypeError):
        return None
    return cc if isinstance(cc, str) and cc else None


def _make_ua_parser() -> Any:
    """ua-parser's fastest resolver without its own cache (ours is in front of it)."""
    import ua_parser

    return ua_parser.Parser(ua_parser.BestAvailableResolver(ua_parser.load_lazy_builtins()))


_BOT_TOKENS = (
    "bot", "crawl", "spider", "slurp", "curl/", "wget/", "python-", "headless", "httpclient",
    "go-http-client", "okhttp", "java/", "libwww", "scrapy", "phantomjs", "facebookexternalhit",
    "lighthouse", "pingdom", "monitor",
)  # fmt: skip
_DESKTOP_OS = frozenset(
    {"Windows", "Mac OS X", "macOS", "Linux", "Ubuntu", "Chrome OS", "ChromeOS", "Fedora",
     "Debian", "FreeBSD", "OpenBSD", "NetBSD", "Solaris", "Red Hat", "Mint", "Arch Linux"}
)  # fmt: skip
_MOBILE_OS = frozenset(
    {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS", "Symbian OS", "Tizen",
     "HarmonyOS", "Firefox OS", "webOS", "Windows Mobile"}
)  # fmt: skip


def _device_type(ua: str, browser: str, os_family: str, device: str, brand: str) -> str:
    low = ua.lower()
    if device == "Spider":
        return "bot"
    # "Cubot" phones contain "bot": trust the OS when it is a phone's.
    if any(t in low for t in _BOT_TOKENS) and not (os_family in _MOBILE_OS and "cubot" in low):
        return "bot"
    if (
        device in ("iPad", "Kindle")
        or "Tablet" in brand
        or "tablet" in low
        or "kindle" in low
        or "silk/" in low
        or (os_family == "Android" and "mobile" not in low)
    ):
        return "tablet"
    if os_family in _MOBILE_OS or "mobi" in low or device in ("iPhone", "iPod"):
        return "mobile"
    if os_family in _DESKTOP_OS or device == "Mac":
        return "desktop"
    return "unknown"
