"""The cutoff calendar: scoring, training, validation and test cutoffs, and window arithmetic."""

from __future__ import annotations

import datetime as dt
import doctest

import pandas as pd
import pytest

from churnguard import cutoffs, evaluate, labels, training
from churnguard.config import ChurnDefinition
from churnguard.cutoffs import (
    BacktestError,
    LabelError,
    OverlappingLabelsWarning,
    backtest_cutoffs,
    cutoff_grid,
    label_window_end,
    label_window_start,
    labels_known,
    lookback_start,
    newest_labelled_cutoff,
    resolve_as_of,
    scoring_cutoff,
    to_cutoff,
    training_cutoffs,
    value_cutoffs,
)
from churnguard.store import Store

D = dt.datetime
DEF = ChurnDefinition(lookback_days=90, horizon_days=90)


def test_doctests():
    assert doctest.testmod(cutoffs).failed == 0


def add(store: Store, *rows: tuple[str, dt.datetime, str]) -> None:
    start = store.con.execute("SELECT count(*) FROM events").fetchone()[0]
    store.con.executemany(
        "INSERT INTO events (event_id, user_id, ts, type, batch_id) VALUES (?, ?, ?, ?, 'b')",
        [[f"e{k}", u, ts, kind] for k, (u, ts, kind) in enumerate(rows, start=start)])


@pytest.fixture
def store() -> Store:
    s = Store.in_memory()
    yield s
    s.close()


@pytest.fixture
def year(store) -> Store:
    """Events from 2025-01-01 08:00 to 2025-12-31 17:00."""
    add(store, ("a", D(2025, 1, 1, 8), "order"), ("a", D(2025, 12, 31, 17), "order"))
    return store


def days(*stamps: dt.datetime) -> list[str]:
    return [f"{c:%Y-%m-%d}" for c in stamps]


# -- the moved names stay where callers import them from ------------------------------------------
def test_moved_names_are_the_same_objects_where_they_used_to_be():
    assert labels.to_cutoff is to_cutoff and labels.LabelError is LabelError
    assert labels.scoring_cutoff is scoring_cutoff and labels.cutoff_grid is cutoff_grid
    assert evaluate.backtest_cutoffs is backtest_cutoffs
    assert evaluate.BacktestError is BacktestError
    assert evaluate.OverlappingLabelsWarning is OverlappingLabelsWarning
    assert training.training_cutoffs is training_cutoffs


# -- window arithmetic at day boundaries ---------------------------------------------------------
def test_windows_are_whole_days_across_month_year_and_leap_day():
    assert label_window_end(D(2025, 12, 31), 1) == D(2026, 1, 1)
    assert label_window_end(D(2024, 2, 28, 23, 59), 1) == D(2024, 2, 29, 23, 59)
    assert label_window_start(D(2024, 3, 1), 1) == D(2024, 2, 29)
    assert label_window_start(D(2026, 1, 1), 90) == D(2025, 10, 3)
    assert lookback_start(D(2025, 3, 1), 28) == D(2025, 2, 1)
    assert label_window_start(label_window_end(D(2025, 6, 1, 12), 45), 45) == D(2025, 6, 1, 12)


def test_labels_are_known_once_the_data_reaches_the_end_of_the_window():
    t = D(2025, 10, 2)
    end = D(2025, 12, 31)
    assert labels_known(t, 90, end)
    assert not labels_known(t, 90, end - dt.timedelta(microseconds=1))
    assert labels_known(t, 89, end - dt.timedelta(microseconds=1))


# -- scoring cutoff and resolve_as_of ------------------------------------------------------------
@pytest.mark.parametrize(("last", "expected"), [
    (D(2025, 12, 31, 0, 0), D(2026, 1, 1)),  # an event at midnight is before the next midnight
    (D(2025, 12, 31, 23, 59, 59, 999999), D(2026, 1, 1)),
    (D(2024, 2, 28, 17), D(2024, 2, 29)),
])
def test_scoring_cutoff_is_the_midnight_after_the_last_event(store, last, expected):
    add(store, ("a", D(2024, 1, 1), "order"), ("a", last, "order"))
    assert scoring_cutoff(store) == expected
    assert resolve_as_of(store, None) == expected


def test_resolve_as_of_with_and_without_a_date(year):
    assert resolve_as_of(year, None) == D(2026, 1, 1)
    assert resolve_as_of(year, "2025-06-01") == D(2025, 6, 1)
    assert resolve_as_of(year, dt.date(2025, 6, 1)) == D(2025, 6, 1)
    assert resolve_as_of(year, pd.Timestamp("2025-06-01 02:00", tz="Europe/Berlin")) \
        == D(2025, 6, 1)
    with pytest.raises(LabelError, match="not a cutoff"):
        resolve_as_of(year, "next tuesday")


def test_resolve_as_of_needs_events_only_without_a_date(store):
    assert resolve_as_of(store, "2025-06-01") == D(2025, 6, 1)
    with pytest.raises(LabelError, match="no events; ingest events first"):
        resolve_as_of(store, None)


