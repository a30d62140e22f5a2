"""The demo shop's catalogue: :mod:`rtp.tools.synth`'s items, categories and prices, with
display names.

The items are exactly those of ``synth.generate_records(..., n_items=N_ITEMS,
n_categories=N_CATEGORIES, seed=SEED)``, so the seeded history and the shop agree. Names are a
presentation detail made here (an adjective and a noun per category), deterministic per item.
"""

from __future__ import annotations

import random
from functools import lru_cache
from typing import NamedTuple

from rtp.tools import synth

__all__ = ["N_CATEGORIES", "N_ITEMS", "SEED", "Product", "catalogue"]

N_ITEMS = 600
N_CATEGORIES = 24
SEED = 7

_NOUNS = {
    "shoes": "sneakers", "dresses": "dress", "jeans": "jeans", "jackets": "jacket",
    "bags": "tote bag", "watches": "watch", "laptops": "laptop", "phones": "phone",
    "headphones": "headphones", "cameras": "camera", "books": "novel", "toys": "toy set",
    "beauty": "lipstick", "skincare": "face cream", "kitchen": "pan", "furniture": "armchair",
    "bedding": "duvet", "lighting": "lamp", "garden": "planter", "tools": "drill",
    "running": "running shoes", "cycling": "bike helmet", "camping": "tent",
    "pet-supplies": "dog bed", "coffee": "coffee beans", "wine": "red wine", "office": "desk",
    "gaming": "controller", "baby": "stroller", "jewelry": "necklace", "fragrance": "perfume",
    "stationery": "notebook",
}  # fmt: skip
_ADJECTIVES = (
    "Classic", "Nordic", "Velvet", "Urban", "Oak", "Linen", "Modern", "Vintage",
    "Coastal", "Minimal", "Rustic", "Bold", "Soft", "Compact", "Premium", "Everyday",
)  # fmt: skip


class Product(NamedTuple):
    id: str
    name: str
    category: str
    price: float


@lru_cache(maxsize=4)
def catalogue(
    n_items: int = N_ITEMS, n_categories: int = N_CATEGORIES, seed: int = SEED
) -> dict[str, Product]:
    """Item id -> product, in catalogue order."""
    # synth has no public catalogue function yet: its private _Catalog is what
    # generate_records builds first from random.Random(seed), so this is the same catalogue.
    cat = synth._Catalog(n_items, min(n_categories, n_items), random.Random(seed))
    out: dict[str, Product] = {}
    for n, (item, category, price) in enumerate(cat.meta):
        noun = _NOUNS.get(category, category)
        name = f"{_ADJECTIVES[(n * 7 + len(category)) % len(_ADJECTIVES)]} {noun}"
        out[item] = Product(item, name, category, float(price))
    return out


def categories() -> list[str]:
    """Category names, most items first (then by name)."""
    counts: dict[str, int] = {}
    for p in catalogue().values():
        counts[p.category] = counts.get(p.category, 0) + 1
    return sorted(counts, key=lambda c: (-counts[c], c))
