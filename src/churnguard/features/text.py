"""Per-customer text features: what a customer's recent reviews and tickets say, as numbers.

The engineered features count reviews and tickets and read ratings; they never read what the
texts say. These columns do. At each (user, cutoff) row, the customer's review and support-ticket
texts of the ``window_days`` days strictly before the cutoff are read as sentence vectors and
summed up as their count, their mean vector and the newest text's vector. A tree model cannot
split usefully on 384 dimensions of a few thousand rows, so :class:`CustomerTextFeatures` keeps
the first ``components`` principal components of the text vectors (Pearson 1901; the SVD of
the centred matrix, Golub and Van Loan, *Matrix Computations*, 4th ed., section 2.4), fitted on
the distinct texts the training rows read: the main directions in which the shop's texts differ
(praise against complaint, parcel against product, ...), learned without labels.

Columns (NaN when the customer wrote nothing in the window, the count then 0):
``text_count_{w}d``, ``text_pc{j}_mean`` (mean over the texts) and ``text_pc{j}_last`` (the
newest text), j = 1 .. components.

Encoders (``encoder``): ``use`` (the default, as ``[text] encoder``): the multilingual Universal
Sentence Encoder for every text (:mod:`churnguard.text.use`): Chinese and English in one space,
nothing fitted, so nothing after a cutoff shapes the vectors; ``bilingual``: the store's encoder
(MiniLM for English, the shop's character n-grams for Chinese, :mod:`churnguard.text.bilingual`);
``minilm``: MiniLM for every text, the English-only path (Chinese texts become mostly [UNK]: kept
as the control the benchmark measures against).

Point in time: only events strictly before each row's cutoff are read, and the components are
fitted on the training rows' texts only.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> _ = store.con.executemany(
...     "INSERT INTO events (event_id, user_id, ts, type, text, batch_id) VALUES (?, ?, ?, ?, ?, 'b')",
...     [("e1", "u1", "2025-03-01", "review", "物流很快，包装完好"),
...      ("e2", "u1", "2025-03-10", "support_ticket", "快递太慢了，还没到"),
...      ("e3", "u2", "2025-03-05", "review", "质量很差，再也不买了")])
>>> rows = pd.DataFrame({"user_id": ["u1", "u2", "u1"],
...                      "cutoff": pd.to_datetime(["2025-04-01", "2025-04-01", "2025-03-05"])})
>>> texts = customer_texts(store, rows, window_days=90)
>>> texts[["user_id", "text"]].values.tolist()  # doctest: +NORMALIZE_WHITESPACE
[['u1', '物流很快，包装完好'], ['u1', '物流很快，包装完好'], ['u1', '快递太慢了，还没到'],
 ['u2', '质量很差，再也不买了']]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from churnguard.store import Store
from churnguard.text.bilingual import TextEncoder, shop_text_encoder
from churnguard.text.minilm import DIM

__all__ = ["ENCODERS", "TEXT_TYPES", "CustomerTextFeatures", "CustomerTextVectors",
           "customer_text_vectors", "customer_texts", "text_encoder"]

TEXT_TYPES: tuple[str, ...] = ("review", "support_ticket")
ENCODERS: tuple[str, ...] = ("use", "bilingual", "minilm")
# Vectors of texts already read, per encoder key: a backtest reads the same texts at every
# cutoff, and a shop repeats its texts. Bounded, so a long-running service does not grow.
_MEMO: dict[str, dict[str, np.ndarray]] = {}
_MEMO_MAX = 200_000


def text_encoder(store: Store, choice: str) -> TextEncoder:
    """The :class:`~churnguard.text.TextEncoder` ``choice`` names (one of :data:`ENCODERS`)."""
    if choice not in ENCODERS:
        raise ValueError(f"unknown text encoder {choice!r} for the text features; one of "
                         f"{', '.join(ENCODERS)}")
    if choice == "minilm":
        return TextEncoder()
    return shop_text_encoder(store, choice)


def _keys(population: pd.DataFrame | pa.Table) -> pa.Table:
    frame = population if isinstance(population, pd.DataFrame) else population.to_pandas()
    missing = {"user_id", "cutoff"} - set(frame.columns)
    if missing:
        raise ValueError(f"the population needs columns user_id and cutoff (missing "
                         f"{sorted(missing)})")
    cutoff = pd.to_datetime(frame["cutoff"])
    if getattr(cutoff.dt, "tz", None) is not None:
        cutoff = cutoff.dt.tz_convert("UTC").dt.tz_localize(None)
    return pa.table({
        "user_id": pa.array(frame["user_id"].astype(str).to_numpy(dtype=object), pa.string()),
        "cutoff": pa.array(cutoff.astype("datetime64[us]").to_numpy(), pa.timestamp("us")),
    })


def customer_texts(store: Store, population: pd.DataFrame | pa.Table, *,
                   window_days: int) -> pd.DataFrame:
    """Per (user_id, cutoff) of ``population``: the customer's review and ticket texts in
    [cutoff - window_days, cutoff), oldest first (user_id, cutoff, ts, text). Empty texts are
    left out."""
    if not isinstance(window_days, int) or isinstance(window_days, bool) or window_days < 1:
        raise ValueError(f"window_days must be an integer >= 1, got {window_days!r}")
    types = ", ".join(f"'{t}'" for t in TEXT_TYPES)
    with store.registered(_keys(population), "text_population") as view:
        frame = store.con.execute(
            f"""
            SELECT p.user_id, p.cutoff, e.ts, e.text
            FROM (SELECT DISTINCT user_id, cutoff FROM {view}) p
            JOIN events e ON e.user_id = p.user_id AND e.ts < p.cutoff
                 AND e.ts >= p.cutoff - INTERVAL {int(window_days)} DAY
            WHERE e.type IN ({types}) AND e.text IS NOT NULL AND trim(e.text) <> ''
            ORDER BY p.user_id, p.cutoff, e.ts, e.event_id
            """
        ).df()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    return frame.reset_index(drop=True)


def encode(encoder: TextEncoder, texts: Sequence[str]) -> np.ndarray:
    """Unit vectors (n, DIM) of ``texts``, each distinct text encoded once per process."""
    memo = _MEMO.setdefault(encoder.key, {})
    distinct = list(dict.fromkeys(texts))
    new = [t for t in distinct if t not in memo]
    if new:
        if len(memo) + len(new) > _MEMO_MAX:
            memo.clear()
        for text, vector in zip(new, encoder.encode(new), strict=True):
            memo[text] = vector
    if not texts:
        return np.zeros((0, DIM), np.float32)
    return np.stack([memo[t] for t in texts])


@dataclass(frozen=True)
class CustomerTextVectors:
    """Per row of a population (in its order): how many texts, their mean vector and the newest
    text's vector (zeros where there is no text)."""

    index: pd.MultiIndex
    count: np.ndarray
    mean: np.ndarray
    last: np.ndarray