# -- labelled cutoffs ----------------------------------------------------------------------------
@pytest.mark.parametrize(("last", "expected"), [
    (D(2025, 12, 31, 0, 0), D(2025, 10, 2)),  # 2025-10-02 + 90 days is exactly the last event
    (D(2025, 12, 30, 23, 59), D(2025, 10, 1)),
])
def test_newest_labelled_cutoff_at_the_day_boundary(store, last, expected):
    add(store, ("a", D(2025, 1, 1), "order"), ("a", last, "order"))
    assert newest_labelled_cutoff(store, definition=DEF) == expected
    assert labels_known(expected, 90, last)
    assert not labels_known(expected + dt.timedelta(days=1), 90, last)


def test_a_history_shorter_than_the_horizon_has_no_labelled_cutoff(store):
    add(store, ("a", D(2025, 1, 1), "order"), ("a", D(2025, 3, 1), "order"))
    with pytest.raises(BacktestError, match="the events span 2025-01-01 to 2025-03-01: no cutoff "
                                            "has a fully observed 90-day horizon"):
        newest_labelled_cutoff(store, definition=DEF)


def test_value_cutoffs_train_one_horizon_before_the_test(year):
    assert days(*value_cutoffs(year, definition=DEF)) == ["2025-07-04", "2025-10-02"]


# -- training cutoffs, purged against the validation cutoff --------------------------------------
def test_training_cutoffs_are_purged_against_the_validation_cutoff(year):
    fit, validation = training_cutoffs(year, definition=DEF)
    assert days(validation) == ["2025-10-02"]
    assert days(*fit) == ["2025-05-05", "2025-06-04", "2025-07-04"]
    # The newest label window ends exactly on the validation cutoff, none after it.
    assert label_window_end(fit[-1], 90) == validation
    assert all(label_window_end(c, 90) <= validation for c in fit)


def test_training_cutoffs_as_of_a_date(year):
    fit, validation = training_cutoffs(year, definition=DEF, as_of="2025-12-01")
    assert days(*fit, validation) == ["2025-04-05", "2025-05-05", "2025-06-04", "2025-09-02"]
    fit, validation = training_cutoffs(year, definition=DEF, as_of="2026-01-01", train_cutoffs=1)
    assert days(*fit, validation) == ["2025-07-05", "2025-10-03"]
    with pytest.raises(BacktestError, match=r"--as-of 2026-01-02 is after the data ends "
                                            r"\(2025-12-31\)"):
        training_cutoffs(year, definition=DEF, as_of="2026-01-02")
    with pytest.raises(BacktestError, match=r"not enough history for 5 training cutoff\(s\) "
                                            r"before the validation cutoff 2025-10-02"):
        training_cutoffs(year, definition=DEF, train_cutoffs=5)
    with pytest.raises(BacktestError, match="train_cutoffs must be at least 1, got 0"):
        training_cutoffs(year, definition=DEF, train_cutoffs=0)


# -- backtest cutoffs ----------------------------------------------------------------------------
def test_backtest_cutoffs_of_a_small_store(year):
    test, train, validation = backtest_cutoffs(year, definition=DEF)
    assert days(*train, validation, test) == ["2025-04-05", "2025-07-04", "2025-10-02"]
    test, train, validation = backtest_cutoffs(year, definition=DEF, test_cutoff="2025-10-02")
    assert days(*train, validation, test) == ["2025-04-05", "2025-07-04", "2025-10-02"]
    with pytest.raises(BacktestError, match=r"test cutoff 2025-10-03: its 90-day horizon ends "
                                            r"2026-01-01, after the last event \(2025-12-31 "
                                            r"17:00\), so its labels are not known; choose a "
                                            r"test cutoff on or before 2025-10-02"):
        backtest_cutoffs(year, definition=DEF, test_cutoff="2025-10-03")
    with pytest.raises(BacktestError, match=r"the earliest cutoff 2025-03-05 has only 62 days of "
                                            r"events before it \(need 90; the events start "
                                            r"2025-01-01\); no training cutoff fits before this "
                                            r"test cutoff"):
        backtest_cutoffs(year, definition=DEF, test_cutoff="2025-09-01", train_cutoffs=1)


def test_given_training_cutoffs_on_the_purge_boundary_are_not_warned_about(year, recwarn):
    test, train, validation = backtest_cutoffs(
        year, definition=DEF, test_cutoff="2025-10-02",
        train_cutoffs=["2025-04-05", "2025-07-04"])
    assert days(*train, validation, test) == ["2025-04-05", "2025-07-04", "2025-10-02"]
    assert not [w for w in recwarn if w.category is OverlappingLabelsWarning]


def test_the_overlap_warning_points_at_the_caller(year):
    with pytest.warns(OverlappingLabelsWarning) as caught:
        backtest_cutoffs(year, definition=DEF, test_cutoff="2025-10-02",
                         train_cutoffs=["2025-04-06", "2025-07-04"])
    assert caught[0].filename == __file__
    assert "training cutoff 2025-04-06: its horizon ends 2025-07-05" in str(caught[0].message)


