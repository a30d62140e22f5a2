"""The HTTP doors of rtp: one ASGI app, built by :func:`create_app`, run by any ASGI server.

Why Starlette on uvicorn, not FastAPI: the collector and the decision API sit in front of a
Redis read that costs tens of microseconds, so the framework's own cost per request matters.
Starlette gives routing, the request/response objects and the lifespan, and nothing else; every
body is parsed and written with orjson by hand (no pydantic models, no validation layer, no
dependency injection), and the request and response shapes are declared once, in the OpenAPI
document of :mod:`rtp.http.openapi`, served at ``/openapi.json``.

Endpoints (see ``docs/http.md``)::

    POST   /v1/events                 the collector (rtp schema v1 or Segment calls)
    GET    /v1/decisions/{user}       a placement's decision (ETag; fallback for new visitors)
    POST   /v1/rerank                 search results reordered by the session, with reasons
    DELETE /v1/users/{user}           forget a user now
    PUT    /v1/users/{user}/consent   {"personalize": false|true}
    GET    /v1/edge-model             the edge model document (ETag, public cache)
    GET    /rtp.js                    the browser SDK
    GET    /healthz                   Redis ping
    GET    /metrics                   Prometheus text
    GET    /openapi.json              the OpenAPI 3.1 document
    GET    /shop/...                  the demo shop (``demo=True`` only)

Resources open and close in the lifespan, never at import: a small pipelined asyncio Redis
client for reads (:mod:`rtp.http.resp`: measured 5-10x cheaper per call here than
``redis.asyncio`` or a blocking call in a thread), redis-py in a bounded thread pool for the
stream append and the control calls (``rtp.store.streams.append``, ``Client.forget``), and, when
no Redis URL is configured, an embedded ``redis-server``. The app keeps no state between
requests besides caches and counters, so any number of workers can serve one Redis:
``uvicorn 'rtp.http.app:create_app' --factory --workers 4`` builds each worker's app from the
``RTP_*`` environment (:meth:`ServeSettings.from_env`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gzip
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any

import anyio
import anyio.to_thread
import orjson
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from rtp.decisions.edge import empty_document
from rtp.errors import Backpressure, StoreUnavailable
from rtp.http.bots import BotDetector
from rtp.http.collector import Collector, Plan
from rtp.http.errors import ApiError, error_response
from rtp.http.metrics import Metrics
from rtp.http.openapi import openapi_document
from rtp.http.reads import fallback, read_decision, rerank
from rtp.http.resp import AsyncRedis
from rtp.http.settings import ServeSettings
from rtp.store import streams
from rtp.store.client import Client
from rtp.store.server import redis_url
from rtp.store.store import Store, connect

__all__ = ["PLACEMENTS", "compact_js", "create_app", "static_bytes"]

log = logging.getLogger("rtp.http")

PLACEMENTS = frozenset({"home", "product", "recent", "nav", "hero", "offer", "assist"})
MAX_ID_CHARS = 128
MAX_RERANK_ITEMS = 1_000
_GROUP_EVENTS = 5_000  # events per group commit (a request is never split)
_DRAIN_LIMIT = 8 << 20  # an oversized body is read (and dropped) up to this, then the 413
_JSON = "application/json"
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, StoreUnavailable)

Handler = Callable[[Request], Awaitable[Response]]


def _etag(body: bytes) -> str:
    return '"' + hashlib.blake2b(body, digest_size=8).hexdigest() + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    for part in header.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=_JSON, headers=headers)


class _Static:
    """A static file kept in memory with its ETag and gzipped bytes."""

    def __init__(self, body: bytes, media_type: str, cache: str) -> None:
        self.body = body
        self.gz = gzip.compress(body, 9, mtime=0)
        self.etag = _etag(body)
        self.media_type = media_type
        self.cache = cache

    def respond(self, request: Request) -> Response:
        headers = {"ETag": self.etag, "Cache-Control": self.cache, "Vary": "Accept-Encoding"}
        if _etag_matches(request.headers.get("if-none-match"), self.etag):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(self.gz, media_type=self.media_type, headers=headers)
        return Response(self.body, media_type=self.media_type, headers=headers)


def static_bytes(name: str) -> bytes:
    """A file of ``rtp/http/static`` (``rtp.js``, the demo shop's assets)."""
    return resources.files("rtp.http").joinpath("static", name).read_bytes()


def compact_js(source: bytes) -> bytes:
    """``rtp.js`` as served: the readable source without indentation, blank lines and whole-line
    ``//`` comments. Safe for a file written the way ``rtp.js`` is (no template literals or
    multi-line strings; a line break is never removed, so semicolon insertion is unchanged)."""
    lines = (line.strip() for line in source.decode("utf-8").splitlines())
    return "\n".join(ln for ln in lines if ln and not ln.startswith("//")).encode() + b"\n"


class Doors:
    """The app's state (settings, Redis clients, counters) and its endpoints."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.rtp = settings.rtp
        self.metrics = Metrics()
        self.collector = Collector(settings, BotDetector())
        self.aio: AsyncRedis | None = None
        self.sync: redis.Redis | None = None
        self.store: Store | None = None
        self.client: Client | None = None
        self.limiter = anyio.CapacityLimiter(settings.threads)
        self._pending: collections.deque[tuple[Plan, asyncio.Future[dict[str, Any]]]] = (
            collections.deque()
        )
        self._committing = False
        self.stack = contextlib.ExitStack()
        js = compact_js(static_bytes("rtp.js"))
        self.js = _Static(js, "application/javascript", "public, max-age=300")
        self._edge_default = orjson.dumps(empty_document())
        self._edge: _Static | None = None
        self.api_key = settings.api_key.encode() if settings.api_key else None
        self.cors = {
            "Access-Control-Allow-Origin": settings.cors_origins,
            "Access-Control-Expose-Headers": "ETag, Retry-After",
        }

    # -- life cycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        url = self.stack.enter_context(redis_url(self.rtp))
        self.rtp = self.rtp.replace(redis_url=url)
        self.aio = AsyncRedis(url, timeout_s=self.rtp.redis_timeout_s)
        self.sync = connect(url, self.rtp.replace(redis_pool_size=self.settings.threads))
        self.store = Store(self.rtp.replace(redis_retries=1), self.sync)
        # its calls run in worker threads beside the event loop: they block, never poll (a
        # polling thread would hold the CPU the loop wants)
        self.client = Client(self.sync, self.rtp.replace(read_spin_us=0), stream=self.rtp.stream)

    async def close(self) -> None:
        if self.aio is not None:
            await self.aio.aclose()
        if self.sync is not None:
            self.sync.close()
        self.stack.close()

    # -- plumbing -------------------------------------------------------------------------------

    def endpoint(self, route: str, fn: Handler, write: bool = False) -> Handler:
        """``fn`` with JSON errors, the API key check (``write``), CORS and metrics."""
        metrics = self.metrics
        cors = self.cors

        async def handler(request: Request) -> Response:
            t0 = time.perf_counter()
            try:
                if write and self.api_key is not None:
                    self.check_key(request)
                response = await fn(request)
            except ApiError as e:
                metrics.error(e.code)
                response = error_response(e.status, e.code, e.message, e.headers)
            except Backpressure as e:
                metrics.backpressure += 1
                metrics.error("backpressure")
                retry = max(1, int(e.retry_after_s + 0.999))
                response = error_response(429, "backpressure", str(e), {"Retry-After": str(retry)})
            except _REDIS_DOWN as e:
                metrics.error("store_unavailable")
                response = error_response(
                    503, "store_unavailable", f"Redis did not answer: {e}", {"Retry-After": "1"}
                )
            except RedisError as e:
                metrics.error("store_error")
                response = error_response(503, "store_error", f"Redis refused: {e}")
            response.headers.update(cors)
            metrics.answered(route, response.status_code, time.perf_counter() - t0)
            return response

        return handler

    def check_key(self, request: Request) -> None:
        assert self.api_key is not None
        given = request.headers.get("x-api-key")
        if given is None:
            auth = request.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                given = auth[7:].strip()
        if given is None or not hmac.compare_digest(given.encode(), self.api_key):
            raise ApiError(
                401,
                "unauthorized",
                "this endpoint needs the API key (Authorization: Bearer KEY or X-API-Key)",
                {"WWW-Authenticate": "Bearer"},
            )

    async def body(self, request: Request, limit: int) -> bytes:
        """The request body, at most ``limit`` bytes (else 413; the rest is read and dropped
        up to a bound, so the client can read the answer)."""
        length = request.headers.get("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise ApiError(400, "invalid_request", "Content-Length is not a number") from None
            if declared > limit:
                await self._drain(request, declared)
                raise ApiError(
                    413,
                    "request_too_large",
                    f"the body is {declared:,} bytes; at most {limit:,} per request: split it",
                )
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                await self._drain(request, size)
                raise ApiError(
                    413,
                    "request_too_large",
                    f"the body is over {limit:,} bytes; at most {limit:,} per request: split it",
                )
            chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    async def _drain(request: Request, seen: int) -> None:
        if seen > _DRAIN_LIMIT:
            return
        total = 0
        with contextlib.suppress(Exception):
            async for chunk in request.stream():
                total += len(chunk)
                if total > _DRAIN_LIMIT:
                    break

    def client_ip(self, request: Request) -> str | None:
        if self.settings.trust_forwarded:
            forwarded = request.headers.get("x-forwarded-for")
            if forwarded:
                return forwarded.split(",", 1)[0].strip() or None
        client = request.client
        return client.host if client is not None else None

    async def commit(self, plan: Plan) -> dict[str, Any]:
        """Commit a request's plan together with every plan waiting at that moment (one thread
        hand-off, one de-duplication pipeline and one append for the group; see
        :meth:`Collector.commit_many`). A group's error is every member's error."""
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending.append((plan, fut))
        if not self._committing:
            self._committing = True
            self._committer = asyncio.get_running_loop().create_task(self._commit_pending())
        return await fut

    async def _commit_pending(self) -> None:
        assert self.sync is not None and self.store is not None
        try:
            while self._pending:
                group: list[tuple[Plan, asyncio.Future[dict[str, Any]]]] = []
                events = 0
                while self._pending and (not group or events < _GROUP_EVENTS):
                    plan, fut = self._pending.popleft()
                    group.append((plan, fut))
                    events += sum(len(e) for e in plan.events)
                plans = [plan for plan, _ in group]
                try:
                    results = await self.blocking(
                        self.collector.commit_many, self.sync, self.store, plans
                    )
                except Exception as e:  # noqa: BLE001 - handed to every request of the group
                    for _, fut in group:
                        if not fut.done():
                            fut.set_exception(e)
                else:
                    for (_, fut), result in zip(group, results, strict=True):
                        if not fut.done():
                            fut.set_result(result)
        finally:
            self._committing = False

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    @staticmethod
    def user_of(request: Request) -> str:
        user = str(request.path_params["user"])
        if not 0 < len(user) <= MAX_ID_CHARS:
            raise ApiError(400, "invalid_request", f"a user id has 1 to {MAX_ID_CHARS} characters")
        return user

    # -- endpoints ------------------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        body = await self.body(request, self.settings.max_request_bytes)
        plan = self.collector.plan(body, self.client_ip(request), request.headers.get("user-agent"))
        result = await self.commit(plan)
        m = self.metrics
        m.accepted += result["accepted"]
        m.appended += result["appended"]
        m.duplicates += result["duplicates"]
        m.bots += result["bots"]
        m.ignored += result["ignored"]
        for rej in result["rejected"]:
            m.reject(rej["reason"])
        return _json(result, 202)

    async def decision(self, request: Request) -> Response:
        user = self.user_of(request)
        q = request.query_params
        placement = q.get("placement", "home")
        if placement not in PLACEMENTS:
            raise ApiError(
                400, "invalid_request", f"placement must be one of {', '.join(sorted(PLACEMENTS))}"
            )
        item = q.get("item") or None
        assert self.aio is not None
        doc, fallback_ids = await read_decision(self.aio, self.rtp, user, placement, item)
        if doc is None:
            if q.get("fallback", "1").lower() in ("0", "false", "no"):
                raise ApiError(404, "unknown_user", f"rtp has no decision for {user!r}")
            doc = fallback(placement, fallback_ids, self.rtp.home_n, item)
        body = orjson.dumps(doc)
        etag = _etag(body)
        headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
        if _etag_matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=_JSON, headers=headers)

    async def rerank(self, request: Request) -> Response:
        body = await self.body(request, self.settings.max_request_bytes)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, "invalid_json", f"the body is not JSON: {e}") from None
        if not isinstance(doc, dict):
            raise ApiError(400, "invalid_request", 'send {"user", "query", "items": [...]}')
        user, query, items = doc.get("user"), doc.get("query", ""), doc.get("items")
        if not isinstance(user, (str, int)) or isinstance(user, bool) or not str(user):
            raise ApiError(400, "invalid_request", "'user' must be a user id")
        if not isinstance(query, str):
            raise ApiError(400, "invalid_request", "'query' must be a string")
        if not isinstance(items, list) or not all(
            isinstance(i, (str, int)) and not isinstance(i, bool) for i in items
        ):
            raise ApiError(400, "invalid_request", "'items' must be an array of item ids")
        if len(items) > MAX_RERANK_ITEMS:
            raise ApiError(413, "request_too_large", f"at most {MAX_RERANK_ITEMS} items a call")
        assert self.aio is not None
        ranked, mode = await rerank(self.aio, self.rtp, str(user), query, [str(i) for i in items])
        return _json({"user": str(user), "query": query, "mode": mode, "items": ranked})

    async def forget(self, request: Request) -> Response:
        user = self.user_of(request)
        assert self.client is not None
        await self.blocking(self.client.forget, user)
        return _json({"user": user, "forgotten": True}, 202)

    async def consent(self, request: Request) -> Response:
        user = self.user_of(request)
        body = await self.body(request, 4_096)
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, "invalid_json", f"the body is not JSON: {e}") from None
        personalize = doc.get("personalize") if isinstance(doc, dict) else None
        if not isinstance(personalize, bool):
            raise ApiError(400, "invalid_request", 'send {"personalize": true} or false')
        assert self.client is not None
        await self.blocking(self.client.set_do_not_personalize, user, not personalize)
        return _json({"user": user, "personalize": personalize})

    async def edge_model(self, request: Request) -> Response:
        assert self.aio is not None
        raw: Any = await self.aio.get(self.rtp.key_prefix + "meta:edge")
        body = bytes(raw) if raw else self._edge_default
        cached = self._edge
        if cached is None or cached.body != body:
            cache = f"public, max-age={self.settings.edge_max_age_s}"
            cached = self._edge = _Static(body, _JSON, cache)
        return cached.respond(request)

    async def script(self, request: Request) -> Response:
        return self.js.respond(request)

    async def healthz(self, request: Request) -> Response:
        assert self.aio is not None
        try:
            await self.aio.ping()
        except (RedisError, OSError) as e:
            raise ApiError(503, "store_unavailable", f"Redis did not answer PING: {e}") from None
        return _json({"status": "ok", "redis": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        assert self.aio is not None
        flow: list[tuple[str, str, dict[str, float]]] = []
        backlog: list[tuple[str, int]] = []
        now = time.time()
        with contextlib.suppress(RedisError, OSError, ValueError):
            prefix = self.rtp.key_prefix + "meta:stats:"
            keys = sorted(await self.aio.scan(prefix.replace("*", "\\*") + "*", limit=256))
            values = await self.aio.mget([k.decode() for k in keys]) if keys else []
            for key, value in zip(keys, values, strict=True):
                if not value:
                    continue
                stats = orjson.loads(value)
                name = key.decode()[len(prefix) :]
                run, _, shard = name.rpartition(":")
                et = float(stats.get("event_time") or 0.0)
                lag = max(0.0, now - et) if et else 0.0
                flow.append((run, shard, {**stats, "lag_s": lag}))
            raw = await self.aio.execute("HGET", f"{self.rtp.stream}:config", "partitions")
            parts = int(raw) if raw else self.rtp.stream_partitions
            names = streams.partition_names(self.rtp.stream, parts)
            lengths = await self.aio.pipeline([["XLEN", name] for name in names])
            backlog = list(zip(names, (int(n) for n in lengths), strict=True))
        text = self.metrics.render(flow, backlog)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(self, request: Request) -> Response:
        return _json(openapi_document())

    async def preflight(self, request: Request) -> Response:
        return Response(
            status_code=204,
            headers={
                **self.cors,
                "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Authorization, X-API-Key, "
                "If-None-Match",
                "Access-Control-Max-Age": "600",
            },
        )

    def routes(self) -> list[BaseRoute]:
        e = self.endpoint
        routes: list[BaseRoute] = [
            Route("/v1/events", e("events", self.events, write=True), methods=["POST"]),
            Route("/v1/decisions/{user}", e("decisions", self.decision), methods=["GET"]),
            Route("/v1/rerank", e("rerank", self.rerank), methods=["POST"]),
            Route("/v1/users/{user}", e("forget", self.forget, write=True), methods=["DELETE"]),
            Route(
                "/v1/users/{user}/consent",
                e("consent", self.consent, write=True),
                methods=["PUT"],
            ),
            Route("/v1/edge-model", e("edge_model", self.edge_model), methods=["GET"]),
            Route("/v1/{path:path}", self.preflight, methods=["OPTIONS"]),
            Route("/rtp.js", e("rtp_js", self.script), methods=["GET"]),
            Route("/healthz", e("healthz", self.healthz), methods=["GET"]),
            Route("/metrics", self.metrics_text, methods=["GET"]),
            Route("/openapi.json", self.openapi, methods=["GET"]),
        ]
        if self.settings.demo:
            from rtp.http.demo.shop import Shop

            routes.append(Mount("/shop", routes=Shop(self).routes()))
            routes.append(Route("/", _redirect_to_shop, methods=["GET"]))
        return routes


async def _redirect_to_shop(request: Request) -> Response:
    return Response(status_code=307, headers={"Location": "/shop/"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", "an unexpected error; it was logged")


def create_app(settings: ServeSettings | None = None) -> Starlette:
    """The ASGI app. Without ``settings`` they are read from ``RTP_*`` (the ``--factory`` path
    for ``uvicorn 'rtp.http.app:create_app' --factory``)."""
    if settings is None:
        settings = ServeSettings.from_env()
    doors = Doors(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await doors.open()
        try:
            yield
        finally:
            await doors.close()

    app = Starlette(
        routes=doors.routes(),
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
    )
    app.state.doors = doors
    return app
