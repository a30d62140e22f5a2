"""The keyed steps' logic as plain Python (no bytewax, no redis).

- :mod:`rtp.engine.users`: the user step (sessions, profiles, decisions), keyed by user shard;
- :mod:`rtp.engine.items`: the item step (co-visitation, catalogue, product pages), keyed by
  item shard;
- :mod:`rtp.engine.merge`: the global step (ranker weights, bandits), one key;
- :mod:`rtp.engine.edges`: the edge step (the edge model for the HTTP doors), one key;
- :mod:`rtp.engine.view`: the model view a user step decides with, replayed from the log;
- :mod:`rtp.engine.log`: the model log the item and global steps publish, tick by tick;
- :mod:`rtp.engine.hooks`: evaluation, batch serving and experiment metrics as plug-ins;
- :mod:`rtp.engine.messages`, :mod:`rtp.engine.writes`: what steps send and ask to store;
- :mod:`rtp.engine.facade`: :class:`Engine`, all of it in one process (tests, notebooks).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Engine"]


def __getattr__(name: str) -> Any:  # the engine loads river and numpy: only when asked for
    if name == "Engine":
        from rtp.engine.facade import Engine

        return Engine
    raise AttributeError(f"module 'rtp.engine' has no attribute {name!r}")
