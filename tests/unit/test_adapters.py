"""rtp.capture.adapters: every format on the real samples, bad lines, and the invariants."""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pytest

from rtp.capture import events as ev
from rtp.capture.adapters import (
    ADAPTERS,
    Adapter,
    diginetica_key,
    get_adapter,
    parse_otto,
    recover,
    safe_parse,
    utc_time,
)
from rtp.capture.events import Event, Rejection
from rtp.errors import SourceError
from tests.conftest import shared_sample

NAMES = ("jsonl", "taobao", "otto", "rees46", "diginetica", "yoochoose", "retailrocket")


def parse_lines(
    adapter: Adapter, lines: list[bytes], name: str = "f"
) -> tuple[int, list[Event], list[Rejection]]:
    events: list[Event] = []
    rejections: list[Rejection] = []
    read = 0
    for lineno, line in enumerate(lines, 1):
        read += adapter.parse(line.rstrip(b"\r\n"), f"{name}:{lineno}", events, rejections)
    assert read == len(events) + len(rejections)
    return read, events, rejections


def parse_file(fmt: str, path: Path) -> tuple[int, list[Event], list[Rejection]]:
    return parse_lines(get_adapter(fmt), path.read_bytes().split(b"\n"), path.name)


def one(fmt: str, line: bytes) -> Event | Rejection:
    """The single record a line yields."""
    read, events, rejections = parse_lines(get_adapter(fmt), [line])
    assert read == 1, (fmt, line, read)
    return (events or rejections)[0]


def reason(fmt: str, line: bytes) -> str:
    r = one(fmt, line)
    assert isinstance(r, Rejection), (fmt, line, r)
    assert r.pos.split("#")[0] == "f:1" and r.raw and r.detail
    return str(r.reason)


def utc(text: str, fmt: str) -> float:
    return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc).timestamp()


# --- registry -------------------------------------------------------------------------------


def test_registry_names_and_unknown_format() -> None:
    assert sorted(ADAPTERS) == sorted(NAMES)
    for name in NAMES:
        assert get_adapter(name).name == name
    with pytest.raises(SourceError) as e:
        get_adapter("parquet")
    for name in NAMES:
        assert name in str(e.value)


def test_time_order_flags() -> None:
    ordered = {n for n, a in ADAPTERS.items() if a.time_ordered}
    assert ordered == {"jsonl", "taobao", "rees46"}


# --- the real samples -----------------------------------------------------------------------


def test_taobao_timeslice() -> None:
    path = shared_sample("taobao-userbehavior/UserBehavior_timeslice_96k.csv")
    rows = list(csv.reader(path.read_text().splitlines()))
    read, events, rejections = parse_file("taobao", path)
    # Adapters do not range-check times: the truncated last row is an event here (ts 15);
    # the source's clock rejects it (tests/flows/test_sources.py).
    assert read == len(rows) == 96_169 and not rejections
    mapping = {"pv": "product_view", "cart": "add_to_cart", "fav": "add_to_wishlist"}
    mapping["buy"] = "purchase"
    assert Counter(e.type for e in events) == Counter(mapping[r[3]] for r in rows)
    for e, r in zip(events, rows, strict=True):
        assert (e.user, e.item, e.category, e.ts) == (r[0], r[1], r[2], int(r[4]))
    assert events[-1].ts == 15 and events[-1].pos == f"{path.name}:96169"
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:-1], strict=False))  # time ordered


def test_taobao_head10k() -> None:
    path = shared_sample("taobao-userbehavior/UserBehavior_head10k.csv")
    read, events, rejections = parse_file("taobao", path)
    assert read == len(events) == len(path.read_bytes().splitlines()) and not rejections
    assert len({e.user for e in events}) == 114


