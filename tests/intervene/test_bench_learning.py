"""The truth accounting of benchmarks/bench_learning.py (shared with bench_plan.py), checked on a
tiny responding shop: what a cycle is scored by is what the shop did to each contacted customer;
and the baselines and the Done-when verdicts on hand-made figures."""

from __future__ import annotations

import argparse
import datetime as dt
import doctest
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_learning  # noqa: E402
import truth_accounting  # noqa: E402

from churnguard.simulate import continue_shop, simulate  # noqa: E402

ACTIONS = ["recommendation", "coupon_5", "coupon_10", "coupon_20", "cs_outreach"]


def test_doctests() -> None:
    assert doctest.testmod(bench_learning).failed == 0
    assert doctest.testmod(truth_accounting).failed == 0


def test_a_cycle_is_scored_by_what_the_shop_did_to_each_contact(tmp_path: Path) -> None:
    days = 200
    end = dt.date(2025, 1, 1) + dt.timedelta(days=days)
    shop = simulate(n_users=300, days=days, seed=3, out_dir=tmp_path / "shop", cutoffs=[end],
                    keep_state=True)
    truth = pd.read_parquet(shop.out_dir / "truth" / "churn.parquet")
    truth = truth.set_index(truth["user_id"].astype(str))
    ids = truth.index.to_series().reset_index(drop=True)
    true = truth_accounting.true_uplift(truth, ids, ACTIONS)
    rng = np.random.default_rng(0)
    choice = np.full(len(ids), -1)
    picked = rng.choice(len(ids), 60, replace=False)
    choice[picked] = rng.integers(0, len(ACTIONS), picked.size)
    delivered = pd.DataFrame({"user_id": ids.to_numpy()[picked],
                              "action": np.asarray(ACTIONS, dtype=object)[choice[picked]],
                              "is_control": False,
                              "assigned_at": pd.Timestamp(end, tz="UTC")})
    month = continue_shop(shop.out_dir, delivered, until=end + dt.timedelta(days=30),
                          out_dir=tmp_path / "month", horizon_days=90)
    check = bench_learning.Seed.contacts_check(month.paths["truth_contacts"], true, ids, ACTIONS)
    assert check["contacts"] == 60
    assert check["max_abs_diff"] < 1e-9
    value, cost = np.linspace(10.0, 100.0, len(ids)), np.full((len(ids), len(ACTIONS)), 0.5)
    result = truth_accounting.account(choice, true=true.to_numpy(), value=value, cost=cost,
                                      gross_margin=0.4, actions=ACTIONS)
    contacts = pd.read_parquet(month.paths["truth_contacts"]).set_index("user_id")
    saved = -contacts.loc[ids.to_numpy()[picked], "effect"].to_numpy()
    assert result["contacted"] == 60 and sum(result["actions"].values()) == 60
    assert np.isclose(result["true_saves"], saved.sum())
    assert np.isclose(result["true_retained_value"], (saved * value[picked]).sum())
    assert np.isclose(result["true_net_margin"], (saved * value[picked]).sum() * 0.4 - 30.0)
    assert result["spend"] == 30.0


def _inputs(p_churn, cost, eligible) -> SimpleNamespace:
    n = len(p_churn)
    return SimpleNamespace(
        actions=ACTIONS, customers=pd.DataFrame({"p_churn": p_churn}),
        cost=pd.DataFrame({a: np.asarray(cost, dtype=float) for a in ACTIONS}),
        eligible=pd.DataFrame({a: np.asarray(eligible if a == "coupon_10" else [True] * n)
                               for a in ACTIONS}))


def test_the_usual_practice_gives_the_riskiest_eligible_the_coupon_until_the_budget_ends(
        ) -> None:
    inputs = _inputs([0.1, 0.9, 0.5, 0.8, 0.7], [1.0, 2.0, 1.0, 2.0, 1.0],
                     [True, True, True, False, True])
    choice = truth_accounting.usual_practice(inputs, budget=3.5)
    # 0.9 (cost 2) then 0.7 (1): 3.0; 0.8 is not eligible; 0.5 would make 4.0 > 3.5.
    assert choice.tolist() == [-1, 2, -1, -1, 2]


