"""2. Cost per event of each stage of the flow, in µs/event, on the Taobao slice.

Each stage runs alone, outside Bytewax, on the slice's events in order:

- parse: the Taobao adapter on every line (what FilesSource calls), and FilesSource whole;
- enrich: ``rtp.capture.enrich.Enricher`` on the events as they are (no context: Taobao has none)
  and   with a web context (user agent, IP, referrer, UTM) from realistic pools (warm caches);
- session update: ``UserState.starts_new_session / begin``, ``Session.update`` and
  ``UserState.observe`` per event, the user step's per-event session work without the models;
  and the fold of a finished session into the profile (``fold_session`` + ``Profile.to_bytes``),
  per session;
- engine: the facade ``rtp.engine.Engine.process`` on 2,000-event batches, one tick each (user,
  item and global steps joined by the in-memory model log; no loader, no Redis): the whole
  engine;
- candidates + ranking: ``rtp.decisions.home.rank_home`` for users in the warm engine (its user
  step's model view), per decision;
- full decision: ``UserShard._write_decision`` (ranking + every placement + context + its
  compact encoding), and the encoding alone (``rtp.store.codec.encode_decision``);
- Redis write: ``Store.write`` of each batch's ``Writes`` (from the engine run) into a private
  redis-server, and ``Store.load_users`` of each batch's new users (the flow's loader).

Per-decision costs are also given per event (x decisions / events of the replay). What is left
of the whole flow's time (test_01) once these are taken out is Bytewax and the sinks.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.conftest import FIGURES, RedisServer, record
from rtp.capture.adapters import get_adapter
from rtp.capture.enrich import Enricher
from rtp.capture.events import Event
from rtp.config import Settings
from rtp.engine.facade import Engine
from rtp.engine.writes import Writes
from rtp.flow.dataflow import tune_gc
from rtp.session.state import UserState, fold_session

BATCH = 2_000
SAMPLE_USERS = 5_000

UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.43 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Safari/537.36",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
REFERRERS = [
    None, None, "https://www.google.com/", "https://www.bing.com/search?q=shoes",
    "https://www.facebook.com/", "https://t.co/abc", "https://mail.yahoo.com/",
    "android-app://com.google.android.gm/", "https://shop.example.com/cart",
    "https://news.example.org/article/1",
]  # fmt: skip
UTMS = [None] * 6 + [
    {"utm_source": "newsletter", "utm_medium": "email"},
    {"utm_source": "google", "utm_medium": "cpc"},
    {"gclid": "abc"},
    {"utm_source": "instagram", "utm_medium": "social"},
]


def per_event(benchmark: Any, n: int) -> float:
    """Median µs per unit over the rounds (the least loaded round's figure goes to extra_info:
    on a shared machine it is the closer estimate of the cost itself)."""
    stats = benchmark.stats.stats
    benchmark.extra_info["min_us_per_unit"] = round(stats.min / n * 1e6, 3)
    return float(stats.median / n * 1e6)


@pytest.fixture(scope="module")
def lines(taobao: Path) -> list[bytes]:
    return [ln.rstrip(b"\r") for ln in taobao.read_bytes().split(b"\n")]


def parse_all(lines: list[bytes], name: str = "slice.csv") -> list[Event]:
    parse = get_adapter("taobao").parse
    events: list[Event] = []
    rejections: list[Any] = []
    for n, line in enumerate(lines, 1):
        parse(line, f"{name}:{n}", events, rejections)
    return events


@pytest.fixture(scope="module")
def events(lines: list[bytes]) -> list[Event]:
    evs = [e for e in parse_all(lines) if e.ts > 1_000_000_000]  # the truncated line's ts is 15
    Enricher().enrich_all(evs)
    return evs


def test_stage_parse_adapter(benchmark: Any, lines: list[bytes]) -> None:
    out = benchmark.pedantic(parse_all, args=(lines,), rounds=7, iterations=1, warmup_rounds=1)
    record(benchmark, stage_parse_adapter_us_per_event=per_event(benchmark, len(out)))


def test_stage_parse_files_source(benchmark: Any, taobao: Path) -> None:
    from benchmarks.test_01_flow import files_source_pass

    n = benchmark.pedantic(
        files_source_pass, args=(taobao, "taobao"), rounds=7, iterations=1, warmup_rounds=1
    )
    record(benchmark, stage_parse_files_source_us_per_event=per_event(benchmark, n))


def test_stage_enrich_no_context(benchmark: Any, lines: list[bytes]) -> None:
    evs = parse_all(lines)
    enricher = Enricher()
    benchmark.pedantic(enricher.enrich_all, args=(evs,), rounds=7, iterations=1, warmup_rounds=1)
    record(benchmark, stage_enrich_no_context_us_per_event=per_event(benchmark, len(evs)))


def test_stage_enrich_with_context(benchmark: Any, lines: list[bytes]) -> None:
    evs = parse_all(lines)
    rng = random.Random(7)
    ips = [".".join(str(rng.randint(1, 223)) for _ in range(4)) for _ in range(5_000)]
    users: dict[str, tuple[Any, ...]] = {}
    for e in evs:  # one device, IP and referrer per user, as a real visit has
        ctx = users.get(e.user)
        if ctx is None:
            ctx = users[e.user] = (
                rng.choice(UAS), rng.choice(ips), rng.choice(REFERRERS), rng.choice(UTMS)
            )  # fmt: skip
        e.ua, e.ip, e.referrer, e.utm = ctx

    def setup() -> tuple[tuple[list[Event]], dict[str, Any]]:
        for e in evs:  # enrich drops the IP: put it back
            e.ip = users[e.user][1]
        return (evs,), {}

    enricher = Enricher()
    benchmark.pedantic(enricher.enrich_all, setup=setup, rounds=7, iterations=1, warmup_rounds=1)
    record(
        benchmark,
        stage_enrich_with_context_us_per_event=per_event(benchmark, len(evs)),
        enrich_cache=str(enricher.cache_info()),
    )


def session_pass(evs: list[Event], s: Settings) -> dict[str, UserState]:
    users: dict[str, UserState] = {}
    gap, hl, rn, qn = s.session_gap_s, s.category_half_life_s, s.recent_items, s.recent_queries
    for e in evs:
        u = users.pop(e.user, None)
        if u is None:
            u = UserState(e.user)
        users[e.user] = u
        if u.starts_new_session(e, gap):
            u.begin(e)
        u.session.update(e, hl, rn, qn)
        u.observe(e)
    return users


def test_stage_session_update(benchmark: Any, events: list[Event]) -> None:
    s = Settings()
    users = benchmark.pedantic(
        session_pass, args=(events, s), rounds=7, iterations=1, warmup_rounds=1
    )
    record(benchmark, stage_session_update_us_per_event=per_event(benchmark, len(events)))
    FIGURES_CACHE["session_users"] = users


def test_stage_session_fold(benchmark: Any, events: list[Event]) -> None:
    s = Settings()

    def setup() -> tuple[tuple[list[UserState]], dict[str, Any]]:
        return ([u for u in session_pass(events, s).values() if u.session.n],), {}

    def fold(users: list[UserState]) -> int:
        for u in users:
            fold_session(u, s.profile_half_life_s).to_bytes()
        return len(users)

    benchmark.pedantic(fold, setup=setup, rounds=3, iterations=1)
    n = len(setup()[0][0])
    record(benchmark, stage_session_fold_us_per_session=per_event(benchmark, n))


# Results shared by the tests below (the engine run is the costly part: done once).
FIGURES_CACHE: dict[str, Any] = {}


@pytest.fixture(scope="module", autouse=True)
def _drop_cache() -> Iterator[None]:
    """Free the engine and its writes after this module (later benchmarks get a small heap)."""
    yield
    FIGURES_CACHE.clear()


def engine_run(evs: list[Event]) -> tuple[Engine, list[Writes]]:
    tune_gc()
    eng = Engine(Settings())
    ws = [eng.process(evs[i : i + BATCH]) for i in range(0, len(evs), BATCH)]
    return eng, ws  # Engine.finish (the end-of-stream profile writes) is left to the write test


def test_stage_engine_process(benchmark: Any, events: list[Event]) -> None:
    eng, ws = benchmark.pedantic(engine_run, args=(events,), rounds=1, iterations=1)
    st = eng.users.stats
    decisions = st["decisions_ranked"] + st["decisions_degraded"] + st["decisions_non_personalized"]
    FIGURES_CACHE.update(engine=eng, writes=ws, decisions_per_event=decisions / len(events))
    record(
        benchmark,
        stage_engine_process_us_per_event=per_event(benchmark, len(events)),
        engine_decisions_per_event=decisions / len(events),
        engine_sessions_per_event=st["sessions"] / len(events),
    )


def _warm_engine(events: list[Event]) -> Engine:
    if "engine" not in FIGURES_CACHE:
        eng, ws = engine_run(events)
        FIGURES_CACHE.update(engine=eng, writes=ws)
    eng = FIGURES_CACHE["engine"]
    return eng  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def ranked_users(events: list[Event]) -> tuple[Engine, list[UserState]]:
    """The warm engine (its view: the models of the slice's last tick but one) and users with an
    open session."""
    eng = _warm_engine(events)
    users = [u for u in eng.users.users.values() if u.session.n]
    rng = random.Random(7)
    return eng, rng.sample(users, min(SAMPLE_USERS, len(users)))


def per_decision(benchmark: Any, run: Any, n: int, stage: str) -> float:
    """Time ``run`` (``n`` decisions a round) and record the stage per decision and per event
    (x the replay's decisions per event); the µs per decision."""
    benchmark.pedantic(run, rounds=7, iterations=1, warmup_rounds=1)
    us = per_event(benchmark, n)
    dpe = FIGURES_CACHE.get("decisions_per_event", 1.0)
    record(benchmark, **{f"stage_{stage}_us_per_decision": us,
                         f"stage_{stage}_us_per_event": us * dpe})  # fmt: skip
    return us


def test_stage_rank_home(benchmark: Any, ranked_users: tuple[Engine, list[UserState]]) -> None:
    from rtp.decisions.home import rank_home

    eng, users = ranked_users
    view, rules = eng.view, eng.users.rules

    def rank_all() -> None:
        for u in users:
            rank_home(u, view, rules)

    per_decision(benchmark, rank_all, len(users), "rank_home")


def test_stage_full_decision(benchmark: Any, ranked_users: tuple[Engine, list[UserState]]) -> None:
    eng, users = ranked_users

    write_decision = eng.users._write_decision

    def decide_all() -> None:
        w = Writes()
        for u in users:
            write_decision(u, w)

    us = per_decision(benchmark, decide_all, len(users), "full_decision")
    rank = FIGURES.get("stage_rank_home_us_per_decision")
    if rank:
        record(benchmark, stage_decision_minus_rank_us_per_decision=us - rank)


def test_stage_encode_decision(
    benchmark: Any, ranked_users: tuple[Engine, list[UserState]]
) -> None:
    """The codec's share of the full decision: ``encode_decision`` of the sampled users'
    decision documents (read back from their bytes: the codec is lossless, so these are the
    documents the engine encoded)."""
    from rtp.store.codec import decode_decision, encode_decision

    eng, users = ranked_users
    w = Writes()
    for u in users:
        eng.users._write_decision(u, w)
    docs = [decode_decision(raw) for _, raw in w.decisions]

    def encode_all() -> None:
        for d in docs:
            encode_decision(d)

    per_decision(benchmark, encode_all, len(docs), "encode_decision")


def test_stage_redis_write(benchmark: Any, events: list[Event], fresh_redis: RedisServer) -> None:
    from rtp.store.store import Store

    _warm_engine(events)
    if "finish" not in FIGURES_CACHE:
        FIGURES_CACHE["finish"] = FIGURES_CACHE["engine"].finish()
    ws: list[Writes] = [*FIGURES_CACHE["writes"], FIGURES_CACHE["finish"]]
    store = Store.from_url(fresh_redis.url, Settings())

    def write_all() -> int:
        return sum(store.write(w) for w in ws)

    commands = benchmark.pedantic(write_all, setup=fresh_redis.flush, rounds=3, iterations=1)
    record(
        benchmark,
        stage_redis_write_us_per_event=per_event(benchmark, len(events)),
        redis_write_commands_per_event=commands / len(events),
    )

    def load_all() -> int:
        return sum(len(store.load_users(w.users)) for w in ws if w.users)

    # The loader's reads, against the store just written (returning users find profiles).
    import time

    t0 = time.perf_counter()
    loaded = load_all()
    dt = time.perf_counter() - t0
    record(benchmark, stage_load_users_us_per_event=dt / len(events) * 1e6, loaded_users=loaded)
    store.close()


def test_stage_sum(benchmark: Any) -> None:
    """The stages added up beside the whole flow (test_01): what is left is Bytewax + sinks;
    and the engine minus its session, fold and decision parts: the models (item records through
    the item step and the model view, ranking examples through the global step), tick-boundary
    upkeep and idle sweeps."""
    parts = [
        "stage_parse_files_source_us_per_event",
        "stage_enrich_no_context_us_per_event",
        "stage_engine_process_us_per_event",
        "stage_redis_write_us_per_event",
        "stage_load_users_us_per_event",
    ]
    got = [FIGURES.get(p) for p in parts]
    flow = FIGURES.get("flow_taobao_events_per_s")
    if any(g is None for g in got) or not flow:
        pytest.skip("needs test_01_flow and the stage benchmarks in the same run")
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    total = sum(got)  # type: ignore[arg-type]
    flow_us = 1e6 / flow
    session = FIGURES.get("stage_session_update_us_per_event", 0.0)
    decision = FIGURES.get("stage_full_decision_us_per_event", 0.0)
    fold = FIGURES.get("stage_session_fold_us_per_session", 0.0) * FIGURES.get(
        "engine_sessions_per_event", 0.0
    )
    record(
        benchmark,
        stages_sum_us_per_event=total,
        flow_us_per_event=flow_us,
        flow_minus_stages_us_per_event=flow_us - total,
        engine_learners_other_us_per_event=FIGURES["stage_engine_process_us_per_event"]
        - session
        - fold
        - decision,
    )
