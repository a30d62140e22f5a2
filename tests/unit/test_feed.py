"""Content feeds: freshness, diversity and editorial picks hold on every served feed."""

from __future__ import annotations

import math
import time
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtp.decisions.feed import (
    EDITORS_PICK,
    FEED,
    EditorialPicks,
    Feed,
    FeedRules,
    Pick,
    PicksError,
    build_feed,
    freshness,
)

H = 3_600.0
NOW = 1_730_700_000.0


def primary(topics: dict[str, list[str]], item: str) -> str:
    ts = topics.get(item)
    return ts[0] if ts else ""


# --- freshness ----------------------------------------------------------------------------------


def test_freshness_halves_every_half_life() -> None:
    assert freshness(1.0, 0.0, 6.0) == 1.0
    assert freshness(1.0, 6 * H, 6.0) == pytest.approx(0.5)
    assert freshness(1.0, 18 * H, 6.0) == pytest.approx(0.125)
    assert freshness(0.3, 1e9, None) == 0.3  # no half-life: no decay
    assert freshness(0.3, -H, 6.0) == 0.3  # published "in the future": age 0
    assert freshness(-0.3, 0.0, 6.0) == 0.0


def test_fresh_articles_overtake_stale_better_ones() -> None:
    scores = {"old": 1.0, "new": 0.4}
    published = {"old": NOW - 12 * H, "new": NOW - 0.5 * H}
    topics = {"old": ["politics"], "new": ["sports"]}
    rules = FeedRules(n=2, half_life_h=4.0, min_topics=0, max_topic_share=1.0)
    feed = build_feed(scores, published, topics, NOW, rules)
    assert feed.items == ["new", "old"]
    assert feed.scores == [round(0.4 * 2 ** (-0.5 / 4), 3), round(2**-3, 3)]
    assert feed.codes == [FEED, FEED]
    no_decay = FeedRules(n=2, half_life_h=None, min_topics=0, max_topic_share=1.0)
    assert build_feed(scores, published, topics, NOW, no_decay).items == ["old", "new"]
    # without a publish time an article is not decayed
    assert build_feed(scores, {}, topics, NOW, rules).items == ["old", "new"]


# --- diversity ----------------------------------------------------------------------------------


def test_topic_cap_and_minimum_topics() -> None:
    scores = {f"p{i}": 1.0 - i / 100 for i in range(10)}  # politics, best first
    scores |= {"s1": 0.5, "s2": 0.45, "f1": 0.4, "m1": 0.1}
    topics = {f"p{i}": ["politics"] for i in range(10)}
    topics |= {"s1": ["sports"], "s2": ["sports"], "f1": ["film"], "m1": ["music"]}
    rules = FeedRules(n=6, half_life_h=None, max_topic_share=0.5, min_topics=4)
    feed = build_feed(scores, {}, topics, NOW, rules)
    assert rules.topic_cap() == 3
    assert feed.items == ["p0", "p1", "p2", "s1", "f1", "m1"]  # m1: the fourth topic, last
    assert not feed.relaxed
    # no minimum: the best within the cap
    loose = FeedRules(n=6, half_life_h=None, max_topic_share=0.5, min_topics=0)
    assert build_feed(scores, {}, topics, NOW, loose).items == ["p0", "p1", "p2", "s1", "s2", "f1"]


def test_fill_relaxes_the_cap_only_when_it_must() -> None:
    scores = {f"p{i}": 1.0 - i / 100 for i in range(6)} | {"s1": 0.1}
    topics = {f"p{i}": ["politics"] for i in range(6)} | {"s1": ["sports"]}
    strict = FeedRules(n=5, half_life_h=None, max_topic_share=0.4, min_topics=2, fill=False)
    feed = build_feed(scores, {}, topics, NOW, strict)
    assert feed.items == ["p0", "p1", "s1"]  # cap 2 politics + the one sports article
    assert not feed.relaxed
    filled = build_feed(scores, {}, topics, NOW, FeedRules(**{**_asdict(strict), "fill": True}))
    assert filled.items == ["p0", "p1", "s1", "p2", "p3"]
    assert filled.relaxed


def _asdict(rules: FeedRules) -> dict[str, object]:
    return {name: getattr(rules, name) for name in FeedRules.__dataclass_fields__}


