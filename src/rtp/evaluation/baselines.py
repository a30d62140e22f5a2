"""Session-based nearest-neighbour baselines, evaluated prequentially on rtp's own targets.

Published comparisons of session-based recommenders (Ludewig, Jannach et al., 2018-2021) found
that simple session-neighbourhood methods match or beat most neural session models on
e-commerce click data. rtp compares itself against the two strongest of them:

- :class:`SessionKNN`: V-SKNN. The current session is a vector of its items weighted by position
  (the most recent item weighs most); the neighbours are the ``k`` most similar of the
  ``sample_size`` most recent past sessions that share an item with it; an item's score is the
  sum of the similarities of the neighbours that contain it.
- :class:`STAN`: Sequence and Time-aware Neighbourhood (Garg et al., SIGIR 2019). V-SKNN with
  three exponential decays: item position in the current session, age of the neighbour
  session, and distance, inside the neighbour, between a candidate item and the most recent
  item the neighbour shares with the current session.

Both learn incrementally (:meth:`~_Neighbourhood.observe`), so a session enters the
neighbour index while it is still going on, as rtp's realtime mode learns. :func:`run_baseline`
replays a stream test-then-train and returns a :class:`rtp.evaluation.metrics.Prequential` whose
records use ``key = event.pos``: they pair with the records of rtp's engine in
:func:`rtp.evaluation.metrics.paired_lift`.

The warm-up protocol is the runner's: give the whole stream in replay order and the runner's
predicate of scorable events, ``run_baseline(model, stream, is_target=pred)``. Every event is
learned, and the targets are rtp's: an event that names an item, follows another event of its
session (of any type: a landing page view or a search counts) and satisfies ``pred``. A target
whose session has no item yet gets the model's list for an empty session (none: a miss), so the
baselines are scored on exactly the targets rtp is (:func:`source_is` builds the common
predicate "the event comes from one of these files"). The older form, ``warmup=`` events learned
first and then ``events`` all scorable, still works as before: it skips events without an item,
so its first target of a session is the second item event.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Protocol

from rtp.capture.events import CONTROL_TYPES, Event
from rtp.evaluation.metrics import DEFAULT_KS, EvalRecord, Prequential

SIMILARITIES = ("cosine", "jaccard", "vec")

TargetPredicate = Callable[[Event], bool]


def source_is(*names: str) -> TargetPredicate:
    """A target predicate: the event's source (its ``pos`` up to the last ``:``, the file name)
    is one of ``names``.

    >>> scored = source_is("test.jsonl")
    >>> scored(Event("product_view", "u1", 0.0, "i1", pos="test.jsonl:12"))
    True
    >>> scored(Event("product_view", "u1", 0.0, "i1", pos="warmup.jsonl:12"))
    False
    """
    wanted = frozenset(names)

    def predicate(event: Event) -> bool:
        return event.pos.rpartition(":")[0] in wanted

    return predicate


class SessionModel(Protocol):
    """What :func:`run_baseline` needs of a model."""

    def observe(self, session_id: str, item: str, ts: float) -> None:
        """Learn one interaction of a session."""

    def recommend(
        self,
        session_items: Sequence[str],
        n: int = 20,
        exclude: Collection[str] | None = None,
        *,
        session_id: str | None = None,
        now: float | None = None,
    ) -> list[str]:
        """The top ``n`` items for a session whose items so far are ``session_items``."""
        ...


class _Neighbourhood:
    """The session store and the item -> recent sessions index shared by both models.

    Sessions get dense integer ids. Per session: its distinct items with the position of their
    first occurrence (1-based), the stream ordinal of its last update (recency) and its last
    event time. Per item: a deque of the last ``sample_size`` sessions that contain it, which is
    all that is needed to find the ``sample_size`` most recent sessions sharing an item.
    """

    def __init__(self, k: int, sample_size: int) -> None:
        if k < 1 or sample_size < 1:
            raise ValueError(f"k and sample_size must be positive, got {k}, {sample_size}")
        self.k = k
        self.sample_size = sample_size
        self._ids: dict[str, int] = {}
        self._items: list[dict[str, int]] = []
        self._tick: list[int] = []
        self._ts: list[float] = []
        self._index: dict[str, deque[int]] = {}
        self._clock = 0
        self._now = -math.inf
        self._anon = 0

    @property
    def sessions(self) -> int:
        """Number of sessions learned."""
        return len(self._items)

    def observe(self, session_id: str, item: str, ts: float) -> None:
        """Learn that session ``session_id`` interacted with ``item`` at event time ``ts``."""
        sid = self._ids.get(session_id)
        if sid is None:
            sid = len(self._items)
            self._ids[session_id] = sid
            self._items.append({})
            self._tick.append(0)
            self._ts.append(ts)
        self._clock += 1
        self._tick[sid] = self._clock
        if ts > self._ts[sid]:
            self._ts[sid] = ts
        if ts > self._now:
            self._now = ts
        items = self._items[sid]
        if item not in items:
            items[item] = len(items) + 1
            sessions = self._index.get(item)
            if sessions is None:
                sessions = self._index[item] = deque(maxlen=self.sample_size)
            sessions.append(sid)

    def add_session(self, items: Iterable[str], ts: float, session_id: str | None = None) -> None:
        """Learn a whole (ended) session at once."""
        if session_id is None:
            self._anon += 1
            session_id = f"\x00anon{self._anon}"
        for item in items:
            self.observe(session_id, item, ts)

    def _candidates(self, items: Iterable[str], own: int | None) -> Collection[int]:
        """The most recent ``sample_size`` sessions sharing an item (never session ``own``)."""
        index = self._index
        found: set[int] = set()
        for item in items:
            sessions = index.get(item)
            if sessions is not None:
                found.update(sessions)
        found.discard(-1 if own is None else own)
        if len(found) > self.sample_size:
            return heapq.nlargest(self.sample_size, found, key=self._tick.__getitem__)
        return found

    def _own(self, session_id: str | None) -> int | None:
        return None if session_id is None else self._ids.get(session_id)

    @staticmethod
    def _top(
        scores: dict[str, float],
        n: int,
        exclude: Collection[str] | None,
        remind: dict[str, int] | None = None,
    ) -> list[str]:
        """The ``n`` best items; ``remind`` (item -> last position in the session) reminds.

        Reminded items (the session's own) go before every neighbourhood item, the most
        recent first: in clickstreams many next events return to an item of the session.
        """
        if remind:
            base = max(scores.values(), default=0.0) + 1.0
            for item, pos in remind.items():
                scores[item] = base + pos
        if exclude:
            for item in exclude:
                scores.pop(item, None)
        # nlargest is stable: ties keep the order in which items were first scored.
        return heapq.nlargest(n, scores, key=scores.__getitem__)


class SessionKNN(_Neighbourhood):
    """V-SKNN: session kNN with position-decayed weights of the current session's items.

    ``similarity``: ``cosine`` (weighted overlap / sqrt(|s| |n|)), ``jaccard`` (weighted
    overlap / |s u n|) or ``vec`` (weighted overlap / |s|). ``recency_weighting``: the item at
    position ``p`` of a current session of length ``L`` weighs ``p / L`` (V-SKNN's linear
    decay, the latest item weighs 1); False weighs all items 1 (plain SKNN). ``remind``: the
    session's own items lead the list, most recent first (session-rec's "remind" idea; pass
    ``exclude`` or ``run_baseline(exclude_current=True)`` to measure new items only).
    """

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        similarity: str = "cosine",
        recency_weighting: bool = True,
        remind: bool = True,
    ) -> None:
        super().__init__(k, sample_size)
        self.remind = remind
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        self.similarity = similarity
        self.recency_weighting = recency_weighting

    def recommend(
        self,
        session_items: Sequence[str],
        n: int = 20,
        exclude: Collection[str] | None = None,
        *,
        session_id: str | None = None,
        now: float | None = None,
    ) -> list[str]:
        """The top ``n`` items for the current session (oldest item first).

        ``exclude``: items never to return. ``session_id``: the current session's id when it is
        already being learned (it is then not its own neighbour). ``now`` is unused.
        """
        length = len(session_items)
        if length == 0 or n <= 0:
            return []
        position: dict[str, int] = {}
        for pos, item in enumerate(session_items, start=1):
            position[item] = pos  # the last occurrence counts
        if self.recency_weighting:
            weights = {item: pos / length for item, pos in position.items()}
        else:
            weights = dict.fromkeys(position, 1.0)
        size = len(weights)
        similarity = self.similarity
        store = self._items
        scored: list[tuple[float, int]] = []
        for sid in self._candidates(weights, self._own(session_id)):
            other = store[sid]
            dot = 0.0
            shared = 0
            if size <= len(other):
                for item, w in weights.items():
                    if item in other:
                        dot += w
                        shared += 1
            else:
                for item in other:
                    wo = weights.get(item)
                    if wo is not None:
                        dot += wo
                        shared += 1
            if not shared:
                continue
            if similarity == "cosine":
                sim = dot / math.sqrt(size * len(other))
            elif similarity == "jaccard":
                sim = dot / (size + len(other) - shared)
            else:
                sim = dot / size
            scored.append((sim, sid))
        neighbours = heapq.nlargest(self.k, scored) if len(scored) > self.k else scored
        scores: dict[str, float] = {}
        get = scores.get
        for sim, sid in neighbours:
            for item in store[sid]:
                scores[item] = get(item, 0.0) + sim
        return self._top(scores, n, exclude, position if self.remind else None)


class STAN(_Neighbourhood):
    """Sequence and Time-aware Neighbourhood (Garg, Gupta, Malhotra, Vig, Shroff; SIGIR 2019).

    With ``L`` the current session's length, ``p(x)`` the position of item ``x`` in it (last
    occurrence), ``t`` the current time and ``t(n)`` the last event time of neighbour ``n``:

    - ``w1(x) = exp((p(x) - L) / lambda_spw)`` weighs the current session's items;
    - ``sim(s, n) = sum(w1(x) for x in s & n) / sqrt(|s| |n|) * exp(-(t - t(n)) / lambda_snh)``
      ranks the candidate neighbours (``lambda_snh`` is in seconds);
    - an item ``i`` of neighbour ``n`` scores ``sim(s, n) * exp(-|q(i) - q(x*)| / lambda_inh)``
      where ``q`` are positions in ``n`` and ``x*`` the most recent item of ``s`` that ``n``
      contains (items after it and before it both decay).

    Defaults ``lambda_spw=1.02``, ``lambda_snh=5 days``, ``lambda_inh=2.05`` are, as best we
    know them, the defaults of the public session-rec framework's STAN; the paper tunes them per
    data set (values of the same magnitude). ``remind`` as in :class:`SessionKNN`.
    """

    def __init__(
        self,
        k: int = 100,
        sample_size: int = 500,
        lambda_spw: float = 1.02,
        lambda_snh: float = 5 * 86_400.0,
        lambda_inh: float = 2.05,
        remind: bool = True,
    ) -> None:
        super().__init__(k, sample_size)
        self.remind = remind
        if min(lambda_spw, lambda_snh, lambda_inh) <= 0:
            raise ValueError("the lambdas must be positive")
        self.lambda_spw = lambda_spw
        self.lambda_snh = lambda_snh
        self.lambda_inh = lambda_inh

    def recommend(
        self,
        session_items: Sequence[str],
        n: int = 20,
        exclude: Collection[str] | None = None,
        *,
        session_id: str | None = None,
        now: float | None = None,
    ) -> list[str]:
        """The top ``n`` items for the current session (oldest item first).

        ``now``: the time of the recommendation (default: the latest event time learned);
        ``exclude`` and ``session_id`` as in :meth:`SessionKNN.recommend`.
        """
        length = len(session_items)
        if length == 0 or n <= 0:
            return []
        t_now = self._now if now is None else now
        lam1 = self.lambda_spw
        position: dict[str, int] = {}
        for pos, item in enumerate(session_items, start=1):
            position[item] = pos
        weights = {item: math.exp((pos - length) / lam1) for item, pos in position.items()}
        size = len(weights)
        store = self._items
        times = self._ts
        lam2 = self.lambda_snh
        scored: list[tuple[float, int, int]] = []
        for sid in self._candidates(weights, self._own(session_id)):
            other = store[sid]
            dot = 0.0
            latest = 0
            anchor = 0
            for item, w in weights.items():
                q = other.get(item)
                if q is not None:
                    dot += w
                    p = position[item]
                    if p > latest:
                        latest = p
                        anchor = q
            if not latest:
                continue
            age = t_now - times[sid]
            decay = math.exp(-age / lam2) if age > 0 else 1.0
            scored.append((dot / math.sqrt(size * len(other)) * decay, sid, anchor))
        neighbours = heapq.nlargest(self.k, scored) if len(scored) > self.k else scored
        lam3 = self.lambda_inh
        near = [math.exp(-d / lam3) for d in range(64)]
        scores: dict[str, float] = {}
        get = scores.get
        exp = math.exp
        for sim, sid, anchor in neighbours:
            for item, q in store[sid].items():
                d = q - anchor if q >= anchor else anchor - q
                scores[item] = get(item, 0.0) + sim * (near[d] if d < 64 else exp(-d / lam3))
        return self._top(scores, n, exclude, position if self.remind else None)


class _Open:
    """One open session of :class:`_Sessions`."""

    __slots__ = ("sid", "items", "item_set", "last", "events")

    def __init__(self, sid: str, ts: float) -> None:
        self.sid = sid
        self.items: list[str] = []
        self.item_set: set[str] = set()
        self.last = ts
        self.events = 0  # events of the session so far, with or without an item


class _Sessions:
    """Splits a stream into sessions: the user's ``event.session`` when set (never split by a
    gap, as in rtp), else the user's events split by an inactivity gap."""

    def __init__(self, gap_s: float) -> None:
        self.gap_s = gap_s
        self._open: dict[str, _Open] = {}
        self._count: dict[str, int] = {}

    def get(self, event: Event) -> _Open:
        """The session of ``event`` (its id and items so far)."""
        if event.session is not None:
            # one user's session, as rtp's user step sees it: a visitor who logs in mid-session
            # (DIGINETICA: an anonymous id, then a user id) starts a new one there too
            key = "s:" + event.user + "\x00" + event.session
            state = self._open.get(key)
            if state is None:
                state = self._open[key] = _Open(key, event.ts)
        else:
            key = "u:" + event.user
            state = self._open.get(key)
            if state is None or event.ts - state.last > self.gap_s:
                n = self._count.get(key, 0) + 1
                self._count[key] = n
                state = self._open[key] = _Open(f"{key}#{n}", event.ts)
        if event.ts > state.last:
            state.last = event.ts
        return state


