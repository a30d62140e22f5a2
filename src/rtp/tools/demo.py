"""What ``make demo`` runs (``python -m rtp.tools.demo``): a replay into Redis, then what rtp
decided.

1. :mod:`rtp.tools.synth` makes a seeded stream (3,000 shoppers over 8 days, ~60k events) in a
   temporary directory and splits it into four time-ordered parts; a few malformed lines are
   appended to the first part so the dead-letter path shows.
2. One private ``redis-server`` is started (:class:`rtp.store.server.EmbeddedRedis`;
   ``RTP_REDIS_URL`` or ``--redis-url`` to use a running one instead).
3. The parts are replayed one after another with :func:`rtp.tools.replay.replay` into that Redis.
   Each part is a new flow run: the flow starts empty and reads returning users' profiles back
   from Redis, as a restarted production flow would.
4. After each part the demo prints, for three users chosen from the stream (a returning loyal
   buyer, a user with an abandoned cart, a frustrated searcher), what they did in that part and
   what rtp stored: session context, profile, home recommendations with reasons, product
   recommendations, hero banner, offer and chat assist; then the replay report and where the
   dead letters went.
5. Finally :meth:`rtp.store.client.Client.rerank` reorders 20 search results for one user and
   :meth:`rtp.store.client.Client.forget` deletes a user's data.

Everything is made on the spot (no data files) and removed at exit unless ``--keep DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from rtp.config import Settings
from rtp.decisions.reasons import quiet_reason
from rtp.tools.synth import DEFAULT_START_TS, bad_lines, generate_records, write_jsonl

__all__ = ["Pick", "choose_users", "main", "run", "split_parts"]

Record = dict[str, Any]
Print = Callable[[str], None]

ROLES = (
    ("loyal", "a returning loyal buyer"),
    ("abandoner", "a user with an abandoned cart"),
    ("frustrated", "a frustrated searcher"),
)


@dataclass
class _Visit:
    part: int
    sid: str
    events: int = 0
    purchases: int = 0
    left_in_cart: int = 0
    repeated_query: tuple[str, int] = ("", 0)


@dataclass
class Pick:
    """A user the demo follows, and why the stream makes them a good example."""

    role: str
    title: str
    user: str
    why: str
    parts: list[int] = field(default_factory=list)


def split_parts(records: Sequence[Record], parts: int, start_ts: float, days: float) -> list[
    list[Record]
]:  # fmt: skip
    """Time-ordered records into ``parts`` consecutive stretches of equal length in time."""
    length = days * 86_400.0 / parts
    out: list[list[Record]] = [[] for _ in range(parts)]
    for r in records:
        out[min(parts - 1, max(0, int((r["ts"] - start_ts) // length)))].append(r)
    return out


def _visits(parts: Sequence[Sequence[Record]]) -> dict[str, list[_Visit]]:
    """Every user's visits as rtp will see them (a session's cart is what it added)."""
    visits: dict[str, list[_Visit]] = {}
    carts: dict[str, set[str]] = {}
    queries: dict[str, Counter[str]] = {}
    dnp: set[str] = set()
    for p, recs in enumerate(parts):
        for r in recs:
            uid = r["user"]
            t = r["type"]
            if t == "dnp":
                dnp.add(uid)
                continue
            vs = visits.setdefault(uid, [])
            sid = r.get("session", "")
            if not vs or vs[-1].sid != sid or vs[-1].part != p:
                vs.append(_Visit(p, sid))
                carts[uid] = set()
                queries[uid] = Counter()
            v = vs[-1]
            v.events += 1
            cart = carts[uid]
            if t == "add_to_cart":
                cart.add(r["item"])
            elif t in ("remove_from_cart", "purchase"):
                cart.discard(r["item"])
                if t == "purchase":
                    v.purchases += 1
            elif t == "search":
                qc = queries[uid]
                qc[r["query"]] += 1
                q, n = qc.most_common(1)[0]
                v.repeated_query = (q, n)
            v.left_in_cart = len(cart)
    for uid in dnp:
        visits.pop(uid, None)
    return visits


def choose_users(parts: Sequence[Sequence[Record]]) -> list[Pick]:
    """Pick the three users to follow from what the stream shows (not from the generator's
    labels): the buyer who comes back most, an abandoned cart that is returned to in a later
    part, and a search repeated at least three times in one visit."""
    visits = _visits(parts)
    taken: set[str] = set()

    def best(score: Callable[[list[_Visit]], tuple[Any, ...] | None]) -> str:
        scored = [(s, uid) for uid, vs in visits.items() if uid not in taken
                  for s in [score(vs)] if s is not None]  # fmt: skip
        if not scored:
            raise ValueError("the stream is too small to show every kind of user")
        uid = max(scored, key=lambda su: (su[0], -int(su[1].lstrip("u") or 0)))[1]
        taken.add(uid)
        return uid

    def loyal(vs: list[_Visit]) -> tuple[Any, ...] | None:
        bought = sum(v.purchases for v in vs)
        if bought < 2 or vs[0].part != 0:
            return None
        return (len({v.part for v in vs}), len({v.part for v in vs if v.purchases}), bought)

    def abandoner(vs: list[_Visit]) -> tuple[Any, ...] | None:
        for i, v in enumerate(vs[:-1]):
            later = [w for w in vs[i + 1 :] if w.part > v.part]
            if v.left_in_cart and v is _last_in_part(vs, v.part) and later:
                back = later[0]
                # the reminder shows when the returning visit is still short in its last event
                visible = back is _last_in_part(vs, back.part) and back.events <= 3
                return (v.part == 0, visible, not back.purchases, len({w.part for w in vs}))
        return None

    def frustrated(vs: list[_Visit]) -> tuple[Any, ...] | None:
        hits = [v for v in vs if v.repeated_query[1] >= 3]
        if not hits:
            return None
        v = hits[-1]
        return (v is _last_in_part(vs, v.part), len({w.part for w in vs}), v.repeated_query[1])

    picks: list[Pick] = []
    for role, title in ROLES:
        fn = {"loyal": loyal, "abandoner": abandoner, "frustrated": frustrated}[role]
        uid = best(fn)
        vs = visits[uid]
        ps = sorted({v.part + 1 for v in vs})
        if role == "loyal":
            why = (f"{_n(len(vs), 'visit')} in parts {_list(ps)} and "
                   f"{_n(sum(v.purchases for v in vs), 'purchase')}")  # fmt: skip
        elif role == "abandoner":
            v = next(v for v in vs if v.left_in_cart and v is _last_in_part(vs, v.part))
            why = (f"left {_n(v.left_in_cart, 'item')} in the cart in part {v.part + 1}, "
                   f"visits in parts {_list(ps)}")  # fmt: skip
        else:
            q, n = max((v.repeated_query for v in vs), key=lambda qn: qn[1])
            why = f"searched '{q}' {n} times in one visit; visits in parts {_list(ps)}"
        picks.append(Pick(role, title, uid, why, ps))
    return picks


def _last_in_part(vs: list[_Visit], part: int) -> _Visit:
    return [v for v in vs if v.part == part][-1]


def _list(xs: Sequence[object]) -> str:
    return ", ".join(map(str, xs))


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%a %d %b %H:%M")


def _n(count: int, noun: str, plural: str | None = None) -> str:
    """``1 visit``, ``2 visits``."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


