"""The feature views as one DuckDB query over a table of (user_id, cutoff) pairs.

Point-in-time rule: events are read only through ``_Dialect.before``, which joins the population on
``user_id`` and keeps ``e.ts < p.cutoff`` (strictly before); every other CTE reads its output.
Windows are half-open: "last w days" is ``cutoff - w days <= ts < cutoff`` (age <= w days), "the
w days before" is ``cutoff - 2w days <= ts < cutoff - w days``. Days are fractional
(microseconds / 86 400e6) except the gaps, which are whole days between distinct UTC order dates.

Speed (200k customers, 10M events): each (user, cutoff) gets an integer key ``pid`` so every
GROUP BY hashes one integer; the wide per-customer aggregate runs over a pre-aggregate by
(pid, type) with a count per window edge instead of over every event; the columns only some
event types need (amount, rating, item, event id) are read for those types only (``ev_rich``).
Order amounts are summed as DECIMAL so the result does not depend on the order in which threads
add them up (a DOUBLE sum can differ in the last bit from run to run).
"""

from __future__ import annotations

from collections.abc import Mapping

from churnguard.features.registry import BROWSE_WINDOWS, CART_WINDOW, ENGINES, FORMS, WINDOWS

DAY_US = 86_400_000_000
TABLES = ("events", "users", "items", "user_attributes")


