"""An intervention plan: who gets which action under a budget, who is held out, and why.

``make_plan`` puts the pieces together at the scoring cutoff T:

1. churn scores and risk tiers from the champion model (``scoring.score_customers``, without
   reasons and not saved: ``churnguard score`` owns the stored scores);
2. each action's effect on P(outcome in the window) per customer: the uplift learner chosen by
   out-of-fold Qini on the store's randomised campaigns, or configured prior effects by risk tier
   when there is no usable campaign history (the summary says which);
3. value: revenue in the horizon from the value model chosen by an out-of-time backtest, turned
   into the value of keeping the customer, E[R] / P(active) (``value.py``);
4. expected margin of action a for customer i:
   ``uplift_ia x value_i x gross_margin - expected_cost_ia`` over the eligible pairs;
5. the allocation maximising the total margin under the budget and the actions' capacities
   (``allocate.py``), solved for budget / (1 - control share) because the control customers are
   not contacted and cost nothing; any overshoot from rounding the control group is trimmed;
6. the control group: a keyed-hash random share of the planned customers per (tier, action);
7. for the contacted customers only: recommended items, the reasons behind their score
   (``scoring.reasons_for``) and a personalised message in en and zh built from them.

``save_plan`` stores the plan and its rows and records the campaign (treated and control rows) in
``campaigns``, so that ``measure`` can evaluate it and the next uplift model learns from it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnguard.config import NO_ACTION, ProjectConfig
from churnguard.cutoffs import BacktestError, resolve_as_of, value_cutoffs
from churnguard.errors import ChurnguardError
from churnguard.intervene.actions import eligibility, expected_costs
from churnguard.intervene.allocate import allocate
from churnguard.intervene.control import control_key, control_mask
from churnguard.intervene.explore import (
    PRIOR_SD,
    Z95,
    Belief,
    action_beliefs,
    expected_sd,
    explore_rng,
    neyman_counts,
    segment_beliefs,
    thompson_choice,
)
from churnguard.intervene.uplift import (
    LEARNERS,
    FittedUplift,
    UpliftData,
    UpliftError,
    UpliftEvaluation,
    bounded_effects,
    evaluate_learners,
    fit_uplift,
    prior_uplift,
    uplift_dataset,
)
from churnguard.intervene.value import (
    VALUE_MODELS,
    BTYDValueModel,
    _repeat_spend,
    future_revenue,
    value_backtest,
)
from churnguard.registry import champion_definition
from churnguard.scoring import isolated_snapshot, reasons_for, score_customers
from churnguard.snapshots import Snapshot
from churnguard.store import Store

__all__ = ["PLAN_COLUMNS", "LearnedUplift", "Plan", "PlanError", "PlanInputs", "choose_actions",
           "choose_with_exploration", "make_plan", "plan_inputs", "save_plan"]

PLAN_COLUMNS = ["user_id", "action", "is_control", "risk_tier", "p_churn", "uplift", "value",
                "expected_cost", "expected_margin", "channel", "items", "message_en",
                "message_zh", "assignment"]
# How a row's action was chosen: by the model (greedy), by exploration, or held out from either.
MODEL, EXPLORE, CONTROL, EXPLORE_CONTROL = "model", "explore", "control", "explore_control"
# The value of keeping a customer divides by P(active); a floor keeps near-certain leavers from
# getting absurd values out of a small E[R].
MIN_P_ACTIVE = 0.05


class PlanError(ChurnguardError, ValueError):
    """A plan cannot be made (with the reason and the fix)."""

    code = "cannot_plan"


@dataclass(frozen=True, kw_only=True)
class LearnedUplift:
    """The uplift a plan learned from the campaigns (the fitted learner, the chooser's evaluation
    with its out-of-fold recalibration, where it came from, notes): given back to
    :func:`plan_inputs` as ``learned``, the plan applies it to the customers at its own cutoff
    instead of learning again (the same campaigns give the same model; a model kept fixed)."""

    learner: FittedUplift
    evaluation: UpliftEvaluation
    source: str
    notes: list[str] = field(default_factory=list)
    data: UpliftData | None = None  # the campaign rows it learned from (exploration: _beliefs)


@dataclass(frozen=True, kw_only=True)
class PlanInputs:
    """Everything the allocation needs, one row per customer of the scoring population."""

    as_of: dt.datetime
    customers: pd.DataFrame  # user_id, p_churn, risk_tier, model_version, revenue, value, basket
    uplift: pd.DataFrame  # one column per action: change in P(outcome in the window)
    cost: pd.DataFrame  # expected spend per action
    eligible: pd.DataFrame  # bool per action
    capacity: list[int | None]
    uplift_source: str
    value_source: dict = field(default_factory=dict)
    evaluation: UpliftEvaluation | None = None
    model_version: str = ""
    # Customers of the population left out because their data cannot be featurised (user id ->
    # why; scoring.isolated_snapshot), and what else the plan's reader should know.
    left_out: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    learned: LearnedUplift | None = None  # the learned uplift, None for prior effects
    # What is known of each (risk tier, action) effect, for exploration (explore.py).
    beliefs: dict[tuple[str, str], Belief] = field(default_factory=dict)
    # The point-in-time features the uplift was predicted from, rows as ``customers``.
    features: pd.DataFrame | None = None

    @property
    def actions(self) -> list[str]:
        return list(self.uplift.columns)

    def margin(self, config: ProjectConfig, uplift: pd.DataFrame | None = None) -> np.ndarray:
        """uplift x value x gross margin - expected cost, customers x actions; the uplift
        bounded by what there is to save (:func:`bounded_effects`: at most p_churn)."""
        u = bounded_effects((self.uplift if uplift is None else uplift)[self.actions],
                            self.customers["p_churn"].to_numpy(dtype=float)).to_numpy()
        value = self.customers["value"].to_numpy(dtype=float)[:, None]
        return u * value * config.intervene.gross_margin - self.cost[self.actions].to_numpy()


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress or (lambda message: None)


def _beliefs(store: Store, data: UpliftData | None, actions: list[str], tiers: np.ndarray
             ) -> dict[tuple[str, str], Belief]:
    """What is known of each (risk tier, action) effect (explore.segment_beliefs): the
    campaign-wide averages of ``data``, updated per tier with the rows of churnguard's own plans
    (plan_rows holds their tier and, for a control row, the action it was held out from)."""
    segments = sorted({str(t) for t in tiers})
    if data is None:
        overall = {a: Belief(mean=0.0, sd=PRIOR_SD) for a in actions}
        return segment_beliefs(overall, pd.DataFrame(), segments)
    overall = action_beliefs(data.action, data.y, actions, strata=data.stratum,
                             contexts=data.contexts)
    rows = pd.DataFrame({"campaign_id": data.campaign_id.astype(str),
                         "user_id": data.user_id.astype(str), "y": data.y,
                         "is_control": data.action == NO_ACTION})
    planned = store.con.execute(
        "SELECT campaign_id, user_id, risk_tier AS segment, action FROM plan_rows "
        "WHERE list_contains(?, campaign_id)",
        [sorted(set(rows["campaign_id"]))]).df()
    measured = rows.merge(planned, on=["campaign_id", "user_id"], how="inner")
    return segment_beliefs(overall, measured, segments)


def _uplift(store: Store, config: ProjectConfig, features: pd.DataFrame, tiers: np.ndarray,
            say: Callable[[str], None], seed: int, as_of: dt.datetime,
            learned: LearnedUplift | None = None
            ) -> tuple[pd.DataFrame, str, UpliftEvaluation | None, list[str], LearnedUplift | None]:
    """Effects of the catalogue's actions, where they come from, the evaluation, notes and the
    learned uplift (None for prior effects); ``learned``: apply it instead of learning.

    Only the catalogue's actions can be allocated (an action's cost is in the catalogue); the
    campaigns' other actions are left out of the learning and named in a note."""
    actions = [a.name for a in config.intervene.actions]
    if learned is None:
        learned = _learn_uplift(store, config, features, say, seed, as_of)
        if not isinstance(learned, LearnedUplift):
            return (prior_uplift(tiers, dict(config.intervene.prior_effects), actions), learned,
                    None, [], None)
    effects = learned.evaluation.calibrate(
        learned.learner.predict(features.reset_index(drop=True))[actions])
    return effects, learned.source, learned.evaluation, list(learned.notes), learned


