"""Learners that hold on real campaigns: every listed learner works, the chooser keeps the
simpler learner unless a richer one is better beyond noise, effects are bounded by what there is
to save, campaigns are pooled, and the DR-learner uses each campaign's known propensity."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.cli import main
from churnguard.cli.campaigns import uplift_score
from churnguard.config import ProjectConfig
from churnguard.intervene.learners import LEARNERS, DRLearner
from churnguard.intervene.plan import PlanInputs, choose_actions
from churnguard.intervene.uplift import (
    UpliftData,
    _choose,
    bounded_effects,
    campaign_weights,
    fit_uplift,
)

# -- every listed learner works, and the list is the registry --------------------------------


@pytest.fixture(scope="module")
def campaign_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A shop with only a customer table and one randomised campaign (as docs/intervene.md
    says suffices): 1,200 customers, an e-mail that lifts visits of the 'web' channel."""
    root = tmp_path_factory.mktemp("one_campaign")
    rng = np.random.default_rng(5)
    n = 1200
    users = pd.DataFrame({"user_id": [f"c{i:04d}" for i in range(n)],
                          "channel": rng.choice(["web", "phone"], n),
                          "history": rng.gamma(2.0, 100.0, n).round(2)})
    action = rng.choice(["email", "none"], n)
    p = 0.15 + 0.2 * ((action == "email") & (users["channel"] == "web"))
    visited = rng.random(n) < p
    campaigns = pd.DataFrame({"user_id": users["user_id"], "campaign_id": "spring",
                              "action": action, "assigned_at": "2025-03-01",
                              "is_control": action == "none"})
    events = pd.DataFrame({"user_id": users["user_id"][visited], "ts": "2025-03-05",
                           "type": "visit"})
    for name, frame in (("users", users), ("campaigns", campaigns), ("events", events)):
        frame.to_csv(root / f"{name}.csv", index=False)
    assert main(["init", str(root)]) == 0
    for kind in ("users", "campaigns", "events"):
        assert main(["ingest", kind, str(root / f"{kind}.csv"), "--project", str(root)]) == 0
    return root


def test_the_learner_option_lists_exactly_the_registry_and_refuses_others(
        campaign_project: Path, tmp_path: Path) -> None:
    option = next(p for p in uplift_score.params if p.name == "learner")
    assert list(option.type.choices) == ["auto", *LEARNERS]
    assert {"dr_learner", "t_logistic", "s_logistic"} <= set(LEARNERS)
    assert main(["uplift", "score", "--learner", "magic", "--out", str(tmp_path / "u.csv"),
                 "--project", str(campaign_project)]) == 2


@pytest.mark.parametrize("name", list(LEARNERS))
def test_every_listed_learner_scores_from_the_cli(campaign_project: Path, tmp_path: Path,
                                                  name: str) -> None:
    out = tmp_path / "uplift.csv"
    assert main(["uplift", "score", "--learner", name, "--outcome-type", "visit",
                 "--window", "14d", "--as-of", "2025-03-20", "--out", str(out),
                 "--project", str(campaign_project)]) == 0
    frame = pd.read_csv(out)
    assert len(frame) == 1200 and "email" in frame.columns
    users = pd.read_csv(campaign_project / "users.csv").set_index("user_id")
    by_channel = frame.set_index("user_id").join(users).groupby("channel")["email"].mean()
    # The e-mail lifts the web customers' visits by 0.2 and nobody else's.
    assert by_channel["web"] > by_channel["phone"] + 0.05


# -- the chooser ---------------------------------------------------------------------------


def _experiment(n: int, seed: int) -> tuple[UpliftData, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"x1": rng.random(n)})
    action = rng.choice(np.array(["none", "coupon"], dtype=object), n)
    tau = 0.3 * (x["x1"].to_numpy() > 0.5)
    y = (rng.random(n) < 0.2 + tau * (action == "coupon")).astype(float)
    data = UpliftData(features=x, action=action, y=y, revenue=y,
                      user_id=np.array([f"u{i}" for i in range(n)], dtype=object),
                      campaign_id=np.array(["c"] * n, dtype=object), outcome_type="order",
                      window_days=30)
    return data, tau


def _oof(scores: dict[str, np.ndarray]) -> dict[str, pd.DataFrame]:
    return {name: pd.DataFrame({"coupon": scores[name]}) for name in LEARNERS}


