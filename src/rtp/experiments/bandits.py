"""Multi-armed bandits that tune a strategy parameter online, on River's ``river.bandit`` policies.

A :class:`BanditTuner` chooses one of a few strategies (``"reshow-4"``, ``"reshow-0"``, blend
weights...) each time the engine decides for its placement, and learns from the rewards the
engine reports. It lives in Bytewax state (one per shard), so it pickles, and with a seed it makes
the same choices for the same rewards.

Protocol the engine follows: every :meth:`BanditTuner.choose` is answered by exactly one
:meth:`BanditTuner.reward` for the chosen arm, ``1.0`` when the user interacted with an item of the
decision within the attribution window, ``0.0`` when the window closed (or the session ended, or a
newer decision replaced it) without one. Rewards for Thompson sampling must lie in ``[0, 1]``: a
fractional reward is turned into a success with that probability (a seeded Bernoulli draw), which
keeps the Beta posterior exact for 0/1 rewards. UCB picks deterministically until rewards arrive,
so with delayed rewards and many concurrent decisions prefer Thompson sampling.

Regret (reported every ``record_every`` pulls, as a bounded series): with ``n_a`` pulls of arm
``a`` and mean reward ``mu_a``, the cumulative (pseudo-)regret is ``sum_a n_a * (max_b mu_b -
mu_a)``. ``regret_est`` uses the empirical means so far (arms without rewards are left out);
``regret_true`` uses ``true_means`` when a simulator passes them.

>>> import random
>>> tuner = BanditTuner("home-reshow", "home", ["reshow-4", "reshow-0"], seed=1)
>>> rng = random.Random(0)
>>> for _ in range(500):
...     arm = tuner.choose()
...     tuner.reward(arm, float(rng.random() < (0.3 if arm == "reshow-4" else 0.1)))
>>> tuner.best_arm(), tuner.pulls["reshow-4"] > tuner.pulls["reshow-0"]
('reshow-4', True)
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from river import bandit, proba

from rtp.errors import ConfigError

POLICIES = ("thompson", "ucb", "epsilon")


class BanditTuner:
    """One bandit over string arms: ``choose()`` an arm, ``reward()`` it, report.

    ``params`` (all optional): ``delta`` (UCB exploration, default 1.0: UCB1), ``epsilon``
    (default 0.1) and ``decay`` (default 0.0) for epsilon-greedy, ``burn_in`` (default 0).

    >>> t = BanditTuner("b", "home", ["x", "y"], policy="ucb", seed=3)
    >>> arm = t.choose()
    >>> t.reward(arm, 1.0)
    >>> t.pulls[arm], t.total_reward[arm], t.mean(arm)
    (1, 1.0, 1.0)
    >>> sorted(t.to_dict())[:4]
    ['arms', 'best_arm', 'mean', 'n_pulls']
    """

    def __init__(
        self,
        name: str,
        placement: str,
        arms: Sequence[str],
        policy: str = "thompson",
        seed: int = 0,
        *,
        params: Mapping[str, float] | None = None,
        true_means: Mapping[str, float] | None = None,
        record_every: int = 100,
        max_points: int = 500,
    ) -> None:
        arms = [str(a) for a in arms]
        if len(arms) < 2 or len(set(arms)) != len(arms):
            raise ConfigError(f"bandit {name!r}: needs at least two distinct arms, got {arms}")
        if policy not in POLICIES:
            raise ConfigError(f"bandit {name!r}: policy {policy!r} is not one of {POLICIES}")
        if record_every < 1 or max_points < 2:
            raise ValueError("record_every >= 1 and max_points >= 2 please")
        self.name = name
        self.placement = placement
        self.arms = arms
        self.policy = policy
        self.seed = seed
        self.params = dict(params or {})
        self.true_means = dict(true_means) if true_means is not None else None
        if self.true_means is not None and set(self.true_means) != set(arms):
            raise ValueError(f"true_means must give every arm's mean: {arms}")
        self.record_every = record_every
        self.max_points = max_points
        self.pulls: dict[str, int] = {a: 0 for a in arms}
        self.updates: dict[str, int] = {a: 0 for a in arms}
        self.total_reward: dict[str, float] = {a: 0.0 for a in arms}
        self.n_pulls = 0
        self.series: list[dict[str, float | None]] = []
        self._rng = random.Random(seed)
        self._policy = _make_policy(policy, seed, self.params, name)

    def __repr__(self) -> str:
        return (
            f"BanditTuner({self.name!r}, {self.placement!r}, policy={self.policy!r}, "
            f"pulls={self.pulls})"
        )

    # -- the engine's calls --

    def choose(self) -> str:
        """Pick an arm for the next decision (and count the pull)."""
        arm = str(self._policy.pull(self.arms))
        self.pulls[arm] += 1
        self.n_pulls += 1
        if self.n_pulls % self.record_every == 0:
            self._record()
        return arm

    def choose_for(self, key: str) -> str:
        """The arm this bandit picks for ``key`` (e.g. a user's session), without changing its
        state: the policy's randomness is drawn from a generator seeded by ``key``, so every
        copy of the bandit (one per worker) picks the same arm for the same key."""
        rng = random.Random(zlib.crc32(key.encode("utf-8", "surrogatepass")) ^ self.seed)
        policy = self._policy
        arms = self.arms
        for arm in arms:
            if policy._counts[arm] < policy.burn_in:
                return arm
        if self.policy == "thompson":
            rewards = policy._rewards  # a defaultdict: .get, so reading adds no arm to it

            def draw(a: str) -> float:
                post = rewards.get(a)
                return rng.betavariate(post.alpha, post.beta) if post is not None else rng.random()

            return max(arms, key=draw)
        saved = policy._rng
        policy._rng = rng
        try:
            return str(policy._pull(arms))
        finally:
            policy._rng = saved

    def reward(self, arm: str, value: float) -> None:
        """Report the reward of a decision made with ``arm``."""
        if arm not in self.pulls:
            raise ValueError(f"bandit {self.name!r} has no arm {arm!r} (arms: {self.arms})")
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"bandit {self.name!r}: reward {value!r} is not a finite number")
        self.updates[arm] += 1
        self.total_reward[arm] += value
        if self.policy == "thompson":
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"bandit {self.name!r}: Thompson rewards must be in [0, 1]")
            success = value == 1.0 or (value > 0.0 and self._rng.random() < value)
            self._policy.update(arm, success)
        else:
            self._policy.update(arm, value)

    # -- reading --

    def mean(self, arm: str) -> float | None:
        """Empirical mean reward of ``arm`` (``None`` before its first reward)."""
        n = self.updates[arm]
        return self.total_reward[arm] / n if n else None

    def best_arm(self) -> str | None:
        """The arm with the highest empirical mean so far."""
        means = {a: m for a in self.arms if (m := self.mean(a)) is not None}
        return max(means, key=lambda a: means[a]) if means else None

    def regret_estimate(self) -> float:
        """Cumulative regret against the best empirical mean, from the pulls so far."""
        return _regret(self.pulls, {a: self.mean(a) for a in self.arms})

    def regret_true(self) -> float | None:
        """Cumulative regret against ``true_means`` (``None`` if they were not given)."""
        if self.true_means is None:
            return None
        return _regret(self.pulls, dict(self.true_means))

    def _record(self) -> None:
        self.series.append(
            {
                "pulls": self.n_pulls,
                "regret_est": self.regret_estimate(),
                "regret_true": self.regret_true(),
            }
        )
        if len(self.series) > self.max_points:  # thin: keep every other point, record half as often
            self.record_every *= 2
            self.series = [p for p in self.series if int(p["pulls"] or 0) % self.record_every == 0]

    def meta_name(self, shard: int | str) -> str:
        """The meta key name the flow writes :meth:`to_dict` under: ``bandit:{name}:{shard}``."""
        return f"bandit:{self.name}:{shard}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary for the report (the policy itself stays in Bytewax state)."""
        return {
            "version": 1,
            "name": self.name,
            "placement": self.placement,
            "policy": self.policy,
            "seed": self.seed,
            "params": self.params,
            "arms": list(self.arms),
            "pulls": dict(self.pulls),
            "updates": dict(self.updates),
            "reward": dict(self.total_reward),
            "mean": {a: self.mean(a) for a in self.arms},
            "best_arm": self.best_arm(),
            "n_pulls": self.n_pulls,
            "regret_est": self.regret_estimate(),
            "regret_true": self.regret_true(),
            "true_means": self.true_means,
            "record_every": self.record_every,
            "series": [dict(p) for p in self.series],
        }

    @staticmethod
    def merge(dicts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Merge per-shard :meth:`to_dict` outputs: counts add up, regret is recomputed.

        Shards run their own tuners, so their regret series stay separate
        (``series_by_shard``); the merged regrets are computed from the summed pulls.

        >>> a = BanditTuner("b", "home", ["x", "y"], seed=1)
        >>> for _ in range(10):
        ...     a.reward(a.choose(), 1.0)
        >>> m = BanditTuner.merge([a.to_dict(), a.to_dict()])
        >>> m["n_pulls"], m["shards"], sum(m["reward"].values())
        (20, 2, 20.0)
        """
        if not dicts:
            raise ValueError("merge needs at least one bandit dict")
        first = dicts[0]
        arms: list[str] = []
        for d in dicts:
            arms.extend(a for a in d["arms"] if a not in arms)
        pulls = {a: sum(int(d["pulls"].get(a, 0)) for d in dicts) for a in arms}
        updates = {a: sum(int(d["updates"].get(a, 0)) for d in dicts) for a in arms}
        reward = {a: math.fsum(float(d["reward"].get(a, 0.0)) for d in dicts) for a in arms}
        mean = {a: (reward[a] / updates[a] if updates[a] else None) for a in arms}
        known = {a: m for a, m in mean.items() if m is not None}
        true_means = first.get("true_means")
        return {
            "version": 1,
            "name": first["name"],
            "placement": first["placement"],
            "policy": first["policy"],
            "arms": arms,
            "shards": len(dicts),
            "pulls": pulls,
            "updates": updates,
            "reward": reward,
            "mean": mean,
            "best_arm": max(known, key=lambda a: known[a]) if known else None,
            "n_pulls": sum(pulls.values()),
            "regret_est": _regret(pulls, mean),
            "regret_true": _regret(pulls, true_means) if true_means else None,
            "true_means": true_means,
            "series_by_shard": [list(d.get("series", [])) for d in dicts],
        }


def _regret(pulls: Mapping[str, int], means: Mapping[str, float | None]) -> float:
    known = {a: m for a, m in means.items() if m is not None}
    if not known:
        return 0.0
    best = max(known.values())
    return math.fsum(pulls.get(a, 0) * (best - m) for a, m in known.items())


def _make_policy(policy: str, seed: int, params: Mapping[str, float], name: str) -> Any:
    allowed = {
        "thompson": {"burn_in"},
        "ucb": {"delta", "burn_in"},
        "epsilon": {"epsilon", "decay", "burn_in"},
    }[policy]
    unknown = set(params) - allowed
    if unknown:
        raise ConfigError(
            f"bandit {name!r}: params {sorted(unknown)} do not apply to policy {policy!r} "
            f"(it takes {sorted(allowed)})"
        )
    burn_in = int(params.get("burn_in", 0))
    if policy == "thompson":
        return bandit.ThompsonSampling(reward_obj=proba.Beta(), burn_in=burn_in, seed=seed)
    if policy == "ucb":
        return bandit.UCB(delta=float(params.get("delta", 1.0)), burn_in=burn_in, seed=seed)
    return bandit.EpsilonGreedy(
        epsilon=float(params.get("epsilon", 0.1)),
        decay=float(params.get("decay", 0.0)),
        burn_in=burn_in,
        seed=seed,
    )
