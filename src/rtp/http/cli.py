"""``rtp serve``: the HTTP doors on uvicorn (registered in ``rtp.tools.cli`` by :func:`add_cli`).

::

    rtp serve [--host H] [--port P] [--redis-url URL] [--demo] [--workers N] [--api-key KEY]

Without ``--redis-url`` (or ``RTP_REDIS_URL``) a private ``redis-server`` is started for the
server's lifetime. ``--workers N`` runs N uvicorn worker processes, each building the app from
the ``RTP_*`` environment (the same settings). ``--demo`` also serves the demo shop at ``/shop/``,
seeds it with a synthetic history and runs the live flow (``rtp live``) beside the server.
uvicorn's access log is off: it would print every client's IP address (rtp never logs one).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any

from rtp.config import Settings

__all__ = ["add_cli", "cmd_serve"]


def add_cli(sub: Any) -> None:
    """Add the ``serve`` subcommand to ``rtp``'s subparsers."""
    p = sub.add_parser("serve", help="the HTTP collector, decision API, edge model and rtp.js")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1; RTP_HTTP_HOST)")
    p.add_argument("--port", type=int, help="port (default 8000; RTP_HTTP_PORT)")
    p.add_argument("--redis-url", help="Redis (default: RTP_REDIS_URL, else a private server)")
    p.add_argument("--workers", type=int, help="worker processes (default 1; RTP_HTTP_WORKERS)")
    p.add_argument("--api-key", help="shared secret for writes and deletes (RTP_API_KEY)")
    p.add_argument(
        "--trust-forwarded",
        action="store_true",
        default=None,
        help="take the client IP from X-Forwarded-For (behind a proxy you run)",
    )
    p.add_argument("--dedupe-ttl", type=int, help="seconds a messageId is remembered (900)")
    p.add_argument(
        "--demo", action="store_true", default=None, help="serve the demo shop and run the flow"
    )
    p.add_argument("--log-level", default="warning", help="uvicorn's log level")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from rtp.http.settings import ServeSettings
    from rtp.store.server import redis_url

    rtp_settings = Settings.from_env(redis_url=args.redis_url)
    settings = ServeSettings.from_env(
        rtp=rtp_settings,
        host=args.host,
        port=args.port,
        workers=args.workers,
        api_key=args.api_key,
        trust_forwarded=args.trust_forwarded,
        dedupe_ttl_s=args.dedupe_ttl,
        demo=args.demo,
    )
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(redis_url(settings.rtp))
        settings = settings.replace(rtp=settings.rtp.replace(redis_url=url))
        if settings.demo:
            from rtp.http.demo.seed import running_demo

            stack.enter_context(running_demo(settings))
        where = f"http://{settings.host}:{settings.port}"
        print(f"rtp serve: {where}" + (f"  (demo shop: {where}/shop/)" if settings.demo else ""))
        sys.stdout.flush()
        common: dict[str, Any] = {
            "host": settings.host,
            "port": settings.port,
            "access_log": False,
            "log_level": args.log_level,
            "lifespan": "on",
        }
        if settings.workers > 1:
            os.environ.update(settings.to_env())
            uvicorn.run("rtp.http.app:create_app", factory=True, workers=settings.workers, **common)
        else:
            from rtp.http.app import create_app

            uvicorn.run(create_app(settings), **common)
    return 0
