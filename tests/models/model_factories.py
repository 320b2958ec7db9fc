"""Every kind of the model catalogue at a small, fast size (shared by the model tests).

The defaults are exercised by the backtest benchmark; here each kind is built through
:func:`churnguard.models.catalog.build` with settings that fit on the session's small shop in
seconds. A kind added to the catalogue without a size here fails the contract test.
"""

from __future__ import annotations

from collections.abc import Callable

from churnguard.models import catalog
from churnguard.models.base import ChurnModel

#: The behaviour models' tiny network (no text: the MiniLM encoder is slow to load).
TINY = dict(d_model=16, max_len=48, use_text=False, pretrain_epochs=1,
            pretrain_max_customers=400, n_threads=1, seed=5)
NET = dict(TINY, lr=5e-3, batch_size=256)
GBDT = dict(n_estimators=150, learning_rate=0.1, num_leaves=15, early_stopping_rounds=20, seed=3,
            n_jobs=1)
BTYD = dict(model="mbg", time_unit_days=7)

SIZES: dict[str, dict] = {
    "recency": {},
    "btyd": BTYD,
    "gbdt": GBDT,
    "gbdt+text": dict(GBDT, text_components=4),
    "behaviour": dict(epochs=2, **NET),
    "behaviour_gru": dict(epochs=2, **NET),
    "behaviour_transformer": dict(epochs=1, **NET),
    "behaviour+gbdt": dict(n_estimators=60, learning_rate=0.1, num_leaves=7,
                           early_stopping_rounds=10, n_jobs=1, **TINY),
}


def _make(name: str) -> Callable[[], ChurnModel]:
    if name == "ensemble":  # members fitted in seconds; the ensemble copies them
        return lambda: catalog.build("ensemble", members=[catalog.build("btyd", **BTYD),
                                                          catalog.build("gbdt", **GBDT)])
    return lambda: catalog.build(name, **SIZES[name])


MODEL_FACTORIES: dict[str, Callable[[], ChurnModel]] = {
    name: _make(name) for name in catalog.KINDS if name in SIZES or name == "ensemble"}
