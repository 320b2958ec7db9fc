"""The one contract every learner follows (DESIGN.md "Models share one contract"), run with the
checks of :mod:`churnguard.models.checks` over every kind of the model catalogue, the uplift
learners and the value models.

Churn models: fit returns self, the constructor stores its arguments unchanged, predicting before
fitting is a clear error, probabilities have the right shape and range, the same seed gives the
same predictions, pickling and save/load round-trip, the order of the feature columns does not
matter, and there is no look-ahead (events at or after the cutoff change nothing). Uplift
learners and value models: the same, on their own data.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.ingest import ingest_files
from churnguard.intervene.uplift import LEARNERS
from churnguard.intervene.value import VALUE_MODELS, GammaGammaModel, future_revenue
from churnguard.models import catalog, checks
from churnguard.models.base import ChurnModel, NotFittedError
from churnguard.store import Store

from model_factories import MODEL_FACTORIES

NAMES = list(catalog.KINDS)
#: Tiny, underfitted networks (and the hybrid on their vectors) only have to beat chance.
MIN_ROC_AUC = {name: 0.55 for name in NAMES if name.startswith("behaviour")}


def _case(name, snapshots) -> checks.Case:
    return checks.churn_case(MODEL_FACTORIES[name], train=snapshots.train,
                             validation=snapshots.validation, test=snapshots.test)


def test_every_kind_of_the_catalogue_is_under_the_contract():
    assert list(MODEL_FACTORIES) == NAMES
    for name, kind in catalog.KINDS.items():
        model = MODEL_FACTORIES[name]()
        assert isinstance(model, kind.factory) and model.name == name
        gives_reasons = type(model).explain is not ChurnModel.explain
        assert gives_reasons is kind.gives_reasons, name
        params = set(inspect.signature(kind.factory.__init__).parameters)
        assert set(kind.settings) <= params and set(kind.preset) <= params, name
        assert set(kind.demo or {}) <= params, name


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, fitted_models) -> ChurnModel:
    return fitted_models[request.param]


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_keeps_the_constructor_arguments(name, snapshots, fitted_models):
    model = MODEL_FACTORIES[name]()
    before = model.get_params()
    signature = inspect.signature(type(model).__init__)
    assert set(before) == {p for p in signature.parameters if p != "self"}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY
               for n, p in signature.parameters.items() if n != "self")
    checks.check_constructor(_case(name, snapshots))
    # fitted_models fits through checks.check_fit_returns_self: fit returned the model, whose
    # arguments are the very objects it was built with.
    after = fitted_models[name].get_params()
    assert after.keys() == before.keys()
    assert isinstance(model.name, str) and model.name == name


@pytest.mark.parametrize("name", NAMES)
def test_predicting_before_fit_raises_not_fitted(name, snapshots):
    model = MODEL_FACTORIES[name]()
    with pytest.raises(NotFittedError) as excinfo:
        model.predict_proba(snapshots.test)
    assert "not fitted yet; call fit() first" in str(excinfo.value)
    assert type(model).__name__ in str(excinfo.value)
    checks.check_unfitted(_case(name, snapshots))


def test_probabilities_have_one_value_per_row_in_unit_interval(fitted, snapshots):
    p = fitted.predict_proba(snapshots.test)
    assert isinstance(p, np.ndarray) and p.shape == (len(snapshots.test),)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert np.unique(p).size > 10  # a score, not a constant
    checks.check_probabilities(fitted, snapshots.test)


def test_probabilities_beat_chance(fitted, snapshots):
    from churnguard.evaluate import roc_auc

    threshold = MIN_ROC_AUC.get(fitted.name, 0.7)
    assert roc_auc(snapshots.test.y(), fitted.predict_proba(snapshots.test)) > threshold


def test_same_seed_gives_identical_predictions(fitted, snapshots):
    again = MODEL_FACTORIES[fitted.name]().fit(snapshots.train, validation=snapshots.validation)
    np.testing.assert_array_equal(again.predict_proba(snapshots.test),
                                  fitted.predict_proba(snapshots.test))


def test_pickle_and_save_load_round_trip(fitted, snapshots, tmp_path: Path):
    # Pickling and save/load: same class, same constructor arguments, equal predictions.
    checks.check_round_trip(_case(fitted.name, snapshots), fitted, tmp_path)


def test_feature_column_order_does_not_matter(fitted, snapshots):
    checks.check_feature_order(fitted, snapshots.test)


def test_row_order_follows_the_snapshot(fitted, snapshots):
    # The networks score in float32 batches of similar length: exact up to the last bits
    # (about 1e-6 after calibration).
    network = fitted.name in ("behaviour", "behaviour_gru", "behaviour_transformer")
    checks.check_row_order(fitted, snapshots.test, atol=1e-5 if network else 0.0)


@pytest.fixture(scope="module")
def future_store(simulated_shop, tmp_path_factory):
    """A copy of the simulated shop in its own store, for tests that add events."""
    folder = tmp_path_factory.mktemp("future_store")
    with Store.open(folder / "churnguard.duckdb", threads=2) as s:
        for kind in ("events", "users", "items", "campaigns"):
            ingest_files(s, kind=kind, files=[simulated_shop.sim_dir / f"{kind}.parquet"])
        yield s


def test_no_look_ahead(fitted, snapshots, simulated_shop, future_store):
    """Events at or after the cutoff (orders, visits, views, tickets, reviews) change nothing."""
    cutoff = snapshots.test.index.get_level_values(1)[0]
    before = checks.check_no_look_ahead(fitted.predict_proba, store=future_store,
                                        definition=simulated_shop.definition, cutoff=cutoff)
    pd.testing.assert_frame_equal(before.features, snapshots.test.features)


# -- uplift learners and value models: the same contract, on their own data ----------------------
def _uplift_data(n: int = 1500, seed: int = 1):
    """Randomised: 'coupon' helps when x1 > 0.5, 'call' hurts a little everywhere."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"x1": rng.random(n), "x2": rng.random(n)})
    action = rng.choice(np.array(["none", "coupon", "call"], dtype=object), n)
    p = 0.3 + 0.3 * (action == "coupon") * (x["x1"].to_numpy() > 0.5) - 0.1 * (action == "call")
    return x, action, (rng.random(n) < p).astype(float)


