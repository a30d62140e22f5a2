"""rtp.capture.events: field-by-field validation, type safety, rejections without IP addresses."""

from __future__ import annotations

import math
import re
from typing import Any

import orjson
import pytest

from rtp.capture import events as ev
from rtp.capture.enrich import country_of
from rtp.capture.events import Event, Rejection, from_dict, parse_json, scrub_ips

TS = 1_511_658_000
BASE: dict[str, Any] = {"v": 1, "type": "product_view", "user": "u1", "ts": TS, "item": "i1"}


_DROP = object()


def result(**fields: Any) -> Event | Rejection:
    """``BASE`` with ``fields`` (``_DROP`` deletes one) through :func:`from_dict`."""
    d = {**BASE, **fields}
    for k in [k for k, v in fields.items() if v is _DROP]:
        del d[k]
    return from_dict(d, "t:1", b"raw")


def reason(**fields: Any) -> str:
    r = result(**fields)
    assert isinstance(r, Rejection), r
    assert r.reason in ev.REASONS and r.detail and r.pos == "t:1"
    return r.reason


def accepted(**fields: Any) -> Event:
    e = result(**fields)
    assert isinstance(e, Event), e
    return e


# --- the version ----------------------------------------------------------------------------


def test_version_absent_or_exactly_one() -> None:
    assert accepted(v=_DROP).user == "u1"
    assert accepted(v=1).user == "u1"
    for bad in (2, 0, -1, 1.0, 1.5, True, False, "1", None, [1], {"v": 1}, 10**40, math.nan):
        assert reason(v=bad) == ev.UNSUPPORTED_VERSION, bad
    r = result(v=2)
    assert isinstance(r, Rejection) and r.user == "u1" and "2" in r.detail


def test_reason_codes_are_stable_and_unique() -> None:
    assert ev.UNSUPPORTED_VERSION == "unsupported_version"
    assert ev.INTERNAL_ERROR == "internal_error"
    assert len(set(ev.REASONS)) == len(ev.REASONS) == 10
    for code in ("invalid_json", "invalid_csv", "unknown_type", "missing_field", "invalid_field"):
        assert code in ev.REASONS
    for code in ("timestamp_out_of_range", "invalid_price", "oversized"):
        assert code in ev.REASONS


# --- type safety, field by field ------------------------------------------------------------

ODD: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    10**40,
    -(10**40),
    10**5000,  # str() refuses it
    2**63,
    1.5,
    math.nan,
    math.inf,
    -math.inf,
    "",
    "x" * 200,
    "\ud800",
    "u\x00",
    [],
    ["click"],
    {},
    {"type": "click"},
    [[[[]]]],
]


def deep(n: int) -> Any:
    x: Any = []
    for _ in range(n):
        x = [x]
    return x


@pytest.mark.parametrize(
    "field", ["v", "type", "user", "anon", "ts", "item", "category", "price", "query", "session"]
)
def test_any_value_in_a_top_level_field_gives_a_record(field: str) -> None:
    for value in [*ODD, deep(1_100), {1: "a"}, {("k",): "v"}]:
        r = result(**{field: value})
        assert isinstance(r, (Event, Rejection)), (field, value)
        if isinstance(r, Rejection):
            assert r.reason in ev.REASONS and r.reason != ev.INTERNAL_ERROR, (field, value, r)
            assert len(r.detail) < 300
            orjson.dumps(r.to_dict())  # a dead letter can always be written


@pytest.mark.parametrize("field", ["ua", "ip", "referrer", "channel", "utm", "country", "whatever"])
def test_any_value_in_a_context_field_gives_a_record(field: str) -> None:
    for value in [*ODD, deep(1_100), {"source": ["x"]}, {"source": 5}]:
        r = result(context={field: value})
        assert isinstance(r, (Event, Rejection)), (field, value)
        if isinstance(r, Rejection):
            assert r.reason == ev.INVALID_FIELD, (field, value, r)
        else:
            orjson.dumps(r.to_dict())  # an accepted event can always be written


def test_type_must_be_a_known_string() -> None:
    for bad in (["click"], {"click": 1}, ["product_view"], 1, True, None, "CLICK", "clicks"):
        assert reason(type=bad) == ev.UNKNOWN_TYPE, bad
    r = result(type=["click"])
    assert isinstance(r, Rejection) and r.user == "u1" and "array" in r.detail


