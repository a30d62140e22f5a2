"""The engine alone over the Taobao slice: process CPU time per event, outside pytest.

    .venv/bin/python benchmarks/engine_harness.py [--v1-decisions]

Reads the slice once through ``FilesSource`` (no gate, no Bytewax), then times the facade
:class:`rtp.engine.Engine` (the user, item and global steps in one process, joined by the
in-memory model log) tick by tick: one ``Engine.process`` call per tick of the replay (the
source's batches grouped by their tick), so decisions use the models of the tick before, as in
``rtp replay``. No Redis. A quick, low-noise check of a change to the per-event path.
``--v1-decisions``: decisions in the first compact form (0xD1) instead of the zstd form, for a
paired comparison of the two. ``--thread``: run in a thread started for it, as a Bytewax cluster
worker runs (is a thread slower than the main thread?).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rtp.capture.events import Event
from rtp.config import Settings
from rtp.engine import Engine, users
from rtp.flow.dataflow import tune_gc
from rtp.flow.sources import FilesSource
from rtp.store.codec import encode_decision_v1

TAOBAO = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/taobao-userbehavior/UserBehavior_timeslice_96k.csv"
)


def taobao_ticks(s: Settings, path: Path = TAOBAO) -> dict[int, list[Event]]:
    """The slice's events grouped by the replay tick they belong to."""
    src = FilesSource(path, "taobao", batch_lines=s.batch_lines, tick_records=s.tick_records)
    ticks: dict[int, list[Event]] = {}
    for b in src.read_all():
        ticks.setdefault(b.tick, []).extend(b.events)
    return ticks


def main() -> None:
    if not TAOBAO.exists():
        sys.exit(f"skipped: {TAOBAO} is absent")
    if "--v1-decisions" in sys.argv[1:]:  # the A/B of the two decision forms (BENCHMARKS.md)
        users.encode_decision = encode_decision_v1
    tune_gc()
    s = Settings.from_env()
    ticks = taobao_ticks(s)
    eng = Engine(s)
    t = time.process_time()
    for _tick, events in sorted(ticks.items()):
        eng.process(events)
    eng.finish()
    dt = time.process_time() - t
    n = sum(len(events) for events in ticks.values())
    st = eng.users.stats
    print(
        f"engine: {n:,} events in {len(ticks)} ticks, {dt:.2f} CPU-s: "
        f"{n / dt:,.0f} events/CPU-s, {dt / n * 1e6:.1f} us/event; "
        f"decisions {st['decisions_ranked']:,.0f}, ranking examples {st['learned']:,.0f}, "
        f"model {eng.view.version}, pages {eng.items.stats['pages']:,.0f}"
    )


if __name__ == "__main__":
    if "--thread" in sys.argv[1:]:
        import threading

        t = threading.Thread(target=main)
        t.start()
        t.join()
    else:
        main()
