"""The engine's layers: the model view, the model log, the item and global steps' tick
completion, user shards fed by hand, the hooks, and the domain packages' independence from
Bytewax and Redis."""

from __future__ import annotations

import ast
import pickle
import random
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from rtp.candidates.decay import anchor, inflation
from rtp.capture.events import Event
from rtp.config import Settings
from rtp.decisions.edge import EdgeModel
from rtp.engine.edges import EdgeLearner
from rtp.engine.facade import Engine
from rtp.engine.hooks import BatchServing, Evaluation
from rtp.engine.items import ItemShard
from rtp.engine.log import GLOBAL, LocalModelLog, item_writer
from rtp.engine.merge import GlobalMerge
from rtp.engine.messages import EdgeSignals, GlobalSignals, ItemSignals, UserBatch, split_edge
from rtp.engine.shards import item_shard_of, user_shard_of
from rtp.engine.users import WINDOW, UserShard, new_view
from rtp.engine.view import ItemRecord, ModelView, merge_parts, record_key
from rtp.engine.writes import Writes
from rtp.experiments.bandits import BanditTuner
from rtp.ranking.ranker import FEATURES, PRIOR, PRIOR_INTERCEPT, OnlineRanker
from rtp.store import codec
from tests.builders import T0, positioned, synthetic_stream, view

SRC = Path(__file__).resolve().parents[2] / "src" / "rtp"


def rec(
    ts: float,
    pos: str,
    item: str,
    prev: tuple[str, ...] = (),
    cat: str | None = "c",
    price: float | None = 10.0,
    weight: float = 1.0,
) -> ItemRecord:
    return (ts, pos, item, cat, price, weight, prev)


def stream_records(events: Sequence[Event]) -> list[ItemRecord]:
    """The item records a user step sends for ``events`` (sessions split by user only: the
    window of previous items within a user's events, as ``rtp.engine.users`` builds it)."""
    recent: dict[str, list[str]] = {}
    out = []
    for e in events:
        if e.item is None:
            continue
        mine = recent.setdefault(e.user, [])
        out.append(rec(e.ts, e.pos, e.item, tuple(mine[-WINDOW:]), e.category, e.price))
        if e.item in mine:
            mine.remove(e.item)
        mine.append(e.item)
    return out


def view_state(m: ModelView) -> dict[str, Any]:
    """Everything a decision reads from a view (co-visitation, popularity, weights)."""
    return {
        "nb": {i: dict(d) for i, d in m.cv.nb.items()},
        "tops": {i: m.cv.top(i, 30) for i in m.cv.nb},
        "score": dict(m.pop.score),
        "trending": list(m.pop.trending),
        "cat_top": {c: m.pop.top_of(c) for c in sorted(set(m.pop.cat_of.values()))},
        "cat_of": dict(m.pop.cat_of),
        "price_of": dict(m.pop.price_of),
        "weights": m.weights,
        "intercept": m.intercept,
        "version": m.version,
        "high": m.high,
        "records": m.records,
        "tick": m.tick,
    }


# --- the model view -----------------------------------------------------------------------------


def test_a_new_view_holds_the_prior_and_nothing_learned() -> None:
    m = new_view(Settings())
    assert m.tick == -1 and m.records == 0 and len(m.cv) == 0 and len(m.pop) == 0
    assert m.weights == tuple(PRIOR[f] for f in FEATURES)
    assert m.intercept == PRIOR_INTERCEPT and m.version == "lr-0"
    assert new_view(Settings(ranker="pa")).version == "pa-0"
    assert new_view(Settings(neighbours_k=7)).cv.k == 7


def test_apply_items_then_finish_tick() -> None:
    m = ModelView()
    m.apply_items(
        [
            rec(T0, "f:0", "a"),
            rec(T0 + 1, "f:1", "b", ("a",), weight=3.0),
            rec(T0 + 2, "f:2", "x", (), cat="k", price=None),  # an opted-out user's record
            rec(T0 + 3, "f:3", "b", ("a",), price=12.0),
        ]
    )
    assert m.records == 4 and m.high == T0 + 3
    # co-visitation only from records that carry previous items; popularity from all of them
    assert set(m.cv.nb) == {"a", "b"}
    # inflated relative to the decay grid's anchor: 3 at T0 + 1, then 1 two seconds later
    hl = m.cv.half_life_s
    f = inflation(anchor(T0, hl), T0 + 1, hl)
    assert dict(m.cv.top("a", 5))["b"] / f == pytest.approx(3.0 + 2 ** (2 / hl), rel=1e-12)
    assert set(m.pop.score) == {"a", "b", "x"}
    assert m.pop.price_of == {"a": 10.0, "b": 12.0}  # the latest price stated
    assert m.pop.cat_of == {"a": "c", "b": "c", "x": "k"}
    # top lists are rebuilt at the tick boundary, not before
    assert m.pop.trending == [] and m.tick == -1
    m.finish_tick(0)
    assert m.tick == 0
    assert [i for i, _ in m.pop.trending] == ["b", "x", "a"]  # x: later than a, as strong
    assert [i for i, _ in m.pop.top_of("c")] == ["b", "a"]
    assert m.stats()["items"] == 3 and m.stats()["neighbour_lists"] == 2


