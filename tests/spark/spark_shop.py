"""The fixture shop both engines read in tests/spark: named customers, one per edge (day and
year boundaries 1 µs apart, a leap day, time-zone edges, ties, NULLs, one event, no history,
before 1970), and random histories, as Arrow tables."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa


def t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


CUTOFF = t("2025-01-01 00:00:00")
EARLY_CUTOFF = t("2024-03-01 00:00:00")


def _hand_written() -> list[dict]:
    """Named customers, each for one edge (the tests assert some of their values by name)."""
    rows = [
        # day and year boundaries: 1 µs apart yet one UTC day apart; an event exactly at the
        # cutoff (not before it, so not counted) and one just before it
        dict(user_id="u_boundary", ts=t("2023-12-31 23:59:59.999999"), type="order", amount=10.0),
        dict(user_id="u_boundary", ts=t("2024-01-01 00:00:00"), type="order", amount=20.0),
        dict(user_id="u_boundary", ts=t("2024-12-31 23:59:59.999999"), type="order", amount=0.1),
        dict(user_id="u_boundary", ts=t("2025-01-01 00:00:00"), type="order", amount=99.0),
        dict(user_id="u_boundary", ts=t("2024-12-01 00:00:00"), type="visit", session_id="s-b1"),
        # time-zone edges: wall-clock times that do not exist (spring forward) or exist twice
        # (fall back) in Europe and the US, ordinary instants in UTC; cart adds without a
        # session, so their basket is the UTC day
        dict(user_id="u_zones", ts=t("2024-10-27 02:30:00"), type="cart_add"),
        dict(user_id="u_zones", ts=t("2024-10-27 23:30:00"), type="order", amount=1.0),
        dict(user_id="u_zones", ts=t("2024-11-03 01:30:00"), type="cart_add"),
        dict(user_id="u_zones", ts=t("2024-03-31 02:30:00"), type="visit"),
        dict(user_id="u_zones", ts=t("2024-03-10 02:30:00"), type="visit"),
        # a leap day: Feb 28 -> Feb 29 -> Mar 1 are one day apart each
        dict(user_id="u_leap", ts=t("2024-02-28 12:00:00"), type="order", amount=5.5),
        dict(user_id="u_leap", ts=t("2024-02-29 23:00:00"), type="order", amount=6.25),
        dict(user_id="u_leap", ts=t("2024-03-01 01:00:00"), type="order", amount=7.0),
        dict(user_id="u_leap", ts=t("2023-02-28 08:00:00"), type="order", amount=1.0),
        # the day-boundary bug: 11 days and 1 µs elapsed, 12 UTC midnights crossed
        dict(user_id="u_gap12", ts=t("2024-06-01 23:59:59.999999"), type="order", amount=30.0),
        dict(user_id="u_gap12", ts=t("2024-06-13 00:00:00"), type="order", amount=40.0),
        # ordered aggregates and ties: two reviews at one timestamp (the later event_id wins),
        # written in the other order, then a later review without a rating
        dict(event_id="r-2", user_id="u_ties", ts=t("2024-11-05 10:00:00"), type="review",
             rating=5),
        dict(event_id="r-1", user_id="u_ties", ts=t("2024-11-05 10:00:00"), type="review",
             rating=1),
        dict(event_id="r-0", user_id="u_ties", ts=t("2024-10-01 10:00:00"), type="review",
             rating=2),
        dict(event_id="r-3", user_id="u_ties", ts=t("2024-12-01 10:00:00"), type="review"),
        dict(user_id="u_ties", ts=t("2024-11-05 10:00:00"), type="order", amount=12.34),
        dict(user_id="u_ties", ts=t("2024-11-05 10:00:00"), type="order", amount=12.34),
        # tickets: one closed by its session id, two at one time, one FIFO resolution
        dict(event_id="t-1", user_id="u_tickets", ts=t("2024-10-01 09:00:00"),
             type="support_ticket", session_id="tk1"),
        dict(user_id="u_tickets", ts=t("2024-10-02 09:00:00"), type="ticket_resolved",
             session_id="tk1"),
        dict(event_id="t-3", user_id="u_tickets", ts=t("2024-11-01 09:00:00"),
             type="support_ticket"),
        dict(event_id="t-2", user_id="u_tickets", ts=t("2024-11-01 09:00:00"),
             type="support_ticket"),
        dict(event_id="t-4", user_id="u_tickets", ts=t("2024-12-20 18:30:00"),
             type="support_ticket"),
        dict(user_id="u_tickets", ts=t("2024-12-21 09:00:00"), type="ticket_resolved"),
        # cart baskets: a session with an order, a session without, a day without sessions
        dict(user_id="u_cart", ts=t("2024-12-10 10:00:00"), type="cart_add", session_id="c1"),
        dict(user_id="u_cart", ts=t("2024-12-10 10:05:00"), type="order", session_id="c1",
             amount=25.0, item_id="i1"),
        dict(user_id="u_cart", ts=t("2024-12-11 10:00:00"), type="cart_add", session_id="c2"),
        dict(user_id="u_cart", ts=t("2024-12-12 23:59:59.999999"), type="cart_add"),
        dict(user_id="u_cart", ts=t("2024-12-13 00:00:00"), type="order", amount=3.0,
             item_id="i2"),
        dict(user_id="u_cart", ts=t("2024-12-14 08:00:00"), type="cart_add"),
        dict(user_id="u_cart", ts=t("2024-12-14 20:00:00"), type="order", amount=4.0,
             category="shoes"),
        dict(user_id="u_cart", ts=t("2024-12-15 08:00:00"), type="cart_remove"),
        # nulls: an order without amount, category or item; a coupon, a return
        dict(user_id="u_nulls", ts=t("2024-09-09 09:09:09"), type="order"),
        dict(user_id="u_nulls", ts=t("2024-09-10 09:09:09"), type="order", amount=1e6 + 0.01,
             item_id="i-unknown"),
        dict(user_id="u_nulls", ts=t("2024-09-11 09:09:09"), type="return"),
        dict(user_id="u_nulls", ts=t("2024-12-30 09:09:09"), type="coupon_redeem"),
        # one event only
        dict(user_id="u_one", ts=t("2024-12-31 12:00:00"), type="view"),
        # events only at and after the cutoff: an empty history at the cutoff
        dict(user_id="u_later", ts=t("2025-01-01 00:00:00"), type="order", amount=8.0),
        dict(user_id="u_later", ts=t("2025-02-01 00:00:00"), type="view"),
        # before 1970: the epoch arithmetic must floor, not truncate
        dict(user_id="u_old", ts=t("1969-12-31 23:59:59.5"), type="order", amount=2.0),
        dict(user_id="u_old", ts=t("1970-01-01 00:00:00.5"), type="order", amount=2.0),
    ]
    for k, row in enumerate(rows):
        row.setdefault("event_id", f"h{k:03d}")
    return rows


TYPES = np.array(["view", "visit", "search", "login", "cart_add", "cart_remove", "order",
                  "return", "review", "support_ticket", "ticket_resolved", "coupon_redeem"])
TYPE_P = np.array([0.3, 0.12, 0.1, 0.05, 0.1, 0.03, 0.18, 0.02, 0.04, 0.02, 0.02, 0.02])


def _random(n_users: int = 40, seed: int = 21) -> list[dict]:
    """Random histories over two years, timestamps on whole hours so many tie."""
    rng = np.random.default_rng(seed)
    rows = []
    start = t("2023-01-01 00:00:00")
    for u in range(n_users):
        for k in range(int(rng.integers(1, 60))):
            kind = str(rng.choice(TYPES, p=TYPE_P))
            row = dict(event_id=f"r{u:02d}-{k:03d}", user_id=f"rand{u:02d}", type=kind,
                       ts=start + dt.timedelta(hours=int(rng.integers(0, 2 * 365 * 24 + 24))))
            if kind == "order":
                row["amount"] = None if rng.random() < 0.1 else round(float(rng.gamma(2, 20)), 2)
                row["item_id"] = f"i{int(rng.integers(1, 6))}"
            if kind == "review" and rng.random() < 0.85:
                row["rating"] = int(rng.integers(1, 6))
            if rng.random() < 0.6:
                row["session_id"] = f"s{u}-{int(rng.integers(0, 8))}"
            rows.append(row)
    return rows


def _reviews(n_users: int = 24, seed: int = 4) -> list[dict]:
    """Customers with 4-6 reviews on 3 possible timestamps (so ties), ratings and event ids at
    random, written in random order: the last rating depends on (ts, event_id) alone."""
    rng = np.random.default_rng(seed)
    times = [t("2024-07-01 12:00:00"), t("2024-08-01 12:00:00"), t("2024-08-01 12:00:00.000001")]
    rows = []
    for u in range(n_users):
        for k in range(int(rng.integers(4, 7))):
            rows.append(dict(event_id=f"v{int(rng.integers(0, 10**6)):06d}-{k}",
                             user_id=f"u_rev{u:02d}", type="review",
                             ts=times[int(rng.integers(0, 3))],
                             rating=None if rng.random() < 0.15 else int(rng.integers(1, 6))))
    return [rows[i] for i in rng.permutation(len(rows))]


EVENT_SCHEMA = pa.schema([("event_id", pa.string()), ("user_id", pa.string()),
                          ("ts", pa.timestamp("us")), ("type", pa.string()),
                          ("item_id", pa.string()), ("category", pa.string()),
                          ("amount", pa.float64()), ("rating", pa.int8()),
                          ("session_id", pa.string())])


def shop_tables() -> dict[str, pa.Table]:
    """The fixture shop as Arrow tables: events, users, items, user_attributes, population."""
    events = _hand_written() + _reviews() + _random()
    named = sorted({r["user_id"] for r in events} | {"u_empty"})
    population = [(u, c) for u in named for c in (CUTOFF, EARLY_CUTOFF)]
    return {
        "events": pa.Table.from_pylist(
            [{c: r.get(c) for c in EVENT_SCHEMA.names} for r in events], schema=EVENT_SCHEMA),
        "users": pa.table({
            "user_id": ["u_empty", "u_one", "u_leap", "rand00"],
            # a sign-up after the cutoff is not known at the cutoff
            "signup_ts": pa.array([t("2024-06-01 00:00:00"), t("2025-06-01 00:00:00"),
                                   t("2020-02-29 00:00:00"), None], pa.timestamp("us"))}),
        "items": pa.table({"item_id": ["i1", "i2", "i3", "i4", "i5"],
                           "category": ["books", "toys", None, "books", "garden"]}),
        "user_attributes": pa.table({
            "user_id": ["u_one", "u_leap", "u_empty", "u_one", "u_leap", "rand01", "u_ties"],
            "name": ["plan", "plan", "plan", "Age", "Age", "Age", "plan"],
            "value": ["gold", "basic", "", "34", "27.5", "61", "zinc"]}),
        "population": pa.table({
            "user_id": [u for u, _ in population],
            "cutoff": pa.array([c for _, c in population], pa.timestamp("us"))}),
    }
