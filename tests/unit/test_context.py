"""Context in the ranker: which visits have context values, that the crosses are learned and
scored as documented, and that they learn the synthetic stream's context effects."""

from __future__ import annotations

import itertools
import random

import pytest

from rtp.capture.enrich import Enricher
from rtp.config import Settings
from rtp.decisions.home import rank_home
from rtp.decisions.ranked import Rules
from rtp.engine.facade import Engine
from rtp.engine.log import GLOBAL, LocalModelLog
from rtp.engine.merge import GlobalMerge
from rtp.engine.users import new_view
from rtp.ranking.context import FIELDS, ContextFields, context_values, cross_keys
from rtp.ranking.ranker import FEATURES
from rtp.ranking.score import cross_term
from rtp.tools.synth import generate
from tests.builders import T0, view
from tests.unit.test_decide import _models, _reference, _sessions


def _visit(user: str, **context: object) -> list:
    """Two product views of one visit; the first carries ``context`` as enrichment left it."""
    first = view(user, "shoes1", T0, "shoes", 20.0)
    for name, value in context.items():
        setattr(first, name, value)
    return [first, view(user, "shoes2", T0 + 30, "shoes", 25.0)]


def test_a_visit_without_context_has_no_context_values() -> None:
    """A data set of bare item views (Taobao, DIGINETICA) has a clock but nothing of the visit:
    no value, so no cross and no cost."""
    eng = Engine(Settings())
    eng.process(_visit("u1", hour=20, weekday=5))
    assert eng.users.context_of(eng.users.users["u1"]) == ()


def test_a_visit_with_context_has_its_values() -> None:
    eng = Engine(Settings(rank_context=",".join(FIELDS)))
    eng.process(_visit("u1", device="mobile", referral="social", channel="app", country="FR",
                       hour=21))  # fmt: skip
    values = eng.users.context_of(eng.users.users["u1"])
    assert values[0] == "d:mobile" and "h:evening" in values and "r:social" in values
    assert "c:app" in values and "g:FR" in values
    assert sum(v.startswith("w:") for v in values) == 1
    eng = Engine(Settings())  # the default fields: device, hour band, referral
    eng.process(_visit("u1", device="mobile", referral="social", channel="app", hour=21))
    assert eng.users.context_of(eng.users.users["u1"]) == ("d:mobile", "h:evening", "r:social")


def test_fields_left_out_give_no_values_and_none_gives_nothing() -> None:
    eng = Engine(Settings(rank_context="device,referral"))
    eng.process(_visit("u1", device="mobile", referral="social", channel="app", hour=21))
    assert eng.users.context_of(eng.users.users["u1"]) == ("d:mobile", "r:social")
    eng = Engine(Settings(rank_context="none"))
    eng.process(_visit("u1", device="mobile", referral="social", hour=21))
    assert eng.users.context_of(eng.users.users["u1"]) == ()
    with pytest.raises(ValueError, match="unknown context"):
        ContextFields.parse("device,moon")


def test_a_user_who_opted_out_has_no_context_values() -> None:
    eng = Engine(Settings())
    events = _visit("u1", device="mobile", referral="social", hour=21)
    events[0].dnp = True
    eng.process(events)
    assert eng.users.context_of(eng.users.users["u1"]) == ()


def test_crosses_are_learned_for_the_context_that_chose() -> None:
    """Mobile visits choose budget items over premium ones, desktop visits the opposite: the
    global step learns the four crosses with those signs and publishes them."""
    merge = GlobalMerge(Settings(), 1)
    rng = random.Random(3)
    examples = []
    for n in range(400):
        dense = tuple(rng.random() for _ in FEATURES)
        other = tuple(rng.random() for _ in FEATURES)
        low, high = ("shoes", "$low"), ("shoes", "$high")
        ctx, keys = (("d:mobile",), (low, high)) if n % 2 else (("d:desktop",), (high, low))
        examples.append((T0 + n, f"p{n}", 0, dense, (other,), ctx, keys, 1.0))
    merge.pending[0] = (examples, [])
    log = LocalModelLog()
    merge._complete(0, log)
    x = merge.ranker.weights_of(["d:mobile|$low", "d:mobile|$high", "d:desktop|$low",
                                 "d:desktop|$high"])  # fmt: skip
    assert x["d:mobile|$low"] > 0.1 > -0.1 > x["d:mobile|$high"]
    assert x["d:desktop|$high"] > 0.1 > -0.1 > x["d:desktop|$low"]
    m = new_view(Settings())
    ((_tick, _writer, part),) = log.read([GLOBAL], -1, 0)
    m.apply_global(part)
    assert m.cross["d:mobile"]["$low"] == pytest.approx(x["d:mobile|$low"])
    assert m.cross["d:desktop"]["$high"] == pytest.approx(x["d:desktop|$high"])


