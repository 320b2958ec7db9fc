"""Engineered, point-in-time churn features computed by DuckDB (or Spark: build_features_spark).

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> _ = store.con.execute(
...     "INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) VALUES "
...     "('e1', 'u1', '2025-01-01', 'order', 10, 'b'),"
...     " ('e2', 'u1', '2025-01-11', 'order', 30, 'b'),"
...     " ('e3', 'u1', '2025-02-01', 'order', 99, 'b')")
>>> import pandas as pd
>>> pop = pd.DataFrame({"user_id": ["u1"], "cutoff": [pd.Timestamp("2025-01-31")]})
>>> f = build_features(store, pop)
>>> f.iloc[0][["orders_total", "order_amount_sum", "order_gap_mean_days", "overdue_ratio"]].tolist()
[2.0, 40.0, 10.0, 2.0]
>>> f.attrs["skipped"]["views_30d"]
"no 'view' events"
"""

from churnguard.features.build import (
    FeatureError,
    GroupStatus,
    build_features,
    feature_groups_available,
)
from churnguard.features.docs import features_markdown
from churnguard.features.registry import FEATURES, GROUPS, FeatureSpec, GroupSpec, feature_spec
from churnguard.features.spark import build_features_spark, spark_features_to_pandas

__all__ = [
    "FEATURES",
    "GROUPS",
    "FeatureError",
    "FeatureSpec",
    "GroupSpec",
    "GroupStatus",
    "build_features",
    "build_features_spark",
    "feature_groups_available",
    "feature_spec",
    "features_markdown",
    "spark_features_to_pandas",
]
