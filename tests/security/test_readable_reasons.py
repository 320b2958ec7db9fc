"""Issue 16, item 16: reasons a marketer can read.

In the demo, 6,019 of 38,109 reasons were model quantities ("Buying pattern: p no purchase is
0.87"), static attributes were reasons ("Membership level: basic") and an isotonic-calibrated
probability showed as 100%. Now every feature that can reach a top-3 reason has a sentence in
English and Chinese in the customer's own terms (the BTYD outputs as how overdue the next order is
against the customer's own rhythm, from the store before the cutoff), attributes are never reasons,
and a predicted probability shown as a percentage never reads 100% or 0%
(:func:`churnguard.report.formatting.probability`)."""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churnguard.explain import reason_context, reasons
from churnguard.features import FEATURES, build_features
from churnguard.ingest import ingest_files
from churnguard.models.btyd_churn import BTYD_FEATURES
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.project import Project, init_project
from churnguard.registry import CHAMPION, register_model, set_alias
from churnguard.report.html import build_html
from churnguard.report import formatting
from churnguard.scoring import score_customers
from churnguard.service import create_app
from churnguard.simulate import simulate
from churnguard.snapshots import build_snapshot
from churnguard.store import Store
from churnguard.training import training_cutoffs

from report.report_fixtures import synthetic_report_data
from service.helpers import READ, headers, settings

CUTOFF = pd.Timestamp("2026-11-01")

# What a marketer cannot read: each pattern names what it catches.
MODEL_QUANTITY = {
    "a 'Buying pattern' sentence": re.compile(r"buying pattern|购买规律", re.IGNORECASE),
    "a raw feature name (snake_case)": re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+\b"),
    "a BTYD quantity's name": re.compile(
        r"\bbtyd\b|\bp\s+(alive|no\s+purchase)\b|expected\s+(orders|purchases)", re.IGNORECASE),
    # a bare fraction after "is"/"为"/a colon, or a number with more decimals than money has
    "'is 0.87' style": re.compile(r"(\bis|为|[:：])\s*-?0\.\d+|\d\.\d{3,}"),
    "a model probability": re.compile(r"\bchance\b|probabilit|likelihood|概率|可能性",
                                      re.IGNORECASE),
    "'Label: value', a feature dump": re.compile(r"[:：]"),
}


def model_quantities(sentence: str) -> list[str]:
    """The names of the patterns ``sentence`` matches (empty: a marketer can read it)."""
    return [name for name, pattern in MODEL_QUANTITY.items() if pattern.search(sentence)]


def test_the_patterns_catch_what_the_demo_showed():
    for raw in ("Buying pattern: p no purchase is 0.87", "购买规律：p no purchase为0.87", "预计订单为0.42",
                "Buying pattern suggests a 35% chance they are still active",
                "Membership level: basic", "Membership level：basic", "btyd_p_alive is 0.4",
                "Expected orders is 0.31"):
        assert model_quantities(raw), raw
    for readable in ("Usually orders every 24 days; it has been 61 days since the last order",
                     "通常每24天下单一次，距上次下单已61天", "Average order value 1,234.50",
                     "Left a 1-star review about delivery on 2026-10-02",
                     "最近90天消费0，之前90天为34.13"):
        assert model_quantities(readable) == [], readable


