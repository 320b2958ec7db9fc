"""Exploration: a share of the plan's contacts given at random where the effects are least known."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churnguard.config import ProjectConfig
from churnguard.intervene.explore import Belief, explore_rng, neyman_counts
from churnguard.intervene.plan import PlanInputs, choose_actions, choose_with_exploration

ACTIONS = ["call", "coupon", "mail"]


def _config(share: float) -> ProjectConfig:
    config = ProjectConfig()
    return config.model_copy(update={"intervene": config.intervene.model_copy(
        update={"explore_share": share})})


def _inputs(n: int = 2000, *, seed: int = 0, capacity=(None, None, None),
            beliefs: dict | None = None) -> PlanInputs:
    """``n`` customers in two tiers; every action pays for most of them, 'mail' least."""
    rng = np.random.default_rng(seed)
    tiers = np.where(np.arange(n) % 2 == 0, "high", "low")
    customers = pd.DataFrame({"user_id": [f"u{i:05d}" for i in range(n)],
                              "p_churn": rng.uniform(0.3, 0.9, n), "risk_tier": tiers,
                              "value": rng.uniform(50, 150, n)})
    uplift = pd.DataFrame({"call": rng.uniform(0.02, 0.10, n),
                           "coupon": rng.uniform(0.02, 0.10, n),
                           "mail": rng.uniform(0.0, 0.04, n)})
    cost = pd.DataFrame({"call": np.full(n, 2.0), "coupon": np.full(n, 1.5),
                         "mail": np.full(n, 0.2)})
    eligible = pd.DataFrame({a: rng.random(n) < 0.9 for a in ACTIONS})
    if beliefs is None:
        beliefs = {(t, a): Belief(mean=0.05, sd=0.05) for t in ("high", "low") for a in ACTIONS}
    return PlanInputs(as_of=dt.datetime(2025, 1, 1), customers=customers, uplift=uplift,
                      cost=cost, eligible=eligible, capacity=list(capacity),
                      uplift_source="test", beliefs=beliefs)


def _explore(inputs: PlanInputs, share: float, budget: float, seed: int = 0):
    return choose_with_exploration(inputs, config=_config(share), budget=budget,
                                   rng=explore_rng(seed, "cg-test"))


def test_a_share_of_zero_is_the_greedy_plan_exactly() -> None:
    inputs = _inputs()
    choice, explored, report = _explore(inputs, 0.0, budget=800.0)
    assert np.array_equal(choice, choose_actions(inputs, config=_config(0.0), budget=800.0))
    assert not explored.any() and report == {}


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5])
def test_the_explored_share_of_contacts_is_the_configured_one(share: float) -> None:
    inputs = _inputs()
    choice, explored, report = _explore(inputs, share, budget=800.0)
    contacts = int((choice >= 0).sum())
    assert explored.sum() / contacts == pytest.approx(share, abs=0.02)
    assert report["explored"] == int(explored.sum()) and report["contacts"] == contacts
    assert (choice[explored] >= 0).all()


def test_budget_and_capacities_hold_with_exploration() -> None:
    config = _config(0.3)
    inputs = _inputs(capacity=(150, None, 40))
    choice, explored, _ = _explore(inputs, 0.3, budget=500.0)
    rows = np.flatnonzero(choice >= 0)
    cost = inputs.cost[ACTIONS].to_numpy()[rows, choice[rows]].sum()
    scale = 1 / (1 - config.intervene.control_share)  # before the (free) control group
    assert cost <= 500.0 * scale + 1e-9
    counts = np.bincount(choice[rows], minlength=3)
    assert counts[0] <= int(150 * scale) and counts[2] <= int(40 * scale)
    assert explored.any() and (choice[~explored] >= 0).any()


def test_exploration_gives_only_eligible_actions_that_could_pay() -> None:
    """Worth the cost at the upper end of the 95% interval of the tier's belief: never an
    action that would lose money even then."""
    beliefs = {(t, a): Belief(mean=0.05, sd=0.01) for t in ("high", "low") for a in ACTIONS}
    inputs = _inputs(beliefs=beliefs)
    choice, explored, _ = _explore(inputs, 0.5, budget=800.0)
    optimistic = inputs.margin(_config(0.5), inputs.uplift + 1.959964 * 0.01)
    rows = np.flatnonzero(explored)
    assert rows.size and inputs.eligible[ACTIONS].to_numpy()[rows, choice[rows]].all()
    assert (optimistic[rows, choice[rows]] > 0).all()
    assert (inputs.margin(_config(0.5))[rows, choice[rows]] <= 0).any()  # not known to pay yet


def test_a_plan_whose_estimates_say_nothing_pays_still_explores_part_of_the_budget() -> None:
    """Effects shrunk to -0.001 (nothing is worth its cost) but uncertain (sd 0.03): the greedy
    plan contacts nobody, and would never learn; exploring spends up to explore_share of the
    budget on actions that could pay, and nothing on those that could not. Some coupons cost
    nothing (no redemption expected): they do not stop the budget's share from being spent."""
    inputs = _inputs(beliefs={(t, a): Belief(mean=0.0, sd=0.03) for t in ("high", "low")
                              for a in ACTIONS})
    cost = inputs.cost.copy()
    cost.loc[::5, "coupon"] = 0.0
    inputs = PlanInputs(**{**inputs.__dict__, "uplift": inputs.uplift * 0 - 0.001,
                           "cost": cost})
    config = _config(0.2)
    assert (choose_actions(inputs, config=config, budget=800.0) < 0).all()
    choice, explored, report = _explore(inputs, 0.2, budget=800.0)
    rows = np.flatnonzero(choice >= 0)
    spend = inputs.cost[ACTIONS].to_numpy()[rows, choice[rows]].sum()
    scale = 1 / (1 - config.intervene.control_share)
    assert explored[rows].all() and report["explored"] == rows.size > 0
    assert 0.19 * 800.0 * scale <= spend <= 0.2 * 800.0 * scale + 1e-9
    # 'mail' (cost 0.2) pays at +0.06 for most; 'call' (2.0) only for the most valuable.
    assert set(choice[rows]) <= {0, 1, 2}
    optimistic = inputs.margin(config, inputs.uplift + 1.959964 * 0.03)
    assert (optimistic[rows, choice[rows]] > 0).all()