def test_ids() -> None:
    assert accepted(user=42).user == "42" and accepted(user=-7).user == "-7"
    assert accepted(item=5).item == "5" and accepted(session=9).session == "9"
    assert accepted(user="x" * ev.MAX_ID_CHARS).user == "x" * ev.MAX_ID_CHARS
    for bad in (True, 1.0, math.nan, "", "x" * 129, 10**40, "a\ud800", [], {}):
        assert reason(user=bad) == ev.INVALID_FIELD, bad
        assert reason(item=bad) == ev.INVALID_FIELD, bad
        assert reason(category=bad) == ev.INVALID_FIELD, bad
    assert reason(user=_DROP) == ev.MISSING_FIELD
    anon = result(user=_DROP, anon="a1")
    assert isinstance(anon, Event) and anon.anonymous and anon.user == "a1"


def test_session_is_a_short_id_or_absent() -> None:
    assert accepted(session="s1").session == "s1"
    assert accepted(session=None).session is None
    assert accepted().session is None
    for bad in ("", "s" * 129, True, 1.5, [1], {"id": 1}, math.nan, 10**40):
        assert reason(session=bad) == ev.INVALID_FIELD, bad


def test_dwell_is_finite_seconds_within_a_day() -> None:
    assert accepted(dwell=0).dwell == 0.0
    assert accepted(dwell=12.5).dwell == 12.5
    assert accepted(dwell=86_400).dwell == 86_400.0
    for bad in (-1, -0.001, 86_400.5, 1e12, math.nan, math.inf, True, "12", [12], 10**40):
        assert reason(dwell=bad) == ev.INVALID_FIELD, bad


def test_ts_forms() -> None:
    assert accepted(ts=TS).ts == TS
    assert accepted(ts=TS * 1000).ts == TS
    assert accepted(ts="2017-11-26T01:00:00Z").ts == TS
    for bad in (math.nan, math.inf, -math.inf, 10**400, True, "soon", "2017-11-26T01:00:00", [TS]):
        assert reason(ts=bad) == ev.INVALID_FIELD, bad
    assert ev.parse_ts("9999-12-31T23:59:59-23:59") is not None  # far, but a time
    assert reason(ts=_DROP) == ev.MISSING_FIELD
    forget = from_dict({"type": "forget", "user": "u1"}, "t:1")
    assert isinstance(forget, Event) and forget.ts == 0.0


def test_price_and_query() -> None:
    assert accepted(price=0).price == 0.0 and accepted(price=10).price == 10.0
    for bad in (-1, math.nan, math.inf, 10**40, True, "5", [5], 1_000_001):
        assert reason(price=bad) == ev.INVALID_PRICE, bad
    e = accepted(type="search", item=_DROP, query="  Red  SHOES ")
    assert e.query == "red shoes"
    for bad in (["shoes"], 5, "x" * 257, "a\ud800"):
        assert reason(type="search", query=bad) == ev.INVALID_FIELD, bad
    assert reason(type="search", item=_DROP, query="   ") == ev.MISSING_FIELD


def test_context() -> None:
    e = accepted(context={"ua": "Mozilla", "channel": "web", "utm": {"source": "x", "id": 7}})
    assert (e.ua, e.channel, e.utm) == ("Mozilla", "web", {"source": "x", "id": "7"})
    assert accepted(context=None).ua is None
    assert accepted(context={"utm": {"source": None}}).utm == {}
    for bad in ([], "web", 1, True):
        assert reason(context=bad) == ev.INVALID_FIELD, bad
    for bad_ctx in (
        {"ua": ["Mozilla"]},
        {"ip": 81},
        {"referrer": {"url": "x"}},
        {"channel": 1},
        {"utm": "source=x"},
        {"utm": {"source": ["x"]}},
        {"utm": {"source": 1.5}},
        {"utm": {"source": True}},
        {"utm": {1: "x"}},
        {"ua": "a\ud800"},
    ):
        assert reason(context=bad_ctx) == ev.INVALID_FIELD, bad_ctx


def test_context_country() -> None:
    e = accepted(context={"country": "gb"})
    assert e.country == "GB"
    assert e.to_dict()["context"] == {"country": "GB"}
    back = parse_json(ev.dumps(e), "t:2")
    assert isinstance(back, Event) and back.country == "GB"
    for bad in ("GBR", "G", "", "1A", "G1", "ÄÖ", 44, ["GB"], True, {"cc": "GB"}):
        assert reason(context={"country": bad}) == ev.INVALID_FIELD, bad
    assert Event("click", "u", TS, country="FR").country == "FR"  # a keyword argument
    assert Event("click", "u", TS).country is None


