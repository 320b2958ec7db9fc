"""Populations and labels on Spark equal the store's, from the one definition (labels.py).

The fixture shop's edges (an event exactly at a cutoff, day boundaries 1 µs apart, events before
1970) at three cutoffs: two whose horizon the events cover and one whose horizon they do not
(labels NULL for everyone); supplied labels replace one rule label and add one customer.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest
from spark_shop import CUTOFF, EARLY_CUTOFF, shop_tables
from test_spark_features import _duckdb_store

from churnguard.config import ChurnDefinition
from churnguard.labels import population_and_labels
from churnguard.spark import labels_to_pandas, population_and_labels_spark

pytestmark = [pytest.mark.spark,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support:FutureWarning")]


@pytest.fixture(scope="module")
def both(spark):  # noqa: ANN001
    tables = shop_tables()
    store = _duckdb_store(tables)
    last = store.con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    unobserved = dt.datetime(last.year, last.month, last.day) - dt.timedelta(days=10)
    cutoffs = [EARLY_CUTOFF, CUTOFF, unobserved]
    supplied = pa.table({"user_id": ["u_boundary", "u_only_supplied"],
                         "as_of": pa.array([CUTOFF, CUTOFF], type=pa.timestamp("us")),
                         "churned": [True, False]})
    with store.registered(supplied, "supplied") as view:
        store.con.execute(f"INSERT INTO labels SELECT *, 'test' FROM {view}")
    definition = ChurnDefinition(lookback_days=365, horizon_days=90)
    duck = population_and_labels(store, definition=definition, cutoffs=cutoffs)
    store.close()
    on_spark = population_and_labels_spark(
        spark, spark.createDataFrame(tables["events"]), definition=definition, cutoffs=cutoffs,
        labels=spark.createDataFrame(supplied))
    return duck, labels_to_pandas(on_spark), cutoffs


def test_spark_labels_equal_the_stores_at_every_cutoff(both) -> None:  # noqa: ANN001
    duck, spark, cutoffs = both
    assert len(duck) > 20 and set(duck["cutoff"]) == set(cutoffs)
    assert spark["user_id"].tolist() == duck["user_id"].tolist()
    assert spark["cutoff"].tolist() == duck["cutoff"].tolist()
    assert spark["label_source"].tolist() == duck["label_source"].tolist()
    as_list = lambda s: s.astype(object).where(s.notna(), None).tolist()  # noqa: E731
    assert as_list(spark["churned"]) == as_list(duck["churned"])
    # the newest cutoff's horizon is not covered: unknown for everyone there
    assert duck.loc[duck["cutoff"] == cutoffs[2], "churned"].isna().all()
    assert duck["churned"].notna().sum() > 10


def test_supplied_labels_win_on_spark_as_in_the_store(both) -> None:  # noqa: ANN001
    _, spark, _ = both
    rows = spark[spark["label_source"] == "supplied"].set_index("user_id")["churned"]
    # u_boundary orders exactly at the cutoff, so the rule says not churned; the label wins
    assert rows.to_dict() == {"u_boundary": True, "u_only_supplied": False}
