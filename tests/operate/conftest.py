"""A small simulated shop for the operating cycle: the store holds all but the last two weeks,
which wait in the inbox; a small GBDT champion has scored the population once."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from churnguard.ingest import ingest_files
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.operate import cycle
from churnguard.project import Project, init_project
from churnguard.registry import CHAMPION, register_model, set_alias
from churnguard.scoring import score_customers
from churnguard.simulate import simulate
from churnguard.snapshots import build_snapshot
from churnguard.training import training_cutoffs

# Delivery on (to outbox/), a small budget, and plans due weekly.
OPERATE = """
[operate]
plan_budget = 40.0
plan_every_days = 7
deliver = true
"""
LATE_DAYS = 14


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 customers over 420 days (seed 5); the store has everything but the events of the
    last LATE_DAYS days, which are in late/events-late.parquet."""
    base = tmp_path_factory.mktemp("operate_shop")
    sim = simulate(n_users=300, days=420, seed=5, out_dir=base / "inputs")
    events = pd.read_parquet(sim.paths["events"])
    cut = events["ts"].max() - pd.Timedelta(days=LATE_DAYS)
    events[events["ts"] < cut].to_parquet(base / "inputs" / "early.parquet", index=False)
    (base / "late").mkdir()
    events[events["ts"] >= cut].to_parquet(base / "late" / "events-late.parquet", index=False)
    project, _ = init_project(base / "project")
    config = project.root / "churnguard.toml"
    config.write_text(config.read_text().split("\n[operate]\n")[0] + OPERATE)
    project = Project.load(project.root)
    with project.open_store() as store:
        for kind, path in (("items", sim.paths["items"]), ("users", sim.paths["users"]),
                           ("events", base / "inputs" / "early.parquet"),
                           ("campaigns", sim.paths["campaigns"])):
            ingest_files(store, kind=kind, files=[path])
        definition = project.config.churn
        fit, validation = training_cutoffs(store, definition=definition)
        snapshot = build_snapshot(store, definition=definition, cutoffs=[*fit, validation])
        is_valid = snapshot.index.get_level_values(1) == validation
        gbdt = GBDTChurnModel(n_estimators=60, early_stopping_rounds=20, n_jobs=1).fit(
            snapshot.subset(~is_valid), validation=snapshot.subset(is_valid))
        version = register_model(
            store, gbdt, name="gbdt", config={"definition": definition.model_dump(mode="json")},
            data_window={"validation_cutoff": f"{validation:%Y-%m-%d}"}, metrics={},
            features=gbdt.snapshot_features_)
        set_alias(store, CHAMPION, version, reason="first model")
        score_customers(store, definition=definition, tiers=project.config.scoring)
    return base


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Project:
    """A private copy of the shop with the late events waiting in inbox/events/."""
    root = tmp_path / "project"
    shutil.copytree(template / "project", root)
    (root / "inbox" / "events").mkdir(parents=True)
    shutil.copy(template / "late" / "events-late.parquet", root / "inbox" / "events")
    return Project.load(root)


@pytest.fixture
def late_events(template: Path) -> pd.DataFrame:
    return pd.read_parquet(template / "late" / "events-late.parquet")


@pytest.fixture(autouse=True)
def no_fault_hook() -> Iterator[None]:
    yield
    cycle.FAULT_HOOK = None
