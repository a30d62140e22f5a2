"""Session-kNN baselines: behaviour on synthetic streams, prequential protocol, real samples."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from rtp.capture.events import Event
from rtp.evaluation.baselines import STAN, SessionKNN, run_baseline, source_is
from rtp.evaluation.metrics import EvalRecord, Prequential, paired_lift
from tests.conftest import shared_sample

DAY = 86_400.0
T0 = 1_500_000_000.0


def models() -> list[SessionKNN | STAN]:
    return [SessionKNN(), STAN()]


def learn(
    model: SessionKNN | STAN,
    sessions: Sequence[Sequence[str]],
    t0: float = T0,
    prefix: str = "past",
) -> None:
    for n, items in enumerate(sessions):
        for j, item in enumerate(items):
            model.observe(f"{prefix}{n}", item, t0 + n * 60 + j)


def past_sessions(n: int = 60) -> list[list[str]]:
    """B always follows A; A is also seen (less often) before C; plenty of noise items."""
    out = [[f"pre{i}", "A", "B", f"post{i}"] for i in range(n)]
    out += [["A", "C", f"x{i}"] for i in range(n // 4)]
    out += [[f"n{i}", f"m{i}"] for i in range(n)]
    return out


@pytest.mark.parametrize("model", models(), ids=["sknn", "stan"])
def test_b_after_a_is_first(model: SessionKNN | STAN) -> None:
    learn(model, past_sessions())
    assert model.recommend(["A"], n=5, exclude={"A"})[0] == "B"
    # reminders: the session's own items first, most recent first, then the learned successor
    assert model.recommend(["A"], n=5)[:2] == ["A", "B"]
    assert model.recommend(["A", "Z"], n=5)[:3] == ["Z", "A", "B"]
    model.remind = False  # neighbourhood scores only: Z is in no neighbour, A in all of them
    assert model.recommend(["A", "Z"], n=5)[:2] == ["A", "B"]
    assert "Z" not in model.recommend(["A", "Z"], n=50)
    assert model.recommend(["unknown"], n=5, exclude={"unknown"}) == []


@pytest.mark.parametrize("model", models(), ids=["sknn", "stan"])
def test_prequential_b_after_a_at_rank_0(model: SessionKNN | STAN) -> None:
    warm = [
        Event("product_view", f"w{n}", T0 + n * 100 + j, item, session=f"w{n}", pos=f"w:{n}.{j}")
        for n, items in enumerate(past_sessions())
        for j, item in enumerate(items)
    ]
    t1 = T0 + 10 * DAY
    stream = [
        Event("product_view", f"u{n}", t1 + n * 100 + j, item, session=f"s{n}", pos=f"s:{n}.{j}")
        for n in range(20)
        for j, item in enumerate(["A", "B"])
    ]
    result = run_baseline(model, stream, warmup=warm, exclude_current=True)
    assert len(result) == 20  # one target (B) per session
    r = result.report(n_boot=100)
    assert r["hr@5"]["value"] == 1.0
    assert r["mrr@5"]["value"] == 1.0
    assert result.keys() == [f"s:{n}.1" for n in range(20)]


def test_stan_prefers_items_near_the_shared_one() -> None:
    sessions = [["Y", f"p{i}", f"q{i}", f"r{i}", "A", "B"] for i in range(30)]
    stan, knn = STAN(), SessionKNN()
    learn(stan, sessions)
    learn(knn, sessions)
    recs = stan.recommend(["A"], n=10, exclude={"A"})
    assert recs.index("B") < recs.index("Y")
    scores_equal = knn.recommend(["A"], n=10, exclude={"A"})
    assert scores_equal[:2] == ["Y", "B"]  # kNN ignores order: a tie, kept in learned order


def test_stan_prefers_recent_neighbours() -> None:
    old = [["A", "C", f"o{i}"] for i in range(30)]
    new = [["A", "B", f"n{i}"] for i in range(20)]
    stan, knn = STAN(), SessionKNN()
    for model in (stan, knn):
        learn(model, old, t0=T0, prefix="old")
        learn(model, new, t0=T0 + 60 * DAY, prefix="new")
    now = T0 + 61 * DAY
    assert stan.recommend(["A"], n=3, exclude={"A"}, now=now)[0] == "B"
    assert knn.recommend(["A"], n=3, exclude={"A"}, now=now)[0] == "C"  # more, older sessions


@pytest.mark.parametrize("model", models(), ids=["sknn", "stan"])
def test_current_session_is_not_its_own_neighbour(model: SessionKNN | STAN) -> None:
    model.remind = False
    model.observe("s1", "A", T0)
    model.observe("s1", "B", T0 + 1)
    assert model.recommend(["A", "B"], session_id="s1") == []
    assert set(model.recommend(["A", "B"])) == {"A", "B"}
    assert model.sessions == 1


def test_sample_size_keeps_most_recent_sessions() -> None:
    model = SessionKNN(k=5, sample_size=5, remind=False)
    for n in range(20):  # C follows A in old sessions, D in the last five
        model.add_session(["A", "C" if n < 15 else "D"], T0 + n)
    assert model.recommend(["A"], n=2, exclude={"A"}) == ["D"]
    other = SessionKNN(k=10, sample_size=5, remind=False)
    for n in range(10):  # E sessions are older than A sessions: only the latter are sampled
        other.add_session(["E", "C"] if n < 5 else ["A", "D"], T0 + n)
    assert other.recommend(["E", "A"], n=3, exclude={"E", "A"}) == ["D"]


class Recorder:
    """A fake model that logs the protocol's calls."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str, tuple[str, ...]]] = []

    def observe(self, session_id: str, item: str, ts: float) -> None:
        self.log.append(("observe", session_id, (item,)))

    def recommend(
        self,
        session_items: Sequence[str],
        n: int = 20,
        exclude: object = None,
        *,
        session_id: str | None = None,
        now: float | None = None,
    ) -> list[str]:
        self.log.append(("recommend", session_id or "", tuple(session_items)))
        return ["b", "a", "c"]


