"""Benchmark fixtures: private redis-servers, the shared Taobao slice, replays in a
subprocess, and a figures table printed (and saved to ``.benchmarks/rtp-figures.json``) at the
end of ``make bench``.

Like tests/conftest.py: every benchmark talks to a real redis-server it started itself (no
mocks), and a benchmark that needs ../shared/data skips with the reason when it is absent.
Generated streams are written to pytest's tmp dirs, never into the repository.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rtp.errors import ConfigError
from rtp.testing import RedisServer as _RedisServer

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RTP_DATA_DIR", ROOT.parent / "shared" / "data"))
TAOBAO = DATA / "taobao-userbehavior" / "UserBehavior_timeslice_96k.csv"
FIGURES_FILE = ROOT / ".benchmarks" / "rtp-figures.json"

# Targets (issues #4, #8, #12): figure key -> (comparison, target, unit).
TARGETS: dict[str, tuple[str, float, str]] = {
    "flow_taobao_events_per_s": (">=", 25_000.0, "events/s"),
    "freshness_p99_ms": ("<=", 25.0, "ms"),
    "decision_read_p99_ms": ("<=", 0.5, "ms"),
    "decision_read_busy_host_p99_ms": ("<=", 0.5, "ms"),
    "rerank100_p99_ms": ("<=", 1.0, "ms"),
    "redis_bytes_per_user": ("<=", 600.0, "bytes/user"),
    "replay_scale_out_ratio": (">=", 1.6, "x"),
    "taobao_hr20_ratio_p2": (">=", 0.97, "x"),
    "taobao_hr20_ratio_p4": (">=", 0.97, "x"),
    "taobao_new_hr20_ratio_p2": (">=", 0.97, "x"),
    "taobao_new_hr20_ratio_p4": (">=", 0.97, "x"),
    "diginetica_hr20_ratio_p2": (">=", 0.97, "x"),
    "diginetica_hr20_ratio_p4": (">=", 0.97, "x"),
    "diginetica_new_hr20_ratio_p2": (">=", 0.97, "x"),
    "diginetica_new_hr20_ratio_p4": (">=", 0.97, "x"),
    "snapshot_all_bytes_per_live_user": ("<=", 2048.0, "bytes"),
    "scaling_events_per_s_ratio": (">=", 0.9, "x"),
    "scaling_time_events_per_s_ratio": (">=", 0.9, "x"),
}

# Figures collected during the run (key -> value), printed at the end; see `record`.
FIGURES: dict[str, Any] = {}


def record(benchmark: Any, **figures: Any) -> None:
    """Put derived figures into the benchmark's extra_info and the end-of-run table."""
    for k, v in figures.items():
        if isinstance(v, float):
            v = round(v, 4 if abs(v) < 10 else 1)
        benchmark.extra_info[k] = v
        FIGURES[k] = v


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by nearest rank of the sorted values."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def shared_sample(path: Path = TAOBAO) -> Path:
    if not path.exists():
        pytest.skip(f"shared sample {path} is absent (set RTP_DATA_DIR to the shared/data folder)")
    return path


@pytest.fixture(scope="session")
def taobao() -> Path:
    return shared_sample(TAOBAO)