def run_baseline(
    model: SessionModel,
    events: Iterable[Event],
    ks: Sequence[int] = DEFAULT_KS,
    warmup: Iterable[Event] = (),
    session_gap_s: float = 1800.0,
    exclude_current: bool = False,
    seed: int = 0,
    *,
    is_target: TargetPredicate | None = None,
) -> Prequential:
    """Prequential test-then-train evaluation of ``model`` over ``events`` (in replay order).

       Only events with an item are used (control events are skipped). Sessions are
       ``event.session`` when present, else a user's events with gaps of at most
       ``session_gap_s`` seconds. A target is an event with an item that follows another in its
       session and that ``is_target`` accepts: it is scored against ``model.recommend(session
       items so far, n=max(ks))`` and then learned; every other event is only learned.

       - With ``is_target`` (the runner's protocol: pass the whole stream as ``events``), "follows
         another" counts every earlier event of the session, as rtp does, so events without an
         item (page views, searches) start and extend sessions too; a target with no session item
         yet is a miss unless the model recommends for an empty session.
       - Without it (the older form), events without an item are skipped, every event of
         ``events`` after the first item of its session is a target, and ``warmup`` events are
         learned before ``events`` and never scored.
    ``exclude_current`` keeps the session's own items out of the lists (otherwise
       re-views can be hit). The records carry ``key = event.pos``, the served list (coverage)
       and ``seen`` (the item is already in the session); every item of ``events`` counts for
       coverage, targets or not.
    """
    sessions = _Sessions(session_gap_s)
    for event in warmup:
        if event.item is None or event.type in CONTROL_TYPES:
            continue
        session = sessions.get(event)
        model.observe(session.sid, event.item, event.ts)
        session.items.append(event.item)
        session.item_set.add(event.item)
    result = Prequential(ks, seed=seed)
    n = result.kmax
    for event in events:
        item = event.item
        if event.type in CONTROL_TYPES or (item is None and is_target is None):
            continue
        session = sessions.get(event)
        session.events += 1
        if item is None:
            continue
        items, item_set = session.items, session.item_set
        result.note_item(item)
        # older form: after the session's first item; with is_target, rtp's targets: after any
        # earlier event of the session
        scored = bool(items) if is_target is None else session.events > 1 and is_target(event)
        if scored:
            served = model.recommend(
                items,
                n=n,
                exclude=item_set if exclude_current else None,
                session_id=session.sid,
                now=event.ts,
            )
            try:
                rank = served.index(item)
            except ValueError:
                rank = -1
            result.add(
                EvalRecord(
                    event.ts,
                    event.pos,
                    event.user,
                    item,
                    event.type,
                    rank,
                    item in item_set,
                    tuple(served),
                )
            )
        model.observe(session.sid, item, event.ts)
        items.append(item)
        item_set.add(item)
    return result
