"""Stage one: co-visitation neighbours and popularity top lists."""

from __future__ import annotations

import heapq
import pickle
import random

import pytest

from rtp.candidates.covisit import CoVisitation
from rtp.candidates.decay import anchor, inflation
from rtp.candidates.popularity import Popularity
from rtp.config import Settings
from rtp.engine.facade import Engine
from rtp.engine.view import ModelView
from tests.builders import T0, buy, cart, view


def test_covisitation_type_weights_purchase_over_cart_over_view() -> None:
    eng = Engine(Settings())
    # three users each come from item a, then view / cart / buy another item, all at T0
    eng.process(
        [
            view("u1", "a", T0),
            view("u1", "x", T0),
            view("u2", "a", T0),
            cart("u2", "y", T0),
            view("u3", "a", T0),
            buy("u3", "z", T0),
        ]
    )
    # the item step learns it in this tick; the user step's view one tick later
    for cv in (eng.items.cv, None):
        if cv is None:
            eng.process([view("probe", "p", T0 + 1)])
            cv = eng.view.cv
        top = cv.top("a", 10)
        assert [n for n, _ in top] == ["z", "y", "x"]
        # weights are inflated relative to the decay grid's anchor: the same factor for all
        f = inflation(anchor(T0, cv.half_life_s), T0, cv.half_life_s)
        assert {n: w / f for n, w in top} == pytest.approx({"z": 4.0, "y": 3.0, "x": 1.0})


def test_covisitation_distance_weighting_and_backward_links() -> None:
    cv = CoVisitation(k=10, backward=0.5)
    cv.add(["a", "b", "c"], "d", 1.0, ts=0.0)
    assert cv.nb["c"]["d"] == pytest.approx(1.0)
    assert cv.nb["b"]["d"] == pytest.approx(1 / 2)
    assert cv.nb["a"]["d"] == pytest.approx(1 / 3)
    assert cv.nb["d"] == pytest.approx({"c": 0.5, "b": 0.25, "a": 0.5 / 3})


def test_covisitation_window_and_self_pairs() -> None:
    cv = CoVisitation(k=10, window=2)
    cv.add(["a", "b", "c", "d"], "d", 1.0, ts=0.0)
    assert "d" not in cv.nb.get("d", {})  # no self pair
    assert set(cv.nb) == {"c", "d"}  # the window of 2 holds c and d; d is the item itself


def test_covisitation_top_k_is_bounded_after_prune_and_exact() -> None:
    rng = random.Random(3)
    cv = CoVisitation(k=5)
    weights: dict[str, float] = {}
    for n in range(40):
        item = f"n{n}"
        w = rng.uniform(0.1, 10.0)
        cv.add(["a"], item, w, ts=0.0)
        weights[item] = weights.get(item, 0.0) + w
    cv.prune()
    assert len(cv.nb["a"]) == 5
    brute = heapq.nlargest(5, weights.items(), key=lambda kv: kv[1])
    got = cv.top("a", 100)
    assert [n for n, _ in got] == [n for n, _ in brute]
    assert [w for _, w in got] == pytest.approx([w for _, w in brute])


def test_older_covisits_weigh_less() -> None:
    hl = 3_600.0
    cv = CoVisitation(k=10, half_life_s=hl)
    cv.add(["a"], "old", 1.0, ts=T0)
    cv.add(["a"], "new", 1.0, ts=T0 + hl)
    top = dict(cv.top("a", 2))
    assert top["new"] / top["old"] == pytest.approx(2.0)
    cv.add(["a"], "newer", 1.0, ts=T0 + 3 * hl)
    assert [n for n, _ in cv.top("a", 3)] == ["newer", "new", "old"]
    # rebasing keeps the ratios (and keeps floats finite)
    cv.rebase(T0 + 1_000 * hl)
    top2 = dict(cv.top("a", 3))
    assert top2["newer"] / top2["old"] == pytest.approx(8.0)


def _brute_top(scores: dict[str, float], n: int) -> list[str]:
    return [i for i, _ in heapq.nlargest(n, scores.items(), key=lambda kv: kv[1])]


