"""What rtp showed a user and what followed: the served home list (for test-then-train and
attribution), the offer and the chat assist with their caps and cooldowns.

Part of the per-user state (:class:`rtp.session.state.UserState`): the decisions read and
update it, the user step reads it to learn from what the user did next.
"""

from __future__ import annotations

from typing import Any


class Serving:
    """The last served home list and the per-visit offer and assist bookkeeping."""

    __slots__ = (
        "served",
        "served_ts",
        "served_hit",
        "ranked",
        "attributed",
        "offer",
        "offer_until",
        "offer_ts",
        "offer_n",
        "assist_ts",
        "assist_n",
        "assist_key",
        "assist_done",
    )

    def __getstate__(self) -> tuple[Any, ...]:  # compact and fast to pickle (snapshots)
        return tuple([getattr(self, s) for s in self.__slots__])

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        for s, v in zip(self.__slots__, state, strict=True):
            setattr(self, s, v)

    def __init__(self) -> None:
        self.served: list[str] | None = None  # the home items last served
        self.served_ts = 0.0
        self.served_hit = False  # an interaction was attributed to that list already
        self.ranked = False  # that list was ranked for the user (not a fallback)
        self.assist_ts = 0.0  # last chat offer (a cooldown across visits)
        self.new_session()

    def new_session(self) -> None:
        """Reset what is counted per visit (caps); cooldowns and the served list carry over."""
        self.attributed = 0
        self.offer: dict[str, Any] | None = None
        self.offer_until = 0.0
        self.offer_ts = 0.0  # when this visit issued its offer (folded into the profile)
        self.offer_n = 0
        self.assist_n = 0
        self.assist_key: str | None = None
        self.assist_done: list[str] = []

    def serve(self, items: list[str], ts: float) -> None:
        """Record the home list just served at event time ``ts``."""
        self.served = items
        self.served_ts = ts
        self.served_hit = False

    def rank_of(self, item: str) -> int:
        """0-based position of ``item`` in the served list, -1 if absent (or nothing served)."""
        served = self.served
        if served is None:
            return -1
        try:
            return served.index(item)
        except ValueError:
            return -1
