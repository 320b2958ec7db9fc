"""Uplift: the causal effect of each action on the outcome, per customer, from randomised campaigns.

Every historical campaign in the store that holds out a control group is a randomised experiment.
Its rows become training data: the customer's point-in-time features at the assignment (events
strictly before ``assigned_at``, plus the users table's attributes), the action they got (or
``none`` for the control), and the outcome: an event of ``outcome_type`` (default: an order) in
[assigned_at, assigned_at + window). Only campaigns whose window has fully passed by the
observed horizon are used (``campaigns.observed_until``: the as_of, never past the data's end).
Every action the campaigns gave is learned, in the catalogue or not: an effect needs no cost
(only ``plan`` does, and it allocates the catalogue's actions only). A customer whose data cannot
be featurised (``scoring.unscorable_customers``) is left out, not everyone.

Three meta-learners on gradient-boosted trees estimate tau_a(x) = P(Y=1 | x, a) - P(Y=1 | x, none):

* the T-learner fits one outcome model per arm and subtracts them;
* the S-learner fits one outcome model over all arms with the action as an input and takes the
  difference of its predictions (it shares what the arms have in common, so it needs far fewer
  rows per action when the effects are small next to the outcome's noise);
* the X-learner (Kuenzel, Sekhon, Bickel & Yu 2019, "Metalearners for estimating heterogeneous
  treatment effects using machine learning", PNAS 116(10), eqs. 5-9) imputes individual effects
  from the other arm's outcome model, regresses them per arm and blends the two by the
  propensity g (a constant: the campaigns are randomised).

They are compared out of fold (cross-fitting over customers, so a customer's rows never sit on
both sides) by the Qini coefficient, AUUC and uplift in the top 10/20/30% (see ``metrics``), and
the best one is refitted on everything. With no usable campaign history, :func:`prior_uplift`
gives configured effects by risk tier, and the plan says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.exceptions import NotFittedError

from churnguard.campaigns import measurable_campaigns_sql, observed_until
from churnguard.config import NO_ACTION, ChurnDefinition
from churnguard.cutoffs import label_window_end_sql
from churnguard.errors import ChurnguardError
from churnguard.features import build_features
from churnguard.intervene.metrics import uplift_metrics
from churnguard.scoring import unscorable_customers
from churnguard.store import Store

__all__ = [
    "LEARNERS",
    "SLearner",
    "TLearner",
    "UpliftData",
    "UpliftError",
    "UpliftEvaluation",
    "UpliftScores",
    "XLearner",
    "evaluate_learners",
    "prior_uplift",
    "score_uplift",
    "uncatalogued",
    "uncatalogued_note",
    "uplift_dataset",
]


class UpliftError(ChurnguardError, ValueError):
    """The store holds no campaign history usable for uplift (with the reason and the fix)."""

    code = "cannot_estimate_uplift"


@dataclass(frozen=True, kw_only=True)
class UpliftData:
    """One row per (campaign, customer) with a fully observed outcome window."""

    features: pd.DataFrame  # positional rows, one column per feature
    action: np.ndarray  # str: the action given, NO_ACTION for the control group
    y: np.ndarray  # float 0/1: the outcome event happened within the window
    revenue: np.ndarray  # amount of the outcome events in the window
    user_id: np.ndarray
    campaign_id: np.ndarray
    outcome_type: str
    window_days: int
    skipped_actions: dict[str, int] = field(default_factory=dict)  # not in the catalogue
    # Campaign customers whose data cannot be featurised, left out (user id -> why).
    left_out: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def actions(self) -> list[str]:
        """The actions the rows received (the control group's NO_ACTION aside), sorted."""
        return sorted({str(a) for a in self.action} - {NO_ACTION})


def uncatalogued(found: Sequence[str], catalogue: Sequence[str]) -> list[str]:
    """The actions of ``found`` that the [intervene] catalogue does not list (no cost known).

    >>> uncatalogued(["coupon_10", "sms_voucher"], ["coupon_10", "cs_outreach"])
    ['sms_voucher']
    """
    return [a for a in found if a not in catalogue]


def uncatalogued_note(found: Sequence[str], catalogue: Sequence[str]) -> str | None:
    """The note that says which learned actions the catalogue lacks; None when it lists all.

    >>> uncatalogued_note(["sms_voucher"], ["coupon_10"])  # doctest: +ELLIPSIS
    'learned from campaigns but not in the [intervene] actions of churnguard.toml: sms_voucher; ...
    """
    missing = uncatalogued(found, catalogue)
    if not missing:
        return None
    return ("learned from campaigns but not in the [intervene] actions of churnguard.toml: "
            f"{', '.join(missing)}; their effects are estimated, but `plan` cannot give them "
            "(it needs their cost): add them to the catalogue to plan them")


def uplift_dataset(store: Store, *, actions: Sequence[str] | None = None,
                   outcome_type: str = "order", window_days: int = 90,
                   definition: ChurnDefinition | None = None,
                   features: Sequence[str] | None = None,
                   as_of: dt.datetime | None = None) -> UpliftData:
    """Training rows from the store's randomised campaigns (see the module docstring).

    A campaign counts when it has a control group and its window ended by the observed horizon
    (:func:`churnguard.campaigns.observed_until`: ``as_of``, never past the data's end; without
    ``as_of`` the newest event), else its outcomes are not yet known. ``actions`` keeps only the
    rows of those actions (the rest are counted in ``skipped_actions``); None keeps every action
    the campaigns gave: learning an action's effect needs no cost, so it needs no catalogue.
    """
    con = store.con
    last = observed_until(store, as_of)
    if last is None:
        raise UpliftError("the store has no events, so no campaign outcome can be observed; "
                          "ingest events first (churnguard ingest events)")
    n_campaigns = con.execute("SELECT count(*) FROM campaigns").fetchall()[0][0]
    if not n_campaigns:
        raise UpliftError("the store holds no campaigns; ingest a randomised campaign with a "
                          "control group (churnguard ingest campaigns) or use prior effects")
    rows = con.execute(
        f"""
        WITH usable AS ({measurable_campaigns_sql(window_days)})
        SELECT c.campaign_id, c.user_id, c.assigned_at,
               CASE WHEN c.is_control THEN '{NO_ACTION}' ELSE c.action END AS action
        FROM campaigns c JOIN usable USING (campaign_id)
        ORDER BY c.campaign_id, c.user_id
        """, [last]).df()
    if rows.empty:
        horizon = ("the newest event" if as_of is None else "as_of" if last >= as_of
                   else "the end of the data (the newest event or ingestion of events)")
        raise UpliftError(
            f"no campaign has both a control group and a fully observed {window_days}-day "
            f"outcome window before {horizon} ({last:%Y-%m-%d}); wait until the window "
            "has passed, or use prior effects")
    if actions is not None:
        counts = rows["action"].value_counts()
        skipped = {a: int(n) for a, n in counts.items() if a != NO_ACTION and a not in actions}
        rows = rows[rows["action"].isin([*actions, NO_ACTION])].reset_index(drop=True)
    else:
        skipped = {}
    try:
        return _dataset(store, rows, outcome_type=outcome_type, window_days=window_days,
                        definition=definition, features=features, skipped=skipped)
    except duckdb.DataError:
        # One customer's data must not stop the learning from everyone else's (as in scoring).
        left_out = unscorable_customers(store, pd.Timestamp(rows["assigned_at"].max())
                                        .to_pydatetime())
        if not left_out:
            raise
    rows = rows[~rows["user_id"].astype(str).isin(set(left_out))].reset_index(drop=True)
    return _dataset(store, rows, outcome_type=outcome_type, window_days=window_days,
                    definition=definition, features=features, skipped=skipped,
                    left_out=left_out)


def _dataset(store: Store, rows: pd.DataFrame, *, outcome_type: str, window_days: int,
             definition: ChurnDefinition | None, features: Sequence[str] | None,
             skipped: dict[str, int], left_out: dict[str, str] | None = None) -> UpliftData:
    """The outcomes and point-in-time features of the campaign ``rows``."""
    con = store.con
    keys = pa.table({
        "user_id": pa.array(rows["user_id"].astype(str).to_numpy(dtype=object), pa.string()),
        "cutoff": pa.array(pd.to_datetime(rows["assigned_at"]).astype("datetime64[us]")
                           .to_numpy(), pa.timestamp("us")),
    })
    with store.registered(keys, "uplift_rows") as view:
        outcome = con.execute(
            f"""
            SELECT k.user_id, k.cutoff,
                   count(e.user_id) > 0 AS y, coalesce(sum(e.amount), 0) AS revenue
            FROM (SELECT DISTINCT user_id, cutoff FROM {view}) k
            LEFT JOIN events e ON e.user_id = k.user_id AND e.type = ?
                 AND e.ts >= k.cutoff AND e.ts < {label_window_end_sql('k.cutoff', window_days)}
            GROUP BY k.user_id, k.cutoff
            """, [outcome_type]).df()
    outcome["cutoff"] = outcome["cutoff"].astype("datetime64[us]")
    outcome = outcome.set_index(["user_id", "cutoff"])
    population = keys.to_pandas()
    frame = build_features(store, population.drop_duplicates(), definition=definition,
                           features=features)
    frame.attrs = {}
    index = pd.MultiIndex.from_frame(population)
    return UpliftData(
        features=frame.reindex(index).reset_index(drop=True),
        action=rows["action"].to_numpy(dtype=object),
        y=outcome["y"].reindex(index).to_numpy(dtype=float),
        revenue=outcome["revenue"].reindex(index).to_numpy(dtype=float),
        user_id=rows["user_id"].to_numpy(dtype=object),
        campaign_id=rows["campaign_id"].to_numpy(dtype=object),
        outcome_type=outcome_type, window_days=int(window_days), skipped_actions=skipped,
        left_out=dict(left_out or {}),
    )


def _classifier(seed: int) -> lgb.LGBMClassifier:
    # Effects are small next to the outcome's variance: shallow, strongly regularised trees.
    return lgb.LGBMClassifier(n_estimators=100, learning_rate=0.05, num_leaves=15,
                              min_child_samples=100, subsample=0.8, subsample_freq=1,
                              colsample_bytree=0.8, reg_lambda=5.0, random_state=seed,
                              n_jobs=0, verbose=-1)


def _regressor(seed: int) -> lgb.LGBMRegressor:
    return lgb.LGBMRegressor(n_estimators=100, learning_rate=0.05, num_leaves=7,
                             min_child_samples=200, subsample=0.8, subsample_freq=1,
                             colsample_bytree=0.8, reg_lambda=5.0, random_state=seed,
                             n_jobs=0, verbose=-1)


def _prob(model: lgb.LGBMClassifier | None, x: pd.DataFrame, fallback: float) -> np.ndarray:
    if model is None:
        return np.full(len(x), fallback)
    return model.predict_proba(x)[:, 1]


def _fit_arm(x: pd.DataFrame, y: np.ndarray, seed: int) -> lgb.LGBMClassifier | None:
    """An outcome model for one arm; None when the arm's outcome does not vary."""
    if len(np.unique(y)) < 2:
        return None
    return _classifier(seed).fit(x, y)


class _MetaLearner:
    name: ClassVar[str]

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def _check_fitted(self) -> None:
        if not hasattr(self, "actions_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit()")

    def fit(self, features: pd.DataFrame, action: np.ndarray, y: np.ndarray,
            actions: Sequence[str]) -> _MetaLearner:
        action = np.asarray(action, dtype=object)
        control = action == NO_ACTION
        if not control.any():
            raise UpliftError("the training rows hold no control customers; uplift needs a "
                              "randomised control group")
        self.features_ = list(features.columns)
        self.actions_ = [a for a in actions if (action == a).any()]
        self.missing_actions_ = [a for a in actions if a not in self.actions_]
        self.base_rate_ = float(y[control].mean())
        self.mu0_ = _fit_arm(features[control], y[control], self.random_state)
        self.arms_ = {}
        for k, a in enumerate(self.actions_):
            treated = action == a
            self.arms_[a] = self._fit_action(features, y, treated, control,
                                             self.random_state + k, a)
        return self

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Estimated effect of each action on P(outcome), one column per fitted action; actions
        without any training row are 0 (unknown), listed in ``missing_actions_``."""
        self._check_fitted()
        x = features[self.features_]
        out = {a: self._predict_action(x, a) for a in self.actions_}
        out.update({a: np.zeros(len(x)) for a in self.missing_actions_})
        return pd.DataFrame(out, index=features.index)


class TLearner(_MetaLearner):
    """tau_a(x) = mu_a(x) - mu_0(x), one gradient-boosted outcome model per arm."""

    name: ClassVar[str] = "t_learner"

    def _fit_action(self, x, y, treated, control, seed, a):
        return {"mu1": _fit_arm(x[treated], y[treated], seed), "rate": float(y[treated].mean())}

    def _predict_action(self, x, a):
        arm = self.arms_[a]
        return _prob(arm["mu1"], x, arm["rate"]) - _prob(self.mu0_, x, self.base_rate_)


class XLearner(_MetaLearner):
    """Kuenzel et al. (2019): D1 = Y1 - mu0(X1) on the treated, D0 = mu1(X0) - Y0 on the
    controls; tau1, tau0 regress them; tau(x) = g tau0(x) + (1 - g) tau1(x) with g the share of
    the arm's rows that were treated (their eq. 9 with a constant propensity)."""

    name: ClassVar[str] = "x_learner"

    def fit(self, features, action, y, actions, *, outcome_models: TLearner | None = None):
        """``outcome_models``: a T-learner fitted on the same rows, whose per-arm outcome models
        are the X-learner's first stage (saves refitting them)."""
        self._stage1 = outcome_models
        try:
            return super().fit(features, action, y, actions)
        finally:
            del self._stage1

    def _fit_action(self, x, y, treated, control, seed, a):
        if self._stage1 is not None:
            self.mu0_, mu1 = self._stage1.mu0_, self._stage1.arms_[a]["mu1"]
        else:
            mu1 = _fit_arm(x[treated], y[treated], seed)
        rate = float(y[treated].mean())
        d1 = y[treated] - _prob(self.mu0_, x[treated], self.base_rate_)
        d0 = _prob(mu1, x[control], rate) - y[control]
        g = treated.sum() / (treated.sum() + control.sum())
        return {"tau1": _regressor(seed).fit(x[treated], d1),
                "tau0": _regressor(seed + 1000).fit(x[control], d0), "g": float(g)}

    def _predict_action(self, x, a):
        arm = self.arms_[a]
        return arm["g"] * arm["tau0"].predict(x) + (1 - arm["g"]) * arm["tau1"].predict(x)


_ARM = "__action"


def _with_arm(x: pd.DataFrame, arm: object, categories: list[str]) -> pd.DataFrame:
    """The features plus the action as a categorical column (for the pooled outcome model)."""
    values = np.broadcast_to(np.asarray(arm, dtype=object), (len(x),))
    return x.assign(**{_ARM: pd.Categorical(values, categories=categories)})


class _Pooled:
    """One outcome model over every arm, the action a categorical input: all campaign rows
    inform the shared part of the outcome, which the per-arm models of the T-learner cannot."""

    def __init__(self, x: pd.DataFrame, action: np.ndarray, y: np.ndarray, arms: list[str],
                 seed: int) -> None:
        self.arms = arms
        self.model = _classifier(seed).fit(_with_arm(x, action, arms), y)

    def prob(self, x: pd.DataFrame, arm: object) -> np.ndarray:
        return self.model.predict_proba(_with_arm(x, arm, self.arms))[:, 1]


class SLearner(_MetaLearner):
    """tau_a(x) = mu(x, a) - mu(x, none) from the pooled outcome model (Kuenzel et al. 2019,
    the S-learner): sample-efficient, but the trees may ignore a weak action input."""

    name: ClassVar[str] = "s_learner"

    def fit(self, features, action, y, actions):
        super().fit(features, action, y, actions)
        arms = [NO_ACTION, *self.actions_]
        keep = np.isin(np.asarray(action, dtype=object), arms)
        self.pooled_ = _Pooled(features[keep], np.asarray(action, dtype=object)[keep], y[keep],
                               arms, self.random_state)
        return self

    def _fit_action(self, x, y, treated, control, seed, a):
        return {}

    def _predict_action(self, x, a):
        return self.pooled_.prob(x, a) - self.pooled_.prob(x, NO_ACTION)


LEARNERS: dict[str, type[_MetaLearner]] = {
    "t_learner": TLearner, "x_learner": XLearner, "s_learner": SLearner,
}


@dataclass(frozen=True, kw_only=True)
class UpliftEvaluation:
    """Out-of-fold quality of each learner (and a random ranking) per action, and the choice."""

    n_rows: int
    n_campaigns: int
    folds: int
    outcome_type: str
    window_days: int
    learners: list[dict]  # {"name", "qini", "auuc", "uplift_at_10/20/30", "per_action": {...}}
    chosen: str
    curves: dict[str, dict[str, dict[str, list[float]]]]  # learner -> action -> {x, qini}
    oof: dict[str, pd.DataFrame]  # learner -> out-of-fold effects, rows of the data
    # The chosen learner's out-of-fold calibration per action: {"ate", "slope", "centre"}.
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)

    def calibrate(self, effects: pd.DataFrame) -> pd.DataFrame:
        """Effects recalibrated out of fold: ate + slope x (effect - centre) per action.

        A learner's estimates carry noise that a budgeted allocation would chase (it picks the
        largest estimates, which are the most over-estimated: the winner's curse). Regressing the
        campaign outcomes on the out-of-fold estimates, separately in the treated and the
        control rows, gives the experiment's own average effect (``ate``) and how much of an
        estimate's deviation from its mean is real (``slope``, kept in [0, 1]); the plan uses
        the recalibrated effects. A learner whose ranking carries no signal thus falls back to
        the measured average effect of the action.
        """
        out = effects.copy()
        for a, c in self.calibration.items():
            if a in out.columns:
                out[a] = c["ate"] + c["slope"] * (out[a] - c["centre"])
        return out

    def to_json(self) -> dict:
        """The ``uplift evaluate --json`` document (DESIGN.md)."""
        return {
            "n_rows": self.n_rows, "n_campaigns": self.n_campaigns, "folds": self.folds,
            "outcome_type": self.outcome_type, "window_days": self.window_days,
            "learners": self.learners, "chosen": self.chosen,
            "calibration": self.calibration,
        }


