"""features/frame.py (the features of a few customers in NumPy, for the real-time answer) and
explain/context.py give what the SQL gives: every feature column, and the reason context, equal
row by row on the fixture shop of the engine tests (day and year boundaries 1 µs apart, a leap
day, an event at the cutoff, ties, NULLs, one event, empty histories, before 1970) and on a
simulated shop at instants that fall on and off midnights."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churnguard.explain import reason_context
from churnguard.explain.context import context_of_events
from churnguard.explain.queries import review_topics
from churnguard.features import FEATURES, build_features
from churnguard.features import frame as py_frame
from churnguard.features.build import attribute_columns
from churnguard.features.frame import EventArrays, attribute_values, features_of_events
from churnguard.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "spark"))
from spark_shop import shop_tables  # noqa: E402  (the engine tests' fixture shop)

# column -> relative tolerance: a sample standard deviation accumulated in another order may
# change its last bits (equal to the bit on both shops here; the bound is not needed today)
APPROXIMATE = {"order_gap_std_days": 1e-12}


def _store_of(tables: dict[str, pa.Table]) -> Store:
    store = Store.in_memory()
    for name in ("events", "users", "items", "user_attributes"):
        table = tables[name].append_column("batch_id", [["fixture"] * tables[name].num_rows])
        with store.registered(table, name) as view:
            columns = ", ".join(table.column_names)
            store.con.execute(f"INSERT INTO {name} ({columns}) SELECT {columns} FROM {view}")
    return store


def _both(store: Store, population: pd.DataFrame, *, activity: tuple[str, ...] = ("order",),
          lookback_days: int = 365) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(SQL, NumPy) features of every registered and attribute column for ``population``."""
    attributes = attribute_columns(store)
    columns = list(FEATURES) + [a.column for a in attributes]
    from churnguard.config import ChurnDefinition

    definition = ChurnDefinition(activity=list(activity), lookback_days=lookback_days)
    sql = build_features(store, population, definition=definition, features=columns)
    sql.attrs = {}
    ev = EventArrays.of(store.con.sql("SELECT * FROM events").to_arrow_table())
    signups = {str(u): t for u, t in
               store.con.execute("SELECT user_id, signup_ts FROM users").fetchall()}
    items = dict(store.con.execute("SELECT item_id, category FROM items").fetchall())
    py = features_of_events(
        ev, list(zip(population["user_id"], population["cutoff"], strict=True)),
        features=columns, activity=activity, lookback_days=lookback_days, signups=signups,
        item_category=items, attributes=attributes,
        attribute_rows=attribute_values(store, attributes))
    return sql, py


def _differences(sql: pd.DataFrame, py: pd.DataFrame) -> list[str]:
    found = []
    for column in sql.columns:
        a, b = sql[column], py[column]
        if isinstance(a.dtype, pd.CategoricalDtype):
            assert list(a.cat.categories) == list(b.cat.categories), column
            a, b = a.astype(object), b.astype(object)
        if column in APPROXIMATE:
            same = pd.Series(np.isclose(a, b, rtol=APPROXIMATE[column], atol=0, equal_nan=True),
                             index=a.index)
        else:
            same = (a == b) | (a.isna() & b.isna())
        for key in same.index[~same.to_numpy()][:3]:
            found.append(f"{column} at {key}: sql {a[key]!r}, numpy {b[key]!r}")
    return found


@pytest.fixture(scope="module")
def fixture_shop() -> tuple[Store, pd.DataFrame]:
    tables = shop_tables()
    store = _store_of(tables)
    yield store, tables["population"].to_pandas()
    store.close()


def test_every_feature_equals_the_sql_on_the_fixture_shop(fixture_shop) -> None:
    store, population = fixture_shop
    sql, py = _both(store, population)
    assert list(py.columns) == list(sql.columns)
    assert py.index.equals(sql.index)
    assert [str(t) for t in py.dtypes] == [str(t) for t in sql.dtypes]
    assert _differences(sql, py) == []
    # the fixture exercises the features: every column has a value other than 0 and NaN
    assert (sql.notna() & (sql != 0)).any().sum() >= len(FEATURES)
    # the customers with no history at a cutoff (the empty one, one whose events all come
    # at or after it) are rows of NaN and 0, as the SQL's
    for user in ("u_empty", "u_later"):
        row = py.loc[(user, pd.Timestamp("2025-01-01"))]
        assert row["orders_total"] == 0 and np.isnan(row["days_since_last_event"])