def customer_text_vectors(store: Store, population: pd.DataFrame | pa.Table, *,
                          window_days: int = 90, encoder: str = "use") -> CustomerTextVectors:
    """The text vectors of each (user_id, cutoff) row of ``population`` (see the module
    docstring)."""
    keys = _keys(population).to_pandas()
    index = pd.MultiIndex.from_arrays([keys["user_id"], keys["cutoff"]],
                                      names=["user_id", "cutoff"])
    texts = customer_texts(store, keys, window_days=window_days)
    n = len(index)
    count = np.zeros(n, np.int64)
    mean = np.zeros((n, DIM), np.float32)
    last = np.zeros((n, DIM), np.float32)
    if len(texts):
        vectors = encode(text_encoder(store, encoder), texts["text"].tolist())
        text_keys = pd.MultiIndex.from_arrays([texts["user_id"], texts["cutoff"]])
        group, firsts = pd.factorize(text_keys)
        k = len(firsts)
        sums = np.zeros((k, DIM), np.float64)
        np.add.at(sums, group, vectors)
        counts = np.bincount(group, minlength=k)
        newest = np.zeros(k, np.int64)
        newest[group] = np.arange(len(group))  # rows are oldest first: the last write wins
        rows = firsts.get_indexer(index)
        have = rows >= 0
        count[have] = counts[rows[have]]
        mean[have] = (sums[rows[have]] / counts[rows[have], None]).astype(np.float32)
        last[have] = vectors[newest[rows[have]]]
    return CustomerTextVectors(index=index, count=count, mean=mean, last=last)


