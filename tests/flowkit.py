"""Building the one dataflow in tests (the ready-made builder, with a sink of the test's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bytewax.dataflow import Dataflow

from rtp.config import Settings
from rtp.flow.dataflow import Layout
from rtp.flow.ready import FlowSpec, build


def file_flow(
    path: Path | list[Path],
    settings: Settings,
    *,
    fmt: str = "jsonl",
    batch_lines: int = 200,
    run: str = "t",
    sink: Any = None,
    workers: int = 1,
    evaluate: bool = False,
    mode: str = "realtime",
    speed: float | None = None,
) -> Dataflow:
    """The replay flow over ``path``: one tick per batch of ``batch_lines`` records, writes to
    Redis (``settings.redis_url``) unless ``sink`` is given."""
    paths = [str(p) for p in (path if isinstance(path, list) else [path])]
    spec = FlowSpec(
        kind="files", paths=paths, fmt=fmt, run=run, evaluate=evaluate, mode=mode, speed=speed
    )
    settings = settings.replace(batch_lines=batch_lines, tick_records=batch_lines)
    return build(spec, settings, layout=Layout(workers), sink=sink)
