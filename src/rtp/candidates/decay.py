"""Decay by inflation: counts never need touching to age.

An observation at event time ``ts`` adds ``weight * 2 ** ((ts - ref) / half_life)``; every count
shares the same factor, so rankings equal those of explicitly decayed counts. ``ref`` is not the
first event's time but a point of a fixed grid (:func:`anchor`, every 256 half-lives), so every
copy of a model (an item shard's, each worker's view) inflates the same observation by exactly
the same factor whatever it saw first; when the stream crosses into the next span of the grid,
:func:`rescale_factor` brings the counts back to scale, before floats overflow.

>>> round(inflation(0.0, 3_600.0, 3_600.0), 6)
2.0
>>> rescale_factor(anchor(1e9, 3_600.0), 1e9 + 10.0, 3_600.0) is None  # same span: nothing
True
"""

from __future__ import annotations

SPAN_HALF_LIVES = 256.0  # 2 ** 256 stays far inside a float's range
REBASE_EXPONENT = SPAN_HALF_LIVES


def anchor(ts: float, half_life_s: float) -> float:
    """The grid point at or before ``ts`` that inflation is relative to."""
    span = half_life_s * SPAN_HALF_LIVES
    return ts - ts % span


def inflation(ref: float, ts: float, half_life_s: float) -> float:
    """The weight factor of an observation at ``ts`` relative to the reference time."""
    return float(2.0 ** ((ts - ref) / half_life_s))


def rescale_factor(ref: float | None, ts: float, half_life_s: float) -> tuple[float, float] | None:
    """``(factor, new ref)`` that bring counts inflated since ``ref`` back to scale once ``ts``
    is in a later span of the grid; ``None`` while it is in the same one."""
    if ref is None:
        return None
    new = anchor(ts, half_life_s)
    if new <= ref:
        return None
    return 2.0 ** -((new - ref) / half_life_s), new
