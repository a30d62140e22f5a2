"""rtp: real-time personalization as one Bytewax dataflow (replay and live), River models, Redis.

The public API (everything else is an implementation module)::

    import rtp
    client = rtp.Client.from_url("redis://localhost:6379/0")
    client.decision("u42", placement="home")

- :class:`Client` reads decisions, context and profiles, re-ranks search results, forgets users;
- :class:`Settings` is the one configuration object (``RTP_*`` environment variables);
- :class:`Event` / :class:`Rejection` are the event schema (v1) and its dead letters;
- :func:`build_flow` builds the one dataflow; :func:`replay` and :func:`evaluate` run it over
  files; errors are in :mod:`rtp.errors`.

Heavy modules (bytewax, river) load only when their names are first used, so ``import rtp``
for the client stays cheap.
"""

from __future__ import annotations

from typing import Any

from rtp.capture.events import Event, Rejection
from rtp.config import Settings
from rtp.errors import ConfigError, RtpError, SourceError, StoreError, StoreUnavailable

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConfigError",
    "Engine",
    "Event",
    "Rejection",
    "RtpError",
    "Settings",
    "SourceError",
    "StoreError",
    "StoreUnavailable",
    "build_flow",
    "evaluate",
    "replay",
]

_LAZY = {
    "Client": ("rtp.store.client", "Client"),
    "Engine": ("rtp.engine.facade", "Engine"),
    "build_flow": ("rtp.flow.dataflow", "build_flow"),
    "replay": ("rtp.tools.replay", "replay"),
    "evaluate": ("rtp.tools.evaluate", "evaluate"),
}


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'rtp' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value
    return value
