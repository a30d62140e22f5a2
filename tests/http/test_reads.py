"""The read side over HTTP: decisions, rerank, forget/consent, edge model, rtp.js, health,
metrics, OpenAPI and errors."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import time
from typing import Any

import httpx
import orjson
import pytest
import redis

from rtp.decisions.edge import EdgeModel
from rtp.http.app import PLACEMENTS, compact_js, static_bytes
from rtp.store.client import Client
from rtp.store.store import item_key, user_hash

from .conftest import stream_events

NOW = time.time()
# a decision document as the flow writes it at rtp:d:{user}
DOC: dict[str, Any] = {
    "home": {
        "items": ["sofa-1", "sofa-2", "lamp-9"],
        "scores": [6.3, 4.3, 1.2],
        "why": "rvp",
        "reason": "you viewed this earlier in this visit",
    },
    "hero": {"theme": "category:sofas", "reason": "you browse sofas"},
    "offer": "no_intent",
    "assist": "no_frustration",
    "v": 1,
    "ts": NOW,
    "mode": "ranked",
    "model": "lr-0",
    "ctx": {
        "categories": [["sofas", 0.8], ["lamps", 0.2]],
        "recent": ["sofa-2", "sofa-1"],
        "cart": ["sofa-9"],
        "queries": ["sofa"],
        "price": [400.0, 600.0],
        "device": "mobile",
        "referral": "search",
    },
}


@pytest.fixture()
def known(r: redis.Redis) -> str:
    r.set("rtp:d:u1", orjson.dumps(DOC))
    r.set("rtp:n:sofa-1", orjson.dumps({"items": ["sofa-2", "sofa-3"], "scores": [1.0, 0.5]}))
    r.set("rtp:meta:fallback", orjson.dumps(["pop-1", "pop-2", "pop-3"]))
    for item, value in {"sofa-1": "sofas|499", "sofa-9": "sofas|520", "lamp-1": "lamps|30",
                        "book-1": "books|12", "sofa-5": "sofas|450"}.items():  # fmt: skip
        r.hset(item_key("rtp:", item), item, value)
    return "u1"


@pytest.mark.parametrize("placement", sorted(PLACEMENTS))
def test_decision_is_what_the_python_client_reads(
    http: httpx.Client, r: redis.Redis, known: str, placement: str
) -> None:
    res = http.get(f"/v1/decisions/{known}", params={"placement": placement})
    assert res.status_code == 200
    expected = Client(r).decision(known, placement)
    if expected is None:  # the client has nothing for it: the fallback is served
        assert res.json()["mode"] == "fallback"
    else:
        assert res.json() == orjson.loads(orjson.dumps(expected))
        assert res.json()["reason"]


def test_product_page_with_and_without_item(http: httpx.Client, r: redis.Redis, known: str) -> None:
    res = http.get("/v1/decisions/u1", params={"placement": "product", "item": "sofa-1"}).json()
    assert res == orjson.loads(orjson.dumps(Client(r).decision("u1", "product", item="sofa-1")))
    assert [i for i, _ in res["items"]] == ["sofa-2", "sofa-3"]
    # no item: the user's last viewed item (sofa-2, which has no page yet): the fallback
    res = http.get("/v1/decisions/u1", params={"placement": "product"}).json()
    assert res["mode"] == "fallback"


def test_unknown_user_gets_the_fallback(http: httpx.Client, known: str) -> None:
    res = http.get("/v1/decisions/stranger")
    assert res.status_code == 200
    body = res.json()
    assert body["mode"] == "fallback" and body["reason"] == "popular right now"
    assert [i for i, _ in body["items"]] == ["pop-1", "pop-2", "pop-3"]
    assert body["reasons"] == ["trending now"] * 3
    assert http.get("/v1/decisions/stranger", params={"placement": "hero"}).json()["theme"]
    assert http.get("/v1/decisions/stranger", params={"placement": "offer"}).json()["show"] is False
    gone = http.get("/v1/decisions/stranger", params={"fallback": "0"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "unknown_user"


def test_etag_and_304(http: httpx.Client, r: redis.Redis, known: str) -> None:
    first = http.get("/v1/decisions/u1")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and first.headers["Cache-Control"] == "private, no-cache"
    again = http.get("/v1/decisions/u1", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    assert (
        http.get("/v1/decisions/u1", headers={"If-None-Match": f'"x", W/{etag}'}).status_code == 304
    )
    r.set("rtp:d:u1", orjson.dumps({**DOC, "ts": NOW + 1}))
    changed = http.get("/v1/decisions/u1", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_bad_decision_requests(http: httpx.Client) -> None:
    res = http.get("/v1/decisions/u1", params={"placement": "sidebar"})
    assert res.status_code == 400 and res.json()["error"]["code"] == "invalid_request"
    assert http.get("/v1/decisions/" + "x" * 200).status_code == 400


def test_rerank_orders_by_the_session_with_reasons(http: httpx.Client, known: str) -> None:
    items = ["book-1", "lamp-1", "sofa-5", "sofa-9", "sofa-1", "nope"]
    res = http.post("/v1/rerank", json={"user": "u1", "query": "sofa", "items": items})
    assert res.status_code == 200
    body = res.json()
    assert body["mode"] == "personalized"
    order = [x["id"] for x in body["items"]]
    assert sorted(order) == sorted(items)
    assert order[:3] == ["sofa-1", "sofa-9", "sofa-5"]
    reasons = {x["id"]: x["reason"] for x in body["items"]}
    assert reasons["sofa-9"] == "still in your cart"
    assert reasons["sofa-1"] == "you viewed this earlier in this visit"
    assert reasons["sofa-5"] == "because you viewed sofa-2 (sofas)"
    assert reasons["book-1"] == "matches your search"


def test_rerank_for_strangers_and_bad_bodies(http: httpx.Client, known: str) -> None:
    res = http.post("/v1/rerank", json={"user": "x", "query": "q", "items": ["b", "a"]}).json()
    assert res["mode"] == "original" and [i["id"] for i in res["items"]] == ["b", "a"]
    for body in ({"user": "u1"}, {"user": "u1", "items": [{"id": 1}]}, {"items": []}, [1]):
        assert http.post("/v1/rerank", json=body).status_code == 400
    assert http.post("/v1/rerank", content=b"{").status_code == 400
    many = {"user": "u1", "items": [str(i) for i in range(1001)]}
    assert http.post("/v1/rerank", json=many).status_code == 413


def test_forget_and_consent(http: httpx.Client, r: redis.Redis, known: str) -> None:
    res = http.delete("/v1/users/u1")
    assert res.status_code == 202 and res.json() == {"user": "u1", "forgotten": True}
    assert not r.exists("rtp:d:u1")
    assert http.get("/v1/decisions/u1").json()["mode"] == "fallback"
    assert (
        http.put("/v1/users/u1/consent", json={"personalize": False}).json()["personalize"] is False
    )
    assert r.sismember("rtp:dnp", "u1")
    assert http.put("/v1/users/u1/consent", json={"personalize": True}).status_code == 200
    assert not r.sismember("rtp:dnp", "u1")
    # forget leaves a tombstone every flow reads (no stream event); consent changes are events
    assert r.hexists("rtp:tomb", user_hash("u1"))
    assert [e["type"] for e in stream_events(r)] == ["dnp", "dnp"]
    assert http.put("/v1/users/u1/consent", json={"personalize": "no"}).status_code == 400
    assert http.put("/v1/users/u1/consent", content=b"nope").status_code == 400


def test_edge_model_default_and_published(http: httpx.Client, r: redis.Redis) -> None:
    res = http.get("/v1/edge-model")
    assert res.status_code == 200
    doc = res.json()
    assert doc["v"] == 1 and doc["rules"] == []
    assert res.headers["Cache-Control"] == "public, max-age=60"
    etag = res.headers["ETag"]
    assert http.get("/v1/edge-model", headers={"If-None-Match": etag}).status_code == 304
    model = EdgeModel(min_support=1.0)
    model.observe({"referral": "search", "device": "mobile", "hour": 20}, ["sofas"], ["s1"], NOW)
    raw = orjson.dumps(model.document())
    r.set("rtp:meta:edge", raw)
    res = http.get("/v1/edge-model", headers={"If-None-Match": etag, "Accept-Encoding": "gzip"})
    assert res.status_code == 200 and res.content == raw
    assert res.headers["ETag"] != etag and res.headers["Content-Encoding"] == "gzip"
    assert len(gzip.compress(res.content)) <= 8192


def test_rtp_js(http: httpx.Client) -> None:
    res = http.get("/rtp.js", headers={"Accept-Encoding": "identity"})
    assert res.status_code == 200 and "javascript" in res.headers["Content-Type"]
    assert len(gzip.compress(res.content, 9)) <= 4096
    assert res.content.startswith(b"/*! rtp.js")
    # what is served is the readable source without indentation and comment lines
    source = static_bytes("rtp.js")
    assert res.content == compact_js(source)
    assert [ln.strip() for ln in source.decode().splitlines() if ln.strip()
            and not ln.strip().startswith("//")] == res.text.splitlines()  # fmt: skip
    if shutil.which("node"):
        subprocess.run(["node", "--check", "-"], input=res.content, check=True)
    zipped = http.get("/rtp.js", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip" and zipped.content == res.content
    assert http.get("/rtp.js", headers={"If-None-Match": res.headers["ETag"]}).status_code == 304


def test_healthz_and_metrics(http: httpx.Client, r: redis.Redis) -> None:
    assert http.get("/healthz").json() == {"status": "ok", "redis": "ok"}
    r.set("rtp:meta:stats:live:0", orjson.dumps({"event_time": time.time() - 2, "max_lag_s": 0.4}))
    http.post("/v1/events", json={"type": "page_view", "user": "u", "ts": time.time()})
    http.post("/v1/events", json={"type": "nope", "user": "u", "ts": time.time()})
    http.get("/v1/decisions/u")
    text = http.get("/metrics").text
    lines = text.splitlines()
    assert any(
        ln.startswith("rtp_http_events_accepted_total{") and ln.endswith(" 1") for ln in lines
    )
    assert any('reason="unknown_type"} 1' in ln for ln in lines)
    assert 'route="decisions",le="+Inf"' in text and 'route="events",status="202"' in text
    lag = next(ln for ln in lines if ln.startswith('rtp_flow_lag_seconds{run="live",shard="0"}'))
    assert 1.0 < float(lag.split()[-1]) < 60.0
    assert 'rtp_flow_max_lag_seconds{run="live",shard="0"} 0.4' in text
    assert any(ln.startswith('rtp_stream_backlog{partition="rtp:events:') for ln in lines)
    for ln in lines:  # every sample line is "name{labels} number"
        if not ln.startswith("#"):
            float(ln.rsplit(" ", 1)[1])


def test_errors_are_json(http: httpx.Client) -> None:
    res = http.get("/nowhere")
    assert res.status_code == 404 and res.json()["error"]["code"] == "not_found"
    res = http.get("/v1/events")
    assert res.status_code == 405 and res.json()["error"]["code"] == "method_not_allowed"


def test_cors_preflight(http: httpx.Client) -> None:
    res = http.options("/v1/events", headers={"Origin": "https://shop.example",
                                              "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert res.status_code == 204
    assert res.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in res.headers["Access-Control-Allow-Methods"]
    assert http.get("/v1/decisions/u").headers["Access-Control-Expose-Headers"]


def test_openapi_document(http: httpx.Client, server: Any) -> None:
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.1") and doc["info"]["title"]
    app = server.server.config.app
    for route in app.routes:
        methods = set(getattr(route, "methods", None) or ()) - {"HEAD", "OPTIONS"}
        if not methods:
            continue
        assert route.path in doc["paths"], route.path
        for m in methods:
            op = doc["paths"][route.path][m.lower()]
            assert op["responses"] and op["operationId"] and op["summary"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            out = [node["$ref"]] if "$ref" in node else []
            return out + [x for v in node.values() for x in refs(v)]
        if isinstance(node, list):
            return [x for v in node for x in refs(v)]
        return []

    for ref in refs(doc):
        node: Any = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        assert isinstance(node, dict)
    ids = [op["operationId"] for p in doc["paths"].values() for op in p.values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("placement", ["home", "hero", "offer", "recent", "nav", "product"])
def test_compact_values_answer_the_same_json_and_etag(
    http: httpx.Client, r: redis.Redis, known: str, placement: str
) -> None:
    """The flow now writes rtp.store.codec values: the same JSON, byte for byte, and ETag as
    the JSON that earlier versions wrote; product pages read from their bucket."""
    from rtp.store.codec import encode_decision, encode_page
    from rtp.store.store import page_key

    params = {"placement": placement}
    if placement == "product":
        params["item"] = "sofa-1"
    before = http.get("/v1/decisions/u1", params=params)
    r.set("rtp:d:u1", encode_decision(DOC))
    r.delete("rtp:n:sofa-1")
    r.hset(page_key("rtp:", "sofa-1"), "sofa-1", encode_page(["sofa-2", "sofa-3"], [1.0, 0.5]))
    after = http.get("/v1/decisions/u1", params=params)
    assert after.status_code == before.status_code == 200
    assert after.content == before.content
    assert after.headers["ETag"] == before.headers["ETag"]
    if placement == "product":  # and without item: the page of the user's last item
        r.hset(page_key("rtp:", "sofa-2"), "sofa-2", encode_page(["sofa-1"], [1.0]))
        res = http.get("/v1/decisions/u1", params={"placement": "product"}).json()
        assert res["for"] == "sofa-2" and res["items"] == [["sofa-1", 1.0]]
