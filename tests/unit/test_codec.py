"""The compact value encoding (rtp.store.codec): exact round trips of decisions (in both forms:
zstd, 0xD2, and the first compact form, 0xD1), profiles and product pages (property-based and on
realistic documents), the JSON of earlier versions still read, derived fields recomputed
exactly, corrupt values refused, and the sizes it is for."""

from __future__ import annotations

import copy
import math
import random
import threading
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtp.decisions.reasons import CHAR
from rtp.session.profile import PRICE_BANDS, Profile
from rtp.store import codec
from rtp.store.codec import (
    DECISION,
    DECISION_Z,
    PAGE,
    PROFILE,
    SCHEMAS,
    STATIC,
    TEMPLATES,
    WHY_ALPHABET,
    CodecError,
    decode_decision,
    decode_page,
    decode_profile,
    encode_decision,
    encode_decision_fast,
    encode_decision_v1,
    encode_page,
    encode_profile,
)

# A decision as the engine writes it for a Taobao user (rtp.engine.users._write_decision).
TAOBAO_DOC: dict[str, Any] = {
    "home": {
        "items": ["2280518", "3935628", "3153498", "2018062", "2799882", "2689101", "5141169",
                  "1791949", "4568756", "3085340", "1191074", "1113979", "4637129", "395399",
                  "214129", "2234180", "2338453", "724262", "779670", "2364679"],
        "scores": [-0.019, -2.16, -2.172, -2.188, -2.192, -2.202, -2.205, -2.211, -2.213, -2.219,
                   -2.223, -2.227, -2.228, -2.23, -2.235, -2.236, -3.307, -3.339, 0.0, 0.0],
        "why": "rkkkkkkkkkkkkkkkppxx",
        "reason": "you viewed this earlier in this visit",
    },
    "hero": {"theme": "category:1320293", "reason": "you browse 1320293"},
    "offer": "no_intent",
    "assist": "no_frustration",
    "v": 1,
    "ts": 1511660397,
    "mode": "ranked",
    "model": "lr-1372",
    "ctx": {
        "session": "1511660397",
        "started": 1511660397,
        "events": 1,
        "categories": [["1320293", 1.0]],
        "recent": ["2280518"],
        "mode": "browsing",
        "intent": 0.02,
        "blend": 0.2,
        "hour": 1,
    },
}  # fmt: skip

# One of the synthetic shop's (rtp.tools.synth): prefixed ids, float times, a shown offer.
SHOP_DOC: dict[str, Any] = {
    "home": {
        "items": ["i4543", "i4979", "i1644", "i3307", "i3565", "i4117", "i1922", "i3189", "i3206",
                  "i647", "i4225", "i3758", "i4625", "i2277", "i4502", "i3681", "i1095", "i12",
                  "i2488", "i2416"],
        "scores": [1.31, 0.092, -0.318, -0.468, -0.503, -1.007, -1.535, -1.537, -1.83, -1.871,
                   -1.88, -1.887, -1.989, -2.021, -2.066, -2.122, -2.141, -2.143, 0.0, 0.0],
        "why": "crrrrrkkvvkkvvvkkvxx",
        "reason": "still in your cart",
    },
    "hero": {"theme": "checkout", "reason": "1 item(s) waiting in your cart"},
    "offer": {"show": True, "type": "discount", "pct": 10, "item": "i4543",
              "reason": "high purchase intent: you viewed i4543 5 times"},
    "assist": "no_frustration",
    "v": 1,
    "ts": 1730842235.979,
    "mode": "ranked",
    "model": "lr-5900",
    "exp": {"name": "rt-vs-batch", "arm": "realtime"},
    "ctx": {
        "session": "u3908.1",
        "started": 1730841889.751,
        "events": 13,
        "categories": [["toys", 0.772], ["dresses", 0.085], ["jeans", 0.082], ["garden", 0.059]],
        "recent": ["i4979", "i1644", "i4543", "i3565", "i3307"],
        "mode": "browsing",
        "intent": 0.7,
        "blend": 0.76,
        "price": [3.99, 43.99],
        "cart": ["i4543"],
        "pace": 2.25,
        "dwell": 28.8,
        "device": "mobile",
        "country": "GB",
        "referral": "direct",
        "hour": 21,
    },
}  # fmt: skip


