"""A small shop with a champion trained early and a stored scoring run that has since matured."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from churnguard.ingest import ingest_files
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.project import Project, init_project
from churnguard.scoring import score_customers
from churnguard.simulate import simulate
from churnguard.training import train_model

#: The cutoff the champion is trained for and the population scored at; its 90-day horizon has
#: passed by the end of the simulated data (2026-05-15), so the run is a matured cohort. Campaigns
#: of the simulated shop fall on 2025-08-29 (before it) and 2025-11-27 (inside its horizon).
SCORED_AT = dt.datetime(2025, 10, 1)


@pytest.fixture(scope="session")
def monitor_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 customers over 500 days (seed 3), a small GBDT champion for 2025-10-01 and its
    saved scores at that date. Tests that write use a copy (``project_copy``)."""
    base = tmp_path_factory.mktemp("monitor_shop")
    sim = simulate(n_users=600, days=500, seed=3, out_dir=base / "inputs")
    project, _ = init_project(base / "project")
    with project.open_store() as store:
        for kind in ("items", "users", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        definition = project.config.churn
        train_model(store, definition=definition, as_of=SCORED_AT,
                    model=GBDTChurnModel(n_estimators=60, early_stopping_rounds=20, n_jobs=1))
        score_customers(store, definition=definition, tiers=project.config.scoring,
                        as_of=SCORED_AT)
    return project.root


@pytest.fixture
def project_copy(monitor_project: Path, tmp_path: Path) -> Project:
    target = tmp_path / "project"
    shutil.copytree(monitor_project, target)
    return Project.load(target)
