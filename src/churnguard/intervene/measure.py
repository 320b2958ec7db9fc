"""Measure a campaign against its own randomised control group, once its window has passed.

For every customer of the campaign the outcome comes from the events table: *retained* when an
event of the outcome type (default: an order) falls in [assigned_at, assigned_at + window), and
*revenue* the sum of the order amounts in that window. The store's ``campaigns`` table holds the
assignment (action, is_control, assigned_at, cost), so a measurement needs nothing else; the
same two tables are what the next uplift model trains on, which closes the loop.

Per action and per risk tier, treatment is compared with control:

* **incremental retention** = retention(treated) - retention(control), a difference of
  independent proportions, with Newcombe's hybrid score interval (Newcombe 1998, "Interval
  estimation for the difference between independent proportions: comparison of eleven methods",
  Statistics in Medicine 17:873-890, method 10), built from Wilson's score intervals (Wilson
  1927, JASA 22:209-212). It keeps close to nominal coverage where the Wald interval does not
  (small groups, rates near 0 or 1).
* **incremental net revenue per treated customer** = mean(revenue - cost | treated)
  - mean(revenue - cost | control), with Welch's interval for a difference of means with unequal
  variances (Welch 1947, Biometrika 34:28-35; degrees of freedom by Satterthwaite 1946).

Because assignment is random, each difference estimates the average effect of the action on the
customers of the campaign who received it. Totals scale the every-action difference by the number
of treated customers.

A churnguard plan's campaign also knows each customer's churn score at planning time (``plan_rows
.p_churn``, before any contact), which predicts much of who keeps buying whatever the action. So
its groups also get **incremental_retention_adjusted**: the same difference with the score as a
covariate (least squares of retained on T, 1 - p_churn centred on the group's mean, and their
product: Lin 2013, "Agnostic notes on regression adjustments to experimental data", Ann. Appl.
Stat. 7(1)), with a heteroskedasticity-robust (HC1) normal interval. Randomisation keeps it
unbiased; the part of the outcome the score explains leaves its interval (:func:`adjusted_difference`).

>>> import datetime as dt
>>> from churnguard.store import Store
>>> store, day = Store.in_memory(), dt.datetime(2025, 3, 1, 9)
>>> _ = store.con.execute(  # 100 customers get coupon_10, 100 are held out
...     "INSERT INTO campaigns SELECT 'c1', 'u' || i, if(i % 2 = 0, 'coupon_10', 'none'), $day, "
...     "i % 2 = 1, 0.0, 'email', 'b' FROM range(200) t(i)", {"day": day})
>>> _ = store.con.execute(  # every treated customer orders, 20 of the controls do
...     "INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) "
...     "SELECT 'e' || i, 'u' || i, $ts, 'order', 20.0, 'b' FROM range(200) t(i) "
...     "WHERE i % 2 = 0 OR i % 10 = 1", {"ts": day + dt.timedelta(days=3)})
>>> _ = store.con.execute(  # the newest event: the 90-day window is over
...     "INSERT INTO events (event_id, user_id, ts, type, batch_id) "
...     "VALUES ('v', 'x', $ts, 'visit', 'b')", {"ts": day + dt.timedelta(days=100)})
>>> m = measure_campaign(store, campaign_id="c1")
>>> g = m.group("coupon_10")
>>> g.retention_treated, g.retention_control, round(g.incremental_retention, 2)
(1.0, 0.2, 0.8)
>>> m.total_incremental_retained
80.0
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from churnguard.campaigns import observed_until as data_horizon
from churnguard.config import NO_ACTION
from churnguard.cutoffs import LabelError, label_window_end, to_cutoff
from churnguard.errors import ChurnguardError
from churnguard.intervene.metrics import robust_se
from churnguard.store import Store

__all__ = ["ALL", "CampaignMeasurement", "GroupMeasurement", "MeasurementError",
           "adjusted_difference", "campaign_outcomes", "latest_measurement", "measure_campaign", "newcombe_interval",
           "save_measurement", "welch_interval", "wilson_interval"]

# Label of a group pooled over every action or every tier.
ALL = "all"
# Below this many customers in either arm a group gets no confidence interval.
MIN_GROUP_SIZE = 30
_KNOWN_SHOWN = 5


class MeasurementError(ChurnguardError, ValueError):
    """The campaign cannot be measured (unknown, no control group, window not yet over)."""

    code = "campaign_not_measurable"


# -- intervals ------------------------------------------------------------------------------------
def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, e.g. 0.95, got {confidence!r}")
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(x: np.ndarray, n: np.ndarray, *, confidence: float = 0.95
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson's score interval for a proportion x / n (Wilson 1927; Newcombe 1998, method 3):

        (2 n p + z^2 -+ z sqrt(z^2 + 4 n p (1 - p))) / (2 (n + z^2))

    >>> lo, hi = wilson_interval(np.array([81]), np.array([263]))
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
    (0.2553, 0.3662)
    """
    z = _z(confidence)
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    p = x / n
    centre = 2 * n * p + z * z
    half = z * np.sqrt(z * z + 4 * n * p * (1 - p))
    denom = 2 * (n + z * z)
    return (centre - half) / denom, (centre + half) / denom