# every decision encoder: every value any of them writes must read back exactly
ENCODERS = pytest.mark.parametrize(
    "enc",
    [encode_decision, encode_decision_fast, encode_decision_v1],
    ids=["zstd", "fast", "compact-v1"],
)
Enc = Callable[[dict[str, Any]], bytes]


def json_of(doc: Any) -> Any:
    """What the JSON form of ``doc`` reads back as (the reference every decoder must match)."""
    return orjson.loads(orjson.dumps(doc))


def same(a: Any, b: Any) -> None:
    """Equal, and written to the same JSON bytes: key order and float forms included."""
    assert a == b
    assert orjson.dumps(a) == orjson.dumps(b)


# -- tables ------------------------------------------------------------------------------------


def test_tables_are_sound() -> None:
    assert len(set(STATIC)) == len(STATIC)
    assert not [s for s in STATIC if s[-1:].isdigit()]  # packed ids are never static strings
    assert len(set(TEMPLATES)) == len(TEMPLATES) and all("{}" in t for t in TEMPLATES)
    for keys in SCHEMAS:
        assert len(set(keys)) == len(keys)
    assert len(SCHEMAS) < 256 and len(TEMPLATES) < 256
    assert set(CHAR.values()) <= set(WHY_ALPHABET) and len(WHY_ALPHABET) <= 16
    assert len({DECISION, DECISION_Z, PROFILE, PAGE, ord("{")}) == 5


def test_byte_level_example() -> None:
    # kind, schema dict 0 (the decision) with only key 4 ("v"), the int 1
    assert encode_decision_v1({"v": 1}) == bytes.fromhex("d1 70 00 10 01")
    # kind, a generic dict of 1, short string "x", static string "ranked"
    assert encode_decision_v1({"x": "ranked"}) == bytes.fromhex("d1 51 e1 78 a9")
    # a page: kind, 2 ids of 1 byte, then floats k / 10 in zigzag deltas (10, -5)
    assert encode_page(["7", "9"], [1.0, 0.5]) == bytes.fromhex("b1 71 02 01 07 09 73 01 02 14 09")
    assert decode_page(bytes.fromhex("b1 71 02 01 07 09 73 01 02 14 09")) == {
        "items": ["7", "9"],
        "scores": [1.0, 0.5],
    }


# -- decisions ---------------------------------------------------------------------------------


@ENCODERS
@pytest.mark.parametrize("doc", [TAOBAO_DOC, SHOP_DOC], ids=["taobao", "shop"])
def test_realistic_decisions_round_trip_and_shrink(doc: dict[str, Any], enc: Enc) -> None:
    raw = enc(doc)
    assert raw[0] == (DECISION if enc is encode_decision_v1 else DECISION_Z)
    same(decode_decision(raw), json_of(doc))
    # the fast form trades bytes for CPU: a third larger than the zstd form here
    assert len(raw) < len(orjson.dumps(doc)) / (2.5 if enc is encode_decision_fast else 3)
    assert decode_decision(orjson.dumps(doc)) == json_of(doc)  # the old form still reads


def test_taobao_decision_size() -> None:
    raw = encode_decision_v1(TAOBAO_DOC)
    # 20 ids of 3 bytes, 20 scores in ~1.2 bytes, reasons in 6, the context in ~25
    assert len(raw) <= 150, len(raw)
    # the zstd form: the same ids and score deltas, the rest compressed with the dictionary
    assert len(encode_decision(TAOBAO_DOC)) <= 175, len(encode_decision(TAOBAO_DOC))
    assert len(orjson.dumps(TAOBAO_DOC)) > 700


def test_what_follows_is_not_stored_and_comes_back_exactly() -> None:
    raw = encode_decision_v1(TAOBAO_DOC)
    for text in (b"1320293", b"browsing", b"you browse", b"category:"):
        assert text not in raw
    payload = codec._z_payload(TAOBAO_DOC)  # what the zstd form compresses
    assert payload is not None
    for text in (b"you browse", b"category:", b'"blend":0', b'"session":0', b'"hero":0'):
        assert (text in payload) == text.startswith(b'"'), text
    assert b"2280518" not in payload  # the home list's ids are binary
    # the hero, session id and blend are markers: dropping them from the document costs bytes
    plain = copy.deepcopy(TAOBAO_DOC)
    plain["hero"] = {"theme": "category:9", "reason": "you browse 9"}  # not the top category
    plain["ctx"]["blend"] = 0.21  # not what 1 event gives
    plain["ctx"]["session"] = "s-1"
    for doc in (plain, TAOBAO_DOC, SHOP_DOC):
        same(decode_decision(encode_decision(doc)), json_of(doc))
        same(decode_decision(encode_decision_v1(doc)), json_of(doc))
    assert len(encode_decision_v1(plain)) > len(raw)
    assert len(encode_decision(plain)) > len(encode_decision(TAOBAO_DOC))


