"""What the engine asks the store to write, batch by batch (plain data: no Redis here).

The engine never talks to Redis; at the end of each batch it returns one :class:`Writes`,
and the sink (``rtp.flow.sinks``) hands it to the store (``rtp.store.store``), which writes it in
one pipeline. Every write is a whole value keyed by something stable, so writing the same batch
twice (at-least-once output after a resume) leaves the same state.

Key schema (``P`` is ``Settings.key_prefix``, ``rtp:`` by default; the owner is the one step or
component that writes the key). Values of ``d:``, ``p:`` and the pages are in the compact forms
of :mod:`rtp.store.codec` (first byte 0xD2, 0xE1, 0xB1; decisions of the first compact form,
0xD1, and the JSON of earlier versions, first byte ``{``, are still read):

========================  ====================================================  ==============
key                       value (owner)                                         TTL
========================  ====================================================  ==============
``P d:{user}``            decisions per placement + the session context they    context_ttl_s
                          were made from, one write per user per batch (user
                          step)
``P p:{user}``            long-term profile, written when a session is folded   profile_ttl_s
                          (user step)
``P pages:{bucket}``      hash item -> the item's product page (co-visited      context_ttl_s,
                          neighbours); bucket = CRC-32 of the item % 1,024      refreshed by
                          (``rtp.store.store.page_key``; each field: the item   each write;
                          step owning the item; removed with evicted items)     fields: evicted
``P n:{item}``            a product page as versions before the buckets wrote   context_ttl_s
                          it: read by the client until it expires, never        (expiring)
                          written
``P items:{bucket}``      hash item -> "category|price", the catalogue; bucket  none; evicted
                          as for the pages (``rtp.store.store.item_key``; each  items removed
                          field: the item step owning the item)
``P items``               the catalogue as one hash, as versions before the     none; moved
                          buckets wrote it: read by the client, moved into the  into the
                          buckets when a flow starts, never written             buckets
``P meta:fallback``       trending items (user shard 0)                         none
``P meta:stats:{run}:u*`` a user shard's counters (that shard)                  none
``P meta:ranker``,        ranker weights, bandit summaries (global step)        none
``P meta:bandit:*``
``P meta:edge``           the edge model (edge step)                            none
``P m:{run}:{writer}``,   the model log: parts per tick and progress (item      1 day after
``P m:{run}:p:{writer}``  shards, global step; Redis log only)                  the last write
``P dnp``                 set of do-not-personalize users (Client, user step)   none
``P tomb``                hash user hash -> time of the forget (forget)         none
``P hll:users``           HyperLogLog of users seen (user steps; no ids)        none
``P deadletter``          stream of rejections: reason, detail, pos, raw        dead_letter_ttl_s
                          (sinks, the HTTP collector)
``P deadletter:pos``      sorted set of positions recorded (idempotence)        dead_letter_ttl_s
``P dlu:{user hash}``     a user's dead-letter entry ids (for forget)           dead_letter_ttl_s
``{stream}:{p}``          live stream partition p (producers; trimmed by the    until processed
                          flow below what it acknowledged)
``{stream}:config``       partitions, max_backlog (the live flow)               none
``{stream}:{p}:gaps``     entries trimmed before the flow read them (source)    none
========================  ====================================================  ==============
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
        "erase",
        "checked_at",
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
        self.forget: list[str] = []  # users forgotten: every key deleted, a tombstone left
        self.erase: list[str] = []  # users whose d: and p: are deleted (opted out; no tombstone)
        # wall time the batch's users were checked against the tombstones (None: not checked);
        # the store deletes, after writing, what it wrote of anyone forgotten since then
        self.checked_at: float | None = None
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
        self.erase.extend(other.erase)
        if other.checked_at is not None and (
            self.checked_at is None or other.checked_at < self.checked_at
        ):
            self.checked_at = other.checked_at
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
            + len(self.erase)
            + len(self.dnp_add)
            + len(self.dnp_remove)
            + len(self.rejections)
        )

    def __repr__(self) -> str:
        return (
            f"Writes(decisions={len(self.decisions)}, profiles={len(self.profiles)}, "
            f"items={len(self.items)}, meta={len(self.meta)}, forget={len(self.forget)})"
        )