def _money(x: Any) -> str:
    return f"{float(x):,.2f}"


# --- the views ------------------------------------------------------------------------------


class _View:
    """Formats what rtp stored for a user into a few readable lines."""

    def __init__(self, client: Any, items: dict[str, tuple[str, float]], out: Print) -> None:
        self.client = client
        self.items = items
        self.out = out

    def item(self, it: str) -> str:
        meta = self.items.get(it)
        return f"{it} ({meta[0]}, {_money(meta[1])})" if meta else it

    def activity(self, recs: list[Record]) -> str:
        c = Counter(r["type"] for r in recs)
        visits = len({r.get("session") for r in recs})
        bits = [_n(visits, "visit"), _n(c["product_view"], "product view")]
        if c["search"]:
            qs = Counter(r["query"] for r in recs if r["type"] == "search")
            q, n = qs.most_common(1)[0]
            repeated = f" ('{q}' x{n})" if n > 1 else ""
            bits.append(_n(c["search"], "search", "searches") + repeated)
        if c["help_view"]:
            bits.append(_n(c["help_view"], "help page"))
        backs = sum(1 for r in recs if r.get("back"))
        if backs:
            bits.append(f"{backs} x back")
        if c["add_to_cart"]:
            bits.append(f"{c['add_to_cart']} added to cart")
        if c["purchase"]:
            spent = sum(r["price"] for r in recs if r["type"] == "purchase")
            bits.append(f"bought {c['purchase']} ({_money(spent)})")
        return ", ".join(bits)

    def show(self, pick: Pick, recs: list[Record]) -> None:
        out = self.out
        out(f"  {pick.user}: {pick.title}")
        if not recs:
            out("    no visit in this part: context, profile and decisions stay in Redis")
            return
        out(f"    did       {self.activity(recs)}")
        doc = self.client.decisions(pick.user)
        profile = self.client.profile(pick.user)
        if doc is None:
            out("    (no decisions stored)")
            return
        ctx = doc.get("ctx") or {}
        out(f"    context   {self.context(ctx)}")
        if ctx.get("events") == 0:
            out("              (their visit has ended: this is what their next visit starts with)")
        out(f"    profile   {self.profile(profile)}")
        home = self.client.decision(pick.user, "home") or {}
        items = [i[0] for i in home.get("items", [])]
        reasons = home.get("reasons") or []
        out(f"    home      {doc.get('mode', '?')}, {len(items)} items; "
            f"\"{home.get('reason', '')}\"")  # fmt: skip
        for n, it in enumerate(items[:4]):
            reason = reasons[n] if n < len(reasons) else ""
            out(f"                {n + 1}. {self.item(it):<28} {reason}")
        product = self.client.decision(pick.user, "product")
        if product and product.get("for"):
            ids = [str(i[0]) for i in product.get("items", [])]
            out(f"    product   on {self.item(product['for'])}: {', '.join(ids[:5])}"
                f"{' ...' if len(ids) > 5 else ''} ({product.get('reason', '')})")  # fmt: skip
        hero = doc.get("hero") or {}
        out(f"    hero      {hero.get('theme', '-')}: {hero.get('reason', '')}")
        out(f"    offer     {self.quiet_or(doc.get('offer'), 'type')}")
        out(f"    assist    {self.quiet_or(doc.get('assist'), 'trigger')}")

    def context(self, ctx: dict[str, Any]) -> str:
        if ctx.get("dnp"):
            return "do not personalize"
        cats = ", ".join(f"{c} {w:.0%}" for c, w in (ctx.get("categories") or [])[:3]) or "-"
        band = ctx.get("price")
        price = f"{_money(band[0])}-{_money(band[1])}" if band else "-"
        where = " ".join(str(ctx[k]) for k in ("device", "country") if ctx.get(k))
        via = f" via {ctx['referral']}" if ctx.get("referral") else ""
        back = " · returning" if ctx.get("returning") else ""
        return (f"{cats} · price {price} · {ctx.get('mode', '?')} · intent "
                f"{ctx.get('intent', 0):.2f} · {where}{via}{back}")  # fmt: skip

    def profile(self, p: dict[str, Any] | None) -> str:
        if not p:
            return "none yet (written when a visit ends)"
        cats = sorted((p.get("cats") or {}).items(), key=lambda kv: kv[1], reverse=True)
        likes = ", ".join(c for c, _ in cats[:3]) or "-"
        band = p.get("price")
        text = (f"{_n(p.get('sessions', 0), 'visit')}, {_n(p.get('views', 0), 'view')}, "
                f"{_n(p.get('purchases', 0), 'purchase')} ({_money(p.get('revenue', 0))}) · "
                f"likes {likes}")  # fmt: skip
        if band:
            text += f" · usual price {band[0]:g}-{band[1]:g}"
        if p.get("abandoned"):
            text += f" · left in cart: {', '.join(p['abandoned'][:3])}"
        return text

    @staticmethod
    def quiet_or(part: Any, kind: str) -> str:
        if isinstance(part, str):
            return quiet_reason(part)
        if not isinstance(part, dict):
            return "-"
        if not part.get("show"):
            return str(part.get("reason", "-"))
        extra = ""
        if part.get("pct"):
            extra = f" {part['pct']}% off {part.get('item', '')}"
        elif part.get("items"):
            extra = f" ({', '.join(map(str, part['items'][:3]))})"
        return f"SHOW {part.get(kind, '')}{extra}: {part.get('reason', '')}"


