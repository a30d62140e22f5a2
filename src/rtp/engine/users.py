"""The user step: sessions, profiles and decisions of one user shard.

Per :class:`~rtp.engine.messages.UserBatch` (one source batch's events of this shard):

1. the model view advances to tick ``batch.need`` (``batch.tick - lag`` unless the source
   set it; :mod:`rtp.engine.log`);
2. users not in memory are loaded in one round trip (profiles, do-not-personalize flags);
3. each event, in order: control events (forget, do-not-personalize); session split (a finished
   session is folded into the profile, its outcome goes to the global step); test-then-train
   against the list last served (hooks score it; a ranking example goes to the global step);
   session update; the event's item record goes to the item step;
4. one decision per user whose context changed (bursts of one user's events in a batch share
   one decision), or fallback decisions marked ``degraded`` while the flow lags behind capture;
5. users idle longer than the session gap (in the stream's event time) are folded and moved to
   an idle pool; idle users are dropped after ``Settings.idle_ttl_s`` (their profile is stored).

Nothing here depends on how the stream was batched into source batches beyond the batches
themselves, on the number of shards, or on which worker runs which shard: decisions depend on
the user's own events and on the model view of a tick only. Plain Python: ``rtp.flow.dataflow``
wraps it in Bytewax; it returns what to write and what to send downstream.
"""

from __future__ import annotations

import logging
import random
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from operator import itemgetter
from typing import Any, Literal

import orjson

from rtp.candidates.generate import candidates, is_candidate
from rtp.capture import events as ev
from rtp.capture.enrich import COUNTRY_UTC_OFFSET_H, local_hour_weekday
from rtp.config import Settings
from rtp.decisions.home import fallback_home, rank_home
from rtp.decisions.placements import decide
from rtp.decisions.ranked import Ranked, Rules
from rtp.engine.hooks import BATCH, MODES, POPULAR, REALTIME, BatchServing, Hook, overriding
from rtp.engine.log import GLOBAL, ModelLog, item_writer
from rtp.engine.messages import INF_TICK, GlobalSignals, ItemSignals, UserBatch
from rtp.engine.shards import item_shard_of
from rtp.engine.view import ItemRecord, ModelView, merge_parts
from rtp.engine.writes import Writes
from rtp.ranking.context import ContextFields, context_values, session_scale
from rtp.ranking.score import fill_context
from rtp.session.profile import Profile
from rtp.session.state import Session, UserState, fold_session
from rtp.store.codec import encode_decision, encode_decision_fast

log = logging.getLogger("rtp.engine")

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
WINDOW = 5  # previous items of a session an item record carries (co-visitation window)
FRESH_RECORDS = 12  # a session's own latest records kept for its not-yet-published pairs
_second = itemgetter(1)

Loader = Callable[[list[str]], dict[str, tuple[bytes | None, bool]]]
Output = tuple[str, Any]


def new_view(settings: Settings) -> ModelView:
    return ModelView(
        neighbours_k=settings.neighbours_k,
        cv_half_life_s=settings.covisit_half_life_s,
        item_ttl_s=settings.item_ttl_s,
        ranker=settings.ranker,
        max_items=settings.max_items,
        context=ContextFields.parse(settings.rank_context, settings.rank_crosses),
        drop=tuple(f.strip() for f in settings.rank_drop.split(",") if f.strip()),
        utc_offset_h=settings.default_utc_offset_h,
        session_neighbours=settings.session_neighbours,
    )