def test_random_targeting_keeps_to_the_budget_and_to_eligibility() -> None:
    n = 400
    inputs = _inputs(np.full(n, 0.5), np.full(n, 1.0), np.arange(n) % 2 == 0)
    inputs.eligible.loc[::5, :] = False  # some customers may get nothing
    choice = bench_learning.random_targeting(inputs, 150.0, np.random.default_rng(1))
    picked = np.flatnonzero(choice >= 0)
    assert picked.size == 150
    assert inputs.eligible.to_numpy()[picked, choice[picked]].all()
    assert len(set(choice[picked])) == len(ACTIONS)  # random actions, not one


def _runs(margins: dict[str, list[float]]) -> list[dict]:
    def record(c: int, m: float) -> dict:
        return {"budget": 100.0, "truth": {"true_net_margin": m, "estimated_saves": 1.0,
                                           "true_saves": 1.0, "contacted": 1},
                "contacts_check": {"max_abs_diff": 0.0}, "seconds": {"plan": 1.0}}
    return [{"seed": 0, "explore": "none", "peak_rss_mib": 1.0,
             "records": {s: [record(c, m) for c, m in enumerate(margins[s])]
                         for s in margins}}]


def test_the_done_when_verdicts() -> None:
    args = argparse.Namespace(cycles=4, scenario="default", customers=10, days=10,
                              budget_per_customer=0.25)
    margins = {bench_learning.LEARNING: [0, 0, 50, 60], bench_learning.FROZEN: [0, 0, 30, 40],
               bench_learning.ORACLE: [100, 100, 100, 100],
               bench_learning.USUAL: [-10, -10, -10, -10],
               bench_learning.RANDOM: [40, 40, 40, 40], bench_learning.AVERAGE: [0, 0, 0, 0],
               bench_learning.EXACT: [0, 0, 70, 80], bench_learning.NOISY: [0, 0, 30, 50]}
    # Later half = cycles 3-4: learning 55 >= 0.5 x 100 and 55 >= 1.5 x 35; cumulative 110
    # above the usual practice's -40 and below random targeting's 160.
    body, checks = bench_learning.summarise(_runs(margins), args)
    assert list(checks.values()) == [True, True, True, False]
    assert "needs ≥ 0.5: met" in body and "random targeting 160 (NOT met)" in body
    # What the data allows: the exact-effects loop's 75 a cycle is 0.75 of the oracle's 100.
    assert "the loop told its contacts' true effects 0.75" in body
    assert "the loop told its contacts' 0/1 outcomes and true baselines 0.40" in body
    margins[bench_learning.FROZEN] = [0, 0, 40, 40]  # 55 < 1.5 x 40
    margins[bench_learning.ORACLE] = [100, 100, 120, 120]  # 55 < 0.5 x 120
    _, checks = bench_learning.summarise(_runs(margins), args)
    assert list(checks.values()) == [False, False, True, False]



def test_a_run_of_some_strategies_reports_them_and_judges_nothing() -> None:
    args = argparse.Namespace(cycles=4, scenario="default", customers=10, days=10,
                              budget_per_customer=0.25)
    runs = _runs({s: [0, 0, 40, 60] for s in bench_learning.STRATEGIES})
    runs[0]["records"] = {s: runs[0]["records"][s] for s in
                          (bench_learning.EXACT, bench_learning.NOISY, bench_learning.ORACLE)}
    runs[0]["records"][bench_learning.ORACLE] = runs[0]["records"][bench_learning.ORACLE][:2] + [
        {**r, "truth": {**r["truth"], "true_net_margin": 100.0}}
        for r in runs[0]["records"][bench_learning.ORACLE][2:]]
    body, checks = bench_learning.summarise(runs, args)
    assert checks == {}
    assert "Done-when: not judged (run without churnguard learning, churnguard frozen" in body
    header = next(line for line in body.splitlines() if line.startswith("| cycle |"))
    assert header.count("|") == 5  # cycle and the three strategies run
    assert "the loop told its contacts' true effects 0.50" in body


