"""The optional compiled build (``make compiled``: setup.py's ``RTP_MYPYC=1`` wheel in
``build/compiled-site``) decides exactly as the sources do, and its snapshots cross over.

The build is not part of ``make test`` (it compiles for a minute or more); these tests skip,
saying so, where it has not been made. ``make test-compiled`` runs the whole suite against it.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("RTP_COMPILED_SITE") or ROOT / "build" / "compiled-site")
HOT_PATH = [
    "rtp.store.codec",
    "rtp.ranking.score",
    "rtp.decisions.home",
    "rtp.candidates.generate",
    "rtp.candidates.popularity",
    "rtp.candidates.covisit",
]

needs_build = pytest.mark.skipif(
    not (SITE / ".built").exists(), reason="no compiled build: `make compiled` makes one"
)

# Run in a subprocess with and without the compiled build on the path: a digest of every
# decision, profile and product page written for a seeded synthetic stream, and the engine's
# state pickled (its snapshot) then loaded by the other build.
_PROGRAM = r"""
import hashlib, pickle, sys
sys.path.insert(0, sys.argv[1])
from tests.builders import synthetic_stream, positioned
from rtp.config import Settings
from rtp.engine import Engine
import rtp.store.codec as codec
mode, path = sys.argv[2], sys.argv[3]
compiled = codec.__file__.endswith(".so")
h = hashlib.sha256()
if mode == "dump":
    events = positioned(synthetic_stream(300, seed=11))
    eng = Engine(Settings(tick_records=50))
    for k in range(0, len(events), 40):
        w = eng.process(events[k : k + 40])
        for part in (w.decisions, w.profiles, sorted(w.neighbours.items())):
            for key, raw in sorted(part):
                h.update(key.encode() + raw)
    with open(path, "wb") as fh:  # the three states, as the flow's recovery pickles them
        pickle.dump((eng.users, eng.items, eng.merge, eng.tick, eng.high), fh)
    print(compiled, h.hexdigest())
else:
    eng = Engine(Settings(tick_records=50))
    with open(path, "rb") as fh:
        eng.users, eng.items, eng.merge, eng.tick, eng.high = pickle.load(fh)
    more = positioned(synthetic_stream(60, seed=12, start=2e9), source="t")
    w = eng.process(more)
    for key, raw in sorted(w.decisions):
        h.update(key.encode() + raw)
    print(compiled, h.hexdigest())
"""


def _run(site: Path | None, mode: str, path: Path) -> tuple[bool, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM, str(ROOT), mode, str(path)],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.split()
    return out[0] == "True", out[1]


@needs_build
def test_the_compiled_build_decides_as_the_sources_and_reads_their_snapshots(
    tmp_path: Path,
) -> None:
    src_compiled, src_digest = _run(None, "dump", tmp_path / "src.pickle")
    bin_compiled, bin_digest = _run(SITE, "dump", tmp_path / "bin.pickle")
    assert not src_compiled and bin_compiled  # each run used the build it was meant to
    assert bin_digest == src_digest
    # a snapshot taken by one build resumes in the other, and both go on to decide alike
    resumed = {
        (site is not None, snap): _run(site, "load", tmp_path / snap)[1]
        for site in (None, SITE)
        for snap in ("src.pickle", "bin.pickle")
    }
    assert len(set(resumed.values())) == 1, resumed


@pytest.mark.skipif(
    not os.environ.get("RTP_COMPILED_SITE"), reason="runs under `make test-compiled` only"
)
def test_the_suite_runs_on_the_compiled_modules() -> None:
    """Under ``make test-compiled`` the hot path's modules are the compiled ones."""
    for name in HOT_PATH:
        module = importlib.import_module(name)
        assert module.__file__ is not None and module.__file__.endswith(".so"), module.__file__
