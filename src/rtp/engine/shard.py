"""The shard engine: the keyed session step, the learners and the decisions of one shard.

This is plain Python (no bytewax, no redis): ``rtp.flow.dataflow`` wraps it in a Bytewax
``stateful_batch`` step keyed by shard, and everything it wants stored comes back as a
:class:`~rtp.engine.writes.Writes` per batch.

Why shards, and why one per process by default
    Bytewax state is per key. Keying by user would make every event cross into a separate
    state object, and Bytewax's timers are wall-clock, so a fast replay could not expire sessions
    by event time. Keying by a shard of users (``hash(user) % shards``) lets a shard keep a dict
    of its users ordered by last activity and sweep out those idle longer than the session gap
    as *its* event time advances. The global learners (co-visitation, popularity, ranking model)
    live per shard too: a shard learns from the users it owns, which is every user in a
    one-process flow. More shards split the learning (each learner sees a share of the
    co-visits), which costs quality and buys nothing inside one process, so the default is one
    shard per process; with several processes, shards spread users and learning across them.

Per batch (:meth:`Engine.process`)
    1. users not in memory are loaded from the store in one round trip (profiles, dnp flags);
    2. each event, in order: control events; session split (a finished session is folded into
       the profile); test-then-train (evaluation target, attribution, ranking example) against
       the list last served to that user; session update; co-visitation and popularity updates;
    3. batch boundary: prune neighbours, refresh top lists, freeze ranking weights, sweep idle
       users (fold, write profile, evict);
    4. one decision per user whose context changed (bursts of one user's events coalesce), or
       fallback decisions marked ``degraded`` while the flow lags behind capture.
"""

from __future__ import annotations

import gc
import heapq
import time
import zlib
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import Any, Literal

import orjson

from rtp.capture import events as ev
from rtp.config import Settings
from rtp.decisions.decide import (
    Models,
    Ranked,
    Rules,
    decide,
    fallback_home,
    feature_dict,
    fill_context,
    product_list,
    rank_home,
)
from rtp.decisions.decide import candidates as gen_candidates
from rtp.engine.writes import Writes
from rtp.evaluation.metrics import EvalRecord, Prequential
from rtp.ranking.ranker import FEATURES
from rtp.session.profile import Profile
from rtp.session.state import UserState, fold_session

REALTIME = "realtime"
BATCH = "batch"
POPULAR = "popular"
MODES = (REALTIME, BATCH, POPULAR)

TYPE_WEIGHT = {
    ev.PRODUCT_VIEW: 1.0,
    ev.CLICK: 1.0,
    ev.HOVER: 0.3,
    ev.ADD_TO_WISHLIST: 2.0,
    ev.ADD_TO_CART: 3.0,
    ev.PURCHASE: 4.0,
    ev.REMOVE_FROM_CART: 0.2,
}
ATTRIBUTION_WINDOW_S = 1_800.0
_second = itemgetter(1)

Loader = Callable[[list[str]], dict[str, tuple[bytes | None, bool]]]


def shard_of(user: str, shards: int) -> int:
    """Stable across processes and runs (unlike ``hash``)."""
    if shards == 1:
        return 0
    return zlib.crc32(user.encode()) % shards


def tune_gc() -> None:
    """The engine makes many small objects that live for a whole session; CPython's default
    thresholds run full collections far too often for that (measured in BENCHMARKS.md)."""
    gc.set_threshold(100_000, 50, 100)


def rules_from(settings: Settings) -> Rules:
    return Rules(
        home_n=settings.home_n,
        product_n=settings.product_n,
        reshow_slots=settings.reshow_slots,
        explore_share=settings.explore_share,
    )


