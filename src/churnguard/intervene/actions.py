"""Who may get which action, and what each action is expected to cost.

Eligibility (``InterveneConfig``), computed in DuckDB over the store:

* consent: a customer whose consent attribute (``contact_ok`` by default) is false gets no
  contact at all;
* cooldown: no contact within ``cooldown_days`` of their last contact (any campaign row that
  was not a control and not ``none``);
* coupons: at most ``max_coupons`` coupons per ``coupon_period_days``, and none for heavy
  returners (returns / orders in the last year above ``heavy_returner_share``).

Expected cost: a recommendation or an outreach costs its fixed ``cost`` per contact; a coupon
costs discount x the customer's expected basket, paid only when it is redeemed, so its expected
cost is that times the probability of an order in the window with the coupon.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from churnguard.config import Action, InterveneConfig
from churnguard.store import Store

__all__ = ["eligibility", "expected_costs", "FALSE_VALUES"]

FALSE_VALUES = ("false", "0", "no", "n", "f", "off")


def eligibility(store: Store, user_ids: Sequence[str], *, as_of: dt.datetime,
                config: InterveneConfig) -> pd.DataFrame:
    """Boolean frame (rows: ``user_ids`` in order; columns: the catalogue's actions) plus the
    reason columns ``no_consent``, ``cooling_down``, ``coupon_limit``, ``heavy_returner``."""
    coupons = [a.name for a in config.actions if a.kind == "coupon"]
    consent = ", ".join("'" + c.replace("'", "''") + "'" for c in config.consent_columns) or "''"
    no = ", ".join(f"'{v}'" for v in FALSE_VALUES)
    coupon_list = ", ".join("'" + c.replace("'", "''") + "'" for c in coupons) or "''"
    keys = pa.table({"user_id": pa.array([str(u) for u in user_ids], pa.string()),
                     "pos": pa.array(np.arange(len(user_ids)), pa.int64())})
    with store.registered(keys, "eligible_users") as view:
        frame = store.con.execute(
            f"""
            WITH consent AS (
                SELECT user_id, bool_or(lower(trim(value)) IN ({no})) AS refused
                FROM user_attributes WHERE name IN ({consent}) GROUP BY user_id
            ),
            contacts AS (
                SELECT user_id, max(assigned_at) AS last_contact,
                       count(*) FILTER (WHERE action IN ({coupon_list}) AND assigned_at
                             >= ?::TIMESTAMP - INTERVAL ({config.coupon_period_days}) DAY)
                           AS recent_coupons
                FROM campaigns
                WHERE NOT is_control AND action <> 'none' AND assigned_at < ?
                GROUP BY user_id
            ),
            returns AS (
                SELECT user_id, count(*) FILTER (WHERE type = 'return') AS n_returns,
                       count(*) FILTER (WHERE type = 'order') AS n_orders
                FROM events
                WHERE type IN ('order', 'return') AND ts < ?
                  AND ts >= ?::TIMESTAMP - INTERVAL 365 DAY
                  AND user_id IN (SELECT user_id FROM {view})
                GROUP BY user_id
            )
            SELECT k.pos,
                   coalesce(c.refused, false) AS no_consent,
                   coalesce(t.last_contact >= ?::TIMESTAMP
                            - INTERVAL ({config.cooldown_days}) DAY, false) AS cooling_down,
                   coalesce(t.recent_coupons, 0) >= {config.max_coupons} AS coupon_limit,
                   coalesce(r.n_returns > {config.heavy_returner_share} * r.n_orders
                            AND r.n_returns > 0, false) AS heavy_returner
            FROM {view} k
            LEFT JOIN consent c USING (user_id)
            LEFT JOIN contacts t USING (user_id)
            LEFT JOIN returns r USING (user_id)
            ORDER BY k.pos
            """, [as_of, as_of, as_of, as_of, as_of]).df()
    out = frame[["no_consent", "cooling_down", "coupon_limit", "heavy_returner"]].astype(bool)
    contact = ~(out["no_consent"] | out["cooling_down"]).to_numpy()
    coupon_ok = contact & ~(out["coupon_limit"] | out["heavy_returner"]).to_numpy()
    for action in config.actions:
        out[action.name] = coupon_ok if action.kind == "coupon" else contact
    out.index = pd.Index([str(u) for u in user_ids], name="user_id")
    return out


def _cost_of(action: Action, *, basket: np.ndarray, p_order: np.ndarray) -> np.ndarray:
    if action.kind == "coupon":
        return action.discount * basket * np.clip(p_order, 0.0, 1.0)
    return np.full(basket.shape, float(action.cost))


def expected_costs(actions: Sequence[Action], *, basket: np.ndarray,
                   p_order_with: pd.DataFrame) -> pd.DataFrame:
    """Expected spend per customer and action: fixed per contact, or coupon discount x basket x
    P(order in the window | the coupon).

    >>> from churnguard.config import DEFAULT_ACTIONS
    >>> p = pd.DataFrame({a.name: [0.5, 1.0] for a in DEFAULT_ACTIONS})
    >>> expected_costs(DEFAULT_ACTIONS, basket=np.array([40.0, 10.0]), p_order_with=p).round(2)
       recommendation  coupon_5  coupon_10  coupon_20  cs_outreach
    0            0.05       1.0        2.0        4.0          4.0
    1            0.05       0.5        1.0        2.0          4.0
    """
    return pd.DataFrame({a.name: _cost_of(a, basket=basket,
                                          p_order=p_order_with[a.name].to_numpy(dtype=float))
                         for a in actions})
