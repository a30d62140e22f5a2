"""Feed quality metrics (rtp.evaluation.feeds): diversity and editorial exposure."""

from __future__ import annotations

import pickle
from collections import Counter, deque

import pytest

from rtp.decisions.feed import EditorialPicks, FeedRules, build_feed
from rtp.evaluation.feeds import FeedStats, intra_list_diversity
from rtp.tools.synth import generate_news_records


def fs(*topics: str) -> frozenset[str]:
    return frozenset(topics)


def test_intra_list_diversity_by_hand() -> None:
    assert intra_list_diversity([fs("a"), fs("a"), fs("a")]) == 0.0
    assert intra_list_diversity([fs("a"), fs("b"), fs("c")]) == 1.0
    # pairs: (ab, a) 1/2, (ab, b) 1/2, (a, b) 0 -> mean overlap 1/3
    assert intra_list_diversity([fs("a", "b"), fs("a"), fs("b")]) == pytest.approx(2 / 3)
    assert intra_list_diversity([fs("a"), fs()]) is None  # items without topics are skipped
    assert intra_list_diversity([]) is None
    # grouping identical sets gives the plain pairwise mean
    sets = [fs("a"), fs("a", "b"), fs("a"), fs("c"), fs("a", "b"), fs("b")]
    pairs = [(x, y) for i, x in enumerate(sets) for y in sets[i + 1 :]]
    plain = 1 - sum(len(x & y) / len(x | y) for x, y in pairs) / len(pairs)
    assert intra_list_diversity(sets) == pytest.approx(plain)


def test_report_by_hand() -> None:
    topics = {"p1": ["politics"], "p2": ["politics"], "s1": ["sports"], "f1": ["film", "culture"]}
    stats = FeedStats(ks=(1, 3))
    stats.add(["p1", "p2", "s1", "f1"], topics, picks={"f1"})  # the pick is 4th: beyond K=3
    stats.add(["f1", "p1", "s1"], topics, picks={"f1", "gone"})
    stats.add(["p1", "zz"], topics)  # no picks active; zz has no topics
    r = stats.report()
    assert r["feeds"] == 3 and r["feeds_with_active_picks"] == 2
    assert r["ild@1"] is None  # one item: no pairs
    assert r["ild@3"] == pytest.approx((2 / 3 + 1.0) / 2)  # the third feed has one topic set
    assert r["distinct_topics@1"] == pytest.approx(1.0)
    assert r["distinct_topics@3"] == pytest.approx((2 + 3 + 1) / 3)
    assert r["max_topic_share@3"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 2) / 3)
    assert r["pick_exposure@1"] == pytest.approx(1 / 3)
    assert r["pick_exposure@3"] == pytest.approx(1 / 3)
    assert r["feeds_with_pick@3"] == pytest.approx(1 / 2)
    assert r["pick_impressions"] == {"f1": 1}  # within max(ks) = 3 only
    empty = FeedStats().report()
    assert empty["feeds"] == 0 and empty["ild@20"] is None and empty["pick_exposure@5"] is None


def test_merge_and_pickle() -> None:
    topics = {"a": ["x"], "b": ["y"], "c": ["x", "y"]}
    feeds = [(["a", "b", "c"], {"c"}), (["c", "a"], set()), (["b", "c", "a"], {"a", "b"})]
    whole, one, two = FeedStats(ks=(2, 3)), FeedStats(ks=(2, 3)), FeedStats(ks=(2, 3))
    for i, (items, picks) in enumerate(feeds):
        whole.add(items, topics, picks)
        (one if i < 2 else two).add(items, topics, picks)
    one.merge(two)
    assert one.report() == whole.report()
    assert pickle.loads(pickle.dumps(whole)).report() == whole.report()
    with pytest.raises(ValueError):
        whole.merge(FeedStats(ks=(5,)))


def test_rules_show_in_the_metrics_on_a_news_stream() -> None:
    """Replaying a synthetic news stream, serve a popularity feed before every read: the
    diversity rule raises intra-list diversity and caps the largest topic; a pick at position
    1 is always exposed."""
    records = list(generate_news_records(400, seed=3, days=2.0))
    topics: dict[str, list[str]] = {}
    published: dict[str, float] = {}
    recent: deque[tuple[float, str]] = deque()
    counts: Counter[str] = Counter()
    plain_rules = FeedRules(n=10, half_life_h=6.0, max_topic_share=1.0, min_topics=0)
    diverse_rules = FeedRules(n=10, half_life_h=6.0, max_topic_share=0.3, min_topics=4)
    plain, diverse = FeedStats(ks=(5, 10)), FeedStats(ks=(5, 10))
    served = 0
    for r in records:
        if r["type"] != "product_view":
            continue
        now = r["ts"]
        while recent and recent[0][0] < now - 6 * 3_600:  # popularity over the last 6 hours
            counts[recent.popleft()[1]] -= 1
        if served % 5 == 0 and len(counts) > 20:
            scores = {it: float(c) for it, c in counts.most_common(60) if c > 0}
            pick = next(iter(scores))  # the editors promote the most read story
            picks = EditorialPicks.from_json({"picks": [{"item": pick, "position": 1}]})
            a = build_feed(scores, published, topics, now, plain_rules)
            b = build_feed(scores, published, topics, now, diverse_rules, picks)
            plain.add(a.items, topics)
            diverse.add(b.items, topics, picks={pick})
        served += 1
        topics[r["item"]] = r["topics"]
        published[r["item"]] = r["published"]
        recent.append((now, r["item"]))
        counts[r["item"]] += 1
    rp, rd = plain.report(), diverse.report()
    assert rp["feeds"] == rd["feeds"] > 200
    assert rd["ild@10"] > rp["ild@10"] + 0.02
    assert rd["distinct_topics@10"] >= 4
    assert rd["distinct_topics@10"] > rp["distinct_topics@10"]
    assert rd["max_topic_share@10"] <= 0.3 + 1e-9 < rp["max_topic_share@10"]
    assert rd["pick_exposure@5"] == rd["feeds_with_pick@5"] == 1.0
    assert rp["pick_exposure@5"] is None
