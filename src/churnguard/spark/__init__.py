"""churnguard's jobs on Apache Spark: the same labels, snapshots, features and scores as the
DuckDB store computes, over a lake's tables (Parquet paths, ``s3a://`` prefixes, Hive or Delta
table names), written as Parquet.

One definition, two engines: the population-and-labels query (:mod:`churnguard.labels`), the
feature query (:mod:`churnguard.features.sql`) and the reason context
(:mod:`churnguard.explain.queries`) are each written once and generated for DuckDB and Spark
SQL; the champion model scores each partition in Python (``mapInPandas``) with the same code
as ``churnguard score`` (:func:`churnguard.scoring.snapshot_reasons`).

- :mod:`~churnguard.spark.lake`: the Spark session (UTC) and reading a lake's tables;
- :mod:`~churnguard.spark.snapshots`: population and labels, order histories and the training
  snapshot on Spark;
- :mod:`~churnguard.spark.scoring`: batch scores with reasons through ``mapInPandas``;
- :mod:`~churnguard.spark.jobs`: what ``churnguard features|score --engine spark`` run.

pyspark is imported only when a function here is called: the default install has no Spark
(``pip install 'churnguard[spark]'`` adds it; Spark needs Java 17 or later).
"""

from churnguard.spark.jobs import (
    LakeSources,
    SparkFeaturesSummary,
    SparkScoreSummary,
    features_job,
    score_job,
)
from churnguard.spark.lake import SparkJobError, read_table, spark_session
from churnguard.spark.scoring import SparkChampion, score_spark, spark_champion
from churnguard.spark.snapshots import (
    build_snapshot_spark,
    labels_to_pandas,
    order_histories_spark,
    population_and_labels_spark,
    scoring_cutoff_spark,
)

__all__ = ["LakeSources", "SparkChampion", "SparkFeaturesSummary", "SparkJobError",
           "SparkScoreSummary", "build_snapshot_spark", "features_job", "labels_to_pandas",
           "order_histories_spark", "population_and_labels_spark", "read_table", "score_job",
           "score_spark", "scoring_cutoff_spark", "spark_champion", "spark_session"]
