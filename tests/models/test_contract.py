"""The one contract every churn model follows (DESIGN.md "Models share one contract").

Parametrised over every model: fit returns self, the constructor stores its arguments unchanged,
predicting before fitting is a clear error, probabilities have the right shape and range, the same
seed gives the same predictions, pickling and save/load round-trip, the order of the feature
columns does not matter, and there is no look-ahead (events at or after the cutoff change
nothing).
"""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.ingest import ingest_files
from churnguard.models.base import ChurnModel, NotFittedError, Snapshot
from churnguard.snapshots import build_snapshot
from churnguard.store import Store

from model_factories import MODEL_FACTORIES

NAMES = list(MODEL_FACTORIES)


@pytest.fixture(scope="module", params=NAMES)
def fitted(request, snapshots) -> ChurnModel:
    model = MODEL_FACTORIES[request.param]()
    return model.fit(snapshots.train, validation=snapshots.validation)


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_keeps_the_constructor_arguments(name, snapshots):
    model = MODEL_FACTORIES[name]()
    before = model.get_params()
    signature = inspect.signature(type(model).__init__)
    assert set(before) == {p for p in signature.parameters if p != "self"}
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY
               for n, p in signature.parameters.items() if n != "self")
    assert model.fit(snapshots.train, validation=snapshots.validation) is model
    after = model.get_params()
    assert after == before
    assert all(after[k] is before[k] for k in before)
    assert isinstance(model.name, str) and model.name == name


@pytest.mark.parametrize("name", NAMES)
def test_predicting_before_fit_raises_not_fitted(name, snapshots):
    model = MODEL_FACTORIES[name]()
    with pytest.raises(NotFittedError) as excinfo:
        model.predict_proba(snapshots.test)
    assert "not fitted yet; call fit() first" in str(excinfo.value)
    assert type(model).__name__ in str(excinfo.value)


def test_probabilities_have_one_value_per_row_in_unit_interval(fitted, snapshots):
    p = fitted.predict_proba(snapshots.test)
    assert isinstance(p, np.ndarray) and p.shape == (len(snapshots.test),)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert np.unique(p).size > 10  # a score, not a constant


def test_probabilities_beat_chance(fitted, snapshots):
    from churnguard.evaluate import roc_auc

    assert roc_auc(snapshots.test.y(), fitted.predict_proba(snapshots.test)) > 0.7


def test_same_seed_gives_identical_predictions(fitted, snapshots):
    again = MODEL_FACTORIES[fitted.name]().fit(snapshots.train, validation=snapshots.validation)
    np.testing.assert_array_equal(again.predict_proba(snapshots.test),
                                  fitted.predict_proba(snapshots.test))


def test_pickle_and_save_load_round_trip(fitted, snapshots, tmp_path: Path):
    expected = fitted.predict_proba(snapshots.test)
    clone = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(clone.predict_proba(snapshots.test), expected)
    path = tmp_path / "model.pkl"
    fitted.save(path)
    loaded = type(fitted).load(path)
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    np.testing.assert_array_equal(loaded.predict_proba(snapshots.test), expected)


def test_feature_column_order_does_not_matter(fitted, snapshots):
    test = snapshots.test
    shuffled = Snapshot(features=test.features[list(test.features.columns)[::-1]],
                        labels=test.labels, orders=test.orders, horizon_days=test.horizon_days)
    np.testing.assert_array_equal(fitted.predict_proba(shuffled), fitted.predict_proba(test))


def test_row_order_follows_the_snapshot(fitted, snapshots):
    test = snapshots.test
    order = np.arange(len(test))[::-1]
    reversed_ = Snapshot(features=test.features.iloc[order], labels=test.labels.iloc[order],
                         orders=test.orders, horizon_days=test.horizon_days)
    np.testing.assert_array_equal(fitted.predict_proba(reversed_),
                                  fitted.predict_proba(test)[order])


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
    definition = simulated_shop.definition
    cutoff = snapshots.test.index.get_level_values(1)[0]
    before = build_snapshot(future_store, definition=definition, cutoffs=[cutoff],
                            with_labels=False)
    pd.testing.assert_frame_equal(before.features, snapshots.test.features)
    expected = fitted.predict_proba(before)
    future_store.con.execute(
        """
        INSERT INTO events (event_id, user_id, ts, type, amount, rating, session_id, batch_id)
        SELECT 'future-' || u.user_id || '-' || k.k || '-' || t.type, u.user_id,
               ?::TIMESTAMP + to_seconds(k.k * 3600 * 7), t.type,
               CASE WHEN t.type = 'order' THEN 500.0 END,
               CASE WHEN t.type = 'review' THEN 1 END, 'future-session', 'future'
        FROM (SELECT DISTINCT user_id FROM events) u,
             (SELECT unnest([0, 1, 5, 40]) AS k) k,
             (SELECT unnest(['order', 'visit', 'view', 'support_ticket', 'review']) AS type) t
        """, [cutoff.to_pydatetime()])
    after = build_snapshot(future_store, definition=definition, cutoffs=[cutoff],
                           with_labels=False)
    pd.testing.assert_frame_equal(after.features, before.features)
    np.testing.assert_array_equal(fitted.predict_proba(after), expected)
