"""build_snapshot: labels aligned with features, order histories strictly before the cutoff."""

from __future__ import annotations

import datetime as dt
import doctest
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from churnguard import snapshots as snapshots_module
from churnguard.config import ChurnDefinition
from churnguard.snapshots import build_snapshot
from churnguard.store import Store

DEFINITION = ChurnDefinition(lookback_days=60, horizon_days=30)


@pytest.fixture
def shop() -> Store:
    store = Store.in_memory()
    rows = [
        # u1: two orders on one day and one later; churns after the first cutoff
        ("u1", "2025-01-05 09:00", "order", 10.0), ("u1", "2025-01-05 18:00", "order", 5.0),
        ("u1", "2025-01-20 12:00", "order", 7.0), ("u1", "2025-01-25 12:00", "view", None),
        # u2: buys again inside the first horizon, and exactly at the second cutoff
        ("u2", "2025-01-10 08:00", "order", 3.0), ("u2", "2025-02-10 08:00", "order", 4.0),
        ("u2", "2025-03-01 00:00", "order", 6.0),
        # u3: only views (never in the population, activity = order)
        ("u3", "2025-01-15 10:00", "view", None),
        # the data run until mid-April, so the horizons of both cutoffs are observed
        ("u4", "2025-04-15 10:00", "view", None),
    ]
    store.con.executemany(
        "INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) "
        "VALUES (?, ?, ?, ?, ?, 'b')",
        [(f"e{i}", u, ts, t, a) for i, (u, ts, t, a) in enumerate(rows)])
    yield store
    store.close()


def test_doctest():
    assert doctest.testmod(snapshots_module).failed == 0


def test_labels_features_and_orders_line_up(shop):
    snap = build_snapshot(shop, definition=DEFINITION, cutoffs=["2025-02-01", "2025-03-01"])
    keys = [(u, pd.Timestamp(c)) for u, c in snap.index]
    assert keys == [("u1", pd.Timestamp("2025-02-01")), ("u1", pd.Timestamp("2025-03-01")),
                    ("u2", pd.Timestamp("2025-02-01")), ("u2", pd.Timestamp("2025-03-01"))]
    assert snap.labels.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert snap.labels.index.equals(snap.features.index)
    assert snap.horizon_days == 30
    assert snap.meta["cutoffs"] == [dt.datetime(2025, 2, 1), dt.datetime(2025, 3, 1)]
    assert snap.meta["supplied_labels"] == 0
    assert "views_30d" not in snap.meta["skipped"]  # the store has views
    assert snap.meta["skipped"]["visits_30d"] == "no 'visit' events"
    # Orders: activity events strictly before each row's cutoff (u2's order AT 03-01 is out).
    orders = snap.orders
    assert list(orders.columns) == ["user_id", "cutoff", "ts", "amount"]
    u2_march = orders[(orders.user_id == "u2") & (orders.cutoff == pd.Timestamp("2025-03-01"))]
    assert u2_march.amount.tolist() == [3.0, 4.0]
    u1_feb = orders[(orders.user_id == "u1") & (orders.cutoff == pd.Timestamp("2025-02-01"))]
    assert u1_feb.amount.tolist() == [10.0, 5.0, 7.0]
    assert (orders.ts < orders.cutoff).all()


def test_unobservable_labels_are_nan_and_scoring_snapshots_have_none(shop):
    snap = build_snapshot(shop, definition=DEFINITION, cutoffs=["2025-04-01"])
    assert snap.labels.isna().all()
    with pytest.raises(ValueError, match="rows have no observable label"):
        snap.y()
    scoring = build_snapshot(shop, definition=DEFINITION, cutoffs=["2025-04-01"],
                             with_labels=False)
    assert scoring.labels is None


def test_requested_feature_columns_are_kept_in_order(shop):
    wanted = ["tenure_days", "days_since_last_activity", "visits_30d"]
    snap = build_snapshot(shop, definition=DEFINITION, cutoffs=["2025-02-01"], features=wanted)
    assert list(snap.features.columns) == wanted
    assert np.isclose(snap.features.loc[("u1", pd.Timestamp("2025-02-01")),
                                        "days_since_last_activity"], 11.5)


def test_subset_keeps_the_orders_of_the_kept_rows(shop):
    snap = build_snapshot(shop, definition=DEFINITION, cutoffs=["2025-02-01", "2025-03-01"])
    march = snap.subset(snap.index.get_level_values(1) == pd.Timestamp("2025-03-01"))
    assert len(march) == 2
    assert (march.orders.cutoff == pd.Timestamp("2025-03-01")).all()
    assert len(march.orders) == 3 + 2


@pytest.mark.parametrize("module", ["churnguard.snapshots", "churnguard.sequences",
                                    "churnguard.text"])
def test_the_data_layers_import_no_model(module):
    """Snapshots, sequences and the text encoder sit below the models: importing them (and
    projecting a text vector's shape) loads nothing from churnguard.models."""
    code = (f"import sys, {module}\n"
            "from churnguard.sequences.tokens import text_projection\n"
            "assert text_projection().shape == (384, 32)\n"
            "print(sorted(m for m in sys.modules if m.startswith('churnguard.models')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
