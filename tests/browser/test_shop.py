"""The demo shop in a real browser: edge content before the first paint, server decisions after
three views, re-ranked search, consent and forget from the page, and the fallback when the API is
down."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import redis
from playwright.sync_api import expect

from rtp.decisions.edge import EdgeModel, daypart, reason_for
from rtp.http.demo.catalog import catalogue
from rtp.http.live import start_live, stop_live, wait_ready
from rtp.http.testing import ServerThread
from rtp.store.store import user_hash
from rtp.testing import RedisServer

from .conftest import wait_until

GOOGLE = "https://www.google.com/"
HERO = "[data-rtp-placement=hero]"
HOME = "[data-rtp-placement=home]"


def items_of(category: str) -> list[str]:
    return [p.id for p in catalogue().values() if p.category == category]


@pytest.fixture(scope="module", autouse=True)
def edge_model(shop_redis: RedisServer) -> dict[str, Any]:
    """An edge model where visitors from search on a phone at this hour go on to view watches."""
    m = EdgeModel()
    now = time.time()
    hour = time.gmtime(now).tm_hour
    watches = items_of("watches")[:4]
    for k in range(6):
        m.observe({"referral": "search", "device": "mobile", "hour": hour}, {"watches": 3.0},
                  watches, now - 60 * k)  # fmt: skip
        m.observe({"referral": "direct", "device": "desktop", "hour": hour}, {"books": 3.0},
                  items_of("books")[:4], now - 60 * k)  # fmt: skip
    doc = m.document()
    c = redis.Redis.from_url(shop_redis.url)
    c.set("rtp:meta:edge", orjson.dumps(doc))
    c.close()
    return doc


@pytest.fixture(scope="module")
def live(shop_redis: RedisServer) -> Iterator[None]:
    """The live flow on the shop's Redis (``rtp live``, as ``rtp serve --demo`` runs it)."""
    proc = start_live(shop_redis.url)
    c = redis.Redis.from_url(shop_redis.url)
    try:
        wait_ready(proc, c)
        yield
    finally:
        c.close()
        stop_live(proc)


def test_edge_content_before_the_first_paint_and_any_decision(
    context: Any, shop: ServerThread
) -> None:
    page = context.new_page()
    held: list[Any] = []
    page.route("**/v1/decisions/**", lambda route: held.append(route))  # none is answered here
    page.goto(shop.url + "/shop/", referer=GOOGLE)
    hero = page.locator(HERO)
    expect(hero).to_have_attribute("data-rtp-source", "edge")
    assert hero.get_attribute("data-rtp-theme") == "category:watches"
    band = daypart(time.gmtime().tm_hour)
    # "... this morning", "... tonight": the sentence the edge model publishes for the rule
    expected = reason_for({"referral": "search", "device": "mobile", "daypart": band})
    assert expected.startswith("Popular with visitors from search on mobile")
    assert hero.locator("[data-rtp-reason]").inner_text() == expected
    assert hero.locator("h1").inner_text() == "Welcome! Discover our watches"
    expect(page.locator(HOME)).to_have_attribute("data-rtp-source", "edge")
    shown = page.locator(f"{HOME} li").evaluate_all("els => els.map(e => e.dataset.rtpItem)")
    assert sorted(shown) == sorted(items_of("watches")[:4])
    fcp = "performance.getEntriesByName('first-contentful-paint')"
    page.wait_for_function(f"{fcp}.length > 0")
    t = page.evaluate(f"() => ({{at: rtp.edgeAt, ms: rtp.edgeMs, fcp: {fcp}[0].startTime}})")
    assert t["at"] < t["fcp"], t  # every edge placement filled before content is first painted
    assert t["ms"] < 5.0
    assert held  # the decisions were asked for, and none had been answered
    for route in held:
        route.abort()


def test_three_views_then_server_decisions_and_reranked_search(
    context: Any, shop: ServerThread, live: None
) -> None:
    page = context.new_page()
    page.goto(shop.url + "/shop/", referer=GOOGLE)
    expect(page.locator(HERO)).to_have_attribute("data-rtp-source", "edge")
    user = page.evaluate("rtp('user')")
    bags = items_of("bags")[:3]
    for item in bags:
        page.goto(f"{shop.url}/shop/p/{item}")
        expect(page.locator("article.product")).to_be_visible()
    page.goto(shop.url + "/shop/")  # leaving the last product page sends its events

    def hero_follows() -> bool:
        res = httpx.get(f"{shop.url}/v1/decisions/{user}", params={"placement": "hero"})
        return res.status_code == 200 and "bags" in res.json().get("theme", "")

    wait_until(hero_follows, what="the flow to decide on bags")
    page.reload()
    hero = page.locator(HERO)
    expect(hero).to_have_attribute("data-rtp-source", "server")
    assert "bags" in (hero.get_attribute("data-rtp-theme") or "")
    reason = hero.locator("[data-rtp-reason]").inner_text()
    assert reason.startswith("Because you viewed ") and "bags" in reason
    expect(page.locator(HOME)).to_have_attribute("data-rtp-source", "server")
    whys = page.locator(f"{HOME} li .why").all_inner_texts()
    assert whys and all(whys)
    top = page.locator(f"{HOME} li").evaluate_all("els => els.map(e => e.dataset.rtpItem)")[:4]
    assert "bags" in {catalogue()[str(i)].category for i in top}, top
    # search results follow the same interest, each with its reason
    page.goto(shop.url + "/shop/search?q=classic")
    results = page.locator("#results")
    expect(results).to_have_attribute("data-rtp-source", "server")
    order = results.locator("li").evaluate_all("els => els.map(e => e.dataset.rtpItem)")
    assert catalogue()[str(order[0])].category == "bags", order[:5]
    assert all(results.locator("li .why").all_inner_texts())


