"""The same features as the SQL (features/sql.py), computed in NumPy from a few customers' events.

Why: the feature SQL costs DuckDB tens of milliseconds to bind and optimise whatever the data's
size, which is most of the first risk answer after a new event for one customer
(benchmarks/RESULTS.md, "realtime"). Here each (user, cutoff) row is computed from that
customer's events held in memory, in well under a millisecond. Only the real-time path
(churnguard.realtime) uses it; batch scoring and training stay on the SQL.

One meaning, two spellings, kept equal by construction where possible and by a test everywhere:

* the windows, the column names and their order come from the feature registry (WINDOWS,
  BROWSE_WINDOWS, CART_WINDOW, FEATURES): a feature added to the registry that this module does
  not compute makes :func:`features_of_events` raise, never return a column of zeros;
* the arithmetic follows the SQL's to the bit: ages are integer microseconds before the cutoff,
  days are ``age / 86 400e6``, windows are ``age <= w days``, UTC days are floored epoch days,
  order amounts are summed as DuckDB's DECIMAL(38, 6) (each amount scaled by 10^6 and rounded
  half away from zero, as DuckDB's cast does; the exact integer sum divided by 10^6), the last
  rating is the one of the largest (ts, event_id), tickets close by session id then FIFO;
* tests/features/test_feature_frame.py computes every column both ways on the fixture shop of
  the engine tests (day and year boundaries 1 µs apart, ties, NULLs, empty histories, before
  1970) and on a simulated shop, and requires them equal; only the sample standard deviation of
  the gaps may differ in its last bits (DuckDB accumulates it in an order of its own).

User attributes are not computed here: :func:`attribute_values` reads them with the SQL's own
expressions once, and the caller passes them in.

>>> import pyarrow as pa, datetime as dt
>>> ev = EventArrays.of(pa.table({
...     "event_id": ["e1", "e2", "e3"], "user_id": ["u1"] * 3,
...     "ts": pa.array([dt.datetime(2025, 1, 1), dt.datetime(2025, 1, 11),
...                     dt.datetime(2025, 2, 1)], pa.timestamp("us")),
...     "type": ["order"] * 3, "amount": [10.0, 30.0, 99.0]}))
>>> row = feature_row(ev, ev.rows_of("u1"), cutoff_us(dt.datetime(2025, 1, 31)),
...                   activity=("order",), lookback_days=365, signup=None, item_category={})
>>> [row[k] for k in ("orders_total", "order_amount_sum", "order_gap_mean_days", "overdue_ratio")]
[2, 40.0, 10.0, 2.0]
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from churnguard.features.registry import (
    ATTRIBUTE_PREFIX,
    BROWSE_WINDOWS,
    CART_WINDOW,
    FEATURES,
    WINDOWS,
)
from churnguard.store import Store

DAY_US = 86_400_000_000
DAY = 86_400_000_000.0  # the SQL's DOUBLE divisor
_EPOCH = dt.datetime(1970, 1, 1)
_NAN = float("nan")


def cutoff_us(cutoff: dt.datetime | pd.Timestamp) -> int:
    """Microseconds since 1970 of a naive UTC instant (the SQL's ``epoch_us``)."""
    if isinstance(cutoff, pd.Timestamp):
        return int(np.datetime64(cutoff.to_datetime64(), "us").astype(np.int64))
    delta = cutoff - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _micro_units(amount: float) -> int:
    """DuckDB's ``amount::DECIMAL(38, 6)`` as an integer count of millionths: the DOUBLE times
    10^6, rounded half away from zero (checked against DuckDB in the tests)."""
    x = amount * 1e6
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def _decimal_double(micro: int) -> float:
    """A DECIMAL(38, 6) sum cast to DOUBLE."""
    return float(micro) / 1e6


@dataclass(frozen=True)
class EventArrays:
    """Events as NumPy columns (``ts`` as int64 microseconds; ``amount`` and ``rating`` float
    with NaN for NULL, plus their NULL masks), grouped by user."""

    event_id: np.ndarray
    user_id: np.ndarray
    ts: np.ndarray
    type: np.ndarray
    item_id: np.ndarray
    category: np.ndarray
    amount: np.ndarray
    amount_null: np.ndarray
    rating: np.ndarray
    session_id: np.ndarray
    text: np.ndarray
    by_user: dict[str, np.ndarray]

    @classmethod
    def of(cls, table: pa.Table) -> EventArrays:
        """From an Arrow table of the events table's columns (missing optional ones are NULL)."""
        n = table.num_rows

        def column(name: str) -> pa.ChunkedArray | None:
            return table.column(name) if name in table.column_names else None

        def text(name: str) -> np.ndarray:
            col = column(name)
            if col is None:
                return np.full(n, None, dtype=object)
            return np.asarray(col.to_pylist(), dtype=object)

        def number(name: str) -> tuple[np.ndarray, np.ndarray]:
            col = column(name)
            if col is None:
                return np.full(n, np.nan), np.ones(n, dtype=bool)
            null = np.asarray(col.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            values = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
            return np.where(null, np.nan, values).astype(float), null

        ts = table.column("ts").cast(pa.timestamp("us")).cast(pa.int64())
        users = text("user_id")
        amount, amount_null = number("amount")
        rating, _ = number("rating")
        by_user: dict[str, list[int]] = {}
        for i, u in enumerate(users.tolist()):
            by_user.setdefault(u, []).append(i)
        return cls(event_id=text("event_id"), user_id=users,
                   ts=np.asarray(ts.to_numpy(zero_copy_only=False), dtype=np.int64),
                   type=text("type"), item_id=text("item_id"), category=text("category"),
                   amount=amount, amount_null=amount_null, rating=rating,
                   session_id=text("session_id"), text=text("text"),
                   by_user={u: np.asarray(i, dtype=np.int64) for u, i in by_user.items()})

    def rows_of(self, user_id: str) -> np.ndarray:
        """Positions of the user's events (empty when none)."""
        return self.by_user.get(user_id, np.empty(0, dtype=np.int64))

    def before(self, rows: np.ndarray, cut: int) -> np.ndarray:
        """Those of ``rows`` strictly before the cutoff (microseconds): the point-in-time rule."""
        return rows[self.ts[rows] < cut]


def _open_tickets(ev: EventArrays, rows: np.ndarray) -> np.ndarray:
    """Positions of the support tickets still open: a resolution with the ticket's session id
    closes it; resolutions without a session id close the oldest open ones first (by ts, then
    event_id). As the ``open_tickets`` CTE of the SQL and the reason context."""
    kinds = ev.type[rows]
    tickets = rows[kinds == "support_ticket"]
    resolved = rows[kinds == "ticket_resolved"]
    closing = {s for s in ev.session_id[resolved].tolist() if s is not None}
    fifo = sum(1 for s in ev.session_id[resolved].tolist() if s is None)
    still = [i for i in tickets.tolist()
             if ev.session_id[i] is None or ev.session_id[i] not in closing]
    still.sort(key=lambda i: (ev.ts[i], ev.event_id[i]))
    return np.asarray(still[fifo:], dtype=np.int64)


def _gap_stats(days: np.ndarray) -> tuple[float, float, float]:
    """(mean, sample std, last) of the whole-day gaps between distinct sorted UTC days: NaN where
    the SQL gives NULL. The std is Welford's update (DuckDB's stddev_samp) over the gaps newest
    first, the order in which DuckDB's plan feeds them (the gaps CTE ranks the days newest
    first): equal to the bit on the tests' shops; another order could change the last bits."""
    gaps = np.diff(days)
    if gaps.size == 0:
        return _NAN, _NAN, _NAN
    mean = int(gaps.sum()) / gaps.size
    std = _NAN
    if gaps.size >= 2:
        count, running, squares = 0, 0.0, 0.0
        for g in gaps[::-1].astype(float).tolist():
            count += 1
            diff = g - running
            running += diff / count
            squares += diff * (g - running)
        std = math.sqrt(squares / (count - 1))
    return mean, std, float(gaps[-1])


def _min_age(age: np.ndarray, mask: np.ndarray) -> int | None:
    return int(age[mask].min()) if mask.any() else None


def _days(age: int | None) -> float:
    return _NAN if age is None else age / DAY


def _day_key(ts_us: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=int(ts_us))).strftime("%Y-%m-%d")


def _money(ev: EventArrays, orders: np.ndarray, age: np.ndarray) -> dict[str, float]:
    """order_amount_* and spend_* from the orders (``age``: theirs): DECIMAL sums as the SQL."""
    out: dict[str, float] = {}
    priced = ~ev.amount_null[orders]
    micro = np.array([_micro_units(a) for a in ev.amount[orders][priced].tolist()], dtype=object)
    ages = age[priced]
    if orders.size == 0:
        out |= {"order_amount_sum": _NAN, "order_amount_mean": _NAN, "order_amount_max": _NAN}
    elif micro.size == 0:
        out |= {"order_amount_sum": _NAN, "order_amount_mean": _NAN, "order_amount_max": _NAN}
    else:
        total = _decimal_double(int(micro.sum()))
        out |= {"order_amount_sum": total, "order_amount_mean": total / micro.size,
                "order_amount_max": float(ev.amount[orders][priced].max())}

    def spend(lo: int | None, hi: int) -> float:
        inside = ages <= hi * DAY_US
        if lo is not None:
            inside &= ~(ages <= lo * DAY_US)
        return _decimal_double(int(micro[inside].sum())) if inside.any() else 0.0

    for w in WINDOWS:
        now, prev = spend(None, w), spend(w, 2 * w)
        out |= {f"spend_{w}d": now, f"spend_prev_{w}d": prev,
                f"spend_trend_{w}d": (now + 1.0) / (prev + 1.0)}
    return out


def _counts(kinds: np.ndarray, age: np.ndarray, activity: Sequence[str],
            lookback_days: int) -> dict[str, object]:
    """The recency and count features of the ``agg`` CTE."""
    def within(days: int) -> np.ndarray:
        return age <= days * DAY_US

    def n(kind: str, mask: np.ndarray | None = None) -> int:
        hit = kinds == kind
        return int((hit if mask is None else hit & mask).sum())

    orders = kinds == "order"
    out: dict[str, object] = {
        "days_since_last_event": _days(int(age.min()) if age.size else None),
        "days_since_last_activity": _days(_min_age(age, np.isin(kinds, list(activity)))),
        "days_since_last_order": _days(_min_age(age, orders)),
        "events_30d": int(within(30).sum()), "events_90d": int(within(90).sum()),
        "orders_total": int(orders.sum()),
        "orders_in_lookback": n("order", within(int(lookback_days))),
    }
    for w in WINDOWS:
        now, prev = n("order", within(w)), n("order", within(2 * w)) - n("order", within(w))
        out |= {f"orders_{w}d": now, f"orders_prev_{w}d": prev,
                f"orders_trend_{w}d": (now + 1.0) / (prev + 1.0)}
    for w in BROWSE_WINDOWS:
        out |= {f"views_{w}d": n("view", within(w)), f"searches_{w}d": n("search", within(w)),
                f"visits_{w}d": n("visit", within(w))}
    out |= {
        "days_since_last_visit": _days(_min_age(age, kinds == "visit")),
        f"cart_removes_{CART_WINDOW}d": n("cart_remove", within(CART_WINDOW)),
        "returns_total": n("return"),
        "return_rate": n("return") / int(orders.sum()) if orders.any() else _NAN,
        "reviews_total": n("review"),
        "days_since_last_review": _days(_min_age(age, kinds == "review")),
        "tickets_total": n("support_ticket"),
        "days_since_last_ticket": _days(_min_age(age, kinds == "support_ticket")),
        "coupons_redeemed": n("coupon_redeem"),
        "coupons_redeemed_90d": n("coupon_redeem", within(90)),
    }
    return out


def _reviews(ev: EventArrays, reviews: np.ndarray) -> dict[str, float]:
    rated = reviews[~np.isnan(ev.rating[reviews])]
    if rated.size == 0:
        return {"review_rating_mean": _NAN, "review_low_share": _NAN, "review_rating_last": _NAN}
    ratings = ev.rating[rated]
    last = max(rated.tolist(), key=lambda i: (ev.ts[i], ev.event_id[i]))
    return {"review_rating_mean": int(ratings.sum()) / ratings.size,
            "review_low_share": int((ratings <= 2).sum()) / ratings.size,
            "review_rating_last": float(ev.rating[last])}


def _sessions(ev: EventArrays, rows: np.ndarray, age: np.ndarray) -> dict[str, int]:
    youngest: dict[str, int] = {}
    for s, a in zip(ev.session_id[rows].tolist(), age.tolist(), strict=True):
        if s is not None and (s not in youngest or a < youngest[s]):
            youngest[s] = a
    ages = np.fromiter(youngest.values(), dtype=np.int64, count=len(youngest))
    return {f"sessions_{w}d": int((ages <= w * DAY_US).sum()) for w in BROWSE_WINDOWS}


def _cart(ev: EventArrays, rows: np.ndarray, age: np.ndarray) -> dict[str, object]:
    recent = age <= CART_WINDOW * DAY_US
    kinds = ev.type[rows]

    def baskets(kind: str) -> list[str]:
        picked = rows[(kinds == kind) & recent]
        return [s if s is not None else "day:" + _day_key(t)
                for s, t in zip(ev.session_id[picked].tolist(), ev.ts[picked].tolist(),
                                strict=True)]

    adds, ordered = baskets("cart_add"), set(baskets("order"))
    abandoned = sum(1 for b in adds if b not in ordered)
    return {f"cart_adds_{CART_WINDOW}d": len(adds),
            f"cart_abandonment_{CART_WINDOW}d": abandoned / len(adds) if adds else _NAN}


def _categories(ev: EventArrays, orders: np.ndarray,
                item_category: Mapping[str, str | None]) -> dict[str, object]:
    counts: dict[str, int] = {}
    for own, item in zip(ev.category[orders].tolist(), ev.item_id[orders].tolist(), strict=True):
        category = own if own is not None else item_category.get(item) if item is not None \
            else None
        if category is not None:
            counts[category] = counts.get(category, 0) + 1
    if not counts:
        return {"order_categories_distinct": 0, "order_category_hhi": _NAN}
    total = sum(counts.values())
    return {"order_categories_distinct": len(counts),
            "order_category_hhi": float(sum(n * n for n in counts.values())) / float(total * total)}


def feature_row(ev: EventArrays, rows: np.ndarray, cut: int, *, activity: Sequence[str],
                lookback_days: int, signup: dt.datetime | None,
                item_category: Mapping[str, str | None]) -> dict[str, object]:
    """Every registered feature of one (user, cutoff): ``rows`` are the user's events (any
    time), ``cut`` the cutoff in microseconds, ``signup`` the users row's sign-up (or None)."""
    rows = ev.before(rows, cut)
    age = cut - ev.ts[rows]
    kinds = ev.type[rows]
    orders = kinds == "order"
    out = _counts(kinds, age, activity, lookback_days)
    out |= _money(ev, rows[orders], age[orders])
    out |= _reviews(ev, rows[kinds == "review"])
    out |= _sessions(ev, rows, age)
    days = np.unique(np.floor_divide(ev.ts[rows[orders]], DAY_US))
    mean, std, last = _gap_stats(days)
    out |= {"order_days_total": int(days.size), "order_gap_mean_days": mean,
            "order_gap_std_days": std, "order_gap_last_days": last,
            "overdue_ratio": out["days_since_last_order"] / mean}
    out |= _cart(ev, rows, age)
    out |= _categories(ev, rows[orders], item_category)
    still_open = _open_tickets(ev, rows[np.isin(kinds, ["support_ticket", "ticket_resolved"])])
    out["tickets_unresolved"] = int(still_open.size)
    out["oldest_unresolved_ticket_days"] = \
        (cut - int(ev.ts[still_open].min())) / DAY if still_open.size else _NAN
    # a sign-up at or after the cutoff is not known at the cutoff; greatest() skips NULLs
    known = [cut - cutoff_us(signup)] if signup is not None and cutoff_us(signup) < cut else []
    known += [int(age.max())] if age.size else []
    out["tenure_days"] = max(known) / DAY if known else _NAN
    return out


_COUNTS = frozenset(n for n, s in FEATURES.items() if s.unit == "count")


@functools.lru_cache(maxsize=256)
def _category_dtype(categories: tuple[str, ...]) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(categories))


