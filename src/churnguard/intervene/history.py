"""The campaign history the next steps read: which past campaigns can be measured (or learned
from), and what was planned before.

A campaign is *measurable* when it held out a control group and its outcome window has passed
before the newest event: only then are its outcomes fully observed. Uplift training and
measurement use the same rule, so it is written once here.

>>> import datetime as dt
>>> from churnguard.store import Store
>>> store, day = Store.in_memory(), dt.datetime(2025, 3, 1)
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
>>> saved_plan_summary(store, "c1") is None
True
"""

from __future__ import annotations

import json
from typing import Any

from churnguard.store import Store


def measurable_campaigns_sql(window_days: int) -> str:
    """A query of the campaign ids with a control group whose ``window_days`` outcome window
    ends on or before its one parameter (the newest event's time)."""
    return (
        "SELECT campaign_id FROM campaigns GROUP BY campaign_id "
        f"HAVING bool_or(is_control) AND max(assigned_at) + INTERVAL ({int(window_days)}) DAY <= ?"
    )


def newest_measurable_campaign(store: Store, *, window_days: int) -> str | None:
    """The id of the newest campaign (by its last assignment) that can be measured, or None."""
    row = store.con.execute(
        f"""
        WITH usable AS ({measurable_campaigns_sql(window_days)})
        SELECT campaign_id FROM campaigns JOIN usable USING (campaign_id)
        GROUP BY campaign_id ORDER BY max(assigned_at) DESC, campaign_id LIMIT 1
        """, [_newest_event(store)]).fetchone()
    return None if row is None else str(row[0])


def saved_plan_summary(store: Store, campaign_id: str) -> dict[str, Any] | None:
    """The summary of the plan saved for ``campaign_id``, or None when there is none."""
    row = store.con.execute("SELECT summary FROM plans WHERE campaign_id = ?",
                            [campaign_id]).fetchone()
    return None if row is None else json.loads(row[0])


def _newest_event(store: Store) -> Any:
    return store.con.execute("SELECT max(ts) FROM events").fetchone()[0]