@pytest.mark.parametrize("activity,lookback", [(("order",), 365), (("order", "visit"), 30)])
def test_every_feature_equals_the_sql_on_a_simulated_shop(simulated_shop, activity,
                                                          lookback) -> None:
    """Every customer of the 3,000-customer shop at a midnight, at an instant inside a day and
    1 µs after an order (so that order is in, one just after the cutoff is not)."""
    store = simulated_shop.store
    users = [u for (u,) in store.con.execute(
        "SELECT DISTINCT user_id FROM events ORDER BY user_id").fetchall()]
    (last,) = store.con.execute("SELECT max(ts) FROM events WHERE type = 'order'").fetchall()[0]
    cutoffs = [dt.datetime(2025, 11, 1), dt.datetime(2025, 9, 17, 13, 45, 7, 250),
               last + dt.timedelta(microseconds=1)]
    population = pd.DataFrame([(u, c) for u in users for c in cutoffs],
                              columns=["user_id", "cutoff"])
    sql, py = _both(store, population, activity=activity, lookback_days=lookback)
    assert len(sql) == len(users) * 3 and py.index.equals(sql.index)
    assert [str(t) for t in py.dtypes] == [str(t) for t in sql.dtypes]
    assert _differences(sql, py) == []
    assert (sql.notna() & (sql != 0)).any().sum() >= len(FEATURES) - 8  # the shop's own gaps


def test_reason_context_equals_the_query(fixture_shop, simulated_shop) -> None:
    """The real-time reason context (review topics by the query's own SQL expression) equals
    reason_context's frame, on both shops (the simulated one has review texts in two
    languages)."""
    for store, population in (fixture_shop, (simulated_shop.store, None)):
        if population is None:
            users = [u for (u,) in store.con.execute(
                "SELECT DISTINCT user_id FROM events ORDER BY user_id").fetchall()]
            population = pd.DataFrame({"user_id": users, "cutoff": dt.datetime(2025, 12, 1)})
        expected = reason_context(store, population)
        ev = EventArrays.of(store.con.sql("SELECT * FROM events").to_arrow_table())
        texts = sorted({t for t in ev.text.tolist() if t is not None})
        topics = dict(zip(texts, review_topics(store, texts), strict=True))  # one query
        topics[None] = review_topics(store, [None])[0]
        got = context_of_events(
            ev, list(zip(population["user_id"], population["cutoff"], strict=True)),
            topic_of=topics.__getitem__)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert expected["last_review_topic"].notna().any()


def test_order_amounts_round_as_duckdb_casts_them() -> None:
    """Sums of order amounts are DECIMAL(38, 6) in the SQL: each DOUBLE amount is scaled and
    rounded half away from zero as DuckDB casts it (half-way cases included, where Python's
    round() would go to even)."""
    rng = np.random.default_rng(3)
    amounts = [0.0000005, 0.0000015, 2.5e-6, -2.5e-6, 1.0000005, 1e6 + 0.01, 1e14 + 0.3,
               123456.1234565, *np.round(rng.gamma(2, 20, 500), 2).tolist(),
               *rng.uniform(-1e6, 1e6, 500).tolist()]
    con = Store.in_memory().con
    con.execute("CREATE TABLE a (k INTEGER, x DOUBLE)")
    con.executemany("INSERT INTO a VALUES (?, ?)", list(enumerate(amounts)))
    cast = con.execute("SELECT (x::DECIMAL(38, 6) * 1000000)::HUGEINT, "
                       "(x::DECIMAL(38, 6))::DOUBLE FROM a ORDER BY k").fetchall()
    assert [py_frame._micro_units(x) for x in amounts] == [int(m) for m, _ in cast]
    assert [py_frame._decimal_double(py_frame._micro_units(x)) for x in amounts] == \
        [d for _, d in cast]


def test_a_registered_feature_without_a_numpy_form_is_refused(fixture_shop,
                                                              monkeypatch) -> None:
    """A feature added to the registry and the SQL but not here must fail loudly, never come
    back as a column of zeros."""
    store, population = fixture_shop
    extra = dict(FEATURES)
    extra["brand_new_feature"] = next(iter(FEATURES.values()))
    monkeypatch.setattr(py_frame, "FEATURES", extra)
    ev = EventArrays.of(store.con.sql("SELECT * FROM events").to_arrow_table())
    with pytest.raises(NotImplementedError, match="brand_new_feature"):
        features_of_events(ev, [("u_one", dt.datetime(2025, 1, 1))],
                           features=["orders_total", "brand_new_feature"], activity=("order",),
                           lookback_days=365, signups={}, item_category={})