@pytest.mark.parametrize("mode", ["rapid", "deep", "browsing", "other"])
def test_hero_follows_from_the_context_mode(mode: str) -> None:
    doc = copy.deepcopy(TAOBAO_DOC)
    doc["ctx"]["mode"] = mode
    forms = {"rapid": ("deals:", "you are scanning "), "deep": ("guide:", "you are comparing ")}
    theme, reason = forms.get(mode, ("category:", "you browse "))
    doc["hero"] = {"theme": theme + "1320293", "reason": reason + "1320293"}
    raw = encode_decision_v1(doc)
    assert b"1320293" not in raw
    same(decode_decision(raw), json_of(doc))
    assert b'"hero":0' in (codec._z_payload(doc) or b"")
    same(decode_decision(encode_decision(doc)), json_of(doc))
    doc["hero"] = {"reason": reason + "1320293", "theme": theme + "1320293"}  # other order
    same(decode_decision(encode_decision(doc)), json_of(doc))
    same(decode_decision(encode_decision_v1(doc)), json_of(doc))


def test_float_times_pace_and_dwell() -> None:
    doc = copy.deepcopy(SHOP_DOC)
    for started, events in ((1730841889.751, 13), (1730842235.979, 1), (1730842200.0, 2)):
        doc["ctx"]["started"] = started
        doc["ctx"]["events"] = events
        span = doc["ts"] - started
        minutes = span / 60.0
        if events > 1:
            doc["ctx"]["pace"] = int((events / minutes if minutes > 0.5 else events) * 100) / 100
            doc["ctx"]["dwell"] = int(span / (events - 1) * 10) / 10
        doc["ctx"]["blend"] = int(events / (events + 4.0) * 100) / 100
        same(decode_decision(encode_decision(doc)), json_of(doc))
        same(decode_decision(encode_decision_v1(doc)), json_of(doc))


@ENCODERS
def test_unusual_documents_round_trip(enc: Enc) -> None:
    docs: list[dict[str, Any]] = [
        {},
        {"v": 1, "ts": 1.0, "home": {"items": []}},
        {"ctx": {"dnp": True}, "home": {"items": [], "scores": [], "why": "", "reason": "x"}},
        {"ctx": "not a dict", "hero": {"theme": "category:x", "reason": "you browse x"}},
        {"home": {"items": ["007", "7", "0", "", "12,3", "a1", "1a"], "scores": [-0.0, 0.0, 1e300,
                  float("inf"), 5e-324, 0.1 + 0.2, 2.0**60, -(2.0**70)]}},  # fmt: skip
        {"big": [2**63 - 1, -(2**63), 0, -1, 63, 64, -64, 10**18]},
        {"x": ["i1", "i2", "i3", "j4"], "y": ["i01", "i1"], "z": ["9" * 25, "1"]},
        {"a": ["", "1"], "b": ["1", ""], "c": ["1,2", "3"], "d": ["i", "i1"], "e": ["i1", "i"]},
        {"k": ["home", "12", "12"], "t": ["lr-9", "lr-9", "lr-"], "u": "é" * 40, "w": "x" * 300},
        {"texts": ["because you viewed because you viewed x", "you left 1 items in your cart "
                   "last visit", "you searched '' 3 times", "{} item(s) waiting in your cart",
                   "vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", "kkkkkkkk", "aaaaaaaaab"]},
        {"ctx": {"started": 10, "session": "10", "events": 1, "blend": 0.2}, "ts": 12.5},
        {"ts": 5, "ctx": {"started": 2.5, "session": "2", "pace": None, "dwell": "x"}},
        {"hero": {"theme": "category:1", "reason": "you browse 1"}, "ctx": {"categories": []}},
        {"home": {"items": ["5", "0", "18446744073709551615"], "scores": [0.5, -0.0, 1.0]}},
        {"home": {"items": ["5", "6"], "scores": [40.0, -40.0]}, "ctx": {"recent": ["6", "7"]}},
        {"home": {"items": ["5", "6"], "scores": [0.5, 0.0001]}, "ctx": {"recent": ["6", "5"]}},
        {"home": {"items": ["i5", "i6"], "scores": [1, 0.5]}, "ctx": {"recent": [["i5"]]}},
        {"home": {"scores": [0.5], "items": ["1"]}, "ts": 10, "ctx": {"started": 4.0}},
        {"home": {"items": ["1"] * 300, "scores": [0.5] * 300}},
        {"ts": float("nan"), "ctx": {"started": float("inf"), "session": "1"}},
    ]  # fmt: skip
    for doc in docs:
        same(decode_decision(enc(doc)), json_of(doc))


