"""10. The split engine on a Bytewax cluster (issue #8): quality and speed with N processes,
the staleness of the item models, and recovery snapshots.

- **Quality under scale-out**: ``rtp evaluate FILE --mode realtime --processes N`` for N = 1, 2,
  4 on the Taobao slice and on DIGINETICA (``--split 0.8``); HR@20 and new-to-session HR@20 and
  their ratio to one process (target >= 0.97x).
- **Throughput**: ``rtp replay FILE --processes N`` for N = 1, 2 into a private redis-server
  (the report's events/s: accepted events over the flow's busy time, every process together);
  the ratio of 2 to 1 (target >= 1.6x on a 2-core machine). The replay's model staleness (event
  time between a deciding event and the newest item-model record its view held) is recorded
  beside it.
- **Snapshots**: the state the recovery snapshots hold after the Taobao slice, one user shard,
  one item shard and the global merge, pickled as Bytewax pickles them; bytes per live user and
  milliseconds per 10k live users (target <= 2 KB per live user).

Each command runs in its own subprocess (``sys.executable -m rtp.tools.cli``); the figures are
one run each (a cluster run takes tens of seconds, so rounds would cost minutes).
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.conftest import ROOT, TAOBAO, RedisServer, record, shared_sample
from benchmarks.engine_harness import taobao_ticks
from rtp.config import Settings
from rtp.engine import Engine

DIGINETICA = TAOBAO.parents[1] / "diginetica-sample" / "sample_train-item-views.csv"


def _data(name: str) -> Path:
    return shared_sample(TAOBAO if name == "taobao" else DIGINETICA)


def _cli(*args: str, timeout: float = 1800) -> dict[str, Any]:
    """``rtp ARGS --report TMP`` in a subprocess; the JSON report it wrote."""
    report = ROOT / ".benchmarks" / f"cluster-{time.monotonic_ns()}.json"
    report.parent.mkdir(exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "rtp.tools.cli", *args, "--report", str(report)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"rtp {args[0]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(report.read_bytes())
    report.unlink()
    return out


def _value(report: dict[str, Any], *path: str) -> float:
    v: Any = report
    for k in path:
        v = v[k]
    return float(v["value"] if isinstance(v, dict) else v)


DATASETS = {
    "taobao": ("--format", "taobao"),
    "diginetica": ("--format", "diginetica", "--split", "0.8"),
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_quality_under_scale_out(benchmark: Any, name: str) -> None:
    path = _data(name)
    got: dict[int, tuple[float, float]] = {}

    def once() -> None:
        for n in (1, 2, 4):
            rep = _cli("evaluate", str(path), *DATASETS[name], "--mode", "realtime",
                       "--processes", str(n))  # fmt: skip
            got[n] = (_value(rep, "hr@20"), _value(rep, "new_to_session", "hr@20"))

    benchmark.pedantic(once, rounds=1, iterations=1)
    figures: dict[str, Any] = {}
    for n, (hr, new) in got.items():
        figures[f"{name}_hr20_p{n}"] = hr
        figures[f"{name}_new_hr20_p{n}"] = new
        if n > 1:
            figures[f"{name}_hr20_ratio_p{n}"] = hr / got[1][0]
            figures[f"{name}_new_hr20_ratio_p{n}"] = new / got[1][1] if got[1][1] else 0.0
    record(benchmark, **figures)


def test_replay_scale_out(benchmark: Any) -> None:
    path = _data("taobao")
    got: dict[int, dict[str, Any]] = {}

    def once() -> None:
        for n in (1, 2):
            server = RedisServer().start()
            try:
                got[n] = _cli("replay", str(path), "--format", "taobao", "-q",
                              "--processes", str(n), "--redis-url", server.url)  # fmt: skip
            finally:
                server.stop()

    benchmark.pedantic(once, rounds=1, iterations=1)
    e1, e2 = got[1]["events_per_s"], got[2]["events_per_s"]
    stale = got[1].get("model_staleness_s", {})
    stale2 = got[2].get("model_staleness_s", {})
    record(
        benchmark,
        replay_events_per_s_p1=e1,
        replay_events_per_s_p2=e2,
        replay_events_per_s_per_process_p2=e2 / 2,
        replay_scale_out_ratio=e2 / e1,
        model_staleness_mean_s_p1=stale.get("mean", 0.0),
        model_staleness_max_s_p1=stale.get("max", 0.0),
        model_staleness_mean_s_p2=stale2.get("mean", 0.0),
        model_staleness_max_s_p2=stale2.get("max", 0.0),
    )


def test_snapshot_size_and_time(benchmark: Any) -> None:
    """The engine's three states after the Taobao slice, pickled as a snapshot pickles them."""
    s = Settings()
    ticks = taobao_ticks(s, _data("taobao"))
    eng = Engine(s)
    for tick in sorted(ticks):
        eng.process(ticks[tick])
    live = len(eng.users.users) + len(eng.users.idle)
    sizes: dict[str, int] = {}
    times: dict[str, float] = {}

    def once() -> None:
        for part, state in (("users", eng.users), ("items", eng.items), ("global", eng.merge)):
            t = time.perf_counter()
            raw = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
            times[part] = time.perf_counter() - t
            sizes[part] = len(raw)
        t = time.perf_counter()
        pickle.loads(pickle.dumps(eng.users, protocol=pickle.HIGHEST_PROTOCOL))
        times["users_round_trip"] = time.perf_counter() - t

    benchmark.pedantic(once, rounds=3, iterations=1)
    record(
        benchmark,
        snapshot_live_users=live,
        snapshot_users_bytes_per_live_user=sizes["users"] / live,
        snapshot_users_ms_per_10k_users=times["users"] * 1e3 / live * 1e4,
        snapshot_users_round_trip_ms_per_10k_users=times["users_round_trip"] * 1e3 / live * 1e4,
        snapshot_items_bytes=sizes["items"],
        snapshot_items_ms=times["items"] * 1e3,
        snapshot_global_bytes=sizes["global"],
        snapshot_global_ms=times["global"] * 1e3,
        snapshot_all_bytes_per_live_user=sum(sizes.values()) / live,
    )