class Engine:
    """Session step, learners and decisions for one shard (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        shard: str = "0",
        *,
        mode: str = REALTIME,
        refresh_s: float = 86_400.0,
        evaluate: bool = False,
        experiments: Any = None,
        bandits: Iterable[Any] = (),
        run: str = "default",
        idle_cache: int = 100_000,
        ks: tuple[int, ...] = (5, 10, 20),
        score_from_ts: float = 0.0,
        metrics_mode: str = "replay",
        hold_profiles: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        self.settings = settings
        self.shard = shard
        self.mode = mode
        self.refresh_s = refresh_s
        self.evaluate = evaluate
        self.experiments = experiments
        self.bandits = {b.placement: b for b in bandits}
        self.run = run
        self.idle_cache = idle_cache
        self.rules = rules_from(settings)
        self.models = Models(
            neighbours_k=settings.neighbours_k, seed=settings.seed, ranker=settings.ranker
        )
        self.users: dict[str, UserState] = {}  # active sessions, least recently active first
        self.idle: dict[str, UserState] = {}  # folded users kept in memory (bounded)
        self.high = 0.0  # this shard's event time
        self.degraded = False
        self.next_refresh = 0.0
        self.frozen: dict[str, list[str]] = {}
        self.frozen_fallback: list[str] = []
        self.metrics: dict[str, Any] = (
            experiments.make_metrics(mode=metrics_mode, seed=settings.seed)
            if experiments is not None
            else {}
        )
        self.stats: dict[str, float] = dict.fromkeys(
            (
                "read",
                "rejected",
                "events",
                "sessions",
                "users_loaded",
                "profiles_written",
                "decisions_ranked",
                "decisions_degraded",
                "decisions_non_personalized",
                "coalesced",
                "forgotten",
                "learned",
                "attributed",
                "max_lag_s",
            ),
            0,
        )
        self.score_from_ts = score_from_ts  # evaluation: earlier events only train (warm-up)
        self.preq: Prequential | None = Prequential(ks) if evaluate else None
        # Under recovery, profiles folded since the last snapshot are held back until the next
        # one: a run resumed from that snapshot must never read a profile that already holds
        # sessions it is about to replay (what it would fold twice, or rank from "the future").
        self.hold_profiles = hold_profiles or settings.hold_profiles
        self.pending_profiles: dict[str, bytes] = {}
        self._release = False
        self.loader: Loader | None = None
        self.clock: Callable[[], float] = time.time
        self._last_meta = 0.0

    # Bytewax snapshots the engine: drop what cannot (and need not) be pickled.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["loader"] = None
        state["clock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.clock = time.time

    # -- the batch -------------------------------------------------------------------------
    def process(self, events: list[ev.Event], lag_ref: float | None = None) -> Writes:
        """Fold a batch of this shard's events (in event-time order) into state; the writes."""
        w = Writes()
        if self._release:
            self._release = False
            w.profiles.extend(self.pending_profiles.items())
            self.pending_profiles = {}
        if not events:
            return w
        self._load([e.user for e in events], w)
        if lag_ref is not None:
            self._check_lag(self.clock() - lag_ref)
        dirty: dict[str, UserState] = {}
        s = self.settings
        gap = s.session_gap_s
        hl = s.category_half_life_s
        recent_n = s.recent_items
        queries_n = s.recent_queries
        users = self.users
        cv = self.models.cv
        pop = self.models.pop
        evaluate = self.evaluate
        high = self.high
        for e in events:
            uid = e.user
            if e.type in ev.CONTROL_TYPES:
                self._control(e, w, dirty)
                continue
            u = users.pop(uid, None)
            if u is None:
                u = self.idle.pop(uid, None) or UserState(uid)
                if u.arms is None and self.experiments is not None:
                    u.arms = self.experiments.arms_for(uid)
            users[uid] = u
            if e.dnp and not u.dnp:
                self._set_dnp(u, True, w)
            ts = e.ts
            if ts > high:
                high = ts
            new_session = u.starts_new_session(e, gap)
            if new_session:
                if u.n:
                    self._end_session(u, w)
                u.begin(e)
                self._session_started(u)
            item = e.item
            if item is not None:
                if not new_session:
                    self._test(u, e, item)
                prev = u.recent[-5:]
            u.update(e, hl, recent_n, queries_n)
            if item is not None:
                weight = TYPE_WEIGHT.get(e.type, 1.0)
                if not u.dnp:
                    cv.add(prev, item, weight, ts)
                pop.add(item, e.category, e.price, weight, ts)
            if evaluate:
                self._serve_for_eval(u)
            elif uid in dirty:
                self.stats["coalesced"] += 1
            dirty[uid] = u
        self.high = high
        self.stats["events"] += len(events)
        self._boundary(w)
        if not evaluate:
            # decisions reflect each user's state after their last event in the batch, so they
            # are written before the sweep closes sessions that went idle during the batch
            for u in dirty.values():
                if u.uid in self.users or u.uid in self.idle:
                    self._write_decision(u, w)
        self._sweep(w)
        self._meta(w, force=False)
        return w

    def finish(self) -> Writes:
        """End of a finite stream: fold every open session so profiles are complete."""
        w = Writes()
        for u in list(self.users.values()):
            if u.n:
                self._end_session(u, w)
        w.profiles.extend(self.pending_profiles.items())
        self.pending_profiles = {}
        if self.preq is not None:
            w.evals.append(self.preq)
        else:
            self.users.clear()
        self._meta(w, force=True)
        return w

    # -- steps -------------------------------------------------------------------------------
    def _load(self, uids: list[str], w: Writes) -> None:
        users = self.users
        idle = self.idle
        missing = [u for u in dict.fromkeys(uids) if u not in users and u not in idle]
        if not missing:
            return
        w.users.extend(missing)
        pending = self.pending_profiles
        if pending:
            for uid in [m for m in missing if m in pending]:
                idle[uid] = self._user(uid, pending[uid], False)
            missing = [m for m in missing if m not in pending]
        if self.loader is None or not missing:
            return
        found = self.loader(missing)
        self.stats["users_loaded"] += len(missing)
        for uid, (raw, dnp) in found.items():
            if raw is None and not dnp:
                continue
            idle[uid] = self._user(uid, raw, dnp)

    def _user(self, uid: str, raw: bytes | None, dnp: bool) -> UserState:
        profile = None
        if raw is not None and not dnp:
            try:
                profile = Profile.from_bytes(raw)
            except (ValueError, TypeError, KeyError):
                profile = None  # an unreadable profile is rebuilt from new sessions
        u = UserState(uid, profile, dnp)
        if self.experiments is not None:
            u.arms = self.experiments.arms_for(uid)
        return u

    def snapshot_taken(self) -> None:
        """Bytewax took a snapshot of this engine: held profiles may now be written."""
        if self.hold_profiles:
            self._release = True

    def _check_lag(self, lag: float) -> None:
        s = self.settings
        if lag > self.stats["max_lag_s"]:
            self.stats["max_lag_s"] = round(lag, 3)
        if self.degraded:
            if lag < s.recover_lag_s:
                self.degraded = False
        elif lag > s.degrade_lag_s:
            self.degraded = True

    def _control(self, e: ev.Event, w: Writes, dirty: dict[str, UserState]) -> None:
        uid = e.user
        if e.type == ev.FORGET:
            self.users.pop(uid, None)
            self.idle.pop(uid, None)
            self.frozen.pop(uid, None)
            dirty.pop(uid, None)
            _drop_pending(w, uid)  # the store applies deletes first: nothing of theirs may follow
            self.pending_profiles.pop(uid, None)
            w.forget.append(uid)
            self.stats["forgotten"] += 1
            return
        u = self.users.get(uid) or self.idle.get(uid)
        if u is None:
            u = self.idle[uid] = UserState(uid)
        self._set_dnp(u, e.dnp, w)
        dirty[uid] = u

    def _set_dnp(self, u: UserState, flag: bool, w: Writes) -> None:
        u.dnp = flag
        if flag:
            u.profile = None
            _drop_pending(w, u.uid)
            self.pending_profiles.pop(u.uid, None)
            w.dnp_add.append(u.uid)
            w.forget.append(u.uid)  # no stored profile (the decision key is rewritten)
        else:
            w.dnp_remove.append(u.uid)

    def _session_started(self, u: UserState) -> None:
        self.stats["sessions"] += 1
        b = self.bandits.get("home")
        if b is not None and not u.dnp and self._arm(u, "home") == REALTIME:
            u.strategy = b.choose()

    def _end_session(self, u: UserState, w: Writes) -> None:
        if u.arms:
            for exp, arm in u.arms.items():
                m = self.metrics.get(exp)
                if m is not None:
                    m.on_session_end(arm, u.n, u.buys, u.revenue, u.returning, u.last)
        if u.strategy is not None:
            b = self.bandits.get("home")
            if b is not None:
                b.reward(u.strategy, 1.0 if u.attributed else 0.0)
        if u.dnp:
            u.n = 0
            return
        p = fold_session(u, self.settings.profile_half_life_s)
        u.n = 0  # closed: the next event begins (and resets) a new session
        u.returning = True
        if self.hold_profiles:
            self.pending_profiles[u.uid] = p.to_bytes()
        else:
            w.profiles.append((u.uid, p.to_bytes()))
        self.stats["profiles_written"] += 1

    def _arm(self, u: UserState, placement: str) -> str:
        """Which strategy serves ``u`` on ``placement``: an experiment arm, else the mode."""
        if self.experiments is not None and u.arms:
            hit = self.experiments.assign(u.uid, placement)
            if hit is not None:
                return str(hit[1])
        return self.mode

    def _test(self, u: UserState, e: ev.Event, item: str) -> None:
        """Test-then-train against the list last served to ``u``, before ``e`` is learned."""
        served = u.served
        rank = -1
        if served is not None:
            try:
                rank = served.index(item)
            except ValueError:
                rank = -1
        preq = self.preq
        if preq is not None and e.ts >= self.score_from_ts:
            preq.add(EvalRecord(e.ts, e.pos, u.uid, item, e.type, rank, item in u.seen))
        if rank < 0 or served is None:
            return
        if not u.served_hit and e.ts - u.served_ts <= ATTRIBUTION_WINDOW_S:
            # one attributed interaction per shown decision, to the experiment serving home
            u.served_hit = True
            u.attributed += 1
            self.stats["attributed"] += 1
            if u.arms and self.experiments is not None:
                hit = self.experiments.assign(u.uid, "home")
                if hit is not None and hit[0] in self.metrics:
                    self.metrics[hit[0]].on_attributed(hit[1], e.ts)
        if self.mode == REALTIME and not u.dnp:
            self._learn(u, item, served)

    def _learn(self, u: UserState, item: str, served: list[str]) -> None:
        """One ranking example: the served candidate the user chose, and two it passed over."""
        cats = u.blended_categories()
        cands = gen_candidates(u, self.models, cats)
        chosen = cands.get(item)
        if chosen is None:
            return
        others = [i for i in served if i != item and i in cands]
        picked = self.models.ranker.sample_negatives(others)
        needed = {i: cands[i] for i in (item, *picked)}  # context features for these only
        cur = u.current
        fill_context(
            u,
            self.models,
            cats,
            u.price_range(),
            self.rules.price_slack,
            u.item_cat.get(cur) if cur is not None else None,
            needed,
        )
        ranker = self.models.ranker
        ranker.learn_one(feature_dict(chosen), True)
        for i in picked:
            ranker.learn_one(feature_dict(needed[i]), False)
        self.stats["learned"] += 1

    def _serve_for_eval(self, u: UserState) -> None:
        """Evaluation: the home list this user would be served now (no coalescing)."""
        if self.mode == POPULAR:
            u.served = fallback_home(self.models, self.rules.home_n).items
        elif self.mode == BATCH:
            u.served = self.frozen.get(u.uid, self.frozen_fallback)
        else:
            u.served = rank_home(u, self.models, self.rules, self._reshow(u)).items
        u.served_ts = u.last
        u.served_hit = False
        if self.preq is not None and u.last >= self.score_from_ts:
            self.preq.note_served(u.served)

    def _reshow(self, u: UserState) -> int | None:
        s = u.strategy
        if s and s.startswith("reshow-"):
            try:
                return int(s[7:])
            except ValueError:
                return None
        return None

    def _boundary(self, w: Writes) -> None:
        m = self.models
        m.boundary(self.high)
        for item in m.pop.drain_new_items():
            if self.preq is not None:
                self.preq.note_item(item)
            else:
                cat = m.pop.cat_of.get(item, "")
                price = m.pop.price_of.get(item)
                w.items[item] = f"{cat}|{'' if price is None else price}".encode()
        batchy = self.mode == BATCH or (self.experiments is not None and not self.evaluate)
        if batchy and self.high >= self.next_refresh:
            self._refresh_batch()

    def _refresh_batch(self) -> None:
        """What a batch system computes at each refresh: a frozen list per known user."""
        if self.next_refresh == 0.0:
            self.next_refresh = self.high - self.high % self.refresh_s + self.refresh_s
        else:
            self.next_refresh += self.refresh_s
            while self.next_refresh <= self.high:
                self.next_refresh += self.refresh_s
        m = self.models
        self.frozen_fallback = fallback_home(m, self.rules.home_n).items
        frozen: dict[str, list[str]] = {}
        want_all = self.mode == BATCH
        for pool in (self.users, self.idle):
            for uid, u in pool.items():
                if u.dnp or (not want_all and self._arm(u, "home") != BATCH):
                    continue
                frozen[uid] = rank_home(u, m, self.rules, explore=False).items
        self.frozen = frozen

    def _sweep(self, w: Writes) -> None:
        """Fold and evict users idle longer than the session gap in this shard's event time."""
        cutoff = self.high - self.settings.session_gap_s
        users = self.users
        done = []
        for uid, u in users.items():
            if u.last >= cutoff:
                break
            done.append(uid)
        if not done:
            return
        idle = self.idle
        for uid in done:
            u = users.pop(uid)
            if u.n:
                self._end_session(u, w)
            u.served = None
            idle[uid] = u
        if not self.evaluate and len(idle) > self.idle_cache:
            for uid in list(idle)[: len(idle) - self.idle_cache]:
                del idle[uid]

    # -- decisions -------------------------------------------------------------------------
    def _write_decision(self, u: UserState, w: Writes) -> None:
        m = self.models
        rules = self.rules
        # the experiment serving home, hashed once per decision (it is recorded below too)
        exp = self.experiments.assign(u.uid, "home") if u.arms and self.experiments else None
        arm = str(exp[1]) if exp is not None else self.mode
        cats = None
        band: tuple[float, float] | None | Literal[False] = False
        if u.dnp or arm in ("none", POPULAR):
            mode = "non_personalized"
            home = fallback_home(m, rules.home_n)
            self.stats["decisions_non_personalized"] += 1
        elif self.degraded:
            mode = "degraded"
            home = fallback_home(m, rules.home_n)
            self.stats["decisions_degraded"] += 1
        elif arm == BATCH:
            mode = "ranked"
            items = self.frozen.get(u.uid, self.frozen_fallback)
            home = Ranked(list(items), [0.0] * len(items), ["batch"] * len(items))
            self.stats["decisions_ranked"] += 1
        else:
            mode = "ranked"
            cats = u.blended_categories()
            band = u.price_range()
            home = rank_home(u, m, rules, self._reshow(u), cats=cats, band=band)
            self.stats["decisions_ranked"] += 1
        u.served = home.items
        u.served_ts = u.last
        u.served_hit = False
        if cats is None:
            cats = u.blended_categories()
        top = (
            sorted(cats.items(), key=_second, reverse=True)
            if len(cats) <= 5
            else heapq.nlargest(5, cats.items(), key=_second)
        )
        intent = u.intent()
        d = decide(u, m, rules, home, u.last, mode, top, intent)
        cur = u.current
        if cur is not None and cur not in w.neighbours and not u.dnp:
            w.neighbours[cur] = product_list(m, cur, u.item_cat.get(cur), rules.product_n)
        d["v"] = 1
        d["ts"] = u.last
        d["mode"] = mode
        d["model"] = m.ranker.version
        if exp is not None:
            d["exp"] = {"name": exp[0], "arm": exp[1]}
            mm = self.metrics.get(exp[0])
            if mm is not None:
                mm.on_shown(exp[1], len(home), ts=u.last)
        if u.strategy is not None:
            d["strategy"] = u.strategy
        d["ctx"] = {"dnp": True} if u.dnp else u.context(top, band, intent)
        w.decisions.append((u.uid, orjson.dumps(d)))

    def _meta(self, w: Writes, force: bool) -> None:
        now = self.clock()
        if not force and now - self._last_meta < 2.0:
            return
        self._last_meta = now
        m = self.models
        w.meta.append(("fallback", orjson.dumps([i for i, _ in m.pop.trending])))
        stats: dict[str, Any] = dict(self.stats)
        stats["users_in_memory"] = len(self.users) + len(self.idle)
        stats["event_time"] = self.high
        stats["model"] = m.ranker.version
        stats["ranker_weights"] = dict(zip(FEATURES, m.ranker.frozen, strict=True))
        w.meta.append((f"stats:{self.run}:{self.shard}", orjson.dumps(stats)))
        for metrics in self.metrics.values():
            w.meta.append((metrics.meta_name(self.shard), orjson.dumps(metrics.to_dict())))
        for b in self.bandits.values():
            w.meta.append((b.meta_name(self.shard), orjson.dumps(b.to_dict())))


def _drop_pending(w: Writes, uid: str) -> None:
    """Remove a user's not-yet-written values from a batch's writes (forget, dnp)."""
    w.profiles = [kv for kv in w.profiles if kv[0] != uid]
    w.decisions = [kv for kv in w.decisions if kv[0] != uid]
