"""Top-k item recommendations per customer: the "recommendation" retention action.

Everything is learnt from events strictly before the cutoff ``as_of``. Three signals:

* **similar**: item-based collaborative filtering (Sarwar et al. 2001, "Item-based collaborative
  filtering recommendation algorithms", WWW; Deshpande & Karypis 2004, "Item-based top-N
  recommendation algorithms", ACM TOIS 22(1)). The implicit customer x item matrix X holds, per
  pair, the event-type weights (order > cart add > view) halved every ``half_life_days``.
  Co-occurrence is taken on Z = log(1 + X), so that one heavy browser does not make two items
  alike, and item j's similarity to item i is the asymmetric cosine of Aiolli (2013, "Efficient
  top-N recommendation for very large scale binary rated datasets", RecSys; alpha = 1/2 is the
  plain cosine) with a support shrinkage:

      sim(i, j) = (Z^T Z)_ij / (||z_i||^(2 alpha) ||z_j||^(2 (1 - alpha)) + shrinkage).

  Each item keeps its ``neighbours`` most similar items (bounded memory), and each row is
  normalised to sum 1 (S): an item hands its customer's attention on to its neighbours.
* **title**: an item with fewer than ``min_support`` customers before ``as_of`` (a new item) has
  no trustworthy neighbours of its own. It is reached through the similarity of its title
  (:func:`churnguard.text.bilingual.encode_titles`: MiniLM, or for a mostly Chinese catalogue a
  character n-gram encoder fitted on its titles) to the titles of the customer's items:
  T_ij = max(0, (cos_ij - c0) / (1 - c0)) / N for the N = ``title_neighbours`` new items j
  closest to item i (c0 = ``title_min_similarity``). Dividing by N, not by the row sum, keeps
  a new item's share small however few new items there are.
* **popular**: category-aware popularity, a_u,c(j) q_j: the customer's category shares (from the
  same weights, shrunk towards the shop's by ``category_prior`` pseudo-counts) times item j's
  share of its category's orders in the last ``popular_days``. A customer without history gets
  the shop's category shares, which is plain popularity.

With p_u the customer's weights normalised to sum 1, the score is a mixture of three
next-item distributions,

    score(u, j) = (1 - lam) sum_i p_ui [(1 - tau) S_ij + tau T_ij] + lam a_u,c(j) q_j,

lam = ``popular_share``, tau = ``title_share``. Items the customer already ordered are never
recommended; ``source`` names the term that contributes most to a row's score. The heavy
aggregation is DuckDB SQL, the linear algebra scipy.sparse on blocks of customers: nothing loops
over customers or events in Python.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> rows = [("a", "i1"), ("a", "i2"), ("b", "i1"), ("b", "i2"), ("c", "i1"), ("d", "i3")]
>>> _ = store.con.executemany(
...     "INSERT INTO events (event_id, user_id, ts, type, item_id, batch_id) "
...     "VALUES (?, ?, '2025-01-10', 'order', ?, 'b')",
...     [(f"e{n}", u, i) for n, (u, i) in enumerate(rows)])
>>> config = RecommendConfig(min_support=1, title_share=0.0)
>>> recs = recommend_items(store, as_of="2025-02-01", user_ids=["c", "new"], k=1, config=config)
>>> recs[["user_id", "rank", "item_id", "source"]].to_dict("records")
[{'user_id': 'c', 'rank': 1, 'item_id': 'i2', 'source': 'similar'}, \
{'user_id': 'new', 'rank': 1, 'item_id': 'i1', 'source': 'popular'}]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from churnguard.cutoffs import label_window_end, lookback_start
from churnguard.labels import to_cutoff
from churnguard.store import Store

__all__ = [
    "RecommendConfig",
    "SOURCES",
    "evaluate_recommendations",
    "popular_items",
    "recommend_items",
]

SOURCES: tuple[str, ...] = ("similar", "title", "popular")
# Dense score blocks are (customers in a block) x (items); this caps the cells of one block.
_BLOCK_CELLS = 4_000_000

Encoder = Callable[[Sequence[str]], np.ndarray]


class RecommendConfig(BaseModel):
    """What the recommender weighs and keeps (the symbols are the module docstring's).

    The defaults were checked on the simulated shop at one cutoff (benchmarks/bench_recommend.py,
    hit rate@10 about 0.175 with a standard error of 0.003): category_prior 0.1-1,
    half_life_days 30-365, equal or 4:2:1 event weights and popular_share 0.3-1 all landed
    within 0.007 of each other; CF alone (popular_share = 0) scored 0.02 lower.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Implicit feedback per event type; types not listed carry no weight (orders still count as
    # bought, whatever their weight).
    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"order": 4.0, "cart_add": 2.0, "view": 1.0})
    lookback_days: int = Field(365, gt=0)
    half_life_days: float = Field(90.0, gt=0)
    neighbours: int = Field(100, gt=0)
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    shrinkage: float = Field(10.0, ge=0.0)
    # Items with fewer customers than this before as_of are "new": reached by title only.
    min_support: int = Field(5, ge=1)
    title_share: float = Field(0.1, ge=0.0, le=1.0)
    title_neighbours: int = Field(20, gt=0)
    title_min_similarity: float = Field(0.6, ge=-1.0, lt=1.0)
    popular_share: float = Field(0.5, ge=0.0, le=1.0)
    popular_days: int = Field(90, gt=0)
    category_prior: float = Field(0.3, ge=0.0)

    @field_validator("event_weights")
    @classmethod
    def _weights_not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {t: w for t, w in value.items() if not w >= 0}
        if bad:
            raise ValueError(f"event weights must be >= 0, got {bad}; leave a type out to "
                             "ignore it")
        return value