@ENCODERS
def test_non_string_keys_and_unknown_types_are_refused(enc: Enc) -> None:
    with pytest.raises(TypeError):
        enc({"a": {1: 2}})
    with pytest.raises(TypeError):
        enc({"a": object()})


def test_integers_beyond_64_bits_are_written_in_the_first_form() -> None:
    doc = {"v": 1, "big": 2**70, "home": {"items": ["1"], "scores": [0.5]}}
    for enc in (encode_decision, encode_decision_fast):
        raw = enc(doc)
        assert raw[0] == DECISION
        assert decode_decision(raw) == doc  # (orjson does not write such integers)


def test_the_fast_form_is_the_plain_json_in_a_zstd_frame_of_its_own_dictionary() -> None:
    """The fast form: kind 0xD2, dictionary 2, a payload with nothing packed (its header all
    zeros, then the document's JSON as it is); larger than the zstd form, far smaller than
    the JSON."""
    raw = encode_decision_fast(TAOBAO_DOC)
    assert raw[:2] == bytes((DECISION_Z, 2))
    assert encode_decision(TAOBAO_DOC)[:2] == bytes((DECISION_Z, 1))
    payload = codec._decompressor(2).decompress(raw[2:])
    assert payload == b"\0\0\0\0" + orjson.dumps(TAOBAO_DOC)
    assert len(encode_decision(TAOBAO_DOC)) < len(raw) < len(orjson.dumps(TAOBAO_DOC)) / 3


def _json_values() -> st.SearchStrategy[Any]:
    no_surrogates: Any = ("Cs",)
    text = st.text(st.characters(blacklist_categories=no_surrogates), max_size=12)
    ids = st.one_of(
        st.integers(0, 10**9).map(str),
        st.tuples(st.sampled_from(["i", "lr-", "u", "sku-"]), st.integers(0, 10**6)).map(
            lambda t: f"{t[0]}{t[1]}"
        ),
    )
    decimals = st.tuples(st.integers(-(10**7), 10**7), st.integers(0, 4)).map(
        lambda t: t[0] / 10 ** t[1]
    )
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**63), 2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        decimals,
        text,
        ids,
        st.sampled_from(STATIC),
        st.sampled_from([t.replace("{}", "7") for t in TEMPLATES]),
        st.text(WHY_ALPHABET, max_size=30),
    )
    keys = st.one_of(text, st.sampled_from(STATIC))
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=20),
            st.lists(ids, max_size=20),
            st.lists(decimals, max_size=20),
            st.dictionaries(keys, inner, max_size=8),
            st.dictionaries(st.sampled_from(SCHEMAS[1] + SCHEMAS[0]), inner, max_size=10),
        ),
        max_leaves=40,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.one_of(st.sampled_from(SCHEMAS[0]), st.text(max_size=5)), _json_values(),
                       max_size=11))  # fmt: skip
def test_any_json_object_round_trips_exactly(doc: dict[str, Any]) -> None:
    same(decode_decision(encode_decision(doc)), json_of(doc))
    same(decode_decision(encode_decision_fast(doc)), json_of(doc))
    same(decode_decision(encode_decision_v1(doc)), json_of(doc))
    same(decode_profile(encode_profile(doc)), json_of(doc))


