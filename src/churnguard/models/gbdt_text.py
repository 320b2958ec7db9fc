"""``gbdt+text``: the gradient-boosted trees of ``gbdt`` with the customers' text columns added.

The same model as :class:`~churnguard.models.gbdt.GBDTChurnModel` (same hyper-parameters, same
early stopping and calibration), with the columns of
:class:`~churnguard.features.text.CustomerTextFeatures` beside the engineered features and the
BTYD outputs: the count of the customer's reviews and tickets in the last ``text_window_days``
days before the cutoff and the principal components of their sentence vectors (mean and newest).
Backtesting ``gbdt`` against ``gbdt+text`` measures what reading the texts adds to the same
model (``benchmarks/bench_text_languages.py --churn``, docs/text.md).

The components are fitted on the training rows' texts (no labels); the texts are read from the
store the snapshot came from (``snapshot.meta["sequences"].store``), so the snapshot must be one
:func:`~churnguard.snapshots.build_snapshot` made. The text columns are never a reason sentence
(:func:`churnguard.explain.themes.theme_of` gives them no theme); the model uses them.

>>> model = TextGBDTModel(text_components=4, learning_rate=0.1)
>>> model.name, model.text_components, model.text_encoder, model.learning_rate
('gbdt+text', 4, 'use', 0.1)
"""

from __future__ import annotations

from typing import ClassVar

import pandas as pd

from churnguard.features.text import CustomerTextFeatures
from churnguard.models.base import store_arguments
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.snapshots import Snapshot
from churnguard.store import Store

__all__ = ["TextGBDTModel"]


def _store_of(snapshot: Snapshot) -> Store:
    """The store holding the snapshot's events (loaded first where a copy loads them on use:
    the real-time path's)."""
    cache = snapshot.meta.get("sequences")
    store = cache.events_store() if hasattr(cache, "events_store") else None
    if store is None:
        raise ValueError("gbdt+text reads the customers' texts from the store: give it a snapshot "
                         "made by churnguard.snapshots.build_snapshot (its meta['sequences'] "
                         "holds the store)")
    return store


def _rows(snapshot: Snapshot) -> pd.DataFrame:
    return pd.DataFrame({"user_id": snapshot.index.get_level_values(0).astype(str),
                         "cutoff": snapshot.index.get_level_values(1)})


class TextGBDTModel(GBDTChurnModel):
    """LightGBM on the engineered features, the BTYD outputs and the text columns.

    Hyper-parameters: those of :class:`~churnguard.models.gbdt.GBDTChurnModel`, and
    ``text_components`` (principal components of the text vectors kept), ``text_window_days``
    (texts read before each cutoff), ``text_encoder`` (``use``, ``bilingual`` or ``minilm``:
    :data:`churnguard.features.text.ENCODERS`). Fitted: those of the GBDT and ``text_`` (the
    fitted :class:`~churnguard.features.text.CustomerTextFeatures`).
    """

    name: ClassVar[str] = "gbdt+text"

    def __init__(
        self,
        *,
        n_estimators: int = 2000,
        learning_rate: float = 0.03,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        feature_fraction: float = 1.0,
        reg_lambda: float = 0.0,
        early_stopping_rounds: int = 100,
        calibration: str = "isotonic",
        validation_split: str = "shared",
        seed: int = 0,
        use_btyd: bool = True,
        btyd_model: str = "mbg",
        n_jobs: int | None = None,
        text_components: int = 8,
        text_window_days: int = 90,
        text_encoder: str = "use",
    ) -> None:
        store_arguments(self, locals())

    def _raw_columns(self, snapshot: Snapshot) -> pd.DataFrame:
        X = super()._raw_columns(snapshot)
        text = self.text_.transform(_store_of(snapshot), _rows(snapshot))
        return pd.concat([X, text.set_axis(X.index)], axis=1)

    def fit(self, train: Snapshot, *, validation: Snapshot | None = None) -> TextGBDTModel:
        self.text_ = CustomerTextFeatures(
            components=self.text_components, window_days=self.text_window_days,
            encoder=self.text_encoder).fit(_store_of(train), _rows(train))
        super().fit(train, validation=validation)
        return self