# -- reading the store ---------------------------------------------------------------------------
def _arrow(store: Store, sql: str, params: list[object]) -> pa.Table:
    # A caller's earlier execute() may have rows left unread (fetchone); DuckDB refuses new work
    # on the connection until that statement is run to its end.
    store.con.complete()
    return store.con.sql(sql, params=params).to_arrow_table()


@dataclass(frozen=True, kw_only=True)
class _Catalogue:
    item_id: np.ndarray  # str, sorted
    category: np.ndarray  # int code into ``categories``; len(categories) for "no category"
    categories: np.ndarray  # str
    title: np.ndarray  # str, '' when unknown

    @property
    def n(self) -> int:
        return int(self.item_id.shape[0])

    def index(self) -> pa.Table:
        return pa.table({"item_id": self.item_id, "j": np.arange(self.n, dtype=np.int64)})


def _catalogue(store: Store, as_of: dt.datetime) -> _Catalogue:
    """Every item of the items table and every item seen in events before ``as_of``."""
    table = _arrow(store, """
        WITH seen AS (
            SELECT item_id, min(category) AS category FROM events
            WHERE ts < ? AND item_id IS NOT NULL GROUP BY item_id
        )
        SELECT coalesce(i.item_id, s.item_id) AS item_id,
               coalesce(i.category, s.category) AS category,
               coalesce(i.title, '') AS title
        FROM items i FULL OUTER JOIN seen s ON s.item_id = i.item_id
        ORDER BY 1
        """, [as_of])
    codes, categories = pd.factorize(table["category"].to_pandas(), sort=True)
    categories = np.asarray(categories, dtype=object)
    return _Catalogue(item_id=table["item_id"].to_numpy(zero_copy_only=False).astype(object),
                      category=np.where(codes >= 0, codes, categories.size).astype(np.int64),
                      categories=categories,
                      title=table["title"].to_numpy(zero_copy_only=False).astype(object))


@dataclass(frozen=True, kw_only=True)
class _Interactions:
    """Customer x item matrices over every customer with item events before ``as_of``."""

    user_id: np.ndarray  # str, the matrices' row order
    weight: sp.csr_matrix  # decayed implicit feedback inside the lookback
    bought: sp.csr_matrix  # 1 where the customer ordered the item, ever before as_of


