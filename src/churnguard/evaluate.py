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
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from churnguard.config import ChurnDefinition
# The backtest calendar lives in churnguard.cutoffs; its names stay importable from here.
from churnguard.cutoffs import (
    BacktestError,
    OverlappingLabelsWarning,
    backtest_cutoffs,
    cutoffs_that_fit,
    purged_training_cutoffs,
)
from churnguard.cutoffs import cutoff_text as _day
from churnguard.models.base import ChurnModel, fit_model
from churnguard.models.catalog import KINDS
from churnguard.snapshots import build_snapshot
from churnguard.store import Store

__all__ = [
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


ORACLE = "oracle"


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
        elif m in KINDS:
            resolved.append(KINDS[m].build())
        else:
            raise BacktestError(f"unknown model {m!r}; known: {', '.join(KINDS)}")
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

    ``models``: names from :data:`~churnguard.models.catalog.KINDS` or unfitted model
    instances. ``truth`` (the simulator's user_id, cutoff, p_churn) adds an ``oracle`` row scored
    with the true probabilities; without ``test_cutoff`` the test cutoff is then the newest truth
    cutoff with a fully observed horizon.
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
