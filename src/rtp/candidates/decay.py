"""Decay by inflation: counts never need touching to age.

An observation at event time ``ts`` adds ``weight * 2 ** ((ts - ref) / half_life)``; every count
shares the same factor, so rankings equal those of explicitly decayed counts, and
:func:`rescale_factor` brings everything back to scale once the exponent grows large (a long
replay, or weeks of uptime), before floats overflow.

>>> round(inflation(0.0, 3_600.0, 3_600.0), 6)
2.0
>>> rescale_factor(0.0, 3_600.0, 3_600.0) is None  # small exponent: nothing to do yet
True
"""

from __future__ import annotations

REBASE_EXPONENT = 500.0


def inflation(ref: float, ts: float, half_life_s: float) -> float:
    """The weight factor of an observation at ``ts`` relative to the reference time."""
    return 2.0 ** ((ts - ref) / half_life_s)


def rescale_factor(ref: float | None, ts: float, half_life_s: float) -> float | None:
    """The factor that brings counts inflated since ``ref`` back to scale at ``ts``, or
    ``None`` while the inflation exponent is still small."""
    if ref is None:
        return None
    x = (ts - ref) / half_life_s
    return 2.0**-x if x >= REBASE_EXPONENT else None
