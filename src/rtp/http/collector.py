"""The event collector behind ``POST /v1/events``: parse, map, validate, filter, de-duplicate,
append.

A request body is one rtp schema-v1 event, a JSON array of them, one Segment-style call, or a
Segment ``{"batch": [...]}``. :meth:`Collector.plan` does everything that needs no Redis, in
the event loop: each record is mapped (:mod:`rtp.http.segment`), enriched with the request's
IP and user agent when it has none, validated with :func:`rtp.capture.events.from_dict` (the
flow's own validation) and checked for bots; it gets a de-duplication key, its ``messageId`` or
else a fingerprint of the record without its send time (``sentAt``). :meth:`Collector.commit`
then does the Redis work in a worker thread, in at most three round trips, for every request
waiting at that moment at once (:meth:`Collector.commit_many`, a group commit: under load one
thread hand-off and one append serve many requests, and each request is still all or nothing):

1. ``SET {prefix}seen:{key} 1 NX EX ttl`` for every record, in one pipeline: a record whose key
   exists is a retry (a duplicate) and is dropped;
2. :func:`rtp.store.streams.append` of every remaining event, one atomic server-side call; on
   :class:`rtp.errors.Backpressure` (or a Redis failure) the keys set in step 1 are deleted
   again, so the client's retry is not mistaken for a duplicate, and nothing is accepted;
3. rejections, if any, to the flow's dead letters (:meth:`rtp.store.store.Store.write_rejections`,
   idempotent by position ``http:{key}``).

The raw IP is never stored nor logged: the stream gets ``context.country`` (``append`` resolves
it), and a dead letter's ``raw`` is the record with every ``context.ip`` removed and any
remaining dotted-quad address masked.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Mapping
from typing import Any

import orjson
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from rtp.capture.events import (
    INVALID_JSON,
    MIN_TS,
    OVERSIZED,
    TIMESTAMP_OUT_OF_RANGE,
    Event,
    Rejection,
    from_dict,
)
from rtp.errors import Backpressure, StoreUnavailable
from rtp.http.bots import BotDetector
from rtp.http.errors import ApiError
from rtp.http.segment import Unmapped, is_segment, to_events
from rtp.http.settings import ServeSettings
from rtp.store import streams
from rtp.store.store import Store

__all__ = ["Collector", "Plan", "fingerprint"]

_SEND_TIME_FIELDS = ("sentAt", "receivedAt")
_IPV4 = re.compile(rb"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)


def fingerprint(record: Mapping[str, Any]) -> bytes:
    """A 16-byte digest of a record without its send time: the same record sent again (a retry)
    has the same fingerprint; two events that differ in anything else, event time included,
    do not."""
    if any(name in record for name in _SEND_TIME_FIELDS):
        record = {k: v for k, v in record.items() if k not in _SEND_TIME_FIELDS}
    try:
        body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # pragma: no cover - parsed JSON always dumps
        body = repr(record).encode()
    return hashlib.blake2b(body, digest_size=16).digest()


def _scrubbed_raw(record: Any) -> bytes:
    """The record as JSON with no IP address in it (for the dead letters)."""
    if isinstance(record, dict):
        ctx = record.get("context")
        if isinstance(ctx, dict) and "ip" in ctx:
            record = {**record, "context": {k: v for k, v in ctx.items() if k != "ip"}}
    try:
        raw = orjson.dumps(record)
    except TypeError:  # pragma: no cover
        raw = b""
    return _IPV4.sub(b"0.0.0.0", raw[:4096])[:1024]


class Plan:
    """What a request asks for, before Redis: candidates, rejections and counts."""

    __slots__ = ("keys", "events", "owners", "rejected", "rejections", "bots", "ignored", "n")

    def __init__(self) -> None:
        self.keys: list[bytes] = []  # de-duplication key per candidate record
        self.events: list[list[dict[str, Any]]] = []  # the candidate's schema-v1 events
        self.owners: list[int] = []  # the candidate's index in the request
        self.rejected: list[dict[str, Any]] = []  # {"index", "reason", "detail"}
        self.rejections: list[Rejection] = []  # for the dead letters
        self.bots = 0
        self.ignored = 0
        self.n = 0  # records in the request


class Collector:
    """Turns request bodies into appended events (see the module docstring)."""

    def __init__(self, settings: ServeSettings, bots: BotDetector | None = None) -> None:
        self.settings = settings
        self.bots = bots or BotDetector()
        self.seen_prefix = (settings.rtp.key_prefix + "seen:").encode()
        self.max_ahead_s = settings.rtp.max_ahead_s

    # -- in the event loop ----------------------------------------------------------------------

    def records(self, body: bytes) -> tuple[list[Any], Mapping[str, Any] | None]:
        """The records of a body and a batch's shared ``context``; :class:`ApiError` 400 when
        the body is not JSON or not one of the accepted shapes."""
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ApiError(400, "invalid_json", f"the body is not JSON: {e}") from None
        if isinstance(doc, list):
            return doc, None
        if isinstance(doc, dict):
            batch = doc.get("batch")
            if batch is not None:
                if not isinstance(batch, list):
                    raise ApiError(400, "invalid_request", "'batch' must be an array of calls")
                ctx = doc.get("context")
                return batch, ctx if isinstance(ctx, dict) else None
            return [doc], None
        raise ApiError(
            400, "invalid_request", 'send an event, an array of events or {"batch": [...]}'
        )

    def plan(
        self,
        body: bytes,
        ip: str | None = None,
        user_agent: str | None = None,
        now: float | None = None,
    ) -> Plan:
        """Map, enrich, validate and filter every record of a body (no Redis)."""
        now = time.time() if now is None else now
        records, batch_ctx = self.records(body)
        plan = Plan()
        plan.n = len(records)
        max_event = self.settings.max_event_bytes
        check_size = len(body) > max_event
        horizon = now + self.max_ahead_s
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                self._reject(plan, index, record, INVALID_JSON, "the record is not a JSON object")
                continue
            if check_size:
                size = len(orjson.dumps(record))
                if size > max_event:
                    if len(records) == 1:
                        raise ApiError(
                            413,
                            "event_too_large",
                            f"the event is {size:,} bytes; at most {max_event:,} per event",
                        )
                    self._reject(plan, index, record, OVERSIZED, f"{size:,} bytes > {max_event:,}")
                    continue
            message_id = record.get("messageId")
            try:
                mapped = to_events(record, now, batch_ctx) if is_segment(record) else [record]
            except Unmapped as e:
                self._reject(plan, index, record, e.reason, e.detail)
                continue
            if not mapped:
                plan.ignored += 1
                continue
            if isinstance(message_id, str) and 0 < len(message_id) <= 256:
                uid = mapped[0].get("user", mapped[0].get("anon"))
                key = hashlib.blake2b(
                    f"{uid}\x00{message_id}".encode("utf-8", "surrogatepass"), digest_size=16
                ).digest()
            else:
                key = fingerprint(record)
            events: list[dict[str, Any]] = []
            rejection: tuple[str, str] | None = None
            bot = False
            for event in mapped:
                ctx = event.get("context")
                if ctx is None:
                    ctx = event["context"] = {}
                if isinstance(ctx, dict):
                    if ip and "ip" not in ctx:
                        ctx["ip"] = ip
                    if user_agent and "ua" not in ctx:
                        ctx["ua"] = user_agent
                checked = from_dict(event, "")
                if isinstance(checked, Rejection):
                    rejection = (checked.reason, checked.detail)
                    break
                if checked.type not in ("forget", "dnp") and not MIN_TS <= checked.ts < horizon:
                    rejection = (TIMESTAMP_OUT_OF_RANGE, f"ts {checked.ts!r} is out of range")
                    break
                if self.bots.is_bot(checked.ua):
                    bot = True
                    break
                events.append(_schema(checked))
            if rejection is not None:
                self._reject(plan, index, record, rejection[0], rejection[1], key)
                continue
            if bot:
                plan.bots += 1
                continue
            plan.keys.append(self.seen_prefix + key.hex().encode())
            plan.events.append(events)
            plan.owners.append(index)
        return plan

    def _reject(
        self,
        plan: Plan,
        index: int,
        record: Any,
        reason: str,
        detail: str,
        key: bytes | None = None,
    ) -> None:
        plan.rejected.append({"index": index, "reason": reason, "detail": detail})
        if key is None:
            key = fingerprint(record) if isinstance(record, dict) else _digest(record)
        plan.rejections.append(
            Rejection(reason, detail, "http:" + key.hex(), _scrubbed_raw(record))
        )

    # -- in a worker thread ---------------------------------------------------------------------

    def commit(self, r: redis.Redis, store: Store, plan: Plan) -> dict[str, Any]:
        """De-duplicate and append a plan's events; dead-letter its rejections. The 202 body.

        :raises rtp.errors.Backpressure: the stream is over its backlog; nothing was accepted.
        :raises rtp.errors.StoreUnavailable: Redis did not answer; nothing was accepted.
        """
        return self.commit_many(r, store, [plan])[0]

    def commit_many(self, r: redis.Redis, store: Store, plans: list[Plan]) -> list[dict[str, Any]]:
        """:meth:`commit` for several requests at once (group commit): one de-duplication
        pipeline and one append for all of them, all or nothing; a 202 body per plan."""
        keys = [key for plan in plans for key in plan.keys]
        fresh_flags: list[bool] = []
        if keys:
            ttl = self.settings.dedupe_ttl_s
            try:
                pipe = r.pipeline(transaction=False)
                for key in keys:
                    pipe.set(key, b"1", nx=True, ex=ttl)
                fresh_flags = [bool(ok) for ok in pipe.execute()]
            except _REDIS_ERRORS as e:
                raise StoreUnavailable(f"Redis did not answer the de-duplication: {e}") from e
        events: list[dict[str, Any]] = []
        fresh_keys: list[bytes] = []
        counts: list[tuple[int, int, int]] = []  # per plan: accepted, appended, duplicates
        n = 0
        for plan in plans:
            accepted = appended = duplicates = 0
            for key, evs in zip(plan.keys, plan.events, strict=True):
                if fresh_flags[n]:
                    accepted += 1
                    appended += len(evs)
                    events.extend(evs)
                    fresh_keys.append(key)
                else:
                    duplicates += 1
                n += 1
            counts.append((accepted, appended, duplicates))
        if events:
            try:
                streams.append(r, events, stream=self.settings.rtp.stream)
            except (Backpressure, *_REDIS_ERRORS) as e:
                self._release(r, fresh_keys)
                if isinstance(e, Backpressure):
                    raise
                raise StoreUnavailable(f"Redis did not answer the append: {e}") from e
        rejections = [rej for plan in plans for rej in plan.rejections]
        if rejections:
            # the events are in; the dead letters are best effort
            with contextlib.suppress(StoreUnavailable):
                store.write_rejections(rejections)
        return [
            {
                "accepted": accepted,
                "appended": appended,
                "rejected": plan.rejected,
                "duplicates": duplicates,
                "bots": plan.bots,
                "ignored": plan.ignored,
            }
            for plan, (accepted, appended, duplicates) in zip(plans, counts, strict=True)
        ]

    @staticmethod
    def _release(r: redis.Redis, keys: list[bytes]) -> None:
        if not keys:
            return
        with contextlib.suppress(*_REDIS_ERRORS):  # else the keys expire by themselves
            r.delete(*keys)


def _digest(record: Any) -> bytes:
    try:
        body = orjson.dumps(record)
    except TypeError:  # pragma: no cover
        body = repr(record).encode()
    return hashlib.blake2b(body, digest_size=16).digest()


def _schema(event: Event) -> dict[str, Any]:
    """The validated event as a schema-v1 dict (normalized; unknown fields dropped)."""
    return event.to_dict()