def test_otto_fixture() -> None:
    path = shared_sample("otto-fixture/train.jsonl")
    sessions = [json.loads(line) for line in path.read_text().splitlines() if line]
    nested = [(s["session"], x) for s in sessions for x in s["events"]]
    read, events, rejections = parse_file("otto", path)
    assert read == len(events) == len(nested) and not rejections
    mapping = {"clicks": "product_view", "carts": "add_to_cart", "orders": "purchase"}
    for e, (sid, x) in zip(events, nested, strict=True):
        assert e.type == mapping[x["type"]]
        assert e.user == e.session == str(sid)
        assert e.item == str(x["aid"])
        assert e.ts == pytest.approx(x["ts"] / 1000.0)
    assert len({e.pos for e in events}) == len(events)  # one position per nested event
    assert events[0].pos == f"{path.name}:1#1"
    assert not ADAPTERS["otto"].time_ordered
    assert any(
        a.ts > b.ts for a, b in zip(events, events[1:], strict=False)
    )  # sessions overlap in time


def test_rees46_sample() -> None:
    path = shared_sample("rees46-sample/2019-Oct-sample.csv")
    rows = list(csv.DictReader(path.read_text().splitlines()))
    read, events, rejections = parse_file("rees46", path)
    assert read == len(events) == len(rows) and not rejections  # the header is not a record
    mapping = {"view": "product_view", "cart": "add_to_cart", "purchase": "purchase"}
    mapping["remove_from_cart"] = "remove_from_cart"
    for e, r in zip(events, rows, strict=True):
        assert e.type == mapping[r["event_type"]]
        assert (e.user, e.item, e.session) == (r["user_id"], r["product_id"], r["user_session"])
        assert e.category == (r["category_code"] or r["category_id"])
        assert e.price == float(r["price"])
        assert e.ts == utc(r["event_time"], "%Y-%m-%d %H:%M:%S UTC")
    assert all(a.ts <= b.ts for a, b in zip(events, events[1:], strict=False))


def test_diginetica_sample_and_sort_order() -> None:
    path = shared_sample("diginetica-sample/sample_train-item-views.csv")
    rows = list(csv.DictReader(path.read_text().splitlines(), delimiter=";"))
    read, events, rejections = parse_file("diginetica", path)
    assert read == len(events) == len(rows) and not rejections
    for e, r in zip(events, rows, strict=True):
        anonymous = r["user_id"] == "NA"
        assert e.user == ("s" + r["session_id"] if anonymous else r["user_id"])
        assert e.anonymous is anonymous and e.session == r["session_id"]
        assert e.ts == pytest.approx(utc(r["eventdate"], "%Y-%m-%d") + int(r["timeframe"]) / 1e3)
    assert sum(not e.anonymous for e in events) == sum(r["user_id"] != "NA" for r in rows)

    # Replay order: eventdate, then session, then timeframe (computed from the raw rows).
    expected = sorted(
        rows, key=lambda r: (r["eventdate"], int(r["session_id"]), int(r["timeframe"]))
    )
    got = sorted(events, key=diginetica_key)
    assert [(e.session, e.item) for e in got] == [(r["session_id"], r["item_id"]) for r in expected]
    assert got != events  # the file itself is not in that order
    assert ADAPTERS["diginetica"].sort_key is diginetica_key


# --- formats without samples ----------------------------------------------------------------


