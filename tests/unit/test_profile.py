"""Long-term profiles: folding sessions, decay in event time, JSON round trip, blending."""

from __future__ import annotations

import math

import pytest

from rtp.config import Settings
from rtp.engine.facade import Engine
from rtp.session.profile import PRICE_BANDS, Profile, price_band
from rtp.session.state import UserState, fold_session
from tests.builders import DAY, HOUR, T0, buy, cart, decisions, feed, view

WEEK = 7 * DAY
HL = 14 * DAY


def test_price_band_is_the_log2_bucket() -> None:
    assert [price_band(p) for p in (0.0, 1.99, 2.0, 3.9, 4.0, 300.0, 900.0)] == [
        0,
        0,
        1,
        1,
        2,
        int(math.log2(300)),
        int(math.log2(900)),
    ]
    assert price_band(1e9) == PRICE_BANDS - 1


def test_folding_a_session() -> None:
    u = UserState("u")
    feed(
        u,
        [
            view("u", "a", T0, "shoes", 40.0),
            view("u", "a", T0 + 10, "shoes", 40.0),
            view("u", "b", T0 + 20, "bags", 100.0),
            cart("u", "c", T0 + 30, "shoes", 60.0),
            buy("u", "d", T0 + 40, "bags", 120.0),
        ],
    )
    p = fold_session(u, HL)
    assert u.profile is p
    assert (p.sessions, p.events, p.views, p.carts, p.purchases) == (1, 5, 3, 1, 1)
    assert p.revenue == 120.0
    assert p.first_seen == T0 + 40 and p.ts == T0 + 40
    # categories: the session's normalised weights (kept to the 4 decimals storage keeps)
    assert p.category_weights() == pytest.approx(u.session.categories(), abs=1e-4)
    # price bands: five prices, weight 1/5 each
    expected = [0.0] * PRICE_BANDS
    for price in (40.0, 40.0, 100.0, 60.0, 120.0):
        expected[int(math.log2(price))] += 1 / 5
    assert p.bands == pytest.approx(expected)
    # favourites: the cart first, then items interacted with twice or more
    assert p.favs == ["c", "a"]
    assert p.bought == ["d"] and p.last_purchase_ts == T0 + 40
    # the cart left behind
    assert p.abandoned == ["c"] and p.abandoned_ts == T0 + 40


def test_a_session_without_a_cart_clears_the_abandoned_cart() -> None:
    u = UserState("u")
    feed(u, [cart("u", "c", T0, "shoes", 60.0)])
    p = fold_session(u, HL)
    assert p.abandoned == ["c"]
    feed(u, [view("u", "x", T0 + DAY, "shoes")])
    fold_session(u, HL)
    assert p.abandoned == [] and p.sessions == 2


def test_categories_and_price_bands_decay_over_weeks() -> None:
    p = Profile()
    p.decay_to(T0, HL)
    p.add_categories({"prams": 1.0})
    p.add_prices([300.0])
    p.decay_to(T0 + 4 * WEEK, HL)  # two half-lives
    assert p.cats["prams"] == pytest.approx(0.25)
    assert p.bands[price_band(300.0)] == pytest.approx(0.25)
    p.add_categories({"toys": 1.0})
    # an old interest fades against a new one of the same strength: 0.25 vs 1
    assert p.category_weights() == pytest.approx({"prams": 0.2, "toys": 0.8})


def test_profile_decay_through_fold_session() -> None:
    u = UserState("u")
    feed(u, [view("u", "a", T0, "prams")])
    fold_session(u, HL)
    feed(u, [view("u", "b", T0 + 2 * WEEK, "toys")])
    p = fold_session(u, HL)
    assert p.category_weights() == pytest.approx({"prams": 1 / 3, "toys": 2 / 3})


