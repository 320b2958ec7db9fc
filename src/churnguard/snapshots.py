"""Point-in-time snapshots: population, labels, features and purchase histories at cutoffs.

A :class:`Snapshot` is what every churn model learns from and scores: the point-in-time view of
a set of (user, cutoff) rows -- their engineered features (computed from events strictly before
the cutoff), their labels where known, and the raw purchase history before the cutoff. It is
assembled from three set-based DuckDB queries over the same table of (user, cutoff) rows:

* :func:`churnguard.labels.population_and_labels` (who is in the population, churned or not);
* :func:`churnguard.features.build_features` (engineered features, events strictly before T);
* the activity events strictly before each row's cutoff (``Snapshot.orders``), for models that
  work on the raw purchase history (BTYD).

>>> from churnguard.store import Store
>>> from churnguard.config import ChurnDefinition
>>> events = [("e1", "u1", "2025-01-05", "order", 10), ("e2", "u2", "2025-01-20", "order", 5),
...           ("e3", "u2", "2025-03-01", "order", 7), ("e4", "u3", "2025-06-01", "view", 0)]
>>> store = Store.in_memory()
>>> _ = store.con.executemany("INSERT INTO events (event_id, user_id, ts, type, amount, batch_id)"
...                          " VALUES (?, ?, ?, ?, ?, 'b')", events)
>>> snap = build_snapshot(store, definition=ChurnDefinition(lookback_days=30, horizon_days=30),
...                       cutoffs=["2025-02-01"])
>>> snap.labels.tolist(), snap.orders[["user_id", "amount"]].values.tolist()
([1.0, 0.0], [['u1', 10.0], ['u2', 5.0]])
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from churnguard.config import ChurnDefinition
from churnguard.features import FEATURES, build_features
from churnguard.features.build import attribute_columns
from churnguard.labels import population_and_labels
from churnguard.sequences.cache import SequenceCache
from churnguard.store import Store

__all__ = ["Snapshot", "build_snapshot", "order_histories", "snapshot_table"]


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Features and labels of (user_id, cutoff) rows.

    ``features``: indexed by (user_id, cutoff), one column per feature.
    ``labels``: bool/float Series aligned with ``features`` (NaN where unobservable), or None.
    ``orders``: order events strictly before each row's cutoff: columns user_id, cutoff, ts,
    amount (one row per order), for models that work on the raw purchase history.
    ``horizon_days``: the churn horizon the labels were made with.
    """

    features: pd.DataFrame
    labels: pd.Series | None = None
    orders: pd.DataFrame | None = None
    horizon_days: int = 90
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if list(self.features.index.names) != ["user_id", "cutoff"]:
            raise ValueError("Snapshot.features must be indexed by (user_id, cutoff)")
        if self.labels is not None and not self.labels.index.equals(self.features.index):
            raise ValueError("Snapshot.labels must have the same index as Snapshot.features")

    def __len__(self) -> int:
        return len(self.features)

    @property
    def index(self) -> pd.MultiIndex:
        return self.features.index  # type: ignore[return-value]

    def y(self) -> np.ndarray:
        """Labels as 0/1 floats; raises if there are none or some are unknown."""
        if self.labels is None:
            raise ValueError("this snapshot has no labels")
        y = pd.to_numeric(self.labels, errors="coerce").astype(float).to_numpy()
        if np.isnan(y).any():
            raise ValueError(f"{int(np.isnan(y).sum())} rows have no observable label")
        return y

    def subset(self, mask: np.ndarray | pd.Series) -> Snapshot:
        mask = np.asarray(mask, dtype=bool)
        features = self.features[mask]
        keys = features.index
        orders = None
        if self.orders is not None:
            wanted = pd.MultiIndex.from_arrays([keys.get_level_values(0), keys.get_level_values(1)])
            order_keys = pd.MultiIndex.from_arrays([self.orders["user_id"], self.orders["cutoff"]])
            orders = self.orders[order_keys.isin(wanted)]
        return Snapshot(
            features=features,
            labels=None if self.labels is None else self.labels[mask],
            orders=orders,
            horizon_days=self.horizon_days,
            meta=dict(self.meta),
        )


