"""A store holding intervention plans and measurements, written row by row in the shapes that
``churnguard plan`` (intervene/plan.py ``_summary``) and ``churnguard measure``
(``CampaignMeasurement.to_dict``) store, and a light ReportData to render them on.

The plan summary is hand-written so that tests can assert exact figures; the Qini curves come from
``uplift_metrics`` on a seeded experiment and the measurement from the real dataclasses, so their
shapes follow the code that writes them."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd

from churnguard.intervene.measure import (
    ALL,
    CampaignMeasurement,
    GroupMeasurement,
    newcombe_interval,
)
from churnguard.intervene.metrics import uplift_metrics
from churnguard.report import ReportData
from churnguard.store import Store

CAMPAIGN = "cg-20250301-5f2a9c1e"
OLD_CAMPAIGN = "cg-20250101-0b7d3e44"
HOSTILE_MESSAGE = '<script>alert("hi")</script> Save 10% & <b>more</b>'
HOSTILE_USER = "u<img src=x>"
PRIOR_SOURCE = ("prior effects by risk tier from churnguard.toml, because no campaign history "
                "can be used: the store holds no randomised campaign with a control group")
ACTIONS = ("coupon_10", "cs_outreach", "recommendation")


def _curves(seed: int, strength: float) -> dict[str, dict[str, list[float]]]:
    """Qini curves per action of one learner on a seeded experiment (effect grows with score)."""
    rng = np.random.default_rng(seed)
    out = {}
    for a in ACTIONS:
        score = rng.random(2_000)
        treated = rng.random(2_000) < 0.5
        y = (rng.random(2_000) < 0.2 + strength * treated * score).astype(float)
        m = uplift_metrics(score + rng.normal(0, 0.3, 2_000), treated=treated, y=y)
        out[a] = {"x": m["curve_x"], "qini": m["curve_qini"]}
    return out


def _learner(name: str, qini: float, auuc: float, at10: float, at20: float, at30: float) -> dict:
    metrics = {"qini": qini, "auuc": auuc, "uplift_at_10": at10, "uplift_at_20": at20,
               "uplift_at_30": at30}
    return {"name": name, **metrics,
            "per_action": {a: {**metrics, "ate": 0.02} for a in ACTIONS}}


def plan_summary(*, prior: bool = False) -> dict:
    """A ``plans.summary`` document: with a learned uplift model, or prior effects (no history)."""
    evaluation = None if prior else {
        "n_rows": 8412, "n_campaigns": 3, "folds": 5, "outcome_type": "order",
        "window_days": 90, "chosen": "x_learner",
        "learners": [
            _learner("t_learner", 0.01234, 0.0311, 0.0612, 0.0455, 0.0398),
            _learner("x_learner", 0.01877, 0.0342, 0.0731, 0.0520, 0.0433),
            _learner("s_learner", 0.00911, 0.0287, 0.0544, 0.0410, 0.0371),
            _learner("random", 0.00012, 0.0201, 0.0199, 0.0203, 0.0200),
        ]}
    return {
        "as_of": "2025-03-01T00:00:00",
        "population": 12000,
        "treated": 1482,
        "control": 165,
        "budget": 2500.0,
        "expected_cost": 2063.9,
        "expected_saves": 35.53,
        "expected_incremental_margin": 4171.65,
        "gross_margin": 0.4,
        "control_share": 0.1,
        "per_action": {
            "coupon_10": {"customers": 412, "control": 46, "expected_saves": 18.73,
                          "expected_cost": 1536.4, "expected_margin": 2210.55},
            "cs_outreach": {"customers": 120, "control": 13, "expected_saves": 9.6,
                            "expected_cost": 480.0, "expected_margin": 1650.2},
            "recommendation": {"customers": 950, "control": 106, "expected_saves": 7.2,
                               "expected_cost": 47.5, "expected_margin": 310.9},
        },
        "per_tier": {"medium": 600, "high": 700, "low": 182},
        "uplift_source": (PRIOR_SOURCE if prior else
                          "x_learner fitted on 8,412 rows of 3 randomised campaigns (chosen by "
                          "out-of-fold Qini)"),
        "value_model": {
            "chosen": "btyd", "test_cutoff": "2025-01-01", "n_test": 9800, "mean_revenue": 84.12,
            "models": {"btyd": {"mae": 41.37, "rmse": 88.21, "total_ratio": 1.043,
                                "spearman": 0.612},
                       "gbdt": {"mae": 43.05, "rmse": 85.77, "total_ratio": 0.912,
                                "spearman": 0.634}}},
        "model_version": "gbdt-20250301-a1b2c3",
        "uplift_evaluation": evaluation,
        "uplift_curves": None if prior else {"x_learner": _curves(1, 0.3),
                                             "t_learner": _curves(2, 0.15)},
    }


def plan_rows(campaign_id: str, n_treated: int = 30, n_control: int = 5) -> pd.DataFrame:
    """Rows of ``plan_rows``: treated customers u000.. with margin falling with the index, so u000
    is the top one (and carries the hostile message), then control customers with a higher
    margin than anyone (they must still never be shown)."""
    treated = pd.DataFrame({
        "user_id": [f"u{i:03d}" for i in range(n_treated)],
        "action": [ACTIONS[i % 3] for i in range(n_treated)],
        "is_control": False,
        "risk_tier": [("high", "medium", "low")[i % 3] for i in range(n_treated)],
        "p_churn": np.linspace(0.91, 0.2, n_treated),
        "uplift": np.linspace(0.05, 0.005, n_treated),
        "value": np.linspace(640.0, 90.0, n_treated),
        "expected_cost": np.linspace(4.0, 0.05, n_treated),
        "expected_margin": np.linspace(120.0, 1.0, n_treated),
        "channel": "email",
        "items": "[]",
        "message_en": [f"Hello {i}, we miss you" for i in range(n_treated)],
        "message_zh": [f"你好 {i}" for i in range(n_treated)],
    })
    treated.loc[0, "message_en"] = HOSTILE_MESSAGE
    treated.loc[1, "user_id"] = HOSTILE_USER
    control = pd.DataFrame({
        "user_id": [f"c{i:03d}" for i in range(n_control)], "action": "coupon_10",
        "is_control": True, "risk_tier": "high", "p_churn": 0.95, "uplift": 0.06,
        "value": 900.0, "expected_cost": 0.0, "expected_margin": 999.0, "channel": None,
        "items": "[]", "message_en": None, "message_zh": None})
    return pd.concat([treated, control], ignore_index=True).assign(campaign_id=campaign_id)


def group(action: str, tier: str, n_t: int, n_c: int, x_t: int, x_c: int, net_t: float,
          net_c: float, net_ci: tuple[float, float] | None, note: str | None = None
          ) -> GroupMeasurement:
    """One treatment-vs-control group; retention CI by Newcombe's interval as measure.py does."""
    d = x_t / n_t - x_c / n_c
    ci = None
    if net_ci is not None:
        lo, hi = newcombe_interval(np.array([x_t]), np.array([n_t]), np.array([x_c]),
                                   np.array([n_c]))
        ci = (float(lo[0]), float(hi[0]))
    d_net = net_t - net_c
    return GroupMeasurement(
        action=action, tier=tier, n_treated=n_t, n_control=n_c, retained_treated=x_t,
        retained_control=x_c, retention_treated=x_t / n_t, retention_control=x_c / n_c,
        revenue_per_treated=net_t + 2.0, revenue_per_control=net_c, cost_per_treated=2.0,
        incremental_retention=d, incremental_retention_ci=ci,
        incremental_net_revenue=d_net, incremental_net_revenue_ci=net_ci,
        incremental_retained=d * n_t,
        incremental_retained_ci=(ci[0] * n_t, ci[1] * n_t) if ci else None,
        incremental_net_revenue_total=d_net * n_t,
        incremental_net_revenue_total_ci=((net_ci[0] * n_t, net_ci[1] * n_t) if net_ci
                                          else None),
        note=note)