# -- 1. every feature that can be a reason reads in both languages --------------------------------
# A customer with something to say in every theme: lapsed (61 days since the last order, usually
# every 24), fewer orders and less spend than before, browsing little, carts abandoned, returns, a
# low review, an open ticket, coupons.
CUSTOMER = {
    "days_since_last_event": 20.5, "days_since_last_activity": 61.2, "days_since_last_order": 61.2,
    "events_30d": 3, "events_90d": 14, "orders_total": 9, "orders_in_lookback": 5,
    "order_days_total": 8, "order_amount_sum": 812.4, "order_amount_mean": 90.27,
    "order_amount_max": 180.0,
    **{f"orders_{w}d": 1 for w in (30, 90, 180)}, **{f"orders_prev_{w}d": 3 for w in (30, 90, 180)},
    **{f"orders_trend_{w}d": 0.5 for w in (30, 90, 180)},
    **{f"spend_{w}d": 40.0 for w in (30, 90, 180)},
    **{f"spend_prev_{w}d": 260.0 for w in (30, 90, 180)},
    **{f"spend_trend_{w}d": 41 / 261 for w in (30, 90, 180)},
    "order_gap_mean_days": 24.3, "order_gap_std_days": 6.1, "order_gap_last_days": 30.0,
    "overdue_ratio": 61.2 / 24.3,
    **{f"views_{w}d": v for w, v in ((30, 1), (90, 12))},
    **{f"searches_{w}d": v for w, v in ((30, 0), (90, 3))},
    **{f"visits_{w}d": v for w, v in ((30, 1), (90, 6))},
    **{f"sessions_{w}d": v for w, v in ((30, 1), (90, 7))},
    "days_since_last_visit": 20.5, "cart_adds_90d": 4, "cart_removes_90d": 2,
    "cart_abandonment_90d": 0.75, "order_categories_distinct": 2, "order_category_hhi": 0.62,
    "returns_total": 2, "return_rate": 2 / 9, "reviews_total": 3, "review_rating_mean": 2.67,
    "review_rating_last": 1, "review_low_share": 1 / 3, "days_since_last_review": 33.0,
    "tickets_total": 2, "tickets_unresolved": 1, "days_since_last_ticket": 12.0,
    "oldest_unresolved_ticket_days": 12.0, "coupons_redeemed": 3, "coupons_redeemed_90d": 0,
    "tenure_days": 400.0,
    # what the GBDT adds (models/btyd_churn.py) and user attributes (features/build.py)
    "btyd_p_alive": 0.31, "btyd_expected_orders": 0.42, "btyd_p_no_purchase": 0.87,
    "attr_membership_level": "basic", "attr_age": 31.0,
}
ATTRIBUTES = ("attr_membership_level", "attr_age")
# Every column a model can explain with a reason: the registry, the BTYD outputs and attributes.
REASON_FEATURES = (*FEATURES, *BTYD_FEATURES, *ATTRIBUTES)


def one_row(values: dict, contributions: dict,
            user: str = "u") -> tuple[pd.DataFrame, pd.DataFrame]:
    index = pd.MultiIndex.from_tuples([(user, CUTOFF)], names=["user_id", "cutoff"])
    features = pd.DataFrame({f: [v] for f, v in values.items()}, index=index)
    shap = pd.DataFrame({f: [contributions.get(f, 0.0)] for f in values}, index=index)
    shap["bias"] = -1.0
    return shap, features


def test_the_customer_covers_every_feature_that_can_be_a_reason():
    assert set(REASON_FEATURES) <= set(CUSTOMER)


@pytest.mark.parametrize("lang", ["en", "zh"])
@pytest.mark.parametrize("feature", [f for f in REASON_FEATURES if f not in ATTRIBUTES])
def test_every_feature_that_can_be_a_reason_reads_for_a_marketer(feature: str, lang: str):
    shap, features = one_row(CUSTOMER, {feature: 1.0})
    out = reasons(shap, features, lang=lang)
    sentence = out["reason_1"].iloc[0]
    assert sentence, f"{feature} pushes toward churn, yet no sentence says it ({lang})"
    assert model_quantities(sentence) == [], (feature, lang, sentence)
    assert out["reason_2"].iloc[0] == ""  # one feature pushes: one reason


@pytest.mark.parametrize("feature", BTYD_FEATURES)
def test_btyd_outputs_are_said_as_the_customers_own_rhythm(feature: str):
    shap, features = one_row(CUSTOMER, {feature: 1.0})
    en, zh = reasons(shap, features), reasons(shap, features, lang="zh")
    assert en["reason_1"].iloc[0] == (
        "Usually orders every 24 days; it has been 61 days since the last order")
    assert zh["reason_1"].iloc[0] == "通常每24天下单一次，距上次下单已61天"
    assert en["reason_keys_1"].iloc[0] == "purchase_rhythm"  # the key messages read, unchanged


def test_a_customer_not_yet_overdue_hears_of_their_slow_rhythm():
    slow = CUSTOMER | {"order_gap_mean_days": 72.4, "days_since_last_order": 29.6}
    shap, features = one_row(slow, {"btyd_p_no_purchase": 1.0})
    assert reasons(shap, features)["reason_1"].iloc[0] == (
        "Usually orders only every 72 days; the last order was 29 days ago")
    assert reasons(shap, features, lang="zh")["reason_1"].iloc[0] == (
        "平时约每72天才下单一次，上次下单在29天前")


