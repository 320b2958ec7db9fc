"""BTYD as a churn model, the recency baseline and the calibrators."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from churnguard.models import baselines, calibration
from churnguard.models.baselines import RecencyModel
from churnguard.models.btyd import BetaGeoModel, rfm_from_transactions
from churnguard.models.btyd_churn import BTYD_FEATURES, BTYDChurnModel, rfm_per_row
from churnguard.models.calibration import IsotonicCalibrator, PlattCalibrator, make_calibrator


@pytest.mark.parametrize("module", [baselines, calibration])
def test_doctests(module):
    assert doctest.testmod(module).failed == 0


def test_rfm_per_row_matches_rfm_from_transactions(snapshots):
    train = snapshots.train
    rfm = rfm_per_row(train)
    assert rfm.index.equals(train.index)
    for cutoff in train.index.get_level_values(1).unique():
        orders = train.orders[train.orders["cutoff"] == cutoff]
        expected = rfm_from_transactions(orders["user_id"], orders["ts"], cutoff)
        got = rfm.xs(cutoff, level="cutoff").reindex(expected.index)
        pd.testing.assert_frame_equal(got, expected, check_names=False)


def test_churn_probability_is_btyd_probability_of_no_purchase(snapshots):
    model = BTYDChurnModel().fit(snapshots.train)
    rfm = rfm_per_row(snapshots.test)
    reference = BetaGeoModel(model="mbg").fit(rfm_per_row(snapshots.train))
    expected = reference.probability_no_purchase(90 / 7, rfm["frequency"], rfm["recency"],
                                                 rfm["T"])
    np.testing.assert_allclose(model.predict_proba(snapshots.test), expected, rtol=1e-12)
    out = model.transform(snapshots.test)
    assert list(out.columns) == list(BTYD_FEATURES)
    # MBG/NBD: one-time buyers are not certainly alive, and fade with time since the purchase.
    one_time = (rfm["frequency"] == 0).to_numpy()
    assert one_time.any() and (out["btyd_p_alive"].to_numpy()[one_time] < 1).all()
    assert np.corrcoef(rfm["T"][one_time], out["btyd_p_alive"][one_time])[0, 1] < 0


def test_btyd_refuses_a_snapshot_with_another_horizon(snapshots):
    from churnguard.snapshots import Snapshot

    model = BTYDChurnModel().fit(snapshots.train)
    test = snapshots.test
    other = Snapshot(features=test.features, orders=test.orders, horizon_days=30)
    with pytest.raises(ValueError, match="fitted for a 90-day horizon, the snapshot has 30"):
        model.predict_proba(other)


def test_recency_probability_is_monotone_in_days_since_last_activity(snapshots):
    model = RecencyModel().fit(snapshots.train, validation=snapshots.validation)
    assert model.fitted_on_ == "validation"
    days = model.score(snapshots.test)
    p = model.predict_proba(snapshots.test)
    order = np.argsort(days, kind="stable")
    assert (np.diff(p[order]) >= 0).all()


def test_isotonic_calibrator_is_strictly_increasing_between_its_knots():
    rng = np.random.default_rng(0)
    s = rng.uniform(size=2000)
    y = (rng.uniform(size=2000) < s).astype(float)
    cal = IsotonicCalibrator().fit(s, y)
    grid = np.linspace(cal.knots_x_[0], cal.knots_x_[-1], 500)
    assert (np.diff(cal.predict(grid)) > 0).all()
    assert abs(cal.predict(np.array([0.5]))[0] - 0.5) < 0.1


def test_platt_calibrator_recovers_a_logistic_distortion():
    rng = np.random.default_rng(1)
    true_p = rng.uniform(0.02, 0.98, size=20000)
    y = (rng.uniform(size=true_p.size) < true_p).astype(float)
    distorted = 1 / (1 + np.exp(-(np.log(true_p / (1 - true_p)) / 2 + 0.5)))
    cal = PlattCalibrator().fit(distorted, y)
    assert cal.slope_ == pytest.approx(2.0, rel=0.1)
    np.testing.assert_allclose(cal.predict(distorted), true_p, atol=0.05)


def test_unknown_calibration_is_rejected():
    with pytest.raises(ValueError, match=r"calibration must be one of \['isotonic', 'platt'"):
        make_calibrator("beta")
