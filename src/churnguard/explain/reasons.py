"""Choosing and ranking the reasons of each row: theme weights from the positive contributions,
the best-supported variant per theme, the top ``top_k`` as sentences and keys."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from churnguard.explain.queries import CONTEXT_COLUMNS
from churnguard.explain.render import _render
from churnguard.explain.templates import LANGS
from churnguard.explain.themes import _STATIC_THEMES, _Theme, _dynamic_themes, theme_of
from churnguard.explain.values import _Values, _known


def _choose(theme: _Theme, values: _Values, live: np.ndarray,
            driven: Callable[[tuple[str, ...]], np.ndarray]) -> np.ndarray:
    """Per row, the index of the variant to say (-1: none can be said truthfully).

    Lowest tier first; within a tier the variant whose drivers contributed most, then one that
    names a date (``prefer``), then the first listed.
    """
    best = np.full(values.n, -1, dtype=np.int64)
    best_score = np.full(values.n, -np.inf)
    for tier in sorted({v.tier for v in theme.variants}):
        undecided = live & (best < 0)
        for j, variant in enumerate(theme.variants):
            if variant.tier != tier:
                continue
            valid = undecided.copy()
            for spec in variant.fields.values():
                valid &= _known(values.resolve(spec.source))
            if variant.when is not None:
                with np.errstate(invalid="ignore"):
                    valid &= np.asarray(variant.when(values), dtype=bool)
            score = driven(variant.drivers) + (1e-9 if variant.prefer else 0.0)
            better = valid & (score > best_score)
            best[better] = j
            best_score[better] = score[better]
    return best


def _aligned(features: pd.DataFrame, index: pd.Index, what: str) -> pd.DataFrame:
    if features.index.equals(index):
        return features
    try:
        positions = features.index.get_indexer(index)
    except pd.errors.InvalidIndexError:
        raise ValueError(f"{what} has duplicate (user_id, cutoff) rows; keep one row per "
                         "customer and cutoff") from None
    missing = int((positions < 0).sum())
    if missing or len(features) != len(index):
        first = index[positions < 0][:1].tolist()
        raise ValueError(
            f"{what} and contributions have different rows: {missing} of {len(index)} "
            f"contribution rows are not in {what}"
            + (f" (first: {first[0]!r})" if first else "")
            + f", and {what} has {len(features)} rows; pass the {what} frame the model explained")
    return features.iloc[positions]


def _context_frame(context: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    if context.index.equals(index) and set(context.columns) <= set(CONTEXT_COLUMNS):
        return context  # already aligned (the real-time path): reindexing costs milliseconds
    if {"user_id", "cutoff"} <= set(context.columns):
        context = context.set_index(["user_id", "cutoff"])
    if context.index.nlevels == 2 and index.nlevels == 2:
        # one resolution for the cutoffs on both sides, so that equal instants match
        context = context.set_axis(pd.MultiIndex.from_arrays([
            context.index.get_level_values(0).astype(str),
            pd.to_datetime(context.index.get_level_values(1)).as_unit("us")]))
        index = pd.MultiIndex.from_arrays([
            index.get_level_values(0).astype(str),
            pd.to_datetime(index.get_level_values(1)).as_unit("us")])
    unknown = set(context.columns) - set(CONTEXT_COLUMNS)
    context = context[[c for c in context.columns if c not in unknown]]
    return context.reindex(index)


def reasons(contributions: pd.DataFrame, features: pd.DataFrame, *, lang: str = "en",
            top_k: int = 3, context: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``top_k`` reasons per row, as sentences and as stable keys.

    ``contributions``: SHAP values in log-odds, one column per feature (plus ``bias``, ignored),
    indexed like ``features`` (normally by user_id, cutoff). ``features``: the values the model
    saw, which the sentences quote. ``context``: optional details from :func:`reason_context`
    (dates and review topics). Returns a frame with the contributions' index and columns
    ``reason_1..reason_{top_k}`` and ``reason_keys_1..reason_keys_{top_k}``; a customer with fewer
    themes pushing toward churn gets empty strings in the remaining slots.
    """
    return reasons_in(contributions, features, langs=(lang,), top_k=top_k, context=context)[lang]


def reasons_in(contributions: pd.DataFrame, features: pd.DataFrame, *, langs: Sequence[str],
               top_k: int = 3, context: pd.DataFrame | None = None) -> dict[str, pd.DataFrame]:
    """:func:`reasons` in each of ``langs``: the themes are weighed and their variants chosen
    once (that does not depend on the language), then said in each language."""
    unknown = [lang for lang in langs if lang not in LANGS]
    if unknown:
        raise ValueError(f"unknown language {unknown[0]!r}; use en or zh")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"top_k must be a whole number of at least 1, got {top_k!r}")
    names = [c for c in contributions.columns if c != "bias"]
    absent = [c for c in names if c not in features.columns]
    if absent:
        raise ValueError(
            f"contributions has {len(absent)} columns that features lacks ({', '.join(absent[:5])}"
            f"{', ...' if len(absent) > 5 else ''}); pass the features frame the model explained")
    index = contributions.index
    features = _aligned(features, index, "features")
    if context is not None:
        context = _context_frame(context, index)
    values = _Values(features, context)

    themes = list(_STATIC_THEMES) + _dynamic_themes(names)
    position = {t.key: i for i, t in enumerate(themes)}
    column_of = {c: i for i, c in enumerate(names)}
    n = len(index)
    positive = np.nan_to_num(contributions[names].to_numpy(dtype=float, na_value=np.nan), nan=0.0)
    np.clip(positive, 0.0, None, out=positive)

    # theme weight = sum of its features' positive contributions
    membership = np.zeros((len(names), len(themes)))
    for c, name in enumerate(names):
        theme = theme_of(name)
        if theme is not None and theme in position:
            membership[c, position[theme]] = 1.0
    weight = positive @ membership

    def driven(columns: tuple[str, ...]) -> np.ndarray:
        cols = [column_of[c] for c in columns if c in column_of]
        return positive[:, cols].sum(axis=1) if cols else np.zeros(n)

    # per theme: the variant each row would say (-1: none can be said truthfully)
    choice = np.full((n, len(themes)), -1, dtype=np.int64)
    for t, theme in enumerate(themes):
        live = weight[:, t] > 0
        if live.any():
            choice[:, t] = _choose(theme, values, live, driven)
    weight[choice < 0] = 0.0

    k = min(top_k, len(themes))
    order = np.argsort(-weight, axis=1, kind="stable")[:, :k]
    shown = np.take_along_axis(weight, order, axis=1) > 0
    said = {}
    for lang in langs:
        text = np.full((n, top_k), "", dtype=object)
        keys = np.full((n, top_k), "", dtype=object)
        for t, theme in enumerate(themes):
            rows, slots = np.nonzero((order == t) & shown)
            if rows.size == 0:
                continue
            picked = choice[rows, t]
            for j in np.unique(picked).tolist():
                sel = picked == j
                variant = theme.variants[j]
                text[rows[sel], slots[sel]] = _render(theme, variant, lang, values, rows[sel])
                keys[rows[sel], slots[sel]] = variant.key or theme.key
        out = {f"reason_{i + 1}": text[:, i] for i in range(top_k)}
        out |= {f"reason_keys_{i + 1}": keys[:, i] for i in range(top_k)}
        said[lang] = pd.DataFrame(out, index=index)
    return said