def test_the_same_seed_and_campaign_give_the_same_exploration() -> None:
    inputs = _inputs()
    first = _explore(inputs, 0.2, budget=800.0, seed=4)
    again = _explore(inputs, 0.2, budget=800.0, seed=4)
    other = _explore(inputs, 0.2, budget=800.0, seed=5)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])
    moved = choose_with_exploration(inputs, config=_config(0.2), budget=800.0,
                                    rng=explore_rng(4, "cg-other"))
    assert not np.array_equal(first[1], moved[1])


def test_exploration_goes_where_the_effects_are_least_known() -> None:
    """Tiers of equal size: the one whose beliefs are 8x wider gets ~8x the explored contacts
    (Neyman allocation); Thompson sampling tries an action more when its effect is uncertain."""
    beliefs = {("high", a): Belief(mean=0.05, sd=0.16) for a in ACTIONS}
    beliefs |= {("low", a): Belief(mean=0.05, sd=0.02) for a in ACTIONS}
    inputs = _inputs(beliefs=beliefs)
    _, explored, _ = _explore(inputs, 0.3, budget=800.0)
    tiers = inputs.customers["risk_tier"].to_numpy()
    high, low = int(explored[tiers == "high"].sum()), int(explored[tiers == "low"].sum())
    assert high / max(low, 1) == pytest.approx(8, rel=0.25)

    # 'call' costs most: with every belief sharp, Thompson draws pick it least often.
    sharp = {(t, a): Belief(mean=0.05, sd=0.001) for t in ("high", "low") for a in ACTIONS}
    doubtful = sharp | {(t, "call"): Belief(mean=0.05, sd=0.1) for t in ("high", "low")}
    share_call = []
    for beliefs in (sharp, doubtful):
        choice, explored, _ = _explore(_inputs(beliefs=beliefs), 0.3, budget=800.0)
        share_call.append(float((choice[explored] == 0).mean()))
    assert share_call[1] > share_call[0] + 0.05