def test_run_baseline_protocol_and_gap_sessions() -> None:
    ev = [
        Event("product_view", "u1", T0, "w", pos="0"),  # warm-up
        Event("product_view", "u1", T0 + 10, "a", pos="1"),  # same session as the warm-up
        Event("search", "u1", T0 + 15, None, query="shoes", pos="2"),  # no item: ignored
        Event("add_to_cart", "u1", T0 + 20, "a", pos="3"),  # re-view of a
        Event("product_view", "u2", T0 + 30, "c", pos="4"),  # u2's first event: no target
        Event("product_view", "u1", T0 + 5000, "b", pos="5"),  # gap > 1800 s: new session
        Event("product_view", "u1", T0 + 5010, "c", pos="6"),
        Event("forget", "u1", 0.0, pos="7"),  # control events are skipped
    ]
    model = Recorder()
    result = run_baseline(model, ev[1:], ks=(1, 3), warmup=ev[:1])
    assert result.keys() == ["1", "3", "6"]
    assert model.log == [
        ("observe", "u:u1#1", ("w",)),
        ("recommend", "u:u1#1", ("w",)),  # tested before ...
        ("observe", "u:u1#1", ("a",)),  # ... trained
        ("recommend", "u:u1#1", ("w", "a")),
        ("observe", "u:u1#1", ("a",)),
        ("observe", "u:u2#1", ("c",)),
        ("observe", "u:u1#2", ("b",)),
        ("recommend", "u:u1#2", ("b",)),
        ("observe", "u:u1#2", ("c",)),
    ]
    r = result.report(n_boot=0)
    assert r["targets"] == 3
    assert r["reviews"]["targets"] == 1  # pos 3
    assert r["cart_purchase"]["targets"] == 1
    assert r["hr@1"]["value"] == pytest.approx(0.0)  # a, a, c never first
    assert r["mrr@3"]["value"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 3) / 3)


