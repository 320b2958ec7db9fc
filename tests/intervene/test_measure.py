"""measure_campaign: exact figures on hand-built stores, intervals against published numbers and
scipy, precise errors, and coverage of the simulator's true effects over seeds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from churnguard.ingest import ingest_files
from churnguard.intervene.measure import (
    ALL,
    CampaignMeasurement,
    MeasurementError,
    adjusted_difference,
    campaign_outcomes,
    latest_measurement,
    measure_campaign,
    newcombe_interval,
    save_measurement,
    welch_interval,
    wilson_interval,
)
from churnguard.simulate import ACTIONS, simulate
from churnguard.store import Store

T0 = dt.datetime(2025, 3, 2, 9)
DAY = dt.timedelta(days=1)


# -- intervals ------------------------------------------------------------------------------------
# Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (hybrid score, no
# continuity correction): (x1, n1, x2, n2) -> (lower, upper), four decimals.
NEWCOMBE_TABLE_II = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
]


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE_II)
def test_newcombe_interval_matches_the_published_table(counts, expected):
    x1, n1, x2, n2 = (np.array([v]) for v in counts)
    lo, hi = newcombe_interval(x1, n1, x2, n2)
    assert (round(float(lo[0]), 4), round(float(hi[0]), 4)) == expected


def test_wilson_interval_matches_newcombe_1998_single_proportion_examples():
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (score, no CC).
    lo, hi = wilson_interval(np.array([81, 15, 0, 1]), np.array([263, 148, 20, 29]))
    assert np.round(lo, 4).tolist() == [0.2553, 0.0624, 0.0, 0.0061]
    assert np.round(hi, 4).tolist() == [0.3662, 0.1605, 0.1611, 0.1718]


def test_welch_interval_agrees_with_scipy_on_raw_data():
    rng = np.random.default_rng(0)
    a, b = rng.gamma(1.5, 20, 70), rng.gamma(1.2, 20, 45)
    lo, hi = welch_interval(np.array([a.mean()]), np.array([a.var(ddof=1)]), np.array([a.size]),
                            np.array([b.mean()]), np.array([b.var(ddof=1)]), np.array([b.size]))
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert lo[0] == pytest.approx(ci.low, rel=1e-10)
    assert hi[0] == pytest.approx(ci.high, rel=1e-10)


def test_welch_interval_of_constant_groups_is_the_point():
    lo, hi = welch_interval(np.array([5.0]), np.array([0.0]), np.array([40]),
                            np.array([2.0]), np.array([0.0]), np.array([40]))
    assert (lo[0], hi[0]) == (3.0, 3.0)


def test_confidence_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        wilson_interval(np.array([1]), np.array([2]), confidence=95)


# -- hand-built stores ----------------------------------------------------------------------------
def _campaign(store: Store, rows: list[tuple], campaign_id: str = "c1") -> None:
    """rows: (user_id, action, is_control, cost[, assigned_at])."""
    frame = pd.DataFrame([(campaign_id, r[0], r[1], r[4] if len(r) > 4 else T0, r[2], r[3],
                           "email", "b") for r in rows],
                         columns=["campaign_id", "user_id", "action", "assigned_at",
                                  "is_control", "cost", "channel", "batch_id"])
    store.con.register("new_campaign_rows", frame)
    store.con.execute("INSERT INTO campaigns SELECT * FROM new_campaign_rows")
    store.con.unregister("new_campaign_rows")


def _events(store: Store, rows: list[tuple]) -> None:
    """rows: (user_id, ts, type, amount)."""
    frame = pd.DataFrame([(f"e{j}", *r, "b") for j, r in enumerate(
        rows, start=store.con.execute("SELECT count(*) FROM events").fetchall()[0][0])],
        columns=["event_id", "user_id", "ts", "type", "amount", "batch_id"])
    store.con.register("new_event_rows", frame)
    store.con.execute("INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) "
                      "SELECT * FROM new_event_rows")
    store.con.unregister("new_event_rows")


def _balanced_store(*, n: int = 40, treated_orders: int = 30, control_orders: int = 20) -> Store:
    """n coupon_10 customers (cost 2 each) and n controls; the first k of each order 50.0 once on
    day 5; an event on day 100 makes the window observable."""
    store = Store.in_memory()
    _campaign(store, [(f"t{i}", "coupon_10", False, 2.0) for i in range(n)]
              + [(f"c{i}", "none", True, 0.0) for i in range(n)])
    _events(store, [(f"t{i}", T0 + 5 * DAY, "order", 50.0) for i in range(treated_orders)]
            + [(f"c{i}", T0 + 5 * DAY, "order", 50.0) for i in range(control_orders)]
            + [("someone", T0 + 100 * DAY, "visit", None)])
    return store


def test_figures_of_a_hand_built_campaign_are_exact():
    m = measure(_balanced_store())
    g = m.group("coupon_10")
    assert (g.n_treated, g.n_control, g.retained_treated, g.retained_control) == (40, 40, 30, 20)
    assert (g.retention_treated, g.retention_control) == (0.75, 0.5)
    assert g.incremental_retention == pytest.approx(0.25)
    assert (g.revenue_per_treated, g.revenue_per_control, g.cost_per_treated) == (37.5, 25.0, 2.0)
    # (37.5 - 2) - 25
    assert g.incremental_net_revenue == pytest.approx(10.5)
    assert g.incremental_retained == pytest.approx(10.0)
    assert g.incremental_net_revenue_total == pytest.approx(420.0)
    lo, hi = newcombe_interval(np.array([30]), np.array([40]), np.array([20]), np.array([40]))
    assert g.incremental_retention_ci == pytest.approx((lo[0], hi[0]))
    assert g.incremental_retained_ci == pytest.approx((40 * lo[0], 40 * hi[0]))
    net_t = np.r_[np.full(30, 48.0), np.full(10, -2.0)]
    net_c = np.r_[np.full(20, 50.0), np.zeros(20)]
    ci = stats.ttest_ind(net_t, net_c, equal_var=False).confidence_interval(0.95)
    assert g.incremental_net_revenue_ci == pytest.approx((ci.low, ci.high))
    assert [(x.action, x.tier) for x in m.groups] == [("coupon_10", ALL), (ALL, ALL)]
    assert m.total_incremental_retained == pytest.approx(10.0)
    assert m.total_incremental_net_revenue == pytest.approx(420.0)
    assert (m.tiers_from, m.control, m.n_treated, m.n_control) == ("none", "pooled", 40, 40)
    assert m.window_end == T0 + 90 * DAY and m.assigned_from == m.assigned_to == T0


def measure(store: Store, **kwargs) -> CampaignMeasurement:
    return measure_campaign(store, campaign_id=kwargs.pop("campaign_id", "c1"), **kwargs)


def test_window_is_half_open_from_the_assignment():
    store = Store.in_memory()
    _campaign(store, [("at_start", "recommendation", False, 0.0),
                      ("before", "recommendation", False, 0.0),
                      ("at_end", "recommendation", False, 0.0),
                      ("just_inside", "recommendation", False, 0.0),
                      ("ctl", "none", True, 0.0)])
    _events(store, [("at_start", T0, "order", 10.0),
                    ("before", T0 - dt.timedelta(seconds=1), "order", 10.0),
                    ("at_end", T0 + 90 * DAY, "order", 10.0),
                    ("just_inside", T0 + 90 * DAY - dt.timedelta(seconds=1), "order", 10.0)])
    out = campaign_outcomes(store, campaign_ids=["c1"]).set_index("user_id")
    assert out["retained"].to_dict() == {"at_end": False, "at_start": True, "before": False,
                                         "ctl": False, "just_inside": True}
    assert out["revenue"].to_dict() == {"at_end": 0.0, "at_start": 10.0, "before": 0.0,
                                        "ctl": 0.0, "just_inside": 10.0}


def test_outcome_type_and_window_are_options_and_revenue_still_counts_orders():
    store = Store.in_memory()
    _campaign(store, [("a", "recommendation", False, 0.05), ("b", "none", True, 0.0)])
    _events(store, [("a", T0 + DAY, "visit", None), ("a", T0 + 2 * DAY, "order", 30.0),
                    ("b", T0 + 20 * DAY, "visit", None), ("x", T0 + 30 * DAY, "visit", None)])
    m = measure(store, outcome_type="visit", window_days=14, min_group_size=2)
    g = m.group("recommendation")
    assert (g.retention_treated, g.retention_control) == (1.0, 0.0)
    assert (g.revenue_per_treated, g.revenue_per_control) == (30.0, 0.0)
    assert (m.outcome_type, m.window_days) == ("visit", 14)


def test_small_groups_get_figures_but_no_interval_and_a_note():
    store = _balanced_store(n=12, treated_orders=8, control_orders=3)
    g = measure(store).group("coupon_10")
    assert (g.n_treated, g.n_control) == (12, 12)
    assert g.incremental_retention == pytest.approx(5 / 12)
    assert g.incremental_retention_ci is None and g.incremental_net_revenue_ci is None
    assert g.incremental_retained_ci is None
    assert g.note == ("too few customers for a confidence interval (treated 12, control 12; at "
                      "least 30 each)")


def test_campaign_rows_with_action_none_outside_the_control_are_left_out():
    store = _balanced_store()
    _campaign(store, [("skip", "none", False, 0.0)], campaign_id="c1")
    m = measure(store)
    assert m.n_treated == 40
    assert m.notes == ("1 customers neither treated nor in the control group (action 'none') "
                       "are left out",)


# -- errors ---------------------------------------------------------------------------------------
def test_unknown_campaign_lists_known_ones_newest_first():
    store = _balanced_store()
    for j in range(6):
        _campaign(store, [("t0", "coupon_10", False, 0.0, T0 - (j + 1) * DAY)],
                  campaign_id=f"old{j}")
    with pytest.raises(MeasurementError) as err:
        measure(store, campaign_id="nope")
    assert str(err.value) == ("unknown campaign 'nope'; known campaigns (newest first): c1, "
                              "old0, old1, old2, old3 and 2 more")


def test_store_without_campaigns_says_how_to_get_one():
    with pytest.raises(MeasurementError) as err:
        measure(Store.in_memory())
    assert str(err.value) == (
        "unknown campaign 'c1'; the store holds no campaigns; ingest them (`churnguard ingest "
        "campaigns FILE`) or plan one (`churnguard plan`)")


def test_campaign_without_control_group_is_refused():
    store = Store.in_memory()
    _campaign(store, [("a", "coupon_5", False, 0.0), ("b", "coupon_10", False, 0.0)])
    with pytest.raises(MeasurementError) as err:
        measure(store)
    assert str(err.value) == (
        "campaign 'c1' has no control group (no customer with is_control = true among its 2 "
        "rows); measuring an effect needs a randomised control group held out of the campaign: "
        "plan campaigns with intervene.control_share > 0, or ingest the held-out customers with "
        "is_control = true")


def test_open_window_says_when_the_campaign_can_be_measured():
    store = Store.in_memory()
    _campaign(store, [("a", "coupon_5", False, 0.0), ("b", "none", True, 0.0)])
    _events(store, [("a", T0 + 40 * DAY + dt.timedelta(hours=3), "order", 10.0)])
    with pytest.raises(MeasurementError) as err:
        measure(store)
    assert str(err.value) == (
        "campaign 'c1' cannot be measured yet: the 90-day window of its last assignment "
        "(2025-03-02 09:00) ends at 2025-05-31 09:00, but the newest event in the store is at "
        "2025-04-11 12:00; measure it from 2025-05-31 09:00 on, once the events up to then are "
        "ingested")


def test_as_of_before_the_window_end_is_refused_and_after_it_is_accepted():
    store = _balanced_store()
    with pytest.raises(MeasurementError, match=r"but the measurement's as_of is at 2025-04-01 "):
        measure(store, as_of="2025-04-01")
    assert measure(store, as_of=dt.date(2025, 6, 1)).observed_until == dt.datetime(2025, 6, 1)


def test_missing_outcome_events_and_bad_arguments_are_precise():
    store = _balanced_store()
    with pytest.raises(MeasurementError, match="no events of type 'signup', the outcome"):
        measure(store, outcome_type="signup")
    with pytest.raises(MeasurementError, match="window_days must be a whole number of days >= 1"):
        measure(store, window_days=0)
    with pytest.raises(MeasurementError, match="as_of: 'soon' is not a cutoff"):
        measure(store, as_of="soon")


# -- planned campaigns: tiers and matched controls ------------------------------------------------
def _plan(store: Store, rows: list[tuple], campaign_id: str = "c1") -> None:
    """rows: (user_id, action, is_control, risk_tier)."""
    store.con.execute("INSERT INTO plans VALUES (?, ?, ?, 1000, 'delivered', '{}', '{}')",
                      [campaign_id, T0, T0])
    frame = pd.DataFrame([(campaign_id, *r) for r in rows],
                         columns=["campaign_id", "user_id", "action", "is_control", "risk_tier"])
    store.con.register("new_plan_rows", frame)
    store.con.execute("INSERT INTO plan_rows (campaign_id, user_id, action, is_control, risk_tier) "
                      "SELECT * FROM new_plan_rows")
    store.con.unregister("new_plan_rows")


def _planned_store(*, controls_know_their_action: bool) -> Store:
    """Two tiers; high-tier customers get cs_outreach, medium ones coupon_10. Outreach works
    (+0.5), the coupon does not; high-tier customers order less in general."""
    store = Store.in_memory()
    plan, camp, events = [], [], []
    for tier, action, base_t, base_c in (("high", "cs_outreach", 30, 5), ("medium", "coupon_10",
                                                                          20, 20)):
        for i in range(40):
            for arm, orders in (("t", base_t), ("c", base_c)):
                user = f"{tier}-{arm}{i}"
                control = arm == "c"
                planned = action if (not control or controls_know_their_action) else "none"
                plan.append((user, planned, control, tier))
                camp.append((user, "none" if control else action, control, 0.0))
                if i < orders:
                    events.append((user, T0 + 3 * DAY, "order", 10.0))
    _campaign(store, camp)
    _plan(store, plan)
    _events(store, events + [("x", T0 + 95 * DAY, "visit", None)])
    return store


def test_planned_campaign_is_measured_per_tier_against_matched_controls():
    m = measure(_planned_store(controls_know_their_action=True))
    assert (m.tiers_from, m.control, m.notes) == ("plan", "matched", ())
    keys = [(g.action, g.tier) for g in m.groups]
    assert keys == [("coupon_10", "medium"), ("coupon_10", "all"), ("cs_outreach", "high"),
                    ("cs_outreach", "all"), ("all", "high"), ("all", "medium"), ("all", "all")]
    high = m.group("cs_outreach", "high")
    assert (high.n_treated, high.n_control) == (40, 40)
    assert high.incremental_retention == pytest.approx(25 / 40)
    assert m.group("coupon_10", "medium").incremental_retention == pytest.approx(0.0)
    # matched: the outreach group is not compared with the medium tier's controls
    assert m.group("cs_outreach").incremental_retention == pytest.approx(25 / 40)
    assert m.total_incremental_retained == pytest.approx(25.0)


def test_planned_campaign_without_planned_actions_on_controls_pools_them_with_a_note():
    m = measure(_planned_store(controls_know_their_action=False))
    assert m.control == "pooled"
    assert m.notes[0].startswith("control customers carry no planned action")
    # within a tier the pooled control is that tier's: still right here
    assert m.group("cs_outreach", "high").incremental_retention == pytest.approx(25 / 40)


def _scored_plan_store(seed: int, *, n: int = 1500, effect: float = 0.05) -> Store:
    """A churnguard plan's campaign: n customers given coupon_10 and n held out, each with the
    churn score the plan saw; a customer keeps buying with chance 1 - p_churn, plus ``effect``
    when treated (capped at 1)."""
    rng = np.random.default_rng(seed)
    store = Store.in_memory()
    users = [f"u{i}" for i in range(2 * n)]
    control = np.arange(2 * n) >= n
    p = rng.beta(0.6, 0.9, 2 * n)
    buys = rng.random(2 * n) < np.minimum(1.0 - p + effect * ~control, 1.0)
    _campaign(store, [(u, "none" if c else "coupon_10", bool(c), 0.0)
                      for u, c in zip(users, control, strict=True)])
    store.con.execute("INSERT INTO plans VALUES ('c1', ?, ?, 1000, 'delivered', '{}', '{}')",
                      [T0, T0])
    frame = pd.DataFrame({"campaign_id": "c1", "user_id": users, "action": "coupon_10",
                          "is_control": control, "risk_tier": "high", "p_churn": p})
    store.con.register("new_plan_rows", frame)
    store.con.execute("INSERT INTO plan_rows (campaign_id, user_id, action, is_control, "
                      "risk_tier, p_churn) SELECT * FROM new_plan_rows")
    store.con.unregister("new_plan_rows")
    _events(store, [(u, T0 + 3 * DAY, "order", 10.0) for u, b in zip(users, buys, strict=True)
                    if b] + [("x", T0 + 95 * DAY, "visit", None)])
    return store


def test_a_plans_campaign_gets_a_narrower_interval_adjusted_for_the_churn_score():
    m = measure(_scored_plan_store(0))
    g = m.group("coupon_10")
    plain = g.incremental_retention_ci[1] - g.incremental_retention_ci[0]
    adjusted = g.incremental_retention_adjusted_ci[1] - g.incremental_retention_adjusted_ci[0]
    assert adjusted < 0.85 * plain  # the score explains much of who keeps buying
    lo, hi = g.incremental_retention_adjusted_ci
    assert lo < 0.05 < hi and lo < g.incremental_retention_adjusted < hi
    assert m.overall.incremental_retention_adjusted == pytest.approx(
        g.incremental_retention_adjusted)  # one action, one tier: the same comparison
    # It round-trips through the stored JSON; a campaign without scores has none.
    assert CampaignMeasurement.from_dict(json.loads(m.to_json())) == m
    assert measure(_balanced_store()).group("coupon_10").incremental_retention_adjusted is None


def test_the_adjusted_interval_covers_the_true_effect_at_its_nominal_rate():
    rng = np.random.default_rng(1)
    covered = 0
    for _ in range(400):
        p = rng.beta(0.6, 0.9, 600)
        t = rng.random(600) < 0.5
        y = rng.random(600) < np.minimum(1.0 - p + 0.05 * t, 1.0)
        truth = float(np.mean(np.minimum(1.0 - p + 0.05, 1.0) - (1.0 - p)))
        _, (lo, hi) = adjusted_difference(y, t, p)
        covered += lo <= truth <= hi
    assert covered >= 0.92 * 400  # 95% nominal; 0.92 leaves room for 400 draws' noise


def test_planned_but_undelivered_campaign_says_to_deliver_it():
    store = Store.in_memory()
    _plan(store, [("a", "coupon_10", False, "high")], campaign_id="p1")
    with pytest.raises(MeasurementError, match=r"'p1' was planned but no customer .* deliver"):
        measure(store, campaign_id="p1")


# -- store ----------------------------------------------------------------------------------------
def test_save_and_load_round_trip_keeps_every_figure():
    store = _balanced_store()
    assert latest_measurement(store, "c1") is None
    first = measure(store)
    save_measurement(store, first)
    second = measure(store, window_days=30)
    save_measurement(store, second)
    assert latest_measurement(store, "c1") == second
    saved = json.loads(store.con.execute(
        "SELECT result FROM measurements ORDER BY measured_at LIMIT 1").fetchall()[0][0])
    assert saved["totals"]["incremental_retained"] == pytest.approx(10.0)
    assert CampaignMeasurement.from_dict(saved) == first
    frame = first.to_frame()
    assert {"incremental_retention_low", "incremental_retention_high", "note"} <= set(frame)
    assert len(frame) == 2


def test_measure_needs_only_campaigns_and_events():
    # the loop closes on what the store already holds: no users, items, scores or plans
    store = _balanced_store()
    counts = store.table_counts()
    assert {k for k, v in counts.items() if v} == {"campaigns", "events"}
    assert measure(store).group("coupon_10").n_treated == 40


# -- the simulator --------------------------------------------------------------------------------
SIM_USERS, SIM_DAYS = 3000, 155  # the first campaign (day 60) has its 90-day window observed


def _simulated(seed: int, folder: Path) -> tuple[Store, pd.DataFrame, str]:
    simulate(n_users=SIM_USERS, days=SIM_DAYS, seed=seed, out_dir=folder)
    store = Store.in_memory()
    for kind in ("events", "campaigns"):
        ingest_files(store, kind=kind, files=[folder / f"{kind}.parquet"])
    truth = pd.read_parquet(folder / "truth" / "campaigns.parquet")
    first = sorted(truth["campaign_id"].unique())[0]
    return store, truth[truth["campaign_id"] == first], first


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return _simulated(0, tmp_path_factory.mktemp("measure_shop"))


def test_sql_figures_match_a_pandas_recount_on_the_simulator(shop):
    store, _, campaign_id = shop
    m = measure(store, campaign_id=campaign_id)
    camp = store.con.execute("SELECT * FROM campaigns WHERE campaign_id = ?", [campaign_id]).df()
    orders = store.con.execute("SELECT user_id, ts, amount FROM events WHERE type = 'order'").df()
    rows = camp.merge(orders, on="user_id", how="left")
    inside = (rows["ts"] >= rows["assigned_at"]) & (rows["ts"] < rows["assigned_at"]
                                                    + pd.Timedelta(days=90))
    rows["amount"] = rows["amount"].where(inside, 0.0)
    per = rows.assign(hit=inside).groupby("user_id").agg(retained=("hit", "any"),
                                                         revenue=("amount", "sum"))
    camp = camp.join(per, on="user_id")
    camp["net"] = camp["revenue"] - camp["cost"]
    control = camp[camp["is_control"]]
    for action in ACTIONS:
        treated = camp[camp["action"] == action]
        g = m.group(action)
        assert g.n_treated == len(treated) and g.n_control == len(control)
        assert g.incremental_retention == pytest.approx(treated["retained"].mean()
                                                        - control["retained"].mean())
        assert g.incremental_net_revenue == pytest.approx(treated["net"].mean()
                                                          - control["net"].mean())
        assert g.cost_per_treated == pytest.approx(treated["cost"].mean())
    outcomes = campaign_outcomes(store, campaign_ids=[campaign_id]).set_index("user_id")
    assert outcomes["retained"].equals(camp.set_index("user_id")["retained"].loc[outcomes.index])


def _covered(seed: int, folder: Path) -> dict[str, bool]:
    """Per action (and all actions pooled): does the 95% interval of incremental retention hold
    the true average effect over the campaign's customers who got the action?"""
    store, truth, campaign_id = _simulated(seed, folder)
    m = measure(store, campaign_id=campaign_id)
    out = {}
    for g in m.groups:
        rows = truth[~truth["is_control"]] if g.action == ALL else truth[truth["action"]
                                                                         == g.action]
        true_effect = -rows["effect"].mean()  # the truth's effect is on churn = no order
        lo, hi = g.incremental_retention_ci
        out[g.action] = lo <= true_effect <= hi
    return out


def _coverage(seeds: range, folder: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for seed in seeds:
        for action, ok in _covered(seed, folder / str(seed)).items():
            counts[action] = counts.get(action, 0) + int(ok)
    return counts


def test_intervals_cover_the_true_effect_on_five_seeds(tmp_path):
    counts = _coverage(range(100, 105), tmp_path)
    assert set(counts) == {*ACTIONS, ALL}
    assert all(c >= 4 for c in counts.values()), counts


@pytest.mark.slow
def test_intervals_cover_the_true_effect_in_at_least_17_of_20_seeds(tmp_path):
    # The acceptance line of issue 5. Measured: 20/20 for every action and pooled, except
    # recommendation 19/20 (seeds 0-19).
    counts = _coverage(range(20), tmp_path)
    assert set(counts) == {*ACTIONS, ALL}
    assert all(c >= 17 for c in counts.values()), counts
