"""The engine alone over the Taobao slice: process CPU time per event, outside pytest.

    .venv/bin/python benchmarks/engine_harness.py

Reads the slice once through ``FilesSource``, then times ``Engine.process`` batch by batch
(no Bytewax, no Redis). A quick, low-noise check of a change to the per-event path.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rtp.config import Settings
from rtp.engine.shard import Engine, tune_gc
from rtp.flow.sources import Batch, FilesSource

TAOBAO = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/taobao-userbehavior/UserBehavior_timeslice_96k.csv"
)


def main() -> None:
    if not TAOBAO.exists():
        sys.exit(f"skipped: {TAOBAO} is absent")
    tune_gc()
    part = FilesSource(TAOBAO, "taobao", batch_lines=2000).build_part("h", FilesSource.PART, None)
    batches: list[Batch] = []
    while True:
        try:
            batches += part.next_batch()
        except StopIteration:
            break
    eng = Engine(Settings())
    t = time.process_time()
    for b in batches:
        eng.process(b.events)
    eng.finish()
    dt = time.process_time() - t
    n = sum(len(b.events) for b in batches)
    print(
        f"engine: {n / dt:,.0f} events/CPU-s, {dt / n * 1e6:.1f} us/event, "
        f"decisions {eng.stats['decisions_ranked']:,}"
    )


if __name__ == "__main__":
    main()
