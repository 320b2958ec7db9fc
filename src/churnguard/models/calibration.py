"""Probability calibration: map a model's scores to probabilities on held-out labels.

Two calibrators, both fitted on out-of-time data (the backtest's validation cutoff):

* :class:`IsotonicCalibrator` — centred isotonic regression (Oron & Flournoy 2017, "Centered
  Isotonic Regression: Point and Interval Estimation for Dose-Response Studies", Statistics in
  Biopharmaceutical Research 9(3), 258-267). Plain isotonic regression (Zadrozny & Elkan 2002,
  KDD) is a step function: every score inside a pooled block gets the same probability, which
  throws ranking information away and lowers the ROC-AUC. CIR keeps the pooled block values but
  places each at its block's mean score and interpolates linearly in between, so the map is
  strictly increasing between the first and last block (ranking kept) while staying as close to
  the data as the step function.
* :class:`PlattCalibrator` — Platt (1999) scaling: a logistic regression of the label on the
  score's log-odds, ``p = 1 / (1 + exp(-(a * logit(s) + b)))``.

>>> import numpy as np
>>> cal = IsotonicCalibrator().fit(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
>>> cal.predict(np.array([0.1, 0.25, 0.4])).round(3).tolist()
[0.0, 0.5, 1.0]
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit, logit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

__all__ = ["CALIBRATIONS", "IsotonicCalibrator", "PlattCalibrator", "make_calibrator"]

CALIBRATIONS = ("isotonic", "platt", "none")
_EPS = 1e-6


def _check(scores: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    scores = np.asarray(scores, dtype=float).ravel()
    if not np.isfinite(scores).all():
        raise ValueError("calibration scores must be finite; some are NaN or infinite")
    if y is None:
        return scores, None
    y = np.asarray(y, dtype=float).ravel()
    if y.shape != scores.shape:
        raise ValueError(f"scores and labels differ in length: {scores.size} and {y.size}")
    if y.size == 0:
        raise ValueError("cannot calibrate on zero rows")
    return scores, y


class IsotonicCalibrator:
    """Centred isotonic regression of the label on the score (see the module docstring)."""

    def fit(self, scores: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        scores, y = _check(scores, y)
        iso = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0.0, y_max=1.0)
        fitted = iso.fit_transform(scores, y)
        order = np.argsort(scores, kind="stable")
        s_sorted, f_sorted = scores[order], fitted[order]
        # A block is a maximal run of equal fitted values; its knot sits at its mean score.
        starts = np.flatnonzero(np.r_[True, np.diff(f_sorted) != 0])
        counts = np.diff(np.r_[starts, s_sorted.size])
        self.knots_x_ = np.add.reduceat(s_sorted, starts) / counts
        self.knots_y_ = f_sorted[starts]
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        scores, _ = _check(scores)
        if self.knots_x_.size == 1:
            return np.full(scores.shape, float(self.knots_y_[0]))
        return np.interp(scores, self.knots_x_, self.knots_y_)


class PlattCalibrator:
    """Logistic regression of the label on logit(score) (Platt 1999)."""

    def fit(self, scores: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        scores, y = _check(scores, y)
        if np.unique(y).size < 2:
            raise ValueError("Platt scaling needs both churned and retained rows in the labels")
        z = logit(np.clip(scores, _EPS, 1 - _EPS)).reshape(-1, 1)
        lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000).fit(z, y.astype(int))
        self.slope_ = float(lr.coef_[0, 0])
        self.intercept_ = float(lr.intercept_[0])
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        scores, _ = _check(scores)
        z = logit(np.clip(scores, _EPS, 1 - _EPS))
        return expit(self.slope_ * z + self.intercept_)


class _Identity:
    def fit(self, scores: np.ndarray, y: np.ndarray) -> _Identity:
        return self

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=float)


def make_calibrator(kind: str | None) -> IsotonicCalibrator | PlattCalibrator | _Identity:
    """A fresh calibrator: 'isotonic', 'platt', or 'none'/None (scores pass through)."""
    if kind is None or kind == "none":
        return _Identity()
    if kind == "isotonic":
        return IsotonicCalibrator()
    if kind == "platt":
        return PlattCalibrator()
    raise ValueError(f"calibration must be one of {list(CALIBRATIONS)}, got {kind!r}")
