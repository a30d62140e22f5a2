"""Context in the ranker: where a visit comes from, crossed with what a candidate is.

A visit's context (what enrichment derived from its events: device, local hour, weekday,
referral class, channel, country) becomes a few *context values*, strings such as
``"d:mobile"``, ``"h:evening"``, ``"w:weekend"``, ``"r:social"``, ``"c:app"``, ``"g:FR"``
(:func:`context_values`). The ranker crosses each with the candidate's category and with its
price band within that category (``"$low"``, ``"$mid"``, ``"$high"``:
:meth:`rtp.candidates.popularity.Popularity.key_of`), e.g. ``"d:mobile|shoes"`` or
``"h:evening|$low"``: one-hot cross features of the linear model, each with its own learned
weight (:data:`rtp.ranking.ranker.OnlineRanker` learns them beside the dense features; a weight
starts at 0, so a cold model ranks as without context).

At decision time the crosses of one candidate are ``len(values) x 2`` weight look-ups; a
decision's candidates share a few ``(category, band)`` pairs, so :class:`CrossTerms` sums them
once per pair. A user without context values pays nothing.

>>> context_values(ContextFields.parse("device,hour,weekend"), "mobile", None, None, None,
...                hour=20, weekday=5)
('d:mobile', 'h:evening', 'w:weekend')
>>> cross_keys(("d:mobile", "h:evening"), ("shoes", "$low"))
['d:mobile|shoes', 'h:evening|shoes', 'd:mobile|$low', 'h:evening|$low']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

SESSION_DECAY = 1.0  # a cross feature is worth n ** -SESSION_DECAY after n events of the visit
FIELDS = ("device", "hour", "weekend", "referral", "channel", "country")
CROSSES = ("cat", "price")
BANDS = ("$low", "$mid", "$high")  # a candidate's price within its category


def hour_band(hour: int) -> str | None:
    """``night`` (0-5), ``morning`` (6-11), ``afternoon`` (12-17), ``evening`` (18-23).

    >>> [hour_band(h) for h in (3, 9, 13, 21, -1)]
    ['night', 'morning', 'afternoon', 'evening', None]
    """
    if hour < 0:
        return None
    return ("night", "morning", "afternoon", "evening")[hour // 6]


@dataclass(frozen=True)
class ContextFields:
    """Which context fields (:data:`FIELDS`) and which crosses (:data:`CROSSES`) the ranker
    uses (``Settings.rank_context``, ``Settings.rank_crosses``). The defaults are the settings'
    defaults: the groups that pay for themselves on the synthetic stream (docs/quality.md)."""

    device: bool = True
    hour: bool = True
    weekend: bool = False
    referral: bool = True
    channel: bool = False
    country: bool = False
    cat: bool = False
    price: bool = True

    @classmethod
    def parse(cls, fields: str, crosses: str = "price") -> ContextFields:
        """From comma-separated names (``""`` or ``"none"``: none)."""
        wanted = {f.strip() for f in fields.split(",") if f.strip() and f.strip() != "none"}
        cross = {c.strip() for c in crosses.split(",") if c.strip() and c.strip() != "none"}
        unknown = (wanted - set(FIELDS)) | (cross - set(CROSSES))
        if unknown:
            raise ValueError(
                f"unknown context fields or crosses {sorted(unknown)}: "
                f"fields are {', '.join(FIELDS)}; crosses {', '.join(CROSSES)}"
            )
        return cls(**{f: f in wanted for f in FIELDS}, **{c: c in cross for c in CROSSES})

    @property
    def any(self) -> bool:
        return (self.cat or self.price) and any(getattr(self, f) for f in FIELDS)


def context_values(
    fields: ContextFields,
    device: str | None,
    referral: str | None,
    channel: str | None,
    country: str | None,
    hour: int,
    weekday: int,
) -> tuple[str, ...]:
    """The visit's context values (unobserved fields give none). The local time (hour band,
    weekend) is a value only beside something observed of the visit itself (device, referral,
    channel or country): a data set of bare item views has a clock but no context, and crossing
    the clock alone with every category costs each decision without paying (docs/quality.md).

    >>> context_values(ContextFields(), None, None, None, None, hour=20, weekday=5)
    ()
    """
    if device is None and referral is None and channel is None and country is None:
        return ()
    out: list[str] = []
    if fields.device and device is not None:
        out.append("d:" + device)
    if fields.hour:
        band = hour_band(hour)
        if band is not None:
            out.append("h:" + band)
    if fields.weekend and weekday >= 0:
        out.append("w:weekend" if weekday >= 5 else "w:weekday")
    if fields.referral and referral is not None:
        out.append("r:" + referral)
    if fields.channel and channel is not None:
        out.append("c:" + channel)
    if fields.country and country is not None:
        out.append("g:" + country)
    return tuple(out)


def cross_keys(
    values: Sequence[str],
    key: Sequence[str | None],
    cats: bool = True,
    prices: bool = True,
) -> list[str]:
    """The cross features of a candidate whose ``(category, band)`` is ``key`` (crosses with
    the category if ``cats``, with the band if ``prices``)."""
    cat, band = key
    out = [v + "|" + cat for v in values] if cats and cat is not None else []
    if prices and band is not None:
        out += [v + "|" + band for v in values]
    return out


def session_scale(n: int) -> float:
    """The value of a cross feature after ``n`` events of the visit: context tells most about
    a visit that has shown little of itself yet (``n ** -SESSION_DECAY``; 1 before any event).

    >>> session_scale(0), session_scale(1), session_scale(4)
    (1.0, 1.0, 0.25)
    """
    return 1.0 if n <= 1 else float(n) ** -SESSION_DECAY


class CrossTerms:
    """A decision's context term per ``(category, band)``: the sum of the cross weights, times
    the visit's :func:`session_scale`.

    ``weights`` holds the cross weights by context value (``{"d:mobile": {"shoes": 0.2,
    "$low": 0.1}}``), so a sum is one look-up per context value, without building keys.
    ``memo`` keeps the sums (before the scale): pass the same dict to the decisions of one
    context under the same weights and each sum is computed once.
    """

    __slots__ = ("tables", "cat", "price", "scale", "memo")

    def __init__(
        self,
        values: Sequence[str],
        weights: Mapping[str, Mapping[str, float]],
        cat: bool,
        price: bool,
        scale: float = 1.0,
        memo: dict[tuple[str | None, str | None], float] | None = None,
    ) -> None:
        self.tables = [t for t in (weights.get(v) for v in values) if t]
        self.cat = cat
        self.price = price
        self.scale = scale
        self.memo: dict[tuple[str | None, str | None], float] = {} if memo is None else memo

    def total(self, key: tuple[str | None, str | None]) -> float:
        """The sum of the cross weights of a candidate with ``key`` (not scaled)."""
        t = self.memo.get(key)
        if t is None:
            t = 0.0
            cat, band = key
            if self.cat and cat is not None:
                for table in self.tables:
                    t += table.get(cat, 0.0)
            if self.price and band is not None:
                for table in self.tables:
                    t += table.get(band, 0.0)
            self.memo[key] = t
        return t

    def __call__(self, key: tuple[str | None, str | None]) -> float:
        return self.total(key) * self.scale