def _learn_uplift(store: Store, config: ProjectConfig, features: pd.DataFrame,
                  say: Callable[[str], None], seed: int, as_of: dt.datetime
                  ) -> LearnedUplift | str:
    """The uplift learned from the store's campaigns, or why prior effects are used instead."""
    actions = [a.name for a in config.intervene.actions]
    iv = config.intervene
    try:
        say("learning uplift from past campaigns")
        data = uplift_dataset(store, actions=actions, outcome_type=iv.outcome_type,
                              window_days=iv.window_days, definition=config.churn,
                              features=list(features.columns), as_of=as_of)
        # Three folds: honest, and a plan stays quick enough to make on demand.
        up = config.uplift
        kept = recent_choice(store, as_of=as_of, days=up.choose_every_days,
                             outcome_type=iv.outcome_type, window_days=iv.window_days)
        if kept:
            say(f"keeping the {kept['chosen']} chosen at {kept['chosen_at'][:10]} "
                f"([uplift] choose_every_days = {up.choose_every_days})")
        evaluation = evaluate_learners(data, actions=actions, folds=3, seed=seed,
                                       half_life_days=up.half_life_days,
                                       confidence=up.choice_confidence,
                                       replicates=up.bootstrap_replicates,
                                       shrinkage=up.shrinkage,
                                       learners=[kept["chosen"]] if kept else None,
                                       progress=say)
        evaluation.choice.update(kept or {"chosen_at": as_of.isoformat(), "kept_from": None})
    except UpliftError as exc:
        return (f"prior effects by risk tier from churnguard.toml, because no campaign history "
                f"can be used: {exc}")
    notes = []
    if data.skipped_actions:
        notes.append("campaign actions not in the [intervene] actions of churnguard.toml are "
                     "left out of the allocation (their cost is unknown): "
                     + ", ".join(f"{a} ({n:,} rows)" for a, n in
                                 sorted(data.skipped_actions.items()))
                     + "; add them to the catalogue to plan them")
    if data.left_out:
        notes.append(f"{len(data.left_out)} customers' campaign rows were left out of the uplift "
                     f"learning: {next(iter(set(data.left_out.values())))}")
    say(f"fitting the {evaluation.chosen} on {len(data):,} campaign rows")
    learner = fit_uplift(data, evaluation.chosen, actions=actions, seed=seed,
                         half_life_days=config.uplift.half_life_days)
    how = (f"kept from the choice of {evaluation.choice['chosen_at'][:10]}" if kept
           else "chosen by out-of-fold Qini")
    source = (f"{evaluation.chosen} fitted on {len(data):,} rows of {evaluation.n_campaigns} "
              f"randomised campaigns ({how}, recalibrated out of fold)")
    if learner.missing_actions_:
        source += f"; no history for {', '.join(learner.missing_actions_)} (effect 0)"
    return LearnedUplift(learner=learner, evaluation=evaluation, source=source, notes=notes,
                         data=data)


