"""Drift of many features at once, with thresholds calibrated to the batch size.

A fixed rule such as "PSI > 0.1" misfires both ways: the PSI of an unchanged batch shrinks with
its size (about ``(k - 1) (1/n + 1/m)`` for k bins, a batch of n rows and a reference of m; Yurdakul
2018, "Statistical properties of population stability index"), so 100 unchanged rows cross 0.1
far too often while a real 0.1-standard-deviation shift in 5,000 rows stays under it. Here the
threshold comes from the data:

1. **Bins, fixed by the reference.** A numeric feature with more than :data:`MAX_LEVELS`
   distinct reference values is cut at the reference's deciles (repeated quantiles merged); one
   with fewer (counts, flags, a constant) keeps one bin per reference value plus an "other" bin
   for values the reference never had; a categorical feature keeps its :data:`MAX_CATEGORIES`
   most frequent reference values plus "other". Every feature has a bin of its own for missing
   values, so a column that starts arriving empty is drift too.
2. **The statistic**: PSI (empty shares floored at :data:`EMPTY_SHARE`) or the Jensen–Shannon
   divergence, of the batch's shares against the reference's.
3. **Its null distribution by bootstrap at the actual batch size.** Each of B draws takes a
   reference of the reference's size m and a batch of the batch's size n from the reference
   window (with replacement) and computes the same statistic. Drawing n rows and binning them
   is, for one feature, the same as drawing the bin counts from a multinomial with the
   reference's shares, which is what is done: all features and all draws in one numpy call, so
   the cost does not grow with the rows. The reference is redrawn too, because the observed
   statistic also carries the reference's own sampling noise (with n = m it is half the
   variance; a null of batch draws alone would alarm on unchanged data). The shares the draws
   use add half a row to each bin (Jeffreys), so a bin the reference never filled can still
   receive the odd row by chance instead of alarming on one.
4. **p-value** = (1 + #{null >= observed}) / (1 + B). A bootstrap of B draws cannot tell apart
   p-values below about 1/B, while Benjamini–Hochberg over 71 features at an FDR of 0.01 needs
   0.01/71 = 1.4e-4 for the strongest one. So where fewer than :data:`TAIL_DRAWS` draws reach the
   observed value, the p-value is read from the null's tail instead: a scaled chi-square (a
   gamma distribution) with the bootstrap null's mean and variance, the large-sample form of
   both statistics under no change.
5. **Benjamini–Hochberg** across the features (:func:`benjamini_hochberg`) at the FDR asked for:
   a feature alarms when its adjusted p-value (q-value) is at most the FDR. On unchanged data
   every alarm is false, and the chance of any alarm in a batch is at most the FDR.

**The season** (``season=``, :class:`Season`): a shop's inputs move every year at the same time
(a festival, the weeks before it), so "has anything moved since last week" is answered yes there
every year, rightly and uselessly. Given the same two moments a year earlier (the reference's
and the batch's dates one year back, binned with this reference's bins), the question becomes
"has anything moved beyond how it moved at this time last year". The batch's expected shares
are the reference's times last year's change, bin by bin (a difference in differences on the
log shares, with every share smoothed by half a row):

    expected_b = reference_b * (last_batch_b / last_reference_b), renormalised,

and the statistic compares the batch with them. The null draws all four samples (the reference,
last year's two, the batch from the expected shares) at their own sizes and recomputes the
expected shares from the drawn three, so last year's sampling noise is in the threshold too: a
seasonal check needs a larger shift than a plain one to alarm, and it compares only changes, so
whatever differs between the two years alike in both of last year's moments (the shop is
older, has more customers) cancels.

>>> rng = np.random.default_rng(1)
>>> reference = pd.DataFrame({"x": rng.normal(size=20_000), "y": rng.normal(size=20_000)})
>>> batch = pd.DataFrame({"x": rng.normal(0.3, 1, size=2_000), "y": rng.normal(size=2_000)})
>>> result = drift_test(reference, batch, bootstrap=300, seed=0)
>>> [(row.name, row.alarm) for row in result]
[('x', True), ('y', False)]

Had ``x`` moved the same way between the same dates last year, it is no news:

>>> last_ref = pd.DataFrame({"x": rng.normal(0.0, 1, 20_000), "y": rng.normal(size=20_000)})
>>> last_batch = pd.DataFrame({"x": rng.normal(0.3, 1, 2_000), "y": rng.normal(size=2_000)})
>>> season = Season(reference=last_ref, batch=last_batch)
>>> [(row.name, row.alarm) for row in drift_test(reference, batch, bootstrap=300, seed=0,
...                                              season=season)]
[('x', False), ('y', False)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import gamma

__all__ = ["EMPTY_SHARE", "MAX_CATEGORIES", "MAX_LEVELS", "TAIL_DRAWS", "Binning",
           "FeatureDrift", "PreparedReference", "Season", "Statistic", "benjamini_hochberg", "bin_feature",
           "drift_test", "js_divergence", "prepare_reference", "psi_shares"]

Statistic = Literal["psi", "js"]
EMPTY_SHARE = 1e-4
N_QUANTILE_BINS = 10
MAX_LEVELS = 10
MAX_CATEGORIES = 20
TAIL_DRAWS = 10
# Draws are made for this many features at a time, so memory stays bounded (B x chunk x bins).
_CHUNK = 16


@dataclass(frozen=True, kw_only=True)
class Binning:
    """How one feature's values become bin numbers: ``edges`` (quantile bins of a numeric
    feature), or ``levels`` (one bin each, then "other"); the last bin holds missing values."""

    kind: Literal["quantiles", "levels"]
    edges: np.ndarray | None = None
    levels: tuple = ()

    @property
    def n_bins(self) -> int:
        inner = len(self.edges) + 1 if self.kind == "quantiles" else len(self.levels) + 1
        return inner + 1  # + missing

    def codes(self, values: pd.Series) -> np.ndarray:
        """The bin of each value: 0 .. n_bins - 1, the last one for missing values.

        >>> b = bin_feature(pd.Series([1.0, 1.0, 2.0]))
        >>> b.levels, b.codes(pd.Series([1.0, 2.0, 3.0, None])).tolist()
        ((1.0, 2.0), [0, 1, 2, 3])
        """
        missing_bin = self.n_bins - 1
        if self.kind == "quantiles":
            x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            finite = np.isfinite(x)
            # A value equal to an edge falls in the bin below it (edge[b-1] < v <= edge[b]).
            out = np.searchsorted(self.edges, np.where(finite, x, 0.0), side="left")
            return np.where(finite, out, missing_bin)
        missing = values.isna().to_numpy()
        if _is_numeric(values) and all(isinstance(v, float) for v in self.levels):
            # Numbers: a sorted search instead of a lookup per row.
            x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            levels = np.asarray(self.levels, dtype=float)
            at = np.clip(np.searchsorted(levels, x), 0, max(len(levels) - 1, 0))
            hit = levels[at] == x if len(levels) else np.zeros(len(x), dtype=bool)
            return np.where(missing | ~np.isfinite(x), self.n_bins - 1,
                            np.where(hit, at, len(levels)))
        at = pd.Index(self.levels, dtype=object).get_indexer(_levels_of(values))
        return np.where(missing, missing_bin, np.where(at < 0, len(self.levels), at))


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _levels_of(values: pd.Series) -> np.ndarray:
    """Values as comparable keys: numbers as floats, anything else as text."""
    if _is_numeric(values):
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    return values.astype(str).to_numpy(dtype=object)  # missing ones are masked by the caller


def bin_feature(reference: pd.Series) -> Binning:
    """The bins of one feature, fixed by its reference values (the module docstring, step 1).

    >>> bin_feature(pd.Series(np.arange(100.0))).n_bins   # 10 deciles + missing
    11
    >>> bin_feature(pd.Series([3.0] * 50)).levels          # a constant: its value, other, missing
    (3.0,)
    >>> bin_feature(pd.Series(["a", "b", None, "a"])).levels
    ('a', 'b')
    """
    present = reference.dropna()
    if _is_numeric(reference):
        x = pd.to_numeric(present, errors="coerce").to_numpy(dtype=float)
        x = x[np.isfinite(x)]
        distinct = np.unique(x)
        if len(distinct) > MAX_LEVELS:
            inner = np.quantile(x, np.linspace(0, 1, N_QUANTILE_BINS + 1)[1:-1])
            return Binning(kind="quantiles", edges=np.unique(inner))
        return Binning(kind="levels", levels=tuple(float(v) for v in distinct))
    counts = pd.Series(_levels_of(present)).value_counts(sort=True)
    return Binning(kind="levels", levels=tuple(counts.index[:MAX_CATEGORIES]))


def psi_shares(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """PSI = sum_b (a_b - e_b) ln(a_b / e_b) over the last axis, shares floored at
    :data:`EMPTY_SHARE` (bins both sides leave empty add nothing).

    >>> round(float(psi_shares(np.array([0.5, 0.5]), np.array([0.4, 0.6]))), 4)
    0.0405
    """
    a = np.maximum(a, EMPTY_SHARE)
    e = np.maximum(e, EMPTY_SHARE)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def js_divergence(a: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Jensen–Shannon divergence (natural log, 0 to ln 2) over the last axis; empty bins add 0.

    >>> float(js_divergence(np.array([1.0, 0.0]), np.array([0.0, 1.0]))) == float(np.log(2))
    True
    """
    m = (a + e) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(a > 0, a * np.log(a / m), 0.0)
        right = np.where(e > 0, e * np.log(e / m), 0.0)
    return 0.5 * np.sum(left + right, axis=-1)


