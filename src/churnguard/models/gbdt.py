"""Gradient-boosted trees (LightGBM) on the engineered features plus the BTYD outputs.

Fitting, in order:

1. the BTYD sub-model (:class:`BTYDChurnModel`) is fitted on the training rows' order histories,
   and its three outputs (P(alive), expected orders and P(no purchase) in the horizon) join the
   snapshot features as columns ``btyd_*``;
2. LightGBM (Ke et al. 2017, "LightGBM: A Highly Efficient Gradient Boosting Decision Tree",
   NeurIPS) learns a binary classifier on the training rows, with early stopping on the
   out-of-time ``validation`` snapshot (its log-loss);
3. a calibrator (:mod:`churnguard.models.calibration`) maps the booster's probabilities to
   calibrated ones, fitted on the validation snapshot's predictions.

Early stopping and calibration both use the validation snapshot (``validation_split="shared"``,
the default). Early stopping picks one number (the tree count) from the validation log-loss, a
small leak into the calibrator; halving the validation users (``"halves"``: one half for
early stopping, the other for calibration) removes it but fits the calibrator on half the rows.
benchmarks/RESULTS.md (section "models") gives the measured comparison behind the default.

Why calibrate out of time at all: the training cutoffs are older, and a shop's churn rate drifts
(in the simulated shop the population accumulates lapsed customers and the rate rises from cutoff
to cutoff), so a booster fitted on older cutoffs is miscalibrated on the newest one even when it
ranks well. The validation cutoff is the newest labelled one and carries the drift.

``explain(snapshot)`` gives LightGBM's exact TreeSHAP contributions (Lundberg et al. 2020, "From
local explanations to global understanding with explainable AI for trees", Nature Machine
Intelligence 2, 56-67) in the booster's log-odds, before calibration: per row,
``sum(contributions) + bias = logit(uncalibrated probability)``.
"""

from __future__ import annotations

import os
import zlib
from typing import ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd

from churnguard.models.base import ChurnModel, store_arguments
from churnguard.models.btyd_churn import BTYDChurnModel
from churnguard.models.calibration import CALIBRATIONS, make_calibrator
from churnguard.snapshots import Snapshot

__all__ = ["GBDTChurnModel"]

_SPLITS = ("shared", "halves")


def _user_half(index: pd.MultiIndex, seed: int) -> np.ndarray:
    """A stable 50/50 split of users (the same user is on the same side at every cutoff)."""
    users = index.get_level_values(0).astype(str)
    codes = np.fromiter((zlib.crc32(f"{seed}:{u}".encode()) for u in users), dtype=np.uint64,
                        count=len(users))
    return (codes % 2).astype(bool)


