"""Snapshots of the session's simulated shop: two training cutoffs, validation and test."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from churnguard.evaluate import backtest_cutoffs
from churnguard.snapshots import Snapshot, build_snapshot


@dataclass(frozen=True)
class Snapshots:
    train: Snapshot
    validation: Snapshot
    test: Snapshot


@pytest.fixture(scope="session")
def snapshots(simulated_shop) -> Snapshots:
    """Two training cutoffs, the validation cutoff and the test cutoff of a backtest."""
    store, definition = simulated_shop.store, simulated_shop.definition
    test, train, validation = backtest_cutoffs(store, definition=definition, train_cutoffs=2)
    everything = build_snapshot(store, definition=definition, cutoffs=[*train, validation, test])
    cutoffs = everything.index.get_level_values(1)
    return Snapshots(
        train=everything.subset(cutoffs < validation),
        validation=everything.subset(cutoffs == validation),
        test=everything.subset(cutoffs == test),
    )


class FittedModels(dict):
    """Models of the catalogue at their test size (model_factories.py), fitted on the first
    use by any test of the session: through ``check_fit_returns_self``, so every fitted model
    has passed it."""

    def __init__(self, snapshots: Snapshots) -> None:
        super().__init__()
        self.snapshots = snapshots

    def __missing__(self, name: str):
        from model_factories import MODEL_FACTORIES

        from churnguard.models.checks import check_fit_returns_self, churn_case

        s = self.snapshots
        self[name] = check_fit_returns_self(churn_case(
            MODEL_FACTORIES[name], train=s.train, validation=s.validation, test=s.test))
        return self[name]


@pytest.fixture(scope="session")
def fitted_models(snapshots) -> FittedModels:
    """name -> fitted model of that kind (see :class:`FittedModels`)."""
    return FittedModels(snapshots)
