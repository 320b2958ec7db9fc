"""Factories of every churn model with small, fast settings (shared by the model tests)."""

from __future__ import annotations

from collections.abc import Callable

from churnguard.models.base import ChurnModel
from churnguard.models.baselines import RecencyModel
from churnguard.models.btyd_churn import BTYDChurnModel
from churnguard.models.gbdt import GBDTChurnModel

# Small, fast settings; the defaults are exercised by the backtest benchmark.
MODEL_FACTORIES: dict[str, Callable[[], ChurnModel]] = {
    "recency": lambda: RecencyModel(),
    "btyd": lambda: BTYDChurnModel(model="mbg", time_unit_days=7),
    "gbdt": lambda: GBDTChurnModel(n_estimators=150, learning_rate=0.1, num_leaves=15,
                                   early_stopping_rounds=20, seed=3, n_jobs=1),
}
