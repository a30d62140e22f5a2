"""CPU time of each step of the rtp flow, per process: a probe for ``benchmarks/cluster_cpu.py``.

Python imports ``sitecustomize`` at start-up from the path, so a process started with this
directory on ``PYTHONPATH`` and ``RTP_CPUPROBE=DIR`` set wraps the flow's steps (the user, item
and global steps, the sources and the sinks, and the user step's main parts) with a thread CPU
clock, and writes its totals to ``DIR/probe-{pid}.json`` at exit. Without ``RTP_CPUPROBE`` it
does nothing. Not part of rtp: a measuring tool (it adds ~1 µs per wrapped call).
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

_OUT = os.environ.get("RTP_CPUPROBE")
_TIMELINE = bool(os.environ.get("RTP_CPUPROBE_TIMELINE"))
_cpu: Counter[str] = Counter()
_calls: Counter[str] = Counter()
_window: dict[str, float] = {}  # first and last user-step call: wall and process CPU
# with RTP_CPUPROBE_TIMELINE: every wrapped call as (start, end) on the system's monotonic clock
# (the same in every process), its label, and the ticks of what it handled or emitted
_timeline: list[tuple[float, float, str, Any]] = []


def _ticks(label: str, a: tuple[Any, ...], out: Any) -> Any:
    """The ``(tick, events)`` of the batches a source emitted or a user step handled."""
    try:
        if label.startswith("source Gated"):
            return [(b.tick, len(b.events)) for b in out]
        if label == "user step":
            return [(b.tick, len(b.events)) for b in a[1]][:4]
    except (AttributeError, TypeError, ValueError):
        return None
    return None


def _wrap(cls: type, name: str, label: str, window: bool = False) -> None:
    f: Callable[..., Any] = getattr(cls, name)
    clock = time.thread_time

    def wrapped(*a: Any, **k: Any) -> Any:
        if window:
            now, cpu = time.perf_counter(), time.process_time()
            _window.setdefault("wall0", now)
            _window.setdefault("cpu0", cpu)
            _window["wall1"], _window["cpu1"] = now, cpu
        t = clock()
        start = time.perf_counter() if _TIMELINE else 0.0
        out = None
        try:
            out = f(*a, **k)
            return out
        finally:
            _cpu[label] += clock() - t
            _calls[label] += 1
            if _TIMELINE:
                _timeline.append((start, time.perf_counter(), label, _ticks(label, a, out)))

    setattr(cls, name, wrapped)


def _install() -> None:
    from rtp.engine import users
    from rtp.flow import dataflow, sinks, sources

    _wrap(dataflow._Users, "on_batch", "user step", window=True)
    _wrap(dataflow._Items, "on_batch", "item step")
    _wrap(dataflow._Global, "on_batch", "global step")
    if hasattr(dataflow, "_Edge"):  # the edge step (earlier builds learned it in the global step)
        _wrap(dataflow._Edge, "on_batch", "edge step")
    for mod, method, kind in ((sources, "next_batch", "source"), (sinks, "write_batch", "sink")):
        for n, c in vars(mod).items():
            if isinstance(c, type) and method in c.__dict__:
                _wrap(c, method, f"{kind} {n}")
    for m in ("_write_decision", "_end_session", "_sweep", "_advance", "_load"):
        _wrap(users.UserShard, m, f"user step: {m.lstrip('_')}")


def _report() -> None:
    if "user step" not in _calls:
        return  # not a worker (the CLI that starts the processes)
    doc = {
        "pid": os.getpid(),
        "process_cpu_s": time.process_time(),
        "window_wall_s": _window["wall1"] - _window["wall0"],
        "window_cpu_s": _window["cpu1"] - _window["cpu0"],
        "cpu_s": dict(_cpu),
        "calls": dict(_calls),
    }
    if _TIMELINE:
        doc["timeline"] = _timeline
    with open(os.path.join(str(_OUT), f"probe-{os.getpid()}.json"), "w") as fh:
        json.dump(doc, fh)


if _OUT:
    try:
        _install()
    except ImportError as e:  # a Python process that is not rtp's (no rtp on its path)
        print(f"cpu_probe: not installed: {e}", file=sys.stderr)
    else:
        atexit.register(_report)
