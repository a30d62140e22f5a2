"""One frozen settings object, read from ``RTP_*`` environment variables only at the edge.

Library modules never read the environment: flows and the CLI call :meth:`Settings.from_env`
and pass the object down. Every field has an environment variable ``RTP_<FIELD>``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rtp.errors import ConfigError

LIVE_TICK_S = 0.25
"""The live stream's default model tick in seconds of capture time (``Settings.tick_s``, the
Redis stream and Kafka sources)."""


@dataclass(frozen=True)
class Settings:
    # Redis
    redis_url: str | None = None  # None: the runners start a private redis-server
    key_prefix: str = "rtp:"
    context_ttl_s: int = 7 * 86_400  # decisions + session context
    profile_ttl_s: int = 180 * 86_400
    redis_timeout_s: float = 2.0
    redis_pool_size: int = 8
    # Client reads poll for Redis's reply this long before blocking (0: block at once); an
    # idle VM's CPU can take milliseconds to wake for a reply (rtp.store.store.await_reply)
    read_spin_us: int = 500
    redis_retries: int = 8
    redis_backoff_s: float = 0.05  # first wait; doubles, with jitter, up to redis_backoff_max_s
    redis_backoff_max_s: float = 2.0
    dead_letter_stream: str = "rtp:deadletter"
    dead_letter_file: str | None = None  # JSONL of rejections, if set
    dead_letter_ttl_s: float = (
        7 * 86_400.0
    )  # dead letters (IPs already resolved) are kept this long

    # Live stream
    stream: str = "rtp:events"  # partitions are {stream}:0 .. {stream}:{n-1}
    stream_partitions: int = 4  # a user's events always go to the same partition
    max_backlog: int = 500_000  # entries a partition may hold before producers are refused

    # Flow
    workers: int = 0  # Bytewax workers in the cluster (0: read from the command line, else 1)
    shards: int = 0  # user and item shards (0: one per worker); results never depend on it
    batch_lines: int = 2_000  # records a file source reads per batch
    tick_records: int = 500  # a replay's model tick: this many source records
    # ...and, if set, whole numbers of those spanning at least this much event time, so that a
    # denser stream coalesces a user's events per tick as the live flow's ticks of capture time
    # do, instead of getting more, shorter ticks (0: records only; docs/architecture.md)
    tick_span_s: float = 0.0
    # the live stream's model tick: this much capture time. Each tick boundary folds the tick's
    # models before the events behind it are decided, so a shorter tick is a shorter wait: at
    # 2,000 events/s the decision p99 was 40 ms with 1 s ticks, 26 with 0.5 and 22 with 0.25
    # (BENCHMARKS.md section 4.7)
    tick_s: float = LIVE_TICK_S
    model_lag_ticks: int = 1  # decisions at tick t use the models of tick t - this (>= 1)
    # A replay's ticks are records, so their length in event time varies with the stream: its
    # decisions may let the models lag further, up to model_lag_max_ticks, while the ticks the
    # models skip began at most model_lag_s of event time earlier (a dense stream's workers get
    # slack; a sparse stream keeps the least lag; docs/architecture.md). 0: never further.
    model_lag_s: float = 120.0
    model_lag_max_ticks: int = 4
    max_lag_s: float = 86_400.0  # events further behind the stream are rejected
    max_ahead_s: float = 86_400.0
    hold_profiles: bool = False  # under Bytewax recovery (``--recovery`` sets it; see users.py)
    # A cluster process with one worker thread: how long the worker may hold the GIL before
    # Python makes it hand over (Python's default is 5 ms). Bytewax's main thread takes the GIL
    # every millisecond to check for signals, so at 5 ms the worker can be forced out up to
    # 200 times a second (BENCHMARKS.md §4.5 measures what 100 ms gains). 0 keeps the default.
    switch_interval_ms: float = 100.0
    # A process of a cluster of several: pin it, and the threads it starts, to one CPU (process K
    # to the K-th CPU it may use, modulo their count), so its worker, Bytewax's threads and the
    # GIL stay on one core (BENCHMARKS.md §4.5). "auto": in the processes rtp starts itself
    # for a replay (``rtp replay --processes N``) when there is a CPU for each, not for a live
    # flow, which shares its machine with Redis and the producers (section 4.7); "on": also
    # live, under ``bytewax.run -i K`` and with more processes than CPUs; "off": never (a
    # machine shared with other work).
    pin_cpu: str = "auto"
    # A process of a cluster of several: once its worker runs, Bytewax's main thread (which
    # only waits for the worker and wakes every millisecond to check for signals) runs at idle
    # priority (SCHED_IDLE), so its wake-ups stop preempting the worker on its core; it still
    # runs whenever the core is free or the worker waits (BENCHMARKS.md §4.5). "auto": when the
    # process is pinned to a CPU (pin_cpu), whose only other tenants are short-lived; "on":
    # also unpinned; "off": never (on a host saturated by other work, the idle thread could be
    # kept off the CPU while it holds the GIL for its signal check).
    main_thread_idle: str = "auto"
    # How decisions (P d:{user}) are stored: "compact", the zstd form with its pre-pass (the
    # fewest bytes), or "fast", the same zstd frame of the plain JSON: 1.22x the events/s per
    # process on the Taobao slice for 64 bytes more per user (BENCHMARKS.md §4.2, §4.3). Every
    # reader reads both.
    decision_form: str = "compact"
    degrade_lag_s: float = 5.0  # wall-clock lag behind capture that switches to fallback decisions
    recover_lag_s: float = 1.0  # ...and back to ranking below this

    # Enrichment
    site_hosts: str = ""  # comma-separated hosts of your own site: their referrers are internal
    default_utc_offset_h: float = 0.0  # local time for events whose country is unknown

    # Models and memory
    covisit_half_life_s: float = 90 * 86_400.0  # co-visits age slowly (docs/quality.md)
    item_ttl_s: float = 90 * 86_400.0  # items untouched this long (event time) are forgotten
    max_items: int = 2_000_000  # ...and beyond this many, the least recently touched are
    idle_ttl_s: float = 86_400.0  # idle users leave memory after this (their profile stays)
    edge_model: bool = True  # learn the edge model (first-page decisions from context)

    # Session and profile
    session_gap_s: float = 1_800.0
    category_half_life_s: float = 600.0  # session category weights
    profile_half_life_s: float = 14 * 86_400.0
    recent_items: int = 12
    recent_queries: int = 5

    # Decisions
    home_n: int = 20
    product_n: int = 10
    reshow_slots: int = 8  # "continue shopping": session items allowed in the home list
    explore_share: float = 0.1  # share of home slots for items outside the user's pattern
    neighbours_k: int = 30  # bounded top-K co-visited neighbours per item
    # session-neighbourhood candidates and ranking feature (rtp.candidates.sessions); off:
    # measured, they do not pay on the replays' ticks (docs/quality.md section 4)
    session_neighbours: bool = False
    ranker: str = "lr"  # lr (River LogisticRegression), pa (PAClassifier), prior (no learning)
    ranker_lr: float = 0.02  # the ranker's learning rate (SGD step; PA's C)
    # context in the ranker (rtp.ranking.context): fields crossed with a candidate's category
    # and/or price band; "none": no context. The defaults are the groups that pay for themselves
    # (docs/quality.md: weekend, channel, country and the category cross do not)
    rank_context: str = "device,hour,referral"
    rank_crosses: str = "price"
    rank_drop: str = ""  # ranking features left out (comma-separated names; ablations)
    seed: int = 7

    # Experiments
    experiments_file: str | None = None

    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if pin_mode(self.pin_cpu) is None:
            raise ConfigError(f"RTP_PIN_CPU must be auto, on or off, not {self.pin_cpu!r}")
        if self.decision_form not in DECISION_FORMS:
            raise ConfigError(
                f"RTP_DECISION_FORM must be {' or '.join(DECISION_FORMS)}, "
                f"not {self.decision_form!r}"
            )
        if pin_mode(self.main_thread_idle) is None:
            raise ConfigError(
                f"RTP_MAIN_THREAD_IDLE must be auto, on or off, not {self.main_thread_idle!r}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``RTP_*`` variables (``env``: default ``os.environ``), then overrides."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name == "extra":
                continue
            raw = env.get("RTP_" + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except TypeError as e:
            raise ConfigError(str(e)) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


DECISION_FORMS = ("compact", "fast")
_PIN_MODES = {"auto": "auto", "on": "on", "1": "on", "true": "on", "yes": "on",
              "off": "off", "0": "off", "false": "off", "no": "off"}  # fmt: skip


def pin_mode(value: Any) -> str | None:
    """``"auto"``, ``"on"`` or ``"off"`` for a ``pin_cpu`` or ``main_thread_idle`` value
    (``None``: not one of them)."""
    return _PIN_MODES.get(str(value).strip().lower())


def _coerce(name: str, type_: Any, raw: str) -> Any:
    t = str(type_)
    try:
        if t.startswith("int"):
            return int(raw)
        if t.startswith("float"):
            return float(raw)
        if t.startswith("bool"):
            return raw.lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise ConfigError(f"RTP_{name.upper()}={raw!r} is not a {t}") from None
    return raw


def parse_duration(text: str) -> float:
    """``"30m"``, ``"1h"``, ``"1d"``, ``"90s"`` or plain seconds -> seconds."""
    text = text.strip().lower()
    units = {"s": 1.0, "m": 60.0, "h": 3_600.0, "d": 86_400.0, "w": 604_800.0}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a duration like 30m, 1h or 1d") from None
