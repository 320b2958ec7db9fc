"""recommend_items, popular_items, evaluate_recommendations: exclusions, point in time, cold start,
fallback, shape, and quality against the popularity baseline on the simulated shop.

Titles go through the real MiniLM encoder (churnguard.text, the recommender's default): the tiny
shop has ten titles, and the model is loaded once per test process (other default-run tests
load it too)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from churnguard.ingest import ingest_files
from churnguard.intervene.recommend import (
    RecommendConfig,
    evaluate_recommendations,
    popular_items,
    recommend_items,
)
from churnguard.simulate import simulate
from churnguard.store import Store

AS_OF = dt.datetime(2025, 3, 1)
# The session's simulated shop runs 400 days from 2025-01-01: the last 30 days are the window.
SHOP_AS_OF = dt.datetime(2026, 1, 6)

ITEMS = [
    # item, category, title
    ("e1", "electronics", "Classic Wireless Earbuds 经典无线耳机"),
    ("e2", "electronics", "Mini Power Bank 迷你充电宝"),
    ("e3", "electronics", "Smart Watch 智能手表"),
    ("e4", "electronics", "USB-C Cable 数据线"),
    ("k1", "kitchen", "Frying Pan 平底锅"),
    ("k2", "kitchen", "Rice Cooker 电饭煲"),
    ("k3", "kitchen", "Chef Knife 厨师刀"),
    ("g1", "grocery", "Green Tea 绿茶"),
    # new items: in the catalogue, no events
    ("new_earbuds", "electronics", "Pro Wireless Earbuds 专业无线耳机"),
    ("new_oil", "grocery", "Premium Olive Oil 高级橄榄油"),
]


def _ingest(store: Store, sim_dir: Path) -> None:
    for kind in ("events", "users", "items"):
        ingest_files(store, kind=kind, files=[sim_dir / f"{kind}.parquet"])


def _events(store: Store, rows: list[tuple[str, str, str, str | None]], start: int = 0) -> None:
    """rows: (user_id, ts, type, item_id)."""
    category = {i: c for i, c, _ in ITEMS}
    store.con.executemany(
        "INSERT INTO events (event_id, user_id, ts, type, item_id, category, batch_id) "
        "VALUES (?, ?, ?, ?, ?, ?, 'b')",
        [(f"e{start + n}", u, ts, t, i, category.get(i)) for n, (u, ts, t, i) in enumerate(rows)])


@pytest.fixture
def shop() -> Store:
    """Eight electronics fans (e1..e4), six kitchen fans (k1..k3), a few tea drinkers; 'me'
    bought the earbuds e1 and looked at the power bank e2."""
    store = Store.in_memory()
    store.con.executemany("INSERT INTO items (item_id, category, title, batch_id) "
                          "VALUES (?, ?, ?, 'b')", ITEMS)
    rows = []
    for n in range(8):
        for item in ("e1", "e2", "e3", "e4")[: 2 + n % 3]:
            rows.append((f"fan{n}", f"2025-02-{1 + n:02d} 10:00", "order", item))
    for n in range(6):
        for item in ("k1", "k2", "k3"):
            rows.append((f"cook{n}", f"2025-02-{10 + n:02d} 10:00", "order", item))
    for n in range(3):
        rows.append((f"tea{n}", "2025-02-20 10:00", "order", "g1"))
    rows += [("me", "2025-02-25 09:00", "order", "e1"), ("me", "2025-02-25 09:05", "view", "e2")]
    _events(store, rows)
    yield store
    store.close()


def _items(recs: pd.DataFrame, user: str) -> list[str]:
    return recs.loc[recs["user_id"] == user, "item_id"].tolist()


@pytest.fixture(scope="module")
def shop_recommendations(simulated_shop) -> pd.DataFrame:
    """Top 10 for every customer of the session's simulated shop at SHOP_AS_OF."""
    return recommend_items(simulated_shop.store, as_of=SHOP_AS_OF, k=10)


