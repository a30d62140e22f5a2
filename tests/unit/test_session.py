"""Session context (rtp.session.state: Session, UserState) and session splitting through the
Engine."""

from __future__ import annotations

import pickle

import pytest

from rtp.capture.events import Event
from rtp.config import Settings
from rtp.engine.facade import Engine
from rtp.session.profile import Profile
from rtp.session.state import BROWSING, DEEP, MAX_CART, MAX_SEEN, MAX_SESSION_CATS, RAPID, UserState
from tests.builders import (
    MIN,
    T0,
    buy,
    cart,
    decisions,
    feed,
    help_view,
    search,
    uncart,
    view,
)

# --- splitting --------------------------------------------------------------------------------


def test_inactivity_gap_in_event_time_splits_sessions() -> None:
    u = UserState("u")
    gap = 30 * MIN
    starts = feed(
        u,
        [
            view("u", "a", T0),
            view("u", "b", T0 + gap),  # exactly the gap: same session
            view("u", "c", T0 + 2 * gap + 1),  # one second more than the gap: new session
            view("u", "d", T0 + 2 * gap + 2),
        ],
    )
    assert starts == [True, False, True, False]
    assert u.session.sid == str(int(T0 + 2 * gap + 1))
    assert u.session.n == 2 and u.session.recent == ["c", "d"]


def test_explicit_session_id_change_splits_without_a_gap() -> None:
    u = UserState("u")
    starts = feed(
        u,
        [
            view("u", "a", T0, session="s1"),
            view("u", "b", T0 + 1, session="s1"),
            view("u", "c", T0 + 2, session="s2"),
        ],
    )
    assert starts == [True, False, True]
    assert u.session.sid == "s2" and u.session.recent == ["c"]


def test_engine_splits_on_the_default_gap_and_counts_sessions() -> None:
    eng = Engine(Settings())
    assert eng.settings.session_gap_s == 30 * MIN
    d1 = decisions(eng.process([view("u", "a", T0), view("u", "b", T0 + 29 * MIN)]))
    assert d1["u"]["ctx"]["events"] == 2
    d2 = decisions(eng.process([view("u", "c", T0 + 29 * MIN + 31 * MIN)]))
    ctx = d2["u"]["ctx"]
    assert ctx["events"] == 1
    assert ctx["session"] == str(int(T0 + 60 * MIN))
    assert ctx["started"] == T0 + 60 * MIN
    assert eng.users.stats["sessions"] == 2
    assert eng.users.stats["profiles_written"] == 1  # the first session was folded


# --- categories, prices, queries, items ---------------------------------------------------------


def test_later_category_outweighs_earlier_one_with_equal_counts() -> None:
    u = UserState("u")
    hl = 600.0
    feed(
        u,
        [
            view("u", "a1", T0, "old"),
            view("u", "a2", T0, "old"),
            view("u", "b1", T0 + hl, "new"),
            view("u", "b2", T0 + hl, "new"),
        ],
        half_life_s=hl,
    )
    w = u.session.categories()
    # old: 2 x 2**0 = 2; new: 2 x 2**1 = 4; normalised 1/3 and 2/3
    assert w["old"] == pytest.approx(1 / 3)
    assert w["new"] == pytest.approx(2 / 3)
    assert [c for c, _ in u.context()["categories"]] == ["new", "old"]


def test_price_range_is_the_session_range() -> None:
    u = UserState("u")
    feed(
        u,
        [
            view("u", "a", T0, "c", 40.0),
            view("u", "b", T0 + 1, "c", 15.5),
            view("u", "x", T0 + 2),
            view("u", "c", T0 + 3, "c", 99.0),
        ],
    )
    assert u.price_range() == (15.5, 99.0)
    assert u.context()["price"] == [15.5, 99.0]