def _plan_inputs(x: np.ndarray):  # noqa: ANN202
    """Plan inputs for len(x) alike high-risk customers (value 100, every action costing 1,
    no estimated uplift) whose one feature is ``x``."""
    from churnguard.intervene.plan import PlanInputs

    n = len(x)
    return PlanInputs(
        as_of=dt.datetime(2025, 6, 1),
        customers=pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "p_churn": 0.5,
                                "risk_tier": "high", "value": 100.0}),
        uplift=pd.DataFrame(0.0, index=range(n), columns=ACTIONS),
        cost=pd.DataFrame(1.0, index=range(n), columns=ACTIONS),
        eligible=pd.DataFrame(True, index=range(n), columns=ACTIONS),
        capacity=[None] * len(ACTIONS), uplift_source="test",
        features=pd.DataFrame({"x": x}))


def _bare_seed(folder: Path) -> "bench_learning.Seed":
    """A Seed with only its checkpoint folder and seed 0, for the loops' planning alone."""
    seed = object.__new__(bench_learning.Seed)
    seed.folder, seed.seed = folder, 0
    return seed


def test_the_exact_ceiling_learns_who_responds_from_its_contacts_true_effects(
        tmp_path: Path) -> None:
    """Told the true effect of each earlier contact, the ceiling's loop finds the customers an
    action works for (coupon_20 lifts only customers with x > 0.5) and gives it to them."""
    from churnguard.config import ProjectConfig

    rng = np.random.default_rng(0)
    n = 400
    x = rng.random(n)
    seed = _bare_seed(tmp_path)
    first = seed.cycle_dir(bench_learning.EXACT, 1)
    first.mkdir(parents=True)
    told = pd.DataFrame({"x": x[:200], "__action": "coupon_20",
                         "__effect": np.where(x[:200] > 0.5, 0.2, 0.0)})
    told.to_parquet(first / "exact_rows.parquet")
    inputs = _plan_inputs(x)
    config = bench_learning.with_settings(ProjectConfig(), "intervene", explore_share=0.0)
    choice, pred = seed.exact_choice(inputs, 60.0, config, cycle=2)
    given = np.flatnonzero(choice >= 0)
    assert len(given) == 60 and (choice[given] == ACTIONS.index("coupon_20")).all()
    assert (x[given] > 0.5).all()  # 0.2 x 100 x 0.4 - 1 = +7 there, -1 elsewhere
    assert (pred["recommendation"] == 0.0).all()  # never given, never learned: 0


def test_the_outcome_ceiling_learns_who_responds_from_noisy_0_1_outcomes(tmp_path: Path) -> None:
    """Told each earlier contact's true baseline and a 0/1 outcome drawn from its chance with
    the action (kept by keep_exact_rows), the 0/1-outcome ceiling still finds the customers
    coupon_20 works for, once there are enough contacts to see it through the noise."""
    from churnguard.config import ProjectConfig

    rng = np.random.default_rng(0)
    n = 8000
    x = rng.random(n)
    seed = _bare_seed(tmp_path)
    first = seed.cycle_dir(bench_learning.NOISY, 1)
    first.mkdir(parents=True)
    inputs = _plan_inputs(x)
    choice = np.full(n, -1)
    choice[:6000] = ACTIONS.index("coupon_20")
    true = pd.DataFrame(0.0, index=range(n), columns=ACTIONS)
    true["coupon_20"] = np.where(x > 0.5, 0.3, 0.0)
    seed.keep_exact_rows(first, inputs, choice, true, baseline=np.full(n, 0.4),
                         rng=np.random.default_rng(1))
    kept = pd.read_parquet(first / "exact_rows.parquet")
    high = kept["x"] > 0.5
    assert set(kept["__outcome"]) == {0.0, 1.0}
    assert abs(kept.loc[high, "__outcome"].mean() - 0.7) < 0.03
    assert abs(kept.loc[~high, "__outcome"].mean() - 0.4) < 0.03
    config = bench_learning.with_settings(ProjectConfig(), "intervene", explore_share=0.0)
    choice, pred = seed.exact_choice(inputs, 60.0, config, cycle=2,
                                     strategy=bench_learning.NOISY)
    given = np.flatnonzero(choice >= 0)
    assert len(given) == 60 and (choice[given] == ACTIONS.index("coupon_20")).all()
    assert (x[given] > 0.5).mean() >= 0.9
    assert (pred["recommendation"] == 0.0).all()  # never given, never learned: 0


