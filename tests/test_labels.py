"""Populations, churn labels, supplied labels and the churn preview (cutoffs: test_cutoffs.py)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from churnguard.config import ChurnDefinition
from churnguard.labels import (
    LabelError,
    churn_preview,
    population_and_labels,
    to_cutoff,
)
from churnguard.store import Store

T = dt.datetime(2025, 6, 1)
D = ChurnDefinition(lookback_days=30, horizon_days=30)
SECOND = dt.timedelta(seconds=1)


def add(store: Store, *rows: tuple[str, dt.datetime, str]) -> None:
    store.con.executemany(
        "INSERT INTO events (event_id, user_id, ts, type, batch_id) VALUES (?, ?, ?, ?, 'b')",
        [[f"e{k}", u, ts, kind] for k, (u, ts, kind) in enumerate(rows, start=len(_seen(store)))])


def _seen(store: Store) -> list:
    return store.con.execute("SELECT event_id FROM events").fetchall()


@pytest.fixture
def store() -> Store:
    s = Store.in_memory()
    yield s
    s.close()


@pytest.fixture
def boundaries(store):
    start, end = T - dt.timedelta(days=30), T + dt.timedelta(days=30)
    add(store,
        ("at_start", start, "order"),            # T - lookback: inside (inclusive)
        ("before_start", start - SECOND, "order"),  # just outside the lookback
        ("at_cutoff", T, "order"),               # at T: not in the population at T
        ("back_at_T", start + SECOND, "order"), ("back_at_T", T, "order"),
        ("back_at_end", T - SECOND, "order"), ("back_at_end", end, "order"),
        ("back_before_end", T - SECOND, "order"), ("back_before_end", end - SECOND, "order"),
        ("only_views", T - SECOND, "view"),
        ("zz_late", T + dt.timedelta(days=60), "view"))  # data end: T + 60 days
    return store


def frame_dict(frame: pd.DataFrame) -> dict[str, object]:
    return {u: (None if pd.isna(c) else bool(c)) for u, c in zip(frame.user_id, frame.churned)}


def test_population_window_and_horizon_boundaries(boundaries):
    frame = population_and_labels(boundaries, definition=D, cutoffs=[T])
    assert frame_dict(frame) == {
        "at_start": True,          # no order in [T, T + 30d)
        "back_at_T": False,        # an order exactly at T is inside the horizon
        "back_at_end": True,       # an order exactly at T + horizon is outside it
        "back_before_end": False,
    }
    assert list(frame.columns) == ["user_id", "cutoff", "churned", "label_source"]
    assert str(frame.churned.dtype) == "boolean"
    assert (frame.cutoff == pd.Timestamp(T)).all() and (frame.label_source == "rule").all()


def test_activity_types_follow_the_definition(boundaries):
    d = ChurnDefinition(activity=("order", "view"), lookback_days=30, horizon_days=30)
    frame = population_and_labels(boundaries, definition=d, cutoffs=[T])
    assert frame_dict(frame)["only_views"] is True


def test_unobservable_horizon_gives_missing_labels(boundaries):
    late = T + dt.timedelta(days=40)  # late + 30 days is after the last event (T + 60 days)
    frame = population_and_labels(boundaries, definition=D, cutoffs=[T, late])
    at_late = frame[frame.cutoff == pd.Timestamp(late)]
    assert len(at_late) == 2  # back_at_T and back_at_end ordered at T or T + 30
    assert at_late.churned.isna().all()
    assert frame[frame.cutoff == pd.Timestamp(T)].churned.notna().all()


def test_supplied_labels_replace_the_rule(boundaries):
    boundaries.con.execute("""INSERT INTO labels VALUES
        ('at_start', '2025-06-01', false, 'l'),   -- the rule says churned
        ('newcomer', '2025-06-01', true, 'l'),    -- not in the rule's population
        ('at_start', '2025-05-01', true, 'l')     -- another cutoff: ignored""")
    frame = population_and_labels(boundaries, definition=D, cutoffs=[T])
    got = frame.set_index("user_id")
    assert not got.loc["at_start", "churned"] and got.loc["at_start", "label_source"] == "supplied"
    assert got.loc["newcomer", "churned"] and got.loc["newcomer", "label_source"] == "supplied"
    assert got.loc["back_at_end", "label_source"] == "rule"
    assert len(frame) == 5


def test_preview_numbers(boundaries):
    late, after = T + dt.timedelta(days=40), T + dt.timedelta(days=90)
    rows = churn_preview(boundaries, definition=D, cutoffs=[T, late, after])
    first, partial, none = rows
    assert (first.cutoff, first.population, first.churned, first.observable) == (T, 4, 2, "full")
    assert first.churn_rate == 0.5 and first.supplied_labels == 0
    assert first.horizon_end == T + dt.timedelta(days=30)
    assert (partial.population, partial.churned, partial.churn_rate) == (2, None, None)
    assert partial.observable == "partial" and "rule labels unknown" in partial.note
    assert (none.population, none.observable) == (0, "none")


def test_preview_counts_supplied_labels(boundaries):
    boundaries.con.execute("INSERT INTO labels VALUES ('at_start', '2025-06-01', false, 'l')")
    (row,) = churn_preview(boundaries, definition=D, cutoffs=[T])
    assert (row.population, row.churned, row.supplied_labels) == (4, 1, 1)
    assert "1 supplied labels" in row.note


def test_errors_are_precise(store):
    with pytest.raises(LabelError, match="no events; ingest events first"):
        churn_preview(store, definition=D)
    with pytest.raises(LabelError, match="no cutoffs given"):
        population_and_labels(store, definition=D, cutoffs=[])
    with pytest.raises(LabelError, match="not a cutoff"):
        to_cutoff("next tuesday")