def measurement(campaign_id: str, measured_at: dt.datetime) -> CampaignMeasurement:
    groups = (
        group("coupon_10", "high", 250, 28, 131, 9, 21.5, 12.0, None,
              "too few customers for a confidence interval (treated 250, control 28; at least "
              "30 each)"),
        group("coupon_10", ALL, 412, 46, 210, 17, 19.8, 12.4, (1.2, 13.6)),
        group("recommendation", ALL, 950, 106, 380, 41, 15.1, 14.8, (-2.9, 3.5)),
        group(ALL, ALL, 1362, 152, 590, 58, 16.6, 13.9, (0.4, 5.0)),
    )
    return CampaignMeasurement(
        campaign_id=campaign_id, measured_at=measured_at, outcome_type="order",
        window_days=90, confidence=0.95, assigned_from=dt.datetime(2025, 3, 1),
        assigned_to=dt.datetime(2025, 3, 1), window_end=dt.datetime(2025, 5, 30),
        observed_until=dt.datetime(2025, 6, 2, 13, 5), tiers_from="plan", control="matched",
        n_treated=1362, n_control=152, groups=groups,
        notes=("12 customers neither treated nor in the control group (action 'none') are left "
               "out",))


def insert_plan(store: Store, campaign_id: str, created_at: dt.datetime, summary: dict,
                rows: pd.DataFrame) -> None:
    config = {"outcome_type": "order", "window_days": 90, "gross_margin": 0.4,
              "control_share": 0.1}
    store.con.execute("INSERT INTO plans VALUES (?, ?, ?, ?, 'planned', ?, ?)",
                      [campaign_id, created_at, dt.datetime(2025, 3, 1), summary["budget"],
                       json.dumps(config), json.dumps(summary)])
    store.con.register("__rows", rows)
    try:
        store.con.execute("INSERT INTO plan_rows BY NAME SELECT * FROM __rows")
    finally:
        store.con.unregister("__rows")