def _q(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class _Dialect:
    """The query's building blocks for one engine: engine-specific spellings come from the
    registry's forms (registry.toml ``[forms]``), never from branches here."""

    def __init__(self, engine: str, tables: Mapping[str, str] | None) -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown SQL engine {engine!r}; known: {list(ENGINES)}")
        self.engine = engine
        self.table = {name: name for name in TABLES} | dict(tables or {})

    def form(self, name: str, **args: str) -> str:
        return FORMS[name].render(self.engine, **args)

    def epoch_us(self, ts: str) -> str:
        return self.form("epoch_us", x=ts)

    def day_us(self) -> str:
        return self.form("real", x=f"{DAY_US}.0")

    def days(self, later: str, earlier: str) -> str:
        return f"(({self.epoch_us(later)} - {self.epoch_us(earlier)}) / {self.day_us()})"

    def age_days(self, column: str) -> str:
        return f"({column} / {self.day_us()})"

    def before(self, columns: str, where: str = "TRUE") -> str:
        """Events strictly before each population member's cutoff: the only way events are read."""
        return (f"SELECT p.pid, {columns}, p.cut_us - {self.epoch_us('e.ts')} AS age "
                f"FROM {self.table['events']} e "
                f"JOIN pop p ON e.user_id = p.user_id AND e.ts < p.cutoff WHERE {where}")


def _age_within(days: int) -> str:
    """age (microseconds before the cutoff) within the last ``days`` days: ts >= cutoff - days."""
    return f"age <= {int(days) * DAY_US}"


def feature_query(*, pop_view: str, activity: tuple[str, ...], lookback_days: int,
                  attribute_columns: list[tuple[str, str, bool]], engine: str = "duckdb",
                  tables: Mapping[str, str] | None = None) -> str:
    """SQL returning one row per (user_id, cutoff) of ``pop_view`` with every registered feature.

    ``attribute_columns``: (column name, attribute name, numeric) for the attr_ columns.
    ``engine``: "duckdb" (the store's engine) or "spark" (Spark SQL, features/spark.py); the two
    differ only in the registry's forms. ``tables``: other names for the events, users, items
    and user_attributes tables (default: those names).
    """
    sql = _Dialect(engine, tables)
    acts = ", ".join(_q(a) for a in activity)
    # per (pid, type) counts within every window edge: n_w = events with age <= w days
    edges = sorted({*WINDOWS, *(2 * w for w in WINDOWS), *BROWSE_WINDOWS, CART_WINDOW, 90,
                    int(lookback_days)})
    c = CART_WINDOW

    def n(types: str, within: int | None = None, after: int | None = None) -> str:
        column = "n" if within is None else f"n_{within}"
        if after is None:
            return f"coalesce(sum({column}) FILTER (WHERE type IN ({types})), 0)"
        return f"coalesce(sum({column} - n_{after}) FILTER (WHERE type IN ({types})), 0)"

    def spend(within: int, after: int | None = None) -> str:
        cond = _age_within(within) + (f" AND NOT {_age_within(after)}" if after else "")
        return f"coalesce(sum(amount_exact) FILTER (WHERE {cond}), 0)"

    wide = [
        "min(min_age) AS last_event_age",
        "max(max_age) AS first_event_age",
        f"min(min_age) FILTER (WHERE type IN ({acts})) AS last_activity_age",
        "min(min_age) FILTER (WHERE type = 'order') AS last_order_age",
        "min(min_age) FILTER (WHERE type = 'visit') AS last_visit_age",
        "min(min_age) FILTER (WHERE type = 'review') AS last_review_age",
        "min(min_age) FILTER (WHERE type = 'support_ticket') AS last_ticket_age",
        "coalesce(sum(n_30), 0) AS events_30d",
        "coalesce(sum(n_90), 0) AS events_90d",
        f"{n(_q('order'))} AS orders_total",
        f"{n(_q('order'), lookback_days)} AS orders_in_lookback",
    ]
    for w in WINDOWS:
        wide += [f"{n(_q('order'), w)} AS orders_{w}d",
                 f"{n(_q('order'), 2 * w, w)} AS orders_prev_{w}d"]
    for w in BROWSE_WINDOWS:
        wide += [
            f"{n(_q('view'), w)} AS views_{w}d",
            f"{n(_q('search'), w)} AS searches_{w}d",
            f"{n(_q('visit'), w)} AS visits_{w}d",
        ]
    wide += [
        f"{n(_q('cart_remove'), c)} AS cart_removes_{c}d",
        f"{n(_q('return'))} AS returns_total",
        f"{n(_q('review'))} AS reviews_total",
        f"{n(_q('support_ticket'))} AS tickets_total",
        f"{n(_q('coupon_redeem'))} AS coupons_redeemed",
        f"{n(_q('coupon_redeem'), 90)} AS coupons_redeemed_90d",
    ]
    money = [
        # DECIMAL: an exact sum, independent of the order in which threads add the parts
        "sum(amount_exact) AS order_amount_sum",
        # the mean divides as DOUBLE on every engine (Spark would divide the DECIMAL exactly and
        # round to 6 places; DuckDB divides a DECIMAL by an integer as DOUBLE anyway)
        "sum(amount_exact)::DOUBLE / nullif(count(amount), 0) AS order_amount_mean",
        "max(amount) AS order_amount_max",
    ]
    for w in WINDOWS:
        money += [f"{spend(w)} AS spend_{w}d", f"{spend(2 * w, w)} AS spend_prev_{w}d"]
    basket = f"coalesce(session_id, 'day:' || {sql.form('day_key', x='ts')})"
    one = sql.form("real", x="1.0")
    last_rating = sql.form("last_by", x="rating", a="ts", b="event_id")
    rich_types = ", ".join(_q(t) for t in ("order", "review", "support_ticket",
                                           "ticket_resolved", "cart_add"))

    ctes = {
        "pop": f"""SELECT user_id, cutoff, {sql.epoch_us('cutoff')} AS cut_us,
                       row_number() OVER (ORDER BY user_id, cutoff) AS pid
                   FROM (SELECT DISTINCT user_id, cutoff FROM {pop_view})""",
        # every read of the events table goes through _before(): strictly before each cutoff
        "ev": sql.before("e.type, e.session_id"),
        "ev_rich": sql.before("e.ts, e.type, e.amount, e.rating, e.session_id, e.event_id, "
                           "e.item_id, e.category", f"e.type IN ({rich_types})"),
        "pre": "SELECT pid, type, count(*) AS n, " + ", ".join(
            f"count(*) FILTER (WHERE {_age_within(d)}) AS n_{d}" for d in edges)
            + ", min(age) AS min_age, max(age) AS max_age FROM ev GROUP BY pid, type",
        "agg": f"SELECT pid, {', '.join(wide)} FROM pre GROUP BY pid",
        "money": f"""SELECT pid, {', '.join(money)} FROM (
                         SELECT pid, age, amount, amount::DECIMAL(38, 6) AS amount_exact
                         FROM ev_rich WHERE type = 'order') GROUP BY pid""",
        "review_stats": f"""SELECT pid, avg(rating) AS review_rating_mean,
                               count(*) FILTER (WHERE rating <= 2) / nullif(count(rating), 0)
                                   AS review_low_share,
                               -- ties on ts are broken by event_id, never by scan order
                               {last_rating} FILTER (WHERE rating IS NOT NULL)
                                   AS review_rating_last
                           FROM ev_rich WHERE type = 'review' GROUP BY pid""",
        # -- sessions with any event in a window -----------------------------------------------
        "sessions": """SELECT pid, min(age) AS age FROM ev WHERE session_id IS NOT NULL
                       GROUP BY pid, session_id""",
        "session_stats": "SELECT pid, " + ", ".join(
            f"count(*) FILTER (WHERE {_age_within(w)}) AS sessions_{w}d" for w in BROWSE_WINDOWS)
            + " FROM sessions GROUP BY pid",
        # -- gaps between distinct order days ------------------------------------------------
        "order_days": f"""SELECT DISTINCT pid, {sql.form('utc_day', x='ts')} AS d FROM ev_rich
                         WHERE type = 'order'""",
        "gaps": f"""SELECT pid, {sql.form('day_gap', a='lag(d) OVER w', b='d')} AS gap,
                       row_number() OVER (PARTITION BY pid ORDER BY d DESC) AS rn
                   FROM order_days WINDOW w AS (PARTITION BY pid ORDER BY d)""",
        "gap_stats": """SELECT pid, count(*) AS order_days_total,
                            avg(gap)::DOUBLE AS order_gap_mean_days,
                            stddev_samp(gap)::DOUBLE AS order_gap_std_days,
                            (max(gap) FILTER (WHERE rn = 1))::DOUBLE AS order_gap_last_days
                        FROM gaps GROUP BY pid""",
        # -- categories: the event's category, else the item's -----------------------------------
        "order_cats": f"""SELECT ev.pid, coalesce(ev.category, i.category) AS category,
                             count(*) AS n
                         FROM ev_rich ev LEFT JOIN {sql.table['items']} i ON i.item_id = ev.item_id
                         WHERE ev.type = 'order' AND coalesce(ev.category, i.category) IS NOT NULL
                         GROUP BY ALL""",
        "cat_stats": """SELECT pid, count(*) AS order_categories_distinct,
                            sum(n * n) / (sum(n) * sum(n)) AS order_category_hhi
                        FROM order_cats GROUP BY pid""",
        # -- cart abandonment: cart adds whose basket (session, else day) saw no order ---------
        "cart_adds": f"""SELECT pid, {basket} AS basket FROM ev_rich
                         WHERE type = 'cart_add' AND {_age_within(c)}""",
        "ordered_baskets": f"""SELECT DISTINCT pid, {basket} AS basket FROM ev_rich
                               WHERE type = 'order' AND {_age_within(c)}""",
        "cart_stats": f"""SELECT a.pid, count(*) AS cart_adds_{c}d,
                              count(*) FILTER (WHERE o.basket IS NULL) / count(*)
                                  AS cart_abandonment_{c}d
                          FROM cart_adds a LEFT JOIN ordered_baskets o
                            ON o.pid = a.pid AND o.basket = a.basket
                          GROUP BY a.pid""",
        # -- tickets: a resolution with the ticket's session id closes it; resolutions without
        #    a session id close the oldest still-open tickets first (FIFO) -----------------------
        "ticket_events": """SELECT pid, ts, type, session_id, event_id FROM ev_rich
                            WHERE type IN ('support_ticket', 'ticket_resolved')""",
        "open_by_id": """SELECT t.pid, t.ts, t.event_id FROM ticket_events t
                         WHERE t.type = 'support_ticket' AND NOT EXISTS (
                             SELECT 1 FROM ticket_events r
                             WHERE r.type = 'ticket_resolved' AND r.pid = t.pid
                               AND r.session_id = t.session_id)""",
        "fifo_resolutions": """SELECT pid, count(*) AS n FROM ticket_events
                               WHERE type = 'ticket_resolved' AND session_id IS NULL
                               GROUP BY pid""",
        "open_tickets": """SELECT o.pid, o.ts,
                               row_number() OVER (PARTITION BY o.pid ORDER BY o.ts, o.event_id)
                                   AS k,
                               coalesce(f.n, 0) AS n_fifo
                           FROM open_by_id o LEFT JOIN fifo_resolutions f ON f.pid = o.pid""",
        "ticket_stats": """SELECT pid, count(*) AS tickets_unresolved, min(ts) AS oldest_open_ts
                           FROM open_tickets WHERE k > n_fifo GROUP BY pid""",
    }
    if attribute_columns:
        cols = []
        for column, name, numeric in attribute_columns:
            value = "TRY_CAST(value AS DOUBLE)" if numeric else "value"
            cols.append(f"max({value}) FILTER (WHERE name = {_q(name)}) "
                        f"AS {sql.form('ident', x=column)}")
        ctes["attrs"] = (f"SELECT user_id, {', '.join(cols)} FROM {sql.table['user_attributes']} "
                         "WHERE user_id IN (SELECT user_id FROM pop) "
                         "AND nullif(trim(value), '') IS NOT NULL GROUP BY user_id")

    def count(col: str, src: str = "a") -> str:
        return f"coalesce({src}.{col}, 0)::BIGINT AS {col}"

    def real(expr: str, name: str) -> str:
        return f"({expr})::DOUBLE AS {name}"

    out = [
        "p.user_id", "p.cutoff",
        real(sql.age_days("a.last_event_age"), "days_since_last_event"),
        real(sql.age_days("a.last_activity_age"), "days_since_last_activity"),
        real(sql.age_days("a.last_order_age"), "days_since_last_order"),
        count("events_30d"), count("events_90d"), count("orders_total"),
        count("orders_in_lookback"), count("order_days_total", "g"),
        real("m.order_amount_sum", "order_amount_sum"),
        real("m.order_amount_mean", "order_amount_mean"),
        real("m.order_amount_max", "order_amount_max"),
    ]
    for w in WINDOWS:
        out += [
            count(f"orders_{w}d"), count(f"orders_prev_{w}d"),
            real(f"(coalesce(a.orders_{w}d, 0) + {one})"
                 f" / (coalesce(a.orders_prev_{w}d, 0) + {one})", f"orders_trend_{w}d"),
            real(f"coalesce(m.spend_{w}d, 0)", f"spend_{w}d"),
            real(f"coalesce(m.spend_prev_{w}d, 0)", f"spend_prev_{w}d"),
            real(f"(coalesce(m.spend_{w}d, 0)::DOUBLE + {one})"
                 f" / (coalesce(m.spend_prev_{w}d, 0)::DOUBLE + {one})", f"spend_trend_{w}d"),
        ]
    out += [
        real("g.order_gap_mean_days", "order_gap_mean_days"),
        real("g.order_gap_std_days", "order_gap_std_days"),
        real("g.order_gap_last_days", "order_gap_last_days"),
        real(f"{sql.age_days('a.last_order_age')} / g.order_gap_mean_days", "overdue_ratio"),
    ]
    for w in BROWSE_WINDOWS:
        out += [count(f"views_{w}d"), count(f"searches_{w}d"), count(f"visits_{w}d"),
                count(f"sessions_{w}d", "ss")]
    out += [
        real(sql.age_days("a.last_visit_age"), "days_since_last_visit"),
        count(f"cart_adds_{c}d", "cs"), count(f"cart_removes_{c}d"),
        real(f"cs.cart_abandonment_{c}d", f"cart_abandonment_{c}d"),
        count("order_categories_distinct", "k"),
        real("k.order_category_hhi", "order_category_hhi"),
        count("returns_total"),
        real("coalesce(a.returns_total, 0) / nullif(a.orders_total, 0)", "return_rate"),
        count("reviews_total"),
        real("r.review_rating_mean", "review_rating_mean"),
        real("r.review_rating_last", "review_rating_last"),
        real("r.review_low_share", "review_low_share"),
        real(sql.age_days("a.last_review_age"), "days_since_last_review"),
        count("tickets_total"), count("tickets_unresolved", "t"),
        real(sql.age_days("a.last_ticket_age"), "days_since_last_ticket"),
        real(sql.days("p.cutoff", "t.oldest_open_ts"), "oldest_unresolved_ticket_days"),
        count("coupons_redeemed"), count("coupons_redeemed_90d"),
        # a sign-up at or after the cutoff is not known at the cutoff
        real(sql.age_days("greatest(CASE WHEN s.signup_ts < p.cutoff "
                       f"THEN p.cut_us - {sql.epoch_us('s.signup_ts')} END, a.first_event_age)"),
             "tenure_days"),
    ]
    out += [f"ua.{sql.form('ident', x=column)}" for column, _, _ in attribute_columns]
    joins = f"""FROM pop p
        LEFT JOIN agg a ON a.pid = p.pid
        LEFT JOIN money m ON m.pid = p.pid
        LEFT JOIN review_stats r ON r.pid = p.pid
        LEFT JOIN session_stats ss ON ss.pid = p.pid
        LEFT JOIN gap_stats g ON g.pid = p.pid
        LEFT JOIN cat_stats k ON k.pid = p.pid
        LEFT JOIN cart_stats cs ON cs.pid = p.pid
        LEFT JOIN ticket_stats t ON t.pid = p.pid
        LEFT JOIN {sql.table['users']} s ON s.user_id = p.user_id"""
    if attribute_columns:
        joins += "\n        LEFT JOIN attrs ua ON ua.user_id = p.user_id"
    with_clause = ",\n".join(f"{name} AS ({sql})" for name, sql in ctes.items())
    return f"WITH {with_clause}\nSELECT {', '.join(out)}\n{joins}\nORDER BY p.pid"
