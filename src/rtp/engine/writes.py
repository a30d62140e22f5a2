"""What the engine asks the store to write, batch by batch (plain data: no Redis here).

The engine never talks to Redis; at the end of each batch it returns one :class:`Writes`,
and the sink (``rtp.flow.sinks``) hands it to the store (``rtp.store.store``), which writes it in
one pipeline. Every write is a whole value keyed by something stable, so writing the same batch
twice (at-least-once output after a resume) leaves the same state.

Key schema (``P`` is ``Settings.key_prefix``, ``rtp:`` by default):

=====================  =========================================================  ============
key                    value                                                      TTL
=====================  =========================================================  ============
``P d:{user}``         decisions per placement + the session context they were    context_ttl
                       made from (one key, one write per user per batch, so a
                       reader never sees a context newer than its decisions)
``P p:{user}``         long-term profile (written when a session is folded)       profile_ttl
``P n:{item}``         the item's product-page recommendations (co-visited       context_ttl
                       neighbours), shared by every user on that page
``P items``            hash item -> "category|price" (for ``Client.rerank``)      none
``P meta:{name}``      fallback list, per-shard stats, experiment metrics,        none
                       bandit state summaries; overwritten whole
``P dnp``              set of do-not-personalize users                            none
``P hll:users``        HyperLogLog of users seen (the report's ``users``)         none
``P deadletter``       stream of rejections (also a JSONL file if configured)     none
``P deadletter:pos``   hash source position -> rejection (idempotent by position) none
=====================  =========================================================  ============
"""

from __future__ import annotations

from typing import Any


class Writes:
    """One batch's writes. Lists keep order; the store applies them in one pipeline."""

    __slots__ = (
        "decisions",
        "profiles",
        "items",
        "items_removed",
        "neighbours",
        "meta",
        "forget",
        "dnp_add",
        "dnp_remove",
        "users",
        "evals",
        "rejections",
    )

    def __init__(self) -> None:
        self.decisions: list[tuple[str, bytes]] = []  # (user, value) -> P d:{user}
        self.profiles: list[tuple[str, bytes]] = []  # (user, value) -> P p:{user}
        self.items: dict[str, bytes] = {}  # item -> b"category|price" into P items
        self.items_removed: list[str] = []  # items the item step evicted: out of P items
        self.neighbours: dict[str, bytes] = {}  # item -> its product list -> P n:{item}
        self.meta: list[tuple[str, bytes]] = []  # (name, value) -> P meta:{name}
        self.forget: list[str] = []  # users whose every key is deleted
        self.dnp_add: list[str] = []
        self.dnp_remove: list[str] = []
        self.users: list[str] = []  # into the users HyperLogLog
        self.evals: list[Any] = []  # evaluation records (only in `rtp evaluate`; not stored)
        self.rejections: list[Any] = []  # events the engine could not process: dead letters

    def extend(self, other: Writes) -> Writes:
        """Append ``other``'s writes after this one's (same order as writing both)."""
        self.decisions.extend(other.decisions)
        self.profiles.extend(other.profiles)
        self.items.update(other.items)
        self.items_removed.extend(other.items_removed)
        self.neighbours.update(other.neighbours)
        self.meta.extend(other.meta)
        self.forget.extend(other.forget)
        self.dnp_add.extend(other.dnp_add)
        self.dnp_remove.extend(other.dnp_remove)
        self.users.extend(other.users)
        self.evals.extend(other.evals)
        self.rejections.extend(other.rejections)
        return self

    def __len__(self) -> int:
        return (
            len(self.decisions)
            + len(self.profiles)
            + len(self.items)
            + len(self.items_removed)
            + len(self.neighbours)
            + len(self.meta)
            + len(self.forget)
            + len(self.dnp_add)
            + len(self.dnp_remove)
            + len(self.rejections)
        )

    def __repr__(self) -> str:
        return (
            f"Writes(decisions={len(self.decisions)}, profiles={len(self.profiles)}, "
            f"items={len(self.items)}, meta={len(self.meta)}, forget={len(self.forget)})"
        )