def test_is_target_learns_everything_and_scores_only_targets() -> None:
    ev = [
        Event("product_view", "u1", T0, "w", pos="warm.jsonl:1"),
        Event("product_view", "u1", T0 + 10, "a", pos="test.jsonl:1"),  # same session as w
        Event("product_view", "u2", T0 + 12, "z", pos="warm.jsonl:2"),
        Event("product_view", "u2", T0 + 14, "y", pos="warm.jsonl:3"),  # learned, not scored
        Event("product_view", "u1", T0 + 20, "c", pos="test.jsonl:2"),
    ]
    model = Recorder()
    result = run_baseline(model, ev, ks=(1, 3), is_target=source_is("test.jsonl"))
    assert result.keys() == ["test.jsonl:1", "test.jsonl:2"]
    assert result.targets_by_source() == {"test.jsonl": 2}
    assert [entry for entry in model.log if entry[0] == "recommend"] == [
        ("recommend", "u:u1#1", ("w",)),
        ("recommend", "u:u1#1", ("w", "a")),
    ]
    assert [entry[2] for entry in model.log if entry[0] == "observe"] == [
        ("w",), ("a",), ("z",), ("y",), ("c",)
    ]  # fmt: skip


def test_is_target_counts_targets_as_rtp_does() -> None:
    """A landing page view or a search starts the session: the first item after it is a target
    (the model has no item to go on: a miss), as in rtp's engine."""
    ev = [
        Event("page_view", "u1", T0, pos="t.jsonl:1"),  # landing, no item
        Event("product_view", "u1", T0 + 10, "a", pos="t.jsonl:2"),  # target: a miss
        Event("search", "u1", T0 + 1_000, None, query="x", pos="t.jsonl:3"),  # extends it
        Event("product_view", "u1", T0 + 2_500, "b", pos="t.jsonl:4"),  # 1500 s gap: same one
        Event("product_view", "u2", T0 + 20, "a", pos="t.jsonl:5"),  # first of u2: no target
        Event("dnp", "u2", T0 + 21, pos="t.jsonl:6"),  # control: not an event of a session
        Event("product_view", "u2", T0 + 22, "b", pos="t.jsonl:7"),
    ]
    model = Recorder()
    result = run_baseline(model, ev, ks=(3,), is_target=lambda e: True)
    assert result.keys() == ["t.jsonl:2", "t.jsonl:4", "t.jsonl:7"]
    assert result.categories().tolist() == [1, 0, 0]  # the recorder always lists b, a, c
    assert ("recommend", "u:u1#1", ()) in model.log  # asked with no session item
    knn = run_baseline(SessionKNN(), ev, ks=(3,), is_target=lambda e: True)
    assert knn.keys() == result.keys()
    assert knn.categories().tolist()[0] == 3  # kNN has nothing to go on: a miss
    # the older form skips events without an item: the search does not extend the session
    assert run_baseline(Recorder(), ev, ks=(3,)).keys() == ["t.jsonl:7"]


@pytest.mark.parametrize("make", [SessionKNN, STAN], ids=["sknn", "stan"])
def test_is_target_equals_the_warmup_form(make: type[SessionKNN] | type[STAN]) -> None:
    """One stream with a predicate scores exactly what warm-up + test scores."""
    sessions = past_sessions(40)
    stream = [
        Event("product_view", f"u{n}", T0 + n * 100 + j, item, session=f"s{n}",
              pos=f"{'warm' if n < 60 else 'test'}.jsonl:{n}.{j}")
        for n, items in enumerate(sessions)
        for j, item in enumerate(items)
    ]  # fmt: skip
    warm = [e for e in stream if e.pos.startswith("warm")]
    test = [e for e in stream if e.pos.startswith("test")]
    old = run_baseline(make(), test, warmup=warm)
    new = run_baseline(make(), stream, is_target=source_is("test.jsonl"))
    assert new.keys() == old.keys() and len(new) > 20
    assert new.categories().tolist() == old.categories().tolist()
    assert new.targets_by_source() == {"test.jsonl": len(old)}
    assert run_baseline(make(), stream, is_target=lambda e: False).keys() == []


# --- real samples -------------------------------------------------------------------------------