def test_yoochoose_variants() -> None:
    click = one("yoochoose", b"1,2014-04-07T10:51:09.277Z,214536502,0")
    assert isinstance(click, Event)
    assert (click.type, click.user, click.session, click.item) == (
        "product_view",
        "1",
        "1",
        "214536502",
    )
    assert click.category is None
    assert click.ts == pytest.approx(utc("2014-04-07 10:51:09", "%Y-%m-%d %H:%M:%S") + 0.277)
    special = one("yoochoose", b"2,2014-04-07T13:56:37.614Z,214662742,S")
    assert isinstance(special, Event) and special.category == "S"

    buy = one("yoochoose", b"420374,2014-04-06T18:44:58.314Z,214537888,12462,1")
    assert isinstance(buy, Event)
    assert (buy.type, buy.user, buy.item, buy.price) == ("purchase", "420374", "214537888", 12462.0)
    unknown_price = one("yoochoose", b"420374,2014-04-06T18:44:58.314Z,214537850,0,0")
    assert isinstance(unknown_price, Event) and unknown_price.price is None

    read, events, rejections = parse_lines(
        get_adapter("yoochoose"),
        [b"SessionId\tItemId\tTime", b"1\t214536502\t1396839069.277", b"1\t214536500\t1396839249"],
    )
    assert read == 2 and not rejections
    assert [(e.user, e.item, e.ts) for e in events] == [
        ("1", "214536502", 1396839069.277),
        ("1", "214536500", 1396839249.0),
    ]
    assert events[0].pos == "f:2"


def test_retailrocket() -> None:
    read, events, rejections = parse_lines(
        get_adapter("retailrocket"),
        [
            b"timestamp,visitorid,event,itemid,transactionid",
            b"1433221332117,257597,view,355908,",
            b"1433224214164,992329,addtocart,248676,",
            b"1433221999827,111016,transaction,318965,4000",
        ],
    )
    assert read == 3 and not rejections
    assert [(e.type, e.user, e.item) for e in events] == [
        ("product_view", "257597", "355908"),
        ("add_to_cart", "992329", "248676"),
        ("purchase", "111016", "318965"),
    ]
    assert events[0].ts == pytest.approx(1433221332.117)


def test_jsonl_uses_the_schema() -> None:
    e = one("jsonl", b'{"v":1,"type":"product_view","user":"u1","ts":1511658000,"item":"i1"}')
    assert isinstance(e, Event) and (e.user, e.item, e.ts) == ("u1", "i1", 1511658000.0)
    assert reason("jsonl", b"{not json") == ev.INVALID_JSON
    assert reason("jsonl", b'{"type":"teleport","user":"u","ts":1511658000}') == ev.UNKNOWN_TYPE


# --- every rejection reason -----------------------------------------------------------------

