"""Themes: which theme each feature's contribution counts toward, and for each theme the variants
of its sentence, the values each variant quotes and when it may be said."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import numpy as np
import pandas as pd

from churnguard.explain.topics import NO_TOPIC
from churnguard.explain.values import Source, _Values
from churnguard.features.registry import ATTRIBUTE_PREFIX, FEATURES, WINDOWS

_THEME_OF_GROUP = {
    "recency": "overdue", "gaps": "overdue", "frequency": "few_orders", "monetary": "order_value",
    "windows": "declining", "browsing": "stopped_browsing", "cart": "abandoned_carts",
    "categories": "narrow_categories", "returns": "returns", "reviews": "low_review",
    "tickets": "open_tickets", "coupons": "coupons", "tenure": "tenure",
}  # fmt: skip
# Features whose registry group reads differently to a marketer: any event, not an order.
_THEME_OF_FEATURE = {"days_since_last_event": "stopped_browsing",
                     "events_30d": "stopped_browsing", "events_90d": "stopped_browsing"}


def theme_of(feature: str) -> str | None:
    """The theme a feature's contribution counts toward, or None (not a reason: embeddings,
    user attributes and columns nothing describes).

    The BTYD outputs (``btyd_*``: the chance of still being active, of buying nothing within the
    horizon, the expected orders) are model quantities a marketer cannot read; what they measure
    is how overdue the next order is against the customer's own rhythm, so they count toward
    "overdue" and are said as that rhythm (reason key ``purchase_rhythm``). Static attributes
    (``attr_*``: membership level, region, ...) describe who the customer is, not why they may
    leave; they are never a reason (the model still uses them).

    >>> theme_of("overdue_ratio"), theme_of("btyd_p_alive"), theme_of("attr_membership_level")
    ('overdue', 'overdue', None)
    >>> theme_of("emb_12"), theme_of("x")
    (None, None)
    """
    if feature in _THEME_OF_FEATURE:
        return _THEME_OF_FEATURE[feature]
    if feature.startswith("btyd_"):
        return "overdue"
    if feature.startswith(ATTRIBUTE_PREFIX):
        return None
    if feature.startswith("emb_"):
        return None
    spec = FEATURES.get(feature)
    if spec is None:
        return None
    return _THEME_OF_GROUP.get(spec.group, "other")


# -- themes and their variants ---------------------------------------------------------------------


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
# The BTYD outputs (models/btyd_churn.py BTYD_FEATURES; explain sits below models, so named here).
_BTYD_FEATURES = ("btyd_p_alive", "btyd_expected_orders", "btyd_p_no_purchase")


def _either(first: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``first`` where known, else ``fallback`` (context from the store before the features)."""
    return np.where(pd.isna(first), fallback, first)


def _rhythm_fields() -> dict[str, _Field]:
    """The customer's own rhythm: the mean gap between their order days and the days since the
    last order, from :func:`reason_context` (the store, before the cutoff) or else the features
    the model saw (the same definitions: features/sql.py)."""
    gap = lambda v: _either(v["usual_order_gap_days"], v["order_gap_mean_days"])
    days = lambda v: _either(v["days_since_order"], v["days_since_last_order"])
    return {"gap": _Field(kind="int", source=gap, noun=_DAY), "days": _days_of(days)}


def _days(name: str) -> _Field:
    return _Field(kind="days", source=name, noun=_DAY)


def _days_of(source: Source) -> _Field:
    return _Field(kind="days", source=source, noun=_DAY)


def _overdue() -> _Theme:
    last = _days("days_since_last_order")
    gap = _Field(kind="int", source="order_gap_mean_days", noun=_DAY)
    date = _Field(kind="date", source="last_order_at")

    def overdue(v: _Values) -> np.ndarray:
        # on the numbers as printed, so that "74 days ago; usually every 74 days" never shows
        return (np.floor(v["days_since_last_order"])
                > np.floor(v["order_gap_mean_days"] + 0.5))

    rhythm = _rhythm_fields()

    def rhythm_overdue(v: _Values) -> np.ndarray:
        return (np.floor(v.resolve(rhythm["days"].source).astype(float))
                > np.floor(v.resolve(rhythm["gap"].source).astype(float) + 0.5))

    def one_order_day(v: _Values) -> np.ndarray:
        return _either(v["order_days"], v["order_days_total"]) == 1

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
        # the BTYD outputs, said as the customer's own rhythm; listed last so that, without
        # BTYD contributions, the variants above keep winning ties
        _Variant(name="rhythm_overdue", key="purchase_rhythm", fields=rhythm,
                 drivers=_BTYD_FEATURES, when=rhythm_overdue),
        # not overdue yet: the model weighs a slow rhythm (a long wait for the next order)
        _Variant(name="rhythm", key="purchase_rhythm", fields=rhythm, drivers=_BTYD_FEATURES,
                 tier=1),
        _Variant(name="rhythm_once", key="purchase_rhythm", fields={"days": rhythm["days"]},
                 drivers=_BTYD_FEATURES, tier=1, when=one_order_day),
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


def _dynamic_themes(columns: list[str]) -> list[_Theme]:
    """Themes whose variants depend on the columns: registered features of a group no theme
    covers, said with their description."""
    themes = []
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
