"""Setuptools entry point. Everything is declared in pyproject.toml; this file only adds the
optional compiled build: ``RTP_MYPYC=1`` compiles the per-event hot path with mypyc (``make
compiled``; see "Compiled build" in the README). Without it rtp installs as pure Python."""

import os

from setuptools import setup

# The modules every decision runs through (BENCHMARKS.md §5 measured these).
HOT_PATH = [
    "src/rtp/store/codec.py",
    "src/rtp/ranking/score.py",
    "src/rtp/decisions/home.py",
    "src/rtp/candidates/generate.py",
    "src/rtp/candidates/popularity.py",
    "src/rtp/candidates/covisit.py",
]

if os.environ.get("RTP_MYPYC") == "1":
    from mypyc.build import mypycify

    # C sources in build/mypyc; `make compiled` empties build/ first (mypyc's incremental state
    # from another module list has crashed it)
    setup(ext_modules=mypycify(HOT_PATH, opt_level="3", separate=True, target_dir="build/mypyc"))
else:
    setup()