def test_recommends_neighbours_of_recent_items_and_never_what_was_bought(shop):
    recs = recommend_items(shop, as_of=AS_OF, user_ids=["me"], k=4)
    # e2 and e3 are bought with the earbuds by the fans; e4 has too few customers (2 < 5) for
    # neighbours of its own, so it comes in through its category's popularity.
    assert recs[["user_id", "rank", "item_id", "source"]].values.tolist() == [
        ["me", 1, "e2", "similar"], ["me", 2, "e3", "similar"], ["me", 3, "e4", "popular"],
        ["me", 4, "k1", "popular"]]


def test_already_bought_items_are_never_recommended(simulated_shop, shop_recommendations):
    store = simulated_shop.store
    bought = store.con.execute(
        "SELECT DISTINCT user_id, item_id FROM events WHERE type = 'order' AND ts < ?",
        [SHOP_AS_OF]).df()
    assert bought["user_id"].nunique() > 1000
    assert len(shop_recommendations.merge(bought, on=["user_id", "item_id"])) == 0
    baseline = popular_items(store, as_of=SHOP_AS_OF, k=10)
    assert len(baseline.merge(bought, on=["user_id", "item_id"])) == 0


def test_events_at_or_after_the_cutoff_change_nothing(shop):
    before = recommend_items(shop, as_of=AS_OF, k=5)
    baseline = popular_items(shop, as_of=AS_OF, k=5)
    # At exactly the cutoff and after: 'me' orders what was recommended, the fans buy the new
    # earbuds and look at the oil, a stranger appears with an item never seen before.
    _events(shop, [
        ("me", "2025-03-01 00:00", "order", "e3"), ("me", "2025-03-01 00:00", "order", "e2"),
        *[(f"fan{n}", "2025-03-01 00:00", "order", "new_earbuds") for n in range(8)],
        *[(f"fan{n}", "2025-03-02 10:00", "view", "new_oil") for n in range(8)],
        ("stranger", "2025-03-05 10:00", "order", "x_future"),
    ], start=1000)
    pd.testing.assert_frame_equal(recommend_items(shop, as_of=AS_OF, k=5), before)
    pd.testing.assert_frame_equal(popular_items(shop, as_of=AS_OF, k=5), baseline)
    assert "stranger" not in set(before["user_id"])


def test_no_lookahead_on_the_simulated_shop(simulated_shop):
    as_of = dt.datetime(2025, 11, 1)
    full = recommend_items(simulated_shop.store, as_of=as_of, k=10)
    with Store.in_memory() as cut:
        for table in ("items", "users", "events"):
            rows = simulated_shop.store.con.sql(f"SELECT * FROM {table}").to_arrow_table()
            cut.con.register("copied", rows)
            cut.con.execute(f"INSERT INTO {table} SELECT * FROM copied")
            cut.con.unregister("copied")
        cut.con.execute("DELETE FROM events WHERE ts >= ?", [as_of])
        pd.testing.assert_frame_equal(recommend_items(cut, as_of=as_of, k=10), full)


def test_title_path_weighs_title_closeness_and_can_be_switched_off(shop):
    # MiniLM: "Pro Wireless Earbuds 专业无线耳机" is close to the earbuds 'me' bought; the olive
    # oil is close to nothing 'me' touched.
    recs = recommend_items(shop, as_of=AS_OF, user_ids=["me"], k=10)
    new = recs[recs["item_id"] == "new_earbuds"]
    assert new["source"].tolist() == ["title"]
    assert new["score"].iloc[0] > 0
    assert "new_oil" not in _items(recs, "me")
    # A new item is reachable through its title only.
    off = recommend_items(shop, as_of=AS_OF, user_ids=["me"], k=10,
                    config=RecommendConfig(title_share=0.0))
    assert "new_earbuds" not in _items(off, "me")
    # Its weight is small: it ranks below every item with history of its own.
    assert recs["item_id"].iloc[-1] == "new_earbuds"


