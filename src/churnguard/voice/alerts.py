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
- **Predictive distribution** of the day's count: a negative binomial with mean
  m = (S + ½)/K, S the same-weekday sum, and variance (m + φm²)(1 + 1/K), which adds the
  uncertainty of m (fitted on K weeks) to the count's own. With φ = 0 this is exactly the
  Poisson–gamma predictive under Jeffreys' prior, NB(S + ½, K/(K + 1)); a topic never mentioned
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
  chance of any alert is then at most ``fdr`` (BH controls the family-wise rate under the
  complete null).

>>> import pandas as pd
>>> days = pd.date_range("2025-01-01", periods=84, freq="D")
>>> rng = np.random.default_rng(0)
>>> counts = pd.DataFrame({"late": rng.poisson(80, 84), "broken": rng.poisson(80, 84)},
...                       index=days)
>>> counts.loc["2025-03-20", "late"] = 160
>>> tests = detect(counts, weeks=8, fdr=0.0025, weekly_below=5.0)
>>> tests[tests["alert"]][["topic", "start", "count"]].to_dict("records")
[{'topic': 'late', 'start': Timestamp('2025-03-20 00:00:00'), 'count': 160}]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["TEST_COLUMNS", "bh_qvalues", "detect", "nb_pvalue", "overdispersion"]

TEST_COLUMNS = ["topic", "period", "start", "end", "count", "expected", "baseline_per_day",
                "dispersion", "p_value", "q_value", "alert"]
DAY = pd.Timedelta(days=1)


def overdispersion(x: np.ndarray, means: np.ndarray, k: int) -> np.ndarray:
    """φ of Var = μ + φμ² by moments, per column of ``x`` (rows: observations) about ``means``
    (each row's fitted mean, fitted on ``k`` values); 0 where the counts are no more spread than
    Poisson's.

    >>> x = np.array([[0.0], [10.0], [0.0], [10.0]])
    >>> round(float(overdispersion(x, np.full_like(x, 5.0), k=4)[0]), 3)
    1.133
    >>> float(overdispersion(np.full((4, 1), 5.0), np.full((4, 1), 5.0), k=4)[0])
    0.0
    """
    excess = ((x - means) ** 2).sum(axis=0) * k / (k - 1) - means.sum(axis=0)
    scale = (means ** 2).sum(axis=0)
    return np.where(scale > 0, np.maximum(excess, 0.0) / np.where(scale > 0, scale, 1.0), 0.0)


def nb_pvalue(count: np.ndarray, total: np.ndarray, k: int,
              phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P(X ≥ count), the predictive mean m) with X negative binomial of mean m = (total + ½)/k
    and variance (m + φm²)(1 + 1/k): the module's predictive distribution.

    >>> p, m = nb_pvalue(np.array([1, 2]), np.array([0, 0]), 8, np.array([0.0, 0.0]))
    >>> [round(float(v), 4) for v in p], float(m[0])
    ([0.0572, 0.0048], 0.0625)
    """
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


def _daily(c: np.ndarray, d: int, weeks: int) -> tuple[np.ndarray, ...]:
    """Per topic on day index ``d``: (same-weekday sum, φ, baseline mean a day)."""
    window = c[d - 7 * weeks:d].reshape(weeks, 7, -1)  # row i, slot 0: d's weekday
    means = np.broadcast_to(window.mean(axis=0), window.shape).reshape(7 * weeks, -1)
    phi = overdispersion(window.reshape(7 * weeks, -1), means, weeks)
    return window[:, 0].sum(axis=0), phi, window.mean(axis=(0, 1))


def _weekly(c: np.ndarray, d: int, weeks: int) -> tuple[np.ndarray, ...]:
    """Per topic for the week ending on day index ``d``: (its sum, the K weekly sums' total,
    φ, baseline mean a day)."""
    now = c[d - 6:d + 1].sum(axis=0)
    sums = c[d - 6 - 7 * weeks:d - 6].reshape(weeks, 7, -1).sum(axis=1)
    phi = overdispersion(sums, np.broadcast_to(sums.mean(axis=0), sums.shape), weeks)
    return now, sums.sum(axis=0), phi, sums.mean(axis=0) / 7


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
        total, phi, base = _daily(c, d, weeks)
        daily = base >= weekly_below
        p, m = nb_pvalue(c[d], total, weeks, phi)
        tests = [(t, "day", index[d], index[d], c[d, t], m[t], base[t], phi[t], p[t])
                 for t in np.flatnonzero(daily)]
        if index[d].day_of_week == 6 and d >= 7 * weeks + 6:
            now, wtotal, wphi, wbase = _weekly(c, d, weeks)
            wp, wm = nb_pvalue(now, wtotal, weeks, wphi)
            tests += [(t, "week", index[d - 6], index[d], now[t], wm[t], wbase[t], wphi[t],
                       wp[t]) for t in np.flatnonzero(wbase < weekly_below)]
        q = bh_qvalues(np.array([r[-1] for r in tests]))
        rows += [(topics[r[0]], *r[1:], qi, qi <= fdr) for r, qi in zip(tests, q, strict=True)]
    out = pd.DataFrame(rows, columns=TEST_COLUMNS)
    out["count"] = out["count"].astype(int)
    out["alert"] = out["alert"].astype(bool)
    return out
