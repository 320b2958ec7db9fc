"""Every written file against its contract: columns, dtypes, value ranges, relations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnguard.simulate import ACTIONS

TS = pa.timestamp("us", tz="UTC")
EVENT_TYPES = {"visit", "login", "view", "search", "cart_add", "cart_remove", "order", "return",
               "review", "support_ticket", "ticket_resolved", "coupon_redeem"}


def _schema(path) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in pq.read_schema(path)}


def test_events_schema_and_values(default_shop):
    s = _schema(default_shop.result.paths["events"])
    assert list(s) == ["event_id", "user_id", "ts", "type", "item_id", "category", "amount",
                       "quantity", "text", "rating", "channel", "session_id"]
    assert s["ts"] == TS
    assert s["amount"] == pa.float64()
    assert pa.types.is_integer(s["rating"]) and pa.types.is_integer(s["quantity"])
    for c in ("event_id", "user_id", "type", "item_id", "category", "text", "channel",
              "session_id"):
        assert s[c] == pa.string(), c
    ev = default_shop.events
    assert set(ev["type"]) == EVENT_TYPES
    assert ev["event_id"].is_unique
    start = pd.Timestamp("2025-01-01", tz="UTC")
    assert ev["ts"].min() >= start and ev["ts"].max() < default_shop.end
    keys = pd.DataFrame({"ts": ev["ts"], "user_id": ev["user_id"]})
    assert keys.equals(keys.sort_values(["ts", "user_id"], kind="stable"))
    ratings = ev.loc[ev["type"] == "review", "rating"]
    assert ratings.notna().all() and ratings.between(1, 5).all()
    assert ev.loc[ev["type"] != "review", "rating"].isna().all()
    money = ev.loc[ev["type"].isin(["order", "return", "coupon_redeem"]), "amount"]
    assert money.notna().all() and np.isfinite(money).all() and (money >= 0).all()
    assert ev.loc[ev["type"].isin(["visit", "view", "search", "login"]), "amount"].isna().all()
    orders = ev[ev["type"] == "order"]
    assert orders["item_id"].notna().all() and orders["category"].notna().all()
    assert (orders["quantity"] >= 1).all() and orders["session_id"].notna().all()
    texts = ev.loc[ev["type"].isin(["review", "support_ticket", "search"]), "text"]
    assert texts.notna().all() and (texts.str.len() > 0).all()


def test_review_and_ticket_texts_are_bilingual_and_some_carry_contacts(default_shop):
    ev = default_shop.events
    reviews = ev.loc[ev["type"] == "review", "text"]
    assert reviews.str.contains(r"[\u4e00-\u9fff]").mean() > 0.1
    assert reviews.str.contains(r"[A-Za-z]").mean() > 0.3
    tickets = ev.loc[ev["type"] == "support_ticket", "text"]
    pii = tickets.str.contains(r"@|\+\d")
    assert 0.01 < pii.mean() < 0.15


def test_users_signed_up_before_their_first_event(default_shop):
    users = default_shop.users
    assert list(users.columns) == ["user_id", "signup_ts", "region", "membership_level",
                                   "acquisition_channel", "language", "contact_ok", "email_ok"]
    assert users["user_id"].is_unique and len(users) == 20_000
    assert set(users["language"]) == {"en", "zh"}
    assert users["contact_ok"].dtype == bool and users["email_ok"].dtype == bool
    assert not (users["email_ok"] & ~users["contact_ok"]).any()
    assert _schema(default_shop.result.paths["users"])["signup_ts"] == TS
    first = default_shop.events.groupby("user_id")["ts"].min()
    signup = users.set_index("user_id")["signup_ts"].reindex(first.index)
    assert (signup <= first).all()
    # About half signed up in the two years before the window, the rest inside it.
    before = (users["signup_ts"] < pd.Timestamp("2025-01-01", tz="UTC")).mean()
    assert 0.45 < before < 0.55


def test_items_have_bilingual_titles_and_positive_prices(default_shop):
    items = pd.read_parquet(default_shop.result.paths["items"])
    assert list(items.columns) == ["item_id", "category", "price", "title"]
    assert items["item_id"].is_unique and (items["price"] > 0).all()
    assert items["title"].str.contains(r"[A-Za-z]").all()
    assert items["title"].str.contains(r"[\u4e00-\u9fff]").all()
    assert set(default_shop.events["item_id"].dropna()) <= set(items["item_id"])


def test_campaigns_contract(default_shop):
    c = default_shop.campaigns
    assert list(c.columns) == ["user_id", "campaign_id", "action", "assigned_at", "is_control",
                               "cost", "channel"]
    assert _schema(default_shop.result.paths["campaigns"])["assigned_at"] == TS
    assert set(c["action"]) == set(ACTIONS) | {"none"}
    assert ((c["action"] == "none") == c["is_control"]).all()
    assert (c.loc[c["is_control"], "cost"] == 0).all()
    assert c.loc[c["is_control"], "channel"].isna().all()
    assert (c.loc[c["action"] == "cs_outreach", "cost"] == 4.0).all()
    assert (c.loc[c["action"] == "recommendation", "cost"] == 0.05).all()
    assert (c["cost"] >= 0).all()
    assert 0.15 < c["is_control"].mean() < 0.25
    assert not c.duplicated(["user_id", "campaign_id"]).any()
    # Coupons cost money only when redeemed: some cost nothing, redeemed ones cost something.
    coupons = c[c["action"].str.startswith("coupon_")]
    assert (coupons["cost"] == 0).any() and (coupons["cost"] > 0).any()
    tc = default_shop.truth_campaigns
    assert list(tc.columns) == ["user_id", "campaign_id", "action", "is_control", "p_churn_none",
                                "p_churn_action", "effect"]
    assert tc[["user_id", "campaign_id", "action"]].equals(c[["user_id", "campaign_id", "action"]])
    assert (tc.loc[tc["is_control"], "effect"] == 0).all()
    assert np.allclose(tc["effect"], tc["p_churn_action"] - tc["p_churn_none"])


def test_truth_churn_has_one_row_per_user_signed_up_before_each_cutoff(default_shop):
    churn = default_shop.churn
    expected = ["user_id", "cutoff", "p_churn", "alive", "segment"]
    expected += [f"effect_{a}" for a in ACTIONS]
    assert list(churn.columns) == expected
    assert _schema(default_shop.result.paths["truth_churn"])["cutoff"] == TS
    assert not churn.duplicated(["user_id", "cutoff"]).any()
    assert churn["p_churn"].between(0, 1).all()
    signup = default_shop.users.set_index("user_id")["signup_ts"]
    for cutoff, rows in churn.groupby("cutoff"):
        assert set(rows["user_id"]) == set(signup.index[signup < cutoff])
    for a in ACTIONS:
        assert churn[f"effect_{a}"].between(-1, 1).all()
    tu = default_shop.truth_users
    assert list(tu.columns[:6]) == ["user_id", "segment", "price_sensitivity", "category_breadth",
                                    "base_order_rate", "baseline_satisfaction"]
    assert set(tu["segment"]) == {"loyal", "bargain_hunter", "occasional", "new"}
    assert tu["category_breadth"].between(1, 10).all()