_STATISTICS = {"psi": psi_shares, "js": js_divergence}


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q-values): q_(i) = min over j >= i of
    p_(j) F / j for the p-values sorted ascending, capped at 1 (Benjamini and Hochberg 1995,
    "Controlling the false discovery rate", JRSS B 57(1)). Rejecting every q <= alpha keeps the
    expected share of false alarms among the alarms at most alpha.

    The hand example: five p-values; sorted they are 0.001, 0.008, 0.039, 0.041, 0.2, and
    p F / rank gives 0.005, 0.02, 0.065, 0.05125, 0.2; the running minimum from the top makes
    the third 0.05125. At alpha = 0.05 the first two alarm:

    >>> q = benjamini_hochberg([0.039, 0.001, 0.2, 0.008, 0.041])
    >>> [round(float(v), 5) for v in q]
    [0.05125, 0.005, 0.2, 0.02, 0.05125]
    >>> (q <= 0.05).tolist()
    [False, True, False, True, False]
    """
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p.copy()
    order = np.argsort(p, kind="stable")
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty_like(p)
    out[order] = np.minimum(adjusted, 1.0)
    return out


@dataclass(frozen=True, kw_only=True)
class FeatureDrift:
    """One feature's drift check: the statistic of the batch against the reference, its
    bootstrap p-value, the BH-adjusted q-value and whether it alarms (q <= FDR).
    ``null_p99``: the value an unchanged batch of this size exceeds 1% of the time (the
    calibrated counterpart of a fixed threshold). ``reference_missing`` and ``batch_missing``:
    the shares of missing values; ``reference_median``/``batch_median`` for numeric features."""

    name: str
    kind: str  # "quantiles" or "levels"
    statistic: float
    p_value: float
    q_value: float
    alarm: bool
    null_p99: float
    reference_missing: float
    batch_missing: float
    reference_median: float | None = None
    batch_median: float | None = None

    def to_dict(self) -> dict:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


def _jsonable(value: object) -> object:
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _median(values: pd.Series) -> float | None:
    if not _is_numeric(values):
        return None
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    x = x[np.isfinite(x)]
    return float(np.median(x)) if len(x) else None


def _p_values(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Bootstrap p-values of ``observed`` (F,) under ``null`` (B, F), with the gamma tail where
    fewer than :data:`TAIL_DRAWS` draws reach the observed value (module docstring, step 4)."""
    draws = null.shape[0]
    reached = (null >= observed[None, :] - 1e-12).sum(axis=0)
    p = (1.0 + reached) / (1.0 + draws)
    mean, var = null.mean(axis=0), null.var(axis=0, ddof=1)
    tail = (reached < TAIL_DRAWS) & (var > 0) & (mean > 0)
    if tail.any():
        shape = mean[tail] ** 2 / var[tail]
        scale = var[tail] / mean[tail]
        p[tail] = gamma.sf(observed[tail], shape, scale=scale)
    return np.clip(p, 0.0, 1.0)