def test_the_chooser_keeps_the_simplest_learner_within_noise_of_the_best() -> None:
    data, tau = _experiment(6000, seed=0)
    rng = np.random.default_rng(1)
    # Every learner ranks by the true effect plus its own noise; the richest one's is a little
    # smaller, so it is the best point estimate, but not beyond noise.
    scores = {name: tau + rng.normal(0, 0.25 if name == "x_learner" else 0.4, len(data))
              for name in LEARNERS}
    choice = _choose(data, _oof(scores), ["coupon"], confidence=0.95, replicates=200, seed=0)
    assert choice["best"] == "x_learner"
    assert choice["chosen"] == list(LEARNERS)[0] == "s_logistic"
    assert choice["gap_lower"]["s_logistic"] <= 0
    assert "simplest" in choice["rule"]


def test_the_chooser_takes_a_richer_learner_that_is_clearly_better() -> None:
    data, tau = _experiment(6000, seed=2)
    rng = np.random.default_rng(3)
    # The linear learners rank at random; the trees find the true effect.
    scores = {name: rng.random(len(data)) for name in LEARNERS}
    for name in ("s_learner", "t_learner", "x_learner"):
        scores[name] = tau + rng.normal(0, 0.01, len(data))
    choice = _choose(data, _oof(scores), ["coupon"], confidence=0.95, replicates=200, seed=0)
    assert choice["chosen"] == "s_learner"  # the simplest of the three good ones
    assert choice["gap_lower"]["s_logistic"] > 0 and choice["gap_lower"]["dr_learner"] > 0


# -- effects bounded by what there is to save ----------------------------------------------------


def test_an_action_gives_no_retention_effect_to_a_customer_who_surely_stays() -> None:
    effects = pd.DataFrame({"call": [0.05, 0.05, 0.05, -0.5], "coupon": [0.2, 0.2, 0.0, 0.0]})
    p_churn = np.array([0.0, 0.03, 1.0, 0.8])
    bounded = bounded_effects(effects, p_churn)
    assert bounded.loc[0].tolist() == [0.0, 0.0]  # surely stays: nothing to save
    assert bounded.loc[1].tolist() == pytest.approx([0.03, 0.03])  # at most P(leave)
    assert bounded.loc[2].tolist() == pytest.approx([0.05, 0.0])
    assert bounded.loc[3, "call"] == pytest.approx(-0.2)  # P(stay) never below 0


def test_a_plan_never_pays_to_save_a_customer_who_surely_stays() -> None:
    """Two customers alike but for p_churn: the one who surely stays is worth nothing to an
    action, however large its estimated effect; the other is contacted."""
    config = ProjectConfig()
    customers = pd.DataFrame({"user_id": ["stays", "wavers"], "p_churn": [0.0, 0.5],
                              "risk_tier": ["low", "medium"], "value": [100.0, 100.0]})
    uplift = pd.DataFrame({"call": [0.05, 0.05]})
    inputs = PlanInputs(as_of=dt.datetime(2025, 1, 1), customers=customers, uplift=uplift,
                        cost=pd.DataFrame({"call": [1.0, 1.0]}),
                        eligible=pd.DataFrame({"call": [True, True]}), capacity=[None],
                        uplift_source="test")
    margin = inputs.margin(config)
    assert margin[0, 0] == pytest.approx(-1.0)  # no retention value, only the cost
    assert margin[1, 0] == pytest.approx(0.05 * 100 * config.intervene.gross_margin - 1.0)
    assert choose_actions(inputs, config=config, budget=100.0).tolist() == [-1, 0]


# -- pooling across campaigns --------------------------------------------------------------------


def _campaign(n: int, seed: int, name: str, day: str, effect: float) -> UpliftData:
    """A randomised campaign where 'coupon' lifts P(y) by ``effect`` x x1 (x1 in [0, 1])."""
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"x1": rng.random(n), "x2": rng.random(n)})
    action = rng.choice(np.array(["none", "coupon"], dtype=object), n)
    p = 0.2 + 0.2 * x["x2"].to_numpy() + effect * x["x1"].to_numpy() * (action == "coupon")
    y = (rng.random(n) < p).astype(float)
    return UpliftData(features=x, action=action, y=y, revenue=y,
                      user_id=np.array([f"{name}-{i}" for i in range(n)], dtype=object),
                      campaign_id=np.array([name] * n, dtype=object), outcome_type="order",
                      window_days=30, assigned_at=np.full(n, np.datetime64(day, "us")))


