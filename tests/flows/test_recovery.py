"""A replay under Bytewax recovery, SIGKILLed mid-way and rerun, ends where an uninterrupted
run ends (decision and profile keys in Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

from rtp.store import codec
from tests.builders import synthetic_stream, write_jsonl

ROOT = Path(__file__).resolve().parents[2]


def _cmd(path: Path, url: str, recovery: Path, snapshot: float = 0.2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rtp.tools.cli",
        "replay",
        str(path),
        "--format",
        "jsonl",
        "--redis-url",
        url,
        "--recovery",
        str(recovery),
        "--snapshot",
        str(snapshot),
        "--batch-lines",
        "100",
        "-q",
    ]


def _commits(recovery: Path) -> int:
    """Snapshots committed in a Bytewax recovery store (0 while there is none)."""
    import sqlite3

    total = 0
    for db in recovery.glob("*.sqlite3"):
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0)
        try:
            total += con.execute("select count(*) from commits").fetchone()[0]
        except sqlite3.Error:
            pass
        finally:
            con.close()
    return total


def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    try:
        while proc.poll() is None and not ready():
            time.sleep(0.01)
        assert proc.poll() is None, "the replay finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _keys(r: redis.Redis, pattern: str) -> dict[str, object]:
    keys = sorted(r.scan_iter(match=pattern, count=1000))
    if not keys:
        return {}
    return {k.decode(): codec.loads(v) for k, v in zip(keys, r.mget(keys), strict=True)}


def _diff(a: dict[str, object], b: dict[str, object]) -> list[str]:
    out = [f"only in the reference: {k}" for k in sorted(set(a) - set(b))]
    out += [f"only after the crash: {k}" for k in sorted(set(b) - set(a))]
    for k in sorted(set(a) & set(b)):
        if a[k] != b[k]:
            x, y = a[k], b[k]
            if isinstance(x, dict) and isinstance(y, dict):
                fields = {f for f in set(x) | set(y) if x.get(f) != y.get(f)}
                out.append(f"{k}: {sorted(fields)}")
            else:
                out.append(k)
    return out


def test_kill_and_resume_ends_like_an_uninterrupted_run(redis_url: str, tmp_path: Path) -> None:
    events = synthetic_stream(700, seed=21)
    path = write_jsonl(tmp_path / "stream.jsonl", events)
    base = redis_url.rsplit("/", 1)[0]
    ref_url, crash_url = f"{base}/1", f"{base}/0"
    ref, crash = redis.Redis.from_url(ref_url), redis.Redis.from_url(crash_url)
    ref.flushdb()

    done = subprocess.run(
        _cmd(path, ref_url, tmp_path / "rec-ref"), env=_env(), capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    want_d = _keys(ref, "rtp:d:*")
    assert len(want_d) == len({e.user for e in events})

    # the same replay, killed once a good part of the decisions exist
    rec = tmp_path / "rec-crash"
    proc = subprocess.Popen(
        _cmd(path, crash_url, rec), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _kill_when(proc, lambda: crash.dbsize() >= len(want_d) // 4 and _commits(rec) > 0)
    partial = len(_keys(crash, "rtp:d:*"))
    assert 0 < partial < len(want_d)

    again = subprocess.run(_cmd(path, crash_url, rec), env=_env(), capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    got_d = _keys(crash, "rtp:d:*")
    diff = _diff(want_d, got_d)
    assert not diff, f"{len(diff)} decision keys differ, e.g. {diff[:10]}"
    diff_p = _diff(_keys(ref, "rtp:p:*"), _keys(crash, "rtp:p:*"))
    assert not diff_p, f"{len(diff_p)} profile keys differ, e.g. {diff_p[:10]}"
    # the edge step resumed from its own snapshot: the same model as the uninterrupted run's
    edge = ref.get("rtp:meta:edge")
    assert edge is not None and crash.get("rtp:meta:edge") == edge
    ref.flushdb()


def test_a_rerun_after_a_crash_before_the_first_snapshot_does_not_reread_its_own_writes(
    redis_url: str, tmp_path: Path
) -> None:
    # Killed before any snapshot is committed (snapshots every 10 minutes), after some
    # sessions were folded into profiles in Redis. The rerun starts from the beginning; it must
    # not load those profiles as if the users had been here before.
    events = synthetic_stream(700, seed=21)
    path = write_jsonl(tmp_path / "stream.jsonl", events)
    base = redis_url.rsplit("/", 1)[0]
    ref_url, crash_url = f"{base}/1", f"{base}/0"
    ref, crash = redis.Redis.from_url(ref_url), redis.Redis.from_url(crash_url)
    ref.flushdb()
    done = subprocess.run(
        _cmd(path, ref_url, tmp_path / "rec-ref", 600.0),
        env=_env(),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rec = tmp_path / "rec-crash"
    proc = subprocess.Popen(
        _cmd(path, crash_url, rec, 600.0),
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Under recovery, folded profiles are held until a snapshot: none may be in Redis yet,
    # although sessions were already folded (decisions of a quarter of the users are there).
    _kill_when(proc, lambda: crash.dbsize() >= 700 // 4)
    assert _commits(rec) == 0
    assert not list(crash.scan_iter(match="rtp:p:*", count=1000))
    again = subprocess.run(
        _cmd(path, crash_url, rec, 600.0), env=_env(), capture_output=True, timeout=120
    )
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    want_p, got_p = _keys(ref, "rtp:p:*"), _keys(crash, "rtp:p:*")
    diff_p = _diff(want_p, got_p)
    assert not diff_p, f"{len(diff_p)} profile keys differ, e.g. {diff_p[:5]}"
    diff = _diff(_keys(ref, "rtp:d:*"), _keys(crash, "rtp:d:*"))
    assert not diff, f"{len(diff)} decision keys differ, e.g. {diff[:5]}"
    ref.flushdb()