def _counts(codes: np.ndarray, width: int) -> np.ndarray:
    """Per feature (columns of ``codes``), the rows in each bin, padded to ``width`` bins."""
    out = np.zeros((codes.shape[1], width), dtype=np.int64)
    for j in range(codes.shape[1]):
        out[j] = np.bincount(codes[:, j], minlength=width)[:width]
    return out


def _null(ref_counts: np.ndarray, n_bins: np.ndarray, *, batch_size: int, draws: int,
          statistic: Statistic, rng: np.random.Generator,
          reference_size: int | None = None) -> np.ndarray:
    """(draws, F) statistics of batches of ``batch_size`` against references of the reference's
    size, both drawn from the reference's (smoothed) shares."""
    measure = _STATISTICS[statistic]
    m = int(reference_size or ref_counts[0].sum())
    width = ref_counts.shape[1]
    real = np.arange(width)[None, :] < n_bins[:, None]
    smoothed = np.where(real, ref_counts + 0.5, 0.0)
    shares = smoothed / smoothed.sum(axis=1, keepdims=True)
    out = np.empty((draws, len(ref_counts)))
    for start in range(0, len(ref_counts), _CHUNK):
        part = shares[start:start + _CHUNK]
        size = (draws, len(part))
        reference = rng.multinomial(m, part, size=size) / m
        batch = rng.multinomial(batch_size, part, size=size) / batch_size
        out[:, start:start + _CHUNK] = measure(batch, reference)
    return out


