"""Reason codes: SHAP contributions -> themes -> the top sentences, in English and Chinese."""

from __future__ import annotations

import datetime as dt
import doctest
import itertools
import string

import numpy as np
import pandas as pd
import pytest

from churnguard import explain
from churnguard.explain import themes as explain_themes
from churnguard.explain import CONTEXT_COLUMNS, TEMPLATES, reason_context, reasons, theme_of
from churnguard.features import FEATURES, build_features
from churnguard.features.registry import FeatureSpec
from churnguard.store import Store

CUTOFF = pd.Timestamp("2026-11-01")


def frames(rows: dict[str, dict[str, tuple[float, float]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """{user: {feature: (value, contribution)}} -> (contributions, features), NaN where unset."""
    users = list(rows)
    index = pd.MultiIndex.from_arrays([users, [CUTOFF] * len(users)], names=["user_id", "cutoff"])
    names = list(dict.fromkeys(f for r in rows.values() for f in r))
    features = pd.DataFrame({f: [rows[u].get(f, (np.nan, 0.0))[0] for u in users] for f in names},
                            index=index)
    shap = pd.DataFrame({f: [rows[u].get(f, (np.nan, 0.0))[1] for u in users] for f in names},
                        index=index)
    shap["bias"] = -2.0
    return shap, features


def sentences(out: pd.DataFrame, user: str, k: int = 3) -> list[str]:
    return out.loc[(user, CUTOFF), [f"reason_{i}" for i in range(1, k + 1)]].tolist()


def keys(out: pd.DataFrame, user: str, k: int = 3) -> list[str]:
    return out.loc[(user, CUTOFF), [f"reason_keys_{i}" for i in range(1, k + 1)]].tolist()


CUSTOMERS = {
    "overdue": {
        "days_since_last_order": (74.6, 0.8),
        "overdue_ratio": (74.6 / 21.2, 0.5),
        "order_gap_mean_days": (21.2, 0.1),
        "tickets_unresolved": (2, 0.6),
        "oldest_unresolved_ticket_days": (35.9, 0.1),
        "orders_90d": (1, 0.3),
        "orders_prev_90d": (6, 0.2),
        "orders_trend_90d": (2 / 7, 0.1),
    },
    "spender": {
        "spend_90d": (0.0, 0.9),
        "spend_prev_90d": (240.0, 0.2),
        "spend_trend_90d": (1 / 241, 0.1),
        "orders_90d": (0, -0.3),
        "orders_prev_90d": (3, 0.0),
        "review_rating_last": (1.0, 0.5),
        "days_since_last_review": (30.0, 0.0),
        "returns_total": (2, 0.2),
        "return_rate": (0.4, 0.15),
    },
}


# -- exact sentences -------------------------------------------------------------------------------
def test_exact_sentences_in_english_and_weight_order():
    shap, features = frames(CUSTOMERS)
    out = reasons(shap, features)
    # theme weights: overdue 0.8 + 0.5 + 0.1, tickets 0.6 + 0.1, declining 0.3 + 0.2 + 0.1
    assert sentences(out, "overdue") == [
        "Last order 74 days ago; usually orders every 21 days",
        "2 support tickets unresolved (oldest open 35 days)",
        "Orders fell from 6 to 1 compared with the previous 90 days",
    ]
    assert keys(out, "overdue") == ["overdue", "open_tickets", "declining"]
    assert sentences(out, "spender") == [
        "Spent 0 in the last 90 days after 240 before",
        "Their latest review gave only 1 star",
        "2 returns so far (40% of their orders)",
    ]
    assert keys(out, "spender") == ["declining", "low_review", "returns"]


def test_exact_sentences_in_chinese():
    shap, features = frames(CUSTOMERS)
    out = reasons(shap, features, lang="zh")
    assert sentences(out, "overdue") == [
        "最近一次下单在74天前，平时约每21天下单一次",
        "2个客服工单未解决（最早的已开35天）",
        "与前90天相比，订单从6笔降到1笔",
    ]
    assert sentences(out, "spender") == [
        "最近90天消费0，之前90天为240",
        "最近一次评价只给了1星",
        "累计退货2次（占订单的40%）",
    ]
    assert keys(out, "spender") == ["declining", "low_review", "returns"]


def test_output_frame_shape_and_index():
    shap, features = frames(CUSTOMERS)
    out = reasons(shap, features, top_k=2)
    assert list(out.columns) == ["reason_1", "reason_2", "reason_keys_1", "reason_keys_2"]
    assert out.index.equals(shap.index)


# -- what counts as a reason -----------------------------------------------------------------------
def test_only_positive_contributions_are_reasons():
    shap, features = frames({"u": {
        "days_since_last_order": (74.0, -3.0),  # strongly against churn: never a reason
        "order_gap_mean_days": (21.0, -1.0),
        "tickets_unresolved": (1, 0.2),
        "oldest_unresolved_ticket_days": (3.2, 0.0),
    }, "loyal": {"days_since_last_order": (2.0, -1.0), "tickets_unresolved": (0, -0.5)}})
    out = reasons(shap, features)
    assert sentences(out, "u") == ["1 support ticket unresolved (open 3 days)", "", ""]
    assert keys(out, "u") == ["open_tickets", "", ""]
    assert sentences(out, "loyal") == ["", "", ""]
    assert keys(out, "loyal") == ["", "", ""]


def test_related_features_make_one_theme_whose_weight_is_their_sum():
    # two overdue features of 0.3 each outweigh a single ticket feature of 0.5
    shap, features = frames({"u": {
        "days_since_last_order": (40.0, 0.3),
        "overdue_ratio": (4.0, 0.3),
        "order_gap_mean_days": (10.0, -0.2),  # negative parts do not reduce the weight
        "tickets_unresolved": (1, 0.5),
        "oldest_unresolved_ticket_days": (12.0, 0.0),
    }})
    out = reasons(shap, features)
    assert sentences(out, "u") == ["Last order 40 days ago; usually orders every 10 days",
                                   "1 support ticket unresolved (open 12 days)", ""]


def test_ties_keep_a_fixed_theme_order():
    shap, features = frames({"u": {"tickets_unresolved": (1, 0.5),
                                   "oldest_unresolved_ticket_days": (12.0, 0.0),
                                   "days_since_last_order": (40.0, 0.5)}})
    assert keys(reasons(shap, features), "u") == ["overdue", "open_tickets", ""]


def test_missing_values_never_print_nan():
    shap, features = frames({
        "gapless": {"days_since_last_order": (74.0, 0.8), "order_gap_mean_days": (np.nan, 0.3),
                    "overdue_ratio": (np.nan, 0.2)},
        "no_rate": {"returns_total": (3, 0.4), "return_rate": (np.nan, 0.1)},
        "nothing_known": {"days_since_last_order": (np.nan, 0.9),
                          "order_gap_mean_days": (np.nan, 0.4),
                          "review_rating_mean": (np.nan, 0.7),
                          "cart_abandonment_90d": (np.nan, 0.2),
                          "order_amount_mean": (np.nan, 0.5)},
    })
    for lang in ("en", "zh"):
        out = reasons(shap, features, lang=lang)
        assert not out.map(lambda s: "nan" in s.lower() or "<na" in s.lower()).any().any()
    out = reasons(shap, features)
    assert sentences(out, "gapless") == ["Last order 74 days ago", "", ""]
    assert sentences(out, "no_rate") == ["3 returns so far", "", ""]
    # nothing can be said truthfully: no reason rather than a made-up one
    assert sentences(out, "nothing_known") == ["", "", ""]


def test_fewer_themes_than_top_k_leave_empty_strings():
    shap, features = frames({"u": {"coupons_redeemed": (0, 0.3), "coupons_redeemed_90d": (0, 0.1)}})
    out = reasons(shap, features, top_k=4)
    assert sentences(out, "u", 4) == ["Has never redeemed a coupon", "", "", ""]
    assert keys(out, "u", 4) == ["coupons", "", "", ""]


def test_a_theme_the_customer_values_do_not_support_is_skipped():
    # a positive contribution from "0 returns" is not a "returns" reason; the next theme moves up
    shap, features = frames({"u": {"returns_total": (0, 0.9), "return_rate": (0.0, 0.1),
                                   "tenure_days": (20.5, 0.3)}})
    out = reasons(shap, features)
    assert sentences(out, "u") == ["New customer, joined 20 days ago", "", ""]
    assert keys(out, "u") == ["new_customer", "", ""]


# -- variants within a theme -----------------------------------------------------------------------
def test_declining_names_the_window_and_measure_that_contributed_most():
    base = {"orders_30d": (1, 0.0), "orders_prev_30d": (2, 0.0), "spend_30d": (10.5, 0.0),
            "spend_prev_30d": (99.99, 0.0), "orders_180d": (4, 0.0), "orders_prev_180d": (9, 0.0)}
    shap, features = frames({
        "spend30": {**base, "spend_trend_30d": (0.1, 0.6), "orders_180d": (4, 0.2)},
        "orders180": {**base, "orders_trend_180d": (0.5, 0.6), "spend_30d": (10.5, 0.2)},
    })
    out = reasons(shap, features)
    assert sentences(out, "spend30")[0] == "Spent 10.50 in the last 30 days after 99.99 before"
    assert sentences(out, "orders180")[0] == (
        "Orders fell from 9 to 4 compared with the previous 180 days")


def test_singular_and_plural_english():
    shap, features = frames({
        "one": {"tickets_unresolved": (1, 0.5), "oldest_unresolved_ticket_days": (1.5, 0.1),
                "orders_total": (1, 0.4), "coupons_redeemed_90d": (1, 0.1),
                "coupons_redeemed": (1, 0.0)},
        "many": {"tickets_total": (3, 0.5), "tickets_unresolved": (0, 0.0),
                 "days_since_last_ticket": (9.0, 0.0), "orders_total": (5, 0.4),
                 "coupons_redeemed_90d": (0, 0.1), "coupons_redeemed": (4, 0.0)},
    })
    out = reasons(shap, features)
    assert sentences(out, "one") == ["1 support ticket unresolved (open 1 day)",
                                     "Only 1 order so far", "Redeemed 1 coupon in the last 90 days"]
    assert sentences(out, "many") == ["Contacted support 3 times, most recently 9 days ago",
                                      "5 orders so far",
                                      "Has redeemed 4 coupons, none in the last 90 days"]
    assert keys(out, "many") == ["support_contact", "few_orders", "coupons"]


def test_numbers_are_rounded_for_people():
    shap, features = frames({"u": {
        "order_amount_mean": (1234.5, 0.5), "order_amount_sum": (2469.0, 0.0),
        "orders_total": (2, 0.0), "review_low_share": (1 / 3, 0.4),
        "review_rating_mean": (2.6666, 0.0), "tenure_days": (400.0, 0.1)}})
    assert sentences(reasons(shap, features), "u") == [
        "Average order value 1,234.50 (2,469 in total)",
        "33% of their reviews gave 1 or 2 stars",
        "Customer for 13 months",
    ]
    assert sentences(reasons(shap, features, lang="zh"), "u") == [
        "平均客单价1,234.50（累计消费2,469）", "33%的评价为1星或2星", "成为客户已13个月"]


# -- features a future model may add ---------------------------------------------------------------
def test_btyd_attribute_embedding_and_unknown_columns():
    # Issue 16 item 16: BTYD outputs are said as the customer's own rhythm, never as a model
    # quantity ("Buying pattern: p no purchase is 0.87"), and static attributes are not reasons
    # (tests/security/test_readable_reasons.py holds the regression tests).
    shap, features = frames({"u": {
        "btyd_p_alive": (0.35, 0.9),
        "btyd_expected_purchases_90d": (0.42, 0.05),
        "order_gap_mean_days": (24.2, 0.0),
        "days_since_last_order": (61.7, 0.0),
        "attr_membership_level": ("basic", 0.4),
        "attr_age": (31.0, 0.3),
        "emb_0": (0.12, 5.0),  # embeddings are not reasons however large
        "mystery_column": (7.0, 4.0),  # nothing describes it: skipped
    }})
    out = reasons(shap, features)
    assert sentences(out, "u") == [
        "Usually orders every 24 days; it has been 61 days since the last order", "", ""]
    assert keys(out, "u") == ["purchase_rhythm", "", ""]
    zh = reasons(shap, features, lang="zh")
    assert sentences(zh, "u")[:2] == ["通常每24天下单一次，距上次下单已61天", ""]
    assert theme_of("emb_0") is None and theme_of("mystery_column") is None
    assert theme_of("attr_membership_level") is None


def test_every_registered_feature_has_a_theme():
    assert {f: theme_of(f) for f in FEATURES if theme_of(f) is None} == {}


def test_every_variant_has_templates_in_both_languages_with_its_fields():
    themes = list(explain_themes._STATIC_THEMES) + explain_themes._dynamic_themes(
        ["attr_plan", "btyd_p_alive", "btyd_other"])
    for theme, variant in ((t, v) for t in themes for v in t.variants):
        for lang in explain.LANGS:
            template = TEMPLATES[theme.key][variant.template or variant.name][lang]
            forms = template.values() if isinstance(template, dict) else [template]
            for text in forms:
                used = {name for _, name, _, _ in string.Formatter().parse(text) if name}
                assert used <= set(variant.fields), (theme.key, variant.name, lang, used)
            if isinstance(template, dict):
                assert variant.plural in variant.fields and set(template) == {"one", "other"}


# -- context ---------------------------------------------------------------------------------------
def test_context_names_the_date_and_topic():
    shap, features = frames({
        "reviewer": {"review_rating_last": (1.0, 0.9), "review_low_share": (0.5, 0.1),
                     "days_since_last_order": (74.0, 0.4), "order_gap_mean_days": (21.0, 0.1),
                     "tickets_unresolved": (2, 0.3), "oldest_unresolved_ticket_days": (35.2, 0.0)},
        "no_topic": {"review_rating_last": (2.0, 0.9)},
        "no_context_row": {"review_rating_last": (1.0, 0.9)},
    })
    context = pd.DataFrame({
        "user_id": ["reviewer", "no_topic"], "cutoff": [CUTOFF, CUTOFF],
        "last_review_at": pd.to_datetime(["2026-10-02 18:30", "2026-09-30 23:59"]),
        "last_review_rating": [1.0, 2.0], "last_review_topic": ["delivery", "none"],
        "last_order_at": pd.to_datetime(["2026-08-19 10:00", None]),
        "oldest_open_ticket_at": pd.to_datetime(["2026-09-26 20:00", None]),
    })
    out = reasons(shap, features, context=context)
    assert sentences(out, "reviewer") == [
        "Left a 1-star review about delivery on 2026-10-02",
        "Last order on 2026-08-19, 74 days ago; usually orders every 21 days",
        "2 support tickets unresolved (oldest opened on 2026-09-26, 35 days ago)",
    ]
    assert sentences(out, "no_topic")[0] == "Left a 2-star review on 2026-09-30"
    assert sentences(out, "no_context_row")[0] == "Their latest review gave only 1 star"
    zh = reasons(shap, features, lang="zh", context=context)
    assert sentences(zh, "reviewer") == [
        "2026-10-02 留下关于配送的1星差评",
        "最近一次下单在2026-08-19（74天前），平时约每21天下单一次",
        "2个客服工单未解决（最早的于2026-09-26提交，已开35天）",
    ]
    assert sentences(zh, "no_topic")[0] == "2026-09-30 留下2星差评"


# -- errors ----------------------------------------------------------------------------------------
def test_unknown_language():
    shap, features = frames(CUSTOMERS)
    with pytest.raises(ValueError, match=r"unknown language 'fr'; use en or zh"):
        reasons(shap, features, lang="fr")


def test_mismatched_indexes():
    shap, features = frames(CUSTOMERS)
    with pytest.raises(ValueError, match=r"1 of 2 contribution rows are not in features "
                                         r"\(first: \('spender'"):
        reasons(shap, features.iloc[:1])
    with pytest.raises(ValueError, match="features lacks"):
        reasons(shap, features.drop(columns=["spend_90d"]))
    with pytest.raises(ValueError, match="top_k"):
        reasons(shap, features, top_k=0)


def test_features_in_another_row_order_are_aligned():
    shap, features = frames(CUSTOMERS)
    assert reasons(shap, features.iloc[::-1]).equals(reasons(shap, features))


# -- reason_context from a store -------------------------------------------------------------------
_ids = itertools.count()


def insert(store: Store, *rows: dict) -> None:
    columns = ("event_id", "user_id", "ts", "type", "text", "rating", "session_id", "batch_id")
    store.con.executemany(
        f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [[{"event_id": f"e{next(_ids)}", "batch_id": "t", **r}.get(c) for c in columns]
         for r in rows])


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.fixture
def shop() -> Store:
    store = Store.in_memory()
    insert(
        store,
        # a: a late delivery, then a better-rated review exactly at the cutoff (not known yet)
        dict(user_id="a", ts=at("2026-08-19 10:00"), type="order"),
        dict(user_id="a", ts=at("2026-10-02 18:30"), type="review", rating=1,
             text="Delivery was late and nobody told me why."),
        dict(user_id="a", ts=at("2026-11-01 00:00"), type="review", rating=5, text="Great!"),
        dict(user_id="a", ts=at("2026-11-03 00:00"), type="order"),
        # tickets: t1 resolved by its session, t2 open, t3 closed by a session-less resolution
        # (oldest first, so it closes t2, leaving t3 open)
        dict(user_id="a", ts=at("2026-09-01"), type="support_ticket", session_id="t1"),
        dict(user_id="a", ts=at("2026-09-05"), type="ticket_resolved", session_id="t1"),
        dict(user_id="a", ts=at("2026-09-10"), type="support_ticket", session_id="t2"),
        dict(user_id="a", ts=at("2026-09-26 20:00"), type="support_ticket", session_id="t3"),
        dict(user_id="a", ts=at("2026-10-01"), type="ticket_resolved"),
        dict(user_id="a", ts=at("2026-11-01 00:00"), type="ticket_resolved", session_id="t3"),
        # b: Chinese review text; a later unrated review does not replace the rated one
        dict(user_id="b", ts=at("2026-09-30"), type="review", rating=2, text="快递太慢了，晚了一个多星期。"),
        dict(user_id="b", ts=at("2026-10-05"), type="review", text="还行"),
        # c: topics by keyword; "chocolate" is not "late"
        dict(user_id="c", ts=at("2026-01-01"), type="review", rating=2, text="用了两天就坏了"),
        dict(user_id="c", ts=at("2026-02-01"), type="review", rating=1, text="涨价后太贵了。"),
        dict(user_id="c", ts=at("2026-03-01"), type="review", rating=3, text="客服一直不回复。"),
        dict(user_id="c", ts=at("2026-04-01"), type="review", rating=4, text="Nice chocolate"),
    )
    yield store
    store.close()


def test_reason_context_uses_only_events_before_the_cutoff(shop: Store):
    population = pd.DataFrame({"user_id": ["a", "b", "nobody", "a"],
                               "cutoff": pd.to_datetime(["2026-11-01", "2026-11-01",
                                                         "2026-11-01", "2026-09-03"])})
    ctx = reason_context(shop, population)
    assert list(ctx.columns) == list(CONTEXT_COLUMNS)
    assert list(ctx.index.names) == ["user_id", "cutoff"]
    a = ctx.loc[("a", pd.Timestamp("2026-11-01"))]
    assert a["last_review_at"] == pd.Timestamp("2026-10-02 18:30")
    assert a["last_review_rating"] == 1 and a["last_review_topic"] == "delivery"
    assert a["last_order_at"] == pd.Timestamp("2026-08-19 10:00")
    assert a["oldest_open_ticket_at"] == pd.Timestamp("2026-09-26 20:00")
    early = ctx.loc[("a", pd.Timestamp("2026-09-03"))]
    assert pd.isna(early["last_review_at"]) and pd.isna(early["last_review_topic"])
    assert early["oldest_open_ticket_at"] == pd.Timestamp("2026-09-01")
    b = ctx.loc[("b", pd.Timestamp("2026-11-01"))]
    assert (b["last_review_at"], b["last_review_rating"], b["last_review_topic"]) == (
        pd.Timestamp("2026-09-30"), 2, "delivery")
    assert pd.isna(b["last_order_at"]) and pd.isna(b["oldest_open_ticket_at"])
    assert ctx.loc[("nobody", pd.Timestamp("2026-11-01"))].isna().all()


@pytest.mark.parametrize(("cutoff", "topic"), [("2026-01-15", "quality"), ("2026-02-15", "price"),
                                               ("2026-03-15", "service"), ("2026-04-15", "none")])
def test_review_topic_by_keyword(shop: Store, cutoff: str, topic: str):
    ctx = reason_context(shop, pd.DataFrame({"user_id": ["c"], "cutoff": [pd.Timestamp(cutoff)]}))
    assert ctx["last_review_topic"].tolist() == [topic]


def test_context_agrees_with_the_ticket_feature(shop: Store):
    population = pd.DataFrame({"user_id": ["a", "a"],
                               "cutoff": pd.to_datetime(["2026-09-03", "2026-11-01"])})
    features = build_features(shop, population, features=["oldest_unresolved_ticket_days"])
    ctx = reason_context(shop, population)
    days = (ctx.index.get_level_values("cutoff") - ctx["oldest_open_ticket_at"]).dt.total_seconds()
    assert np.allclose(days.to_numpy() / 86400,
                       features["oldest_unresolved_ticket_days"].to_numpy())


def test_context_from_the_store_feeds_the_sentences(shop: Store):
    population = pd.DataFrame({"user_id": ["a"], "cutoff": [CUTOFF]})
    shap, features = frames({"a": {"review_rating_last": (1.0, 0.9)}})
    out = reasons(shap, features, context=reason_context(shop, population))
    assert sentences(out, "a")[0] == "Left a 1-star review about delivery on 2026-10-02"


def test_docstring_examples():
    assert doctest.testmod(explain, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


def test_a_registered_feature_of_a_new_group_reads_its_description(monkeypatch):
    spec = FeatureSpec(name="points_balance", group="loyalty", unit="count",
                       description="loyalty points not yet spent")
    monkeypatch.setitem(FEATURES, "points_balance", spec)
    shap, features = frames({"u": {"points_balance": (120.0, 0.4)}})
    assert sentences(reasons(shap, features), "u") == ["Loyalty points not yet spent: 120", "", ""]
    assert keys(reasons(shap, features), "u") == ["other", "", ""]


def test_no_rows():
    shap, features = frames(CUSTOMERS)
    out = reasons(shap.iloc[:0], features.iloc[:0])
    assert len(out) == 0 and list(out.columns)[:1] == ["reason_1"]


def test_under_a_day_is_not_zero_days():
    shap, features = frames({"u": {"days_since_last_order": (0.4, 0.5),
                                   "tickets_unresolved": (1, 0.3),
                                   "oldest_unresolved_ticket_days": (0.2, 0.0)}})
    assert sentences(reasons(shap, features), "u")[:2] == [
        "Last order less than a day ago", "1 support ticket unresolved (open less than a day)"]
    assert sentences(reasons(shap, features, lang="zh"), "u")[:2] == [
        "最近一次下单在不到1天前", "1个客服工单未解决（已开不到1天）"]


def test_abandoned_carts():
    shap, features = frames({
        "four": {"cart_adds_90d": (4, 0.3), "cart_abandonment_90d": (0.75, 0.4)},
        "one": {"cart_adds_90d": (1, 0.3), "cart_abandonment_90d": (1.0, 0.4)},
    })
    out, zh = reasons(shap, features), reasons(shap, features, lang="zh")
    assert sentences(out, "four")[0] == (
        "3 of 4 items added to the cart in the last 90 days were not ordered")
    assert sentences(out, "one")[0] == "The item added to the cart in the last 90 days was not ordered"
    assert sentences(zh, "four")[0] == "最近90天加入购物车的4件商品中有3件没有下单"
    assert keys(out, "one")[0] == "abandoned_carts"