# --- the run --------------------------------------------------------------------------------


@contextlib.contextmanager
def _redis(url: str | None) -> Iterator[tuple[str, str]]:
    if url:
        yield url, url
        return
    from rtp.store.server import EmbeddedRedis

    with EmbeddedRedis() as server:
        yield server.url, "a private redis-server (unix socket, removed at exit)"


def run(
    users: int = 3_000,
    seed: int = 7,
    parts: int = 4,
    days: float = 8.0,
    redis_url: str | None = None,
    workdir: str | Path | None = None,
    out: Print = print,
) -> dict[str, Any]:
    """Run the demo; returns the picks and the replay reports (for tests)."""
    from rtp.store.client import Client
    from rtp.tools.replay import replay

    t_start = time.perf_counter()
    settings = Settings.from_env()
    redis_url = redis_url or settings.redis_url
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="rtp-demo-"))
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        records = list(generate_records(users, seed=seed, days=days, start_ts=DEFAULT_START_TS))
        chunks = split_parts(records, parts, DEFAULT_START_TS, days)
        picks = choose_users(chunks)
        items = {r["item"]: (r["category"], r["price"]) for r in records
                 if "item" in r and "price" in r}  # fmt: skip
        paths = []
        for n, chunk in enumerate(chunks, 1):
            path = work / f"part{n}.jsonl"
            write_jsonl(chunk, path)
            paths.append(path)
        bad = list(bad_lines(chunks[0][-1]["ts"]))
        with open(paths[0], "ab") as f:
            f.write(b"".join(raw + b"\n" for _, raw in bad))
        dead_file = work / "dead-letters.jsonl"
        dead_file.unlink(missing_ok=True)  # the sink appends: start a kept directory afresh
        url, where = stack.enter_context(_redis(redis_url))
        settings = settings.replace(redis_url=url, dead_letter_file=str(dead_file))
        client = stack.enter_context(Client.from_url(url, settings))
        view = _View(client, items, out)

        out(f"rtp demo: {users:,} synthetic shoppers over {days:g} days "
            f"({len(records):,} events, seed {seed}), made by rtp.tools.synth in "
            f"{work}")  # fmt: skip
        out(f"Replaying them in {parts} time-ordered parts through the one rtp dataflow into "
            f"{where}.")  # fmt: skip
        out("Each part is a new flow run: it starts empty and reads returning users' profiles "
            "back from Redis.")  # fmt: skip
        out("")
        out("Following three users, chosen from what the stream shows:")
        for p in picks:
            out(f"  {p.user:<7} {p.title}: {p.why}")

        seen: set[str] = set()
        reports = []
        for n, (chunk, path) in enumerate(zip(chunks, paths, strict=True), 1):
            lo = DEFAULT_START_TS + (n - 1) * days * 86_400.0 / parts
            hi = lo + days * 86_400.0 / parts
            part_users = {r["user"] for r in chunk}
            returning = len(part_users & seen)
            seen |= part_users
            out("")
            extra = f" + {len(bad)} malformed lines" if n == 1 else ""
            out(f"=== part {n} of {parts}: {_day(lo)} - {_day(hi)} UTC, "
                f"{len(chunk):,} events{extra} ===")  # fmt: skip
            report = replay([path], "jsonl", settings, progress=False, run=f"demo{n}")
            reports.append(report)
            d = report["decisions"]
            out(f"replay  read {report['read']:,} = accepted {report['accepted']:,} + rejected "
                f"{report['rejected']:,}; {len(part_users):,} users in this part, {returning:,} "
                f"returning (profiles read back from Redis)")  # fmt: skip
            out(f"        decisions ranked {d['ranked']:,}, degraded {d['degraded']:,}, "
                f"not personalized {d['non_personalized']:,}; "
                f"{report['events_per_s']:,.0f} events/s ({report['seconds']:.1f} s)")  # fmt: skip
            if report["rejected"]:
                _dead_letters(out, client, dead_file, settings)
            by_user: dict[str, list[Record]] = {p.user: [] for p in picks}
            for r in chunk:
                lst = by_user.get(r["user"])
                if lst is not None:
                    lst.append(r)
            for p in picks:
                view.show(p, by_user[p.user])

        out("")
        out("=== reading decisions the way an application does (rtp.Client) ===")
        _rerank_and_forget(out, client, view, picks, items)
        total = time.perf_counter() - t_start
        out("")
        out(f"demo finished in {total:.1f} s")
        return {"picks": picks, "reports": reports, "seconds": total}