def _realistic(rng: random.Random) -> dict[str, Any]:
    doc = copy.deepcopy(rng.choice([TAOBAO_DOC, SHOP_DOC]))
    home = doc["home"]
    n = rng.randint(0, 20)
    prefix = rng.choice(["", "i", "sku-"])
    home["items"] = [f"{prefix}{rng.randint(1, 9_999_999)}" for _ in range(n)]
    home["scores"] = sorted((int(rng.uniform(-6, 3) * 1000) / 1000 for _ in range(n)), reverse=True)
    home["why"] = "".join(rng.choice(list(CHAR.values())) for _ in range(n))
    ctx = doc["ctx"]
    ctx["events"] = rng.randint(1, 40)
    ctx["mode"] = rng.choice(["browsing", "rapid", "deep"])
    if n:
        ctx["recent"] = rng.sample(home["items"], min(n, 5))
    ctx["categories"] = [[str(rng.randint(1, 5_000_000)), int(rng.random() * 1000) / 1000]
                         for _ in range(rng.randint(0, 5))]  # fmt: skip
    if ctx["categories"] and rng.random() < 0.7:
        top = ctx["categories"][0][0]
        doc["hero"] = {"theme": f"category:{top}", "reason": f"you browse {top}"}
    started = doc["ts"] - rng.choice([0, 1, 59, 600, 3599])
    ctx["started"] = type(doc["ts"])(started)
    ctx["blend"] = int(ctx["events"] / (ctx["events"] + 4.0) * 100) / 100
    return doc


@ENCODERS
def test_realistic_variations_round_trip(enc: Enc) -> None:
    rng = random.Random(5)
    for _ in range(500):
        doc = _realistic(rng)
        raw = enc(doc)
        same(decode_decision(raw), json_of(doc))
        assert len(raw) < len(orjson.dumps(doc)) / (2 if enc is encode_decision_fast else 2.5)


# -- profiles and pages ------------------------------------------------------------------------


def _profile(rng: random.Random) -> Profile:
    p = Profile()
    p.ts = rng.choice([1511663309, 1730959434.568, 1731172083.159])
    p.cats = {str(rng.randint(1, 10**6)): round(rng.random(), 4) for _ in range(rng.randint(0, 6))}
    if rng.random() < 0.6:
        p.bands = [0.0] * PRICE_BANDS
        for _ in range(rng.randint(1, 4)):
            p.bands[rng.randrange(PRICE_BANDS)] = round(rng.random(), 3)
    p.sessions, p.events, p.views = rng.randint(1, 9), rng.randint(1, 90), rng.randint(0, 90)
    p.carts, p.purchases = rng.randint(0, 5), rng.randint(0, 3)
    p.revenue = rng.choice([0.0, 59.9, 1234.5])
    p.bought = [f"i{rng.randint(1, 5000)}" for _ in range(rng.randint(0, 3))]
    p.favs = [f"i{rng.randint(1, 5000)}" for _ in range(rng.randint(0, 3))]
    p.abandoned = p.favs[:1]
    t = float(p.ts) if isinstance(p.ts, float) else p.ts
    p.first_seen = t - rng.choice([0, 86_400, 4895])
    p.upto = t
    p.offer_ts = rng.choice([0.0, t - 30])
    p.abandoned_ts = rng.choice([0.0, t])
    p.bandit = rng.choice([None, "reshow-2"])
    return p


def test_profiles_round_trip_exactly_and_shrink() -> None:
    rng = random.Random(3)
    for _ in range(300):
        p = _profile(rng)
        d = p.to_dict()
        raw = p.to_bytes()
        assert raw[0] == PROFILE
        same(decode_profile(raw), json_of(d))
        assert Profile.from_bytes(raw).to_dict() == Profile.from_dict(json_of(d)).to_dict()
        assert len(raw) < len(orjson.dumps(d)) / 2.5
    taobao = {"ts": 1511663309, "cats": {"5063620": 0.9972, "3758209": 1.0}, "sessions": 2,
              "events": 2, "views": 2, "carts": 0, "purchases": 0, "revenue": 0.0,
              "first_seen": 1511658414, "upto": 1511663309}  # fmt: skip
    assert len(encode_profile(taobao)) <= 44  # an embedded string in Redis (one allocation)
    same(decode_profile(encode_profile(taobao)), taobao)


def test_profile_price_follows_from_the_bands() -> None:
    p = Profile()
    p.ts = 100.0
    p.add_prices([40.0, 40.0, 300.0])
    d = p.to_dict()
    assert d["price"] == [32.0, 512.0]
    raw = encode_profile(d)
    same(decode_profile(raw), json_of(d))
    d["price"] = [1.0, 2.0]  # not what the bands say: stored as it is
    same(decode_profile(encode_profile(d)), json_of(d))


