"""The learner contract as checks a test runs over every learner (river's ``check_estimator``).

Every learner in churnguard -- each kind of :mod:`churnguard.models.catalog`, the uplift learners
(:mod:`churnguard.intervene.uplift`) and the value models (:mod:`churnguard.intervene.value`) --
follows scikit-learn's habits (STYLE.md #1), whatever its data:

- the constructor takes keyword-only arguments and only stores them, unchanged, under their own
  names (:func:`check_constructor`);
- ``fit`` returns the learner itself and leaves those arguments as they were
  (:func:`check_fit_returns_self`);
- predicting before fitting raises :class:`~sklearn.exceptions.NotFittedError` naming the class
  (:func:`check_unfitted`);
- fitting again with the same seed gives the same predictions (:func:`check_same_seed`);
- pickling, and ``save``/``load`` where the learner has them, give equal predictions
  (:func:`check_round_trip`);
- a learner that reads a snapshot sees nothing at or after its cutoff
  (:func:`check_no_look_ahead`).

Churn models add checks of their own: one probability per row in [0, 1]
(:func:`check_probabilities`), and neither the order of the feature columns nor the order of
the rows changes a customer's score (:func:`check_feature_order`, :func:`check_row_order`).
:func:`check_churn_model` runs every check that needs no store on one churn model. Two more
need labelled, out-of-time data and bounds measured on it, so the caller gives both: a model
that claims calibrated probabilities has a bounded ECE, a mean probability near the base rate
and beats the scores it calibrates (:func:`check_calibration`, with
:func:`uncalibrated_scores`); a model that claims to rank better than a baseline does so by a
margin (:func:`check_beats_baselines`).

A :class:`Case` says how to fit and predict one learner on some data; the checks take it, so
learners with different ``fit`` signatures share them. A failed check raises AssertionError
saying what broke.

>>> import numpy as np
>>> from churnguard.intervene.value import GammaGammaModel
>>> x, m = np.array([1, 2, 3, 4, 5, 6]), np.array([10.0, 12, 9, 30, 11, 14])
>>> case = Case(make=GammaGammaModel, fit=lambda model: model.fit(x, m),
...             predict=lambda model: model.conditional_expected_spend(x, m))
>>> check_constructor(case); check_unfitted(case)
>>> fitted = check_fit_returns_self(case)
>>> check_same_seed(case, fitted)
"""

from __future__ import annotations

import inspect
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from churnguard.config import ChurnDefinition
from churnguard.snapshots import Snapshot, build_snapshot
from churnguard.store import Store

__all__ = [
    "Calibration",
    "Case",
    "check_beats_baselines",
    "check_calibration",
    "check_churn_model",
    "check_constructor",
    "check_feature_order",
    "check_fit_returns_self",
    "check_no_look_ahead",
    "check_probabilities",
    "check_round_trip",
    "check_row_order",
    "check_same_seed",
    "check_unfitted",
    "churn_case",
    "uncalibrated_scores",
]


@dataclass(frozen=True, kw_only=True)
class Case:
    """One learner and its data: ``make()`` builds it unfitted, ``fit(learner)`` fits it on the
    training data (returning what its ``fit`` returns), ``predict(learner)`` predicts the test
    data (an array or a DataFrame)."""

    make: Callable[[], Any]
    fit: Callable[[Any], Any]
    predict: Callable[[Any], Any]


def churn_case(make: Callable[[], Any], *, train: Snapshot, validation: Snapshot | None,
               test: Snapshot) -> Case:
    """The :class:`Case` of a churn model: fitted on ``train`` (early stopping and calibration
    on ``validation``), P(churn) on ``test``."""
    return Case(make=make, fit=lambda model: model.fit(train, validation=validation),
                predict=lambda model: model.predict_proba(test))


def _require(condition: object, message: str) -> None:
    # Not `assert`: the checks must hold under `python -O` too.
    if not condition:
        raise AssertionError(message)


def _arguments(learner: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(learner).items() if not k.endswith("_") and
            not k.startswith("_")}


def _comparable(value: Any) -> Any:
    """Constructor arguments in a form that compares by value: a learner among them (an
    ensemble's members) as its class and its own arguments."""
    if hasattr(value, "get_params"):
        return type(value), {k: _comparable(v) for k, v in _arguments(value).items()}
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_comparable(v) for v in value)
    return value


