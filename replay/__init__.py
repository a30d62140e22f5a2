"""``python -m replay PATH... --format FMT``: the historical replay CLI (same as ``rtp replay``)."""
