"""``plan_inputs(learned=...)``: a plan applies an uplift learned before (``PlanInputs.learned``)
to the customers at its own cutoff instead of learning again (tests/intervene/test_plan_cli.py
checks, slow, that it gives the same effects as learning again on a real shop)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from churnguard.config import ProjectConfig
from churnguard.intervene import plan
from churnguard.intervene.plan import LearnedUplift

ACTIONS = [a.name for a in ProjectConfig().intervene.actions]


class _Learner:
    """Effects k x the feature for the k-th action (a fitted learner's predict)."""

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({a: (k + 1) * features["x"].to_numpy() for k, a in
                             enumerate(ACTIONS)})


class _Evaluation:
    """The chooser's out-of-fold recalibration, here halving every effect."""

    def calibrate(self, effects: pd.DataFrame) -> pd.DataFrame:
        return effects * 0.5


def test_a_kept_model_is_applied_to_the_new_customers_without_touching_the_campaigns() -> None:
    learned = LearnedUplift(learner=_Learner(), evaluation=_Evaluation(), source="kept model",
                            notes=["a note"])
    features = pd.DataFrame({"x": [0.1, 0.2, 0.0]}, index=[7, 8, 9])
    said: list[str] = []
    # No store: learning from the campaigns would need one.
    effects, source, evaluation, notes, back = plan._uplift(
        None, ProjectConfig(), features, np.array(["high", "low", "low"]), said.append, 0,
        dt.datetime(2026, 1, 1), learned)
    assert back is learned and evaluation is learned.evaluation
    assert source == "kept model" and notes == ["a note"] and said == []
    assert list(effects.columns) == ACTIONS
    np.testing.assert_allclose(effects[ACTIONS[1]].to_numpy(), [0.1, 0.2, 0.0])
