"""Plug-ins of the user step: evaluation, batch serving and experiment metrics.

The user step (:class:`rtp.engine.users.UserShard`) runs the same code live, in a replay and in
an evaluation; what differs plugs in here as a :class:`Hook`, called only by the hooks that
override a method (the step binds the overriding methods once, so a live flow with no hooks
pays for none of them):

- :class:`Evaluation`: scores every target against the list served just before it
  (prequential, :class:`rtp.evaluation.metrics.Prequential`) and serves after every event;
- :class:`BatchServing`: what a nightly batch system would serve, a list per user frozen at
  every ``refresh`` of event time (the ``batch`` mode and the ``batch`` arm of experiments);
- :class:`ExperimentMetrics`: per-arm session, exposure and attribution metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rtp.capture.events import Event
from rtp.decisions.home import fallback_home, rank_home
from rtp.engine.writes import Writes
from rtp.evaluation.metrics import EvalRecord, Prequential
from rtp.session.state import UserState

if TYPE_CHECKING:
    from rtp.engine.users import UserShard

REALTIME = "realtime"
BATCH = "batch"
POPULAR = "popular"
MODES = (REALTIME, BATCH, POPULAR)


class Hook:
    """A plug-in of the user step; override what you need (the defaults do nothing)."""

    def bind(self, shard: UserShard) -> None:
        """Called once when the step is built (or resumed)."""

    def on_target(self, u: UserState, e: Event, rank: int) -> None:
        """``e`` follows another event of its session and names an item: a target. ``rank`` is
        its position in the home list served just before it (-1: not listed)."""

    def after_event(self, u: UserState, e: Event) -> None:
        """``e`` was folded into ``u``'s session."""

    def on_session_end(self, u: UserState) -> None:
        """``u``'s session is finished (before it is folded into the profile)."""

    def on_attributed(self, u: UserState, e: Event) -> None:
        """``e`` interacted with an item of the home list last shown to ``u``."""

    def on_decision(self, u: UserState, exp: tuple[str, str] | None, n_home: int) -> None:
        """A decision was written for ``u`` (``exp``: its experiment and arm)."""

    def on_batch_end(self) -> None:
        """The step finished a batch (its view and event time are current); also called at
        each tick boundary, before the new tick's first events (where a live source's marker
        batch ends), so a hook sees the same boundaries whatever opened the tick."""

    def meta(self, w: Writes) -> None:
        """Add this hook's meta keys to the step's periodic writes."""

    def finish(self, w: Writes) -> None:
        """End of a finite stream."""


def overriding(hooks: list[Hook], name: str) -> list[Callable[..., Any]]:
    """The bound ``name`` methods of the hooks that override it."""
    base = getattr(Hook, name)
    return [getattr(h, name) for h in hooks if getattr(type(h), name) is not base]


class BatchServing(Hook):
    """Frozen per-user lists recomputed every ``refresh_s`` of event time (batch serving).

    ``everyone``: freeze a list for every user (the ``batch`` mode); else only for users an
    experiment puts in its ``batch`` arm.
    """

    def __init__(self, refresh_s: float, everyone: bool) -> None:
        self.refresh_s = refresh_s
        self.everyone = everyone
        self.next_refresh = 0.0
        self.frozen: dict[str, list[str]] = {}
        self.fallback: list[str] = []
        self.shard: UserShard | None = None

    def bind(self, shard: UserShard) -> None:
        self.shard = shard

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["shard"] = None
        return state

    def items_for(self, uid: str) -> list[str]:
        return self.frozen.get(uid, self.fallback)

    def on_batch_end(self) -> None:
        s = self.shard
        assert s is not None
        if s.high < self.next_refresh:
            return
        if self.next_refresh == 0.0:
            self.next_refresh = s.high - s.high % self.refresh_s + self.refresh_s
        else:
            while self.next_refresh <= s.high:
                self.next_refresh += self.refresh_s
        m = s.view
        self.fallback = fallback_home(m, s.rules.home_n).items
        frozen: dict[str, list[str]] = {}
        for pool in (s.users, s.idle):
            for uid, u in pool.items():
                if u.dnp or (not self.everyone and s.arm(u, "home") != BATCH):
                    continue
                frozen[uid] = rank_home(u, m, s.rules, explore=False, ctx=s.context_of(u)).items
        self.frozen = frozen


class Evaluation(Hook):
    """Prequential scoring: every target against the home list served just before it.

    ``is_target(event)`` selects which events may be targets (a warm-up file's events are
    learned, never scored); the list is served after every event in the evaluated ``mode``.
    """

    def __init__(
        self,
        mode: str,
        ks: tuple[int, ...] = (5, 10, 20),
        is_target: Callable[[Event], bool] | None = None,
        batch: BatchServing | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        self.mode = mode
        self.preq = Prequential(ks)
        self.is_target = is_target
        self.batch = batch
        self.shard: UserShard | None = None

    def bind(self, shard: UserShard) -> None:
        self.shard = shard

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["shard"] = None
        return state

    def on_target(self, u: UserState, e: Event, rank: int) -> None:
        if self.is_target is not None and not self.is_target(e):
            return
        item = e.item
        assert item is not None
        self.preq.add(EvalRecord(e.ts, e.pos, u.uid, item, e.type, rank, item in u.session.seen))

    def after_event(self, u: UserState, e: Event) -> None:
        s = self.shard
        assert s is not None
        if self.mode == POPULAR:
            items = fallback_home(s.view, s.rules.home_n).items
        elif self.mode == BATCH:
            assert self.batch is not None
            items = self.batch.items_for(u.uid)
        else:
            items = rank_home(u, s.view, s.rules, s.reshow(u), ctx=s.context_of(u)).items
        u.serving.serve(items, u.session.last)
        if self.is_target is None or self.is_target(e):
            self.preq.note_served(items)
        if e.item is not None:
            self.preq.note_item(e.item)

    def finish(self, w: Writes) -> None:
        w.evals.append(self.preq)


class ExperimentMetrics(Hook):
    """Per-arm metrics of every experiment (sessions, exposure, attributed interactions)."""

    def __init__(self, experiments: Any, mode: str = "replay", seed: int = 0) -> None:
        self.experiments = experiments
        self.metrics: dict[str, Any] = experiments.make_metrics(mode=mode, seed=seed)
        self.shard: UserShard | None = None

    def bind(self, shard: UserShard) -> None:
        self.shard = shard

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["shard"] = None
        return state

    def on_session_end(self, u: UserState) -> None:
        if not u.arms:
            return
        s = u.session
        for exp, arm in u.arms.items():
            m = self.metrics.get(exp)
            if m is not None:
                m.on_session_end(arm, s.n, s.buys, s.revenue, u.returning, s.last)

    def on_attributed(self, u: UserState, e: Event) -> None:
        if not u.arms:
            return
        hit = self.experiments.assign(u.uid, "home")
        if hit is not None and hit[0] in self.metrics:
            self.metrics[hit[0]].on_attributed(hit[1], e.ts)

    def on_decision(self, u: UserState, exp: tuple[str, str] | None, n_home: int) -> None:
        if exp is not None:
            m = self.metrics.get(exp[0])
            if m is not None:
                m.on_shown(exp[1], n_home, ts=u.session.last)

    def meta(self, w: Writes) -> None:
        import orjson

        s = self.shard
        name = f"u{s.shard}" if s is not None else "u0"
        for m in self.metrics.values():
            w.meta.append((m.meta_name(name), orjson.dumps(m.to_dict())))
