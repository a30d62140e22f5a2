"""The ``product`` placement: a product page's recommendations, the same for every user on it,
stored once per item (``n:{item}``) by the item step that owns the item.

The page lists the item's strongest co-visited neighbours (both directions: what sessions
viewed after it and, at half weight, before it), scored relative to the strongest. A page with
fewer neighbours than asked is filled at read time by the client from what is trending, so the
stored value never depends on lists another step owns.
"""

from __future__ import annotations

from rtp.candidates.covisit import CoVisitation


def product_list(cv: CoVisitation, item: str, n: int) -> tuple[list[str], list[float]]:
    """``(items, scores)`` of ``item``'s product page: up to ``n`` neighbours, never itself."""
    items: list[str] = []
    scores: list[float] = []
    lst = cv.top(item, n + 1)
    top = lst[0][1] if lst else 1.0
    for nbr, w in lst:
        if nbr == item:
            continue
        items.append(nbr)
        scores.append(int(w / top * 1000) / 1000)  # strength relative to the strongest
        if len(items) >= n:
            break
    return items, scores
