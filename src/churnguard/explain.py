"""Reason codes: the top reasons a customer may churn, as sentences in English or Chinese.

A model explains each (user_id, cutoff) row with SHAP contributions in log-odds, one column per
feature. Features that say the same thing to a marketer are grouped into a *theme* (the days since
the last order, the usual gap between orders and the overdue ratio all say "overdue"); a theme's
weight is the sum of its features' **positive** contributions (only what pushes toward churn is a
reason), themes are ranked by weight, and the top ``top_k`` become sentences that quote the
customer's own values. Within a theme the sentence is the best-supported *variant*: among the
variants whose values are known for the customer (a variant never prints a missing value), the one
whose own features contributed most; a theme with no such variant (e.g. "returns" for a customer
with none) is not a reason for that customer.

Templates are data (:data:`TEMPLATES`); :func:`reason_context` adds details the features do not
hold (the date, rating and topic of the last review, ...) so that sentences can name them.

>>> import pandas as pd
>>> idx = pd.MultiIndex.from_tuples([("u1", pd.Timestamp("2026-11-01"))],
...                                 names=["user_id", "cutoff"])
>>> features = pd.DataFrame({"days_since_last_order": [74.2], "order_gap_mean_days": [21.0],
...                          "tickets_unresolved": [2], "oldest_unresolved_ticket_days": [35.5]},
...                         index=idx)
>>> shap = pd.DataFrame({"days_since_last_order": [0.9], "order_gap_mean_days": [0.2],
...                      "tickets_unresolved": [0.4], "oldest_unresolved_ticket_days": [-0.1],
...                      "bias": [-1.0]}, index=idx)
>>> out = reasons(shap, features, top_k=2)
>>> for sentence in out.iloc[0][["reason_1", "reason_2"]]:
...     print(sentence)
Last order 74 days ago; usually orders every 21 days
2 support tickets unresolved (oldest open 35 days)
>>> reasons(shap, features, lang="zh", top_k=1)["reason_1"].iloc[0]
'最近一次下单在74天前，平时约每21天下单一次'
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnguard.features.build import _population_table
from churnguard.features.registry import ATTRIBUTE_PREFIX, FEATURES, WINDOWS
from churnguard.store import Store

__all__ = ["CONTEXT_COLUMNS", "LANGS", "TEMPLATES", "TOPIC_KEYWORDS", "reason_context", "reasons",
           "theme_of"]

LANGS = ("en", "zh")

# -- review topics ---------------------------------------------------------------------------------
# Checked in this order; the first topic with a keyword in the text wins. English keywords match
# whole words (so "late" does not match "chocolate"), Chinese ones anywhere. Quality comes before
# price so that "cheap material" is about quality.
TOPIC_KEYWORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "delivery": {
        "en": ("delivery", "delivered", "shipping", "shipped", "late", "delayed", "delay",
               "parcel", "courier", "tracking"),
        "zh": ("快递", "配送", "物流", "送货", "发货", "到货", "延误", "延迟", "包裹"),
    },
    "quality": {
        "en": ("quality", "broken", "broke", "defect", "defective", "damaged", "faulty",
               "material", "stopped working", "does not work", "doesn't work"),
        "zh": ("质量", "坏", "做工", "材质", "瑕疵", "破损"),
    },
    "price": {
        "en": ("price", "prices", "priced", "overpriced", "expensive", "cheaper", "money",
               "worth"),
        "zh": ("价格", "贵", "涨价", "不值", "性价比", "便宜"),
    },
    "service": {
        "en": ("service", "support", "staff", "rude", "customer care"),
        "zh": ("客服", "服务", "态度"),
    },
}
NO_TOPIC = "none"

# How a topic reads inside a sentence ("Left a 1-star review about {topic} on ...").
TOPIC_WORDS: dict[str, dict[str, str]] = {
    "en": {"delivery": "delivery", "quality": "quality", "price": "the price",
           "service": "customer service"},
    "zh": {"delivery": "配送", "quality": "质量", "price": "价格", "service": "服务"},
}

# Columns of the frame :func:`reason_context` builds; timestamps are naive UTC.
CONTEXT_COLUMNS = ("last_review_at", "last_review_rating", "last_review_topic", "last_order_at",
                   "oldest_open_ticket_at")

# -- templates (data) ------------------------------------------------------------------------------
# TEMPLATES[theme][variant][lang]: a str.format template, or {"one": ..., "other": ...} chosen by
# the variant's ``plural`` field. In English a field with a noun renders with it ("74 days",
# "1 order"); in Chinese numbers render bare and the template carries the measure word.
Template = str | dict[str, str]
TEMPLATES: dict[str, dict[str, dict[str, Template]]] = {
    "overdue": {
        "overdue_dated": {"en": "Last order on {date}, {days} ago; usually orders every {gap}",
                          "zh": "最近一次下单在{date}（{days}天前），平时约每{gap}天下单一次"},
        "overdue": {"en": "Last order {days} ago; usually orders every {gap}",
                    "zh": "最近一次下单在{days}天前，平时约每{gap}天下单一次"},
        "last_order_dated": {"en": "Last order on {date}, {days} ago",
                             "zh": "最近一次下单在{date}（{days}天前）"},
        "last_order": {"en": "Last order {days} ago", "zh": "最近一次下单在{days}天前"},
        "slow_rhythm": {"en": "Usually orders only every {gap}", "zh": "平时约每{gap}天才下单一次"},
        "last_active": {"en": "Last active {days} ago", "zh": "最近一次活跃在{days}天前"},
    },
    "declining": {
        "orders_fell": {"en": "Orders fell from {prev} to {cur} compared with the previous "
                              "{window}",
                        "zh": "与前{window}天相比，订单从{prev}笔降到{cur}笔"},
        "spend_fell": {"en": "Spent {cur} in the last {window} after {prev} before",
                       "zh": "最近{window}天消费{cur}，之前{window}天为{prev}"},
        "orders_window": {"en": "{cur} in the last {window} ({prev} in the {window} before)",
                          "zh": "最近{window}天下单{cur}笔（之前{window}天为{prev}笔）"},
    },
    "few_orders": {
        "never_ordered": {"en": "Has never placed an order", "zh": "从未下过单"},
        "only_orders": {"en": "Only {n} so far", "zh": "至今只下过{n}笔订单"},
        "orders": {"en": "{n} so far", "zh": "至今共下单{n}笔"},
    },
    "order_value": {
        "average_and_total": {"en": "Average order value {mean} ({total} in total)",
                              "zh": "平均客单价{mean}（累计消费{total}）"},
        "average": {"en": "Average order value {mean}", "zh": "平均客单价{mean}"},
    },
    "narrow_categories": {
        "one_category": {"en": "Has ordered from only one category", "zh": "只在一个品类下过单"},
        "categories": {"en": "Has ordered from {n}", "zh": "在{n}个品类下过单"},
    },
    "stopped_browsing": {
        "no_visits": {"en": "No visits in the last 30 days (last visit {days} ago)",
                      "zh": "最近30天没有访问（上次访问在{days}天前）"},
        "visits": {"en": "{n} in the last 30 days, the last one {days} ago",
                   "zh": "最近30天访问{n}次，上次在{days}天前"},
        "no_views": {"en": "No product views or searches in the last 30 days",
                     "zh": "最近30天没有浏览或搜索商品"},
        "views": {"en": "Only {n} in the last 30 days ({n90} in the last 90)",
                  "zh": "最近30天只浏览或搜索了{n}次（最近90天{n90}次）"},
        "no_sessions": {"en": "No sessions in the last 30 days", "zh": "最近30天没有任何会话"},
        "sessions": {"en": "Only {n} in the last 30 days ({n90} in the last 90)",
                     "zh": "最近30天只有{n}次会话（最近90天{n90}次）"},
        "inactive": {"en": "No activity of any kind for {days}", "zh": "已有{days}天没有任何活动"},
    },
    "abandoned_carts": {
        "abandoned": {
            "en": {"one": "The item added to the cart in the last 90 days was not ordered",
                   "other": "{k} of {n} items added to the cart in the last 90 days were not "
                            "ordered"},
            "zh": {"one": "最近90天加入购物车的商品没有下单",
                   "other": "最近90天加入购物车的{n}件商品中有{k}件没有下单"}},
        "removed": {"en": "Removed {n} from the cart in the last 90 days",
                    "zh": "最近90天从购物车移除了{n}件商品"},
        "no_cart": {"en": "Added nothing to the cart in the last 90 days",
                    "zh": "最近90天没有加购任何商品"},
    },
    "returns": {
        "return_rate": {"en": "{n} so far ({rate} of their orders)",
                        "zh": "累计退货{n}次（占订单的{rate}）"},
        "returns": {"en": "{n} so far", "zh": "累计退货{n}次"},
    },
    "low_review": {
        "review_topic_dated": {"en": "Left a {rating}-star review about {topic} on {date}",
                               "zh": "{date} 留下关于{topic}的{rating}星差评"},
        "review_dated": {"en": "Left a {rating}-star review on {date}",
                         "zh": "{date} 留下{rating}星差评"},
        "last_review_low": {"en": "Their latest review gave only {rating}",
                            "zh": "最近一次评价只给了{rating}星"},
        "low_share": {"en": "{share} of their reviews gave 1 or 2 stars",
                      "zh": "{share}的评价为1星或2星"},
        "low_mean": {"en": "Their reviews average {mean} stars", "zh": "评价平均只有{mean}星"},
    },
    "open_tickets": {
        "open_dated": {
            "en": {"one": "{n} support ticket unresolved (opened on {date}, {days} ago)",
                   "other": "{n} support tickets unresolved (oldest opened on {date}, {days} ago)"},
            "zh": {"one": "{n}个客服工单未解决（{date}提交，已开{days}天）",
                   "other": "{n}个客服工单未解决（最早的于{date}提交，已开{days}天）"}},
        "open": {
            "en": {"one": "{n} support ticket unresolved (open {days})",
                   "other": "{n} support tickets unresolved (oldest open {days})"},
            "zh": {"one": "{n}个客服工单未解决（已开{days}天）",
                   "other": "{n}个客服工单未解决（最早的已开{days}天）"}},
        "open_count": {
            "en": {"one": "{n} support ticket unresolved",
                   "other": "{n} support tickets unresolved"},
            "zh": "{n}个客服工单未解决"},
        "contacted": {
            "en": {"one": "Contacted support once, {days} ago",
                   "other": "Contacted support {n} times, most recently {days} ago"},
            "zh": "联系过客服{n}次，最近一次在{days}天前"},
    },
    "coupons": {
        "recent": {"en": "Redeemed {n} in the last 90 days", "zh": "最近90天使用了{n}张优惠券"},
        "lapsed": {"en": "Has redeemed {n}, none in the last 90 days",
                   "zh": "共使用过{n}张优惠券，最近90天没有使用"},
        "never": {"en": "Has never redeemed a coupon", "zh": "从未使用过优惠券"},
    },
    "tenure": {
        "new_customer": {"en": "New customer, joined {days} ago", "zh": "新客户，{days}天前加入"},
        "months": {"en": "Customer for {months}", "zh": "成为客户已{months}个月"},
        "years": {"en": "Customer for {years}", "zh": "成为客户已{years}年"},
    },
    "attributes": {
        "attribute": {"en": "{name}: {value}", "zh": "{name}：{value}"},
    },
    "purchase_rhythm": {
        "p_alive": {"en": "Buying pattern suggests a {p} chance they are still active",
                    "zh": "购买规律显示其仍在活跃的概率约为{p}"},
        "score": {"en": "Buying pattern: {name} is {value}", "zh": "购买规律：{name}为{value}"},
    },
    "other": {
        "described": {"en": "{description}: {value}", "zh": "{description}：{value}"},
    },
}

# -- which theme a feature belongs to --------------------------------------------------------------
_THEME_OF_GROUP = {
    "recency": "overdue", "gaps": "overdue", "frequency": "few_orders", "monetary": "order_value",
    "windows": "declining", "browsing": "stopped_browsing", "cart": "abandoned_carts",
    "categories": "narrow_categories", "returns": "returns", "reviews": "low_review",
    "tickets": "open_tickets", "coupons": "coupons", "tenure": "tenure",
    "attributes": "attributes",
}  # fmt: skip
# Features whose registry group reads differently to a marketer: any event, not an order.
_THEME_OF_FEATURE = {"days_since_last_event": "stopped_browsing",
                     "events_30d": "stopped_browsing", "events_90d": "stopped_browsing"}


def theme_of(feature: str) -> str | None:
    """The theme a feature's contribution counts toward, or None (not a reason: embeddings and
    columns nothing describes).

    >>> theme_of("overdue_ratio"), theme_of("btyd_p_alive"), theme_of("emb_12"), theme_of("x")
    ('overdue', 'purchase_rhythm', None, None)
    """
    if feature in _THEME_OF_FEATURE:
        return _THEME_OF_FEATURE[feature]
    if feature.startswith("btyd_"):
        return "purchase_rhythm"
    if feature.startswith(ATTRIBUTE_PREFIX):
        return "attributes"
    if feature.startswith("emb_"):
        return None
    spec = FEATURES.get(feature)
    if spec is None:
        return None
    return _THEME_OF_GROUP.get(spec.group, "other")


# -- themes and their variants ---------------------------------------------------------------------
Source = str | float | Callable[["_Values"], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class _Field:
    """One value in a sentence: where it comes from and how it reads.

    kind: days (elapsed, floored), count / int (rounded), money, pct (a share), stars (1 decimal),
    number, date, topic, text. noun: (singular, plural) written after the number in English.
    """

    kind: str
    source: Source
    noun: tuple[str, str] | None = None


@dataclass(frozen=True, kw_only=True)
class _Variant:
    """One way to say a theme. Valid for a row when every field is known and ``when`` holds; the
    valid variant of the lowest ``tier`` wins, then the one whose ``drivers`` contributed most,
    then (``prefer``) the one naming a date from the context."""

    name: str
    fields: dict[str, _Field] = field(default_factory=dict)
    drivers: tuple[str, ...] = ()
    when: Callable[[_Values], np.ndarray] | None = None
    tier: int = 0
    prefer: bool = False
    plural: str | None = None
    key: str | None = None  # reason key, when it differs from the theme's
    template: str | None = None  # TEMPLATES entry, when it differs from ``name``


@dataclass(frozen=True, kw_only=True)
class _Theme:
    key: str
    variants: tuple[_Variant, ...]


_DAY = ("day", "days")
_ORDER = ("order", "orders")

_OVERDUE_FEATURES = ("days_since_last_order", "days_since_last_activity", "overdue_ratio",
                     "order_gap_mean_days", "order_gap_std_days", "order_gap_last_days")
_GAP_FEATURES = ("order_gap_mean_days", "order_gap_std_days", "order_gap_last_days")


def _days(name: str) -> _Field:
    return _Field(kind="days", source=name, noun=_DAY)


def _overdue() -> _Theme:
    last = _days("days_since_last_order")
    gap = _Field(kind="int", source="order_gap_mean_days", noun=_DAY)
    date = _Field(kind="date", source="last_order_at")

    def overdue(v: _Values) -> np.ndarray:
        # on the numbers as printed, so that "74 days ago; usually every 74 days" never shows
        return (np.floor(v["days_since_last_order"])
                > np.floor(v["order_gap_mean_days"] + 0.5))

    recency = ("days_since_last_order", "days_since_last_activity")
    return _Theme(key="overdue", variants=(
        _Variant(name="overdue_dated", fields={"date": date, "days": last, "gap": gap},
                 drivers=_OVERDUE_FEATURES, when=overdue, prefer=True),
        _Variant(name="overdue", fields={"days": last, "gap": gap}, drivers=_OVERDUE_FEATURES,
                 when=overdue),
        _Variant(name="last_order_dated", fields={"date": date, "days": last}, drivers=recency,
                 tier=1, prefer=True),
        _Variant(name="last_order", fields={"days": last}, drivers=recency, tier=1),
        _Variant(name="slow_rhythm", fields={"gap": gap}, drivers=_GAP_FEATURES, tier=1),
        _Variant(name="last_active", fields={"days": _days("days_since_last_activity")},
                 drivers=("days_since_last_activity",), tier=2),
    ))


def _declining() -> _Theme:
    variants = []
    for w in WINDOWS:
        orders = (f"orders_{w}d", f"orders_prev_{w}d", f"orders_trend_{w}d")
        spend = (f"spend_{w}d", f"spend_prev_{w}d", f"spend_trend_{w}d")
        window = _Field(kind="int", source=float(w), noun=_DAY)

        variants += [
            _Variant(name=f"orders_fell_{w}d", template="orders_fell", drivers=orders,
                     fields={"prev": _Field(kind="count", source=orders[1]),
                             "cur": _Field(kind="count", source=orders[0]), "window": window},
                     when=lambda v, c=orders[0], p=orders[1]: v[p] > v[c]),
            _Variant(name=f"spend_fell_{w}d", template="spend_fell", drivers=spend,
                     fields={"prev": _Field(kind="money", source=spend[1]),
                             "cur": _Field(kind="money", source=spend[0]), "window": window},
                     when=lambda v, c=spend[0], p=spend[1]: v[p] > v[c]),
            _Variant(name=f"orders_window_{w}d", template="orders_window", tier=1,
                     drivers=orders + spend,
                     fields={"cur": _Field(kind="count", source=orders[0], noun=_ORDER),
                             "prev": _Field(kind="count", source=orders[1]), "window": window}),
        ]
    return _Theme(key="declining", variants=tuple(variants))


def _few_orders() -> _Theme:
    drivers = ("orders_total", "orders_in_lookback", "order_days_total")
    n = _Field(kind="count", source="orders_total", noun=_ORDER)
    return _Theme(key="few_orders", variants=(
        _Variant(name="never_ordered", drivers=drivers, when=lambda v: v["orders_total"] == 0),
        _Variant(name="only_orders", fields={"n": n}, drivers=drivers,
                 when=lambda v: (v["orders_total"] >= 1) & (v["orders_total"] <= 2)),
        _Variant(name="orders", fields={"n": n}, drivers=drivers,
                 when=lambda v: v["orders_total"] > 2),
    ))


def _order_value() -> _Theme:
    drivers = ("order_amount_sum", "order_amount_mean", "order_amount_max")
    mean = _Field(kind="money", source="order_amount_mean")
    return _Theme(key="order_value", variants=(
        _Variant(name="average_and_total", drivers=drivers,
                 fields={"mean": mean, "total": _Field(kind="money", source="order_amount_sum")},
                 when=lambda v: v["orders_total"] > 1),
        _Variant(name="average", fields={"mean": mean}, drivers=drivers, tier=1),
    ))


def _categories() -> _Theme:
    n = "order_categories_distinct"
    return _Theme(key="narrow_categories", variants=(
        _Variant(name="one_category", when=lambda v: v[n] == 1),
        _Variant(name="categories", when=lambda v: v[n] >= 2,
                 fields={"n": _Field(kind="count", source=n, noun=("category", "categories"))}),
    ))


def _browsing() -> _Theme:
    visits = ("visits_30d", "visits_90d", "days_since_last_visit")
    views = ("views_30d", "views_90d", "searches_30d", "searches_90d")
    sessions = ("sessions_30d", "sessions_90d")

    def looked(v: _Values, w: int) -> np.ndarray:
        return v[f"views_{w}d"] + v[f"searches_{w}d"]

    view_noun = ("product view or search", "product views or searches")
    last_visit = _days("days_since_last_visit")
    return _Theme(key="stopped_browsing", variants=(
        _Variant(name="no_visits", fields={"days": last_visit}, drivers=visits,
                 when=lambda v: v["visits_30d"] == 0),
        _Variant(name="visits", drivers=visits, when=lambda v: v["visits_30d"] > 0,
                 fields={"n": _Field(kind="count", source="visits_30d", noun=("visit", "visits")),
                         "days": last_visit}),
        _Variant(name="no_views", drivers=views, when=lambda v: looked(v, 30) == 0),
        _Variant(name="views", drivers=views, when=lambda v: looked(v, 30) > 0,
                 fields={"n": _Field(kind="count", source=lambda v: looked(v, 30), noun=view_noun),
                         "n90": _Field(kind="count", source=lambda v: looked(v, 90))}),
        _Variant(name="no_sessions", drivers=sessions, when=lambda v: v["sessions_30d"] == 0),
        _Variant(name="sessions", drivers=sessions, when=lambda v: v["sessions_30d"] > 0,
                 fields={"n": _Field(kind="count", source="sessions_30d",
                                     noun=("session", "sessions")),
                         "n90": _Field(kind="count", source="sessions_90d")}),
        _Variant(name="inactive", drivers=("days_since_last_event", "events_30d", "events_90d"),
                 fields={"days": _days("days_since_last_event")},
                 when=lambda v: v["days_since_last_event"] >= 7),
    ))


def _cart() -> _Theme:
    adds, removes, share = "cart_adds_90d", "cart_removes_90d", "cart_abandonment_90d"
    item = ("item", "items")
    return _Theme(key="abandoned_carts", variants=(
        _Variant(name="abandoned", drivers=(adds, share), plural="n",
                 when=lambda v: (v[adds] > 0) & (v[share] > 0),
                 fields={"k": _Field(kind="int", source=lambda v: v[share] * v[adds]),
                         "n": _Field(kind="count", source=adds)}),
        _Variant(name="removed", drivers=(removes,), when=lambda v: v[removes] > 0,
                 fields={"n": _Field(kind="count", source=removes, noun=item)}),
        _Variant(name="no_cart", key="no_cart_activity", tier=1, drivers=(adds,),
                 when=lambda v: v[adds] == 0),
    ))


def _returns() -> _Theme:
    n = _Field(kind="count", source="returns_total", noun=("return", "returns"))
    some = lambda v: v["returns_total"] > 0
    return _Theme(key="returns", variants=(
        _Variant(name="return_rate", when=some,
                 fields={"n": n, "rate": _Field(kind="pct", source="return_rate")}),
        _Variant(name="returns", fields={"n": n}, when=some, tier=1),
    ))


def _reviews() -> _Theme:
    date = _Field(kind="date", source="last_review_at")
    stars = _Field(kind="int", source="last_review_rating")
    low_context = lambda v: v["last_review_rating"] <= 2
    last = ("review_rating_last", "days_since_last_review")
    share = ("review_low_share", "review_rating_mean", "reviews_total")
    return _Theme(key="low_review", variants=(
        _Variant(name="review_topic_dated", drivers=last + share, prefer=True,
                 fields={"rating": stars, "date": date,
                         "topic": _Field(kind="topic", source="last_review_topic")},
                 when=lambda v: low_context(v) & (v["last_review_topic"] != NO_TOPIC)),
        _Variant(name="review_dated", drivers=last + share, when=low_context,
                 fields={"rating": stars, "date": date}),
        _Variant(name="last_review_low", drivers=last, tier=1,
                 when=lambda v: v["review_rating_last"] <= 2,
                 fields={"rating": _Field(kind="int", source="review_rating_last",
                                          noun=("star", "stars"))}),
        _Variant(name="low_share", drivers=share, tier=1,
                 when=lambda v: v["review_low_share"] > 0,
                 fields={"share": _Field(kind="pct", source="review_low_share")}),
        _Variant(name="low_mean", drivers=share, tier=2,
                 when=lambda v: v["review_rating_mean"] < 4,
                 fields={"mean": _Field(kind="stars", source="review_rating_mean")}),
    ))


def _tickets() -> _Theme:
    n = _Field(kind="count", source="tickets_unresolved")
    oldest = _days("oldest_unresolved_ticket_days")
    some = lambda v: v["tickets_unresolved"] > 0
    everything = ("tickets_unresolved", "oldest_unresolved_ticket_days", "tickets_total",
                  "days_since_last_ticket")
    return _Theme(key="open_tickets", variants=(
        _Variant(name="open_dated", plural="n", when=some, drivers=everything, prefer=True,
                 fields={"n": n, "date": _Field(kind="date", source="oldest_open_ticket_at"),
                         "days": oldest}),
        _Variant(name="open", plural="n", when=some, drivers=everything,
                 fields={"n": n, "days": oldest}),
        _Variant(name="open_count", plural="n", when=some, tier=1, fields={"n": n}),
        _Variant(name="contacted", plural="n", key="support_contact", tier=2,
                 when=lambda v: (v["tickets_total"] > 0) & (v["tickets_unresolved"] == 0),
                 fields={"n": _Field(kind="count", source="tickets_total"),
                         "days": _days("days_since_last_ticket")}),
    ))


def _coupons() -> _Theme:
    total, recent = "coupons_redeemed", "coupons_redeemed_90d"
    coupon = ("coupon", "coupons")
    return _Theme(key="coupons", variants=(
        _Variant(name="recent", when=lambda v: v[recent] > 0,
                 fields={"n": _Field(kind="count", source=recent, noun=coupon)}),
        _Variant(name="lapsed", when=lambda v: (v[total] > 0) & (v[recent] == 0),
                 fields={"n": _Field(kind="count", source=total, noun=coupon)}),
        _Variant(name="never", when=lambda v: v[total] == 0),
    ))


def _tenure() -> _Theme:
    days = "tenure_days"
    return _Theme(key="tenure", variants=(
        _Variant(name="new_customer", key="new_customer", fields={"days": _days(days)},
                 when=lambda v: v[days] < 90),
        _Variant(name="months", when=lambda v: (v[days] >= 90) & (v[days] < 730),
                 fields={"months": _Field(kind="days", source=lambda v: v[days] / 30.4375,
                                          noun=("month", "months"))}),
        _Variant(name="years", when=lambda v: v[days] >= 730,
                 fields={"years": _Field(kind="days", source=lambda v: v[days] / 365.25,
                                         noun=("year", "years"))}),
    ))


_STATIC_THEMES: tuple[_Theme, ...] = (
    _overdue(), _declining(), _few_orders(), _order_value(), _categories(), _browsing(), _cart(),
    _returns(), _reviews(), _tickets(), _coupons(), _tenure(),
)


def _readable(column: str, prefix: str) -> str:
    return column[len(prefix):].replace("_", " ").strip() or column


def _dynamic_themes(columns: list[str]) -> list[_Theme]:
    """Themes whose variants depend on the columns: attributes, BTYD outputs, other features."""
    themes = []
    attrs = [c for c in columns if theme_of(c) == "attributes"]
    if attrs:
        themes.append(_Theme(key="attributes", variants=tuple(
            _Variant(name=c, template="attribute", key=c, drivers=(c,),
                     fields={"name": _Field(kind="text", source=_const(
                                 _readable(c, ATTRIBUTE_PREFIX).capitalize())),
                             "value": _Field(kind="value", source=c)})
            for c in attrs)))
    btyd = [c for c in columns if theme_of(c) == "purchase_rhythm"]
    if btyd:
        themes.append(_Theme(key="purchase_rhythm", variants=tuple(
            _Variant(name="p_alive", drivers=(c,), fields={"p": _Field(kind="pct", source=c)})
            if c == "btyd_p_alive" else
            _Variant(name=c, template="score", drivers=(c,),
                     fields={"name": _Field(kind="text", source=_const(_readable(c, "btyd_"))),
                             "value": _Field(kind="number", source=c)})
            for c in btyd)))
    other = [c for c in columns if theme_of(c) == "other"]
    if other:
        themes.append(_Theme(key="other", variants=tuple(
            _Variant(name=c, template="described", drivers=(c,), fields={
                "description": _Field(kind="text", source=_const(
                    FEATURES[c].description[:1].upper() + FEATURES[c].description[1:])),
                "value": _Field(kind=_KIND_OF_UNIT.get(FEATURES[c].unit, "number"), source=c)})
            for c in other)))
    return themes


_KIND_OF_UNIT = {"days": "days", "count": "count", "amount": "money", "share": "pct",
                 "rating": "stars"}


def _const(text: str) -> Callable[[_Values], np.ndarray]:
    return lambda v: np.full(v.n, text, dtype=object)


# -- values: features and context, aligned with the contributions ---------------------------------
class _Values:
    """Column arrays by name (features first, then context); a column that is absent reads as
    missing, so a variant that needs it is never valid."""

    def __init__(self, features: pd.DataFrame, context: pd.DataFrame | None) -> None:
        self.n = len(features)
        self._features, self._context = features, context
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._load(name)
        return self._cache[name]

    def _load(self, name: str) -> np.ndarray:
        frame = self._features
        if name in CONTEXT_COLUMNS:
            frame = self._context
        if frame is None or name not in frame.columns:
            return np.full(self.n, np.nan)
        column = frame[name]
        if frame is self._context and name.endswith("_at"):
            return pd.to_datetime(column).to_numpy(dtype="datetime64[us]")
        if name == "last_review_topic" or not pd.api.types.is_numeric_dtype(column.dtype):
            return column.astype(object).where(column.notna(), None).to_numpy(dtype=object)
        return column.to_numpy(dtype=float, na_value=np.nan)

    def resolve(self, source: Source) -> np.ndarray:
        if isinstance(source, str):
            return self[source]
        if isinstance(source, float | int):
            return np.full(self.n, float(source))
        return np.asarray(source(self))


def _known(values: np.ndarray) -> np.ndarray:
    return ~pd.isna(values)


# -- formatting: vectorised over the rows that show a sentence -------------------------------------
def _whole(values: np.ndarray, *, floor: bool) -> np.ndarray:
    values = values.astype(float)
    return (np.floor(values) if floor else np.floor(values + 0.5)).astype(np.int64)


def _money(x: float) -> str:
    cents = round(x * 100)
    return f"{cents / 100:,.0f}" if cents % 100 == 0 else f"{cents / 100:,.2f}"


def _number(x: object) -> str:
    if isinstance(x, float | int | np.floating | np.integer):
        return f"{x:,.2f}".rstrip("0").rstrip(".") if x != round(x) else f"{round(x):,}"
    return str(x)


def _percent(share: float) -> str:
    pct = share * 100
    if 0 < pct < 0.5:
        return "<1%"
    if 99.5 <= pct < 100:
        return ">99%"
    return f"{int(np.floor(pct + 0.5))}%"


# an elapsed time under one day, in place of "{days}" ("... ago", "...天前")
_LESS_THAN_A_DAY = {"en": "less than a day", "zh": "不到1"}


def _format(spec: _Field, values: np.ndarray, lang: str) -> list[str]:
    """Strings for one field over a subset of rows; numbers get their English noun."""
    kind = spec.kind
    if kind == "value":  # an attribute: a category or a number
        kind = "number" if values.dtype.kind == "f" else "text"
    if kind in ("days", "count", "int"):
        numbers = _whole(values, floor=kind == "days").tolist()
        texts = [str(k) for k in numbers]
        if spec.noun is not None and lang == "en":
            one, many = spec.noun
            texts = [f"{k} {one if k == 1 else many}" for k in numbers]
        if kind == "days" and spec.noun == _DAY:  # "0 days ago" reads as a mistake
            less = _LESS_THAN_A_DAY[lang]
            texts = [less if k == 0 else text for k, text in zip(numbers, texts)]
        return texts
    if kind == "money":
        return [_money(x) for x in values.astype(float).tolist()]
    if kind == "pct":
        return [_percent(x) for x in values.astype(float).tolist()]
    if kind == "stars":
        return [f"{x:.1f}" for x in values.astype(float).tolist()]
    if kind == "date":
        return np.datetime_as_string(values.astype("datetime64[D]"), unit="D").tolist()
    if kind == "topic":
        words = TOPIC_WORDS[lang]
        return [words.get(t, str(t)) for t in values.tolist()]
    if kind == "number":
        return [_number(x) for x in values.tolist()]
    return [str(x) for x in values.tolist()]


def _positional(template: str) -> tuple[str, list[str]]:
    """'{a} and {b}' -> ('{0} and {1}', ['a', 'b']): formatting by position is faster per row."""
    names: list[str] = []
    out = []
    for literal, name, spec, conv in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            if name not in names:
                names.append(name)
            out.append("{" + str(names.index(name)) + (f"!{conv}" if conv else "")
                       + (f":{spec}" if spec else "") + "}")
    return "".join(out), names


def _render(theme: _Theme, variant: _Variant, lang: str, values: _Values,
            rows: np.ndarray) -> list[str]:
    template = TEMPLATES[theme.key][variant.template or variant.name][lang]
    strings = {name: _format(spec, values.resolve(spec.source)[rows], lang)
               for name, spec in variant.fields.items()}
    if isinstance(template, dict):
        count = _whole(values.resolve(variant.fields[variant.plural].source)[rows], floor=False)
        forms = np.where(count == 1, "one", "other")
    else:
        forms = None
    out: list[str] = [""] * len(rows)
    for form in ("one", "other") if forms is not None else (None,):
        text = template if form is None else template[form]  # type: ignore[index]
        picked = np.arange(len(rows)) if form is None else np.flatnonzero(forms == form)
        fmt, names = _positional(text)
        columns = [[strings[name][i] for i in picked.tolist()] for name in names]
        sentences = [fmt.format(*vals) for vals in zip(*columns)] if names else \
            [fmt.format()] * len(picked)
        for i, sentence in zip(picked.tolist(), sentences):
            out[i] = sentence
    return out


# -- reasons ---------------------------------------------------------------------------------------
def _choose(theme: _Theme, values: _Values, live: np.ndarray,
            driven: Callable[[tuple[str, ...]], np.ndarray]) -> np.ndarray:
    """Per row, the index of the variant to say (-1: none can be said truthfully).

    Lowest tier first; within a tier the variant whose drivers contributed most, then one that
    names a date (``prefer``), then the first listed.
    """
    best = np.full(values.n, -1, dtype=np.int64)
    best_score = np.full(values.n, -np.inf)
    for tier in sorted({v.tier for v in theme.variants}):
        undecided = live & (best < 0)
        for j, variant in enumerate(theme.variants):
            if variant.tier != tier:
                continue
            valid = undecided.copy()
            for spec in variant.fields.values():
                valid &= _known(values.resolve(spec.source))
            if variant.when is not None:
                with np.errstate(invalid="ignore"):
                    valid &= np.asarray(variant.when(values), dtype=bool)
            score = driven(variant.drivers) + (1e-9 if variant.prefer else 0.0)
            better = valid & (score > best_score)
            best[better] = j
            best_score[better] = score[better]
    return best


def _aligned(features: pd.DataFrame, index: pd.Index, what: str) -> pd.DataFrame:
    if features.index.equals(index):
        return features
    try:
        positions = features.index.get_indexer(index)
    except pd.errors.InvalidIndexError:
        raise ValueError(f"{what} has duplicate (user_id, cutoff) rows; keep one row per "
                         "customer and cutoff") from None
    missing = int((positions < 0).sum())
    if missing or len(features) != len(index):
        first = index[positions < 0][:1].tolist()
        raise ValueError(
            f"{what} and contributions have different rows: {missing} of {len(index)} "
            f"contribution rows are not in {what}"
            + (f" (first: {first[0]!r})" if first else "")
            + f", and {what} has {len(features)} rows; pass the {what} frame the model explained")
    return features.iloc[positions]


def _context_frame(context: pd.DataFrame, index: pd.Index) -> pd.DataFrame:
    if {"user_id", "cutoff"} <= set(context.columns):
        context = context.set_index(["user_id", "cutoff"])
    if context.index.nlevels == 2 and index.nlevels == 2:
        # one resolution for the cutoffs on both sides, so that equal instants match
        context = context.set_axis(pd.MultiIndex.from_arrays([
            context.index.get_level_values(0).astype(str),
            pd.to_datetime(context.index.get_level_values(1)).as_unit("us")]))
        index = pd.MultiIndex.from_arrays([
            index.get_level_values(0).astype(str),
            pd.to_datetime(index.get_level_values(1)).as_unit("us")])
    unknown = set(context.columns) - set(CONTEXT_COLUMNS)
    context = context[[c for c in context.columns if c not in unknown]]
    return context.reindex(index)


def reasons(contributions: pd.DataFrame, features: pd.DataFrame, *, lang: str = "en",
            top_k: int = 3, context: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ``top_k`` reasons per row, as sentences and as stable keys.

    ``contributions``: SHAP values in log-odds, one column per feature (plus ``bias``, ignored),
    indexed like ``features`` (normally by user_id, cutoff). ``features``: the values the model
    saw, which the sentences quote. ``context``: optional details from :func:`reason_context`
    (dates and review topics). Returns a frame with the contributions' index and columns
    ``reason_1..reason_{top_k}`` and ``reason_keys_1..reason_keys_{top_k}``; a customer with fewer
    themes pushing toward churn gets empty strings in the remaining slots.
    """
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; use en or zh")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ValueError(f"top_k must be a whole number of at least 1, got {top_k!r}")
    names = [c for c in contributions.columns if c != "bias"]
    absent = [c for c in names if c not in features.columns]
    if absent:
        raise ValueError(
            f"contributions has {len(absent)} columns that features lacks ({', '.join(absent[:5])}"
            f"{', ...' if len(absent) > 5 else ''}); pass the features frame the model explained")
    index = contributions.index
    features = _aligned(features, index, "features")
    if context is not None:
        context = _context_frame(context, index)
    values = _Values(features, context)

    themes = list(_STATIC_THEMES) + _dynamic_themes(names)
    position = {t.key: i for i, t in enumerate(themes)}
    column_of = {c: i for i, c in enumerate(names)}
    n = len(index)
    positive = np.nan_to_num(contributions[names].to_numpy(dtype=float, na_value=np.nan), nan=0.0)
    np.clip(positive, 0.0, None, out=positive)

    # theme weight = sum of its features' positive contributions
    membership = np.zeros((len(names), len(themes)))
    for c, name in enumerate(names):
        theme = theme_of(name)
        if theme is not None and theme in position:
            membership[c, position[theme]] = 1.0
    weight = positive @ membership

    def driven(columns: tuple[str, ...]) -> np.ndarray:
        cols = [column_of[c] for c in columns if c in column_of]
        return positive[:, cols].sum(axis=1) if cols else np.zeros(n)

    # per theme: the variant each row would say (-1: none can be said truthfully)
    choice = np.full((n, len(themes)), -1, dtype=np.int64)
    for t, theme in enumerate(themes):
        live = weight[:, t] > 0
        if live.any():
            choice[:, t] = _choose(theme, values, live, driven)
    weight[choice < 0] = 0.0

    k = min(top_k, len(themes))
    order = np.argsort(-weight, axis=1, kind="stable")[:, :k]
    shown = np.take_along_axis(weight, order, axis=1) > 0
    text = np.full((n, top_k), "", dtype=object)
    keys = np.full((n, top_k), "", dtype=object)
    for t, theme in enumerate(themes):
        rows, slots = np.nonzero((order == t) & shown)
        if rows.size == 0:
            continue
        picked = choice[rows, t]
        for j in np.unique(picked).tolist():
            sel = picked == j
            variant = theme.variants[j]
            text[rows[sel], slots[sel]] = _render(theme, variant, lang, values, rows[sel])
            keys[rows[sel], slots[sel]] = variant.key or theme.key
    out = {f"reason_{i + 1}": text[:, i] for i in range(top_k)}
    out |= {f"reason_keys_{i + 1}": keys[:, i] for i in range(top_k)}
    return pd.DataFrame(out, index=index)