def _dead_letters(out: Print, client: Any, path: Path, settings: Settings) -> None:
    stats = client.stats()
    reasons: Counter[str] = Counter()
    if path.exists():
        for line in path.read_bytes().splitlines():
            reasons[orjson.loads(line)["reason"]] += 1
    out(f"dead letters: {stats['dead_letters']} in the Redis stream {settings.dead_letter_stream} "
        f"(and hash {settings.dead_letter_stream}:pos), also the file {path}")  # fmt: skip
    out("        by reason: " + ", ".join(f"{r} {n}" for r, n in sorted(reasons.items())))


def _rerank_and_forget(
    out: Print, client: Any, view: _View, picks: list[Pick], items: dict[str, tuple[str, float]]
) -> None:
    user = picks[0].user
    ctx = client.context(user) or {}
    cats = [c for c, _ in ctx.get("categories") or []]
    # 20 "search results" in a search engine's order: mostly other categories, a few of the
    # user's two favourite ones scattered among them
    by_cat: dict[str, list[str]] = {}
    for it, (c, _) in items.items():
        by_cat.setdefault(c, []).append(it)
    mine = [it for c in cats[:2] for it in by_cat.get(c, [])[:4]]
    others = [it for c in sorted(by_cat) if c not in cats[:2] for it in by_cat[c][:2]][:20]
    results = others[: 20 - len(mine)]
    for n, it in enumerate(mine):
        results.insert(min(len(results), 2 + 2 * n), it)
    query = f"gift {cats[0]}" if cats else "gift"
    t0 = time.perf_counter()
    ranked = client.rerank(user, query, results)
    ms = (time.perf_counter() - t0) * 1e3
    out(f"Client.rerank({user!r}, {query!r}, 20 search results) -> {ms:.1f} ms, one round trip")
    out(f"  search order: {', '.join(view.item(i) for i in results[:4])} ...")
    out("  reranked by the session context:")
    weights = {str(c): float(w) for c, w in ctx.get("categories") or []}
    recent = set(ctx.get("recent") or ())
    cart = set(ctx.get("cart") or ())
    home = client.decision(user, "home") or {}
    home_items = {str(i[0]) for i in home.get("items") or ()}
    for n, it in enumerate(ranked[:4], 1):
        cat = items[it][0] if it in items else ""
        signals = []
        if cat in weights:
            signals.append(f"{cat} is {weights[cat]:.0%} of their interest")
        if it in recent:
            signals.append("viewed this visit")
        if it in cart:
            signals.append("in their cart")
        if it in home_items:
            signals.append("in their home recommendations")
        out(f"    {n}. {view.item(it):<28} {'; '.join(signals) or 'no signal (search order kept)'}")
    victim = picks[2].user
    before = client.decision(victim, "home") is not None, client.profile(victim) is not None
    client.forget(victim)
    after = client.decision(victim, "home") is not None, client.profile(victim) is not None
    out(f"Client.forget({victim!r}): decisions stored {before[0]} -> {after[0]}, "
        f"profile stored {before[1]} -> {after[1]}; a tombstone makes every flow drop their "
        f"older events, live or replayed")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rtp.tools.demo", description=__doc__.split("\n")[0])
    p.add_argument("--users", type=int, default=3_000, help="synthetic shoppers (default 3000)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--parts", type=int, default=4, help="replay parts (default 4)")
    p.add_argument("--redis-url", help="use this Redis (default: RTP_REDIS_URL, else private)")
    p.add_argument("--keep", metavar="DIR", help="write the stream and dead letters here")
    args = p.parse_args(argv)
    if args.redis_url is None and os.environ.get("RTP_REDIS_URL"):
        print(f"using RTP_REDIS_URL={os.environ['RTP_REDIS_URL']} (keys under 'rtp:')")
    from rtp.errors import RtpError

    try:
        run(args.users, args.seed, args.parts, redis_url=args.redis_url, workdir=args.keep)
    except RtpError as e:
        print(f"rtp demo: {e}", file=sys.stderr)
        return 2
    print(
        "\nNext: the demo shop in a browser, personalized live as you click:\n"
        "  .venv/bin/rtp serve --demo --port 8000   # then open http://127.0.0.1:8000/shop/\n"
        "(it runs the live flow beside the HTTP doors; docs/http.md explains them)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