LONG = b"9" * (ev.MAX_ID_CHARS + 1)
HUGE = b"1," * (ev.MAX_RECORD_BYTES // 2 + 1)

REJECTIONS = [
    ("taobao", b"1,2,3,pv", ev.INVALID_CSV),
    ("taobao", b"1,2,3,pv,1511658000,extra", ev.INVALID_CSV),
    ("taobao", b"1,2,3,\xff,1511658000", ev.INVALID_CSV),
    ("taobao", b"1,2,3,like,1511658000", ev.UNKNOWN_TYPE),
    ("taobao", b"1,2,3,pv,15116580.5", ev.INVALID_FIELD),
    ("taobao", b"1,2,3,pv,", ev.INVALID_FIELD),
    ("taobao", b",2,3,pv,1511658000", ev.MISSING_FIELD),
    ("taobao", b"1,,3,pv,1511658000", ev.MISSING_FIELD),
    ("taobao", LONG + b",2,3,pv,1511658000", ev.INVALID_FIELD),
    ("taobao", HUGE, ev.OVERSIZED),
    ("taobao", b"1,2,3,pv," + b"9" * 200, ev.INVALID_FIELD),  # beyond any float
    ("taobao", b"1,2,3,pv,nan", ev.INVALID_FIELD),
    ("otto", b'{"session": 1, "events": [', ev.INVALID_JSON),
    ("otto", b"[1, 2]", ev.INVALID_JSON),
    (
        "otto",
        b'{"session": 1, "events": [{"aid": 5, "ts": 1659304800025, "type": "views"}]}',
        ev.UNKNOWN_TYPE,
    ),
    (
        "otto",
        b'{"session": 1, "events": [{"ts": 1659304800025, "type": "clicks"}]}',
        ev.MISSING_FIELD,
    ),
    (
        "otto",
        b'{"session": 1, "events": [{"aid": 5, "ts": "soon", "type": "clicks"}]}',
        ev.INVALID_FIELD,
    ),
    (
        "otto",
        b'{"session": null, "events": [{"aid": 5, "ts": 1659304800025, "type": "clicks"}]}',
        ev.INVALID_FIELD,
    ),
    ("otto", b'{"session": 1, "events": [7]}', ev.INVALID_JSON),
    (
        "otto",
        b'{"session": 1, "events": [{"aid": 5, "ts": 1659304800025, "type": ["clicks"]}]}',
        ev.UNKNOWN_TYPE,
    ),
    (
        "otto",
        b'{"session": 1, "events": [{"aid": 5, "ts": 1659304800025, "type": {"a": 1}}]}',
        ev.UNKNOWN_TYPE,
    ),
    (
        "otto",
        b'{"session": 1, "events": [{"aid": 5, "ts": true, "type": "clicks"}]}',
        ev.INVALID_FIELD,
    ),
    (
        "otto",
        b'{"session": 1, "events": [{"aid": [5], "ts": 1659304800025, "type": "clicks"}]}',
        ev.INVALID_FIELD,
    ),
    (
        "otto",
        b'{"session": 1, "events": [{"aid": 5, "ts": 1659304800025, "type": '
        + b"[" * 300
        + b"]" * 300
        + b"}]}",  # too deep for orjson to write back: the rejection says so instead
        ev.UNKNOWN_TYPE,
    ),
    ("otto", b'{"session": [1], "events": 5}', ev.INVALID_JSON),
    ("rees46", b"2019-10-01 00:00:00 UTC,view,1,2,,brand,1.0,3", ev.INVALID_CSV),
    ("rees46", b"2019-10-01 00:00:00 UTC,like,1,2,,brand,1.0,3,s", ev.UNKNOWN_TYPE),
    ("rees46", b"2019-10-01 00:00:00,view,1,2,,brand,1.0,3,s", ev.INVALID_FIELD),  # no zone
    ("rees46", b"2019-13-01 00:00:00 UTC,view,1,2,,brand,1.0,3,s", ev.INVALID_FIELD),
    ("rees46", b"2019-10-01 00:00:00 UTC,view,1,2,,brand,cheap,3,s", ev.INVALID_PRICE),
    ("rees46", b"2019-10-01 00:00:00 UTC,view,1,2,,brand,-5,3,s", ev.INVALID_PRICE),
    ("rees46", b"2019-10-01 00:00:00 UTC,view,1,2,,brand,nan,3,s", ev.INVALID_PRICE),
    ("rees46", b"2019-10-01 00:00:00 UTC,view,1,2,,brand,1e999,3,s", ev.INVALID_PRICE),
    ("rees46", "2019-10-01 00:00:00.²Z,view,1,2,,b,1.0,3,s".encode(), ev.INVALID_FIELD),
    ("rees46", b'2019-10-01 00:00:00 UTC,view,1,2,a\rb,"brand",1.0,3,s', ev.INVALID_CSV),
    ("rees46", b"2019-10-01 00:00:00 UTC,view,1,2,,brand,1.0,,s", ev.MISSING_FIELD),
    ("rees46", b"2019-10-01 00:00:00 UTC,view,," + b"2,,brand,1.0,3,s", ev.MISSING_FIELD),
    ("diginetica", b"1;NA;81766;526309", ev.INVALID_CSV),
    ("diginetica", b"x;NA;81766;526309;2016-05-09", ev.INVALID_FIELD),
    ("diginetica", b"1;NA;81766;soon;2016-05-09", ev.INVALID_FIELD),
    ("diginetica", b"1;NA;81766;526309;09.05.2016", ev.INVALID_FIELD),
    ("diginetica", b"1;NA;;526309;2016-05-09", ev.MISSING_FIELD),
    ("diginetica", b"9" * 200 + b";NA;81766;526309;2016-05-09", ev.INVALID_FIELD),
    ("diginetica", b"1;NA;81766;" + b"9" * 400 + b";2016-05-09", ev.INVALID_FIELD),
    ("yoochoose", b"1,2014-04-07T10:51:09.277Z,214536502", ev.INVALID_CSV),
    ("yoochoose", b"1\t214536502", ev.INVALID_CSV),
    ("yoochoose", b"1,yesterday,214536502,0", ev.INVALID_FIELD),
    ("yoochoose", b"1\t214536502\tnoon", ev.INVALID_FIELD),
    ("yoochoose", b"1\t214536502\tnan", ev.INVALID_FIELD),
    ("yoochoose", b"1\t214536502\t-inf", ev.INVALID_FIELD),
    ("yoochoose", b"1\t214536502\t1e999", ev.INVALID_FIELD),
    ("yoochoose", b"1,2014-04-06T18:44:58.314Z,214537888,lots,1", ev.INVALID_PRICE),
    ("yoochoose", b",2014-04-07T10:51:09.277Z,214536502,0", ev.MISSING_FIELD),
    ("retailrocket", b"1433221332117,257597,view", ev.INVALID_CSV),
    ("retailrocket", b"1433221332117,257597,like,355908,", ev.UNKNOWN_TYPE),
    ("retailrocket", b"2015-06-02,257597,view,355908,", ev.INVALID_FIELD),
    ("retailrocket", b"1433221332117,,view,355908,", ev.MISSING_FIELD),
    ("retailrocket", b"9" * 400 + b",257597,view,355908,", ev.INVALID_FIELD),  # OverflowError
    ("jsonl", b'{"type":"product_view","user":"u","ts":1511658000}', ev.MISSING_FIELD),
    (
        "jsonl",
        b'{"type":"product_view","user":"u","ts":1511658000,"item":"i","price":-1}',
        ev.INVALID_PRICE,
    ),
    ("jsonl", b'{"type":"product_view","user":"u","ts":"soon","item":"i"}', ev.INVALID_FIELD),
    ("jsonl", b'{"pad":"' + b"x" * ev.MAX_RECORD_BYTES + b'"}', ev.OVERSIZED),
    ("jsonl", b'{"type":["click"],"user":"u","ts":1511658000}', ev.UNKNOWN_TYPE),
    ("jsonl", b'{"v":2,"type":"click","user":"u","ts":1511658000}', ev.UNSUPPORTED_VERSION),
    ("jsonl", b'{"type":"click","user":"u","ts":1511658000,"session":[1]}', ev.INVALID_FIELD),
    ("jsonl", b'{"type":"click","user":"u","ts":1511658000,"dwell":1e12}', ev.INVALID_FIELD),
]


@pytest.mark.parametrize(("fmt", "line", "expected"), REJECTIONS)
def test_rejection_reasons(fmt: str, line: bytes, expected: str) -> None:
    assert reason(fmt, line) == expected


def test_every_reason_but_the_clock_and_the_safety_net_is_covered() -> None:
    covered = {r for _, _, r in REJECTIONS}
    # the source's clock's, and the safety net's (tests below)
    assert covered == set(ev.REASONS) - {ev.TIMESTAMP_OUT_OF_RANGE, ev.INTERNAL_ERROR}
    assert {f for f, _, _ in REJECTIONS} == set(NAMES)


def test_otto_line_with_good_and_bad_events_counts_each() -> None:
    line = (
        b'{"session": 9, "events": [{"aid": 1, "ts": 1659304800000, "type": "clicks"},'
        b' {"aid": 2, "ts": 1659304801000, "type": "teleports"},'
        b' {"aid": "a3", "ts": 1659304802000, "type": "orders"}]}'
    )
    read, events, rejections = parse_lines(get_adapter("otto"), [line])
    assert read == 3
    assert [(e.item, e.type, e.pos) for e in events] == [
        ("1", "product_view", "f:1#1"),
        ("a3", "purchase", "f:1#3"),
    ]
    assert [(r.reason, r.pos) for r in rejections] == [(ev.UNKNOWN_TYPE, "f:1#2")]
    assert b"teleports" in rejections[0].raw


@pytest.mark.parametrize("fmt", NAMES)
def test_headers_and_blank_lines_are_not_records(fmt: str) -> None:
    headers = {
        "taobao": b"user_id,item_id,category_id,behavior,timestamp",
        "rees46": b"event_time,event_type,product_id,category_id,category_code,brand,price,"
        b"user_id,user_session",
        "diginetica": b"session_id;user_id;item_id;timeframe;eventdate",
        "yoochoose": b"SessionId\tItemId\tTime",
        "retailrocket": b"timestamp,visitorid,event,itemid,transactionid",
    }
    lines = [b"", b"   ", b"\r"] + ([headers[fmt]] if fmt in headers else [])
    assert parse_lines(get_adapter(fmt), lines) == (0, [], [])


def test_quoted_rees46_fields() -> None:
    e = one("rees46", b'2019-10-01 00:00:00 UTC,view,1,2,"a.b",brand,"1,5",3,s')
    assert isinstance(e, Rejection) and e.reason == ev.INVALID_PRICE  # "1,5" is not a number
    e = one("rees46", b'2019-10-01 00:00:00 UTC,view,1,2,"a.b",brand,"2.5",3,s')
    assert isinstance(e, Event) and (e.category, e.price) == ("a.b", 2.5)


def test_utc_time_matches_the_schema_parser() -> None:
    for text in (
        "2019-10-01 00:00:00 UTC",
        "2019-10-01 23:59:59 UTC",
        "2014-04-07T10:51:09.277Z",
        "2014-04-07T10:51:09Z",
        "2016-02-29T12:00:00+00:00",
        "2016-02-29T12:00:00+02:00",  # not UTC: the slow path
    ):
        assert utc_time(text) == pytest.approx(ev.parse_ts(text)), text
    for bad in ("2019-10-01 00:00:00", "2019-10-01 25:00:00 UTC", "2019-02-30 00:00:00 UTC", ""):
        assert utc_time(bad) is None, bad


@pytest.mark.parametrize("fmt", NAMES)
def test_parse_never_raises_and_counts_add_up(fmt: str) -> None:
    """Mutated real-looking lines: every record is an event or a rejection, nothing raises."""
    seeds = {
        "jsonl": b'{"v":1,"type":"purchase","user":"u1","ts":1511658000,"item":"i1","price":5}',
        "taobao": b"543462,1715,1464116,pv,1511658000",
        "otto": b'{"session":0,"events":[{"aid":1517085,"ts":1659304800025,"type":"clicks"}]}',
        "rees46": b"2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,"
        b"541312140,72d76fde-8bb3-4e00-8c23-a032dfed738c",
        "diginetica": b"1;NA;81766;526309;2016-05-09",
        "yoochoose": b"420374,2014-04-06T18:44:58.314Z,214537888,12462,1",
        "retailrocket": b"1433221332117,257597,view,355908,",
    }
    rng = random.Random(7)
    alphabet = b',;\t"{}[]:.- 0123456789abcdefTZ\xff\\'
    lines = []
    for _ in range(3_000):
        line = bytearray(seeds[fmt])
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(line) + 1)
            op = rng.randrange(3)
            if op == 0 and line:
                del line[i : i + rng.randint(1, 3)]
            elif op == 1:
                line[i:i] = bytes([rng.choice(alphabet)])
            elif line:
                line[min(i, len(line) - 1)] = rng.choice(alphabet)
        lines.append(bytes(line))
    read, events, rejections = parse_lines(get_adapter(fmt), lines)  # asserts the invariant
    assert read >= 2_000 and rejections  # most lines are records, and some are bad ones
    for e in events:
        assert e.type in ev.EVENT_TYPES and e.user and isinstance(e.ts, (int, float))
    for r in rejections:
        assert r.reason in ev.REASONS