def recent_choice(store: Store, *, as_of: dt.datetime, days: int, outcome_type: str,
                  window_days: int) -> dict | None:
    """The uplift learner a stored plan chose among all of them, when that choice was made less
    than ``days`` before ``as_of`` for the same outcome: {"chosen", "chosen_at" (the as-of of
    the plan that chose), "kept_from" (that plan's campaign id)}; None otherwise, or when
    ``days`` is 0. The newest plan at or before ``as_of`` says: one that kept a choice names
    when it was made, so a choice is kept at most ``days``, however often plans are made."""
    if days <= 0:
        return None
    row = store.con.execute(
        "SELECT campaign_id, as_of, summary FROM plans WHERE as_of <= ? "
        "ORDER BY as_of DESC, created_at DESC LIMIT 1", [as_of]).fetchone()
    if row is None:
        return None
    campaign_id, plan_as_of, summary = row
    evaluation = (json.loads(summary) or {}).get("uplift_evaluation") or {}
    choice = evaluation.get("choice") or {}
    chosen = evaluation.get("chosen")
    if (chosen not in LEARNERS or evaluation.get("outcome_type") != outcome_type
            or evaluation.get("window_days") != window_days):
        return None
    # A plan stored before choices were kept made its choice at its own as-of.
    chosen_at = dt.datetime.fromisoformat(choice.get("chosen_at") or plan_as_of.isoformat())
    if as_of - chosen_at >= dt.timedelta(days=days):
        return None
    return {"chosen": chosen, "chosen_at": chosen_at.isoformat(),
            "kept_from": choice.get("kept_from") or campaign_id}


