"""What the HTML report is drawn from: one frozen bundle the caller fills from the backtest, the
scores and the intervention tables, so that rendering reads nothing from the store and can be
tested on synthetic numbers."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["MISSING", "NAIVE_MODEL", "ORACLE_MODEL", "ReportData", "missing_line"]

# The rule every model must beat, and the simulated truth every model is measured against.
NAIVE_MODEL = "recency"
ORACLE_MODEL = "oracle"

# What a report can be made without, as (what is missing, the command that makes it, what the
# page shows from it): the page says so in place of the sections that need it, and renders the
# rest (``ReportData.missing``).
MISSING: dict[str, tuple[str, str, str]] = {
    "backtest": ("No backtest yet", "churnguard backtest",
                 "the model leaderboard, the curves, calibration, gains and churn by segment "
                 "come from it"),
    "model": ("No model trained yet", "churnguard train",
              "the chosen model and its feature importance come from it"),
    "scores": ("No scores yet", "churnguard score",
               "the score distribution and the customers most at risk come from it"),
}


def missing_line(key: str) -> str:
    """One line of plain text on something the report lacks.

    >>> missing_line("backtest").split(";")[0]
    'No backtest yet: run churnguard backtest'
    """
    what, command, why = MISSING[key]
    return f"{what}: run {command}; {why}."


@dataclass(frozen=True, kw_only=True)
class ReportData:
    """Everything the report shows.

    ``backtest`` is the ``churnguard backtest --json`` document (an optional ``model_details``
    key, as ``churnguard.reporting.save_backtest`` stores it, adds each model's time and the
    sequence models' size under the leaderboard); ``test_predictions`` maps a model
    name to ``(y_true, p_churn)`` on the test cutoff (the oracle's too, on simulated data);
    ``scores`` is the ``churnguard score`` table; ``segments`` holds one row per test-cutoff
    customer with a boolean ``churned`` column and any categorical segment columns; ``preview``
    holds the rows of ``churnguard churn preview``.

    The intervention part is optional (empty: the page says how to plan and measure a campaign).
    ``plan`` is the newest row of the ``plans`` table as a dict (``campaign_id``, ``created_at``,
    ``as_of``, ``budget``, ``status``) whose ``summary`` is the parsed JSON that ``churnguard plan``
    stores; ``plan_sample`` holds rows of ``plan_rows`` for that plan (the page shows the 20
    contacted customers with the highest expected margin); ``measurements`` holds the newest
    ``CampaignMeasurement.to_dict()`` document of each measured campaign, newest first.

    ``missing`` names what has not been computed yet (keys of :data:`MISSING`: ``backtest``,
    ``model``, ``scores``); the fields it feeds are then empty (``backtest={}``,
    ``test_predictions={}``, ``chosen_model=""``, an empty ``scores`` frame) and the page says
    which command makes them where their sections would be.
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
    plan: dict = field(default_factory=dict)
    plan_sample: pd.DataFrame = field(default_factory=pd.DataFrame)
    measurements: list[dict] = field(default_factory=list)
    # The newest operating cycles: cycle_id, trigger, status, started_at, finished_at and
    # steps (step, status, decision, error), newest first.
    cycles: list[dict] = field(default_factory=list)
    # The gate's decisions, newest first, as GateDecision.to_dict() gives them: decided_at,
    # outcome, trigger, champion_version, champion_after, cohort_cutoff, n_customers, delta_auc,
    # delta_auc_lower, champion_ece, challenger_ece, reason...
    decisions: list[dict] = field(default_factory=list)
    # The voice report (``churnguard voice --json``: surge alerts and topics); empty: no section.
    voice: dict = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [m for m in self.missing if m not in MISSING]
        if unknown:
            raise ValueError(f"ReportData.missing names {unknown}; it may name "
                             f"{', '.join(MISSING)}")
        missing = [c for c in SCORE_COLUMNS if c not in self.scores.columns]
        if missing and not ("scores" in self.missing and self.scores.empty):
            raise ValueError(
                f"ReportData.scores lacks the column(s) {missing} (it has "
                f"{list(self.scores.columns)}); pass the table written by `churnguard score`")
        if len(self.segments) and "churned" not in self.segments.columns:
            raise ValueError(
                "ReportData.segments lacks the boolean column 'churned' (it has "
                f"{list(self.segments.columns)}); pass one row per test-cutoff customer with "
                "their label, or an empty DataFrame to leave the segment section out")
        missing = [c for c in PLAN_SAMPLE_COLUMNS if c not in self.plan_sample.columns]
        if len(self.plan_sample) and missing:
            raise ValueError(
                f"ReportData.plan_sample lacks the column(s) {missing} (it has "
                f"{list(self.plan_sample.columns)}); pass rows of the plan_rows table, or an "
                "empty DataFrame to leave the planned customers out")


# The columns of the score table the report cannot do without; reasons are shown when present.
SCORE_COLUMNS = ("user_id", "p_churn", "risk_tier")
# The columns of plan_rows the planned-customer sample cannot do without.
PLAN_SAMPLE_COLUMNS = ("user_id", "action", "expected_margin")
