"""Context from the store: details the features do not hold (the date, rating and topic of the
last review, the last order, the oldest open ticket), so that sentences can name them."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from churnguard.explain.topics import NO_TOPIC, TOPIC_KEYWORDS
from churnguard.features.build import _population_table
from churnguard.features.registry import ENGINES, FORMS
from churnguard.store import Store


# Columns of the frame :func:`reason_context` builds; timestamps are naive UTC. The last three are
# the customer's own order rhythm, for the BTYD reasons: the days with an order, the mean gap in
# days between them (as the order_gap_mean_days feature) and the days since the last order.
CONTEXT_COLUMNS = ("last_review_at", "last_review_rating", "last_review_topic", "last_order_at",
                   "oldest_open_ticket_at", "order_days", "usual_order_gap_days",
                   "days_since_order")


class _Forms:
    """The registry's engine forms (features/registry.toml ``[forms]``) for one engine: the
    context query is written once and generated for DuckDB and Spark SQL, like the features."""

    def __init__(self, engine: str) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown SQL engine {engine!r}; known: {list(ENGINES)}")
        self.engine = engine

    def __call__(self, name: str, **args: str) -> str:
        return FORMS[name].render(self.engine, **args)


def _topic_sql(column: str, form: _Forms) -> str:
    start, end = form("word_start"), form("word_end")
    cases = []
    for topic, words in TOPIC_KEYWORDS.items():
        en = "|".join(start + re.escape(w).replace(r"\ ", " ") + end for w in words["en"])
        zh = "|".join(re.escape(w) for w in words["zh"])
        pattern = f"(?i)({en}|{zh})"
        if form.engine == "spark" and "\\" in pattern:
            # Spark's string literals read a backslash as an escape; the keywords need none
            raise ValueError(f"a topic keyword needs a backslash in its pattern: {pattern!r}")
        literal = "'" + pattern.replace("'", "''") + "'"
        cases.append(f"WHEN {form('matches', x=column, p=literal)} THEN '{topic}'")
    return f"CASE WHEN {column} IS NULL THEN '{NO_TOPIC}' {' '.join(cases)} ELSE '{NO_TOPIC}' END"


def _context_query(pop_view: str, *, engine: str = "duckdb",
                   tables: Mapping[str, str] | None = None) -> str:
    """The reason-context query over ``pop_view`` (user_id, cutoff): DuckDB over the store, or
    Spark SQL over a lake's events (``tables``: {"events": view name})."""
    form = _Forms(engine)
    events = dict(tables or {}).get("events", "events")
    review = form("last_row", x=form("row3", a="ts", b="rating", c="text"),
                  k="rating IS NOT NULL, ts, event_id")
    day = form("utc_day", x="ts")
    # Tickets follow the same rule as the tickets_unresolved feature (features/sql.py): a
    # resolution with the ticket's session id closes it; resolutions without a session id close
    # the oldest still-open tickets first.
    return f"""
    WITH pop AS (SELECT DISTINCT user_id, cutoff FROM {pop_view}),
    ev AS (
        SELECT p.user_id, p.cutoff, e.ts, e.type, e.rating, e.text, e.session_id, e.event_id
        FROM {events} e JOIN pop p ON e.user_id = p.user_id AND e.ts < p.cutoff
        WHERE e.type IN ('order', 'review', 'support_ticket', 'ticket_resolved')),
    review AS (
        -- the latest rated review (as review_rating_last), else the latest review; one row's
        -- values together, ties on ts broken by event_id
        SELECT user_id, cutoff,
               {review} AS r
        FROM ev WHERE type = 'review' GROUP BY user_id, cutoff),
    orders AS (
        -- gaps between order *days*, as the order_gap_mean_days feature (features/sql.py)
        SELECT user_id, cutoff, max(ts) AS last_order_at,
               count(DISTINCT {day}) AS order_days,
               {form('day_gap', a=f'min({day})', b=f'max({day})')}
                   AS order_span_days,
               ({form('epoch_us', x='cutoff')} - {form('epoch_us', x='max(ts)')}) / {form('real', x='86400e6')} AS days_since_order
        FROM ev WHERE type = 'order' GROUP BY user_id, cutoff),
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
           CASE WHEN rv.r IS NOT NULL THEN {_topic_sql('rv.r.text', form)} END AS last_review_topic,
           o.last_order_at,
           t.oldest_open_ticket_at,
           o.order_days::DOUBLE AS order_days,
           CASE WHEN o.order_days > 1 THEN o.order_span_days / (o.order_days - 1) END::DOUBLE
               AS usual_order_gap_days,
           o.days_since_order::DOUBLE AS days_since_order
    FROM pop p
    LEFT JOIN review rv ON rv.user_id = p.user_id AND rv.cutoff = p.cutoff
    LEFT JOIN orders o ON o.user_id = p.user_id AND o.cutoff = p.cutoff
    LEFT JOIN open_tickets t ON t.user_id = p.user_id AND t.cutoff = p.cutoff
    ORDER BY p.user_id, p.cutoff"""


def review_topics(store: Store, texts: list[str | None]) -> list[str]:
    """The topic :func:`reason_context` gives a latest review of each of these texts, by the very
    same SQL expression (DuckDB's regular expressions, not Python's: their word boundaries
    differ next to Chinese characters)."""
    if not texts:
        return []
    table = pd.DataFrame({"k": range(len(texts)), "text": pd.Series(texts, dtype=object)})
    with store.registered(table, "review_texts") as view:
        rows = store.con.execute(
            f"SELECT k, {_topic_sql('text', _Forms('duckdb'))} FROM {view} ORDER BY k").fetchall()
    return [topic for _, topic in rows]


def latest_review_topics(store: Store) -> dict[str, tuple[str | None, str]]:
    """Each customer's latest review (the one :func:`reason_context` names at a cutoff after all
    their events): user_id -> (its text, its topic). Computed for everyone at once, so that
    answering for one customer seldom needs a query (:func:`review_topics` for the others)."""
    rows = store.con.execute(f"""
        SELECT user_id, text, {_topic_sql('text', _Forms('duckdb'))} FROM (
            SELECT user_id, arg_max(text, (rating IS NOT NULL, ts, event_id)) AS text
            FROM events WHERE type = 'review' GROUP BY user_id)""").fetchall()
    return {str(user): (text, topic) for user, text, topic in rows}


def reason_context(store: Store, population: pd.DataFrame) -> pd.DataFrame:
    """Details for the reason sentences, from events strictly before each row's cutoff.

    ``population``: user_id and cutoff (columns or index). Returns a frame indexed by
    (user_id, cutoff), sorted, with :data:`CONTEXT_COLUMNS`: the latest review's time, rating and
    topic (by keyword, :data:`TOPIC_KEYWORDS`; ``"none"`` when no keyword matches), the last
    order's time, the time the oldest still-unresolved support ticket was opened, and the
    customer's order rhythm: the number of days with an order, the mean gap in days between them
    and the days since the last order (NaT/NaN when there is none). Review texts themselves never
    leave the store.
    """
    table = _population_table(population)
    with store.registered(table, "reason_population") as view:
        frame = store.con.execute(_context_query(view)).df()
    frame["user_id"] = frame["user_id"].astype(str)
    for column in ("cutoff", "last_review_at", "last_order_at", "oldest_open_ticket_at"):
        frame[column] = frame[column].astype("datetime64[us]")
    frame["last_review_topic"] = frame["last_review_topic"].astype(object)
    return frame.set_index(["user_id", "cutoff"])[list(CONTEXT_COLUMNS)]