def _interactions(store: Store, catalogue: _Catalogue, as_of: dt.datetime,
                  config: RecommendConfig) -> _Interactions:
    weights = pa.table({"type": list(config.event_weights),
                        "w": [float(v) for v in config.event_weights.values()]})
    start = lookback_start(as_of, config.lookback_days)
    with (store.registered(weights, "rec_w") as w,
          store.registered(catalogue.index(), "rec_i") as idx):
        table = _arrow(store, f"""
            WITH pairs AS (
                SELECT e.user_id, e.item_id,
                       sum(w.w * pow(0.5, date_diff('second', e.ts, ?::TIMESTAMP) / 86400.0 / ?))
                           FILTER (WHERE e.ts >= ?) AS weight,
                       bool_or(e.type = 'order') AS bought
                FROM events e LEFT JOIN {w} w ON w.type = e.type
                WHERE e.ts < ? AND e.item_id IS NOT NULL AND (w.w IS NOT NULL OR e.type = 'order')
                GROUP BY e.user_id, e.item_id
            )
            SELECT dense_rank() OVER (ORDER BY p.user_id) - 1 AS u, p.user_id, idx.j,
                   coalesce(p.weight, 0.0) AS weight, p.bought
            FROM pairs p JOIN {idx} idx ON idx.item_id = p.item_id
            """, [as_of, config.half_life_days, start, as_of])
    u = table["u"].to_numpy()
    j = table["j"].to_numpy()
    user_id = np.empty(int(u.max()) + 1 if u.size else 0, dtype=object)
    user_id[u] = table["user_id"].to_numpy(zero_copy_only=False)
    shape = (user_id.size, catalogue.n)
    weight = sp.csr_matrix((table["weight"].to_numpy(), (u, j)), shape=shape)
    weight.eliminate_zeros()
    bought = table["bought"].to_numpy(zero_copy_only=False).astype(bool)
    bought = sp.csr_matrix((np.ones(int(bought.sum())), (u[bought], j[bought])), shape=shape)
    return _Interactions(user_id=user_id, weight=weight, bought=bought)


def _recent_orders(store: Store, catalogue: _Catalogue, as_of: dt.datetime,
                   days: int) -> np.ndarray:
    """Orders per item in [as_of - days, as_of), in catalogue order."""
    with store.registered(catalogue.index(), "rec_i") as idx:
        table = _arrow(store, f"""
            SELECT idx.j, count(*) AS n FROM events e JOIN {idx} idx ON idx.item_id = e.item_id
            WHERE e.type = 'order' AND e.ts < ? AND e.ts >= ? GROUP BY idx.j
            """, [as_of, lookback_start(as_of, days)])
    counts = np.zeros(catalogue.n)
    counts[table["j"].to_numpy()] = table["n"].to_numpy()
    return counts


def _ordered_before(store: Store, catalogue: _Catalogue, as_of: dt.datetime,
                    users: np.ndarray) -> sp.csr_matrix:
    """(users, items): 1 where the customer ordered the item before ``as_of``."""
    wanted = pa.table({"user_id": pa.array(users.tolist(), pa.string()),
                       "u": np.arange(users.size, dtype=np.int64)})
    with (store.registered(wanted, "rec_u") as uu,
          store.registered(catalogue.index(), "rec_i") as idx):
        table = _arrow(store, f"""
            SELECT DISTINCT uu.u, idx.j FROM events e
            JOIN {uu} uu ON uu.user_id = e.user_id JOIN {idx} idx ON idx.item_id = e.item_id
            WHERE e.type = 'order' AND e.ts < ?
            """, [as_of])
    u, j = table["u"].to_numpy(), table["j"].to_numpy()
    return sp.csr_matrix((np.ones(u.size), (u, j)), shape=(users.size, catalogue.n))


def _customers(store: Store, as_of: dt.datetime, user_ids: Sequence[str] | None) -> np.ndarray:
    """The customers asked for, in order and without repeats; ``None``: every customer at
    ``as_of`` (signed up before it, or undated, or with an event before it), sorted."""
    if user_ids is not None:
        return np.asarray(pd.unique(pd.Series(list(user_ids), dtype=object)), dtype=object)
    table = _arrow(store, """
        SELECT user_id FROM users WHERE signup_ts IS NULL OR signup_ts < ?
        UNION SELECT user_id FROM events WHERE ts < ?
        ORDER BY 1
        """, [as_of, as_of])
    return table["user_id"].to_numpy(zero_copy_only=False).astype(object)


# -- the three signals ---------------------------------------------------------------------------
def _row_normalise(m: sp.spmatrix) -> sp.csr_matrix:
    total = np.asarray(m.sum(axis=1)).ravel()
    return (sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0))
            @ m).tocsr()


def _top_of_block(block: np.ndarray, n: int, rows: np.ndarray) -> tuple[np.ndarray, ...]:
    """(rows, columns, values) of the ``n`` largest positive entries of each row of a dense
    block whose rows are ``rows``."""
    width = min(n, block.shape[1])
    cols = np.argpartition(-block, width - 1, axis=1)[:, :width]
    vals = np.take_along_axis(block, cols, axis=1)
    keep = vals > 0
    return np.broadcast_to(rows[:, None], cols.shape)[keep], cols[keep], vals[keep]


