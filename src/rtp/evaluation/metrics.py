"""Prequential (test-then-train) evaluation of served recommendation lists.

During a replay every target event (an event that follows another one in the same session) is
scored against the list that was served just *before* the event was learned; the engine turns
that into one :class:`EvalRecord` and feeds it to a :class:`Prequential` accumulator. The
accumulator keeps compact arrays (a few bytes per target, plus the target's key for pairing), so
a replay of 100k targets costs a few MB, and :meth:`Prequential.report` turns them into

- ``hr@K`` (hit rate: the target is in the top K), ``mrr@K`` (reciprocal rank, 0 beyond K) and
  ``ndcg@K`` (one relevant item: ``1/log2(rank+2)`` within the top K) with 95 % percentile
  bootstrap intervals over targets,
- the same metrics for the subsets ``cart_purchase``, ``new_to_session`` and ``reviews``,
- ``reshow_share_of_hits@K``: how many of the hits were items the session had already seen,
- ``coverage@K``: distinct items shown in the top K of served lists over distinct items seen,
- ``targets_by_source``: how many targets came from which file (the key is the event's source
  position ``"<file name>:<line>"``; everything before the last ``:`` names the source),
- a ``series`` of hr@K / mrr@K per event-time bucket for plots over replay time: the raw
  per-bucket counts (``targets``, ``hits@K``) and values, plus a moving average over
  :data:`SMOOTH_BUCKETS` buckets weighted by targets (``series["smooth"]``). The bucket width is
  fit to the span of the targets (:func:`nice_bucket_s`: minutes for hours of data, hours for
  days and weeks, 50 to 150 buckets) unless one is given.

Bootstrap without resampling arrays: the metrics of a target only depend on its rank category
(``0 .. maxK-1`` or "miss"), so resampling ``n`` targets with replacement is exactly a multinomial
draw of ``n`` over the category frequencies. ``report`` draws ``n_boot`` multinomials (a
``n_boot x (maxK+1)`` matrix) instead of ``n_boot x n`` indices: the cost does not grow with the
number of targets. :func:`paired_lift` does the same over the joint categories of two modes.

:func:`plot_series` draws reports of several modes into one PNG (matplotlib, Agg, no pyplot):
the moving average as a line (broken where a bucket has no targets), the raw buckets as faint
dots behind it.

>>> p = Prequential(ks=(5,))
>>> for i in range(600):  # ten hours of targets, one a minute; every fifth one a hit at rank 0
...     p.add(EvalRecord(1_699_999_800.0 + 60 * i, f"f.jsonl:{i}", "u", "x", "product_view",
...                      0 if i % 5 == 0 else -1, False))
>>> s = p.series()
>>> s["bucket_s"], len(s["t"])  # 10 hours: 5-minute buckets
(300.0, 120)
>>> s["targets"][0], s["hits@5"][0], round(s["smooth"]["hr@5"][60], 3)
(5, 1, 0.2)
>>> p.report(n_boot=0)["targets_by_source"]
{'f.jsonl': 600}
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from datetime import timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

CART_PURCHASE_TYPES = frozenset({"add_to_cart", "purchase"})
DEFAULT_KS = (5, 10, 20)
DEFAULT_BUCKET_S = 600.0  # kept for callers that want the old fixed width; the default is fit
# "Nice" bucket widths (seconds) that :func:`nice_bucket_s` chooses from.
NICE_BUCKETS_S = (
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0,
    60.0, 120.0, 300.0, 600.0, 900.0, 1_800.0,
    3_600.0, 7_200.0, 10_800.0, 21_600.0, 43_200.0,
    86_400.0, 2 * 86_400.0, 7 * 86_400.0, 14 * 86_400.0, 28 * 86_400.0,
)  # fmt: skip
MAX_BUCKETS = 150
SMOOTH_BUCKETS = 7  # centred moving-average window (buckets), weighted by targets
CI_LEVEL = 0.95

_SEEN = 1  # flag bits of one target
_CART = 2

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class EvalRecord:
    """One scored target: where the target item was in the list served just before it."""

    __slots__ = ("ts", "key", "user", "item", "etype", "rank", "seen", "listed")

    def __init__(
        self,
        ts: float,
        key: str,
        user: str,
        item: str,
        etype: str,
        rank: int,
        seen: bool,
        listed: tuple[str, ...] | None = None,
    ) -> None:
        self.ts = ts
        """Event time of the target (unix seconds)."""
        self.key = key
        """Stable target id (the event's source position): pairs the records of two modes."""
        self.user = user
        self.item = item
        """The target item."""
        self.etype = etype
        """Event type of the target (``product_view``, ``add_to_cart``, ...)."""
        self.rank = rank
        """0-based position of the target item in the served list, -1 if it was not listed."""
        self.seen = seen
        """The item was already interacted with earlier in the same session (a re-view)."""
        self.listed = listed
        """The served list, or None (the engine then reports it with ``note_served``)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            EvalRecord,
            (
                self.ts,
                self.key,
                self.user,
                self.item,
                self.etype,
                self.rank,
                self.seen,
                self.listed,
            ),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EvalRecord):
            return NotImplemented
        return bool(self.__reduce__()[1] == other.__reduce__()[1])

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"EvalRecord(ts={self.ts!r}, key={self.key!r}, user={self.user!r}, "
            f"item={self.item!r}, etype={self.etype!r}, rank={self.rank!r}, seen={self.seen!r})"
        )


def _ci(samples: FloatArray, level: float) -> list[float]:
    """Percentile interval of bootstrap samples (NaN samples, e.g. 0/0 ratios, are ignored)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return [math.nan, math.nan]
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return [float(lo), float(hi)]


def _stat(value: float, samples: FloatArray | None, level: float) -> dict[str, Any]:
    return {"value": value, "ci": None if samples is None else _ci(samples, level)}


def _weights(ks: Sequence[int]) -> tuple[FloatArray, FloatArray]:
    """Per rank category 0..maxK (the last one is "miss"): reciprocal rank and DCG gain."""
    kmax = max(ks)
    ranks = np.arange(kmax, dtype=np.float64)
    rr = np.append(1.0 / (ranks + 1.0), 0.0)
    gain = np.append(1.0 / np.log2(ranks + 2.0), 0.0)
    return rr, gain


def _rank_metrics(
    counts: npt.NDArray[Any],
    n: int,
    ks: Sequence[int],
    rr: FloatArray,
    gain: FloatArray,
) -> dict[str, FloatArray]:
    """hr/mrr/ndcg@K from category counts; ``counts`` is ``(..., maxK+1)``."""
    c = counts.astype(np.float64)
    out: dict[str, FloatArray] = {}
    for k in ks:
        head = c[..., :k]
        out[f"hr@{k}"] = head.sum(axis=-1) / n
        out[f"mrr@{k}"] = head @ rr[:k] / n
        out[f"ndcg@{k}"] = head @ gain[:k] / n
    return out


def source_of(key: str) -> str:
    """The source of a target key ``"<file name>:<line>"``: everything before the last ``:``
    (``""`` for a key without one).

    >>> source_of("UserBehavior.csv:1042"), source_of("events:0:17"), source_of("k7")
    ('UserBehavior.csv', 'events:0', '')
    """
    return key.rpartition(":")[0]


def format_sources(counts: Mapping[str, int]) -> str:
    """One line for a report: targets per source, largest first.

    >>> format_sources({"warmup.jsonl": 0, "test.jsonl": 12345, "": 2})
    'targets by source: test.jsonl 12,345, (no source) 2, warmup.jsonl 0'
    """
    parts = [
        f"{name or '(no source)'} {n:,}"
        for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    return "targets by source: " + (", ".join(parts) if parts else "none")


def nice_bucket_s(span_s: float, max_buckets: int = MAX_BUCKETS) -> float:
    """The smallest width of :data:`NICE_BUCKETS_S` that cuts ``span_s`` into at most
    ``max_buckets`` buckets (with a 2-2.5x step between nice widths: at least ~40 % of
    ``max_buckets`` for spans from a few minutes to a year).

    >>> nice_bucket_s(3 * 3_600.0), nice_bucket_s(8 * 86_400.0), nice_bucket_s(0.0)
    (120.0, 7200.0, 1.0)
    """
    if max_buckets < 1:
        raise ValueError(f"max_buckets must be positive, got {max_buckets!r}")
    for width in NICE_BUCKETS_S:
        if span_s / width < max_buckets:
            return width
    return NICE_BUCKETS_S[-1] * math.ceil(span_s / (NICE_BUCKETS_S[-1] * max_buckets))


def moving_average(
    buckets: npt.NDArray[np.int64],
    weights: FloatArray,
    sums: FloatArray,
    window: int = SMOOTH_BUCKETS,
) -> FloatArray:
    """Centred moving average over ``window`` buckets, weighted: ``sum(sums) / sum(weights)``
    over the buckets within ``window // 2`` bucket numbers of each bucket.

    ``buckets`` are the sorted, distinct bucket numbers that hold data (empty buckets are absent
    and weigh nothing), ``weights`` their targets and ``sums`` their summed metric (hits, or
    reciprocal ranks). At the ends the window is cut short. One value per given bucket.
    """
    if window < 1:
        raise ValueError(f"window must be positive, got {window!r}")
    if buckets.size == 0:
        return np.zeros(0, dtype=np.float64)
    half = window // 2
    lo = np.searchsorted(buckets, buckets - half, side="left")
    hi = np.searchsorted(buckets, buckets + half, side="right")
    cw = np.concatenate(([0.0], np.cumsum(weights, dtype=np.float64)))
    cs = np.concatenate(([0.0], np.cumsum(sums, dtype=np.float64)))
    w = cw[hi] - cw[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        out: FloatArray = np.where(w > 0, (cs[hi] - cs[lo]) / np.where(w > 0, w, 1.0), np.nan)
    return out


def _nan_metrics(ks: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ks:
        for name in ("hr", "mrr", "ndcg"):
            out[f"{name}@{k}"] = {"value": math.nan, "ci": [math.nan, math.nan]}
    return out


class Prequential:
    """Accumulates scored targets of one mode and reports metrics with bootstrap intervals.

    Per target it keeps the rank (``array('i')``), event time (``array('d')``), two flag bits
    (``array('B')``) and the key (for :func:`paired_lift`), and counts targets per source
    (:func:`source_of` the key). Picklable (bytewax state).

    ``bucket_s`` fixes the width of :meth:`series` buckets; None (the default) fits it to the
    span of the targets with :func:`nice_bucket_s`.

    For coverage, call :meth:`note_served` with each served list (only its first ``max(ks)``
    items are read) and :meth:`note_item` with the item of every event in the stream; ``add``
    does both for you when the record carries ``listed`` (and always notes the target item).
    """

    def __init__(
        self,
        ks: Sequence[int] = DEFAULT_KS,
        seed: int = 0,
        bucket_s: float | None = None,
    ) -> None:
        ks = tuple(sorted({int(k) for k in ks}))
        if not ks or ks[0] < 1:
            raise ValueError(f"ks must be positive cut-offs, got {ks!r}")
        if bucket_s is not None and bucket_s <= 0:
            raise ValueError(f"bucket_s must be positive, got {bucket_s!r}")
        self.ks = ks
        self.kmax = ks[-1]
        self.seed = seed
        self.bucket_s = None if bucket_s is None else float(bucket_s)
        self._rank = array("i")
        self._ts = array("d")
        self._flags = array("B")
        self._keys: list[str] = []
        self._items: set[str] = set()
        self._best: dict[str, int] = {}  # served item -> best (smallest) position seen
        self._sources: dict[str, int] = {}  # source (file name) -> targets

    def __len__(self) -> int:
        return len(self._rank)

    # -- feeding -------------------------------------------------------------------------------

    def add(self, record: EvalRecord) -> None:
        """Add one scored target."""
        self._rank.append(record.rank)
        self._ts.append(record.ts)
        self._flags.append(
            (_SEEN if record.seen else 0) | (_CART if record.etype in CART_PURCHASE_TYPES else 0)
        )
        key = record.key
        self._keys.append(key)
        source = key.rpartition(":")[0]
        self._sources[source] = self._sources.get(source, 0) + 1
        self._items.add(record.item)
        if record.listed is not None:
            self.note_served(record.listed)

    def add_many(self, records: Iterable[EvalRecord]) -> None:
        """Add scored targets."""
        for r in records:
            self.add(r)

    def note_item(self, item: str) -> None:
        """An item occurred in the stream (the denominator of coverage)."""
        self._items.add(item)

    def note_served(self, items: Sequence[str]) -> None:
        """A list was served; its top ``max(ks)`` items count towards ``coverage@K``."""
        best = self._best
        for pos, item in enumerate(items[: self.kmax]):
            old = best.get(item)
            if old is None or pos < old:
                best[item] = pos

    def merge(self, other: Prequential) -> None:
        """Add everything of another accumulator with the same cut-offs (e.g. another worker)."""
        if other.ks != self.ks:
            raise ValueError(f"cannot merge ks {other.ks} into {self.ks}")
        self._rank.extend(other._rank)
        self._ts.extend(other._ts)
        self._flags.extend(other._flags)
        self._keys.extend(other._keys)
        self._items |= other._items
        for item, pos in other._best.items():
            old = self._best.get(item)
            if old is None or pos < old:
                self._best[item] = pos
        for source, n in other._sources.items():
            self._sources[source] = self._sources.get(source, 0) + n

    # -- arrays ----------------------------------------------------------------------------------

    def categories(self) -> IntArray:
        """Rank category per target: the rank if it is below ``max(ks)``, else ``max(ks)``."""
        if not self._rank:
            return np.zeros(0, dtype=np.int64)
        r = np.frombuffer(self._rank, dtype=f"i{self._rank.itemsize}").astype(np.int64)
        return np.where((r >= 0) & (r < self.kmax), r, self.kmax)

    def flags(self) -> npt.NDArray[np.uint8]:
        """Flag bits per target (1: re-view, 2: add_to_cart or purchase)."""
        if not self._flags:
            return np.zeros(0, dtype=np.uint8)
        return np.frombuffer(self._flags, dtype=np.uint8).copy()

    def times(self) -> FloatArray:
        """Event time per target."""
        if not self._ts:
            return np.zeros(0, dtype=np.float64)
        return np.frombuffer(self._ts, dtype=np.float64).copy()

    def keys(self) -> list[str]:
        """Key per target, in the order added."""
        return self._keys

    def targets_by_source(self) -> dict[str, int]:
        """Targets per source (:func:`source_of` their keys: the file name), sorted by name."""
        return dict(sorted(self._sources.items()))

    # -- report ----------------------------------------------------------------------------------

    def _metrics(
        self,
        cats: IntArray,
        n_boot: int,
        rng: np.random.Generator,
        level: float,
    ) -> dict[str, Any]:
        n = int(cats.size)
        out: dict[str, Any] = {"targets": n}
        if n == 0:
            out.update(_nan_metrics(self.ks))
            return out
        rr, gain = _weights(self.ks)
        counts = np.bincount(cats, minlength=self.kmax + 1)
        point = _rank_metrics(counts, n, self.ks, rr, gain)
        boot: dict[str, FloatArray] = {}
        if n_boot > 0:
            draws = rng.multinomial(n, counts / n, size=n_boot)
            boot = _rank_metrics(draws, n, self.ks, rr, gain)
        for name, value in point.items():
            out[name] = _stat(float(value), boot.get(name), level)
        return out

    def report(
        self,
        n_boot: int = 1000,
        level: float = CI_LEVEL,
        bucket_s: float | None = None,
    ) -> dict[str, Any]:
        """All metrics as a JSON-ready dict (NaN where undefined; ``ci`` is None if n_boot=0).

        Keys: ``targets``, ``ks``, ``hr@K``/``mrr@K``/``ndcg@K`` (``{"value", "ci": [lo, hi]}``),
        ``cart_purchase``/``new_to_session``/``reviews`` (``targets`` and the same metrics),
        ``reshow_share_of_hits@K``, ``coverage@K`` (a float), ``items_seen``,
        ``targets_by_source`` (``{file name: targets}``), ``series`` (:meth:`series`).
        """
        cats = self.categories()
        flags = self.flags()
        seen = (flags & _SEEN) != 0
        cart = (flags & _CART) != 0
        out: dict[str, Any] = {"ks": list(self.ks), "n_boot": n_boot, "ci_level": level}
        out.update(self._metrics(cats, n_boot, np.random.default_rng([self.seed, 0]), level))
        subsets = (("cart_purchase", cart), ("new_to_session", ~seen), ("reviews", seen))
        for i, (name, mask) in enumerate(subsets, start=1):
            out[name] = self._metrics(
                cats[mask], n_boot, np.random.default_rng([self.seed, i]), level
            )
        out.update(self._reshow(cats, seen, n_boot, np.random.default_rng([self.seed, 9]), level))
        out.update(self.coverage())
        out["targets_by_source"] = self.targets_by_source()
        out["series"] = self.series(bucket_s)
        return out

    def _reshow(
        self,
        cats: IntArray,
        seen: npt.NDArray[np.bool_],
        n_boot: int,
        rng: np.random.Generator,
        level: float,
    ) -> dict[str, Any]:
        """Share of hits@K that were re-views; bootstrap over joint (rank, seen) categories."""
        n = int(cats.size)
        width = self.kmax + 1
        out: dict[str, Any] = {}
        if n == 0:
            for k in self.ks:
                out[f"reshow_share_of_hits@{k}"] = {"value": math.nan, "ci": [math.nan, math.nan]}
            return out
        joint = np.bincount(cats + width * seen.astype(np.int64), minlength=2 * width)
        draws = rng.multinomial(n, joint / n, size=n_boot) if n_boot > 0 else None
        for k in self.ks:
            hits_seen = joint[width : width + k].sum()
            hits = joint[:k].sum() + hits_seen
            value = float(hits_seen / hits) if hits else math.nan
            samples: FloatArray | None = None
            if draws is not None:
                bs = draws[:, width : width + k].sum(axis=1).astype(np.float64)
                bh = draws[:, :k].sum(axis=1) + bs
                with np.errstate(invalid="ignore", divide="ignore"):
                    samples = np.where(bh > 0, bs / np.maximum(bh, 1), np.nan)
            out[f"reshow_share_of_hits@{k}"] = _stat(value, samples, level)
        return out

    def coverage(self) -> dict[str, Any]:
        """``coverage@K``: distinct items in the top K of served lists / distinct items seen.

        The denominator is the union of noted items and served items, so coverage is <= 1.
        """
        best = self._best
        universe = len(self._items) + sum(1 for item in best if item not in self._items)
        out: dict[str, Any] = {"items_seen": universe}
        pos = np.fromiter(best.values(), dtype=np.int64, count=len(best))
        for k in self.ks:
            out[f"coverage@{k}"] = float((pos < k).sum() / universe) if universe else math.nan
        return out

    def series(self, bucket_s: float | None = None, window: int = SMOOTH_BUCKETS) -> dict[str, Any]:
        """hr@K and mrr@K per event-time bucket, raw and as a moving average.

        ``bucket_s``: the width (default: the accumulator's, else fit to the span of the
        targets by :func:`nice_bucket_s`). Only buckets with targets are listed (an empty bucket
        is a gap, never a zero). Keys: ``bucket_s``; ``t`` (bucket start, unix seconds),
        ``targets``, ``hits@K`` (targets in the top K), ``hr@K``, ``mrr@K``, one entry per
        listed bucket; ``smooth``: ``window`` and the centred moving averages ``hr@K`` and
        ``mrr@K`` over ``window`` buckets weighted by targets (:func:`moving_average`), aligned
        with ``t``.
        """
        width = bucket_s if bucket_s is not None else self.bucket_s
        ts = self.times()
        if width is None:
            width = nice_bucket_s(float(ts.max() - ts.min())) if ts.size else DEFAULT_BUCKET_S
        width = float(width)
        if width <= 0:
            raise ValueError(f"bucket_s must be positive, got {width!r}")
        out: dict[str, Any] = {"bucket_s": width, "t": [], "targets": []}
        smooth: dict[str, Any] = {"window": window, "weights": "targets"}
        for k in self.ks:
            out[f"hits@{k}"] = []
            out[f"hr@{k}"] = []
            out[f"mrr@{k}"] = []
            smooth[f"hr@{k}"] = []
            smooth[f"mrr@{k}"] = []
        out["smooth"] = smooth
        if not ts.size:
            return out
        cats = self.categories()
        bucket = np.floor(ts / width).astype(np.int64)
        starts, inv = np.unique(bucket, return_inverse=True)
        m = starts.size
        n = np.bincount(inv, minlength=m).astype(np.float64)
        rr, _ = _weights(self.ks)
        out["t"] = (starts * width).astype(np.float64).tolist()
        out["targets"] = n.astype(np.int64).tolist()
        for k in self.ks:
            hit = cats < k
            hits = np.bincount(inv, weights=hit, minlength=m).astype(np.float64)
            rrs = np.bincount(inv, weights=rr[cats] * hit, minlength=m).astype(np.float64)
            out[f"hits@{k}"] = hits.astype(np.int64).tolist()
            out[f"hr@{k}"] = (hits / n).tolist()
            out[f"mrr@{k}"] = (rrs / n).tolist()
            smooth[f"hr@{k}"] = moving_average(starts, n, hits, window).tolist()
            smooth[f"mrr@{k}"] = moving_average(starts, n, rrs, window).tolist()
        return out


def _by_key(p: Prequential) -> dict[str, int]:
    """Key -> index of the target (the last one if a key repeats)."""
    return {key: i for i, key in enumerate(p.keys())}


def paired_lift(
    a: Prequential,
    b: Prequential,
    k: int = 20,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = CI_LEVEL,
) -> dict[str, Any]:
    """hr@k and mrr@k of ``a`` vs ``b`` on the targets both scored (joined by ``key``).

    Returns ``paired_targets``, ``only_a``, ``only_b``, and for ``hr@k`` and ``mrr@k``: the value
    of ``a``, of ``b``, ``ratio`` (a/b) and ``diff`` (a-b) with paired bootstrap intervals
    (the same resampled targets for both modes), plus ``unpaired_ratio`` over all targets of each
    accumulator (independent bootstraps). Ratios with a zero denominator are NaN.
    """
    if k < 1 or k > a.kmax or k > b.kmax:
        raise ValueError(f"k={k} must be within the cut-offs of both accumulators")
    rng = np.random.default_rng([seed, 1])
    ia, ib = _by_key(a), _by_key(b)
    common = [key for key in ia if key in ib]
    ca_all, cb_all = a.categories(), b.categories()
    ix_a = np.fromiter((ia[key] for key in common), dtype=np.int64, count=len(common))
    ix_b = np.fromiter((ib[key] for key in common), dtype=np.int64, count=len(common))
    ca = np.minimum(ca_all[ix_a], k)
    cb = np.minimum(cb_all[ix_b], k)
    n = len(common)
    width = k + 1
    rr = np.append(1.0 / np.arange(1.0, k + 1.0), 0.0)
    hit = np.append(np.ones(k), 0.0)
    out: dict[str, Any] = {
        "k": k,
        "paired_targets": n,
        "only_a": len(ia) - n,
        "only_b": len(ib) - n,
        "a": {},
        "b": {},
        "ratio": {},
        "diff": {},
        "unpaired_ratio": {},
    }
    joint = np.bincount(ca * width + cb, minlength=width * width) if n else None
    draws = (
        rng.multinomial(n, joint / n, size=n_boot).reshape(n_boot, width, width)
        if joint is not None and n_boot > 0
        else None
    )
    for name, w in (("hr", hit), ("mrr", rr)):
        label = f"{name}@{k}"
        if joint is None:
            for part in ("a", "b", "ratio", "diff"):
                out[part][label] = {"value": math.nan, "ci": [math.nan, math.nan]}
        else:
            m = joint.reshape(width, width).astype(np.float64)
            va = float(m.sum(axis=1) @ w / n)
            vb = float(m.sum(axis=0) @ w / n)
            sa = sb = None
            if draws is not None:
                d = draws.astype(np.float64)
                sa = d.sum(axis=2) @ w / n
                sb = d.sum(axis=1) @ w / n
            ratio_samples = diff_samples = None
            if sa is not None and sb is not None:
                with np.errstate(invalid="ignore", divide="ignore"):
                    ratio_samples = np.where(sb > 0, sa / np.where(sb > 0, sb, 1.0), np.nan)
                diff_samples = sa - sb
            out["a"][label] = _stat(va, sa, level)
            out["b"][label] = _stat(vb, sb, level)
            out["ratio"][label] = _stat(va / vb if vb > 0 else math.nan, ratio_samples, level)
            out["diff"][label] = _stat(va - vb, diff_samples, level)
        out["unpaired_ratio"][label] = _unpaired_ratio(
            np.minimum(ca_all, k), np.minimum(cb_all, k), w, n_boot, rng, level
        )
    return out


def _unpaired_ratio(
    ca: IntArray,
    cb: IntArray,
    w: FloatArray,
    n_boot: int,
    rng: np.random.Generator,
    level: float,
) -> dict[str, Any]:
    if ca.size == 0 or cb.size == 0:
        return {"value": math.nan, "ci": [math.nan, math.nan]}
    width = w.size
    pa = np.bincount(ca, minlength=width) / ca.size
    pb = np.bincount(cb, minlength=width) / cb.size
    va, vb = float(pa @ w), float(pb @ w)
    samples = None
    if n_boot > 0:
        sa = rng.multinomial(ca.size, pa, size=n_boot) @ w / ca.size
        sb = rng.multinomial(cb.size, pb, size=n_boot) @ w / cb.size
        with np.errstate(invalid="ignore", divide="ignore"):
            samples = np.where(sb > 0, sa / np.where(sb > 0, sb, 1.0), np.nan)
    return _stat(va / vb if vb > 0 else math.nan, samples, level)


def _width_label(seconds: float) -> str:
    """``600.0`` -> ``"10 min"``, ``7200.0`` -> ``"2 h"``, ``86400.0`` -> ``"1 d"``."""
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _plot_lines(
    series: Mapping[str, Any], k: int, window: int
) -> tuple[list[float], list[float], list[float], list[float], list[float], list[float]]:
    """Days (matplotlib date numbers), raw hr/mrr (per bucket) and the smoothed hr/mrr with a
    NaN at every gap, from a :meth:`Prequential.series` (older reports without ``smooth`` or
    ``hits@K`` are smoothed here from ``hr@K * targets``)."""
    t = [float(x) for x in series.get("t", [])]
    counts = [float(x) for x in series.get("targets", [])][: len(t)]
    raw_hr = [float(x) for x in series.get(f"hr@{k}", [])][: len(t)]
    raw_mrr = [float(x) for x in series.get(f"mrr@{k}", [])][: len(t)]
    if not t or len(counts) != len(t) or len(raw_hr) != len(t) or len(raw_mrr) != len(t):
        return [], [], [], [], [], []
    width = float(series.get("bucket_s") or (min(np.diff(t)) if len(t) > 1 else 1.0))
    buckets = np.rint(np.asarray(t) / width).astype(np.int64)
    smooth = series.get("smooth") or {}
    sm_hr, sm_mrr = smooth.get(f"hr@{k}"), smooth.get(f"mrr@{k}")
    if sm_hr is None or sm_mrr is None or len(sm_hr) != len(t) or len(sm_mrr) != len(t):
        n = np.asarray(counts)
        sm_hr = moving_average(buckets, n, np.asarray(raw_hr) * n, window).tolist()
        sm_mrr = moving_average(buckets, n, np.asarray(raw_mrr) * n, window).tolist()
    days: list[float] = []
    hr: list[float] = []
    mrr: list[float] = []
    line_days: list[float] = []
    line_hr: list[float] = []
    line_mrr: list[float] = []
    for i, start in enumerate(t):
        if counts[i] <= 0:
            continue
        mid = (start + width / 2.0) / 86_400.0
        if i and buckets[i] - buckets[i - 1] > 1:  # empty buckets in between: break the line
            line_days.append(mid)
            line_hr.append(math.nan)
            line_mrr.append(math.nan)
        days.append(mid)
        hr.append(raw_hr[i])
        mrr.append(raw_mrr[i])
        line_days.append(mid)
        line_hr.append(float(sm_hr[i]))
        line_mrr.append(float(sm_mrr[i]))
    return days, hr, mrr, line_days, line_hr, line_mrr


def _ylim(raw: list[float], line: list[float]) -> tuple[float, float] | None:
    """Y limits that show every smoothed value and the central 96 % of the raw dots (a bucket
    of one or two targets at 0 or 1 must not flatten the lines), padded by 8 %."""
    smooth = np.asarray(line, dtype=np.float64)
    smooth = smooth[np.isfinite(smooth)]
    dots = np.asarray(raw, dtype=np.float64)
    dots = dots[np.isfinite(dots)]
    if not smooth.size and not dots.size:
        return None
    parts = [smooth] if smooth.size else []
    if dots.size:
        parts.append(np.percentile(dots, [2.0, 98.0]))
    values = np.concatenate(parts)
    lo, hi = float(values.min()), float(values.max())
    pad = max(hi - lo, 0.01) * 0.08
    return max(0.0, lo - pad), min(1.0, hi + pad) if hi <= 1.0 else hi + pad


def plot_series(
    reports: Mapping[str, Mapping[str, Any]],
    path: str | Path,
    k: int = 20,
) -> Path:
    """Write a PNG: hr@k and mrr@k over replay time (one line per mode) and overall hr@k bars.

    ``reports`` maps a mode name (``realtime``, ``batch``, ``popular``, ``sknn``, ...) to its
    :meth:`Prequential.report`. Each mode is drawn as the moving average of its ``series``
    (``series["smooth"]``: a centred window weighted by targets), broken where buckets hold no
    targets, over faint dots of the raw per-bucket values. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 8.5), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 2, width_ratios=(3, 1))
    ax_hr = fig.add_subplot(grid[0, 0])
    ax_mrr = fig.add_subplot(grid[1, 0], sharex=ax_hr)
    ax_bar = fig.add_subplot(grid[:, 1])
    names = list(reports)
    values: list[float] = []
    errors: list[list[float]] = [[], []]
    widths: set[float] = set()
    windows: set[int] = set()
    seen: dict[str, tuple[list[float], list[float]]] = {"hr": ([], []), "mrr": ([], [])}
    for i, name in enumerate(names):
        rep = reports[name]
        series = rep.get("series") or {}
        window = int((series.get("smooth") or {}).get("window", SMOOTH_BUCKETS))
        days, hr, mrr, line_days, line_hr, line_mrr = _plot_lines(series, k, window)
        if days:
            widths.add(float(series.get("bucket_s") or 0.0))
            windows.add(window)
            color = f"C{i}"
            ax_hr.plot(days, hr, ".", color=color, alpha=0.25, markersize=3)
            ax_mrr.plot(days, mrr, ".", color=color, alpha=0.25, markersize=3)
            ax_hr.plot(line_days, line_hr, "-", color=color, linewidth=1.8, label=name)
            ax_mrr.plot(line_days, line_mrr, "-", color=color, linewidth=1.8, label=name)
            seen["hr"][0].extend(hr)
            seen["hr"][1].extend(line_hr)
            seen["mrr"][0].extend(mrr)
            seen["mrr"][1].extend(line_mrr)
        stat = rep.get(f"hr@{k}") or {}
        value = float(stat.get("value", math.nan))
        lo, hi = stat.get("ci") or [value, value]
        values.append(value)
        errors[0].append(max(0.0, value - lo) if math.isfinite(lo) else 0.0)
        errors[1].append(max(0.0, hi - value) if math.isfinite(hi) else 0.0)
    locator = AutoDateLocator(tz=timezone.utc)  # type: ignore[no-untyped-call]
    ax_mrr.xaxis.set_major_locator(locator)
    ax_mrr.xaxis.set_major_formatter(
        ConciseDateFormatter(locator, tz=timezone.utc)  # type: ignore[no-untyped-call]
    )
    ax_hr.set_ylabel(f"HR@{k}")
    ax_mrr.set_ylabel(f"MRR@{k}")
    ax_mrr.set_xlabel("event time (UTC)")
    how = ""
    if widths:
        width_text = " / ".join(_width_label(w) for w in sorted(widths) if w > 0)
        window_text = "/".join(str(w) for w in sorted(windows))
        how = (
            f"\n{width_text} buckets (dots); line: {window_text}-bucket moving average "
            "weighted by targets, gaps where no targets"
        )
    ax_hr.set_title(f"Prequential HR@{k} / MRR@{k} over replay time{how}", fontsize="medium")
    for ax, metric in ((ax_hr, "hr"), (ax_mrr, "mrr")):
        ax.grid(True, alpha=0.3)
        limits = _ylim(*seen[metric])
        if limits is not None:
            ax.set_ylim(*limits)
    if names:
        ax_hr.legend(loc="best", fontsize="small")
    colors = [f"C{i}" for i in range(len(names))]
    ax_bar.bar(range(len(names)), values, yerr=errors, capsize=4, color=colors)
    ax_bar.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax_bar.set_ylabel(f"HR@{k} (95% CI)")
    ax_bar.set_title(f"overall HR@{k}")
    ax_bar.grid(True, axis="y", alpha=0.3)
    out = Path(path)
    fig.savefig(out, dpi=100)
    return out
