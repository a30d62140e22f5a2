"""Stage two: the River ranker's model contract, and the model version in decisions."""

from __future__ import annotations

import pickle
import random

import orjson
import pytest

from rtp.config import Settings
from rtp.engine.facade import Engine
from rtp.ranking.ranker import FEATURES, PRIOR, PRIOR_INTERCEPT, OnlineRanker
from tests.builders import T0, decisions, view


def _x(rng: random.Random) -> dict[str, float]:
    return {f: rng.random() for f in FEATURES}


def _stream(seed: int, n: int, signal: str | None = None) -> list[tuple[dict, list[dict]]]:
    """(chosen, others) served lists; with ``signal``, only the chosen item has it."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        chosen = _x(rng)
        others = [_x(rng) for _ in range(6)]
        if signal is not None:
            chosen[signal] = 1.0
            for o in others:
                o[signal] = 0.0
        out.append((chosen, others))
    return out


def _weights(r: OnlineRanker) -> dict[str, float]:
    return {f: float(r.model._weights.get(f, 0.0)) for f in FEATURES} | {
        "_intercept": float(r.model.intercept)
    }


def test_a_fresh_ranker_starts_from_the_prior() -> None:
    r = OnlineRanker(seed=1)
    assert r.freeze() == tuple(PRIOR[f] for f in FEATURES)
    zero = dict.fromkeys(FEATURES, 0.0)
    assert r.score(zero) == pytest.approx(PRIOR_INTERCEPT)
    assert r.version == "lr-0"


def test_clone_is_untrained_with_the_same_hyper_parameters() -> None:
    r = OnlineRanker(lr=0.05, l2=1e-3, seed=9)
    for chosen, others in _stream(0, 50):
        r.learn_choice(chosen, others)
    c = r.clone()
    assert (c.lr, c.l2, c.seed) == (0.05, 1e-3, 9)
    assert c.updates == 0
    fresh = OnlineRanker(lr=0.05, l2=1e-3, seed=9)
    assert _weights(c) == _weights(fresh)
    assert _weights(c) != _weights(r)
    # a clone is independent of the original
    c.learn_one(_x(random.Random(1)), True)
    assert r.updates == 150 and c.updates == 1


def test_pickle_round_trip_gives_identical_scores_and_learning() -> None:
    r = OnlineRanker(seed=4)
    stream = _stream(2, 80)
    for chosen, others in stream[:40]:
        r.learn_choice(chosen, others)
    r.freeze()
    q = pickle.loads(pickle.dumps(r))
    rng = random.Random(5)
    for _ in range(20):
        x = _x(rng)
        assert q.score(x) == r.score(x)
        assert q.predict_proba_one(x) == r.predict_proba_one(x)
    assert q.frozen == r.frozen and q.version == r.version
    # the sampler state travels too: both keep learning identically
    for chosen, others in stream[40:]:
        r.learn_choice(chosen, others)
        q.learn_choice(chosen, others)
    assert _weights(q) == _weights(r)


def test_same_seed_same_stream_same_weights() -> None:
    stream = _stream(7, 200)
    a, b, c = OnlineRanker(seed=3), OnlineRanker(seed=3), OnlineRanker(seed=4)
    for chosen, others in stream:
        a.learn_choice(chosen, others)
        b.learn_choice(chosen, others)
        c.learn_choice(chosen, others)
    assert _weights(a) == _weights(b)
    assert a.freeze() == b.freeze()
    # the seed matters (negatives are sampled), so the check above is not vacuous
    assert _weights(a) != _weights(c)


def test_a_feature_that_predicts_the_choice_gains_weight() -> None:
    r = OnlineRanker(seed=0)
    before = r.freeze()[FEATURES.index("price_fit")]
    for chosen, others in _stream(1, 400, signal="price_fit"):
        r.learn_choice(chosen, others)
    after = r.freeze()
    i = FEATURES.index("price_fit")
    assert after[i] > before + 0.5
    # the features that are noise move much less than the signal
    noise = [abs(after[j] - PRIOR[f]) for j, f in enumerate(FEATURES) if f != "price_fit"]
    assert max(noise) < after[i] - before


def test_learn_one_and_score_follow_rivers_protocol() -> None:
    r = OnlineRanker(seed=0)
    x = dict.fromkeys(FEATURES, 0.0)
    x["cv"] = 1.0
    s0 = r.score(x)
    assert r.score(x) == s0  # scoring does not learn
    r.learn_one(x, True)
    assert r.score(x) > s0
    assert r.updates == 1
    assert 0.0 < r.predict_proba_one(x) < 1.0


def test_engine_decisions_record_the_model_version() -> None:
    eng = Engine(Settings())
    # popular items first, so the user is served a list that includes them
    eng.process([view(f"o{k}", it, T0, "c") for k in range(3) for it in ("p", "q", "r")])
    d = decisions(eng.process([view("u", "a", T0 + 1, "c")]))["u"]
    assert d["model"] == "lr-0"
    served = d["home"]["items"]  # stored as ids (scores beside them)
    assert "p" in served
    # the user now views an item that was served: a ranking example, learned by the global
    # step at the end of this tick; this tick's decision still uses the weights before it
    w2 = eng.process([view("u", "p", T0 + 2, "c")])
    d2 = decisions(w2)["u"]
    assert eng.users.stats["learned"] == 1
    assert eng.merge.stats["examples"] == 1
    r = eng.merge.ranker
    assert r.updates >= 2  # one positive, some negatives
    assert r.version == f"lr-{r.updates}"
    assert d2["model"] == "lr-0"
    # the next tick decides with the new weights, and says so
    d3 = decisions(eng.process([view("u", "unlisted", T0 + 3, "c")]))["u"]
    assert eng.users.stats["learned"] == 1  # nothing served was chosen: nothing learned
    assert d3["model"] == r.version == eng.view.version
    assert eng.view.weights == r.frozen != tuple(PRIOR[f] for f in FEATURES)
    meta = dict(eng.finish().meta)  # finish forces the stats out
    assert orjson.loads(meta[f"stats:{eng.users.run}:u{eng.users.shard}"])["model"] == r.version
    ranker = orjson.loads(dict(w2.meta)["ranker"])  # written by the global step with the tick
    assert ranker["version"] == r.version
    assert ranker["weights"] == dict(zip(FEATURES, r.frozen, strict=True))


@pytest.mark.parametrize("kind", ["lr", "pa", "prior"])
def test_every_ranker_kind_keeps_the_contract(kind: str) -> None:
    import pickle

    from rtp.ranking.ranker import FEATURES, OnlineRanker

    r = OnlineRanker(seed=4, kind=kind)
    assert r.clone().kind == kind and r.clone().updates == 0
    x = dict.fromkeys(FEATURES, 0.0)
    x["cv"] = 1.0
    before = r.freeze()
    for _ in range(50):
        r.learn_choice(x, [dict.fromkeys(FEATURES, 0.0)])
    after = r.freeze()
    if kind == "prior":
        assert after == before  # the control never learns
    else:
        assert after[FEATURES.index("cv")] > before[FEATURES.index("cv")]
    assert pickle.loads(pickle.dumps(r)).freeze() == after
    assert r.version == f"{kind}-{r.updates}"


def test_an_unknown_ranker_kind_is_refused() -> None:
    from rtp.ranking.ranker import OnlineRanker

    with pytest.raises(ValueError, match="not one of"):
        OnlineRanker(kind="deep")
