"""What the HTML report is drawn from: one frozen bundle the caller fills from the backtest and the
scores, so that rendering reads nothing from the store and can be tested on synthetic numbers."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["ReportData", "NAIVE_MODEL", "ORACLE_MODEL"]

# The rule every model must beat, and the simulated truth every model is measured against.
NAIVE_MODEL = "recency"
ORACLE_MODEL = "oracle"


@dataclass(frozen=True, kw_only=True)
class ReportData:
    """Everything the report shows.

    ``backtest`` is the ``churnguard backtest --json`` document; ``test_predictions`` maps a model
    name to ``(y_true, p_churn)`` on the test cutoff (the oracle's too, on simulated data);
    ``scores`` is the ``churnguard score`` table; ``segments`` holds one row per test-cutoff
    customer with a boolean ``churned`` column and any categorical segment columns; ``preview``
    holds the rows of ``churnguard churn preview``.
    """

    title: str
    generated_at: datetime.datetime
    definition: dict
    backtest: dict
    test_predictions: dict[str, tuple[np.ndarray, np.ndarray]]
    chosen_model: str
    scores: pd.DataFrame
    feature_importance: pd.Series
    feature_descriptions: dict[str, str]
    segments: pd.DataFrame
    preview: list[dict]
    skipped_groups: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [c for c in SCORE_COLUMNS if c not in self.scores.columns]
        if missing:
            raise ValueError(
                f"ReportData.scores lacks the column(s) {missing} (it has "
                f"{list(self.scores.columns)}); pass the table written by `churnguard score`")
        if len(self.segments) and "churned" not in self.segments.columns:
            raise ValueError(
                "ReportData.segments lacks the boolean column 'churned' (it has "
                f"{list(self.segments.columns)}); pass one row per test-cutoff customer with "
                "their label, or an empty DataFrame to leave the segment section out")


# The columns of the score table the report cannot do without; reasons are shown when present.
SCORE_COLUMNS = ("user_id", "p_churn", "risk_tier")
