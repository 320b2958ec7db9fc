"""Population stability: how far a distribution moved between a reference and now.

PSI = Σ_b (a_b − e_b) · ln(a_b / e_b) over bins b, with e_b the reference share and a_b the
current share of bin b (Siddiqi 2006, *Credit Risk Scorecards*, ch. 8; its statistical
properties in Yurdakul 2018, "Statistical properties of population stability index", Western
Michigan University). The bins are the reference's deciles, so each holds about a tenth of the
reference; a value repeated across deciles (counts, zeros) makes fewer, wider bins. Empty bins
get a share of 1e-4 so the logarithm stays finite. The usual reading: below 0.1 stable, 0.1 to
0.25 a moderate shift worth a look, above 0.25 a major shift (retrain or investigate).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> same = psi(rng.normal(size=5000), rng.normal(size=5000))
>>> moved = psi(rng.normal(size=5000), rng.normal(0.5, 1, size=5000))
>>> same < 0.1 < moved, stability(same), stability(moved)
(True, 'stable', 'moderate')
"""

from __future__ import annotations

import numpy as np

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