def order_histories(store: Store, population: pd.DataFrame, *,
                    definition: ChurnDefinition) -> pd.DataFrame:
    """Activity events strictly before each (user_id, cutoff) row of ``population``.

    One row per event and population row: ``user_id``, ``cutoff``, ``ts``, ``amount`` (NULL for
    events that carry none), sorted by cutoff, user and time. "Orders" are the churn definition's
    activity types (default: ``order``), so the purchase process the BTYD models describe is the
    very event whose absence defines churn. The whole history is kept, not only the lookback
    window, because BTYD measures a customer from the first purchase.
    """
    keys = pa.table({
        "user_id": pa.array(population["user_id"].astype(str).to_numpy(dtype=object),
                            type=pa.string()),
        "cutoff": pa.array(pd.to_datetime(population["cutoff"]).astype("datetime64[us]")
                           .to_numpy(), type=pa.timestamp("us")),
    })
    acts = ", ".join("'" + t.replace("'", "''") + "'" for t in definition.activity)
    with store.registered(keys, "orders_pop") as view:
        frame = store.con.execute(
            f"""
            SELECT p.user_id, p.cutoff, e.ts, e.amount
            FROM (SELECT DISTINCT user_id, cutoff FROM {view}) p
            JOIN events e ON e.user_id = p.user_id AND e.ts < p.cutoff
            WHERE e.type IN ({acts})
            ORDER BY p.cutoff, p.user_id, e.ts, e.amount
            """
        ).df()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    frame["ts"] = frame["ts"].astype("datetime64[us]")
    frame["amount"] = frame["amount"].astype(float)
    return frame.reset_index(drop=True)


def build_snapshot(
    store: Store,
    *,
    definition: ChurnDefinition,
    cutoffs: Sequence[object],
    features: Sequence[str] | None = None,
    with_labels: bool = True,
    exclude: Collection[str] = (),
    attributes: Sequence[object] | None = None,
) -> Snapshot:
    """The population at ``cutoffs`` with labels, point-in-time features and order histories.

    ``features``: exact feature columns (e.g. a fitted model's ``feature_names_``); default: every
    feature this store supports. ``with_labels=False`` leaves ``labels`` as None (scoring).
    ``exclude``: user ids left out of the population (customers whose data cannot be
    featurised, see :func:`churnguard.scoring.isolated_snapshot`). ``attributes``:
    :func:`churnguard.features.build.attribute_columns` of this store, when the caller has it.
    Labels are 1.0 (churned), 0.0, or NaN where the horizon is not observed yet.

    ``meta`` holds ``cutoffs`` (the distinct cutoffs, oldest first), ``skipped`` (feature -> why
    it was left out because the store cannot support it), ``supplied_labels`` (how many rows
    carry a supplied label instead of the rule's), ``definition`` and ``sequences`` (a
    :class:`~churnguard.sequences.SequenceCache` of the store: the rows' event sequences, built
    on first use by the models that read them).
    """
    population = population_and_labels(store, definition=definition, cutoffs=cutoffs)
    if exclude:
        population = population[~population["user_id"].astype(str).isin(set(exclude))]
        population = population.reset_index(drop=True)
    frame = build_features(store, population[["user_id", "cutoff"]], definition=definition,
                           features=features, attributes=attributes)
    skipped = dict(frame.attrs.get("skipped", {}))
    frame.attrs = {}
    # build_features sorts by (user_id, cutoff); labels follow that order.
    keyed = population.set_index(["user_id", "cutoff"])
    keyed = keyed.reindex(frame.index)
    labels = None
    if with_labels:
        churned = keyed["churned"]
        labels = pd.Series(
            np.where(churned.isna().to_numpy(), np.nan,
                     churned.fillna(False).astype(bool).to_numpy().astype(float)),
            index=frame.index, name="churned")
    orders = order_histories(store, population, definition=definition)
    distinct = sorted(pd.to_datetime(population["cutoff"]).unique())
    return Snapshot(
        features=frame,
        labels=labels,
        orders=orders,
        horizon_days=int(definition.horizon_days),
        meta={
            "cutoffs": [pd.Timestamp(c).to_pydatetime() for c in distinct],
            "supplied_labels": int((keyed["label_source"] == "supplied").sum()),
            "skipped": skipped,
            "definition": definition,
            "sequences": SequenceCache(store),
        },
    )


def snapshot_table(store: Store, *, definition: ChurnDefinition,
                   cutoffs: Sequence[object]) -> pd.DataFrame:
    """The population at ``cutoffs`` as one table, as ``churnguard features`` writes it: user_id,
    cutoff, churned (nullable boolean), label_source, then every registered feature and the
    ``attr_`` columns, one row per (user_id, cutoff) sorted by them. The same columns as the
    Spark job writes (:func:`churnguard.spark.build_snapshot_spark`): every feature, also those
    this store's event types cannot support (0 or NaN there, as on Spark)."""
    population = population_and_labels(store, definition=definition, cutoffs=cutoffs)
    attributes = attribute_columns(store)
    frame = build_features(store, population[["user_id", "cutoff"]], definition=definition,
                           features=list(FEATURES) + [a.column for a in attributes],
                           attributes=attributes)
    frame.attrs = {}
    labels = population.set_index(["user_id", "cutoff"])[["churned", "label_source"]]
    return labels.reindex(frame.index).join(frame).reset_index()
