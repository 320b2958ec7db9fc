"""Churn definitions made concrete: cutoffs, populations and labels, all computed in DuckDB.

At a cutoff ``T`` (a naive UTC timestamp, normally a midnight):

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
>>> _ = store.con.execute(
...     "INSERT INTO events (event_id, user_id, ts, type, batch_id) VALUES "
...     "('e1', 'u1', '2025-01-05', 'order', 'b'), ('e2', 'u2', '2025-01-20', 'order', 'b'), "
...     "('e3', 'u2', '2025-03-01', 'order', 'b'), ('e4', 'u3', '2025-06-01', 'view', 'b')")
>>> d = ChurnDefinition(lookback_days=30, horizon_days=30)
>>> population_and_labels(store, definition=d, cutoffs=["2025-02-01"])[["user_id", "churned"]]
  user_id  churned
0      u1     True
1      u2    False
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd
import pyarrow as pa

from churnguard.config import ChurnDefinition
from churnguard.errors import ChurnguardError
from churnguard.store import Store

Observability = Literal["full", "partial", "none"]


class LabelError(ChurnguardError, ValueError):
    """The store or the arguments cannot give cutoffs or labels (with the reason and the fix)."""

    code = "cannot_label"


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


# -- cutoffs -------------------------------------------------------------------------------------
def to_cutoff(value: dt.datetime | dt.date | str | pd.Timestamp) -> dt.datetime:
    """A cutoff as a naive UTC ``datetime`` (aware values are converted to UTC first).

    >>> to_cutoff("2025-03-01"), to_cutoff(dt.date(2025, 3, 1))
    (datetime.datetime(2025, 3, 1, 0, 0), datetime.datetime(2025, 3, 1, 0, 0))
    """
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise LabelError(
            f"{value!r} is not a cutoff; write it as YYYY-MM-DD or a datetime") from exc
    if stamp is pd.NaT:
        raise LabelError("a cutoff cannot be empty (NaT)")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return stamp.to_pydatetime()


def _event_span(store: Store) -> tuple[dt.datetime | None, dt.datetime | None]:
    first, last = store.con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    return first, last


def _midnight(ts: dt.datetime) -> dt.datetime:
    return dt.datetime(ts.year, ts.month, ts.day)


def scoring_cutoff(store: Store) -> dt.datetime:
    """The midnight after the last event: every stored event is strictly before it."""
    _, last = _event_span(store)
    if last is None:
        raise LabelError("the store has no events; ingest events first (churnguard ingest events)")
    return _midnight(last) + dt.timedelta(days=1)


def cutoff_grid(
    store: Store,
    *,
    definition: ChurnDefinition,
    every_days: int = 30,
    min_history_days: int | None = None,
    observable_only: bool = True,
    count: int | None = None,
) -> list[dt.datetime]:
    """Midnight cutoffs ``every_days`` apart, oldest first.

    The newest cutoff is the last midnight whose horizon the data fully covers
    (``T + horizon <= last event``), or with ``observable_only=False`` the scoring cutoff (the
    midnight after the last event). Going back, cutoffs stop once fewer than ``min_history_days``
    (default: the smaller of the lookback and 90 days) of events lie before them. ``count`` keeps
    only the newest ``count``.
    """
    if every_days <= 0:
        raise LabelError(f"every_days must be at least 1, got {every_days}")
    first, last = _event_span(store)
    if last is None:
        raise LabelError("the store has no events; ingest events first (churnguard ingest events)")
    history = min(definition.lookback_days, 90) if min_history_days is None else min_history_days
    if observable_only:
        newest = _midnight(last - dt.timedelta(days=definition.horizon_days))
    else:
        newest = scoring_cutoff(store)
    oldest = first + dt.timedelta(days=history)
    cutoffs = []
    t = newest
    while t >= oldest and t > first:
        cutoffs.append(t)
        if count is not None and len(cutoffs) >= count:
            break
        t -= dt.timedelta(days=every_days)
    return sorted(cutoffs)


# -- population and labels -----------------------------------------------------------------------
def _cutoff_table(cutoffs: Iterable[object]) -> pa.Table:
    values = sorted({to_cutoff(c) for c in cutoffs})
    if not values:
        raise LabelError("no cutoffs given; pass at least one, or use cutoff_grid(store, ...)")
    return pa.table({"cutoff": pa.array(values, type=pa.timestamp("us"))})


def _activity_list(definition: ChurnDefinition) -> str:
    return ", ".join("'" + t.replace("'", "''") + "'" for t in definition.activity)


def _labels_sql(definition: ChurnDefinition, cutoffs_view: str) -> str:
    # lookback/horizon are validated ints (pydantic), so formatting them into SQL is safe.
    lookback, horizon = int(definition.lookback_days), int(definition.horizon_days)
    return f"""
    WITH c AS (SELECT DISTINCT cutoff FROM {cutoffs_view}),
    bounds AS (SELECT max(ts) AS last_ts FROM events),
    act AS (SELECT user_id, ts FROM events WHERE type IN ({_activity_list(definition)})),
    pop AS (
        SELECT DISTINCT a.user_id, c.cutoff
        FROM act a JOIN c
          ON a.ts >= c.cutoff - INTERVAL ({lookback}) DAY AND a.ts < c.cutoff
    ),
    active_after AS (
        SELECT DISTINCT a.user_id, c.cutoff
        FROM act a JOIN c
          ON a.ts >= c.cutoff AND a.ts < c.cutoff + INTERVAL ({horizon}) DAY
    ),
    rule AS (
        SELECT p.user_id, p.cutoff,
               CASE WHEN p.cutoff + INTERVAL ({horizon}) DAY <= b.last_ts
                    THEN f.user_id IS NULL END AS churned
        FROM pop p
        CROSS JOIN bounds b
        LEFT JOIN active_after f ON f.user_id = p.user_id AND f.cutoff = p.cutoff
    ),
    supplied AS (
        SELECT l.user_id, c.cutoff, l.churned FROM labels l JOIN c ON l.as_of = c.cutoff
    )
    SELECT coalesce(s.user_id, r.user_id) AS user_id,
           coalesce(s.cutoff, r.cutoff) AS cutoff,
           CASE WHEN s.user_id IS NOT NULL THEN s.churned ELSE r.churned END AS churned,
           CASE WHEN s.user_id IS NOT NULL THEN 'supplied' ELSE 'rule' END AS label_source
    FROM rule r
    FULL OUTER JOIN supplied s ON s.user_id = r.user_id AND s.cutoff = r.cutoff
    """


class _Registered:
    """A pyarrow table registered on the store's connection under a unique name, for one query."""

    def __init__(self, store: Store, table: pa.Table, prefix: str) -> None:
        self.store, self.table = store, table
        self.name = f"__cg_{prefix}_{uuid.uuid4().hex[:12]}"

    def __enter__(self) -> str:
        # DuckDB refuses register() while an earlier execute() on the connection has rows left
        # unread (e.g. after fetchone()); run that statement to its end first.
        self.store.con.complete()
        self.store.con.register(self.name, self.table)
        return self.name

    def __exit__(self, *exc_info: object) -> None:
        self.store.con.unregister(self.name)


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
    with _Registered(store, _cutoff_table(cutoffs), "cutoffs") as view:
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
    first, last = _event_span(store)
    if last is None:
        raise LabelError("the store has no events; ingest events first (churnguard ingest events)")
    if cutoffs is None:
        cutoffs = cutoff_grid(store, definition=definition, observable_only=False)
        if not cutoffs:
            raise LabelError(
                f"the events span {first:%Y-%m-%d} to {last:%Y-%m-%d}, too short for a cutoff; "
                "pass cutoffs explicitly")
    table = _cutoff_table(cutoffs)
    with _Registered(store, table, "cutoffs") as view:
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
    horizon = dt.timedelta(days=definition.horizon_days)
    rows = []
    for cutoff in table.column("cutoff").to_pylist():
        population, churned, known, supplied = counts.get(cutoff, (0, 0, 0, 0))
        end = cutoff + horizon
        if end <= last:
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
