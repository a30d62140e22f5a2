"""The documented producer API (``rtp.streams.append``): events into the live stream.

The implementation lives in :mod:`rtp.store.streams`; this module keeps the public path stable.
"""

from __future__ import annotations

from rtp.store.streams import *  # noqa: F403
from rtp.store.streams import __all__ as __all__  # noqa: F401
