"""Prometheus metrics of one ``rtp serve`` process, in the text exposition format (by hand).

Counters and latency histograms live in the process (each worker has its own; every series
carries a ``worker`` label, the process id, so a scraper that reaches several workers through
one port sums them). :func:`render` adds gauges read from Redis at scrape time: the flow's lag
(from the flow's ``{prefix}meta:stats:*`` keys) and the live stream's backlog per partition.

No ``prometheus-client``: the format is a few lines of text and a counter is an integer
increment on the hot path.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Mapping

__all__ = ["BUCKETS_S", "Metrics"]

BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class _Histogram:
    __slots__ = ("counts", "total", "n")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS_S) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS_S, seconds)] += 1
        self.total += seconds
        self.n += 1


class Metrics:
    """The counters of one process; ``render`` writes them with extra gauges."""

    def __init__(self) -> None:
        self.worker = str(os.getpid())
        self.accepted = 0  # records accepted
        self.appended = 0  # events appended to the live stream
        self.rejected: dict[str, int] = {}  # reason -> records
        self.bots = 0
        self.duplicates = 0
        self.ignored = 0
        self.backpressure = 0  # requests refused with 429
        self.errors: dict[str, int] = {}  # error code -> answers
        self.requests: dict[tuple[str, int], int] = {}  # (route, status) -> answers
        self.latency: dict[str, _Histogram] = {}

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + n

    def answered(self, route: str, status: int, seconds: float) -> None:
        key = (route, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        h = self.latency.get(route)
        if h is None:
            h = self.latency[route] = _Histogram()
        h.observe(seconds)

    def error(self, code: str) -> None:
        self.errors[code] = self.errors.get(code, 0) + 1

    def render(
        self,
        flow: Iterable[tuple[str, str, Mapping[str, float]]] = (),
        backlog: Iterable[tuple[str, int]] = (),
    ) -> str:
        """The exposition text. ``flow``: ``(run, shard, stats)`` with ``lag_s`` and
        ``event_time``; ``backlog``: ``(partition, entries)``."""
        w = f'worker="{self.worker}"'
        lines: list[str] = []

        def family(name: str, kind: str, help_: str) -> None:
            lines.append(f"# HELP {name} {help_}")
            lines.append(f"# TYPE {name} {kind}")

        for name, value, help_ in (
            ("rtp_http_events_accepted_total", self.accepted, "records accepted"),
            ("rtp_http_events_appended_total", self.appended, "events appended to the stream"),
            ("rtp_http_events_bots_total", self.bots, "records dropped as bots"),
            ("rtp_http_events_duplicates_total", self.duplicates, "records already received"),
            ("rtp_http_events_ignored_total", self.ignored, "identify/group/alias calls"),
            ("rtp_http_backpressure_total", self.backpressure, "requests refused with 429"),
        ):
            family(name, "counter", help_)
            lines.append(f"{name}{{{w}}} {value}")
        family("rtp_http_events_rejected_total", "counter", "records rejected, by reason")
        for reason, n in sorted(self.rejected.items()):
            lines.append(f'rtp_http_events_rejected_total{{{w},reason="{reason}"}} {n}')
        family("rtp_http_errors_total", "counter", "error answers, by code")
        for code, n in sorted(self.errors.items()):
            lines.append(f'rtp_http_errors_total{{{w},code="{code}"}} {n}')
        family("rtp_http_requests_total", "counter", "answers, by route and status")
        for (route, status), n in sorted(self.requests.items()):
            lines.append(f'rtp_http_requests_total{{{w},route="{route}",status="{status}"}} {n}')
        family("rtp_http_request_seconds", "histogram", "time to answer, by route")
        for route, h in sorted(self.latency.items()):
            cum = 0
            for bound, count in zip(BUCKETS_S, h.counts, strict=False):
                cum += count
                lines.append(
                    f'rtp_http_request_seconds_bucket{{{w},route="{route}",le="{bound}"}} {cum}'
                )
            lines.append(f'rtp_http_request_seconds_bucket{{{w},route="{route}",le="+Inf"}} {h.n}')
            lines.append(f'rtp_http_request_seconds_sum{{{w},route="{route}"}} {h.total:.6f}')
            lines.append(f'rtp_http_request_seconds_count{{{w},route="{route}"}} {h.n}')
        flow = list(flow)
        if flow:
            family("rtp_flow_lag_seconds", "gauge", "wall clock minus the flow's event time")
            for run, shard, stats in flow:
                lag = float(stats.get("lag_s", 0.0))
                lines.append(f'rtp_flow_lag_seconds{{run="{run}",shard="{shard}"}} {lag:.3f}')
            family("rtp_flow_max_lag_seconds", "gauge", "the largest capture-to-flow lag seen")
            for run, shard, stats in flow:
                lag = float(stats.get("max_lag_s", 0.0))
                lines.append(f'rtp_flow_max_lag_seconds{{run="{run}",shard="{shard}"}} {lag}')
            family("rtp_flow_event_time_seconds", "gauge", "the flow's latest event time")
            for run, shard, stats in flow:
                et = float(stats.get("event_time", 0.0))
                lines.append(f'rtp_flow_event_time_seconds{{run="{run}",shard="{shard}"}} {et}')
        backlog = list(backlog)
        if backlog:
            family("rtp_stream_backlog", "gauge", "unprocessed entries per stream partition")
            for partition, n in backlog:
                lines.append(f'rtp_stream_backlog{{partition="{partition}"}} {n}')
        return "\n".join(lines) + "\n"
