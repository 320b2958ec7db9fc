"""Churn definitions made concrete: populations and labels, all computed in DuckDB.

At a cutoff ``T`` (a naive UTC timestamp, normally a midnight, chosen by
:mod:`churnguard.cutoffs`):

* the **population** is every user with at least one *activity* event (types in
  ``definition.activity``, default ``order``) with ``T - lookback <= ts < T``;
* a user is **churned** when no activity event has ``T <= ts < T + horizon``;
* the label is **observable** only when ``T + horizon <= last event time in the store``. At a cutoff
  whose horizon is not fully covered by the data the rule label is NULL for *everyone* (marking
  only the users already seen active as "not churned" would give a sample of negatives only);
* **supplied labels** (the ``labels`` table) win: a row with ``as_of = T`` replaces the rule label
  of that user at that cutoff, and adds the user to the population if the rule did not include
  them. ``label_source`` says which applied. Supplied labels never become NULL.

Everything is set-based: a small table of cutoffs is joined to the events, never a Python loop over
users.

>>> from churnguard.store import Store
>>> from churnguard.config import ChurnDefinition
>>> store = Store.in_memory()
>>> for n, (user, day, kind) in enumerate([("u1", "2025-01-05", "order"),
...         ("u2", "2025-01-20", "order"), ("u2", "2025-03-01", "order"),
...         ("u3", "2025-06-01", "view")]):
...     _ = store.con.execute("INSERT INTO events (event_id, user_id, ts, type, batch_id) "
...                           "VALUES (?, ?, ?, ?, 'b')", [f"e{n + 1}", user, day, kind])
>>> d = ChurnDefinition(lookback_days=30, horizon_days=30)
>>> population_and_labels(store, definition=d, cutoffs=["2025-02-01"])[["user_id", "churned"]]
  user_id  churned
0      u1     True
1      u2    False
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import pyarrow as pa

from churnguard.config import ChurnDefinition
# The calendar lives in churnguard.cutoffs; its names stay importable from here.
from churnguard.cutoffs import (
    LabelError,
    cutoff_grid,
    known_event_span,
    label_window_end,
    label_window_end_sql,
    labels_known,
    lookback_start_sql,
    scoring_cutoff,
    to_cutoff,
)
from churnguard.store import Store

__all__ = [
    "LabelError",
    "Observability",
    "PreviewRow",
    "churn_preview",
    "cutoff_grid",
    "population_and_labels",
    "scoring_cutoff",
    "to_cutoff",
]

Observability = Literal["full", "partial", "none"]


@dataclass(frozen=True, kw_only=True)
class PreviewRow:
    """What a churn definition means at one cutoff.

    ``churned`` and ``churn_rate`` count only labels that are known (rule labels at a fully
    observable cutoff, and supplied labels); they are ``None`` when no label is known.
    """

    cutoff: dt.datetime
    population: int
    churned: int | None
    churn_rate: float | None
    observable: Observability
    supplied_labels: int
    horizon_end: dt.datetime
    data_end: dt.datetime | None
    note: str


# -- population and labels -----------------------------------------------------------------------
def _cutoff_table(cutoffs: Iterable[object]) -> pa.Table:
    values = sorted({to_cutoff(c) for c in cutoffs})
    if not values:
        raise LabelError("no cutoffs given; pass at least one, or use cutoff_grid(store, ...)")
    return pa.table({"cutoff": pa.array(values, type=pa.timestamp("us"))})


def _activity_list(definition: ChurnDefinition) -> str:
    return ", ".join("'" + t.replace("'", "''") + "'" for t in definition.activity)


def _labels_sql(definition: ChurnDefinition, cutoffs_view: str, *, engine: str = "duckdb",
                tables: Mapping[str, str] | None = None) -> str:
    """The population-and-labels query, one definition for two engines: DuckDB (the store) and
    Spark SQL (churnguard.spark, over a lake's tables). They differ only in how a number of
    days is spelled (:func:`~churnguard.cutoffs.label_window_end_sql`); ``tables`` renames the
    ``events`` and ``labels`` tables (Spark's temporary views).

    >>> d = ChurnDefinition(lookback_days=30, horizon_days=30)
    >>> "INTERVAL '30' DAY" in _labels_sql(d, "c", engine="spark", tables={"events": "ev"})
    True
    """
    table = {"events": "events", "labels": "labels"} | dict(tables or {})
    seen_from = lookback_start_sql("c.cutoff", definition.lookback_days, engine)
    window_end = label_window_end_sql("c.cutoff", definition.horizon_days, engine)
    labels_end = label_window_end_sql("p.cutoff", definition.horizon_days, engine)
    return f"""
    WITH c AS (SELECT DISTINCT cutoff FROM {cutoffs_view}),
    bounds AS (SELECT max(ts) AS last_ts FROM {table['events']}),
    act AS (SELECT user_id, ts FROM {table['events']}
            WHERE type IN ({_activity_list(definition)})),
    pop AS (
        SELECT DISTINCT a.user_id, c.cutoff
        FROM act a JOIN c
          ON a.ts >= {seen_from} AND a.ts < c.cutoff
    ),
    active_after AS (
        SELECT DISTINCT a.user_id, c.cutoff
        FROM act a JOIN c
          ON a.ts >= c.cutoff AND a.ts < {window_end}
    ),
    rule AS (
        SELECT p.user_id, p.cutoff,
               CASE WHEN {labels_end} <= b.last_ts
                    THEN f.user_id IS NULL END AS churned
        FROM pop p
        CROSS JOIN bounds b
        LEFT JOIN active_after f ON f.user_id = p.user_id AND f.cutoff = p.cutoff
    ),
    supplied AS (
        SELECT l.user_id, c.cutoff, l.churned FROM {table['labels']} l JOIN c ON l.as_of = c.cutoff
    )
    SELECT coalesce(s.user_id, r.user_id) AS user_id,
           coalesce(s.cutoff, r.cutoff) AS cutoff,
           CASE WHEN s.user_id IS NOT NULL THEN s.churned ELSE r.churned END AS churned,
           CASE WHEN s.user_id IS NOT NULL THEN 'supplied' ELSE 'rule' END AS label_source
    FROM rule r
    FULL OUTER JOIN supplied s ON s.user_id = r.user_id AND s.cutoff = r.cutoff
    """


def population_and_labels(
    store: Store,
    *,
    definition: ChurnDefinition,
    cutoffs: Sequence[object],
) -> pd.DataFrame:
    """One row per (user, cutoff) in the population: ``user_id``, ``cutoff``, ``churned``
    (nullable ``boolean``: NA where the label is not observable) and ``label_source``
    (``'rule'`` or ``'supplied'``), sorted by cutoff then user.
    """
    with store.registered(_cutoff_table(cutoffs), "cutoffs") as view:
        frame = store.con.execute(
            f"SELECT * FROM ({_labels_sql(definition, view)}) ORDER BY cutoff, user_id"
        ).df()
    frame["churned"] = frame["churned"].astype("boolean")
    frame["user_id"] = frame["user_id"].astype(str)
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    return frame.reset_index(drop=True)


def churn_preview(
    store: Store,
    *,
    definition: ChurnDefinition,
    cutoffs: Sequence[object] | None = None,
) -> list[PreviewRow]:
    """Per cutoff: population, churned count and rate, and whether the labels are observable.

    Without ``cutoffs`` it previews ``cutoff_grid(..., observable_only=False)``: the training
    cutoffs and the newest ones whose horizon the data does not (yet) cover.
    """
    first, last = known_event_span(store)
    if cutoffs is None:
        cutoffs = cutoff_grid(store, definition=definition, observable_only=False)
        if not cutoffs:
            raise LabelError(
                f"the events span {first:%Y-%m-%d} to {last:%Y-%m-%d}, too short for a cutoff; "
                "pass cutoffs explicitly")
    table = _cutoff_table(cutoffs)
    with store.registered(table, "cutoffs") as view:
        counts = {
            row[0]: row[1:]
            for row in store.con.execute(
                f"""
                SELECT cutoff, count(*), count(*) FILTER (churned),
                       count(churned), count(*) FILTER (label_source = 'supplied')
                FROM ({_labels_sql(definition, view)}) GROUP BY cutoff
                """
            ).fetchall()
        }
    rows = []
    for cutoff in table.column("cutoff").to_pylist():
        population, churned, known, supplied = counts.get(cutoff, (0, 0, 0, 0))
        end = label_window_end(cutoff, definition.horizon_days)
        if labels_known(cutoff, definition.horizon_days, last):
            observable: Observability = "full"
            note = "labels observable"
        elif cutoff <= last:
            observable = "partial"
            note = (f"horizon ends {end:%Y-%m-%d} but the data ends {last:%Y-%m-%d}: "
                    "rule labels unknown (only for scoring)")
        else:
            observable = "none"
            note = f"after the last event ({last:%Y-%m-%d}): nothing to label yet"
        if supplied:
            note += f"; {supplied} supplied labels replace the rule"
        rows.append(PreviewRow(
            cutoff=cutoff, population=population,
            churned=churned if known else None,
            churn_rate=churned / known if known else None,
            observable=observable, supplied_labels=supplied,
            horizon_end=end, data_end=last, note=note,
        ))
    return rows