# -- context from the store ------------------------------------------------------------------------
def _topic_sql(column: str) -> str:
    cases = []
    for topic, words in TOPIC_KEYWORDS.items():
        en = "|".join(r"\b" + re.escape(w).replace(r"\ ", " ") + r"\b" for w in words["en"])
        zh = "|".join(re.escape(w) for w in words["zh"])
        pattern = f"(?i)({en}|{zh})".replace("'", "''")
        cases.append(f"WHEN regexp_matches({column}, '{pattern}') THEN '{topic}'")
    return f"CASE WHEN {column} IS NULL THEN '{NO_TOPIC}' {' '.join(cases)} ELSE '{NO_TOPIC}' END"


def _context_query(pop_view: str) -> str:
    # Tickets follow the same rule as the tickets_unresolved feature (features/sql.py): a
    # resolution with the ticket's session id closes it; resolutions without a session id close
    # the oldest still-open tickets first.
    return f"""
    WITH pop AS (SELECT DISTINCT user_id, cutoff FROM {pop_view}),
    ev AS (
        SELECT p.user_id, p.cutoff, e.ts, e.type, e.rating, e.text, e.session_id, e.event_id
        FROM events e JOIN pop p ON e.user_id = p.user_id AND e.ts < p.cutoff
        WHERE e.type IN ('order', 'review', 'support_ticket', 'ticket_resolved')),
    review AS (
        -- the latest rated review (as review_rating_last), else the latest review; one row's
        -- values together, ties on ts broken by event_id
        SELECT user_id, cutoff,
               arg_max({{'ts': ts, 'rating': rating, 'text': text}},
                       (rating IS NOT NULL, ts, event_id)) AS r
        FROM ev WHERE type = 'review' GROUP BY user_id, cutoff),
    orders AS (SELECT user_id, cutoff, max(ts) AS last_order_at FROM ev WHERE type = 'order'
               GROUP BY user_id, cutoff),
    tickets AS (SELECT * FROM ev WHERE type IN ('support_ticket', 'ticket_resolved')),
    open_by_id AS (
        SELECT t.user_id, t.cutoff, t.ts, t.event_id FROM tickets t
        WHERE t.type = 'support_ticket' AND NOT EXISTS (
            SELECT 1 FROM tickets r
            WHERE r.type = 'ticket_resolved' AND r.user_id = t.user_id AND r.cutoff = t.cutoff
              AND r.session_id = t.session_id)),
    fifo AS (SELECT user_id, cutoff, count(*) AS n FROM tickets
             WHERE type = 'ticket_resolved' AND session_id IS NULL GROUP BY user_id, cutoff),
    open_ranked AS (
        SELECT o.user_id, o.cutoff, o.ts,
               row_number() OVER (PARTITION BY o.user_id, o.cutoff ORDER BY o.ts, o.event_id) AS k,
               coalesce(f.n, 0) AS n_fifo
        FROM open_by_id o LEFT JOIN fifo f ON f.user_id = o.user_id AND f.cutoff = o.cutoff),
    open_tickets AS (SELECT user_id, cutoff, min(ts) AS oldest_open_ticket_at FROM open_ranked
                     WHERE k > n_fifo GROUP BY user_id, cutoff)
    SELECT p.user_id, p.cutoff,
           rv.r.ts AS last_review_at,
           rv.r.rating::DOUBLE AS last_review_rating,
           CASE WHEN rv.r IS NOT NULL THEN {_topic_sql('rv.r.text')} END AS last_review_topic,
           o.last_order_at,
           t.oldest_open_ticket_at
    FROM pop p
    LEFT JOIN review rv ON rv.user_id = p.user_id AND rv.cutoff = p.cutoff
    LEFT JOIN orders o ON o.user_id = p.user_id AND o.cutoff = p.cutoff
    LEFT JOIN open_tickets t ON t.user_id = p.user_id AND t.cutoff = p.cutoff
    ORDER BY p.user_id, p.cutoff"""


def reason_context(store: Store, population: pd.DataFrame) -> pd.DataFrame:
    """Details for the reason sentences, from events strictly before each row's cutoff.

    ``population``: user_id and cutoff (columns or index). Returns a frame indexed by
    (user_id, cutoff), sorted, with :data:`CONTEXT_COLUMNS`: the latest review's time, rating and
    topic (by keyword, :data:`TOPIC_KEYWORDS`; ``"none"`` when no keyword matches), the last
    order's time and the time the oldest still-unresolved support ticket was opened (NaT/NaN when
    there is none). Review texts themselves never leave the store.
    """
    table = _population_table(population)
    with store.registered(table, "reason_population") as view:
        frame = store.con.execute(_context_query(view)).df()
    frame["user_id"] = frame["user_id"].astype(str)
    for column in ("cutoff", "last_review_at", "last_order_at", "oldest_open_ticket_at"):
        frame[column] = frame[column].astype("datetime64[us]")
    frame["last_review_topic"] = frame["last_review_topic"].astype(object)
    return frame.set_index(["user_id", "cutoff"])[list(CONTEXT_COLUMNS)]