class CustomerTextFeatures:
    """Text columns for a churn model: counts and principal components of the customers'
    recent texts (module docstring). Fitted on the training rows' texts, without labels.

    ``components`` (principal components kept), ``window_days`` (texts read before each
    cutoff), ``encoder`` (one of :data:`ENCODERS`). Fitted: ``mean_`` (DIM,), ``components_``
    (components, DIM), ``n_texts_`` (distinct texts fitted on).
    """

    def __init__(self, *, components: int = 8, window_days: int = 90,
                 encoder: str = "use") -> None:
        self.components = components
        self.window_days = window_days
        self.encoder = encoder

    @property
    def columns(self) -> list[str]:
        k = int(self.components)
        return ([f"text_count_{int(self.window_days)}d"]
                + [f"text_pc{j}_mean" for j in range(1, k + 1)]
                + [f"text_pc{j}_last" for j in range(1, k + 1)])

    def _check(self) -> None:
        if not isinstance(self.components, int) or isinstance(self.components, bool) \
                or not 1 <= self.components <= DIM:
            raise ValueError(f"components must be an integer from 1 to {DIM}, got "
                             f"{self.components!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"unknown text encoder {self.encoder!r} for the text features; "
                             f"one of {', '.join(ENCODERS)}")

    def fit(self, store: Store, population: pd.DataFrame | pa.Table) -> CustomerTextFeatures:
        """Learn the components from the distinct texts the rows of ``population`` read.

        With fewer distinct texts than components + 1 the missing components are zero (a shop
        without texts gets count columns and empty components, not an error)."""
        self._check()
        texts = customer_texts(store, population, window_days=int(self.window_days))
        distinct = sorted(set(texts["text"].tolist()))
        vectors = encode(text_encoder(store, self.encoder), distinct).astype(np.float64)
        self.n_texts_ = len(distinct)
        self.mean_ = vectors.mean(axis=0) if len(distinct) else np.zeros(DIM)
        components = np.zeros((int(self.components), DIM))
        if len(distinct) >= 2:
            _, _, vt = np.linalg.svd(vectors - self.mean_, full_matrices=False)
            k = min(int(self.components), vt.shape[0])
            top = vt[:k]
            # A fixed sign per component (its largest loading positive): refits agree.
            signs = np.sign(top[np.arange(k), np.abs(top).argmax(axis=1)])
            components[:k] = top * np.where(signs == 0, 1.0, signs)[:, None]
        self.components_ = components
        return self

    def transform(self, store: Store, population: pd.DataFrame | pa.Table) -> pd.DataFrame:
        """The text columns of each (user_id, cutoff) row of ``population``, indexed by them."""
        if not hasattr(self, "components_"):
            raise ValueError("CustomerTextFeatures.transform: not fitted yet; call fit() first")
        v = customer_text_vectors(store, population, window_days=int(self.window_days),
                                  encoder=self.encoder)
        none = v.count == 0
        mean = (v.mean.astype(np.float64) - self.mean_) @ self.components_.T
        last = (v.last.astype(np.float64) - self.mean_) @ self.components_.T
        mean[none] = np.nan
        last[none] = np.nan
        columns = self.columns
        k = int(self.components)
        data = {columns[0]: v.count}
        data.update({columns[1 + j]: mean[:, j] for j in range(k)})
        data.update({columns[1 + k + j]: last[:, j] for j in range(k)})
        return pd.DataFrame(data, index=v.index)
