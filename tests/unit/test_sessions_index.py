"""The session-neighbourhood index (rtp.candidates.sessions): sessions chained from item
records, STAN-style neighbourhood scores against a brute-force reference, bounds, pickling."""

from __future__ import annotations

import math
import pickle
import random

import pytest

from rtp.candidates import sessions as S
from rtp.candidates.sessions import SessionIndex, next_key, own_slot
from rtp.engine.users import WINDOW

Record = tuple[tuple[str, ...], str, float]


def _stream(
    seed: int, users: int = 40, events: int = 600, items: int = 60
) -> tuple[list[Record], dict[str, list[str]]]:
    """Interleaved sessions whose records carry ``prev`` as the user step builds it (the last
    ``WINDOW`` items of the session's unique, most-recent-last list), and each session's items in
    order of first occurrence."""
    rng = random.Random(seed)
    recent: dict[str, list[str]] = {}
    order: dict[str, list[str]] = {}
    out: list[Record] = []
    for t in range(events):
        u = f"u{rng.randrange(users)}"
        r = recent.setdefault(u, [])
        # mostly new items, some re-views (which move the item to the end)
        item = rng.choice(r) if r and rng.random() < 0.25 else f"i{rng.randrange(items)}"
        out.append((tuple(r[-WINDOW:]), item, float(t)))
        if item in r:
            r.remove(item)
        r.append(item)
        got = order.setdefault(u, [])
        if item not in got:
            got.append(item)
    return out, order


def test_the_key_is_the_user_steps_window() -> None:
    assert S.KEY_ITEMS == WINDOW


def test_sessions_are_chained_from_records_exactly() -> None:
    records, order = _stream(1)
    ix = SessionIndex(max_len=1_000)
    for prev, item, ts in records:
        ix.add(prev, item, ts)
    held = sorted(list(d) for d in ix.items.values())
    # every session of two items or more, each item at the position of its first occurrence
    want = sorted(items for items in order.values() if len(items) >= 2)
    assert held == want
    for d in ix.items.values():
        assert list(d.values()) == list(range(1, len(d) + 1))


def test_next_key_is_the_prev_of_the_sessions_next_record() -> None:
    records, _ = _stream(2, users=1, events=300, items=12)
    for (prev, item, _), (nxt, _, _) in zip(records, records[1:], strict=False):
        assert next_key(prev, item) == nxt


def _reference(
    sessions: dict[int, dict[str, int]],
    ts: dict[int, float],
    recent: list[str],
    now: float,
    own: int | None,
) -> dict[str, float]:
    """STAN's scores as the module docstring states them, over every stored session."""
    q = recent[-S.QUERY :][::-1]  # the item the user is on first
    scored = []
    for sid, items in sessions.items():
        if sid == own:
            continue
        dot = sum(S._POS_W[j] for j, x in enumerate(q) if x in items)
        if not dot:
            continue
        sim = dot / math.sqrt(len(items)) * math.exp(-max(0.0, now - ts[sid]) / S.LAMBDA_SNH)
        scored.append((sim, sid))
    best = sorted(scored, reverse=True)[: S.K]
    out: dict[str, float] = {}
    for sim, sid in best:
        items = sessions[sid]
        anchor = next(items[x] for x in q if x in items)
        for it, p in items.items():
            out[it] = out.get(it, 0.0) + sim * math.exp(-abs(p - anchor) / S.LAMBDA_INH)
    return out


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_neighbour_scores_equal_the_brute_force_reference(seed: int) -> None:
    records, order = _stream(seed, users=30, events=400, items=40)
    ix = SessionIndex(max_len=1_000)
    for prev, item, ts in records:
        ix.add(prev, item, ts)
    assert max(len(q) for q in ix.index.values()) <= S.PER_ITEM
    # few enough sessions per item that the per-item memory holds all of them
    assert all(len(q) < S.PER_ITEM for q in ix.index.values())
    now = records[-1][2] + 3_600.0
    rng = random.Random(seed)
    for _ in range(20):
        recent = rng.sample(sorted({i for _, i, _ in records}), rng.randint(1, 6))
        own = rng.choice([None, *ix.items])
        got = ix.neighbours(recent, now, own, n=10_000)
        ref = _reference(ix.items, ix.ts, recent, now, own)
        assert dict(got) == pytest.approx(ref, rel=1e-9)
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)


