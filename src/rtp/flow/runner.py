"""Run a flow with Bytewax's production runner (``bytewax.run``), on one process or several.

:func:`run` builds the flow of a :class:`~rtp.flow.ready.FlowSpec` and runs it with
``bytewax.run.cli_main``: in this process when ``processes == 1``, else as a cluster of
``processes`` local processes joined with Bytewax's ``-i/-a`` addressing (each one
``python -m rtp.flow.runner``, building the same flow from ``RTP_FLOW_SPEC``). Across machines,
run one ``python -m bytewax.run flows.personalize:flow -i I -a "host0:2101;host1:2101"`` per
machine (see ``docs/architecture.md``).

SIGINT and SIGTERM stop a run cleanly: the sources end (a final watermark), the steps finish
what they hold (open sessions are folded, pending models published), the sinks write, and under
recovery Bytewax takes its last snapshot; a second signal kills at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from rtp.config import Settings
from rtp.errors import ConfigError
from rtp.flow.dataflow import Layout, tune_cluster_process
from rtp.flow.ready import SPEC_ENV, FlowSpec, build

log = logging.getLogger("rtp.flow.runner")

PROCESS_ENV = "RTP_PROCESS_ID"
ADDRESSES_ENV = "RTP_ADDRESSES"
RECOVERY_ENV = "RTP_RECOVERY_DIR"
SNAPSHOT_ENV = "RTP_SNAPSHOT_S"


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(int(s.getsockname()[1]))
    for s in socks:
        s.close()
    return ports


def install_stop_handlers() -> None:
    """SIGINT/SIGTERM end the sources (a clean stop); a second signal exits at once."""
    from rtp.flow import sources

    def handler(signum: int, frame: FrameType | None) -> None:
        if sources.stop_requested():
            os._exit(128 + signum)
        log.warning("signal %d: stopping cleanly (send it again to kill)", signum)
        sources.request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def run(
    spec: FlowSpec,
    settings: Settings,
    *,
    processes: int = 1,
    recovery_dir: str | os.PathLike[str] | None = None,
    snapshot_s: float = 10.0,
    on_progress: Any = None,
    sink: Any = None,
) -> float:
    """Run ``spec`` to its end (or until stopped); the wall-clock seconds it took."""
    if processes < 1:
        raise ConfigError(f"--processes must be at least 1, not {processes}")
    t0 = time.perf_counter()
    if processes == 1:
        _run_here(spec, settings, 0, None, recovery_dir, snapshot_s, on_progress, sink)
        return time.perf_counter() - t0
    if sink is not None:
        raise ConfigError("a custom sink cannot cross into other processes")
    if not settings.redis_url:
        raise ConfigError("a run on several processes needs a Redis URL shared by all of them")
    spec.model_log = "redis"
    ports = _free_ports(processes)
    addresses = ";".join(f"127.0.0.1:{p}" for p in ports)
    env = dict(os.environ)
    env[SPEC_ENV] = spec.to_json()
    env[ADDRESSES_ENV] = addresses
    env["RTP_WORKERS"] = str(processes)
    env["RTP_REDIS_URL"] = settings.redis_url
    for f, value in _settings_env(settings).items():
        env[f] = value
    if recovery_dir is not None:
        from rtp.flow.recovery import ensure_store

        ensure_store(Path(recovery_dir), partitions=processes)
        env[RECOVERY_ENV] = str(recovery_dir)
    env[SNAPSHOT_ENV] = str(snapshot_s)
    children = []
    for i in range(processes):
        child_env = dict(env)
        child_env[PROCESS_ENV] = str(i)
        children.append(subprocess.Popen([sys.executable, "-m", "rtp.flow.runner"], env=child_env))

    def forward(signum: int, frame: FrameType | None) -> None:
        for c in children:
            if c.poll() is None:
                c.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [c.wait() for c in children]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    bad = [(i, c) for i, c in enumerate(codes) if c != 0]
    if bad:
        raise ConfigError(f"flow processes failed (process, exit code): {bad}")
    return time.perf_counter() - t0


def _settings_env(settings: Settings) -> dict[str, str]:
    """Every non-default setting as its ``RTP_*`` variable (for child processes)."""
    import dataclasses

    defaults = Settings()
    out = {}
    for f in dataclasses.fields(Settings):
        if f.name == "extra":
            continue
        value = getattr(settings, f.name)
        if value != getattr(defaults, f.name) and value is not None:
            out["RTP_" + f.name.upper()] = str(int(value) if isinstance(value, bool) else value)
    return out


def _run_here(
    spec: FlowSpec,
    settings: Settings,
    process_id: int,
    addresses: list[str] | None,
    recovery_dir: str | os.PathLike[str] | None,
    snapshot_s: float,
    on_progress: Any = None,
    sink: Any = None,
) -> None:
    from bytewax.recovery import RecoveryConfig
    from bytewax.run import cli_main

    workers = len(addresses) if addresses else 1
    layout = Layout(workers, settings.shards)
    if recovery_dir is not None:
        from rtp.flow.recovery import ensure_store

        ensure_store(Path(recovery_dir), partitions=workers)
        settings = settings.replace(hold_profiles=True)
    flow = build(spec, settings, layout=layout, on_progress=on_progress, sink=sink)
    recovery = RecoveryConfig(str(recovery_dir)) if recovery_dir is not None else None
    if addresses and len(addresses) > 1:  # one worker thread per process (workers_per_process=1)
        tune_cluster_process(
            settings, process_id, len(addresses), started_by_rtp=True, live=spec.kind == "live"
        )
    install_stop_handlers()
    cli_main(
        flow,
        workers_per_process=1,
        process_id=process_id if addresses else None,
        addresses=addresses,
        epoch_interval=timedelta(seconds=snapshot_s),
        recovery_config=recovery,
    )


def main() -> None:
    """A process of a cluster started by :func:`run` (its spec and place in the environment)."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    spec = FlowSpec.from_json(os.environ[SPEC_ENV])
    settings = Settings.from_env()
    addresses = os.environ[ADDRESSES_ENV].split(";")
    recovery = os.environ.get(RECOVERY_ENV) or None
    _run_here(
        spec,
        settings,
        int(os.environ[PROCESS_ENV]),
        addresses,
        recovery,
        float(os.environ.get(SNAPSHOT_ENV, "10")),
    )


if __name__ == "__main__":
    main()
