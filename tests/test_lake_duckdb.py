"""`churnguard features|score --engine duckdb --events PATH`: a lake's Parquet read by DuckDB gives
the same rows as the same commands on the project's store (and so as `--engine spark`, which
tests/spark/test_spark_jobs.py holds to the store's results), without Spark.

One simulated shop is ingested into a project, a GBDT champion trained on it, supplied labels
added, and its tables exported to Parquet as a lake would hold them (the events split in two
files). The scores from the lake must equal the store's to 1e-9 with the same tiers, reasons and
order; the snapshot (population, labels, supplied labels, every feature and attribute) must be
equal. Table names and remote URIs (without DuckDB's httpfs) are refused with exit 2.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.cli import main
from churnguard.project import init_project

from lake_shop import build_lake_shop, lake_options

TOLERANCE = 1e-9


def _run(args: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return code, out.getvalue() + err.getvalue()


def _ok(args: list[str]) -> str:
    code, text = _run(args)
    assert code == 0, f"churnguard {' '.join(args)} exited {code}: {text}"
    return text


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The shop and its lake (tests/lake_shop.py), one events file with zone-aware instants."""
    return build_lake_shop(tmp_path_factory.mktemp("duckdb_lake"), zone_aware=True)


def test_scores_from_the_lake_equal_the_stores_with_the_same_reasons(shop: dict) -> None:
    root, base = shop["root"], shop["project"]
    _ok(["score", *base, "--out", str(root / "store_scores.parquet")])
    with shop["open"](read_only=True) as store:
        kept = store.con.execute("SELECT count(*), max(scored_at) FROM scores").fetchall()
    text = _ok(["score", *base, "--engine", "duckdb", *lake_options(shop["paths"]),
                "--out", str(root / "lake_scores.parquet")])
    store = pd.read_parquet(root / "store_scores.parquet")
    lake = pd.read_parquet(root / "lake_scores.parquet")
    assert list(lake.columns) == list(store.columns) and len(store) > 100
    # the same customers in the same order (highest risk first), the same probabilities
    assert lake["user_id"].tolist() == store["user_id"].tolist()
    assert np.abs(lake["p_churn"].to_numpy() - store["p_churn"].to_numpy()).max() <= TOLERANCE
    for column in ("risk_tier", "reason_1", "reason_2", "reason_3", "model_version"):
        differ = store.index[store[column].to_numpy() != lake[column].to_numpy()]
        assert differ.empty, (column, [(store.at[i, "user_id"], store.at[i, column],
                                        lake.at[i, column]) for i in differ[:3]])
    # real reasons quoting the customers' own values, from the project's champion
    assert (store["reason_1"] != "").mean() > 0.5 and store["reason_1"].str.contains(r"\d").any()
    assert set(lake["model_version"]) == {shop["version"]}
    assert f"Scored {len(store):,} customers" in text and "written to" in text
    # a lake's scores are not kept in the project's store (nor rewritten there)
    with shop["open"](read_only=True) as store_after:
        assert store_after.con.execute("SELECT count(*), max(scored_at) FROM scores"
                                       ).fetchall() == kept


def test_features_from_the_lake_equal_the_stores(shop: dict) -> None:
    root, base = shop["root"], shop["project"]
    # a labelled cutoff (with the supplied labels) and one whose horizon is not observed yet
    unobserved = (shop["last"] - pd.Timedelta(days=30)).normalize()
    cutoffs = f"{shop['older']:%Y-%m-%d},{unobserved:%Y-%m-%d}"
    _ok(["features", *base, "--cutoffs", cutoffs, "--out", str(root / "store_f.parquet")])
    # no --engine: DuckDB is the default; the events given as a folder
    text = _ok(["features", *base, *lake_options(shop["paths"], "events_folder"), "--cutoffs", cutoffs,
                "--out", str(root / "lake_f.parquet")])
    store = pd.read_parquet(root / "store_f.parquet")
    lake = pd.read_parquet(root / "lake_f.parquet")
    assert store["churned"].notna().any() and store["churned"].isna().any()
    supplied = store[store["label_source"] == "supplied"]
    assert set(supplied["user_id"]) == {"u_supplied_new", shop["member"]}
    if shop["attributes"]:
        assert any(c.startswith("attr_") for c in store.columns)
    pd.testing.assert_frame_equal(lake, store, check_exact=True)
    assert f"{len(store):,} rows" in text