def test_a_customer_without_history_gets_popular_items(shop):
    # Orders before the cutoff: e1 9, e2 8, k1 k2 k3 6 each, e3 5, g1 3, e4 2.
    recs = recommend_items(shop, as_of=AS_OF, user_ids=["nobody"], k=5)
    assert recs[["rank", "item_id", "source"]].values.tolist() == [
        [1, "e1", "popular"], [2, "e2", "popular"], [3, "k1", "popular"], [4, "k2", "popular"],
        [5, "k3", "popular"]]
    baseline = popular_items(shop, as_of=AS_OF, user_ids=["nobody"], k=5)
    assert baseline["item_id"].tolist() == ["e1", "e2", "k1", "k2", "k3"]


def test_a_look_at_one_item_brings_its_neighbours_and_its_category(shop):
    # cook0 bought every kitchen item: the rest of the shop comes by popularity.
    recs = recommend_items(shop, as_of=AS_OF, user_ids=["cook0"], k=3)
    assert recs["item_id"].tolist() == ["e1", "e2", "e3"]
    # tea0 bought green tea only; one look at the knife k3 brings the pan and the rice cooker
    # (bought with it by the cooks) and the knife itself (kitchen, not bought) before the
    # better-selling earbuds.
    _events(shop, [("tea0", "2025-02-26 10:00", "view", "k3")], start=3000)
    recs = recommend_items(shop, as_of=AS_OF, user_ids=["tea0"], k=4)
    assert recs[["item_id", "source"]].values.tolist() == [
        ["k1", "similar"], ["k2", "similar"], ["k3", "popular"], ["e1", "popular"]]


def test_popular_baseline_excludes_what_the_customer_bought(shop):
    recs = popular_items(shop, as_of=AS_OF, user_ids=["me", "cook0"], k=2)
    assert recs[["user_id", "rank", "item_id", "score", "source"]].values.tolist() == [
        ["me", 1, "e2", 8.0, "popular"], ["me", 2, "k1", 6.0, "popular"],
        ["cook0", 1, "e1", 9.0, "popular"], ["cook0", 2, "e2", 8.0, "popular"]]


def test_k_is_respected_and_ranks_run_from_one(simulated_shop, shop_recommendations):
    users = [f"u{j:07d}" for j in range(2999, 0, -11)]  # not sorted: the order asked is kept
    subset = recommend_items(simulated_shop.store, as_of=SHOP_AS_OF, user_ids=users, k=7)
    baseline = popular_items(simulated_shop.store, as_of=SHOP_AS_OF, user_ids=users, k=7)
    for recs, k in ((shop_recommendations, 10), (subset, 7), (baseline, 7)):
        assert list(recs.columns) == ["user_id", "rank", "item_id", "score", "source"]
        assert (recs.groupby("user_id", sort=False).size() == k).all()
        assert (recs["rank"] == recs.groupby("user_id", sort=False).cumcount() + 1).all()
        assert not recs.duplicated(["user_id", "item_id"]).any()
        assert (recs.groupby("user_id")["score"].diff().dropna() <= 0).all()
        assert set(recs["source"]) <= {"similar", "title", "popular"}
    assert subset["user_id"].drop_duplicates().tolist() == users
    assert baseline["user_id"].drop_duplicates().tolist() == users
    # The subset's lists are the full run's cut at 7 (customers who signed up after the cutoff
    # are in the subset only: asked for by name, they get popular items).
    full = shop_recommendations[shop_recommendations["rank"] <= 7]
    both = subset.merge(full, on=["user_id", "rank"], suffixes=("", "_full"))
    assert both["user_id"].nunique() > 200
    assert (both["item_id"] == both["item_id_full"]).all()


def test_fewer_rows_when_fewer_items_have_a_score(shop):
    recs = recommend_items(shop, as_of=AS_OF, user_ids=["me"], k=50,
                     config=RecommendConfig(title_share=0.0))
    # Eight items had orders; 'me' bought one of them.
    assert recs["rank"].tolist() == list(range(1, 8))


def test_every_customer_at_the_cutoff_and_nobody_else(shop):
    recs = recommend_items(shop, as_of=AS_OF, k=1)
    expected = sorted({f"fan{n}" for n in range(8)} | {f"cook{n}" for n in range(6)}
                      | {f"tea{n}" for n in range(3)} | {"me"})
    assert recs["user_id"].tolist() == expected


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_k_must_be_a_positive_integer(shop, k):
    with pytest.raises(ValueError, match=f"k must be an integer >= 1, got {k!r}"):
        recommend_items(shop, as_of=AS_OF, k=k)


