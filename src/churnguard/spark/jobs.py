"""What ``churnguard features|score --engine spark`` run: read a lake's tables, compute on Spark,
write Parquet.

Both jobs take the session they find (``spark-submit``, a notebook, Databricks) or start a local
one, always with the UTC session time zone, and stop only a session they started. The output is
a Parquet folder (``--out``: a local path or a URI such as ``s3a://bucket/scores/``), replaced
if it exists, like ``churnguard score --out`` replaces its file.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnguard.config import ChurnDefinition, ScoringConfig
from churnguard.cutoffs import to_cutoff
from churnguard.scoring import ScoringError
from churnguard.spark.lake import SparkJobError, conform_events, read_table, spark_session
from churnguard.spark.scoring import SparkChampion, score_spark
from churnguard.spark.snapshots import (
    build_snapshot_spark,
    population_and_labels_spark,
    scoring_cutoff_spark,
)

__all__ = ["LakeSources", "SparkFeaturesSummary", "SparkJobError", "SparkScoreSummary",
           "features_job", "score_job"]


@dataclass(frozen=True, kw_only=True)
class LakeSources:
    """Where the tables are (a Parquet path or URI, or a table name; see
    :mod:`churnguard.spark.lake`). Only ``events`` is required. ``users``: user_id, signup_ts;
    ``items``: item_id, category; ``user_attributes``: user_id, name, value (the store's
    tables of the same names); ``labels``: supplied labels (user_id, as_of, churned)."""

    events: str
    users: str | None = None
    items: str | None = None
    user_attributes: str | None = None
    labels: str | None = None

    def read(self, spark: Any) -> dict[str, Any]:
        """The tables as Spark DataFrames (None where not given); the events conformed."""
        tables = {"events": conform_events(spark, read_table(spark, self.events, "--events"))}
        for name in ("users", "items", "user_attributes", "labels"):
            source = getattr(self, name)
            option = "--" + name.replace("_", "-")
            tables[name] = None if source is None else read_table(spark, source, option)
        return tables


@dataclass(frozen=True, kw_only=True)
class SparkScoreSummary:
    as_of: dt.datetime
    model_version: str
    out: str
    rows: int
    tiers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SparkFeaturesSummary:
    cutoffs: list[dt.datetime]
    out: str
    rows: int
    columns: int
    labelled: int


def _write(frame: Any, out: str) -> Any:
    frame.write.mode("overwrite").parquet(out)
    return frame.sparkSession.read.parquet(out)


def score_job(champion: SparkChampion, *, sources: LakeSources, out: str,
              definition: ChurnDefinition, tiers: ScoringConfig, as_of: object = None,
              lang: str | None = None,
              progress: Callable[[str], None] | None = None) -> SparkScoreSummary:
    """Score the population at ``as_of`` (default: the midnight after the lake's last event)
    with ``champion`` (:func:`~churnguard.spark.scoring.spark_champion`), reasons included,
    and write the scores (user_id, p_churn, risk_tier, reason_1..3, model_version) to ``out``."""
    say = progress or (lambda message: None)
    spark, started = spark_session("churnguard score")
    try:
        tables = sources.read(spark)
        when = to_cutoff(as_of) if as_of is not None else scoring_cutoff_spark(tables["events"])
        say(f"population at {when:%Y-%m-%d}")
        # the population is read three times (features, order histories, reason context)
        population = population_and_labels_spark(
            spark, tables["events"], definition=definition, cutoffs=[when],
            labels=tables["labels"]).select("user_id", "cutoff").persist()
        try:
            if population.isEmpty():
                raise ScoringError(
                    f"nobody is in the population at {when:%Y-%m-%d} (no "
                    f"{'/'.join(definition.activity)} in the previous "
                    f"{definition.lookback_days} days of {sources.events})")
            say(f"scoring with {champion.version} on Spark")
            with tempfile.TemporaryDirectory(prefix="churnguard-model-") as folder:
                scores = score_spark(spark, tables["events"], champion=champion,
                                     definition=definition, tiers=tiers, population=population,
                                     users=tables["users"], items=tables["items"],
                                     user_attributes=tables["user_attributes"], lang=lang,
                                     model_folder=Path(folder))
                written = _write(scores, out)
        finally:
            population.unpersist()
        counts = {r["risk_tier"]: int(r["count"])
                  for r in written.groupBy("risk_tier").count().collect()}
        return SparkScoreSummary(as_of=when, model_version=champion.version, out=out,
                                 rows=sum(counts.values()), tiers=counts)
    finally:
        if started:
            spark.stop()


def features_job(*, sources: LakeSources, out: str, definition: ChurnDefinition,
                 cutoffs: Sequence[object] | None = None, features: Sequence[str] | None = None,
                 progress: Callable[[str], None] | None = None) -> SparkFeaturesSummary:
    """The training snapshot at ``cutoffs`` (default: the midnight after the lake's last event)
    on Spark: user_id, cutoff, churned, label_source and the features (default: every
    registered one and the attr_ columns), written to ``out``
    (:func:`~churnguard.spark.snapshots.build_snapshot_spark`)."""
    say = progress or (lambda message: None)
    spark, started = spark_session("churnguard features")
    try:
        tables = sources.read(spark)
        when = ([to_cutoff(c) for c in cutoffs] if cutoffs
                else [scoring_cutoff_spark(tables["events"])])
        say(f"features at {', '.join(f'{c:%Y-%m-%d}' for c in sorted(set(when)))}")
        # the population is small and read several times by the feature query: computed once
        population = population_and_labels_spark(
            spark, tables["events"], definition=definition, cutoffs=when,
            labels=tables["labels"]).persist()
        try:
            snapshot = build_snapshot_spark(
                spark, tables["events"], definition=definition, cutoffs=when,
                users=tables["users"], items=tables["items"],
                user_attributes=tables["user_attributes"], features=features,
                population=population)
            written = _write(snapshot, out)
        finally:
            population.unpersist()
        row = written.selectExpr("count(*) AS n", "count(churned) AS known").collect()[0]
        return SparkFeaturesSummary(cutoffs=sorted(set(when)), out=out, rows=int(row["n"]),
                                    columns=len(written.columns) - 4, labelled=int(row["known"]))
    finally:
        if started:
            spark.stop()
