"""Quality of served content feeds: topic diversity and editorial exposure.

:class:`FeedStats` is a small accumulator the evaluation runner calls once per served feed
(``add(items, topics, picks)``); :meth:`FeedStats.report` gives, for each cut-off K:

- ``ild@K``: intra-list diversity, ``1 - mean pairwise Jaccard overlap`` of the topic sets of
  the first K items (pairs where both items have topics), averaged over feeds with at least two
  such items: 0 when every item has the same topics, 1 when no two share one;
- ``distinct_topics@K``: distinct primary topics (the first of an item's topics) in the first K
  items, and ``max_topic_share@K``, the largest share of one primary topic among them, both
  averaged over feeds;
- ``pick_exposure@K``: of the editorial picks active when a feed was served, the share shown
  in its first K items (summed over feeds), and ``feeds_with_pick@K``: the share of feeds
  served while picks were active that show at least one in the first K;

plus ``feeds`` (served feeds), ``feeds_with_active_picks`` and ``pick_impressions`` (per pick:
feeds that showed it in the first ``max(ks)``). Picklable and mergeable (one per worker).

>>> stats = FeedStats(ks=(2, 3))
>>> topics = {"a": ["politics"], "b": ["politics", "world"], "c": ["sports"]}
>>> stats.add(["a", "b", "c"], topics, picks=["c"])
>>> stats.add(["c", "a", "b"], topics, picks=["c", "x"])
>>> r = stats.report()
>>> r["ild@2"], round(r["ild@3"], 3), r["distinct_topics@3"], round(r["pick_exposure@2"], 3)
(0.75, 0.833, 2.0, 0.333)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from typing import Any

__all__ = ["FeedStats", "intra_list_diversity"]


def intra_list_diversity(topic_sets: Sequence[frozenset[str]]) -> float | None:
    """``1 - mean Jaccard(a, b)`` over the pairs of non-empty topic sets; None below two.

    Identical sets are grouped first, so a list of K items costs (distinct sets)^2, not K^2.

    >>> intra_list_diversity([frozenset({"a"}), frozenset({"a"}), frozenset({"b"})])
    0.6666666666666667
    """
    groups = Counter(s for s in topic_sets if s)
    total = sum(groups.values())
    if total < 2:
        return None
    sets = list(groups.items())
    overlap = 0.0
    for i, (a, na) in enumerate(sets):
        overlap += na * (na - 1) / 2.0  # identical sets overlap fully
        for b, nb in sets[i + 1 :]:
            inter = len(a & b)
            if inter:
                overlap += na * nb * inter / (len(a) + len(b) - inter)
    return 1.0 - overlap / (total * (total - 1) / 2.0)


class FeedStats:
    """Diversity and editorial exposure of the feeds served during an evaluation."""

    def __init__(self, ks: Sequence[int] = (5, 10, 20), top_picks: int = 50) -> None:
        ks = tuple(sorted({int(k) for k in ks}))
        if not ks or ks[0] < 1:
            raise ValueError(f"ks must be positive cut-offs, got {ks!r}")
        self.ks = ks
        self.top_picks = top_picks
        self.feeds = 0
        self.feeds_with_picks = 0
        self._ild_sum = dict.fromkeys(ks, 0.0)
        self._ild_n = dict.fromkeys(ks, 0)
        self._distinct = dict.fromkeys(ks, 0.0)
        self._max_share = dict.fromkeys(ks, 0.0)
        self._sized = dict.fromkeys(ks, 0)  # feeds with at least one item in the first K
        self._picks_active = 0
        self._picks_shown = dict.fromkeys(ks, 0)
        self._feeds_showing = dict.fromkeys(ks, 0)
        self._impressions: Counter[str] = Counter()

    def add(
        self,
        items: Sequence[str],
        topics: Mapping[str, Sequence[str]],
        picks: Collection[str] = (),
    ) -> None:
        """One served feed: its items in order, item -> topics (primary first), and the
        editorial picks that were active when it was served."""
        self.feeds += 1
        kmax = self.ks[-1]
        head = items[:kmax]
        get = topics.get
        sets = [frozenset(get(it) or ()) for it in head]
        prim = [(get(it) or ("",))[0] for it in head]
        if picks:
            self.feeds_with_picks += 1
            self._picks_active += len(picks)
            shown = [i for i, it in enumerate(head) if it in picks]
            for i in shown:
                self._impressions[head[i]] += 1
        else:
            shown = []
        for k in self.ks:
            ild = intra_list_diversity(sets[:k])
            if ild is not None:
                self._ild_sum[k] += ild
                self._ild_n[k] += 1
            first = prim[:k]
            if first:
                self._sized[k] += 1
                named = [t for t in first if t]
                self._distinct[k] += len(set(named))
                if named:
                    self._max_share[k] += max(Counter(named).values()) / len(first)
            if picks:
                n_shown = sum(1 for i in shown if i < k)
                self._picks_shown[k] += n_shown
                self._feeds_showing[k] += n_shown > 0

    def merge(self, other: FeedStats) -> None:
        """Add another accumulator with the same cut-offs."""
        if other.ks != self.ks:
            raise ValueError(f"cannot merge ks {other.ks} into {self.ks}")
        self.feeds += other.feeds
        self.feeds_with_picks += other.feeds_with_picks
        self._picks_active += other._picks_active
        self._impressions.update(other._impressions)
        for k in self.ks:
            self._ild_sum[k] += other._ild_sum[k]
            self._ild_n[k] += other._ild_n[k]
            self._distinct[k] += other._distinct[k]
            self._max_share[k] += other._max_share[k]
            self._sized[k] += other._sized[k]
            self._picks_shown[k] += other._picks_shown[k]
            self._feeds_showing[k] += other._feeds_showing[k]

    def report(self) -> dict[str, Any]:
        """The metrics as a JSON-ready dict (None where nothing was measured)."""

        def ratio(num: float, den: float) -> float | None:
            return num / den if den else None

        out: dict[str, Any] = {
            "feeds": self.feeds,
            "feeds_with_active_picks": self.feeds_with_picks,
        }
        for k in self.ks:
            out[f"ild@{k}"] = ratio(self._ild_sum[k], self._ild_n[k])
            out[f"distinct_topics@{k}"] = ratio(self._distinct[k], self._sized[k])
            out[f"max_topic_share@{k}"] = ratio(self._max_share[k], self._sized[k])
            out[f"pick_exposure@{k}"] = ratio(self._picks_shown[k], self._picks_active)
            out[f"feeds_with_pick@{k}"] = ratio(self._feeds_showing[k], self.feeds_with_picks)
        out["pick_impressions"] = dict(self._impressions.most_common(self.top_picks))
        return out