def test_consent_and_forget_from_the_page(context: Any, shop: ServerThread, r: redis.Redis) -> None:
    page = context.new_page()
    sent: list[str] = []
    page.on("request", lambda req: sent.append(req.url) if "/v1/events" in req.url else None)
    page.goto(shop.url + "/shop/", referer=GOOGLE)
    hero = page.locator(HERO)
    expect(hero).to_have_attribute("data-rtp-source", "edge")
    user = page.evaluate("rtp('user')")
    page.uncheck("#consent")
    expect(hero).to_have_attribute("data-rtp-source", "fallback")
    assert hero.locator("h1").inner_text() == "Welcome to the rtp shop"  # the static content
    wait_until(lambda: r.sismember("rtp:dnp", user), what="the do-not-personalize flag")
    page.goto(f"{shop.url}/shop/p/{items_of('bags')[0]}")
    page.wait_for_load_state("networkidle")
    sent.clear()
    page.evaluate("rtp('track', 'Product Viewed', {product_id: 'i1'}); rtp('flush')")
    page.goto(shop.url + "/shop/")
    page.wait_for_load_state("networkidle")
    assert sent == []  # no events without consent
    expect(page.locator(HERO)).to_have_attribute("data-rtp-source", "fallback")
    page.check("#consent")  # personalized again: by the edge model, or the server if it answers
    expect(page.locator(HERO)).to_have_attribute("data-rtp-source", re.compile("^(edge|server)$"))
    wait_until(lambda: not r.sismember("rtp:dnp", user), what="consent given back")
    with page.expect_request(lambda req: req.method == "DELETE") as deleted:
        page.click("#forget")
    assert deleted.value.url.endswith(f"/v1/users/{user}")
    expect(page.locator(HERO)).to_have_attribute("data-rtp-source", "fallback")
    assert page.evaluate("rtp('user')") != user  # a new anonymous id

    # forget is a tombstone every flow reads (a hash of the id and the time), not a stream event
    wait_until(lambda: r.hexists("rtp:tomb", user_hash(user)), what="the forget tombstone")


def test_the_page_renders_its_fallback_when_the_api_is_down(
    context: Any, shop: ServerThread
) -> None:
    page = context.new_page()
    page.route("**/v1/**", lambda route: route.abort())
    page.goto(shop.url + "/shop/", referer=GOOGLE)
    # the edge model is in the page: the first page is still personalized...
    expect(page.locator(HERO)).to_have_attribute("data-rtp-source", "edge")
    # ...and what the edge does not cover keeps its static content, marked fallback
    recent = page.locator("[data-rtp-placement=recent]")
    expect(recent).to_have_attribute("data-rtp-source", "fallback")
    assert recent.locator("h2").inner_text() == "Continue shopping"

    # a page without the inline edge model (and none cached): everything static, marked fallback
    def strip_edge(route: Any) -> None:
        res = route.fetch()
        body = res.text()
        start = body.find('<script id="rtp-edge"')
        end = body.find("</script>", start) + len("</script>")
        route.fulfill(response=res, body=body[:start] + body[end:] if start >= 0 else body)

    fresh = context.browser.new_context(user_agent=context.pages[0].evaluate("navigator.userAgent"))
    try:
        other = fresh.new_page()
        other.route("**/v1/**", lambda route: route.abort())
        other.route("**/shop/", strip_edge)
        other.goto(shop.url + "/shop/", referer=GOOGLE)
        for placement in ("hero", "home", "nav", "recent"):
            loc = other.locator(f"[data-rtp-placement={placement}]")
            expect(loc).to_have_attribute("data-rtp-source", "fallback")
        assert other.locator(f"{HERO} h1").inner_text() == "Welcome to the rtp shop"
        assert other.locator(f"{HOME} li").count() == 8
    finally:
        fresh.close()


def test_do_not_track_means_no_events_and_no_personalization(
    browser: Any, shop: ServerThread
) -> None:
    from rtp.http.testing import IPHONE_UA

    ctx = browser.new_context(user_agent=IPHONE_UA, timezone_id="UTC")
    try:
        ctx.add_init_script("Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})")
        page = ctx.new_page()
        calls: list[str] = []
        page.on("request", lambda req: calls.append(req.url) if "/v1/" in req.url else None)
        page.goto(shop.url + "/shop/", referer=GOOGLE)
        for placement in ("hero", "home", "nav", "recent"):
            loc = page.locator(f"[data-rtp-placement={placement}]")
            expect(loc).to_have_attribute("data-rtp-source", "fallback")
        page.evaluate("rtp('track', 'Product Viewed', {product_id: 'i1'}); rtp('flush')")
        page.wait_for_load_state("networkidle")
        assert calls == []  # neither events nor decision requests
        assert page.locator(f"{HERO} h1").inner_text() == "Welcome to the rtp shop"
    finally:
        ctx.close()
