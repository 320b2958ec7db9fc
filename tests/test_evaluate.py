"""Metrics against hand-computed values and sklearn; the backtest's JSON, oracle, ranking
(its cutoffs: test_cutoffs.py)."""

from __future__ import annotations

import datetime as dt
import doctest
import json

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from churnguard import evaluate
from churnguard.config import ChurnDefinition
from churnguard.evaluate import (
    BacktestError,
    backtest,
    brier,
    ece,
    lift_at,
    pr_auc,
    recall_at,
    roc_auc,
)
from churnguard.models import checks
from churnguard.models.calibration import make_calibrator
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.snapshots import build_snapshot


def test_doctests():
    assert doctest.testmod(evaluate).failed == 0


# -- metrics ---------------------------------------------------------------------------------------
def test_metrics_by_hand():
    y = [1, 0, 1, 0, 0]
    p = [0.9, 0.8, 0.4, 0.3, 0.1]
    # pairs (churner, stayer): 0.9 beats all 3; 0.4 beats 0.3 and 0.1 -> 5 of 6
    assert roc_auc(y, p) == pytest.approx(5 / 6)
    # thresholds 0.9 (P=1, R=.5), 0.8 (P=.5), 0.4 (P=2/3, R=1): AP = .5*1 + .5*2/3
    assert pr_auc(y, p) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert brier(y, p) == pytest.approx((0.01 + 0.64 + 0.36 + 0.09 + 0.01) / 5)
    # one bin: |2/5 - 2.5/5|; five bins of one row each: mean |y - p|
    assert ece(y, p, n_bins=1) == pytest.approx(0.1)
    assert ece(y, p, n_bins=5) == pytest.approx((0.1 + 0.8 + 0.6 + 0.3 + 0.1) / 5)
    # top 10% of 5 rows is ceil(0.5) = 1 row, a churner: precision 1 / base rate 0.4
    assert lift_at(y, p, 0.1) == pytest.approx(2.5)
    assert recall_at(y, p, 0.1) == pytest.approx(0.5)
    assert lift_at(y, p, 0.4) == pytest.approx(0.5 / 0.4)


def test_ece_uses_equal_frequency_bins():
    # Ten rows crowded near 0.5: equal-width bins would put them all in one bin (ECE 0 here);
    # equal-frequency bins of one row each measure the per-row miscalibration.
    y = np.array([0, 1] * 5, dtype=float)
    p = np.linspace(0.45, 0.55, 10)
    assert ece(y, p, n_bins=10) == pytest.approx(np.mean(np.abs(y - p)))
    assert ece(y, p, n_bins=1) == pytest.approx(0.0, abs=1e-12)


