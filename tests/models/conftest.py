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