def test_trend_terms_follow_a_new_trending_list_even_at_a_reused_address() -> None:
    """The trend terms are cached per weights and trending list. The cache keeps the objects,
    not their ids: a freed list's address is often the next list's (CPython's free list), and
    an id key then served the terms of the list before."""
    m = ModelView()
    m.pop.trending = [("a", 2.0)]
    assert [t[0] for t in m.trend_terms()] == ["a"]
    for new in ("b", "c", "d"):
        m.pop.trending = []  # the list the terms were made from may be freed here...
        m.pop.trending = [(new, 3.0)]  # ...and its memory reused by this one
        assert [t[0] for t in m.trend_terms()] == [new]
    old = m.trend_terms()[0][2]
    m.weights = tuple(2 * w for w in m.weights)  # new weights: new terms
    assert m.trend_terms()[0][2] == pytest.approx(m.weights[FEATURES.index("pop")]) == 2 * old


def test_apply_global_adopts_weights_bandits_and_extras() -> None:
    m = ModelView()
    terms_before = m.trend_terms()
    w = [float(k) for k in range(len(FEATURES))]
    tuner = BanditTuner("b", "home", ["x", "y"], seed=1)
    tuner.reward("x", 1.0)
    m.apply_global(
        {
            "w": w,
            "b": -1.5,
            "v": "lr-42",
            "bandits": {"home": pickle.dumps(tuner)},
            "extra": {"edge": {"rules": []}},
        }
    )
    assert m.weights == tuple(w) and m.intercept == -1.5 and m.version == "lr-42"
    assert isinstance(m.bandits["home"], BanditTuner)
    assert m.bandits["home"].to_dict() == tuner.to_dict()
    assert m.extra == {"edge": {"rules": []}}
    # a part without weights (bandits only) keeps them
    m.apply_global({"bandits": {"home": tuner}})
    assert m.weights == tuple(w) and m.version == "lr-42"
    assert m.bandits["home"] is tuner
    assert m.trend_terms() == terms_before == []


def test_trend_terms_follow_new_weights_and_new_trending_lists() -> None:
    m = ModelView()
    m.apply_items([rec(T0, "f:0", "a", weight=2.0), rec(T0, "f:1", "b")])
    m.finish_tick(0)
    terms = m.trend_terms()
    w4 = m.weights[FEATURES.index("pop")]
    assert terms == [("a", "c", pytest.approx(w4), 10.0), ("b", "c", pytest.approx(w4 / 2), 10.0)]
    m.apply_global({"w": [1.0] * len(FEATURES), "b": 0.0, "v": "lr-1"})
    assert m.trend_terms()[1][2] == pytest.approx(0.5)
    m.apply_items([rec(T0 + 1, "f:2", "b", weight=5.0)])
    m.finish_tick(1)
    assert [t[0] for t in m.trend_terms()] == ["b", "a"]


def test_finish_tick_evicts_items_untouched_for_the_ttl() -> None:
    m = ModelView(item_ttl_s=1_000.0)
    m.apply_items([rec(T0, "f:0", "old"), rec(T0, "f:1", "old2", ("old",))])
    m.finish_tick(0)  # the first boundary only schedules eviction
    assert set(m.pop.score) == {"old", "old2"}
    m.apply_items([rec(T0 + 5_000, "f:2", "new"), rec(T0 + 5_001, "f:3", "new2", ("new",))])
    m.finish_tick(1)
    assert set(m.pop.score) == {"new", "new2"}
    assert set(m.cv.nb) == {"new", "new2"}
    assert [i for i, _ in m.pop.trending] == ["new2", "new"]  # the later view weighs more


def test_parts_merged_canonically_equal_one_part() -> None:
    evs = positioned(synthetic_stream(40, seed=5))
    records = stream_records(evs)
    one, two = ModelView(), ModelView()
    tick_size = 60
    for t, start in enumerate(range(0, len(records), tick_size)):
        tick = records[start : start + tick_size]
        parts = [sorted((r for r in tick if item_shard_of(r[2], 2) == k), key=record_key)
                 for k in range(2)]  # fmt: skip
        assert all(parts)  # both shards have records: the merge is not trivial
        merged = list(merge_parts(parts))
        assert merged == sorted(tick, key=record_key)
        one.apply_items(merge_parts([sorted(tick, key=record_key)]))
        one.finish_tick(t)
        two.apply_items(merge_parts(parts))
        two.finish_tick(t)
        assert view_state(two) == view_state(one), f"tick {t}"
    assert len(one.cv) > 20 and one.pop.trending


# --- the model log ------------------------------------------------------------------------------


