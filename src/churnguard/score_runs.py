"""Stored scoring runs, read back: the run shown (:func:`latest_run`), who it scored with their
recent revenue and newest planned action (:func:`at_risk`), and its aggregates (per tier, as a
histogram, the mean over time).

Every person-level row is read per call, never cached: an erased customer is gone from the next
answer at once.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> latest_run(store) is None
True
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from churnguard.registry import CHAMPION, alias_version
from churnguard.store import Store

TIERS = ("high", "medium", "low")
_TIER_RANK = "CASE risk_tier WHEN 'high' THEN 3 WHEN 'medium' THEN 2 WHEN 'low' THEN 1 ELSE 0 END"
# What the at-risk rows can be sorted by, and the SQL that orders them.
SORTS = {"p_churn": "p_churn", "user_id": "user_id", "risk_tier": _TIER_RANK,
         "revenue": "revenue", "segment": "segment", "action": "action"}
AT_RISK_COLUMNS = ("user_id", "p_churn", "risk_tier", "revenue", "reason_1", "reason_2",
                   "reason_3", "segment", "action", "campaign_id", "total")


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


def _at_risk_sql(*, horizon_days: int, tier: str | None, segment: tuple[str, str] | None,
                 reason: str, q: str, hashed_q: str | None, sort: str,
                 order: str) -> tuple[str, dict]:
    """The filtered rows, sorted, with the total count in every row; and the parameters."""
    where, params = [], {}
    if tier:
        where.append("risk_tier = $tier")
        params["tier"] = tier
    if segment:
        where.append("segment = $segment_value")
        params["segment_value"] = segment[1]
    if reason:
        where.append("contains(lower(concat_ws(' ', reason_1, reason_2, reason_3)), "
                     "lower($reason))")
        params["reason"] = reason
    if q:
        where.append("(starts_with(lower(user_id), lower($q)) OR user_id = $hashed_q)")
        params["q"], params["hashed_q"] = q, hashed_q or q
    segment_join = ""
    if segment:
        segment_join = ("LEFT JOIN user_attributes a ON a.user_id = s.user_id "
                        "AND a.name = $segment_name")
        params["segment_name"] = segment[0]
    direction = "ASC" if order == "asc" else "DESC"
    sql = scored_sql(horizon_days) + f"""
    , rows AS (
        SELECT s.user_id, s.p_churn, s.risk_tier, s.revenue, s.reason_1, s.reason_2, s.reason_3,
               {'a.value' if segment else 'NULL::VARCHAR'} AS segment,
               CASE WHEN planned.is_control THEN 'control' ELSE planned.action END AS action,
               planned.campaign_id
        FROM s {segment_join} LEFT JOIN planned ON planned.user_id = s.user_id)
    SELECT *, count(*) OVER () AS total FROM rows
    {('WHERE ' + ' AND '.join(where)) if where else ''}
    ORDER BY {SORTS[sort]} {direction} NULLS LAST, p_churn DESC, user_id
    """
    return sql, params


def at_risk(store: Store, run: ScoringRun, *, horizon_days: int, tier: str | None = None,
            segment: tuple[str, str] | None = None, reason: str = "", q: str = "",
            hashed_q: str | None = None, sort: str = "p_churn", order: str = "desc",
            limit: int | None = None, offset: int = 0) -> list[dict]:
    """The run's scored customers (:data:`AT_RISK_COLUMNS`), filtered by tier, a segment
    (attribute name, value), words of their reasons and an id prefix ``q`` (or ``hashed_q``, its
    stored form), sorted by a key of :data:`SORTS`; ``total`` counts every row the filters keep."""
    sql, params = _at_risk_sql(horizon_days=horizon_days, tier=tier, segment=segment,
                               reason=reason, q=q, hashed_q=hashed_q, sort=sort, order=order)
    params.update(version=run.version, as_of=run.as_of)
    if limit is not None:
        sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
    return [dict(zip(AT_RISK_COLUMNS, r, strict=True))
            for r in store.con.execute(sql, params).fetchall()]


def tier_totals(store: Store, run: ScoringRun, *, horizon_days: int) -> list[tuple]:
    """Per risk tier: customers, expected churners, revenue at risk (p × revenue), revenue,
    lowest and highest probability."""
    return store.con.execute(
        scored_sql(horizon_days) + """
        SELECT risk_tier, count(*), sum(p_churn), sum(p_churn * revenue), sum(revenue),
               min(p_churn), max(p_churn)
        FROM s GROUP BY risk_tier""", {"version": run.version, "as_of": run.as_of}).fetchall()


def histogram(store: Store, run: ScoringRun, *, n_bins: int) -> list[tuple]:
    """(bin, risk tier, customers) of the run's probabilities in ``n_bins`` equal bins."""
    return store.con.execute(
        f"SELECT least(floor(p_churn * {int(n_bins)}), {int(n_bins) - 1})::INTEGER, "
        "risk_tier, count(*) FROM scores WHERE model_version = $version AND as_of = $as_of "
        "GROUP BY ALL", {"version": run.version, "as_of": run.as_of}).fetchall()


def mean_over_time(store: Store, version: str) -> list[tuple[dt.datetime, float]]:
    """The mean probability of each scoring date of a model version, oldest first."""
    return store.con.execute(
        "SELECT as_of, avg(p_churn) FROM scores WHERE model_version = ? GROUP BY as_of "
        "ORDER BY as_of", [version]).fetchall()


__all__ = ["AT_RISK_COLUMNS", "SORTS", "TIERS", "ScoringRun", "at_risk", "histogram",
           "latest_run", "mean_over_time", "scored_sql", "tier_totals"]
