"""A synthetic ReportData (2,000 test customers, four models, the oracle) built with numpy.

A module of its own, not conftest.py, so that tests can import it by a name no other folder uses."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from churnguard.report import ReportData

N = 2_000
BOLD_REASON = "Basket value fell <b>sharply</b> & stayed low"
CHINESE_REASON = "最近 90 天没有下单"
CHINESE_REGION = "华东"

# Hand-written so the tests can assert the exact strings shown on the page.
BACKTEST = {
    "horizon_days": 90, "test_cutoff": "2025-01-01",
    "train_cutoffs": ["2024-07-05", "2024-08-04", "2024-09-03"],
    "n_test": N, "base_rate": 0.3125,
    "models": [
        {"name": "recency", "roc_auc": 0.7012, "pr_auc": 0.5123, "brier": 0.1901, "ece": 0.0312,
         "lift_at_10": 1.84, "recall_at_10": 0.1876},
        {"name": "btyd", "roc_auc": 0.7433, "pr_auc": 0.5544, "brier": 0.1822, "ece": 0.0455,
         "lift_at_10": 2.01, "recall_at_10": 0.2043},
        {"name": "gbdt", "roc_auc": 0.8123, "pr_auc": 0.6456, "brier": 0.1577, "ece": 0.0187,
         "lift_at_10": 2.47, "recall_at_10": 0.2512},
        {"name": "oracle", "roc_auc": 0.8634, "pr_auc": 0.7001, "brier": 0.1402, "ece": 0.0091,
         "lift_at_10": 2.88, "recall_at_10": 0.2911},
    ],
}


def synthetic_report_data(seed: int = 7, **overrides) -> ReportData:
    rng = np.random.default_rng(seed)
    truth = rng.beta(1.2, 2.6, size=N)
    y = (rng.random(N) < truth).astype(int)

    def noisy(scale: float) -> np.ndarray:
        logit = np.log(truth / (1 - truth)) + rng.normal(0, scale, size=N)
        return 1 / (1 + np.exp(-logit))

    predictions = {"recency": (y, noisy(1.6)), "btyd": (y, noisy(1.2)), "gbdt": (y, noisy(0.6)),
                   "oracle": (y, truth)}
    p = predictions["gbdt"][1]
    tiers = np.where(p >= 0.6, "high", np.where(p >= 0.3, "medium", "low"))
    reasons = np.array(["No order for 120 days", "Two late deliveries", BOLD_REASON,
                        CHINESE_REASON, "Opened a support ticket that is still open"])
    scores = pd.DataFrame({
        "user_id": [f"u{i:05d}" for i in range(N)], "p_churn": p, "risk_tier": tiers,
        "reason_1": reasons[rng.integers(0, 5, N)], "reason_2": reasons[rng.integers(0, 5, N)],
        "reason_3": reasons[rng.integers(0, 5, N)], "model_version": "gbdt-2025-01-01"})
    # The riskiest customer carries both tricky reasons, so they are in the top-50 table.
    top = int(np.argmax(p))
    scores.loc[top, ["reason_1", "reason_2"]] = [BOLD_REASON, CHINESE_REASON]
    segments = pd.DataFrame({
        "churned": y.astype(bool),
        "region": rng.choice(["north", "south", CHINESE_REGION, "west"], N),
        "membership_level": rng.choice(["basic", "silver", "gold"], N, p=[0.6, 0.3, 0.1]),
        "signup_cohort": rng.choice([f"2024-{m:02d}" for m in range(1, 13)], N)})
    features = [f"feature_{i:02d}" for i in range(20)]
    importance = pd.Series(np.sort(rng.gamma(2.0, 50.0, 20))[::-1], index=features)
    descriptions = {f: f"Description of {f}" for f in features}
    descriptions["feature_00"] = "Days since the last order (<most> important)"
    preview = [
        {"cutoff": "2024-07-05", "population": 1800, "churned": 540, "churn_rate": 0.3,
         "observable": "full"},
        {"cutoff": "2025-01-01", "population": 2000, "churned": 625, "churn_rate": 0.3125,
         "observable": "full"},
        {"cutoff": "2025-03-01", "population": 2100, "churned": 300, "churn_rate": 0.142857,
         "observable": "partial"},
        {"cutoff": "2025-05-01", "population": 2150, "churned": None, "churn_rate": None,
         "observable": "none"},
    ]
    data = ReportData(
        title="Churn report — demo-project", generated_at=dt.datetime(2025, 5, 2, 9, 30,
                                                                      tzinfo=dt.UTC),
        definition={"activity": ["order"], "lookback_days": 365, "horizon_days": 90},
        backtest=BACKTEST, test_predictions=predictions, chosen_model="gbdt", scores=scores,
        feature_importance=importance, feature_descriptions=descriptions, segments=segments,
        preview=preview, skipped_groups={"text": "no review or ticket text in the events"},
        notes=["Simulated data: the oracle knows each customer's true churn probability."])
    return dataclasses.replace(data, **overrides) if overrides else data
