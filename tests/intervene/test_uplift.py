"""Uplift: training rows from the store, learners that find a known effect, honest evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnguard.config import ChurnDefinition
from churnguard.intervene.metrics import uplift_metrics
from churnguard.intervene.uplift import (
    LEARNERS,
    UpliftData,
    UpliftError,
    evaluate_learners,
    prior_uplift,
    uplift_dataset,
)
from churnguard.store import Store


def _experiment(n: int, seed: int) -> UpliftData:
    """Randomised: 'coupon' lifts P(y) by 0.3 when x1 > 0.5 and does nothing otherwise;
    'call' lowers it by 0.1 everywhere; x2 only moves the baseline."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"x1": rng.random(n), "x2": rng.random(n), "noise": rng.random(n)})
    action = rng.choice(np.array(["none", "coupon", "call"], dtype=object), n)
    base = 0.2 + 0.3 * x["x2"].to_numpy()
    effect = np.where(action == "coupon", 0.3 * (x["x1"].to_numpy() > 0.5), 0.0) \
        - np.where(action == "call", 0.1, 0.0)
    y = (rng.random(n) < base + effect).astype(float)
    return UpliftData(features=x, action=action, y=y, revenue=y * 10,
                      user_id=np.array([f"u{i}" for i in range(n)], dtype=object),
                      campaign_id=np.array(["c1"] * n, dtype=object), outcome_type="order",
                      window_days=90)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_each_learner_recovers_a_known_heterogeneous_effect(name: str) -> None:
    data = _experiment(9000, seed=1)
    model = LEARNERS[name](random_state=0).fit(data.features, data.action, data.y,
                                               ["coupon", "call"])
    grid = pd.DataFrame({"x1": [0.25, 0.75], "x2": [0.5, 0.5], "noise": [0.5, 0.5]})
    tau = model.predict(grid)
    assert list(tau.columns) == ["coupon", "call"]
    assert tau.loc[1, "coupon"] - tau.loc[0, "coupon"] > 0.12  # true difference 0.3
    assert tau["call"].mean() < 0  # true effect -0.1 everywhere


def test_out_of_fold_evaluation_ranks_learners_above_random_and_reports_the_contract() -> None:
    data = _experiment(6000, seed=2)
    result = evaluate_learners(data, actions=["coupon", "call"], folds=3)
    by_name = {row["name"]: row for row in result.learners}
    assert set(by_name) == {*LEARNERS, "random"}
    assert result.chosen in LEARNERS
    assert by_name[result.chosen]["per_action"]["coupon"]["qini"] \
        > by_name["random"]["per_action"]["coupon"]["qini"] + 0.02
    doc = result.to_json()
    assert {"name", "qini", "auuc", "uplift_at_30"} <= set(doc["learners"][0])
    assert doc["chosen"] == result.chosen
    # The curves start at the origin and end at the average effect of the action.
    curve = result.curves[result.chosen]["coupon"]
    assert curve["x"][0] == 0 and curve["x"][-1] == 1 and curve["qini"][0] == 0


def test_uplift_metrics_reward_the_true_ranking_and_reject_one_armed_data() -> None:
    rng = np.random.default_rng(3)
    treated = rng.random(5000) < 0.5
    truth = rng.random(5000)
    y = (rng.random(5000) < 0.1 + 0.4 * treated * truth).astype(float)
    best = uplift_metrics(truth, treated=treated, y=y)
    worst = uplift_metrics(-truth, treated=treated, y=y)
    assert best["qini"] > 0 > worst["qini"]
    assert best["uplift_at_10"] > best["ate"] > worst["uplift_at_10"]
    with pytest.raises(ValueError, match="both treated and control"):
        uplift_metrics(truth, treated=np.ones(5000, bool), y=y)


def _store() -> Store:
    store = Store.in_memory()
    store.con.execute("""
        INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) VALUES
          ('e1', 'a', '2025-01-05', 'order', 10, 'b'), ('e2', 'b', '2025-01-06', 'order', 20, 'b'),
          ('e3', 'c', '2025-01-07', 'order', 30, 'b'),
          -- outcomes after the campaign of 2025-02-01: a orders inside the 30-day window,
          -- b orders just after it, c never
          ('e4', 'a', '2025-02-20', 'order', 15, 'b'), ('e5', 'b', '2025-03-03 12:00', 'order', 5, 'b'),
          ('e6', 'c', '2025-06-01', 'view', 0, 'b')""")
    store.con.execute("""
        INSERT INTO campaigns (campaign_id, user_id, action, assigned_at, is_control, cost,
                               batch_id) VALUES
          ('old', 'a', 'coupon_10', '2025-02-01', false, 1, 'b'),
          ('old', 'b', 'none', '2025-02-01', true, 0, 'b'),
          ('old', 'c', 'mystery', '2025-02-01', false, 0, 'b'),
          ('no_control', 'a', 'coupon_10', '2025-02-01', false, 1, 'b'),
          ('too_recent', 'a', 'coupon_10', '2025-05-20', false, 1, 'b'),
          ('too_recent', 'b', 'none', '2025-05-20', true, 0, 'b')""")
    return store