def test_local_model_log_publish_read_progress_prune() -> None:
    log = LocalModelLog()
    assert log.progress(["i0", GLOBAL]) == -1
    assert log.read(["i0"], -1, 10) == []
    log.publish("i1", [(0, "i1@0"), (2, "i1@2")], 2)
    log.publish("i0", [(0, "i0@0"), (1, "i0@1")], 1)
    log.publish(GLOBAL, [(1, "g@1")], 1)
    # sorted by (tick, writer), whatever the order published in; only the writers asked for
    assert log.read(["i0", "i1", GLOBAL], -1, 2) == [
        (0, "i0", "i0@0"),
        (0, "i1", "i1@0"),
        (1, GLOBAL, "g@1"),
        (1, "i0", "i0@1"),
        (2, "i1", "i1@2"),
    ]
    assert log.read(["i1"], 0, 2) == [(2, "i1", "i1@2")]  # after < tick <= upto
    assert log.read(["i0", "i1"], 0, 1) == [(1, "i0", "i0@1")]
    # progress: the lowest writer's; a writer that published nothing holds everyone back
    assert log.progress(["i0", "i1"]) == 1
    assert log.progress(["i1"]) == 2
    assert log.progress(["i0", "i1", "i2"]) == -1
    # progress never goes back, and publishing a part again changes nothing (a resume)
    log.publish("i1", [(0, "i1@0")], 0)
    assert log.progress(["i1"]) == 2
    assert log.read(["i1"], -1, 2) == [(0, "i1", "i1@0"), (2, "i1", "i1@2")]
    # a writer's prune deletes its own parts up to a tick, nobody else's
    log.prune("i0", 0)
    assert log.read(["i0", "i1"], -1, 2) == [
        (0, "i1", "i1@0"),
        (1, "i0", "i0@1"),
        (2, "i1", "i1@2"),
    ]
    log.prune("nobody", 5)
    assert log.progress(["i0"]) == 1  # pruning keeps the progress


# --- the item step ------------------------------------------------------------------------------


def _signals(shard: int, done: int, primary: dict[int, list[ItemRecord]], view: int = -1):
    return ItemSignals(shard, done, view, primary, {})


def test_item_shard_completes_a_tick_when_every_user_shard_is_done() -> None:
    log = LocalModelLog()
    items = ItemShard(Settings(), 0, 1, user_shards=2)
    a = [rec(T0, "f:0", "a"), rec(T0 + 2, "f:2", "b", ("a",))]
    b = [rec(T0 + 1, "f:1", "c"), rec(T0 + 3, "f:3", "b", ("c",))]
    # user shard 0 has finished tick 0; shard 1 sends its tick-0 records but is still in it
    assert items.on_signals(_signals(0, 0, {0: a}), log) is None
    assert items.on_signals(_signals(1, -1, {0: b}), log) is None
    assert log.progress([item_writer(0)]) == -1 and items.complete == -1
    assert log.read([item_writer(0)], -1, 5) == []
    w = items.on_signals(_signals(1, 0, {}), log)
    assert w is not None and items.complete == 0 and log.progress([item_writer(0)]) == 0
    part = log.read([item_writer(0)], -1, 0)
    assert part == [(0, "i0", sorted(a + b, key=record_key))]
    # its writes: the catalogue, and the product page of every item viewed in the tick
    assert w.items == {"a": b"c|10.0", "b": b"c|10.0", "c": b"c|10.0"}
    assert set(w.neighbours) == {"a", "b", "c"}
    assert codec.loads(w.neighbours["b"])["items"] == ["c", "a"]  # the later pair weighs more
    # a tick with no records completes too (progress moves), with no part
    assert items.on_signals(_signals(0, 1, {}), log) is None
    assert items.on_signals(_signals(1, 1, {}), log) is not None
    assert log.progress([item_writer(0)]) == 1
    assert [t for t, _, _ in log.read([item_writer(0)], -1, 1)] == [0]