def test_a_customer_with_one_order_day_has_no_rhythm_yet():
    one = CUSTOMER | {"order_days_total": 1, "order_gap_mean_days": np.nan}
    shap, features = one_row(one, {"btyd_p_no_purchase": 1.0})
    assert reasons(shap, features)["reason_1"].iloc[0] == (
        "Has ordered on only one day so far, 61 days ago")
    assert reasons(shap, features, lang="zh")["reason_1"].iloc[0] == "至今只在一天下过单，距今已61天"


@pytest.fixture
def rhythm_shop() -> Iterator[Store]:
    """Orders on 2026-08-01, 08-25 and 09-01 (twice that day), one after the cutoff."""
    store = Store.in_memory()
    days = ["2026-08-01 10:00", "2026-08-25 09:00", "2026-09-01 08:00", "2026-09-01 20:00",
            "2026-11-20 12:00"]
    store.con.executemany(
        "INSERT INTO events (event_id, user_id, ts, type, batch_id) VALUES (?, ?, ?, ?, 't')",
        [[f"e{i}", "a", pd.Timestamp(ts).to_pydatetime(), "order"] for i, ts in enumerate(days)])
    yield store
    store.close()


def test_the_rhythm_comes_from_the_store_before_the_cutoff(rhythm_shop: Store):
    population = pd.DataFrame({"user_id": ["a"], "cutoff": [CUTOFF]})
    ctx = reason_context(rhythm_shop, population).iloc[0]
    # three order days before the cutoff (the order of 11-20 is not known yet): gaps 24 and 7
    assert ctx["order_days"] == 3 and ctx["usual_order_gap_days"] == pytest.approx(15.5)
    assert ctx["days_since_order"] == pytest.approx(
        (CUTOFF - pd.Timestamp("2026-09-01 20:00")) / pd.Timedelta(days=1))
    features = build_features(rhythm_shop, population, features=[
        "order_days_total", "order_gap_mean_days", "days_since_last_order"]).iloc[0]
    assert (features["order_days_total"], features["order_gap_mean_days"],
            features["days_since_last_order"]) == pytest.approx(
        (ctx["order_days"], ctx["usual_order_gap_days"], ctx["days_since_order"]))
    # a BTYD-only model (no gap features among its columns) still says the rhythm, from the store
    shap, values = one_row({"btyd_p_alive": 0.2}, {"btyd_p_alive": 1.0}, user="a")
    out = reasons(shap, values, context=reason_context(rhythm_shop, population))
    assert out["reason_1"].iloc[0] == (
        "Usually orders every 16 days; it has been 60 days since the last order")


# -- 2. static attributes are not reasons ---------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_attributes_never_reach_the_top_three(lang: str):
    pushes = {"attr_membership_level": 5.0, "attr_age": 4.0, "tickets_unresolved": 0.3,
              "coupons_redeemed": 0.2, "tenure_days": 0.1}
    shap, features = one_row(CUSTOMER, pushes)
    out = reasons(shap, features, lang=lang).iloc[0]
    said = [out[f"reason_{i}"] for i in (1, 2, 3)]
    assert [out[f"reason_keys_{i}"] for i in (1, 2, 3)] == ["open_tickets", "coupons", "tenure"]
    assert not any("basic" in s or "31" in s or "embership" in s for s in said), said


# -- 3. probabilities are never shown as certain --------------------------------------------------
@pytest.mark.parametrize(("p", "digits", "shown"), [
    (1.0, 1, ">99.9%"), (0.99996, 1, ">99.9%"), (0.0, 1, "<0.1%"), (0.0004, 1, "<0.1%"),
    (0.999, 1, "99.9%"), (0.001, 1, "0.1%"), (0.8734, 1, "87.3%"),
    (1.0, 0, ">99%"), (0.996, 0, ">99%"), (0.0, 0, "<1%"), (0.004, 0, "<1%"), (0.5, 0, "50%"),
    (float("nan"), 1, "—"), (None, 1, "—")])
def test_probability_never_reads_certain(p, digits: int, shown: str):
    assert formatting.probability(p, digits) == shown


