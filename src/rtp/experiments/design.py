"""A/B experiments: the config file, sticky user assignment, and per-arm session metrics.

Pure Python: no bytewax and no redis here. The engine asks an :class:`ExperimentSet` which arm a
user is in, decides with that arm's strategy, and feeds an :class:`ArmMetrics` (one per experiment
and shard, kept in Bytewax state); the flow writes ``ArmMetrics.to_dict()`` as the meta key
``exp:{experiment}:{shard}`` and ``rtp experiments report`` merges the shards.

Config file (TOML)::

    [[experiment]]
    name = "rt-vs-batch"
    salt = "rt-vs-batch-2024-06"        # change it to re-randomize this experiment only
    placements = ["home", "product"]
    control = "realtime"

    [[experiment.arm]]
    name = "realtime"
    share = 0.5
    params = { strategy = "realtime" }  # optional; read by the engine

    [[experiment.arm]]
    name = "batch"
    share = 0.5

    [[bandit]]
    name = "home-reshow"
    placement = "home"
    policy = "thompson"                 # "thompson" | "ucb" | "epsilon"
    arms = ["reshow-4", "reshow-0", "reshow-8"]
    seed = 7

Assignment is a pure function of ``(salt, user)``: blake2b (8 bytes) maps the pair to a number in
``[0, 1)`` and the arms' cumulative shares pick the arm. Nothing is cached or stored per user, so
an assignment is the same across calls, sessions, shards, processes and restarts, and each
experiment has its own salt, so changing one experiment's shares (or salt) never moves users of
another.

>>> exps = ExperimentSet.from_dict({"experiment": [{
...     "name": "rt-vs-batch", "salt": "s1", "placements": ["home", "product"],
...     "control": "realtime",
...     "arm": [{"name": "realtime", "share": 0.5}, {"name": "batch", "share": 0.5}]}]})
>>> exp, arm = exps.assign("u42", "home")
>>> exp, arm in ("realtime", "batch")
('rt-vs-batch', True)
>>> exps.assign("u42", "product") == (exp, arm)  # one experiment covers both placements
True
>>> exps.assign("u42", "cart") is None  # no experiment covers this placement
True
>>> exps.arms_for("u42") == {"rt-vs-batch": arm}
True
"""

from __future__ import annotations

import hashlib
import math
import random
import sys
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtp.errors import ConfigError
from rtp.experiments.bandits import POLICIES, BanditTuner

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


SHARE_TOLERANCE = 1e-6
_TWO_53 = float(1 << 53)

_TOP_KEYS = {"experiment", "bandit"}
_EXPERIMENT_KEYS = {"name", "salt", "placements", "control", "arm", "description"}
_ARM_KEYS = {"name", "share", "params", "description"}
_BANDIT_KEYS = {"name", "placement", "policy", "arms", "seed", "params", "description"}


def unit_hash(salt: str, user: str) -> float:
    """Map ``(salt, user)`` to a uniform number in ``[0, 1)``: blake2b, 8 bytes, top 53 bits.

    The same pair gives the same number in every process (unlike Python's ``hash``).

    >>> u = unit_hash("s1", "u42")
    >>> 0.0 <= u < 1.0, u == unit_hash("s1", "u42"), u == unit_hash("s2", "u42")
    (True, True, False)
    """
    digest = hashlib.blake2b(f"{salt}\x00{user}".encode(), digest_size=8).digest()
    return (int.from_bytes(digest, "big") >> 11) / _TWO_53


def _primed(salt: str) -> Any:
    return hashlib.blake2b(f"{salt}\x00".encode(), digest_size=8)