# --- users on rejections --------------------------------------------------------------------

USERS = [
    ("taobao", b"42,2,3,like,1511658000", "42"),
    ("taobao", b"42,2,3,pv,soon", "42"),
    ("taobao", b"42,,3,pv,1511658000", "42"),
    ("taobao", b"42,2,3,pv,1511658000,extra", "42"),
    ("taobao", b"42", None),
    ("taobao", LONG + b",2,3,pv,1511658000", None),  # the user id itself is bad
    ("otto", b'{"session": 7, "events": [{"aid": 1, "ts": 1659304800025, "type": "x"}]}', "7"),
    ("otto", b'{"session": "s7", "events": [{"aid": 1, "ts": "x", "type": "clicks"}]}', "s7"),
    ("otto", b'{"session": 7, "events": {}}', "7"),
    ("otto", b'{"session": [7], "events": [{"aid": 1, "ts": 1, "type": "clicks"}]}', None),
    ("rees46", b"2019-10-01 00:00:00 UTC,like,1,2,,brand,1.0,42,s", "42"),
    ("rees46", b"2019-10-01 00:00:00 UTC,view,1,2,,brand,cheap,42,s", "42"),
    ("rees46", b"2019-10-01 00:00:00,view,1,2,,brand,1.0,42,s", "42"),
    ("diginetica", b"1;42;;526309;2016-05-09", "42"),
    ("diginetica", b"1;NA;81766;526309;09.05.2016", "s1"),
    ("diginetica", b"x;42;81766;526309;2016-05-09", "42"),
    ("yoochoose", b"42,yesterday,214536502,0", "42"),
    ("yoochoose", b"42,2014-04-06T18:44:58.314Z,214537888,lots,1", "42"),
    ("yoochoose", b"42\t214536502\tnan", "42"),
    ("retailrocket", b"1433221332117,42,like,355908,", "42"),
    ("retailrocket", b"soon,42,view,355908,", "42"),
    ("jsonl", b'{"type":"teleport","user":"42","ts":1511658000}', "42"),
    ("jsonl", b'{"type":"click","anon":7,"ts":"soon"}', "7"),
    ("jsonl", b"{not json", None),
]