def test_a_sessions_own_entry_is_found_and_never_its_neighbour() -> None:
    ix = SessionIndex()
    ix.add(("a",), "b", 0.0)  # another session: a, b, z
    ix.add(("a", "b"), "z", 1.0)
    fresh = [(0, 2.0, "a", 1.0, ()), (0, 3.0, "b", 1.0, ("a",)), (1, 4.0, "c", 1.0, ("a", "b"))]
    for tick, ts, item, _w, prev in fresh:
        if tick <= 0:  # the view holds tick 0 only
            ix.add(prev, item, ts)
    own = own_slot(ix, fresh, view_tick=0)
    assert own is not None and list(ix.items[own]) == ["a", "b"]
    assert [i for i, _ in ix.neighbours(["a", "b"], 5.0, own)] == ["b", "a", "z"]
    assert [i for i, _ in ix.neighbours(["a", "b"], 5.0, None)][-1] == "z"  # both sessions
    assert own_slot(ix, fresh[:1], view_tick=0) is None  # a first record opens no entry


def test_bounds_length_per_item_and_sessions() -> None:
    ix = SessionIndex(max_sessions=50, max_len=4)
    prev: tuple[str, ...] = ()
    for j in range(10):  # one long session: only its first 4 items are kept
        ix.add(prev, f"l{j}", float(j))
        prev = next_key(prev, f"l{j}") if prev else (f"l{j}",)
    assert list(ix.items[0]) == ["l0", "l1", "l2", "l3"]
    for s in range(200):  # many two-item sessions through one popular item
        ix.add(("hub",), f"x{s}", 100.0 + s)
    assert len(ix.index["hub"]) == S.PER_ITEM
    assert len(ix) == 201
    ix.evict(float("-inf"))  # over the cap: the least recently extended go, to 90 % of it
    assert len(ix) == 45
    assert list(ix.items) == list(range(201 - 45, 201))
    assert "l0" not in ix.index and "x0" not in ix.index  # no index entry outlives its sessions
    assert all(s in ix.items for q in ix.index.values() for s in q)
    assert ix.evict(100.0 + 190) == 35  # untouched since: gone
    assert sorted(ix.ts.values()) == [100.0 + s for s in range(190, 200)]
    assert set(ix.by_key.values()) <= set(ix.items)


def test_pickles_to_the_same_answers() -> None:
    records, _ = _stream(6)
    ix = SessionIndex()
    for prev, item, ts in records:
        ix.add(prev, item, ts)
    back = pickle.loads(pickle.dumps(ix, protocol=pickle.HIGHEST_PROTOCOL))
    for recent in (["i1", "i2"], ["i7"], ["i3", "i9", "i11"]):
        assert back.neighbours(recent, 1e4) == ix.neighbours(recent, 1e4)
    prev, item, ts = records[-1]
    back.add(next_key(prev, item), "new", ts + 1)
    ix.add(next_key(prev, item), "new", ts + 1)
    assert back.items == ix.items


def test_a_view_snapshot_from_before_session_neighbourhoods_resumes() -> None:
    from rtp.config import Settings
    from rtp.engine.users import new_view
    from rtp.ranking.ranker import FEATURES, PRIOR
    from rtp.session.state import Session

    m = new_view(Settings(session_neighbours=True))
    m.apply_items([(1.0, "p:0", "b", None, None, 1.0, ("a",))])
    m.finish_tick(0)
    assert len(m.sessions or ()) == 1
    state = dict(m.__dict__)  # as the previous build pickled it: 16 weights, no index, no memo
    del state["sessions"], state["_knn_memo"]
    state["weights"] = state["weights"][: FEATURES.index("knn")]
    old = ModelViewState(state)
    back = pickle.loads(pickle.dumps(old))
    assert back.sessions is None and back.knn("u", Session("s", 0.0)) == []
    assert len(back.weights) == len(FEATURES) and back.weights[-1] == PRIOR["knn"]


class ModelViewState:
    """Pickles as a ModelView whose state is ``state`` (what an older build's snapshot holds)."""

    def __init__(self, state: dict[str, object]) -> None:
        self.state = state

    def __reduce__(self) -> tuple[object, ...]:
        from rtp.engine.view import ModelView

        return (ModelView.__new__, (ModelView,), self.state)
