"""The one dataflow (rtp.flow.dataflow.build_flow) over JSONL files into a real Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from bytewax.testing import TestingSink, cluster_main, run_main

from rtp.capture.events import (
    INVALID_FIELD,
    INVALID_JSON,
    INVALID_PRICE,
    MISSING_FIELD,
    UNKNOWN_TYPE,
)
from rtp.client import Client
from rtp.config import Settings
from rtp.engine.writes import Writes
from rtp.errors import ConfigError
from rtp.flow.dataflow import (
    one_worker_per_process,
    pin_to_cpu,
    process_id_from_argv,
    tune_switch_interval,
    workers_from_argv,
)
from rtp.store import codec
from rtp.store.store import Store
from rtp.tools.replay import collect_stats, replay
from tests.builders import (
    DAY,
    HOUR,
    T0,
    background,
    cart,
    dnp,
    forget,
    search,
    synthetic_stream,
    view,
    write_jsonl,
)
from tests.flowkit import file_flow


def run_flow(
    path: Path,
    settings: Settings,
    url: str,
    *,
    batch_lines: int = 200,
    run: str = "t",
    loader: bool = True,
) -> Store:
    settings = settings.replace(redis_url=url)
    run_main(file_flow(path, settings, batch_lines=batch_lines, run=run))
    return Store.from_url(url, settings)


def fresh_db(redis_url: str, db: int) -> str:
    """The URL of database ``db`` of the test server, emptied."""
    url = f"{redis_url.rsplit('/', 1)[0]}/{db}"
    redis.Redis.from_url(url).flushdb()
    return url


def written(url: str, settings: Settings) -> tuple[Any, Any, Any, bytes | None]:
    """What a run wrote: decisions, profiles, product pages and the edge model's document."""
    r = redis.Redis.from_url(url)
    store = Store.from_url(url, settings)
    try:
        return decision_docs(r), decision_docs(r, "rtp:p:"), store.pages(), r.get("rtp:meta:edge")
    finally:
        store.close()


def decision_docs(r: redis.Redis, prefix: str = "rtp:d:") -> dict[str, dict[str, Any]]:
    keys = sorted(r.scan_iter(match=prefix + "*", count=1000))
    vals = r.mget(keys) if keys else []
    return {k.decode()[len(prefix) :]: codec.loads(v) for k, v in zip(keys, vals, strict=False)}


def last_event_ts(events: list) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in events:
        out[e.user] = e.ts
    return out


BAD_LINES = [
    (b'{"v": 1, "type": "product_view", "user": "bad1", "ts": 17', INVALID_JSON),
    (b'{"v": 1, "type": "teleport", "user": "bad2", "ts": 1700000000}', UNKNOWN_TYPE),
    (b'{"v": 1, "type": "product_view", "ts": 1700000000, "item": "x"}', MISSING_FIELD),
    (
        b'{"v": 1, "type": "product_view", "user": "bad3", "ts": 1700000000, "item": "x", '
        b'"price": -4}',
        INVALID_PRICE,
    ),
    (
        b'{"v": 1, "type": "product_view", "user": "bad4", "ts": "yesterday", "item": "x"}',
        INVALID_FIELD,
    ),
]


def test_each_built_flow_has_a_model_log_of_its_own() -> None:
    """Flows built one after another in one process under one run name (a notebook, these
    tests) do not share a model log: the second would start from the first one's progress,
    its gate would open early and its views would read the first one's models."""
    from rtp.flow.ready import FlowSpec, model_log_factory

    settings = Settings()
    # each spec is dropped as soon as its flow's factory is made (as `build` drops it), so the
    # next spec may well get its address: the log must not be found by it
    makes = [model_log_factory(FlowSpec(kind="files", run="t"), settings) for _ in range(4)]
    logs = [make() for make in makes]
    assert all(make() is log for make, log in zip(makes, logs, strict=True))  # one per flow
    logs[0].publish("i0", [(7, ["part"])], 7)
    assert [log.progress(["i0"]) for log in logs] == [7, -1, -1, -1]


