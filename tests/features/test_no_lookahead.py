"""No look-ahead: nothing that happens at or after the cutoff may change any feature at the cutoff.

For many random event mixes: compute features at T1 (alone, and together with a later cutoff T2),
then add events of every type at exactly T1 and after it, delete every event at or after T1, and
rewrite events at or after T1 (type, amount, rating, category, session, user, time); each time the
T1 frame must be bit-for-bit identical.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from conftest import insert_events
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnguard.features import FEATURES, build_features
from churnguard.store import Store

T1 = dt.datetime(2025, 6, 1)
T2 = T1 + dt.timedelta(days=45)
TYPES = ["view", "search", "cart_add", "cart_remove", "order", "return", "review",
         "support_ticket", "ticket_resolved", "coupon_redeem", "login", "visit", "wishlist"]
USERS = [f"u{k}" for k in range(8)]


def random_events(rng: np.random.Generator, n: int, start: dt.datetime, span_days: float,
                  *, at: dt.datetime | None = None) -> list[dict]:
    rows = []
    for _ in range(n):
        kind = TYPES[rng.integers(len(TYPES))]
        ts = at if at is not None else start + dt.timedelta(
            seconds=int(rng.integers(0, int(span_days * 86400))))
        rows.append(dict(
            user_id=USERS[rng.integers(len(USERS))], ts=ts, type=kind,
            item_id=f"i{rng.integers(4)}" if rng.random() < 0.7 else None,
            category=f"c{rng.integers(3)}" if rng.random() < 0.5 else None,
            amount=float(np.round(rng.gamma(2.0, 20.0), 2)) if rng.random() < 0.9 else None,
            rating=int(rng.integers(1, 6)) if kind == "review" and rng.random() < 0.8 else None,
            session_id=f"s{rng.integers(6)}" if rng.random() < 0.6 else None,
        ))
    return rows


def build_store(seed: int) -> Store:
    rng = np.random.default_rng(seed)
    store = Store.in_memory()
    # every type at least once before T1, so the set of available columns is fixed
    insert_events(store, [dict(user_id="u0", ts=T1 - dt.timedelta(days=3), type=t,
                               session_id="s0", rating=2 if t == "review" else None)
                          for t in TYPES])
    insert_events(store, random_events(rng, int(rng.integers(20, 120)),
                                       T1 - dt.timedelta(days=400), 400))
    # the last microsecond before T1 counts
    insert_events(store, random_events(rng, 5, T1, 0, at=T1 - dt.timedelta(microseconds=1)))
    insert_events(store, random_events(rng, int(rng.integers(0, 60)), T1, 120))
    insert_events(store, random_events(rng, 8, T1, 0, at=T1))
    store.con.execute("""
        INSERT INTO items VALUES ('i0', 'c0', 1, 'a', 't'), ('i1', 'c1', 1, 'b', 't'),
                                 ('i2', NULL, 1, 'c', 't');
        INSERT INTO users VALUES ('u1', '2024-01-01', 't'), ('u2', '2025-06-20', 't'),
                                 ('u3', '2025-06-01', 't');
        INSERT INTO user_attributes VALUES ('u1', 'plan', 'gold', 't'),
                                           ('u2', 'plan', 'basic', 't'), ('u1', 'age', '40', 't');
    """)
    return store


def population(cutoffs: list[dt.datetime]) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [u for _ in cutoffs for u in USERS],
                         "cutoff": [c for c in cutoffs for _ in USERS]})


def at_t1(store: Store, cutoffs: list[dt.datetime]) -> pd.DataFrame:
    frame = build_features(store, population(cutoffs))
    return frame.xs(pd.Timestamp(T1), level="cutoff", drop_level=False)


def perturbations(rng: np.random.Generator):
    """(name, function(store)) pairs, each changing only events at or after T1."""
    def add(store: Store) -> None:
        rows = [dict(user_id=u, ts=T1, type=t, amount=7.0, session_id="s1", category="c9",
                     rating=1 if t == "review" else None) for u in USERS for t in TYPES]
        rows += random_events(rng, 80, T1, 200)
        insert_events(store, rows)

    def delete(store: Store) -> None:
        store.con.execute("DELETE FROM events WHERE ts >= ?", [T1])

    def change(store: Store) -> None:
        store.con.execute("""
            UPDATE events SET
                type = CASE WHEN type = 'order' THEN 'review' WHEN type = 'view' THEN 'order'
                            WHEN type = 'ticket_resolved' THEN 'support_ticket'
                            ELSE 'ticket_resolved' END,
                amount = coalesce(amount, 0) * 3 + 1, rating = 1, category = 'zz',
                session_id = 's0', user_id = 'u' || ((hash(event_id) % 8)::INT)::VARCHAR,
                ts = ts + INTERVAL 3 DAY
            WHERE ts >= ?""", [T1])
        store.con.execute("UPDATE users SET signup_ts = TIMESTAMP '2025-07-01' "
                          "WHERE signup_ts >= ?", [T1])

    return [("add", add), ("delete", delete), ("change", change)]


def check_no_lookahead(seed: int) -> None:
    store = build_store(seed)
    before_alone = at_t1(store, [T1])
    before_together = at_t1(store, [T1, T2])
    pd.testing.assert_frame_equal(before_alone, before_together, check_exact=True)
    assert set(FEATURES) <= set(before_alone.columns)  # every registered feature is under test
    rng = np.random.default_rng(seed + 1)
    for name, perturb in perturbations(rng):
        perturb(store)
        for cutoffs in ([T1], [T1, T2]):
            after = at_t1(store, cutoffs)
            try:
                pd.testing.assert_frame_equal(before_alone, after, check_exact=True)
            except AssertionError as exc:
                raise AssertionError(f"seed {seed}, after '{name}', cutoffs {cutoffs}: {exc}")
    store.close()


@pytest.mark.parametrize("seed", range(8))
def test_no_lookahead_seeded(seed):
    check_no_lookahead(seed)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=1000, max_value=2**31))
def test_no_lookahead_hypothesis(seed):
    check_no_lookahead(seed)


def test_perturbations_do_change_later_cutoffs():
    """The check has teeth: the same edits do change the features at T2."""
    store = build_store(3)
    before = build_features(store, population([T2])).xs(pd.Timestamp(T2), level="cutoff")
    perturbations(np.random.default_rng(4))[0][1](store)
    after = build_features(store, population([T2])).xs(pd.Timestamp(T2), level="cutoff")
    assert not before.equals(after)