def test_backtest_without_events(store):
    with pytest.raises(BacktestError, match="the store has no events; ingest events first"):
        backtest_cutoffs(store, definition=DEF)
    with pytest.raises(BacktestError, match="the store has no events; ingest events first"):
        training_cutoffs(store, definition=DEF)


# -- moved from tests/test_labels.py -------------------------------------------------------------
def test_cutoff_grid(store):
    add(store, ("a", dt.datetime(2025, 1, 1, 8), "order"),
        ("a", dt.datetime(2025, 12, 31, 17), "order"))
    grid = cutoff_grid(store, definition=ChurnDefinition(horizon_days=90), every_days=30)
    assert grid[-1] == dt.datetime(2025, 10, 2)  # midnight of (last event - 90 days)
    assert all((b - a).days == 30 for a, b in zip(grid, grid[1:]))
    assert grid[0] >= dt.datetime(2025, 4, 1, 8)  # at least 90 days of history before it
    assert grid[0] - dt.timedelta(days=30) < dt.datetime(2025, 4, 1, 8)
    assert len(cutoff_grid(store, definition=ChurnDefinition(), count=2)) == 2
    scoring = cutoff_grid(store, definition=ChurnDefinition(), observable_only=False)
    assert scoring[-1] == scoring_cutoff(store) == dt.datetime(2026, 1, 1)


def test_aware_cutoffs_are_converted_to_utc():
    aware = pd.Timestamp("2025-06-01 02:00", tz="Europe/Berlin")
    assert to_cutoff(aware) == dt.datetime(2025, 6, 1, 0, 0)


# -- moved from tests/test_evaluate.py -----------------------------------------------------------
def test_cutoff_arithmetic(simulated_shop):
    store, definition = simulated_shop.store, simulated_shop.definition
    horizon = dt.timedelta(days=definition.horizon_days)
    last = store.con.execute("SELECT max(ts) FROM events").fetchone()[0]
    test, train, validation = backtest_cutoffs(store, definition=definition, train_cutoffs=2)
    assert test + horizon <= last < test + horizon + dt.timedelta(days=1)
    assert validation == test - horizon
    # Purged: every training label window ends on or before the validation cutoff.
    assert train == [validation - horizon - dt.timedelta(days=d) for d in (30, 0)]
    assert all(c + horizon <= validation for c in train)

    test2, train2, validation2 = backtest_cutoffs(
        store, definition=definition, test_cutoff="2025-11-01",
        train_cutoffs=["2025-04-15", "2025-05-01", "2025-08-01"])
    assert test2 == dt.datetime(2025, 11, 1)
    assert train2 == [dt.datetime(2025, 4, 15), dt.datetime(2025, 5, 1)]
    assert validation2 == dt.datetime(2025, 8, 1)


def test_training_dates_whose_labels_overlap_the_validation_labels_are_warned_about(
        simulated_shop):
    store, definition = simulated_shop.store, simulated_shop.definition
    with pytest.warns(OverlappingLabelsWarning, match="overlap the validation labels"):
        _, train, validation = backtest_cutoffs(
            store, definition=definition, test_cutoff="2025-09-01",
            train_cutoffs=["2025-04-15", "2025-05-20", "2025-06-03"])
    assert train == [dt.datetime(2025, 4, 15), dt.datetime(2025, 5, 20)]
    with pytest.raises(BacktestError, match="after the test cutoff"):
        backtest_cutoffs(store, definition=definition, test_cutoff="2025-09-01",
                         train_cutoffs=["2025-04-15", "2025-07-20"])


def test_truth_cutoffs_pick_the_default_test_cutoff(simulated_shop):
    store, definition = simulated_shop.store, simulated_shop.definition
    candidates = sorted({c.to_pydatetime().replace(tzinfo=None)
                         for c in simulated_shop.truth["cutoff"]})
    test, _, _ = backtest_cutoffs(store, definition=definition, candidates=candidates)
    assert test in candidates
    newest, _, _ = backtest_cutoffs(store, definition=definition)
    assert test == max(c for c in candidates if c <= newest)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"train_cutoffs": 12},
     r"not enough history for 12 training cutoff\(s\) \+ validation \+ test: the earliest cutoff "
     r".* has only -?\d+ days of events before it \(need 90; the events start 2025-01-01\); "
     r"at most \d training cutoff\(s\) fit before this test cutoff"),
    ({"test_cutoff": "2026-01-01"},
     r"test cutoff 2026-01-01: its 90-day horizon ends 2026-04-01, after the last event"),
    ({"test_cutoff": "2025-10-01", "train_cutoffs": ["2025-06-01", "2025-08-01"]},
     r"validation cutoff 2025-08-01: its horizon ends 2025-10-30, after the test cutoff "
     r"2025-10-01"),
    ({"train_cutoffs": ["2025-06-01"]}, r"give at least two training cutoffs"),
    ({"train_cutoffs": 0}, r"train_cutoffs must be at least 1, got 0"),
])
def test_impossible_backtests_say_what_to_do(simulated_shop, kwargs, message):
    with pytest.raises(BacktestError, match=message):
        backtest_cutoffs(simulated_shop.store, definition=simulated_shop.definition, **kwargs)