def test_flow_counts_add_up_and_rejections_keep_their_reasons(
    redis_url: str, tmp_path: Path
) -> None:
    events = synthetic_stream(40, seed=1)
    lines: list[Any] = list(events)
    where = {}
    for k, (raw, _reason) in enumerate(BAD_LINES):
        at = 10 + 37 * k
        lines.insert(at, raw)
    for n, item in enumerate(lines, 1):
        if isinstance(item, bytes):
            where[f"stream.jsonl:{n}"] = dict(BAD_LINES)[item]
    path = write_jsonl(tmp_path / "stream.jsonl", lines)
    dl_file = tmp_path / "dead" / "rejections.jsonl"
    settings = Settings(redis_url=redis_url, dead_letter_file=str(dl_file))
    store = run_flow(path, settings, redis_url, run="counts")
    stats = collect_stats(store, "counts")
    assert stats["read"] == len(lines)
    assert stats["rejected"] == len(BAD_LINES)
    assert stats["read"] - stats["rejected"] == stats["events"] == len(events)
    # the dead-letter stream and hash keep every reason and position
    entries = store.r.xrange(settings.dead_letter_stream)
    got = {f[b"pos"].decode(): f[b"reason"].decode() for _, f in entries}
    assert got == where
    assert store.r.zcard(settings.dead_letter_stream + ":pos") == len(BAD_LINES)
    file_rows = [orjson.loads(x) for x in dl_file.read_bytes().splitlines()]
    assert {r["pos"]: r["reason"] for r in file_rows} == where
    assert all(r["raw"] and r["detail"] for r in file_rows)
    # every accepted user has a decision, made after their last event
    docs = decision_docs(store.r)
    last = last_event_ts(events)
    assert set(docs) == set(last)
    for user, d in docs.items():
        assert d["ts"] == last[user]
        assert d["mode"] == "ranked"
        assert d["model"].startswith("lr-")
        assert d["home"]["items"] and d["home"]["reason"]
        assert len(d["home"]["items"]) == len(d["home"]["why"])
    store.close()


def test_burst_of_one_user_coalesces_to_one_write_per_batch(tmp_path: Path) -> None:
    evs = [view("a", f"i{k}", T0 + k, "c") for k in range(6)] + [view("b", "i0", T0 + 7, "c")]
    path = write_jsonl(tmp_path / "burst.jsonl", evs)
    out: list[Writes] = []
    run_main(file_flow(path, Settings(), batch_lines=1000, sink=TestingSink(out)))
    per_batch = [Counter(u for u, _ in w.decisions) for w in out]
    assert all(c <= 1 for counts in per_batch for c in counts.values())
    assert sum(len(w.decisions) for w in out) == 2
    stats = [orjson.loads(v) for w in out for k, v in w.meta if k.startswith("stats:")]
    assert stats[-1]["coalesced"] == 5


def test_profile_from_one_run_is_read_back_by_the_next(redis_url: str, tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_url)
    bg = background(
        [("p1", "toys", 5.0), ("p2", "toys", 7.0), ("g1", "garden", 40.0)], T0 - 60, times=2
    )
    first = bg + [
        view("r", "g1", T0, "garden", 40.0),
        view("r", "g2", T0 + 20, "garden", 50.0),
        cart("r", "g2", T0 + 40, "garden", 50.0),
    ]
    store = run_flow(write_jsonl(tmp_path / "day1.jsonl", first), settings, redis_url, run="d1")
    prof = store.get_profile("r")
    assert prof is not None and prof["sessions"] == 1 and prof["abandoned"] == ["g2"]
    # a restart: a new flow and engine, the next day
    second = [view("r", "p1", T0 + DAY, "toys", 5.0)]
    store = run_flow(write_jsonl(tmp_path / "day2.jsonl", second), settings, redis_url, run="d2")
    with Client.from_url(redis_url, settings) as client:
        ctx = client.context("r")
        assert ctx is not None and ctx.get("returning") is True
        assert "garden" in dict(ctx["categories"])  # learned in the first run
        offer = client.decision("r", "offer")
        assert offer is not None and offer.get("show") is True
        assert offer["type"] == "cart_reminder" and offer["items"] == ["g2"]
    assert store.get_profile("r")["sessions"] == 2
    store.close()


