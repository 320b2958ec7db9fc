"""Exact values of every feature on a hand-built history (cutoff T = day 41 = 2025-02-10)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import day

from churnguard.config import ChurnDefinition
from churnguard.features import FEATURES, FeatureError, build_features

T = day(41)


@pytest.fixture
def history(store, add_events):
    o = "order"
    add_events(
        # user a: orders on days 1, 11, 31 and 31.5 (two on one day), amounts 10, 20, 60, 10
        dict(user_id="a", ts=day(1), type=o, amount=10.0, category="a", session_id="o1"),
        dict(user_id="a", ts=day(11), type=o, amount=20.0, category="a", session_id="o2"),
        dict(user_id="a", ts=day(31), type=o, amount=60.0, item_id="i3", session_id="s1"),
        dict(user_id="a", ts=day(31.5), type=o, amount=10.0, category="b", session_id="s1"),
        dict(user_id="a", ts=day(32), type="return", item_id="i3"),
        dict(user_id="a", ts=day(5), type="review", rating=5, text="great"),
        dict(user_id="a", ts=day(20), type="review", rating=1, text="broken"),
        dict(user_id="a", ts=day(21), type="review", text="no stars given"),
        dict(user_id="a", ts=day(10), type="support_ticket", session_id="t0"),
        dict(user_id="a", ts=day(12), type="ticket_resolved", session_id="t0"),
        dict(user_id="a", ts=day(25), type="support_ticket", session_id="t1"),
        dict(user_id="a", ts=day(31), type="cart_add", session_id="s1"),
        dict(user_id="a", ts=day(35), type="cart_add", session_id="s2"),
        dict(user_id="a", ts=day(35), type="cart_remove", session_id="s2"),
        dict(user_id="a", ts=day(5), type="view", session_id="s4"),
        dict(user_id="a", ts=day(36), type="view", session_id="s3"),
        dict(user_id="a", ts=day(36), type="view", session_id="s3"),
        dict(user_id="a", ts=day(38), type="search", session_id="s3"),
        dict(user_id="a", ts=day(38), type="visit", session_id="s3"),
        dict(user_id="a", ts=day(31), type="coupon_redeem", session_id="s1"),
        # at and after the cutoff: must not count
        dict(user_id="a", ts=T, type=o, amount=1000.0, category="z", session_id="s9"),
        dict(user_id="a", ts=T, type="ticket_resolved", session_id="t1"),
        dict(user_id="a", ts=day(50), type="review", rating=5),
        # user b: tickets without ids, resolved first-in-first-out; one order
        dict(user_id="b", ts=day(2), type="support_ticket"),
        dict(user_id="b", ts=day(5), type="support_ticket"),
        dict(user_id="b", ts=day(6), type="ticket_resolved"),
        dict(user_id="b", ts=day(40), type=o, amount=5.0),
    )
    store.con.execute("""
        INSERT INTO items VALUES ('i3', 'b', 60.0, 'thing', 't');
        INSERT INTO users VALUES ('a', '2024-12-02', 't'), ('c', '2025-02-11', 't');
        INSERT INTO user_attributes VALUES
            ('a', 'plan', 'gold', 't'), ('b', 'plan', 'basic', 't'),
            ('a', 'Age (years)', '34', 't'), ('b', 'Age (years)', '', 't'),
            ('a', 'score', '1.5', 't'), ('b', 'score', 'x', 't');
    """)
    pop = pd.DataFrame({"user_id": ["a", "b", "c"], "cutoff": [T, T, T]})
    return build_features(store, pop)


def row(frame: pd.DataFrame, user: str) -> pd.Series:
    return frame.loc[(user, pd.Timestamp(T))]


def test_user_a_every_value(history):
    a = row(history, "a")
    expected = {
        "days_since_last_event": 3.0, "days_since_last_activity": 9.5,
        "days_since_last_order": 9.5, "events_30d": 16, "events_90d": 20,
        "orders_total": 4, "orders_in_lookback": 4, "order_days_total": 3,
        "order_amount_sum": 100.0, "order_amount_mean": 25.0, "order_amount_max": 60.0,
        # day 11 is exactly T - 30 days: inside the last 30 days (the window start is inclusive)
        "orders_30d": 3, "orders_prev_30d": 1, "orders_trend_30d": 2.0,
        "spend_30d": 90.0, "spend_prev_30d": 10.0, "spend_trend_30d": 91.0 / 11.0,
        "orders_90d": 4, "orders_prev_90d": 0, "orders_trend_90d": 5.0,
        "spend_90d": 100.0, "spend_prev_90d": 0.0, "spend_trend_90d": 101.0,
        "orders_180d": 4, "orders_prev_180d": 0, "orders_trend_180d": 5.0,
        "spend_180d": 100.0, "spend_prev_180d": 0.0, "spend_trend_180d": 101.0,
        "order_gap_mean_days": 15.0, "order_gap_last_days": 20.0,
        "overdue_ratio": 9.5 / 15.0,
        "views_30d": 2, "views_90d": 3, "searches_30d": 1, "searches_90d": 1,
        "visits_30d": 1, "visits_90d": 1, "sessions_30d": 6, "sessions_90d": 8,
        "days_since_last_visit": 3.0,
        "cart_adds_90d": 2, "cart_removes_90d": 1, "cart_abandonment_90d": 0.5,
        # categories a, a, b (the item's category fills the event's blank), b
        "order_categories_distinct": 2, "order_category_hhi": 0.5,
        "returns_total": 1, "return_rate": 0.25,
        "reviews_total": 3, "review_rating_mean": 3.0, "review_rating_last": 1.0,
        "review_low_share": 0.5, "days_since_last_review": 20.0,
        "tickets_total": 2, "tickets_unresolved": 1, "days_since_last_ticket": 16.0,
        "oldest_unresolved_ticket_days": 16.0,
        "coupons_redeemed": 1, "coupons_redeemed_90d": 1,
        "tenure_days": 70.0,
        "attr_age_years": 34.0,
    }
    for name, value in expected.items():
        assert a[name] == value, name
    assert a["order_gap_std_days"] == pytest.approx(math.sqrt(50.0), rel=1e-12)
    assert a["attr_plan"] == "gold" and a["attr_score"] == "1.5"


def test_user_b_fifo_tickets_and_undefined_values(history):
    b = row(history, "b")
    assert b["tickets_total"] == 2 and b["tickets_unresolved"] == 1
    assert b["oldest_unresolved_ticket_days"] == 36.0  # the day-2 ticket was resolved first
    assert b["days_since_last_order"] == 1.0 and b["orders_total"] == 1
    for name in ("order_gap_mean_days", "order_gap_std_days", "order_gap_last_days",
                 "overdue_ratio", "review_rating_mean", "review_low_share",
                 "cart_abandonment_90d", "order_category_hhi", "attr_age_years"):
        assert np.isnan(b[name]), name
    assert b["tenure_days"] == 39.0  # no sign-up date: since the first event (day 2)
    assert b["attr_plan"] == "basic" and b["attr_score"] == "x"


def test_user_without_events_before_cutoff(history):
    c = row(history, "c")
    assert c["orders_total"] == 0 and c["events_90d"] == 0 and c["tickets_unresolved"] == 0
    assert np.isnan(c["days_since_last_event"])
    assert np.isnan(c["tenure_days"])  # signed up after the cutoff: unknown at the cutoff
    assert pd.isna(c["attr_plan"])


def test_dtypes_index_and_column_order(history):
    assert history.index.names == ["user_id", "cutoff"]
    assert list(history.index.get_level_values("user_id")) == ["a", "b", "c"]
    registered = [c for c in history.columns if not c.startswith("attr_")]
    assert registered == [n for n in FEATURES if n in registered]
    assert list(history.columns[-3:]) == ["attr_age_years", "attr_plan", "attr_score"]
    for name in registered:
        expected = "int64" if FEATURES[name].unit == "count" else "float64"
        assert str(history[name].dtype) == expected, name
    assert isinstance(history["attr_plan"].dtype, pd.CategoricalDtype)
    assert list(history["attr_plan"].cat.categories) == ["basic", "gold"]
    assert str(history["attr_age_years"].dtype) == "float64"
    assert history.attrs["skipped"] == {}


def test_many_cutoffs_in_one_query_match_one_at_a_time(store, add_events, history):
    cutoffs = [day(15), day(33), T]
    pop = pd.DataFrame({"user_id": ["a", "b"] * 3, "cutoff": [c for c in cutoffs for _ in "ab"]})
    together = build_features(store, pop)
    for c in cutoffs:
        alone = build_features(store, pop[pop.cutoff == c])
        pd.testing.assert_frame_equal(together.xs(c, level="cutoff", drop_level=False), alone,
                                      check_exact=True)


def test_lookback_follows_the_definition(store, add_events):
    add_events(dict(user_id="a", ts=day(1), type="order"),
               dict(user_id="a", ts=day(30), type="order"),
               dict(user_id="a", ts=day(35), type="visit"))
    pop = pd.DataFrame({"user_id": ["a"], "cutoff": [T]})
    short = ChurnDefinition(lookback_days=11, activity=("order", "visit"))
    f = build_features(store, pop, definition=short)
    assert f["orders_in_lookback"].iloc[0] == 1  # day 30 is within [T - 11, T); day 1 is not
    assert f["days_since_last_activity"].iloc[0] == 6.0


def test_explicit_feature_list_and_bad_population(store, add_events):
    add_events(dict(user_id="a", ts=day(1), type="order", amount=3.0))
    pop = pd.DataFrame({"user_id": ["a"], "cutoff": ["2025-02-10"]})
    f = build_features(store, pop, features=["views_30d", "orders_total", "attr_gone"])
    assert list(f.columns) == ["views_30d", "orders_total", "attr_gone"]
    assert f["views_30d"].iloc[0] == 0 and np.isnan(f["attr_gone"].iloc[0])
    with pytest.raises(FeatureError, match="unknown features"):
        build_features(store, pop, features=["nope"])
    with pytest.raises(FeatureError, match="needs columns user_id and cutoff"):
        build_features(store, pd.DataFrame({"user": ["a"]}))
