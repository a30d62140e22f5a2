"""The exceptions rtp raises, so callers know what to catch.

::

    RtpError                      every error rtp raises on purpose
    ├── ConfigError               a setting or a config file is wrong (raised at the edge)
    ├── StoreError                the Redis store
    │   └── StoreUnavailable      Redis did not answer after every retry; nothing was dropped:
    │                             the batch that failed is attached as ``.pending``
    ├── SourceError               a source cannot be opened (missing file, unknown format)
    └── Backpressure              the live stream's backlog is over its bound: nothing was
                                  appended; retry after ``.retry_after_s`` seconds

Bad *records* are never exceptions: they become :class:`rtp.capture.events.Rejection` values and go
to the dead-letter output.
"""

from __future__ import annotations

from typing import Any


class RtpError(Exception):
    """Base class of every error rtp raises on purpose."""


class ConfigError(RtpError):
    """A setting, a command-line flag or a config file is wrong."""


class StoreError(RtpError):
    """The Redis store failed."""


class StoreUnavailable(StoreError):
    """Redis did not answer after every retry with backoff.

    ``pending`` holds the writes that did not land, so a caller can keep them.
    """

    def __init__(self, message: str, pending: Any = None) -> None:
        super().__init__(message)
        self.pending = pending


class SourceError(RtpError):
    """A source cannot be opened or read."""


class Backpressure(RtpError):
    """The live stream holds more unprocessed events than its bound; nothing was appended.

    ``backlog`` is the fullest partition's length, ``retry_after_s`` a suggested wait.
    """

    def __init__(self, message: str, backlog: int = 0, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.backlog = backlog
        self.retry_after_s = retry_after_s