def test_price_range_follows_the_latest_prices_of_a_long_session() -> None:
    # 70 budget views, then the user moves on to premium items: the range must show it.
    u = UserState("u")
    evs = [view("u", f"b{i}", T0 + i, "c", 10.0 + i % 10) for i in range(70)]
    evs += [view("u", f"p{i}", T0 + 100 + i, "c", 500.0) for i in range(5)]
    feed(u, evs)
    lo, hi = u.price_range()
    assert hi >= 500.0, f"the session's price range {lo, hi} ignores its last five prices"


def test_recent_queries_are_bounded_and_normalised() -> None:
    u = UserState("u")
    feed(u, [search("u", f"q{i}", T0 + i) for i in range(8)], queries_n=5)
    assert u.session.queries == ["q3", "q4", "q5", "q6", "q7"]
    assert u.context()["queries"] == ["q5", "q6", "q7"]


def test_recently_viewed_is_unique_most_recent_first_and_bounded() -> None:
    u = UserState("u")
    feed(
        u,
        [
            view("u", "a", T0),
            view("u", "b", T0 + 1),
            view("u", "a", T0 + 2),
            view("u", "c", T0 + 3),
            view("u", "c", T0 + 4),
        ],
    )
    assert u.session.recent == ["b", "a", "c"]
    assert u.context()["recent"] == ["c", "a", "b"]
    assert u.session.seen == {"a": 2, "b": 1, "c": 2}
    feed(u, [view("u", f"i{k}", T0 + 10 + k) for k in range(20)], recent_n=12)
    assert u.session.recent == [f"i{k}" for k in range(8, 20)]
    assert len(u.context()["recent"]) == 5


def test_reviewing_an_item_that_left_the_recent_list() -> None:
    # a, then 12 other items (a leaves the 12-item recent list but is still "seen"), then a
    u = UserState("u")
    evs = [view("u", "a", T0)] + [view("u", f"i{k}", T0 + 1 + k) for k in range(12)]
    feed(u, evs, recent_n=12)
    s = u.session
    assert "a" not in s.recent and "a" in s.seen
    feed(u, [view("u", "a", T0 + 20)], recent_n=12)
    assert s.recent[-1] == "a"
    assert len(s.recent) == len(set(s.recent)) <= 12
    assert s.seen["a"] == 2


def test_recent_stays_unique_after_seen_evicts_a_recent_item() -> None:
    # With a long recent list (recent_items=100): x, 59 others (seen is full at 60), x again
    # (moved to the end of recent), y (seen evicts its oldest key, x), x again: x must still
    # appear once in recent.
    u = UserState("u")
    seq = ["x"] + [f"i{k}" for k in range(MAX_SEEN - 1)] + ["x", "y", "x"]
    feed(u, [view("u", it, T0 + n) for n, it in enumerate(seq)], recent_n=100)
    s = u.session
    assert s.recent[-1] == "x"
    assert len(s.recent) == len(set(s.recent)), "an item appears twice in the recent list"
    assert len(s.seen) <= MAX_SEEN


def test_cart_add_remove_purchase() -> None:
    u = UserState("u")
    feed(
        u,
        [
            cart("u", "a", T0, "c", 10.0),
            cart("u", "b", T0 + 1, "c", 20.0),
            cart("u", "c", T0 + 2, "c", 30.0),
            uncart("u", "b", T0 + 3, "c"),
            buy("u", "a", T0 + 4, "c", 10.0),
        ],
    )
    s = u.session
    assert list(s.cart) == ["c"]
    assert s.cart["c"] == 30.0
    assert s.bought == ["a"]
    assert (s.carts, s.buys, s.revenue) == (3, 1, 10.0)
    assert u.context()["cart"] == ["c"]


def test_pace_and_dwell() -> None:
    u = UserState("u")
    # 5 events over 4 minutes: 1.25 events per minute, 60 s between events
    feed(u, [view("u", f"i{k}", T0 + 60 * k) for k in range(5)])
    assert u.session.pace() == pytest.approx(5 / 4)
    assert u.session.dwell() == pytest.approx(60.0)
    ctx = u.context()
    assert ctx["pace"] == 1.25 and ctx["dwell"] == 60.0


