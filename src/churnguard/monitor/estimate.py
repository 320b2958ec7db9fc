"""A label-free estimate of the churn rate and the ROC-AUC of a batch whose labels are not in yet.

Confidence-based performance estimation (CBPE; NannyML's name for it): when the probabilities are
calibrated, each customer with probability p churns with probability p, so

* the **expected churn rate** is the mean of p;
* the **expected ROC-AUC** treats every ordered pair of customers (i, j) as (churner, stayer) with
  weight p_i (1 - p_j): AUC = sum over pairs of p_i (1 - p_j) [s_i > s_j] (ties count one half)
  divided by the sum of the weights, i != j. It is the ROC curve computed from expected true and
  false positives at each threshold.

A simulation of the labels (y_i ~ Bernoulli(p_i), :data:`DRAWS` times) gives the range the
realized AUC would fall in by chance alone if the model holds.

**The limit** (:data:`LIMIT`): the estimate trusts the model's probabilities. It sees a change in
*who* the customers are (covariate shift: more customers where the model is less sure lowers
it), but not a change in how behaviour maps to churn (concept drift): if customers with the same
behaviour start leaving more often, the probabilities, and so the estimate, stay where they were
while the realized AUC and churn rate move. Only matured labels (:mod:`.realized`) show that.

>>> p = np.array([0.1, 0.2, 0.8, 0.9])
>>> round(expected_auc(p), 4), round(float(p.mean()), 2)
(0.9286, 0.5)
>>> expected_auc(np.array([0.3, 0.3, 0.3]))   # nothing to rank by: a coin
0.5
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

__all__ = ["DRAWS", "LIMIT", "Estimate", "estimate", "expected_auc"]

DRAWS = 200
LIMIT = ("label-free estimate from the model's own probabilities: it assumes they stay "
         "calibrated, so it cannot see a change in how behaviour maps to churn (concept "
         "drift); only realized metrics on matured cohorts can")


def expected_auc(p: np.ndarray) -> float | None:
    """The expected ROC-AUC of scores ``p`` if each row is positive with probability p (the
    module docstring); None for fewer than two rows or when every p is 0 or every p is 1."""
    p = np.asarray(p, dtype=float)
    if p.size < 2:
        return None
    values, group = np.unique(p, return_inverse=True)
    pos = np.bincount(group, weights=p, minlength=len(values))           # sum of p per value
    neg = np.bincount(group, weights=1.0 - p, minlength=len(values))     # sum of 1 - p
    self_pairs = np.bincount(group, weights=p * (1.0 - p), minlength=len(values))
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])                # stayers scored lower
    numerator = np.sum(pos * below) + 0.5 * np.sum(pos * neg - self_pairs)
    denominator = pos.sum() * neg.sum() - self_pairs.sum()
    if denominator <= 0:
        return None
    return float(numerator / denominator)


@dataclass(frozen=True, kw_only=True)
class Estimate:
    """The label-free estimate of one batch: ``churn_rate`` (mean p), ``auc`` (expected AUC),
    ``auc_low``/``auc_high`` (the 5th and 95th percentiles of the AUC of labels drawn from p),
    and ``limit``, what it cannot see."""

    n: int
    churn_rate: float
    auc: float | None
    auc_low: float | None
    auc_high: float | None
    limit: str = LIMIT

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _simulated_aucs(p: np.ndarray, *, draws: int, rng: np.random.Generator) -> np.ndarray:
    """The ROC-AUC of ``draws`` label sets drawn from ``p`` (the scores fixed, so their ranks
    are computed once: AUC = (sum of positives' ranks - n1 (n1 + 1) / 2) / (n1 n0))."""
    ranks = rankdata(p)
    out = []
    for start in range(0, draws, 50):
        y = rng.random((min(50, draws - start), p.size)) < p[None, :]
        n1 = y.sum(axis=1).astype(float)
        n0 = p.size - n1
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append((y @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0))
    aucs = np.concatenate(out)
    return aucs[np.isfinite(aucs)]


def estimate(p: np.ndarray, *, draws: int = DRAWS, seed: int = 0) -> Estimate:
    """The label-free estimate of a batch scored ``p`` (calibrated probabilities).

    >>> e = estimate(np.linspace(0.05, 0.95, 400), seed=1)
    >>> round(e.churn_rate, 2), e.auc_low < e.auc < e.auc_high
    (0.5, True)
    """
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    if p.size == 0:
        raise ValueError("cannot estimate from zero rows")
    auc = expected_auc(p)
    low = high = None
    if auc is not None:
        simulated = _simulated_aucs(p, draws=draws, rng=np.random.default_rng(seed))
        if simulated.size:
            low, high = (float(v) for v in np.quantile(simulated, [0.05, 0.95]))
    return Estimate(n=int(p.size), churn_rate=float(p.mean()), auc=auc, auc_low=low,
                    auc_high=high)
