"""Where a replay's CPU goes, per process, on 1 and on N processes (issue #8's scale-out).

    .venv/bin/python -m benchmarks.cluster_cpu [N ...] [--file PATH] [--timeline]  # default: 1 2

Runs ``rtp replay`` of the Taobao slice (or ``PATH``: ``.csv`` read as Taobao, anything else
as rtp's JSON lines, e.g. a stream from ``python -m rtp.tools.synth``) with ``--processes N``
(Bytewax's production runner) into a private redis-server, with ``benchmarks/cpu_probe`` on
``PYTHONPATH`` so that every worker process times its steps with a thread CPU clock (the probe
adds ~1 µs per wrapped call). Prints, per worker: the processing window (first to last
user-step call) in wall and CPU seconds, the time it was idle in that window, and each step's
CPU with its calls; then the sum over workers beside the 1-process figures. The question it
answers: does N processes' work add up to one process's, and how long do the workers wait for
each other (the tick barrier)? An outer ``PYTHONPATH`` comes after the probe's (an older
checkout's ``src`` there measures that version). With ``--timeline`` every worker also records
each step's calls with their wall times, and the script prints, side by side on one clock, what
each worker did between its user steps of the tick in the middle of the run and the next: where
the tick barrier's wait comes from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.conftest import ROOT, TAOBAO
from rtp.testing import RedisServer

PROBE = Path(__file__).resolve().parent / "cpu_probe"


def run(
    n: int, path: Path = TAOBAO, timeline: bool = False
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One replay of ``path`` on ``n`` processes: its report and each worker's probe."""
    server = RedisServer().start()
    out = Path(tempfile.mkdtemp(prefix="rtp-cpuprobe-"))
    # the probe first; an outer PYTHONPATH after it (e.g. an older checkout's src, to compare)
    pypath = [str(PROBE), str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = dict(os.environ, RTP_CPUPROBE=str(out), PYTHONPATH=os.pathsep.join(pypath))
    if timeline:
        env["RTP_CPUPROBE_TIMELINE"] = "1"
    report = out / "report.json"
    try:
        subprocess.run(
            [sys.executable, "-c", "from rtp.tools.cli import main; main()", "replay",
             str(path), "--format", "taobao" if path.suffix == ".csv" else "jsonl",
             "--processes", str(n),
             "--redis-url", server.url, "-q", "--report", str(report)],
            env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        cpu = server.client().info("cpu")
    finally:
        server.close()
    probes = [json.loads(p.read_text()) for p in sorted(out.glob("probe-*.json"))]
    rep = json.loads(report.read_text())
    rep["redis_cpu_s"] = cpu["used_cpu_user"] + cpu["used_cpu_sys"]
    return rep, probes


def show(n: int, report: dict[str, Any], probes: list[dict[str, Any]]) -> dict[str, float]:
    print(f"\n{n} process(es): {report['events_per_s']:,.0f} events/s, {report['events']:,} events")
    total: dict[str, float] = {}
    for p in probes:
        idle = p["window_wall_s"] - p["window_cpu_s"]
        print(f"  worker pid {p['pid']}: window {p['window_wall_s']:.2f} s wall, "
              f"{p['window_cpu_s']:.2f} s CPU, idle {idle:.2f} s; process CPU "
              f"{p['process_cpu_s']:.2f} s")  # fmt: skip
        rows = [("window CPU", p["window_cpu_s"]), ("idle in window", idle)]
        rows += sorted(p["cpu_s"].items(), key=lambda kv: -kv[1])
        for name, s in rows:
            total[name] = total.get(name, 0.0) + s
        for name, s in sorted(p["cpu_s"].items(), key=lambda kv: -kv[1]):
            calls = p["calls"][name]
            print(f"    {s:7.2f} s  {calls:7d} calls  {s / calls * 1e6:9.1f} µs/call  {name}")
    # the CPU budget: how much of the machine's cores the workers and redis-server used while
    # the workers processed (redis-server's CPU is the whole run's: an upper bound)
    wall = max(p["window_wall_s"] for p in probes)
    cores = os.cpu_count() or 1
    work = sum(p["window_cpu_s"] for p in probes)
    redis_s = report["redis_cpu_s"]
    print(f"  CPU budget: window {wall:.2f} s x {cores} cores = {wall * cores:.2f} CPU-s; "
          f"workers used {work:.2f}, redis-server {redis_s:.2f} (whole run)")  # fmt: skip
    total["redis-server CPU (whole run)"] = redis_s
    return total


_PARTS = ("user step: advance", "user step: sweep", "user step: load")


def show_timeline(probes: list[dict[str, Any]]) -> None:
    """Each worker's calls from its last user step of the middle tick ``t`` to its first user
    step of tick ``t + 1`` (polls that emitted nothing left out), on one clock (ms)."""
    timed = [p for p in probes if p.get("timeline")]
    if not timed:
        return
    ticks = sorted({t for p in timed for *_x, lab, got in p["timeline"] if lab == "user step"
                    for t, n_ev in (got or []) if n_ev})  # fmt: skip
    if not ticks:
        return
    mid = ticks[len(ticks) // 2]
    origin = min(e[0] for p in timed for e in p["timeline"])

    def has(got: Any, tick: int) -> bool:
        return any(t == tick and n_ev for t, n_ev in got or [])

    print(f"\ntimeline between the user steps of ticks {mid} and {mid + 1} (ms on one clock):")
    for p in timed:
        calls = sorted(p["timeline"])
        ends = [e for e in calls if e[2] == "user step" and has(e[3], mid)]
        nexts = [e for e in calls if e[2] == "user step" and has(e[3], mid + 1)]
        if not ends or not nexts:
            continue
        gap0, gap1 = ends[-1][1], nexts[0][0]  # between the two user steps with events
        print(f"  worker pid {p['pid']}:")
        busy = 0.0
        for start, end, label, got in calls:
            if start < ends[-1][0] or start > nexts[0][1]:
                continue
            if label.startswith("source") and not got:
                continue  # a poll that emitted nothing
            if ":" in label and label not in _PARTS:
                continue  # the decisions and session ends inside a user step: too many
            indent = "      " if ":" in label else "    "
            if gap0 <= start < gap1 and ":" not in label:
                busy += end - start
            what = f"  {got}" if got else ""
            at, took = (start - origin) * 1e3, (end - start) * 1e3
            print(f"{indent}{at:10.1f} {took:7.2f}  {label}{what}")
        print(f"    between the two user steps: {(gap1 - gap0) * 1e3:.1f} ms, "
              f"{busy * 1e3:.1f} ms of it in steps")  # fmt: skip


def main() -> None:
    args = sys.argv[1:]
    timeline = "--timeline" in args
    if timeline:
        args.remove("--timeline")
    path = TAOBAO
    if "--file" in args:
        at = args.index("--file")
        path = Path(args[at + 1])
        del args[at : at + 2]
    if not path.exists():
        sys.exit(f"skipped: {path} is absent")
    ns = [int(a) for a in args] or [1, 2]
    totals = {}
    for n in ns:
        report, probes = run(n, path, timeline)
        totals[n] = show(n, report, probes)
        if timeline and n > 1:
            show_timeline(probes)
    names = list(totals[ns[0]])
    names += [k for n in ns[1:] for k in totals[n] if k not in names]
    print("\nsum over workers, CPU s: " + "  ".join(f"{n} proc" for n in ns))
    for name in names:
        print(f"  {name:40s}" + "".join(f"{totals[n].get(name, 0.0):9.2f}" for n in ns))


if __name__ == "__main__":
    main()