def test_item_shard_parts_are_canonical_whatever_the_arrival_order() -> None:
    rng = random.Random(4)
    recs = [
        rec(T0 + k // 3, f"f:{k}", f"i{rng.randrange(8)}", (f"i{rng.randrange(8)}",))
        for k in range(60)
    ]
    by_shard: list[list[ItemRecord]] = [[], [], []]
    for r in recs:
        by_shard[rng.randrange(3)].append(r)
    outcomes = []
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        log = LocalModelLog()
        items = ItemShard(Settings(), 0, 1, user_shards=3)
        writes = Writes()
        for j in order:
            w = items.on_signals(_signals(j, 0, {0: list(by_shard[j])}), log)
            if w is not None:
                writes.extend(w)
        outcomes.append((log.read(["i0"], -1, 0), writes.neighbours, writes.items))
    assert outcomes[0][0] == [(0, "i0", sorted(recs, key=record_key))]
    assert outcomes[1] == outcomes[0] and outcomes[2] == outcomes[0]


def test_item_shard_prunes_parts_every_view_has_passed() -> None:
    log = LocalModelLog()
    items = ItemShard(Settings(), 0, 1, user_shards=2)
    for j in range(2):
        items.on_signals(_signals(j, 0, {0: [rec(T0 + j, f"f:{j}", "a")]}), log)
    assert [t for t, _, _ in log.read(["i0"], -1, 9)] == [0]
    # tick 1, and both user shards' views now hold tick 0: its part is no longer needed
    for j in range(2):
        items.on_signals(_signals(j, 1, {1: [rec(T0 + 5 + j, f"f:{5 + j}", "b")]}, 0), log)
    assert [t for t, _, _ in log.read(["i0"], -1, 9)] == [1]
    assert [t for t, _ in items.unpublished] == [1]


def test_item_shards_keep_the_lists_of_their_own_items() -> None:
    """Two item shards: each publishes the records of its items and keeps the co-visitation
    lists of its items (links towards another shard's item come as secondary records); the
    pages they write are the pages one shard writes."""
    evs = positioned(synthetic_stream(30, seed=9))
    records = stream_records(evs)
    s = Settings()
    one = ItemShard(s, 0, 1, 1)
    two = [ItemShard(s, k, 2, 1) for k in range(2)]
    log1, log2 = LocalModelLog(), LocalModelLog()
    pages1: dict[str, bytes] = {}
    pages2: dict[str, bytes] = {}
    for t, start in enumerate(range(0, len(records), 50)):
        tick = records[start : start + 50]
        w = one.on_signals(ItemSignals(0, t, -1, {t: tick}, {}), log1)
        assert w is not None
        pages1.update(w.neighbours)
        for k in range(2):
            primary = [r for r in tick if item_shard_of(r[2], 2) == k]
            secondary = [
                r
                for r in tick
                if item_shard_of(r[2], 2) != k and any(item_shard_of(p, 2) == k for p in r[6])
            ]
            w = two[k].on_signals(ItemSignals(0, t, -1, {t: primary}, {t: secondary}), log2)
            assert w is not None
            pages2.update(w.neighbours)
            for item in two[k].cv.nb:
                assert item_shard_of(item, 2) == k
    assert pages1 and same_pages(pages2, pages1)
    for item, nb in one.cv.nb.items():
        mine = two[item_shard_of(item, 2)].cv.top(item, 30)
        assert [n for n, _ in mine] == [n for n, _ in one.cv.top(item, 30)]
        assert len(nb) == len(mine)
    merged = list(merge_parts([p for _, _, p in log2.read(["i0", "i1"], -1, 99)]))
    assert sorted(merged, key=record_key) == sorted(records, key=record_key)


# --- the global step ----------------------------------------------------------------------------


def _examples(n: int, seed: int, shard: int) -> list[Any]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        chosen = tuple(rng.random() for _ in FEATURES)
        negs = tuple(tuple(rng.random() * 0.5 for _ in FEATURES) for _ in range(2))
        out.append((T0 + rng.randrange(50), f"s{shard}:{k}", 0, chosen, negs))
    return out


def _gsig(shard: int, done: int, examples: dict[int, list[Any]], view: int = -1, **kw: Any):
    return GlobalSignals(shard, done, view, examples, kw.get("rewards", {}), {})


def test_global_merge_trains_in_canonical_order_once_every_shard_is_done() -> None:
    s = Settings()
    xs = [_examples(30, 1, 0), _examples(30, 2, 1)]
    everything = sorted(xs[0] + xs[1], key=lambda x: (x[0], x[1], x[2]))
    ref = OnlineRanker(seed=s.seed, kind=s.ranker)
    for _ts, _pos, _n, chosen, negs in everything:
        ref.learn_one(dict(zip(FEATURES, chosen, strict=True)), True)
        for neg in negs:
            ref.learn_one(dict(zip(FEATURES, neg, strict=True)), False)
    ref.freeze()
    other = OnlineRanker(seed=s.seed, kind=s.ranker)  # the same examples in arrival order
    for _ts, _pos, _n, chosen, negs in xs[1] + xs[0]:
        other.learn_one(dict(zip(FEATURES, chosen, strict=True)), True)
        for neg in negs:
            other.learn_one(dict(zip(FEATURES, neg, strict=True)), False)
    assert other.freeze() != ref.frozen  # so the order is checked, not assumed
    for order in ([0, 1], [1, 0]):
        log = LocalModelLog()
        g = GlobalMerge(s, 2)
        first, second = order
        assert g.on_signals(_gsig(first, 0, {0: list(xs[first])}), log) is None
        assert log.progress([GLOBAL]) == -1
        w = g.on_signals(_gsig(second, 0, {0: list(xs[second])}), log)
        assert w is not None and log.progress([GLOBAL]) == 0
        [(tick, writer, part)] = log.read([GLOBAL], -1, 0)
        assert (tick, writer) == (0, GLOBAL)
        assert part["w"] == list(ref.frozen)
        assert part["b"] == float(ref.model.intercept)
        assert part["v"] == ref.version == "lr-180"
        meta = orjson.loads(dict(w.meta)["ranker"])
        assert meta["version"] == "lr-180" and meta["tick"] == 0
        assert g.stats["examples"] == 60
        # the view adopts the part
        m = ModelView()
        m.apply_global(part)
        assert m.weights == ref.frozen and m.version == "lr-180"


def test_global_merge_ticks_without_examples_publish_progress_only() -> None:
    log = LocalModelLog()
    g = GlobalMerge(Settings(), 1)
    w = g.on_signals(_gsig(0, 0, {}), log)
    assert w is not None and len(w) == 0
    assert log.progress([GLOBAL]) == 0 and log.read([GLOBAL], -1, 0) == []
    assert g.on_signals(_gsig(0, 0, {}), log) is None  # nothing new is done


def test_global_merge_keeps_the_newest_part_every_view_may_need() -> None:
    log = LocalModelLog()
    g = GlobalMerge(Settings(), 1)
    for t in range(3):
        g.on_signals(_gsig(0, t, {t: _examples(2, t, 0)}, view=t - 1), log)
    # the view holds tick 1: tick 0's part goes, tick 1's stays (a resumed view reads it)
    assert [t for t, _, _ in log.read([GLOBAL], -1, 9)] == [1, 2]


def test_global_merge_rewards_bandits_and_publishes_their_state() -> None:
    tuner = BanditTuner("reshow", "home", ["reshow-0", "reshow-4"], seed=2)
    log = LocalModelLog()
    g = GlobalMerge(Settings(), 2, bandits={"reshow": tuner})
    r0 = [(T0 + 1, "u1|s", "home", "reshow-4", 1.0), (T0 + 3, "u3|s", "home", "reshow-0", 0.0)]
    r1 = [(T0 + 2, "u2|s", "home", "reshow-4", 1.0), (T0 + 4, "u4|s", "nope", "reshow-0", 1.0)]
    g.on_signals(GlobalSignals(1, 0, -1, {}, {0: r1}, {}), log)
    w = g.on_signals(GlobalSignals(0, 0, -1, {}, {0: r0}, {}), log)
    assert w is not None
    assert tuner.pulls == {"reshow-0": 1, "reshow-4": 2} and tuner.n_pulls == 3
    assert tuner.total_reward == {"reshow-0": 0.0, "reshow-4": 2.0}
    [(_, _, part)] = log.read([GLOBAL], -1, 0)
    assert "w" not in part  # no ranking examples this tick
    m = ModelView()
    m.apply_global(part)
    assert m.bandits["home"].to_dict() == tuner.to_dict()
    assert dict(w.meta)["bandit:reshow:all"]


def _edge_obs(n: int, seed: int, shard: int) -> list[Any]:
    """Finished sessions ``(ts, key, signals, categories, items)`` of one user shard."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        signals = {"referral": rng.choice(["search", "social"]), "device": rng.choice(
            ["mobile", "desktop"]), "hour": rng.randrange(24)}  # fmt: skip
        cats = [rng.choice(["books", "lamps", "toys"]) for _ in range(2)]
        items = [f"i{rng.randrange(12)}" for _ in range(3)]
        out.append((T0 + rng.randrange(600), f"u{shard}-{k}|s", signals, cats, items))
    return out


def test_edge_learner_learns_in_canonical_order_once_every_shard_is_done() -> None:
    """Whatever order the shards' observations arrive in, the edge step learns each tick's
    finished sessions in (time, key) order once every user shard is done with the tick, and
    writes the model's document to meta:edge; pickled half way, it goes on the same."""
    obs = [{t: _edge_obs(25, 10 * t + j, j) for t in range(3)} for j in range(2)]
    ref = EdgeModel(min_support=1.0)
    for t in range(3):
        for ts, _k, signals, cats, items in sorted(obs[0][t] + obs[1][t], key=lambda x: x[:2]):
            ref.observe(signals, cats, items, ts)
    docs = []
    for order in ([0, 1], [1, 0]):
        learner = EdgeLearner(2, EdgeModel(min_support=1.0))
        for t in range(3):
            first, second = order
            assert learner.on_signals(EdgeSignals(first, t, {t: list(obs[first][t])})) is None
            w = learner.on_signals(EdgeSignals(second, t, {t: list(obs[second][t])}))
            assert w is not None and [k for k, _ in w.meta] == ["edge"]
            docs.append(dict(w.meta)["edge"])
            if t == 1:
                learner = pickle.loads(pickle.dumps(learner))
        assert learner.complete == 2 and learner.sessions == 150 and not learner.pending
    assert docs[:3] == docs[3:]
    assert docs[-1] == orjson.dumps(ref.document())
    assert orjson.loads(docs[-1])["sessions"] == 150


def test_edge_learner_waits_for_every_shard_and_flushes_at_the_end() -> None:
    learner = EdgeLearner(2, EdgeModel(min_support=0.0), write_meta=False)
    assert learner.on_signals(EdgeSignals(0, 5, {5: _edge_obs(3, 1, 0)})) is None
    assert learner.on_signals(EdgeSignals(1, 4, {})) is not None  # ticks up to 4: nothing new
    assert learner.model.sessions == 0 and learner.complete == 4
    w = learner.finish()  # the stream ended: tick 5 is learned, written nowhere (no meta)
    assert w is not None and len(w) == 0 and learner.model.sessions == 3
    assert learner.finish() is None


def test_split_edge_takes_the_observations_out_of_the_global_message() -> None:
    obs = _edge_obs(2, 3, 1)
    msg = GlobalSignals(1, 7, 6, {7: ["x"]}, {}, {7: obs})
    e = split_edge(msg)
    assert (e.user_shard, e.done, e.edge) == (1, 7, {7: obs})
    assert msg.edge == {} and msg.examples == {7: ["x"]}
    assert pickle.loads(pickle.dumps(e)).edge == {7: obs}
    empty = split_edge(msg)  # every global message gives one: it carries the done tick
    assert (empty.done, empty.edge) == (7, {})


# --- user shards fed by hand ----------------------------------------------------------------------


def _ticks(events: list[Event], size: int) -> list[list[Event]]:
    return [events[k : k + size] for k in range(0, len(events), size)]


def run_facade(ticks: list[list[Event]], settings: Settings) -> tuple[list[Writes], Writes]:
    eng = Engine(settings)
    return [eng.process(t) for t in ticks], eng.finish()


def run_sharded(
    ticks: list[list[Event]],
    settings: Settings,
    shards: int,
    markers: bool = False,
    hooks: Callable[[], list[Any]] = list,
    mode: str = "realtime",
) -> tuple[list[Writes], Writes, list[UserShard], GlobalMerge]:
    """The dataflow by hand: every user shard gets its share of every tick (even empty: the
    watermark), signals reach the item and global steps in reverse order of the shards.

    Each tick's batch closes it (its watermark is the next tick), as a replay's does; with
    ``markers``, as a live source's: its watermark is its own tick, and an empty batch (the
    marker) opens the next tick before its events."""
    log = LocalModelLog()
    users = [
        UserShard(settings, j, shards, shards, parts=["p"], mode=mode, hooks=hooks())
        for j in range(shards)
    ]
    items = [ItemShard(settings, k, shards, shards) for k in range(shards)]
    merge = GlobalMerge(settings, shards)

    def route(outputs: list[Any], w: Writes) -> None:
        for kind, value in reversed(outputs):
            got = None
            if kind == "w":
                got = value
            elif kind == "i":
                got = items[value[0]].on_signals(value[1], log)
            else:
                got = merge.on_signals(value, log)
            if got is not None:
                w.extend(got)

    out = []
    high = high_before = 0.0
    for t, evs in enumerate(ticks):
        high = max([high] + [e.ts for e in evs])
        w = Writes()
        outputs: list[Any] = []
        if markers and t:  # every shard's marker, and the tick it closes published, first
            for j in reversed(range(shards)):
                outputs += users[j].process(UserBatch([], t, "p", t, high_before), log)
            route(outputs, w)
            outputs = []
        for j in reversed(range(shards)):
            mine = [e for e in evs if user_shard_of(e.user, shards) == j]
            outputs += users[j].process(UserBatch(mine, t, "p", t if markers else t + 1, high), log)
        high_before = high
        route(outputs, w)
        out.append(w)
    end = Writes()
    outputs = []
    for u in users:
        outputs += u.process(UserBatch([], len(ticks), "p", 1 << 62, high), log)
        outputs += u.finish(log)
    route(outputs, end)
    for step in (*items, merge):
        got = step.finish(log)
        if got is not None:
            end.extend(got)
    return out, end, users, merge


def _docs(w: Writes) -> dict[str, Any]:
    return {u: codec.loads(v) for u, v in w.decisions}


def same_pages(a: dict[str, bytes], b: dict[str, bytes]) -> bool:
    """The same product pages: the same items in the same order, scores within their 0.001
    truncation step (see the exact test below)."""
    if set(a) != set(b):
        return False
    for item in a:
        pa, pb = codec.loads(a[item]), codec.loads(b[item])
        if pa["items"] != pb["items"] or pa["scores"] != pytest.approx(pb["scores"], abs=1.001e-3):
            return False
    return True


def test_two_user_shards_decide_as_one() -> None:
    s = Settings()
    evs = positioned(synthetic_stream(80, seed=11))
    ticks = _ticks(evs, 40)
    one, one_end = run_facade(ticks, s)
    two, two_end, users, merge = run_sharded(ticks, s, 2)
    assert all(u.users or u.idle for u in users)  # both shards own users
    assert merge.stats["examples"] > 10  # the ranker learned: decisions depend on the log
    assert len({d["model"] for w in one for d in _docs(w).values()}) > 2
    cv_hits = 0
    for t, (a, b) in enumerate(zip(one, two, strict=True)):
        da, db = _docs(a), _docs(b)
        assert da == db, f"tick {t}"
        cv_hits += sum("v" in d["home"]["why"] for d in da.values())
        assert same_pages(b.neighbours, a.neighbours), f"tick {t}"
        assert b.items == a.items, f"tick {t}"
        assert sorted(b.profiles) == sorted(a.profiles), f"tick {t}"
    assert cv_hits > 10
    assert sorted(two_end.profiles) == sorted(one_end.profiles)


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_a_tick_opened_by_a_marker_decides_as_one_closed_by_its_last_batch(mode: str) -> None:
    """A replay's last batch of a tick closes it; a live source opens the next tick with a
    marker. The two give the same decisions and profiles, and batch serving refreshes at the
    same place in the stream (the tick boundary, before the next tick's events)."""
    s = Settings()
    ticks = _ticks(positioned(synthetic_stream(80, seed=11)), 40)
    hooks: Callable[[], list[Any]] = (
        (lambda: [BatchServing(900.0, everyone=True)]) if mode == "batch" else list
    )
    closed, closed_end, _, _ = run_sharded(ticks, s, 2, hooks=hooks, mode=mode)
    marked, marked_end, _, _ = run_sharded(ticks, s, 2, markers=True, hooks=hooks, mode=mode)
    for t, (a, b) in enumerate(zip(closed, marked, strict=True)):
        assert _docs(a) == _docs(b), f"tick {t}"
        assert sorted(a.profiles) == sorted(b.profiles), f"tick {t}"
    assert sorted(closed_end.profiles) == sorted(marked_end.profiles)
    served = {tuple(d["home"]["items"]) for w in closed for d in _docs(w).values()}
    assert len(served) > 5  # lists change over the stream (in batch mode: several refreshes)


def test_two_item_shards_write_the_same_product_pages_as_one() -> None:
    s = Settings()
    ticks = _ticks(positioned(synthetic_stream(80, seed=11)), 40)
    one, _ = run_facade(ticks, s)
    two, _, _, _ = run_sharded(ticks, s, 2)
    for t, (a, b) in enumerate(zip(one, two, strict=True)):
        assert b.neighbours == a.neighbours, f"tick {t}"


def test_a_shard_with_no_events_still_lets_ticks_complete() -> None:
    s = Settings()
    ticks = [[view("a", "x", T0, "c"), view("a", "y", T0 + 1, "c")], [view("a", "z", T0 + 2)]]
    ticks = [positioned(t, f"t{n}") for n, t in enumerate(ticks)]
    users = {user_shard_of(e.user, 2) for t in ticks for e in t}
    assert len(users) == 1  # one shard gets only empty batches
    _, _, shards, merge = run_sharded(ticks, s, 2)
    assert merge.complete >= 1
    assert all(u.done >= 1 for u in shards)


# --- hooks --------------------------------------------------------------------------------------


def expected_targets(events: Sequence[Event], gap: float, keep: Callable[[Event], bool]) -> int:
    """Events naming an item that are not the first of their session (computed here)."""
    last: dict[str, float] = {}
    n = 0
    for e in events:
        prev = last.get(e.user)
        if e.item is not None and prev is not None and e.ts - prev <= gap and keep(e):
            n += 1
        last[e.user] = e.ts
    return n


@pytest.mark.parametrize("filtered", [False, True])
def test_evaluation_hook_scores_the_targets_is_target_selects(filtered: bool) -> None:
    warm = positioned(synthetic_stream(30, seed=1), "warm.jsonl")
    test = positioned(synthetic_stream(30, seed=2, start=T0 + 86_400.0), "test.jsonl")

    def is_target(e: Event) -> bool:
        return e.pos.rsplit(":", 1)[0] == "test.jsonl"

    s = Settings()
    hook = Evaluation("realtime", ks=(5, 20), is_target=is_target if filtered else None)
    eng = Engine(s, hooks=[hook], keep_idle=True)
    evs = warm + test
    written = [eng.process(t) for t in _ticks(evs, 50)]
    end = eng.finish()
    assert not [d for w in written for d in w.decisions]  # served per event, never stored
    [preq] = end.evals
    assert preq is hook.preq
    keep = is_target if filtered else (lambda e: True)
    n = expected_targets(evs, s.session_gap_s, keep)
    assert len(preq) == n > 100
    by_source = preq.targets_by_source()
    if filtered:
        assert by_source == {"test.jsonl": n}
    else:
        assert set(by_source) == {"warm.jsonl", "test.jsonl"}
    report = preq.report(n_boot=0)
    assert report["targets"] == n
    assert 0.0 < report["hr@20"]["value"] <= 1.0  # some targets were in the list served
    # learning does not depend on which events are scored
    assert eng.users.stats["learned"] > 0


def test_evaluation_hook_ranks_against_the_list_served_just_before() -> None:
    hook = Evaluation("popular", ks=(5,))
    eng = Engine(Settings(), hooks=[hook], keep_idle=True)
    eng.process(positioned([view(f"o{k}", it, T0, "c") for k in range(3) for it in "pqr"], "a"))
    # served after u's first event: the trending list p, q, r; then u views q (rank 1)
    eng.process(positioned([view("u", "x", T0 + 1, "c"), view("u", "q", T0 + 2, "c")], "b"))
    [preq] = eng.finish().evals
    ranks = dict(zip(preq.keys(), preq.categories().tolist(), strict=True))
    assert ranks["b:1"] == 1
    # the o users' second and third views were scored against an empty list (no model yet)
    assert sorted(ranks) == ["a:1", "a:2", "a:4", "a:5", "a:7", "a:8", "b:1"]
    assert {ranks[k] for k in ranks if k != "b:1"} == {preq.kmax}


def test_an_unknown_evaluation_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        Evaluation("nightly")


# --- layers -------------------------------------------------------------------------------------

DOMAIN = (
    "capture",
    "session",
    "candidates",
    "ranking",
    "decisions",
    "experiments",
    "evaluation",
    "engine",
)
FORBIDDEN = ("bytewax", "redis")


def _domain_modules() -> list[Path]:
    paths = sorted(p for pkg in DOMAIN for p in (SRC / pkg).rglob("*.py"))
    assert len(paths) > 30
    return paths


def imported_modules(source: str) -> list[str]:
    """Every module an ``import``/``from`` statement names, at any depth of the source, and
    every ``__import__("x")``/``import_module("x")`` with a literal name."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append(node.module)
                found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args:
            f = node.func
            name = (
                f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            )
            arg = node.args[0]
            if name in ("__import__", "import_module") and isinstance(arg, ast.Constant):
                found.append(str(arg.value))
    return found


def test_imported_modules_sees_every_kind_of_import() -> None:
    src = (
        "import a.b, c\nfrom d.e import f\nfrom . import g\n"
        "def h():\n    import redis\n    class K:\n        from bytewax import x\n"
        "importlib.import_module('redis.client')\n__import__('bytewax')\n"
    )
    got = imported_modules(src)
    for name in ("a.b", "c", "d.e", "redis", "bytewax", "redis.client"):
        assert name in got


def test_no_domain_module_imports_bytewax_or_redis() -> None:
    offenders = []
    for path in _domain_modules():
        for name in imported_modules(path.read_text(encoding="utf-8")):
            if name.split(".")[0] in FORBIDDEN:
                offenders.append(f"{path.relative_to(SRC.parent)}: {name}")
    assert not offenders, offenders


def test_importing_every_domain_module_loads_neither_bytewax_nor_redis() -> None:
    names = [
        ".".join(("rtp", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__")
        for p in _domain_modules()
    ]
    code = (
        "import importlib, sys\n"
        f"for n in {names!r}:\n    importlib.import_module(n)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'bytewax', 'redis'}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


def test_item_shard_forgets_items_untouched_for_the_ttl() -> None:
    log = LocalModelLog()
    items = ItemShard(Settings(item_ttl_s=1_000.0), 0, 1, user_shards=1)
    w0 = items.on_signals(
        _signals(0, 0, {0: [rec(T0, "f:0", "a"), rec(T0, "f:1", "b", ("a",))]}), log
    )
    assert w0 is not None and not w0.items_removed and set(items.catalogue) == {"a", "b"}
    w1 = items.on_signals(_signals(0, 1, {1: [rec(T0 + 5_000, "f:2", "c")]}), log)
    assert w1 is not None
    assert sorted(w1.items_removed) == ["a", "b"] and set(items.catalogue) == {"c"}
    assert len(items.cv) == 0
    assert (items.stats["items_evicted"], items.stats["lists_evicted"]) == (2, 2)


def test_item_and_global_steps_republish_what_views_may_not_have_read() -> None:
    log = LocalModelLog()
    items = ItemShard(Settings(), 0, 1, user_shards=1)
    g = GlobalMerge(Settings(), 1)
    items.on_signals(_signals(0, 0, {0: [rec(T0, "f:0", "a")]}), log)
    g.on_signals(_gsig(0, 0, {0: _examples(3, 1, 0)}), log)
    fresh = LocalModelLog()  # e.g. a restarted process's in-memory log
    items.republish(fresh)
    g.republish(fresh)
    assert fresh.read(["i0", GLOBAL], -1, 0) == log.read(["i0", GLOBAL], -1, 0)
    assert fresh.progress(["i0", GLOBAL]) == 0


# --- snapshots ----------------------------------------------------------------------------------


def _resumed(eng: Engine) -> Engine:
    """A copy of ``eng`` as Bytewax would resume it: every step pickled, the log's content
    carried over (a Redis model log survives a restart)."""
    copy = Engine(eng.settings)
    copy.users = pickle.loads(pickle.dumps(eng.users))
    copy.items = pickle.loads(pickle.dumps(eng.items))
    copy.merge = pickle.loads(pickle.dumps(eng.merge))
    copy.log._parts = pickle.loads(pickle.dumps(eng.log._parts))
    copy.log._progress = dict(eng.log._progress)
    copy.tick, copy.high = eng.tick, eng.high
    return copy


@pytest.mark.parametrize("evaluate", [False, True])
def test_steps_resumed_from_a_pickle_decide_as_the_originals(evaluate: bool) -> None:
    s = Settings()
    ticks = _ticks(positioned(synthetic_stream(60, seed=21)), 40)
    hooks = [Evaluation("realtime", ks=(20,))] if evaluate else []
    eng = Engine(s, hooks=hooks, keep_idle=evaluate)
    half = len(ticks) // 2
    for t in ticks[:half]:
        eng.process(t)
    copy = _resumed(eng)
    assert copy.users.loader is None and copy.users.clock is not None
    for n, t in enumerate(ticks[half:]):
        a, b = eng.process(t), copy.process(t)
        assert _docs(b) == _docs(a), f"tick {half + n}"
        assert sorted(b.profiles) == sorted(a.profiles)
    ea, eb = eng.finish(), copy.finish()
    assert sorted(eb.profiles) == sorted(ea.profiles)
    assert copy.view.version == eng.view.version != "lr-0"
    if evaluate:
        [pa], [pb] = ea.evals, eb.evals
        assert pb is not pa and len(pb) == len(pa) > 50
        assert pb.keys() == pa.keys() and list(pb.categories()) == list(pa.categories())


def test_the_command_line_starts_without_the_heavy_imports() -> None:
    """``rtp --help`` (and every command's parser) loads neither the experiments report's
    statistics stack (SciPy, statsmodels) nor the HTTP server (Starlette): they took ~2 s of
    every ``rtp`` start."""
    code = (
        "import sys; from rtp.tools.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('scipy', 'statsmodels', 'starlette', 'bytewax', 'river') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_the_user_step_gathers_sessions_for_the_edge_model_only_when_something_learns_it() -> None:
    """Without an edge step (an evaluation), finished sessions are not gathered for it; with
    one, every finished session reaches the edge model."""
    events = synthetic_stream(40, seed=5)
    ticks = _ticks(events, 200)
    bare = Engine(Settings())
    assert not bare.users.settings.edge_model and bare.edge is None
    with_edge = Engine(Settings(), edge=EdgeModel(min_support=0.0))
    for t in ticks:
        bare.process(t)
        with_edge.process(t)
    bare.finish()
    with_edge.finish()
    assert with_edge.edge is not None and with_edge.edge.sessions > 0
    assert with_edge.edge.model.sessions == with_edge.edge.sessions
    assert with_edge.edge.sessions == with_edge.users.stats["sessions"]
