"""The demo shop's pages: home, category, product, search and cart, in plain HTML with ``rtp.js``.

``rtp.js`` loads in ``<head>`` (like any client-side testing tool that must not flicker): it
personalizes each placement from the edge model as soon as the parser is past it, before the
first paint. Every page marks its personalized blocks with ``data-rtp-placement`` and holds
their static content (what a visitor sees when rtp is down or not allowed), inlines the current
edge model (``<script id="rtp-edge">``: the first page is personalized with no request at all),
and sends the Segment e-commerce events a real shop sends (Product Viewed, Product List Viewed,
Products Searched, Product Added, Order Completed) with the catalogue's categories and prices.
``/shop/static/shop.js`` renders the decisions with the catalogue and re-ranks search results.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from rtp.http.demo.catalog import Product, catalogue, categories

if TYPE_CHECKING:
    from rtp.http.app import Doors

__all__ = ["Shop"]

_STUB = "window.rtp=window.rtp||function(){(rtp.q=rtp.q||[]).push(arguments)};"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _price(p: float) -> str:
    return f"€{p:,.2f}"


def card(p: Product, why: str = "") -> str:
    """One product tile (``data-rtp-item`` so rtp.js can reorder it)."""
    return (
        f'<li data-rtp-item="{_e(p.id)}"><a href="/shop/p/{_e(p.id)}">'
        f'<span class="thumb" data-cat="{_e(p.category)}">{_e(p.name[:1])}</span>'
        f"<b>{_e(p.name)}</b><small>{_e(p.category)} · {_price(p.price)}</small></a>"
        f'<em class="why">{_e(why)}</em></li>'
    )


class Shop:
    """The shop's routes, reading the edge model through the app's Redis client."""

    def __init__(self, doors: Doors) -> None:
        self.doors = doors
        self.items = catalogue()
        self.cats = categories()
        by_cat: dict[str, list[Product]] = {}
        for p in self.items.values():
            by_cat.setdefault(p.category, []).append(p)
        self.by_cat = by_cat
        # the static "bestsellers": the first item of the eight largest categories
        self.bestsellers = [by_cat[c][0] for c in self.cats[:8]]
        table = {p.id: [p.name, p.category, p.price] for p in self.items.values()}
        self.catalog_js = (
            "window.SHOP=" + orjson.dumps({"items": table, "categories": self.cats}).decode() + ";"
        ).encode()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.home, methods=["GET"]),
            Route("/c/{category}", self.category, methods=["GET"]),
            Route("/p/{item}", self.product, methods=["GET"]),
            Route("/search", self.search, methods=["GET"]),
            Route("/cart", self.cart, methods=["GET"]),
            Route("/catalog.js", self.catalog, methods=["GET"]),
            Route("/static/{name}", self.static, methods=["GET"]),
        ]

    async def _edge_json(self) -> str:
        doors = self.doors
        raw: Any = None
        if doors.aio is not None:
            try:
                raw = await doors.aio.get(doors.rtp.key_prefix + "meta:edge")
            except Exception:  # noqa: BLE001 - the page renders without the edge model
                raw = None
        text = bytes(raw).decode() if raw else ""
        return text.replace("</", "<\\/")

    async def page(self, title: str, body: str, script: str = "") -> HTMLResponse:
        nav = "".join(
            f'<a href="/shop/c/{_e(c)}" data-cat="{_e(c)}">{_e(c)}</a>' for c in self.cats[:12]
        )
        edge = await self._edge_json()
        edge_tag = f'<script id="rtp-edge" type="application/json">{edge}</script>' if edge else ""
        doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<title>{_e(title)} · rtp demo shop</title>
<link rel="stylesheet" href="/shop/static/shop.css">
{edge_tag}
<script>{_STUB}{script}</script>
<script src="/shop/catalog.js"></script>
<script src="/shop/static/shop.js"></script>
<script src="/rtp.js"></script></head>
<body>
<header><a class="logo" href="/shop/">rtp<span>shop</span></a>
<form action="/shop/search"><input name="q" placeholder="Search" aria-label="Search"></form>
<a href="/shop/cart" id="cart-link">Cart</a>
<label class="consent"><input type="checkbox" id="consent" checked> Personalize</label>
<button id="forget" type="button">Forget me</button></header>
<nav data-rtp-placement="nav">{nav}<span class="reason" data-rtp-reason></span></nav>
<main>{body}</main>
<footer>A demo of <a href="/openapi.json">rtp</a>: each personalized block says where its
content came from (<code>data-rtp-source</code>: edge, server or fallback) and why.</footer>
</body></html>"""
        return HTMLResponse(doc)

    async def home(self, request: Request) -> Response:
        tiles = "".join(card(p) for p in self.bestsellers)
        body = f"""
<section class="hero" data-rtp-placement="hero">
<h1 data-rtp-message>Welcome to the rtp shop</h1>
<p class="reason" data-rtp-reason>Our bestsellers this week</p>
<a class="cta" href="/shop/c/{_e(self.cats[0])}">Shop {_e(self.cats[0])}</a></section>
<section class="recs" data-rtp-placement="home"><h2>Recommended for you</h2>
<p class="reason" data-rtp-reason>Our bestsellers</p><ul class="grid">{tiles}</ul></section>
<section class="recs" data-rtp-placement="recent"><h2>Continue shopping</h2>
<p class="reason" data-rtp-reason></p><ul class="grid"></ul></section>"""
        return await self.page("Home", body)

    async def category(self, request: Request) -> Response:
        name = str(request.path_params["category"])
        items = self.by_cat.get(name)
        if items is None:
            return await self.page("Not found", "<h1>No such category</h1>")
        tiles = "".join(card(p) for p in items[:24])
        body = f'<h1>{_e(name)}</h1><ul class="grid">{tiles}</ul>'
        props = orjson.dumps({"category": name}).decode()
        return await self.page(name, body, f"rtp('track','Product List Viewed',{props});")

    async def product(self, request: Request) -> Response:
        p = self.items.get(str(request.path_params["item"]))
        if p is None:
            return await self.page("Not found", "<h1>No such product</h1>")
        also = "".join(card(q) for q in [q for q in self.by_cat[p.category] if q.id != p.id][:4])
        props = {"product_id": p.id, "name": p.name, "category": p.category, "price": p.price}
        body = f"""
<article class="product" data-id="{_e(p.id)}">
<span class="thumb big" data-cat="{_e(p.category)}">{_e(p.name[:1])}</span>
<div><h1>{_e(p.name)}</h1><p>{_e(p.category)} · <b>{_price(p.price)}</b></p>
<button id="add" type="button" data-id="{_e(p.id)}">Add to cart</button></div></article>
<section class="recs" data-rtp-placement="product" data-rtp-item="{_e(p.id)}">
<h2>Shoppers also viewed</h2><p class="reason" data-rtp-reason>More {_e(p.category)}</p>
<ul class="grid">{also}</ul></section>"""
        script = f"rtp('track','Product Viewed',{orjson.dumps(props).decode()});"
        return await self.page(p.name, body, script)

    async def search(self, request: Request) -> Response:
        query = request.query_params.get("q", "").strip()[:100]
        words = query.lower().split()
        hits = [
            p
            for p in self.items.values()
            if words and all(w in f"{p.name} {p.category}".lower() for w in words)
        ][:40]
        tiles = "".join(card(p) for p in hits)
        body = (
            f'<h1>Results for “{_e(query)}”</h1><p class="reason" id="results-reason">'
            f"{len(hits)} products, in catalogue order</p>"
            f'<ul class="grid" id="results" data-query="{_e(query)}">{tiles}</ul>'
        )
        props = orjson.dumps({"query": query}).decode()
        script = f"rtp('track','Products Searched',{props});" if query else ""
        return await self.page(f"Search {query}", body, script)

    async def cart(self, request: Request) -> Response:
        body = (
            '<h1>Your cart</h1><ul class="grid" id="cart"></ul><p id="total"></p>'
            '<button id="checkout" type="button">Place order</button>'
        )
        return await self.page("Cart", body, "rtp('track','Cart Viewed',{});")

    async def catalog(self, request: Request) -> Response:
        return Response(
            self.catalog_js,
            media_type="application/javascript",
            headers={"Cache-Control": "public, max-age=300"},
        )

    async def static(self, request: Request) -> Response:
        from rtp.http.app import static_bytes

        name = str(request.path_params["name"])
        kinds = {"shop.css": "text/css", "shop.js": "application/javascript"}
        if name not in kinds:
            return Response(status_code=404)
        return Response(
            static_bytes(name), media_type=kinds[name], headers={"Cache-Control": "no-cache"}
        )
