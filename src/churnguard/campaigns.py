"""Stored campaigns and plans, read back: whether one exists, a plan with its summary, the
newest plans, how many messages each campaign delivered, and which campaigns can be measured.

A campaign is *measurable* when it held out a control group and its outcome window has passed
by the *observed horizon* (:func:`observed_until`): only then are its outcomes fully observed.
The horizon is the moment a command works at (``--as-of``), but never past what the data
covers: the newest event, or the start of the newest ingestion of events if that is later (the
events known up to that moment were all loaded then; an as_of beyond it would count outcomes
nobody has seen yet). Without an as_of it is the newest event. Uplift training and measurement
use the same rule, so it is written once here.

Plans are written by :func:`churnguard.intervene.plan.save_plan` (``plans``, ``plan_rows`` and
the campaign in ``campaigns``); deliveries by :mod:`churnguard.intervene.deliver`.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> plan_exists(store, "spring"), campaign_exists(store, "spring"), newest_plans(store, 5)
(False, False, [])
>>> import datetime as dt
>>> day = dt.datetime(2025, 3, 1)
>>> _ = store.con.execute(
...     "INSERT INTO campaigns SELECT 'c1', 'u' || i, 'coupon_10', $day, i % 2 = 1, 0.0, "
...     "'email', 'b' FROM range(4) t(i)", {"day": day})
>>> newest_measurable_campaign(store, window_days=30) is None  # no events yet
True
>>> _ = store.con.execute("INSERT INTO events (event_id, user_id, ts, type, batch_id) "
...                       "VALUES ('e', 'u0', $ts, 'visit', 'b')",
...                       {"ts": day + dt.timedelta(days=30)})
>>> newest_measurable_campaign(store, window_days=30)
'c1'
>>> observed_until(store, day + dt.timedelta(days=90)) == day + dt.timedelta(days=30)
True
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from churnguard.cutoffs import label_window_end_sql
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


def observed_until(store: Store, as_of: dt.datetime | None = None) -> dt.datetime | None:
    """The moment up to which campaign outcomes are observed (see the module docstring):
    ``as_of``, capped at the data's end (the newest event, or the start of the newest ingestion
    of events when that is later); without ``as_of``, the newest event. None: no events."""
    newest, ingested = store.con.execute(
        "SELECT (SELECT max(ts) FROM events), "
        "(SELECT max(started_at) FROM ingest_batches WHERE kind = 'events' AND rows_added > 0)"
    ).fetchone()
    if newest is None or as_of is None:
        return newest
    return min(as_of, max(newest, ingested or newest))


def measurable_campaigns_sql(window_days: int) -> str:
    """A query of the campaign ids with a control group whose ``window_days`` outcome window
    ends on or before its one parameter (the observed horizon, :func:`observed_until`)."""
    window_end = label_window_end_sql("max(assigned_at)", window_days)
    return ("SELECT campaign_id FROM campaigns GROUP BY campaign_id "
            f"HAVING bool_or(is_control) AND {window_end} <= ?")


def newest_measurable_campaign(store: Store, *, window_days: int) -> str | None:
    """The id of the newest campaign (by its last assignment) that can be measured, or None."""
    newest_event = observed_until(store)
    row = store.con.execute(
        f"""
        WITH usable AS ({measurable_campaigns_sql(window_days)})
        SELECT campaign_id FROM campaigns JOIN usable USING (campaign_id)
        GROUP BY campaign_id ORDER BY max(assigned_at) DESC, campaign_id LIMIT 1
        """, [newest_event]).fetchone()
    return None if row is None else str(row[0])


__all__ = ["StoredPlan", "campaign_exists", "delivered_counts", "measurable_campaigns_sql",
           "newest_measurable_campaign", "newest_plans", "observed_until", "plan_exists",
           "stored_plan"]
