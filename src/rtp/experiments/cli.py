"""``rtp experiments report`` on the command line: its arguments, and a handler that imports
the report (statistics, River, SciPy: about a second) only when the command runs, so ``rtp
--help`` and the other commands start without it."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_cli"]


def _report_command(args: argparse.Namespace) -> int:
    from rtp.config import Settings
    from rtp.experiments.report import load_from_store, run_report

    url = args.redis_url or Settings.from_env().redis_url
    if not url:
        print(
            "rtp experiments report: no Redis to read metrics from: pass --redis-url "
            "redis://HOST:6379/0 or set RTP_REDIS_URL",
            file=sys.stderr,
        )
        return 2
    return run_report(args, lambda: load_from_store(url))


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``experiments report``; the handler is ``args.func(args) -> exit code``."""
    p = subparsers.add_parser("experiments", help="A/B experiments and bandits")
    sub = p.add_subparsers(dest="experiments_command", required=True, metavar="COMMAND")
    r = sub.add_parser(
        "report",
        help="per-arm metrics vs control, SRM and bandits, from the flow's Redis meta keys",
    )
    r.add_argument("--experiment", metavar="NAME", help="only this experiment (or bandit)")
    r.add_argument("--plot", metavar="FILE.png", help="also draw the report to a PNG")
    r.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    r.add_argument(
        "--config", metavar="FILE.toml", help="experiments file (default: RTP_EXPERIMENTS_FILE)"
    )
    r.add_argument("--redis-url", metavar="URL", help="Redis to read (default: RTP_REDIS_URL)")
    r.set_defaults(func=_report_command)
