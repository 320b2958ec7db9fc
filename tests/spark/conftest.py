"""One local Spark for the whole folder (the fixture shop both engines read: spark_shop.py).

The session is local[2] (two cores, as CI has), with 2 shuffle partitions, no UI, a small driver
and the UTC session time zone; it starts once per test session (12-70 s on a busy 2-core box), so
every test here shares it. The driver JVM's own default time zone is set far from UTC
(Pacific/Kiritimati, UTC+14) on purpose: only the session time zone may matter.

Without pyspark or Java the tests are skipped with a message saying how to get them, unless
``CHURNGUARD_REQUIRE_SPARK=1`` (set in CI by .ci/run), where that is a failure: a green CI run
always means the features really ran on Spark.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator

import pytest

REQUIRE_ENV = "CHURNGUARD_REQUIRE_SPARK"
JVM_TIME_ZONE = "Pacific/Kiritimati"

def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV, "") == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 forbids skipping the Spark tests", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """A local[2] SparkSession in UTC, shared by every Spark test."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        _unavailable("pyspark is not installed; run `.venv/bin/pip install -e '.[test]'` (or "
                     "'.[spark]') to run the Spark tests")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _unavailable("Java is not installed (Spark needs Java 17+); on Debian: "
                     "apt-get install openjdk-17-jre-headless")
    # mapInPandas (the Spark scoring job) runs Python workers: this interpreter, with churnguard
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]").appName("churnguard-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", "768m")
        .config("spark.driver.extraJavaOptions", f"-Duser.timezone={JVM_TIME_ZONE}")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