def _uplift_case(name: str) -> checks.Case:
    x, action, y = _uplift_data()
    return checks.Case(make=lambda: LEARNERS[name](random_state=0),
                       fit=lambda learner: learner.fit(x, action, y, ["coupon", "call"]),
                       predict=lambda learner: learner.predict(x.iloc[:200]))


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_uplift_learners_follow_the_contract(name, tmp_path: Path):
    case = _uplift_case(name)
    checks.check_constructor(case)
    checks.check_unfitted(case)
    fitted = checks.check_fit_returns_self(case)
    assert list(case.predict(fitted).columns) == ["coupon", "call"]
    checks.check_same_seed(case, fitted)
    checks.check_round_trip(case, fitted, tmp_path)


@pytest.fixture(scope="module")
def revenue(snapshots, simulated_shop) -> pd.Series:
    keys = pd.concat([s.index.to_frame(index=False) for s in (snapshots.train, snapshots.test)])
    return future_revenue(simulated_shop.store, keys, days=snapshots.train.horizon_days)


def _value_case(name: str, snapshots, revenue) -> checks.Case:
    return checks.Case(make=VALUE_MODELS[name],
                       fit=lambda model: model.fit(snapshots.train, revenue),
                       predict=lambda model: model.predict(snapshots.test))


@pytest.mark.parametrize("name", sorted(VALUE_MODELS))
def test_value_models_follow_the_contract(name, snapshots, revenue, simulated_shop, future_store,
                                          tmp_path: Path):
    case = _value_case(name, snapshots, revenue)
    checks.check_constructor(case)
    checks.check_unfitted(case)
    fitted = checks.check_fit_returns_self(case)
    value = case.predict(fitted)
    assert value.shape == (len(snapshots.test),) and np.isfinite(value).all()
    assert (value >= 0).all()
    checks.check_same_seed(case, fitted)
    checks.check_round_trip(case, fitted, tmp_path)
    cutoff = snapshots.test.index.get_level_values(1)[0]
    checks.check_no_look_ahead(fitted.predict, store=future_store,
                               definition=simulated_shop.definition, cutoff=cutoff)


def test_gamma_gamma_follows_the_contract(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.integers(1, 8, 500)
    m = rng.gamma(6.0 * x, 1 / (rng.gamma(4.0, 1 / 15.0, 500) * x))
    case = checks.Case(make=GammaGammaModel, fit=lambda model: model.fit(x, m),
                       predict=lambda model: model.conditional_expected_spend(x, m))
    checks.check_constructor(case)
    checks.check_unfitted(case)
    fitted = checks.check_fit_returns_self(case)
    checks.check_same_seed(case, fitted)
    checks.check_round_trip(case, fitted, tmp_path)
