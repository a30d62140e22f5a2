"""Records for the fault suite: poison events (malformed in every field, not JSON, oversized),
valid edge cases, and events and bad records carrying IP addresses.

Each record is a :class:`Rec`: what is appended (a schema-v1 dict, raw bytes, or the fields
of a stream entry written with ``XADD`` directly), what rtp should do with it (``reject``: a
dead letter; ``accept``: an event; ``either``: lenient or strict are both fine, as long as it
is one or the other) and the item that shows it went through when accepted.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

REJECT, ACCEPT, EITHER = "reject", "accept", "either"


@dataclass
class Rec:
    label: str
    payload: dict[str, Any] | bytes
    expect: str
    item: str | None = None
    fields: dict[bytes, bytes] | None = None  # an entry written with XADD, not through append
    ips: list[str] = field(default_factory=list)


def _base(user: str, item: str, ts: float, **kw: Any) -> dict[str, Any]:
    return {"v": 1, "type": "product_view", "user": user, "ts": ts, "item": item,
            "category": "poison", "price": 10.0, **kw}  # fmt: skip


def poison(now: float, tag: str = "p") -> list[Rec]:
    """Malformed records: a wrong JSON value in every field, wrong versions, absurd numbers,
    bytes that are not JSON, oversized lines, stream entries without the event field."""
    out: list[Rec] = []
    k = [0]

    def add(label: str, expect: str = REJECT, **changes: Any) -> None:
        k[0] += 1
        item = f"{tag}-bad-{k[0]}"
        d = _base(f"{tag}-user-{k[0]}", item, now + k[0] * 0.001)
        for name, value in changes.items():
            if value is _DROP:
                d.pop(name, None)
            else:
                d[name] = value
        out.append(Rec(label, d, expect, item))

    def raw(label: str, payload: bytes, expect: str = REJECT, item: str | None = None) -> None:
        if item is None:  # the item shows whether a record was accepted after all
            m = re.search(rb'"item":"([^"]+)"', payload)
            item = m.group(1).decode() if m else None
        out.append(Rec(label, payload, expect, item))

    def tpl(body: str) -> bytes:
        """A JSON-ish line around ``body`` (placeholders {u} {i} {ts})."""
        k[0] += 1
        return (
            body.replace("{u}", f"{tag}-user-{k[0]}")
            .replace("{i}", f"{tag}-bad-{k[0]}")
            .replace("{ts}", f"{now + k[0] * 0.001:.3f}")
            .encode()
        )

    # type
    for v in (["click"], {"a": 1}, 7, None, "", "teleport", True, 1.5, "PRODUCT_VIEW",
              "product_view\u0000", "x" * 5000):  # fmt: skip
        add(f"type={orjson.dumps(v)[:24].decode()}", type=v)
    add("type missing", type=_DROP)
    # schema version
    for v in (2, 0, -1, "1", None, [1], {"v": 1}, 1e308, "v1", True):
        add(f"v={orjson.dumps(v)[:24].decode()}", v=v)
    add("v=1.0", EITHER, v=1.0)
    add("v missing", EITHER, v=_DROP)
    # user
    for v in (["x"], {"id": 1}, "", True, 1.5, "x" * 200, [], {}):
        add(f"user={orjson.dumps(v)[:24].decode()}", user=v)
    add("user missing", user=_DROP)
    add("user null", user=None)
    raw("user=10^40", tpl('{"v":1,"type":"product_view","user":10000000000000000000000000000000'
                          '00000000,"ts":{ts},"item":"{i}"}'))  # fmt: skip
    # event time
    for v in (-1, 0, 1e308, -1e308, "yesterday", "2024-13-45T99:99:99Z", True, [now], {"t": now},
              None, now + 20 * 365 * 86_400, 946_684_700, "", "NaN", "Infinity"):  # fmt: skip
        add(f"ts={orjson.dumps(v)[:24].decode()}", ts=v)
    add("ts missing", ts=_DROP)
    add("ts 2 days ahead", ts=now + 2 * 86_400)
    for lit in (
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "123456789012345678901234567890",
    ):
        raw(f"ts={lit} (bare literal)", tpl('{"v":1,"type":"product_view","user":"{u}","ts":'
                                            + lit + ',"item":"{i}"}'))  # fmt: skip
    # item, category, session
    for v in (["i"], {"i": 1}, 3.5, "", "x" * 1000, True, []):
        add(f"item={orjson.dumps(v)[:24].decode()}", item=v)
    add("item missing on a product view", item=_DROP)
    for v in (["c"], {"c": 1}, "x" * 20_000):
        add(f"category={orjson.dumps(v)[:24].decode()}", category=v)
    for v in (["s"], {"s": 1}, True):
        add(f"session={orjson.dumps(v)[:24].decode()}", session=v)
    # price
    for v in (-1, 1e12, "12,99", "NaN", [1], {"p": 1}, True, -1e308):
        add(f"price={orjson.dumps(v)[:24].decode()}", price=v)
    raw("price=1e400 (bare)", tpl('{"v":1,"type":"product_view","user":"{u}","ts":{ts},'
                                  '"item":"{i}","price":1e400}'))  # fmt: skip
    # dwell, back, query, dnp
    for v in (1e12, -5, "long", [1], "NaN", 1e308, True):
        add(f"dwell={orjson.dumps(v)[:24].decode()}", dwell=v)
    for v in ("yes", [True], {"b": 1}, 1):  # read as "not back" (is True), not rejected
        add(f"back={orjson.dumps(v)[:24].decode()}", EITHER, back=v)
    add("search without query", type="search", item=_DROP)
    k[0] += 1
    for v in (["shoes"], {"q": 1}, "q" * 100_000, 42):
        k[0] += 1
        out.append(Rec(f"query={orjson.dumps(v)[:24].decode()}",
                       {"v": 1, "type": "search", "user": f"{tag}-user-{k[0]}", "ts": now,
                        "query": v}, REJECT))  # fmt: skip
    # context
    for v in (
        "a string",
        [1, 2],
        5,
        {"ua": ["x"]},
        {"utm": [1]},
        {"utm": {"a": {"b": [1]}}},
        {"referrer": {"x": 1}},
        {"channel": 7},
        {"country": ["GB"]},
        {"ua": "x" * 20_000},
    ):
        add(f"context={orjson.dumps(v)[:24].decode()}", context=v)
    # control events with bad fields (a valid forget would delete someone: none here)
    k[0] += 1
    out.append(Rec("forget user=[...]", {"v": 1, "type": "forget", "user": ["a", "b"]}, REJECT))
    out.append(Rec("forget without user", {"v": 1, "type": "forget"}, REJECT))
    out.append(Rec("dnp user={}", {"v": 1, "type": "dnp", "user": {}, "dnp": True}, REJECT))
    # not JSON, not an object, broken bytes
    raw("empty", b"")
    raw("spaces", b"   ")
    raw("NUL bytes", b"\x00\x01\x02\x00")
    raw("invalid UTF-8", b"\xff\xfe\xfd\xfc")
    raw("open brace", b"{")
    raw("close brace", b"}")
    raw("array", b"[1,2,3]")
    raw("null", b"null")
    raw("true", b"true")
    raw("number", b"123")
    raw("string", b'"just a string"')
    raw("HTTP request line", b"GET /products/i1 HTTP/1.1")
    raw("form encoding", b"v=1&type=click&user=u1")
    raw("UTF-16 JSON", '{"v":1,"type":"click","user":"u16"}'.encode("utf-16"))
    raw("truncated JSON", tpl('{"v":1,"type":"product_view","user":"{u}","ts":{ts},"ite'))
    raw("trailing garbage", tpl('{"v":1,"type":"product_view","user":"{u}","ts":{ts},'
                                '"item":"{i}"} trailing'))  # fmt: skip
    raw("two objects", tpl('{"v":1,"type":"click","user":"{u}","ts":{ts}}{"v":1}'))
    raw("single quotes", tpl("{'v':1,'type':'click','user':'{u}','ts':{ts}}"))
    raw("comment", tpl('{"v":1, /* c */ "type":"click","user":"{u}","ts":{ts}}'))
    raw("invalid UTF-8 in a string", b'{"v":1,"type":"product_view","user":"\xff\xfe","ts":1}')
    raw("lone surrogate escape", tpl('{"v":1,"type":"product_view","user":"\\ud800","ts":{ts},'
                                     '"item":"{i}"}'), EITHER)  # fmt: skip
    raw("NUL escape in user", tpl('{"v":1,"type":"product_view","user":"a\\u0000b","ts":{ts},'
                                  '"item":"{i}"}'), EITHER)  # fmt: skip
    raw("duplicate keys", tpl('{"v":1,"type":"product_view","user":"{u}","ts":{ts},"item":"{i}",'
                              '"type":["x"]}'))  # fmt: skip
    raw("deep nesting (100k)", b"[" * 100_000 + b"]" * 100_000)
    raw(
        "deep nesting in a field",
        tpl(
            '{"v":1,"type":"product_view","user":"{u}","ts":{ts},'
            '"item":"{i}","x":' + "[" * 5000 + "]" * 5000 + "}"
        ),
    )
    raw("BOM", b"\xef\xbb\xbf" + tpl('{"v":1,"type":"click","user":"{u}","ts":{ts}}'), EITHER)
    # oversized (limit 16 KiB)
    pad = "x" * 17_000
    raw("17 KB line", tpl('{"v":1,"type":"product_view","user":"{u}","ts":{ts},"item":"{i}",'
                          '"pad":"' + pad + '"}'))  # fmt: skip
    raw("1 MB line", tpl('{"v":1,"type":"product_view","user":"{u}","ts":{ts},"item":"{i}",'
                         '"pad":"' + "y" * 1_000_000 + '"}'))  # fmt: skip
    raw("4 MB of bytes", b"\x89PNG" + bytes(range(256)) * 16_384)
    # stream entries that are not events: no "e" field, an empty one
    out.append(Rec("entry without the e field", b"", REJECT, fields={b"x": b"1"}))
    out.append(Rec("entry with e and junk fields", b"", REJECT,
                   fields={b"e": b"not json", b"junk": b"1"}))  # fmt: skip
    return out


class _Drop:
    pass


_DROP = _Drop()


def valid_edges(now: float, tag: str = "p") -> list[Rec]:
    """Unusual but valid events (documented): each must be accepted."""
    out: list[Rec] = []
    iso = datetime.fromtimestamp(now, timezone.utc).isoformat()
    for k, (label, changes) in enumerate(
        [
            ("integer user", {"user": 4200 + 1}),
            ("ts in milliseconds", {"ts": int(now * 1000)}),
            ("ts ISO-8601 with zone", {"ts": iso}),
            ("price 0", {"price": 0}),
            ("no price, no category", {"price": None, "category": None}),
            ("dwell 0", {"dwell": 0}),
            ("anon instead of user", {"user": None, "anon": f"{tag}-anon-1"}),
            ("context with a user agent only", {"context": {"ua": "Mozilla/5.0 (X11; Linux)"}}),
            ("unknown extra field", {"extra": {"nested": [1, 2, {"a": None}]}}),
        ]
    ):
        item = f"{tag}-edge-{k}"
        d = _base(f"{tag}-edge-user-{k}", item, now + k * 0.001)
        for name, value in changes.items():
            if value is None:
                d.pop(name, None)
            else:
                d[name] = value
        out.append(Rec(label, d, ACCEPT, item))
    return out


# --- IP addresses ------------------------------------------------------------------------------

IPV4 = ["81.2.69.160", "203.0.113.77", "8.8.8.8", "10.1.2.3", "81.2.69.161", "81.2.69.162",
        "81.2.69.163", "81.2.69.164", "81.2.69.165", "81.2.69.166", "81.2.69.167",
        "81.2.69.168", "81.2.69.169", "81.2.69.170", "81.2.69.171", "198.51.100.23"]  # fmt: skip
IPV6 = ["2001:db8::7", "2001:0db8:0000:0000:0000:0000:0000:0008", "2a00:1450:4009:81f::200e",
        "2001:DB8::9", "fe80::1%eth0", "2001:db8::a", "2001:db8::b", "2001:db8::c",
        "2001:db8::d", "2001:db8:0:0:1::e"]  # fmt: skip


def ip_needles() -> list[bytes]:
    """Every way one of the addresses may be written down (as given, canonical, lower case)."""
    out: set[bytes] = set()
    for ip in IPV4 + IPV6:
        out.add(ip.encode())
        out.add(ip.lower().encode())
        try:
            addr = ipaddress.ip_address(ip.split("%")[0])
        except ValueError:
            continue
        out.add(str(addr).encode())
        if addr.version == 6:
            out.add(addr.exploded.encode())
    # the networks of the test addresses: a cut address (e.g. "81.2.69.1" of "81.2.69.171")
    # would still be a leak, and nothing else rtp stores contains them
    out.update([b"81.2.69.", b"203.0.113.", b"198.51.100.", b"2001:db8:", b"2001:0db8:"])
    return sorted(out)


def ip_records(now: float, tag: str = "ip") -> list[Rec]:
    """Valid events with ``context.ip`` (IPv4, IPv6, mapped, zoned, bracketed, with a port) and
    bad records carrying addresses in every place a producer may put one."""
    out: list[Rec] = []
    ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)"
    forms = [*IPV4[:4], *IPV6[:5], "::ffff:81.2.69.161", "[2001:db8::c]", "81.2.69.162:443",
             "[2001:db8::d]:8080"]  # fmt: skip
    for k, ip in enumerate(forms):
        item = f"{tag}-ok-{k}"
        d = _base(f"{tag}-user-{k}", item, now + k * 0.001, context={"ip": ip, "ua": ua})
        out.append(Rec(f"valid, context.ip {ip}", d, ACCEPT, item, ips=[ip]))
    k = 100

    def bad(label: str, payload: dict[str, Any] | bytes, ips: list[str]) -> None:
        nonlocal k
        k += 1
        out.append(Rec(label, payload, REJECT, f"{tag}-bad-{k}", ips=ips))

    def user() -> str:
        return f"{tag}-bad-user-{k + 1}"

    bad("bad price, context.ip", _base(user(), f"{tag}-bad-{k + 1}", now, price=-1,
        context={"ip": "81.2.69.163", "ua": ua}), ["81.2.69.163"])  # fmt: skip
    bad("unknown type, IPv6 context.ip", {**_base(user(), f"{tag}-bad-{k + 1}", now),
        "type": "teleport", "context": {"ip": "2001:db8::a"}}, ["2001:db8::a"])  # fmt: skip
    bad("IP inside a bad item", _base(user(), ["81.2.69.164"], now), ["81.2.69.164"])  # type: ignore[arg-type]
    bad("IP as a bad ts", _base(user(), f"{tag}-bad-{k + 1}", "81.2.69.165"),  # type: ignore[arg-type]
        ["81.2.69.165"])  # fmt: skip
    bad("IP in context as a string", _base(user(), f"{tag}-bad-{k + 1}", now,
        context="ip=81.2.69.166"), ["81.2.69.166"])  # fmt: skip
    bad("IPs in a bad user agent", _base(user(), f"{tag}-bad-{k + 1}", now,
        context={"ua": ["curl from 81.2.69.167 and 2001:db8::b"]}),
        ["81.2.69.167", "2001:db8::b"])  # fmt: skip
    bad("context.ip a list, bad price", _base(user(), f"{tag}-bad-{k + 1}", now, price=-2,
        context={"ip": ["81.2.69.168", "2001:db8:0:0:1::e"]}),
        ["81.2.69.168", "2001:db8:0:0:1::e"])  # fmt: skip
    bad("X-Forwarded-For in an unknown field, bad v", {**_base(user(), f"{tag}-bad-{k + 1}", now),
        "v": 3, "xff": "81.2.69.169, 10.1.2.3"}, ["81.2.69.169", "10.1.2.3"])  # fmt: skip
    bad("truncated JSON with context.ip",
        b'{"v":1,"type":"product_view","user":"ip-t","ts":1,"context":{"ip":"81.2.69.170"',
        ["81.2.69.170"])  # fmt: skip
    bad("not JSON, with addresses", b"GET / HTTP/1.1 X-Forwarded-For: 198.51.100.23, 2001:db8::d",
        ["198.51.100.23", "2001:db8::d"])  # fmt: skip
    big = b"x" * 20_000
    bad("oversized, addresses at both ends",
        b'{"ip":"81.2.69.160","pad":"' + big + b'","ip6":"2001:db8::7"}',
        ["81.2.69.160", "2001:db8::7"])  # fmt: skip
    bad("oversized, mapped IPv6 inside the 1,024-byte raw prefix",
        b'{"pad":"' + b"y" * 600 + b'","ip":"::ffff:81.2.69.161","more":"' + big + b'"}',
        ["::ffff:81.2.69.161"])  # fmt: skip
    bad("oversized, an address across the end of the raw prefix",
        b'{"pad":"' + b"y" * 999 + b'","ip":"81.2.69.171","more":"' + big + b'"}',
        ["81.2.69.171"])  # fmt: skip
    bad("full-form IPv6 in a bad price", _base(user(), f"{tag}-bad-{k + 1}", now,
        price="2001:0db8:0000:0000:0000:0000:0000:0008"),
        ["2001:0db8:0000:0000:0000:0000:0000:0008"])  # fmt: skip
    return out
