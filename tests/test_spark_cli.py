"""The command line of the Spark engine without Spark: what `--engine` changes and refuses, and
that churnguard imports and runs without pyspark (the `[spark]` extra is optional).

The jobs themselves run in tests/spark/ (a local Spark session)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from churnguard.cli import main
from churnguard.project import init_project


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path) -> list[str]:
    init_project(tmp_path / "p")
    return ["--project", str(tmp_path / "p")]


def test_lake_tables_without_events_are_refused(project: list[str],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # --events alone is the DuckDB engine's too (tests/test_lake_duckdb.py); the other tables
    # of a lake mean nothing without it
    code, out, err = run(["score", *project, "--users", "u.parquet", "--out", "s.csv"], capsys)
    assert code == 2
    assert "--users needs --events (the lake's events)" in out + err
    code, out, err = run(["features", *project, "--engine", "duckdb", "--users", "u.parquet",
                          "--items", "shop.items", "--out", "f.parquet"], capsys)
    assert code == 2 and "--users, --items need --events" in out + err


def test_the_spark_engine_needs_events_and_an_out_folder(project: list[str],
                                                        capsys: pytest.CaptureFixture[str]
                                                        ) -> None:
    code, out, err = run(["score", *project, "--engine", "spark", "--out", "s/"], capsys)
    assert code == 2 and "--engine spark needs --events SOURCE" in out + err
    code, out, err = run(["score", *project, "--engine", "spark", "--events", "e/"], capsys)
    assert code == 2 and "--engine spark needs --out PATH" in out + err


def test_score_without_engine_checks_its_out_file_as_before(project: list[str], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    code, out, err = run(["score", *project, "--out", str(tmp_path / "s.txt")], capsys)
    assert code == 2 and "write .csv or .parquet" in out + err
    # a folder is not a file: click's own check and message, as before --engine existed
    code, out, err = run(["score", *project, "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in out + err
    code, out, err = run(["features", *project, "--out", str(tmp_path / "f.json")], capsys)
    assert code == 2 and "write .csv or .parquet" in out + err


# Runs in a fresh interpreter where importing pyspark fails, as in a default install.
WITHOUT_PYSPARK = textwrap.dedent("""
    import importlib.abc, sys

    class NoPyspark(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "pyspark" or name.startswith("pyspark."):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoPyspark())
    import churnguard, churnguard.cli, churnguard.features, churnguard.spark, churnguard.scoring
    assert "pyspark" not in sys.modules
    from churnguard.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_churnguard_works_without_pyspark_and_the_spark_engine_says_how_to_get_it(
        project: list[str], tmp_path: Path) -> None:
    command = [sys.executable, "-c", WITHOUT_PYSPARK]
    done = subprocess.run([*command, "score", *project, "--engine", "spark", "--events",
                           str(tmp_path / "e"), "--out", str(tmp_path / "s")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "pip install 'churnguard[spark]'" in done.stdout + done.stderr


def test_a_model_that_reads_event_sequences_is_refused_for_spark(tmp_path: Path) -> None:
    from churnguard.config import ChurnDefinition
    from churnguard.models.behaviour.model import BehaviourChurnModel, BehaviourGBDTModel
    from churnguard.models.ensemble import StackedEnsemble
    from churnguard.models.gbdt import GBDTChurnModel
    from churnguard.registry import CHAMPION, register_model, set_alias
    from churnguard.spark.lake import SparkJobError
    from churnguard.spark.scoring import reads_sequences, spark_champion
    from churnguard.store import Store

    stacked = StackedEnsemble(members=("gbdt", "behaviour"))
    stacked.members_ = {"gbdt": GBDTChurnModel(), "behaviour": BehaviourChurnModel()}
    assert [reads_sequences(m) for m in (GBDTChurnModel(), BehaviourGBDTModel(), stacked)] == [
        False, True, True]
    with Store.open(tmp_path / "s.duckdb") as store:
        version = register_model(store, BehaviourChurnModel(), name="behaviour", config={},
                                 data_window={}, metrics={}, features=["orders_total"])
        set_alias(store, CHAMPION, version, reason="test")
        with pytest.raises(SparkJobError, match="reads customers' event sequences") as err:
            spark_champion(store, ChurnDefinition())
    assert err.value.code == "spark_model" and err.value.bad_input
