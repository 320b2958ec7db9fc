"""The cutoff calendar: at which moments churnguard scores, trains, validates and tests.

A **cutoff** ``T`` is a naive UTC ``datetime``, normally a midnight. Features see only the events
before ``T``; the label of ``T`` comes from its **label window** ``[T, T + horizon)``, and is known
once the data reaches the end of that window. Every date below is derived in this module:

* the **scoring cutoff** is the midnight after the last event (:func:`scoring_cutoff`); a command
  given no ``--as-of`` scores there (:func:`resolve_as_of`);
* the **newest labelled cutoff** is the newest midnight whose label window the data covers
  (:func:`newest_labelled_cutoff`);
* a **backtest** (:func:`backtest_cutoffs`) tests at ``T``, validates at ``T - h`` and fits on K
  *purged* training cutoffs whose label windows end on or before the validation cutoff: the newest
  at ``T - 2h``, the others 30 days apart before it (:func:`purged_training_cutoffs`; why purged,
  and what overlapping windows cost, is in :mod:`churnguard.evaluate`)::

      train ...  train    validation               test
      T-2h-30(K-1) T-2h     T-h     (horizon h)     T     (horizon h)
                    └─ labels end ─┘└──── labels end ────┘└──── labels end ────┘

* **training** the production model (:func:`training_cutoffs`) is the same arrangement moved
  forward: the newest labelled cutoff validates;
* the **value model** (:func:`value_cutoffs`) is tested at the newest labelled cutoff and trained
  one horizon before it.

Windows are whole days: :func:`label_window_end` and :func:`label_window_start` move a cutoff by
a horizon, :func:`lookback_start` opens a lookback window; the ``*_sql`` twins write the same
inside a query.

>>> from churnguard.config import ChurnDefinition
>>> from churnguard.store import Store
>>> store, d = Store.in_memory(), ChurnDefinition(lookback_days=90, horizon_days=90)
>>> first_and_last = [("e1", "2025-01-01 08:00"), ("e2", "2025-12-31 17:00")]
>>> _ = store.con.executemany("INSERT INTO events (event_id, user_id, ts, type, batch_id) "
...                           "VALUES (?, 'u1', ?, 'order', 'b')", first_and_last)
>>> [cutoff_text(resolve_as_of(store, as_of)) for as_of in (None, "2025-06-01")]
['2026-01-01', '2025-06-01']
>>> test, train, validation = backtest_cutoffs(store, definition=d)
>>> [cutoff_text(c) for c in (*train, validation, test)]
['2025-04-05', '2025-07-04', '2025-10-02']
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from churnguard.config import ChurnDefinition
from churnguard.errors import ChurnguardError
from churnguard.store import Store

__all__ = [
    "CUTOFF_SPACING_DAYS",
    "DEFAULT_TRAIN_CUTOFFS",
    "MAX_HISTORY_DAYS",
    "BacktestError",
    "LabelError",
    "OverlappingLabelsWarning",
    "backtest_cutoffs",
    "cutoff_grid",
    "cutoff_text",
    "cutoffs_that_fit",
    "event_span",
    "history_days",
    "known_event_span",
    "label_window_end",
    "label_window_end_sql",
    "label_window_start",
    "labels_known",
    "lookback_start",
    "lookback_start_sql",
    "midnight",
    "newest_labelled_cutoff",
    "purged_training_cutoffs",
    "resolve_as_of",
    "scoring_cutoff",
    "to_cutoff",
    "training_cutoffs",
    "value_cutoffs",
]

#: Days between consecutive training cutoffs.
CUTOFF_SPACING_DAYS = 30
#: Training cutoffs a backtest or a training run uses when the history allows.
DEFAULT_TRAIN_CUTOFFS = 3
#: A training cutoff needs min(lookback, this) days of events before it.
MAX_HISTORY_DAYS = 90


class LabelError(ChurnguardError, ValueError):
    """The store or the arguments cannot give cutoffs or labels (with the reason and the fix)."""

    code = "cannot_label"


class BacktestError(ChurnguardError, ValueError):
    """The store cannot support the requested backtest (with the reason and what to do)."""

    code = "cannot_backtest"


class OverlappingLabelsWarning(UserWarning):
    """Training cutoffs whose label windows reach past the validation cutoff."""


# -- one cutoff ----------------------------------------------------------------------------------
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


def cutoff_text(value: dt.datetime) -> str:
    """``YYYY-MM-DD`` for a midnight, the ISO timestamp otherwise (for messages and JSON).

    >>> cutoff_text(dt.datetime(2025, 3, 1)), cutoff_text(dt.datetime(2025, 3, 1, 12))
    ('2025-03-01', '2025-03-01T12:00:00')
    """
    return value.strftime("%Y-%m-%d") if value.time() == dt.time(0) else value.isoformat()


def midnight(ts: dt.datetime) -> dt.datetime:
    """The midnight that starts the day of ``ts``.

    >>> midnight(dt.datetime(2025, 3, 1, 23, 59))
    datetime.datetime(2025, 3, 1, 0, 0)
    """
    return dt.datetime(ts.year, ts.month, ts.day)


# -- windows (whole days) ------------------------------------------------------------------------
def label_window_end(cutoff: dt.datetime, horizon_days: int) -> dt.datetime:
    """The exclusive end of the window ``[cutoff, cutoff + horizon)`` whose events label
    ``cutoff`` (a churn horizon, a campaign's outcome window).

    >>> label_window_end(dt.datetime(2025, 1, 31, 23, 59), 1)
    datetime.datetime(2025, 2, 1, 23, 59)
    """
    return cutoff + dt.timedelta(days=horizon_days)


def label_window_start(end: dt.datetime, horizon_days: int) -> dt.datetime:
    """The cutoff whose label window ends at ``end`` (e.g. the validation cutoff of a test
    cutoff).

    >>> label_window_start(dt.datetime(2025, 3, 1), 1)
    datetime.datetime(2025, 2, 28, 0, 0)
    """
    return end - dt.timedelta(days=horizon_days)


def lookback_start(cutoff: dt.datetime, lookback_days: int) -> dt.datetime:
    """The start of the window ``[cutoff - lookback, cutoff)`` of the events seen at ``cutoff``.

    >>> lookback_start(dt.datetime(2025, 3, 1), 29)
    datetime.datetime(2025, 1, 31, 0, 0)
    """
    return cutoff - dt.timedelta(days=lookback_days)


def labels_known(cutoff: dt.datetime, horizon_days: int, last_event: dt.datetime) -> bool:
    """Whether the data up to ``last_event`` covers the whole label window of ``cutoff``.

    >>> T = dt.datetime(2025, 3, 1)
    >>> labels_known(T, 30, dt.datetime(2025, 3, 31)), labels_known(T, 30, dt.datetime(2025, 3, 30))
    (True, False)
    """
    return label_window_end(cutoff, horizon_days) <= last_event


# A whole number of days in each engine's SQL. Spark adds a day-time interval as exact
# microseconds in a UTC session, which the Spark jobs require (churnguard.spark), so both engines
# shift a naive UTC timestamp by days * 86 400 s.
_DAYS_SQL = {"duckdb": "INTERVAL ({n}) DAY", "spark": "INTERVAL '{n}' DAY"}


def _days_sql(days: int, engine: str) -> str:
    if engine not in _DAYS_SQL:
        raise ValueError(f"unknown SQL engine {engine!r}; known: {list(_DAYS_SQL)}")
    return _DAYS_SQL[engine].format(n=int(days))


def label_window_end_sql(cutoff_sql: str, horizon_days: int, engine: str = "duckdb") -> str:
    """:func:`label_window_end` inside a DuckDB (or Spark SQL) query, of the SQL expression
    ``cutoff_sql`` (the days are cast to an int here, so formatting them into the query is safe).

    >>> label_window_end_sql("c.cutoff", 90)
    'c.cutoff + INTERVAL (90) DAY'
    >>> label_window_end_sql("c.cutoff", 90, "spark")
    "c.cutoff + INTERVAL '90' DAY"
    """
    return f"{cutoff_sql} + {_days_sql(horizon_days, engine)}"


def lookback_start_sql(cutoff_sql: str, lookback_days: int, engine: str = "duckdb") -> str:
    """:func:`lookback_start` inside a DuckDB (or Spark SQL) query (the days cast to an int, as
    above).

    >>> lookback_start_sql("c.cutoff", 365)
    'c.cutoff - INTERVAL (365) DAY'
    """
    return f"{cutoff_sql} - {_days_sql(lookback_days, engine)}"


def history_days(definition: ChurnDefinition) -> int:
    """Days of events a training cutoff needs before it: the lookback, at most 90."""
    return min(definition.lookback_days, MAX_HISTORY_DAYS)


# -- the store's calendar ------------------------------------------------------------------------
def event_span(store: Store) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(first, last) event time in the store; (None, None) without events."""
    first, last = store.con.execute("SELECT min(ts), max(ts) FROM events").fetchall()[0]
    return first, last


def known_event_span(store: Store) -> tuple[dt.datetime, dt.datetime]:
    """(first, last) event time; :class:`LabelError` when the store has no events."""
    first, last = event_span(store)
    if last is None:
        raise LabelError("the store has no events; ingest events first (churnguard ingest events)")
    return first, last


def _backtest_span(store: Store) -> tuple[dt.datetime, dt.datetime]:
    first, last = event_span(store)
    if last is None:
        raise BacktestError("the store has no events; ingest events first")
    return first, last


def scoring_cutoff(store: Store) -> dt.datetime:
    """The midnight after the last event: every stored event is strictly before it."""
    _, last = known_event_span(store)
    return midnight(last) + dt.timedelta(days=1)


def resolve_as_of(store: Store, as_of: object) -> dt.datetime:
    """The cutoff a command works at: ``as_of`` as a cutoff, or without it the scoring cutoff."""
    return scoring_cutoff(store) if as_of is None else to_cutoff(as_of)


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
    first, last = known_event_span(store)
    history = history_days(definition) if min_history_days is None else min_history_days
    if observable_only:
        newest = midnight(label_window_start(last, definition.horizon_days))
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


def newest_labelled_cutoff(store: Store, *, definition: ChurnDefinition) -> dt.datetime:
    """The newest midnight whose whole horizon the data covers (its labels are known)."""
    grid = cutoff_grid(store, definition=definition, count=1, min_history_days=0)
    if not grid:
        first, last = event_span(store)
        raise BacktestError(
            f"the events span {first:%Y-%m-%d} to {last:%Y-%m-%d}: no cutoff has a fully "
            f"observed {definition.horizon_days}-day horizon; ingest more history or use a "
            "shorter horizon")
    return grid[-1]


def value_cutoffs(store: Store, *, definition: ChurnDefinition
                  ) -> tuple[dt.datetime, dt.datetime]:
    """(train, test) cutoffs of the value backtest: the newest labelled cutoff tests, and the
    cutoff whose horizon ends there trains, so the two label windows do not overlap."""
    test = newest_labelled_cutoff(store, definition=definition)
    return label_window_start(test, definition.horizon_days), test


# -- training cutoffs ----------------------------------------------------------------------------
def purged_training_cutoffs(validation: dt.datetime, horizon: dt.timedelta | int,
                            k: int) -> list[dt.datetime]:
    """The K training cutoffs of a validation cutoff, oldest first: the newest whose label window
    ends on the validation cutoff (``validation - horizon``), the others 30 days apart before it.
    ``horizon``: a ``timedelta`` or a number of days.

    >>> v = dt.datetime(2025, 12, 26)
    >>> [c.date().isoformat() for c in purged_training_cutoffs(v, dt.timedelta(days=90), 3)]
    ['2025-07-29', '2025-08-28', '2025-09-27']
    """
    if not isinstance(horizon, dt.timedelta):
        horizon = dt.timedelta(days=horizon)
    newest = validation - horizon
    return [newest - dt.timedelta(days=CUTOFF_SPACING_DAYS * i) for i in range(k - 1, -1, -1)]


def cutoffs_that_fit(validation: dt.datetime, *, first: dt.datetime,
                     definition: ChurnDefinition, most: int = DEFAULT_TRAIN_CUTOFFS) -> int:
    """How many purged training cutoffs (up to ``most``) have ``min(lookback, 90)`` days of
    events before them, given a validation cutoff and the first event; 0 when none has."""
    history = dt.timedelta(days=history_days(definition))
    room = label_window_start(validation, definition.horizon_days) - (first + history)
    if room < dt.timedelta(0):
        return 0
    return min(most, room // dt.timedelta(days=CUTOFF_SPACING_DAYS) + 1)


def _has_history(cutoff: dt.datetime, *, first: dt.datetime,
                 definition: ChurnDefinition) -> bool:
    return cutoff >= first + dt.timedelta(days=history_days(definition))


def training_cutoffs(store: Store, *, definition: ChurnDefinition, as_of: object = None,
                     train_cutoffs: int | None = None) -> tuple[list[dt.datetime], dt.datetime]:
    """(training cutoffs oldest first, validation cutoff) for a model used from ``as_of`` on;
    ``train_cutoffs`` None: up to 3, as many as the history allows (at least one)."""
    if train_cutoffs is not None and train_cutoffs < 1:
        raise BacktestError(f"train_cutoffs must be at least 1, got {train_cutoffs}")
    first, last = _backtest_span(store)
    if as_of is None:
        validation = newest_labelled_cutoff(store, definition=definition)
    else:
        when = to_cutoff(as_of)
        validation = label_window_start(when, definition.horizon_days)
        if when > last + dt.timedelta(days=1):
            raise BacktestError(f"--as-of {when:%Y-%m-%d} is after the data ends "
                                f"({last:%Y-%m-%d}); leave it out to train on all the data")
    if train_cutoffs is None:
        train_cutoffs = max(1, cutoffs_that_fit(validation, first=first, definition=definition))
    fit = purged_training_cutoffs(validation, definition.horizon_days, train_cutoffs)
    if not _has_history(fit[0], first=first, definition=definition):
        raise BacktestError(
            f"not enough history for {train_cutoffs} training cutoff(s) before the validation "
            f"cutoff {validation:%Y-%m-%d}: the events start {first:%Y-%m-%d}; use fewer "
            "training cutoffs (--train-cutoffs) or ingest more history")
    return fit, validation


# -- backtest cutoffs ----------------------------------------------------------------------------
def backtest_cutoffs(
    store: Store,
    *,
    definition: ChurnDefinition,
    test_cutoff: object = None,
    train_cutoffs: int | Sequence[object] | None = None,
    candidates: Sequence[dt.datetime] | None = None,
) -> tuple[dt.datetime, list[dt.datetime], dt.datetime]:
    """(test cutoff, training cutoffs oldest first, validation cutoff) of a backtest.

    ``train_cutoffs`` None (the default): up to 3 training cutoffs, as many as the history allows
    (at least one). As an int K: the validation cutoff is ``test - horizon`` and the K training
    cutoffs end their horizons on or before it: ``validation - horizon`` and 30, 60, ... days
    before that (:func:`purged_training_cutoffs`). As a list of dates: the newest is the
    validation cutoff, whose horizon must end on or before the test cutoff, and the others are
    the training cutoffs, whose horizons should end on or before the validation cutoff (an
    :class:`OverlappingLabelsWarning` otherwise). Without
    ``test_cutoff``: the newest midnight whose horizon the data fully covers, or, with
    ``candidates`` (e.g. the cutoffs the simulator computed truth at), the newest candidate on or
    before it.
    """
    first, last = _backtest_span(store)
    test = _test_cutoff(store, definition, test_cutoff, candidates, last)
    if train_cutoffs is None:
        train_cutoffs = max(1, cutoffs_that_fit(
            label_window_start(test, definition.horizon_days), first=first,
            definition=definition))
    if isinstance(train_cutoffs, (int, np.integer)) and not isinstance(train_cutoffs, bool):
        fit = _purged_fit(test, definition, int(train_cutoffs))
    else:
        fit = _given_fit(train_cutoffs, test, definition)
    _check_history(fit, first=first, definition=definition)
    return test, fit[:-1], fit[-1]


def _test_cutoff(store: Store, definition: ChurnDefinition, test_cutoff: object,
                 candidates: Sequence[dt.datetime] | None, last: dt.datetime) -> dt.datetime:
    """The backtest's test cutoff: the one given, whose labels must be known, or the newest
    labelled one (among ``candidates`` when given)."""
    horizon_days = definition.horizon_days
    if test_cutoff is None:
        test = newest_labelled_cutoff(store, definition=definition)
        if candidates is not None:
            earlier = sorted(to_cutoff(c) for c in candidates if to_cutoff(c) <= test)
            if not earlier:
                raise BacktestError(
                    f"none of the given candidate cutoffs is on or before {cutoff_text(test)}, "
                    "the newest cutoff with a fully observed horizon; pass test_cutoff "
                    "explicitly")
            test = earlier[-1]
        return test
    test = to_cutoff(test_cutoff)
    if not labels_known(test, horizon_days, last):
        raise BacktestError(
            f"test cutoff {cutoff_text(test)}: its {horizon_days}-day horizon ends "
            f"{cutoff_text(label_window_end(test, horizon_days))}, after the last event "
            f"({last:%Y-%m-%d %H:%M}), so its labels are not known; choose a test cutoff on or "
            f"before {cutoff_text(midnight(label_window_start(last, horizon_days)))}")
    return test


def _purged_fit(test: dt.datetime, definition: ChurnDefinition, k: int) -> list[dt.datetime]:
    """K purged training cutoffs and the validation cutoff ``test - horizon``, oldest first."""
    if k < 1:
        raise BacktestError(f"train_cutoffs must be at least 1, got {k}")
    validation = label_window_start(test, definition.horizon_days)
    return [*purged_training_cutoffs(validation, definition.horizon_days, k), validation]


def _given_fit(train_cutoffs: Sequence[object], test: dt.datetime,
               definition: ChurnDefinition) -> list[dt.datetime]:
    """The given training cutoffs, the newest of them validating, checked against the test
    cutoff (an error) and the validation cutoff (a warning)."""
    horizon_days = definition.horizon_days
    fit = sorted({to_cutoff(c) for c in train_cutoffs})
    if len(fit) < 2:
        raise BacktestError(
            "give at least two training cutoffs: the newest is the validation cutoff (early "
            "stopping and calibration), the others are for fitting")
    validation = fit[-1]
    if label_window_end(validation, horizon_days) > test:
        raise BacktestError(
            f"validation cutoff {cutoff_text(validation)}: its horizon ends "
            f"{cutoff_text(label_window_end(validation, horizon_days))}, after the test cutoff "
            f"{cutoff_text(test)}; its labels would look into the test period. Use cutoffs on "
            f"or before {cutoff_text(label_window_start(test, horizon_days))}")
    late = [c for c in fit[:-1] if label_window_end(c, horizon_days) > validation]
    if late:
        # Allowed, since the test labels stay unseen, but the model will be worse for it.
        warnings.warn(
            f"training cutoff {cutoff_text(late[0])}: its horizon ends "
            f"{cutoff_text(label_window_end(late[0], horizon_days))}, after the validation "
            f"cutoff {cutoff_text(validation)}, so its labels overlap the validation labels (the "
            "same customers' outcomes): early stopping and calibration are judged on what the "
            "model has partly seen. Training cutoffs on or before "
            f"{cutoff_text(label_window_start(validation, horizon_days))} avoid it",
            OverlappingLabelsWarning, stacklevel=3)
    return fit


def _check_history(fit: list[dt.datetime], *, first: dt.datetime,
                   definition: ChurnDefinition) -> None:
    """Refuse a backtest whose oldest cutoff has too little history before it, saying how many
    training cutoffs would fit."""
    if _has_history(fit[0], first=first, definition=definition):
        return
    most = cutoffs_that_fit(fit[-1], first=first, definition=definition, most=len(fit))
    hint = (f"at most {most} training cutoff(s) fit before this test cutoff"
            if most >= 1 else "no training cutoff fits before this test cutoff")
    raise BacktestError(
        f"not enough history for {len(fit) - 1} training cutoff(s) + validation + test: the "
        f"earliest cutoff {cutoff_text(fit[0])} has only {(fit[0] - first).days} days of events "
        f"before it (need {history_days(definition)}; the events start {first:%Y-%m-%d}); "
        f"{hint}. Use fewer training cutoffs, a later test cutoff, a shorter horizon, or ingest "
        "more history")