def test_assist_fires_once_over_normalised_repeated_searches(
    redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(redis_url=redis_url)
    # each event in its own batch, so every event gets a decision written (and kept in a list)
    evs = [
        search("s", q, T0 + 10 * k) for k, q in enumerate(["Red Shoes", "red  shoes", "RED shoes"])
    ]
    evs += [view("s", f"i{k}", T0 + 40 + 10 * k, "shoes") for k in range(4)]
    path = write_jsonl(tmp_path / "search.jsonl", evs)
    out: list[Writes] = []
    run_main(
        file_flow(path, settings.replace(redis_url=None), batch_lines=1, sink=TestingSink(out))
    )
    docs = [codec.loads(v) for w in out for u, v in w.decisions if u == "s"]
    assert [d["ts"] for d in docs] == [e.ts for e in evs]
    flags = [isinstance(d["assist"], dict) and d["assist"].get("show") is True for d in docs]
    assert flags == [False, False, True, False, False, False, False]
    assert docs[2]["assist"]["trigger"] == "repeated_search"
    assert docs[-1]["ctx"]["queries"] == ["red shoes"] * 3


# --- privacy -----------------------------------------------------------------------------------


def test_do_not_personalize_and_forget_through_the_flow(redis_url: str, tmp_path: Path) -> None:
    settings = Settings(redis_url=redis_url)
    bg = background([("p1", "c", 5.0), ("p2", "c", 6.0)], T0 - 60, times=2)
    evs = bg + [
        # flagged on the event itself
        view("flag", "a", T0, "c", dnp=True),
        view("flag", "b", T0 + 10, "c"),
        # personalised first, then a dnp control event
        view("ctl", "a", T0, "c"),
        view("ctl", "b", T0 + 10, "c"),
        # a user who is forgotten at the end
        view("gone", "a", T0, "c"),
        cart("gone", "b", T0 + 10, "c", 3.0),
        # a normal user, for contrast
        view("keep", "a", T0, "c"),
        view("keep", "b", T0 + 10, "c"),
    ]
    evs += [view("ctl", "x", T0 + 3 * HOUR, "c"), view("gone", "x", T0 + 3 * HOUR, "c")]
    evs += [dnp("ctl"), view("ctl", "y", T0 + 3 * HOUR + 20, "c"), forget("gone")]
    store = run_flow(
        write_jsonl(tmp_path / "privacy.jsonl", evs), settings, redis_url, batch_lines=1
    )
    r = store.r
    for user in ("flag", "ctl"):
        d = store.get_decisions(user)
        assert d is not None and d["mode"] == "non_personalized", user
        assert d["ctx"] == {"dnp": True}
        assert r.exists(f"rtp:p:{user}") == 0, f"a profile is stored for dnp user {user}"
        assert store.is_dnp(user)
    assert r.exists("rtp:d:gone", "rtp:p:gone") == 0
    assert store.get_decisions("keep")["mode"] == "ranked"
    assert r.exists("rtp:p:keep") == 1
    # the public client forgets what is stored, now
    with Client.from_url(redis_url, settings) as client:
        client.forget("keep")
        assert client.decisions("keep") is None and client.profile("keep") is None
    assert r.exists("rtp:d:keep", "rtp:p:keep") == 0
    assert not [k for k in r.scan_iter(match="rtp:*keep*")]
    store.close()


def test_control_events_in_the_batch_that_folds_a_session(redis_url: str, tmp_path: Path) -> None:
    # The session fold (a profile write) and the dnp / forget event land in one batch.
    settings = Settings(redis_url=redis_url)
    evs = [
        view("ctl", "a", T0, "c"),
        view("gone", "a", T0, "c"),
        view("ctl", "x", T0 + 3 * HOUR, "c"),
        view("gone", "x", T0 + 3 * HOUR, "c"),
        dnp("ctl"),
        forget("gone"),
    ]
    store = run_flow(
        write_jsonl(tmp_path / "same.jsonl", evs), settings, redis_url, batch_lines=2
    )  # batch 2 holds the folds, batch 3 the controls: fine
    assert store.r.exists("rtp:p:ctl", "rtp:p:gone", "rtp:d:gone") == 0
    store.r.flushdb()
    store = run_flow(
        write_jsonl(tmp_path / "same.jsonl", evs), settings, redis_url, batch_lines=1000
    )  # one batch
    assert store.r.exists("rtp:p:gone") == 0, "a forgotten user's profile is stored"
    assert store.r.exists("rtp:p:ctl") == 0, "a do-not-personalize user's profile is stored"
    store.close()


# --- budget ------------------------------------------------------------------------------------


def test_degraded_decisions_are_counted_in_the_replay_report(
    redis_url: str, tmp_path: Path
) -> None:
    events = synthetic_stream(20, seed=4)
    path = write_jsonl(tmp_path / "lag.jsonl", events)
    # a flow that always lags: any lag >= 0 is above degrade_lag_s, none below recover_lag_s.
    # A replay has no capture lag unless it is paced (then the release time is the capture).
    settings = Settings(redis_url=redis_url, degrade_lag_s=-1.0, recover_lag_s=-2.0, batch_lines=50)
    report = replay([path], "jsonl", settings, progress=False, speed=1e9)
    docs = decision_docs(redis.Redis.from_url(redis_url))
    assert docs and all(d["mode"] == "degraded" for d in docs.values())
    assert report["decisions"]["ranked"] == 0
    assert report["decisions"]["degraded"] >= len(docs)
    assert report["read"] == report["accepted"] == len(events)


# --- partitioning: two workers ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SESSION_FIELDS = (
    "session",
    "started",
    "events",
    "recent",
    "cart",
    "queries",
    "price",
    "mode",
    "intent",
    "pace",
    "dwell",
)