@pytest.mark.parametrize(("step", "mode"), [(5.0, RAPID), (30.0, BROWSING), (90.0, DEEP)])
def test_engagement_mode_from_time_between_events(step: float, mode: str) -> None:
    u = UserState("u")
    feed(u, [view("u", f"i{k}", T0 + step * k) for k in range(6)])
    assert u.session.mode() == mode
    assert u.context()["mode"] == mode


def test_engagement_mode_needs_a_few_events() -> None:
    u = UserState("u")
    feed(u, [view("u", f"i{k}", T0 + 2 * k) for k in range(3)])
    assert u.session.mode() == BROWSING  # three quick events say too little


def test_intent_grows_with_carts_and_repeat_views() -> None:
    u = UserState("u")
    feed(u, [view("u", "a", T0, "c")])
    one_view = u.session.intent()
    feed(u, [view("u", "a", T0 + 20, "c")])
    two_views = u.session.intent()
    feed(u, [view("u", "a", T0 + 40, "c")])
    three_views = u.session.intent()
    assert one_view < two_views < three_views
    feed(u, [cart("u", "b", T0 + 60, "c")])
    with_cart = u.session.intent()
    assert with_cart > three_views
    feed(u, [cart("u", "d", T0 + 80, "c")])
    assert u.session.intent() > with_cart
    assert 0.0 <= u.session.intent() <= 1.0
    assert u.context()["intent"] == pytest.approx(u.session.intent(), abs=0.01)


def test_a_new_session_resets_the_session_but_keeps_the_profile() -> None:
    p = Profile()
    u = UserState("u", p)
    feed(u, [cart("u", "a", T0, "c", 5.0), search("u", "shoes", T0 + 1)])
    feed(u, [view("u", "b", T0 + 3 * 3600, "d")])
    assert u.profile is p
    s = u.session
    assert s.cart == {} and s.queries == [] and s.recent == ["b"] and s.n == 1


def _long_session(user: str, n: int, step: float) -> list:
    """A realistic mix: new items, re-views of items still in the recent list, carts, removes,
    purchases, distinct searches, back navigation and help pages."""
    out = []
    ts = T0
    for k in range(n):
        ts += step
        r = k % 10
        item = f"i{k}"
        cat = f"c{k % 40}"
        if r < 4:
            out.append(view(user, item, ts, cat, 1.0 + k % 500, back=(k % 3 == 0)))
        elif r == 4:
            out.append(view(user, f"i{k - 1}", ts, f"c{(k - 1) % 40}", 2.0))  # a re-view
        elif r == 5:
            out.append(cart(user, item, ts, cat, 3.0))
        elif r == 6:
            out.append(uncart(user, f"i{k - 1}", ts, cat))
        elif r == 7:
            out.append(buy(user, item, ts, cat, 9.0))
        elif r == 8:
            out.append(search(user, f"query {k}", ts))
        else:
            out.append(help_view(user, ts, 1.0))
    return out


def _collection_sizes(u: UserState) -> dict[str, int]:
    return {
        name: len(getattr(u.session, name))
        for name in (
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
        )
    }


def test_state_is_bounded_after_10000_events_of_one_user() -> None:
    u = UserState("u")
    feed(u, _long_session("u", 1_000, 1.0))
    size_1k = len(pickle.dumps(u))
    feed(u, _long_session("u", 10_000, 1.0)[1_000:])
    assert u.session.n == 10_000  # one session (1 s between events)
    sizes = _collection_sizes(u)
    bounds = {
        "cats": MAX_SESSION_CATS,
        "prices": 64,
        "queries": 5,
        "qcount": 64,
        "recent": 12,
        "seen": MAX_SEEN,
        "item_cat": MAX_SEEN,
        "cart": MAX_CART,
        "bought": 64,
        "backs": 8,
    }
    over = {k: v for k, v in sizes.items() if v > bounds[k]}
    assert not over, f"unbounded per-user collections after 10,000 events: {over}"
    assert len(pickle.dumps(u)) < 2 * size_1k


