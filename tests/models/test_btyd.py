"""BG/NBD and MBG/NBD: golden numbers on CDNOW, domain errors, persistence, simulation recovery."""

from __future__ import annotations

import doctest
import itertools
import json
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from churnguard.models import btyd
from churnguard.models.btyd import BetaGeoModel, ParetoNBDModel, rfm_from_transactions

CDNOW = Path(__file__).resolve().parents[1] / "data" / "CDNOW_sample.txt"
# Fader, Hardie & Lee (2005): the calibration period is the 39 weeks 1997-01-01 .. 1997-09-30.
CALIBRATION_CUTOFF = "1997-10-01"


@pytest.fixture(scope="module")
def cdnow_rfm() -> pd.DataFrame:
    # columns: master customer id, sample id, date yyyymmdd, number of CDs, dollar value
    raw = pd.read_csv(CDNOW, sep=r"\s+", header=None, dtype={"date": str},
                      names=["master_id", "id", "date", "cds", "usd"])
    return rfm_from_transactions(raw["id"], pd.to_datetime(raw["date"], format="%Y%m%d"),
                                 CALIBRATION_CUTOFF)


@pytest.fixture(scope="module")
def bg(cdnow_rfm: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel().fit(cdnow_rfm)


@pytest.fixture(scope="module")
def pareto(cdnow_rfm: pd.DataFrame) -> ParetoNBDModel:
    return ParetoNBDModel().fit(cdnow_rfm)


@pytest.fixture(scope="module")
def mbg(cdnow_rfm: pd.DataFrame) -> BetaGeoModel:
    return BetaGeoModel(model="mbg").fit(cdnow_rfm)


def arrays(rfm: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return rfm["frequency"].to_numpy(), rfm["recency"].to_numpy(), rfm["T"].to_numpy()


# ------------------------------------------------------------- CDNOW golden tests


def test_cdnow_summary_matches_the_published_sample(cdnow_rfm: pd.DataFrame) -> None:
    assert len(cdnow_rfm) == 2357
    assert int((cdnow_rfm["frequency"] == 0).sum()) == 1411
    assert int(cdnow_rfm["frequency"].sum()) == 2457  # repeat purchase days in calibration
    # First purchases fall in the first 12 weeks, so T runs from 27 to 38.86 weeks.
    assert cdnow_rfm["T"].min() * 7 == pytest.approx(189)
    assert cdnow_rfm["T"].max() * 7 == pytest.approx(272)
    # Customer 1 is FHL's worked example: x = 2, t_x = 30.43, T = 38.86.
    assert cdnow_rfm.loc[1].round(2).tolist() == [2.0, 30.43, 38.86]


def test_bg_nbd_parameters_match_fader_hardie_lee_2005(bg: BetaGeoModel) -> None:
    assert bg.params_["r"] == pytest.approx(0.243, abs=0.0015)
    assert abs(round(bg.params_["alpha"], 3) - 4.414) <= 0.002
    assert bg.params_["a"] == pytest.approx(0.793, abs=0.0015)
    assert bg.params_["b"] == pytest.approx(2.426, abs=0.0015)
    assert bg.log_likelihood_ == pytest.approx(-9582.4, abs=0.1)
    assert bg.converged_
    assert bg.n_customers_ == 2357


def test_log_likelihood_at_the_published_parameters(
    cdnow_rfm: pd.DataFrame, bg: BetaGeoModel
) -> None:
    published = clone(bg)
    published.params_ = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
    assert published.individual_log_likelihood(*arrays(cdnow_rfm)).sum() == pytest.approx(
        -9582.4, abs=0.1
    )


def test_conditional_expectation_matches_fader_hardie_lee_2005(bg: BetaGeoModel) -> None:
    assert bg.conditional_expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=0.001)


def test_mbg_nbd_parameters_match_btydplus(mbg: BetaGeoModel) -> None:
    # Reference values of BTYDplus (mplatzer/BTYDplus), also asserted by lifetimes' test suite.
    got = [mbg.params_[name] for name in ("r", "alpha", "a", "b")]
    np.testing.assert_allclose(got, [0.525, 6.183, 0.891, 1.614], atol=0.0015)


# ---------------------------------------------------------------- predictions


def test_probability_no_purchase_is_a_probability_decreasing_in_horizon(
    cdnow_rfm: pd.DataFrame, bg: BetaGeoModel, mbg: BetaGeoModel
) -> None:
    x, t_x, T = arrays(cdnow_rfm)
    for model in (bg, mbg):
        horizons = np.array([0.0, 1.0, 4.0, 13.0, 52.0, 520.0])[:, None]
        probs = model.probability_no_purchase(horizons, x, t_x, T)
        assert probs.shape == (6, len(x))
        assert np.all((probs >= 0) & (probs <= 1))
        np.testing.assert_array_equal(probs[0], 1.0)
        assert np.all(np.diff(probs, axis=0) <= 0)
        assert np.all(probs[-1] < probs[1])
        # With an endless horizon only the already-inactive buy nothing.
        far = model.probability_no_purchase(1e80, x, t_x, T)
        np.testing.assert_allclose(far, 1 - model.probability_alive(x, t_x, T), atol=1e-6)


def test_probability_alive_and_expectation_shapes(bg: BetaGeoModel) -> None:
    assert isinstance(bg.probability_alive(2, 30.43, 38.86), float)
    assert bg.probability_alive(2, 30.43, 38.86) == pytest.approx(0.7266, abs=1e-4)
    assert bg.probability_alive([0, 3], [0.0, 5.0], [10.0, 30.0]).shape == (2,)
    assert bg.conditional_expected_purchases(0, 2, 30.43, 38.86) == 0.0
    # Expected purchases grow with the horizon, and faster for recent heavy buyers.
    grid = bg.conditional_expected_purchases([1, 10, 39], 5, 35.0, 38.0)
    assert np.all(np.diff(grid) > 0)
    assert bg.conditional_expected_purchases(39, 5, 35.0, 38.0) > bg.conditional_expected_purchases(
        39, 5, 5.0, 38.0
    )
    # Heavy buyers stay finite (the hypergeometric term is taken through Euler's transformation).
    assert np.isfinite(bg.conditional_expected_purchases(52, 300, 38.0, 38.5))


def test_one_time_buyers_who_bought_long_ago_rank_as_riskier(
    bg: BetaGeoModel, mbg: BetaGeoModel
) -> None:
    just_bought, long_ago = 1.0, 38.0
    # BG/NBD's known flaw: a one-time buyer is certainly alive, however long they have been silent.
    assert bg.probability_alive(0, 0.0, just_bought) == 1.0
    assert bg.probability_alive(0, 0.0, long_ago) == 1.0
    # MBG/NBD lets them drop out after their first purchase, so silence lowers P(alive).
    assert mbg.probability_alive(0, 0.0, long_ago) < mbg.probability_alive(0, 0.0, just_bought) < 1
    # Either way, the long-silent one is more likely to buy nothing in the next quarter.
    for model in (bg, mbg):
        assert model.probability_no_purchase(13, 0, 0.0, long_ago) > model.probability_no_purchase(
            13, 0, 0.0, just_bought
        )


# --------------------------------------------------------------- domain errors


@pytest.mark.parametrize(
    ("x", "t_x", "T", "message"),
    [
        ([1, 2, 3], [1.0, 9.0, 2.0], [5.0, 4.0, 6.0],
         "Some values in recency vector are larger than T vector: 1 of 3 rows, e.g. row 1 "
         "(frequency=2.0, recency=9.0, T=4.0)."),
        ([1, 2.5, 3], [1.0, 2.0, 2.0], [5.0, 4.0, 6.0],
         "There exist non-integer values in the frequency vector: 1 of 3 rows, e.g. row 1 "),
        ([1, -2, -3], [1.0, 2.0, 2.0], [5.0, 4.0, 6.0],
         "There exist negative values in the frequency vector: 2 of 3 rows, e.g. row 1 "),
        ([0, 2], [1.0, 2.0], [5.0, 4.0],
         "There exist non-zero recency values when frequency is zero: 1 of 2 rows, e.g. row 0 "),
        ([1, 2], [0.0, 2.0], [5.0, 4.0],
         "There exist zero recency values when frequency is positive: 1 of 2 rows, e.g. row 0 "),
        ([1, 2], [1.0, 2.0], [5.0, np.nan],
         "There exist non-finite values (NaN or inf) in the T vector: 1 of 2 rows, e.g. row 1 "),
        ([1, 2], [1.0, 2.0], [5.0, 4.0, 3.0],
         "The frequency, recency and T vectors must have the same length; got 2, 2 and 3."),
    ],
)
def test_fit_rejects_impossible_rfm_with_a_precise_error(x, t_x, T, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        BetaGeoModel().fit_rfm(x, t_x, T)


def test_predictions_validate_their_inputs_too(bg: BetaGeoModel) -> None:
    with pytest.raises(ValueError, match="Some values in recency vector are larger than T vector"):
        bg.probability_alive(1, 10.0, 5.0)
    with pytest.raises(ValueError, match=re.escape("horizon must be finite and >= 0: 1 of 2")):
        bg.probability_no_purchase([4.0, -1.0], 1, 1.0, 5.0)


def test_fit_rejects_bad_configuration_and_missing_columns() -> None:
    model = BetaGeoModel(model="pareto")  # the constructor stores, fit validates
    assert model.model == "pareto"
    expected = "model must be one of ['bg', 'mbg'], got 'pareto'."
    with pytest.raises(ValueError, match=re.escape(expected)):
        model.fit_rfm([1], [1.0], [2.0])
    with pytest.raises(ValueError, match="penalizer_coef must be >= 0"):
        BetaGeoModel(penalizer_coef=-1).fit_rfm([1], [1.0], [2.0])
    with pytest.raises(ValueError, match=re.escape("rfm is missing column(s) ['T']")):
        BetaGeoModel().fit(pd.DataFrame({"frequency": [1], "recency": [1.0]}))
    with pytest.raises(ValueError, match="Cannot fit on zero customers"):
        BetaGeoModel().fit_rfm([], [], [])


def test_predicting_before_fit_raises_not_fitted() -> None:
    model = BetaGeoModel()
    expected = ("This BetaGeoModel is not fitted yet; call fit(rfm) or fit_rfm(x, t_x, T) before "
                "probability_no_purchase().")
    with pytest.raises(NotFittedError, match=re.escape(expected)):
        model.probability_no_purchase(4, 1, 1.0, 2.0)
    for call in (lambda: model.probability_alive(1, 1.0, 2.0),
                 lambda: model.conditional_expected_purchases(4, 1, 1.0, 2.0),
                 lambda: model.save("never-written.json")):
        with pytest.raises(NotFittedError):
            call()


# ------------------------------------------------- estimator contract, persistence


def test_constructor_stores_parameters_unchanged() -> None:
    model = BetaGeoModel(model="mbg", penalizer_coef=0.01, time_unit_days=1)
    assert model.get_params() == {"model": "mbg", "penalizer_coef": 0.01, "time_unit_days": 1}
    assert not hasattr(clone(model), "params_")
    with pytest.raises(TypeError):
        BetaGeoModel("mbg")  # keyword-only


def test_fit_is_deterministic_pure_and_order_free(
    cdnow_rfm: pd.DataFrame, bg: BetaGeoModel
) -> None:
    x, t_x, T = arrays(cdnow_rfm)
    before = [x.copy(), t_x.copy(), T.copy()]
    again = BetaGeoModel().fit_rfm(x, t_x, T)
    assert again.params_ == bg.params_
    assert again.log_likelihood_ == bg.log_likelihood_
    for original, now in zip(before, (x, t_x, T)):
        np.testing.assert_array_equal(original, now)
    order = np.random.default_rng(0).permutation(len(x))
    assert BetaGeoModel().fit_rfm(x[order], t_x[order], T[order]).params_ == bg.params_


@pytest.mark.parametrize("rows", ["mbg_slow_polish_rfm.csv.gz", "mbg_pooled_rows_rfm.csv.gz"])
def test_the_polish_stops_once_the_optimum_is_reached(monkeypatch: pytest.MonkeyPatch,
                                                     rows: str) -> None:
    # Simulated shops' RFM rows on which the Nelder-Mead polish used to spend its whole
    # 20,000-evaluation budget without moving (see tests/data/README.md): one cutoff's
    # customers, and rows pooled over a model's training cutoffs.
    rfm = pd.read_csv(Path(__file__).resolve().parents[1] / "data" / rows)
    calls = []
    likelihood = btyd._log_likelihood
    monkeypatch.setattr(btyd, "_log_likelihood", lambda *a, **k: calls.append(1) or
                        likelihood(*a, **k))
    fitted = BetaGeoModel(model="mbg").fit(rfm)
    assert len(calls) < 3_000
    assert fitted.converged_
    # A longer polish finds nothing better.
    x, t_x, T = arrays(rfm)
    longer = minimize_log_likelihood_further(fitted, x, t_x, T)
    assert longer >= fitted.log_likelihood_ - 1e-9 * abs(fitted.log_likelihood_)
    assert longer <= fitted.log_likelihood_ + 1e-6 * abs(fitted.log_likelihood_)


def minimize_log_likelihood_further(fitted: BetaGeoModel, x: np.ndarray, t_x: np.ndarray,
                                    T: np.ndarray) -> float:
    """The total log-likelihood after 5,000 more Nelder-Mead steps from the fitted optimum."""
    from scipy.optimize import minimize

    def negative(log_params: np.ndarray) -> float:
        return -float(btyd._log_likelihood(np.exp(log_params), x, t_x, T, mbg=True).sum())

    start = np.log([fitted.params_[k] for k in ("r", "alpha", "a", "b")])
    result = minimize(negative, start, method="Nelder-Mead",
                      options={"xatol": 1e-12, "fatol": 1e-9, "maxfev": 5_000})
    return -float(result.fun)


def test_penalizer_shrinks_parameters(cdnow_rfm: pd.DataFrame, bg: BetaGeoModel) -> None:
    shrunk = BetaGeoModel(penalizer_coef=0.01).fit(cdnow_rfm)
    assert sum(v**2 for v in shrunk.params_.values()) < sum(v**2 for v in bg.params_.values())
    assert shrunk.log_likelihood_ < bg.log_likelihood_


def test_save_load_and_pickle_give_identical_predictions(
    tmp_path: Path, cdnow_rfm: pd.DataFrame, mbg: BetaGeoModel
) -> None:
    x, t_x, T = arrays(cdnow_rfm)
    path = tmp_path / "mbg.json"
    mbg.save(path)
    document = json.loads(path.read_text())
    assert document["version"] == btyd.FORMAT_VERSION
    assert document["config"] == {"model": "mbg", "penalizer_coef": 0.0, "time_unit_days": 7}
    for restored in (BetaGeoModel.load(path), pickle.loads(pickle.dumps(mbg))):
        assert restored.get_params() == mbg.get_params()
        assert restored.params_ == mbg.params_
        np.testing.assert_array_equal(restored.probability_no_purchase(13, x, t_x, T),
                                      mbg.probability_no_purchase(13, x, t_x, T))
        np.testing.assert_array_equal(restored.conditional_expected_purchases(39, x, t_x, T),
                                      mbg.conditional_expected_purchases(39, x, t_x, T))


def test_load_refuses_other_versions(tmp_path: Path, bg: BetaGeoModel) -> None:
    path = tmp_path / "bg.json"
    bg.save(path)
    document = json.loads(path.read_text())
    document["version"] = 99
    path.write_text(json.dumps(document))
    with pytest.raises(ValueError, match="model file version 99; this churnguard reads version 1"):
        BetaGeoModel.load(path)


# ------------------------------------------------------------ RFM from transactions


def test_rfm_counts_purchase_days_before_the_cutoff() -> None:
    rfm = rfm_from_transactions(
        ["a", "a", "a", "a", "b", "c", "c"],
        ["2024-01-01 08:00", "2024-01-01 20:00", "2024-01-08", "2024-01-15 00:00",
         "2024-01-03", "2024-01-20", "2024-01-02"],
        cutoff="2024-01-15",
        time_unit_days=1,
    )
    # "a": two purchases on day 1 count once, the one at the cutoff is excluded; "c" is unsorted.
    assert rfm.to_dict("index") == {
        "a": {"frequency": 1.0, "recency": 7.0, "T": 13.0},
        "b": {"frequency": 0.0, "recency": 0.0, "T": 11.0},
        "c": {"frequency": 0.0, "recency": 0.0, "T": 12.0},
    }
    weeks = rfm_from_transactions(["a", "a"], ["2024-01-01", "2024-01-15"], "2024-01-30")
    assert weeks.loc["a"].tolist() == [1.0, 2.0, 4.0]


def test_rfm_rejects_missing_values_and_bad_units() -> None:
    with pytest.raises(ValueError, match=re.escape("1 of 2 rows, e.g. row 1")):
        rfm_from_transactions(["a", "b"], ["2024-01-01", None], "2024-02-01")
    with pytest.raises(ValueError, match="same length; got 2 and 1"):
        rfm_from_transactions(["a", "b"], ["2024-01-01"], "2024-02-01")
    with pytest.raises(ValueError, match="time_unit_days must be a positive number"):
        rfm_from_transactions(["a"], ["2024-01-01"], "2024-02-01", time_unit_days=0)


def test_fit_transactions_uses_the_configured_time_unit() -> None:
    users = ["a", "a", "b", "b", "b", "c"]
    stamps = ["2024-01-01", "2024-02-01", "2024-01-05", "2024-01-20", "2024-03-01", "2024-02-10"]
    # A penalty keeps the optimum of three customers away from the parameter bounds (fast fit).
    model = BetaGeoModel(time_unit_days=1, penalizer_coef=0.1)
    model.fit_transactions(users, stamps, "2024-03-15")
    expected = BetaGeoModel(penalizer_coef=0.1).fit(
        rfm_from_transactions(users, stamps, "2024-03-15", 1)
    )
    assert model.params_ == expected.params_


def test_docstring_examples_run() -> None:
    assert doctest.testmod(btyd, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


# ------------------------------------------------------------------ simulation


def simulate(params, n: int, seed: int, *, mbg: bool = False, holdout: float = 39.0):
    """Draw (x, t_x, T) and holdout purchase counts from the BG/NBD (or MBG/NBD) process."""
    r, alpha, a, b = params
    rng = np.random.default_rng(seed)
    lam = rng.gamma(r, 1.0 / alpha, n)
    p = rng.beta(a, b, n)
    T = rng.uniform(27.0, 39.0, n)
    # Repeat purchases made before dropping out: a coin with probability p after each repeat
    # purchase (MBG/NBD: also right after the first purchase).
    lifetime_purchases = rng.geometric(p) - (1 if mbg else 0)
    arrivals = rng.poisson(lam * T)  # repeat purchases an immortal customer would make by T
    x = np.minimum(lifetime_purchases, arrivals)
    # The x-th of `arrivals` uniform arrival times on (0, T] is T * Beta(x, arrivals - x + 1).
    t_x = np.where(x > 0, T * rng.beta(np.maximum(x, 1), arrivals - x + 1), 0.0)
    alive = lifetime_purchases > arrivals
    later = rng.poisson(lam * holdout)
    holdout_purchases = np.where(alive, np.minimum(lifetime_purchases - arrivals, later), 0)
    return x.astype(float), t_x, T, holdout_purchases


@pytest.mark.parametrize("kind", ["bg", "mbg"])
def test_parameters_are_recovered_from_simulated_customers(kind: str) -> None:
    true = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5}
    x, t_x, T, holdout = simulate(tuple(true.values()), 5000, seed=1, mbg=kind == "mbg")
    model = BetaGeoModel(model=kind).fit_rfm(x, t_x, T)
    got = model.params_
    assert got["r"] == pytest.approx(true["r"], rel=0.15)
    assert got["alpha"] == pytest.approx(true["alpha"], rel=0.15)
    # a and b are weakly identified one by one; the mean dropout probability a / (a + b) is not.
    assert got["a"] == pytest.approx(true["a"], rel=0.4)
    assert got["b"] == pytest.approx(true["b"], rel=0.4)
    assert got["a"] / (got["a"] + got["b"]) == pytest.approx(0.8 / 3.3, abs=0.03)
    # Predictions are calibrated on the holdout quarter-year the simulation went on to draw.
    predicted_silent = model.probability_no_purchase(39, x, t_x, T).mean()
    assert predicted_silent == pytest.approx((holdout == 0).mean(), abs=0.015)
    predicted_purchases = model.conditional_expected_purchases(39, x, t_x, T).mean()
    assert predicted_purchases == pytest.approx(holdout.mean(), rel=0.1)


# ------------------------------------------------------------------- Pareto/NBD


def test_pareto_nbd_parameters_match_fader_hardie_lee_2005(pareto: ParetoNBDModel) -> None:
    # FHL (2005) report the Pareto/NBD fit to the same CDNOW sample next to the BG/NBD one.
    got = [pareto.params_[name] for name in ("r", "alpha", "s", "beta")]
    np.testing.assert_allclose(got, [0.553, 10.578, 0.606, 11.669], atol=0.0015)
    assert pareto.log_likelihood_ == pytest.approx(-9595.0, abs=0.1)
    assert pareto.converged_


def test_pareto_nbd_probability_no_purchase_matches_monte_carlo(pareto: ParetoNBDModel) -> None:
    r, alpha, s, beta = (pareto.params_[name] for name in ("r", "alpha", "s", "beta"))
    x, t_x, T, h = 2, 30.43, 38.86, 39.0
    rng = np.random.default_rng(0)
    lam = rng.gamma(r + x, 1 / (alpha + T), 400_000)
    mu = rng.gamma(s, 1 / (beta + T), 400_000)
    # Alive at T: no purchase if death comes first, or if the first purchase is after the window.
    rate = lam + mu
    silent_if_alive = np.mean(mu / rate * -np.expm1(-rate * h) + np.exp(-rate * h))
    p_alive = pareto.probability_alive(x, t_x, T)
    expected = 1 - p_alive * (1 - silent_if_alive)
    assert pareto.probability_no_purchase(h, x, t_x, T) == pytest.approx(expected, abs=0.003)


def test_pareto_nbd_predictions_behave(cdnow_rfm: pd.DataFrame, pareto: ParetoNBDModel,
                                       tmp_path: Path) -> None:
    x, t_x, T = arrays(cdnow_rfm)
    probs = pareto.probability_no_purchase(np.array([0.0, 4.0, 13.0, 52.0])[:, None], x, t_x, T)
    assert np.all((probs >= 0) & (probs <= 1)) and np.all(np.diff(probs, axis=0) <= 0)
    np.testing.assert_array_equal(probs[0], 1.0)
    # One-time buyers silent for long are less likely alive (no BG/NBD flaw here).
    assert pareto.probability_alive(0, 0.0, 38.0) < pareto.probability_alive(0, 0.0, 1.0) < 1
    assert np.isfinite(pareto.conditional_expected_purchases(52, 300, 38.0, 38.5))
    path = tmp_path / "pareto.json"
    pareto.save(path)
    for restored in (ParetoNBDModel.load(path), pickle.loads(pickle.dumps(pareto))):
        np.testing.assert_array_equal(restored.conditional_expected_purchases(39, x, t_x, T),
                                      pareto.conditional_expected_purchases(39, x, t_x, T))
    with pytest.raises(ValueError, match="is not a saved BetaGeoModel"):
        BetaGeoModel.load(path)
    with pytest.raises(NotFittedError, match="This ParetoNBDModel is not fitted yet"):
        ParetoNBDModel().probability_alive(1, 1.0, 2.0)


def test_pareto_nbd_parameters_are_recovered_from_simulated_customers() -> None:
    r, alpha, s, beta = 0.5, 10.0, 0.6, 12.0
    rng = np.random.default_rng(3)
    n, holdout = 5000, 39.0
    lam = rng.gamma(r, 1 / alpha, n)
    mu = rng.gamma(s, 1 / beta, n)
    death = rng.exponential(1 / mu)
    T = rng.uniform(27.0, 39.0, n)
    active = np.minimum(death, T)
    x = rng.poisson(lam * active)
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1), 0.0)  # latest of x uniforms
    later = rng.poisson(lam * np.clip(np.minimum(death, T + holdout) - T, 0, None))
    model = ParetoNBDModel().fit_rfm(x, t_x, T)
    assert model.params_["r"] == pytest.approx(r, rel=0.15)
    assert model.params_["alpha"] == pytest.approx(alpha, rel=0.2)
    assert model.params_["s"] == pytest.approx(s, rel=0.4)
    assert model.params_["beta"] == pytest.approx(beta, rel=0.6)
    assert model.probability_no_purchase(holdout, x, t_x, T).mean() == pytest.approx(
        (later == 0).mean(), abs=0.015
    )
    assert model.conditional_expected_purchases(holdout, x, t_x, T).mean() == pytest.approx(
        later.mean(), rel=0.1
    )