def test_config_rejects_unknown_and_out_of_range_settings():
    with pytest.raises(ValidationError, match="neighbors"):
        RecommendConfig(neighbors=10)
    with pytest.raises(ValidationError, match="popular_share"):
        RecommendConfig(popular_share=1.5)


def test_evaluate_counts_customers_who_ordered_in_the_window(shop):
    # Top 2 at the cutoff: model 'me' e2 e3, cook0 e1 e2; baseline 'me' e2 k1, cook0 e1 e2.
    _events(shop, [("me", "2025-03-10 10:00", "order", "e3"),  # model hit, baseline miss
                   ("cook0", "2025-03-12 10:00", "order", "e1"),  # both hit
                   ("tea0", "2025-03-30 23:59", "order", "e4"),  # both miss
                   ("late", "2025-03-31 00:00", "order", "e1"),  # after the window
                   ("me", "2025-02-28 23:59", "order", "e2")], start=2000)  # before it
    result = evaluate_recommendations(shop, as_of=AS_OF, window_days=30, k=2)
    assert result == {"as_of": "2025-03-01T00:00:00", "window_days": 30, "k": 2,
                      "n_customers": 3, "hit_rate_model": 2 / 3, "hit_rate_popular": 1 / 3}


def test_evaluate_without_orders_in_the_window(shop):
    result = evaluate_recommendations(shop, as_of="2026-01-01", k=3)
    assert result["n_customers"] == 0
    assert np.isnan(result["hit_rate_model"]) and np.isnan(result["hit_rate_popular"])


def test_beats_popularity_on_held_out_purchases_of_the_simulated_shop(simulated_shop):
    store = simulated_shop.store
    result = evaluate_recommendations(store, as_of=SHOP_AS_OF, k=10)
    # The held-out purchases: each (customer, item) ordered in the 30 days from the cutoff.
    future = store.con.execute(
        "SELECT DISTINCT user_id, item_id FROM events WHERE type = 'order' AND "
        "item_id IS NOT NULL AND ts >= ? AND ts < ? + INTERVAL 30 DAY",
        [SHOP_AS_OF, SHOP_AS_OF]).df()
    users = sorted(future["user_id"].unique())
    assert result["n_customers"] == len(users)
    assert len(users) > 300  # enough customers for the margin below to mean something
    # The hit rates are those of the lists themselves: a customer is a hit when one of the ten
    # items shown at the cutoff is among the items they went on to order.
    model = recommend_items(store, as_of=SHOP_AS_OF, user_ids=users, k=10)
    baseline = popular_items(store, as_of=SHOP_AS_OF, user_ids=users, k=10)
    for recs, key in ((model, "hit_rate_model"), (baseline, "hit_rate_popular")):
        hits = recs.merge(future, on=["user_id", "item_id"])["user_id"].nunique()
        assert result[key] == hits / len(users)
    # Neither list spends a place on an item the customer already ordered.
    bought = store.con.execute(
        "SELECT DISTINCT user_id, item_id FROM events WHERE type = 'order' AND ts < ?",
        [SHOP_AS_OF]).df()
    for recs in (model, baseline):
        assert len(recs.merge(bought, on=["user_id", "item_id"])) == 0
    # The model beats popularity on purchases it never saw, by about four standard errors of
    # the paired difference at this size.
    assert 0 < result["hit_rate_popular"] < result["hit_rate_model"] < 1
    assert result["hit_rate_model"] >= result["hit_rate_popular"] + 0.04


@pytest.mark.slow
def test_beats_popularity_on_a_larger_shop(tmp_path: Path):
    simulate(n_users=20_000, days=365, seed=3, out_dir=tmp_path / "sim")
    with Store.open(tmp_path / "shop.duckdb", threads=2) as store:
        _ingest(store, tmp_path / "sim")
        result = evaluate_recommendations(store, as_of="2025-12-02", k=10)
    assert result["n_customers"] > 5000
    assert result["hit_rate_model"] >= 1.25 * result["hit_rate_popular"]
