"""`churnguard features|score --engine spark` against the DuckDB path on the same small shop.

One simulated shop (ingested into a project, a GBDT champion trained on it, its tables exported
to Parquet as a lake would hold them) is featurised and scored by both engines through the
command line: the scores must equal the DuckDB path's to 1e-9 with the same risk tiers and
reason sentences (and so must `score --engine duckdb` over the same lake, a cheap third leg),
and the training snapshots (population, labels, supplied labels, every feature) must be equal. The commands run in this process on the folder's local[2] session (they
take the active session), once per module: each Spark job costs tens of seconds on two cores, so
the snapshot comparison is in the slow set (the labels are compared in the default set by
test_spark_labels.py, every feature by test_spark_features.py).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.cli import main

from lake_shop import build_lake_shop, lake_options

pytestmark = [pytest.mark.spark,
              pytest.mark.filterwarnings("ignore:PySpark does not yet fully support:FutureWarning")]

TOLERANCE = 1e-9
# as in test_spark_features.py: a standard deviation summed in another order
APPROXIMATE = {"order_gap_std_days": 1e-12}


def _run(args: list[str]) -> str:
    """Run a command in this process (it takes the folder's Spark session); its stdout."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    assert code == 0, f"churnguard {' '.join(args)} exited {code}: {out.getvalue()}\n{err.getvalue()}"
    return out.getvalue()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shop and its lake (tests/lake_shop.py: a GBDT champion on 300 customers, supplied
    labels at the validation cutoff, its tables in Parquet)."""
    return build_lake_shop(tmp_path_factory.mktemp("lake_shop"), zone_aware=False)


@pytest.fixture(scope="module")
def scores(spark, shop: dict) -> dict:  # noqa: ANN001
    """`churnguard score` and `churnguard score --engine spark` (on the folder's session)."""
    root, base = shop["root"], shop["project"]
    out = {"duck": root / "duck_scores.parquet", "spark": root / "spark_scores",
           "lake": root / "lake_scores.parquet"}
    _run(["score", *base, "--out", str(out["duck"])])
    # the third way, cheap (no Spark): DuckDB over the same lake (tests/test_lake_duckdb.py)
    _run(["score", *base, "--engine", "duckdb", *lake_options(shop["paths"]),
          "--out", str(out["lake"])])
    out["text"] = _run(["score", *base, "--engine", "spark", *lake_options(shop["paths"]),
                        "--out", str(out["spark"])])
    return out


@pytest.fixture(scope="module")
def snapshots(spark, shop: dict) -> dict:  # noqa: ANN001
    """`churnguard features` on both engines at a labelled and an unlabelled cutoff."""
    root, base = shop["root"], shop["project"]
    cutoffs = f"{shop['older']:%Y-%m-%d},{sim_last_day(shop['sim']):%Y-%m-%d}"
    out = {"duck": root / "duck_features.parquet", "spark": root / "spark_features"}
    _run(["features", *base, "--cutoffs", cutoffs, "--out", str(out["duck"])])
    out["text"] = _run(["features", *base, "--engine", "spark", *lake_options(shop["paths"]),
                        "--cutoffs", cutoffs, "--out", str(out["spark"])])
    return out


def sim_last_day(sim) -> pd.Timestamp:  # noqa: ANN001
    """A cutoff in the middle of the simulation's last horizon: labels not observable yet."""
    events = pd.read_parquet(sim.paths["events"], columns=["ts"])
    return (events["ts"].max() - pd.Timedelta(days=30)).normalize()


def _spark_parquet(path: Path) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    if "cutoff" in frame and isinstance(frame["cutoff"].dtype, pd.DatetimeTZDtype):
        frame["cutoff"] = frame["cutoff"].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame


def test_spark_scores_equal_the_duckdb_path_with_the_same_reasons(shop: dict,
                                                                   scores: dict) -> None:
    duck = pd.read_parquet(scores["duck"]).set_index("user_id").sort_index()
    spark = _spark_parquet(scores["spark"]).set_index("user_id").sort_index()
    assert list(spark.columns) == list(duck.columns)
    assert spark.index.equals(duck.index) and len(duck) > 100
    assert np.abs(spark["p_churn"].to_numpy() - duck["p_churn"].to_numpy()).max() <= TOLERANCE
    for column in ("risk_tier", "reason_1", "reason_2", "reason_3", "model_version"):
        differ = duck.index[duck[column].to_numpy() != spark[column].to_numpy()]
        assert differ.empty, (column, [(u, duck.at[u, column], spark.at[u, column])
                                       for u in differ[:3]])
    # the reasons are real sentences quoting the customers' own values and details
    assert (duck["reason_1"] != "").mean() > 0.5
    assert duck["reason_1"].str.contains(r"\d").any()
    assert set(duck["model_version"]) == {shop["version"]}
    assert f"Scored {len(duck):,} customers" in scores["text"]
    # DuckDB over the lake: the same rows as Spark over it
    lake = pd.read_parquet(scores["lake"]).set_index("user_id").sort_index()
    assert lake.index.equals(spark.index)
    assert np.abs(lake["p_churn"].to_numpy() - spark["p_churn"].to_numpy()).max() <= TOLERANCE
    for column in ("risk_tier", "reason_1", "reason_2", "reason_3", "model_version"):
        assert lake[column].tolist() == spark[column].tolist(), column


@pytest.mark.slow  # two more Spark jobs (~1-3 min on two cores); the labels are also
# compared in the default set (test_spark_labels.py), the features in test_spark_features.py
def test_spark_snapshot_equals_the_duckdb_one_labels_and_every_feature(shop: dict,
                                                                       snapshots: dict) -> None:
    duck = pd.read_parquet(snapshots["duck"])
    spark = _spark_parquet(snapshots["spark"])
    assert list(spark.columns) == list(duck.columns)
    key = ["user_id", "cutoff"]
    duck = duck.set_index(key).sort_index()
    spark = spark.set_index(key).sort_index()
    spark.index = spark.index.set_levels(spark.index.levels[1].astype(duck.index.levels[1].dtype),
                                         level=1)
    assert spark.index.equals(duck.index)
    # two cutoffs: one labelled, one whose horizon is not observed yet (labels NULL)
    assert duck["churned"].notna().any() and duck["churned"].isna().any()
    assert spark["churned"].isna().equals(duck["churned"].isna())
    assert (spark["churned"].astype(object).where(spark["churned"].notna(), None).tolist()
            == duck["churned"].astype(object).where(duck["churned"].notna(), None).tolist())
    assert spark["label_source"].tolist() == duck["label_source"].tolist()
    supplied = duck[duck["label_source"] == "supplied"]
    assert set(supplied.index.get_level_values(0)) == {"u_supplied_new", shop["member"]}
    differ = []
    for column in duck.columns[2:]:
        a, b = duck[column], spark[column]
        if column in APPROXIMATE:
            same = np.isclose(a, b, rtol=APPROXIMATE[column], atol=0, equal_nan=True)
        elif pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            same = (a.to_numpy(dtype=float) == b.to_numpy(dtype=float)) | (a.isna() & b.isna())
        else:
            same = (a.astype(object) == b.astype(object)) | (a.isna() & b.isna())
        if not np.all(same):
            differ.append(column)
    assert differ == []
    assert f"{len(duck):,} rows" in snapshots["text"]