def test_old_json_profiles_still_load() -> None:
    old = orjson.dumps({"ts": 5.0, "cats": {"shoes": 2.0}, "sessions": 1, "favs": ["a"]})
    p = Profile.from_bytes(old)
    assert (p.sessions, p.cats, p.favs) == (1, {"shoes": 2.0}, ["a"])
    assert decode_profile(old) == orjson.loads(old)
    assert Profile.from_bytes(p.to_bytes()).to_dict() == p.to_dict()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(st.integers(0, 2**64 - 1).map(str), st.text(max_size=8),
                  st.integers(0, 10**6).map(lambda i: f"i{i}")),
        max_size=12,
    ),
    st.lists(st.integers(0, 1000).map(lambda k: k / 1000), max_size=12),
)  # fmt: skip
def test_pages_round_trip(items: list[str], scores: list[float]) -> None:
    items = [i.replace("\ud800", "") for i in items]
    raw = encode_page(items, scores)
    same(decode_page(raw), json_of({"items": items, "scores": scores}))
    old = orjson.dumps({"items": items, "scores": scores})
    assert decode_page(old) == orjson.loads(old)
    assert codec.loads(raw) == codec.loads(old)


def test_taobao_page_is_small() -> None:
    items = ["2688527", "2535333", "4678791", "4334392"]
    raw = encode_page(items, [1.0, 0.995, 0.914, 0.468])
    assert len(raw) <= 26 < len(orjson.dumps({"items": items, "scores": [1.0, 0.995]}))


# -- errors ------------------------------------------------------------------------------------


@ENCODERS
def test_corrupt_values_are_refused(enc: Enc) -> None:
    raw = enc(TAOBAO_DOC)
    kind = raw[0]
    for bad in (raw[:-1], raw[: len(raw) // 2], raw + b"\x00", bytes([kind, 0x77]), b"",
                bytes([kind]), bytes([DECISION_Z, 99]) + raw[2:]):  # fmt: skip
        with pytest.raises((CodecError, orjson.JSONDecodeError)):
            decode_decision(bad)
    with pytest.raises(CodecError):
        decode_decision(encode_profile({"ts": 1}))  # a profile is not a decision
    with pytest.raises(CodecError):
        decode_page(raw)
    with pytest.raises(CodecError):
        decode_decision(b"[1, 2]")  # JSON, but not an object


def test_a_zstd_value_whose_payload_lies_is_refused() -> None:
    c = codec._compressor(codec._Z_DICT)
    head = bytes((DECISION_Z, codec._Z_DICT))
    for payload in (
        codec._ZHEAD.pack(codec._F_ITEMS, 5, 3) + b"\x01\x02" + b"{}",  # ids cut short
        codec._ZHEAD.pack(codec._F_ITEMS, 1, 3) + b"\x01\x02\x03" + b'{"home":{"items":7}}',
        codec._ZHEAD.pack(codec._F_RECENT, 0, 0) + b'{"ctx":{"recent":[4]}}',  # no such item
        codec._ZHEAD.pack(codec._F_SCORES, 1, 0) + b"\x01\x00" + b"[1]",  # not an object
        codec._ZHEAD.pack(0, 0, 0)[:2],
    ):
        with pytest.raises((CodecError, orjson.JSONDecodeError)):
            decode_decision(head + c.compress(payload))


def test_threads_share_nothing_that_corrupts() -> None:
    # Bytewax's -w workers are threads: each has its own zstd compressor and decompressor
    rng = random.Random(9)
    docs = [_realistic(rng) for _ in range(300)]
    want = [encode_decision(d) for d in docs]
    got: dict[int, list[bytes]] = {}

    def work(k: int) -> None:
        got[k] = [encode_decision(d) for d in docs]
        for raw, d in zip(got[k], docs, strict=True):
            same(decode_decision(raw), json_of(d))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[k] for k in range(4)] == [want] * 4


def test_loads_reads_every_kind() -> None:
    assert codec.loads(encode_decision(TAOBAO_DOC)) == json_of(TAOBAO_DOC)
    assert codec.loads(encode_decision_v1(TAOBAO_DOC)) == json_of(TAOBAO_DOC)
    assert codec.loads(encode_profile({"ts": 1, "cats": {}})) == {"ts": 1, "cats": {}}
    assert codec.loads(encode_page(["a"], [1.0])) == {"items": ["a"], "scores": [1.0]}
    assert codec.loads(b'["x"]') == ["x"]
    with pytest.raises(CodecError):
        codec.loads(b"")