def test_articles_without_topics_are_one_capped_group() -> None:
    scores = {"x1": 0.9, "x2": 0.8, "x3": 0.7, "a": 0.2, "b": 0.1}
    topics = {"a": ["tech"], "b": ["science"]}
    rules = FeedRules(n=4, half_life_h=None, max_topic_share=0.5, min_topics=3)
    feed = build_feed(scores, {}, topics, NOW, rules)
    assert feed.items == ["x1", "x2", "a", "b"]  # "" is capped at 2 and is not a topic


# --- editorial picks ----------------------------------------------------------------------------


def test_picks_at_positions_and_within_slots() -> None:
    scores = {f"a{i}": 1.0 - i / 10 for i in range(8)}
    topics = {f"a{i}": [f"t{i % 4}"] for i in range(8)}
    picks = EditorialPicks.from_json(
        {
            "picks": [
                {"item": "e1", "position": 3},  # not a candidate: score 0, still placed
                {"item": "a6", "within": 2},  # a candidate, low score: at the latest 2nd
                {"item": "a1"},  # within the default slots (4): it ranks 1st anyway
            ],
            "slots": 4,
        }
    )
    rules = FeedRules(n=6, half_life_h=None, max_topic_share=1.0, min_topics=0)
    feed = build_feed(scores, {}, topics, NOW, rules, picks)
    assert feed.items == ["a0", "a6", "e1", "a1", "a2", "a3"]
    assert feed.codes == [FEED, EDITORS_PICK, EDITORS_PICK, EDITORS_PICK, FEED, FEED]
    assert feed.scores[2] == 0.0
    # picks that outscore the ranked articles are not pushed down to their deadline
    assert build_feed(scores, {}, topics, NOW, rules, [Pick("a0", within=5)]).items[0] == "a0"


def test_pick_conflicts_expiry_exclusion_and_overflow() -> None:
    scores = {f"a{i}": 1.0 - i / 10 for i in range(6)}
    rules = FeedRules(n=4, half_life_h=None, max_topic_share=1.0, min_topics=0)
    picks = [
        Pick("x", position=2),
        Pick("y", position=2),  # taken: the next free slot
        Pick("z", position=9),  # beyond the feed: dropped
        Pick("old", position=1, until=NOW - 1),  # expired
        Pick("read", position=1),  # excluded (already read)
    ]
    config = EditorialPicks(tuple(picks))
    feed = build_feed(scores, {}, {}, NOW, rules, config, exclude={"read", "a0"})
    assert feed.items == ["a1", "x", "y", "a2"]
    assert feed.dropped == ["z"]
    many = [Pick(f"w{i}", within=2) for i in range(6)]  # six picks for four slots
    crowded = build_feed(scores, {}, {}, NOW, rules, many)
    assert crowded.items == ["w0", "w1", "w2", "w3"]
    assert crowded.dropped == ["w4", "w5"]


def test_picks_count_towards_topics_but_are_never_dropped_for_them() -> None:
    scores = {"p1": 0.9, "p2": 0.8, "s1": 0.3}
    topics = {"p1": ["politics"], "p2": ["politics"], "s1": ["sports"], "e1": ["politics"]}
    topics |= {"e2": ["politics"]}
    rules = FeedRules(n=4, half_life_h=None, max_topic_share=0.25, min_topics=2, fill=False)
    feed = build_feed(
        scores, {}, topics, NOW, rules, [Pick("e1", position=1), Pick("e2", position=2)]
    )
    assert feed.items == ["e1", "e2", "s1"]  # politics is over its cap through picks alone
    assert not feed.relaxed


def test_parse_and_round_trip() -> None:
    raw = b'{"picks": [{"item": "a1", "position": 2}, {"item": 7, "within": 5, "until": 9e9}], '
    raw += b'"slots": 2, "updated": "2024-11-04T10:00:00Z"}'
    picks = EditorialPicks.from_json(raw)
    assert picks.picks == (Pick("a1", position=2), Pick("7", within=5, until=9e9))
    assert picks.slots == 2
    assert EditorialPicks.from_json(picks.to_json()) == picks
    assert EditorialPicks.from_json(None) == EditorialPicks() == EditorialPicks.from_json(b" ")
    assert picks.active(1e10) == (Pick("a1", position=2),)  # the other one expired


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"picks": {}}', "not a list"),
        (b'{"picks": [1]}', "not a JSON object"),
        (b'{"picks": [{"position": 1}]}', "not a short id"),
        (b'{"picks": [{"item": ""}]}', "not a short id"),
        (b'{"picks": [{"item": "a", "position": 0}]}', "position 0"),
        (b'{"picks": [{"item": "a", "position": true}]}', "position True"),
        (b'{"picks": [{"item": "a", "position": 1, "within": 2}]}', "not both"),
        (b'{"picks": [{"item": "a", "until": "soon"}]}', "until"),
        (b'{"picks": [{"item": "a", "postion": 1}]}', "unknown key 'postion'"),
        (b'{"picks": [{"item": "a"}, {"item": "a"}]}', "listed twice"),
        (b'{"picks": [], "slots": 0}', "slots 0"),
    ],
)
def test_bad_configurations_are_rejected_with_a_reason(raw: bytes, why: str) -> None:
    with pytest.raises(PicksError, match=why):
        EditorialPicks.from_json(raw)