def _exact_expected_if_alive(r: float, alpha: float, a: float, b_post: float, x: float,
                             T: float, t: float) -> float:
    """E[(1/p) (1 - (1 + p t/(alpha+T))**-(r+x))] over p ~ Beta(a, b_post), by mpmath's
    adaptive quadrature at 30 digits, with breakpoints around the Beta's mode."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    k, s = r + x, mpmath.mpf(t) / (alpha + T)
    log_beta = mpmath.log(mpmath.beta(a, b_post))

    def integrand(p: Any) -> Any:
        if p >= 1:  # b_post < 1 puts an integrable pole at 1; the rule may touch the endpoint
            return mpmath.mpf(0)
        density = mpmath.exp((a - 1) * mpmath.log(p) + (b_post - 1) * mpmath.log1p(-p) - log_beta)
        return -mpmath.expm1(-k * mpmath.log1p(p * s)) / p * density

    mode = mpmath.mpf(a) / (a + b_post)
    sd = mpmath.sqrt(a * b_post / ((a + b_post) ** 2 * (a + b_post + 1)))
    near = [min(max(mode + j * sd, mpmath.mpf(1e-30)), 1 - mpmath.mpf(1e-12))
            for j in (-12, -4, -1, 0, 1, 4, 12)]
    points = sorted({mpmath.mpf(0), mpmath.mpf(1), *near,
                     *(mpmath.mpf(10) ** -e for e in range(1, 12))})
    return float(mpmath.quad(integrand, points))


# (a, b): ordinary fits, a = 1 (the closed form is 0/0 there), and the boundary an MBG/NBD fit
# reached on a drifting simulated shop (a ~ 1.4e5, b ~ 1.5e7: dropout almost homogeneous), where
# the closed form alone gave NaN for every customer.
@pytest.mark.parametrize("a, b", [(0.3, 0.5), (1.0, 50.0), (3.0, 0.5), (300.0, 50.0),
                                  (0.3, 14765494.459), (138402.105, 14765494.459)])
def test_expected_purchases_match_the_exact_mean_where_the_closed_form_fails(
        a: float, b: float) -> None:
    r, alpha = 1.009, 5.092
    x = np.array([0.0, 1.0, 5.0, 200.0, 200.0])
    T = np.array([0.1, 10.0, 100.0, 0.1, 10.0])
    t_x = T / 2 * (x > 0)
    for model in ("mbg", "bg"):
        fitted = BetaGeoModel(model=model)
        fitted.params_ = {"r": r, "alpha": alpha, "a": a, "b": b}
        for t in (1.0, 52.0, 1000.0):
            with np.errstate(all="raise"):  # no NaN or overflow warning on the way
                got = fitted.conditional_expected_purchases(t, x, t_x, T)
            alive = fitted.probability_alive(x, t_x, T)
            b_post = b + x + (model == "mbg")
            want = [_exact_expected_if_alive(r, alpha, a, bp, xi, Ti, t)
                    for bp, xi, Ti in zip(b_post, x, T, strict=True)]
            np.testing.assert_allclose(got / alive, want, rtol=2e-6, err_msg=f"{model}, t={t}")


# Every parameter from a ten-thousandth to a thousand times the usual scale (weeks): fits on
# odd data land at such corners (the MBG/NBD boundary above; Pareto/NBD with r ~ 50 and
# alpha ~ 0.05), and there scipy's hyp2f1 returned inf or NaN for customers in
# (x, t_x, T) below. Predictions must stay finite, in range, and quiet.
_CORNERS = (0.01, 0.05, 1.0, 50.0, 1000.0)
_X = np.array([0.0, 1.0, 5.0, 50.0, 300.0])
_T = np.array([0.1, 1.0, 10.0, 100.0, 300.0])


@pytest.mark.parametrize("make", [lambda: BetaGeoModel(model="mbg"), lambda: BetaGeoModel(),
                                  ParetoNBDModel], ids=["mbg", "bg", "pareto"])
def test_predictions_stay_finite_at_the_corners_of_the_parameter_space(make: Any) -> None:
    model = make()
    x, T = (v.ravel() for v in np.meshgrid(_X, _T))
    t_x = np.where(x > 0, 0.7 * T, 0.0)
    failed = []
    for params in itertools.product(_CORNERS, repeat=4):
        model.params_ = dict(zip(model._param_names, params, strict=True))
        with np.errstate(all="raise", under="ignore"), warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                alive = model.probability_alive(x, t_x, T)
                expected = model.conditional_expected_purchases(52.0, x, t_x, T)
                none = model.probability_no_purchase(13.0, x, t_x, T)
            except (FloatingPointError, RuntimeWarning) as error:
                failed.append((params, repr(error)))
                continue
        if not (np.all((alive >= 0) & (alive <= 1)) and np.all((none >= 0) & (none <= 1))
                and np.all(np.isfinite(expected) & (expected >= 0))):
            failed.append((params, "out of range"))
    assert not failed, f"{len(failed)} parameter sets fail, e.g. {failed[:3]}"


@pytest.mark.parametrize("b, c, z", [(1.05, 101.05, 0.97633136), (300.05, 301.1, 0.99760336),
                                     (2.0, 5.5, 0.3), (50.05, 51.1, 0.999)])
def test_the_pareto_hypergeometric_term_matches_mpmath_where_scipy_fails(
        b: float, c: float, z: float) -> None:
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 30
    got = btyd._hyp2f1_one(np.array(b), np.array(c), np.array(z))
    assert float(got) == pytest.approx(float(mpmath.hyp2f1(1, b, c, z)), rel=1e-9)