def _folds(user_id: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold of each row, by customer: one customer's campaigns never straddle train and test."""
    users, inverse = np.unique(user_id.astype(str), return_inverse=True)
    fold_of_user = np.random.default_rng(seed).permutation(users.size) % k
    return fold_of_user[inverse]


def _summary(name: str, per_action: dict[str, dict], weights: dict[str, int]) -> dict:
    total = sum(weights.values())
    out = {"name": name}
    for key in ("qini", "auuc", "uplift_at_10", "uplift_at_20", "uplift_at_30"):
        out[key] = float(sum(per_action[a][key] * weights[a] for a in per_action) / total)
    out["per_action"] = per_action
    return out


def evaluate_learners(data: UpliftData, *, actions: Sequence[str] | None = None,
                      folds: int = 5, seed: int = 0,
                      progress: Callable[[str], None] | None = None) -> UpliftEvaluation:
    """Cross-fitted effects of every learner; Qini, AUUC and uplift@k per action on the rows of
    that action and the control group; the chosen learner has the highest mean Qini (weighted by
    the action's rows). A random ranking is reported alongside as the floor. ``actions``
    (default: every action of ``data``) are the actions evaluated."""
    say = progress or (lambda message: None)
    actions = data.actions if actions is None else actions
    acts = [a for a in actions if (data.action == a).any()]
    if not acts:
        if not data.actions:
            raise UpliftError("no campaign row received an action (every usable row is in a "
                              "control group); uplift needs treated customers")
        raise UpliftError(f"no campaign row received any of the actions "
                          f"({', '.join(actions)}); the campaigns gave "
                          f"{', '.join(data.actions)}")
    fold = _folds(data.user_id, folds, seed)
    oof = {name: pd.DataFrame(0.0, index=range(len(data)), columns=acts) for name in LEARNERS}
    for k in range(folds):
        train, test = fold != k, fold == k
        fitted: dict[str, _MetaLearner] = {}
        for name, cls in LEARNERS.items():
            say(f"fold {k + 1}/{folds}: {name}")
            extra = {"outcome_models": fitted["t_learner"]} if cls is XLearner else {}
            fitted[name] = cls(random_state=seed).fit(data.features[train], data.action[train],
                                                      data.y[train], acts, **extra)
            oof[name].loc[np.flatnonzero(test), acts] = \
                fitted[name].predict(data.features[test])[acts].to_numpy()
    control = data.action == NO_ACTION
    weights = {a: int((data.action == a).sum()) for a in acts}
    rng = np.random.default_rng(seed)
    learners, curves = [], {}
    for name in LEARNERS:
        per_action, curves[name] = {}, {}
        for a in acts:
            rows = (data.action == a) | control
            m = uplift_metrics(oof[name][a].to_numpy()[rows], treated=data.action[rows] == a,
                               y=data.y[rows])
            curves[name][a] = {"x": m.pop("curve_x"), "qini": m.pop("curve_qini")}
            per_action[a] = m
        learners.append(_summary(name, per_action, weights))
    per_action = {}
    for a in acts:
        rows = (data.action == a) | control
        runs = [uplift_metrics(rng.random(int(rows.sum())), treated=data.action[rows] == a,
                               y=data.y[rows]) for _ in range(20)]
        per_action[a] = {key: float(np.mean([r[key] for r in runs]))
                         for key in ("qini", "auuc", "uplift_at_10", "uplift_at_20",
                                     "uplift_at_30")}
    learners.append(_summary("random", per_action, weights))
    chosen = max((row for row in learners if row["name"] != "random"),
                 key=lambda row: row["qini"])["name"]
    calibration = {a: _calibration(oof[chosen][a].to_numpy(), data.action == a, control, data.y)
                   for a in acts}
    return UpliftEvaluation(n_rows=len(data), n_campaigns=int(np.unique(data.campaign_id).size),
                            folds=folds, outcome_type=data.outcome_type,
                            window_days=data.window_days, learners=learners, chosen=chosen,
                            curves=curves, oof=oof, calibration=calibration)


def _calibration(estimate: np.ndarray, treated: np.ndarray, control: np.ndarray,
                 y: np.ndarray) -> dict[str, float]:
    """Least squares y ~ 1 + e + T + T e on the action's and the control rows (e: the estimate
    centred on its mean): the coefficient of T is the average effect, that of T e the slope of
    the true effect on the estimate (1 for a calibrated learner, 0 for pure noise)."""
    rows = treated | control
    e = estimate[rows]
    centre = float(e.mean())
    e = e - centre
    t = treated[rows].astype(float)
    design = np.column_stack([np.ones_like(e), e, t, t * e])
    coef, *_ = np.linalg.lstsq(design, y[rows], rcond=None)
    return {"ate": float(coef[2]), "slope": float(np.clip(coef[3], 0.0, 1.0)), "centre": centre}


def prior_uplift(risk_tier: np.ndarray, priors: dict[str, dict[str, float]],
                 actions: Sequence[str]) -> pd.DataFrame:
    """Configured effects by risk tier, for shops without campaign history (0 where unset)."""
    tiers = np.asarray(risk_tier, dtype=object)
    return pd.DataFrame({a: np.array([priors.get(a, {}).get(str(t), 0.0) for t in tiers])
                         for a in actions})


@dataclass(frozen=True, kw_only=True)
class UpliftScores:
    """What :func:`score_uplift` found: the effects, the learner used and notes for the user."""

    effects: pd.DataFrame  # user_id, then one column per action
    learner: str
    notes: list[str] = field(default_factory=list)


def score_uplift(store: Store, *, actions: Sequence[str], definition: ChurnDefinition,
                 as_of: dt.datetime, user_ids: Sequence[str] | None = None,
                 outcome_type: str = "order", window_days: int = 90, learner: str = "auto",
                 seed: int = 0, progress: Callable[[str], None] | None = None) -> UpliftScores:
    """Estimated effect of each action per customer (every customer in the users table, or
    ``user_ids``) at ``as_of``: user_id plus one column per action: the catalogue's ``actions``
    (0 where no campaign gave one), then every other action the randomised campaigns gave,
    which a note names (learning an effect needs no cost; only ``plan`` needs the catalogue).
    Campaigns count when their window ended by ``as_of`` (and the data's end). The learner is
    ``learner``, or with ``auto`` the one with the best out-of-fold Qini."""
    say = progress or (lambda message: None)
    if learner != "auto" and learner not in LEARNERS:
        raise UpliftError(f"unknown learner {learner!r}; choose auto or one of "
                          f"{', '.join(LEARNERS)}")
    if user_ids is None:
        user_ids = [r[0] for r in store.con.execute(
            "SELECT user_id FROM users ORDER BY user_id").fetchall()]
        if not user_ids:
            user_ids = [r[0] for r in store.con.execute(
                "SELECT DISTINCT user_id FROM events ORDER BY user_id").fetchall()]
    users = pd.DataFrame({"user_id": [str(u) for u in user_ids], "cutoff": as_of})
    users["cutoff"] = pd.to_datetime(users["cutoff"]).astype("datetime64[us]")
    say(f"building features for {len(users):,} customers")
    try:
        features = build_features(store, users, definition=definition)
        left_out: dict[str, str] = {}
    except duckdb.DataError:
        # One customer's data must not stop the scoring of the others (scoring.py does the same).
        asked = set(users["user_id"])
        left_out = {u: why for u, why in unscorable_customers(store, as_of).items()
                    if u in asked}
        if not left_out:
            raise
        users = users[~users["user_id"].isin(set(left_out))].reset_index(drop=True)
        features = build_features(store, users, definition=definition)
    features.attrs = {}
    features = features.reindex(pd.MultiIndex.from_frame(users))
    data = uplift_dataset(store, outcome_type=outcome_type, window_days=window_days,
                          definition=definition, features=list(features.columns), as_of=as_of)
    columns = [*actions, *uncatalogued(data.actions, actions)]
    notes = [n for n in (uncatalogued_note(data.actions, actions),) if n]
    notes += [f"left out customer {u}: {why}" for u, why in left_out.items()]
    if data.left_out:
        notes.append(f"{len(data.left_out)} customers' campaign rows were left out of the "
                     f"learning: {next(iter(set(data.left_out.values())))}")
    evaluation = None
    if learner == "auto":
        evaluation = evaluate_learners(data, seed=seed, progress=say)
        learner = evaluation.chosen
    say(f"fitting the {learner} on {len(data):,} campaign rows")
    model = LEARNERS[learner](random_state=seed).fit(data.features, data.action, data.y, columns)
    effects = model.predict(features.reset_index(drop=True))[columns]
    if evaluation is not None:
        effects = evaluation.calibrate(effects)
    return UpliftScores(effects=pd.concat([users[["user_id"]], effects], axis=1),
                        learner=learner, notes=notes)