@pytest.mark.parametrize("crosses", ["price", "cat", "cat,price"])
def test_rank_home_scores_equal_the_reference_plus_the_context_term(crosses: str) -> None:
    """With cross weights in the view, every ranked score is the documented linear score plus
    the sum of the candidate's crosses times the visit's scale (band-only crosses take their own
    path in the scoring code)."""
    m = _models()
    m.context = ContextFields.parse(",".join(FIELDS), crosses)
    cats = sorted({c for c, _b in m.pop.keys.values() if c is not None})
    rng = random.Random(11)
    ctx = ("d:mobile", "h:evening", "r:social")
    m.apply_global({"x": {f"{v}|{w}": rng.uniform(-1.0, 1.0)
                          for v in ctx for w in (*cats, "$low", "$mid", "$high")}})  # fmt: skip
    rules = Rules()
    checked = moved = 0
    for u in _sessions(1):
        ref = _reference(u, m, rules)
        home = rank_home(u, m, rules, ctx=ctx)
        plain = rank_home(u, m, rules)
        moved += home.items != plain.items
        for it, s, why in home:
            if why == "ex":
                continue
            expected = ref[it] + cross_term(ctx, m, u.session.n, it)
            assert s == pytest.approx(int(expected * 1000) / 1000, abs=1.5e-3), (u.uid, it)
            checked += 1
    assert checked > 200 and moved > 0


def test_cross_keys_cover_category_and_band() -> None:
    assert cross_keys(("d:mobile",), ("shoes", None)) == ["d:mobile|shoes"]
    assert cross_keys(("d:mobile",), ("shoes", "$low"), cats=False) == ["d:mobile|$low"]
    assert context_values(ContextFields(), "mobile", None, None, None, -1, -1) == ("d:mobile",)


def test_the_ranker_learns_the_synthetic_streams_context_effects() -> None:
    """On ``rtp.tools.synth``'s stream casual visits (a phone, from social media) favour budget
    items and desktop visits premium ones: after a replay the learned crosses say so."""
    eng = Engine(Settings())
    enricher = Enricher()
    events = list(generate(1500, seed=2))
    for e in events:
        enricher.enrich(e)
    for _t, batch in itertools.groupby(events, key=lambda e: int(e.ts // 600)):
        eng.process(list(batch))
    cross = eng.view.cross

    def w(value: str, what: str) -> float:
        return cross.get(value, {}).get(what, 0.0)

    assert w("d:mobile", "$low") - w("d:mobile", "$high") > w("d:desktop", "$low") - w(
        "d:desktop", "$high"
    )
    assert w("r:social", "$low") - w("r:social", "$high") > w("r:search", "$low") - w(
        "r:search", "$high"
    )


def test_a_target_the_list_missed_is_still_a_ranking_example() -> None:
    """The ranker learns from every target that was among the candidates, served or not (it
    never saw a positive it ranked below the list when it learned from hits only)."""
    from rtp.candidates.generate import candidates
    from tests.builders import synthetic_stream

    eng = Engine(Settings())
    eng.process(synthetic_stream(300, seed=4))
    shard = eng.users
    learned = 0
    for u in list(shard.users.values()) + list(shard.idle.values()):
        served = u.serving.served
        if not served or not u.session.n:
            continue
        missed = [i for i in candidates(u, eng.view, u.blended_categories()) if i not in served]
        if not missed:
            continue
        before = len(shard._examples)
        e = view(u.uid, missed[0], u.session.last + 1.0, pos=f"t:{u.uid}")
        shard._test(u, e, missed[0])
        assert len(shard._examples) == before + 1
        assert shard._examples[-1][1] == f"t:{u.uid}"
        learned += 1
    assert learned > 10