def test_ranking_metrics_agree_with_sklearn_including_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.round(rng.uniform(size=500) * 0.5 + 0.5 * y * rng.uniform(size=500), 2)  # many ties
    assert roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert pr_auc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="differ in length: 2 and 3"):
        roc_auc([0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        brier([0, np.nan], [0.1, 0.2])
    assert np.isnan(roc_auc([1, 1], [0.1, 0.2]))


# -- the backtest --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def result(simulated_shop):
    fast = GBDTChurnModel(n_estimators=300, learning_rate=0.05, num_leaves=15,
                          early_stopping_rounds=30, n_jobs=1)
    messages: list[str] = []
    # Default training cutoffs: as many as this 400-day shop allows before its truth cutoff.
    res = backtest(simulated_shop.store, definition=simulated_shop.definition,
                   models=("recency", "btyd", fast), truth=simulated_shop.truth,
                   progress=messages.append)
    res.messages = messages
    return res


def test_backtest_json_has_the_design_shape(result, tmp_path):
    path = tmp_path / "backtest.json"
    text = result.to_json(path)
    document = json.loads(path.read_text())
    assert json.loads(text) == document
    for key in ("horizon_days", "test_cutoff", "train_cutoffs", "n_test", "base_rate", "models"):
        assert key in document
    assert document["horizon_days"] == 90
    assert document["test_cutoff"] == result.test_cutoff.strftime("%Y-%m-%d")
    assert document["train_cutoffs"] == [c.strftime("%Y-%m-%d") for c in result.train_cutoffs]
    assert document["n_test"] == result.n_test == len(result.predictions)
    assert document["base_rate"] == pytest.approx(result.predictions["churned"].mean())
    assert [m["name"] for m in document["models"]] == ["recency", "btyd", "gbdt", "oracle"]
    for m in document["models"]:
        assert set(m) == {"name", "roc_auc", "pr_auc", "brier", "ece", "lift_at_10",
                          "recall_at_10"}
        assert all(isinstance(m[k], float) for k in m if k != "name")
    assert set(document["oracle_auc_gap"]) == {"recency", "btyd", "gbdt"}
    assert any(message.startswith("gbdt: ROC-AUC") for message in result.messages)


def test_backtest_is_out_of_time_and_uses_the_truth_cutoff(result, simulated_shop):
    horizon = dt.timedelta(days=result.horizon_days)
    assert all(c + horizon <= result.test_cutoff
               for c in [*result.train_cutoffs, result.validation_cutoff])
    assert result.validation_cutoff == result.test_cutoff - horizon
    # Purged: no training label window reaches into the validation one.
    assert result.train_cutoffs
    assert all(c + horizon <= result.validation_cutoff for c in result.train_cutoffs)
    truth_cutoffs = {c.to_pydatetime().replace(tzinfo=None) for c in simulated_shop.truth.cutoff}
    assert result.test_cutoff in truth_cutoffs
    assert set(result.predictions.index.get_level_values(1)) == {result.test_cutoff}
    assert list(result.predictions.columns) == ["churned", "recency", "btyd", "gbdt", "oracle"]


def test_oracle_is_the_ceiling_and_gbdt_beats_recency(result):
    board = result.leaderboard()
    assert board["name"].iloc[0] == "oracle"
    gap = result.oracle_gap()
    assert all(g > 0 for g in gap.values())
    assert gap["recency"] == pytest.approx(result.metric("oracle").roc_auc
                                           - result.metric("recency").roc_auc)
    # a loose bound at this small size (the benchmark measures the real margin)
    assert result.metric("gbdt").roc_auc > result.metric("recency").roc_auc
    assert result.metric("gbdt").brier < result.metric("recency").brier


# Measured on this backtest (one training cutoff; 1,750 test rows, base rate 0.481):
#   ROC-AUC recency 0.8080, btyd 0.8088, gbdt 0.8301 (gaps 0.0221 and 0.0213)
#   gbdt ECE 0.0474, mean 0.478 | without its calibrator 0.0974, mean 0.387
#   recency ECE 0.0557, mean 0.507 | without its calibrator (a day count clipped to 1) near 1
# Bounds sit between the two; margins are about half the gaps. The same gbdt fitted on shuffled
# labels scores 0.5275, without its recency, frequency and browsing features and BTYD inputs
# 0.8074: both fail the margins.
BACKTEST_MARGINS = {"recency": 0.011, "btyd": 0.010}


@pytest.fixture(scope="module")
def test_snapshot(result, simulated_shop):
    return build_snapshot(simulated_shop.store, definition=simulated_shop.definition,
                          cutoffs=[result.test_cutoff])


def test_gbdt_beats_both_baselines_by_a_margin(result, test_snapshot):
    models = result.models
    auc = checks.check_beats_baselines(
        models["gbdt"], test_snapshot,
        {name: (models[name], margin) for name, margin in BACKTEST_MARGINS.items()})
    # The contract scores the very rows the backtest reports.
    assert auc == pytest.approx({m: result.metric(m).roc_auc for m in ("gbdt", "recency",
                                                                        "btyd")}, abs=1e-12)


def _calibration(result, test_snapshot, name):
    bounds = {"gbdt": (0.07, 0.045), "recency": (0.075, 0.06)}[name]
    model = result.models[name]
    return checks.check_calibration(model, test_snapshot, max_ece=bounds[0],
                                    max_mean_gap=bounds[1],
                                    uncalibrated=checks.uncalibrated_scores(model))


@pytest.mark.parametrize("name", ["gbdt", "recency"])
def test_the_backtested_probabilities_are_calibrated(result, test_snapshot, name):
    measured = _calibration(result, test_snapshot, name)
    assert measured.ece == pytest.approx(result.metric(name).ece, abs=1e-12)


@pytest.mark.parametrize("name", ["gbdt", "recency"])
def test_the_backtest_calibration_check_can_fail(result, test_snapshot, name, monkeypatch):
    monkeypatch.setattr(result.models[name], "calibrator_", make_calibrator("none"))
    with pytest.raises(AssertionError, match="ECE .* above the bound.*from the base rate"):
        _calibration(result, test_snapshot, name)


def test_truth_from_another_shop_is_refused(simulated_shop):
    wrong = simulated_shop.truth.assign(user_id="nobody-" + simulated_shop.truth["user_id"])
    with pytest.raises(BacktestError, match=r"truth has no p_churn for \d+ of \d+ test rows"):
        backtest(simulated_shop.store, definition=simulated_shop.definition, train_cutoffs=1,
                 models=("recency",), truth=wrong)


def test_unknown_model_name_is_refused(simulated_shop):
    with pytest.raises(BacktestError, match="unknown model 'transformer'; known: recency, btyd, "
                                            "gbdt"):
        backtest(simulated_shop.store, definition=simulated_shop.definition,
                 models=("transformer",))
