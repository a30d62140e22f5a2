"""The engine alone over the Taobao slice: process CPU time per event, outside pytest.

    .venv/bin/python benchmarks/engine_harness.py

Reads the slice once through ``FilesSource`` (no gate, no Bytewax), then times the facade
:class:`rtp.engine.Engine` (the user, item and global steps in one process, joined by the
in-memory model log) source batch by source batch: each batch is one tick, as in a replay
(``Settings.tick_records`` = ``batch_lines``), so decisions use the models of the tick before.
No Redis. A quick, low-noise check of a change to the per-event path.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rtp.config import Settings
from rtp.engine import Engine
from rtp.flow.dataflow import tune_gc
from rtp.flow.sources import Batch, FilesSource

TAOBAO = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/taobao-userbehavior/UserBehavior_timeslice_96k.csv"
)


def main() -> None:
    if not TAOBAO.exists():
        sys.exit(f"skipped: {TAOBAO} is absent")
    tune_gc()
    s = Settings()
    src = FilesSource(TAOBAO, "taobao", batch_lines=s.batch_lines, tick_records=s.tick_records)
    batches: list[Batch] = list(src.read_all())
    eng = Engine(s)
    t = time.process_time()
    for b in batches:
        eng.process(b.events)
    eng.finish()
    dt = time.process_time() - t
    n = sum(len(b.events) for b in batches)
    st = eng.users.stats
    print(
        f"engine: {n:,} events in {len(batches)} ticks, {dt:.2f} CPU-s: "
        f"{n / dt:,.0f} events/CPU-s, {dt / n * 1e6:.1f} us/event; "
        f"decisions {st['decisions_ranked']:,.0f}, ranking examples {st['learned']:,.0f}, "
        f"model {eng.view.version}, pages {eng.items.stats['pages']:,.0f}"
    )


if __name__ == "__main__":
    main()
