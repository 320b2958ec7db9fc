"""Surges of negative mentions: a negative binomial test per topic and day against the same
weekday of past weeks, Benjamini–Hochberg across the topics of a day.

The counts are negative mentions (reviews and tickets whose sentiment is negative) per topic per
day. For a day ``d`` and a topic:

- **Baseline**: the ``weeks`` × 7 days before ``d``. The expected count is the mean of the same
  weekday in those weeks (``weeks`` values); the other weekdays serve the dispersion.
- **Dispersion**: a negative binomial Var(X) = μ + φμ² (φ = 0 is Poisson), φ by moments on
  all the baseline's days, each against its own weekday's mean:
  φ = max(0, (Σ(x − μ̂_w)² · K/(K − 1) − Σμ̂_w) / Σμ̂_w²), K = ``weeks`` (the K/(K − 1) undoes
  the shrinkage of residuals about a mean fitted on K values).
- **Outliers leave the baseline**: a baseline day more than 3.5 standard deviations (of that
  negative binomial) above its weekday's mean is left out, judged first against a fit without
  each weekday's largest day, then against the fit of the days kept until they no longer
  change (Noufaily et al. 2013 down-weight such days): otherwise the first week of a surge,
  once in the baseline, would raise the dispersion so much that its later days pass unnoticed.
- **Dispersion, one standard error up**: φ̂ from 8 weeks is noisy, and a plug-in φ̂ that
  happens to be low gives p-values too small (on negative binomial series without a surge,
  about 1.6 times the level). So φ = φ̂ + √(2/n)(1/μ + φ̂), n the baseline days kept: the
  delta-method standard error of the moment estimator (Var(s²) ≈ 2σ⁴/n).
- **Predictive distribution** of the day's count: a negative binomial with mean
  m = (S + ½)/K, S the same-weekday sum (K: the weeks kept), and variance (m + φm²)(1 + 1/K),
  which adds the uncertainty of m (fitted on K weeks) to the count's own. With φ = 0 this is
  exactly the Poisson–gamma predictive under Jeffreys' prior, NB(S + ½, K/(K + 1)); a topic never mentioned
  before is not infinitely surprising at its first mention. The same idea as Farrington et al.
  (1996, J. R. Stat. Soc. A 159, 547–563: same-season baseline of past periods, an overdispersed
  count model, a prediction interval that carries the baseline's estimation error), with the
  negative binomial of Noufaily et al. (2013, Stat. Med. 32, 1206–1222).
- **p-value**: P(X ≥ count) under that distribution (one-sided: a surge, never a drop).
- **Small topics**: a topic whose baseline has fewer than ``weekly_below`` negative mentions a
  day is not tested per day but per week (Monday–Sunday, tested on the Sunday): the week's sum
  against the sums of the ``weeks`` weeks before it, with the same predictive (φ by moments on
  those K sums).
- **Across topics**: the p-values of the tests of one day (its daily tests and the weekly tests
  ending that day) get Benjamini–Hochberg q-values (Benjamini and Hochberg 1995, J. R. Stat.
  Soc. B 57, 289–300, step-up procedure); q ≤ ``fdr`` is an alert. On a day without a surge the
  chance of any alert is then about ``fdr`` at most (BH controls the family-wise rate under the
  complete null, for exact p-values; these are approximate, tests/voice/test_alerts.py
  measures them).

>>> import pandas as pd
>>> days = pd.date_range("2025-01-01", periods=84, freq="D")
>>> rng = np.random.default_rng(0)
>>> counts = pd.DataFrame({"late": rng.poisson(80, 84), "broken": rng.poisson(80, 84)},
...                       index=days)
>>> counts.loc["2025-03-20", "late"] = 160
>>> tests = detect(counts, weeks=8, fdr=0.001, weekly_below=5.0)
>>> tests[tests["alert"]][["topic", "start", "count"]].to_dict("records")
[{'topic': 'late', 'start': Timestamp('2025-03-20 00:00:00'), 'count': 160}]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["OUTLIER_Z", "TEST_COLUMNS", "bh_qvalues", "detect", "nb_pvalue"]

TEST_COLUMNS = ["topic", "period", "start", "end", "count", "expected", "baseline_per_day",
                "dispersion", "p_value", "q_value", "alert"]
DAY = pd.Timedelta(days=1)
# A baseline cell this many standard deviations above its weekday's mean is an outlier and
# leaves the baseline. Noufaily et al. (2013) down-weight from 2.58; leaving cells out biases the
# dispersion down on surge-free counts, less the rarer the cut, so it is 3.5 here (on negative
# binomial series: the false alert rate at 2.58 was twice that at 3.5).
OUTLIER_Z = 3.5


def nb_pvalue(count: np.ndarray, total: np.ndarray, k: np.ndarray | int,
              phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(X ≥ count), the predictive mean m) with X negative binomial of mean m = (total + ½)/k
    and variance (m + φm²)(1 + 1/k): the module's predictive distribution.

    >>> p, m = nb_pvalue(np.array([1, 2]), np.array([0, 0]), 8, np.array([0.0, 0.0]))
    >>> [round(float(v), 4) for v in p], float(m[0])
    ([0.0572, 0.0048], 0.0625)
    """
    k = np.asarray(k, float)
    m = (np.asarray(total, float) + 0.5) / k
    var = (m + phi * m ** 2) * (1.0 + 1.0 / k)
    size = m ** 2 / (var - m)
    p = stats.nbinom.sf(np.asarray(count) - 1, size, m / var)
    return np.clip(p, 0.0, 1.0), m


