"""The feature registry: every engineered feature's name, group, one-line description and unit.

Reason codes, the documentation and the "skipped groups" report all read this one table, so a
feature added to the SQL without an entry here fails the registry test.

>>> FEATURES["overdue_ratio"].group
'gaps'
>>> feature_spec("attr_plan").group
'attributes'
"""

from __future__ import annotations

from dataclasses import dataclass

# Units say how a value reads in a sentence ("12 days", "3 orders", "0.4 of ...").
UNITS = ("days", "count", "amount", "ratio", "share", "rating", "index", "value")

WINDOWS = (30, 90, 180)  # order/spend windows, each compared with the window before it
BROWSE_WINDOWS = (30, 90)
CART_WINDOW = 90


@dataclass(frozen=True, kw_only=True)
class FeatureSpec:
    """One feature column. ``requires``: event types that must exist in the store for the column
    to mean anything ("@session_id": some events carry a session id)."""

    name: str
    group: str
    description: str
    unit: str
    requires: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class GroupSpec:
    name: str
    description: str


GROUPS: dict[str, GroupSpec] = {
    g.name: g
    for g in (
        GroupSpec(name="recency", description="time since the last event, activity and order"),
        GroupSpec(name="frequency", description="how many orders and events"),
        GroupSpec(name="monetary", description="order amounts"),
        GroupSpec(name="windows", description="orders and spend in recent windows and their trend"),
        GroupSpec(name="gaps", description="gaps between order days and how overdue the next is"),
        GroupSpec(name="browsing", description="views, searches, visits and sessions"),
        GroupSpec(name="cart", description="cart additions, removals and abandonment"),
        GroupSpec(name="categories", description="breadth and concentration of ordered categories"),
        GroupSpec(name="returns", description="returned orders"),
        GroupSpec(name="reviews", description="reviews written and their ratings"),
        GroupSpec(name="tickets", description="support tickets and whether they were resolved"),
        GroupSpec(name="coupons", description="coupon redemptions"),
        GroupSpec(name="tenure", description="how long the customer has been known"),
        GroupSpec(name="attributes", description="user attributes from the users file"),
    )
}