def test_popularity_top_lists_are_exact_against_brute_force() -> None:
    rng = random.Random(11)
    hl = 600.0
    pop = Popularity(half_life_s=hl, top_n=10, cat_top_n=4)
    cat_of = {f"i{k}": f"c{k % 6}" for k in range(120)}
    raw: dict[str, float] = {}  # explicitly decayed scores, computed here
    ts = T0
    for batch in range(60):
        for _ in range(rng.randint(1, 40)):
            ts += rng.uniform(0.0, 30.0)
            item = rng.choice(list(cat_of))
            w = rng.choice((1.0, 3.0, 4.0)) * rng.uniform(0.5, 1.5)
            pop.add(item, cat_of[item], None, w, ts)
            raw[item] = raw.get(item, 0.0) + w * 2.0 ** ((ts - T0) / hl)
        pop.refresh()
        assert pop.trending_items(10) == _brute_top(raw, 10), f"batch {batch}"
        for c in set(cat_of.values()):
            in_cat = {i: s for i, s in raw.items() if cat_of[i] == c}
            got = [i for i, _ in pop.top_of(c) or []]
            assert got == _brute_top(in_cat, 4), f"batch {batch}, category {c}"


def test_category_tops_asked_rarely_are_exact_too() -> None:
    """A top asked for after many batches (its touched items piled up) is still exact."""
    rng = random.Random(5)
    pop = Popularity(half_life_s=600.0, top_n=10, cat_top_n=5)
    cat_of = {f"i{k}": f"c{k % 4}" for k in range(200)}
    raw: dict[str, float] = {}
    ts = T0
    asked = 0
    for batch in range(80):
        for _ in range(rng.randint(1, 30)):
            ts += rng.uniform(0.0, 20.0)
            item = rng.choice(list(cat_of))
            w = rng.uniform(0.2, 4.0)
            pop.add(item, cat_of[item], None, w, ts)
            raw[item] = raw.get(item, 0.0) + w * 2.0 ** ((ts - T0) / 600.0)
        pop.refresh()
        for c in sorted(set(cat_of.values())):
            if rng.random() < 0.25:
                asked += 1
                in_cat = {i: s for i, s in raw.items() if cat_of[i] == c}
                got = [i for i, _ in pop.top_of(c) or []]
                assert got == _brute_top(in_cat, 5), f"batch {batch}, category {c}"
    assert asked > 50


def test_an_item_that_changes_category_leaves_its_old_top() -> None:
    pop = Popularity(cat_top_n=3)
    for item, w in (("a", 5.0), ("b", 4.0), ("c", 3.0), ("d", 1.0)):
        pop.add(item, "shoes", None, w, T0)
    assert [i for i, _ in pop.top_of("shoes") or []] == ["a", "b", "c"]
    pop.add("a", "bags", None, 1.0, T0)  # the catalogue now says: a bag
    assert [i for i, _ in pop.top_of("shoes") or []] == ["b", "c", "d"]
    assert [i for i, _ in pop.top_of("bags") or []] == ["a"]


def test_category_tops_do_not_depend_on_when_they_were_asked_for() -> None:
    """Items move between categories and old ones are evicted: a view that asks for every top
    at every boundary and one that asks only at the end answer the same, and both are exact
    (the workers of a cluster ask at different times and must decide alike)."""
    rng = random.Random(9)
    eager, lazy = (
        Popularity(half_life_s=600.0, cat_top_n=4),
        Popularity(half_life_s=600.0, cat_top_n=4),
    )
    cats = [f"c{k}" for k in range(3)]
    cat_of = {f"i{k}": cats[k % 3] for k in range(60)}
    raw: dict[str, float] = {}
    last: dict[str, float] = {}
    ts = T0
    for batch in range(50):
        for _ in range(rng.randint(1, 12)):
            ts += rng.uniform(0.0, 10.0)
            item = rng.choice(list(cat_of))
            if rng.random() < 0.1:
                cat_of[item] = rng.choice(cats)  # the catalogue re-files it
            w = rng.uniform(0.2, 4.0)
            for pop in (eager, lazy):
                pop.add(item, cat_of[item], None, w, ts)
            raw[item] = raw.get(item, 0.0) + w * 2.0 ** ((ts - T0) / 600.0)
            last[item] = ts
        for pop in (eager, lazy):
            pop.refresh()
        if batch % 10 == 9:
            cutoff = ts - 150.0
            assert eager.evict(cutoff) == lazy.evict(cutoff)
            for i in [i for i, t in last.items() if t < cutoff]:
                del raw[i], last[i]
        for c in cats:
            eager.top_of(c)
    for c in cats:
        in_cat = {i: s for i, s in raw.items() if cat_of[i] == c}
        want = _brute_top(in_cat, 4)
        assert [i for i, _ in eager.top_of(c) or []] == want, c
        assert [i for i, _ in lazy.top_of(c) or []] == want, c