@pytest.mark.parametrize(
    ("neighbours", "span", "lag"),
    [(False, 0.0, 1), (True, 0.0, 1), (False, 5_000.0, 1), (False, 0.0, 3)],
)
def test_two_workers_decide_exactly_like_one(
    redis_url: str, tmp_path: Path, neighbours: bool, span: float, lag: int
) -> None:
    """The same input through run_main and a 2-worker cluster: the same decisions (every
    field: items, scores, reasons, model version), profiles, examples learned and models (the
    edge model too, learned on the other worker than the ranker); with session-neighbourhood
    candidates too (their index is built in every worker's view); with ticks that span
    event time (each worker's partition reads every line, so both cut the same ticks); and
    with models that lag by up to 3 ticks of event time (both partitions lag alike)."""
    events = synthetic_stream(150, seed=7)
    path = write_jsonl(tmp_path / "two.jsonl", events)
    results = []
    for db, workers in ((2, 1), (3, 2)):
        url = fresh_db(redis_url, db)
        settings = Settings(redis_url=url, session_neighbours=neighbours, tick_span_s=span)
        if lag > 1:  # ticks of 100 records, each allowed to lag by any time, up to `lag` ticks
            settings = settings.replace(tick_records=100, model_lag_s=1e9, model_lag_max_ticks=lag)
        else:
            settings = settings.replace(model_lag_s=0.0)
        flow = file_flow(path, settings, batch_lines=100, run=f"w{workers}", workers=workers)
        if workers == 1:
            run_main(flow)
        else:
            cluster_main(flow, [f"127.0.0.1:{_free_port()}"], 0, worker_count_per_proc=2)
        store = Store.from_url(url, settings)
        stats = collect_stats(store, f"w{workers}")
        store.close()
        # the edge model is learned on another worker than the ranker
        results.append((*written(url, settings), stats))
    (one, p1, n1, e1, s1), (two, p2, n2, e2, s2) = results
    assert (s1["shards"], s2["shards"]) == (1, 2)
    assert s1["view_lag_ticks_max"] == s2["view_lag_ticks_max"] == lag
    assert s1["read"] == s2["read"] == len(events)
    assert s1["events"] == s2["events"] == len(events)
    assert s1["learned"] == s2["learned"] > 0
    assert s1["attributed"] == s2["attributed"]
    last = last_event_ts(events)
    assert set(one) == set(two) == set(last)
    for user in last:
        assert one[user] == two[user], user
        assert one[user]["ts"] == last[user]
    assert p1 == p2 and p1
    assert n1 == n2 and n1
    assert e1 == e2 and e1 is not None and orjson.loads(e1)["rules"]


