"""A small simulated shop with resolved tickets and replies, in a store file built once and
copied for each test that writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from churnguard.config import IngestConfig
from churnguard.ingest import ingest_files
from churnguard.simulate import simulate
from churnguard.store import Store


@pytest.fixture(scope="session")
def assist_shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(store file, simulator folder): 800 customers over 200 days, English and Chinese."""
    base = tmp_path_factory.mktemp("assist_shop")
    sim = simulate(n_users=800, days=200, seed=7, out_dir=base / "sim")
    db = base / "shop.duckdb"
    with Store.open(db) as store:
        for kind in ("items", "users", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]],
                         config=IngestConfig(future_events="allow"))
    return db, base / "sim"


@pytest.fixture
def shop_store(assist_shop: tuple[Path, Path], tmp_path: Path):
    """A private, open copy of the shop's store."""
    target = tmp_path / "shop.duckdb"
    shutil.copy(assist_shop[0], target)
    with Store.open(target) as store:
        yield store