def _same(a: Any, b: Any, what: str) -> None:
    if isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, obj=what)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)


def check_constructor(case: Case) -> None:
    """Every constructor parameter is keyword-only and stored unchanged under its name; the
    constructor sets nothing else (no learned state, no private helpers)."""
    learner = case.make()
    cls = type(learner).__name__
    parameters = {n: p for n, p in inspect.signature(type(learner).__init__).parameters.items()
                  if n != "self"}
    positional = [n for n, p in parameters.items() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    _require(not positional, f"{cls}.__init__ takes {positional} positionally; make them "
             "keyword-only (after `*`)")
    _require(set(vars(learner)) == set(parameters),
             f"{cls}.__init__ must store exactly its arguments: it stores {sorted(vars(learner))}"
             f", its parameters are {sorted(parameters)}")


def check_fit_returns_self(case: Case) -> Any:
    """``fit`` returns the learner and leaves its constructor arguments as they were (the
    same objects); returns the fitted learner."""
    learner = case.make()
    before = _arguments(learner)
    _require(case.fit(learner) is learner, f"{type(learner).__name__}.fit must return self")
    after = _arguments(learner)
    _require(after == before and all(after[k] is before[k] for k in before),
             f"{type(learner).__name__}.fit changed its constructor arguments")
    return learner


def check_unfitted(case: Case) -> None:
    """Predicting before fitting raises NotFittedError, saying which class is not fitted."""
    learner = case.make()
    try:
        case.predict(learner)
    except NotFittedError as exc:
        _require("not fitted yet" in str(exc) and type(learner).__name__ in str(exc),
                 f"the NotFittedError should name {type(learner).__name__} and say it is not "
                 f"fitted yet; it says {exc}")
    else:
        raise AssertionError(f"{type(learner).__name__} predicted before fit")


def check_same_seed(case: Case, fitted: Any) -> None:
    """A second learner built and fitted the same way predicts exactly what ``fitted`` does."""
    _same(case.predict(case.fit(case.make())), case.predict(fitted),
          f"{type(fitted).__name__}: same seed, different predictions")


def check_round_trip(case: Case, fitted: Any, folder: Path) -> None:
    """Pickling, and ``save``/``load`` where the class has them, keep the predictions."""
    expected = case.predict(fitted)
    _same(case.predict(pickle.loads(pickle.dumps(fitted))), expected,
          f"{type(fitted).__name__}: pickling changed the predictions")
    if hasattr(fitted, "save") and hasattr(type(fitted), "load"):
        path = Path(folder) / "model.pkl"
        fitted.save(path)
        loaded = type(fitted).load(path)
        _require(type(loaded) is type(fitted)
                 and _comparable(_arguments(loaded)) == _comparable(_arguments(fitted)),
                 f"{type(fitted).__name__}.load gave another class or other arguments")
        _same(case.predict(loaded), expected,
              f"{type(fitted).__name__}: save/load changed the predictions")


def check_probabilities(model: Any, snapshot: Snapshot) -> None:
    """One finite probability per row, in [0, 1], and not a constant."""
    p = model.predict_proba(snapshot)
    _require(isinstance(p, np.ndarray) and p.shape == (len(snapshot),),
             f"{model.name}: predict_proba must give an array of shape ({len(snapshot)},)")
    _require(np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all(),
             f"{model.name}: probabilities must be finite and in [0, 1]")
    _require(np.unique(p).size > 10, f"{model.name}: the scores are (almost) constant")


def check_feature_order(model: Any, snapshot: Snapshot) -> None:
    """Reversing the feature columns changes no score."""
    shuffled = Snapshot(features=snapshot.features[list(snapshot.features.columns)[::-1]],
                        labels=snapshot.labels, orders=snapshot.orders,
                        horizon_days=snapshot.horizon_days, meta=dict(snapshot.meta))
    _same(model.predict_proba(shuffled), model.predict_proba(snapshot),
          f"{model.name}: the order of the feature columns changed the scores")


def check_row_order(model: Any, snapshot: Snapshot, *, atol: float = 0.0) -> None:
    """Scores follow the snapshot's rows: reversed rows, reversed scores (equal within ``atol``:
    a float32 network scores batches of similar length, and other batch-mates change the order
    of its sums in the last bits)."""
    order = np.arange(len(snapshot))[::-1]
    labels = None if snapshot.labels is None else snapshot.labels.iloc[order]
    reversed_ = Snapshot(features=snapshot.features.iloc[order], labels=labels,
                         orders=snapshot.orders, horizon_days=snapshot.horizon_days,
                         meta=dict(snapshot.meta))
    np.testing.assert_allclose(model.predict_proba(reversed_), model.predict_proba(snapshot)[order],
                               rtol=0, atol=atol, err_msg=f"{model.name}: the scores do not "
                               "follow the snapshot's row order")


def check_no_look_ahead(predict: Callable[[Snapshot], Any], *, store: Store,
                        definition: ChurnDefinition, cutoff: Any) -> Snapshot:
    """Events at or after ``cutoff`` (orders, visits, views, tickets, reviews, for every
    customer) change neither the snapshot's features nor ``predict``'s output. This WRITES those
    events into ``store``: pass a copy. Returns the snapshot built before writing them."""
    before = build_snapshot(store, definition=definition, cutoffs=[cutoff], with_labels=False)
    expected = predict(before)
    store.con.execute(
        """
        INSERT INTO events (event_id, user_id, ts, type, amount, rating, session_id, batch_id)
        SELECT 'future-' || u.user_id || '-' || k.k || '-' || t.type, u.user_id,
               ?::TIMESTAMP + to_seconds(k.k * 3600 * 7), t.type,
               CASE WHEN t.type = 'order' THEN 500.0 END,
               CASE WHEN t.type = 'review' THEN 1 END, 'future-session', 'future'
        FROM (SELECT DISTINCT user_id FROM events) u,
             (SELECT unnest([0, 1, 5, 40]) AS k) k,
             (SELECT unnest(['order', 'visit', 'view', 'support_ticket', 'review']) AS type) t
        """, [pd.Timestamp(cutoff).to_pydatetime()])
    after = build_snapshot(store, definition=definition, cutoffs=[cutoff], with_labels=False)
    pd.testing.assert_frame_equal(after.features, before.features)
    _same(predict(after), expected, "events at or after the cutoff changed the predictions")
    return before


def check_churn_model(make: Callable[[], Any], *, train: Snapshot, validation: Snapshot | None,
                      test: Snapshot, folder: Path, row_atol: float = 0.0) -> Any:
    """Every check that needs no store, on one churn model; returns the fitted model.
    ``row_atol``: see :func:`check_row_order`."""
    case = churn_case(make, train=train, validation=validation, test=test)
    check_constructor(case)
    check_unfitted(case)
    fitted = check_fit_returns_self(case)
    check_probabilities(fitted, test)
    check_same_seed(case, fitted)
    check_round_trip(case, fitted, folder)
    check_feature_order(fitted, test)
    check_row_order(fitted, test, atol=row_atol)
    return fitted


# -- quality on labelled, out-of-time data ---------------------------------------------------------
def _ece(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    # The backtest's ECE (churnguard.evaluate.ece, a layer above this one): equal-frequency
    # bins, sum_b (n_b / n) |mean(y_b) - mean(p_b)|. The contract test checks they agree.
    order = np.argsort(p, kind="stable")
    return float(sum(part.size * abs(y[part].mean() - p[part].mean())
                     for part in np.array_split(order, min(n_bins, y.size))) / y.size)


def _labelled(snapshot: Snapshot) -> np.ndarray:
    _require(snapshot.labels is not None and len(snapshot) > 0,
             "the quality checks need a labelled, non-empty snapshot")
    y = snapshot.y().astype(float)
    _require(np.unique(y).size == 2, "the quality checks need churned and retained rows")
    return y


def uncalibrated_scores(model: Any) -> dict[str, Callable[[Snapshot], np.ndarray]]:
    """What ``model`` calibrates, by name, as functions of a snapshot: its own score before
    calibration (``predict_raw``), or, for a stacked model (``members_``), each member's input to
    the combiner (the member's ``predict_raw``, or its probability where it has none). Empty for
    a model whose raw score is no probability (the recency rule's day count).

    >>> from churnguard.models.gbdt import GBDTChurnModel
    >>> list(uncalibrated_scores(GBDTChurnModel()))
    ['raw']
    """
    if hasattr(model, "predict_raw"):
        return {"raw": model.predict_raw}
    members = getattr(model, "members_", None) or {}
    return {f"{name} raw" if hasattr(member, "predict_raw") else name:
            getattr(member, "predict_raw", member.predict_proba)
            for name, member in members.items()}


@dataclass(frozen=True, kw_only=True)
class Calibration:
    """What :func:`check_calibration` measured: the ECE, Brier score and mean of the
    probabilities, the base rate, and (ECE, Brier) of each uncalibrated score."""

    ece: float
    brier: float
    mean: float
    base_rate: float
    uncalibrated: dict[str, tuple[float, float]]


def check_calibration(model: Any, snapshot: Snapshot, *, max_ece: float, max_mean_gap: float,
                      uncalibrated: dict[str, Callable[[Snapshot], np.ndarray]] | None = None,
                      ) -> Calibration:
    """The probabilities on ``snapshot`` (labelled, out of time: after the data the model and
    its calibrator saw) are calibrated:

    - the expected calibration error (10 equal-frequency bins) is at most ``max_ece``;
    - the mean probability is within ``max_mean_gap`` of the base rate (what a campaign's
      budget is sized on);
    - calibration helps: both the ECE and the Brier score are below those of each
      ``uncalibrated`` score (:func:`uncalibrated_scores`), so a calibrator that does nothing,
      or harms, fails.

    Every broken condition is named in one AssertionError. Returns what was measured.
    """
    y = _labelled(snapshot)
    p = np.asarray(model.predict_proba(snapshot), dtype=float)
    raw = {name: np.clip(np.asarray(score(snapshot), dtype=float), 0.0, 1.0)
           for name, score in (uncalibrated or {}).items()}
    measured = Calibration(ece=_ece(y, p), brier=float(np.mean((p - y) ** 2)),
                           mean=float(p.mean()), base_rate=float(y.mean()),
                           uncalibrated={name: (_ece(y, r), float(np.mean((r - y) ** 2)))
                                         for name, r in raw.items()})
    broken = []
    if not measured.ece <= max_ece:
        broken.append(f"ECE {measured.ece:.4f} above the bound {max_ece}")
    if not abs(measured.mean - measured.base_rate) <= max_mean_gap:
        broken.append(f"mean probability {measured.mean:.4f} more than {max_mean_gap} from the "
                      f"base rate {measured.base_rate:.4f}")
    for name, (ece, brier) in measured.uncalibrated.items():
        if not (measured.ece < ece and measured.brier < brier):
            broken.append(f"calibration does not improve on {name!r}: ECE {measured.ece:.4f} "
                          f"against {ece:.4f}, Brier {measured.brier:.4f} against {brier:.4f}")
    _require(not broken, f"{model.name} is not calibrated on {len(y)} out-of-time rows: "
             + "; ".join(broken))
    return measured


def check_beats_baselines(model: Any, snapshot: Snapshot,
                          baselines: dict[str, tuple[Any, float]]) -> dict[str, float]:
    """``model`` ranks the labelled ``snapshot`` better than each fitted baseline by its margin:
    ROC-AUC(model) >= ROC-AUC(baseline) + margin, for ``baselines`` = {name: (baseline,
    margin)}. Every baseline it fails to beat is named in one AssertionError. Returns the
    ROC-AUC of the model and of each baseline, by name."""
    y = _labelled(snapshot)
    auc = {model.name: float(roc_auc_score(y, model.predict_proba(snapshot)))}
    broken = []
    for name, (baseline, margin) in baselines.items():
        auc[name] = float(roc_auc_score(y, baseline.predict_proba(snapshot)))
        if not auc[model.name] >= auc[name] + margin:
            broken.append(f"{name} ({auc[name]:.4f}) by {margin}")
    _require(not broken, f"{model.name} (ROC-AUC {auc[model.name]:.4f}) does not beat "
             + ", ".join(broken))
    return auc
