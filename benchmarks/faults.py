"""The fault suite (``make faults``): rtp under faults and load, against real processes.

Every trial starts its own ``redis-server`` and runs ``rtp live`` (or ``rtp replay``) as a
subprocess; producers use ``rtp.streams.append``; results are read with ``rtp.client.Client``
and straight from Redis. One table comes out:

    trial | appended | read | processed | dead letters | refused | lost | recover | result

- *appended*: entries the producers appended to the live stream (for the replay: the file's
  lines);
- *read*: records the flow read (its stats in ``rtp:meta:stats:{run}:u*``, summed over the
  runs of a trial; for a run killed with SIGKILL, the entries Redis delivered to it);
- *processed*: events the flow processed, control events included (its ``events`` stat; for
  a run killed with SIGKILL, the entries it had acknowledged);
- *dead letters*: records rejected with a reason (its ``rejected`` stat);
- *refused*: distinct events a producer could not append at first (``Backpressure``, Redis
  away), kept, and appended later;
- *lost*: appended and never processed or dead-lettered, checked event by event where the
  trial allows it (each event carries its own item, so the catalogue shows it went through);
- *recover*: what it means depends on the trial (see RELIABILITY.md).

Usage: ``.venv/bin/python benchmarks/faults.py [--quick] [--only poison,spike,...]``.
Exits 1 when a trial fails. Every process it starts is stopped, even on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import random
import re
import subprocess
import sys
import time
import traceback
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _faults_corpus as corpus  # noqa: E402
from _faults_lib import (  # noqa: E402
    PARTITIONS,
    REAPER,
    STREAM,
    Live,
    RedisProc,
    Sampler,
    SteadyProducer,
    add_stats,
    append_all,
    dead_letters,
    dump_all,
    flow_stats,
    install_cleanup,
    machine,
    missing_items,
    product_view,
    rtp_command,
    spike_producer,
    stream_state,
    wait_for,
    write_lines,
)
from rtp import streams  # noqa: E402
from rtp.client import Client  # noqa: E402
from rtp.store.store import item_key, user_hash  # noqa: E402


@dataclass
class Config:
    quick: bool
    prefill: int  # events of the backlog whose drain measures the sustainable rate
    spike_s: float
    spike_factor: float
    backlog_s: float  # the lowered bound, in seconds of the sustainable rate
    producers: int
    outages: tuple[float, ...]
    steady_rate: float
    warm_s: float
    after_s: float
    replay_users: int
    poison_valid: int


FULL = Config(False, 150_000, 60.0, 10.0, 5.0, 3, (10.0, 60.0), 500.0, 5.0, 10.0, 20_000, 3_000)
QUICK = Config(True, 60_000, 15.0, 10.0, 5.0, 3, (3.0, 10.0), 500.0, 3.0, 4.0, 8_000, 1_000)


@dataclass
class Row:
    trial: str
    appended: int | None = None
    read: int | None = None
    processed: int | None = None
    dead: int | None = None
    refused: int | None = None
    lost: int | None = None
    recover: float | None = None
    ok: bool = False
    notes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def check(self, cond: bool, failure: str) -> None:
        if not cond:
            self.failures.append(failure)


def _n(v: int | float | None) -> str:
    return "—" if v is None else f"{int(v):,}"


def _pos(entry_id: bytes, payload: dict[str, Any] | bytes) -> str:
    """The source position of an appended entry (the partition is the user's, computed the
    way ``rtp.streams.append`` does: CRC-32 of the user, else the anon id, else "")."""
    d: Any = payload
    if not isinstance(payload, dict):
        try:
            d = orjson.loads(payload)
        except orjson.JSONDecodeError:
            d = None
    user: Any = None
    if isinstance(d, dict):
        user = d.get("user")
        if user is None:
            user = d.get("anon")
    key = user if isinstance(user, str) else str(user) if user is not None else ""
    return f"{STREAM}:{streams.partition_of(key, PARTITIONS)}:{entry_id.decode()}"


def _append_recs(r: redis.Redis, recs: list[corpus.Rec]) -> list[str]:
    """Append records one call each (a producer's poison must not take others with it); their
    source positions."""
    out = []
    for rec in recs:
        if rec.fields is not None:
            entry = r.xadd(f"{STREAM}:0", rec.fields)  # type: ignore[arg-type]
            out.append(f"{STREAM}:0:{entry.decode()}")  # type: ignore[union-attr]
            continue
        (entry_id,) = append_all(r, [rec.payload])
        out.append(_pos(entry_id, rec.payload))
    return out


def _account(
    r: redis.Redis, recs: list[corpus.Rec], positions: list[str], timeout: float
) -> tuple[dict[str, list[str]], dict[str, dict[str, bytes]], float | None]:
    """Wait until every record is decided (its item in the catalogue) or dead-lettered (its
    position in the dead-letter stream); then sort them: accepted, dead, both, neither."""
    items = [rec.item for rec in recs if rec.item]

    def settled() -> bool:
        dl = dead_letters(r)
        missing = set(missing_items(r, items))
        return all(p in dl or (rec.item and rec.item not in missing)
                   for rec, p in zip(recs, positions, strict=True))  # fmt: skip

    took = wait_for(settled, timeout, every=0.25)
    dl = dead_letters(r)
    missing = set(missing_items(r, items))
    out: dict[str, list[str]] = {"accepted": [], "dead": [], "both": [], "neither": [],
                                 "wrongly_accepted": [], "wrongly_rejected": []}  # fmt: skip
    for rec, p in zip(recs, positions, strict=True):
        acc = bool(rec.item) and rec.item not in missing
        dead = p in dl
        kind = "both" if acc and dead else "accepted" if acc else "dead" if dead else "neither"
        out[kind].append(rec.label)
        if acc and rec.expect == corpus.REJECT:
            out["wrongly_accepted"].append(rec.label)
        if dead and rec.expect == corpus.ACCEPT:
            out["wrongly_rejected"].append(rec.label)
    return out, dl, took


def _log_check(row: Row, live: Live) -> dict[str, int]:
    s = live.log_summary()
    row.check(s["tracebacks"] == 0, f"{s['tracebacks']} traceback(s) in rtp live's log")
    return s


# --- 1. poison events --------------------------------------------------------------------------


def trial_poison(cfg: Config, logdir: str) -> Row:
    row = Row("1. poison events")
    srv = RedisProc("poison")
    srv.start()
    r = srv.client()
    live = Live(srv.url, logdir, "poison")
    live.start()
    live.wait_ready(r)
    now = time.time()
    valid = [product_view(f"t1-u{n % 300}", f"t1-i{n}", now + n * 0.001, n)
             for n in range(cfg.poison_valid)]  # fmt: skip
    recs = [corpus.Rec("valid", e, corpus.ACCEPT, e["item"]) for e in valid]
    odd = corpus.valid_edges(now) + corpus.poison(now)
    rng = random.Random(1)
    for rec in odd:  # poison at random places; the valid events keep their order
        recs.insert(rng.randrange(len(recs) + 1), rec)
    positions = []
    # valid events in chunks of up to 50 (as a web server would), each odd record on its own
    i = 0
    while i < len(recs):
        if recs[i].label == "valid":
            j = i
            while j < len(recs) and j - i < 50 and recs[j].label == "valid":
                j += 1
            ids = append_all(r, [rec.payload for rec in recs[i:j]])
            positions.extend(_pos(e, rec.payload) for e, rec in zip(ids, recs[i:j], strict=True))
            i = j
        else:
            positions.extend(_append_recs(r, [recs[i]]))
            i += 1
        row.check(live.alive, "rtp live exited while the poison was appended")
        if not live.alive:
            break
    got, dl, took = _account(r, recs, positions, timeout=120)
    row.recover = took
    probe = _dnp_probe(r, srv.url)
    appended = len(recs) + probe["appended"]
    read_done = wait_for(lambda: flow_stats(r)["read"] >= appended, 30)
    st = flow_stats(r)
    row.appended, row.read = appended, int(st["read"])
    row.processed, row.dead = int(st["events"]), int(st["rejected"])
    row.lost = len(got["neither"])
    bad = [rec for rec in recs if rec.expect != corpus.ACCEPT]
    reasons = Counter(
        dl[p].get("reason", b"").decode() for rec, p in zip(recs, positions, strict=True)
        if p in dl and rec.expect != corpus.ACCEPT
    )  # fmt: skip
    no_reason = [p for p, f in dl.items() if not f.get("reason")]
    valid_users = sorted({e["user"] for e in valid})
    with Client.from_url(srv.url) as c:
        undecided = [u for u in valid_users if c.decision(u) is None]
    row.check(live.alive, "rtp live exited")
    row.check(row.lost == 0, f"{row.lost} records neither decided nor dead-lettered: "
              f"{got['neither'][:8]}")  # fmt: skip
    row.check(read_done is not None and st["read"] == appended,
              f"the flow read {st['read']:.0f} of {appended} entries")  # fmt: skip
    row.check(
        st["events"] + st["rejected"] + st["dropped_forgotten"] == st["read"],
        "events + rejected + dropped as forgotten != read",
    )
    row.check(not no_reason, f"{len(no_reason)} dead letters without a reason")
    row.check(not undecided, f"{len(undecided)} users of valid events have no decision")
    row.check(not got["wrongly_rejected"], f"valid records dead-lettered: "
              f"{got['wrongly_rejected']}")  # fmt: skip
    row.check(not got["wrongly_accepted"], f"malformed records accepted: "
              f"{got['wrongly_accepted']}")  # fmt: skip
    row.check(not got["both"], f"records both accepted and dead-lettered: {got['both']}")
    row.check(
        not probe["wrong_type"],
        "a dnp event whose flag is not a JSON boolean is read as false, no dead letter, the "
        f"user personalized: {', '.join(probe['wrong_type'])}",
    )
    row.check(
        probe["after_forget"] == "non_personalized",
        "a user forgotten, back, then opted out with Client.set_do_not_personalize is still "
        f"personalized by the running flow (decision mode {probe['after_forget']})",
    )
    logs = _log_check(row, live)
    lenient = [rec.label for rec in recs if rec.expect == corpus.EITHER and rec.label in
               got["accepted"]]  # fmt: skip
    row.notes.append(
        f"{len(bad)} malformed records ({len(corpus.poison(now))} kinds) among "
        f"{len(recs) - len(bad)} valid events ({len(corpus.valid_edges(now))} documented edge "
        f"cases); rtp live alive: {live.alive}; reasons: "
        + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()))
    )
    if lenient:
        row.notes.append(f"accepted leniently (allowed): {', '.join(lenient)}")
    row.notes.append(f"internal_error dead letters: {st['internal_errors']:.0f}; dropped as "
                     f"forgotten {st['dropped_forgotten']:.0f}; "
                     f"log: {logs['warnings']} warnings, {logs['errors']} errors")  # fmt: skip
    return row


def _dnp_probe(r: redis.Redis, url: str) -> dict[str, Any]:
    """The do-not-personalize flag, two ways a user's opt-out can go wrong.

    A: a ``dnp`` control event (which "carries only a user", README) whose flag is not a JSON
    boolean (``"true"``, ``1``, ``"yes"``, ``[true]``), between two views of a new user: it
    must be a dead letter or opt the user out, never be read silently as false.
    B: a user forgotten (``Client.forget``) who comes back and then opts out with
    ``Client.set_do_not_personalize``: their next decision must not be personalized."""
    appended = 0
    wrong: list[str] = []
    users = []
    for k, v in enumerate(("true", 1, "yes", [True])):
        user = f"p-dnp-a{k}"
        users.append((user, v))
        evs = [
            product_view(user, f"{user}-before", time.time(), k),
            {"v": 1, "type": "dnp", "user": user, "dnp": v},
            product_view(user, f"{user}-after", time.time() + 0.01, k),
        ]
        append_all(r, evs)
        appended += len(evs)
    wait_for(lambda: not missing_items(r, [f"{u}-after" for u, _ in users]), 60)
    dl = dead_letters(r)
    head = b'{"v":1,"type":"dnp","user":"p-dnp'
    dead_users = {str(orjson.loads(f["raw"]).get("user")) for f in dl.values()
                  if f.get("raw", b"").startswith(head)}  # fmt: skip
    with Client.from_url(url) as c:
        for user, v in users:
            mode = (c.decision(user) or {}).get("mode")
            if user not in dead_users and mode != "non_personalized":
                wrong.append(f"dnp={orjson.dumps(v).decode()} (decision {mode})")
        user = "p-dnp-b"
        append_all(r, [product_view(user, f"{user}-1", time.time(), 1)])
        wait_for(lambda: c.decision(user) is not None, 30)
        c.forget(user)
        append_all(r, [product_view(user, f"{user}-2", time.time(), 2)])
        wait_for(lambda: c.decision(user) is not None, 30)
        c.set_do_not_personalize(user, True)
        append_all(r, [product_view(user, f"{user}-3", time.time(), 3)])
        appended += 4
        wait_for(lambda: not missing_items(r, [f"{user}-3"]), 30)
        wait_for(lambda: (c.context(user) or {}).get("recent", [""])[0] == f"{user}-3"
                 or (c.decision(user) or {}).get("mode") == "non_personalized", 10)  # fmt: skip
        after_forget = (c.decision(user) or {}).get("mode")
    return {"appended": appended, "wrong_type": wrong, "after_forget": after_forget}


# --- 2. spike ----------------------------------------------------------------------------------


def trial_spike(cfg: Config, logdir: str) -> Row:
    row = Row(f"2. spike {cfg.spike_factor:.0f}x for {cfg.spike_s:.0f} s")
    srv = RedisProc("spike")
    srv.start()
    r = srv.client()
    # the sustainable rate: a backlog appended before the flow starts, then drained
    now = time.time()
    n_pre = cfg.prefill
    users = 20_000  # the same users and catalogue as the spike's: the state is warm before it
    per = users // cfg.producers
    pre = [product_view(f"s{n % cfg.producers}-u{(n * 7919) % per}",
                        f"s-i{zlib.crc32(b'w%d' % n) % 3000}", now + n * 1e-5, n)
           for n in range(n_pre)]  # fmt: skip
    for i in range(0, n_pre, 2000):
        streams.append(r, pre[i : i + 2000], max_backlog=0)
    del pre
    live = Live(srv.url, logdir, "spike")
    live.start()
    sampler = Sampler(live)
    sampler.start()
    snaps: list[tuple[float, float]] = []

    def drained() -> bool:
        st = flow_stats(r)
        if st["read"] and (not snaps or snaps[-1][1] != st["read"]):
            snaps.append((st["wall"], st["read"]))
        return st["read"] >= n_pre

    if wait_for(drained, 600, every=0.2) is None:
        raise RuntimeError(f"the backlog of {n_pre} events did not drain in 600 s")
    if len(snaps) < 2:
        raise RuntimeError("the drain was too short to measure (fewer than two stats writes)")
    rate = (snaps[-1][1] - snaps[0][1]) / max(1e-3, snaps[-1][0] - snaps[0][0])
    wait_for(lambda: stream_state(r)["length"] == 0, 30)
    rss_before = live.status_kb()
    bound = max(1_000, int(rate * cfg.backlog_s / PARTITIONS))
    streams.configure(r, streams.StreamConfig(STREAM, PARTITIONS, bound))
    target = rate * cfg.spike_factor
    # the spike: several producer processes at 10x, refused ones retry after retry_after_s
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3.0  # the producers start together, once imported
    for k in range(cfg.producers):
        REAPER.process(spike_producer, (srv.url, target / cfg.producers, start_at, cfg.spike_s,
                                        k, users // cfg.producers, 3000, out))  # fmt: skip
    t_start = time.monotonic() + (start_at - time.time())
    t_end = t_start + cfg.spike_s
    lengths: list[int] = []
    redis_mem: list[int] = []
    redis_mem_before = int(r.info("memory")["used_memory"])
    flow_snaps: list[tuple[float, float]] = []
    while time.monotonic() < t_end:
        with contextlib.suppress(redis.RedisError):
            lengths.append(stream_state(r)["length"])
            redis_mem.append(int(r.info("memory")["used_memory"]))
            st = flow_stats(r)
            if time.monotonic() > t_start and (not flow_snaps or flow_snaps[-1][1] != st["read"]):
                flow_snaps.append((st["wall"], st["read"]))
        time.sleep(0.5)
        row.check(live.alive, "rtp live exited during the spike")
        if not live.alive:
            break
    results = {}
    for _ in range(cfg.producers):
        k, counts = out.get(timeout=300)
        results[k] = counts
    spiked = sum(c.get("appended", 0) for c in results.values())
    in_spike = sum(c.get("appended_in_spike", 0) for c in results.values())
    refused = sum(c.get("refused", 0) for c in results.values())
    attempts = sum(c.get("refused_attempts", 0) for c in results.values())
    attempt_events = sum(c.get("refused_attempt_events", 0) for c in results.values())
    generated = sum(c.get("generated", 0) for c in results.values())
    # the last events: one marker per sampled user, behind whatever backlog is left
    markers = {f"s{k % cfg.producers}-u{(k * 7919) % (users // cfg.producers)}": f"mark-{k}"
               for k in range(100)}  # fmt: skip
    ts = time.time()
    append_all(r, [product_view(u, i, ts, n) for n, (u, i) in enumerate(markers.items())])
    appended = n_pre + spiked + len(markers)

    def caught_up() -> bool:
        if flow_stats(r)["read"] < appended or stream_state(r)["length"] > 0:
            return False
        with Client.from_url(srv.url) as c:
            for u, item in markers.items():
                ctx_ = c.context(u)
                if not ctx_ or not ctx_.get("recent") or ctx_["recent"][0] != item:
                    return False
        return True

    took = wait_for(caught_up, 600, every=0.25)
    t_rec = time.monotonic()
    row.recover = None if took is None else t_rec - t_end
    sampler.stop()
    st = flow_stats(r)
    ss = stream_state(r)
    timeline = []
    for k in range(0, 11):
        t = t_start + k * (t_rec - t_start) / 10
        got = [kb for tt, kb in sampler.samples if tt <= t]
        timeline.append(f"{(got[-1] if got else 0) / 1024:.0f}")
    q = cfg.spike_s / 4  # the spike's quarters: state may grow, the excess load must not
    rss_q2 = max(sampler.between(t_start + q, t_start + 2 * q), default=0)
    rss_q4 = max(sampler.between(t_start + 3 * q, t_end), default=0)
    hwm = live.status_kb("VmHWM")
    rss_end = live.status_kb()
    row.appended, row.read = appended, int(st["read"])
    row.processed, row.dead, row.refused = int(st["events"]), int(st["rejected"]), refused
    row.lost = max(0, appended - int(st["read"]))
    spike_rate = 0.0
    if len(flow_snaps) >= 2:
        spike_rate = (flow_snaps[-1][1] - flow_snaps[0][1]) / max(
            1e-3, flow_snaps[-1][0] - flow_snaps[0][0]
        )
    row.check(live.alive, "rtp live exited")
    row.check(took is not None, "the backlog did not drain (or the markers never showed) "
              "within 600 s of the spike's end")  # fmt: skip
    row.check(row.lost == 0, f"{row.lost} appended events never read")
    row.check(st["read"] == appended, f"read {st['read']:.0f} != appended {appended}")
    row.check(ss["added"] == appended, f"Redis counted {ss['added']} entries added, the "
              f"producers {appended}")  # fmt: skip
    row.check(ss["pending"] == 0 and ss["lag"] == 0 and ss["gaps"] == 0,
              f"stream not settled: {ss}")  # fmt: skip
    row.check(refused > 0, "no producer was ever refused: the bound did not bite")
    longest = max(lengths, default=0)
    row.check(longest <= bound * PARTITIONS, f"the backlog reached {longest:,} > the bound")
    judged = cfg.spike_s >= 40  # a short spike ends before the users' state has settled
    unjudged = "" if judged else " (not judged in --quick: too short)"
    row.check(
        not judged or rss_q4 <= rss_q2 * 1.25,
        f"rtp live's RSS kept growing during the spike: {rss_q2 / 1024:.0f} MB in its second "
        f"quarter, {rss_q4 / 1024:.0f} MB in its last",
    )
    _log_check(row, live)
    row.notes.append(
        f"sustainable rate {rate:,.0f} events/s (drain of {n_pre:,}); producers offered "
        f"{target:,.0f}/s from {cfg.producers} processes; backlog bound {bound:,} per partition "
        f"(x{PARTITIONS}); longest backlog seen {max(lengths, default=0):,}; "
        f"flow rate during the spike {spike_rate:,.0f}/s"
    )
    row.notes.append(
        f"{generated:,} events made in the spike, {in_spike:,} appended during it "
        f"({in_spike / cfg.spike_s:,.0f}/s), the rest just after; {attempts:,} refused attempts "
        f"({attempt_events:,} events; {refused:,} distinct, all retried and appended); "
        f"degraded decisions {st['decisions_degraded']:,.0f}, mode changes "
        f"{st['mode_changes']:.0f}, max lag {st['max_lag_s']:.1f} s"
    )
    row.notes.append(
        f"RSS of rtp live {rss_before / 1024:.0f} MB before the spike, max {rss_q2 / 1024:.0f} MB "
        f"in its second quarter and {rss_q4 / 1024:.0f} MB in its last, peak (VmHWM) "
        f"{hwm / 1024:.0f} MB, {rss_end / 1024:.0f} MB after{unjudged}; at every tenth from "
        f"the spike's start to recovery: {' '.join(timeline)}; Redis used_memory "
        f"{redis_mem_before / 2**20:.0f} MB before, max {max(redis_mem, default=0) / 2**20:.0f} "
        "MB during the spike"
    )
    return row


# --- 3. forget during a replay -----------------------------------------------------------------

_WAVES = (0.1, 0.3, 0.5, 0.7, 0.9)


def trial_forget(cfg: Config, logdir: str) -> Row:
    row = Row("3. forget 100 users during a replay")
    srv = RedisProc("forget")
    srv.start()
    r = srv.client()
    work = Path(REAPER.tmpdir("rtp-faults-forget-"))
    raw_path = work / "synth.jsonl"
    subprocess.run(
        [sys.executable, "-m", "rtp.tools.synth", "--users", str(cfg.replay_users), "--out",
         str(raw_path), "--seed", "11"],
        check=True, capture_output=True,
    )  # fmt: skip
    lines = raw_path.read_bytes().splitlines()
    events = [orjson.loads(x) for x in lines]
    by_user: dict[str, list[int]] = {}
    for n, e in enumerate(events):
        by_user.setdefault(str(e["user"]), []).append(n)
    rng = random.Random(3)
    eligible = sorted(u for u, idx in by_user.items() if len(idx) >= 6)
    chosen = rng.sample(eligible, 120)
    gone, control = chosen[:100], chosen[100:]
    # bad lines of these users through the file (after their first, middle and last events):
    # each carries the user, so a forget must find its dead letter; a few are truncated JSON
    # (the user cannot be read from them)
    inserts: dict[int, list[bytes]] = {}
    truncated = set(gone[:10]) | set(control[:5])
    for u in chosen:
        idx = by_user[u]
        for k, n in enumerate((idx[0], idx[len(idx) // 2], idx[-1])):
            e = dict(events[n])
            if k == 1:
                e["type"] = "teleport"
            else:
                e["price"] = -1.0
            inserts.setdefault(n, []).append(orjson.dumps(e))
        if u in truncated:
            inserts.setdefault(idx[-1], []).append(orjson.dumps(events[idx[-1]])[:-12])
    out_lines = []
    for n, line in enumerate(lines):
        out_lines.append(line)
        out_lines.extend(inserts.get(n, []))
    path = write_lines(work / "stream.jsonl", out_lines)
    total = len(out_lines)
    bad_lines = total - len(lines)
    dl_file = work / "dead.jsonl"
    report = work / "report.json"
    with open(Path(logdir) / "replay.log", "wb") as log:
        proc = REAPER.popen(
            [rtp_command(), "replay", str(path), "--format", "jsonl", "--redis-url", srv.url,
             "-q", "--report", str(report), "--dead-letter-file", str(dl_file)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    t0 = time.monotonic()

    def progress() -> float:
        runs = _runs(r)
        return sum(flow_stats(r, run)["read"] for run in runs) / total if runs else 0.0

    waves: list[str] = []
    order = list(gone)
    rng.shuffle(order)
    for w, frac in enumerate(_WAVES):
        wait_for(lambda f=frac: progress() >= f or proc.poll() is not None, 600, every=0.05)
        users = order[w * 20 : (w + 1) * 20]
        at = progress()
        running = proc.poll() is None
        if w == 1:  # one wave through the command line
            subprocess.run([rtp_command(), "forget", "--redis-url", srv.url, *users],
                           check=True, capture_output=True)  # fmt: skip
        else:
            with Client.from_url(srv.url) as c:
                for u in users:
                    c.forget(u)
        waves.append(f"{at:.0%}{'' if running else ' (after the end)'}")
    rc = proc.wait(timeout=900)
    took = time.monotonic() - t0
    rep = json.loads(report.read_text()) if report.exists() else {}
    row.check(rc == 0, f"rtp replay exited with {rc}")
    row.appended = total
    row.read = rep.get("read")
    row.processed = rep.get("accepted")
    row.dead = rep.get("rejected")
    row.lost = None if row.read is None else max(0, total - int(row.read))
    # everything left about the forgotten users: key names and values of every key
    token = re.compile(
        rb'(?<![A-Za-z0-9_.-])(' + b"|".join(re.escape(u.encode()) for u in gone)
        + rb')(?![A-Za-z0-9_-])'
    )  # fmt: skip
    quoted = re.compile(rb'"(' + b"|".join(re.escape(u.encode()) for u in gone) + rb')"')
    ctrl = re.compile(
        rb'"user":"(' + b"|".join(re.escape(u.encode()) for u in control) + rb')"'
    )  # fmt: skip
    left_keys: Counter[str] = Counter()
    examples: list[str] = []
    kept_dnp = 0  # a forget keeps the do-not-personalize flag on purpose (rtp.store.store)
    for key, kind, blob in dump_all(r):
        if key == b"rtp:dnp":
            kept_dnp = sum(1 for m in r.smembers(key) if token.fullmatch(m))
        elif token.search(key):
            left_keys[f"key {key.decode(errors='replace').split(':')[1]}:"] += 1
            examples.append(key.decode(errors="replace"))
        elif key.startswith((b"rtp:d:", b"rtp:p:")):
            continue  # another user's own document (compact binary: ids are not spelled out)
        elif kind != b"stream" and quoted.search(blob):
            left_keys[f"in {key.decode(errors='replace')}"] += 1
    tomb = dict(zip(gone, r.hmget("rtp:tomb", [user_hash(u) for u in gone]), strict=True))
    dl = dead_letters(r)
    dl_left = {"readable": 0, "unreadable": 0, "written_after_forget": 0}
    for f in dl.values():
        raw = f.get("raw", b"")
        m = token.search(raw)
        if not m:
            continue
        try:
            orjson.loads(raw)
        except orjson.JSONDecodeError:
            dl_left["unreadable"] += 1
            continue
        dl_left["readable"] += 1
        forgot_at = tomb.get(m.group(1).decode())
        if forgot_at is not None and int(f["_id"].split(b"-")[0]) / 1000 > float(forgot_at):
            dl_left["written_after_forget"] += 1
    control_dl = 0
    for f in dl.values():
        raw = f.get("raw", b"")
        if ctrl.search(raw):
            control_dl += 1
    index_left = sum(1 for u in gone if r.exists(f"rtp:dlu:{user_hash(u)}"))
    file_left = {"readable": 0, "unreadable": 0}
    if dl_file.exists():
        for line in dl_file.read_bytes().splitlines():
            d = orjson.loads(line)
            if d.get("user") in gone:
                file_left["readable"] += 1
            elif token.search(d.get("raw", "").encode()):
                file_left["unreadable"] += 1
    no_tomb = [u for u in gone if tomb[u] is None]
    left_docs = []
    with Client.from_url(srv.url) as c:
        for key in examples[:3]:
            u = key.split(":", 2)[-1]
            doc = (c.decisions(u) if key.startswith("rtp:d:") else c.profile(u)) or {}
            left_docs.append(f"{key}: mode {doc.get('mode')}, ctx events "
                             f"{(doc.get('ctx') or {}).get('events')}, ttl {r.ttl(key)} s, "
                             f"forgotten at {float(tomb.get(u) or 0):.0f}")  # fmt: skip
    row.check(row.lost == 0, f"{row.lost} lines not read")
    row.check(not no_tomb, f"{len(no_tomb)} forgotten users have no tombstone")
    row.check(not left_keys, f"{sum(left_keys.values())} keys still hold forgotten users: "
              f"{dict(left_keys)}: {'; '.join(left_docs)}")  # fmt: skip
    row.check(
        dl_left["readable"] == 0,
        f"{dl_left['readable']} dead letters of forgotten users (user readable) are still in the "
        f"dead-letter stream, {dl_left['written_after_forget']} of them written after the forget",
    )
    row.check(
        dl_left["unreadable"] == 0,
        f"{dl_left['unreadable']} dead letters of forgotten "
        "users whose user cannot be parsed (truncated JSON) are still in the stream",
    )
    row.check(index_left == 0, f"{index_left} per-user dead-letter indexes left")
    row.check(
        file_left["readable"] + file_left["unreadable"] == 0,
        f"the dead-letter file still holds {file_left} lines of forgotten users",
    )
    row.check(control_dl >= 3 * len(control), f"only {control_dl} dead letters of the 20 control "
              "users (expected their 3 each): the check would not see a leak")  # fmt: skip
    row.notes.append(
        f"{total:,} lines ({cfg.replay_users:,} synthetic users, {bad_lines} bad lines of the "
        f"forgotten and 20 control users), replay {took:.1f} s; forgets in 5 waves of 20 at "
        f"{', '.join(waves)} of the replay (wave 2 with `rtp forget`); left "
        f"for them: keys {sum(left_keys.values())}, dead letters {dl_left} in the stream, "
        f"{file_left} in the file, indexes {index_left}; control users' dead letters "
        f"{control_dl}; kept by design: {kept_dnp} do-not-personalize flag(s); events dropped as "
        "forgotten: "
        f"{sum(flow_stats(r, run=k)['dropped_forgotten'] for k in _runs(r)):,.0f}"
    )
    return row


_RUNS: dict[int, list[str]] = {}


def _runs(r: redis.Redis) -> list[str]:
    """The runs that wrote stats (the replay's run id is random): scanned until found."""
    if not _RUNS.get(id(r)):
        names = {k.decode().split(":")[3] for k in r.scan_iter(match="rtp:meta:stats:*:u*",
                                                                count=10_000)}  # fmt: skip
        _RUNS[id(r)] = sorted(names)
    return _RUNS[id(r)]


# --- 4. Redis outages --------------------------------------------------------------------------


def _steady_finish(
    row: Row, r: redis.Redis, prod: SteadyProducer, timeout: float = 300.0
) -> list[str]:
    """Stop the producer, wait for what it holds to be sent and for every event's item to be
    in the catalogue; the items never seen."""
    prod.stop()
    prod.finished.wait(timeout)
    row.check(not prod.pending, f"the producer could not send {len(prod.pending)} events")
    items = list(prod.items)
    wait_for(lambda: not missing_items(r, items[-200:]), timeout, every=0.25)
    missing: list[str] = []

    def done() -> bool:
        nonlocal missing
        missing = missing_items(r, items)
        return not missing

    wait_for(done, 60, every=0.5)
    return missing


def _visible(r: redis.Redis, c: Client, prod: SteadyProducer, n: int) -> bool:
    """Has event ``n`` of the producer gone through (in its user's decision, or its item in
    the catalogue)?"""
    item = prod.items[n]
    ctx = c.context(prod.user(n))
    if ctx and item in (ctx.get("recent") or []):
        return True
    return bool(r.hexists(item_key("rtp:", item), item))


def trial_outage(cfg: Config, logdir: str, outage_s: float) -> Row:
    row = Row(f"4. Redis SIGKILL, down {outage_s:.0f} s")
    srv = RedisProc(f"outage{outage_s:.0f}", aof=True)
    srv.start()
    r = srv.client()
    live = Live(srv.url, logdir, f"outage{outage_s:.0f}")
    live.start()
    live.wait_ready(r)
    prod = SteadyProducer(srv.url, cfg.steady_rate, 1000, f"o{outage_s:.0f}")
    prod.start()
    time.sleep(cfg.warm_s)
    log_before = live.log_summary()["lines"]
    kill_wall = time.time()
    srv.kill()
    t_kill = time.monotonic()
    time.sleep(outage_s)
    alive_during = live.alive
    restart_s = srv.start()
    t_back = time.monotonic()
    r = srv.client()
    n_back = prod.generated() - 1  # the newest event when Redis came back
    with Client.from_url(srv.url) as c:
        took = wait_for(lambda: _visible(r, c, prod, n_back), 300, every=0.1)
    row.recover = took
    time.sleep(cfg.after_s)
    missing = _steady_finish(row, r, prod)
    wait_for(lambda: flow_stats(r)["read"] >= prod.appended and stream_state(r)["length"] == 0,
             60)  # fmt: skip
    st = flow_stats(r)
    ss = stream_state(r)
    row.appended, row.read = prod.appended, int(st["read"])
    row.processed, row.dead = int(st["events"]), int(st["rejected"])
    row.refused = prod.refused
    held = prod.max_pending
    row.lost = len(missing)
    row.check(alive_during and live.alive, "rtp live exited")
    row.check(took is not None, "the newest event at Redis's return was never decided")
    row.check(row.lost == 0, f"{row.lost} events never went through, e.g. {missing[:3]}")
    row.check(st["read"] >= prod.appended, f"the flow read {st['read']:.0f} < {prod.appended}")
    row.check(ss["pending"] == 0 and ss["gaps"] == 0, f"stream not settled: {ss}")
    logs = _log_check(row, live)
    busiest = live.busiest(kill_wall)
    dup_appends = ss["added"] - prod.appended
    fails = ", ".join(f"{k} {v}" for k, v in sorted(prod.failures.items()))
    row.notes.append(
        f"{cfg.steady_rate:.0f} events/s from 1,000 users; Redis killed after {cfg.warm_s:.0f} s, "
        f"back {t_back - t_kill:.1f} s later (AOF, appendfsync always; {restart_s:.2f} s to load); "
        f"the producer held up to {held:,} events and retried ({fails}); "
        f"Redis counted {ss['added']:,} entries ({dup_appends:+d} vs the producer: appends "
        f"retried after a lost reply); rtp live log: {logs['lines'] - log_before} lines after "
        f"the kill, at most {busiest} in any 10 s ({logs['warnings']} warnings, "
        f"{logs['errors']} errors, {logs['tracebacks']} tracebacks)"
    )
    return row


# --- 5. SIGTERM and SIGKILL of rtp live --------------------------------------------------------


def trial_restart(cfg: Config, logdir: str, how: str) -> Row:
    row = Row(f"5. rtp live {how}, restart")
    srv = RedisProc(f"live-{how.lower()}")
    srv.start()
    r = srv.client()
    live = Live(srv.url, logdir, how.lower())
    live.start()
    live.wait_ready(r)
    prod = SteadyProducer(srv.url, cfg.steady_rate, 1000, f"k{how[3].lower()}")
    prod.start()
    time.sleep(cfg.warm_s)
    notes = []
    if how == "SIGTERM":
        rc, secs = live.terminate(timeout=30)
        row.check(rc == 0, f"SIGTERM: exit code {rc} (None: still running after 30 s)")
        row.check(secs < 10, f"SIGTERM: {secs:.1f} s to exit")
        notes.append(f"SIGTERM: exit code {rc} after {secs:.2f} s")
        before = flow_stats(r)  # the last stats, written at the clean stop
    else:
        live.kill()
        # its stats were last written up to 2 s before the kill: count what Redis delivered
        # to it instead, and what it acknowledged (processed for sure)
        ss = stream_state(r)
        before = flow_stats(r)
        before["read"] = ss["delivered"]
        before["events"] = ss["delivered"] - ss["pending"]
    ss = stream_state(r)
    redelivered = ss["pending"]
    time.sleep(3.0)  # the producer goes on meanwhile
    waiting = stream_state(r)["length"]
    live.start()
    n_restart = prod.generated() - 1
    with Client.from_url(srv.url) as c:
        took = wait_for(lambda: _visible(r, c, prod, n_restart), 300, every=0.1)
    row.recover = took
    time.sleep(cfg.after_s)
    missing = _steady_finish(row, r, prod)
    wait_for(lambda: stream_state(r)["length"] == 0, 60)
    rc2, secs2 = live.terminate(timeout=30)
    after = flow_stats(r)
    total = add_stats(before, after)
    ss = stream_state(r)
    row.appended, row.read = prod.appended, int(total["read"])
    row.processed, row.dead = int(total["events"]), int(total["rejected"])
    row.lost = len(missing)
    row.refused = prod.refused
    row.check(row.lost == 0, f"{row.lost} events never went through, e.g. {missing[:3]}")
    row.check(took is not None, "the restarted flow never caught up")
    row.check(ss["pending"] == 0 and ss["gaps"] == 0 and ss["length"] == 0,
              f"stream not settled: {ss}")  # fmt: skip
    row.check(rc2 == 0, f"the restarted rtp live: SIGTERM exit code {rc2}")
    _log_check(row, live)
    dups = int(total["read"]) - prod.appended
    if how == "SIGTERM":
        notes.append(
            f"{redelivered:,} entries processed but not acknowledged at the clean stop, "
            f"re-delivered to the next run (read - appended = {dups:,})"
        )
    else:
        notes.append(
            f"SIGKILL: {redelivered:,} entries delivered and not acknowledged, re-delivered to "
            f"the restarted flow (at most that many processed twice; read - appended = {dups:,}); "
            "for the killed run, read = entries Redis delivered to it and processed = those it "
            "acknowledged (its own stats were up to 2 s old)"
        )
    notes.append(f"{waiting:,} entries waiting at the restart; the restarted run stopped by "
                 f"SIGTERM in {secs2:.2f} s (code {rc2}); {cfg.steady_rate:.0f} events/s "
                 "throughout")  # fmt: skip
    row.notes.append("; ".join(notes))
    return row


# --- 6. raw IPs --------------------------------------------------------------------------------


def trial_ips(cfg: Config, logdir: str) -> Row:
    row = Row("6. raw IPs")
    srv = RedisProc("ips")
    srv.start()
    r = srv.client()
    work = Path(REAPER.tmpdir("rtp-faults-ips-"))
    dl_file = work / "dead.jsonl"
    now = time.time()
    needles = corpus.ip_needles()
    first = corpus.ip_records(now, "ip1")
    # appended before the flow runs: what the stream holds until it is read
    pos_first = _append_recs(r, first)
    # what the live stream holds before the flow reads it: context.ip is scrubbed by the producer
    held = {corpus.ACCEPT: 0, corpus.REJECT: 0}
    with_ctx_ip = 0
    for rec, pos in zip(first, pos_first, strict=True):
        name, entry_id = pos.rsplit(":", 1)
        entries = r.xrange(name, entry_id, entry_id)
        blob = b" ".join(entries[0][1].values()).lower() if entries else b""
        if any(n.lower() in blob for n in needles):
            held[rec.expect] += 1
            ctx = rec.payload.get("context") if isinstance(rec.payload, dict) else None
            with_ctx_ip += isinstance(ctx, dict) and "ip" in ctx
    live = Live(srv.url, logdir, "ips", args=["--dead-letter-file", str(dl_file)])
    live.start()
    live.wait_ready(r)
    second = corpus.ip_records(time.time(), "ip2")
    pos_second = _append_recs(r, second)
    recs, positions = first + second, pos_first + pos_second
    got, _dl, took = _account(r, recs, positions, timeout=120)
    row.recover = took
    wait_for(lambda: flow_stats(r)["read"] >= len(recs) and stream_state(r)["length"] == 0, 30)
    rc, _secs = live.terminate(timeout=30)
    st = flow_stats(r)
    hits = _scan_ips(r, needles, srv.url)
    file_hits: list[str] = []
    if dl_file.exists():
        text = dl_file.read_bytes().lower()
        file_hits = [n.decode() for n in needles if n.lower() in text]
    row.appended, row.read = len(recs), int(st["read"])
    row.processed, row.dead = int(st["events"]), int(st["rejected"])
    row.lost = len(got["neither"])
    row.check(row.lost == 0, f"{row.lost} records neither decided nor dead-lettered")
    row.check(not hits, f"raw IPs in Redis: {hits[:6]}")
    row.check(
        with_ctx_ip == 0 and held[corpus.ACCEPT] == 0,
        f"the live stream held context.ip of {with_ctx_ip} records, and addresses of "
        f"{held[corpus.ACCEPT]} valid events, before the flow read them",
    )
    row.check(not file_hits, f"raw IPs in the dead-letter file: {file_hits[:6]}")
    row.check(dl_file.exists() and dl_file.stat().st_size > 0, "no dead-letter file written")
    row.check(not got["wrongly_rejected"], f"valid records dead-lettered: "
              f"{got['wrongly_rejected']}")  # fmt: skip
    row.check(rc == 0, f"rtp live: SIGTERM exit code {rc}")
    _log_check(row, live)
    with Client.from_url(srv.url) as c:
        countries = Counter(
            str((c.context(rec.payload["user"]) or {}).get("country"))  # type: ignore[index]
            for rec in recs if rec.expect == corpus.ACCEPT
        )  # fmt: skip
    row.notes.append(
        f"{sum(rec.expect == corpus.ACCEPT for rec in recs)} valid events with context.ip "
        f"(IPv4, IPv6, mapped, zoned, bracketed, with a port), "
        f"{sum(rec.expect != corpus.ACCEPT for rec in recs)} bad records carrying "
        f"{len(corpus.IPV4) + len(corpus.IPV6)} addresses in every field, non-JSON and oversized; "
        f"searched {len(needles)} spellings in every key of every type and in the dead-letter "
        f"file: {len(hits)} + {len(file_hits)} found; countries stored: "
        + ", ".join(f"{k} {v}" for k, v in sorted(countries.items()))
    )
    row.notes.append(
        f"before the flow read them, {held[corpus.REJECT]} of the "
        f"{sum(rec.expect != corpus.ACCEPT for rec in first)} bad records "
        f"appended held raw addresses in the live stream (outside context.ip, the only place the "
        f"producer scrubs, or not JSON objects) until the flow trimmed them; valid events: "
        f"{held[corpus.ACCEPT]}"
    )
    return row


def _scan_ips(r: redis.Redis, needles: list[bytes], url: str) -> list[str]:
    """Every needle found in any key's name or contents; decisions and profiles (a compact
    binary form) are also read back as documents through the client and searched as JSON."""
    hits = []
    c = Client.from_url(url)
    for key, _kind, blob in dump_all(r):
        if key.startswith(b"rtp:d:"):
            blob += b"\n" + orjson.dumps(c.decisions(key[6:].decode()))
        elif key.startswith(b"rtp:p:"):
            blob += b"\n" + orjson.dumps(c.profile(key[6:].decode()))
        low = (key + b"\n" + blob).lower()
        for n in needles:
            if n.lower() in low:
                hits.append(f"{n.decode()} in {key.decode(errors='replace')}")
    c.close()
    return hits


# --- the suite ---------------------------------------------------------------------------------

TRIALS = ("poison", "spike", "forget", "outage", "restart", "ips")


def run_trials(cfg: Config, only: set[str], logdir: str) -> list[Row]:
    plan: list[tuple[str, str, Any]] = []
    if "poison" in only:
        plan.append(("poison", "1. poison events", lambda: trial_poison(cfg, logdir)))
    if "spike" in only:
        plan.append(("spike", "2. spike", lambda: trial_spike(cfg, logdir)))
    if "forget" in only:
        plan.append(("forget", "3. forget during a replay", lambda: trial_forget(cfg, logdir)))
    if "outage" in only:
        for s in cfg.outages:
            plan.append(("outage", f"4. Redis SIGKILL, down {s:.0f} s",
                         lambda s=s: trial_outage(cfg, logdir, s)))  # fmt: skip
    if "restart" in only:
        for how in ("SIGTERM", "SIGKILL"):
            plan.append(("restart", f"5. rtp live {how}, restart",
                         lambda how=how: trial_restart(cfg, logdir, how)))  # fmt: skip
    if "ips" in only:
        plan.append(("ips", "6. raw IPs", lambda: trial_ips(cfg, logdir)))
    rows = []
    for _key, name, fn in plan:
        t0 = time.monotonic()
        print(f"-- {name} ...", flush=True)
        try:
            row = fn()
        except Exception as e:  # a trial that breaks is a failed trial, not a dead suite
            row = Row(name)
            row.failures.append(f"the trial broke: {type(e).__name__}: {e}")
            row.notes.append(traceback.format_exc(limit=4).strip().replace("\n", " | "))
        finally:
            REAPER.cleanup()
        row.ok = not row.failures
        rows.append(row)
        status = "ok" if row.ok else "FAIL: " + "; ".join(row.failures)
        print(f"   {time.monotonic() - t0:.0f} s, {status}", flush=True)
    return rows


def table(rows: list[Row]) -> str:
    head = ["trial", "appended", "read", "processed", "dead letters", "refused", "lost",
            "recover", "result"]  # fmt: skip
    body = []
    for row in rows:
        body.append([
            row.trial, _n(row.appended), _n(row.read), _n(row.processed), _n(row.dead),
            _n(row.refused), _n(row.lost),
            "—" if row.recover is None else f"{row.recover:.1f} s",
            "ok" if row.ok else "FAIL",
        ])  # fmt: skip
    widths = [max(len(head[i]), *(len(b[i]) for b in body)) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs) + " |"

    sep = "|" + "|".join(("-" * (w + 2) if i == 0 else "-" * (w + 1) + ":")
                         for i, w in enumerate(widths)) + "|"  # fmt: skip
    return "\n".join([line(head), sep, *(line(b) for b in body)])


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _code_version() -> str:
    """The commit the suite ran on, and whether ``src/`` differed from it."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else "?"

    dirty = git("status", "--porcelain", "--", "src")
    return f"commit {git('rev-parse', '--short', 'HEAD')}" + (
        " + uncommitted changes in src/" if dirty else ""
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="a shorter spike and shorter outages")
    p.add_argument("--only", default=",".join(TRIALS), help=f"trials to run ({','.join(TRIALS)})")
    p.add_argument("--json", help="also write the rows here")
    p.add_argument("--keep", action="store_true", help="keep the logs and temporary directories")
    args = p.parse_args(argv)
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - set(TRIALS)
    if unknown:
        p.error(f"unknown trials {sorted(unknown)}; choose from {TRIALS}")
    cfg = QUICK if args.quick else FULL
    install_cleanup()
    REAPER.keep = args.keep
    logdir = REAPER.tmpdir("rtp-faults-logs-")
    m = machine()
    started = datetime.now(timezone.utc)
    command = " ".join([Path(sys.executable).name, "benchmarks/faults.py", *sys.argv[1:]])
    print(f"rtp fault suite ({'quick' if cfg.quick else 'full'}), {started:%Y-%m-%d %H:%M} UTC")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in m.items()))
    print(f"code: {_code_version()}; load average at start {_load()}")
    print(f"logs: {logdir}{'' if args.keep else ' (removed at the end; --keep keeps them)'}")
    t0 = time.monotonic()
    try:
        rows = run_trials(cfg, only, logdir)
    finally:
        REAPER.cleanup()
    print()
    print(table(rows))
    print()
    for row in rows:
        for note in row.notes:
            print(f"- {row.trial}: {note}")
        for failure in row.failures:
            print(f"- {row.trial}: FAIL: {failure}")
    elapsed = time.monotonic() - t0
    print(f"\nload average at the end {_load()}")
    print(f"{sum(r.ok for r in rows)}/{len(rows)} trials ok in {elapsed / 60:.1f} min "
          f"({command})")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"machine": m, "started": started.isoformat(), "command": command,
             "elapsed_s": round(elapsed, 1), "rows": [row.__dict__ for row in rows]},
            indent=2, default=str))  # fmt: skip
    REAPER.cleanup(dirs=True)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
