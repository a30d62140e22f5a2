"""Enricher: real user agents, real IP lookups, every referral class, local time, caches."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import iptocc
import pytest

from rtp.capture.enrich import COUNTRY_UTC_OFFSET_H, Enricher, local_hour_weekday, referral_from_utm
from rtp.capture.events import Event, parse_json

CHROME_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
IPHONE_SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Mobile Safari/537.36"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
TS = 1_511_658_000.0  # 2017-11-26 01:00 UTC, a Sunday


def ev(**ctx: object) -> Event:
    return Event("product_view", "u1", TS, item="i1", **ctx)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(site_hosts=("www.shop.example",))


@pytest.mark.parametrize(
    ("ua", "device", "browser", "os"),
    [
        (CHROME_DESKTOP, "desktop", "Chrome", "Windows"),
        (IPHONE_SAFARI, "mobile", "Mobile Safari", "iOS"),
        (ANDROID_TABLET, "tablet", "Chrome", "Android"),
        (ANDROID_PHONE, "mobile", "Chrome Mobile", "Android"),
        (IPAD, "tablet", "Mobile Safari", "iOS"),
        (GOOGLEBOT, "bot", "Googlebot", None),
        ("curl/8.4.0", "bot", None, None),
        ("definitely not a browser", "unknown", "Other", "Other"),
    ],
)
def test_user_agents(
    enricher: Enricher, ua: str, device: str, browser: str | None, os: str | None
) -> None:
    e = ev(ua=ua)
    enricher.enrich(e)
    assert e.device == device
    if browser is not None:
        assert e.browser == browser
    if os is not None:
        assert e.os == os


def test_ua_cache_hit_path() -> None:
    en = Enricher(ua_cache_size=2)
    first, second = ev(ua=CHROME_DESKTOP), ev(ua=CHROME_DESKTOP)
    en.enrich(first)
    before = en.cache_info()["ua"]
    en.enrich(second)
    after = en.cache_info()["ua"]
    assert after["misses"] == before["misses"] == 1
    assert after["hits"] == before["hits"] + 1
    assert (second.device, second.browser, second.os) == (first.device, first.browser, first.os)
    for ua in (IPHONE_SAFARI, GOOGLEBOT, IPAD):  # bounded: evicts least recently used
        en.enrich(ev(ua=ua))
    assert en.cache_info()["ua"]["size"] == 2


@pytest.mark.parametrize("ip", ["8.8.8.8", "81.2.69.160", "5.9.0.1", "133.242.0.1"])
def test_country_from_ip_and_ip_dropped(enricher: Enricher, ip: str) -> None:
    expected = iptocc.country_code(ip)
    assert expected is not None and len(expected) == 2
    e = ev(ip=ip)
    enricher.enrich(e)
    assert e.country == expected
    assert e.ip is None


def test_known_countries() -> None:
    en = Enricher()
    for ip, cc in (("8.8.8.8", "US"), ("81.2.69.160", "GB")):
        e = ev(ip=ip)
        en.enrich(e)
        assert e.country == cc


def test_bad_or_private_ip_has_no_country(enricher: Enricher) -> None:
    for ip in ("10.1.2.3", "not-an-ip", ""):
        e = ev(ip=ip)
        enricher.enrich(e)
        assert e.country is None
        assert e.ip is None


def test_ip_never_serialized_after_enrichment(enricher: Enricher) -> None:
    raw = (
        b'{"v":1,"type":"page_view","user":"u1","ts":1511658000,'
        b'"context":{"ip":"81.2.69.160","ua":"curl/8"}}'
    )
    e = parse_json(raw, "f:1")
    assert isinstance(e, Event)
    enricher.enrich(e)
    assert "81.2.69.160" not in str(e.to_dict())


@pytest.mark.parametrize(
    ("referrer", "utm", "expected"),
    [
        (None, {"source": "google", "medium": "cpc"}, "paid"),
        (None, {"utm_medium": "display"}, "paid"),
        ("https://www.google.com/", {"gclid": "abc123"}, "paid"),
        (None, {"source": "newsletter", "medium": "email"}, "email"),
        ("https://mail.google.com/mail/u/0/", None, "email"),
        ("android-app://com.google.android.gm/", None, "email"),
        ("https://l.facebook.com/l.php?u=x", None, "social"),
        ("https://t.co/AbC", None, "social"),
        ("https://www.instagram.com/", None, "social"),
        ("https://www.linkedin.com/feed/", None, "social"),
        ("https://www.youtube.com/watch?v=1", None, "social"),
        (None, {"source": "facebook", "medium": "social"}, "social"),
        ("https://www.google.co.uk/search?q=shoes", None, "search"),
        ("https://www.bing.com/search?q=x", None, "search"),
        ("https://duckduckgo.com/", None, "search"),
        ("https://yandex.ru/search/", None, "search"),
        ("https://www.ecosia.org/search?q=x", None, "search"),
        ("https://shop.example/cart", None, "internal"),
        ("https://blog.shop.example/post", None, "internal"),
        (None, None, "direct"),
        ("https://some-blog.example.org/review", None, "other"),
        (None, {"campaign": "spring"}, "other"),
    ],
)
def test_referral_classes(
    enricher: Enricher, referrer: str | None, utm: dict[str, str] | None, expected: str
) -> None:
    e = ev(ua=CHROME_DESKTOP, referrer=referrer, utm=utm)
    enricher.enrich(e)
    assert e.referral == expected


def test_every_referral_class_is_reachable() -> None:
    assert referral_from_utm({"medium": "ppc"}) == "paid"
    assert referral_from_utm({"medium": "newsletter"}) == "email"
    assert referral_from_utm({"medium": "organic", "source": "bing"}) == "search"
    assert referral_from_utm({"campaign": "x"}) is None


def _expected_local(ts: float, offset_h: float) -> tuple[int, int]:
    dt = datetime.fromtimestamp(ts, timezone(timedelta(hours=offset_h)))
    return dt.hour, dt.weekday()


@pytest.mark.parametrize("ip", ["8.8.8.8", "81.2.69.160", "5.9.0.1", "133.242.0.1"])
def test_local_hour_and_weekday_by_country(enricher: Enricher, ip: str) -> None:
    cc = iptocc.country_code(ip)
    assert cc in COUNTRY_UTC_OFFSET_H
    for ts in (TS, TS + 5 * 3_600 + 59, TS + 20 * 3_600):
        e = Event("page_view", "u1", ts, ip=ip)
        enricher.enrich(e)
        assert (e.hour, e.weekday) == _expected_local(ts, COUNTRY_UTC_OFFSET_H[cc])


@pytest.mark.parametrize("offset", [0.0, 5.5, -3.0, 9.0, -9.5])
def test_local_hour_weekday_function(offset: float) -> None:
    for k in range(0, 48 * 3_600, 1_799):
        ts = TS + k
        assert local_hour_weekday(ts, offset) == _expected_local(ts, offset)


def test_context_free_events_are_cheap_and_use_default_offset() -> None:
    en = Enricher(default_utc_offset_h=5.5)
    events = [Event("product_view", f"u{i}", TS + i * 600.0, item="i") for i in range(50)]
    en.enrich_all(events)
    for e in events:
        assert (e.hour, e.weekday) == _expected_local(e.ts, 5.5)
        assert e.device is e.browser is e.os is e.country is e.referral is None
    assert en.cache_info()["ua"]["misses"] == 0  # nothing was parsed


def test_unknown_country_uses_default_offset() -> None:
    en = Enricher(default_utc_offset_h=-4.0)
    e = ev(ip="10.0.0.1", ua=CHROME_DESKTOP)
    en.enrich(e)
    assert (e.hour, e.weekday) == _expected_local(TS, -4.0)
    assert e.referral == "direct"


def test_enrich_all_returns_same_list(enricher: Enricher) -> None:
    events = [ev(ua=IPHONE_SAFARI, ip="8.8.8.8"), ev()]
    assert enricher.enrich_all(events) is events
    assert events[0].device == "mobile" and events[0].ip is None


# --- a country given by the producer (context.country) --------------------------------------


def test_given_country_is_kept_without_an_ip_and_sets_the_local_hour() -> None:
    en = Enricher(default_utc_offset_h=0.0)
    raw = b'{"v":1,"type":"page_view","user":"u1","ts":1511658000,"context":{"country":"jp"}}'
    e = parse_json(raw, "s:1-0")
    assert isinstance(e, Event) and e.country == "JP"
    en.enrich(e)
    assert e.country == "JP"
    assert (e.hour, e.weekday) == _expected_local(TS, COUNTRY_UTC_OFFSET_H["JP"])
    assert e.referral == "direct"  # some context, no referrer: as with the IP it replaced


def test_given_country_is_the_same_as_the_ip_it_replaced() -> None:
    """The live stream stores context.country instead of context.ip: same enrichment."""
    en = Enricher()
    with_ip = ev(ip="133.242.0.1")
    with_country = ev(country=iptocc.country_code("133.242.0.1"))
    en.enrich(with_ip)
    en.enrich(with_country)
    for name in ("country", "hour", "weekday", "referral", "device"):
        assert getattr(with_country, name) == getattr(with_ip, name), name


def test_ip_country_wins_and_an_unknown_ip_keeps_the_given_one() -> None:
    en = Enricher()
    e = ev(ip="81.2.69.160", country="FR")
    en.enrich(e)
    assert e.country == "GB" and e.ip is None
    e = ev(ip="10.0.0.1", country="FR", ua=CHROME_DESKTOP)
    en.enrich(e)
    assert e.country == "FR" and e.ip is None
    assert (e.hour, e.weekday) == _expected_local(TS, COUNTRY_UTC_OFFSET_H["FR"])


def test_enriching_twice_keeps_the_country() -> None:
    en = Enricher()
    e = ev(ip="8.8.8.8")
    en.enrich(e)
    en.enrich(e)
    assert e.country == "US"