def _index(keys: Sequence[tuple[str, pd.Timestamp]]) -> pd.MultiIndex:
    """The (user_id, cutoff) index build_features gives (text user ids, microsecond cutoffs)."""
    return pd.MultiIndex.from_arrays(
        [np.array([u for u, _ in keys], dtype=object),
         np.array([c.to_datetime64() for _, c in keys], dtype="datetime64[us]")],
        names=["user_id", "cutoff"])


def attribute_values(store: Store, attributes: Sequence[object]) -> dict[str, dict[str, object]]:
    """The ``attr_`` values of every user with attributes, computed by the SQL's own expressions
    (TRY_CAST for numeric attributes, the largest value per name): user_id -> column -> value
    (a float, NaN for none, or a category's text, None for none)."""
    if not attributes:
        return {}
    cols = []
    for a in attributes:
        value = "TRY_CAST(value AS DOUBLE)" if a.numeric else "value"
        name = a.name.replace("'", "''")
        cols.append(f"max({value}) FILTER (WHERE name = '{name}') AS \"{a.column}\"")
    rows = store.con.execute(
        f"SELECT user_id, {', '.join(cols)} FROM user_attributes "
        "WHERE nullif(trim(value), '') IS NOT NULL GROUP BY user_id").fetchall()
    numeric = [a.numeric for a in attributes]
    return {str(row[0]): {a.column: (_NAN if v is None else float(v)) if is_number else v
                          for a, v, is_number in zip(attributes, row[1:], numeric, strict=True)}
            for row in rows}


