"""Seeding and running the demo shop: a synthetic history, a first edge model, the live flow.

``rtp serve --demo`` calls :func:`running_demo` once, before the server starts:

- it starts the live flow as ``rtp live --redis-url URL`` (a child process; the only interface
  to the flow the doors rely on), waits until it decides, and stops it when the server stops;
- the first time on a Redis (``{prefix}demo:seeded`` is absent) it appends two days of
  synthetic shoppers over the shop's catalogue (:func:`rtp.tools.synth.generate_records`, ending
  now) to the live stream, so the flow learns popularity and co-visitation, and publishes an
  edge model learned from the same sessions at ``{prefix}meta:edge`` unless one is already
  there (the flow's own publisher overwrites it as it learns).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import orjson
import redis

from rtp.capture.enrich import Enricher
from rtp.capture.events import (
    ADD_TO_CART,
    ADD_TO_WISHLIST,
    PAGE_VIEW,
    PRODUCT_VIEW,
    PURCHASE,
    Event,
    from_dict,
)
from rtp.decisions.edge import EdgeModel
from rtp.http.demo.catalog import N_CATEGORIES, N_ITEMS, SEED
from rtp.http.live import start_live, stop_live, wait_ready
from rtp.http.settings import ServeSettings
from rtp.store import streams
from rtp.tools import synth

__all__ = ["edge_model_of", "history", "running_demo", "seed"]

log = logging.getLogger("rtp.http.demo")

SESSION_GAP_S = 1_800.0
# how much an event says about what a session wanted
WEIGHTS = {PRODUCT_VIEW: 1.0, ADD_TO_CART: 3.0, PURCHASE: 5.0, ADD_TO_WISHLIST: 2.0, PAGE_VIEW: 0.5}


def history(users: int = 400, days: float = 2.0, now: float | None = None) -> list[dict[str, Any]]:
    """Synthetic shoppers over the demo catalogue, ending about ``now`` (schema-v1 dicts)."""
    now = time.time() if now is None else now
    return list(
        synth.generate_records(
            users,
            n_items=N_ITEMS,
            n_categories=N_CATEGORIES,
            seed=SEED,
            start_ts=now - days * 86_400.0,
            days=days,
        )
    )


def edge_model_of(
    records: Iterable[Mapping[str, Any]], model: EdgeModel | None = None
) -> EdgeModel:
    """An edge model fed with the sessions of time-ordered records (what the flow does live:
    one ``observe`` per finished session, with the context of its first event)."""
    model = model or EdgeModel()
    enricher = Enricher(site_hosts=[synth.SITE_HOST])
    open_: dict[str, tuple[dict[str, Any], dict[str, float], dict[str, float], float]] = {}

    def close(user: str) -> None:
        signals, cats, items, last = open_.pop(user)
        model.observe(signals, cats, items, last)

    for rec in records:
        event = from_dict(rec, "")
        if not isinstance(event, Event) or event.type not in WEIGHTS:
            continue
        state = open_.get(event.user)
        if state is not None and event.ts - state[3] > SESSION_GAP_S:
            close(event.user)
            state = None
        if state is None:
            enricher.enrich(event)
            signals = {
                "referral": event.referral,
                "device": event.device,
                "hour": event.hour,
                "country": event.country,
                "campaign": (event.utm or {}).get("campaign"),
            }
            state = (signals, {}, {}, event.ts)
        signals, cats, items, _ = state
        w = WEIGHTS[event.type]
        if event.category:
            cats[event.category] = cats.get(event.category, 0.0) + w
        if event.item and event.type != PAGE_VIEW:
            items[event.item] = items.get(event.item, 0.0) + w
        open_[event.user] = (signals, cats, items, event.ts)
    for user in sorted(open_, key=lambda u: open_[u][3]):
        close(user)
    return model


def seed(r: redis.Redis, settings: ServeSettings, users: int = 400) -> int:
    """Append the demo history to the live stream and publish a first edge model (once per
    Redis). The number of events appended (0 when already seeded)."""
    prefix = settings.rtp.key_prefix
    if not r.set(prefix + "demo:seeded", b"1", nx=True):
        return 0
    records = history(users)
    for i in range(0, len(records), 2_000):
        streams.append(r, records[i : i + 2_000], stream=settings.rtp.stream)
    doc = edge_model_of(records).document()
    r.set(prefix + "meta:edge", orjson.dumps(doc), nx=True)
    return len(records)


@contextlib.contextmanager
def running_demo(settings: ServeSettings) -> Iterator[subprocess.Popen[bytes]]:
    """Seed the demo (once) and run ``rtp live`` beside the server until the block ends."""
    url = settings.rtp.redis_url
    if not url:
        raise ValueError("the demo needs a Redis URL")
    log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - open while the flow runs
        prefix="rtp-demo-live-", suffix=".log", delete=False
    )
    proc = start_live(url, log_file)
    print(f"rtp serve --demo: the live flow runs as pid {proc.pid} (log: {log_file.name})")
    r = redis.Redis.from_url(url, socket_timeout=settings.rtp.redis_timeout_s)
    try:
        wait_ready(proc, r, settings.rtp.key_prefix)
        n = seed(r, settings)
        if n:
            print(f"rtp serve --demo: seeded {n:,} synthetic events and a first edge model")
    except RuntimeError as e:
        print(f"rtp serve --demo: {e}; the shop runs with edge and fallback content only")
    finally:
        r.close()
    try:
        yield proc
    finally:
        if proc.poll() is not None and proc.returncode:
            log.warning(
                "the live flow exited with code %s (see %s)", proc.returncode, log_file.name
            )
        stop_live(proc)
        log_file.close()
