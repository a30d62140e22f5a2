"""rtp.tools.synth: a seeded, time-ordered, schema-valid and realistic synthetic clickstream."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import iptocc
import orjson
import pytest

from rtp.capture import events as ev
from rtp.capture.enrich import Enricher
from rtp.tools.synth import (
    COUNTRIES,
    DEFAULT_START_TS,
    SITE_HOST,
    bad_lines,
    generate,
    generate_records,
    main,
    write_jsonl,
)


@pytest.fixture(scope="module")
def stream() -> list[ev.Event]:
    return list(generate(400, seed=11))


def test_same_seed_same_stream_other_seed_other_stream() -> None:
    a = [orjson.dumps(r) for r in generate_records(60, seed=5)]
    b = [orjson.dumps(r) for r in generate_records(60, seed=5)]
    c = [orjson.dumps(r) for r in generate_records(60, seed=6)]
    assert a == b
    assert a != c


def test_events_match_records() -> None:
    records = list(generate_records(30, seed=2))
    events = list(generate(30, seed=2))
    assert [e.to_dict() for e in events] == records


def test_time_order_and_span(stream: list[ev.Event]) -> None:
    ts = [e.ts for e in stream]
    assert ts == sorted(ts)
    assert ts[0] >= DEFAULT_START_TS and ts[-1] < DEFAULT_START_TS + 9 * 86_400


def test_counts_and_types(stream: list[ev.Event]) -> None:
    users = {e.user for e in stream}
    assert 380 <= len(users) <= 400
    assert 12 <= len(stream) / len(users) <= 30  # ~20 events per user
    types = Counter(e.type for e in stream)
    for t in (ev.PRODUCT_VIEW, ev.PAGE_VIEW, ev.SEARCH, ev.ADD_TO_CART, ev.REMOVE_FROM_CART,
              ev.PURCHASE, ev.HELP_VIEW, ev.DO_NOT_PERSONALIZE):  # fmt: skip
        assert types[t] > 0, t
    assert set(types) <= ev.EVENT_TYPES
    assert types[ev.PRODUCT_VIEW] > types[ev.ADD_TO_CART] > types[ev.PURCHASE]
    assert all(e.price is not None and e.price > 0 for e in stream if e.type == ev.PURCHASE)
    assert all(e.dwell is not None and e.dwell > 0 for e in stream if e.type == ev.HELP_VIEW)
    assert any(e.back for e in stream)


def test_every_line_is_schema_valid(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    records = list(generate_records(200, seed=3))
    assert write_jsonl(records, path) == len(records)
    lines = path.read_bytes().splitlines()
    assert len(lines) == len(records)
    for n, line in enumerate(lines):
        e = ev.parse_json(line, f"s.jsonl:{n + 1}")
        assert isinstance(e, ev.Event), e
        assert e.to_dict() == records[n]


def test_write_jsonl_takes_events(tmp_path: Path) -> None:
    events = list(generate(20, seed=4))
    path = tmp_path / "e.jsonl"
    assert write_jsonl(events, path) == len(events)
    back = [ev.parse_json(line, "x") for line in path.read_bytes().splitlines()]
    assert [e.to_dict() for e in back if isinstance(e, ev.Event)] == [e.to_dict() for e in events]


def test_behaviour_is_realistic(stream: list[ev.Event]) -> None:
    by_session: dict[str | None, list[ev.Event]] = defaultdict(list)
    for e in stream:
        by_session[e.session].append(e)
    # category locality: consecutive product views of a visit mostly stay in one category
    same = pairs = 0
    for es in by_session.values():
        views = [e for e in es if e.type == ev.PRODUCT_VIEW]
        for a, b in zip(views, views[1:], strict=False):
            pairs += 1
            same += a.category == b.category
    assert same / pairs > 0.5
    # popular-item skew: the top 1% of items take a large share of views
    item_views = Counter(e.item for e in stream if e.type == ev.PRODUCT_VIEW)
    top = sum(n for _, n in item_views.most_common(max(1, len(item_views) // 100)))
    assert top / sum(item_views.values()) > 0.08
    # frustration: a visit with the same search three times or more
    assert any(
        max(Counter(e.query for e in es if e.type == ev.SEARCH).values(), default=0) >= 3
        for es in by_session.values()
    )
    # abandoned carts across visits: carted in one visit, bought in a later one
    carted: dict[tuple[str, str | None], str | None] = {}
    later = 0
    for e in stream:
        if e.type == ev.ADD_TO_CART:
            carted.setdefault((e.user, e.item), e.session)
        elif e.type == ev.PURCHASE and carted.get((e.user, e.item), e.session) != e.session:
            later += 1
    assert later > 0
    # every user's price level shows: spread of purchase prices is wide
    prices = sorted(e.price for e in stream if e.type == ev.PURCHASE and e.price is not None)
    assert prices[-1] > 10 * prices[0]


def test_context_covers_devices_countries_and_referrals(stream: list[ev.Event]) -> None:
    enricher = Enricher(site_hosts=(SITE_HOST,))
    firsts = [e for e in stream if e.ua is not None]
    assert firsts and all(e.ip is not None for e in firsts)
    ips = {e.ip for e in firsts}
    enricher.enrich_all(firsts)
    assert {e.device for e in firsts} == {"desktop", "mobile", "tablet"}
    assert {e.referral for e in firsts} == {"search", "social", "email", "paid", "direct",
                                            "internal"}  # fmt: skip
    assert len({e.country for e in firsts}) >= 8
    assert all(e.ip is None for e in firsts)  # enrichment drops the raw IP
    # the IP table is honest: every address is in the country it is listed under
    for cc, _, _, addresses in COUNTRIES:
        for ip in addresses:
            assert iptocc.country_code(ip) == cc, ip
    assert ips <= {ip for c in COUNTRIES for ip in c[3]}


def test_without_context() -> None:
    assert all(e.ua is None and e.ip is None and e.referrer is None
               for e in generate(30, seed=1, with_context=False))  # fmt: skip


def test_bad_lines_are_rejected_with_their_reason() -> None:
    ts = DEFAULT_START_TS + 86_400
    bad = list(bad_lines(ts))
    assert {reason for reason, _ in bad} >= {
        ev.INVALID_JSON, ev.UNKNOWN_TYPE, ev.MISSING_FIELD, ev.INVALID_PRICE, ev.OVERSIZED,
        ev.TIMESTAMP_OUT_OF_RANGE,
    }  # fmt: skip
    clock = ev.StreamClock()
    assert clock.check(ts) is None  # the stream so far
    for reason, raw in bad:
        got = ev.parse_json(raw, "bad")
        if isinstance(got, ev.Event):  # only the source's clock can tell
            assert reason == ev.TIMESTAMP_OUT_OF_RANGE
            assert clock.check(got.ts) is not None
        else:
            assert got.reason == reason, (raw[:80], got)


def test_cli_writes_the_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli.jsonl"
    assert main(["--users", "40", "--out", str(out), "--seed", "9", "--bad-lines"]) == 0
    lines = out.read_bytes().splitlines()
    n_bad = len(list(bad_lines()))
    assert [orjson.loads(x) for x in lines[:-n_bad]] == list(generate_records(40, seed=9))
    assert "events of 40 users" in capsys.readouterr().err


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        list(generate_records(10, sessions_per_user=0.5))
