"""Effects a plan can trust: the recalibration's standard errors are right, and an action's
average effect measured on a few control rows is shrunk toward what the actions have in common
(empirical Bayes) instead of outbidding the well-measured ones (the winner's curse)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnguard.config import ProjectConfig
from churnguard.intervene.uplift import (
    UpliftData,
    UpliftError,
    _calibration,
    empirical_bayes,
    evaluate_learners,
)


def test_the_average_effects_standard_error_is_the_two_sample_one() -> None:
    rng = np.random.default_rng(3)
    n_t, n_c = 3000, 1000
    t = np.r_[np.ones(n_t, bool), np.zeros(n_c, bool)]
    y = (rng.random(n_t + n_c) < np.where(t, 0.35, 0.30)).astype(float)
    c = _calibration(np.zeros(len(y)), t, np.ones(len(y), bool), y)
    p1, p0 = y[t].mean(), y[~t].mean()
    assert c["ate"] == pytest.approx(p1 - p0)
    assert c["ate_se"] == pytest.approx(np.sqrt(p1 * (1 - p1) / n_t + p0 * (1 - p0) / n_c),
                                        rel=0.02)
    # Estimates that never vary tell nothing about a slope: its error is unbounded.
    assert c["slope_se"] == float("inf")


def test_empirical_bayes_lowers_the_error_of_small_noisy_effects() -> None:
    """Five actions with true effects of +0.008 to +0.05 (as in the simulated shop), each
    measured with the noise of its own control group: the posterior means are closer to the
    truth than the raw estimates, over many repetitions, and most of all for the noisiest."""
    rng = np.random.default_rng(0)
    true = np.array([0.008, 0.013, 0.027, 0.05, 0.01])
    se = np.array([0.06, 0.03, 0.04, 0.01, 0.05])
    raw = true + rng.normal(0.0, se, (2000, 5))
    post = np.array([empirical_bayes(r, se)[0] for r in raw])
    raw_err, post_err = ((raw - true) ** 2).mean(axis=0), ((post - true) ** 2).mean(axis=0)
    assert post_err.sum() < 0.5 * raw_err.sum()
    assert post_err[0] < 0.3 * raw_err[0]  # the noisiest moves most


def test_empirical_bayes_leaves_precise_different_effects_apart() -> None:
    mean, sd, mu, tau = empirical_bayes([0.10, 0.01, 0.05], [0.002, 0.002, 0.002])
    assert mean == pytest.approx([0.10, 0.01, 0.05], abs=0.001)
    assert tau > 0.03 and (sd < 0.002).all()
    # Fewer than two measured effects: nothing to pool, the estimates stand.
    mean, sd, _, _ = empirical_bayes([0.2, 0.0], [0.05, float("inf")])
    assert mean.tolist() == [0.2, 0.0]


def _plan_campaign(seed: int) -> UpliftData:
    """A plan's campaign: 'coupon' and 'call' each given to 2,000 customers with 2,000 held out
    (true effect +0.03 both); 'sms' given to 400 with only 20 held out, and those 20 happened
    to order rarely (2 of 20 against a true 30%): measured alone, sms looks like +0.23."""
    rng = np.random.default_rng(seed)
    parts = []
    for action, n_t, n_c in (("coupon", 2000, 2000), ("call", 2000, 2000), ("sms", 400, 20)):
        y_t = (rng.random(n_t) < 0.33).astype(float)
        y_c = (rng.random(n_c) < 0.30).astype(float)
        if action == "sms":
            y_c = np.r_[np.ones(2), np.zeros(n_c - 2)]
        parts.append(pd.DataFrame({"action": [action] * n_t + ["none"] * n_c,
                                   "stratum": action, "y": np.r_[y_t, y_c]}))
    rows = pd.concat(parts, ignore_index=True)
    n = len(rows)
    return UpliftData(features=pd.DataFrame({"x1": rng.random(n)}),
                      action=rows["action"].to_numpy(dtype=object), y=rows["y"].to_numpy(),
                      revenue=rows["y"].to_numpy(),
                      user_id=np.array([f"u{i}" for i in range(n)], dtype=object),
                      campaign_id=np.full(n, "plan-01", dtype=object), outcome_type="order",
                      window_days=90, assigned_at=np.full(n, np.datetime64("2025-03-01", "us")),
                      stratum=rows["stratum"].to_numpy(dtype=object))


def test_an_action_measured_on_a_handful_of_controls_does_not_outbid_the_others() -> None:
    data = _plan_campaign(1)
    acts = ["coupon", "call", "sms"]
    raw = evaluate_learners(data, actions=acts, folds=3, replicates=20, shrinkage="none")
    shrunk = evaluate_learners(data, actions=acts, folds=3, replicates=20)
    assert raw.calibration["sms"]["ate"] > 0.15  # the lucky control group, taken at its word
    assert shrunk.calibration["sms"]["ate_raw"] == pytest.approx(raw.calibration["sms"]["ate"])
    assert shrunk.calibration["sms"]["ate"] < 0.10  # pulled toward the others' +0.03
    assert shrunk.calibration["sms"]["ate_sd"] < raw.calibration["sms"]["ate_se"]
    for a in ("coupon", "call"):  # the well-measured ones hardly move
        assert shrunk.calibration[a]["ate"] == pytest.approx(raw.calibration[a]["ate"],
                                                             abs=0.01)
    # What a plan sees: every customer's sms effect is now below 0.10, not above 0.15.
    effects = shrunk.calibrate(pd.DataFrame({a: [shrunk.calibration[a]["centre"]] * 3
                                             for a in acts}))
    assert (effects["sms"] < 0.10).all()
    assert shrunk.to_json()["calibration"]["sms"]["ate_raw"] > 0.15


def test_an_unknown_shrinkage_is_refused_with_the_choices() -> None:
    with pytest.raises(UpliftError, match="empirical_bayes, none"):
        evaluate_learners(_plan_campaign(2), actions=["coupon"], shrinkage="james")
    with pytest.raises(ValueError, match="empirical_bayes"):
        ProjectConfig.model_validate({"uplift": {"shrinkage": "james"}})
    assert ProjectConfig().uplift.shrinkage == "empirical_bayes"


def test_the_outcome_predicted_from_the_features_narrows_the_average_effects_interval() -> None:
    """A campaign whose outcome the features largely predict (as a customer's history predicts
    whether they order again): the recalibration adjusts for the cross-fitted prediction, so
    its standard error is well below the two-sample one and the effect is still found."""
    rng = np.random.default_rng(5)
    n = 6000
    x1 = rng.random(n)
    t = rng.random(n) < 0.5
    y = (rng.random(n) < 0.05 + 0.85 * x1 + 0.04 * t).astype(float)
    data = UpliftData(features=pd.DataFrame({"x1": x1, "x2": rng.random(n)}),
                      action=np.where(t, "coupon", "none").astype(object), y=y, revenue=y,
                      user_id=np.array([f"u{i}" for i in range(n)], dtype=object),
                      campaign_id=np.full(n, "c1", dtype=object), outcome_type="order",
                      window_days=90,
                      assigned_at=np.full(n, np.datetime64("2025-03-01", "us")))
    cal = evaluate_learners(data, folds=3, replicates=20, shrinkage="none").calibration["coupon"]
    p1, p0 = y[t].mean(), y[~t].mean()
    two_sample = np.sqrt(p1 * (1 - p1) / t.sum() + p0 * (1 - p0) / (~t).sum())
    # sqrt(1 - R^2) = 0.87 for the true baseline (R^2 0.24: a 0/1 outcome stays noisy)
    assert cal["ate_se"] < 0.92 * two_sample
    assert abs(cal["ate"] - 0.04) < 3 * cal["ate_se"]
