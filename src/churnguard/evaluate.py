"""Out-of-time backtest and the metrics of the leaderboard.

Metrics are plain functions of the labels ``y`` (1 = churned) and scores ``p`` (P(churn)):

>>> y = [0, 0, 1, 1]; p = [0.1, 0.4, 0.35, 0.8]
>>> roc_auc(y, p), round(pr_auc(y, p), 4), round(brier(y, p), 4)
(0.75, 0.8333, 0.1581)

The backtest is rolling-origin (Tashman 2000, "Out-of-sample tests of forecasting accuracy: an
analysis and review", International Journal of Forecasting 16(4), 437-450): models are fitted on
cutoffs whose whole horizon ends on or before the validation cutoff, and the validation cutoff's
horizon ends on or before the test cutoff, so no label used in fitting peeks past the moment of
prediction, and none overlaps the labels that early stopping and calibration are judged on::

    train ...  train    validation               test
    T-2h-30(K-1) T-2h     T-h     (horizon h)     T     (horizon h)
                  └─ labels end ─┘└──── labels end ────┘└──── labels end ────┘

The validation cutoff T-h (the newest one whose labels are known at T) is used for early stopping
and calibration; the K training cutoffs end their horizons on or before it (the newest at T-2h,
the others 30 days apart before that). Training cutoffs closer to the validation cutoff would
share part of its label window: a customer who stopped buying is labelled churned at both, with
almost the same features, so a tree model that recognises customers scores the validation cutoff
far better than any later one, early stopping keeps adding trees, and the calibration is fitted
on over-confident scores. On a 50,000-customer simulated shop that cost 0.006 ROC-AUC out of
time (training cutoffs 30, 60 and 90 days before validation: validation 0.886, test 0.871,
1,992 trees; purged as above: validation 0.872, test 0.877, 160 trees; docs/models.md). This is
"purging" (López de Prado 2018, "Advances in Financial Machine Learning", ch. 7.4.1).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from churnguard.config import ChurnDefinition
from churnguard.errors import ChurnguardError
from churnguard.labels import _event_span, cutoff_grid, to_cutoff
from churnguard.models.base import ChurnModel, fit_model
from churnguard.models.baselines import RecencyModel
from churnguard.models.btyd_churn import BTYDChurnModel
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.snapshots import build_snapshot
from churnguard.store import Store

__all__ = [
    "MODEL_FACTORIES",
    "BacktestError",
    "BacktestResult",
    "ModelMetrics",
    "OverlappingLabelsWarning",
    "backtest",
    "backtest_cutoffs",
    "brier",
    "cutoffs_that_fit",
    "ece",
    "lift_at",
    "metrics",
    "pr_auc",
    "purged_training_cutoffs",
    "recall_at",
    "roc_auc",
]


def _lazy(module: str, cls: str, **kwargs: Any) -> Callable[[], ChurnModel]:
    """A factory that imports its model on first use (the behaviour models import torch)."""

    def make() -> ChurnModel:
        return getattr(importlib.import_module(module), cls)(**kwargs)

    make.__name__ = cls
    return make


_BEHAVIOUR = "churnguard.models.behaviour.model"
#: Models the backtest knows by name.
MODEL_FACTORIES: dict[str, Callable[[], ChurnModel]] = {
    "recency": RecencyModel,
    "btyd": BTYDChurnModel,
    "gbdt": GBDTChurnModel,
    # Pretrained (CoLES, no labels) and fine-tuned; supervised from scratch; hybrid; stacked.
    "behaviour": _lazy(_BEHAVIOUR, "BehaviourChurnModel"),
    "behaviour_gru": _lazy(_BEHAVIOUR, "BehaviourChurnModel", encoder="gru", pretrain="none"),
    "behaviour_transformer": _lazy(_BEHAVIOUR, "BehaviourChurnModel", encoder="transformer",
                                   n_layers=2, pretrain="none"),
    "behaviour+gbdt": _lazy(_BEHAVIOUR, "BehaviourGBDTModel"),
    "ensemble": _lazy("churnguard.models.ensemble", "StackedEnsemble"),
}
ORACLE = "oracle"
CUTOFF_SPACING_DAYS = 30
#: Training cutoffs a backtest or a training run uses when the history allows.
DEFAULT_TRAIN_CUTOFFS = 3


class BacktestError(ChurnguardError, ValueError):
    """The store cannot support the requested backtest (with the reason and what to do)."""

    code = "cannot_backtest"


# -- metrics ---------------------------------------------------------------------------------------
def _arrays(y: Any, p: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=float).ravel()
    p = np.asarray(p, dtype=float).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} and {p.size}")
    if y.size == 0:
        raise ValueError("cannot score zero rows")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1 (no NaN)")
    if not np.isfinite(p).all():
        raise ValueError("scores must be finite; some are NaN or infinite")
    return y, p


def roc_auc(y: Any, p: Any) -> float:
    """Area under the ROC curve: P(score of a random churner > score of a random stayer), ties
    counting one half (the Mann-Whitney U statistic / (n1 n0)). NaN if only one class.

    >>> roc_auc([0, 1, 0, 1], [0.2, 0.2, 0.1, 0.9])
    0.875
    """
    y, p = _arrays(y, p)
    n1 = y.sum()
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)  # average ranks for ties
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def pr_auc(y: Any, p: Any) -> float:
    """Average precision: sum over thresholds of (R_k - R_{k-1}) P_k, thresholds at the distinct
    scores (the step-wise area, no interpolation; as sklearn's average_precision_score).
    NaN without churners."""
    y, p = _arrays(y, p)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(p_sorted) != 0), p_sorted.size - 1]
    tp = np.cumsum(y_sorted)[last_of_tie]
    predicted = last_of_tie + 1
    precision = tp / predicted
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def brier(y: Any, p: Any) -> float:
    """Mean squared difference between the probability and the 0/1 outcome (Brier 1950)."""
    y, p = _arrays(y, p)
    return float(np.mean((p - y) ** 2))


def ece(y: Any, p: Any, *, n_bins: int = 10) -> float:
    """Expected calibration error over ``n_bins`` EQUAL-FREQUENCY bins (Naeini et al. 2015,
    "Obtaining well calibrated probabilities using Bayesian binning", AAAI):
    sum_b (n_b / n) |mean(y_b) - mean(p_b)|.

    Rows are sorted by probability and cut into bins of (nearly) equal size; equal-frequency bins
    keep every bin populated when the probabilities crowd into a narrow range, where equal-width
    bins would leave most bins empty and the few full ones coarse.

    >>> ece([0, 0, 1, 1], [0.1, 0.3, 0.6, 0.8], n_bins=2)
    0.25
    """
    y, p = _arrays(y, p)
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for part in np.array_split(order, min(n_bins, y.size)):
        total += part.size * abs(y[part].mean() - p[part].mean())
    return float(total / y.size)


def _top(p: np.ndarray, fraction: float) -> np.ndarray:
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, math.ceil(fraction * p.size))
    # Ties at the boundary are broken by row order, so the result is deterministic.
    return np.argsort(-p, kind="stable")[:k]


def lift_at(y: Any, p: Any, fraction: float = 0.1) -> float:
    """Churn rate among the top ``fraction`` of rows by score (ceil(fraction * n) rows) divided by
    the overall churn rate. NaN without churners.

    >>> lift_at([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], [.9, .1, .1, .1, .1, .1, .1, .1, .1, .2])
    5.0
    """
    y, p = _arrays(y, p)
    base = y.mean()
    if base == 0:
        return float("nan")
    return float(y[_top(p, fraction)].mean() / base)


def recall_at(y: Any, p: Any, fraction: float = 0.1) -> float:
    """Share of all churners found in the top ``fraction`` of rows by score. NaN without
    churners."""
    y, p = _arrays(y, p)
    if y.sum() == 0:
        return float("nan")
    return float(y[_top(p, fraction)].sum() / y.sum())


@dataclass(frozen=True, kw_only=True)
class ModelMetrics:
    """One leaderboard row."""

    name: str
    roc_auc: float
    pr_auc: float
    brier: float
    ece: float
    lift_at_10: float
    recall_at_10: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (_json_float(v) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def metrics(name: str, y: Any, p: Any) -> ModelMetrics:
    """All leaderboard metrics of one model's scores."""
    return ModelMetrics(name=name, roc_auc=roc_auc(y, p), pr_auc=pr_auc(y, p), brier=brier(y, p),
                        ece=ece(y, p), lift_at_10=lift_at(y, p, 0.1),
                        recall_at_10=recall_at(y, p, 0.1))


def _json_float(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


# -- cutoffs -------------------------------------------------------------------------------------
def _day(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d") if value.time() == dt.time(0) else value.isoformat()


def newest_labelled_cutoff(store: Store, *, definition: ChurnDefinition) -> dt.datetime:
    """The newest midnight whose whole horizon the data covers (its labels are known)."""
    grid = cutoff_grid(store, definition=definition, count=1, min_history_days=0)
    if not grid:
        first, last = _event_span(store)
        raise BacktestError(
            f"the events span {first:%Y-%m-%d} to {last:%Y-%m-%d}: no cutoff has a fully "
            f"observed {definition.horizon_days}-day horizon; ingest more history or use a "
            "shorter horizon")
    return grid[-1]


class OverlappingLabelsWarning(UserWarning):
    """Training cutoffs whose label windows reach past the validation cutoff."""


def purged_training_cutoffs(validation: dt.datetime, horizon: dt.timedelta,
                            k: int) -> list[dt.datetime]:
    """The K training cutoffs of a validation cutoff, oldest first: the newest whose label window
    ends on the validation cutoff (``validation - horizon``), the others 30 days apart before it.

    >>> v = dt.datetime(2025, 12, 26)
    >>> [c.date().isoformat() for c in purged_training_cutoffs(v, dt.timedelta(days=90), 3)]
    ['2025-07-29', '2025-08-28', '2025-09-27']
    """
    newest = validation - horizon
    return [newest - dt.timedelta(days=CUTOFF_SPACING_DAYS * i) for i in range(k - 1, -1, -1)]


def cutoffs_that_fit(validation: dt.datetime, *, first: dt.datetime,
                     definition: ChurnDefinition, most: int = DEFAULT_TRAIN_CUTOFFS) -> int:
    """How many purged training cutoffs (up to ``most``) have ``min(lookback, 90)`` days of
    events before them, given a validation cutoff and the first event; 0 when none has."""
    history = dt.timedelta(days=min(definition.lookback_days, 90))
    room = validation - dt.timedelta(days=definition.horizon_days) - (first + history)
    if room < dt.timedelta(0):
        return 0
    return min(most, room // dt.timedelta(days=CUTOFF_SPACING_DAYS) + 1)


def backtest_cutoffs(
    store: Store,
    *,
    definition: ChurnDefinition,
    test_cutoff: object = None,
    train_cutoffs: int | Sequence[object] | None = None,
    candidates: Sequence[dt.datetime] | None = None,
) -> tuple[dt.datetime, list[dt.datetime], dt.datetime]:
    """(test cutoff, training cutoffs oldest first, validation cutoff) of a backtest.

    ``train_cutoffs`` None (the default): up to 3 training cutoffs, as many as the history allows
    (at least one). As an int K: the validation cutoff is ``test - horizon`` and the K training
    cutoffs end their horizons on or before it: ``validation - horizon`` and 30, 60, ... days
    before that (:func:`purged_training_cutoffs`). As a list of dates: the newest is the
    validation cutoff, whose horizon must end on or before the test cutoff, and the others are
    the training cutoffs, whose horizons should end on or before the validation cutoff (an
    :class:`OverlappingLabelsWarning` otherwise). Without
    ``test_cutoff``: the newest midnight whose horizon the data fully covers, or, with
    ``candidates`` (e.g. the cutoffs the simulator computed truth at), the newest candidate on or
    before it.
    """
    horizon = dt.timedelta(days=definition.horizon_days)
    first, last = _event_span(store)
    if last is None:
        raise BacktestError("the store has no events; ingest events first")
    if test_cutoff is None:
        test = newest_labelled_cutoff(store, definition=definition)
        if candidates is not None:
            earlier = sorted(to_cutoff(c) for c in candidates if to_cutoff(c) <= test)
            if not earlier:
                raise BacktestError(
                    f"none of the given candidate cutoffs is on or before {_day(test)}, the newest "
                    "cutoff with a fully observed horizon; pass test_cutoff explicitly")
            test = earlier[-1]
    else:
        test = to_cutoff(test_cutoff)
        if test + horizon > last:
            raise BacktestError(
                f"test cutoff {_day(test)}: its {definition.horizon_days}-day horizon ends "
                f"{_day(test + horizon)}, after the last event ({last:%Y-%m-%d %H:%M}), so its "
                "labels are not known; choose a test cutoff on or before "
                f"{_day(dt.datetime.combine((last - horizon).date(), dt.time(0)))}")

    if train_cutoffs is None:
        train_cutoffs = max(1, cutoffs_that_fit(test - horizon, first=first,
                                                definition=definition))
    if isinstance(train_cutoffs, (int, np.integer)) and not isinstance(train_cutoffs, bool):
        k = int(train_cutoffs)
        if k < 1:
            raise BacktestError(f"train_cutoffs must be at least 1, got {k}")
        validation = test - horizon
        fit = [*purged_training_cutoffs(validation, horizon, k), validation]
    else:
        fit = sorted({to_cutoff(c) for c in train_cutoffs})
        if len(fit) < 2:
            raise BacktestError(
                "give at least two training cutoffs: the newest is the validation cutoff (early "
                "stopping and calibration), the others are for fitting")
        validation = fit[-1]
        if validation + horizon > test:
            raise BacktestError(
                f"validation cutoff {_day(validation)}: its horizon ends "
                f"{_day(validation + horizon)}, after the test cutoff {_day(test)}; its labels "
                f"would look into the test period. Use cutoffs on or before {_day(test - horizon)}")
        late = [c for c in fit[:-1] if c + horizon > validation]
        if late:
            # Allowed, since the test labels stay unseen, but the model will be worse for it.
            warnings.warn(
                f"training cutoff {_day(late[0])}: its horizon ends {_day(late[0] + horizon)}, "
                f"after the validation cutoff {_day(validation)}, so its labels overlap the "
                "validation labels (the same customers' outcomes): early stopping and "
                "calibration are judged on what the model has partly seen. Training cutoffs on "
                f"or before {_day(validation - horizon)} avoid it", OverlappingLabelsWarning,
                stacklevel=2)
    history = dt.timedelta(days=min(definition.lookback_days, 90))
    if fit[0] < first + history:
        most = cutoffs_that_fit(fit[-1], first=first, definition=definition, most=len(fit))
        hint = (f"at most {most} training cutoff(s) fit before this test cutoff"
                if most >= 1 else "no training cutoff fits before this test cutoff")
        raise BacktestError(
            f"not enough history for {len(fit) - 1} training cutoff(s) + validation + test: the "
            f"earliest cutoff {_day(fit[0])} has only {(fit[0] - first).days} days of events "
            f"before it (need {history.days}; the events start {first:%Y-%m-%d}); {hint}. Use "
            "fewer training cutoffs, a later test cutoff, a shorter horizon, or ingest more "
            "history")
    return test, fit[:-1], fit[-1]


# -- backtest ------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class BacktestResult:
    """What a backtest measured. ``predictions``: one row per test (user_id, cutoff) with the
    label ``churned`` and one column of P(churn) per model (and ``oracle``)."""

    horizon_days: int
    test_cutoff: dt.datetime
    train_cutoffs: list[dt.datetime]
    validation_cutoff: dt.datetime
    n_test: int
    base_rate: float
    metrics: list[ModelMetrics]
    predictions: pd.DataFrame
    models: dict[str, ChurnModel] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    n_train: int = 0
    n_validation: int = 0

    def leaderboard(self) -> pd.DataFrame:
        """The metrics as a table, one row per model, best ROC-AUC first."""
        frame = pd.DataFrame([m.__dict__ for m in self.metrics])
        return frame.sort_values("roc_auc", ascending=False, kind="stable").reset_index(drop=True)

    def metric(self, name: str) -> ModelMetrics:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"no model {name!r} in this backtest; it has "
                       f"{[m.name for m in self.metrics]}")

    def oracle_gap(self) -> dict[str, float]:
        """Per model: the oracle's ROC-AUC minus the model's (empty without truth)."""
        names = [m.name for m in self.metrics]
        if ORACLE not in names:
            return {}
        best = self.metric(ORACLE).roc_auc
        return {m.name: best - m.roc_auc for m in self.metrics if m.name != ORACLE}

    def to_dict(self) -> dict[str, Any]:
        """The ``backtest --json`` document (DESIGN.md), with a few extra keys."""
        document: dict[str, Any] = {
            "horizon_days": int(self.horizon_days),
            "test_cutoff": _day(self.test_cutoff),
            "train_cutoffs": [_day(c) for c in self.train_cutoffs],
            "n_test": int(self.n_test),
            "base_rate": _json_float(self.base_rate),
            "models": [m.to_dict() for m in self.metrics],
            "validation_cutoff": _day(self.validation_cutoff),
            "n_train": int(self.n_train),
            "n_validation": int(self.n_validation),
        }
        gap = self.oracle_gap()
        if gap:
            document["oracle_auc_gap"] = {k: _json_float(v) for k, v in gap.items()}
        return document

    def to_json(self, path: str | Path | None = None) -> str:
        """The document as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2) + "\n"
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text


def _resolve_models(models: Sequence[str | ChurnModel]) -> list[ChurnModel]:
    resolved: list[ChurnModel] = []
    for m in models:
        if isinstance(m, ChurnModel):
            resolved.append(m)
        elif m in MODEL_FACTORIES:
            resolved.append(MODEL_FACTORIES[m]())
        else:
            raise BacktestError(f"unknown model {m!r}; known: {', '.join(MODEL_FACTORIES)}")
    names = [m.name for m in resolved]
    if len(set(names)) != len(names) or ORACLE in names:
        raise BacktestError(f"model names must be distinct and not {ORACLE!r}; got {names}")
    return resolved


def _truth_scores(truth: pd.DataFrame, test: dt.datetime, index: pd.MultiIndex) -> np.ndarray:
    missing = {"user_id", "cutoff", "p_churn"} - set(truth.columns)
    if missing:
        raise BacktestError(f"truth needs columns user_id, cutoff, p_churn (missing "
                            f"{sorted(missing)}); pass the simulator's truth/churn.parquet")
    cutoffs = pd.to_datetime(truth["cutoff"])
    if cutoffs.dt.tz is not None:
        cutoffs = cutoffs.dt.tz_convert("UTC").dt.tz_localize(None)
    at_test = truth.loc[(cutoffs == pd.Timestamp(test)).to_numpy()]
    if at_test.empty:
        known = sorted({_day(c.to_pydatetime()) for c in cutoffs.unique()})
        raise BacktestError(f"truth has no rows at the test cutoff {_day(test)}; its cutoffs are "
                            f"{known}; pick one of them as test_cutoff")
    p = (at_test.assign(user_id=at_test["user_id"].astype(str))
         .drop_duplicates("user_id").set_index("user_id")["p_churn"]
         .reindex(index.get_level_values(0).astype(str)))
    if p.isna().any():
        raise BacktestError(f"truth has no p_churn for {int(p.isna().sum())} of {len(p)} test "
                            f"rows (e.g. user {p.index[p.isna()][0]!r}); is it the truth of the "
                            "data in this store?")
    return p.to_numpy(dtype=float)


def backtest(
    store: Store,
    *,
    definition: ChurnDefinition,
    test_cutoff: object = None,
    train_cutoffs: int | Sequence[object] | None = None,
    models: Sequence[str | ChurnModel] = ("recency", "btyd", "gbdt"),
    truth: pd.DataFrame | None = None,
    progress: Callable[[str], None] | None = None,
) -> BacktestResult:
    """Fit each model on the training cutoffs (validation: the newest of them), score the test
    cutoff, and measure. See the module docstring for the cutoff arithmetic.

    ``models``: names from :data:`MODEL_FACTORIES` or unfitted model instances. ``truth`` (the
    simulator's user_id, cutoff, p_churn) adds an ``oracle`` row scored with the true
    probabilities; without ``test_cutoff`` the test cutoff is then the newest truth cutoff with a
    fully observed horizon.
    """
    say = progress or (lambda message: None)
    candidates = None
    if truth is not None and test_cutoff is None and "cutoff" in truth.columns:
        stamps = pd.to_datetime(truth["cutoff"].drop_duplicates())
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        candidates = [s.to_pydatetime() for s in stamps]
    test, train_list, validation = backtest_cutoffs(
        store, definition=definition, test_cutoff=test_cutoff, train_cutoffs=train_cutoffs,
        candidates=candidates)
    chosen = _resolve_models(models)
    say(f"cutoffs: train {[_day(c) for c in train_list]}, validation {_day(validation)}, "
        f"test {_day(test)}")

    started = time.perf_counter()
    everything = build_snapshot(store, definition=definition,
                                cutoffs=[*train_list, validation, test])
    seconds = {"snapshot": time.perf_counter() - started}
    cutoffs = everything.index.get_level_values(1)
    train = everything.subset(np.asarray(cutoffs.isin(pd.DatetimeIndex(train_list))))
    valid = everything.subset(np.asarray(cutoffs == pd.Timestamp(validation)))
    test_snap = everything.subset(np.asarray(cutoffs == pd.Timestamp(test)))
    for name, snap, when in (("training", train, train_list), ("validation", valid, [validation]),
                             ("test", test_snap, [test])):
        if len(snap) == 0:
            raise BacktestError(f"the {name} cutoff(s) {[_day(c) for c in when]} have an empty "
                                "population (nobody active in the lookback window)")
    y_test = test_snap.y()
    say(f"snapshot: {len(train)} training, {len(valid)} validation, {len(test_snap)} test rows "
        f"({seconds['snapshot']:.1f} s)")

    predictions = pd.DataFrame({"churned": y_test}, index=test_snap.index)
    rows: list[ModelMetrics] = []
    fitted: dict[str, ChurnModel] = {}
    for model in chosen:
        t0 = time.perf_counter()
        fit_model(model, train, validation=valid, progress=say)
        p = model.predict_proba(test_snap)
        seconds[model.name] = time.perf_counter() - t0
        predictions[model.name] = p
        rows.append(metrics(model.name, y_test, p))
        fitted[model.name] = model
        say(f"{model.name}: ROC-AUC {rows[-1].roc_auc:.4f} ({seconds[model.name]:.1f} s)")
    if truth is not None:
        p = _truth_scores(truth, test, test_snap.index)
        predictions[ORACLE] = p
        rows.append(metrics(ORACLE, y_test, p))
    return BacktestResult(
        horizon_days=int(definition.horizon_days), test_cutoff=test, train_cutoffs=train_list,
        validation_cutoff=validation, n_test=len(test_snap), base_rate=float(y_test.mean()),
        metrics=rows, predictions=predictions, models=fitted, seconds=seconds,
        n_train=len(train), n_validation=len(valid),
    )
