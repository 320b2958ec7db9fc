"""Point-in-time snapshots: population, labels, features and purchase histories at cutoffs.

A :class:`~churnguard.models.base.Snapshot` is what every churn model learns from and scores. It is
assembled from three set-based DuckDB queries over the same table of (user, cutoff) rows:

* :func:`churnguard.labels.population_and_labels` (who is in the population, churned or not);
* :func:`churnguard.features.build_features` (engineered features, events strictly before T);
* the activity events strictly before each row's cutoff (``Snapshot.orders``), for models that
  work on the raw purchase history (BTYD).

>>> from churnguard.store import Store
>>> from churnguard.config import ChurnDefinition
>>> store = Store.in_memory()
>>> _ = store.con.execute(
...     "INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) VALUES "
...     "('e1', 'u1', '2025-01-05', 'order', 10, 'b'), ('e2', 'u2', '2025-01-20', 'order', 5, 'b'),"
...     " ('e3', 'u2', '2025-03-01', 'order', 7, 'b'), ('e4', 'u3', '2025-06-01', 'view', 0, 'b')")
>>> snap = build_snapshot(store, definition=ChurnDefinition(lookback_days=30, horizon_days=30),
...                       cutoffs=["2025-02-01"])
>>> snap.labels.tolist(), snap.orders[["user_id", "amount"]].values.tolist()
([1.0, 0.0], [['u1', 10.0], ['u2', 5.0]])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from churnguard.config import ChurnDefinition
from churnguard.features import build_features
from churnguard.labels import population_and_labels
from churnguard.models.base import Snapshot
from churnguard.sequences.cache import SequenceCache
from churnguard.store import Store

__all__ = ["build_snapshot", "order_histories"]


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
) -> Snapshot:
    """The population at ``cutoffs`` with labels, point-in-time features and order histories.

    ``features``: exact feature columns (e.g. a fitted model's ``feature_names_``); default: every
    feature this store supports. ``with_labels=False`` leaves ``labels`` as None (scoring).
    Labels are 1.0 (churned), 0.0, or NaN where the horizon is not observed yet.

    ``meta`` holds ``cutoffs`` (the distinct cutoffs, oldest first), ``skipped`` (feature -> why
    it was left out because the store cannot support it), ``supplied_labels`` (how many rows
    carry a supplied label instead of the rule's), ``definition`` and ``sequences`` (a
    :class:`~churnguard.sequences.SequenceCache` of the store: the rows' event sequences, built
    on first use by the models that read them).
    """
    population = population_and_labels(store, definition=definition, cutoffs=cutoffs)
    frame = build_features(store, population[["user_id", "cutoff"]], definition=definition,
                           features=features)
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