def test_back_and_dnp_flags() -> None:
    assert accepted(back=True).back and not accepted(back=False).back
    assert accepted(dnp=True).dnp and not accepted(dnp=False).dnp and not accepted().dnp
    # a privacy flag is never guessed: anything but true/false is a rejection, with the user
    for bad in ("true", 1, "yes", [True], None, 0.0):
        for name in ("dnp", "back"):
            r = result(**{name: bad})
            assert isinstance(r, Rejection) and r.reason == ev.INVALID_FIELD, (name, bad)
            assert r.detail.startswith(f"{name} ") and r.user == "u1"


def test_from_dict_is_its_own_safety_net() -> None:
    class Exploding(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            if key == "item":
                raise RuntimeError("boom at 81.2.69.160")
            return super().get(key, default)

    r = from_dict(Exploding(BASE), "t:9", b'{"ip":"81.2.69.160"}')
    assert isinstance(r, Rejection) and r.reason == ev.INTERNAL_ERROR
    assert r.detail == "RuntimeError: boom at GB" and r.user == "u1" and r.pos == "t:9"
    assert r.raw == b'{"ip":"GB"}'


def test_internal_error_of_an_exception_that_cannot_be_printed() -> None:
    class Mute(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    r = ev.internal_error(Mute(), "p", b"x")
    assert (r.reason, r.detail, r.raw) == (ev.INTERNAL_ERROR, "Mute: <no message>", b"x")


def test_parse_json_wrong_shapes() -> None:
    for raw in (b"[1]", b'"click"', b"null", b"1", b"true"):
        r = parse_json(raw, "t:1")
        assert isinstance(r, Rejection) and r.reason == ev.INVALID_JSON, raw
    r = parse_json(b"[" * 2_000 + b"]" * 2_000, "t:1")
    assert isinstance(r, Rejection) and r.reason == ev.INVALID_JSON
    r = parse_json(b'{"type":"click","user":"u","ts":1e999}', "t:1")
    assert isinstance(r, Rejection) and r.reason == ev.INVALID_JSON  # orjson refuses infinity


# --- rejections: user, and no IP address ----------------------------------------------------


def test_rejection_user_is_optional_in_to_dict() -> None:
    r = Rejection(ev.INVALID_FIELD, "d", "p", b"x")
    assert r.user is None and "user" not in r.to_dict()
    r = Rejection(ev.INVALID_FIELD, "d", "p", b"x", user="u1")
    assert r.to_dict()["user"] == "u1"
    assert r != Rejection(ev.INVALID_FIELD, "d", "p", b"x")


def test_rejections_of_from_dict_carry_the_user_when_readable() -> None:
    for fields, user in (
        ({"item": []}, "u1"),
        ({"dwell": -1}, "u1"),
        ({"user": 7, "price": -1}, "7"),
        ({"user": _DROP, "anon": "a9", "session": {}}, "a9"),
        ({"user": ["u1"]}, None),
        ({"user": "x" * 129, "type": "teleport"}, None),
    ):
        r = result(**fields)
        assert isinstance(r, Rejection) and r.user == user, (fields, r, r.user)
    r = parse_json(b"{not json", "p")
    assert isinstance(r, Rejection) and r.user is None


GB = "81.2.69.160"
US6 = "2001:4860:4860::8888"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (f'{{"ip":"{GB}"}}', '{"ip":"GB"}'),
        (f"x-forwarded-for: {GB}, 8.8.8.8", "x-forwarded-for: GB, US"),
        (f"http://{GB}:8080/p", "http://GB:8080/p"),
        (f'"ip":"{US6}"', '"ip":"US"'),
        (f"[{US6}]:443", "[US]:443"),
        ("::ffff:81.2.69.160", "GB"),
        ("fe80::1%eth0", "-%eth0"),
        ("2001:db8::1.", "-."),  # documentation range: no country
        ("081.002.069.160", "GB"),  # leading zeros
        ("10.0.0.1", "-"),  # private: no country, still gone
        ("10.2.3.4.5", "-.5"),  # something longer: the address part goes
        ("a2001:4860:4860::8888", "-"),  # run into something: dropped whole
        ("1:2:3:4:5:6:7:8:9", "-"),
        ("2014-04-07T10:51:09.277Z", "2014-04-07T10:51:09.277Z"),  # a time is no address
        ("price 999.1.1.1 and 3.14", "price 999.1.1.1 and 3.14"),
        ("1511658000,1.5,2.5", "1511658000,1.5,2.5"),
        ("10:51:10.2.3.4", "10:51:-"),
    ],
)
def test_scrub_ips(raw: str, expected: str) -> None:
    assert scrub_ips(raw.encode()).decode() == expected
    assert Rejection(ev.INVALID_FIELD, raw, "p", raw).raw.decode() == expected
    assert Rejection(ev.INVALID_FIELD, raw, "p", raw).detail == expected