def test_too_many_picks() -> None:
    with pytest.raises(PicksError, match="at most"):
        EditorialPicks.from_json({"picks": [{"item": f"a{i}"} for i in range(101)]})


def test_rules_are_validated() -> None:
    for bad in ({"n": 0}, {"half_life_h": 0.0}, {"max_topic_share": 0.0}, {"min_topics": -1}):
        with pytest.raises(ValueError):
            FeedRules(**bad)  # type: ignore[arg-type]


# --- every served feed, property-based ----------------------------------------------------------

TOPICS = ["politics", "sports", "film", "tech", "food", "travel"]


@st.composite
def feed_inputs(draw: st.DrawFn) -> dict[str, object]:
    n_topics = draw(st.integers(1, len(TOPICS)))
    pool = TOPICS[:n_topics]
    n_items = draw(st.integers(0, 25))
    scores: dict[str, float] = {}
    published: dict[str, float] = {}
    topics: dict[str, list[str]] = {}
    for i in range(n_items):
        item = f"a{i}"
        scores[item] = draw(st.floats(0.0, 1.0))
        age = draw(st.one_of(st.none(), st.floats(-1.0, 48.0)))
        if age is not None:
            published[item] = NOW - age * H
        topics[item] = draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
    for i in range(3):  # items that are only picks
        topics[f"e{i}"] = draw(st.lists(st.sampled_from(pool), max_size=2, unique=True))
    rules = FeedRules(
        n=draw(st.integers(1, 12)),
        half_life_h=draw(st.sampled_from([None, 1.0, 6.0])),
        max_topic_share=draw(st.sampled_from([0.1, 0.25, 0.34, 0.5, 1.0])),
        min_topics=draw(st.integers(0, 5)),
        fill=draw(st.booleans()),
    )
    ids = [*scores, "e0", "e1", "e2"]
    picks = []
    for item in draw(st.lists(st.sampled_from(ids), max_size=4, unique=True)):
        kind = draw(st.sampled_from(["position", "within", "default"]))
        slot = draw(st.integers(1, rules.n + 2))
        until = draw(st.sampled_from([None, NOW - 1, NOW + 1]))
        picks.append(
            Pick(
                item,
                position=slot if kind == "position" else None,
                within=slot if kind == "within" else None,
                until=until,
            )
        )
    config = EditorialPicks(tuple(picks), slots=draw(st.integers(1, 4)))
    exclude = set(draw(st.lists(st.sampled_from(ids), max_size=3)))
    return {
        "scores": scores,
        "published": published,
        "topics": topics,
        "rules": rules,
        "picks": config,
        "exclude": exclude,
    }