def freeze_gc() -> None:
    """Move every object alive now to the permanent GC generation (see ``_frozen_gc``)."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _loadavg(request: pytest.FixtureRequest) -> Iterator[None]:
    """The 1-minute load average before and after each benchmark, in its extra_info: other
    jobs on the machine show up here."""
    before = os.getloadavg()[0]
    bench = request.getfixturevalue("benchmark") if "benchmark" in request.fixturenames else None
    yield
    if bench is not None:
        bench.extra_info["loadavg_1m"] = [round(before, 2), round(os.getloadavg()[0], 2)]


@pytest.fixture(autouse=True)
def _frozen_gc() -> Iterator[None]:
    """Objects alive before a benchmark (fixtures, earlier benchmarks' data) go to the
    permanent GC generation, so CPython's cyclic collector does not walk them during the
    measurement: each figure pays for the garbage collection of its own objects only.
    Benchmarks that prepare data inside the test call :func:`freeze_gc` again after it."""
    freeze_gc()
    yield
    gc.unfreeze()


# --- redis ----------------------------------------------------------------------------------


class RedisServer(_RedisServer):
    """A private redis-server for benchmarks (``rtp.testing.RedisServer``)."""

    def __init__(self) -> None:
        try:
            super().__init__(prefix="rtp-bench-redis-")
        except ConfigError as e:
            pytest.fail(str(e))


@pytest.fixture()
def fresh_redis() -> Iterator[RedisServer]:
    """A redis-server of the benchmark's own, stopped afterwards."""
    server = RedisServer().start()
    yield server
    server.close()


# --- replays --------------------------------------------------------------------------------

# Peak RSS is VmHWM (this process's own high-water mark since exec), not ru_maxrss: Linux
# carries the parent's RSS at fork into a child's ru_maxrss, and pytest's RSS is large.
_REPLAY_SCRIPT = r"""
import json, resource, sys, time
from rtp.config import Settings
from rtp.tools.replay import replay
url, fmt, overrides, paths = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
ru0 = resource.getrusage(resource.RUSAGE_SELF)
report = replay(paths, fmt, Settings(redis_url=url, **overrides), progress=False)
ru1 = resource.getrusage(resource.RUSAGE_SELF)
report["cpu_s"] = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        report["maxrss_kb"] = int(line.split()[1])
report.setdefault("maxrss_kb", ru1.ru_maxrss)
print("RTP-REPORT " + json.dumps(report))
"""


def replay_subprocess(
    paths: list[Path],
    fmt: str,
    url: str,
    timeout: float = 900,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``rtp.tools.replay.replay`` in a fresh Python process (so its peak RSS is the replay's own)
    into the Redis at ``url``, with ``settings`` over the defaults; its report plus
    ``maxrss_kb`` (peak RSS), ``cpu_s`` (CPU time of the replay, every thread) and
    ``wall_s``."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _REPLAY_SCRIPT,
            url,
            fmt,
            json.dumps(settings or {}),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"replay failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RTP-REPORT "))
    report: dict[str, Any] = json.loads(line[len("RTP-REPORT ") :])
    report["wall_s"] = round(wall, 3)
    return report


def redis_keys_by_kind(r: redis.Redis, prefix: str = "rtp:") -> dict[str, list[bytes]]:
    """Every key of the store grouped by kind (``d``, ``p``, other names)."""
    out: dict[str, list[bytes]] = {}
    for k in r.scan_iter(match=prefix + "*", count=10_000):
        rest = k[len(prefix) :]
        kind = rest.split(b":", 1)[0].decode() if b":" in rest else rest.decode()
        out.setdefault(kind, []).append(k)
    return out


class Replayed:
    """A Taobao replay into a private Redis, kept for the read and memory benchmarks."""

    def __init__(self, server: RedisServer, before: dict[str, int], report: dict[str, Any]):
        self.server = server
        self.before = before
        self.report = report
        self.after = server.used_memory()


@pytest.fixture(scope="session")
def taobao_replayed(taobao: Path) -> Iterator[Replayed]:
    """One Taobao replay (subprocess) into a private redis-server, shared by test_04/test_05."""
    server = RedisServer().start()
    before = server.used_memory()
    report = replay_subprocess([taobao], "taobao", server.url)
    yield Replayed(server, before, report)
    server.close()


# --- the machine and the end-of-run table ---------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version()}
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("bytewax", "river", "redis", "hiredis", "orjson"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = "-"
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
        versions["redis-server"] = out.stdout.split("v=")[1].split()[0]
    except (OSError, IndexError):
        versions["redis-server"] = "?"
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram": mem,
        "loadavg": os.getloadavg(),
        "versions": versions,
    }


_START: dict[str, Any] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    _START["machine"] = machine_info()
    _START["t0"] = time.perf_counter()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    tr = terminalreporter
    m = _START.get("machine") or machine_info()
    end_load = os.getloadavg()
    tr.section("rtp figures")
    tr.write_line(
        f"{m['date_utc']}  nproc={m['nproc']}  cpu={m['cpu']}  ram={m['ram']}  "
        f"load avg start={tuple(round(x, 2) for x in m['loadavg'])} "
        f"end={tuple(round(x, 2) for x in end_load)}"
    )
    tr.write_line("  ".join(f"{k} {v}" for k, v in m["versions"].items()))
    for key, value in FIGURES.items():
        note = ""
        if key in TARGETS and isinstance(value, (int, float)):
            op, target, unit = TARGETS[key]
            met = value >= target if op == ">=" else value <= target
            note = f"   target {op} {target:g} {unit}: {'MET' if met else 'NOT MET'}"
        tr.write_line(f"  {key:<44} {value}{note}")
    elapsed = time.perf_counter() - _START.get("t0", time.perf_counter())
    tr.write_line(f"  (benchmarks took {elapsed:.0f} s)")
    FIGURES_FILE.parent.mkdir(exist_ok=True)
    FIGURES_FILE.write_text(
        json.dumps(
            {"machine": m, "loadavg_end": end_load, "elapsed_s": elapsed, "figures": FIGURES},
            indent=2,
        )
    )
    tr.write_line(f"  saved to {FIGURES_FILE.relative_to(ROOT)}")