def newcombe_interval(x1: np.ndarray, n1: np.ndarray, x2: np.ndarray, n2: np.ndarray, *,
                      confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for p1 - p2 (Newcombe 1998, method 10):

        L = d - sqrt((p1 - l1)^2 + (u2 - p2)^2),   U = d + sqrt((u1 - p1)^2 + (p2 - l2)^2)

    with d = p1 - p2 and (l_i, u_i) the Wilson interval of p_i. The paper's Table II example (a):

    >>> lo, hi = newcombe_interval(np.array([56]), np.array([70]), np.array([48]), np.array([80]))
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
    (0.0524, 0.3339)
    """
    p1 = np.asarray(x1, dtype=float) / np.asarray(n1, dtype=float)
    p2 = np.asarray(x2, dtype=float) / np.asarray(n2, dtype=float)
    l1, u1 = wilson_interval(x1, n1, confidence=confidence)
    l2, u2 = wilson_interval(x2, n2, confidence=confidence)
    d = p1 - p2
    return (d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def welch_interval(mean1: np.ndarray, var1: np.ndarray, n1: np.ndarray, mean2: np.ndarray,
                   var2: np.ndarray, n2: np.ndarray, *, confidence: float = 0.95
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Welch's interval for mean1 - mean2 with unequal variances (Welch 1947): the difference
    +- t_{nu} sqrt(v1/n1 + v2/n2), nu by Welch-Satterthwaite. Zero spread gives the point.

    >>> lo, hi = welch_interval(np.array([10.0]), np.array([4.0]), np.array([50]),
    ...                         np.array([8.0]), np.array([9.0]), np.array([40]))
    >>> round(float(lo[0]), 3), round(float(hi[0]), 3)
    (0.897, 3.103)
    """
    _z(confidence)
    m1, v1, k1 = (np.asarray(a, dtype=float) for a in (mean1, var1, n1))
    m2, v2, k2 = (np.asarray(a, dtype=float) for a in (mean2, var2, n2))
    a, b = v1 / k1, v2 / k2
    se = np.sqrt(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (a * a / (k1 - 1) + b * b / (k2 - 1))
        t = np.where(se > 0, stats.t.ppf(0.5 + confidence / 2, np.where(se > 0, df, 1.0)), 0.0)
    d = m1 - m2
    return d - t * se, d + t * se


# -- results --------------------------------------------------------------------------------------
Interval = tuple[float, float]


@dataclass(frozen=True, kw_only=True)
class GroupMeasurement:
    """Treatment vs control for one action (or ``all`` actions) in one tier (or ``all`` tiers).

    Rates and means are None where an arm is empty; intervals are None below the minimum group
    size (``note`` says so). Revenue figures are per customer; ``incremental_retained`` and
    ``incremental_net_revenue_total`` scale the per-customer effect by ``n_treated``.
    """

    action: str
    tier: str
    n_treated: int
    n_control: int
    retained_treated: int
    retained_control: int
    retention_treated: float | None
    retention_control: float | None
    revenue_per_treated: float | None
    revenue_per_control: float | None
    cost_per_treated: float | None
    incremental_retention: float | None
    incremental_retention_ci: Interval | None
    incremental_net_revenue: float | None  # per treated customer, after costs
    incremental_net_revenue_ci: Interval | None
    incremental_retained: float | None
    incremental_retained_ci: Interval | None
    incremental_net_revenue_total: float | None
    incremental_net_revenue_total_ci: Interval | None
    note: str | None = None
    # The difference adjusted for the plan's churn score (module docstring); None for a campaign
    # without plan rows or a group below the minimum size.
    incremental_retention_adjusted: float | None = None
    incremental_retention_adjusted_ci: Interval | None = None


def _of_overall(name: str) -> property:
    """A campaign's total: attribute ``name`` of its every-action, every-tier group."""
    return property(lambda self: getattr(self.overall, name), doc=f"``overall.{name}``")


# The fields of a CampaignMeasurement that are timestamps (ISO strings in its JSON).
_TIMESTAMPS = ("measured_at", "assigned_from", "assigned_to", "window_end", "observed_until")


@dataclass(frozen=True, kw_only=True)
class CampaignMeasurement:
    """What ``measure_campaign`` found; ``to_dict`` is the JSON kept in ``measurements``."""

    campaign_id: str
    measured_at: dt.datetime
    outcome_type: str
    window_days: int
    confidence: float
    assigned_from: dt.datetime
    assigned_to: dt.datetime
    window_end: dt.datetime  # the last assignment + window: every window is over by then
    observed_until: dt.datetime
    tiers_from: str  # "plan" (risk tiers of the churnguard plan) or "none" (a single tier, all)
    control: str  # "matched" (control customers carry their planned action) or "pooled"
    n_treated: int
    n_control: int
    groups: tuple[GroupMeasurement, ...]
    notes: tuple[str, ...] = ()

    # -- the campaign as a whole (the every-action, every-tier group) ----------------------------
    @property
    def overall(self) -> GroupMeasurement:
        return self.group(ALL, ALL)

    total_incremental_retained = _of_overall("incremental_retained")  # float | None
    total_incremental_retained_ci = _of_overall("incremental_retained_ci")  # Interval | None
    total_incremental_net_revenue = _of_overall("incremental_net_revenue_total")  # float | None
    total_incremental_net_revenue_ci = _of_overall(
        "incremental_net_revenue_total_ci")  # Interval | None

    def group(self, action: str, tier: str = ALL) -> GroupMeasurement:
        for g in self.groups:
            if g.action == action and g.tier == tier:
                return g
        have = ", ".join(f"{g.action}/{g.tier}" for g in self.groups)
        raise KeyError(f"no group {action}/{tier} in campaign {self.campaign_id!r}; have {have}")

    def to_frame(self) -> pd.DataFrame:
        """One row per group, intervals as ``*_low`` / ``*_high`` columns (for reports)."""
        rows = []
        for g in self.groups:
            row: dict[str, Any] = {}
            for f in fields(GroupMeasurement):
                value = getattr(g, f.name)
                if f.name.endswith("_ci"):
                    base = f.name[:-3]
                    row[f"{base}_low"] = value[0] if value else None
                    row[f"{base}_high"] = value[1] if value else None
                else:
                    row[f.name] = value
            rows.append(row)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in _TIMESTAMPS:
            out[key] = getattr(self, key).isoformat()
        out["groups"] = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
                         for g in out["groups"]]
        out["notes"] = list(self.notes)
        out["totals"] = {
            "incremental_retained": self.total_incremental_retained,
            "incremental_retained_ci": _as_list(self.total_incremental_retained_ci),
            "incremental_net_revenue": self.total_incremental_net_revenue,
            "incremental_net_revenue_ci": _as_list(self.total_incremental_net_revenue_ci),
        }
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CampaignMeasurement:
        data = dict(data)
        data.pop("totals", None)
        for key in _TIMESTAMPS:
            data[key] = dt.datetime.fromisoformat(data[key])
        data["groups"] = tuple(
            GroupMeasurement(**{k: (tuple(v) if isinstance(v, list) else v)
                                for k, v in g.items()})
            for g in data["groups"])
        data["notes"] = tuple(data.get("notes", ()))
        return cls(**data)


def _as_list(interval: Interval | None) -> list[float] | None:
    return list(interval) if interval is not None else None


# -- outcomes (SQL) -------------------------------------------------------------------------------
def _outcome_sql(*, campaign_filter: str, control_action: str, tier: str, plan_join: str,
                 score: str = "NULL") -> str:
    """Per campaign row: the assignment and the outcome in its window. Customers with no event in
    the window are kept (not retained, revenue 0). ``score``: the plan's churn score column
    (``p_churn`` of the result), NULL without a plan."""
    return f"""
    WITH assigned AS (
        SELECT c.campaign_id, c.user_id, c.is_control, c.assigned_at,
               coalesce(c.cost, 0.0) AS cost,
               CASE WHEN c.is_control THEN {control_action} ELSE c.action END AS action,
               {tier} AS tier, CAST({score} AS DOUBLE) AS p_churn
        FROM campaigns c {plan_join}
        WHERE {campaign_filter}),
    outcomes AS (
        SELECT a.campaign_id, a.user_id,
               bool_or(e.type = $outcome_type) AS retained,
               sum(CASE WHEN e.type = 'order' THEN coalesce(e.amount, 0.0) ELSE 0.0 END) AS revenue
        FROM assigned a
        JOIN events e ON e.user_id = a.user_id AND e.ts >= a.assigned_at
                     AND e.ts < a.assigned_at + to_days(CAST($window_days AS INTEGER))
        WHERE e.type IN ($outcome_type, 'order')
        GROUP BY a.campaign_id, a.user_id)
    SELECT a.campaign_id, a.user_id, a.is_control, a.action, a.tier, a.assigned_at, a.cost,
           a.p_churn, coalesce(o.retained, false) AS retained,
           coalesce(o.revenue, 0.0) AS revenue,
           coalesce(o.revenue, 0.0) - a.cost AS net
    FROM assigned a LEFT JOIN outcomes o USING (campaign_id, user_id)"""


def campaign_outcomes(store: Store, *, campaign_ids: list[str] | None = None,
                      outcome_type: str = "order", window_days: int = 90) -> pd.DataFrame:
    """Per campaign row: campaign_id, user_id, is_control, action, assigned_at, cost, retained,
    revenue and net (revenue - cost) over [assigned_at, assigned_at + window).

    The labelled rows an uplift model trains on; windows still open are included as they stand,
    so filter on ``assigned_at + window <= newest event`` before training.
    """
    _check_window(window_days)
    where = "TRUE" if campaign_ids is None else "list_contains($ids, c.campaign_id)"
    sql = _outcome_sql(campaign_filter=where, control_action="c.action", tier=f"'{ALL}'",
                       plan_join="")
    params: dict[str, Any] = {"outcome_type": outcome_type, "window_days": window_days}
    if campaign_ids is not None:
        params["ids"] = list(campaign_ids)
    frame = store.con.execute(sql + " ORDER BY a.campaign_id, a.user_id", params).df()
    return frame.drop(columns=["tier", "p_churn"])


def _check_window(window_days: int) -> None:
    if isinstance(window_days, bool) or not isinstance(window_days, int | np.integer) \
            or window_days < 1:
        raise MeasurementError(f"window_days must be a whole number of days >= 1, got "
                               f"{window_days!r}")


# -- measurement ----------------------------------------------------------------------------------
def _known_campaigns(store: Store) -> str:
    rows = store.con.execute(
        "SELECT campaign_id FROM campaigns GROUP BY campaign_id "
        "ORDER BY max(assigned_at) DESC, campaign_id").fetchall()
    if not rows:
        return ("the store holds no campaigns; ingest them (`churnguard ingest campaigns FILE`) "
                "or plan one (`churnguard plan`)")
    shown = ", ".join(r[0] for r in rows[:_KNOWN_SHOWN])
    more = f" and {len(rows) - _KNOWN_SHOWN} more" if len(rows) > _KNOWN_SHOWN else ""
    return f"known campaigns (newest first): {shown}{more}"


def _campaign_facts(store: Store, campaign_id: str) -> dict[str, Any]:
    row = store.con.execute(
        f"""SELECT count(*), count_if(is_control),
                   count_if(NOT is_control AND action <> '{NO_ACTION}'),
                   count_if(NOT is_control AND action = '{NO_ACTION}'),
                   min(assigned_at), max(assigned_at)
            FROM campaigns WHERE campaign_id = ?""", [campaign_id]).fetchall()[0]
    keys = ("rows", "control", "treated", "untreated", "first", "last")
    return dict(zip(keys, row, strict=True))


def _plan_facts(store: Store, campaign_id: str) -> tuple[int, int, int]:
    """(rows of the campaign in plan_rows, control rows among the campaign's customers, those of
    them whose planned action is known)."""
    planned = store.con.execute("SELECT count(*) FROM plan_rows WHERE campaign_id = ?",
                                [campaign_id]).fetchall()[0][0]
    control, matched = store.con.execute(
        f"""SELECT count(*),
                   coalesce(count_if(p.action IS NOT NULL AND p.action <> '{NO_ACTION}'), 0)
            FROM campaigns c LEFT JOIN plan_rows p
              ON p.campaign_id = c.campaign_id AND p.user_id = c.user_id
            WHERE c.campaign_id = ? AND c.is_control""", [campaign_id]).fetchall()[0]
    return planned, control, matched


def _fmt(ts: dt.datetime) -> str:
    return ts.strftime("%Y-%m-%d %H:%M")


def measure_campaign(store: Store, *, campaign_id: str, outcome_type: str = "order",
                     window_days: int = 90, as_of: dt.datetime | dt.date | str | None = None,
                     confidence: float = 0.95, min_group_size: int = MIN_GROUP_SIZE
                     ) -> CampaignMeasurement:
    """Measure ``campaign_id`` against its control group (module docstring: estimands, CIs).

    ``as_of`` (default: the newest event in the store) is the moment the measurement is taken;
    every customer's window must be over by then and by the end of the data (the newest event,
    or the newest ingestion of events when later: :func:`churnguard.campaigns.observed_until`). Customers count as
    assigned (intention to treat), whether or not a delivery reached them. Nothing is written;
    :func:`save_measurement` keeps the result.
    """
    _check_window(window_days)
    _z(confidence)  # fails fast on a confidence outside (0, 1)
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int) \
            or min_group_size < 2:
        raise MeasurementError(f"min_group_size must be a whole number >= 2, got "
                               f"{min_group_size!r}")
    facts = _measurable_campaign(store, campaign_id)
    observed_until, newest = _observed_until(store, outcome_type, as_of)
    window_end = label_window_end(facts["last"], int(window_days))
    if window_end > observed_until:
        reach = ("the newest event in the store" if observed_until == newest
                 else "the measurement's as_of" if observed_until == to_cutoff(as_of)
                 else "the newest ingestion of events")
        raise MeasurementError(
            f"campaign {campaign_id!r} cannot be measured yet: the {window_days}-day window of "
            f"its last assignment ({_fmt(facts['last'])}) ends at {_fmt(window_end)}, but "
            f"{reach} is at {_fmt(observed_until)}; measure it from {_fmt(window_end)} on, "
            f"once the events up to then are ingested")
    design = _design(store, campaign_id, untreated=facts["untreated"])
    aggregates, customers = _group_aggregates(store, campaign_id, design,
                                              outcome_type=outcome_type,
                                              window_days=int(window_days))
    groups = _compare(aggregates, control=design.control, confidence=confidence,
                      min_group_size=min_group_size, customers=customers)
    overall = next(g for g in groups if g.action == ALL and g.tier == ALL)
    return CampaignMeasurement(
        campaign_id=campaign_id, measured_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        outcome_type=outcome_type, window_days=int(window_days), confidence=confidence,
        assigned_from=facts["first"], assigned_to=facts["last"], window_end=window_end,
        observed_until=observed_until, tiers_from=design.tiers_from, control=design.control,
        n_treated=overall.n_treated, n_control=overall.n_control, groups=tuple(groups),
        notes=design.notes)


