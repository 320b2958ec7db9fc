"""How well a predicted effect ranks customers, measured on a randomised experiment.

Sort the customers by predicted effect, best first. For the top k, with n_t(k), n_c(k) treated and
control customers and y_t(k), y_c(k) of them with the outcome:

* Qini curve (Radcliffe 2007, "Using control groups to target on predicted lift", Direct Marketing
  Analytics Journal): Q(k) = [y_t(k) - y_c(k) n_t(k) / n_c(k)] / N_t, the incremental outcomes
  gained by treating the top k, per treated customer; Q(N) is the average effect.
* Qini coefficient: the mean gap between the Qini curve and the random-targeting diagonal
  phi Q(N), over the fractions phi = 1/100 .. 1. Zero for a random ranking, positive when the
  ranking puts the responders first.
* Uplift at p%: y_t/n_t - y_c/n_c among the top p% (the effect on the customers you would pick).
* AUUC: the mean of uplift-at-phi over the same grid (area under the uplift curve, Rzepakowski &
  Jaroszewicz 2012, "Decision trees for uplift modeling with single and multiple treatments").

>>> rng = np.random.default_rng(0)
>>> score = rng.random(4000)
>>> treated = rng.random(4000) < 0.5
>>> y = (rng.random(4000) < 0.2 + 0.3 * treated * (score > 0.5)).astype(float)
>>> good = uplift_metrics(score, treated=treated, y=y)
>>> bad = uplift_metrics(-score, treated=treated, y=y)
>>> good["qini"] > 0.03 > -0.03 > bad["qini"], round(good["uplift_at_30"], 1)
(True, 0.3)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["qini_replicates", "robust_se", "uplift_metrics"]

GRID = np.arange(1, 101) / 100.0


def uplift_metrics(score: np.ndarray, *, treated: np.ndarray, y: np.ndarray) -> dict:
    """Qini coefficient, AUUC, uplift at 10/20/30% and the Qini curve on the 1..100% grid."""
    score = np.asarray(score, dtype=float)
    treated = np.asarray(treated, dtype=bool)
    y = np.asarray(y, dtype=float)
    if not (score.shape == treated.shape == y.shape):
        raise ValueError(f"score, treated and y must have the same length, got {score.shape}, "
                         f"{treated.shape} and {y.shape}")
    n_t_total = int(treated.sum())
    if n_t_total == 0 or n_t_total == treated.size:
        raise ValueError("uplift metrics need both treated and control customers")
    # Ties are broken by position after a stable sort: a constant score ranks at random only if
    # the rows are shuffled, which the callers' random baselines do.
    order = np.argsort(-score, kind="stable")
    t = treated[order]
    yy = y[order]
    n_t = np.cumsum(t)
    n_c = np.cumsum(~t)
    y_t = np.cumsum(yy * t)
    y_c = np.cumsum(yy * ~t)
    k = np.maximum(np.ceil(GRID * score.size).astype(int) - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = np.where(n_c[k] > 0, y_t[k] - y_c[k] * n_t[k] / n_c[k], y_t[k]) / n_t_total
        uplift = np.where((n_t[k] > 0) & (n_c[k] > 0),
                          y_t[k] / np.maximum(n_t[k], 1) - y_c[k] / np.maximum(n_c[k], 1), 0.0)
    coefficient = float(np.mean(qini - GRID * qini[-1]))
    return {
        "qini": coefficient,
        "auuc": float(np.mean(uplift)),
        "uplift_at_10": float(uplift[9]),
        "uplift_at_20": float(uplift[19]),
        "uplift_at_30": float(uplift[29]),
        "ate": float(qini[-1]),
        "curve_x": [0.0, *GRID.tolist()],
        "curve_qini": [0.0, *qini.tolist()],
    }


def qini_replicates(score: np.ndarray, *, treated: np.ndarray, y: np.ndarray,
                    weights: np.ndarray) -> np.ndarray:
    """The Qini coefficient of ``score`` under each row of ``weights`` (replicates x rows): a
    bootstrap that reweights the rows (e.g. Poisson(1) counts per customer) instead of
    resampling them, so every replicate keeps the one ranking and costs one cumulative sum.
    With all weights 1 it is :func:`uplift_metrics`' Qini.

    >>> rng = np.random.default_rng(1)
    >>> s, t = rng.random(500), rng.random(500) < 0.5
    >>> yy = (rng.random(500) < 0.2 + 0.2 * t * s).astype(float)
    >>> one = qini_replicates(s, treated=t, y=yy, weights=np.ones((1, 500)))[0]
    >>> bool(np.isclose(one, uplift_metrics(s, treated=t, y=yy)["qini"]))
    True
    """
    score = np.asarray(score, dtype=float)
    order = np.argsort(-score, kind="stable")
    t = np.asarray(treated, dtype=bool)[order]
    yy = np.asarray(y, dtype=float)[order]
    w = np.asarray(weights, dtype=float)[:, order]
    # The grid counts rows, as uplift_metrics does (the k-th row of the ranking).
    k = np.maximum(np.ceil(GRID * score.size).astype(int) - 1, 0)
    n_t = np.cumsum(w * t, axis=1)[:, k]
    n_c = np.cumsum(w * ~t, axis=1)[:, k]
    y_t = np.cumsum(w * yy * t, axis=1)[:, k]
    y_c = np.cumsum(w * yy * ~t, axis=1)[:, k]
    total = n_t[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        qini = np.where(n_c > 0, y_t - y_c * n_t / np.where(n_c > 0, n_c, 1), y_t)
        qini = np.where(total > 0, qini / np.where(total > 0, total, 1), 0.0)
    return np.mean(qini - GRID * qini[:, -1:], axis=1)


def robust_se(design: np.ndarray, y: np.ndarray, w: np.ndarray, coef: np.ndarray, *,
               columns: Sequence[int]) -> list[float]:
    """Heteroskedasticity-robust standard errors (HC1: White 1980, Econometrica 48(4), eq. (4),
    with MacKinnon & White's 1985 n / (n - p) correction) of the weighted least squares
    coefficients ``columns``; inf where the rows cannot tell a coefficient (too few rows, or
    none in one arm)."""
    n, p = design.shape
    if n <= p:
        return [float("inf")] * len(columns)
    resid = y - design @ coef
    bread = np.linalg.pinv(design.T @ (design * w[:, None]))
    meat = (design * (w * resid)[:, None]).T @ (design * (w * resid)[:, None])
    cov = bread @ meat @ bread * n / (n - p)
    out = []
    for c in columns:
        v = float(cov[c, c])
        # A coefficient the design cannot identify (an empty arm) has no finite error.
        identified = np.abs(design[:, c]).sum() > 0 and v > 0
        out.append(float(np.sqrt(v)) if identified and np.isfinite(v) else float("inf"))
    return out
