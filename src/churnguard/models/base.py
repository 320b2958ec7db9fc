"""The contract every churn model follows.

Models learn from and score a :class:`~churnguard.snapshots.Snapshot` (the point-in-time view
of (user, cutoff) rows, built by :mod:`churnguard.snapshots`). They are scikit-learn style
(STYLE.md #1):

- the constructor stores its keyword arguments unchanged;
- ``fit(train, *, validation=None)`` validates, learns and returns ``self``; ``validation`` is an
  out-of-time snapshot for early stopping and calibration;
- learned state ends in ``_``; predicting before fitting raises :class:`NotFittedError`;
- ``predict_proba(snapshot)`` returns P(churn) per row, in the snapshot's row order;
- ``explain(snapshot)`` returns per-row contributions (a DataFrame, one column per feature, in the
  log-odds scale, plus ``bias``) whose row sums plus bias give the model's raw log-odds;
- ``predict_explained(snapshot)`` returns those two and ``explanation_values`` in one call (the
  default calls the three; a model whose three share costly work overrides it);
- ``save(path)`` / ``load(path)`` round-trip with a format version and the constructor config.
"""

from __future__ import annotations

import abc
import inspect
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

from churnguard.snapshots import Snapshot

__all__ = ["ChurnModel", "NotFittedError", "fit_model", "store_arguments"]

MODEL_FORMAT_VERSION = 1


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

    def predict_explained(self, snapshot: Snapshot,
                          ) -> tuple[np.ndarray, pd.DataFrame | None, pd.DataFrame | None]:
        """(:meth:`predict_proba`, :meth:`explain`, :meth:`explanation_values`) of ``snapshot``
        in one call; the last two are None for a model that gives no contributions. Models whose
        three methods share costly work (a design matrix) override it to do that work once."""
        p = np.asarray(self.predict_proba(snapshot), dtype=float)
        try:
            contributions = self.explain(snapshot)
        except NotImplementedError:
            return p, None, None
        return p, contributions, self.explanation_values(snapshot)

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


def store_arguments(model: object, arguments: dict[str, Any]) -> None:
    """Store a constructor's arguments unchanged as attributes of the same names: call it as
    ``store_arguments(self, locals())`` first thing in ``__init__`` (for models with many
    hyper-parameters, where writing ``self.x = x`` for each would repeat the signature).

    >>> class Toy:
    ...     def __init__(self, *, depth: int = 3, rate: float = 0.1) -> None:
    ...         store_arguments(self, locals())
    >>> vars(Toy(rate=0.5))
    {'depth': 3, 'rate': 0.5}
    """
    for key, value in arguments.items():
        if key not in ("self", "__class__"):
            setattr(model, key, value)


def fit_model(model: ChurnModel, train: Snapshot, *, validation: Snapshot | None = None,
              progress: Callable[[str], None] | None = None) -> ChurnModel:
    """``model.fit(train, validation=validation)``, passing ``progress`` (each message prefixed
    with the model's name) to models whose fit reports its own progress: the behaviour models'
    pretraining and epochs, the members of an ensemble."""
    if progress is not None and "progress" in inspect.signature(model.fit).parameters:
        return model.fit(train, validation=validation,  # type: ignore[call-arg]
                         progress=lambda message: progress(f"{model.name}: {message}"))
    return model.fit(train, validation=validation)