def test_a_top_that_lost_items_to_eviction_is_refilled_from_its_category() -> None:
    pop = Popularity(cat_top_n=2)
    pop.add("old", "shoes", None, 9.0, T0)
    pop.add("b", "shoes", None, 4.0, T0 + 100)
    pop.add("c", "shoes", None, 3.0, T0 + 100)
    assert [i for i, _ in pop.top_of("shoes") or []] == ["old", "b"]
    assert pop.evict(T0 + 50) == ["old"]
    assert [i for i, _ in pop.top_of("shoes") or []] == ["b", "c"]  # c was never touched since


def test_a_view_snapshot_from_before_category_rebuilds_resumes() -> None:
    view = ModelView()
    view.apply_items(
        [(T0, "1", "a", "shoes", None, 2.0, ()), (T0, "2", "b", "shoes", None, 1.0, ())]
    )
    view.finish_tick(0)
    if not hasattr(view.pop, "__dict__"):
        pytest.skip("a compiled Popularity: only pure-Python builds wrote such snapshots")
    del view.pop._rescan  # what a snapshot of an earlier build holds
    again = pickle.loads(pickle.dumps(view))
    assert again.pop._rescan == {}
    assert [i for i, _ in again.pop.top_of("shoes") or []] == ["a", "b"]


def test_popularity_trending_follows_recent_activity() -> None:
    hl = 600.0
    pop = Popularity(half_life_s=hl, top_n=5)
    for _ in range(3):
        pop.add("yesterday", "c", 1.0, 1.0, T0)
    pop.add("now", "c", 1.0, 1.0, T0 + 2 * hl)  # 1 x 4 > 3 x 1
    pop.refresh()
    assert pop.trending_items(2) == ["now", "yesterday"]


def test_popularity_catalogue_and_new_items() -> None:
    pop = Popularity()
    pop.add("a", "shoes", 20.0, 1.0, T0)
    pop.add("a", "shoes", 20.0, 1.0, T0 + 1)
    pop.add("b", None, None, 1.0, T0 + 2)
    assert pop.drain_new_items() == ["a", "b"]
    pop.add("a", "shoes", 25.0, 1.0, T0 + 3)  # re-priced: announced again
    assert pop.drain_new_items() == ["a"]
    assert (pop.cat_of, pop.price_of) == ({"a": "shoes"}, {"a": 25.0})


def test_engine_writes_the_catalogue_seen() -> None:
    eng = Engine(Settings())
    w = eng.process([view("u", "a", T0, "shoes", 19.5), view("u", "b", T0 + 1)])
    assert w.items == {"a": b"shoes|19.5", "b": b"|"}


def test_covisitation_ties_keep_insertion_order() -> None:
    cv = CoVisitation(k=10)
    for item in ("m", "c", "x", "a"):  # equal weights, an order no hash would give
        cv.add(["s"], item, 1.0, ts=0.0)
    assert [n for n, _ in cv.top("s", 10)] == ["m", "c", "x", "a"]