def test_the_report_never_shows_a_certain_probability():
    data = synthetic_report_data()
    scores = data.scores.copy()
    top, bottom = scores["p_churn"].idxmax(), scores["p_churn"].idxmin()
    scores.loc[top, "p_churn"], scores.loc[bottom, "p_churn"] = 1.0, 0.0  # isotonic's end steps
    html = build_html(dataclasses.replace(data, scores=scores))
    cells = re.findall(r'<td class="num">([^<]*(?:&[lg]t;[^<]*)?)</td>', html)
    assert "100.0%" not in cells and "0.0%" not in cells
    top_user = re.escape(scores.loc[top, "user_id"])
    assert re.search(rf"<code>{top_user}</code></td><td class=\"num\">&gt;99\.9%</td>", html)
    assert re.search(r"&lt;0\.1% – ", html)  # the low tier's probability range


# -- 4. a small simulated shop with a GBDT champion: no model quantity in any reason -------------
@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 simulated customers over 420 days and a small GBDT champion (with the BTYD outputs
    among its columns, as the production GBDT has)."""
    base = tmp_path_factory.mktemp("readable_reasons")
    sim = simulate(n_users=300, days=420, seed=5, out_dir=base / "inputs")
    project, _ = init_project(base / "project")
    with project.open_store() as store:
        for kind in ("items", "users", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        definition = project.config.churn
        fit, validation = training_cutoffs(store, definition=definition)
        snapshot = build_snapshot(store, definition=definition, cutoffs=[*fit, validation])
        is_valid = snapshot.index.get_level_values(1) == validation
        gbdt = GBDTChurnModel(n_estimators=60, early_stopping_rounds=20, n_jobs=1,
                              use_btyd=True).fit(snapshot.subset(~is_valid),
                                                 validation=snapshot.subset(is_valid))
        version = register_model(store, gbdt, name="gbdt", config={"model": gbdt.get_params()},
                                 data_window={}, metrics={}, features=gbdt.snapshot_features_)
        set_alias(store, CHAMPION, version, reason="first model")
    return project.root


def test_no_reason_of_a_scored_shop_is_a_model_quantity(shop: Path):
    project = Project.load(shop)
    raw: list[tuple[str, str, list[str]]] = []
    total = 0
    keys: set[str] = set()
    with project.open_store() as store:
        for lang in ("en", "zh"):
            result = score_customers(store, definition=project.config.churn,
                                     tiers=project.config.scoring, lang=lang, save=lang == "en")
            said = result.scores[["reason_1", "reason_2", "reason_3"]].to_numpy().ravel()
            said = [s for s in said if s]
            total += len(said)
            raw += [(lang, s, model_quantities(s)) for s in said if model_quantities(s)]
            keys |= set(result.reason_keys[["reason_keys_1", "reason_keys_2",
                                            "reason_keys_3"]].to_numpy().ravel())
    assert total > 500  # most of 300 customers have three reasons, in two languages
    assert raw == [], f"{len(raw)} of {total} reasons are model quantities, e.g. {raw[:3]}"
    assert sum("Buying pattern" in s for s in said) == 0
    # the BTYD outputs did push (said as the rhythm), attributes never show
    assert "purchase_rhythm" in keys
    assert not any(k.startswith("attr_") for k in keys), keys


def test_the_dashboard_never_shows_a_certain_probability(shop: Path, tmp_path: Path):
    root = tmp_path / "project"
    shutil.copytree(shop, root)
    project = Project.load(root)
    with project.open_store() as store:
        score_customers(store, definition=project.config.churn, tiers=project.config.scoring)
        # the calibrator's top and bottom steps: exactly 1 and 0 are stored as they are
        (top,), = store.con.execute(
            "SELECT user_id FROM scores ORDER BY p_churn DESC, user_id LIMIT 1").fetchall()
        store.con.execute("UPDATE scores SET p_churn = 1.0 WHERE user_id = ?", [top])
        store.con.execute("UPDATE scores SET p_churn = 0.0 WHERE user_id <> ? AND p_churn = "
                          "(SELECT min(p_churn) FROM scores)", [top])
    app = create_app(Project.load(root), settings(warm_on_start=False))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.post("/dashboard/session", headers=headers(READ)).status_code == 200
        listing = client.get("/customers").text
        assert "100.0%" not in listing and "&gt;99.9%" in listing
        ascending = client.get("/customers",
                               params={"sort": "p_churn", "order": "asc"}).text
        assert ">0.0%<" not in ascending and "&lt;0.1%" in ascending
        page = client.get(f"/customers/{top}").text
        assert "100.0%" not in page and "&gt;99.9%" in page  # the history of stored scores
        overview = client.get("/").text
        assert ">100%<" not in overview and " 100%<" not in overview
