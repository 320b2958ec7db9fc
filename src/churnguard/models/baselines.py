"""The baseline every churn model must beat: "the longer since the last purchase, the likelier
the customer has gone".

>>> import numpy as np, pandas as pd
>>> from churnguard.snapshots import Snapshot
>>> idx = pd.MultiIndex.from_arrays([["a", "b", "c", "d"], [pd.Timestamp("2025-01-01")] * 4],
...                                 names=["user_id", "cutoff"])
>>> snap = Snapshot(features=pd.DataFrame({"days_since_last_activity": [3.0, 10, 200, 300]},
...                                       index=idx),
...                 labels=pd.Series([0.0, 0, 1, 1], index=idx))
>>> RecencyModel().fit(snap).predict_proba(snap).round(3).tolist()
[0.0, 0.014, 0.795, 1.0]
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from churnguard.models.base import ChurnModel
from churnguard.models.calibration import IsotonicCalibrator
from churnguard.snapshots import Snapshot

__all__ = ["RecencyModel"]

# Rows without any activity before the cutoff (only possible with supplied labels) rank as the
# longest silent; the calibrator clips them to its last knot.
_NEVER = 1e9


class RecencyModel(ChurnModel):
    """Score = days since the last activity event; P(churn) = a monotone map of that score.

    The map is a centred isotonic regression (:class:`IsotonicCalibrator`) of the label on the
    score, so the baseline is a calibrated probability with a Brier score and an ECE, and its
    ranking is the rule's (the map is strictly increasing between its first and last knot). It is
    fitted on ``validation`` when given — the most recent labelled cutoff, the data the GBDT
    calibrates on too, so both face the same base-rate drift — and on ``train`` otherwise.

    ``feature``: the snapshot column holding the recency in days.
    """

    name: ClassVar[str] = "recency"

    def __init__(self, *, feature: str = "days_since_last_activity") -> None:
        self.feature = feature

    def score(self, snapshot: Snapshot) -> np.ndarray:
        """The raw rule: days since the last activity before each row's cutoff."""
        if self.feature not in snapshot.features.columns:
            raise ValueError(
                f"RecencyModel needs the feature {self.feature!r}, absent from the snapshot; "
                "build it with churnguard.snapshots.build_snapshot (the recency group)")
        values = pd.to_numeric(snapshot.features[self.feature], errors="coerce")
        return values.fillna(_NEVER).to_numpy(dtype=float)

    def fit(self, train: Snapshot, *, validation: Snapshot | None = None) -> RecencyModel:
        source = validation if validation is not None else train
        y = source.y()
        if len(y) == 0:
            raise ValueError("RecencyModel.fit: the snapshot has no rows")
        self.calibrator_ = IsotonicCalibrator().fit(self.score(source), y)
        self.fitted_on_ = "validation" if validation is not None else "train"
        return self

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        self._check_fitted("predict_proba")
        return np.clip(self.calibrator_.predict(self.score(snapshot)), 0.0, 1.0)