def test_a_replay_on_two_processes_writes_what_one_process_writes(
    redis_url: str, tmp_path: Path
) -> None:
    """``rtp replay --processes 2``: Bytewax's production runner on two local processes joined
    with ``-i/-a`` (pinned to a CPU each where there are two, their main threads idle), the model
    log in Redis. The same decisions, profiles, product pages and edge model as one process."""
    events = synthetic_stream(120, seed=11)
    path = write_jsonl(tmp_path / "procs.jsonl", events)
    results = []
    for db, processes in ((4, 1), (5, 2)):
        url = fresh_db(redis_url, db)
        settings = Settings(redis_url=url, batch_lines=100, model_lag_s=0.0)
        report = replay([path], "jsonl", settings, progress=False, run="p", processes=processes)
        results.append((report, *written(url, settings)))
    (rep1, d1, p1, n1, e1), (rep2, d2, p2, n2, e2) = results
    assert (rep1["processes"], rep2["processes"]) == (1, 2)
    assert rep1["read"] == rep2["read"] == len(events)
    assert rep1["events"] == rep2["events"] == len(events)
    assert rep1["learned_examples"] == rep2["learned_examples"] > 0
    assert set(d1) == set(last_event_ts(events))
    assert d1 == d2
    assert p1 == p2 and p1
    assert n1 == n2 and n1
    assert e1 == e2 and e1 is not None


@pytest.mark.slow
def test_taobao_slice_replay(redis_url: str) -> None:
    from tests.conftest import shared_sample

    path = shared_sample("taobao-userbehavior/UserBehavior_timeslice_96k.csv")
    settings = Settings(redis_url=redis_url)
    report = replay([path], "taobao", settings, progress=False)
    assert report["read"] == 96_169
    assert report["rejected"] == 1
    assert report["accepted"] == report["events"] == 96_168
    # a tick of the slice spans ~35 s of event time: the models may lag by up to 4 of them
    # (three skipped ticks began within RTP_MODEL_LAG_S, 120 s); never more than that bound
    assert report["model_lag_ticks_max"] == 4
    assert 18.1 < report["model_staleness_s"]["mean"] < report["model_staleness_s"]["max"] <= 200
    # the expected context of 50 sampled users, computed here from the file
    rows = path.read_bytes().splitlines()[:-1]  # the truncated last line is rejected
    by_user: dict[str, list[tuple[float, str]]] = {}
    for row in rows:
        user, item, _cat, _beh, ts = row.decode().split(",")
        by_user.setdefault(user, []).append((float(ts), item))
    import random

    sample = random.Random(0).sample(sorted(by_user), 50)
    with Client.from_url(redis_url, settings) as client:
        for user in sample:
            evs = by_user[user]
            start = 0
            for k in range(1, len(evs)):
                if evs[k][0] - evs[k - 1][0] > settings.session_gap_s:
                    start = k
            session = evs[start:]
            home = client.decision(user, "home")
            assert home is not None, user
            assert home["items"] and isinstance(home["reason"], str) and home["reason"]
            assert home["ts"] == session[-1][0]
            ctx = client.context(user)
            assert ctx is not None
            assert ctx["events"] == len(session), user
            assert ctx["started"] == session[0][0]
            recent: list[str] = []
            for _, item in session:
                if item in recent:
                    recent.remove(item)
                recent.append(item)
            assert ctx["recent"] == recent[::-1][:5], user


