"""Property-based fuzzing (Hypothesis) of the schema-v1 parser and of every adapter.

Whatever the input, each parse appends exactly ``read`` records, each an ``Event`` or a
``Rejection`` with a known reason (never ``internal_error``: the safety net must not be what
holds), nothing raises, accepted events can be written back, and no rejection holds an IP
address that was planted in the input. Deterministic (``derandomize``, no example database)
and bounded in time, for CI.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtp.capture import events as ev
from rtp.capture.adapters import ADAPTERS
from rtp.capture.events import Event, Rejection, from_dict, parse_json

FUZZ = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

IPS = ["81.2.69.160", "8.8.8.8", "10.0.0.1", "2001:4860:4860::8888", "::ffff:81.2.69.160"]

# --- strategies -----------------------------------------------------------------------------

any_text = st.text(st.characters(exclude_categories=()), max_size=30)  # surrogates too
with_ip = st.builds(lambda a, ip, b: f"{a} {ip} {b}", any_text, st.sampled_from(IPS), any_text)
texts = st.one_of(
    any_text,
    with_ip,
    st.sampled_from(IPS),
    st.sampled_from(sorted(ev.EVENT_TYPES) + ["", "pv", "clicks", "NaN", "1e999", "\ud800"]),
)
specials = st.sampled_from(
    [math.nan, math.inf, -math.inf, 10**400, -(10**30), 2**64, 1e300, -0.0, True]
    + ["", "x\udc80y", [], {}]
)
scalars = st.one_of(
    specials,
    st.none(),
    st.booleans(),
    st.integers(),  # unbounded: huge integers too
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1_511_658_000, 1_511_658_000_000, 0, 1, -1, 86_400, 1e300]),
    texts,
)
keys = st.one_of(st.sampled_from(["ua", "ip", "utm", "source", "x"]), st.text(max_size=6))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=10,
)
odd_keys = st.one_of(keys, st.integers(), st.none())  # a Python caller's dict
python_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(odd_keys, children, max_size=4)
    ),
    max_leaves=10,
)

VALID: dict[str, Any] = {
    "v": 1,
    "type": "product_view",
    "user": "u1",
    "ts": 1_511_658_000,
    "item": "i1",
    "category": "shoes",
    "price": 59.9,
    "query": "red shoes",
    "session": "s1",
    "back": False,
    "dwell": 12.0,
    "dnp": False,
    "context": {
        "ua": "Mozilla/5.0",
        "ip": "81.2.69.160",
        "referrer": "https://www.google.com/",
        "utm": {"source": "newsletter", "medium": "email"},
        "channel": "web",
        "country": "GB",
    },
}
FIELDS = [*VALID, "anon"]
CONTEXT_FIELDS = [*VALID["context"], "whatever"]


@st.composite
def event_dicts(draw: st.DrawFn, values: st.SearchStrategy[Any] = json_values) -> Any:
    """A schema-v1 event with a few fields (top level or context) replaced or dropped."""
    d: dict[Any, Any] = json.loads(json.dumps(VALID))
    d["type"] = draw(st.sampled_from(sorted(ev.EVENT_TYPES)))
    values = st.one_of(specials, scalars, values)  # mostly scalars: they get further
    for name in draw(st.permutations(FIELDS))[: draw(st.integers(1, 3))]:
        if draw(st.booleans()) and draw(st.booleans()):
            d.pop(name, None)
        else:
            d[name] = draw(values)
    ctx = d.get("context")
    if isinstance(ctx, dict):
        for name in draw(st.permutations(CONTEXT_FIELDS))[: draw(st.integers(0, 2))]:
            if draw(st.booleans()) and draw(st.booleans()):
                ctx.pop(name, None)
            else:
                ctx[name] = draw(values)
    return d


def dumps(value: Any) -> bytes:
    """JSON as Python writes it (NaN, huge integers, surrogates escaped)."""
    return json.dumps(value, allow_nan=True).encode()


def planted(value: Any) -> set[str]:
    """The IP addresses planted anywhere in ``value`` (or in a line)."""
    text = value if isinstance(value, str) else repr(value)
    return {ip for ip in IPS if ip in text}


# --- checks ---------------------------------------------------------------------------------


def check_event(e: Event) -> None:
    assert e.type in ev.EVENT_TYPES
    assert isinstance(e.user, str) and 0 < len(e.user) <= ev.MAX_ID_CHARS
    assert isinstance(e.ts, (int, float)) and math.isfinite(e.ts)
    for name in ("item", "category", "session"):
        value = getattr(e, name)
        assert value is None or (isinstance(value, str) and 0 < len(value) <= ev.MAX_ID_CHARS)
    assert e.price is None or 0 <= e.price <= ev.MAX_PRICE
    assert e.dwell is None or 0 <= e.dwell <= ev.MAX_DWELL_S
    assert e.country is None or (len(e.country) == 2 and e.country.isupper())
    orjson.dumps(e.to_dict())  # an accepted event can always be written


def check_rejection(r: Rejection, ips: set[str]) -> None:
    assert r.reason in ev.REASONS and r.reason != ev.INTERNAL_ERROR, (r, r.raw)
    assert r.pos and isinstance(r.detail, str) and len(r.raw) <= ev.RAW_PREFIX
    assert r.user is None or (isinstance(r.user, str) and 0 < len(r.user) <= ev.MAX_ID_CHARS)
    for ip in ips:
        assert ip.encode() not in r.raw, (ip, r.raw)
        assert ip not in r.detail, (ip, r.detail)
    orjson.dumps(r.to_dict())  # a dead letter can always be written


def check_one(result: Event | Rejection, ips: set[str]) -> None:
    if isinstance(result, Event):
        check_event(result)
    else:
        assert isinstance(result, Rejection)
        check_rejection(result, ips)


# --- the schema-v1 parser -------------------------------------------------------------------


@FUZZ
@given(event_dicts(python_values))
def test_from_dict_any_python_value_in_any_field(d: Any) -> None:
    check_one(from_dict(d, "fuzz:1", repr(d).encode("utf-8", "replace")), planted(d))


@FUZZ
@given(event_dicts())
def test_parse_json_any_json_value_in_any_field(d: Any) -> None:
    line = dumps(d)  # NaN and huge integers as Python writes them
    check_one(parse_json(line, "fuzz:1"), planted(line.decode()))
    if not isinstance(d, dict):
        return
    try:
        strict = orjson.dumps(d)  # JSON orjson reads back: most fields reach validation
    except TypeError:
        return
    check_one(parse_json(strict, "fuzz:2"), planted(strict.decode()))


# --- the adapters ---------------------------------------------------------------------------


def parse_line(fmt: str, line: bytes) -> None:
    events: list[Event] = [Event("click", "before", 1.0)]
    rejections: list[Rejection] = [Rejection(ev.INVALID_CSV, "before", "x:0")]
    read = ADAPTERS[fmt].parse(line, "fuzz:7", events, rejections)
    assert read >= 0
    assert read == len(events) - 1 + len(rejections) - 1, (fmt, line)
    ips = planted(line.decode("utf-8", "replace"))
    for e in events[1:]:
        check_event(e)
        assert e.pos.startswith("fuzz:7")
    for r in rejections[1:]:
        check_rejection(r, ips)
        assert r.pos.startswith("fuzz:7")


SEPARATORS = {"taobao": ",", "rees46": ",", "diginetica": ";", "retailrocket": ","}
SEEDS = {
    "taobao": ["543462", "1715", "1464116", "pv", "1511658000"],
    "rees46": [
        "2019-10-01 00:00:00 UTC",
        "view",
        "44600062",
        "2103807459595387724",
        "",
        "shiseido",
        "35.79",
        "541312140",
        "72d76fde-8bb3-4e00-8c23-a032dfed738c",
    ],
    "diginetica": ["1", "NA", "81766", "526309", "2016-05-09"],
    "retailrocket": ["1433221332117", "257597", "view", "355908", ""],
    "yoochoose": ["420374", "2014-04-06T18:44:58.314Z", "214537888", "12462", "1"],
}
numbers = st.one_of(
    st.sampled_from(["nan", "inf", "-inf", "1e999", "-0", " 1", "1_0", "²", "١٥", "0x1f", ""]),
    st.sampled_from([16, 40, 130, 320, 400, 4_400]).map(lambda n: "9" * n),  # beyond a float
    st.integers().map(str),
    st.floats().map(str),
    st.text("0123456789._:-TZ ", max_size=40),
)
field_texts = st.one_of(texts, numbers, st.sampled_from(['"', '"a,b"', "\t", "NA", "\r"]))


@st.composite
def csv_lines(draw: st.DrawFn, fmt: str) -> bytes:
    """A real-looking line with some fields replaced, added or dropped; or random bytes."""
    choice = draw(st.integers(0, 9))
    if choice == 0:
        return draw(st.binary(max_size=200))
    fields = list(SEEDS[fmt])
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(fields)))
        op = draw(st.integers(0, 5))
        if op == 0 and fields:
            del fields[min(i, len(fields) - 1)]
        elif op == 1:
            fields.insert(i, draw(field_texts))
        elif fields:
            fields[min(i, len(fields) - 1)] = draw(numbers if op == 2 else field_texts)
    if fmt == "yoochoose":
        sep = draw(st.sampled_from([",", "\t"]))
        if sep == "\t":
            fields = fields[:3]
    else:
        sep = SEPARATORS[fmt]
    return sep.join(fields).encode("utf-8", "surrogatepass")  # a surrogate: not UTF-8


def _csv_test(fmt: str) -> Any:
    @FUZZ
    @given(csv_lines(fmt))
    def test(line: bytes) -> None:
        parse_line(fmt, line)

    test.__name__ = f"test_{fmt}_any_line"
    return test


test_taobao_any_line = _csv_test("taobao")
test_rees46_any_line = _csv_test("rees46")
test_diginetica_any_line = _csv_test("diginetica")
test_yoochoose_any_line = _csv_test("yoochoose")
test_retailrocket_any_line = _csv_test("retailrocket")

otto_event = st.fixed_dictionaries(
    {},
    optional={
        "aid": st.one_of(st.integers(0, 2_000_000), json_values),
        "ts": st.one_of(st.integers(1_659_304_800_000, 1_662_328_791_000), json_values),
        "type": st.one_of(st.sampled_from(["clicks", "carts", "orders"]), json_values),
        "ip": st.sampled_from(IPS),
    },
)


@FUZZ
@given(
    st.one_of(
        st.fixed_dictionaries(
            {
                "session": st.one_of(st.integers(0, 14_000_000), json_values),
                "events": st.one_of(st.lists(st.one_of(otto_event, json_values), max_size=6)),
            }
        ),
        json_values,
    )
)
def test_otto_any_session(d: Any) -> None:
    parse_line("otto", dumps(d))
    try:
        line = orjson.dumps(d)
    except TypeError:  # not JSON orjson writes (a huge integer): the line above covered it
        return
    parse_line("otto", line)


@FUZZ
@given(python_values)
def test_from_dict_any_value_as_the_record(value: Any) -> None:
    check_one(from_dict(value, "fuzz:1", b"x"), set())
    line = dumps(value)
    check_one(parse_json(line, "fuzz:1"), planted(line.decode()))


@FUZZ
@given(st.one_of(event_dicts().map(dumps), st.binary(max_size=300)))
def test_jsonl_any_line(line: bytes) -> None:
    parse_line("jsonl", line)


@FUZZ
@given(st.sampled_from(sorted(ADAPTERS)), st.binary(max_size=300))
def test_every_adapter_any_bytes(fmt: str, line: bytes) -> None:
    parse_line(fmt, line)


ODD_FIELDS = [
    "",
    " ",
    "nan",
    "inf",
    "-inf",
    "1e999",
    "-1",
    "1_0",
    "²",
    "١٥",
    "9" * 20,
    "9" * 320,  # an integer beyond any float
    "9" * 4_400,  # beyond what int() reads
    "x" * 200,
    '"',
    "\t",
    "\r",
    "NA",
    "81.2.69.160",
    "2001:4860:4860::8888",
    "2019-10-01 00:00:00.²Z",
    "2019-02-30 00:00:00 UTC",
    "2014-04-07T10:51:09.277Z",
    "\udc80",
]


def test_every_field_of_every_csv_format_with_odd_values() -> None:
    """Deterministic: each field of a real line replaced by each odd value in turn."""
    for fmt, seed in SEEDS.items():
        variants = [seed, seed[:3]] if fmt == "yoochoose" else [seed]
        for fields in variants:
            sep = "\t" if len(fields) == 3 else SEPARATORS.get(fmt, ",")
            for i in range(len(fields)):
                for odd in ODD_FIELDS:
                    line = sep.join([*fields[:i], odd, *fields[i + 1 :]])
                    parse_line(fmt, line.encode("utf-8", "surrogatepass"))


def test_every_adapter_is_fuzzed() -> None:
    fuzzed = {*SEPARATORS, "yoochoose", "otto", "jsonl"}
    assert fuzzed == set(ADAPTERS)