class GBDTChurnModel(ChurnModel):
    """LightGBM churn classifier with out-of-time early stopping and calibration.

    Hyper-parameters (keyword-only, stored unchanged): ``n_estimators`` (most boosting rounds),
    ``learning_rate``, ``num_leaves``, ``min_child_samples``, ``feature_fraction``,
    ``reg_lambda``, ``early_stopping_rounds``, ``calibration`` ("isotonic", "platt" or "none"),
    ``validation_split`` ("shared" or "halves", see the module docstring), ``seed``,
    ``use_btyd`` (add the BTYD outputs as features), ``btyd_model`` ("mbg", "bg", "pareto"),
    ``n_jobs`` (threads; default ``os.cpu_count()``).

    Without a ``validation`` snapshot, the newest cutoff of ``train`` is held out in its place
    (or, with a single cutoff, a seeded half of the users).

    Fitted attributes: ``booster_``, ``best_iteration_``, ``feature_names_`` (the model's
    columns, snapshot features then ``btyd_*``), ``snapshot_features_`` (the snapshot columns it
    needs: pass them to ``build_snapshot(features=...)``), ``categories_``, ``btyd_``,
    ``calibrator_``.
    """

    name: ClassVar[str] = "gbdt"

    def __init__(
        self,
        *,
        n_estimators: int = 2000,
        learning_rate: float = 0.03,
        num_leaves: int = 31,
        min_child_samples: int = 50,
        feature_fraction: float = 1.0,
        reg_lambda: float = 0.0,
        early_stopping_rounds: int = 100,
        calibration: str = "isotonic",
        validation_split: str = "shared",
        seed: int = 0,
        use_btyd: bool = True,
        btyd_model: str = "mbg",
        n_jobs: int | None = None,
    ) -> None:
        store_arguments(self, locals())

    # -- design matrix ---------------------------------------------------------------------------
    def _lgb_params(self) -> dict[str, object]:
        return {
            "objective": "binary",
            "learning_rate": float(self.learning_rate),
            "num_leaves": int(self.num_leaves),
            "min_child_samples": int(self.min_child_samples),
            "feature_fraction": float(self.feature_fraction),
            "lambda_l2": float(self.reg_lambda),
            "seed": int(self.seed),
            # Reproducible to the bit for a seed on a machine: fixed histogram layout and
            # deterministic reductions.
            "deterministic": True,
            "force_col_wise": True,
            "num_threads": int(self.n_jobs or os.cpu_count() or 1),
            "verbose": -1,
        }

    def _raw_columns(self, snapshot: Snapshot) -> pd.DataFrame:
        X = snapshot.features
        if self.use_btyd:
            X = pd.concat([X, self.btyd_.transform(snapshot)], axis=1)
        return X

    def _learn_columns(self, X: pd.DataFrame) -> None:
        self.feature_names_ = [str(c) for c in X.columns]
        self.categories_ = {}
        for column in X.columns:
            dtype = X[column].dtype
            if isinstance(dtype, pd.CategoricalDtype):
                self.categories_[column] = [str(c) for c in dtype.categories]
            elif not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                values = X[column].dropna().astype(str).unique()
                self.categories_[column] = sorted(values)

    def _design(self, snapshot: Snapshot) -> pd.DataFrame:
        return self._design_of(self._raw_columns(snapshot))

    def _design_of(self, X: pd.DataFrame) -> pd.DataFrame:
        """The booster's input from :meth:`_raw_columns`' frame."""
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if missing:
            raise ValueError(
                f"the snapshot lacks {len(missing)} feature(s) this model was trained on, e.g. "
                f"{missing[:5]}; build it with build_snapshot(..., "
                "features=model.snapshot_features_)")
        # Columns by name, in the training order: the caller's column order never matters.
        out = {}
        for column in self.feature_names_:
            values = X[column]
            dtype = values.dtype
            if column not in self.categories_ and not isinstance(dtype, pd.CategoricalDtype) \
                    and (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
                # Already numbers (nearly every column): the same floats as pd.to_numeric gives,
                # without its per-column overhead, which dominates when scoring one customer.
                out[column] = values.to_numpy(dtype=float, na_value=np.nan)
            elif column in self.categories_:
                # The training categories, in the training order, so codes mean the same thing.
                known = self.categories_[column]
                as_text = values.astype("string")
                # A value never seen in training is missing, not some other category.
                as_text = as_text.where(as_text.isin(known)).to_numpy(dtype=object,
                                                                      na_value=None)
                out[column] = pd.Categorical(as_text, categories=known)
            else:
                out[column] = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
        return pd.DataFrame(out, index=X.index)

    def _matrix_of(self, X: pd.DataFrame) -> np.ndarray | None:
        """The float matrix LightGBM makes of ``_design_of(X)`` (lightgbm.basic._data_from_pandas:
        a categorical column as its codes in the booster's categories, NaN for a missing or
        unseen value), built without the design frame: scoring a few rows costs mostly pandas'
        per-column work, not the trees. None (use the frame) when the booster's categorical
        columns are not the model's. tests/service/test_realtime.py requires the predictions
        equal to the frame path's."""
        cats = [c for c in self.feature_names_ if c in self.categories_]
        booster_cats = self.booster_.pandas_categorical or []
        missing = [c for c in self.feature_names_ if c not in X.columns]
        if len(cats) != len(booster_cats) or missing:
            return None
        dtypes = dict(zip(X.columns, X.dtypes, strict=True))  # X[c] per column costs
        plain = [c for c in self.feature_names_ if c not in self.categories_
                 and not isinstance(dtypes[c], pd.CategoricalDtype)
                 and (pd.api.types.is_numeric_dtype(dtypes[c])
                      or pd.api.types.is_bool_dtype(dtypes[c]))]
        out = np.full((len(X), len(self.feature_names_)), np.nan)
        position = {c: j for j, c in enumerate(self.feature_names_)}
        if plain:
            out[:, [position[c] for c in plain]] = X[plain].to_numpy(dtype=float,
                                                                     na_value=np.nan)
        for column, categories in zip(cats, booster_cats, strict=True):
            known = set(self.categories_[column])
            code = {str(v): k for k, v in enumerate(categories)}
            text = X[column].astype("string").to_numpy(dtype=object, na_value=None)
            out[:, position[column]] = [code.get(v, np.nan) if v in known else np.nan
                                        for v in text]
        rest = [c for c in self.feature_names_ if c not in self.categories_ and c not in plain]
        for column in rest:
            out[:, position[column]] = pd.to_numeric(X[column], errors="coerce").astype(float)
        return out

    # -- fitting -------------------------------------------------------------------------------
    def _split_validation(self, train: Snapshot,
                          validation: Snapshot | None) -> tuple[Snapshot, Snapshot]:
        if validation is not None:
            return train, validation
        cutoffs = train.index.get_level_values(1)
        newest = cutoffs.max()
        if cutoffs.nunique() >= 2:
            held = np.asarray(cutoffs == newest)
        else:
            held = _user_half(train.index, self.seed)
        return train.subset(~held), train.subset(held)

    def fit(self, train: Snapshot, *, validation: Snapshot | None = None) -> GBDTChurnModel:
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {list(CALIBRATIONS)}, "
                             f"got {self.calibration!r}")
        if self.validation_split not in _SPLITS:
            raise ValueError(f"validation_split must be one of {list(_SPLITS)}, "
                             f"got {self.validation_split!r}")
        train, validation = self._split_validation(train, validation)
        y_train, y_valid = train.y(), validation.y()
        if np.unique(y_train).size < 2:
            raise ValueError("GBDTChurnModel.fit: the training labels are all one class; use "
                             "more cutoffs or a longer horizon")
        if self.use_btyd:
            self.btyd_ = BTYDChurnModel(model=self.btyd_model).fit(train)
        X_train = self._raw_columns(train)
        self._learn_columns(X_train)
        self.snapshot_features_ = [str(c) for c in train.features.columns]
        X_train, X_valid = self._design(train), self._design(validation)

        if self.validation_split == "halves":
            stop_rows = _user_half(validation.index, self.seed)
        else:
            stop_rows = np.ones(len(validation), dtype=bool)
        calib_rows = ~stop_rows if self.validation_split == "halves" else stop_rows

        params = self._lgb_params()
        dtrain = lgb.Dataset(X_train, label=y_train, free_raw_data=True)
        dvalid = lgb.Dataset(X_valid[stop_rows], label=y_valid[stop_rows], reference=dtrain)
        booster = lgb.train(
            params, dtrain, num_boost_round=int(self.n_estimators), valid_sets=[dvalid],
            valid_names=["validation"],
            callbacks=[lgb.early_stopping(int(self.early_stopping_rounds), verbose=False)],
        )
        self.booster_ = booster
        self.best_iteration_ = int(booster.best_iteration or booster.current_iteration())
        raw_valid = self._raw_proba(X_valid[calib_rows])
        self.calibrator_ = make_calibrator(self.calibration).fit(raw_valid, y_valid[calib_rows])
        self.n_train_ = int(len(y_train))
        self.n_calibration_ = int(calib_rows.sum())
        return self

    # -- predicting ----------------------------------------------------------------------------
    def _raw_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return np.asarray(self.booster_.predict(X, num_iteration=self.best_iteration_),
                          dtype=float)

    def predict_raw(self, snapshot: Snapshot) -> np.ndarray:
        """The booster's probability before calibration."""
        self._check_fitted("predict_raw")
        return self._raw_proba(self._design(snapshot))

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        self._check_fitted("predict_proba")
        raw = self._raw_proba(self._design(snapshot))
        return np.clip(self.calibrator_.predict(raw), 0.0, 1.0)

    def explain(self, snapshot: Snapshot) -> pd.DataFrame:
        """TreeSHAP contributions (log-odds, uncalibrated): one column per feature, plus bias."""
        self._check_fitted("explain")
        X = self._design(snapshot)
        contrib = self.booster_.predict(X, num_iteration=self.best_iteration_, pred_contrib=True)
        return pd.DataFrame(np.asarray(contrib, dtype=float), index=snapshot.index,
                            columns=[*self.feature_names_, "bias"])

    def explanation_values(self, snapshot: Snapshot) -> pd.DataFrame:
        """The snapshot features plus the BTYD outputs: the values :meth:`explain` attributes to."""
        self._check_fitted("explanation_values")
        return self._raw_columns(snapshot)

    def predict_explained(self, snapshot: Snapshot,
                          ) -> tuple[np.ndarray, pd.DataFrame | None, pd.DataFrame | None]:
        """:meth:`predict_proba`, :meth:`explain` and :meth:`explanation_values` from one design
        matrix (the BTYD transform and the column coding run once instead of three times: most
        of the cost of scoring one customer)."""
        self._check_fitted("predict_explained")
        values = self._raw_columns(snapshot)
        X = self._matrix_of(values)
        if X is None:
            X = self._design_of(values)
        p = np.clip(self.calibrator_.predict(self._raw_proba(X)), 0.0, 1.0)
        contrib = self.booster_.predict(X, num_iteration=self.best_iteration_, pred_contrib=True)
        contributions = pd.DataFrame(np.asarray(contrib, dtype=float), index=snapshot.index,
                                     columns=[*self.feature_names_, "bias"])
        return p, contributions, values

    def feature_importance(self) -> pd.Series:
        """Total split gain per feature over the trees used, largest first."""
        self._check_fitted("feature_importance")
        gain = self.booster_.feature_importance(importance_type="gain",
                                                iteration=self.best_iteration_)
        return (pd.Series(gain, index=self.feature_names_, name="gain")
                .sort_values(ascending=False, kind="stable"))