def bh_qvalues(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values) of one family.

    >>> bh_qvalues(np.array([0.01, 0.04, 0.03, 0.5])).round(3).tolist()
    [0.04, 0.053, 0.053, 0.5]
    """
    p = np.asarray(p, float)
    n = p.size
    if n == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * n / np.arange(1, n + 1)
    q = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(n)
    out[order] = np.minimum(q, 1.0)
    return out


def _moments(x: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-slot means (S, T), φ (T,)) of the kept cells of ``x`` (K, S, T), by moments."""
    k = keep.sum(axis=0)  # (S, T)
    mu = np.where(k > 0, (x * keep).sum(axis=0) / np.maximum(k, 1), 0.0)
    excess = (np.where(keep, (x - mu) ** 2, 0.0).sum(axis=0)
              * np.where(k > 1, k / np.maximum(k - 1, 1), 0.0) - mu * k).sum(axis=0)
    scale = (mu ** 2 * k).sum(axis=0)
    phi = np.where(scale > 0, np.maximum(excess, 0.0) / np.where(scale > 0, scale, 1.0), 0.0)
    return mu, phi


def _fit(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Baseline of ``x`` (K weeks, S slots, T topics; slot 0 is the tested day's): per topic
    (same-slot sum, same-slot weeks kept, φ, mean of the kept cells). Cells more than
    :data:`OUTLIER_Z` standard deviations above their slot's mean leave the baseline
    (Noufaily et al. 2013 down-weight such residuals): a surge must not teach the baseline that
    surges are normal. The first fit leaves out each slot's largest cell, so that a week of
    surge in the baseline cannot hide itself by inflating the dispersion; then every cell is
    judged against the fit of the cells kept, until the kept cells no longer change."""
    keep = np.ones(x.shape, bool)
    if x.shape[0] > 2:
        keep &= x < x.max(axis=0, keepdims=True)
        keep |= (x == x.max(axis=0, keepdims=True)) & (keep.sum(axis=0, keepdims=True) == 0)
    for _ in range(10):
        mu, phi = _moments(x, keep)
        sd = np.sqrt(np.maximum(mu + phi * mu ** 2, 0.25))
        again = (x - mu) / sd <= OUTLIER_Z
        if (again == keep).all():
            break
        keep = again
    mu, phi = _moments(x, keep)
    # One standard error up: Var(s²) ≈ 2σ⁴/n, so SE(φ̂) ≈ √(2/n)·σ²/μ² = √(2/n)(1/μ + φ).
    n = keep.sum(axis=(0, 1))
    m = (mu * keep.sum(axis=0)).sum(axis=0) / np.maximum(n, 1)
    phi = phi + np.sqrt(2.0 / np.maximum(n, 2)) * np.where(
        m > 0, 1.0 / np.where(m > 0, m, 1.0) + phi, 0.0)
    total = (x[:, 0] * keep[:, 0]).sum(axis=0)
    base = (x * keep).sum(axis=(0, 1)) / np.maximum(keep.sum(axis=(0, 1)), 1)
    return total, np.maximum(keep[:, 0].sum(axis=0), 1), phi, base


def _daily(c: np.ndarray, d: int, weeks: int) -> tuple[np.ndarray, ...]:
    """Per topic on day index ``d``: :func:`_fit` of the ``weeks`` weeks before it."""
    return _fit(c[d - 7 * weeks:d].reshape(weeks, 7, -1))  # slot 0: d's weekday


def _weekly(c: np.ndarray, d: int, weeks: int) -> tuple[np.ndarray, ...]:
    """Per topic for the week ending on day index ``d``: (its sum, :func:`_fit` of the K
    weekly sums before it, its mean a day)."""
    now = c[d - 6:d + 1].sum(axis=0)
    sums = c[d - 6 - 7 * weeks:d - 6].reshape(weeks, 7, -1).sum(axis=1)
    total, k, phi, base = _fit(sums[:, None, :])
    return now, total, k, phi, base / 7


def detect(counts: pd.DataFrame, *, weeks: int, fdr: float, weekly_below: float,
           start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Every test of every day from ``start`` (default: the first day with a full baseline) to
    the last row of ``counts`` (rows: consecutive days; columns: topics; values: negative
    mentions), one row per test with :data:`TEST_COLUMNS` (``end`` inclusive)."""
    if weeks < 2:
        raise ValueError(f"the baseline needs at least 2 weeks, got {weeks}")
    index = pd.DatetimeIndex(counts.index)
    if len(index) and not (index[1:] - index[:-1] == DAY).all():
        raise ValueError("counts must have one row per consecutive day")
    c = counts.to_numpy(dtype=float)
    topics = np.asarray(counts.columns, dtype=object)
    first = 7 * weeks
    if start is not None and len(index):
        first = max(first, int((pd.Timestamp(start) - index[0]) / DAY))
    rows = []
    for d in range(first, len(index)):
        total, k, phi, base = _daily(c, d, weeks)
        daily = base >= weekly_below
        p, m = nb_pvalue(c[d], total, k, phi)
        tests = [(t, "day", index[d], index[d], c[d, t], m[t], base[t], phi[t], p[t])
                 for t in np.flatnonzero(daily)]
        if index[d].day_of_week == 6 and d >= 7 * weeks + 6:
            now, wtotal, wk, wphi, wbase = _weekly(c, d, weeks)
            wp, wm = nb_pvalue(now, wtotal, wk, wphi)
            tests += [(t, "week", index[d - 6], index[d], now[t], wm[t], wbase[t], wphi[t],
                       wp[t]) for t in np.flatnonzero(wbase < weekly_below)]
        q = bh_qvalues(np.array([r[-1] for r in tests]))
        rows += [(topics[r[0]], *r[1:], qi, qi <= fdr) for r, qi in zip(tests, q, strict=True)]
    out = pd.DataFrame(rows, columns=TEST_COLUMNS)
    out["count"] = out["count"].astype(int)
    out["alert"] = out["alert"].astype(bool)
    return out
