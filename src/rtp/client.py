"""The documented home of :class:`Client` (``from rtp.client import Client``).

The implementation lives in :mod:`rtp.store.client`; this module keeps the public path stable.
"""

from __future__ import annotations

from rtp.store.client import Client

__all__ = ["Client"]
