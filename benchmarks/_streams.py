"""Larger streams for the benchmarks, written to a tmp dir (never to the repository).

- :func:`generated_10x`: about ten times the Taobao slice's events. With ``rtp.tools.synth``
  (written by another engineer) when it is importable, else :func:`taobao_replicated`.
- :func:`generated_users`: a stream of ``users`` users with the same number of events each, for
  the scaling benchmark. ``rtp.tools.synth`` when importable, else :func:`synthetic_users`.

``RTP_BENCH_GENERATOR=builtin`` forces the built-in generators (to compare with older figures).
Every generator is deterministic for a given seed. Streams go to one session tmp dir
(:func:`stream_dir`) and are made once per ``make bench``.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

TAOBAO_SPAN_S = 7_200  # the slice covers 01:00-02:55 UTC: copies are shifted by two hours


def synth_available() -> bool:
    if os.environ.get("RTP_BENCH_GENERATOR", "") == "builtin":
        return False
    try:
        return importlib.util.find_spec("rtp.tools.synth") is not None
    except (ImportError, ValueError):
        return False


def _synth(users: int, out: Path, seed: int) -> Path:
    if out.exists():  # the same arguments give the same bytes: made once per session
        return out
    subprocess.run(
        [sys.executable, "-m", "rtp.tools.synth", "--users", str(users), "--out", str(out),
         "--seed", str(seed)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return out


def taobao_replicated(src: Path, out: Path, copies: int = 10) -> Path:
    """``copies`` copies of the Taobao slice one after another: copy ``k`` has user and item
    ids offset by ``k`` x 10^8 and timestamps shifted by ``k`` x 2 h (so it is still in time
    order); categories are shared (one shop, a bigger catalogue). Rows that are not five
    fields with an integer time (the truncated last line) are left out."""
    rows: list[tuple[int, int, bytes, bytes, int]] = []
    for raw in src.read_bytes().split(b"\n"):
        f = raw.strip().split(b",")
        if len(f) != 5 or not f[4].isdigit() or int(f[4]) < 1_000_000_000:
            continue
        rows.append((int(f[0]), int(f[1]), f[2], f[3], int(f[4])))
    with open(out, "wb") as fh:
        for k in range(copies):
            off = k * 100_000_000
            shift = k * TAOBAO_SPAN_S
            fh.write(
                b"".join(
                    b"%d,%d,%b,%b,%d\n" % (u + off, i + off, c, b, t + shift)
                    for u, i, c, b, t in rows
                )
            )
    return out


def synthetic_users(
    users: int,
    out: Path,
    events_per_user: int = 10,
    seed: int = 7,
    span_s: int = 7_200,
    items: int = 200_000,
    categories: int = 2_000,
    t0: int = 1_511_658_000,
) -> Path:
    """A Taobao-format stream (time-ordered CSV) where every user does ``events_per_user``
    events in one visit that starts uniformly inside ``span_s`` (event gaps 5-90 s), in one or
    two favourite categories of a fixed catalogue; items per category by a Zipf-like law;
    behaviours in the slice's proportions (pv 89 %, cart 5.5 %, fav 3 %, buy 2.2 %). The
    catalogue does not grow with ``users``: only the users do."""
    rng = random.Random(seed)
    per_cat = items // categories
    cat_cum = list(itertools.accumulate(1.0 / (c + 1) ** 0.8 for c in range(categories)))
    item_cum = list(itertools.accumulate(1.0 / (j + 1) for j in range(per_cat)))
    cat_ids = range(categories)
    item_ids = range(per_cat)
    behaviours = [b"pv"] * 890 + [b"cart"] * 55 + [b"fav"] * 30 + [b"buy"] * 22
    rows: list[tuple[int, bytes]] = []
    for u in range(users):
        uid = 1_000_000 + u
        cats = rng.choices(cat_ids, cum_weights=cat_cum, k=2)
        t = t0 + rng.randrange(span_s)
        for _ in range(events_per_user):
            c = cats[0] if rng.random() < 0.75 else cats[1]
            j = rng.choices(item_ids, cum_weights=item_cum)[0]
            item = c * per_cat + j
            behaviour = rng.choice(behaviours)
            line = b"%d,%d,%d,%b,%d\n" % (uid, 5_000_000 + item, 9_000 + c, behaviour, t)
            rows.append((t, line))
            t += rng.randint(5, 90)
    rows.sort(key=lambda r: r[0])
    with open(out, "wb") as fh:
        fh.write(b"".join(line for _, line in rows))
    return out


def generated_10x(taobao: Path, tmp: Path, seed: int = 7) -> tuple[Path, str, str]:
    """About 10x the slice's events: ``(path, format, how it was made)``.

    ``rtp.tools.synth --users 50000`` is "about 1M events: ten times the Taobao sample" (its doc);
    the scaling benchmark's 50k-user stream is the same file."""
    if synth_available():
        out = _synth(50_000, tmp / f"synth_50000_{seed}.jsonl", seed)
        return out, "jsonl", f"rtp.tools.synth --users 50000 --seed {seed}"
    out = tmp / "taobao_10x.csv"
    if not out.exists():
        taobao_replicated(taobao, out, copies=10)
    return out, "taobao", "Taobao slice replicated 10x (ids offset, time shifted)"


def generated_users(
    users: int, tmp: Path, events_per_user: int = 10, seed: int = 7
) -> tuple[Path, str, str]:
    """A stream of ``users`` users: ``(path, format, how it was made)``."""
    if synth_available():
        out = _synth(users, tmp / f"synth_{users}_{seed}.jsonl", seed)
        return out, "jsonl", f"rtp.tools.synth --users {users} --seed {seed} (~20 events/user)"
    out = tmp / f"users_{users}_{events_per_user}_{seed}.csv"
    if not out.exists():
        synthetic_users(users, out, events_per_user, seed)
    how = f"benchmarks._streams.synthetic_users({users}, {events_per_user} events/user)"
    return out, "taobao", how


def stream_dir(tmp_path_factory: Any) -> Path:
    """The session's directory for generated streams (under pytest's basetemp)."""
    d = Path(tmp_path_factory.getbasetemp()) / "streams"
    d.mkdir(exist_ok=True)
    return d
