"""What the keyed steps send each other (plain data, cheap to pickle between processes).

::

    source ─► UserBatch (one per user shard, even empty: it carries the watermark)
    user step ─► Writes (to Redis) · ItemSignals (one per item shard) · GlobalSignals
    GlobalSignals ─► the global step, less its edge observations (EdgeSignals ─► the edge step)
    item step / global step ─► Writes, and the model log (:mod:`rtp.engine.log`)
    edge step ─► Writes (``meta:edge``; no model log: nothing waits for it)

Every user-step output carries the step's ``done`` tick: every tick ``<= done`` is finished at
that user shard (all its events processed, all its signals sent). A downstream step completes a
tick once every user shard's ``done`` reached it.
"""

from __future__ import annotations

from typing import Any

from rtp.capture.events import Event

INF_TICK = 1 << 62  # a watermark past every tick: the source has ended


def canonical(x: tuple[Any, ...]) -> tuple[Any, Any]:
    """The canonical order of a signal ``(ts, key, ...)``: event time, then its stable key."""
    return (x[0], x[1])


class UserBatch:
    """One user shard's share of a source batch.

    ``tick`` is the tick of every event in it, ``wm`` the source partition's watermark after
    it (no event of a tick ``< wm`` will follow from that partition), ``high`` the partition's
    event-time high-water mark (sessions sweep by it). ``read`` and ``rejected`` count the
    source records once (on one shard's copy). ``need`` is the tick of the item models its
    decisions use (``None``: ``tick - Settings.model_lag_ticks``).
    """

    __slots__ = ("events", "tick", "part", "wm", "high", "read", "rejected", "lag_ref", "need")

    def __init__(
        self,
        events: list[Event],
        tick: int,
        part: str,
        wm: int,
        high: float,
        read: int = 0,
        rejected: int = 0,
        lag_ref: float | None = None,
        need: int | None = None,
    ) -> None:
        self.events = events
        self.tick = tick
        self.part = part
        self.wm = wm
        self.high = high
        self.read = read
        self.rejected = rejected
        self.lag_ref = lag_ref
        self.need = need

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            UserBatch,
            (
                self.events,
                self.tick,
                self.part,
                self.wm,
                self.high,
                self.read,
                self.rejected,
                self.lag_ref,
                self.need,
            ),
        )

    def __repr__(self) -> str:
        return (
            f"UserBatch(part={self.part!r}, tick={self.tick}, wm={self.wm}, "
            f"events={len(self.events)})"
        )


class ItemSignals:
    """A user shard's item records for one item shard, by tick, and its ``done`` tick.

    ``primary``: records of events whose item the item shard owns (it publishes them);
    ``secondary``: records the shard needs only for the lists of its items that appear among
    the previous items (co-visitation links towards another shard's item).
    """

    __slots__ = ("user_shard", "done", "view_tick", "primary", "secondary")

    def __init__(
        self,
        user_shard: int,
        done: int,
        view_tick: int,
        primary: dict[int, list[Any]],
        secondary: dict[int, list[Any]],
    ) -> None:
        self.user_shard = user_shard
        self.done = done
        self.view_tick = view_tick
        self.primary = primary
        self.secondary = secondary

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            ItemSignals,
            (self.user_shard, self.done, self.view_tick, self.primary, self.secondary),
        )


class GlobalSignals:
    """A user shard's signals for the global step, by tick: ranking examples, bandit rewards,
    edge-model observations; and its ``done`` tick and view tick."""

    __slots__ = ("user_shard", "done", "view_tick", "examples", "rewards", "edge")

    def __init__(
        self,
        user_shard: int,
        done: int,
        view_tick: int,
        examples: dict[int, list[Any]],
        rewards: dict[int, list[Any]],
        edge: dict[int, list[Any]],
    ) -> None:
        self.user_shard = user_shard
        self.done = done
        self.view_tick = view_tick
        self.examples = examples
        self.rewards = rewards
        self.edge = edge

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            GlobalSignals,
            (self.user_shard, self.done, self.view_tick, self.examples, self.rewards, self.edge),
        )


class EdgeSignals:
    """A user shard's edge-model observations, by tick, and its ``done`` tick: what
    :func:`split_edge` takes out of a :class:`GlobalSignals` for the edge step."""

    __slots__ = ("user_shard", "done", "edge")

    def __init__(self, user_shard: int, done: int, edge: dict[int, list[Any]]) -> None:
        self.user_shard = user_shard
        self.done = done
        self.edge = edge

    def __reduce__(self) -> tuple[Any, ...]:
        return (EdgeSignals, (self.user_shard, self.done, self.edge))


def split_edge(msg: GlobalSignals) -> EdgeSignals:
    """Takes the edge observations out of ``msg`` (left with none) into the edge step's
    message. Every global message gives one, even empty: it carries the ``done`` tick."""
    edge, msg.edge = msg.edge, {}
    return EdgeSignals(msg.user_shard, msg.done, edge)