def test_country_codes_come_from_enrich() -> None:
    assert country_of(GB) == "GB" and country_of(US6) == "US"


IPV4 = re.compile(rb"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")


def test_rejection_raw_has_no_address_even_cut_or_shifted() -> None:
    # Replacements shrink the record: what follows moves towards the cut at RAW_PREFIX bytes.
    ips = ",".join(f"81.2.{i % 250}.{i % 200}" for i in range(1_500)).encode()
    r = Rejection(ev.INVALID_CSV, "d", "p", ips)
    assert len(r.raw) == ev.RAW_PREFIX and IPV4.search(r.raw) is None
    assert all(re.fullmatch(rb"[A-Z]{2}|-", cc) for cc in r.raw.split(b",")[:-1])
    for offset in range(0, 20):  # an address across the cut stays no address
        raw = b"x" * (ev.RAW_PREFIX - offset) + GB.encode() + b"y" * 50
        cut = Rejection(ev.INVALID_CSV, "d", "p", raw).raw
        assert b"81.2" not in cut and b"69.16" not in cut, offset


def test_rejection_raw_without_address_is_kept_as_is() -> None:
    raw = b'{"type":"teleport","user":"u","ts":1511658000.5,"item":"i:1:2"}'
    assert Rejection(ev.UNKNOWN_TYPE, "d", "p", raw).raw == raw
    long = b"z" * 5_000
    assert Rejection(ev.OVERSIZED, "d", "p", long).raw == b"z" * ev.RAW_PREFIX
    assert Rejection(ev.INVALID_CSV, "d", "p", "é\ud800").raw == "é?".encode()
    assert Rejection(ev.INVALID_CSV, "d", "p", bytearray(b"ab")).raw == b"ab"
    r = Rejection(ev.INVALID_CSV, "é \udc80 81.2.69.160", "p", b"")
    assert r.detail == "é \\udc80 GB"
    orjson.dumps(r.to_dict())


def test_every_rejection_path_of_from_dict_is_scrubbed() -> None:
    line = orjson.dumps({**BASE, "type": "teleport", "context": {"ip": GB, "ua": "x"}})
    r = parse_json(line, "p")
    assert isinstance(r, Rejection) and GB.encode() not in r.raw and b'"ip":"GB"' in r.raw
    r = parse_json(orjson.dumps({**BASE, "item": GB, "price": "x"}), "p")
    assert isinstance(r, Rejection) and GB not in r.detail + r.raw.decode()
    r = parse_json(orjson.dumps({**BASE, "ts": GB}), "p")
    assert isinstance(r, Rejection) and GB not in r.detail and "GB" in r.detail


def test_a_truncated_line_keeps_the_user_and_time_it_seems_to_hold() -> None:
    """So that forgetting the user deletes its dead letter too."""
    cut = b'{"v":1,"type":"product_view","user":"u9","ts":1511658000.5,"item":"x'
    r = parse_json(cut, "f:1")
    assert isinstance(r, Rejection) and r.reason == ev.INVALID_JSON
    assert (r.user, r.ts) == ("u9", 1511658000.5)
    r = parse_json(b'{"anon": 42, "ts": 1511658000123, "x"', "f:2")
    assert isinstance(r, Rejection) and (r.user, r.ts) == ("42", 1511658000.123)
    for raw in (b"301780,543546", b'{"user": ["u"]', b'{"user":"' + b"x" * 300):
        r = parse_json(raw, "f:3")
        assert isinstance(r, Rejection) and r.user is None and r.ts is None