def read_diginetica(path: Path) -> list[Event]:
    """A small local reader: views in replay order (eventdate, session, timeframe)."""
    events = []
    with path.open(encoding="utf-8") as f:
        next(f)
        for lineno, line in enumerate(f, start=2):
            session, user, item, timeframe, day = line.rstrip("\n").split(";")
            midnight = datetime.combine(date.fromisoformat(day), datetime.min.time(), timezone.utc)
            ts = midnight.timestamp() + int(timeframe) / 1000.0
            anonymous = user == "NA"
            events.append(
                Event(
                    "product_view",
                    "s" + session if anonymous else user,
                    ts,
                    item,
                    session=session,
                    anonymous=anonymous,
                    pos=f"{path.name}:{lineno}",
                )
            )
    events.sort(key=lambda e: (e.ts // DAY, int(e.session or 0), e.ts))
    return events


def time_split(events: list[Event], share: float = 0.8) -> tuple[list[Event], list[Event]]:
    """The first ``share`` of events (moved to the next session boundary) and the rest."""
    cut = int(len(events) * share)
    while cut < len(events) and events[cut].session == events[cut - 1].session:
        cut += 1
    return events[:cut], events[cut:]


def popularity(warmup: list[Event], events: list[Event], n: int = 20) -> Prequential:
    """Most popular items so far, test-then-train on the same targets as run_baseline."""
    counts = Counter(e.item for e in warmup)
    last = {(e.user, e.session): e for e in warmup}  # one user's session, as the baselines
    result = Prequential(ks=(20,))
    for e in events:
        assert e.item is not None
        prev = last.get((e.user, e.session))
        if prev is not None:
            top = [item for item, _ in counts.most_common(n)]
            rank = top.index(e.item) if e.item in top else -1
            result.add(EvalRecord(e.ts, e.pos, e.user, e.item, e.type, rank, False))
        counts[e.item] += 1
        last[(e.user, e.session)] = e
    return result


@pytest.mark.slow
def test_diginetica_beats_popularity() -> None:
    events = read_diginetica(shared_sample("diginetica-sample/sample_train-item-views.csv"))
    warm, test = time_split(events)
    pop = popularity(warm, test)
    pop_hr = pop.report(n_boot=0)["hr@20"]["value"]
    assert len(pop) > 1000
    for make in (SessionKNN, STAN):
        for exclude_current in (False, True):
            t0 = time.perf_counter()
            result = run_baseline(make(), test, warmup=warm, exclude_current=exclude_current)
            elapsed = time.perf_counter() - t0
            assert elapsed < 10.0
            assert len(result) == len(pop)
            r = result.report()
            assert r["hr@20"]["value"] > 3 * pop_hr
            assert r["mrr@20"]["value"] > r["hr@20"]["value"] / 20
            lift = paired_lift(result, pop, k=20)
            assert lift["paired_targets"] == len(pop)
            assert lift["ratio"]["hr@20"]["ci"][0] > 1.5


def read_taobao(path: Path) -> list[Event]:
    kinds = {"pv": "product_view", "cart": "add_to_cart", "fav": "add_to_wishlist"}
    events = []
    with path.open(encoding="ascii") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split(",")
            if len(fields) != 5 or int(fields[4]) < 1_000_000_000:  # the truncated last line
                continue
            user, item, category, behavior, ts = fields
            kind = kinds.get(behavior, "purchase")
            events.append(Event(kind, user, float(ts), item, category, pos=str(lineno)))
    return events


@pytest.mark.slow
def test_taobao_slice_runs_fast() -> None:
    events = read_taobao(shared_sample("taobao-userbehavior/UserBehavior_timeslice_96k.csv"))
    assert len(events) > 90_000
    for make in (SessionKNN, STAN):
        t0 = time.perf_counter()
        result = run_baseline(make(), events)
        elapsed = time.perf_counter() - t0
        assert elapsed < 30.0, f"{make.__name__} took {elapsed:.1f}s"
        r = result.report()
        assert r["targets"] > 10_000
        assert r["reviews"]["hr@20"]["value"] > r["new_to_session"]["hr@20"]["value"]
