"""Populations, labels, order histories and training snapshots on Spark, from the same
definitions as the store's (:mod:`churnguard.labels`, :mod:`churnguard.snapshots`).

The population-and-labels query is :func:`churnguard.labels._labels_sql`, generated for Spark
SQL: the same rule (the population at a cutoff T is every customer with an activity event in
[T - lookback, T); churned when none falls in [T, T + horizon); NULL at a cutoff whose horizon
the events do not cover; supplied labels win). Cutoffs go to Spark as epoch microseconds, never
as Python datetimes (pyspark would read a naive datetime in the driver's local time zone).

Everything returned is a lazy Spark DataFrame; :func:`labels_to_pandas` brings a small one back
as :func:`~churnguard.labels.population_and_labels` returns it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd

from churnguard.config import ChurnDefinition
from churnguard.cutoffs import LabelError, midnight, to_cutoff
from churnguard.features.spark import _conform, _empty, _require_utc, build_features_spark
from churnguard.labels import _activity_list, _labels_sql
from churnguard.spark.lake import pyspark_sql

EPOCH = dt.datetime(1970, 1, 1)
LABEL_COLUMNS = {"user_id": "string", "as_of": "timestamp", "churned": "boolean"}
_POPULATION = {"user_id": "string", "cutoff": "timestamp"}
_LABEL_EVENTS = {"user_id": "string", "ts": "timestamp", "type": "string"}
_ORDER_EVENTS = {**_LABEL_EVENTS, "amount": "double"}


def _micros(value: dt.datetime) -> int:
    """Microseconds since 1970-01-01 of a naive UTC datetime, exactly.

    >>> _micros(dt.datetime(1970, 1, 2)), _micros(dt.datetime(1969, 12, 31, 23, 59, 59, 999999))
    (86400000000, -1)
    """
    return (value - EPOCH) // dt.timedelta(microseconds=1)


def cutoffs_frame(spark: Any, cutoffs: Sequence[object]) -> Any:
    """A one-column (``cutoff``) Spark DataFrame of the distinct cutoffs."""
    values = sorted({to_cutoff(c) for c in cutoffs})
    if not values:
        raise LabelError("no cutoffs given; pass at least one")
    frame = spark.createDataFrame([(_micros(v),) for v in values], "us bigint")
    return frame.selectExpr("timestamp_micros(us) AS cutoff")


def scoring_cutoff_spark(events: Any) -> dt.datetime:
    """The midnight after the last event of ``events`` (as
    :func:`~churnguard.cutoffs.scoring_cutoff` for the store): one pass over the events."""
    last = events.selectExpr("max(unix_micros(CAST(ts AS TIMESTAMP))) AS us").collect()[0]["us"]
    if last is None:
        raise LabelError("the events table has no rows")
    return midnight(EPOCH + dt.timedelta(microseconds=int(last))) + dt.timedelta(days=1)


@contextmanager
def _views(frames: Mapping[str, Any]) -> Iterator[dict[str, str]]:
    """``frames`` as uniquely named temporary views, dropped afterwards (a query analysed
    inside keeps its plan, so the result outlives the views)."""
    tag = f"churnguard_{uuid.uuid4().hex[:12]}"
    names = {name: f"{tag}_{name}" for name in frames}
    for name, frame in frames.items():
        frame.createOrReplaceTempView(names[name])
    try:
        yield names
    finally:
        spark = next(iter(frames.values())).sparkSession if frames else None
        for view in names.values():
            spark.catalog.dropTempView(view)


def population_and_labels_spark(spark: Any, events: Any, *, definition: ChurnDefinition,
                                cutoffs: Sequence[object], labels: Any = None) -> Any:
    """One row per (user, cutoff) in the population: user_id, cutoff, churned (boolean, NULL
    where not observable), label_source ('rule' or 'supplied'); as
    :func:`churnguard.labels.population_and_labels` computes it from the store.

    ``events``: a Spark DataFrame with user_id, ts, type. ``labels``: supplied labels (user_id,
    as_of, churned), optional.
    """
    pyspark_sql()
    _require_utc(spark)
    frames = {
        "events": _conform(events, _LABEL_EVENTS, tuple(_LABEL_EVENTS), "events"),
        "labels": (_empty(spark, LABEL_COLUMNS) if labels is None
                   else _conform(labels, LABEL_COLUMNS, tuple(LABEL_COLUMNS), "labels")),
        "cutoffs": cutoffs_frame(spark, cutoffs),
    }
    with _views(frames) as view:
        return spark.sql(_labels_sql(definition, view["cutoffs"], engine="spark",
                                     tables={"events": view["events"],
                                             "labels": view["labels"]}))


def labels_to_pandas(frame: Any) -> pd.DataFrame:
    """A (small) Spark population-and-labels frame as
    :func:`~churnguard.labels.population_and_labels` returns it: sorted by cutoff then user,
    churned a nullable boolean, cutoffs naive UTC (through Arrow: pyspark's ``toPandas`` does
    not support pandas 3)."""
    out = frame.select("user_id", "cutoff", "churned", "label_source").toArrow().to_pandas()
    cutoff = out["cutoff"]
    if isinstance(cutoff.dtype, pd.DatetimeTZDtype):
        cutoff = cutoff.dt.tz_convert("UTC").dt.tz_localize(None)
    out["cutoff"] = cutoff.astype("datetime64[us]")
    out["user_id"] = out["user_id"].astype(str)
    out["churned"] = out["churned"].astype("boolean")
    out["label_source"] = out["label_source"].astype(str)
    return out.sort_values(["cutoff", "user_id"], kind="stable").reset_index(drop=True)


def order_histories_spark(spark: Any, events: Any, population: Any, *,
                          definition: ChurnDefinition) -> Any:
    """The activity events strictly before each (user_id, cutoff) of ``population``, one row
    per population row that has any: user_id, cutoff, ``order_ts_us`` (epoch microseconds,
    ascending) and ``order_amount`` (aligned, NULL where an event carries none). The rows of
    :func:`churnguard.snapshots.order_histories`, gathered per customer so a partition holds
    each customer's whole history (the BTYD quantities are computed per row from it)."""
    pyspark_sql()
    _require_utc(spark)
    frames = {
        "events": _conform(events, _ORDER_EVENTS, tuple(_LABEL_EVENTS), "events"),
        "population": _conform(population, _POPULATION, tuple(_POPULATION), "population"),
    }
    with _views(frames) as view:
        return spark.sql(f"""
            SELECT user_id, cutoff, transform(h, o -> o.ts) AS order_ts_us,
                   transform(h, o -> o.amount) AS order_amount
            FROM (
                SELECT p.user_id, p.cutoff,
                       array_sort(collect_list(named_struct('ts', unix_micros(e.ts),
                                                            'amount', e.amount))) AS h
                FROM (SELECT DISTINCT user_id, cutoff FROM {view['population']}) p
                JOIN {view['events']} e ON e.user_id = p.user_id AND e.ts < p.cutoff
                WHERE e.type IN ({_activity_list(definition)})
                GROUP BY p.user_id, p.cutoff)""")


def build_snapshot_spark(spark: Any, events: Any, *, definition: ChurnDefinition,
                         cutoffs: Sequence[object], users: Any = None, items: Any = None,
                         user_attributes: Any = None, labels: Any = None,
                         features: Sequence[str] | None = None, population: Any = None) -> Any:
    """The training snapshot on Spark: the population at ``cutoffs`` with its labels and
    point-in-time features, one row per (user_id, cutoff): user_id, cutoff, churned,
    label_source, then the features (``features``, default every registered one and the
    ``attr_`` columns), as :func:`churnguard.snapshots.build_snapshot` assembles them from the
    store (there the labels are a float Series beside the frame; here two columns).

    ``population``: :func:`population_and_labels_spark` of the same arguments, when the caller
    has it already (persisted: the feature query reads it several times)."""
    if population is None:
        population = population_and_labels_spark(spark, events, definition=definition,
                                                 cutoffs=cutoffs, labels=labels)
    frame = build_features_spark(spark, events, population.select("user_id", "cutoff"),
                                 users=users, items=items, user_attributes=user_attributes,
                                 definition=definition, features=features)
    keyed = population.select("user_id", "cutoff", "churned", "label_source")
    return keyed.join(frame, on=["user_id", "cutoff"], how="inner")
