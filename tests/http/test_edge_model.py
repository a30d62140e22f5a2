"""The edge model learner (rtp.decisions.edge): pure, deterministic, event time only, bounded."""

from __future__ import annotations

import gzip
import pickle
import random

import orjson
import pytest

from rtp.decisions.edge import EdgeModel, daypart, empty_document, match, reason_for, signals_of

T = 1_730_700_000.0
SEARCH_MOBILE_EVENING = {"referral": "search", "device": "mobile", "hour": 20, "country": "gb"}


def sessions(
    seed: int, n: int = 400
) -> list[tuple[dict[str, object], dict[str, float], list[str], float]]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        referral = rng.choice(["search", "social", "direct", "email"])
        device = rng.choice(["mobile", "desktop"])
        hour = rng.randrange(24)
        favourite = "furniture" if referral == "search" and device == "mobile" else "books"
        cats = {favourite: 3.0, rng.choice(["lamps", "toys"]): 1.0}
        items = [f"{favourite}-{rng.randrange(5)}" for _ in range(3)]
        signals = {"referral": referral, "device": device, "hour": hour, "campaign": None}
        out.append((signals, cats, items, T + k * 60.0))
    return out


def fed(seed: int = 1, **kw: float) -> EdgeModel:
    m = EdgeModel(**kw)  # type: ignore[arg-type]
    for s in sessions(seed):
        m.observe(*s)
    return m


def test_dayparts() -> None:
    assert [daypart(h) for h in (0, 5, 6, 11, 12, 17, 18, 23)] == [
        "night", "night", "morning", "morning", "afternoon", "afternoon", "evening", "evening",
    ]  # fmt: skip
    assert signals_of({"hour": 20, "device": "Mobile", "referral": "", "country": "gb"}) == {
        "device": "mobile",
        "daypart": "evening",
        "country": "GB",
    }
    assert signals_of({"hour": True, "device": "unknown", "daypart": "night"}) == {
        "daypart": "night"
    }


def test_learns_what_a_context_goes_on_to_view() -> None:
    doc = fed().document()
    rule = match(doc, {"referral": "search", "device": "mobile", "hour": 20})
    assert rule is not None and rule["hero"] == "category:furniture"
    assert rule["when"] == {"referral": "search", "device": "mobile", "daypart": "evening"}
    assert rule["reason"] == "Popular with visitors from search on mobile this evening"
    assert rule["message"] == "Welcome! Discover our furniture"
    assert all(i.startswith("furniture-") for i in rule["items"])
    other = match(doc, {"referral": "direct", "device": "desktop", "hour": 9})
    assert other is not None and other["hero"] == "category:books"
    # an unseen context falls back to a more general rule (here: everyone's)
    anyone = match(doc, {"referral": "paid", "device": "tablet", "hour": 3})
    assert anyone is not None and anyone["when"] == {"daypart": "night"}
    assert match(doc, {}) == next(r for r in doc["rules"] if r["when"] == {})


def test_rules_are_ordered_most_specific_first() -> None:
    doc = fed().document()
    sizes = [len(r["when"]) for r in doc["rules"]]
    assert sizes == sorted(sizes, reverse=True)
    assert doc["rules"][-1]["when"] == {}
    assert all(r["support"] >= 3.0 for r in doc["rules"])


def test_deterministic_and_versioned() -> None:
    a, b = fed(1).document(), fed(1).document()
    assert orjson.dumps(a) == orjson.dumps(b)
    c = fed(2).document()
    assert a["version"] != c["version"] and a["v"] == 1 and a["kind"] == "rtp.edge"
    assert a["ts"] == T + 399 * 60.0  # event time, never the wall clock


def test_decays_in_event_time() -> None:
    m = EdgeModel(half_life_s=3_600.0, min_support=0.0)
    for k in range(8):
        m.observe({"device": "mobile"}, ["books"], ["b"], T + k)
    old = match(m.document(), {"device": "mobile"})
    assert old is not None and old["support"] == pytest.approx(8.0, rel=1e-3)
    for k in range(3):  # ten half-lives later, three sessions outweigh the eight old ones
        m.observe({"device": "mobile"}, ["garden"], ["g"], T + 36_000.0 + k)
    rule = match(m.document(), {"device": "mobile"})
    assert rule is not None and rule["categories"][0] == "garden"
    assert rule["support"] == pytest.approx(3.0 + 8.0 / 1024, rel=1e-2)
    # a late session (older than the rule) counts for its decayed weight only
    m.observe({"device": "mobile"}, ["books"], ["b"], T + 1)
    assert match(m.document(), {"device": "mobile"})["categories"][0] == "garden"  # type: ignore[index]


