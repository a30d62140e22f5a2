"""A ranked list of items with scores and reason codes, kept as the parallel lists it is
stored as; and the business rules of each placement."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any


class Ranked:
    """A ranked list kept as the three parallel lists it is stored as (items, scores, reason
    codes); it iterates, indexes and compares as ``(item, score, code)`` tuples."""

    __slots__ = ("items", "scores", "codes")

    def __init__(
        self,
        items: list[str] | None = None,
        scores: list[float] | None = None,
        codes: list[str] | None = None,
    ) -> None:
        self.items = items if items is not None else []
        self.scores = scores if scores is not None else []
        self.codes = codes if codes is not None else []

    @classmethod
    def of(cls, entries: Ranked | Iterable[tuple[str, float, str]]) -> Ranked:
        """A :class:`Ranked` from ``(item, score, code)`` tuples (or itself)."""
        if isinstance(entries, Ranked):
            return entries
        out = cls()
        for it, sc, code in entries:
            out.append(it, sc, code)
        return out

    def append(self, item: str, score: float, code: str) -> None:
        self.items.append(item)
        self.scores.append(score)
        self.codes.append(code)

    def __iter__(self) -> Iterator[tuple[str, float, str]]:
        return zip(self.items, self.scores, self.codes, strict=True)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[str, float, str]:
        return (self.items[i], self.scores[i], self.codes[i])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Ranked, list)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Ranked({list(self)!r})"


@dataclass(frozen=True)
class Rules:
    """Per-placement business rules (from :class:`rtp.config.Settings`)."""

    home_n: int = 20
    product_n: int = 10
    reshow_slots: int = 8  # session items allowed in the home list ("continue shopping")
    explore_share: float = 0.1
    suppress_bought: bool = True
    product_suppress_viewed: bool = True  # the product page never recommends its own item
    price_slack: float = 2.0  # outside [lo / slack, hi * slack] is out of band
    assist_cooldown_s: float = 600.0
    offer_cooldown_s: float = 86_400.0
    offer_per_session: int = 1
    offer_show_s: float = 900.0
    intent_offer: float = 0.6

    @classmethod
    def from_settings(cls, settings: Any) -> Rules:
        return cls(
            home_n=settings.home_n,
            product_n=settings.product_n,
            reshow_slots=settings.reshow_slots,
            explore_share=settings.explore_share,
        )
