"""The same point-in-time features on Apache Spark: the feature query of features/sql.py in Spark
SQL, over Spark DataFrames of events and the population (a lake's Parquet, Delta or Hive tables).

One definition, two engines: the query is generated once from the registry; where Spark spells a
meaning differently from DuckDB (epoch microseconds, DOUBLE literals, UTC days and the whole days
between them, the last value by (ts, event_id)) the Spark form is declared in registry.toml
``[forms]`` beside the DuckDB one. tests/spark/ computes every feature on both engines from the
same fixture events and requires them equal.

Semantics pinned here, whatever the cluster's defaults:

- timestamps are naive UTC. The Spark session must use the UTC time zone
  (``spark.sql.session.timeZone=UTC``): ``TIMESTAMP_NTZ`` and string columns are read as UTC
  wall-clock times, and the result's ``cutoff`` is a UTC time. Another session time zone is
  refused (a :class:`FeatureError`), not silently shifted;
- days are UTC calendar days, computed from epoch microseconds, so the gap from
  23:59:59.999999 to 00:00 the next day is one day;
- order amounts are rounded to 6 decimal places and summed as DECIMAL(38, 6): exact, whatever the
  number of partitions or the order in which executors add them up.

pyspark is imported only when a function here is called: the default install has no Spark
(``pip install 'churnguard[spark]'`` adds it; Spark needs Java 17 or later).

Example (``spark`` a SparkSession with the UTC time zone)::

    events = spark.read.parquet("s3a://lake/events/")        # user_id, ts, type, event_id, ...
    population = spark.createDataFrame(pop)                  # user_id, cutoff
    frame = build_features_spark(spark, events, population)  # a Spark DataFrame, lazily
    frame.write.parquet("s3a://lake/features/2025-10-01/")
    local = spark_features_to_pandas(frame)                  # as build_features returns it
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pandas as pd

from churnguard.config import ChurnDefinition
from churnguard.features.build import FeatureError, attribute_specs
from churnguard.features.registry import ATTRIBUTE_PREFIX, FEATURES
from churnguard.features.sql import feature_query

UTC_NAMES = frozenset({"UTC", "ETC/UTC", "GMT", "ETC/GMT", "Z", "+00:00", "UNIVERSAL", "ZULU"})

# The columns the feature query reads, with their Spark types. Optional ones a table lacks are
# added as NULLs (a lake's events table may have no ratings or sessions at all).
EVENT_COLUMNS = {"event_id": "string", "user_id": "string", "ts": "timestamp",
                 "type": "string", "amount": "double", "rating": "int",
                 "session_id": "string", "item_id": "string", "category": "string"}
REQUIRED_EVENT_COLUMNS = ("event_id", "user_id", "ts", "type")
TABLE_COLUMNS = {
    "users": {"user_id": "string", "signup_ts": "timestamp"},
    "items": {"item_id": "string", "category": "string"},
    "user_attributes": {"user_id": "string", "name": "string", "value": "string"},
}
INSTALL_HINT = ("install it with `pip install 'churnguard[spark]'` (Spark also needs Java 17 or "
                "later)")


def _functions() -> Any:
    try:
        from pyspark.sql import functions
    except ImportError as err:
        raise FeatureError(f"computing features on Spark needs pyspark; {INSTALL_HINT}",
                           code="spark_missing") from err
    return functions


def _require_utc(spark: Any) -> None:
    zone = str(spark.conf.get("spark.sql.session.timeZone"))
    if zone.upper() not in UTC_NAMES:
        raise FeatureError(
            f"the Spark session's time zone is {zone!r}; churnguard's timestamps are naive UTC, "
            "so features on Spark need spark.sql.session.timeZone=UTC (set it when building the "
            "session, or spark.conf.set('spark.sql.session.timeZone', 'UTC'))",
            code="spark_time_zone")


def _conform(frame: Any, columns: dict[str, str], required: Sequence[str], what: str) -> Any:
    """``frame`` with exactly ``columns``, cast to their types; missing optional ones as NULLs."""
    F = _functions()
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise FeatureError(f"the {what} need columns {list(required)} (missing: {missing})")
    return frame.select(*[
        (F.col(c) if c in frame.columns else F.lit(None)).cast(t).alias(c)
        for c, t in columns.items()])


def _empty(spark: Any, columns: dict[str, str]) -> Any:
    return spark.createDataFrame([], ", ".join(f"{c} {t}" for c, t in columns.items()))


def _attributes(spark: Any, view: str) -> tuple:
    """The attr_ columns of a user_attributes view, by the rule build_features uses."""
    rows = spark.sql(f"""
        SELECT name, bool_and(try_cast(value AS DOUBLE) IS NOT NULL) AS numeric,
               array_sort(collect_set(value)) AS categories
        FROM {view} WHERE nullif(trim(value), '') IS NOT NULL
        GROUP BY name ORDER BY name""").collect()
    return attribute_specs((r["name"], bool(r["numeric"]), list(r["categories"])) for r in rows)


def build_features_spark(
    spark: Any,
    events: Any,
    population: Any,
    *,
    users: Any = None,
    items: Any = None,
    user_attributes: Any = None,
    definition: ChurnDefinition | None = None,
    features: Sequence[str] | None = None,
) -> Any:
    """Features for every (user_id, cutoff) of ``population``, computed by Spark: a Spark
    DataFrame with user_id, cutoff and the feature columns, sorted by (user_id, cutoff), equal to
    what :func:`~churnguard.features.build_features` computes from the same data in DuckDB.

    ``events``: a Spark DataFrame with event_id, user_id, ts, type and, where known, amount,
    rating, session_id, item_id, category. ``population``: user_id, cutoff. ``users`` (user_id,
    signup_ts), ``items`` (item_id, category) and ``user_attributes`` (user_id, name, value) are
    optional. ``features``: the columns to return (default: every registered feature, then the
    ``attr_`` columns by name). Counts are BIGINT, everything else DOUBLE; categorical attributes
    are strings (:func:`spark_features_to_pandas` makes them pandas categories).

    Only the attribute names and values are read eagerly (to know the columns); the features are
    computed when the result is used.
    """
    _functions()
    _require_utc(spark)
    definition = definition or ChurnDefinition()
    tag = f"churnguard_{uuid.uuid4().hex[:12]}"
    tables = {
        "events": _conform(events, EVENT_COLUMNS, REQUIRED_EVENT_COLUMNS, "events"),
        "population": _conform(population, {"user_id": "string", "cutoff": "timestamp"},
                               ("user_id", "cutoff"), "population"),
    }
    for name, given in (("users", users), ("items", items), ("user_attributes", user_attributes)):
        columns = TABLE_COLUMNS[name]
        tables[name] = (_empty(spark, columns) if given is None
                        else _conform(given, columns, tuple(columns), name))
    views = {name: f"{tag}_{name}" for name in tables}
    for name, frame in tables.items():
        frame.createOrReplaceTempView(views[name])
    try:
        attributes = _attributes(spark, views["user_attributes"])
        sql = feature_query(
            pop_view=views["population"], activity=definition.activity,
            lookback_days=definition.lookback_days,
            attribute_columns=[(a.column, a.name, a.numeric) for a in attributes],
            engine="spark", tables=views)
        # spark.sql analyses the query now: the plan holds the views' plans, so dropping the
        # temporary views afterwards leaves the result intact and the user's catalog clean
        result = spark.sql(sql)
    finally:
        for view in views.values():
            spark.catalog.dropTempView(view)
    columns = list(features) if features is not None else (
        list(FEATURES) + [a.column for a in attributes])
    unknown = [c for c in columns if c not in FEATURES and not c.startswith(ATTRIBUTE_PREFIX)]
    if unknown:
        raise FeatureError(f"unknown features {unknown}; see churnguard.features.FEATURES")
    F = _functions()
    present = set(result.columns)
    return result.select("user_id", "cutoff", *[
        F.col(f"`{c}`") if c in present else F.lit(None).cast("double").alias(c)
        for c in columns])


def spark_features_to_pandas(frame: Any) -> pd.DataFrame:
    """A (small) Spark feature frame as :func:`~churnguard.features.build_features` returns it:
    indexed by (user_id, cutoff) with naive UTC cutoffs, counts int64, other registered features
    float64, string attributes as pandas categories (categories sorted).

    Goes through Arrow (``DataFrame.toArrow``), not ``toPandas``: pyspark's pandas conversion
    does not support pandas 3.
    """
    table = frame.toArrow()
    out = table.to_pandas()
    cutoff = out["cutoff"]
    if isinstance(cutoff.dtype, pd.DatetimeTZDtype):
        cutoff = cutoff.dt.tz_convert("UTC").dt.tz_localize(None)
    out["cutoff"] = cutoff.astype("datetime64[us]")
    out["user_id"] = out["user_id"].astype(str)
    for column in out.columns[2:]:
        if column in FEATURES:
            unit = FEATURES[column].unit
            out[column] = out[column].astype("int64" if unit == "count" else "float64")
        elif out[column].dtype == object:
            values = out[column].dropna()
            out[column] = pd.Categorical(out[column], categories=sorted(set(values)))
    return out.set_index(["user_id", "cutoff"])
