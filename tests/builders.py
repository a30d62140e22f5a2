"""Small event builders for the engine/decision tests (plain schema-v1 events, no mocks)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from rtp.capture import events as ev
from rtp.engine.writes import Writes
from rtp.store import codec

if TYPE_CHECKING:
    from rtp.engine.facade import Engine
    from rtp.session.state import UserState

T0 = 1_700_000_000.0  # 2023-11-14, well inside the stream clock's bounds
MIN = 60.0
HOUR = 3_600.0
DAY = 86_400.0


def view(
    user: str,
    item: str,
    ts: float,
    category: str | None = None,
    price: float | None = None,
    **kw: Any,
) -> ev.Event:
    return ev.Event(ev.PRODUCT_VIEW, user, ts, item, category, price, **kw)


def cart(
    user: str,
    item: str,
    ts: float,
    category: str | None = None,
    price: float | None = None,
    **kw: Any,
) -> ev.Event:
    return ev.Event(ev.ADD_TO_CART, user, ts, item, category, price, **kw)


def uncart(user: str, item: str, ts: float, category: str | None = None, **kw: Any) -> ev.Event:
    return ev.Event(ev.REMOVE_FROM_CART, user, ts, item, category, **kw)


def buy(
    user: str,
    item: str,
    ts: float,
    category: str | None = None,
    price: float | None = None,
    **kw: Any,
) -> ev.Event:
    return ev.Event(ev.PURCHASE, user, ts, item, category, price, **kw)


def search(user: str, query: str, ts: float, **kw: Any) -> ev.Event:
    return ev.Event(ev.SEARCH, user, ts, query=query, **kw)


def page(user: str, ts: float, **kw: Any) -> ev.Event:
    return ev.Event(ev.PAGE_VIEW, user, ts, **kw)


def help_view(user: str, ts: float, dwell: float) -> ev.Event:
    return ev.Event(ev.HELP_VIEW, user, ts, dwell=dwell)


def forget(user: str) -> ev.Event:
    return ev.Event(ev.FORGET, user, 0.0)


def dnp(user: str, flag: bool = True) -> ev.Event:
    return ev.Event(ev.DO_NOT_PERSONALIZE, user, 0.0, dnp=flag)


def feed(
    u: UserState,
    events: Iterable[ev.Event],
    *,
    half_life_s: float = 600.0,
    recent_n: int = 12,
    queries_n: int = 5,
    gap_s: float = 1_800.0,
) -> list[bool]:
    """Fold events into one UserState the way the user step does (split, then the session's
    update, then the user's ``observe``).

    Returns, per event, whether it started a new session (finished sessions are not folded
    here; use :func:`rtp.session.state.fold_session` for that)."""
    starts = []
    for e in events:
        new = u.starts_new_session(e, gap_s)
        if new:
            u.begin(e)
        u.session.update(e, half_life_s, recent_n, queries_n)
        u.observe(e)
        starts.append(new)
    return starts


def decisions(w: Writes) -> dict[str, dict[str, Any]]:
    """The decoded decision documents of one batch's writes, by user."""
    out: dict[str, dict[str, Any]] = {}
    for user, raw in w.decisions:
        assert user not in out, f"two decision writes for {user} in one batch"
        out[user] = codec.loads(raw)
    return out


def one_by_one(engine: Engine, events: Sequence[ev.Event]) -> list[dict[str, Any]]:
    """Each event as its own batch (so its own tick: the decision after event ``k`` uses the
    models learned from every event before ``k``); the decision written for its user after it."""
    out = []
    for e in events:
        d = decisions(engine.process([e]))
        out.append(d[e.user])
    return out


def positioned(events: Iterable[ev.Event], source: str = "s") -> list[ev.Event]:
    """The events with distinct source positions ``{source}:{n}`` (as a source sets them), so
    the canonical ``(ts, pos)`` order of the model steps never falls back on arrival order."""
    out = list(events)
    for n, e in enumerate(out):
        e.pos = f"{source}:{n}"
    return out


def write_jsonl(path: Path, events: Iterable[ev.Event | dict[str, Any] | bytes]) -> Path:
    with open(path, "wb") as fh:
        for e in events:
            if isinstance(e, bytes):
                fh.write(e + b"\n")
            elif isinstance(e, dict):
                fh.write(orjson.dumps(e) + b"\n")
            else:
                fh.write(ev.dumps(e) + b"\n")
    return path


def background(
    items: Sequence[tuple[str, str, float | None]], ts: float, times: int = 1, prefix: str = "bg"
) -> list[ev.Event]:
    """Popularity without co-visits: each (item, category, price) is viewed ``times`` times,
    each time by a different one-event user, all at ``ts``."""
    out = []
    k = 0
    for item, cat, price in items:
        for _ in range(times):
            out.append(view(f"{prefix}{k}", item, ts, cat, price))
            k += 1
    return out


def synthetic_stream(
    n_users: int, seed: int = 0, start: float = T0, sessions: int = 3
) -> list[ev.Event]:
    """A small seeded clickstream in time order: users with a favourite category and price
    level, sessions of at most 10 events (views with re-views, carts, some purchases and
    searches) an hour or more apart; popular items within each category."""
    import random

    rng = random.Random(seed)
    cats = [f"c{k}" for k in range(8)]
    items = {c: [f"{c}i{k}" for k in range(30)] for c in cats}
    price = {
        it: round(5.0 * (1 + k % 30) * (1 + j), 2)
        for j, c in enumerate(cats)
        for k, it in enumerate(items[c])
    }
    out: list[ev.Event] = []
    for n in range(n_users):
        user = f"u{n}"
        fav = rng.choice(cats)
        t = start + rng.uniform(0, 2 * HOUR)
        for _ in range(rng.randint(1, sessions)):
            seen: list[str] = []
            for _ in range(rng.randint(2, 10)):
                t += rng.uniform(3, 90)
                c = fav if rng.random() < 0.75 else rng.choice(cats)
                it = (
                    rng.choice(seen)
                    if seen and rng.random() < 0.25
                    else items[c][min(int(rng.expovariate(0.2)), 29)]
                )
                c = it.split("i")[0]
                r = rng.random()
                if r < 0.08:
                    out.append(search(user, f"{c} gift", t))
                    continue
                if r < 0.16:
                    out.append(cart(user, it, t, c, price[it]))
                elif r < 0.19:
                    out.append(buy(user, it, t, c, price[it]))
                else:
                    out.append(view(user, it, t, c, price[it]))
                seen.append(it)
            t += rng.uniform(HOUR, 6 * HOUR)
    out.sort(key=lambda e: e.ts)
    return out


def wait_for(pred: Callable[[], Any], timeout: float = 20.0) -> bool:
    """Poll ``pred()`` every 20 ms until it is truthy (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False
