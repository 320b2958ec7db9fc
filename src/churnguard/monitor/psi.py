"""Fixed-bin PSI of the scores and the model's inputs between two scoring dates (the model-quality
page's drift section; :mod:`churnguard.monitor.drift` calibrates the thresholds instead).

Population stability: PSI = Σ_b (a_b − e_b) · ln(a_b / e_b) over bins b, with e_b the reference
share and a_b the current share of bin b (Siddiqi 2006, *Credit Risk Scorecards*, ch. 8; its
statistical properties in Yurdakul 2018, "Statistical properties of population stability index",
Western Michigan University). The bins are the reference's deciles, so each holds about a tenth
of the reference; a value repeated across deciles (counts, zeros) makes fewer, wider bins. Empty
bins get a share of 1e-4 so the logarithm stays finite. The usual reading: below 0.1 stable, 0.1
to 0.25 a moderate shift worth a look, above 0.25 a major shift (retrain or investigate).

:func:`drift` compares the two newest scoring dates of a model version; with one scoring date
the reference is the backtest's test cutoff (the population the model was judged on). Only
aggregates leave it: PSI values and medians, and the two score samples for a histogram.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> same = psi(rng.normal(size=5000), rng.normal(size=5000))
>>> moved = psi(rng.normal(size=5000), rng.normal(0.5, 1, size=5000))
>>> same < 0.1 < moved, stability(same), stability(moved)
(True, 'stable', 'moderate')
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnguard.config import ChurnDefinition
from churnguard.features import FEATURES, build_features
from churnguard.labels import population_and_labels
from churnguard.store import Store

EMPTY_SHARE = 1e-4
STABLE, MODERATE = 0.1, 0.25


def _edges(reference: np.ndarray, n_bins: int) -> np.ndarray:
    """The inner bin edges: the reference's quantiles, repeated ones merged."""
    return np.unique(np.quantile(reference, np.linspace(0, 1, n_bins + 1)[1:-1]))


def _shares(values: np.ndarray, inner: np.ndarray) -> np.ndarray:
    # A value equal to an edge falls in the bin below it (bin b holds edge[b-1] < v <= edge[b]).
    which = np.searchsorted(inner, values, side="left")
    counts = np.bincount(which, minlength=len(inner) + 1).astype(float)
    return np.maximum(counts / max(len(values), 1), EMPTY_SHARE)


def psi(reference: np.ndarray, current: np.ndarray, *, n_bins: int = 10) -> float | None:
    """The population stability index of ``current`` against ``reference`` (NaNs dropped);
    None when either side is empty."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return None
    inner = _edges(ref, n_bins)
    e_share, a_share = _shares(ref, inner), _shares(cur, inner)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def stability(value: float | None) -> str:
    """'stable', 'moderate' or 'major' (see the module docstring); 'unknown' for None."""
    if value is None:
        return "unknown"
    return "stable" if value < STABLE else "moderate" if value <= MODERATE else "major"


def median(values: np.ndarray) -> float | None:
    """The median of the finite values; None when there are none.

    >>> median(np.array([1.0, np.nan, 3.0])), median(np.array([np.nan]))
    (2.0, None)
    """
    values = values[np.isfinite(values)]
    return float(np.median(values)) if len(values) else None


@dataclass(frozen=True, kw_only=True)
class FeaturePsi:
    feature: str
    psi: float | None
    reference_median: float | None
    current_median: float | None


@dataclass(frozen=True, kw_only=True)
class Drift:
    reference: dt.datetime
    current: dt.datetime
    source: str  # "scores" (an earlier scoring date) or "backtest" (its test cutoff)
    score_psi: float | None
    p_old: np.ndarray
    p_new: np.ndarray
    features: list[FeaturePsi]


def events_mark(store: Store) -> tuple[int, dt.datetime | None]:
    """How many events the store holds and the newest one's time: it changes whenever events
    are added or erased, so figures computed from the events can be kept while it holds."""
    n, newest = store.con.execute("SELECT count(*), max(ts) FROM events").fetchall()[0]
    return int(n), newest


def scoring_dates(store: Store, version: str, *, n: int = 2) -> list[dt.datetime]:
    """The newest ``n`` dates the version scored the population at, newest first."""
    return [r[0] for r in store.con.execute(
        "SELECT DISTINCT as_of FROM scores WHERE model_version = ? ORDER BY as_of DESC LIMIT ?",
        [version, n]).fetchall()]


def scores_at(store: Store, version: str, as_of: dt.datetime) -> np.ndarray:
    """The probabilities the version gave at one scoring date."""
    return store.con.execute(
        "SELECT p_churn FROM scores WHERE model_version = ? AND as_of = ?",
        [version, as_of]).fetchnumpy()["p_churn"].astype(float)


def important_features(ranked: list[str], *, n: int) -> list[str]:
    """The first ``n`` of ``ranked`` (most important first) that are feature-view features."""
    return [name for name in ranked if name in FEATURES][:n]


def feature_drift(store: Store, definition: ChurnDefinition, features: list[str],
                  reference: dt.datetime, current: dt.datetime) -> list[FeaturePsi]:
    """PSI and medians of each feature over the population at ``reference`` and at
    ``current``."""
    population = population_and_labels(store, definition=definition,
                                       cutoffs=[reference, current])
    if population.empty or not features:
        return []
    frame = build_features(store, population[["user_id", "cutoff"]], definition=definition,
                           features=features)
    cutoffs = frame.index.get_level_values("cutoff")
    old = frame[np.asarray(cutoffs == pd.Timestamp(reference))]
    new = frame[np.asarray(cutoffs == pd.Timestamp(current))]
    out = []
    for name in features:
        if name not in frame.columns:
            continue
        a = pd.to_numeric(old[name], errors="coerce").to_numpy(dtype=float)
        b = pd.to_numeric(new[name], errors="coerce").to_numpy(dtype=float)
        out.append(FeaturePsi(feature=name, psi=psi(a, b), reference_median=median(a),
                                current_median=median(b)))
    return out


def drift(store: Store, *, definition: ChurnDefinition, version: str,
          features: Callable[[], list[str]],
          backtest: tuple[dt.datetime, np.ndarray] | None = None) -> Drift | None:
    """Score and feature drift of a model version between its two newest scoring dates, or,
    with one, between ``backtest`` (its test cutoff and test predictions) and that date; None
    when there is nothing to compare. ``features`` names the inputs to check (called only when
    there is a comparison to make)."""
    dates = scoring_dates(store, version)
    if not dates:
        return None
    current = dates[0]
    if len(dates) == 2:
        reference, source = dates[1], "scores"
        p_old = scores_at(store, version, reference)
    elif backtest is not None:
        (reference, p_old), source = backtest, "backtest"
    else:
        return None
    p_new = scores_at(store, version, current)
    rows = feature_drift(store, definition, features(), reference, current)
    return Drift(reference=reference, current=current, source=source,
                 score_psi=psi(p_old, p_new), p_old=p_old, p_new=p_new, features=rows)


__all__ = ["Drift", "FeaturePsi", "drift", "events_mark", "feature_drift", "important_features",
           "median",
           "psi", "scores_at", "scoring_dates", "stability"]
