"""The Spark side of a lake: a session in UTC and the tables churnguard reads from it.

A *source* is where a table lives: a Parquet path (a folder, a file, a glob such as
``/lake/events/*.parquet``, or a URI such as ``s3a://bucket/events/``), or a table name the
session's catalog knows (a Hive table ``shop.events``; a Delta table by name, or by path as
``delta.`/lake/events```, when the session has Delta Lake configured). Anything with a ``/`` is a
path; anything else a table name.

>>> is_path("s3a://lake/events/"), is_path("/data/ev/*.parquet"), is_path("shop.events")
(True, True, False)
"""

from __future__ import annotations

import os
import sys
from typing import Any

from churnguard.errors import ChurnguardError
from churnguard.features.build import FeatureError
from churnguard.features.spark import EVENT_COLUMNS, INSTALL_HINT, _conform, _require_utc

# The events columns the Spark jobs read: the feature query's, and the review and ticket texts
# the reason sentences' topics come from.
JOB_EVENT_COLUMNS = {**EVENT_COLUMNS, "text": "string"}
REQUIRED_EVENT_COLUMNS = ("event_id", "user_id", "ts", "type")


class SparkJobError(ChurnguardError, ValueError):
    """A Spark job cannot run as asked (no pyspark, a source it cannot read, a model it cannot
    score on Spark), with what to do about it."""

    code = "spark_job"


def pyspark_sql() -> Any:
    """``pyspark.sql``, or a :class:`SparkJobError` saying how to install it."""
    try:
        import pyspark.sql
    except ImportError as err:
        raise SparkJobError(f"--engine spark needs pyspark; {INSTALL_HINT}",
                            code="spark_missing") from err
    return pyspark.sql


def spark_session(app_name: str = "churnguard") -> tuple[Any, bool]:
    """The active SparkSession (under ``spark-submit``, a notebook or a test), else a new one;
    and whether it was created here (then the caller stops it when done).

    The session time zone is set to UTC: churnguard's timestamps are naive UTC. A new session
    without a master (no ``spark-submit``, no ``spark.master``) runs locally on every core, its
    Python workers in this interpreter, so a local run needs nothing but ``pip install
    'churnguard[spark]'`` and Java.
    """
    sql = pyspark_sql()
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        active.conf.set("spark.sql.session.timeZone", "UTC")
        return active, False
    builder = sql.SparkSession.builder.appName(app_name).config(
        "spark.sql.session.timeZone", "UTC")
    # Under spark-submit (or a pyspark shell) the JVM is already up (PYSPARK_GATEWAY_PORT) and
    # the cluster says which Python the executors run; otherwise this is a local run, whose
    # workers are this interpreter (with churnguard and its dependencies).
    if "PYSPARK_PYTHON" not in os.environ and "PYSPARK_GATEWAY_PORT" not in os.environ:
        builder = builder.config("spark.pyspark.python", sys.executable)
    spark = builder.getOrCreate()
    return spark, True


def is_path(source: str) -> bool:
    """Whether ``source`` names files (a path or URI) rather than a catalog table."""
    return "/" in source or source.endswith(".parquet")


def read_table(spark: Any, source: str, what: str) -> Any:
    """The table at ``source`` (module docstring) as a Spark DataFrame; ``what`` names it in
    errors (for example ``--events``)."""
    pyspark_sql()
    from pyspark.errors import AnalysisException

    try:
        if is_path(source):
            return spark.read.parquet(source)
        return spark.table(source)
    except AnalysisException as err:
        kind = "Parquet files" if is_path(source) else "a table in the session's catalog"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SparkJobError(f"{what} {source}: cannot read it as {kind} ({first})",
                            code="spark_source") from None


def conform_events(spark: Any, events: Any) -> Any:
    """``events`` with the columns the jobs read, cast to their types (missing optional ones as
    NULLs), in a UTC session."""
    _require_utc(spark)
    try:
        return _conform(events, JOB_EVENT_COLUMNS, REQUIRED_EVENT_COLUMNS, "events")
    except FeatureError as err:  # a lake's table without a required column: the caller's input
        raise SparkJobError(str(err), code="spark_source") from None