@ENCODERS
def test_floats_keep_their_exact_value(enc: Enc) -> None:
    values = [0.1, 0.2, 0.30000000000000004, 1e-7, 123456.789, -0.0, 2.5e-05, 1e16, math.pi]
    for x in values:
        got = decode_decision(enc({"x": x, "l": [x, 1.5]}))
        assert math.copysign(1.0, got["x"]) == math.copysign(1.0, x) and got["x"] == x
        assert orjson.dumps(got) == orjson.dumps({"x": x, "l": [x, 1.5]})
        doc = {"home": {"items": ["1", "2", "3"], "scores": [1.5, x, -2.0]}}
        got = decode_decision(enc(doc))["home"]["scores"]
        assert [math.copysign(1.0, y) for y in got] == [
            math.copysign(1.0, y) for y in [1.5, x, -2.0]
        ]
        assert got == [1.5, x, -2.0]


def _clear_caches() -> None:
    codec._MILLI.clear()
    codec._MILLI[0.0] = 0
    codec._DECIMALS.clear()
    codec._REALS.clear()
    codec._ID_INT.clear()


@pytest.mark.parametrize("doc", [TAOBAO_DOC, SHOP_DOC], ids=["taobao", "shop"])
def test_cached_numbers_encode_the_same_bytes(doc: dict[str, Any]) -> None:
    # the first encoding checks every score, decimal string and float and fills the caches;
    # the second finds them
    _clear_caches()
    first = encode_decision_v1(doc)
    assert codec._MILLI.keys() - {0.0} and codec._DECIMALS and codec._REALS
    assert encode_decision_v1(doc) == first
    same(decode_decision(first), json_of(doc))
    _clear_caches()
    first = encode_decision(doc)
    assert codec._MILLI.keys() - {0.0}
    assert encode_decision(doc) == first
    same(decode_decision(first), json_of(doc))


def test_cached_ids_keep_their_meaning() -> None:
    _clear_caches()
    for items in (["12", "7"], ["12", "07"], ["012", "12"], ["12", "i7"], ["i12", "i7"], ["12"]):
        doc = {"home": {"items": items, "scores": [0.5] * len(items)}}
        for _ in range(2):  # cold, then with what the first one cached
            same(decode_decision(encode_decision(doc)), json_of(doc))
    assert codec._ID_INT == {"12": 12, "7": 7}


def test_cached_scores_keep_negative_zero_and_other_scales() -> None:
    _clear_caches()
    encode_page(["7", "9", "11"], [1.5, 0.0, -2.25])  # caches 1.5, -2.25 (k / 1000)
    for scores in ([1.5, -0.0, -2.25], [1.5, 0.0, -2.25], [1.5, 0.0001, 0.0], [1.5, 0.1, 0.2]):
        got = decode_page(encode_page(["7", "9", "11"], scores))["scores"]
        assert [math.copysign(1.0, x) for x in got] == [math.copysign(1.0, x) for x in scores]
        assert got == scores


def test_cached_strings_and_floats_keep_their_meaning() -> None:
    _clear_caches()
    doc = {"a": "12", "b": 2.5, "c": ["x", "12"], "d": "12", "e": -2.5, "f": -0.0, "g": 0.0}
    for _ in range(2):  # cold, then from the caches: the second "12" is a reference each time
        raw = encode_decision_v1(doc)
        got = decode_decision(raw)
        same(got, json_of(doc))
        assert math.copysign(1.0, got["f"]) < 0 < math.copysign(1.0, got["g"])
    assert "12" in codec._DECIMALS and 2.5 in codec._REALS and 0.0 not in codec._REALS


def test_a_hero_that_does_not_follow_is_stored_as_it_is() -> None:
    base = copy.deepcopy(TAOBAO_DOC)
    derived = len(encode_decision(base))
    for hero in (
        {"reason": "you browse 1320293", "theme": "category:1320293"},  # keys in another order
        {"theme": "category:1320293", "reason": "you browse 1320294"},
        {"theme": "deals:1320293", "reason": "you are scanning 1320293"},  # not the ctx's mode
        {"theme": "category:1320293", "reason": "you browse 1320293", "x": 1},
    ):
        doc = {**base, "hero": hero}
        raw = encode_decision(doc)
        same(decode_decision(raw), json_of(doc))
        assert len(raw) > derived