class UserShard:
    """One user shard's state and logic (see the module docstring).

    :param shard: this shard's index; ``shards`` how many user shards there are.
    :param item_shards: how many item shards receive item records.
    :param parts: the source partitions whose watermarks this shard waits for.
    :param mode: ``realtime`` (the flow), ``batch`` or ``popular`` (evaluation modes).
    :param hooks: plug-ins (evaluation, batch serving, experiment metrics).
    :param experiments: an :class:`rtp.experiments.design.ExperimentSet` (arms per user).
    """

    def __init__(
        self,
        settings: Settings,
        shard: int = 0,
        shards: int = 1,
        item_shards: int = 1,
        parts: Sequence[str] = ("files",),
        *,
        mode: str = REALTIME,
        hooks: Sequence[Hook] = (),
        experiments: Any = None,
        run: str = "default",
        keep_idle: bool = False,
        hold_profiles: bool = False,
        sweep_by_home: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        self.settings = settings
        self.shard = shard
        self.shards = shards
        self.item_shards = item_shards
        self.parts = list(parts)
        self.sweep_by_home = sweep_by_home  # a replay: partition i carries shard i's users
        self.mode = mode
        self.experiments = experiments
        self.run = run
        self.keep_idle = keep_idle  # evaluation: no store to reload users from
        self.rules = Rules.from_settings(settings)
        self.view = new_view(settings)
        self.lag = max(1, settings.model_lag_ticks)
        self.writers = [item_writer(i) for i in range(item_shards)] + [GLOBAL]
        self.users: dict[str, UserState] = {}  # in a session, least recently active first
        self.idle: dict[str, UserState] = {}  # folded, kept in memory until idle_ttl_s
        self.wm: dict[str, int] = dict.fromkeys(self.parts, -1)
        self.done = -1
        self.high = 0.0  # the stream's event time at the end of the previous tick
        self._tick_high = 0.0  # ... and within the current tick
        self.tick = -1
        self.degraded = False
        self.degraded_users: dict[str, None] = {}  # decided while degraded: re-decide later
        self.channels: dict[str, str] = {}  # user -> channel of their latest event naming one
        # users swept in a session with an explicit id: (its events, the list served, the session)
        self.resumable: dict[str, tuple[int, list[str] | None, Session]] = {}
        self._redecide = False
        self.hold_profiles = hold_profiles or settings.hold_profiles
        self.pending_profiles: dict[str, bytes] = {}
        self._release = False
        self.hooks = list(hooks)
        self.batch_serving = next((h for h in self.hooks if isinstance(h, BatchServing)), None)
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
                "mode_changes",
                "view_lag_ticks_max",
                "dropped_forgotten",
                "internal_errors",
                "redecided",
                "staleness_n",
                "staleness_sum_s",
                "staleness_max_s",
            ),
            0,
        )
        self.staleness_s_max = 0.0
        self.first_wall = 0.0  # when the first event arrived (the busy time of a replay)
        self._records: list[ItemRecord] = []
        self._examples: list[Any] = []
        self._rewards: list[Any] = []
        self._edge: list[Any] = []
        self._last_meta = 0.0
        self._fallback_version: tuple[str, Any] | str = ""  # (model version, trending list)
        self._fallback_dirty = False
        self._tombs: dict[str, float] = {}  # the tombstones found for the current batch
        self.loader: Loader | None = None
        self.tombstones: Callable[[list[str]], dict[str, float]] | None = None
        self.clock: Callable[[], float] = time.time
        self._bind()

    def _bind(self) -> None:
        for h in self.hooks:
            h.bind(self)
        hooks = self.hooks
        self._on_target = overriding(hooks, "on_target")
        self._after_event = overriding(hooks, "after_event")
        self._on_session_end = overriding(hooks, "on_session_end")
        self._on_attributed = overriding(hooks, "on_attributed")
        self._on_decision = overriding(hooks, "on_decision")
        self._on_batch_end = overriding(hooks, "on_batch_end")
        self._serve_per_event = bool(self._after_event)
        # the stored form of decisions (Settings.decision_form; the settings of a snapshot from
        # before it read the class default): looked up here, so a benchmark can swap the
        # module's encoder before a shard starts
        fast = self.settings.decision_form == "fast"
        self._encode = encode_decision_fast if fast else encode_decision

    # Bytewax snapshots the step: drop what cannot (and need not) be pickled.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in (
            "loader",
            "tombstones",
            "clock",
            "_on_target",
            "_after_event",
            "_on_session_end",
            "_on_attributed",
            "_on_decision",
            "_on_batch_end",
            "_encode",
        ):
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.clock = time.time
        self._bind()

    # -- the batch ----------------------------------------------------------------------------
    def process(self, b: UserBatch, mlog: ModelLog) -> list[Output]:
        """Fold one batch into state; what to write and what to send downstream.

        Users idle past the session gap are swept first, at the batches of the shard's home
        partition (the one its users' events come from, in a replay), by the event time of that
        partition's previous tick: so the sweeps fall at the same place in the stream whatever
        order the partitions' batches arrive in. Everything the batch sends downstream is
        tagged with the batch's own tick."""
        w = Writes()
        if self._release:
            self._release = False
            w.profiles.extend(self.pending_profiles.items())
            self.pending_profiles = {}
        st = self.stats
        st["read"] += b.read
        st["rejected"] += b.rejected
        home = self.home_part
        if home is None or b.part == home:
            # a tick ended (not the first): its boundary, before the next tick's events
            boundary = b.tick > self.tick >= 0 and bool(b.events)
            if b.tick > self.tick:
                if self._tick_high > self.high:
                    self.high = self._tick_high
                self.tick = b.tick
            self._sweep(w)
            if boundary:
                # the batch-end hooks see the boundary too (batch serving refreshes there),
                # whether a marker brought the new tick or its first events did
                for f in self._on_batch_end:
                    f()
            if b.high > self._tick_high:
                self._tick_high = b.high
        events = b.events
        if events and not self.first_wall:
            self.first_wall = self.clock()
        self._tombs = {}
        if self.tombstones is not None and (events or w.profiles):
            events = self._forgotten(events, w)
        if events:
            target = b.tick - self.lag if b.need is None else b.need
            if target > self.view.tick:
                self._advance(mlog, target)
            self._load([e.user for e in events], w)
            if b.lag_ref is not None:
                self._check_lag(self.clock() - b.lag_ref)
            self._events(events, w, b.tick)
        if self._redecide:
            self._redecide_degraded(w)
        if b.wm > self.wm.get(b.part, -1):
            self.wm[b.part] = b.wm
        for f in self._on_batch_end:
            f()
        self._meta(w, force=False)
        return self._outputs(w, b.tick)

    def _events(self, events: list[ev.Event], w: Writes, tick: int) -> None:
        dirty: dict[str, UserState] = {}
        s = self.settings
        gap = s.session_gap_s
        hl = s.category_half_life_s
        recent_n = s.recent_items
        queries_n = s.recent_queries
        users = self.users
        idle = self.idle
        records = self._records
        after = self._after_event
        per_event = self._serve_per_event
        control = ev.CONTROL_TYPES
        weights = TYPE_WEIGHT
        channels = self.channels
        for e in events:
            uid = e.user
            try:
                if e.type in control:
                    self._control(e, w, dirty)
                    continue
                u = users.pop(uid, None)
                if u is None:
                    u = idle.pop(uid, None) or self._new_user(uid, None, False)
                users[uid] = u
                if e.dnp and not u.dnp:
                    self._set_dnp(u, True, w)
                new_session = self._new_session(u, e, gap)
                if new_session:
                    if u.session.n:
                        self._end_session(u, w)
                    u.begin(e)
                    self._session_started(u)
                item = e.item
                prev: tuple[str, ...] = ()
                if item is not None:
                    if not new_session:
                        self._test(u, e, item)
                    if not u.dnp:
                        prev = tuple(u.session.recent[-WINDOW:])
                sess = u.session
                sess.update(e, hl, recent_n, queries_n)
                u.observe(e)
                if e.channel is not None:
                    channels[uid] = e.channel
                if item is not None:
                    weight = weights.get(e.type, 1.0)
                    records.append((e.ts, e.pos, item, e.category, e.price, weight, prev))
                    fresh = sess.fresh
                    fresh.append((tick, e.ts, item, weight, prev))
                    if len(fresh) > FRESH_RECORDS:
                        del fresh[0]
                if per_event:
                    for f in after:
                        f(u, e)
                elif uid in dirty:
                    self.stats["coalesced"] += 1
                dirty[uid] = u
            except Exception as exc:  # a bug met by one event: a dead letter, not a dead flow
                self._internal_error(e, exc, w, dirty)
        self.stats["events"] += len(events)
        if not per_event:
            for u in dirty.values():
                if u.uid in users or u.uid in idle:
                    try:
                        self._write_decision(u, w)
                    except Exception as exc:
                        self._internal_error(None, exc, w, dirty, u.uid)

    def _internal_error(
        self,
        e: ev.Event | None,
        exc: Exception,
        w: Writes,
        dirty: dict[str, UserState],
        uid: str | None = None,
    ) -> None:
        """An unexpected exception while processing one event (or deciding for one user): the
        event becomes an ``internal_error`` dead letter, the user's state in memory (possibly
        half updated) is dropped (their stored profile stays), and the batch goes on."""
        uid = e.user if e is not None else uid
        assert uid is not None
        self.stats["internal_errors"] += 1
        log.exception("user shard %d: internal error on %s of user %r; dead-lettered",
                      self.shard, e.pos if e is not None else "a decision", uid)  # fmt: skip
        self.users.pop(uid, None)
        self.idle.pop(uid, None)
        self.resumable.pop(uid, None)
        self.channels.pop(uid, None)
        dirty.pop(uid, None)
        w.decisions = [kv for kv in w.decisions if kv[0] != uid]
        if e is not None:
            raw = orjson.dumps(e.to_dict())
            rej = ev.internal_error(exc, e.pos, raw)
            rej.user = uid
            w.rejections.append(rej)

    def finish(self, mlog: ModelLog) -> list[Output]:
        """End of a finite stream: fold every open session so profiles are complete."""
        w = Writes()
        for u in list(self.users.values()):
            if u.session.n:
                self._end_session(u, w)
        w.profiles.extend(self.pending_profiles.items())
        self.pending_profiles = {}
        if self.tombstones is not None and w.profiles:
            self._forgotten([], w)  # nothing of a user forgotten meanwhile is written back
        if self._tick_high > self.high:
            self.high = self._tick_high
        for h in self.hooks:
            h.finish(w)
        if not self._serve_per_event:
            self.users.clear()
        self._meta(w, force=True)
        for p in self.parts:
            self.wm[p] = INF_TICK
        return self._outputs(w, self.tick)

    def snapshot_taken(self) -> None:
        """Bytewax took a snapshot of this step: held profiles may now be written."""
        if self.hold_profiles:
            self._release = True

    # -- the model view -----------------------------------------------------------------------
    def _advance(self, mlog: ModelLog, target: int) -> None:
        """Apply every published part of the ticks after the view's up to ``target``."""
        view = self.view
        parts = mlog.read(self.writers, view.tick, target)
        i = 0
        n = len(parts)
        while i < n:
            tick = parts[i][0]
            items: list[list[ItemRecord]] = []
            glob = None
            while i < n and parts[i][0] == tick:
                _t, writer, part = parts[i]
                if writer == GLOBAL:
                    glob = part
                else:
                    items.append(part)
                i += 1
            if items:
                view.apply_items(merge_parts(items))
            if glob is not None:
                view.apply_global(glob)
            view.finish_tick(tick)
        view.tick = target
        lag = self.tick - target
        if lag > self.stats["view_lag_ticks_max"]:
            self.stats["view_lag_ticks_max"] = lag
        stale = self.high - view.high if view.high else 0.0
        if stale > self.staleness_s_max:
            self.staleness_s_max = stale
        if self.shard == 0:
            # the version and the trending list itself (not its id: a freed list's id may be
            # reused by the next one, and the new fallback would never be written)
            seen = self._fallback_version
            trending = view.pop.trending
            if type(seen) is not tuple or seen[0] != view.version or seen[1] is not trending:
                self._fallback_version = (view.version, trending)
                self._fallback_dirty = True

    # -- users --------------------------------------------------------------------------------
    def _forgotten(
        self, events: list[ev.Event], w: Writes, also: Iterable[str] = ()
    ) -> list[ev.Event]:
        """Apply the tombstones of the users in this batch (and of profiles about to be
        written, and of ``also``): what a user did before they were forgotten is dropped (their
        events, their state in memory, their pending writes), whether it arrives live or from
        history; what they do after starts a new, empty user. Control events are never
        dropped (a ``dnp`` after a forget still applies). A forget that lands after this read
        is caught by the store when it writes the batch (``Writes.checked_at``)."""
        users = dict.fromkeys(e.user for e in events)
        for uid, _ in w.profiles:
            users[uid] = None
        for uid in also:
            users[uid] = None
        assert self.tombstones is not None
        if w.checked_at is None:
            w.checked_at = time.time()  # the store re-checks tombstones written since then
        found = self.tombstones(list(users))
        self._tombs = found
        if not found:
            return events
        for uid, when in found.items():
            u = self.users.get(uid) or self.idle.get(uid)
            if u is not None and u.session.start < when:
                self.users.pop(uid, None)
                self.idle.pop(uid, None)
                self.resumable.pop(uid, None)
                self.channels.pop(uid, None)
                if u.dnp:  # forget keeps the opt-out (the stored flag too)
                    self.idle[uid] = UserState(uid, None, True)
            _drop_pending(w, uid)
            self.pending_profiles.pop(uid, None)
        control = ev.CONTROL_TYPES
        kept = [
            e for e in events if e.user not in found or e.ts >= found[e.user] or e.type in control
        ]
        self.stats["dropped_forgotten"] += len(events) - len(kept)
        return kept

    def _new_user(self, uid: str, raw: bytes | None, dnp: bool) -> UserState:
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
                idle[uid] = self._new_user(uid, pending[uid], False)
            missing = [m for m in missing if m not in pending]
        if self.loader is None or not missing:
            return
        found = self.loader(missing)
        self.stats["users_loaded"] += len(missing)
        for uid, (raw, dnp) in found.items():
            if raw is None and not dnp:
                continue
            idle[uid] = self._new_user(uid, raw, dnp)

    def _redecide_degraded(self, w: Writes) -> None:
        """The flow caught up: decide again for the users served while it lagged (those still
        in memory; the others' degraded decisions expire with their key)."""
        self._redecide = False
        pending, self.degraded_users = self.degraded_users, {}
        if self.tombstones is not None and pending:
            self._forgotten([], w, pending)  # nobody forgotten meanwhile is decided again
        for uid in pending:
            u = self.users.get(uid) or self.idle.get(uid)
            if u is not None and u.session.n:
                self._write_decision(u, w)
                self.stats["redecided"] += 1

    def _check_lag(self, lag: float) -> None:
        s = self.settings
        if lag > self.stats["max_lag_s"]:
            self.stats["max_lag_s"] = round(lag, 3)
        if self.degraded:
            if lag < s.recover_lag_s:
                self.degraded = False
                self._redecide = True
                self.stats["mode_changes"] += 1
                log.warning("user shard %d: caught up (lag %.1fs): ranked decisions again; "
                            "re-deciding %d users served while degraded", self.shard, lag,
                            len(self.degraded_users))  # fmt: skip
        elif lag > s.degrade_lag_s:
            self.degraded = True
            self.stats["mode_changes"] += 1
            log.warning("user shard %d: %.1fs behind capture: serving fallback decisions "
                        "(degraded) until the lag is under %.1fs", self.shard, lag,
                        s.recover_lag_s)  # fmt: skip

    def _control(self, e: ev.Event, w: Writes, dirty: dict[str, UserState]) -> None:
        uid = e.user
        if e.type == ev.FORGET:
            self.users.pop(uid, None)
            self.idle.pop(uid, None)
            self.resumable.pop(uid, None)
            self.channels.pop(uid, None)
            dirty.pop(uid, None)
            if self.batch_serving is not None:
                self.batch_serving.frozen.pop(uid, None)
            _drop_pending(w, uid)  # the store applies deletes first: nothing of theirs may follow
            self.pending_profiles.pop(uid, None)
            w.forget.append(uid)
            self.stats["forgotten"] += 1
            return
        u = self.users.get(uid) or self.idle.get(uid)
        if u is None:
            u = self.idle[uid] = UserState(uid)
        self._set_dnp(u, e.dnp, w)
        if uid not in self._tombs or u.session.n:
            # a forgotten user's consent change applies (forget keeps the flag), but writes no
            # decision for them until they do something again
            dirty[uid] = u

    def _set_dnp(self, u: UserState, flag: bool, w: Writes) -> None:
        u.dnp = flag
        if flag:
            u.profile = None
            _drop_pending(w, u.uid)
            self.pending_profiles.pop(u.uid, None)
            w.dnp_add.append(u.uid)
            # the stored profile and (personalized) decisions go; no tombstone: the user's
            # events still count, for unpersonalized decisions, and an opt-in applies
            w.erase.append(u.uid)
        else:
            w.dnp_remove.append(u.uid)

    def _new_session(self, u: UserState, e: ev.Event, gap: float) -> bool:
        """Whether ``e`` begins a new session of ``u``. Without a session id, after an
        inactivity gap; with one, when the id changes (``rtp.capture.events``: an explicit
        session is never split by a gap). A session with an id that went quiet for longer than
        the gap was swept (folded into the profile); when its id comes back while the user is
        still in memory, it resumes: the same visit, with its items and the list last served.
        """
        sid = e.session
        s = u.session
        if sid is None:
            return u.starts_new_session(e, gap)
        if s.n:
            return sid != s.sid
        back = self.resumable.pop(u.uid, None)
        if back is None or sid != back[2].sid:
            return True
        n, u.serving.served, u.session = back
        u.session.n = n
        return False

    def _session_started(self, u: UserState) -> None:
        self.stats["sessions"] += 1
        bandit = self.view.bandits.get("home") if self.view.bandits else None
        if bandit is not None and not u.dnp and self.arm(u, "home") == REALTIME:
            u.strategy = bandit.choose_for(f"{u.uid}|{u.session.sid}")
        else:
            u.strategy = None

    def _end_session(self, u: UserState, w: Writes) -> None:
        for f in self._on_session_end:
            f(u)
        s = u.session
        if u.strategy is not None:
            reward = 1.0 if u.serving.attributed else 0.0
            self._rewards.append((s.last, f"{u.uid}|{s.sid}", "home", u.strategy, reward))
        if self.settings.edge_model and not u.dnp and s.n:
            # what the visit went on to do, weighted (category weights count carts and buys
            # more than views; items by their interactions)
            cats = dict(sorted(s.cats.items(), key=_second, reverse=True)[:3])
            items = {i: float(n) for i, n in sorted(s.seen.items(), key=_second, reverse=True)[:4]}
            signals = {
                "referral": u.referral,
                "device": u.device,
                "hour": u.hour,
                "country": u.country,
                "campaign": u.campaign,
                "ts": s.start,
            }
            self._edge.append((s.start, f"{u.uid}|{s.sid}", signals, cats, items))
        if u.dnp:
            s.n = 0
            return
        p = fold_session(u, self.settings.profile_half_life_s)
        s.n = 0  # closed: the next event begins (and resets) a new session
        u.returning = True
        if self.hold_profiles:
            self.pending_profiles[u.uid] = p.to_bytes()
        else:
            w.profiles.append((u.uid, p.to_bytes()))
        self.stats["profiles_written"] += 1

    def arm(self, u: UserState, placement: str) -> str:
        """Which strategy serves ``u`` on ``placement``: an experiment arm, else the mode."""
        if self.experiments is not None and u.arms:
            hit = self.experiments.assign(u.uid, placement)
            if hit is not None:
                return str(hit[1])
        return self.mode

    def reshow(self, u: UserState) -> int | None:
        """The number of re-show slots a bandit chose for ``u``'s session, if any."""
        s = u.strategy
        if s and s.startswith("reshow-"):
            try:
                return int(s[7:])
            except ValueError:
                return None
        return None

    # -- learning -----------------------------------------------------------------------------
    def _test(self, u: UserState, e: ev.Event, item: str) -> None:
        """Test-then-train against the list last served to ``u``, before ``e`` is learned."""
        serving = u.serving
        rank = serving.rank_of(item)
        for f in self._on_target:
            f(u, e, rank)
        if rank < 0:  # missed: still an example, if the item was among the candidates
            if self.mode == REALTIME and not u.dnp and serving.served is not None:
                self._learn(u, e, item, serving.served)
            return
        if not serving.served_hit and e.ts - serving.served_ts <= ATTRIBUTION_WINDOW_S:
            # one attributed interaction per shown decision
            serving.served_hit = True
            serving.attributed += 1
            self.stats["attributed"] += 1
            for f in self._on_attributed:
                f(u, e)
        if self.mode == REALTIME and not u.dnp and serving.served is not None:
            self._learn(u, e, item, serving.served)

    def _learn(self, u: UserState, e: ev.Event, item: str, served: list[str]) -> None:
        """One ranking example: the candidate the user chose (served or not), and two served
        items it passed over.
        The negatives are drawn with a generator seeded by the event (reproducible anywhere)."""
        view = self.view
        cats = u.blended_categories()
        if not is_candidate(u, view, cats, item):
            return  # not an example (most targets): no candidate vectors built for nothing
        cands = candidates(u, view, cats)
        others = [i for i in served if i != item and i in cands]
        rng = random.Random(zlib.crc32(f"{u.uid}|{e.pos}".encode("utf-8", "surrogatepass")))
        picked = rng.sample(others, min(2, len(others))) if others else []
        needed = {i: cands[i] for i in (item, *picked)}  # context features for these only
        cur = u.session.current
        fill_context(
            u,
            view,
            cats,
            u.price_range(),
            self.rules.price_slack,
            u.session.item_cat.get(cur) if cur is not None else None,
            needed,
        )
        for i in view.drop:
            for v in needed.values():
                v[i] = 0.0
        ctx = self.context_of(u)
        keys = tuple(view.pop.key_of(i) for i in (item, *picked)) if ctx else ()
        self._examples.append(
            (e.ts, e.pos, 0, tuple(needed[item]), tuple(tuple(needed[i]) for i in picked),
             ctx, keys, session_scale(u.session.n))
        )  # fmt: skip
        self.stats["learned"] += 1

    def context_of(self, u: UserState) -> tuple[str, ...]:
        """The visit's context values the ranker crosses with its candidates (none for users
        who opted out of personalization, or when no field is configured)."""
        fields = self.view.context
        if u.dnp or not fields.any:
            return ()
        weekday = -1
        if fields.weekend and u.hour >= 0:
            offset = (
                COUNTRY_UTC_OFFSET_H.get(u.country, self.view.utc_offset_h)
                if u.country
                else self.view.utc_offset_h
            )
            weekday = local_hour_weekday(u.session.last, offset)[1]
        return context_values(
            fields, u.device, u.referral, self.channels.get(u.uid), u.country, u.hour, weekday
        )

    # -- decisions ----------------------------------------------------------------------------
    def _write_decision(self, u: UserState, w: Writes) -> None:
        m = self.view
        rules = self.rules
        exp = (
            self.experiments.assign(u.uid, "home")
            if u.arms and self.experiments is not None
            else None
        )
        arm = str(exp[1]) if exp is not None else self.mode
        cats = None
        band: tuple[float, float] | None | Literal[False] = False
        st = self.stats
        if u.dnp or arm in ("none", POPULAR):
            mode = "non_personalized"
            home = fallback_home(m, rules.home_n)
            st["decisions_non_personalized"] += 1
        elif self.degraded:
            # behind capture: what was computed for the user before (their last ranked list),
            # else what is popular; they are re-decided when the flow catches up
            mode = "degraded"
            prev = u.serving.served if u.serving.ranked else None
            if prev:
                home = Ranked(list(prev), [0.0] * len(prev), ["pre"] * len(prev))
            else:
                home = fallback_home(m, rules.home_n)
            self.degraded_users[u.uid] = None
            st["decisions_degraded"] += 1
        elif arm == BATCH and self.batch_serving is not None:
            mode = "ranked"
            items = self.batch_serving.items_for(u.uid)
            home = Ranked(list(items), [0.0] * len(items), ["batch"] * len(items))
            st["decisions_ranked"] += 1
        else:
            mode = "ranked"
            cats = u.blended_categories()
            band = u.price_range()
            home = rank_home(
                u, m, rules, self.reshow(u), cats=cats, band=band, ctx=self.context_of(u)
            )
            st["decisions_ranked"] += 1
        s = u.session
        if m.high and s.last:  # how old the newest thing the models know is, at this decision
            # (a user with no event yet, e.g. only a do-not-personalize one, has no time)
            stale = s.last - m.high
            st["staleness_n"] += 1
            st["staleness_sum_s"] += stale
            if stale > st["staleness_max_s"]:
                st["staleness_max_s"] = stale
        u.serving.serve(home.items, s.last)
        u.serving.ranked = mode == "ranked"
        if mode == "ranked" and self.degraded_users:
            self.degraded_users.pop(u.uid, None)
        if cats is None:
            cats = u.blended_categories()
        # sorted()[:n], not heapq: the same order (stable), but C, not a Python heap loop
        top = sorted(cats.items(), key=_cat_order)[:5]
        intent = s.intent()
        d = decide(u, m, rules, home, s.last, mode, top, intent)
        d["v"] = 1
        d["ts"] = s.last
        d["mode"] = mode
        d["model"] = m.version
        if exp is not None:
            d["exp"] = {"name": exp[0], "arm": exp[1]}
        for f in self._on_decision:
            f(u, exp, len(home))
        if u.strategy is not None:
            d["strategy"] = u.strategy
        d["ctx"] = {"dnp": True} if u.dnp else u.context(top, band, intent)
        w.decisions.append((u.uid, self._encode(d)))

    # -- upkeep -------------------------------------------------------------------------------
    def _sweep(self, w: Writes) -> None:
        """Fold users idle longer than the session gap in the stream's event time; drop idle
        users after ``idle_ttl_s`` (their profile is stored; they are reloaded if they return).
        """
        cutoff = self.high - self.settings.session_gap_s
        users = self.users
        done = []
        for uid, u in users.items():
            if u.session.last >= cutoff:
                break
            done.append(uid)
        idle = self.idle
        resumable = self.resumable
        for uid in done:
            u = users.pop(uid)
            n = u.session.n
            if n:
                self._end_session(u, w)
                if _explicit(u.session):  # it may resume (_new_session)
                    resumable[uid] = (n, u.serving.served, u.session)
            u.serving.served = None
            u.session = Session(None, u.session.last)  # folded: keep only when it ended
            idle[uid] = u
        if self.keep_idle or not idle:
            return
        drop_before = self.high - self.settings.idle_ttl_s
        old = []
        for uid, u in idle.items():
            if u.session.last >= drop_before:
                break
            old.append(uid)
        for uid in old:
            del idle[uid]
            resumable.pop(uid, None)
            self.channels.pop(uid, None)

    def _meta(self, w: Writes, force: bool) -> None:
        now = self.clock()
        if self._fallback_dirty:
            self._fallback_dirty = False
            w.meta.append(("fallback", orjson.dumps([i for i, _ in self.view.pop.trending])))
        if not force and now - self._last_meta < 2.0:
            return
        self._last_meta = now
        stats: dict[str, Any] = dict(self.stats)
        stats["users_in_memory"] = len(self.users) + len(self.idle)
        stats["event_time"] = self.high
        stats["model"] = self.view.version
        stats["view"] = self.view.stats()
        stats["view_staleness_s_max"] = round(self.staleness_s_max, 3)
        stats["degraded"] = self.degraded
        stats["wall"] = now
        if self.first_wall:
            stats["first_wall"] = self.first_wall
        w.meta.append((f"stats:{self.run}:u{self.shard}", orjson.dumps(stats)))
        for h in self.hooks:
            h.meta(w)

    @property
    def home_part(self) -> str | None:
        """The source partition this shard's users' events come from (a replay read as one
        partition per worker), or ``None`` (live: several)."""
        if not self.sweep_by_home:
            return None
        return self.parts[self.shard % len(self.parts)]

    def _outputs(self, w: Writes, tick: int) -> list[Output]:
        """The batch's writes, and its signals (tagged ``tick``) for the item and global steps."""
        done = min(self.wm.values()) - 1 if self.wm else INF_TICK
        out: list[Output] = [("w", w)] if len(w) or w.users or w.evals else []
        records = self._records
        examples, rewards, edge = self._examples, self._rewards, self._edge
        advanced = done > self.done
        if not advanced and not records and not examples and not rewards and not edge:
            return out
        self.done = max(self.done, done)
        tick = max(tick, 0)
        view_tick = self.view.tick
        n = self.item_shards
        if records or advanced:
            primary: list[list[ItemRecord]] = [[] for _ in range(n)]
            secondary: list[list[ItemRecord]] = [[] for _ in range(n)]
            if n == 1:
                primary[0] = records
            else:
                for r in records:
                    home = item_shard_of(r[2], n)
                    primary[home].append(r)
                    prev = r[6]
                    if prev:
                        sent = {home}
                        for p in prev:
                            k = item_shard_of(p, n)
                            if k not in sent:
                                sent.add(k)
                                secondary[k].append(r)
            for i in range(n):
                out.append(
                    (
                        "i",
                        (
                            i,
                            ItemSignals(
                                self.shard,
                                self.done,
                                view_tick,
                                {tick: primary[i]} if primary[i] else {},
                                {tick: secondary[i]} if secondary[i] else {},
                            ),
                        ),
                    )
                )
            self._records = []
        out.append(
            (
                "g",
                GlobalSignals(
                    self.shard,
                    self.done,
                    view_tick,
                    {tick: examples} if examples else {},
                    {tick: rewards} if rewards else {},
                    {tick: edge} if edge else {},
                ),
            )
        )
        self._examples, self._rewards, self._edge = [], [], []
        return out

    def meta(self) -> dict[str, Any]:
        return dict(self.stats)


def _explicit(s: Session) -> bool:
    """The session's id came with its events (a session without one is named after the second
    it began: ``UserState.begin``)."""
    return s.sid is not None and s.sid != f"{int(s.start)}"


def _cat_order(kv: tuple[str, float]) -> tuple[float, str]:
    """Heaviest first, ties by name (never by a hash order)."""
    return (-kv[1], kv[0])


def _drop_pending(w: Writes, uid: str) -> None:
    """Remove a user's not-yet-written values from a batch's writes (forget, dnp)."""
    w.profiles = [kv for kv in w.profiles if kv[0] != uid]
    w.decisions = [kv for kv in w.decisions if kv[0] != uid]
