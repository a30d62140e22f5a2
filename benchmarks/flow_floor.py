"""What the whole flow costs without its decisions: the floor under issue #12's throughput.

    .venv/bin/python -m benchmarks.flow_floor [--rounds N] [--file PATH]

Runs ``rtp replay`` of the Taobao slice (or ``PATH``, read as Taobao) in fresh processes, each
into its own private redis-server, alternating four variants, ``N`` rounds (default 3):

- ``full``: the flow as shipped;
- ``fast``: the flow with ``RTP_DECISION_FORM=fast`` (decisions stored in the fast form);
- ``no-encode``: every decision is made (ranking, placements, context) but stored as a
  constant one-byte value instead of its encoded form: what the encoding costs in the flow;
- ``floor``: no decision at all (a constant one-byte value per decision, still written): the
  parse, the session state, the ranking examples, the item, global and edge steps, the profile
  writes and every Redis write, as they are.

Prints each run's events/s (the report's ``events_per_s``) and the median per variant. The
floor bounds what any cheaper decision can reach with the rest of the flow unchanged.

    .venv/bin/python -m benchmarks.flow_floor --stages [--file PATH]

One replay (the flow as shipped) with a clock around the ranking (``rank_home``) and the
decision's encoding: their cost per call in the flow, then the same encoder over the same
decisions again in a tight loop. The two differ (~1.5x on the Taobao slice, BENCHMARKS.md §5),
so a micro-benchmark's figure is not what a change saves in the flow.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.conftest import TAOBAO

VARIANTS = ("full", "fast", "no-encode", "floor")
_STORED = b"x"  # what the two cut variants store per decision (still one Redis write each)


def _child(variant: str, path: str, report: str) -> int:
    from rtp.engine import users
    from rtp.tools.cli import main

    if variant == "floor":

        def no_decision(self: users.UserShard, u: users.UserState, w: users.Writes) -> None:
            w.decisions.append((u.uid, _STORED))

        users.UserShard._write_decision = no_decision  # type: ignore[method-assign]
    elif variant == "no-encode":
        users.encode_decision = lambda doc: _STORED
    elif variant == "stages":
        _clock_stages(users)
    return main(["replay", path, "--format", "taobao", "--report", report])


def _clock_stages(users: Any) -> None:
    """Wrap the shard's ranking and encoder with a clock; print both at exit, and the encoder
    again over the decisions it met, in a loop."""
    import atexit
    import time

    spent = {"rank_home": [0, 0], "encode": [0, 0]}
    docs: list[dict[str, Any]] = []
    clock = time.perf_counter_ns

    def clocked(name: str, f: Any, keep: bool) -> Any:
        acc = spent[name]

        def run(*args: Any, **kw: Any) -> Any:
            t = clock()
            out = f(*args, **kw)
            acc[0] += clock() - t
            acc[1] += 1
            if keep:
                docs.append(args[0])  # the shard drops it once encoded: nothing changes it
            return out

        return run

    encode = users.encode_decision
    users.rank_home = clocked("rank_home", users.rank_home, False)
    users.encode_decision = clocked("encode", encode, True)

    def report() -> None:
        for name, (ns, n) in spent.items():
            print(f"{name:9s} in the flow: {ns / max(n, 1) / 1000:6.1f} µs per call ({n:,} calls)")
        for _ in range(2):  # the second pass is the one reported (warm caches)
            t = clock()
            for d in docs:
                encode(d)
            ns = clock() - t
        print(f"encode    in a loop over the same {len(docs):,} decisions: "
              f"{ns / max(len(docs), 1) / 1000:6.1f} µs per call")  # fmt: skip

    atexit.register(report)


def run_one(variant: str, path: Path) -> float:
    """One replay of ``path`` in a fresh process: its events/s."""
    env = {**os.environ, "RTP_DECISION_FORM": "fast" if variant == "fast" else "compact"}
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "benchmarks.flow_floor", "--child", variant, str(path),
             str(report)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        return float(json.loads(report.read_text())["events_per_s"])


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        sys.exit(_child(*argv[1:4]))
    if "--stages" in argv:
        path = Path(argv[argv.index("--file") + 1]) if "--file" in argv else TAOBAO
        if not path.exists():
            sys.exit(f"skipped: {path} is absent (RTP_DATA_DIR says where the samples are)")
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "benchmarks.flow_floor", "--child", "stages",
                            str(path), str(Path(tmp) / "report.json")], check=True)  # fmt: skip
        return
    rounds = int(argv[argv.index("--rounds") + 1]) if "--rounds" in argv else 3
    path = Path(argv[argv.index("--file") + 1]) if "--file" in argv else TAOBAO
    if not path.exists():
        sys.exit(f"skipped: {path} is absent (RTP_DATA_DIR says where the samples are)")
    got: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for r in range(rounds):
        for v in VARIANTS:
            eps = run_one(v, path)
            got[v].append(eps)
            print(f"round {r + 1}: {v:9s} {eps:9,.0f} events/s", flush=True)
    full = statistics.median(got["full"])
    for v in VARIANTS:
        med = statistics.median(got[v])
        print(f"{v:9s} median {med:9,.0f} events/s ({med / full:.2f}x the full flow)")


if __name__ == "__main__":
    main(sys.argv[1:])
