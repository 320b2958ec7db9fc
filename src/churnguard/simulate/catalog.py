"""The item catalogue: categories, items with prices and bilingual titles.

Items are grouped by category; within a category popularity is skewed (an item index is drawn
as floor(n_c * u**2), so low indices sell more), which gives the long tail seen in real shops.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np

# (category, English nouns, Chinese nouns, log-normal median price, sigma), from data/catalog.toml
_CATEGORIES: tuple[tuple[str, tuple[str, ...], tuple[str, ...], float, float], ...] = tuple(
    (c["name"], tuple(c["en"]), tuple(c["zh"]), float(c["median_price"]), float(c["sigma"]))
    for c in tomllib.loads((resources.files(__package__) / "data" / "catalog.toml")
                           .read_text(encoding="utf-8"))["category"]
)

CATEGORIES: tuple[str, ...] = tuple(c[0] for c in _CATEGORIES)
N_CATEGORIES = len(CATEGORIES)
# Per category: (English nouns, Chinese nouns), also used as search queries.
CATEGORY_NOUNS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = tuple(
    (c[1], c[2]) for c in _CATEGORIES)
_ADJECTIVES = ("Classic", "Premium", "Mini", "Eco", "Pro", "Soft", "Smart", "Deluxe")
_ADJECTIVES_ZH = ("经典", "高级", "迷你", "环保", "专业", "柔软", "智能", "豪华")


@dataclass(frozen=True, kw_only=True)
class Catalog:
    """Items sorted by category; ``offsets[c]:offsets[c+1]`` are the items of category c."""

    item_id: np.ndarray  # str
    category: np.ndarray  # int16 index into CATEGORIES
    price: np.ndarray  # float64, before the shop-wide price increase
    title: np.ndarray  # str, English and Chinese words
    offsets: np.ndarray  # int64, length N_CATEGORIES + 1

    @property
    def n_items(self) -> int:
        return int(self.item_id.shape[0])


def draw_catalog(*, rng: np.random.Generator, items_per_category: int = 150) -> Catalog:
    """Draw the catalogue: prices log-normal per category, titles mixing English and Chinese."""
    n = items_per_category * N_CATEGORIES
    category = np.repeat(np.arange(N_CATEGORIES, dtype=np.int16), items_per_category)
    medians = np.array([c[3] for c in _CATEGORIES])
    sigmas = np.array([c[4] for c in _CATEGORIES])
    price = np.round(medians[category] * np.exp(sigmas[category] * rng.standard_normal(n)), 2)
    price = np.maximum(price, 0.99)
    noun_idx = rng.integers(0, 5, size=n)
    adj_idx = rng.integers(0, len(_ADJECTIVES), size=n)
    titles = [
        f"{_ADJECTIVES[a]} {_CATEGORIES[c][1][k]} {_ADJECTIVES_ZH[a]}{_CATEGORIES[c][2][k]}"
        for c, k, a in zip(category.tolist(), noun_idx.tolist(), adj_idx.tolist())
    ]
    item_id = np.array([f"i{j:05d}" for j in range(n)])
    offsets = np.arange(N_CATEGORIES + 1, dtype=np.int64) * items_per_category
    return Catalog(item_id=item_id, category=category, price=price,
                   title=np.array(titles), offsets=offsets)


def draw_items(*, rng: np.random.Generator, catalog: Catalog, category: np.ndarray) -> np.ndarray:
    """Draw one item index per entry of ``category`` with popularity skew floor(n_c * u**2)."""
    counts = np.diff(catalog.offsets)[category]
    pick = np.floor(counts * rng.random(category.shape[0]) ** 2).astype(np.int64)
    return catalog.offsets[category] + np.minimum(pick, counts - 1)


def expected_basket(*, catalog: Catalog) -> float:
    """Mean basket used to price coupons: E[price] * E[quantity], quantity 1 + Poisson(0.3)."""
    return float(np.mean(catalog.price) * 1.3)