def test_json_round_trip() -> None:
    u = UserState("u")
    feed(
        u,
        [
            view("u", "a", T0, "shoes", 40.0),
            view("u", "a", T0 + 5, "shoes", 40.0),
            cart("u", "c", T0 + 9, "bags", 300.0),
            buy("u", "d", T0 + 20, "bags", 250.0),
        ],
    )
    p = fold_session(u, HL)
    p.offer_ts = T0 + 30
    p.bandit = "reshow-2"
    q = Profile.from_bytes(p.to_bytes())
    for name in Profile.__slots__:
        a, b = getattr(p, name), getattr(q, name)
        if name == "cats":
            assert b == pytest.approx(a, abs=1e-4)
        elif name == "bands":
            assert b == pytest.approx(a, abs=1e-3)
        else:
            assert b == a, name
    assert q.to_bytes() == p.to_bytes()


def test_first_time_visitor_context_relies_on_the_session_alone() -> None:
    eng = Engine(Settings())
    d = decisions(
        eng.process([view("new", "a", T0, "shoes", 30.0), view("new", "b", T0 + 20, "bags", 50.0)])
    )["new"]
    u = eng.users.users["new"]
    assert u.profile is None
    ctx = d["ctx"]
    assert "returning" not in ctx
    s = u.session.categories()
    assert {c: w for c, w in ctx["categories"]} == {c: int(w * 1000) / 1000 for c, w in s.items()}
    assert ctx["price"] == [30.0, 50.0]


def _premium_history(u: UserState) -> None:
    ts = T0
    for s in range(4):
        ts = T0 + s * WEEK
        feed(
            u,
            [
                view("vip", f"w{s}", ts, "watches", 300.0 + 100 * s),
                view("vip", f"j{s}", ts + 60, "jewellery", 900.0),
                buy("vip", f"w{s}", ts + 120, "watches", 300.0 + 100 * s),
                buy("vip", f"j{s}", ts + 180, "jewellery", 600.0),
            ],
        )
        fold_session(u, HL)


def test_loyal_premium_buyer_browsing_budget_gifts_gets_a_budget_band() -> None:
    u = UserState("vip")
    _premium_history(u)
    p = u.profile
    assert p is not None and p.loyal and p.purchases == 8
    lo, hi = p.price_range()
    assert lo >= 256 and hi <= 1024  # the profile's band: 300..900
    # now, in a new session, 4 budget gifts at 10..25
    start = T0 + 4 * WEEK
    feed(
        u,
        [
            view("vip", f"g{k}", start + 30 * k, "gifts", price)
            for k, price in enumerate((10.0, 25.0, 14.0, 19.0))
        ],
    )
    ctx = u.context()
    assert ctx["price"] == [10.0, 25.0]
    # the profile still shows in the blended categories, the session leads them
    cats = dict(ctx["categories"])
    assert set(cats) == {"gifts", "watches", "jewellery"}
    assert max(cats, key=cats.__getitem__) == "gifts"


def test_blend_moves_from_profile_to_session() -> None:
    u = UserState("vip")
    _premium_history(u)
    start = T0 + 4 * WEEK
    feed(u, [view("vip", "g0", start, "gifts", 12.0)])
    a1 = u.blend_alpha()
    w1 = u.blended_categories()["gifts"]
    feed(u, [view("vip", f"g{k}", start + k, "gifts", 12.0) for k in range(1, 8)])
    a8 = u.blend_alpha()
    assert (a1, a8) == (1 / 5, 8 / 12)
    assert u.blended_categories()["gifts"] > w1
    assert sum(u.blended_categories().values()) == pytest.approx(1.0)


def test_two_prices_widen_the_profile_band() -> None:
    u = UserState("vip")
    _premium_history(u)
    pr = u.profile.price_range()
    start = T0 + 4 * WEEK + HOUR
    feed(u, [view("vip", "g0", start, "gifts", 12.0), view("vip", "g1", start + 9, "gifts", 20.0)])
    assert u.price_range() == (12.0, pr[1])