def _smooth(counts: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Shares over the last axis with half a row added to each real bin (Jeffreys); 0 elsewhere."""
    smoothed = np.where(real, counts + 0.5, 0.0)
    return smoothed / smoothed.sum(axis=-1, keepdims=True)


def _expected(reference: np.ndarray, last_reference: np.ndarray, last_batch: np.ndarray,
              real: np.ndarray) -> np.ndarray:
    """The batch's expected shares given last year's change (the module docstring, "The
    season"): the reference's smoothed shares times last year's batch over last year's
    reference, bin by bin, renormalised. Counts over the last axis; any leading axes.

    >>> real = np.array([[True, True, False]])
    >>> e = _expected(np.array([[50, 50, 0]]), np.array([[50, 50, 0]]), np.array([[80, 20, 0]]),
    ...               real)
    >>> [round(float(v), 3) for v in e[0]]
    [0.797, 0.203, 0.0]
    """
    ratio = np.divide(_smooth(last_batch, real), _smooth(last_reference, real),
                      out=np.zeros(np.broadcast_shapes(last_batch.shape, real.shape)),
                      where=real)
    expected = _smooth(reference, real) * ratio
    return expected / expected.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, kw_only=True)
class Season:
    """The same two moments a year earlier, for a seasonal check (module docstring, "The
    season"): ``reference`` and ``batch`` hold the checked features at the reference's and the
    batch's dates one year back; ``reference_size`` is the former's number of independent rows
    (default: its rows), as for the reference."""

    reference: pd.DataFrame
    batch: pd.DataFrame
    reference_size: int | None = None


def _season_null(ref_counts: np.ndarray, last_ref: np.ndarray, last_batch: np.ndarray,
                 n_bins: np.ndarray, *, sizes: tuple[int, int, int, int], draws: int,
                 statistic: Statistic, rng: np.random.Generator) -> np.ndarray:
    """(draws, F) statistics of a seasonal check on unchanged data: the reference and last
    year's two samples drawn from their own smoothed shares, the batch from the expected
    shares, each at its size (``sizes``: reference, last reference, last batch, batch)."""
    measure = _STATISTICS[statistic]
    m, m_last, n_last, n = sizes
    real = np.arange(ref_counts.shape[1])[None, :] < n_bins[:, None]
    shares = [_smooth(c, real) for c in (ref_counts, last_ref, last_batch)]
    expected = _expected(ref_counts, last_ref, last_batch, real)
    out = np.empty((draws, len(ref_counts)))
    for start in range(0, len(ref_counts), _CHUNK):
        part = slice(start, start + _CHUNK)
        size = (draws, len(ref_counts[part]))
        ref, lref, lbatch = (rng.multinomial(k, s[part], size=size)
                             for k, s in zip((m, m_last, n_last), shares))
        batch = rng.multinomial(n, expected[part], size=size) / n
        out[:, part] = measure(batch, _expected(ref, lref, lbatch, real[part]))
    return out


@dataclass(frozen=True, kw_only=True)
class PreparedReference:
    """A reference window reduced to what the checks need: per feature its bins, its counts
    per bin and its median (:func:`prepare_reference`), so that many batches can be checked
    against one reference without binning it again."""

    names: list[str]
    binnings: list[Binning]
    counts: np.ndarray  # (features, bins), padded with empty bins
    rows: int
    medians: list[float | None]


def prepare_reference(reference: pd.DataFrame,
                      features: Sequence[str] | None = None) -> PreparedReference:
    """The bins and counts of ``reference``'s columns (``features``: which; default all)."""
    names = [c for c in (features if features is not None else reference.columns)
             if c in reference.columns]
    if len(reference) == 0:
        raise ValueError("the reference needs at least one row")
    binnings = [bin_feature(reference[name]) for name in names]
    width = max((b.n_bins for b in binnings), default=1)
    codes = (np.column_stack([b.codes(reference[n]) for b, n in zip(binnings, names)])
             if names else np.zeros((len(reference), 0), dtype=np.int64))
    return PreparedReference(names=names, binnings=binnings, counts=_counts(codes, width),
                             rows=len(reference),
                             medians=[_median(reference[n]) for n in names])


def _season_counts(frame: pd.DataFrame, binnings: list[Binning], names: list[str], width: int,
                   which: str) -> np.ndarray:
    """Last year's counts per bin of this reference's bins (``which``: for the error)."""
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise ValueError(f"the season's {which} lacks the checked features {missing[:5]}")
    if len(frame) == 0:
        raise ValueError(f"the season's {which} needs at least one row")
    return _counts(np.column_stack([b.codes(frame[n]) for b, n in zip(binnings, names)]), width)


def drift_test(reference: pd.DataFrame | PreparedReference, batch: pd.DataFrame, *,
               features: Sequence[str] | None = None, statistic: Statistic = "psi",
               fdr: float = 0.01, bootstrap: int = 500, seed: int = 0,
               reference_size: int | None = None,
               season: Season | None = None) -> list[FeatureDrift]:
    """The drift check of every feature of ``batch`` against ``reference`` (a frame, or one
    :func:`prepare_reference` made; module docstring).

    ``features``: the columns to check (default: those of ``reference`` that ``batch`` has
    too). Both need at least one row. Deterministic for a given ``seed``.
    ``reference_size``: the reference's effective number of independent rows, the size its
    redraws take in the null (default: its rows). A reference that holds the same customers at
    several cutoffs has fewer independent rows than rows, and its shares vary more than its row
    count says; giving the number of distinct customers keeps the null honest (conservative).
    ``season``: the same two moments a year earlier (:class:`Season`); each feature's batch is
    then compared with its expected shares given last year's change. Every checked feature
    must be in both of its frames.
    """
    if statistic not in _STATISTICS:
        raise ValueError(f"statistic must be one of {sorted(_STATISTICS)}, got {statistic!r}")
    if not 0 < fdr < 1:
        raise ValueError(f"fdr must be between 0 and 1, got {fdr}")
    if bootstrap < 1:
        raise ValueError(f"bootstrap must be at least 1, got {bootstrap}")
    if not isinstance(reference, PreparedReference):
        reference = prepare_reference(reference, features)
    keep = [j for j, name in enumerate(reference.names) if name in batch.columns
            and (features is None or name in features)]
    if not keep:
        return []
    if len(batch) == 0:
        raise ValueError("the batch needs at least one row")
    names = [reference.names[j] for j in keep]
    binnings = [reference.binnings[j] for j in keep]
    ref_counts = reference.counts[keep]
    n_bins = np.array([b.n_bins for b in binnings])
    width = ref_counts.shape[1]
    cur_codes = np.column_stack([b.codes(batch[n]) for b, n in zip(binnings, names)])
    cur_counts = _counts(cur_codes, width)
    measure = _STATISTICS[statistic]
    rng = np.random.default_rng(seed)
    if season is None:
        observed = measure(cur_counts / len(batch), ref_counts / reference.rows)
        null = _null(ref_counts, n_bins, batch_size=len(batch), draws=bootstrap,
                     reference_size=reference_size, statistic=statistic, rng=rng)
    else:
        last_ref, last_batch = (_season_counts(frame, binnings, names, width, which)
                                for frame, which in ((season.reference, "reference"),
                                                     (season.batch, "batch")))
        real = np.arange(width)[None, :] < n_bins[:, None]
        observed = measure(cur_counts / len(batch),
                           _expected(ref_counts, last_ref, last_batch, real))
        sizes = (int(reference_size or reference.rows),
                 int(season.reference_size or len(season.reference)), len(season.batch),
                 len(batch))
        null = _season_null(ref_counts, last_ref, last_batch, n_bins, sizes=sizes,
                            draws=bootstrap, statistic=statistic, rng=rng)
    p = _p_values(observed, null)
    q = benjamini_hochberg(p)
    p99 = np.quantile(null, 0.99, axis=0)
    missing = n_bins - 1
    return [FeatureDrift(
        name=name, kind=b.kind, statistic=float(observed[i]), p_value=float(p[i]),
        q_value=float(q[i]), alarm=bool(q[i] <= fdr), null_p99=float(p99[i]),
        reference_missing=float(ref_counts[i, missing[i]] / reference.rows),
        batch_missing=float(cur_counts[i, missing[i]] / len(batch)),
        reference_median=reference.medians[j], batch_median=_median(batch[name]))
        for i, (j, name, b) in enumerate(zip(keep, names, binnings))]
