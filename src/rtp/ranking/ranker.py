"""Stage two: an online ranking model over candidate features (River, test-then-train).

Each candidate is described by a few dense features (below). The model is a River
``LogisticRegression`` that starts from prior weights (so a cold flow already ranks sensibly) and
learns, test-then-train, from what users did next: when a user's next event touches an item that
was among their candidates (served or not: a positive the list missed teaches most), that
candidate is a positive example and two items served to them are negatives.

Scoring runs on every decision, so it does not call River per candidate: at each batch boundary
:meth:`OnlineRanker.freeze` copies the weights into a tuple, and the decision code takes a dot
product with it (what ``predict_one`` would compute before the sigmoid, which preserves order).

>>> r = OnlineRanker(seed=1)
>>> x = dict.fromkeys(FEATURES, 0.0); x["cv"] = 1.0
>>> r.learn_one(x, True)
>>> r.score(x) > r.score(dict.fromkeys(FEATURES, 0.0))
True
"""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from river import linear_model, optim

FEATURES = (
    "cv",  # co-visitation with the session's recent items (normalised, recency-weighted)
    "cv_last",  # co-visitation with the item the user is on
    "cv2",  # two-hop co-visitation with the session's last items (normalised, recency-weighted)
    "cat",  # blended (session + profile) weight of the candidate's category
    "same_cat",  # same category as the item the user is on
    "pop",  # trending score (normalised to the top item)
    "cat_pop",  # popularity within its category (normalised)
    "price_fit",  # 1 inside the session's price band, 0 outside, 0.5 unknown
    "seen",  # the user already interacted with it this session (a re-show)
    "re_cv",  # a re-show's co-visitation with the session's last items (as "cv" for new ones)
    "recency",  # how recently in the session (1 = the item the user is on)
    "at_last",  # 1 for the item the user is on
    "at_prev",  # 1 for the item before it (the one a comparison goes back to)
    "seen_n",  # interactions with it this session (a re-show), up to 4, / 4
    "cart",  # in the cart
    "fav",  # a long-term favourite from the profile
    "knn",  # session-neighbourhood score, new items (rtp.candidates.sessions; normalised)
)
PRIOR = {
    "cv": 2.5,  # new items only: a re-show's co-visitation is "re_cv"
    "cv_last": 1.5,
    "cv2": 0.8,
    "cat": 1.0,
    "same_cat": 0.3,
    "pop": 0.4,
    "cat_pop": 0.6,
    "price_fit": 0.2,
    "seen": 0.8,
    "re_cv": 1.5,
    "recency": 2.0,
    "at_last": 0.0,
    "at_prev": 0.0,
    "seen_n": 0.0,
    "cart": 0.8,
    "fav": 0.5,
    "knn": 1.0,  # off unless Settings.session_neighbours (docs/quality.md)
}
PRIOR_INTERCEPT = -3.0
# positions in a feature vector (and in the frozen weights)
(CV, CV_LAST, CV2, CAT, SAME_CAT, POP, CAT_POP, PRICE_FIT, SEEN, RE_CV, RECENCY, AT_LAST, AT_PREV,
 SEEN_N, CART, FAV, KNN) = range(17)  # fmt: skip
assert FEATURES[FAV] == "fav" and FEATURES[RE_CV] == "re_cv" and len(FEATURES) == KNN + 1
T = TypeVar("T")


KINDS = ("lr", "pa", "prior")


class OnlineRanker:
    """A linear River model over :data:`FEATURES`, starting from :data:`PRIOR`.

    ``kind``: ``lr`` (``LogisticRegression`` with SGD, the default), ``pa``
    (``PAClassifier``, passive-aggressive) or ``prior`` (the prior weights, never updated: the
    control that shows what learning adds). All three are linear, so decisions score them with
    the same frozen dot product. BENCHMARKS.md has their quality and cost.
    """

    def __init__(self, lr: float = 0.02, l2: float = 1e-4, seed: int = 0, kind: str = "lr") -> None:
        if kind not in KINDS:
            raise ValueError(f"ranker kind {kind!r} is not one of {KINDS}")
        self.lr = lr
        self.l2 = l2
        self.seed = seed
        self.kind = kind
        self.model: Any
        if kind == "pa":
            self.model = linear_model.PAClassifier(C=lr, mode=1)
            self.model.intercept = PRIOR_INTERCEPT
            weights = self.model.weights
        else:
            self.model = linear_model.LogisticRegression(
                optimizer=optim.SGD(lr), l2=l2, intercept_init=PRIOR_INTERCEPT, intercept_lr=lr
            )
            weights = self.model._weights
        for name, w in PRIOR.items():
            weights[name] = w
        self.rng = random.Random(seed)
        self.updates = 0
        self.frozen: tuple[float, ...] = tuple(PRIOR[f] for f in FEATURES)
        self.frozen_at = 0

    # River's protocol: learn_one changes state, score/predict do not.
    def learn_one(self, x: dict[str, float], y: bool) -> None:
        if self.kind != "prior":
            self.model.learn_one(x, y)
        self.updates += 1

    @property
    def _weights(self) -> Any:
        return self.model.weights if self.kind == "pa" else self.model._weights

    def predict_proba_one(self, x: dict[str, float]) -> float:
        if self.kind == "pa":
            return 1.0 / (1.0 + math.exp(-self.score(x)))
        proba: dict[bool, float] = self.model.predict_proba_one(x)
        return float(proba[True])

    def score(self, x: dict[str, float]) -> float:
        """The linear score (monotone in the predicted probability)."""
        w = self._weights
        return float(sum(w.get(f, 0.0) * v for f, v in x.items()) + self.model.intercept)

    def sample_negatives(self, others: Sequence[T]) -> list[T]:
        """Up to two of ``others`` (the served candidates not chosen), drawn with the ranker's
        own seeded generator."""
        return self.rng.sample(list(others), min(2, len(others))) if others else []

    def learn_choice(self, chosen: dict[str, float], others: list[dict[str, float]]) -> None:
        """One positive and up to two sampled negatives from the same served list."""
        self.learn_one(chosen, True)
        for x in self.sample_negatives(others):
            self.learn_one(x, False)

    def weights_of(self, names: Iterable[str]) -> dict[str, float]:
        """The current weights of features ``names`` (the context crosses a tick touched)."""
        w = self._weights
        return {k: float(w.get(k, 0.0)) for k in names}

    def freeze(self) -> tuple[float, ...]:
        """Copy the current weights for fast scoring (called at batch boundaries)."""
        w = self._weights
        self.frozen = tuple(float(w.get(f, 0.0)) for f in FEATURES)
        self.frozen_at = self.updates
        return self.frozen

    @property
    def version(self) -> str:
        """Names the weights decisions are ranked with: ``lr-<updates at the last freeze>``."""
        return f"{self.kind}-{self.frozen_at}"

    def clone(self) -> OnlineRanker:
        """A fresh, untrained ranker with the same hyper-parameters (River's ``clone``)."""
        return OnlineRanker(lr=self.lr, l2=self.l2, seed=self.seed, kind=self.kind)

    def __deepcopy__(self, memo: dict[int, Any]) -> OnlineRanker:
        new = OnlineRanker.__new__(OnlineRanker)
        new.__dict__.update({k: copy.deepcopy(v, memo) for k, v in self.__dict__.items()})
        return new
