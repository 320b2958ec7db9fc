"""Groups that a store cannot support are dropped and reported, not filled with zeros."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import day

from churnguard.features import (
    FEATURES,
    GROUPS,
    FeatureError,
    build_features,
    feature_groups_available,
    feature_spec,
)

T = day(41)


def test_orders_only_export(store, add_events):
    add_events(dict(user_id="a", ts=day(1), type="order", amount=10.0, category="x"),
               dict(user_id="a", ts=day(20), type="order", amount=12.0, category="y"))
    status = {s.group: s for s in feature_groups_available(store)}
    for group in ("browsing", "cart", "returns", "reviews", "tickets", "coupons", "attributes"):
        assert not status[group].available, group
    for group in ("recency", "frequency", "monetary", "windows", "gaps", "categories", "tenure"):
        assert status[group].available and not status[group].skipped, group
    assert status["reviews"].reason == "no 'review' events"
    assert status["browsing"].reason == (
        "no events carry a session_id; no 'search' events; no 'view' events; no 'visit' events")
    assert status["attributes"].reason == "no user attributes in the users table"

    frame = build_features(store, pd.DataFrame({"user_id": ["a"], "cutoff": [T]}))
    kept = {FEATURES[c].group for c in frame.columns}
    assert kept == {"recency", "frequency", "monetary", "windows", "gaps", "categories", "tenure"}
    assert "views_30d" not in frame.columns and "tickets_unresolved" not in frame.columns
    assert frame.attrs["skipped"]["tickets_unresolved"] == "no 'support_ticket' events"
    assert frame.attrs["skipped"]["return_rate"] == "no 'return' events"
    assert frame.attrs["skipped"]["attr_*"] == "no user attributes in the users table"


def test_partly_available_group(store, add_events):
    add_events(dict(user_id="a", ts=day(1), type="order"),
               dict(user_id="a", ts=day(2), type="view"))
    status = {s.group: s for s in feature_groups_available(store)}
    browsing = status["browsing"]
    assert browsing.available and "views_30d" in browsing.features
    assert set(browsing.skipped) == {"searches_30d", "searches_90d", "visits_30d", "visits_90d",
                                     "sessions_30d", "sessions_90d", "days_since_last_visit"}


def test_groups_argument(store, add_events):
    add_events(dict(user_id="a", ts=day(1), type="order", amount=1.0))
    pop = pd.DataFrame({"user_id": ["a"], "cutoff": [T]})
    frame = build_features(store, pop, groups=["gaps", "tenure"])
    assert list(frame.columns) == ["order_gap_mean_days", "order_gap_std_days",
                                   "order_gap_last_days", "overdue_ratio", "tenure_days"]
    with pytest.raises(FeatureError, match="unknown feature groups"):
        build_features(store, pop, groups=["vibes"])


def test_registry_is_complete_and_consistent():
    assert all(spec.group in GROUPS for spec in FEATURES.values())
    assert all(spec.description and spec.unit for spec in FEATURES.values())
    assert {spec.group for spec in FEATURES.values()} == set(GROUPS) - {"attributes"}
    assert feature_spec("attr_plan").description == "user attribute 'plan' from the users file"
    with pytest.raises(KeyError, match="not a churnguard feature"):
        feature_spec("nope")