def test_the_exact_ceiling_starts_with_a_randomised_campaign_and_keeps_exploring(
        tmp_path: Path) -> None:
    from churnguard.config import ProjectConfig

    n = 400
    seed = _bare_seed(tmp_path)
    inputs = _plan_inputs(np.linspace(0, 1, n))
    first, _ = seed.exact_choice(inputs, 100.0, ProjectConfig(), cycle=1)
    assert (first >= 0).sum() == 100 and len(set(first[first >= 0])) == len(ACTIONS)
    here = seed.cycle_dir(bench_learning.EXACT, 1)
    here.mkdir(parents=True)
    true = pd.DataFrame(0.0, index=range(n), columns=ACTIONS)  # nothing works
    seed.keep_exact_rows(here, inputs, first, true)
    # Cycle 2: every learned effect is 0 (margin -1), so only the explored 10% of the budget
    # is spent, at random.
    second, pred = seed.exact_choice(inputs, 100.0, ProjectConfig(), cycle=2)
    assert (second >= 0).sum() == 10 and (pred.to_numpy() == 0.0).all()


def test_the_late_loops_read_only_what_a_real_loop_could_have_read(tmp_path: Path) -> None:
    """Told 90 days (three cycles) late, a loop learns nothing before cycle 4, then only from
    cycle 1's contacts; the champion's loop measures outcomes against the champion's baseline
    (1 - p_churn), the other against the true one."""
    from churnguard.config import ProjectConfig

    n = 3000
    rng = np.random.default_rng(0)
    seed = _bare_seed(tmp_path)
    inputs = _plan_inputs(rng.random(n))  # p_churn 0.5: the champion's baseline is 0.5
    for strategy in (bench_learning.NOISY_LATE, bench_learning.MODEL):
        for cycle, rate in ((1, 0.6), (2, 0.1), (3, 0.1)):
            here = seed.cycle_dir(strategy, cycle)
            here.mkdir(parents=True)
            pd.DataFrame({"x": rng.random(n), "__action": "coupon_20",
                          "__outcome": (rng.random(n) < rate).astype(float),
                          "__baseline": 0.4, "__model_baseline": 0.5,
                          "__effect": 0.0}).to_parquet(here / "exact_rows.parquet")
    config = ProjectConfig()  # explore_share 0.1: 10 of a budget of 100 at cost 1
    told = {bench_learning.NOISY_LATE: 0.6 - 0.4, bench_learning.MODEL: 0.6 - 0.5}
    for strategy, effect in told.items():
        choice, pred = seed.exact_choice(inputs, 100.0, config, cycle=3, strategy=strategy)
        assert (pred.to_numpy() == 0.0).all() and (choice >= 0).sum() == 10
        choice, pred = seed.exact_choice(inputs, 100.0, config, cycle=4, strategy=strategy)
        assert abs(pred["coupon_20"].mean() - effect) < 0.03  # cycle 1's outcomes only
        assert (pred.drop(columns="coupon_20").to_numpy() == 0.0).all()


def test_tidying_keeps_what_a_later_run_of_other_strategies_goes_on_from(tmp_path: Path) -> None:
    """A run of some strategies must not remove learning's cycle 1 (frozen starts from it) nor
    a cycle whose successor has not run; a lost start is recomputed when it is needed."""
    L, F, O = bench_learning.LEARNING, bench_learning.FROZEN, bench_learning.ORACLE
    seed = _bare_seed(tmp_path)
    seed.args = argparse.Namespace(cycles=12)

    def make(strategy: str, cycle: int, *, record: bool = True) -> Path:
        here = seed.cycle_dir(strategy, cycle)
        (here / "shop").mkdir(parents=True)
        (here / "store.duckdb").write_text("store")
        if record:
            (here / "record.json").write_text("{}")
        return here

    l1, o1, o2 = make(L, 1), make(O, 1), make(O, 2)
    seed.tidy(2)  # after cycle 2 of the oracle alone
    assert (l1 / "store.duckdb").exists() and (l1 / "shop").exists()
    assert not (o1 / "store.duckdb").exists() and not (o1 / "shop").exists()
    assert (o2 / "store.duckdb").exists()  # cycle 3 has not run
    assert not seed.start_lost(L, 1, [O])
    (l1 / "store.duckdb").unlink()  # as runs before this fix left it
    assert not seed.start_lost(L, 1, [O])  # nothing chosen goes on from it
    assert seed.start_lost(L, 1, [L, F, O])
    assert not seed.start_lost(O, 1, [L, F, O])
