"""Batch scores with reasons on Spark: the champion model scores every partition in Python
(``mapInPandas``), the model file shipped to the executors with ``SparkContext.addFile``.

Per (user_id, cutoff) row the executors receive what ``churnguard score`` reads from the store:
the model's features (:func:`~churnguard.features.build_features_spark`), the order history (for
the BTYD quantities the trees use: :func:`~churnguard.spark.snapshots.order_histories_spark`)
and the reason context (the reason-context query of :mod:`churnguard.explain.queries`, generated
for Spark). Each batch becomes a :class:`~churnguard.snapshots.Snapshot` and goes through the
same ``predict_proba`` and :func:`churnguard.scoring.snapshot_reasons` as on DuckDB, so the
scores and the reason sentences are the same.

Models that read event sequences (the behaviour models, and ensembles with one) are refused:
their inputs come from the store's sequence cache, which executors do not have.
"""

from __future__ import annotations

import functools
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnguard.config import ChurnDefinition, ScoringConfig
from churnguard.explain.queries import CONTEXT_COLUMNS, _context_query
from churnguard.features import FEATURES, build_features_spark
from churnguard.models.base import ChurnModel
from churnguard.models.catalog import KINDS
from churnguard.registry import get_model_version
from churnguard.scoring import (
    SCORE_COLUMNS,
    check_horizon,
    champion,
    risk_tiers,
    snapshot_reasons,
)
from churnguard.snapshots import Snapshot
from churnguard.spark.lake import SparkJobError, conform_events, pyspark_sql
from churnguard.spark.snapshots import _views, order_histories_spark
from churnguard.store import Store

CONTEXT_PREFIX = "context__"
SCORE_SCHEMA = ("user_id string, p_churn double, risk_tier string, reason_1 string, "
                "reason_2 string, reason_3 string, model_version string")
_SEQUENCE_MODULES = "churnguard.models.behaviour"


@dataclass(frozen=True, kw_only=True)
class SparkChampion:
    """The model to score with on Spark, read from the store once, before the job."""

    version: str
    model: ChurnModel
    features: list[str]


def reads_sequences(model: object) -> bool:
    """Whether ``model`` (or a member of an ensemble) reads event sequences from the store."""
    if type(model).__module__.startswith(_SEQUENCE_MODULES):
        return True
    members = getattr(model, "members_", None)
    return isinstance(members, dict) and any(reads_sequences(m) for m in members.values())


def spark_champion(store: Store, definition: ChurnDefinition,
                   version: str | None = None) -> SparkChampion:
    """The champion (or ``version``) with its feature columns, checked for Spark: trained for
    ``definition``'s horizon, and not a model that reads event sequences."""
    version, model = champion(store, version)
    check_horizon(store, version, definition)
    if reads_sequences(model):
        raise SparkJobError(
            f"{version} is a {model.name} model: it reads customers' event sequences from the "
            "store's sequence cache, which Spark executors do not have; score it with "
            "`churnguard score` (DuckDB), or make a model on features and order histories "
            "(gbdt, btyd, recency, or an ensemble of them) the champion",
            code="spark_model")
    return SparkChampion(version=version, model=model,
                         features=list(get_model_version(store, version).features))


def reason_context_spark(spark: Any, events: Any, population: Any) -> Any:
    """The reason context (:data:`~churnguard.explain.CONTEXT_COLUMNS`) of each (user_id, cutoff)
    of ``population``, from ``events`` (conformed: :func:`~churnguard.spark.lake.conform_events`),
    by the same query as :func:`churnguard.explain.reason_context` on the store."""
    with _views({"events": events, "population": population}) as view:
        return spark.sql(_context_query(view["population"], engine="spark",
                                        tables={"events": view["events"]}))