def _measurable_campaign(store: Store, campaign_id: str) -> dict[str, Any]:
    """The campaign's facts (:func:`_campaign_facts`), once it is known to have customers, a
    control group and someone treated."""
    facts = _campaign_facts(store, campaign_id)
    if facts["rows"] == 0:
        planned = store.con.execute("SELECT count(*) FROM plans WHERE campaign_id = ?",
                                    [campaign_id]).fetchall()[0][0]
        if planned:
            raise MeasurementError(
                f"campaign {campaign_id!r} was planned but no customer of it is recorded as "
                f"assigned in the campaigns table; deliver the plan (`churnguard deliver`) first")
        raise MeasurementError(f"unknown campaign {campaign_id!r}; {_known_campaigns(store)}")
    if facts["control"] == 0:
        raise MeasurementError(
            f"campaign {campaign_id!r} has no control group (no customer with is_control = true "
            f"among its {facts['rows']} rows); measuring an effect needs a randomised control "
            f"group held out of the campaign: plan campaigns with intervene.control_share > 0, "
            f"or ingest the held-out customers with is_control = true")
    if facts["treated"] == 0:
        raise MeasurementError(
            f"campaign {campaign_id!r} has no treated customer (every row is a control or "
            f"action '{NO_ACTION}'); there is nothing to measure")
    return facts