def test_features_from_a_part_of_the_lake_are_its_own(shop: dict) -> None:
    # one file of the events: the population is that file's customers, at the midnight after
    # the lake's last event (as the store's default cutoff is after the store's)
    root, base = shop["root"], shop["project"]
    part = str(Path(shop["paths"]["events_folder"]) / "part-1.parquet")
    _ok(["features", *base, "--out", str(root / "store_default.parquet")])
    _ok(["features", *base, "--engine", "duckdb", "--events", part,
         "--out", str(root / "lake_part.parquet")])
    store = pd.read_parquet(root / "store_default.parquet")
    lake = pd.read_parquet(root / "lake_part.parquet")
    mine = set(pd.read_parquet(part, columns=["user_id"])["user_id"])
    assert list(lake["cutoff"].unique()) == [shop["last"].normalize() + pd.Timedelta(days=1)]
    assert 0 < len(lake) < len(store)
    assert lake["user_id"].tolist() == store.loc[store["user_id"].isin(mine), "user_id"].tolist()


def test_table_names_and_remote_uris_are_refused_for_duckdb(shop: dict, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    base, out = shop["project"], str(tmp_path / "s.parquet")
    code, text = _run(["score", *base, "--engine", "duckdb", "--events", "shop.events",
                       "--out", out])
    assert code == 2, text
    assert "--events shop.events: a table name is read through a Spark session's catalog" in text
    assert "--engine spark only" in text
    code, text = _run(["features", *base, "--events", shop["paths"]["events"], "--users",
                       "shop.users", "--out", out])
    assert code == 2 and "--users shop.users: a table name" in text
    # DuckDB sees no installed extensions under an empty home: httpfs is not there
    monkeypatch.setenv("HOME", str(tmp_path))
    code, text = _run(["score", *base, "--events", "s3a://bucket/events/", "--out", out])
    assert code == 2, text
    assert "--events s3a://bucket/events/: DuckDB reads s3a:// URIs through its httpfs " \
           "extension, which is not installed here" in text
    assert not Path(out).exists()


def test_the_lake_needs_events_and_an_out_file(shop: dict, tmp_path: Path) -> None:
    base = shop["project"]
    code, text = _run(["score", *base, "--events", shop["paths"]["events"]])
    assert code == 2 and "--events needs --out FILE.csv|FILE.parquet" in text
    code, text = _run(["score", *base, "--events", str(tmp_path / "none" / "*.parquet"),
                       "--out", str(tmp_path / "s.csv")])
    assert code == 2 and "cannot read it as Parquet files" in text
    code, text = _run(["features", *base, "--events", shop["paths"]["users"],
                       "--out", str(tmp_path / "f.csv")])
    assert code == 2 and "the events need columns" in text and "missing: ['event_id'" in text


def test_a_model_that_reads_event_sequences_is_refused_for_a_lake(shop: dict,
                                                                   tmp_path: Path) -> None:
    from churnguard.models.behaviour.model import BehaviourChurnModel
    from churnguard.registry import CHAMPION, register_model, set_alias

    project, _ = init_project(tmp_path / "p")
    with project.open_store() as store:
        version = register_model(store, BehaviourChurnModel(), name="behaviour", config={},
                                 data_window={}, metrics={}, features=["orders_total"])
        set_alias(store, CHAMPION, version, reason="test")
    code, text = _run(["score", "--project", str(project.root), "--events",
                       shop["paths"]["events"], "--out", str(tmp_path / "s.csv")])
    assert code == 2, text
    assert f"{version} is a behaviour model: it reads customers' event sequences" in text