def _naive_utc(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return pd.to_datetime(values).astype("datetime64[us]").to_numpy()


def _orders(batch: pd.DataFrame, users: np.ndarray, cutoffs: np.ndarray) -> pd.DataFrame:
    """The batch's order histories as :func:`churnguard.snapshots.order_histories` rows."""
    times = [np.asarray([] if v is None else v, dtype="int64") for v in batch["order_ts_us"]]
    amounts = [np.asarray([] if v is None else v, dtype="float64") for v in batch["order_amount"]]
    lengths = np.array([len(t) for t in times], dtype=np.int64)
    empty = np.array([], dtype="int64")
    return pd.DataFrame({
        "user_id": np.repeat(users, lengths),
        "cutoff": np.repeat(cutoffs, lengths),
        "ts": np.concatenate(times or [empty]).astype("datetime64[us]"),
        "amount": np.concatenate(amounts or [empty.astype(float)]),
    })


def _features(batch: pd.DataFrame, columns: Sequence[str], index: pd.MultiIndex) -> pd.DataFrame:
    """The model's columns as build_features types them: counts int64, other registered
    features float64; attributes as they came (numbers float64, categories as text, which the
    models code by their training categories)."""
    data = {}
    for column in columns:
        values = batch[column]
        if column in FEATURES:
            if FEATURES[column].unit == "count":  # never NULL: the query counts 0
                data[column] = values.to_numpy(dtype="int64")
            else:
                data[column] = values.to_numpy(dtype="float64", na_value=np.nan)
        else:
            data[column] = values.to_numpy()
    return pd.DataFrame(data, index=index)


def _context(batch: pd.DataFrame, index: pd.MultiIndex) -> pd.DataFrame:
    """The batch's reason context as :func:`churnguard.explain.reason_context` types it."""
    frame = pd.DataFrame(index=index)
    for column in CONTEXT_COLUMNS:
        values = batch[CONTEXT_PREFIX + column]
        if column.endswith("_at"):
            frame[column] = _naive_utc(values)
        elif column == "last_review_topic":
            frame[column] = values.to_numpy(dtype=object, na_value=None)
        else:
            frame[column] = values.to_numpy(dtype="float64", na_value=np.nan)
    return frame


def score_batch(batch: pd.DataFrame, model: ChurnModel, *, version: str, columns: Sequence[str],
                horizon_days: int, tiers: ScoringConfig, lang: str) -> pd.DataFrame:
    """The scores (:data:`~churnguard.scoring.SCORE_COLUMNS`) of one batch of joined rows:
    user_id, cutoff, the model's feature columns, order_ts_us/order_amount and (for a model
    that gives reasons) the ``context__`` columns."""
    users = batch["user_id"].astype(str).to_numpy(dtype=object)
    cutoffs = _naive_utc(batch["cutoff"])
    index = pd.MultiIndex.from_arrays([users, pd.DatetimeIndex(cutoffs)],
                                      names=["user_id", "cutoff"])
    snapshot = Snapshot(features=_features(batch, columns, index),
                        orders=_orders(batch, users, cutoffs), horizon_days=horizon_days)
    p = np.asarray(model.predict_proba(snapshot), dtype=float)

    def context(population: pd.DataFrame) -> pd.DataFrame:
        if CONTEXT_PREFIX + CONTEXT_COLUMNS[0] not in batch.columns:
            raise SparkJobError(f"{version} explains its scores but the job computed no reason "
                                "context", bad_input=False)
        return _context(batch, index)

    why = snapshot_reasons(model, snapshot, lang, context)
    return pd.DataFrame({
        "user_id": users,
        "p_churn": p,
        "risk_tier": risk_tiers(p, tiers),
        "reason_1": why["reason_1"].to_numpy(dtype=object),
        "reason_2": why["reason_2"].to_numpy(dtype=object),
        "reason_3": why["reason_3"].to_numpy(dtype=object),
        "model_version": version,
    })[SCORE_COLUMNS]


def _score_partition(batches: Iterator[pd.DataFrame], *, model_file: str,
                     **settings: Any) -> Iterator[pd.DataFrame]:
    """mapInPandas: load the shipped model once per partition, score each batch."""
    from pyspark import SparkFiles

    model = ChurnModel.load(SparkFiles.get(model_file))
    for batch in batches:
        if len(batch):
            yield score_batch(batch, model, **settings)


def _ship(spark: Any, model: ChurnModel, version: str, folder: Path) -> str:
    """Save the model as a file in ``folder`` and add it to the job (SparkContext.addFile):
    every executor gets a copy. The name is unique: a session refuses one name for two files."""
    name = f"{version}-{uuid.uuid4().hex[:8]}.model"
    model.save(folder / name)
    spark.sparkContext.addFile(str(folder / name))
    return name


def gives_reasons(model: ChurnModel) -> bool:
    """Whether the model's kind explains its scores (the catalogue says; unknown kinds are
    asked, by the reason step itself)."""
    kind = KINDS.get(getattr(model, "name", ""))
    return True if kind is None else kind.gives_reasons


def score_spark(spark: Any, events: Any, *, champion: SparkChampion,
                definition: ChurnDefinition, tiers: ScoringConfig, population: Any, users: Any = None, items: Any = None,
                user_attributes: Any = None, lang: str | None = None,
                model_folder: Path | None = None) -> Any:
    """The scores of ``population`` (user_id, cutoff) as a lazy Spark DataFrame
    with :data:`~churnguard.scoring.SCORE_COLUMNS`, rows in no particular order (sort them
    when reading: a global sort is a shuffle the job does not need).

    ``events``: conformed (:func:`~churnguard.spark.lake.conform_events`). The rows are
    repartitioned by the hash of user_id before scoring, so a partition holds whole customers.
    ``model_folder``: where the model file is written for shipping; it must stay until the
    result has been computed (default: a new temporary folder, left for the system to clear).
    """
    F = pyspark_sql().functions
    lang = lang or tiers.lang
    features = build_features_spark(spark, events, population, users=users, items=items,
                                    user_attributes=user_attributes, definition=definition,
                                    features=champion.features)
    orders = order_histories_spark(spark, events, population, definition=definition)
    rows = features.join(orders, on=["user_id", "cutoff"], how="left")
    if gives_reasons(champion.model):
        context = reason_context_spark(spark, events, population)
        context = context.select("user_id", "cutoff", *[
            F.col(c).alias(CONTEXT_PREFIX + c) for c in CONTEXT_COLUMNS])
        rows = rows.join(context, on=["user_id", "cutoff"], how="left")
    partition = functools.partial(
        _score_partition,
        model_file=_ship(spark, champion.model, champion.version,
                         model_folder or Path(tempfile.mkdtemp(prefix="churnguard-model-"))),
        version=champion.version, columns=list(champion.features),
        horizon_days=int(definition.horizon_days), tiers=tiers, lang=lang)
    return rows.repartition(F.col("user_id")).mapInPandas(partition, SCORE_SCHEMA)