@dataclass(frozen=True)
class Arm:
    """One arm of an experiment: its name, its share of users and optional engine parameters."""

    name: str
    share: float
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Experiment:
    """An experiment: which placements it covers, its arms, and its control arm.

    >>> e = Experiment("e", "salt", ("home",), "a", (Arm("a", 0.25), Arm("b", 0.75)))
    >>> e.assign("u1") in ("a", "b"), e.shares
    (True, {'a': 0.25, 'b': 0.75})
    """

    name: str
    salt: str
    placements: tuple[str, ...]
    control: str
    arms: tuple[Arm, ...]
    _cum: tuple[float, ...] = field(init=False, repr=False, compare=False)
    _names: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _hasher: Any = field(init=False, repr=False, compare=False)  # blake2b primed with the salt

    def __post_init__(self) -> None:
        total = math.fsum(a.share for a in self.arms)
        if not self.arms or total <= 0:
            raise ConfigError(f"experiment {self.name!r}: needs arms with positive shares")
        cum: list[float] = []
        acc = 0.0
        for a in self.arms:
            acc += a.share
            cum.append(acc / total)
        # Nothing past the last arm with a positive share can be picked, whatever the rounding.
        last = max(i for i, a in enumerate(self.arms) if a.share > 0)
        for i in range(last, len(cum)):
            cum[i] = 1.0
        object.__setattr__(self, "_cum", tuple(cum))
        object.__setattr__(self, "_names", tuple(a.name for a in self.arms))
        object.__setattr__(self, "_hasher", _primed(self.salt))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_hasher"]  # hashlib objects do not pickle; rebuilt on load
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        object.__setattr__(self, "_hasher", _primed(self.salt))

    @property
    def shares(self) -> dict[str, float]:
        """Configured share per arm."""
        return {a.name: a.share for a in self.arms}

    @property
    def arm_names(self) -> tuple[str, ...]:
        return self._names

    def arm(self, name: str) -> Arm:
        """The arm called ``name`` (``KeyError`` if there is none)."""
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    def unit(self, user: str) -> float:
        """``unit_hash(self.salt, user)``, from a hasher primed with the salt (faster)."""
        h = self._hasher.copy()
        h.update(user.encode())
        return (int.from_bytes(h.digest(), "big") >> 11) / _TWO_53

    def assign(self, user: str) -> str:
        """The user's arm: a pure function of the salt and the user id."""
        return self._names[bisect_right(self._cum, self.unit(user))]


@dataclass(frozen=True)
class BanditConfig:
    """A ``[[bandit]]`` table: a tuner choosing among strategies on one placement."""

    name: str
    placement: str
    arms: tuple[str, ...]
    policy: str = "thompson"
    seed: int = 0
    params: Mapping[str, float] = field(default_factory=dict)

    def make(self) -> BanditTuner:
        """A fresh :class:`rtp.experiments.bandits.BanditTuner` for this config (one per shard)."""
        return BanditTuner(
            self.name,
            self.placement,
            list(self.arms),
            policy=self.policy,
            seed=self.seed,
            params=dict(self.params),
        )