def test_the_cost_of_exploring_is_the_expected_margin_given_up() -> None:
    config = _config(0.2)
    inputs = _inputs()
    choice, explored, report = _explore(inputs, 0.2, budget=800.0)
    greedy = choose_actions(inputs, config=config, budget=800.0)
    margin = inputs.margin(config)
    keep = 1 - config.intervene.control_share

    def total(c):
        rows = np.flatnonzero(c >= 0)
        return margin[rows, c[rows]].sum() * keep

    assert report["greedy_expected_margin"] == pytest.approx(total(greedy))
    assert report["expected_margin"] == pytest.approx(total(choice))
    assert report["expected_margin_given_up"] == pytest.approx(total(greedy) - total(choice))
    assert report["expected_margin_given_up"] > 0  # greedy is optimal for the estimates
    # What it teaches: explored (tier, action) cells narrow more than the greedy plan's would.
    cells = report["per_segment"]
    assert {(c["risk_tier"], c["action"]) for c in cells} == set(inputs.beliefs)
    assert all(c["width_after_plan"] <= c["width_now"] + 1e-12 for c in cells)
    explored_cells = [c for c in cells if c["explored"]]
    assert explored_cells and sum(c["explored"] for c in cells) == int(explored.sum())
    assert any(c["width_after_plan"] < c["width_after_greedy"] - 1e-6 for c in explored_cells)


def test_neyman_counts_add_up_and_never_exceed_a_pool() -> None:
    counts = neyman_counts({"a": 5, "b": 100, "c": 0}, {"a": 1.0, "b": 0.01, "c": 1.0}, 20)
    assert counts == {"a": 5, "b": 15, "c": 0}
    assert neyman_counts({"a": 3}, {"a": 0.1}, 10) == {"a": 3}


def test_the_prior_compares_each_action_with_its_own_control_rows_within_campaigns() -> None:
    """A plan gave 'a' to risky customers (outcome rate 0.2) and 'b' to safe ones (0.7), each
    with its own held-out control rows; an older A/B test gave both at random. Both truly lift
    the rate by +0.05: the belief says so, where set against every control row 'a' would look
    harmful and 'b' very good."""
    from churnguard.intervene.explore import action_beliefs

    rng = np.random.default_rng(3)
    n = 20000
    plan = np.arange(n) < n // 2
    risky = plan & (np.arange(n) < n // 4)
    planned = np.where(plan, np.where(risky, "a", "b"), "none").astype(object)
    control = np.where(plan, rng.random(n) < 0.1, rng.random(n) < 1 / 3)
    action = np.where(control, "none",
                      np.where(plan, planned, rng.choice(["a", "b"], n))).astype(object)
    base = np.where(risky, 0.2, np.where(plan, 0.7, 0.45))
    y = (rng.random(n) < base + 0.05 * ~control).astype(float)
    contexts = np.where(plan, np.char.add("plan|", planned.astype(str)), "ab").astype(object)
    fair = action_beliefs(action, y, ["a", "b"], strata=planned, contexts=contexts)
    naive = action_beliefs(action, y, ["a", "b"])
    for a in ("a", "b"):
        assert fair[a].mean == pytest.approx(0.05, abs=2.5 * fair[a].sd)
        assert fair[a].sd < 0.015
    assert naive["a"].mean < -0.05 and naive["b"].mean > 0.15
