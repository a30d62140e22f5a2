"""rtp: real-time personalization as one Bytewax dataflow (replay and live), River models, Redis."""

from __future__ import annotations

__version__ = "0.1.0"