def test_bounded_by_construction() -> None:
    rng = random.Random(3)
    m = EdgeModel(min_support=0.0, max_rules=64, max_entries=16)
    long = "x" * 300
    for k in range(3_000):
        signals = {
            "referral": rng.choice(["search", "social", "direct", "email", "paid", "other"]),
            "device": rng.choice(["mobile", "desktop", "tablet"]),
            "hour": rng.randrange(24),
            "country": f"c{rng.randrange(60)}",
            "campaign": f"{long}{rng.randrange(500)}",
        }
        cats = {f"{long}cat{rng.randrange(400)}": rng.random() + 0.1 for _ in range(5)}
        items = [f"{long}item{rng.randrange(10_000)}" for _ in range(8)]
        m.observe(signals, cats, items, T + k)
    assert len(m.rules) <= 64 + 16
    assert all(len(r.cats) <= 32 and len(r.items) <= 32 for r in m.rules.values())
    doc = m.document()
    raw = orjson.dumps(doc)
    assert len(gzip.compress(raw)) <= 8_192
    assert len(doc["rules"]) <= 128
    assert all(len(i) <= 64 for r in doc["rules"] for i in r["items"] + r["categories"])


def test_empty_model_and_nothing_learned() -> None:
    doc = empty_document()
    assert doc["rules"] == [] and doc["v"] == 1
    assert match(doc, SEARCH_MOBILE_EVENING) is None
    m = EdgeModel()
    m.observe(SEARCH_MOBILE_EVENING, {}, [], T)  # a session that viewed nothing teaches nothing
    assert m.sessions == 0 and m.document()["rules"] == []


def test_merge_is_observing_both() -> None:
    a, b, both = EdgeModel(), EdgeModel(), EdgeModel()
    for n, s in enumerate(sessions(5)):
        (a if n % 2 else b).observe(*s)
        both.observe(*s)
    a.merge(b)
    da, db = a.document(), both.document()
    assert [r["when"] for r in da["rules"]] == [r["when"] for r in db["rules"]]
    assert [r["categories"] for r in da["rules"]] == [r["categories"] for r in db["rules"]]
    for x, y in zip(da["rules"], db["rules"], strict=True):
        assert x["support"] == pytest.approx(y["support"], rel=1e-6)


def test_pickles() -> None:
    m = fed()
    assert orjson.dumps(pickle.loads(pickle.dumps(m)).document()) == orjson.dumps(m.document())


def test_reasons() -> None:
    assert reason_for({}) == "Popular with our visitors"
    assert reason_for({"campaign": "winter", "country": "GB", "daypart": "night"}) == (
        "Popular with visitors from our winter campaign in GB tonight"
    )
    assert reason_for({"referral": "paid", "device": "tablet"}) == (
        "Popular with visitors from our ads on tablets"
    )


def test_top_is_the_head_of_the_whole_table_sorted() -> None:
    """``_top`` sorts only the entries at or above the n-th heaviest: the same list, ties by
    name, as sorting the whole table."""
    from rtp.decisions.edge import _top

    rng = random.Random(11)
    for _ in range(300):
        size = rng.randrange(0, 80)
        table = {f"k{rng.randrange(1_000)}": float(rng.choice([1, 2, 3, rng.random()]))
                 for _ in range(size)}  # fmt: skip
        for n in (0, 1, 3, 4, 32, 100):
            whole = [k for k, _ in sorted(table.items(), key=lambda kv: (-kv[1], kv[0]))][:n]
            assert _top(table, n) == whole


def test_a_document_between_lessons_changes_nothing() -> None:
    """The document keeps each rule's published lists until the rule learns again: a model asked
    for its document after every session publishes, at the end, what one asked once does; so
    does one pickled half way (the kept lists are not snapshotted)."""
    once, often = EdgeModel(min_support=1.0), EdgeModel(min_support=1.0)
    docs = []
    for k, s in enumerate(sessions(8)):
        once.observe(*s)
        often.observe(*s)
        docs.append(orjson.dumps(often.document()))
        if k == 200:
            often = pickle.loads(pickle.dumps(often))
            assert not often._tops
    assert orjson.dumps(once.document()) == docs[-1]
    assert len(set(docs)) > 100  # it did keep learning