class ExperimentSet:
    """Every experiment and bandit of a config file, indexed by placement.

    At most one experiment and at most one bandit cover a placement, so "the user's arm on this
    placement" has one answer.

    >>> ExperimentSet().assign("u1", "home") is None, len(ExperimentSet())
    (True, 0)
    """

    def __init__(
        self,
        experiments: Sequence[Experiment] = (),
        bandits: Sequence[BanditConfig] = (),
        source: str = "<config>",
    ) -> None:
        self.source = source
        self.experiments: dict[str, Experiment] = {}
        self.bandits: dict[str, BanditConfig] = {}
        self._by_placement: dict[str, Experiment] = {}
        self._bandit_by_placement: dict[str, BanditConfig] = {}
        salts: dict[str, str] = {}
        for e in experiments:
            if e.name in self.experiments:
                raise ConfigError(f"{source}: two experiments are named {e.name!r}")
            if e.salt in salts:
                raise ConfigError(
                    f"{source}: experiments {salts[e.salt]!r} and {e.name!r} share the salt "
                    f"{e.salt!r}; their assignments would be correlated: give each its own salt"
                )
            for p in e.placements:
                if p in self._by_placement:
                    raise ConfigError(
                        f"{source}: placement {p!r} is in experiments "
                        f"{self._by_placement[p].name!r} and {e.name!r}; one placement, one "
                        f"experiment"
                    )
                self._by_placement[p] = e
            salts[e.salt] = e.name
            self.experiments[e.name] = e
        for b in bandits:
            if b.name in self.bandits:
                raise ConfigError(f"{source}: two bandits are named {b.name!r}")
            if b.placement in self._bandit_by_placement:
                raise ConfigError(
                    f"{source}: placement {b.placement!r} has bandits "
                    f"{self._bandit_by_placement[b.placement].name!r} and {b.name!r}"
                )
            self._bandit_by_placement[b.placement] = b
            self.bandits[b.name] = b

    def __len__(self) -> int:
        return len(self.experiments) + len(self.bandits)

    def __repr__(self) -> str:
        return f"ExperimentSet(experiments={list(self.experiments)}, bandits={list(self.bandits)})"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<dict>") -> ExperimentSet:
        """Validate a parsed config (``{"experiment": [...], "bandit": [...]}``).

        Raises :class:`rtp.errors.ConfigError` with the source and the table at fault.

        >>> ExperimentSet.from_dict({"experiment": [{"name": "e", "placements": ["home"],
        ...     "control": "a", "arm": [{"name": "a", "share": 0.5},
        ...                             {"name": "b", "share": 0.4}]}]})
        Traceback (most recent call last):
        ...
        rtp.errors.ConfigError: <dict>: experiment 'e': arm shares sum to 0.9, not 1 (a=0.5, b=0.4)
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a table at the top level")
        _no_unknown(data, _TOP_KEYS, f"{source}: top level")
        exps = [
            _parse_experiment(t, f"{source}: [[experiment]] #{i + 1}", source)
            for i, t in enumerate(_tables(data.get("experiment", []), f"{source}: experiment"))
        ]
        bandits = [
            _parse_bandit(t, f"{source}: [[bandit]] #{i + 1}", source)
            for i, t in enumerate(_tables(data.get("bandit", []), f"{source}: bandit"))
        ]
        return cls(exps, bandits, source=source)

    def experiment_for(self, placement: str) -> Experiment | None:
        """The experiment covering ``placement``, if any."""
        return self._by_placement.get(placement)

    def bandit_for(self, placement: str) -> BanditConfig | None:
        """The bandit tuning ``placement``, if any."""
        return self._bandit_by_placement.get(placement)

    def assign(self, user: str, placement: str) -> tuple[str, str] | None:
        """``(experiment, arm)`` for the experiment covering ``placement``, else ``None``."""
        e = self._by_placement.get(placement)
        if e is None:
            return None
        return e.name, e.assign(user)

    def arms_for(self, user: str) -> dict[str, str]:
        """The user's arm in every experiment: ``{experiment: arm}``."""
        return {name: e.assign(user) for name, e in self.experiments.items()}

    def params(self, experiment: str, arm: str) -> Mapping[str, Any]:
        """The ``params`` table of an arm (empty if none)."""
        return self.experiments[experiment].arm(arm).params

    def make_bandits(self) -> dict[str, BanditTuner]:
        """A fresh tuner per configured bandit: ``{name: BanditTuner}``."""
        return {name: b.make() for name, b in self.bandits.items()}

    def make_metrics(
        self, mode: str | None = None, reservoir_size: int = 5_000, seed: int = 0
    ) -> dict[str, ArmMetrics]:
        """A fresh :class:`ArmMetrics` per experiment: ``{name: ArmMetrics}``."""
        return {
            name: ArmMetrics(name, e.arm_names, mode=mode, reservoir_size=reservoir_size, seed=seed)
            for name, e in self.experiments.items()
        }


