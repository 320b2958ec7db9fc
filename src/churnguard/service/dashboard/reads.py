"""What several pages read from the store: the scoring run shown, the segments, and the scored
population joined with recent revenue and the newest planned action.

Every person-level figure is read per request, never cached: an erased customer disappears from
the next page at once.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, TypeVar

from churnguard.registry import CHAMPION, alias_version
from churnguard.reporting import MAX_SEGMENT_VALUES
from churnguard.store import Store

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class ScoringRun:
    """The newest ``churnguard score`` run of the champion (of any model when the champion has
    none), which the overview and the at-risk table show."""

    version: str
    as_of: dt.datetime
    is_champion: bool
    population: int
    lang: str


def latest_run(store: Store) -> ScoringRun | None:
    champion = alias_version(store, CHAMPION)
    rows = []
    if champion is not None:
        rows = store.con.execute(
            "SELECT model_version, as_of, count(*), any_value(lang) FROM scores "
            "WHERE model_version = ? GROUP BY ALL ORDER BY as_of DESC LIMIT 1",
            [champion]).fetchall()
    if not rows:
        rows = store.con.execute(
            "SELECT model_version, as_of, count(*), any_value(lang) FROM scores GROUP BY ALL "
            "ORDER BY as_of DESC, max(scored_at) DESC LIMIT 1").fetchall()
    if not rows:
        return None
    version, as_of, population, lang = rows[0]
    return ScoringRun(version=version, as_of=as_of, is_champion=version == champion,
                      population=int(population), lang=str(lang))


def segments(store: Store) -> dict[str, list[str]]:
    """User attributes with few distinct values (as the report's segments), and their values."""
    rows = store.con.execute(
        f"""
        WITH few AS (SELECT name FROM user_attributes GROUP BY name
                     HAVING count(DISTINCT value) <= {MAX_SEGMENT_VALUES})
        SELECT DISTINCT name, value FROM user_attributes JOIN few USING (name)
        WHERE value IS NOT NULL ORDER BY name, value
        """).fetchall()
    out: dict[str, list[str]] = {}
    for name, value in rows:
        out.setdefault(str(name), []).append(str(value))
    return out


def scored_sql(horizon_days: int) -> str:
    """CTEs ``s`` (the run's scores, with ``revenue``: order amounts in the ``horizon_days``
    before the run's cutoff) and ``planned`` (each customer's row of the newest plan holding
    them). Parameters ``$version`` and ``$as_of``."""
    return f"""
    WITH scored AS (
        SELECT user_id, p_churn, risk_tier, reason_1, reason_2, reason_3
        FROM scores WHERE model_version = $version AND as_of = $as_of),
    revenue AS (
        SELECT user_id, sum(coalesce(amount, 0)) AS revenue FROM events
        WHERE type = 'order' AND ts < $as_of
          AND ts >= $as_of::TIMESTAMP - INTERVAL ({int(horizon_days)}) DAY
          AND user_id IN (SELECT user_id FROM scored)
        GROUP BY user_id),
    s AS (
        SELECT scored.*, coalesce(revenue.revenue, 0.0) AS revenue
        FROM scored LEFT JOIN revenue USING (user_id)),
    planned AS (
        SELECT user_id, campaign_id, action, is_control FROM (
            SELECT r.user_id, r.campaign_id, r.action, r.is_control,
                   row_number() OVER (PARTITION BY r.user_id
                                      ORDER BY p.created_at DESC, r.campaign_id) AS newest
            FROM plan_rows r JOIN plans p USING (campaign_id))
        WHERE newest = 1)
    """


class Memo:
    """The latest value of each named aggregate, kept while its key holds (aggregates only:
    never person-level rows)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[Hashable, Any]] = {}

    def get(self, name: str, key: Hashable, compute: Callable[[], T]) -> T:
        with self._lock:
            found = self._values.get(name)
        if found is not None and found[0] == key:
            return found[1]
        value = compute()
        with self._lock:
            self._values[name] = (key, value)
        return value