def _both(a: UpliftData, b: UpliftData) -> UpliftData:
    return UpliftData(features=pd.concat([a.features, b.features], ignore_index=True),
                      action=np.concatenate([a.action, b.action]),
                      y=np.concatenate([a.y, b.y]), revenue=np.concatenate([a.revenue, b.revenue]),
                      user_id=np.concatenate([a.user_id, b.user_id]),
                      campaign_id=np.concatenate([a.campaign_id, b.campaign_id]),
                      outcome_type="order", window_days=30,
                      assigned_at=np.concatenate([a.assigned_at, b.assigned_at]))


GRID = pd.DataFrame({"x1": np.linspace(0, 1, 11), "x2": 0.5})


def test_a_second_campaign_improves_the_estimate() -> None:
    """Same true effect (0.3 x x1) in both campaigns: learning from both, the older one at half
    weight, is closer to the truth than learning from the newer alone."""
    errors = {"newest only": [], "pooled": []}
    for seed in range(4):
        old = _campaign(1500, 100 + seed, "winter", "2025-01-01", 0.3)
        new = _campaign(1500, 200 + seed, "spring", "2025-04-01", 0.3)
        for label, data in (("newest only", new), ("pooled", _both(old, new))):
            tau = fit_uplift(data, "t_logistic", actions=["coupon"], half_life_days=90).predict(
                GRID)["coupon"].to_numpy()
            errors[label].append(float(np.mean((tau - 0.3 * GRID["x1"].to_numpy()) ** 2)))
    assert np.mean(errors["pooled"]) < 0.75 * np.mean(errors["newest only"])


def test_older_campaigns_count_less_and_the_newest_sets_the_context() -> None:
    """The old campaign's coupon did nothing, the new one's works (0.4 x x1): the campaign is a
    feature and the estimate is for now (the newest campaign's context), so it follows the new
    campaign; the old one weighs 2^-(90/30) = 1/8 with a 30-day half-life."""
    old = _campaign(3000, 1, "winter", "2025-01-01", 0.0)
    new = _campaign(3000, 2, "spring", "2025-04-01", 0.4)
    both = _both(old, new)
    weights = campaign_weights(both, 30.0)
    assert set(np.round(weights[:3000], 6)) == {0.125} and set(weights[3000:]) == {1.0}
    pooled = fit_uplift(both, "s_learner", actions=["coupon"], half_life_days=30).predict(GRID)
    alone = fit_uplift(old, "s_learner", actions=["coupon"], half_life_days=30).predict(GRID)
    truth_now = 0.4 * GRID["x1"].to_numpy()
    assert np.mean(np.abs(pooled["coupon"] - truth_now)) < np.mean(np.abs(alone["coupon"]
                                                                          - truth_now))
    assert pooled["coupon"].iloc[-1] > 0.2  # x1 = 1: the new campaign's 0.4, not the old 0


# -- the DR-learner's known propensity -----------------------------------------------------------


