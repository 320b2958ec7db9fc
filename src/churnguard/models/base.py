"""The contract every churn model follows, and the snapshot it learns from.

A :class:`Snapshot` is the point-in-time view of a set of (user, cutoff) rows: their engineered
features (computed from events strictly before the cutoff), their labels where known, and the
raw purchase history before the cutoff that models such as BTYD need. Models are scikit-learn
style (STYLE.md #1):

- the constructor stores its keyword arguments unchanged;
- ``fit(train, *, validation=None)`` validates, learns and returns ``self``; ``validation`` is an
  out-of-time snapshot for early stopping and calibration;
- learned state ends in ``_``; predicting before fitting raises :class:`NotFittedError`;
- ``predict_proba(snapshot)`` returns P(churn) per row, in the snapshot's row order;
- ``explain(snapshot)`` returns per-row contributions (a DataFrame, one column per feature, in the
  log-odds scale, plus ``bias``) whose row sums plus bias give the model's raw log-odds;
- ``save(path)`` / ``load(path)`` round-trip with a format version and the constructor config.
"""

from __future__ import annotations

import abc
import inspect
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

__all__ = ["ChurnModel", "NotFittedError", "Snapshot", "fit_model"]

MODEL_FORMAT_VERSION = 1


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """Features and labels of (user_id, cutoff) rows.

    ``features``: indexed by (user_id, cutoff), one column per feature.
    ``labels``: bool/float Series aligned with ``features`` (NaN where unobservable), or None.
    ``orders``: order events strictly before each row's cutoff: columns user_id, cutoff, ts,
    amount (one row per order), for models that work on the raw purchase history.
    ``horizon_days``: the churn horizon the labels were made with.
    """

    features: pd.DataFrame
    labels: pd.Series | None = None
    orders: pd.DataFrame | None = None
    horizon_days: int = 90
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if list(self.features.index.names) != ["user_id", "cutoff"]:
            raise ValueError("Snapshot.features must be indexed by (user_id, cutoff)")
        if self.labels is not None and not self.labels.index.equals(self.features.index):
            raise ValueError("Snapshot.labels must have the same index as Snapshot.features")

    def __len__(self) -> int:
        return len(self.features)

    @property
    def index(self) -> pd.MultiIndex:
        return self.features.index  # type: ignore[return-value]

    def y(self) -> np.ndarray:
        """Labels as 0/1 floats; raises if there are none or some are unknown."""
        if self.labels is None:
            raise ValueError("this snapshot has no labels")
        y = pd.to_numeric(self.labels, errors="coerce").astype(float).to_numpy()
        if np.isnan(y).any():
            raise ValueError(f"{int(np.isnan(y).sum())} rows have no observable label")
        return y

    def subset(self, mask: np.ndarray | pd.Series) -> Snapshot:
        mask = np.asarray(mask, dtype=bool)
        features = self.features[mask]
        keys = features.index
        orders = None
        if self.orders is not None:
            wanted = pd.MultiIndex.from_arrays([keys.get_level_values(0), keys.get_level_values(1)])
            order_keys = pd.MultiIndex.from_arrays([self.orders["user_id"], self.orders["cutoff"]])
            orders = self.orders[order_keys.isin(wanted)]
        return Snapshot(
            features=features,
            labels=None if self.labels is None else self.labels[mask],
            orders=orders,
            horizon_days=self.horizon_days,
            meta=dict(self.meta),
        )


class ChurnModel(abc.ABC):
    """Base class: shared save/load and the fitted check. Subclasses set ``name``."""

    name: ClassVar[str]

    @abc.abstractmethod
    def fit(self, train: Snapshot, *, validation: Snapshot | None = None) -> ChurnModel: ...

    @abc.abstractmethod
    def predict_proba(self, snapshot: Snapshot) -> np.ndarray: ...

    def explain(self, snapshot: Snapshot) -> pd.DataFrame:
        raise NotImplementedError(f"{type(self).__name__} gives no per-customer contributions")

    def explanation_values(self, snapshot: Snapshot) -> pd.DataFrame:
        """The values behind :meth:`explain`'s columns, for reason sentences (default: the
        snapshot's features; models that derive inputs of their own add them)."""
        return snapshot.features

    # -- helpers shared by every model -----------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")}

    def _check_fitted(self, what: str) -> None:
        if not any(k.endswith("_") and not k.startswith("_") for k in vars(self)):
            raise NotFittedError(
                f"{type(self).__name__}.{what}: this model is not fitted yet; call fit() first"
            )

    def save(self, path: str | Path) -> None:
        """Pickle with a header giving the format version, the class and the constructor config."""
        payload = {
            "format": MODEL_FORMAT_VERSION,
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
            "config": self.get_params(),
            "model": self,
        }
        Path(path).write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))

    @classmethod
    def load(cls, path: str | Path) -> ChurnModel:
        payload = pickle.loads(Path(path).read_bytes())
        if payload.get("format") != MODEL_FORMAT_VERSION:
            raise ValueError(
                f"{path}: model format {payload.get('format')!r}, this churnguard reads "
                f"{MODEL_FORMAT_VERSION}; retrain the model"
            )
        model = payload["model"]
        if not isinstance(model, cls):
            raise ValueError(f"{path}: holds a {payload['class']}, not a {cls.__name__}")
        return model


def fit_model(model: ChurnModel, train: Snapshot, *, validation: Snapshot | None = None,
              progress: Callable[[str], None] | None = None) -> ChurnModel:
    """``model.fit(train, validation=validation)``, passing ``progress`` (each message prefixed
    with the model's name) to models whose fit reports its own progress: the behaviour models'
    pretraining and epochs, the members of an ensemble."""
    if progress is not None and "progress" in inspect.signature(model.fit).parameters:
        return model.fit(train, validation=validation,  # type: ignore[call-arg]
                         progress=lambda message: progress(f"{model.name}: {message}"))
    return model.fit(train, validation=validation)