@pytest.mark.parametrize(("fmt", "line", "user"), USERS)
def test_rejections_carry_the_user_when_it_could_be_read(
    fmt: str, line: bytes, user: str | None
) -> None:
    r = one(fmt, line)
    assert isinstance(r, Rejection), r
    assert r.user == user
    assert ("user" in r.to_dict()) is (user is not None)


def test_every_format_has_a_user_on_some_rejection() -> None:
    assert {f for f, _, u in USERS if u is not None} == set(NAMES)


# --- no IP address in a rejection -----------------------------------------------------------


def test_adapter_rejections_hold_no_ip_address() -> None:
    ip = b"81.2.69.160"
    lines = {
        "jsonl": b'{"type":"teleport","user":"u","ts":1511658000,"context":{"ip":"' + ip + b'"}}',
        "otto": b'{"session":1,"events":[{"aid":1,"ts":1659304800025,"type":"x","ip":"'
        + ip
        + b'"}]}',
        "taobao": ip + b",2,3,like,1511658000",
        "rees46": b"2019-10-01 00:00:00 UTC,like,1,2,,brand,1.0," + ip + b",s",
        "diginetica": b"1;" + ip + b";;526309;2016-05-09",
        "yoochoose": b"1,2014-04-07T10:51:09.277Z," + ip,
        "retailrocket": b"1433221332117," + ip + b",like,355908,",
    }
    for fmt, line in lines.items():
        r = one(fmt, line)
        assert isinstance(r, Rejection), (fmt, r)
        assert ip not in r.raw and b"GB" in r.raw, (fmt, r.raw)
        assert ip.decode() not in r.detail, (fmt, r.detail)