def _observed_until(store: Store, outcome_type: str, as_of: object
                    ) -> tuple[dt.datetime, dt.datetime]:
    """(the moment the measurement sees the events up to, the newest event): ``as_of``, but
    never past what the data covers (:func:`churnguard.campaigns.observed_until`: the newest
    event, or the start of the newest ingestion of events when that is later)."""
    n_events, newest = store.con.execute(
        "SELECT count_if(type = ?), max(ts) FROM events", [outcome_type]).fetchall()[0]
    if newest is None:
        raise MeasurementError("the store holds no events; ingest the events that cover the "
                               "campaign's window (`churnguard ingest events FILE`)")
    if n_events == 0:
        raise MeasurementError(
            f"the store holds no events of type {outcome_type!r}, the outcome to measure; pick "
            f"an outcome type the events carry (e.g. 'order')")
    if as_of is None:
        return newest, newest
    try:
        cutoff = to_cutoff(as_of)
    except LabelError as exc:
        raise MeasurementError(f"as_of: {exc}") from None
    return data_horizon(store, cutoff), newest


@dataclass(frozen=True, kw_only=True)
class _Design:
    """How a campaign's customers are grouped: by the plan's risk tiers or not, and against a
    matched or a pooled control group."""

    planned: int  # rows of the campaign in plan_rows
    tiers_from: str
    control: str
    notes: tuple[str, ...]


