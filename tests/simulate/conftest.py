"""Shared simulated shops: built once per test session, small enough for the default test run."""

from __future__ import annotations

from pathlib import Path

import pytest
from shop_helpers import Shop, load_shop

from churnguard.simulate import simulate


@pytest.fixture(scope="session")
def default_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    out = tmp_path_factory.mktemp("default_shop")
    return load_shop(simulate(n_users=20_000, days=365, seed=11, out_dir=out))


@pytest.fixture(scope="session")
def sequence_shop(tmp_path_factory: pytest.TempPathFactory) -> Shop:
    out = tmp_path_factory.mktemp("sequence_shop")
    return load_shop(simulate(n_users=20_000, days=365, seed=11, out_dir=out, scenario="sequence"))


@pytest.fixture
def tmp_out(tmp_path: Path) -> Path:
    return tmp_path / "out"