# --- the safety net -------------------------------------------------------------------------


def parse_otto_with_a_bug(
    line: bytes, pos: str, events: list[Event], rejections: list[Rejection]
) -> int:
    """A parser with a bug: it appends the line's records, then raises on an ``ip=`` in it."""
    read = parse_otto(line, pos, events, rejections)
    if b"ip=" in line:
        address = line.split(b"ip=")[1].split(b'"')[0].decode()
        raise ValueError(f"cannot route {address}")
    return read


def test_safe_parse_passes_through_when_nothing_raises() -> None:
    line = b"543462,1715,1464116,pv,1511658000"
    events: list[Event] = []
    rejections: list[Rejection] = []
    assert safe_parse(get_adapter("taobao").parse, line, "f:1", events, rejections) == 1
    assert len(events) == 1 and not rejections and events[0].user == "543462"
    assert safe_parse(get_adapter("taobao").parse, b"", "f:2", events, rejections) == 0
    assert safe_parse(get_adapter("taobao").parse, b"1,2", "f:3", events, rejections) == 1
    assert len(events) == 1 and [r.reason for r in rejections] == [ev.INVALID_CSV]


OTTO_OK = b'{"session": 1, "events": [{"aid": 1, "ts": 1659304800000, "type": "clicks"}]}'
OTTO_BUG = (
    b'{"session": 9, "events": [{"aid": 1, "ts": 1659304800000, "type": "clicks"},'
    b' {"aid": 2, "ts": 1659304801000, "type": "teleports"}], "x": "ip=81.2.69.160"}'
)


