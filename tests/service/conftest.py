"""A tiny simulated shop with a champion model, copied per test that writes to it."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from churnguard.ingest import ingest_files
from churnguard.models.baselines import RecencyModel
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.project import Project, init_project
from churnguard.registry import CHAMPION, register_model, set_alias
from churnguard.service import create_app
from churnguard.simulate import simulate
from churnguard.snapshots import build_snapshot
from churnguard.training import training_cutoffs

from service.helpers import KEYS, settings


@pytest.fixture(scope="session")
def template_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 customers over 420 days (inputs outside the project folder), a small GBDT champion
    and a second version (the recency rule) that is not the champion."""
    base = tmp_path_factory.mktemp("service_shop")
    sim = simulate(n_users=300, days=420, seed=5, out_dir=base / "inputs")
    project, _ = init_project(base / "project")
    with project.open_store() as store:
        for kind in ("items", "users", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        definition = project.config.churn
        fit, validation = training_cutoffs(store, definition=definition)
        snapshot = build_snapshot(store, definition=definition, cutoffs=[*fit, validation])
        is_valid = (snapshot.index.get_level_values(1) == validation)
        train, valid = snapshot.subset(~is_valid), snapshot.subset(is_valid)
        gbdt = GBDTChurnModel(n_estimators=60, early_stopping_rounds=20, n_jobs=1).fit(
            train, validation=valid)
        version = register_model(store, gbdt, name="gbdt", config={"model": gbdt.get_params()},
                                 data_window={}, metrics={}, features=gbdt.snapshot_features_)
        set_alias(store, CHAMPION, version, reason="first model")
        recency = RecencyModel().fit(train, validation=valid)
        register_model(store, recency, name="recency", config={}, data_window={}, metrics={},
                       features=list(train.features.columns))
    return project.root


@pytest.fixture
def project_dir(template_project: Path, tmp_path: Path) -> Path:
    """A private copy of the shop, for a test that writes."""
    target = tmp_path / "project"
    shutil.copytree(template_project, target)
    return target


@pytest.fixture(scope="module")
def shared_project(template_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy shared by the read-only tests of one module."""
    target = tmp_path_factory.mktemp("shared") / "project"
    shutil.copytree(template_project, target)
    return target


@pytest.fixture
def make_client(project_dir: Path) -> Iterator[ClientFactory]:
    """``make_client(**settings)``: a started TestClient over the private copy."""
    opened: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        client = TestClient(create_app(Project.load(project_dir), settings(**overrides)),
                            raise_server_exceptions=False)
        client.__enter__()
        opened.append(client)
        if overrides.get("warm_on_start", True):
            assert client.app.state.service.risk.wait_explained(120)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def reader(shared_project: Path) -> Iterator[TestClient]:
    """A started client over the module's shared copy (tests must not write through it)."""
    with TestClient(create_app(Project.load(shared_project), settings()),
                    raise_server_exceptions=False) as client:
        assert client.app.state.service.risk.wait_explained(120)
        yield client
