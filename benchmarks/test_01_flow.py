"""1. Whole flow events/s in one process, beside a bare CSV parse of the same file.

``rtp.tools.replay.replay`` runs the one dataflow (FilesSource -> enrich -> engine -> Redis sink) in
this process into a private redis-server; the bare parse (read, split lines, split fields, int
the time: no rtp at all) is the ceiling that Python file reading sets, so the flow's throughput
is reported as a fraction of it. Then the same on a stream ~10x the slice (see _streams.py).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from benchmarks._streams import generated_10x, stream_dir
from benchmarks.conftest import FIGURES, RedisServer, record
from rtp.config import Settings

ROUNDS_TAOBAO = 3


def bare_parse(path: Path, fmt: str = "taobao") -> int:
    """Rows of a Taobao-format CSV parsed to tuples (JSON lines: ``orjson.loads``) with no rtp
    code: the ceiling."""
    n = 0
    with open(path, "rb", buffering=1 << 20) as fh:
        if fmt == "jsonl":
            for line in fh:
                if line.strip():
                    orjson.loads(line)
                    n += 1
            return n
        for line in fh:
            f = line.rstrip(b"\r\n").split(b",")
            if len(f) == 5:
                _ = (f[0].decode(), f[1].decode(), f[2].decode(), f[3].decode(), int(f[4]))
                n += 1
    return n


def files_source_pass(path: Path, fmt: str) -> int:
    """rtp's own source alone: FilesSource batches (adapter parse + stream clock), no flow."""
    from rtp.flow.sources import FilesSource

    part = FilesSource([str(path)], fmt).build_part("bench", "files", None)
    n = 0
    try:
        while True:
            for b in part.next_batch():
                n += len(b.events)
    except StopIteration:
        pass
    part.close()
    return n


def run_replay(path: Path, fmt: str, server: RedisServer) -> dict[str, Any]:
    """The replay in this process; its report plus ``cpu_s``, the CPU time this process spent
    (every thread: Python and Bytewax's), which other jobs on the machine do not inflate."""
    from rtp.tools.replay import replay

    cpu0 = time.process_time()
    report = replay([path], fmt, Settings(redis_url=server.url), progress=False)
    report["cpu_s"] = time.process_time() - cpu0
    return report


def test_parse_bare_taobao(benchmark: Any, taobao: Path) -> None:
    n = benchmark.pedantic(bare_parse, args=(taobao,), rounds=5, iterations=1, warmup_rounds=1)
    record(benchmark, parse_bare_events_per_s=n / benchmark.stats.stats.median, parse_rows=n)


def test_files_source_taobao(benchmark: Any, taobao: Path) -> None:
    n = benchmark.pedantic(
        files_source_pass, args=(taobao, "taobao"), rounds=5, iterations=1, warmup_rounds=1
    )
    record(benchmark, files_source_events_per_s=n / benchmark.stats.stats.median)


def test_flow_taobao(benchmark: Any, taobao: Path, fresh_redis: RedisServer) -> None:
    reports: list[dict[str, Any]] = []

    def once() -> None:
        reports.append(run_replay(taobao, "taobao", fresh_redis))

    benchmark.pedantic(once, setup=fresh_redis.flush, rounds=ROUNDS_TAOBAO, iterations=1)
    accepted = reports[-1]["accepted"]
    eps = accepted / benchmark.stats.stats.median
    bare = FIGURES.get("parse_bare_events_per_s")
    record(
        benchmark,
        flow_taobao_events=accepted,
        flow_taobao_events_per_s=eps,
        flow_taobao_run_main_events_per_s=max(r["events_per_s"] for r in reports),
        flow_taobao_events_per_cpu_s=accepted / min(r["cpu_s"] for r in reports),
    )
    if bare:
        record(benchmark, flow_taobao_fraction_of_bare_parse=eps / bare)
    src = FIGURES.get("files_source_events_per_s")
    if src:
        record(benchmark, flow_taobao_fraction_of_files_source=eps / src)


@pytest.fixture(scope="module")
def stream_10x(taobao: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    t0 = time.perf_counter()
    out = generated_10x(taobao, stream_dir(tmp_path_factory))
    print(f"\n  10x stream: {out[2]} ({out[0].stat().st_size / 1e6:.0f} MB) in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    return out


def test_parse_bare_10x(benchmark: Any, stream_10x: tuple[Path, str, str]) -> None:
    path, fmt, how = stream_10x
    n = benchmark.pedantic(bare_parse, args=(path, fmt), rounds=2, iterations=1)
    record(benchmark, parse_bare_10x_events_per_s=n / benchmark.stats.stats.median)


def test_flow_10x(
    benchmark: Any, stream_10x: tuple[Path, str, str], fresh_redis: RedisServer
) -> None:
    path, fmt, how = stream_10x
    reports: list[dict[str, Any]] = []

    def once() -> None:
        reports.append(run_replay(path, fmt, fresh_redis))

    benchmark.pedantic(once, rounds=1, iterations=1)
    r = reports[-1]
    eps = r["accepted"] / benchmark.stats.stats.median
    record(
        benchmark,
        flow_10x_stream=how,
        flow_10x_events=r["accepted"],
        flow_10x_users=r["users"],
        flow_10x_events_per_s=eps,
        flow_10x_events_per_cpu_s=r["accepted"] / r["cpu_s"],
    )
    bare = FIGURES.get("parse_bare_10x_events_per_s")
    if bare:
        record(benchmark, flow_10x_fraction_of_bare_parse=eps / bare)
    small = FIGURES.get("flow_taobao_events_per_s")
    if small:
        record(benchmark, flow_10x_over_taobao_events_per_s=eps / small)
    small_cpu = FIGURES.get("flow_taobao_events_per_cpu_s")
    if small_cpu:
        record(
            benchmark,
            flow_10x_over_taobao_events_per_cpu_s=r["accepted"] / r["cpu_s"] / small_cpu,
        )
