"""The ``rtp`` command line: replay, live, evaluate, forget, experiments.

Every flag that has a setting also reads ``RTP_<NAME>`` (see :mod:`rtp.config`); flags win.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from rtp.config import Settings, parse_duration
from rtp.errors import RtpError


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in (
        "redis_url",
        "dead_letter_file",
        "experiments_file",
        "shards",
        "batch_lines",
        "ranker",
    ):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    for name, field in (("partitions", "stream_partitions"),):
        value = getattr(args, name, None)
        if value is not None:
            overrides[field] = value
    if getattr(args, "session_gap", None):
        overrides["session_gap_s"] = parse_duration(args.session_gap)
    if getattr(args, "max_lag", None):
        overrides["max_lag_s"] = parse_duration(args.max_lag)
    return Settings.from_env(**overrides)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--redis-url", help="Redis to write to (default: RTP_REDIS_URL, else embedded)")
    p.add_argument("--session-gap", help="inactivity gap that ends a session (default 30m)")
    p.add_argument("--shards", type=int, help="user shards (default 1 per process)")
    p.add_argument("--batch-lines", type=int, help="records read per batch (default 2000)")
    p.add_argument("--max-lag", help="reject events further behind the stream (default 1d)")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="run the flow on N local processes joined as one Bytewax cluster (default 1)",
    )


def cmd_replay(args: argparse.Namespace) -> int:
    from rtp.tools.replay import replay, summary

    settings = _settings(args)
    report = replay(
        args.paths,
        args.format,
        settings,
        report_path=args.report,
        recovery_dir=args.recovery,
        snapshot_s=args.snapshot,
        progress=not args.quiet,
        sort=args.sort,
        speed=args.speed,
        processes=args.processes,
    )
    print(summary(report))
    if args.report:
        print(f"report: {args.report}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from rtp.tools.evaluate import evaluate, summary

    settings = _settings(args)
    modes = [m.strip() for m in (args.modes or args.mode).split(",") if m.strip()]
    ks = [int(k) for k in args.k.split(",")]
    report = evaluate(
        args.paths,
        args.format,
        settings,
        modes=modes,
        refresh_s=parse_duration(args.refresh),
        ks=ks,
        warmup=args.warmup or [],
        split=args.split,
        baselines=[b for b in (args.baselines or "").split(",") if b],
        report_path=args.report,
        plot_path=args.plot,
        processes=args.processes,
    )
    print(summary(report))
    for path in (args.report, args.plot):
        if path:
            print(f"wrote {path}")
    return 0


def cmd_live(args: argparse.Namespace) -> int:
    from rtp.flow.ready import FlowSpec
    from rtp.flow.runner import run

    settings = _settings(args)
    if not settings.redis_url:
        print("rtp live needs --redis-url or RTP_REDIS_URL (the stream lives there)")
        return 2
    spec = FlowSpec(
        kind="live",
        stream=args.stream,
        run="live",
        metrics_mode="live",
        ack="snapshot" if args.recovery else "progress",
    )
    run(
        spec,
        settings,
        processes=args.processes,
        recovery_dir=args.recovery,
        snapshot_s=args.snapshot,
    )
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    from rtp.store.client import Client

    settings = _settings(args)
    if not settings.redis_url:
        print("rtp forget needs --redis-url or RTP_REDIS_URL")
        return 2
    with Client.from_url(settings.redis_url, settings) as c:
        for user in args.users:
            c.forget(user)
            print(f"forgot {user}: stored data deleted; a running flow drops it on the next batch")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rtp", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("replay", help="replay files through the flow into Redis")
    p.add_argument("paths", nargs="+")
    p.add_argument("--format", required=True, help="jsonl, taobao, otto, rees46, diginetica, ...")
    p.add_argument("--report", help="write the JSON report here")
    p.add_argument("--recovery", help="Bytewax recovery directory (created if absent)")
    p.add_argument("--snapshot", type=float, default=10.0, help="seconds between snapshots")
    p.add_argument("--dead-letter-file", help="also write rejections to this JSONL file")
    p.add_argument("--experiments-file", help="experiments TOML (A/B arms, bandits)")
    p.add_argument("--sort", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--speed",
        type=float,
        help="pace the replay at FACTOR x event time (default: as fast as possible)",
    )
    p.add_argument("-q", "--quiet", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("live", help="run the flow on the live Redis stream")
    p.add_argument("--stream", default="rtp:events", help="the live stream (its partitions)")
    p.add_argument("--partitions", type=int, help="partitions of a new live stream (default 4)")
    p.add_argument("--recovery", help="Bytewax recovery directory (created if absent)")
    p.add_argument("--snapshot", type=float, default=5.0)
    p.add_argument("--dead-letter-file")
    p.add_argument("--experiments-file")
    _common(p)
    p.set_defaults(func=cmd_live)

    p = sub.add_parser("evaluate", help="prequential evaluation: realtime vs batch vs popular")
    p.add_argument("paths", nargs="+")
    p.add_argument("--format", required=True)
    p.add_argument("--warmup", action="append", help="replay first without scoring")
    p.add_argument("--split", type=float, help="score only after this fraction of the time span")
    p.add_argument("--mode", default="realtime", help="realtime, batch or popular")
    p.add_argument("--modes", help="several modes, comma-separated (same targets, lifts)")
    p.add_argument("--refresh", default="1d", help="batch mode refresh interval (e.g. 1h, 1d)")
    p.add_argument("--k", default="5,10,20")
    p.add_argument("--baselines", help="also score session baselines: sknn,stan")
    p.add_argument("--ranker", help="ranking model: lr (default), pa, prior (no learning)")
    p.add_argument("--report")
    p.add_argument("--plot")
    _common(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("forget", help="delete everything stored for users")
    p.add_argument("users", nargs="+")
    _common(p)
    p.set_defaults(func=cmd_forget)

    from rtp.experiments.cli import add_cli
    from rtp.http.cli import add_cli as add_http

    add_cli(sub)
    add_http(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except RtpError as e:
        print(f"rtp: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