def test_covisitation_evict_drops_lists_untouched_since() -> None:
    cv = CoVisitation(k=10)
    cv.add(["a"], "b", 1.0, ts=T0)  # a -> b and b -> a, touched at T0
    cv.add(["c"], "d", 1.0, ts=T0 + 100)
    assert cv.top("a", 5) and cv.top("c", 5)  # cached
    assert cv.evict(T0 + 50) == 2  # the lists of a and b
    assert set(cv.nb) == {"c", "d"} and set(cv.touched) == {"c", "d"}
    assert cv.top("a", 5) == [] and cv.top("b", 5) == []  # not served from the cache either
    assert [n for n, _ in cv.top("c", 5)] == ["d"]
    assert cv.evict(T0 + 50) == 0
    # a list touched again is kept: d -> c is refreshed by a later pair
    cv.add(["x"], "d", 1.0, ts=T0 + 300)
    assert cv.evict(T0 + 200) == 1  # c only
    assert set(cv.nb) == {"x", "d"}
    assert len(cv) == 2


def test_covisitation_evicted_list_that_grew_is_not_pruned_back() -> None:
    cv = CoVisitation(k=2)
    for n in range(5):
        cv.add(["a"], f"n{n}", 1.0, ts=T0)
    cv.evict(T0 + 1)
    cv.prune()  # the grown list was evicted: nothing comes back
    assert "a" not in cv.nb


def test_popularity_evict_forgets_items_and_their_top_list_entries() -> None:
    pop = Popularity(half_life_s=3_600.0, top_n=5, cat_top_n=5)
    pop.add("old", "shoes", 10.0, 5.0, T0)
    pop.add("old2", "bags", 12.0, 1.0, T0)
    pop.add("new", "shoes", 20.0, 1.0, T0 + 100)
    pop.refresh()
    assert pop.trending_items(5) == ["old", "new", "old2"]
    assert pop.evict(T0 + 50) == ["old", "old2"]
    assert set(pop.score) == set(pop.last) == {"new"}
    assert pop.cat_of == {"new": "shoes"} and pop.price_of == {"new": 20.0}
    assert pop.trending_items(5) == ["new"]
    assert [i for i, _ in pop.top_of("shoes")] == ["new"]
    assert pop.top_of("bags") is None  # an emptied category list is dropped
    assert pop.evict(T0 + 50) == []
    assert len(pop) == 1
    # an evicted item seen again starts from scratch (a new item)
    pop.drain_new_items()
    pop.add("old", "shoes", 10.0, 1.0, T0 + 200)
    assert pop.drain_new_items() == ["old"]


def test_popularity_ties_keep_the_order_items_were_touched_in() -> None:
    pop = Popularity(top_n=10, cat_top_n=10)
    for item in ("m", "c", "x", "a"):
        pop.add(item, "k", None, 1.0, ts=T0)
    pop.refresh()
    assert pop.trending_items(10) == ["m", "c", "x", "a"]
    assert [i for i, _ in pop.top_of("k")] == ["m", "c", "x", "a"]


def test_two_hop_lists_are_what_the_current_lists_give_whenever_asked() -> None:
    """A two-hop list is cached until its item's list or one it went through changes: a model
    that asks for them at every batch and one that asks only at the end answer the same, and
    both equal a model built from scratch (so every worker's view ranks alike)."""
    rng = random.Random(3)
    items = [f"i{n}" for n in range(40)]
    eager, lazy = CoVisitation(k=6, half_life_s=50.0), CoVisitation(k=6, half_life_s=50.0)
    batches = []
    ts = 0.0
    for _ in range(60):
        batch = []
        for _ in range(rng.randint(1, 8)):
            ts += rng.random() * 3.0
            prev = rng.sample(items, rng.randint(1, 4))
            batch.append((prev, rng.choice(items), rng.choice((1.0, 3.0)), ts))
        batches.append(batch)
    for n, batch in enumerate(batches):
        for cv in (eager, lazy):
            for prev, item, w, t in batch:
                cv.add(prev, item, w, t)
            cv.prune()
            if n % 17 == 16:
                cv.evict(ts - 40.0)
        for it in rng.sample(items, 10):
            eager.top2(it, 20)
    fresh = CoVisitation(k=6, half_life_s=50.0)
    fresh.nb = {i: dict(d) for i, d in lazy.nb.items()}
    for it in items:
        assert eager.top2(it, 20) == lazy.top2(it, 20) == fresh.top2(it, 20)
        direct = set(lazy.nb.get(it, {}))
        assert not {m for m, _ in lazy.top2(it, 20)} & (direct | {it})