def load_experiments(path: str | Path) -> ExperimentSet:
    """Read and validate an experiments TOML file (see the module docstring)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read experiments file {p}: {e.strerror or e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML: {e}") from None
    return ExperimentSet.from_dict(data, source=str(p))


def parse_arm(arm: str) -> tuple[str, float | None]:
    """Split a strategy arm name like ``"reshow-4"`` into ``("reshow", 4.0)``.

    >>> parse_arm("reshow-4"), parse_arm("blend-0.7"), parse_arm("realtime")
    (('reshow', 4.0), ('blend', 0.7), ('realtime', None))
    """
    head, sep, tail = arm.rpartition("-")
    if sep and head:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return arm, None


# --- config validation ---------------------------------------------------------------------


def _no_unknown(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
            f"expected {', '.join(sorted(allowed))}"
        )


def _tables(value: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, Mapping) for t in value):
        raise ConfigError(f"{where}: expected an array of tables ([[...]])")
    return value


def _name(table: Mapping[str, Any], key: str, where: str) -> str:
    v = table.get(key)
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}: {key!r} must be a non-empty string")
    if ":" in v:
        raise ConfigError(f"{where}: {key} {v!r} must not contain ':' (it is part of meta keys)")
    return v


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(f"{where}: expected a number, got {v!r}")
    return float(v)


def _parse_experiment(t: Mapping[str, Any], where: str, source: str) -> Experiment:
    _no_unknown(t, _EXPERIMENT_KEYS, where)
    name = _name(t, "name", where)
    where = f"{source}: experiment {name!r}"
    salt = t.get("salt", name)
    if not isinstance(salt, str) or not salt:
        raise ConfigError(f"{where}: 'salt' must be a non-empty string")
    placements = t.get("placements")
    if (
        not isinstance(placements, list)
        or not placements
        or not all(isinstance(p, str) and p for p in placements)
    ):
        raise ConfigError(f"{where}: 'placements' must be a non-empty list of strings")
    if len(set(placements)) != len(placements):
        raise ConfigError(f"{where}: 'placements' lists a placement twice")
    arms: list[Arm] = []
    for i, a in enumerate(_tables(t.get("arm", []), f"{where}: arm")):
        aw = f"{where}: [[experiment.arm]] #{i + 1}"
        _no_unknown(a, _ARM_KEYS, aw)
        aname = _name(a, "name", aw)
        if any(x.name == aname for x in arms):
            raise ConfigError(f"{where}: two arms are named {aname!r}")
        share = _number(a.get("share"), f"{where}: arm {aname!r}: 'share'")
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"{where}: arm {aname!r}: share {share} is not in [0, 1]")
        params = a.get("params", {})
        if not isinstance(params, Mapping):
            raise ConfigError(f"{where}: arm {aname!r}: 'params' must be a table")
        arms.append(Arm(aname, share, dict(params)))
    if len(arms) < 2:
        raise ConfigError(f"{where}: needs at least two [[experiment.arm]] tables")
    total = math.fsum(a.share for a in arms)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        listing = ", ".join(f"{a.name}={a.share:g}" for a in arms)
        raise ConfigError(f"{where}: arm shares sum to {total:.6g}, not 1 ({listing})")
    control = t.get("control")
    if not isinstance(control, str) or control not in {a.name for a in arms}:
        raise ConfigError(
            f"{where}: 'control' must name one of its arms ({', '.join(a.name for a in arms)}), "
            f"got {control!r}"
        )
    if next(a for a in arms if a.name == control).share <= 0:
        raise ConfigError(f"{where}: the control arm {control!r} has share 0")
    return Experiment(name, salt, tuple(placements), control, tuple(arms))


def _parse_bandit(t: Mapping[str, Any], where: str, source: str) -> BanditConfig:
    _no_unknown(t, _BANDIT_KEYS, where)
    name = _name(t, "name", where)
    where = f"{source}: bandit {name!r}"
    placement = t.get("placement")
    if not isinstance(placement, str) or not placement:
        raise ConfigError(f"{where}: 'placement' must be a non-empty string")
    policy = t.get("policy", "thompson")
    if policy not in POLICIES:
        raise ConfigError(f"{where}: policy {policy!r} is not one of {', '.join(POLICIES)}")
    arms = t.get("arms")
    if not isinstance(arms, list) or len(arms) < 2 or not all(isinstance(a, str) for a in arms):
        raise ConfigError(f"{where}: 'arms' must list at least two strategy names (strings)")
    if len(set(arms)) != len(arms):
        raise ConfigError(f"{where}: 'arms' lists a strategy twice")
    seed = t.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError(f"{where}: 'seed' must be an integer")
    params = t.get("params", {})
    if not isinstance(params, Mapping):
        raise ConfigError(f"{where}: 'params' must be a table")
    clean = {k: _number(v, f"{where}: params.{k}") for k, v in params.items()}
    return BanditConfig(name, placement, tuple(arms), str(policy), seed, clean)


# --- metrics -------------------------------------------------------------------------------

_B_SESSIONS, _B_CONVERSIONS, _B_SHOWN, _B_ATTRIBUTED = range(4)


class _ArmStats:
    """Sufficient statistics of one arm (plain attributes: pickles, merges, serializes)."""

    __slots__ = (
        "sessions",
        "conversions",
        "purchases",
        "revenue",
        "revenue_sq",
        "events",
        "events_sq",
        "returning",
        "shown",
        "shown_items",
        "attributed",
        "reservoir",
        "buckets",
    )

    def __init__(self) -> None:
        self.sessions = 0
        self.conversions = 0  # sessions with at least one purchase
        self.purchases = 0
        self.revenue = 0.0
        self.revenue_sq = 0.0
        self.events = 0
        self.events_sq = 0
        self.returning = 0  # sessions of returning users
        self.shown = 0  # decisions with recommendations written
        self.shown_items = 0
        self.attributed = 0  # interactions with an item of the user's last decision
        self.reservoir: list[tuple[float, int]] = []  # (revenue, events) of sampled sessions
        self.buckets: dict[int, list[int]] = {}  # bucket start -> sessions, conv, shown, attr


def _var(total: float, total_sq: float, n: int) -> float | None:
    """Sample variance (ddof=1) from a sum and a sum of squares."""
    if n < 2:
        return None
    return max(0.0, (total_sq - total * total / n) / (n - 1))


class ArmMetrics:
    """Session-level metrics of one experiment's arms (one instance per shard).

    The engine calls :meth:`on_session_end` when a session is folded, :meth:`on_shown` when it
    writes a decision with recommendations, and :meth:`on_attributed` when a user interacts with
    an item of their last decision within the attribution window (at most once per decision keeps
    click-through a proportion). Memory is bounded: sums and sums of squares, a seeded reservoir of
    ``reservoir_size`` sessions (revenue, events) for the bootstrap, and at most ``max_buckets``
    event-time buckets (their width doubles when there would be more).

    >>> m = ArmMetrics("rt-vs-batch", ["realtime", "batch"])
    >>> m.on_session_end("realtime", events=6, purchases=1, revenue=30.0, returning=False, ts=0.0)
    >>> m.on_session_end("realtime", events=2, purchases=0, revenue=0.0, returning=True, ts=60.0)
    >>> m.on_shown("realtime", 20)
    >>> m.on_attributed("realtime", ts=30.0)
    >>> s = m.summary()["realtime"]
    >>> s["sessions"], s["conversion"], s["revenue_per_session"], s["depth"], s["return_rate"]
    (2, 0.5, 15.0, 4.0, 0.5)
    >>> s["ctr"], m.summary()["batch"]["sessions"]
    (1.0, 0)
    >>> merged = ArmMetrics.merge([m.to_dict(), m.to_dict()])  # e.g. two shards
    >>> merged.summary()["realtime"]["sessions"], merged.series("realtime")[-1]["sessions"]
    (4, 4)
    """

    def __init__(
        self,
        experiment: str = "",
        arms: Iterable[str] = (),
        *,
        mode: str | None = None,
        reservoir_size: int = 5_000,
        seed: int = 0,
        bucket_s: float = 3_600.0,
        max_buckets: int = 2_000,
    ) -> None:
        if reservoir_size < 0 or bucket_s <= 0 or max_buckets < 1:
            raise ValueError("reservoir_size >= 0, bucket_s > 0 and max_buckets >= 1 please")
        self.experiment = experiment
        self.mode = mode  # "replay" or "live": tells the report what the arms can change
        self.reservoir_size = reservoir_size
        self.seed = seed
        self.bucket_s = float(bucket_s)
        self.max_buckets = max_buckets
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self._arms: dict[str, _ArmStats] = {a: _ArmStats() for a in arms}
        self._rng = random.Random(seed)

    def __repr__(self) -> str:
        sessions = {a: s.sessions for a, s in self._arms.items()}
        return f"ArmMetrics({self.experiment!r}, sessions={sessions})"

    @property
    def arms(self) -> list[str]:
        return list(self._arms)

    def _arm(self, arm: str) -> _ArmStats:
        s = self._arms.get(arm)
        if s is None:
            s = self._arms[arm] = _ArmStats()
        return s

    def _bucket(self, s: _ArmStats, ts: float, col: int) -> None:
        start = int(ts // self.bucket_s * self.bucket_s)
        b = s.buckets.get(start)
        if b is None:
            b = s.buckets[start] = [0, 0, 0, 0]
            if len(s.buckets) > self.max_buckets:
                self._coarsen()
                self._bucket(s, ts, col)
                return
        b[col] += 1

    def _coarsen(self) -> None:
        self.bucket_s *= 2.0
        for s in self._arms.values():
            s.buckets = _rebucket(s.buckets, self.bucket_s)

    # -- the engine's calls --

    def on_session_end(
        self,
        arm: str,
        events: int,
        purchases: int,
        revenue: float,
        returning: bool,
        ts: float,
    ) -> None:
        """Count one ended session of a user assigned to ``arm`` (``ts``: event time, s)."""
        s = self._arm(arm)
        s.sessions += 1
        converted = purchases > 0
        if converted:
            s.conversions += 1
        s.purchases += purchases
        s.revenue += revenue
        s.revenue_sq += revenue * revenue
        s.events += events
        s.events_sq += events * events
        if returning:
            s.returning += 1
        if self.reservoir_size:
            if len(s.reservoir) < self.reservoir_size:
                s.reservoir.append((float(revenue), int(events)))
            else:
                j = self._rng.randrange(s.sessions)
                if j < self.reservoir_size:
                    s.reservoir[j] = (float(revenue), int(events))
        if self.first_ts is None or ts < self.first_ts:
            self.first_ts = ts
        if self.last_ts is None or ts > self.last_ts:
            self.last_ts = ts
        self._bucket(s, ts, _B_SESSIONS)
        if converted:
            self._bucket(s, ts, _B_CONVERSIONS)

    def on_shown(self, arm: str, n_items: int, ts: float | None = None) -> None:
        """Count one decision with ``n_items`` recommendations written for a user in ``arm``."""
        s = self._arm(arm)
        s.shown += 1
        s.shown_items += n_items
        if ts is not None:
            self._bucket(s, ts, _B_SHOWN)

    def on_attributed(self, arm: str, ts: float) -> None:
        """Count one interaction with an item of the user's last decision (the engine decides)."""
        s = self._arm(arm)
        s.attributed += 1
        self._bucket(s, ts, _B_ATTRIBUTED)

    # -- reading --

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per arm: counts, rates and means (``None`` where a denominator is 0).

        Keys: sessions, conversions, conversion, purchases, revenue, revenue_per_session,
        revenue_var, events, depth, depth_var, returning, return_rate, new_users, shown,
        shown_items, attributed, ctr, reservoir (sessions sampled).
        """
        out: dict[str, dict[str, Any]] = {}
        for arm, s in self._arms.items():
            n = s.sessions
            out[arm] = {
                "sessions": n,
                "conversions": s.conversions,
                "conversion": s.conversions / n if n else None,
                "purchases": s.purchases,
                "revenue": s.revenue,
                "revenue_per_session": s.revenue / n if n else None,
                "revenue_var": _var(s.revenue, s.revenue_sq, n),
                "events": s.events,
                "depth": s.events / n if n else None,
                "depth_var": _var(float(s.events), float(s.events_sq), n),
                "returning": s.returning,
                "return_rate": s.returning / n if n else None,
                "new_users": n - s.returning,
                "shown": s.shown,
                "shown_items": s.shown_items,
                "attributed": s.attributed,
                "ctr": s.attributed / s.shown if s.shown else None,
                "reservoir": len(s.reservoir),
            }
        return out

    def reservoir(self, arm: str) -> tuple[list[float], list[float]]:
        """``(revenues, events)`` of the sampled sessions of ``arm`` (for the bootstrap)."""
        res = self._arms[arm].reservoir if arm in self._arms else []
        return [r for r, _ in res], [float(e) for _, e in res]

    def series(self, arm: str) -> list[dict[str, float]]:
        """Cumulative sessions, conversions, shown and attributed per event-time bucket.

        >>> m = ArmMetrics("e", bucket_s=3600)
        >>> m.on_session_end("a", 3, 1, 9.0, False, ts=10.0)
        >>> m.on_session_end("a", 1, 0, 0.0, False, ts=7300.0)
        >>> [(p["ts"], p["sessions"], p["conversions"]) for p in m.series("a")]
        [(0, 1, 1), (7200, 2, 1)]
        """
        s = self._arms.get(arm)
        if s is None:
            return []
        out: list[dict[str, float]] = []
        acc = [0, 0, 0, 0]
        for start in sorted(s.buckets):
            acc = [x + y for x, y in zip(acc, s.buckets[start], strict=True)]
            out.append(
                {
                    "ts": start,
                    "sessions": acc[_B_SESSIONS],
                    "conversions": acc[_B_CONVERSIONS],
                    "shown": acc[_B_SHOWN],
                    "attributed": acc[_B_ATTRIBUTED],
                }
            )
        return out

    # -- state --

    def meta_name(self, shard: int | str) -> str:
        """The meta key name the flow writes :meth:`to_dict` under: ``exp:{experiment}:{shard}``."""
        return f"exp:{self.experiment}:{shard}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able state (what the flow writes; :meth:`merge` and :meth:`from_dict` read it)."""
        return {
            "version": 1,
            "experiment": self.experiment,
            "mode": self.mode,
            "reservoir_size": self.reservoir_size,
            "seed": self.seed,
            "bucket_s": self.bucket_s,
            "max_buckets": self.max_buckets,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "arms": {
                arm: {
                    "sessions": s.sessions,
                    "conversions": s.conversions,
                    "purchases": s.purchases,
                    "revenue": s.revenue,
                    "revenue_sq": s.revenue_sq,
                    "events": s.events,
                    "events_sq": s.events_sq,
                    "returning": s.returning,
                    "shown": s.shown,
                    "shown_items": s.shown_items,
                    "attributed": s.attributed,
                    "reservoir": [[r, e] for r, e in s.reservoir],
                    "buckets": [[k, *v] for k, v in sorted(s.buckets.items())],
                }
                for arm, s in self._arms.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ArmMetrics:
        """Rebuild from :meth:`to_dict` output."""
        return cls.merge([d])

    @classmethod
    def merge(cls, dicts: Sequence[Mapping[str, Any]], experiment: str | None = None) -> ArmMetrics:
        """Merge per-shard :meth:`to_dict` outputs into one :class:`ArmMetrics`.

        Sums add up; the reservoirs merge into a uniform sample of all shards' sessions (a
        multivariate hypergeometric split of the reservoir size, then a sample of each shard's
        reservoir); buckets are brought to the widest shard's width and added.
        """
        if not dicts and experiment is None:
            raise ValueError("merge needs at least one dict, or the experiment name")
        names = {d.get("experiment") or "" for d in dicts} | {experiment or ""}
        names.discard("")  # metrics made without a name take the one given here
        if len(names) > 1:
            raise ValueError(f"cannot merge metrics of different experiments: {sorted(names)}")
        first = dicts[0] if dicts else {}
        m = cls(
            names.pop() if names else "",
            mode=next((d.get("mode") for d in dicts if d.get("mode")), None),
            reservoir_size=int(first.get("reservoir_size", 5_000)),
            seed=int(first.get("seed", 0)),
            bucket_s=max((float(d.get("bucket_s", 3_600.0)) for d in dicts), default=3_600.0),
            max_buckets=int(first.get("max_buckets", 2_000)),
        )
        firsts = [d["first_ts"] for d in dicts if d.get("first_ts") is not None]
        lasts = [d["last_ts"] for d in dicts if d.get("last_ts") is not None]
        m.first_ts = min(firsts) if firsts else None
        m.last_ts = max(lasts) if lasts else None
        arm_names: list[str] = []
        for d in dicts:
            arm_names.extend(a for a in d["arms"] if a not in arm_names)
        rng = random.Random(m.seed)
        for arm in arm_names:
            parts = [d["arms"][arm] for d in dicts if arm in d["arms"]]
            s = m._arm(arm)
            for key in (
                "sessions",
                "conversions",
                "purchases",
                "events",
                "events_sq",
                "returning",
                "shown",
                "shown_items",
                "attributed",
            ):
                setattr(s, key, sum(int(p[key]) for p in parts))
            s.revenue = math.fsum(float(p["revenue"]) for p in parts)
            s.revenue_sq = math.fsum(float(p["revenue_sq"]) for p in parts)
            s.reservoir = _merge_reservoirs(
                [[(float(r), int(e)) for r, e in p["reservoir"]] for p in parts],
                [int(p["sessions"]) for p in parts],
                m.reservoir_size,
                rng,
            )
            for p in parts:
                for start, *vals in p["buckets"]:
                    bucket = int(start // m.bucket_s * m.bucket_s)
                    b = s.buckets.setdefault(bucket, [0, 0, 0, 0])
                    for i, v in enumerate(vals):
                        b[i] += int(v)
        while any(len(s.buckets) > m.max_buckets for s in m._arms.values()):
            m._coarsen()
        m._rng = random.Random(f"{m.seed}:{sum(s.sessions for s in m._arms.values())}")
        return m


def _rebucket(buckets: dict[int, list[int]], width: float) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for start, vals in buckets.items():
        b = out.setdefault(int(start // width * width), [0, 0, 0, 0])
        for i, v in enumerate(vals):
            b[i] += v
    return out


def _merge_reservoirs(
    reservoirs: list[list[tuple[float, int]]],
    seen: list[int],
    size: int,
    rng: random.Random,
) -> list[tuple[float, int]]:
    """A uniform sample of ``size`` from the union of shards' uniform reservoirs."""
    total = sum(seen)
    if total <= size or sum(len(r) for r in reservoirs) <= size:
        return [x for r in reservoirs for x in r]
    # How many of the `size` draws (without replacement, from all sessions) fall in each shard.
    import numpy as np

    gen = np.random.default_rng(rng.randrange(2**63))
    take = gen.multivariate_hypergeometric(np.asarray(seen, dtype=np.int64), size)
    out: list[tuple[float, int]] = []
    for r, k in zip(reservoirs, take, strict=True):
        out.extend(rng.sample(r, min(int(k), len(r))))
    return out
