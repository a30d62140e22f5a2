"""The live event stream in Redis: one stream key, one JSON field per entry (no bytewax here).

Producers (web servers, ``rtp.Client.forget``, benchmarks) append schema-v1 JSON with
:func:`append`; the flow reads the stream with ``rtp.flow.sources.RedisStreamSource``. An entry with
the field ``eof`` ends the source (tests and benchmarks use it; live producers never send it).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

__all__ = ["DEFAULT_STREAM", "EOF_FIELD", "EVENT_FIELD", "append", "append_eof"]

EVENT_FIELD = b"e"
EOF_FIELD = b"eof"
DEFAULT_STREAM = "rtp:events"


def append(
    r: Any,
    events: Iterable[Any],
    stream: str = DEFAULT_STREAM,
    maxlen: int | None = 1_000_000,
) -> list[bytes]:
    """XADD each event (an ``Event``, a schema-v1 dict, or JSON bytes) in one pipeline."""
    pipe = r.pipeline(transaction=False)
    for e in events:
        if isinstance(e, (bytes, bytearray)):
            raw = bytes(e)
        elif isinstance(e, dict):
            raw = orjson.dumps(e)
        else:
            raw = orjson.dumps(e.to_dict())
        pipe.xadd(stream, {EVENT_FIELD: raw}, maxlen=maxlen, approximate=True)
    return list(pipe.execute())


def append_eof(r: Any, stream: str = DEFAULT_STREAM) -> bytes:
    """Ask the stream's readers to end (for tests and benchmarks)."""
    return bytes(r.xadd(stream, {EOF_FIELD: b"1"}))
