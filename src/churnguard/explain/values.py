"""The values a sentence quotes: feature and context columns by name, aligned with the
contributions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churnguard.explain.queries import CONTEXT_COLUMNS

# Where a sentence's value comes from: a column by name, a constant, or a function of the values.
Source = str | float | Callable[["_Values"], np.ndarray]


class _Values:
    """Column arrays by name (features first, then context); a column that is absent reads as
    missing, so a variant that needs it is never valid."""

    def __init__(self, features: pd.DataFrame, context: pd.DataFrame | None) -> None:
        self.n = len(features)
        self._features, self._context = features, context
        self._cache: dict[str, np.ndarray] = {}
        self._numeric: tuple[dict[str, int], np.ndarray] | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def _load(self, name: str) -> np.ndarray:
        frame = self._features
        if name in CONTEXT_COLUMNS:
            frame = self._context
        if frame is None or name not in frame.columns:
            return np.full(self.n, np.nan)
        if frame is self._features and name != "last_review_topic":
            found = self._numeric_features()
            if name in found[0]:
                return found[1][:, found[0][name]]
        column = frame[name]
        if frame is self._context and name.endswith("_at"):
            return pd.to_datetime(column).to_numpy(dtype="datetime64[us]")
        if name == "last_review_topic" or not pd.api.types.is_numeric_dtype(column.dtype):
            return column.astype(object).where(column.notna(), None).to_numpy(dtype=object)
        return column.to_numpy(dtype=float, na_value=np.nan)

    def _numeric_features(self) -> tuple[dict[str, int], np.ndarray]:
        """The numeric feature columns as one float matrix, converted once: a sentence reads
        dozens of columns, and converting each on its own costs more than the sentence when
        explaining one customer."""
        if self._numeric is None:
            frame = self._features
            names = [str(c) for c, dtype in frame.dtypes.items()
                     if pd.api.types.is_numeric_dtype(dtype)
                     and not isinstance(dtype, pd.CategoricalDtype)]
            unique = [c for c in names if names.count(c) == 1]
            matrix = frame[unique].to_numpy(dtype=float, na_value=np.nan) if unique \
                else np.empty((self.n, 0))
            self._numeric = ({c: i for i, c in enumerate(unique)}, matrix)
        return self._numeric

    def resolve(self, source: Source) -> np.ndarray:
        if isinstance(source, str):
            return self[source]
        if isinstance(source, float | int):
            return np.full(self.n, float(source))
        return np.asarray(source(self))


def _known(values: np.ndarray) -> np.ndarray:
    return ~pd.isna(values)