def test_engine_state_is_bounded_after_10000_events_of_one_user() -> None:
    eng = Engine(Settings())
    evs = _long_session("u", 10_000, 1.0)
    for i in range(0, len(evs), 500):
        eng.process(evs[i : i + 500])
    u = eng.users.users["u"]
    sizes = _collection_sizes(u)
    assert sizes["recent"] <= 12 and sizes["seen"] <= MAX_SEEN
    assert max(sizes.values()) <= 64, f"per-user state grows with the events: {sizes}"


def test_a_session_that_never_goes_quiet_for_a_week() -> None:
    # A bot (or a kiosk) polling every 25 minutes never crosses the 30-minute gap: after ~7
    # days of one session the category weight 2 ** ((ts - start) / half_life) overflows.
    eng = Engine(Settings())
    for k in range(0, 500, 50):
        eng.process([view("kiosk", "a", T0 + (k + j) * 25 * MIN, "c") for j in range(50)])
    s = eng.users.users["kiosk"].session
    assert s.n == 500
    assert s.categories() == {"c": pytest.approx(1.0)}


# --- where the user comes from, and what was served ---------------------------------------------


def _ctx_view(ts: float, *, device: str | None = None, country: str | None = None,
              referral: str | None = None, campaign: str | None = None,
              hour: int = -1) -> Event:  # fmt: skip
    e = view("u", "i", ts, "c", utm={"campaign": campaign} if campaign else None)
    e.device, e.country, e.referral, e.hour = device, country, referral, hour
    return e


def test_observe_keeps_the_visits_first_referral_and_the_latest_device() -> None:
    u = UserState("u")
    feed(
        u,
        [
            _ctx_view(
                T0, device="mobile", country="FR", referral="search", campaign="sale", hour=9
            ),  # fmt: skip
            _ctx_view(T0 + 10, device="desktop", country="DE", referral="internal", hour=10),
            _ctx_view(T0 + 20, country="BE"),  # no device: the country alone is updated
        ],
    )
    assert (u.referral, u.campaign) == ("search", "sale")  # the visit's first event's
    assert (u.device, u.country, u.hour) == ("desktop", "BE", 10)
    ctx = u.context()
    assert (ctx["referral"], ctx["device"], ctx["country"], ctx["hour"]) == (
        "search", "desktop", "BE", 10,
    )  # fmt: skip
    # a new visit takes its own first event's referral and campaign
    feed(u, [_ctx_view(T0 + 3 * 3600, referral="email")])
    assert (u.referral, u.campaign) == ("email", None)


def test_serving_new_session_resets_caps_but_keeps_cooldowns_and_the_served_list() -> None:
    u = UserState("u")
    feed(u, [view("u", "a", T0, "c")])
    sv = u.serving
    sv.serve(["x", "y", "z"], T0)
    assert (sv.rank_of("y"), sv.rank_of("q")) == (1, -1)
    sv.served_hit = True
    sv.offer, sv.offer_n, sv.offer_until, sv.offer_ts = {"show": True}, 1, T0 + 900, T0
    sv.assist_ts, sv.assist_n, sv.assist_key, sv.assist_done = T0, 1, "back", ["back"]
    sv.attributed = 2
    feed(u, [view("u", "b", T0 + 3 * 3600, "c")])  # a new visit
    assert u.serving is sv
    assert (sv.offer, sv.offer_n, sv.offer_until, sv.offer_ts) == (None, 0, 0.0, 0.0)
    assert (sv.assist_n, sv.assist_key, sv.assist_done, sv.attributed) == (0, None, [], 0)
    assert sv.assist_ts == T0  # the chat cooldown runs across visits
    assert sv.served == ["x", "y", "z"] and sv.rank_of("z") == 2
    assert UserState("v").serving.rank_of("x") == -1  # nothing served yet
    sv.serve(["q"], T0 + 3 * 3600)
    assert (sv.served, sv.served_ts, sv.served_hit) == (["q"], T0 + 3 * 3600, False)