def insert_measurement(store: Store, m: CampaignMeasurement) -> None:
    store.con.execute("INSERT INTO measurements VALUES (?, ?, ?)",
                      [m.campaign_id, m.measured_at, m.to_json()])


def intervention_store(*, prior: bool = False) -> Store:
    """Two plans (the newer one is the latest) and three measurements of two campaigns (the
    newer of CAMPAIGN's two is the one to show)."""
    store = Store.in_memory()
    old = plan_summary(prior=True)
    insert_plan(store, OLD_CAMPAIGN, dt.datetime(2025, 1, 1, 8), {**old, "budget": 999.0},
                plan_rows(OLD_CAMPAIGN, n_treated=3, n_control=1))
    insert_plan(store, CAMPAIGN, dt.datetime(2025, 3, 1, 9, 30), plan_summary(prior=prior),
                plan_rows(CAMPAIGN))
    stale = measurement(CAMPAIGN, dt.datetime(2025, 6, 1, 8))
    stale = CampaignMeasurement.from_dict({**stale.to_dict(), "n_treated": 1})
    insert_measurement(store, stale)
    insert_measurement(store, measurement(CAMPAIGN, dt.datetime(2025, 6, 2, 14)))
    insert_measurement(store, measurement(OLD_CAMPAIGN, dt.datetime(2025, 4, 2, 10)))
    return store


def light_report_data(**overrides) -> ReportData:
    """A small ReportData (three scored customers, no test predictions) that renders fast, for
    tests about the intervention section only."""
    scores = pd.DataFrame({"user_id": ["a", "b", "c"], "p_churn": [0.8, 0.4, 0.1],
                           "risk_tier": ["high", "medium", "low"]})
    base = {
        "title": "Churn report — interventions", "generated_at": dt.datetime(2025, 6, 3, 9),
        "definition": {"activity": ["order"], "lookback_days": 365, "horizon_days": 90},
        "backtest": {"models": []}, "test_predictions": {}, "chosen_model": "gbdt",
        "scores": scores, "feature_importance": pd.Series(dtype=float),
        "feature_descriptions": {}, "segments": pd.DataFrame(), "preview": [],
    }
    return ReportData(**{**base, **overrides})
