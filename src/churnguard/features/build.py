"""Point-in-time feature frames: one DuckDB query for many (user, cutoff) pairs at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from churnguard.config import ChurnDefinition
from churnguard.errors import ChurnguardError
from churnguard.features.registry import ATTRIBUTE_PREFIX, FEATURES, GROUPS
from churnguard.features.sql import feature_query
from churnguard.labels import to_cutoff
from churnguard.store import Store


class FeatureError(ChurnguardError, ValueError):
    """The population or the requested features cannot be computed (with the reason and the fix)."""

    code = "invalid_features"
    bad_input = False


@dataclass(frozen=True, kw_only=True)
class GroupStatus:
    """Whether a feature group can be computed from this store, and if not, why."""

    group: str
    available: bool
    features: tuple[str, ...]
    skipped: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class _Attribute:
    column: str
    name: str
    numeric: bool
    categories: tuple[str, ...] = field(default=())


def _present(store: Store) -> set[str]:
    present = {row[0] for row in store.con.execute("SELECT DISTINCT type FROM events").fetchall()}
    has_sessions = store.con.execute(
        "SELECT count(*) > 0 FROM (SELECT 1 FROM events WHERE session_id IS NOT NULL LIMIT 1)"
    ).fetchall()[0][0]
    if has_sessions:
        present.add("@session_id")
    return present


def _missing_text(missing: Iterable[str]) -> str:
    parts = ["no events carry a session_id" if m == "@session_id" else f"no '{m}' events"
             for m in sorted(set(missing))]
    return "; ".join(parts)


def _attributes(store: Store) -> list[_Attribute]:
    """Attribute columns: numeric when every non-empty value parses as a number."""
    return list(attribute_columns(store))


def attribute_columns(store: Store) -> tuple[_Attribute, ...]:
    """The ``attr_`` columns the store's user attributes make (name, type and categories), for
    :func:`build_features`'s ``attributes``: a caller that featurises a few customers at a time
    from a store whose attributes do not change computes them once instead of on every call."""
    rows = store.con.execute(
        """
        SELECT name,
               bool_and(TRY_CAST(value AS DOUBLE) IS NOT NULL) AS numeric,
               list(DISTINCT value ORDER BY value) AS categories
        FROM user_attributes WHERE nullif(trim(value), '') IS NOT NULL
        GROUP BY name ORDER BY name
        """
    ).fetchall()
    return attribute_specs(rows)


def attribute_specs(rows: Iterable[tuple[str, bool, Sequence[str]]]) -> tuple[_Attribute, ...]:
    """The ``attr_`` columns of (attribute name, numeric, sorted distinct values) rows, by name:
    one rule for every engine (features/spark.py computes the rows on Spark)."""
    attributes, used = [], set(FEATURES)
    for name, numeric, categories in rows:
        base = ATTRIBUTE_PREFIX + (re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_") or "x")
        column, k = base, 2
        while column in used:  # two names that normalise alike keep distinct columns
            column, k = f"{base}_{k}", k + 1
        used.add(column)
        attributes.append(_Attribute(column=column, name=name, numeric=bool(numeric),
                                     categories=() if numeric else tuple(categories)))
    return tuple(attributes)


def feature_groups_available(store: Store) -> list[GroupStatus]:
    """Per feature group: can it be computed from the event types in this store?

    A feature needs its ``requires`` event types somewhere in the store (an orders-only export has
    no views, so the browsing columns would be zeros that mean "unknown", not "none"). A group is
    available when at least one of its features is; ``skipped`` lists those that are not.
    """
    present = _present(store)
    has_attributes = store.con.execute("SELECT count(*) FROM user_attributes").fetchall()[0][0] > 0
    statuses = []
    for group in GROUPS:
        names = tuple(n for n, s in FEATURES.items() if s.group == group)
        if group == "attributes":
            statuses.append(GroupStatus(
                group=group, available=has_attributes, features=(),
                reason="" if has_attributes else "no user attributes in the users table"))
            continue
        missing = {n: [r for r in FEATURES[n].requires if r not in present] for n in names}
        skipped = tuple(n for n in names if missing[n])
        reason = ""
        if skipped:
            reason = _missing_text(m for n in skipped for m in missing[n])
        statuses.append(GroupStatus(group=group, available=len(skipped) < len(names),
                                    features=names, skipped=skipped, reason=reason))
    return statuses


def _population_table(population: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(population, pa.Table):
        population = population.to_pandas()
    frame = population
    if not {"user_id", "cutoff"} <= set(frame.columns):
        frame = frame.reset_index()
    missing = {"user_id", "cutoff"} - set(frame.columns)
    if missing:
        raise FeatureError(
            "the population needs columns user_id and cutoff "
            f"(missing: {', '.join(sorted(missing))});"
            " build it with churnguard.labels.population_and_labels")
    cutoffs = frame["cutoff"]
    if isinstance(cutoffs.dtype, pd.DatetimeTZDtype):
        cutoffs = cutoffs.dt.tz_convert("UTC").dt.tz_localize(None)
    elif not pd.api.types.is_datetime64_dtype(cutoffs):
        cutoffs = pd.Series([to_cutoff(c) for c in cutoffs], dtype="datetime64[us]")
    if frame["user_id"].isna().any() or cutoffs.isna().any():
        raise FeatureError("the population has empty user_id or cutoff values; drop those rows")
    return pa.table({
        "user_id": pa.array(frame["user_id"].astype(str).to_numpy(dtype=object), type=pa.string()),
        "cutoff": pa.array(cutoffs.astype("datetime64[us]").to_numpy(), type=pa.timestamp("us")),
    })


def build_features(
    store: Store,
    population: pd.DataFrame | pa.Table,
    *,
    definition: ChurnDefinition | None = None,
    groups: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    attributes: Sequence[_Attribute] | None = None,
) -> pd.DataFrame:
    """Features for every (user_id, cutoff) in ``population``, from events strictly before cutoff.

    Returns a frame indexed by (user_id, cutoff), sorted by the index, columns in registry order
    then the ``attr_`` columns by name. Counts are int64, everything else float64 (NaN: not
    defined, e.g. a gap with one order day), categorical attributes pandas ``category``.

    Which columns: ``features`` (exact names, e.g. the columns a model was trained on; ones this
    store cannot support come back as NaN/0), else the registered features of ``groups`` (default:
    all), minus those :func:`feature_groups_available` says this store cannot support. The frame's
    ``attrs["skipped"]`` maps each dropped feature to the reason.

    ``attributes``: :func:`attribute_columns` of this store, when the caller has it already.
    """
    definition = definition or ChurnDefinition()
    if groups is not None:
        unknown = set(groups) - set(GROUPS)
        if unknown:
            raise FeatureError(f"unknown feature groups {sorted(unknown)}; known: {list(GROUPS)}")
    attributes = _attributes(store) if attributes is None else list(attributes)
    attr_by_column = {a.column: a for a in attributes}
    skipped: dict[str, str] = {}
    if features is not None:
        unknown = [f for f in features if f not in FEATURES and not f.startswith(ATTRIBUTE_PREFIX)]
        if unknown:
            raise FeatureError(f"unknown features {unknown}; see churnguard.features.FEATURES")
        columns = list(features)
    else:
        wanted = set(groups) if groups is not None else set(GROUPS)
        status = {s.group: s for s in feature_groups_available(store)}
        present = _present(store)
        columns = []
        for name, spec in FEATURES.items():
            if spec.group not in wanted:
                continue
            missing = [r for r in spec.requires if r not in present]
            if missing:
                skipped[name] = _missing_text(missing)
            else:
                columns.append(name)
        if "attributes" in wanted:
            columns += [a.column for a in attributes]
            if not status["attributes"].available:
                skipped["attr_*"] = status["attributes"].reason

    table = _population_table(population)
    with store.registered(table, "population") as view:
        sql = feature_query(
            pop_view=view, activity=definition.activity, lookback_days=definition.lookback_days,
            attribute_columns=[(a.column, a.name, a.numeric) for a in attributes])
        frame = store.con.execute(sql).df()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    for column in columns:
        if column not in frame.columns:  # an attribute a model was trained with, absent here
            frame[column] = float("nan")
        elif column in attr_by_column and not attr_by_column[column].numeric:
            frame[column] = pd.Categorical(
                frame[column], categories=list(attr_by_column[column].categories))
    frame = frame.set_index(["user_id", "cutoff"])[columns]
    frame.attrs["skipped"] = skipped
    return frame
