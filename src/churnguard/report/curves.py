"""The maths behind the model-quality curves, shared by the HTML report and the dashboard.

Pure functions of labels ``y`` (1 churned, 0 stayed) and predicted probabilities ``p``; each face
draws the numbers its own way (SVG in the report, Plotly on the dashboard).

>>> share, reached = gains(np.array([0, 1, 1, 0]), np.array([0.2, 0.9, 0.6, 0.4]))
>>> share.tolist(), reached.tolist()
([0.25, 0.5, 0.75, 1.0], [0.5, 1.0, 1.0, 1.0])
>>> ranked, calibratable = usable({"a": (np.array([1.0, 0.0]), np.array([0.7, np.nan])),
...                                "b": (np.array([1.0, 0.0]), np.array([0.7, 0.2]))})
>>> sorted(ranked), sorted(calibratable)
(['b'], ['a', 'b'])
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

Predictions = Mapping[str, tuple[np.ndarray, np.ndarray]]

__all__ = ["Predictions", "calibration_bins", "finite_rows", "gains", "ranks", "usable"]


def finite_rows(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows with both a label and a prediction (as float arrays)."""
    y, p = np.asarray(y, dtype=float).ravel(), np.asarray(p, dtype=float).ravel()
    keep = np.isfinite(y) & np.isfinite(p)
    return y[keep], p[keep]


def ranks(y: np.ndarray) -> bool:
    """Whether ranking curves (ROC, precision–recall, gains) can be drawn: both classes occur."""
    return len(np.unique(y)) >= 2


def usable(predictions: Predictions) -> tuple[dict, dict]:
    """Per model (y, p) of the finite rows: those with both classes (every curve can be drawn)
    and those with any row (calibration can be drawn)."""
    ranked, calibratable = {}, {}
    for name, (y, p) in predictions.items():
        y, p = finite_rows(y, p)
        if len(y):
            calibratable[name] = (y, p)
            if ranks(y):
                ranked[name] = (y, p)
    return ranked, calibratable


def gains(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative gains: the share contacted (highest risk first) and the share of all churners
    reached by then."""
    order = np.argsort(-np.asarray(p, dtype=float), kind="stable")
    hits = np.cumsum(np.asarray(y, dtype=float)[order])
    share = np.arange(1, len(order) + 1) / len(order)
    return share, hits / hits[-1]


def calibration_bins(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> pd.DataFrame:
    """Equal-width bins of the predicted probability: count, mean prediction and observed rate.

    >>> calibration_bins(np.array([0, 1, 1, 1]), np.array([0.05, 0.95, 0.9, 0.92]), n_bins=2)
       count  mean_predicted  observed
    0      1           0.050       0.0
    1      3           0.923       1.0
    """
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    which = np.minimum((p * n_bins).astype(int), n_bins - 1)
    frame = pd.DataFrame({"bin": which, "p": p, "y": y}).groupby("bin")
    out = pd.DataFrame({"count": frame.size(), "mean_predicted": frame["p"].mean().round(3),
                        "observed": frame["y"].mean().round(3)})
    return out.reset_index(drop=True)