def test_safe_parse_turns_an_exception_into_one_rejection() -> None:
    events = [Event("click", "earlier", 1.0)]
    rejections = [Rejection(ev.INVALID_CSV, "earlier", "f:0")]
    read = safe_parse(parse_otto_with_a_bug, OTTO_BUG, "f:1", events, rejections)
    assert read == 1  # the line is one record: its partial results are taken back
    assert [e.user for e in events] == ["earlier"]
    assert len(rejections) == 2
    r = rejections[1]
    assert (r.reason, r.pos, r.detail) == (ev.INTERNAL_ERROR, "f:1", "ValueError: cannot route GB")
    assert b"81.2.69.160" not in r.raw and b"ip=GB" in r.raw


def test_safe_parse_keeps_the_counts_over_a_file() -> None:
    two = OTTO_OK.replace(b"}]}", b'}, {"aid": 2, "ts": 1659304800001, "type": "carts"}]}')
    events: list[Event] = []
    rejections: list[Rejection] = []
    read = sum(
        safe_parse(parse_otto_with_a_bug, line, f"f:{n}", events, rejections)
        for n, line in enumerate([OTTO_OK, OTTO_BUG, two], 1)
    )
    assert read == 1 + 1 + 2 == len(events) + len(rejections)
    assert [e.pos for e in events] == ["f:1#1", "f:3#1", "f:3#2"]
    assert [(r.reason, r.pos) for r in rejections] == [(ev.INTERNAL_ERROR, "f:2")]


def test_recover_is_safe_parse_inlined() -> None:
    events: list[Event] = []
    rejections: list[Rejection] = []
    read = 0
    for n, line in enumerate([OTTO_OK, OTTO_BUG], 1):
        n_events, n_rejections = len(events), len(rejections)
        try:
            read += parse_otto_with_a_bug(line, f"f:{n}", events, rejections)
        except Exception as e:
            read += recover(e, line, f"f:{n}", events, rejections, n_events, n_rejections)
    assert read == 2 == len(events) + len(rejections)
    assert (
        rejections[0].to_dict()
        == Rejection(ev.INTERNAL_ERROR, "ValueError: cannot route GB", "f:2", OTTO_BUG).to_dict()
    )