def test_dataset_takes_observed_randomised_campaigns_with_exact_outcomes() -> None:
    data = uplift_dataset(_store(), actions=["coupon_10", "cs_outreach"], window_days=30,
                          definition=ChurnDefinition())
    # Only 'old' qualifies (control + window observed); 'mystery' is not in the catalogue.
    assert set(data.campaign_id) == {"old"}
    assert dict(zip(data.user_id, data.action, strict=True)) == {"a": "coupon_10", "b": "none"}
    assert dict(zip(data.user_id, data.y, strict=True)) == {"a": 1.0, "b": 0.0}
    assert dict(zip(data.user_id, data.revenue, strict=True)) == {"a": 15.0, "b": 0.0}
    assert data.skipped_actions == {"mystery": 1}
    # Features are point in time: the outcome order of 'a' (15 on 2025-02-20) is not counted
    # yet; each customer has the one order before the assignment of 2025-02-01.
    assert list(data.user_id) == ["a", "b"]
    assert data.features["orders_total"].tolist() == [1, 1]
    assert data.features["order_amount_sum"].tolist() == [10.0, 20.0]
    assert data.features["days_since_last_order"].tolist() == [27.0, 26.0]


def test_dataset_knows_which_action_a_plans_control_row_was_held_out_from() -> None:
    """A plan records each control row with the action it was held out from: those rows are a
    comparison for that action only (stratum), while a campaign whose control rows carry
    'none' randomised across every action (stratum 'none' for all its rows)."""
    store = _store()
    store.con.execute("""
        INSERT INTO campaigns (campaign_id, user_id, action, assigned_at, is_control, cost,
                               batch_id) VALUES
          ('plan', 'a', 'coupon_10', '2025-02-01', false, 1, 'b'),
          ('plan', 'b', 'coupon_10', '2025-02-01', true, 0, 'b'),
          ('plan', 'c', 'cs_outreach', '2025-02-01', true, 0, 'b')""")
    data = uplift_dataset(store, actions=["coupon_10", "cs_outreach"], window_days=30,
                          definition=ChurnDefinition())
    got = {(c, u): (a, s, x) for c, u, a, s, x in zip(
        data.campaign_id, data.user_id, data.action, data.stratum, data.contexts, strict=True)}
    assert got == {("old", "a"): ("coupon_10", "none", "old"),
                   ("old", "b"): ("none", "none", "old"),
                   ("plan", "a"): ("coupon_10", "coupon_10", "plan|coupon_10"),
                   ("plan", "b"): ("none", "coupon_10", "plan|coupon_10"),
                   ("plan", "c"): ("none", "cs_outreach", "plan|cs_outreach")}
    order = list(zip(data.campaign_id, data.user_id, strict=True))
    matched = {a: {order[i] for i in np.flatnonzero(data.matched(a))}
               for a in ("coupon_10", "cs_outreach")}
    assert matched["coupon_10"] == {("old", "a"), ("old", "b"), ("plan", "a"), ("plan", "b")}
    assert matched["cs_outreach"] == {("old", "b"), ("plan", "c")}


def test_dataset_errors_say_what_is_missing() -> None:
    with pytest.raises(UpliftError, match="no events"):
        uplift_dataset(Store.in_memory(), actions=["x"])
    store = Store.in_memory()
    store.con.execute("INSERT INTO events (event_id, user_id, ts, type, batch_id) "
                      "VALUES ('e', 'a', '2025-01-01', 'order', 'b')")
    with pytest.raises(UpliftError, match="holds no campaigns"):
        uplift_dataset(store, actions=["x"])
    with pytest.raises(UpliftError, match="fully observed 400-day"):
        uplift_dataset(_store(), actions=["coupon_10"], window_days=400)


def test_prior_effects_by_tier() -> None:
    frame = prior_uplift(np.array(["high", "low", "medium"]),
                         {"coupon_10": {"high": 0.03, "low": 0.01}}, ["coupon_10", "call"])
    assert frame["coupon_10"].tolist() == [0.03, 0.01, 0.0]
    assert frame["call"].tolist() == [0.0, 0.0, 0.0]


def test_out_of_fold_calibration_keeps_real_signal_and_falls_back_to_the_average_effect() -> None:
    data = _experiment(9000, seed=4)
    result = evaluate_learners(data, actions=["coupon", "call"], folds=3)
    coupon, call = result.calibration["coupon"], result.calibration["call"]
    # coupon: true effect 0.3 on half the customers (average 0.15), and the ranking is real;
    # call: -0.1 for everyone, so any variation in its estimates is noise.
    assert coupon["ate"] == pytest.approx(0.15, abs=0.04)
    assert coupon["slope"] > 0.5
    assert call["ate"] == pytest.approx(-0.1, abs=0.04)
    noisy = pd.DataFrame({"coupon": [coupon["centre"]] * 2,
                          "call": [call["centre"] - 0.2, call["centre"] + 0.2]})
    calibrated = result.calibrate(noisy)
    assert calibrated["coupon"].tolist() == pytest.approx([coupon["ate"]] * 2)
    spread = calibrated["call"].iloc[1] - calibrated["call"].iloc[0]
    assert spread == pytest.approx(0.4 * call["slope"])
    assert "calibration" in result.to_json()
