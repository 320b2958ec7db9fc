"""Fixtures of the gate's tests: the session's simulated shop (3,000 customers, 400 days) in a
store of its own, with the models the tests compare already registered; each test gets a copy,
so it writes freely.

The shop's newest matured cutoff (90-day horizon) is 2025-11-06, with 1,766 customers:

- ``early``: gbdt trained as of 2025-10-09 (its labels end there: out of time on the cohort);
- ``good``: gbdt trained as of the cohort (the gate's own challenger, labels end at the cohort);
- ``shuffled``: gbdt fitted on the same cutoffs as ``good`` with the labels shuffled;
- ``latest``: gbdt trained on all the data (its validation cutoff IS the cohort).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.config import ChurnDefinition
from churnguard.cutoffs import newest_labelled_cutoff, training_cutoffs
from churnguard.ingest import ingest_files
from churnguard.models.base import ChurnModel, fit_model
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.registry import register_model
from churnguard.snapshots import Snapshot, build_snapshot
from churnguard.store import Store
from churnguard.training import train_model

DEFINITION = ChurnDefinition()


def register_fitted(store: Store, model: ChurnModel, *, definition: ChurnDefinition,
                    as_of: dt.datetime, shuffle_labels: bool = False) -> str:
    """Fit ``model`` on the cutoffs ``train_model`` uses as of ``as_of`` and register it as
    ``train_model`` does; ``shuffle_labels``: a deliberately broken recipe (the labels
    permuted, so they say nothing about the features)."""
    fit, validation = training_cutoffs(store, definition=definition, as_of=as_of)
    snapshot = build_snapshot(store, definition=definition, cutoffs=[*fit, validation])
    if shuffle_labels:
        permuted = np.random.default_rng(0).permutation(snapshot.labels.to_numpy())
        snapshot = Snapshot(features=snapshot.features,
                            labels=pd.Series(permuted, index=snapshot.labels.index),
                            orders=snapshot.orders, horizon_days=snapshot.horizon_days,
                            meta=snapshot.meta)
    is_validation = np.asarray(snapshot.index.get_level_values(1) == pd.Timestamp(validation))
    train, valid = snapshot.subset(~is_validation), snapshot.subset(is_validation)
    fitted = fit_model(model, train, validation=valid)
    return register_model(
        store, fitted, name=fitted.name,
        config={"model": fitted.get_params(), "definition": definition.model_dump(mode="json")},
        data_window={"train_cutoffs": [f"{c:%Y-%m-%d}" for c in fit],
                     "validation_cutoff": f"{validation:%Y-%m-%d}",
                     "n_train": len(train), "n_validation": len(valid)},
        metrics={}, features=list(train.features.columns))


class Squashed(ChurnModel):
    """A fitted model's probabilities to a power (squared by default): the same ranking
    (ROC-AUC), miscalibrated."""

    name = "gbdt"

    def __init__(self, *, inner: ChurnModel | None = None, power: float = 2.0) -> None:
        self.inner = inner
        self.power = power

    def fit(self, train: Snapshot, *, validation: Snapshot | None = None) -> Squashed:
        self.fitted_ = True
        return self

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(snapshot)) ** self.power  # type: ignore[union-attr]


@dataclass(frozen=True)
class GateShop:
    store: Store
    cohort: dt.datetime
    versions: dict[str, str]


@pytest.fixture(scope="session")
def gate_template(simulated_shop, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[Path, dt.datetime, dict[str, str]]:
    folder = tmp_path_factory.mktemp("gate_shop")
    path = folder / "churnguard.duckdb"
    with Store.open(path, threads=2) as store:
        for kind in ("events", "users", "items", "campaigns"):
            ingest_files(store, kind=kind, files=[simulated_shop.sim_dir / f"{kind}.parquet"])
        cohort = newest_labelled_cutoff(store, definition=DEFINITION)
        versions = {
            "early": train_model(store, definition=DEFINITION, as_of=cohort - dt.timedelta(28),
                                 promote=False).version,
            "good": train_model(store, definition=DEFINITION, as_of=cohort,
                                promote=False).version,
            "shuffled": register_fitted(store, GBDTChurnModel(), definition=DEFINITION,
                                        as_of=cohort, shuffle_labels=True),
            "latest": train_model(store, definition=DEFINITION, promote=False).version,
        }
    return path, cohort, versions


@pytest.fixture
def gate_shop(gate_template, tmp_path: Path) -> Iterator[GateShop]:
    """A copy of the gate's shop: the four models registered, no champion, no decision."""
    template, cohort, versions = gate_template
    path = tmp_path / "churnguard.duckdb"
    shutil.copy(template, path)
    with Store.open(path, threads=2) as store:
        yield GateShop(store=store, cohort=cohort, versions=dict(versions))
