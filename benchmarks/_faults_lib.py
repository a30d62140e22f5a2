"""The machinery of the fault suite (``benchmarks/faults.py``): the processes it starts (and
always stops), a restartable redis-server with an append-only file, ``rtp live`` as a
subprocess, producers that keep what they could not send, and Redis reads for the accounting.

Nothing here asserts: the trials decide what a number means.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing as mp
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
import redis

from rtp import streams
from rtp.errors import Backpressure
from rtp.store.store import item_meta_command

ROOT = Path(__file__).resolve().parents[1]
STREAM = streams.DEFAULT_STREAM
PARTITIONS = streams.DEFAULT_PARTITIONS
DEAD_LETTERS = "rtp:deadletter"


def rtp_command() -> str:
    """The ``rtp`` entry point beside this interpreter (``.venv/bin/rtp``)."""
    here = Path(sys.executable).with_name("rtp")
    if here.exists():
        return str(here)
    found = shutil.which("rtp")
    if found is None:
        raise SystemExit("no `rtp` command beside the interpreter: run `make faults`")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Callable[[], Any], timeout: float, every: float = 0.1) -> float | None:
    """Poll ``pred`` until it is true; the seconds it took, or ``None`` at the deadline."""
    t0 = time.monotonic()
    end = t0 + timeout
    while True:
        try:
            if pred():
                return time.monotonic() - t0
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        if time.monotonic() >= end:
            return None
        time.sleep(every)


# --- every process and directory we start, stopped whatever happens ---------------------------


class Reaper:
    """Owns the child processes and temporary directories of the suite.

    Every child runs in a session of its own, so stopping it also stops whatever it started
    (``os.killpg`` on the child's own process group, never a name). :meth:`cleanup` runs at the
    end of every trial, at exit and on SIGINT/SIGTERM.
    """

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[Any] = []  # multiprocessing.Process
        self.dirs: list[str] = []
        self.keep = False

    def popen(self, args: list[str], **kw: Any) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(args, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def process(self, target: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        ctx = mp.get_context("spawn")
        w = ctx.Process(target=target, args=args, daemon=True)
        w.start()
        self.workers.append(w)
        return w

    def tmpdir(self, prefix: str) -> str:
        d = tempfile.mkdtemp(prefix=prefix)
        self.dirs.append(d)
        return d

    @staticmethod
    def signal(p: subprocess.Popen[bytes], sig: int) -> None:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(p.pid, sig)

    def cleanup(self, dirs: bool = False) -> None:
        for p in self.procs:
            self.signal(p, signal.SIGKILL)
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.wait(timeout=10)
        self.procs = [p for p in self.procs if p.poll() is None]
        for w in self.workers:
            if w.is_alive():
                w.kill()
            w.join(timeout=10)
        self.workers = [w for w in self.workers if w.is_alive()]
        if dirs and not self.keep:
            for d in self.dirs:
                shutil.rmtree(d, ignore_errors=True)
            self.dirs = []


REAPER = Reaper()


def install_cleanup() -> None:
    """Stop every child at exit and on SIGINT/SIGTERM (which then end the suite)."""
    atexit.register(REAPER.cleanup, True)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


# --- redis-server ------------------------------------------------------------------------------


class RedisProc:
    """A private redis-server on a free port that can be SIGKILLed and started again on the same
    port and directory. With ``aof`` it writes an append-only file with ``appendfsync always``,
    so what it acknowledged survives a SIGKILL (as ``../shared/acceptance/faults-live`` does)."""

    def __init__(self, name: str, aof: bool = False) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("no redis-server on PATH (make faults installs Debian's as root)")
        self.exe = exe
        self.aof = aof
        self.port = free_port()
        self.dir = REAPER.tmpdir(f"rtp-faults-{name}-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 60.0) -> float:
        """Start (or restart) the server; the seconds until it answers PING with its data."""
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.aof
            else ["--appendonly", "no"]
        )
        t0 = time.monotonic()
        log = open(Path(self.dir) / "redis.log", "ab")  # noqa: SIM115 (closed below)
        try:
            self.proc = REAPER.popen(
                [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                 "--save", "", *persistence],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        finally:
            log.close()
        self.starts += 1
        c = redis.Redis(port=self.port, socket_connect_timeout=0.5, socket_timeout=2)
        try:
            while time.monotonic() - t0 < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
                try:
                    if c.ping():
                        return time.monotonic() - t0
                except (redis.ConnectionError, redis.TimeoutError):  # incl. LOADING
                    time.sleep(0.02)
        finally:
            c.close()
        raise RuntimeError("redis-server did not answer")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (the AOF holds what was acknowledged)."""
        if self.proc is not None:
            REAPER.signal(self.proc, signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.proc = None

    def client(self, timeout: float = 10.0) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=timeout, socket_connect_timeout=2)


# --- rtp live ----------------------------------------------------------------------------------


class Live:
    """``rtp live --redis-url URL`` as a subprocess, its output in a log file."""

    def __init__(
        self,
        url: str,
        logdir: str,
        name: str = "live",
        env: dict[str, str] | None = None,
        args: Iterable[str] = (),
    ) -> None:
        self.url = url
        self.name = name
        self.logdir = Path(logdir)
        self.env = {**os.environ, **(env or {})}
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.runs = 0
        self.log_paths: list[Path] = []
        self.started = 0.0

    def start(self) -> None:
        self.runs += 1
        path = self.logdir / f"{self.name}-{self.runs}.log"
        self.log_paths.append(path)
        with open(path, "wb") as log:
            self.proc = REAPER.popen(
                [rtp_command(), "live", "--redis-url", self.url, *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=str(ROOT),
            )  # fmt: skip
        self.started = time.monotonic()

    def wait_ready(self, r: redis.Redis, timeout: float = 60.0) -> float | None:
        """Until every partition's consumer has read once (the flow is consuming)."""

        def ready() -> bool:
            if not self.alive:
                raise RuntimeError(f"rtp live exited early:\n{self.log_tail()}")
            for name in streams.partition_names(STREAM, PARTITIONS):
                if not r.exists(name):
                    return False
                groups = r.xinfo_groups(name)
                if not groups or not groups[0].get("consumers"):
                    return False
            return True

        return wait_for(ready, timeout, every=0.05)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def status_kb(self, field: str = "VmRSS") -> int:
        """``VmRSS`` (or ``VmHWM``) of the process from ``/proc/PID/status``, in kB."""
        try:
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass
        return 0

    def terminate(self, timeout: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM; ``(exit code, seconds to exit)`` (code ``None``: still running, killed)."""
        assert self.proc is not None
        t0 = time.monotonic()
        REAPER.signal(self.proc, signal.SIGTERM)
        try:
            rc: int | None = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            rc = None
            self.kill()
        return rc, time.monotonic() - t0

    def kill(self) -> None:
        if self.proc is not None:
            REAPER.signal(self.proc, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_paths if p.exists())

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_times(self, since: float = 0.0) -> list[float]:
        """The wall-clock times of the log lines written since ``since`` (unix seconds)."""
        out = []
        for line in self.log_text().splitlines():
            try:
                t = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue
            if t >= since:
                out.append(t)
        return out

    def busiest(self, since: float, window: float = 10.0) -> int:
        """The most log lines in any ``window`` seconds since ``since``."""
        times = sorted(self.log_times(since))
        best, j = 0, 0
        for i, t in enumerate(times):
            while times[j] < t - window:
                j += 1
            best = max(best, i - j + 1)
        return best

    def log_summary(self) -> dict[str, int]:
        lines = self.log_text().splitlines()
        return {
            "lines": len(lines),
            "tracebacks": sum("Traceback (most recent call last)" in x for x in lines),
            "warnings": sum(" WARNING " in x for x in lines),
            "errors": sum(" ERROR " in x or " CRITICAL " in x for x in lines),
        }


# --- reading the flow's accounting -----------------------------------------------------------

NUMERIC = ("read", "rejected", "events", "internal_errors", "dropped_forgotten", "forgotten",
           "decisions_ranked", "decisions_degraded", "mode_changes", "redecided")  # fmt: skip


_STATS_KEYS: dict[tuple[Any, str], list[bytes]] = {}


def stats_keys(r: redis.Redis, run: str) -> list[bytes]:
    """The stats keys of a run (found by a scan once, then remembered per server)."""
    where = (tuple(sorted(r.connection_pool.connection_kwargs.items())), run)
    keys = _STATS_KEYS.get(where)
    if not keys:
        keys = sorted(r.scan_iter(match=f"rtp:meta:stats:{run}:u*", count=10_000))
        if keys:
            _STATS_KEYS[where] = keys
    return keys


def flow_stats(r: redis.Redis, run: str = "live") -> dict[str, float]:
    """The user steps' stats of a run (``rtp:meta:stats:{run}:u*``), summed over shards."""
    out: dict[str, float] = dict.fromkeys(NUMERIC, 0)
    out["shards"] = 0
    out["wall"] = 0.0
    out["max_lag_s"] = 0.0
    for key in stats_keys(r, run):
        raw = r.get(key)
        if not raw:
            continue
        st = orjson.loads(raw)
        out["shards"] += 1
        for k in NUMERIC:
            out[k] += float(st.get(k, 0) or 0)
        out["wall"] = max(out["wall"], float(st.get("wall", 0.0)))
        out["max_lag_s"] = max(out["max_lag_s"], float(st.get("max_lag_s", 0.0)))
    return out


def add_stats(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """Two runs' stats (a restarted ``rtp live`` starts counting from zero)."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in NUMERIC}


def stream_state(r: redis.Redis, stream: str = STREAM, partitions: int = PARTITIONS) -> dict:
    """What Redis itself counts on the partitions: entries added and left, delivered to the
    group (``entries-read``), pending (delivered, unacknowledged), lag, and recorded gaps."""
    out = {"length": 0, "added": 0, "delivered": 0, "pending": 0, "lag": 0, "gaps": 0,
           "gap_events": 0}  # fmt: skip
    for name in streams.partition_names(stream, partitions):
        if not r.exists(name):
            continue
        info: Any = r.xinfo_stream(name)
        out["length"] += int(info.get("length") or 0)
        out["added"] += int(info.get("entries-added") or 0)
        for g in r.xinfo_groups(name):
            out["delivered"] += int(g.get("entries-read") or 0)
            out["pending"] += int(g.get("pending") or 0)
            out["lag"] += int(g.get("lag") or 0)
    gaps: Any = r.hgetall(f"{stream}:gaps")
    out["gaps"] = int(gaps.get(b"gaps", 0)) if gaps else 0
    out["gap_events"] = int(gaps.get(b"events", 0)) if gaps else 0
    return out


def missing_items(r: redis.Redis, items: list[str], chunk: int = 5000) -> list[str]:
    """The items not in the catalogue (an event's item record is written there once the item
    step has applied it: the end of the event's path through the flow)."""
    out: list[str] = []
    for i in range(0, len(items), chunk):
        part = items[i : i + chunk]
        values = r.execute_command(*item_meta_command("rtp:", part))
        for item, v in zip(part, values, strict=True):
            if v is None:
                out.append(item)
    return out


def dead_letters(r: redis.Redis) -> dict[str, dict[str, bytes]]:
    """Every dead letter in the stream, by source position."""
    out: dict[str, dict[str, bytes]] = {}
    last = "-"
    while True:
        got = r.xrange(DEAD_LETTERS, min=last, count=5000)
        if last != "-" and got and got[0][0].decode() == last:
            got = got[1:]
        if not got:
            return out
        for entry_id, f in got:
            d = {k.decode(): v for k, v in f.items()}
            d["_id"] = entry_id
            out[f.get(b"pos", b"").decode()] = d
        last = got[-1][0].decode()


def dump_all(r: redis.Redis) -> Iterator[tuple[bytes, bytes, bytes]]:
    """``(key, type, everything in it)`` for every key of every type."""
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        if kind == b"string":
            blob = r.get(key) or b""
        elif kind == b"hash":
            blob = b"\n".join(k + b"=" + v for k, v in r.hgetall(key).items())
        elif kind == b"set":
            blob = b"\n".join(r.smembers(key))
        elif kind == b"zset":
            blob = b"\n".join(m for m, _ in r.zrange(key, 0, -1, withscores=True))
        elif kind == b"list":
            blob = b"\n".join(r.lrange(key, 0, -1))
        elif kind == b"stream":
            parts = []
            for _, fields in r.xrange(key):
                parts.extend(k + b"=" + v for k, v in fields.items())
            blob = b"\n".join(parts)
        else:
            blob = r.dump(key) or b""
        yield key, kind, blob


# --- producers ---------------------------------------------------------------------------------


def product_view(user: str, item: str, ts: float, n: int, **kw: Any) -> dict[str, Any]:
    return {"v": 1, "type": "product_view", "user": user, "ts": ts, "item": item,
            "category": f"c{n % 13}", "price": float(10 + n % 90), **kw}  # fmt: skip


class SteadyProducer(threading.Thread):
    """Events at a steady rate, one product view each with its own item (so the catalogue
    shows which events went all the way through). What it cannot send (Redis away, refused)
    it keeps, in order, and sends later; it counts appended events and what went wrong."""

    def __init__(
        self,
        url: str,
        rate: float,
        users: int,
        prefix: str,
        context: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.rate = rate
        self.users = users
        self.prefix = prefix
        self.context = context
        self.items: list[str] = []  # by sequence number
        self.user_of: list[int] = []
        self.appended = 0
        self.failures: Counter[str] = Counter()
        self.refused = 0  # events held through a failed attempt (all of them are sent later)
        self._marked = -1
        self.pending: deque[tuple[int, dict[str, Any]]] = deque()
        self.max_pending = 0
        self._stop_at: float | None = None
        self._halt = threading.Event()
        self.finished = threading.Event()
        self.lock = threading.Lock()

    def user(self, n: int) -> str:
        return f"{self.prefix}-u{n % self.users}"

    def generated(self) -> int:
        with self.lock:
            return len(self.items)

    def stop(self, drain_timeout: float = 300.0) -> None:
        """Stop making events; keep sending what is pending (up to ``drain_timeout``)."""
        self._stop_at = time.monotonic() + drain_timeout
        self._halt.set()

    def run(self) -> None:
        r = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=1)
        t0 = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if not self._halt.is_set():
                    due = int((now - t0) * self.rate)
                    with self.lock:
                        while len(self.items) < due:
                            n = len(self.items)
                            item = f"{self.prefix}-i{n}"
                            kw = {"context": self.context} if self.context else {}
                            self.pending.append(
                                (n, product_view(self.user(n), item, time.time(), n, **kw))
                            )
                            self.items.append(item)
                            self.user_of.append(n % self.users)
                    self.max_pending = max(self.max_pending, len(self.pending))
                elif not self.pending or (self._stop_at and now > self._stop_at):
                    return
                if self.pending:
                    batch = [e for _, e in itertools.islice(self.pending, 2000)]
                    try:
                        streams.append(r, batch)
                    except (Backpressure, redis.ConnectionError, redis.TimeoutError) as e:
                        self.failures[type(e).__name__] += 1
                        last = self.pending[-1][0]  # all it holds now waits for a retry
                        if last > self._marked:
                            self.refused += last - max(self._marked, self.pending[0][0] - 1)
                            self._marked = last
                        wait = e.retry_after_s if isinstance(e, Backpressure) else 0.1
                        time.sleep(wait)
                        continue
                    for _ in batch:
                        self.pending.popleft()
                    self.appended += len(batch)
                time.sleep(0.01)
        finally:
            r.close()
            self.finished.set()


def spike_producer(
    url: str,
    rate: float,
    start_at: float,
    seconds: float,
    index: int,
    users: int,
    catalogue: int,
    out: Any,
) -> None:
    """One producer process of the spike: batches of 500 product views at ``rate`` events/s
    from ``start_at`` (wall clock) for ``seconds``. A refused batch is kept and retried after
    ``retry_after_s`` (no new events are made meanwhile: a client told to back off); after the
    spike it sends what it still holds. Puts its counts on ``out``."""
    r = redis.Redis.from_url(url, socket_timeout=10)
    batch_n = 500
    counts = Counter[str]()
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.monotonic()
    end = t0 + seconds
    n = 0
    held: list[dict[str, Any]] = []
    refused_once = False
    seen: set[str] = set()
    while True:
        now = time.monotonic()
        if not held:
            if now >= end:
                break
            wait = t0 + n / rate - now
            if wait > 0:
                time.sleep(wait)
            ts = time.time()
            held = []
            for _ in range(batch_n):
                u = f"s{index}-u{(n * 7919) % users}"
                k = zlib.crc32(b"%d-%d" % (index, n)) % catalogue
                held.append(product_view(u, f"s-i{k}", ts, k))
                n += 1
            counts["generated"] += batch_n
            refused_once = False
        try:
            streams.append(r, held)
        except Backpressure as e:
            counts["refused_attempts"] += 1
            counts["refused_attempt_events"] += len(held)
            if not refused_once:
                counts["refused"] += len(held)
                refused_once = True
            time.sleep(e.retry_after_s)
            continue
        except (redis.ConnectionError, redis.TimeoutError):
            counts["errors"] += 1
            time.sleep(0.1)
            continue
        counts["appended"] += len(held)
        if time.monotonic() <= end:
            counts["appended_in_spike"] += len(held)
        seen.update(e["user"] for e in held)
        held = []
    counts["users"] = len(seen)
    counts["done_after_s_x1000"] = int((time.monotonic() - t0) * 1000)
    r.close()
    out.put((index, dict(counts)))


def append_all(r: redis.Redis, events: list[Any], chunk: int = 500, **kw: Any) -> list[bytes]:
    """Append everything, retrying refused chunks after ``retry_after_s``; the entry ids."""
    ids: list[bytes] = []
    for i in range(0, len(events), chunk):
        part = events[i : i + chunk]
        while True:
            try:
                ids.extend(streams.append(r, part, **kw))
                break
            except Backpressure as e:
                time.sleep(e.retry_after_s)
    return ids


def position(entry_id: bytes, user_key: str, partitions: int = PARTITIONS) -> str:
    """The source position a dead letter of this entry carries (``rtp:events:{p}:{id}``)."""
    p = streams.partition_of(user_key, partitions)
    return f"{STREAM}:{p}:{entry_id.decode()}"


class Sampler(threading.Thread):
    """Samples a process's RSS every ``every`` seconds: ``(monotonic time, kB)``."""

    def __init__(self, live: Live, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.live = live
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            kb = self.live.status_kb("VmRSS")
            if kb:
                self.samples.append((time.monotonic(), kb))
            self._halt.wait(self.every)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def between(self, t0: float, t1: float) -> list[int]:
        return [kb for t, kb in self.samples if t0 <= t <= t1]


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    import platform

    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    try:
        from importlib.metadata import version

        bytewax = version("bytewax")
        redis_py = version("redis")
    except Exception:  # pragma: no cover
        bytewax = redis_py = "?"
    server = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    server_v = next((w.split("=", 1)[1] for w in server if w.startswith("v=")), "?")
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": mem,
        "os": platform.platform(),
        "python": platform.python_version(),
        "bytewax": bytewax,
        "redis-py": redis_py,
        "redis-server": server_v,
    }


def write_lines(path: Path, lines: Iterable[bytes]) -> Path:
    with open(path, "wb") as fh:
        for line in lines:
            fh.write(line + b"\n")
    return path


def open_log(path: Path) -> IO[str]:
    return open(path, "a")  # noqa: SIM115 (the caller closes it)
