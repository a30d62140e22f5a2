"""Bytewax recovery stores for rtp runs.

A store is created once (``python -m bytewax.recovery DIR N``); a run with ``-r DIR`` resumes
from its last snapshot. A store whose run finished resumes at the end and processes nothing, so
a fresh full replay needs a fresh directory. Output after a resume is at-least-once: the
engine's writes are whole values keyed by user, so rewriting them is harmless.
"""

from __future__ import annotations

from pathlib import Path

PARTITIONS = 1


def ensure_store(path: Path, partitions: int = PARTITIONS) -> bool:
    """Create the recovery store in ``path`` unless it exists; True if it was created."""
    from bytewax.recovery import init_db_dir

    if path.exists() and any(path.glob("part-*.sqlite3")):
        return False
    path.mkdir(parents=True, exist_ok=True)
    init_db_dir(path, partitions)
    return True