def _from_blocks(parts: list[tuple[np.ndarray, ...]], shape: tuple[int, int]) -> sp.csr_matrix:
    rows, cols, vals = (np.concatenate(x) for x in zip(*parts)) if parts else ([], [], [])
    return sp.csr_matrix((vals, (rows, cols)), shape=shape)


def _item_neighbours(weight: sp.csr_matrix, config: RecommendConfig
                     ) -> tuple[sp.csr_matrix, np.ndarray]:
    """(S, customers per item): row-normalised top-neighbour similarities among items with
    at least ``min_support`` customers. Rows are computed in blocks of items, so memory stays
    bounded by the block and the kept neighbours, not by the square of the catalogue."""
    z = weight.log1p().T.tocsr()  # items x customers
    zt = z.T.tocsr()
    n = z.shape[0]
    norm2 = np.asarray(z.multiply(z).sum(axis=1)).ravel()
    support = np.diff(z.indptr)
    trusted = np.flatnonzero(support >= config.min_support)
    col_norm = norm2 ** (1.0 - config.alpha)
    untrusted = support < config.min_support
    parts = []
    step = max(1, _BLOCK_CELLS // max(n, 1))
    for lo in range(0, trusted.size, step):
        rows = trusted[lo:lo + step]
        co = (z[rows] @ zt).toarray()
        sim = co / (norm2[rows, None] ** config.alpha * col_norm[None, :] + config.shrinkage)
        sim[:, untrusted] = 0.0
        sim[np.arange(rows.size), rows] = 0.0  # an item is not its own neighbour
        parts.append(_top_of_block(sim, config.neighbours, rows))
    return _row_normalise(_from_blocks(parts, (n, n))), support


def _title_neighbours(catalogue: _Catalogue, new: np.ndarray, used: np.ndarray,
                      config: RecommendConfig, encode: Encoder) -> sp.csr_matrix:
    """T: item i -> the ``title_neighbours`` new items whose titles are closest to i's, for the
    items i in ``used`` (only those titles are encoded)."""
    n = catalogue.n
    titled = pd.Series(catalogue.title, dtype=object).str.len().to_numpy() > 0
    targets = np.flatnonzero(new & titled)
    if targets.size == 0 or config.title_share == 0 or not used.any():
        return sp.csr_matrix((n, n))
    sources = np.flatnonzero(titled & (used | new))
    vectors = np.asarray(encode(catalogue.title[sources].tolist()), dtype=np.float64)
    target_vectors = vectors[np.searchsorted(sources, targets)]
    c0 = config.title_min_similarity
    parts = []
    step = max(1, _BLOCK_CELLS // targets.size)
    for lo in range(0, sources.size, step):
        rows = sources[lo:lo + step]
        kernel = np.maximum((vectors[lo:lo + step] @ target_vectors.T - c0) / (1.0 - c0), 0.0)
        kernel[rows[:, None] == targets[None, :]] = 0.0  # an item is not its own neighbour
        r, c, v = _top_of_block(kernel, config.title_neighbours, rows)
        parts.append((r, targets[c], v))
    return _from_blocks(parts, (n, n)) / config.title_neighbours


@dataclass(frozen=True, kw_only=True)
class _Popularity:
    """Recent orders as category shares and each item's share of its category."""

    category: np.ndarray  # per item: category code (the last code: no category)
    within: np.ndarray  # per item: share of its category's recent orders
    shop: np.ndarray  # per category code: share of all recent orders


def _popularity(orders: np.ndarray, catalogue: _Catalogue) -> _Popularity:
    n_codes = catalogue.categories.size + 1
    per_category = np.bincount(catalogue.category, weights=orders, minlength=n_codes)
    mine = per_category[catalogue.category]
    within = np.divide(orders, mine, out=np.zeros(catalogue.n), where=mine > 0)
    total = per_category.sum()
    shop = per_category / total if total > 0 else np.zeros(n_codes)
    return _Popularity(category=catalogue.category, within=within, shop=shop)


def _affinity(profile: sp.csr_matrix, pop: _Popularity, prior: float) -> np.ndarray:
    """(customers, category codes): the customer's category shares (the profile sums to 1, or
    to 0 without history) plus ``prior`` pseudo-counts of the shop's shares."""
    n = pop.category.size
    onehot = sp.csr_matrix((np.ones(n), (np.arange(n), pop.category)),
                           shape=(n, pop.shop.size))
    own = (profile @ onehot).toarray()
    mass = own.sum(axis=1, keepdims=True)
    pseudo = np.where(mass > 0, prior, 1.0)
    return (own + pseudo * pop.shop[None, :]) / (mass + pseudo)


def _default_encoder(texts: Sequence[str]) -> np.ndarray:
    # Mostly Chinese catalogues through a character n-gram encoder fitted on their titles,
    # others through MiniLM (imports torch: only when titles are needed).
    from churnguard.text.bilingual import encode_titles

    return encode_titles(texts)


# -- ranking -------------------------------------------------------------------------------------
def _top_k(score: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best positive scores, best first, as (item columns, scores); -1 pads rows
    with fewer than k positive scores. Which of several items tied at the k-th score is kept is
    arbitrary (but fixed for given input)."""
    width = min(k, score.shape[1])
    part = np.argpartition(-score, width - 1, axis=1)[:, :width]
    top = np.take_along_axis(score, part, axis=1)
    order = np.lexsort((part, -top), axis=1)  # ties: catalogue order
    items = np.take_along_axis(part, order, axis=1)
    top = np.take_along_axis(top, order, axis=1)
    items = np.where(top > 0, items, -1)
    top = np.where(top > 0, top, 0.0)
    if width < k:
        items = np.pad(items, ((0, 0), (0, k - width)), constant_values=-1)
        top = np.pad(top, ((0, 0), (0, k - width)))
    return items, top


def _frame(users: np.ndarray, items: np.ndarray, scores: np.ndarray, sources: np.ndarray,
           item_id: np.ndarray) -> pd.DataFrame:
    k = items.shape[1]
    keep = items.ravel() >= 0
    return pd.DataFrame({
        "user_id": np.repeat(users, k)[keep],
        "rank": np.tile(np.arange(1, k + 1), users.size)[keep],
        "item_id": item_id[np.maximum(items.ravel(), 0)][keep],
        "score": scores.ravel()[keep],
        "source": sources.ravel()[keep],
    })


def _frames_to_result(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return pd.DataFrame({"user_id": pd.Series(dtype=str), "rank": pd.Series(dtype=np.int64),
                             "item_id": pd.Series(dtype=str), "score": pd.Series(dtype=float),
                             "source": pd.Series(dtype=str)})
    return pd.concat(frames, ignore_index=True)


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def _request(store: Store, as_of: dt.datetime | dt.date | str, user_ids: Sequence[str] | None,
             k: int) -> tuple[dt.datetime, _Catalogue, np.ndarray]:
    """The cutoff, the catalogue and the customers of one request for ``k`` items each."""
    _check_k(k)
    when = to_cutoff(as_of)
    return when, _catalogue(store, when), _customers(store, when, user_ids)


# -- public API ----------------------------------------------------------------------------------
def recommend_items(store: Store, *, as_of: dt.datetime | dt.date | str,
                    user_ids: Sequence[str] | None = None, k: int = 10,
                    config: RecommendConfig | None = None,
                    encode: Encoder | None = None) -> pd.DataFrame:
    """Top-``k`` items per customer, learnt from the events strictly before ``as_of``.

    One row per (customer, rank): user_id, rank (1..k), item_id, score, source ("similar",
    "title" or "popular"), customers in the order asked for (``user_ids=None``: every customer
    at ``as_of``, sorted), ranks ascending. A customer gets fewer than k rows only when fewer
    than k items have any score. ``encode`` maps titles to unit vectors (default:
    ``encode_titles``, called only when some item is new).
    """
    config = config or RecommendConfig()
    as_of, catalogue, users = _request(store, as_of, user_ids, k)
    if users.size == 0 or catalogue.n == 0:
        return _frames_to_result([])
    inter = _interactions(store, catalogue, as_of, config)
    rows = pd.Index(inter.user_id).get_indexer(users)
    known = np.flatnonzero(rows >= 0)
    pick = sp.csr_matrix((np.ones(known.size), (known, rows[known])),
                         shape=(users.size, inter.user_id.size))
    profile = _row_normalise(pick @ inter.weight)
    bought = (pick @ inter.bought).tocsr()

    similar, support = _item_neighbours(inter.weight, config)
    used = np.diff(profile.tocsc().indptr) > 0
    title = _title_neighbours(catalogue, support < config.min_support, used, config,
                              encode or _default_encoder)
    pop = _popularity(_recent_orders(store, catalogue, as_of, config.popular_days), catalogue)
    affinity = _affinity(profile, pop, config.category_prior)
    lam, tau = config.popular_share, config.title_share
    similar = (1.0 - lam) * (1.0 - tau) * similar
    title = (1.0 - lam) * tau * title

    block = max(1, _BLOCK_CELLS // catalogue.n)
    frames = []
    for lo in range(0, users.size, block):
        hi = min(lo + block, users.size)
        p = profile[lo:hi]
        parts = ((p @ similar).toarray(), (p @ title).toarray(),
                 lam * affinity[lo:hi][:, pop.category] * pop.within)
        score = parts[0] + parts[1] + parts[2]
        b = bought[lo:hi].tocoo()
        score[b.row, b.col] = -np.inf
        items, top = _top_k(score, k)
        cols = np.maximum(items, 0)
        source = np.argmax(np.stack([np.take_along_axis(x, cols, axis=1) for x in parts]), axis=0)
        frames.append(_frame(users[lo:hi], items, top, np.asarray(SOURCES, dtype=object)[source],
                             catalogue.item_id))
    return _frames_to_result(frames)


def popular_items(store: Store, *, as_of: dt.datetime | dt.date | str,
                  user_ids: Sequence[str] | None = None, k: int = 10,
                  days: int = 90) -> pd.DataFrame:
    """The baseline: the items ordered most often in [as_of - days, as_of), minus what each
    customer ordered before ``as_of``. Same rows and columns as :func:`recommend_items`; score
    is the number of orders, source is always "popular"."""
    as_of, catalogue, users = _request(store, as_of, user_ids, k)
    if users.size == 0 or catalogue.n == 0:
        return _frames_to_result([])
    orders = _recent_orders(store, catalogue, as_of, days)
    bought = _ordered_before(store, catalogue, as_of, users)
    # Only the k + (most items one customer bought) best sellers can make anyone's top k.
    width = min(catalogue.n, k + int(np.diff(bought.indptr).max(initial=0)))
    best = np.argsort(-orders, kind="stable")[:width]
    bought = bought[:, best].tocsr()
    block = max(1, _BLOCK_CELLS // width)
    frames = []
    for lo in range(0, users.size, block):
        hi = min(lo + block, users.size)
        score = np.tile(orders[best], (hi - lo, 1))
        b = bought[lo:hi].tocoo()
        score[b.row, b.col] = -np.inf
        items, top = _top_k(score, k)
        items = np.where(items >= 0, best[np.maximum(items, 0)], -1)
        frames.append(_frame(users[lo:hi], items, top, np.full(items.shape, "popular", object),
                             catalogue.item_id))
    return _frames_to_result(frames)


def evaluate_recommendations(store: Store, *, as_of: dt.datetime | dt.date | str,
                             window_days: int = 30, k: int = 10,
                             config: RecommendConfig | None = None,
                             encode: Encoder | None = None) -> dict[str, object]:
    """Hit rate at k of the model and of the popularity baseline.

    The customers evaluated are those with an order in [as_of, as_of + window_days); one is a
    hit when an item ordered in that window is among the k recommended at ``as_of`` (which sees
    only events before ``as_of``). Returns as_of, window_days, k, n_customers, hit_rate_model,
    hit_rate_popular (NaN when no customer ordered in the window).
    """
    _check_k(k)
    if isinstance(window_days, bool) or not isinstance(window_days, int | np.integer) \
            or window_days < 1:
        raise ValueError(f"window_days must be an integer >= 1, got {window_days!r}")
    as_of = to_cutoff(as_of)
    future = _arrow(store, """
        SELECT DISTINCT user_id, item_id FROM events
        WHERE type = 'order' AND item_id IS NOT NULL AND ts >= ? AND ts < ?
        """, [as_of, label_window_end(as_of, int(window_days))]).to_pandas()
    users = np.sort(future["user_id"].unique())
    result: dict[str, object] = {"as_of": as_of.isoformat(), "window_days": int(window_days),
                                 "k": int(k), "n_customers": int(users.size)}
    if users.size == 0:
        return result | {"hit_rate_model": float("nan"), "hit_rate_popular": float("nan")}

    def hit_rate(recs: pd.DataFrame) -> float:
        return recs.merge(future, on=["user_id", "item_id"])["user_id"].nunique() / users.size

    model = recommend_items(store, as_of=as_of, user_ids=users, k=k, config=config,
                            encode=encode)
    baseline = popular_items(store, as_of=as_of, user_ids=users, k=k)
    return result | {"hit_rate_model": hit_rate(model), "hit_rate_popular": hit_rate(baseline)}
