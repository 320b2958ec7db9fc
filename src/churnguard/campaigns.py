"""Stored campaigns and plans, read back: whether one exists, a plan with its summary, the
newest plans, and how many messages each campaign delivered.

Plans are written by :func:`churnguard.intervene.plan.save_plan` (``plans``, ``plan_rows`` and
the campaign in ``campaigns``); deliveries by :mod:`churnguard.intervene.deliver`.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> plan_exists(store, "spring"), campaign_exists(store, "spring"), newest_plans(store, 5)
(False, False, [])
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from churnguard.store import Store

_PLAN = "SELECT campaign_id, created_at, as_of, budget, status, summary FROM plans"


@dataclass(frozen=True, kw_only=True)
class StoredPlan:
    campaign_id: str
    created_at: dt.datetime
    as_of: dt.datetime
    budget: float
    status: str
    summary: dict  # plan_summary's document; empty when the stored text is not one


def _plan(row: tuple) -> StoredPlan:
    campaign_id, created_at, as_of, budget, status, text = row
    try:
        summary = json.loads(text)
    except (TypeError, ValueError):
        summary = {}
    return StoredPlan(campaign_id=campaign_id, created_at=created_at, as_of=as_of, budget=budget,
                      status=status, summary=summary if isinstance(summary, dict) else {})


def plan_exists(store: Store, campaign_id: str) -> bool:
    """Whether a stored plan has this campaign id."""
    (n,) = store.con.execute("SELECT count(*) FROM plans WHERE campaign_id = ?",
                             [campaign_id]).fetchall()[0]
    return bool(n)


def campaign_exists(store: Store, campaign_id: str) -> bool:
    """Whether any campaign assignment (planned or ingested) has this campaign id."""
    (n,) = store.con.execute("SELECT count(*) FROM campaigns WHERE campaign_id = ?",
                             [campaign_id]).fetchall()[0]
    return bool(n)


def stored_plan(store: Store, campaign_id: str) -> StoredPlan | None:
    rows = store.con.execute(_PLAN + " WHERE campaign_id = ?", [campaign_id]).fetchall()
    return _plan(rows[0]) if rows else None


def newest_plans(store: Store, limit: int) -> list[StoredPlan]:
    """The newest ``limit`` plans, newest first."""
    return [_plan(r) for r in store.con.execute(
        _PLAN + " ORDER BY created_at DESC, campaign_id DESC LIMIT ?", [limit]).fetchall()]


def delivered_counts(store: Store) -> dict[str, int]:
    """Messages delivered per campaign (campaigns with deliveries only)."""
    return {c: int(n) for c, n in store.con.execute(
        "SELECT campaign_id, count(*) FILTER (status = 'delivered') FROM deliveries "
        "GROUP BY campaign_id").fetchall()}


__all__ = ["StoredPlan", "campaign_exists", "delivered_counts", "newest_plans", "plan_exists",
           "stored_plan"]