@pytest.mark.parametrize(
    ("argv", "workers", "one_each"),
    [
        (["x.py"], 1, False),  # not started by a Bytewax runner
        (["/v/bytewax/run.py", "flows.personalize:flow"], 1, False),
        (["/v/bytewax/run.py", "f:flow", "-w", "2"], 2, False),
        (["/v/bytewax/run.py", "f:flow", "-i", "0", "-a", "h0:2101;h1:2101"], 2, True),
        (["/v/bytewax/run.py", "f:flow", "-w", "2", "-i", "1", "-a", "h0:1;h1:1"], 4, False),
        (["/v/bytewax/testing.py", "f:flow", "-p", "3"], 3, True),
    ],
)
def test_the_cluster_shape_is_read_from_the_runner_command_line(
    argv: list[str], workers: int, one_each: bool
) -> None:
    assert workers_from_argv(argv) == workers
    assert one_worker_per_process(argv) is one_each


@pytest.mark.parametrize(
    ("argv", "env", "process_id"),
    [
        (["x.py", "-i", "1"], "", None),  # not started by a Bytewax runner
        (["/v/bytewax/run.py", "flows.personalize:flow"], "", None),
        (["/v/bytewax/run.py", "f:flow", "-i", "1", "-a", "h0:2101;h1:2101"], "", 1),
        (["/v/bytewax/run.py", "f:flow", "--process-id", "0", "-a", "h0:1;h1:1"], "", 0),
        (["/v/bytewax/testing.py", "f:flow", "-p", "3"], "2", 2),
    ],
)
def test_the_process_id_is_read_from_the_runner(
    argv: list[str], env: str, process_id: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("__BYTEWAX_PROC_ID", env)
    assert process_id_from_argv(argv) == process_id


_PIN_SCRIPT = """
import json, os, sys, threading
from rtp.config import Settings
from rtp.flow.dataflow import pin_to_cpu
started = threading.Event()
early = threading.Thread(target=started.wait, daemon=True)  # a thread running before the pin
early.start()
def threads():  # every live thread's CPUs (a thread may end while they are listed)
    out = set()
    for t in os.listdir("/proc/self/task"):
        try:
            out.update(os.sched_getaffinity(int(t)))
        except ProcessLookupError:
            pass
    return sorted(out)
mode, k, n, by_rtp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
live = sys.argv[5] == "1"
cpu = pin_to_cpu(Settings(pin_cpu=mode), k, n, started_by_rtp=by_rtp, live=live)
later = []
t = threading.Thread(target=lambda: later.extend(os.sched_getaffinity(0)))  # started after it
t.start(); t.join()
out = {"cpu": cpu, "threads": threads(), "later": sorted(later)}  # while the early one runs
started.set()
print(json.dumps(out))
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
@pytest.mark.parametrize(
    ("mode", "k", "processes", "by_rtp", "live", "pinned"),
    [
        ("off", 1, 2, True, False, False),
        ("0", 1, 2, True, False, False),
        ("auto", 0, 1, True, False, True),  # a replay rtp started, a CPU each (one at least)
        ("auto", 0, 1, True, True, False),  # a live flow shares its machine: left to the OS
        ("on", 0, 1, True, True, True),  # ...unless asked
        ("auto", 0, 1, False, False, False),  # bytewax.run -i K: only when asked
        ("auto", 0, 1000, True, False, False),  # more processes than CPUs: left to the OS
        ("on", 0, 1000, False, False, True),
        ("1", 5, 6, False, False, True),  # more processes than CPUs: they wrap around
    ],
)
def test_pin_to_cpu_pins_the_kth_process_and_all_its_threads_as_settings_say(
    mode: str, k: int, processes: int, by_rtp: bool, live: bool, pinned: bool
) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    args = [mode, str(k), str(processes), "1" if by_rtp else "0", "1" if live else "0"]
    run = subprocess.run(
        [sys.executable, "-c", _PIN_SCRIPT, *args], capture_output=True, text=True, check=True
    )
    got = orjson.loads(run.stdout)
    if not pinned:
        assert got == {"cpu": None, "threads": cpus, "later": cpus}
        return
    cpu = cpus[k % len(cpus)]
    assert got == {"cpu": cpu, "threads": [cpu], "later": [cpu]}  # running and started after


def test_pin_cpu_must_be_auto_on_or_off() -> None:
    with pytest.raises(ConfigError, match="auto, on or off"):
        Settings(pin_cpu="sometimes")
    with pytest.raises(ConfigError, match="auto, on or off"):
        Settings.from_env({"RTP_PIN_CPU": "2"})
    assert Settings.from_env({"RTP_PIN_CPU": "OFF"}).pin_cpu == "OFF"  # read as "off"
    assert pin_to_cpu(Settings(pin_cpu="OFF"), 0, 1, started_by_rtp=True) is None


_IDLE_SCRIPT = """
import json, os, sys, threading
from pathlib import Path
from bytewax.testing import TestingSink, cluster_main
from rtp.config import Settings
from rtp.flow.dataflow import demote_main_thread, idle_main_thread_later
from tests.flowkit import file_flow
s = Settings(main_thread_idle=sys.argv[2])
pinned = sys.argv[3] == "1"
elsewhere = []  # asked from a thread that is not the main one: refused
t = threading.Thread(target=lambda: elsewhere.append(idle_main_thread_later(s, pinned)))
t.start(); t.join()
asked = idle_main_thread_later(s, pinned)  # what a cluster process does before Bytewax starts
itself = demote_main_thread()  # the main thread does not demote itself
out = []
flow = file_flow(Path(sys.argv[1]), s, batch_lines=1000, sink=TestingSink(out))
# One process of one worker thread: Bytewax's main thread waits for the worker (checking for
# signals every millisecond) while the worker builds the steps and runs the flow.
cluster_main(flow, [], 0, worker_count_per_proc=1)
worker = []
t = threading.Thread(target=lambda: worker.append(os.sched_getscheduler(0)))
t.start(); t.join()
print(json.dumps({"elsewhere": elsewhere[0], "asked": asked, "itself": itself,
                  "main": os.sched_getscheduler(0), "later_thread": worker[0],
                  "decisions": sum(len(w.decisions) for w in out)}))
"""


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="no SCHED_IDLE on this OS")
@pytest.mark.parametrize(
    ("mode", "pinned", "idle"),
    [
        ("auto", True, True),  # a process pinned to its CPU
        ("auto", False, False),  # unpinned: only when asked
        ("on", False, True),
        ("OFF", True, False),
    ],
)
def test_a_cluster_process_main_thread_goes_idle_once_its_worker_builds_the_flow(
    tmp_path: Path, mode: str, pinned: bool, idle: bool
) -> None:
    evs = [view(u, f"i{k}", T0 + k, "c") for k in range(5) for u in ("a", "b")]
    path = write_jsonl(tmp_path / "e.jsonl", evs)
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", _IDLE_SCRIPT, str(path), mode, "1" if pinned else "0"],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    got = orjson.loads(run.stdout)
    assert got["decisions"] >= 2  # the flow ran
    assert got["elsewhere"] is False and got["itself"] is False
    assert got["asked"] is idle
    assert got["main"] == (os.SCHED_IDLE if idle else os.SCHED_OTHER)
    # the policy before the demotion (a thread the main thread starts now inherits idle)
    assert got["later_thread"] == got["main"]


def test_main_thread_idle_must_be_auto_on_or_off() -> None:
    assert Settings().main_thread_idle == "auto"
    assert Settings.from_env({"RTP_MAIN_THREAD_IDLE": "0"}).main_thread_idle == "0"  # "off"
    with pytest.raises(ConfigError, match="RTP_MAIN_THREAD_IDLE must be auto, on or off"):
        Settings.from_env({"RTP_MAIN_THREAD_IDLE": "sometimes"})


def test_switch_interval_is_set_from_settings_and_zero_keeps_python_default() -> None:
    before = sys.getswitchinterval()
    try:
        tune_switch_interval(Settings(switch_interval_ms=0))
        assert sys.getswitchinterval() == before
        tune_switch_interval(Settings(switch_interval_ms=250))
        assert sys.getswitchinterval() == pytest.approx(0.25)
    finally:
        sys.setswitchinterval(before)