def features_of_events(ev: EventArrays, population: Sequence[tuple[str, dt.datetime]], *,
                       features: Sequence[str], activity: Sequence[str], lookback_days: int,
                       signups: Mapping[str, dt.datetime | None],
                       item_category: Mapping[str, str | None],
                       attributes: Sequence[object] = (),
                       attribute_rows: Mapping[str, Mapping[str, object]] | None = None,
                       ) -> pd.DataFrame:
    """What :func:`churnguard.features.build_features` returns for ``features`` and these
    (user_id, cutoff) rows, from the events in ``ev`` (each user's complete history).

    ``signups``: users' sign-up times; ``item_category``: items' categories; ``attributes`` and
    ``attribute_rows``: :func:`~churnguard.features.build.attribute_columns` of the store and
    :func:`attribute_values` of them."""
    unknown = [f for f in features if f not in FEATURES and not f.startswith(ATTRIBUTE_PREFIX)]
    if unknown:
        raise ValueError(f"unknown features {unknown}; see churnguard.features.FEATURES")
    keys = sorted({(str(u), pd.Timestamp(c).as_unit("us")) for u, c in population})
    rows = [feature_row(ev, ev.rows_of(u), cutoff_us(c), activity=activity,
                        lookback_days=lookback_days, signup=signups.get(u),
                        item_category=item_category) for u, c in keys]
    index = _index(keys)
    missing = [f for f in features if f in FEATURES and rows and f not in rows[0]]
    if missing:  # a feature registered without a Python form: never a silent column
        raise NotImplementedError(f"features/frame.py does not compute {missing}")
    # One block per dtype, then the columns in order: a frame built column by column from a
    # dict costs pandas several milliseconds for one row, more than computing the features.
    counts = [f for f in features if f in _COUNTS]
    reals = [f for f in features if f in FEATURES and f not in _COUNTS]
    blocks = [pd.DataFrame(np.array([[r[f] for f in counts] for r in rows], dtype=np.int64)
                           .reshape(len(rows), len(counts)), index=index, columns=counts),
              pd.DataFrame(np.array([[r[f] for f in reals] for r in rows], dtype=float)
                           .reshape(len(rows), len(reals)), index=index, columns=reals)]
    by_column = {a.column: a for a in attributes}
    data: dict[str, object] = {}
    for name in (f for f in features if f not in FEATURES):
        attribute = by_column.get(name)
        if attribute is None:  # an attribute a model was trained with, absent here
            data[name] = np.full(len(keys), np.nan)
            continue
        values = [(attribute_rows or {}).get(u, {}).get(name) for u, _ in keys]
        if attribute.numeric:
            data[name] = np.array([_NAN if v is None else v for v in values], dtype=float)
        else:
            dtype = _category_dtype(tuple(attribute.categories))
            code = {c: k for k, c in enumerate(dtype.categories)}
            data[name] = pd.Categorical.from_codes(
                np.array([code.get(v, -1) for v in values], dtype=np.int64), dtype=dtype)
    if data:
        blocks.append(pd.DataFrame(data, index=index))
    return pd.concat(blocks, axis=1)[list(features)]


__all__ = ["EventArrays", "attribute_values", "cutoff_us", "feature_row", "features_of_events"]