def _design(store: Store, campaign_id: str, *, untreated: int) -> _Design:
    notes: list[str] = []
    planned, n_control_rows, matched = _plan_facts(store, campaign_id)
    control = "matched" if planned and matched == n_control_rows else "pooled"
    if planned and control == "pooled":
        notes.append(
            "control customers carry no planned action, so every action is compared with the "
            "whole control group of its tier; this is unbiased only if actions were assigned at "
            "random within tiers")
    if untreated:
        notes.append(f"{untreated} customers neither treated nor in the control group "
                     f"(action '{NO_ACTION}') are left out")
    return _Design(planned=planned, tiers_from="plan" if planned else "none", control=control,
                   notes=tuple(notes))


def _group_aggregates(store: Store, campaign_id: str, design: _Design, *, outcome_type: str,
                      window_days: int) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Per arm (control or not), action and tier, and pooled over actions and tiers: the counts
    and means that :func:`_compare` turns into differences and intervals."""
    planned = design.planned
    plan_join = ("LEFT JOIN plan_rows p ON p.campaign_id = c.campaign_id AND p.user_id = c.user_id"
                 if planned else "")
    sql = _outcome_sql(
        campaign_filter=f"c.campaign_id = $campaign_id AND (c.is_control OR c.action <> "
                        f"'{NO_ACTION}')",
        control_action="p.action" if design.control == "matched" else "NULL",
        tier="coalesce(p.risk_tier, 'unknown')" if planned else f"'{ALL}'",
        plan_join=plan_join, score="p.p_churn" if planned else "NULL")
    # One tier only: its rows would repeat the every-tier rows, so only those are kept.
    multi_tier = bool(planned) and store.con.execute(
        "SELECT count(DISTINCT coalesce(risk_tier, 'unknown')) > 1 FROM plan_rows "
        "WHERE campaign_id = ?", [campaign_id]).fetchall()[0][0]
    params = {"campaign_id": campaign_id, "outcome_type": outcome_type,
              "window_days": window_days}
    # The per-customer outcomes once: the group aggregates and the score-adjusted figures
    # (_adjusted_groups) both read them.
    rows = store.con.sql(
        f"SELECT is_control, action, tier, p_churn, retained, revenue, cost, net FROM ({sql})",
        params=params).to_arrow_table()
    with store.registered(rows, "measured_rows") as view:
        groups = store.con.execute(f"""
            SELECT is_control,
                   CASE WHEN grouping(action) = 1 THEN '{ALL}' ELSE action END AS action,
                   CASE WHEN grouping(tier) = 1 THEN '{ALL}' ELSE tier END AS tier,
                   count(*) AS n, count_if(retained) AS retained,
                   avg(revenue) AS revenue, avg(cost) AS cost, avg(net) AS net,
                   coalesce(var_samp(net), 0.0) AS net_var
            FROM {view}
            GROUP BY GROUPING SETS ((is_control, action, tier), (is_control, tier),
                                   (is_control, action), (is_control))
            HAVING (grouping(action) = 1 OR action IS NOT NULL)
               AND (grouping(tier) = 1 OR $multi_tier)""", {"multi_tier": multi_tier}).df()
    customers = (rows.select(["is_control", "action", "tier", "p_churn", "retained"]).to_pandas()
                 if planned else None)
    return groups, customers


def adjusted_difference(retained: np.ndarray, treated: np.ndarray, p_churn: np.ndarray, *,
                        confidence: float = 0.95) -> tuple[float, Interval] | None:
    """Treated minus control retention adjusted for the churn score (module docstring): the
    coefficient of T in the least squares of ``retained`` on 1, T, g and T g, with g = 1 -
    ``p_churn`` centred on its mean, and its HC1 normal interval (``metrics.robust_se``). None
    when an arm is empty, a score is missing or the rows cannot tell the coefficient.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.random(4000)  # the score explains much of who keeps buying
    >>> t = rng.random(4000) < 0.5
    >>> y = rng.random(4000) < 1.0 - p + 0.04 * t * p
    >>> est, (low, high) = adjusted_difference(y, t, p)
    >>> plain = y[t].mean() - y[~t].mean()
    >>> plain_half = 1.96 * np.sqrt(y[t].var() / t.sum() + y[~t].var() / (~t).sum())
    >>> round(est, 3), round(float((high - low) / 2 / plain_half), 2)  # true: +0.02
    (0.018, 0.83)
    """
    y = np.asarray(retained, dtype=float)
    t = np.asarray(treated, dtype=bool)
    g = 1.0 - np.asarray(p_churn, dtype=float)
    n = len(y)
    if t.all() or not t.any() or not np.isfinite(g).all() or n < 5:
        return None
    g = g - g.mean()
    design = np.column_stack([np.ones(n), t, g, t * g])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    (se,) = robust_se(design, y, np.ones(n), coef, columns=[1])
    if not np.isfinite(se):
        return None
    half = _z(confidence) * se
    return float(coef[1]), (float(coef[1] - half), float(coef[1] + half))


def _adjusted_groups(customers: pd.DataFrame | None, *, control: str, confidence: float
                     ) -> dict[tuple[str, str], tuple[float, Interval]]:
    """:func:`adjusted_difference` of every (action, tier) group ``_compare`` forms, ``all``
    included, each treated group against the control rows it is compared with there."""
    if customers is None or customers.empty or customers["p_churn"].isna().any():
        return {}
    treated = customers[~customers["is_control"]]
    controls = customers[customers["is_control"]]
    out = {}
    for action in [ALL, *sorted(treated["action"].dropna().unique())]:
        for tier in [ALL, *sorted(treated["tier"].dropna().unique())]:
            t = treated[((treated["action"] == action) | (action == ALL))
                        & ((treated["tier"] == tier) | (tier == ALL))]
            c = controls[((controls["action"] == action) | (action == ALL) | (control != "matched"))
                         & ((controls["tier"] == tier) | (tier == ALL))]
            if t.empty or c.empty:
                continue
            rows = pd.concat([t, c])
            found = adjusted_difference(rows["retained"].to_numpy(dtype=float),
                                        ~rows["is_control"].to_numpy(dtype=bool),
                                        rows["p_churn"].to_numpy(dtype=float),
                                        confidence=confidence)
            if found is not None:
                out[(action, tier)] = found
    return out


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _interval(lo: float, hi: float, ok: bool) -> Interval | None:
    return (float(lo), float(hi)) if ok and np.isfinite(lo) and np.isfinite(hi) else None


def _compare(frame: pd.DataFrame, *, control: str, confidence: float,
             min_group_size: int, customers: pd.DataFrame | None = None
             ) -> list[GroupMeasurement]:
    """Pair each treated group with its control group and compute the differences and intervals
    (vectorised over the handful of groups; the per-customer work was done in SQL); with a
    plan's ``customers`` (their scores), also the adjusted differences."""
    adjusted = _adjusted_groups(customers, control=control, confidence=confidence)
    treated = frame[~frame["is_control"]].drop(columns="is_control")
    controls = frame[frame["is_control"]].drop(columns="is_control")
    # Matched: control customers of the same planned action and tier. Pooled: every control
    # customer of the tier stands in for each action.
    treated = treated.assign(control_action=treated["action"] if control == "matched" else ALL)
    treated.loc[treated["action"] == ALL, "control_action"] = ALL
    pairs = treated.merge(controls, how="left", left_on=["control_action", "tier"],
                          right_on=["action", "tier"], suffixes=("_t", "_c"))
    pairs = pairs.rename(columns={"action_t": "action"}).drop(columns=["action_c",
                                                                       "control_action"])
    pairs["n_c"] = pairs["n_c"].fillna(0).astype(int)
    pairs["retained_c"] = pairs["retained_c"].fillna(0).astype(int)
    n1, x1 = pairs["n_t"].to_numpy(float), pairs["retained_t"].to_numpy(float)
    n2, x2 = pairs["n_c"].to_numpy(float), pairs["retained_c"].to_numpy(float)
    has = n2 > 0
    safe2 = np.where(has, n2, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r_lo, r_hi = newcombe_interval(x1, n1, x2, safe2, confidence=confidence)
        v_lo, v_hi = welch_interval(pairs["net_t"].to_numpy(float),
                                    pairs["net_var_t"].to_numpy(float), n1,
                                    pairs["net_c"].fillna(0).to_numpy(float),
                                    pairs["net_var_c"].fillna(0).to_numpy(float), safe2,
                                    confidence=confidence)
    big = (n1 >= min_group_size) & (n2 >= min_group_size)
    out = []
    for j, row in enumerate(pairs.itertuples(index=False)):
        n_t, n_c = int(row.n_t), int(row.n_c)
        note = None
        if n_c == 0:
            note = "no control customers in this group: no comparison"
        elif not big[j]:
            note = (f"too few customers for a confidence interval (treated {n_t}, control "
                    f"{n_c}; at least {min_group_size} each)")
        d_ret = x1[j] / n1[j] - x2[j] / n2[j] if has[j] else None
        d_net = (row.net_t - row.net_c) if has[j] else None
        ret_ci = _interval(r_lo[j], r_hi[j], bool(big[j]))
        net_ci = _interval(v_lo[j], v_hi[j], bool(big[j]))
        out.append(GroupMeasurement(
            action=row.action, tier=row.tier, n_treated=n_t, n_control=n_c,
            retained_treated=int(row.retained_t), retained_control=int(row.retained_c),
            retention_treated=_num(x1[j] / n1[j]),
            retention_control=_num(x2[j] / n2[j]) if has[j] else None,
            revenue_per_treated=_num(row.revenue_t),
            revenue_per_control=_num(row.revenue_c) if has[j] else None,
            cost_per_treated=_num(row.cost_t),
            incremental_retention=_num(d_ret), incremental_retention_ci=ret_ci,
            incremental_net_revenue=_num(d_net), incremental_net_revenue_ci=net_ci,
            incremental_retained=_num(d_ret * n_t) if d_ret is not None else None,
            incremental_retained_ci=(ret_ci[0] * n_t, ret_ci[1] * n_t) if ret_ci else None,
            incremental_net_revenue_total=_num(d_net * n_t) if d_net is not None else None,
            incremental_net_revenue_total_ci=(net_ci[0] * n_t, net_ci[1] * n_t) if net_ci
            else None,
            note=note,
            incremental_retention_adjusted=(adjusted[(row.action, row.tier)][0]
                                            if big[j] and (row.action, row.tier) in adjusted
                                            else None),
            incremental_retention_adjusted_ci=(adjusted[(row.action, row.tier)][1]
                                               if big[j] and (row.action, row.tier) in adjusted
                                               else None)))
    # Reports read best in a fixed order: actions by name with "all" last, tiers likewise.
    return sorted(out, key=lambda g: (g.action == ALL, g.action, g.tier == ALL, g.tier))


# -- store ----------------------------------------------------------------------------------------
def save_measurement(store: Store, measurement: CampaignMeasurement) -> None:
    """Append the measurement to ``measurements`` (earlier ones stay: a rerun adds a row)."""
    with store.transaction() as con:
        con.execute("INSERT INTO measurements VALUES (?, ?, ?)",
                    [measurement.campaign_id, measurement.measured_at, measurement.to_json()])


def latest_measurement(store: Store, campaign_id: str) -> CampaignMeasurement | None:
    """The newest saved measurement of ``campaign_id``, or None when it was never measured."""
    rows = store.con.execute(
        "SELECT result FROM measurements WHERE campaign_id = ? ORDER BY measured_at DESC LIMIT 1",
        [campaign_id]).fetchall()
    return CampaignMeasurement.from_dict(json.loads(rows[0][0])) if rows else None