def test_the_dr_learner_uses_each_campaigns_propensity() -> None:
    """Two campaigns with different treated shares (80% and 20%) and baselines (0.6 and 0.2)
    that the features do not show: pooled naively the treated look better than they are; with
    each campaign's propensity the DR-learner recovers the true effect, 0.1."""
    rng = np.random.default_rng(7)
    n = 8000
    campaign = np.where(np.arange(n) < n // 2, "a", "b").astype(object)
    share = np.where(campaign == "a", 0.8, 0.2)
    treated = rng.random(n) < share
    base = np.where(campaign == "a", 0.6, 0.2)
    y = (rng.random(n) < base + 0.1 * treated).astype(float)
    x = pd.DataFrame({"x1": rng.random(n)})
    action = np.where(treated, "coupon", "none").astype(object)
    known = DRLearner(random_state=0).fit(x, action, y, ["coupon"], groups=campaign)
    naive = DRLearner(random_state=0).fit(x, action, y, ["coupon"])
    assert known.predict(x)["coupon"].mean() == pytest.approx(0.1, abs=0.03)
    assert naive.predict(x)["coupon"].mean() > 0.25


def _three(*parts: UpliftData) -> UpliftData:
    out = parts[0]
    for p in parts[1:]:
        out = _both(out, p)
    return out


def test_the_estimate_is_the_weighted_mean_over_the_campaigns() -> None:
    """The old campaign's coupon did nothing, the new one's works (0.4 x x1, 0.2 on average
    over the grid). A customer scored now is in no campaign: the estimate is the mean over the
    campaigns weighted by rows x the half-life weights, the pooling's own weights, so 6,000 old
    rows against 2,000 new ones give 0.25 x 0.2 = 0.05 without a half-life, and with a 90-day
    half-life (the old rows at half weight: 3,000 against 2,000) 0.4 x 0.2 = 0.08."""
    old = _campaign(6000, 3, "winter", "2025-01-01", 0.0)
    new = _campaign(2000, 4, "spring", "2025-04-01", 0.4)
    both = _both(old, new)
    flat = fit_uplift(both, "t_logistic", actions=["coupon"], half_life_days=None)
    halved = fit_uplift(both, "t_logistic", actions=["coupon"], half_life_days=90)
    assert flat.context.for_action("coupon") == pytest.approx({"spring": 0.25, "winter": 0.75})
    assert halved.context.for_action("coupon") == pytest.approx({"spring": 0.4, "winter": 0.6})
    # Exactly the weighted mean of the predictions in each campaign's context.
    per = {c: halved.learner.predict(halved.context.add(GRID, c))["coupon"]
           for c in ("winter", "spring")}
    assert halved.predict(GRID)["coupon"].to_numpy() == pytest.approx(
        (0.6 * per["winter"] + 0.4 * per["spring"]).to_numpy())
    assert flat.predict(GRID)["coupon"].mean() == pytest.approx(0.05, abs=0.03)
    assert halved.predict(GRID)["coupon"].mean() == pytest.approx(0.08, abs=0.03)


def test_a_tiny_newest_campaign_does_not_set_every_estimate() -> None:
    """Two large campaigns agree (0.3 x x1, 0.15 over the grid); the newest is tiny (150 rows)
    and noisy (there the coupon happened to hurt: -0.3 x x1). Its 150 rows are a small part of
    what is known, and the estimate stays near the large campaigns' (the weighted mean, about
    0.14), where predicting in the newest campaign's context alone would follow its noise."""
    big1 = _campaign(5000, 11, "jan", "2025-01-01", 0.3)
    big2 = _campaign(5000, 12, "feb", "2025-02-01", 0.3)
    tiny = _campaign(150, 13, "mar", "2025-03-01", -0.3)
    for learner in ("t_logistic", "s_learner"):
        fitted = fit_uplift(_three(big1, big2, tiny), learner, actions=["coupon"],
                            half_life_days=180)
        assert fitted.context.for_action("coupon")["mar"] < 0.02
        assert fitted.predict(GRID)["coupon"].mean() == pytest.approx(0.14, abs=0.04)


# -- a plan holds its control group out per action: matched controls only ------------------------


def _targeted(n: int, seed: int) -> UpliftData:
    """A plan's campaign: 'coupon' went to risky customers (P(y) 0.2), 'call' to safe ones
    (0.7), a risk the features do not show; each stratum's control rows (10%) were held out
    from its own action. Both actions truly lift P(y) by +0.05."""
    rng = np.random.default_rng(seed)
    risky = np.arange(n) < n // 2
    planned = np.where(risky, "coupon", "call").astype(object)
    control = rng.random(n) < 0.1
    y = (rng.random(n) < np.where(risky, 0.2, 0.7) + 0.05 * ~control).astype(float)
    return UpliftData(features=pd.DataFrame({"x1": rng.random(n)}),
                      action=np.where(control, "none", planned).astype(object), y=y, revenue=y,
                      user_id=np.array([f"p{i}" for i in range(n)], dtype=object),
                      campaign_id=np.full(n, "plan-01", dtype=object), outcome_type="order",
                      window_days=30, assigned_at=np.full(n, np.datetime64("2025-03-01", "us")),
                      stratum=planned)


@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_each_action_is_learned_against_its_own_control_rows(learner: str) -> None:
    """Set against every control row, 'coupon' (risky customers) would look harmful (about
    -0.2) and 'call' (safe ones) very good (+0.3); against the rows held out from each, both
    come out near their true +0.05."""
    data = _targeted(12000, 21)
    assert set(data.contexts) == {"plan-01|coupon", "plan-01|call"}
    tau = fit_uplift(data, learner, actions=["coupon", "call"]).predict(data.features)
    assert tau["coupon"].mean() == pytest.approx(0.05, abs=0.04)
    assert tau["call"].mean() == pytest.approx(0.05, abs=0.04)


def test_the_out_of_fold_average_effect_compares_matched_rows_only() -> None:
    """The recalibration's average effect (which a plan falls back to when the ranking carries
    no signal) is the randomised comparison, not risky treated against all controls."""
    from churnguard.intervene.uplift import evaluate_learners

    data = _targeted(12000, 22)
    result = evaluate_learners(data, actions=["coupon", "call"], folds=3, replicates=20)
    assert result.calibration["coupon"]["ate"] == pytest.approx(0.05, abs=0.03)
    assert result.calibration["call"]["ate"] == pytest.approx(0.05, abs=0.03)