def check_feed(inputs: dict[str, object], feed: Feed) -> None:
    """Every constraint a served feed must satisfy (whenever it can be satisfied)."""
    scores: dict[str, float] = inputs["scores"]  # type: ignore[assignment]
    topics: dict[str, list[str]] = inputs["topics"]  # type: ignore[assignment]
    rules: FeedRules = inputs["rules"]  # type: ignore[assignment]
    config: EditorialPicks = inputs["picks"]  # type: ignore[assignment]
    exclude: set[str] = inputs["exclude"]  # type: ignore[assignment]
    n, cap = rules.n, rules.topic_cap()
    items = feed.items
    assert len(items) == len(set(items)) == len(feed.scores) == len(feed.codes) <= n
    assert not set(items) & exclude

    active = [p for p in config.active(NOW) if p.item not in exclude]
    placed_picks = [p for p in active if p.item not in feed.dropped]
    pick_ids = {p.item for p in placed_picks}
    assert {p.item for p in active} == pick_ids | set(feed.dropped)
    # every placed pick is in the feed, marked, and nothing else is marked
    assert {it for it, c in zip(items, feed.codes, strict=True) if c == EDITORS_PICK} == pick_ids
    assert all(it in scores or it in pick_ids for it in items)
    # a dropped pick had no room: a position beyond the feed, every slot from its position on
    # held by earlier positioned picks, or (a "within" pick) every slot held by a pick
    positioned = sum(1 for q in placed_picks if q.position is not None)
    for item in feed.dropped:
        p = next(p for p in active if p.item == item)
        if p.position is None:
            assert len(placed_picks) == n
        else:
            assert p.position > n or positioned >= n - p.position + 1

    ranked = [it for it in items if it not in pick_ids]
    candidates = [it for it in scores if it not in pick_ids and it not in exclude]
    groups = Counter(primary(topics, it) for it in candidates)
    pick_topics = Counter(primary(topics, p.item) for p in placed_picks)
    room = n - len(placed_picks)
    within_caps = sum(min(m, max(0, cap - pick_topics[t])) for t, m in groups.items())
    # length: full whenever the candidates (and, without fill, the caps) allow it
    expected = min(room, len(candidates) if rules.fill else within_caps)
    assert len(ranked) == expected
    # the cap: only picks themselves, or a relaxed feed that could not be filled otherwise
    counts = Counter(primary(topics, it) for it in items)
    if feed.relaxed:
        assert rules.fill and within_caps < min(room, len(candidates))
    else:
        for t, c in counts.items():
            assert c <= max(cap, pick_topics[t]), (t, c, cap)
    # distinct topics: as many as asked when the candidates allow it
    pick_set = {t for t in pick_topics if t}
    new = {t for t in groups if t and t not in pick_set}
    want = min(rules.min_topics, len(pick_set) + min(len(new), len(ranked)))
    assert len({t for t in counts if t}) >= want
    # positions: exact picks at their slot (the next free one if taken) when the feed is full,
    # never later; "within" picks before their deadline whenever all deadlines can be met
    resolved: dict[str, int] = {}
    for p in placed_picks:
        if p.position is not None:
            i = p.position - 1
            while i in resolved.values():
                i += 1
            resolved[p.item] = i
    deadlines = sorted(min(p.within or config.slots, n) for p in placed_picks if not p.position)
    feasible = all(
        k <= d - sum(1 for r in resolved.values() if r < d)
        for k, d in enumerate(deadlines, start=1)
    )
    for p in placed_picks:
        index = items.index(p.item)
        if p.item in resolved:
            assert index <= resolved[p.item]
            if len(items) == n:
                assert index == resolved[p.item]
        elif feasible:
            assert index < min(p.within or config.slots, n), (p, items)
    # scores are the fresh scores, rounded
    for it, sc in zip(items, feed.scores, strict=True):
        t = inputs["published"].get(it)  # type: ignore[attr-defined]
        age = 0.0 if t is None else NOW - t
        assert sc == round(freshness(scores.get(it, 0.0), age, rules.half_life_h), 3)
    # ranked articles not forced by a rule come in fresh-score order within their topic
    for t in counts:
        same = [
            feed.scores[i]
            for i, it in enumerate(items)
            if it in ranked and primary(topics, it) == t
        ]
        assert same == sorted(same, reverse=True)


@settings(max_examples=400, deadline=None)
@given(feed_inputs())
def test_every_served_feed_satisfies_the_rules(inputs: dict[str, object]) -> None:
    feed = build_feed(
        inputs["scores"],  # type: ignore[arg-type]
        inputs["published"],  # type: ignore[arg-type]
        inputs["topics"],  # type: ignore[arg-type]
        NOW,
        inputs["rules"],  # type: ignore[arg-type]
        inputs["picks"],  # type: ignore[arg-type]
        exclude=inputs["exclude"],  # type: ignore[arg-type]
    )
    check_feed(inputs, feed)


def test_a_feed_is_fast() -> None:
    scores = {f"a{i}": (i * 7919 % 1000) / 1000 for i in range(400)}
    published = {f"a{i}": NOW - (i % 48) * H for i in range(400)}
    topics = {f"a{i}": [TOPICS[i % 6], TOPICS[(i + 1) % 6]] for i in range(400)}
    picks = EditorialPicks.from_json(b'{"picks": [{"item": "a5", "position": 1}, {"item": "x"}]}')
    rules = FeedRules(n=20, max_topic_share=0.3, min_topics=5)
    t0 = time.perf_counter()
    for _ in range(200):
        feed = build_feed(scores, published, topics, NOW, rules, picks)
    per_feed = (time.perf_counter() - t0) / 200
    assert len(feed) == 20
    assert per_feed < 0.005, f"{per_feed * 1e3:.2f} ms per feed"
    assert not math.isnan(sum(feed.scores))
