"""Shared fixtures. Keep each one small and named for what it gives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from churnguard.config import ChurnDefinition
from churnguard.ingest import ingest_files
from churnguard.simulate import simulate
from churnguard.store import Store

# Hypothesis keeps its files (failing examples for replay, a cache of constants) under
# .pytest_cache, which git ignores, instead of a .hypothesis folder in the working tree. In CI (CI
# set, as .ci/run does) the examples are derived from each test's name, so a run is repeatable,
# and none are saved.
set_hypothesis_home_dir(Path(__file__).resolve().parent.parent / ".pytest_cache" / "hypothesis")
settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
if os.environ.get("CI", "").lower() not in ("", "0", "false"):
    settings.load_profile("ci")


# With pytest-xdist (`make test` runs `-n 2`), a folder whose conftest builds a session-scoped
# shop runs wholly on one worker, so each shop is built once, not once per worker; other tests go
# to the workers file by file, which keeps module-scoped fixtures to one build too. (A custom
# scheduler rather than xdist_group marks: xdist 3.8's loadgroup renames node ids in a way
# pytest 9.2 no longer reads, and splits a group across workers.)
_WHOLE_FOLDER_GROUPS = frozenset({"assistant", "gate", "models", "monitor", "operate", "report",
                                  "service", "simulate", "spark", "voice"})


def worker_scope(nodeid: str) -> str:
    """The unit of tests one xdist worker takes whole.

    >>> worker_scope("tests/gate/test_refit.py::test_x"), worker_scope("tests/test_cli.py::t")
    ('tests/gate', 'tests/test_cli.py')
    """
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "tests" and parts[1] in _WHOLE_FOLDER_GROUPS:
        return "/".join(parts[:2])
    return path


def pytest_xdist_make_scheduler(config: pytest.Config, log):  # noqa: ANN001, ANN201
    from xdist.scheduler import LoadScopeScheduling  # noqa: PLC0415

    class FolderOrFileScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_scope(nodeid)

    return FolderOrFileScheduling(config, log)


@pytest.fixture
def store(tmp_path: Path):
    """A fresh file-backed store in a temporary folder."""
    with Store.open(tmp_path / "churnguard.duckdb", threads=2) as s:
        yield s


@dataclass(frozen=True)
class SimulatedShop:
    """A simulated shop ingested into a store, with the simulator's truth (read-only in tests)."""

    store: Store
    truth: pd.DataFrame
    sim_dir: Path
    definition: ChurnDefinition


def ingest_simulation(store: Store, sim_dir: Path) -> None:
    for kind in ("events", "users", "items", "campaigns"):
        ingest_files(store, kind=kind, files=[sim_dir / f"{kind}.parquet"])


@pytest.fixture(scope="session")
def simulated_shop(tmp_path_factory: pytest.TempPathFactory):
    """3,000 customers over 400 days of the default scenario (seed 7), ingested once per session.

    Tests must not write to this store; copy the simulation into their own store instead
    (``ingest_simulation``)."""
    folder = tmp_path_factory.mktemp("simulated_shop")
    simulate(n_users=3000, days=400, seed=7, out_dir=folder / "sim")
    with Store.open(folder / "churnguard.duckdb", threads=2) as s:
        ingest_simulation(s, folder / "sim")
        truth = pd.read_parquet(folder / "sim" / "truth" / "churn.parquet",
                                columns=["user_id", "cutoff", "p_churn"])
        yield SimulatedShop(store=s, truth=truth, sim_dir=folder / "sim",
                            definition=ChurnDefinition())
