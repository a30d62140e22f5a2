"""What learning the edge model costs: microseconds per finished session, documents included.

    .venv/bin/python -m rtp.tools.synth --users 5000 --seed 1 --out /tmp/synth5k.jsonl
    .venv/bin/python benchmarks/edge_cost.py /tmp/synth5k.jsonl     # or the Taobao slice (.csv)

Replays the stream through the facade :class:`rtp.engine.Engine` (ticks of
``Settings.tick_records`` records, the user step's own enrichment) and keeps every finished
session the user step hands on for the edge model, by tick. Then it times what the edge step
does with them: each tick's sessions in the canonical order, grouped by context
(``EdgeModel.observe_many``), and the model's document after each tick (what ``meta:edge``
receives), over a fresh model, the best of 5 rounds of process time. It uses only
``EdgeModel``'s own API, so the same command with ``PYTHONPATH`` at an older checkout's ``src``
times that version. Prints microseconds per session and a digest of the last document (equal
digests: the same model).
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from rtp.capture.enrich import Enricher
from rtp.config import Settings
from rtp.decisions.edge import EdgeModel
from rtp.engine import Engine
from rtp.engine.users import UserShard
from rtp.flow.dataflow import tune_gc
from rtp.flow.sources import FilesSource

TAOBAO = (
    Path(__file__).resolve().parents[1].parent
    / "shared/data/taobao-userbehavior/UserBehavior_timeslice_96k.csv"
)


def sessions_by_tick(path: Path) -> list[list[Any]]:
    """Every tick's finished sessions ``(ts, key, signals, categories, items)``."""
    s = Settings.from_env()
    fmt = "taobao" if path.suffix == ".csv" else "jsonl"
    src = FilesSource(path, fmt, batch_lines=s.batch_lines, tick_records=s.tick_records)
    enricher = Enricher(site_hosts=s.site_hosts.split(",") if s.site_hosts else ())
    ticks: dict[int, list[Any]] = {}
    for b in src.read_all():
        for e in b.events:
            enricher.enrich(e)
        ticks.setdefault(b.tick, []).extend(b.events)
    out: list[list[Any]] = []
    original = UserShard._outputs

    def outputs(self: UserShard, w: Any, tick: int) -> Any:
        if self._edge:
            out.append(list(self._edge))
        return original(self, w, tick)

    UserShard._outputs = outputs  # type: ignore[method-assign]
    eng = Engine(s, edge=EdgeModel())  # with no edge model, sessions are not gathered for it
    for _t, events in sorted(ticks.items()):
        eng.process(events)
    eng.finish()
    UserShard._outputs = original  # type: ignore[method-assign]
    return out


def learn(ticks: list[list[Any]]) -> tuple[EdgeModel, bytes]:
    model = EdgeModel()
    doc = b""
    for obs in ticks:
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for ts, _k, signals, cats, items in sorted(obs, key=lambda x: (x[0], x[1])):
            signature = tuple(sorted((k, v) for k, v in signals.items() if k != "ts"))
            groups.setdefault(signature, []).append((cats, items, ts))
        for signature, outcomes in groups.items():
            model.observe_many(dict(signature), outcomes)
        doc = orjson.dumps(model.document())
    return model, doc


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TAOBAO
    if not path.exists():
        sys.exit(f"skipped: {path} is absent")
    tune_gc()
    ticks = sessions_by_tick(path)
    n = sum(len(t) for t in ticks)
    model, doc = learn(ticks)
    rounds = []
    for _ in range(5):
        t = time.process_time()
        learn(ticks)
        rounds.append(time.process_time() - t)
    best = min(rounds)
    print(
        f"{path.name}: {n:,} finished sessions in {len(ticks):,} ticks, {len(model.rules)} rules: "
        f"{best / n * 1e6:.1f} us per session, documents included ({best:.3f} s; "
        f"last document {len(doc):,} B, sha256 {hashlib.sha256(doc).hexdigest()[:16]})"
    )


if __name__ == "__main__":
    main()