def _specs() -> list[FeatureSpec]:
    o = ("order",)
    specs = [
        FeatureSpec(name="days_since_last_event", group="recency", unit="days",
                    description="days since the customer's last event of any type"),
        FeatureSpec(name="days_since_last_activity", group="recency", unit="days",
                    description="days since the last activity event (the churn definition's "
                                "types)"),
        FeatureSpec(name="days_since_last_order", group="recency", unit="days", requires=o,
                    description="days since the last order"),
        FeatureSpec(name="events_30d", group="frequency", unit="count",
                    description="events of any type in the last 30 days"),
        FeatureSpec(name="events_90d", group="frequency", unit="count",
                    description="events of any type in the last 90 days"),
        FeatureSpec(name="orders_total", group="frequency", unit="count", requires=o,
                    description="orders before the cutoff, all time"),
        FeatureSpec(name="orders_in_lookback", group="frequency", unit="count", requires=o,
                    description="orders within the churn definition's lookback window"),
        FeatureSpec(name="order_days_total", group="frequency", unit="count", requires=o,
                    description="distinct days with at least one order, all time"),
        FeatureSpec(name="order_amount_sum", group="monetary", unit="amount", requires=o,
                    description="total order amount, all time"),
        FeatureSpec(name="order_amount_mean", group="monetary", unit="amount", requires=o,
                    description="mean order amount"),
        FeatureSpec(name="order_amount_max", group="monetary", unit="amount", requires=o,
                    description="largest order amount"),
    ]
    for w in WINDOWS:
        specs += [
            FeatureSpec(name=f"orders_{w}d", group="windows", unit="count", requires=o,
                        description=f"orders in the last {w} days"),
            FeatureSpec(name=f"orders_prev_{w}d", group="windows", unit="count", requires=o,
                        description=f"orders in the {w} days before the last {w} days"),
            FeatureSpec(name=f"orders_trend_{w}d", group="windows", unit="ratio", requires=o,
                        description=f"(orders in the last {w} days + 1) / (orders in the {w} "
                                    "days before + 1); below 1 means slowing down"),
            FeatureSpec(name=f"spend_{w}d", group="windows", unit="amount", requires=o,
                        description=f"order amount in the last {w} days"),
            FeatureSpec(name=f"spend_prev_{w}d", group="windows", unit="amount", requires=o,
                        description=f"order amount in the {w} days before the last {w} days"),
            FeatureSpec(name=f"spend_trend_{w}d", group="windows", unit="ratio", requires=o,
                        description=f"(spend in the last {w} days + 1) / (spend in the {w} days "
                                    "before + 1)"),
        ]
    specs += [
        FeatureSpec(name="order_gap_mean_days", group="gaps", unit="days", requires=o,
                    description="mean gap in days between consecutive order days"),
        FeatureSpec(name="order_gap_std_days", group="gaps", unit="days", requires=o,
                    description="standard deviation (sample) of the gaps between order days"),
        FeatureSpec(name="order_gap_last_days", group="gaps", unit="days", requires=o,
                    description="gap in days between the last two order days"),
        FeatureSpec(name="overdue_ratio", group="gaps", unit="ratio", requires=o,
                    description="days since the last order / mean gap between order days; "
                                "above 1 means the next order is overdue"),
    ]
    for w in BROWSE_WINDOWS:
        specs += [
            FeatureSpec(name=f"views_{w}d", group="browsing", unit="count", requires=("view",),
                        description=f"product views in the last {w} days"),
            FeatureSpec(name=f"searches_{w}d", group="browsing", unit="count",
                        requires=("search",), description=f"searches in the last {w} days"),
            FeatureSpec(name=f"visits_{w}d", group="browsing", unit="count", requires=("visit",),
                        description=f"visits in the last {w} days"),
            FeatureSpec(name=f"sessions_{w}d", group="browsing", unit="count",
                        requires=("@session_id",),
                        description=f"distinct sessions with any event in the last {w} days"),
        ]
    c = CART_WINDOW
    specs += [
        FeatureSpec(name="days_since_last_visit", group="browsing", unit="days",
                    requires=("visit",), description="days since the last visit"),
        FeatureSpec(name=f"cart_adds_{c}d", group="cart", unit="count", requires=("cart_add",),
                    description=f"items added to the cart in the last {c} days"),
        FeatureSpec(name=f"cart_removes_{c}d", group="cart", unit="count",
                    requires=("cart_remove",),
                    description=f"items removed from the cart in the last {c} days"),
        FeatureSpec(name=f"cart_abandonment_{c}d", group="cart", unit="share",
                    requires=("cart_add",),
                    description=f"share of cart additions in the last {c} days made in a session "
                                "(or, without a session id, a day) with no order"),
        FeatureSpec(name="order_categories_distinct", group="categories", unit="count",
                    requires=o, description="distinct categories ordered from"),
        FeatureSpec(name="order_category_hhi", group="categories", unit="index", requires=o,
                    description="concentration of orders across categories (Herfindahl index: "
                                "1 = a single category)"),
        FeatureSpec(name="returns_total", group="returns", unit="count", requires=("return",),
                    description="returns, all time"),
        FeatureSpec(name="return_rate", group="returns", unit="ratio",
                    requires=("return", "order"), description="returns / orders"),
        FeatureSpec(name="reviews_total", group="reviews", unit="count", requires=("review",),
                    description="reviews written"),
        FeatureSpec(name="review_rating_mean", group="reviews", unit="rating",
                    requires=("review",), description="mean rating given in reviews (1-5)"),
        FeatureSpec(name="review_rating_last", group="reviews", unit="rating",
                    requires=("review",), description="rating of the most recent rated review"),
        FeatureSpec(name="review_low_share", group="reviews", unit="share", requires=("review",),
                    description="share of rated reviews with 1 or 2 stars"),
        FeatureSpec(name="days_since_last_review", group="reviews", unit="days",
                    requires=("review",), description="days since the last review"),
        FeatureSpec(name="tickets_total", group="tickets", unit="count",
                    requires=("support_ticket",), description="support tickets opened"),
        FeatureSpec(name="tickets_unresolved", group="tickets", unit="count",
                    requires=("support_ticket",),
                    description="support tickets not yet resolved at the cutoff"),
        FeatureSpec(name="days_since_last_ticket", group="tickets", unit="days",
                    requires=("support_ticket",), description="days since the last support ticket"),
        FeatureSpec(name="oldest_unresolved_ticket_days", group="tickets", unit="days",
                    requires=("support_ticket",),
                    description="days the oldest unresolved support ticket has been open"),
        FeatureSpec(name="coupons_redeemed", group="coupons", unit="count",
                    requires=("coupon_redeem",), description="coupons redeemed, all time"),
        FeatureSpec(name="coupons_redeemed_90d", group="coupons", unit="count",
                    requires=("coupon_redeem",),
                    description="coupons redeemed in the last 90 days"),
        FeatureSpec(name="tenure_days", group="tenure", unit="days",
                    description="days since sign-up (or since the first event, if earlier or "
                                "no sign-up date is known)"),
    ]
    return specs


FEATURES: dict[str, FeatureSpec] = {spec.name: spec for spec in _specs()}

ATTRIBUTE_PREFIX = "attr_"


def feature_spec(name: str) -> FeatureSpec:
    """The spec of a registered feature, or a generic one for a user-attribute column."""
    if name in FEATURES:
        return FEATURES[name]
    if name.startswith(ATTRIBUTE_PREFIX):
        attribute = name[len(ATTRIBUTE_PREFIX):]
        return FeatureSpec(name=name, group="attributes", unit="value",
                           description=f"user attribute '{attribute}' from the users file")
    raise KeyError(f"{name!r} is not a churnguard feature; see churnguard.features.FEATURES")