def _value(store: Store, config: ProjectConfig, scoring: Snapshot, say: Callable[[str], None]
           ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Expected revenue in the horizon and the expected basket per scoring row."""
    definition = config.churn
    try:
        train_cutoff, test_cutoff = value_cutoffs(store, definition=definition)
    except BacktestError as exc:
        raise PlanError(f"cannot estimate customer value: {exc}") from exc
    say("choosing the value model by backtest")
    # Customers whose data cannot be featurised are left out of the value model's training too.
    train, _ = isolated_snapshot(store, definition=definition, cutoffs=[train_cutoff],
                                 with_labels=True)
    test, _ = isolated_snapshot(store, definition=definition, cutoffs=[test_cutoff],
                                with_labels=True)
    if len(train) == 0:
        train = test
    report, fitted = value_backtest(train, test, store=store, definition=definition)
    # Refit the chosen model on the newest labelled cutoff, then predict at T.
    rev = future_revenue(store, test.features.index.to_frame(index=False),
                         days=definition.horizon_days, activity=definition.activity)
    chosen = VALUE_MODELS[report.chosen]().fit(test, rev)
    btyd = chosen if isinstance(chosen, BTYDValueModel) else BTYDValueModel().fit(test, rev)
    revenue = chosen.predict(scoring)
    spend = _repeat_spend(scoring)
    basket = btyd.gamma_gamma_.conditional_expected_spend(spend["x"].to_numpy(),
                                                          spend["m"].to_numpy())
    source = {"chosen": report.chosen, "test_cutoff": report.test_cutoff,
              "n_test": report.n_test, "mean_revenue": report.mean_revenue,
              "models": report.models}
    return revenue, basket, source


def following_the_champion(store: Store, config: ProjectConfig) -> ProjectConfig:
    """``config`` with the churn definition the champion was trained with: a plan acts on the
    risk the model predicts (a 30-day model's customers leave within 30 days, whatever
    churnguard.toml says now)."""
    definition = champion_definition(store, config.churn)
    return config if definition == config.churn else config.model_copy(update={"churn": definition})


def plan_inputs(store: Store, *, config: ProjectConfig, as_of: object = None, seed: int = 0,
                progress: Callable[[str], None] | None = None,
                learned: LearnedUplift | None = None) -> PlanInputs:
    """Scores, uplift, value, costs, eligibility and capacities at ``as_of`` (default: T), under
    the champion's churn definition (:func:`following_the_champion`). ``learned``: an uplift
    learned before (``PlanInputs.learned``), applied instead of learning from the campaigns."""
    say = _say(progress)
    config = following_the_champion(store, config)
    when = resolve_as_of(store, as_of)
    # Reasons are written only for the customers the plan contacts (make_plan), not for everyone.
    scored = score_customers(store, definition=config.churn, tiers=config.scoring, as_of=when,
                             save=False, with_reasons=False, progress=say)
    scores = scored.scores[["user_id", "p_churn", "risk_tier", "model_version"]]
    definition = config.churn
    # The plan's features are every feature (the uplift and value models use them), so a
    # customer the champion's features could score may still be left out here.
    scoring, unfeaturised = isolated_snapshot(store, definition=definition, cutoffs=[when])
    left_out = {**scored.left_out, **unfeaturised}
    if left_out:
        scoring = scoring.subset(~scoring.index.get_level_values(0).astype(str)
                                 .isin(set(left_out)))
    order = scoring.index.get_level_values(0).astype(str)
    customers = scores.set_index("user_id").reindex(order).reset_index()
    features = scoring.features
    iv = config.intervene
    tiers = customers["risk_tier"].to_numpy()
    uplift, source, evaluation, notes, learned = _uplift(store, config, features, tiers, say,
                                                         seed, when, learned)
    beliefs = _beliefs(store, None if learned is None else learned.data,
                       [a.name for a in iv.actions], tiers)
    notes = [*(f"left out customer {u}: {why}" for u, why in left_out.items()), *notes]
    for note in notes:
        say(note)
    # An action saves at most the customer's chance of leaving (and never lifts P(stay) past 1):
    # a customer who surely stays gains nothing, whatever the average effect says.
    uplift = bounded_effects(uplift.reset_index(drop=True),
                             customers["p_churn"].to_numpy(dtype=float))
    revenue, basket, value_source = _value(store, config, scoring, say)
    p_active = np.clip(1.0 - customers["p_churn"].to_numpy(dtype=float), MIN_P_ACTIVE, 1.0)
    customers["revenue"] = revenue
    customers["value"] = revenue / p_active
    customers["basket"] = basket
    p_with = pd.DataFrame({a: np.clip(1.0 - customers["p_churn"].to_numpy() + uplift[a]
                                      .to_numpy(), 0.0, 1.0) for a in uplift.columns})
    cost = expected_costs(iv.actions, basket=basket, p_order_with=p_with)
    say("checking eligibility")
    eligible = eligibility(store, customers["user_id"].tolist(), as_of=when, config=iv)
    capacity = []
    for a in iv.actions:
        caps = [c for c in (a.capacity, None if a.daily_capacity is None
                            else a.daily_capacity * iv.campaign_days) if c is not None]
        capacity.append(min(caps) if caps else None)
    return PlanInputs(as_of=when, customers=customers, uplift=uplift.reset_index(drop=True),
                      cost=cost, eligible=eligible[[a.name for a in iv.actions]]
                      .reset_index(drop=True), capacity=capacity, uplift_source=source,
                      value_source=value_source, evaluation=evaluation,
                      model_version=str(scores["model_version"].iloc[0]), left_out=left_out,
                      notes=notes, learned=learned, beliefs=beliefs,
                      features=features.reset_index(drop=True))


def choose_actions(inputs: PlanInputs, *, config: ProjectConfig, budget: float,
                   uplift: pd.DataFrame | None = None) -> np.ndarray:
    """Action index per customer (-1: none) maximising the margin within budget and capacities,
    before the control group is drawn. ``uplift`` overrides the estimates (the oracle uses the
    true effects)."""
    margin = inputs.margin(config, uplift)
    scaled_budget, capacity = _scaled(inputs, config, budget)
    result = allocate(margin=margin, cost=inputs.cost[inputs.actions].to_numpy(),
                      budget=scaled_budget, capacity=capacity,
                      eligible=inputs.eligible[inputs.actions].to_numpy(dtype=bool))
    return result.choice


def _scaled(inputs: PlanInputs, config: ProjectConfig, budget: float
            ) -> tuple[float, list[int | None]]:
    """Budget and capacities before the control group is drawn (control customers cost nothing
    and use no capacity), as ``choose_actions`` solves them."""
    scale = 1.0 / (1.0 - config.intervene.control_share)
    return budget * scale, [None if c is None else int(np.floor(c * scale))
                            for c in inputs.capacity]


def _explored(inputs: PlanInputs, config: ProjectConfig, n_explore: int, budget: float,
              capacity: list[int | None], rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n_explore`` explored contacts in a random order (customer, action index), each
    prefix within ``budget`` and ``capacity`` (explore.py: Neyman allocation over risk tiers,
    customers at random within a tier, Thompson sampling among the actions that could pay)."""
    acts = inputs.actions
    cost = inputs.cost[acts].to_numpy()
    candidates = _could_pay(inputs, config)
    tiers = inputs.customers["risk_tier"].astype(str).to_numpy()
    segments = sorted(set(tiers))

    def belief(t: str, a: str) -> Belief:
        return inputs.beliefs.get((t, a)) or Belief(mean=0.0, sd=PRIOR_SD)

    open_ = candidates.any(axis=1)
    pool = {t: int((open_ & (tiers == t)).sum()) for t in segments}
    sd = {t: float(np.mean([belief(t, a).sd for a in acts])) for t in segments}
    counts = neyman_counts(pool, sd, n_explore)
    drawn = [rng.choice(np.flatnonzero(open_ & (tiers == t)), counts[t], replace=False)
             for t in segments if counts[t]]
    picked = rng.permutation(np.concatenate(drawn)) if drawn else np.zeros(0, dtype=int)
    shape = (len(picked), len(acts))
    mean = np.array([[belief(t, a).mean for a in acts] for t in tiers[picked]]).reshape(shape)
    spread = np.array([[belief(t, a).sd for a in acts] for t in tiers[picked]]).reshape(shape)
    value = inputs.customers["value"].to_numpy(dtype=float)[picked, None]
    p_churn = inputs.customers["p_churn"].to_numpy(dtype=float)[picked]

    def margin_of(effects: np.ndarray) -> np.ndarray:
        bounded = bounded_effects(pd.DataFrame(effects, columns=acts), p_churn).to_numpy()
        return bounded * value * config.intervene.gross_margin - cost[picked]

    action = thompson_choice(inputs.uplift[acts].to_numpy()[picked], mean, spread, margin_of,
                             candidates[picked], rng)
    keep = np.zeros(len(picked), dtype=bool)
    spend, used = 0.0, np.zeros(len(acts), dtype=int)
    for k, (i, a) in enumerate(zip(picked, action, strict=True)):
        if a < 0 or (capacity[a] is not None and used[a] >= capacity[a]) \
                or spend + cost[i, a] > budget:
            continue  # the random order makes the budget's cut random too
        keep[k], spend, used[a] = True, spend + cost[i, a], used[a] + 1
    return picked[keep], action[keep]


def _could_pay(inputs: PlanInputs, config: ProjectConfig) -> np.ndarray:
    """Customers x actions: eligible, and worth the cost if the effect is at the upper end of
    the 95% interval of its (risk tier, action) belief (the customer's estimate + 1.96 sd).
    Exploration gives only such actions: never one that would lose money even then, but also
    ones whose estimated margin is negative only because their effect is not yet known."""
    acts = inputs.actions
    tiers = inputs.customers["risk_tier"].astype(str).to_numpy()
    sd = np.array([[(inputs.beliefs.get((t, a)) or Belief(mean=0.0, sd=PRIOR_SD)).sd
                    for a in acts] for t in tiers]).reshape(len(tiers), len(acts))
    optimistic = inputs.uplift[acts] + Z95 * sd
    return inputs.eligible[acts].to_numpy(dtype=bool) & (inputs.margin(config, optimistic) > 0)


def choose_with_exploration(inputs: PlanInputs, *, config: ProjectConfig, budget: float,
                            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict]:
    """Action index per customer (-1: none), whether it was explored, and what exploring costs
    and teaches, before the control group is drawn.

    ``[intervene] explore_share`` of the contacts are explored (:func:`_explored`) and the model
    allocates what is left of the budget and capacities to the other customers, so both still
    hold. The number explored is the largest whose share of the contacts does not pass the
    configured one (explored contacts may cost more or less than the model's picks, which moves
    the model's count, so it is found by bisection). When the model finds too few contacts worth
    their cost to spend the budget, exploration may also spend what it leaves, up to
    ``explore_share`` of the budget: a plan whose estimates say nothing pays yet (small effects
    measured on little data, shrunk toward zero) still learns, instead of contacting nobody and
    never finding out. With a share of 0 this is :func:`choose_actions` exactly."""
    share = config.intervene.explore_share
    greedy = choose_actions(inputs, config=config, budget=budget)
    if share <= 0:
        return greedy, np.zeros(len(greedy), dtype=bool), {}
    budget_s, capacity = _scaled(inputs, config, budget)
    ratio = share / (1.0 - share)  # explored per model contact
    acts = inputs.actions
    cost = inputs.cost[acts].to_numpy()
    # The budget the model leaves unspent, up to the share: what exploration may spend anyway.
    left = min(share * budget_s, budget_s - _spend(cost, greedy))
    could = _could_pay(inputs, config)
    # Enough explored candidates to spend it (a coupon nobody redeems may cost nothing).
    cheapest = float(np.where(could & (cost > 0), cost, np.inf).min(initial=np.inf))
    pool = int(could.any(axis=1).sum())
    by_budget = 0 if left <= 0 else pool if not np.isfinite(cheapest) \
        else int(min(pool, np.ceil(left / cheapest)))
    who, what = _explored(inputs, config,
                          max(int(np.ceil(ratio * (greedy >= 0).sum())), by_budget), budget_s,
                          capacity, rng)
    margin = inputs.margin(config)
    eligible = inputs.eligible[acts].to_numpy(dtype=bool)

    def plan_with(k: int, method: str = "auto") -> tuple[np.ndarray, np.ndarray]:
        """The first ``k`` explored contacts, and the model's allocation of what they leave."""
        is_explored = np.zeros(len(greedy), dtype=bool)
        is_explored[who[:k]] = True
        used = np.bincount(what[:k], minlength=len(acts))
        rest = allocate(margin=margin, cost=cost,
                        budget=max(budget_s - float(cost[who[:k], what[:k]].sum()), 0.0),
                        capacity=[None if c is None else int(c - used[j])
                                  for j, c in enumerate(capacity)],
                        eligible=eligible & ~is_explored[:, None], method=method)
        choice = rest.choice.copy()
        choice[who[:k]] = what[:k]
        return choice, is_explored

    # The explored share k / contacts grows with k (each explored contact leaves the model less
    # budget): bisect for the largest k whose share does not pass the configured one.
    floor = int(np.searchsorted(np.cumsum(cost[who, what]), left, side="right")) if left > 0 \
        else 0
    lo, hi = 0, len(who)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        # The Lagrangian allocation is within a hair of the exact one, and quick to repeat.
        contacts = int((plan_with(mid, "lagrangian")[0] >= 0).sum())
        if contacts and mid / contacts <= share + 1e-12:
            lo = mid
        else:
            hi = mid - 1
    choice, is_explored = plan_with(max(lo, floor))
    return choice, is_explored, _exploration_report(inputs, config, greedy, choice, is_explored)


def _spend(cost: np.ndarray, choice: np.ndarray) -> float:
    rows = np.flatnonzero(choice >= 0)
    return float(cost[rows, choice[rows]].sum())


def _total(margin: np.ndarray, choice: np.ndarray) -> float:
    rows = np.flatnonzero(choice >= 0)
    return float(margin[rows, choice[rows]].sum())


def _exploration_report(inputs: PlanInputs, config: ProjectConfig, greedy: np.ndarray,
                        choice: np.ndarray, is_explored: np.ndarray) -> dict:
    """What exploring costs (expected margin given up against the greedy plan, on the contacted
    customers) and teaches: per (tier, action) the 95% interval width of the effect now, after
    this plan's rows are measured, and after the greedy plan's would be."""
    iv = config.intervene
    keep = 1.0 - iv.control_share
    margin = inputs.margin(config)
    tiers = inputs.customers["risk_tier"].astype(str).to_numpy()
    rate = 1.0 - inputs.customers["p_churn"].to_numpy(dtype=float)
    per_segment = []
    for (t, a), b in sorted(inputs.beliefs.items()):
        j = inputs.actions.index(a) if a in inputs.actions else None
        if j is None:
            continue
        mine, greedy_mine = (choice == j) & (tiers == t), (greedy == j) & (tiers == t)
        after = {}
        for name, rows in (("plan", mine), ("greedy", greedy_mine)):
            n = int(rows.sum())
            r = float(rate[rows].mean()) if n else 0.5
            after[name] = 2 * 1.959964 * expected_sd(
                b, rate=r, n_treated=int(round(n * keep)), n_control=n - int(round(n * keep)))
        per_segment.append({
            "risk_tier": t, "action": a, "effect": b.mean, "width_now": b.width,
            "width_after_plan": after["plan"], "width_after_greedy": after["greedy"],
            "explored": int((mine & is_explored).sum()), "planned": int(mine.sum()),
            "n_treated": b.n_treated, "n_control": b.n_control})
    greedy_value, value = _total(margin, greedy) * keep, _total(margin, choice) * keep
    return {"share": iv.explore_share, "explored": int(is_explored.sum()),
            "contacts": int((choice >= 0).sum()),
            "greedy_expected_margin": greedy_value, "expected_margin": value,
            "expected_margin_given_up": greedy_value - value, "per_segment": per_segment}


@dataclass(frozen=True, kw_only=True)
class Plan:
    campaign_id: str
    as_of: dt.datetime
    budget: float
    rows: pd.DataFrame  # PLAN_COLUMNS, one row per planned customer (treated and control)
    summary: dict


def _trim(rows: pd.DataFrame, budget: float, capacity: dict[str, int | None]) -> pd.DataFrame:
    """Drop the treated rows with the least margin per cost until the budget and capacities hold
    (rounding the control group per stratum can leave a customer or two too many)."""
    treated = ~rows["is_control"]
    keep = np.ones(len(rows), dtype=bool)
    efficiency = rows["expected_margin"] / rows["expected_cost"].clip(lower=1e-9)
    for action, cap in capacity.items():
        if cap is None:
            continue
        mine = rows.index[treated & (rows["action"] == action)]
        if len(mine) > cap:
            worst = efficiency.loc[mine].sort_values(kind="stable").index[: len(mine) - cap]
            keep[rows.index.get_indexer(worst)] = False
    spend = rows.loc[treated & keep, "expected_cost"].sum()
    if spend > budget:
        for i in efficiency[treated & keep].sort_values(kind="stable").index:
            keep[rows.index.get_loc(i)] = False
            spend -= rows.at[i, "expected_cost"]
            if spend <= budget:
                break
    # A trimmed treated customer leaves the campaign; their stratum's control stays random.
    return rows[keep | rows["is_control"]].reset_index(drop=True)


def make_plan(store: Store, *, config: ProjectConfig, budget: float, as_of: object = None,
              campaign_id: str | None = None, seed: int = 0, inputs: PlanInputs | None = None,
              progress: Callable[[str], None] | None = None) -> Plan:
    """The plan under ``budget`` (see the module docstring); not stored until ``save_plan``."""
    if not np.isfinite(budget) or budget < 0:
        raise PlanError(f"the budget must be a finite amount >= 0, got {budget}")
    say = _say(progress)
    config = following_the_champion(store, config)
    inputs = inputs or plan_inputs(store, config=config, as_of=as_of, seed=seed, progress=say)
    iv = config.intervene
    campaign_id = campaign_id or f"cg-{inputs.as_of:%Y%m%d}-{uuid.uuid4().hex[:8]}"
    say("allocating the budget")
    choice, explored, exploration = choose_with_exploration(
        inputs, config=config, budget=budget,
        rng=explore_rng(seed, inputs.as_of.isoformat()))
    picked = np.flatnonzero(choice >= 0)
    actions = np.array(inputs.actions, dtype=object)
    c = inputs.customers.iloc[picked].reset_index(drop=True)
    k = choice[picked]
    margin = inputs.margin(config)[picked, k]
    channel = {a.name: a.channel for a in iv.actions}
    rows = pd.DataFrame({
        "user_id": c["user_id"].astype(str),
        "action": actions[k],
        "risk_tier": c["risk_tier"].to_numpy(),
        "p_churn": c["p_churn"].to_numpy(dtype=float),
        "uplift": inputs.uplift.to_numpy()[picked, k],
        "value": c["value"].to_numpy(dtype=float),
        "expected_cost": inputs.cost[inputs.actions].to_numpy()[picked, k],
        "expected_margin": margin,
    })
    rows["channel"] = rows["action"].map(channel)
    # Explored customers keep a control group of their own (a stratum per tier, action, arm);
    # the model's strata are named as before, so a plan without exploration is unchanged.
    arm = explored[picked]
    strata = rows["risk_tier"] + "|" + rows["action"] + np.where(arm, "|" + EXPLORE, "")
    rows["is_control"] = control_mask(rows["user_id"], strata, campaign_id=campaign_id,
                                      share=iv.control_share,
                                      key=control_key(iv.control_key_env))
    rows["assignment"] = np.where(arm, np.where(rows["is_control"], EXPLORE_CONTROL, EXPLORE),
                                  np.where(rows["is_control"], CONTROL, MODEL))
    capacity = dict(zip(inputs.actions, inputs.capacity, strict=True))
    rows = _trim(rows, budget, capacity)
    rows = _with_items_and_messages(store, rows, inputs, config, say)
    summary = _summary(rows, inputs, budget=budget, config=config)
    if exploration:
        treated = rows[~rows["is_control"]]
        exploration["contacted"] = int((treated["assignment"] == EXPLORE).sum())
        exploration["contacted_share"] = (exploration["contacted"] / len(treated)
                                          if len(treated) else 0.0)
        summary["exploration"] = exploration
    return Plan(campaign_id=campaign_id, as_of=inputs.as_of, budget=float(budget),
                rows=rows[PLAN_COLUMNS], summary=summary)


def _with_items_and_messages(store: Store, rows: pd.DataFrame, inputs: PlanInputs,
                             config: ProjectConfig, say: Callable[[str], None]) -> pd.DataFrame:
    from churnguard.intervene.messages import compose_messages
    from churnguard.intervene.recommend import recommend_items

    treated = rows[~rows["is_control"]]
    rows = rows.copy()
    rows["items"] = "[]"
    rows["message_en"] = None
    rows["message_zh"] = None
    if treated.empty:
        return rows
    say(f"recommending items for {len(treated):,} customers")
    recs = recommend_items(store, as_of=inputs.as_of, user_ids=treated["user_id"].tolist(), k=3)
    titles = dict(store.con.execute("SELECT item_id, title FROM items").fetchall())
    by_user = recs.sort_values(["user_id", "rank"]).groupby("user_id")["item_id"].agg(list)
    items = treated["user_id"].map(by_user).apply(lambda v: v if isinstance(v, list) else [])
    named = [[{"item_id": i, "title": titles.get(i) or i} for i in v] for v in items]
    rows.loc[treated.index, "items"] = [json.dumps(v, ensure_ascii=False) for v in named]
    say(f"explaining {len(treated):,} contacted customers")
    why = reasons_for(store, treated["user_id"].tolist(), definition=config.churn,
                      as_of=inputs.as_of, version=inputs.model_version, lang=config.scoring.lang)
    context = why[["reason_keys_1", "reason_keys_2", "reason_keys_3", "review_topic"]]
    facts = treated.join(context, on="user_id").assign(items=named)
    say("writing messages")
    for lang in ("en", "zh"):
        rows.loc[treated.index, f"message_{lang}"] = compose_messages(
            facts, lang=lang, actions=config.intervene.actions)
    return rows


def plan_summary(rows: pd.DataFrame, inputs: PlanInputs, *, budget: float,
                 config: ProjectConfig) -> dict:
    """What a plan does, as stored with it and shown by the CLI, the API and the dashboard:
    counts and expected figures overall, per action (``rows``' action, is_control, uplift,
    expected_cost, expected_margin) and per risk tier of the treated customers."""
    treated = rows[~rows["is_control"]]
    per_action = {}
    for action, part in treated.groupby("action"):
        per_action[str(action)] = {
            "customers": int(len(part)),
            "control": int(((rows["action"] == action) & rows["is_control"]).sum()),
            "expected_saves": float(part["uplift"].sum()),
            "expected_cost": float(part["expected_cost"].sum()),
            "expected_margin": float(part["expected_margin"].sum()),
        }
    per_tier = {str(t): int(n) for t, n in treated["risk_tier"].value_counts().items()}
    return {
        "as_of": inputs.as_of.isoformat(),
        "population": int(len(inputs.customers)),
        "treated": int(len(treated)),
        "control": int(rows["is_control"].sum()),
        "budget": float(budget),
        "expected_cost": float(treated["expected_cost"].sum()),
        "expected_saves": float(treated["uplift"].sum()),
        "expected_incremental_margin": float(treated["expected_margin"].sum()),
        "gross_margin": config.intervene.gross_margin,
        "control_share": config.intervene.control_share,
        "per_action": per_action,
        "per_tier": per_tier,
        "uplift_source": inputs.uplift_source,
        "left_out": len(inputs.left_out),
        "notes": list(inputs.notes),
        "value_model": inputs.value_source,
        "model_version": inputs.model_version,
        "uplift_evaluation": inputs.evaluation.to_json() if inputs.evaluation else None,
        # Qini curves of the chosen learner and the T-learner (where this plan evaluated it: one
        # that keeps an earlier choice evaluates the kept learner only), for the report.
        "uplift_curves": ({name: inputs.evaluation.curves[name]
                           for name in {inputs.evaluation.chosen, "t_learner"}
                           if name in inputs.evaluation.curves}
                          if inputs.evaluation else None),
    }


_summary = plan_summary  # make_plan's name for it


def save_plan(store: Store, plan: Plan, *, config: ProjectConfig) -> None:
    """Store the plan, its rows and the campaign (treated and control) in one transaction."""
    rows = plan.rows.assign(campaign_id=plan.campaign_id)
    campaign = pd.DataFrame({
        "campaign_id": plan.campaign_id,
        "user_id": rows["user_id"],
        "action": rows["action"],
        "assigned_at": plan.as_of,
        "is_control": rows["is_control"],
        "cost": np.where(rows["is_control"], 0.0, rows["expected_cost"]),
        "channel": np.where(rows["is_control"], None, rows["channel"]),
        "batch_id": f"plan:{plan.campaign_id}",
    })
    settings = config.intervene.model_dump(mode="json")
    with (store.registered(rows, "plan_rows") as rows_view,
          store.registered(campaign, "campaign") as campaign_view,
          store.transaction() as con):
        exists = con.execute("SELECT count(*) FROM plans WHERE campaign_id = ?",
                             [plan.campaign_id]).fetchall()[0][0]
        if exists:
            raise PlanError(f"a plan with campaign id {plan.campaign_id!r} already exists; "
                            "choose another id")
        con.execute(
            "INSERT INTO plans VALUES (?, ?, ?, ?, 'planned', ?, ?)",
            [plan.campaign_id, dt.datetime.now(dt.UTC).replace(tzinfo=None), plan.as_of,
             plan.budget, json.dumps(settings), json.dumps(plan.summary, default=str)])
        con.execute(f"INSERT INTO plan_rows (campaign_id, {', '.join(PLAN_COLUMNS)}) "
                    f"SELECT campaign_id, {', '.join(PLAN_COLUMNS)} FROM {rows_view}")
        con.execute("INSERT INTO campaigns (campaign_id, user_id, action, assigned_at, "
                    f"is_control, cost, channel, batch_id) SELECT * FROM {campaign_view}")
