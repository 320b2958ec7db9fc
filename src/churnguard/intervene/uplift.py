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

The learners (``learners.py``: regularised logistic S- and T-learners and a cross-fitted
DR-learner, then the S-, T- and X-learners on gradient-boosted trees) estimate
tau_a(x) = P(Y=1 | x, a) - P(Y=1 | x, none). They are compared out of fold (cross-fitting over
customers, so a customer's rows never sit on both sides) by the Qini coefficient, AUUC and uplift
in the top 10/20/30% (see ``metrics``); the chooser prefers the simpler learner unless a richer
one is better beyond noise (a paired bootstrap over customers, :func:`_choose`), and the chosen
one is refitted on everything.

Campaigns are pooled (:func:`fit_uplift`): the randomisation context (the campaign, or a plan's
per-action stratum: :attr:`UpliftData.contexts`) and its date are features, each action is
learned against its matched control rows only (a plan holds its control out per action), and
older campaigns are down-weighted by a half-life (``[uplift] half_life_days``), so every
campaign adds to what is known. A customer scored now gets, per action, the weighted mean of
its predictions over the contexts that randomised the action (rows x half-life weights:
:class:`CampaignContext`), the effect in a typical recent campaign. Effects on retention are
bounded by what there is to save (:func:`bounded_effects`). With no usable campaign history, :func:`prior_uplift` gives
configured effects by risk tier, and the plan says so.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from churnguard.campaigns import measurable_campaigns_sql, observed_until
from churnguard.config import NO_ACTION, ChurnDefinition
from churnguard.cutoffs import label_window_end_sql
from churnguard.features import build_features
from churnguard.intervene.learners import (
    LEARNERS,
    DRLearner,
    SLearner,
    SLogistic,
    TLearner,
    TLogistic,
    UpliftError,
    XLearner,
    _fit_arm,
    matched_control,
)
from churnguard.intervene.metrics import qini_replicates, robust_se, uplift_metrics
from churnguard.scoring import unscorable_customers
from churnguard.store import Store

__all__ = [
    "CampaignContext",
    "DRLearner",
    "FittedUplift",
    "LEARNERS",
    "SLearner",
    "SLogistic",
    "TLearner",
    "TLogistic",
    "UpliftData",
    "UpliftError",
    "UpliftEvaluation",
    "UpliftScores",
    "XLearner",
    "SHRINKAGE",
    "bounded_effects",
    "campaign_weights",
    "empirical_bayes",
    "evaluate_learners",
    "fit_uplift",
    "prior_uplift",
    "score_uplift",
    "shrunk_calibration",
    "uncatalogued",
    "uncatalogued_note",
    "uplift_dataset",
]


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
    # When each row was assigned (datetime64); None: one date for every row.
    assigned_at: np.ndarray | None = None
    # The action whose randomisation each row belongs to (learners.matched_control): in a
    # campaign whose control rows each carry the action they were held out from (a plan's), that
    # action; NO_ACTION where the campaign randomised across every action (its control rows
    # carry none). None: every row is of the latter kind.
    stratum: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def actions(self) -> list[str]:
        """The actions the rows received (the control group's NO_ACTION aside), sorted."""
        return sorted({str(a) for a in self.action} - {NO_ACTION})

    @property
    def strata(self) -> np.ndarray:
        """:attr:`stratum`, NO_ACTION for every row when it is None."""
        if self.stratum is None:
            return np.full(len(self), NO_ACTION, dtype=object)
        return np.asarray(self.stratum, dtype=object)

    @property
    def contexts(self) -> np.ndarray:
        """The randomisation each row belongs to: its campaign, and in a campaign that held its
        control group out per action, the campaign and that action (``campaign|action``).
        Within a context treated and control rows were assigned at random, so a context is what
        the learners tell apart (:class:`CampaignContext`).

        >>> d = UpliftData(features=pd.DataFrame({"x": [0, 1, 2, 3]}),
        ...     action=np.array(["a", "none", "a", "none"], dtype=object), y=np.zeros(4),
        ...     revenue=np.zeros(4), user_id=np.array(list("uvwz"), dtype=object),
        ...     campaign_id=np.array(["sim", "sim", "plan", "plan"], dtype=object),
        ...     outcome_type="order", window_days=30,
        ...     stratum=np.array(["none", "none", "a", "a"], dtype=object))
        >>> d.contexts.tolist()
        ['sim', 'sim', 'plan|a', 'plan|a']
        """
        ids = np.asarray(self.campaign_id, dtype=object).astype(str)
        strata = self.strata.astype(str)
        return np.where(strata == NO_ACTION, ids, np.char.add(np.char.add(ids, "|"), strata)
                        ).astype(object)

    def subset(self, rows: np.ndarray) -> UpliftData:
        """The data of the rows a boolean mask or an index array picks, every per-row field
        taken alike (a held-out split, a fold).

        >>> d = UpliftData(features=pd.DataFrame({"x": [0, 1, 2]}),
        ...     action=np.array(["a", "none", "a"], dtype=object), y=np.array([1., 0., 0.]),
        ...     revenue=np.zeros(3), user_id=np.array(list("uvw"), dtype=object),
        ...     campaign_id=np.array(["p", "p", "q"], dtype=object), outcome_type="order",
        ...     window_days=30, stratum=np.array(["a", "a", "none"], dtype=object))
        >>> part = d.subset(np.array([True, False, True]))
        >>> part.user_id.tolist(), part.contexts.tolist(), part.features["x"].tolist()
        (['u', 'w'], ['p|a', 'q'], [0, 2])
        """
        def take(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else np.asarray(values)[rows]

        return replace(self, features=self.features.iloc[np.asarray(rows)].reset_index(drop=True),
                       action=take(self.action), y=take(self.y), revenue=take(self.revenue),
                       user_id=take(self.user_id), campaign_id=take(self.campaign_id),
                       assigned_at=take(self.assigned_at), stratum=take(self.stratum))

    def matched(self, a: str) -> np.ndarray:
        """The rows that compare action ``a`` with its randomised control: treated with ``a``,
        or in control and matched to ``a`` (:func:`learners.matched_control`)."""
        return (self.action == a) | matched_control(self.action == NO_ACTION, self.stratum, a)


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
               CASE WHEN c.is_control THEN '{NO_ACTION}' ELSE c.action END AS action,
               coalesce(c.action, '{NO_ACTION}') AS planned,
               bool_or(c.is_control AND coalesce(c.action, '{NO_ACTION}') <> '{NO_ACTION}')
                   OVER (PARTITION BY c.campaign_id) AS per_action
        FROM campaigns c JOIN usable USING (campaign_id)
        ORDER BY c.campaign_id, c.user_id
        """, [last]).df()
    # A campaign whose control rows carry the action they were held out from (a plan's) was
    # randomised per action: each action's rows and its own control rows form a stratum.
    rows["stratum"] = np.where(rows.pop("per_action").to_numpy(dtype=bool),
                               rows["planned"].to_numpy(dtype=object), NO_ACTION)
    rows = rows.drop(columns="planned")
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
        assigned_at=pd.to_datetime(rows["assigned_at"]).to_numpy(dtype="datetime64[us]"),
        stratum=rows["stratum"].to_numpy(dtype=object),
    )


# -- pooling across campaigns ---------------------------------------------------------------
CAMPAIGN_FEATURE = "__campaign"
CAMPAIGN_AGE_FEATURE = "__campaign_age_days"


def _campaign_ages(data: UpliftData) -> dict[str, float]:
    """Days from each campaign's last assignment to the newest campaign's (0 for the newest)."""
    ids = np.asarray(data.campaign_id, dtype=object).astype(str)
    if data.assigned_at is None:
        return {c: 0.0 for c in np.unique(ids)}
    last = pd.Series(pd.to_datetime(data.assigned_at)).groupby(ids).max()
    return {str(c): float((last.max() - t) / pd.Timedelta(days=1)) for c, t in last.items()}


def campaign_weights(data: UpliftData, half_life_days: float | None) -> np.ndarray:
    """Weight of each row: 0.5 ** (age / half_life_days), the age being the days from its
    campaign's last assignment to the newest campaign's. Every campaign adds to what is known,
    and the older it is, the less it says about how customers respond now. None: all 1.

    >>> data = UpliftData(features=pd.DataFrame({"x": [0, 1, 2]}),
    ...     action=np.array(["none", "a", "a"], dtype=object), y=np.zeros(3),
    ...     revenue=np.zeros(3), user_id=np.array(["u", "v", "w"], dtype=object),
    ...     campaign_id=np.array(["old", "old", "new"], dtype=object), outcome_type="order",
    ...     window_days=30, assigned_at=np.array(["2025-01-01", "2025-01-01", "2025-07-01"],
    ...                                          dtype="datetime64[us]"))
    >>> campaign_weights(data, 181.0).tolist()
    [0.5, 0.5, 1.0]
    """
    if half_life_days is None:
        return np.ones(len(data))
    ages = _campaign_ages(data)
    age = np.array([ages[str(c)] for c in data.campaign_id], dtype=float)
    return 0.5 ** (age / float(half_life_days))


@dataclass(frozen=True, kw_only=True)
class CampaignContext:
    """The randomisation context of a row (its campaign, or a campaign's per-action stratum:
    :attr:`UpliftData.contexts`) and the campaign's date as features, so that one model learns
    from every campaign while each context keeps its own baseline and effect (shrunk toward the
    others by the learners' regularisation).

    Rows are predicted in their own context when it is known (out-of-fold evaluation). A
    customer scored now has no campaign: each action's effect is the weighted mean of its
    predictions in the contexts that randomised that action (a campaign randomised across every
    action, or the action's own stratum), each context weighing its rows x the half-life
    down-weighting of its campaign (``weights``, the pooling's own weights): the expected effect
    in a typical recent campaign. (Predicting in the newest context alone would carry that one,
    often small, campaign's noise into every estimate.) With a single context there is nothing
    to tell apart and no column is added."""

    ages: dict[str, float]  # context -> age of its campaign in days
    weights: dict[str, float] = field(default_factory=dict)  # context -> sum of row weights
    strata: dict[str, str] = field(default_factory=dict)  # context -> its stratum's action

    @classmethod
    def of(cls, data: UpliftData, half_life_days: float | None = None) -> CampaignContext:
        contexts = data.contexts.astype(str)
        by_campaign = _campaign_ages(data)
        ids = np.asarray(data.campaign_id, dtype=object).astype(str)
        ages = {c: by_campaign[i] for c, i in zip(contexts, ids, strict=True)}
        w = pd.Series(campaign_weights(data, half_life_days)).groupby(contexts).sum()
        strata = dict(zip(contexts, data.strata.astype(str), strict=True))
        return cls(ages=dict(sorted(ages.items())),
                   weights={str(c): float(v) for c, v in w.items()},
                   strata={c: strata[c] for c in sorted(ages)})

    @property
    def newest(self) -> str:
        return min(sorted(self.ages), key=lambda c: self.ages[c])

    def for_action(self, a: str) -> dict[str, float]:
        """The contexts that randomised ``a`` and their shares of its weight (summing to 1);
        every context by weight when none did (the learner then has no effect for ``a``).

        >>> ctx = CampaignContext(ages={"sim": 90.0, "plan|a": 0.0, "plan|b": 0.0},
        ...     weights={"sim": 300.0, "plan|a": 100.0, "plan|b": 50.0},
        ...     strata={"sim": "none", "plan|a": "a", "plan|b": "b"})
        >>> ctx.for_action("a")
        {'plan|a': 0.25, 'sim': 0.75}
        """
        mine = {c: w for c, w in sorted(self.weights.items())
                if self.strata.get(c, NO_ACTION) in (a, NO_ACTION) and w > 0}
        if not mine:
            mine = {c: w for c, w in sorted(self.weights.items()) if w > 0}
        total = sum(mine.values())
        return {c: w / total for c, w in mine.items()}

    def add(self, features: pd.DataFrame, contexts: np.ndarray | str | None = None
            ) -> pd.DataFrame:
        """``features`` with the context columns: ``contexts`` per row, one context for every
        row, or (None) the newest."""
        if len(self.ages) < 2:
            return features
        if contexts is None or isinstance(contexts, str):
            ids = np.full(len(features), contexts or self.newest, dtype=object)
        else:
            ids = np.asarray(contexts, dtype=object).astype(str)
        return features.assign(**{
            CAMPAIGN_FEATURE: pd.Categorical(ids, categories=sorted(self.ages)),
            CAMPAIGN_AGE_FEATURE: np.array([self.ages[c] for c in ids], dtype=float)})


@dataclass(frozen=True, kw_only=True)
class FittedUplift:
    """A learner fitted on every campaign row; a customer's effect of each action is the
    weighted mean over the contexts that randomised it (:class:`CampaignContext`)."""

    learner: object
    context: CampaignContext

    @property
    def missing_actions_(self) -> list[str]:
        return self.learner.missing_actions_

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        if len(self.context.ages) < 2 or not self.context.weights:
            return self.learner.predict(self.context.add(features))
        shares = {a: self.context.for_action(a)
                  for a in [*self.learner.actions_, *self.learner.missing_actions_]}
        out = None
        for c in sorted({c for s in shares.values() for c in s}):
            part = self.learner.predict(self.context.add(features, c))
            if out is None:
                out = pd.DataFrame(0.0, index=part.index, columns=part.columns)
            for a, share in shares.items():
                if c in share:
                    out[a] += share[c] * part[a].to_numpy()
        return out


def fit_uplift(data: UpliftData, learner: str, *, actions: Sequence[str], seed: int = 0,
               half_life_days: float | None = None) -> FittedUplift:
    """``learner`` (a name of ``LEARNERS``) fitted on all of ``data``, pooled across campaigns:
    the randomisation context and its date as features (:class:`CampaignContext`), older
    campaigns down-weighted (:func:`campaign_weights`), each action against its matched control
    rows (``UpliftData.stratum``)."""
    if learner not in LEARNERS:
        raise UpliftError(f"unknown learner {learner!r}; choose auto or one of "
                          f"{', '.join(LEARNERS)}")
    context = CampaignContext.of(data, half_life_days)
    contexts = data.contexts
    model = LEARNERS[learner](random_state=seed).fit(
        context.add(data.features, contexts), data.action, data.y, actions,
        sample_weight=campaign_weights(data, half_life_days), groups=contexts,
        strata=data.stratum)
    return FittedUplift(learner=model, context=context)


def bounded_effects(effects: pd.DataFrame, p_churn: np.ndarray) -> pd.DataFrame:
    """Retention effects bounded by what there is to save: an action can raise a customer's
    chance of staying by at most their chance of leaving (p_churn), and lower it by at most
    their chance of staying (1 - p_churn), so P(stay) stays within [0, 1]. A customer who surely
    stays (p_churn 0) gains nothing from any action.

    >>> bounded_effects(pd.DataFrame({"call": [0.05, 0.05, -0.3]}),
    ...                 np.array([0.0, 0.02, 0.9]))["call"].round(6).tolist()
    [0.0, 0.02, -0.1]
    """
    p = np.clip(np.asarray(p_churn, dtype=float), 0.0, 1.0)[:, None]
    # An unknown p_churn (NaN) bounds nothing beyond [-1, 1].
    values = np.clip(effects.to_numpy(dtype=float), np.where(np.isnan(p), -1.0, p - 1.0),
                     np.where(np.isnan(p), 1.0, p))
    return pd.DataFrame(values, index=effects.index, columns=effects.columns)


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
    # The chosen learner's out-of-fold calibration per action: {"ate", "slope", "centre"} as
    # used (shrunk across the actions unless shrinkage is "none"), "ate_raw", "slope_raw" and
    # their standard errors "ate_se", "slope_se", the average effect's posterior sd "ate_sd".
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)
    # How the chosen learner was chosen (_choose): best, confidence, gap_lower per learner, rule.
    choice: dict = field(default_factory=dict)

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
            "calibration": {a: {k: (v if np.isfinite(v) else None) for k, v in c.items()}
                            for a, c in self.calibration.items()},
            "choice": self.choice,
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


BASELINE = "__baseline"  # _out_of_fold's key of the cross-fitted outcome baseline


def _out_of_fold(data: UpliftData, acts: list[str], *, folds: int, seed: int,
                 half_life_days: float | None, say: Callable[[str], None],
                 names: Sequence[str] = tuple(LEARNERS)) -> dict[str, pd.DataFrame]:
    """The cross-fitted effects of each learner in ``names``: every row is predicted by models
    that never saw its customer, in the context of its own campaign (:class:`CampaignContext`);
    under ``BASELINE``, each row's outcome predicted from its features and context alone (the
    calibration's covariate, :func:`_calibration`). The X-learner's fit reuses the T-learner's
    outcome models, so it brings the T-learner along."""
    fit = set(names) | ({"t_learner"} if "x_learner" in names else set())
    fold = _folds(data.user_id, folds, seed)
    contexts = data.contexts
    x = CampaignContext.of(data).add(data.features, contexts)
    weight = campaign_weights(data, half_life_days)
    oof = {name: pd.DataFrame(0.0, index=range(len(data)), columns=acts)
           for name in LEARNERS if name in fit}
    oof[BASELINE] = pd.DataFrame(0.0, index=range(len(data)), columns=["p"])
    for k in range(folds):
        train, test = fold != k, fold == k
        say(f"fold {k + 1}/{folds}: the outcome's baseline")
        # The outcome predicted from what was known before the contact, whatever the action
        # (_calibration's covariate): cross-fitted, so no row's own outcome enters its value.
        baseline = _fit_arm(x[train], data.y[train], weight[train], seed)
        oof[BASELINE].loc[np.flatnonzero(test), "p"] = (
            baseline.predict_proba(x[test])[:, 1] if baseline is not None
            else float(np.average(data.y[train], weights=weight[train])))
        fitted: dict[str, object] = {}
        for name, cls in LEARNERS.items():
            if name not in fit:
                continue
            say(f"fold {k + 1}/{folds}: {name}")
            extra = {"outcome_models": fitted["t_learner"]} if cls is XLearner else {}
            fitted[name] = cls(random_state=seed).fit(
                x[train], data.action[train], data.y[train], acts,
                sample_weight=weight[train], groups=contexts[train],
                strata=None if data.stratum is None else data.strata[train], **extra)
            oof[name].loc[np.flatnonzero(test), acts] = \
                fitted[name].predict(x[test])[acts].to_numpy()
    return oof


def _choose(data: UpliftData, oof: dict[str, pd.DataFrame], acts: list[str], *,
            confidence: float, replicates: int, seed: int,
            names: Sequence[str] = tuple(LEARNERS)) -> dict:
    """The simplest learner that the best is not better than beyond noise.

    The rule: ``best`` has the highest out-of-fold Qini (the mean over actions, weighted by
    their rows). A paired bootstrap over customers (``replicates`` Poisson(1) weights per
    customer, the same for every learner, so the learners' shared luck cancels) gives the
    distribution of Qini(best) - Qini(learner); a learner is *within noise* of the best when the
    lower ``1 - confidence`` quantile of that gap is <= 0, i.e. the best does not beat it in at
    least ``confidence`` of the replicates. The chosen learner is the first within noise in
    ``LEARNERS``' order, simplest first (the best itself always is). ``names``: the candidates
    (default: every learner), in that order."""
    names = [name for name in LEARNERS if name in names]
    weights = {a: int((data.action == a).sum()) for a in acts}
    total = sum(weights.values())
    point = {name: sum(uplift_metrics(oof[name][a].to_numpy()[data.matched(a)],
                                      treated=data.action[data.matched(a)] == a,
                                      y=data.y[data.matched(a)])["qini"]
                       * weights[a] for a in acts) / total for name in names}
    best = max(names, key=lambda name: point[name])
    rule = (f"the simplest learner (order: {', '.join(names)}) whose out-of-fold Qini the best "
            f"({best}) does not beat in {confidence:.0%} of {replicates} paired bootstrap "
            "replicates over customers")
    if len(names) == 1:  # its gap to itself is 0 in every replicate: nothing to resample
        return {"best": best, "chosen": best, "confidence": confidence,
                "replicates": replicates, "order": names, "gap_lower": {best: 0.0}, "rule": rule}
    users, inverse = np.unique(data.user_id.astype(str), return_inverse=True)
    rng = np.random.default_rng(seed + 7919)
    reps = {name: [] for name in names}
    for start in range(0, replicates, 25):  # blocks keep the weight matrices small
        w = rng.poisson(1.0, (min(25, replicates - start), users.size))[:, inverse]
        for name in names:
            q = sum(qini_replicates(oof[name][a].to_numpy()[rows], treated=data.action[rows] == a,
                                    y=data.y[rows], weights=w[:, rows]) * weights[a]
                    for a in acts for rows in [data.matched(a)]) / total
            reps[name].append(q)
    reps = {name: np.concatenate(r) for name, r in reps.items()}
    lower = {name: float(np.quantile(reps[best] - reps[name], 1.0 - confidence))
             for name in names}
    chosen = next(name for name in names if lower[name] <= 0.0)
    return {"best": best, "chosen": chosen, "confidence": confidence, "replicates": replicates,
            "order": names, "gap_lower": lower, "rule": rule}


def evaluate_learners(data: UpliftData, *, actions: Sequence[str] | None = None,
                      folds: int = 5, seed: int = 0, half_life_days: float | None = None,
                      confidence: float = 0.95, replicates: int = 200,
                      shrinkage: str = "empirical_bayes",
                      learners: Sequence[str] | None = None,
                      progress: Callable[[str], None] | None = None) -> UpliftEvaluation:
    """Cross-fitted effects of every learner (or of ``learners``, the candidates: a plan that
    keeps an earlier choice cross-fits only the learner it keeps, for the recalibration); Qini,
    AUUC and uplift@k per action on the rows of that action and the control group; the chosen learner is the simplest one whose Qini the
    best learner's does not beat beyond noise (:func:`_choose` states the rule). A random
    ranking is reported alongside as the floor. ``actions`` (default: every action of ``data``)
    are the actions evaluated; ``half_life_days`` down-weights older campaigns
    (:func:`campaign_weights`). The chosen learner's out-of-fold recalibration
    (:func:`_calibration`) is then shrunk across the actions by ``shrinkage``
    (:func:`shrunk_calibration`; ``"empirical_bayes"`` or ``"none"``)."""
    say = progress or (lambda message: None)
    if shrinkage not in SHRINKAGE:
        raise UpliftError(f"unknown shrinkage {shrinkage!r}; choose one of "
                          f"{', '.join(SHRINKAGE)}")
    unknown = sorted(set(learners or ()) - set(LEARNERS))
    if unknown or (learners is not None and not learners):
        raise UpliftError(f"unknown learner(s) {', '.join(unknown) or '(none given)'}; choose "
                          f"from {', '.join(LEARNERS)}")
    names = [name for name in LEARNERS if learners is None or name in learners]
    actions = data.actions if actions is None else actions
    acts = [a for a in actions if (data.action == a).any()]
    if not acts:
        if not data.actions:
            raise UpliftError("no campaign row received an action (every usable row is in a "
                              "control group); uplift needs treated customers")
        raise UpliftError(f"no campaign row received any of the actions "
                          f"({', '.join(actions)}); the campaigns gave "
                          f"{', '.join(data.actions)}")
    oof = _out_of_fold(data, acts, folds=folds, seed=seed, half_life_days=half_life_days,
                       say=say, names=names)
    weights = {a: int((data.action == a).sum()) for a in acts}
    rng = np.random.default_rng(seed)
    summaries, curves = [], {}
    for name in names:
        per_action, curves[name] = {}, {}
        for a in acts:
            rows = data.matched(a)
            m = uplift_metrics(oof[name][a].to_numpy()[rows], treated=data.action[rows] == a,
                               y=data.y[rows])
            curves[name][a] = {"x": m.pop("curve_x"), "qini": m.pop("curve_qini")}
            per_action[a] = m
        summaries.append(_summary(name, per_action, weights))
    per_action = {}
    for a in acts:
        rows = data.matched(a)
        runs = [uplift_metrics(rng.random(int(rows.sum())), treated=data.action[rows] == a,
                               y=data.y[rows]) for _ in range(20)]
        per_action[a] = {key: float(np.mean([r[key] for r in runs]))
                         for key in ("qini", "auuc", "uplift_at_10", "uplift_at_20",
                                     "uplift_at_30")}
    summaries.append(_summary("random", per_action, weights))
    if len(names) > 1:
        say("choosing the learner (paired bootstrap)")
    choice = _choose(data, oof, acts, confidence=confidence, replicates=replicates, seed=seed,
                     names=names)
    chosen = choice["chosen"]
    weight = campaign_weights(data, half_life_days)
    covariate = oof.pop(BASELINE)["p"].to_numpy()
    calibration = {a: _calibration(oof[chosen][a].to_numpy(), data.action == a, data.matched(a),
                                   data.y, contexts=data.contexts, weight=weight,
                                   covariate=covariate)
                   for a in acts}
    calibration = shrunk_calibration(calibration, shrinkage)
    return UpliftEvaluation(n_rows=len(data), n_campaigns=int(np.unique(data.campaign_id).size),
                            folds=folds, outcome_type=data.outcome_type,
                            window_days=data.window_days, learners=summaries, chosen=chosen,
                            curves=curves, oof=oof, calibration=calibration, choice=choice)


def _calibration(estimate: np.ndarray, treated: np.ndarray, rows: np.ndarray, y: np.ndarray,
                 *, contexts: np.ndarray | None = None, weight: np.ndarray | None = None,
                 covariate: np.ndarray | None = None) -> dict[str, float]:
    """Weighted least squares y ~ context + e + T + T e on the action's ``rows`` (its treated
    rows and their matched controls; e: the estimate centred on its mean; one intercept per
    randomisation context, ``UpliftData.contexts``; ``weight``: the pooling's row weights): the
    coefficient of T is the average effect within contexts, that of T e the slope of the true
    effect on the estimate (1 for a calibrated learner, 0 for pure noise).

    Within a context treated and control rows were randomised, so the comparison is fair; across
    contexts it is not (a plan gives coupon_20 to customers unlike those it holds out from
    cs_outreach, and campaigns differ in baseline and treated share), hence the intercepts.

    ``covariate``: each row's outcome as predicted before the contact (cross-fitted, from the
    features alone: :func:`_out_of_fold`), added centred with its interaction with T (Lin 2013,
    "Agnostic notes on regression adjustments to experimental data", Ann. Appl. Stat. 7(1); with
    a machine-learned covariate, Guo et al. 2021, "Machine learning for variance reduction in
    online experiments", NeurIPS). Randomisation keeps the average effect unbiased; the part of
    the outcome's noise the covariate explains leaves its standard error, about 20% less on the
    simulated shop's campaigns (out-of-fold R^2 about 0.37), worth half as many rows again.

    >>> rng = np.random.default_rng(0)
    >>> ctx = np.repeat(np.array(["risky", "safe"], dtype=object), 20000)
    >>> t = np.r_[rng.random(20000) < 0.9, rng.random(20000) < 0.1]  # the risky mostly treated
    >>> y = (rng.random(40000) < np.where(ctx == "risky", 0.2, 0.7) + 0.05 * t).astype(float)
    >>> e, rows = np.zeros(40000), np.ones(40000, bool)
    >>> round(_calibration(e, t, rows, y)["ate"], 2)  # unlike customers compared
    -0.35
    >>> abs(_calibration(e, t, rows, y, contexts=ctx)["ate"] - 0.05) < 0.015  # true: +0.05
    True
    >>> g = rng.random(40000)  # a baseline that explains a fifth of the outcome's variance
    >>> y = (rng.random(40000) < 0.1 + 0.8 * g + 0.05 * t).astype(float)
    >>> plain, adjusted = (_calibration(e, t, rows, y, contexts=ctx, covariate=c)
    ...                    for c in (None, g))
    >>> round(adjusted["ate_se"] / plain["ate_se"], 2), abs(adjusted["ate"] - 0.05) < 0.01
    (0.88, True)
    """
    rows = np.asarray(rows, dtype=bool)
    e = estimate[rows]
    w = np.ones(rows.sum()) if weight is None else np.asarray(weight, dtype=float)[rows]
    centre = float(np.average(e, weights=w)) if w.sum() > 0 else float(e.mean())
    e = e - centre
    t = treated[rows].astype(float)
    if contexts is None:
        fixed = np.ones((len(e), 1))
    else:
        fixed = pd.get_dummies(pd.Series(np.asarray(contexts, dtype=object)[rows]).astype(str)
                               ).to_numpy(dtype=float)
    if covariate is None:
        design = np.column_stack([fixed, e, t, t * e])
    else:
        g = np.asarray(covariate, dtype=float)[rows]
        g = g - (float(np.average(g, weights=w)) if w.sum() > 0 else float(g.mean()))
        design = np.column_stack([fixed, g, t * g, e, t, t * e])
    root = np.sqrt(w)[:, None]
    coef, *_ = np.linalg.lstsq(design * root, y[rows] * root[:, 0], rcond=None)
    se = robust_se(design, y[rows], w, coef, columns=[-2, -1])
    return {"ate": float(coef[-2]), "slope": float(np.clip(coef[-1], 0.0, 1.0)),
            "centre": centre, "ate_se": se[0], "slope_raw": float(coef[-1]),
            "slope_se": se[1]}


def empirical_bayes(estimates: Sequence[float], se: Sequence[float]
                    ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Posterior means and standard deviations of K effects measured with standard errors
    ``se``, each shrunk toward their pooled mean in proportion to its noise.

    The effects are taken as drawn from N(mu, tau^2); tau^2 is the DerSimonian-Laird moment
    estimate (DerSimonian & Laird 1986, "Meta-analysis in clinical trials", Controlled
    Clinical Trials 7(3), eq. (3)-(5)): tau^2 = max(0, (Q - (K - 1)) / (S1 - S2 / S1)) with
    Q = sum w_k (y_k - y_w)^2, w_k = 1 / se_k^2, S1 = sum w_k, S2 = sum w_k^2; mu is the mean
    weighted by 1 / (se_k^2 + tau^2). The posterior mean of effect k is
    mu + B_k (y_k - mu) with B_k = tau^2 / (tau^2 + se_k^2) (the normal-normal model; Efron &
    Morris 1975, "Data analysis using Stein's estimator and its
    generalizations", JASA 70(350)), its variance B_k se_k^2 + (1 - B_k)^2 / sum_j 1 / (se_j^2 +
    tau^2), the second term for having estimated mu (as in Morris 1983, "Parametric empirical
    Bayes inference", JASA 78(381); the term for having estimated tau^2 is left out, so the sd
    is a little narrow when few effects are pooled). A noisy estimate moves toward
    the others; a precise one stays. An effect without a finite error (nothing measured) gets mu
    and sd sqrt(tau^2 + 1 / sum_j 1 / (se_j^2 + tau^2)); with
    fewer than two measured effects nothing is pooled and the estimates stand.

    Returns (posterior means, posterior sds, mu, tau).

    >>> m, s, mu, tau = empirical_bayes([0.06, 0.01, 0.02], [0.05, 0.005, 0.01])
    >>> round(mu, 3), round(tau, 3), np.round(m, 3).tolist()  # no spread beyond the noise
    (0.012, 0.0, [0.012, 0.012, 0.012])
    >>> m, s, mu, tau = empirical_bayes([0.10, 0.01, 0.05], [0.005, 0.005, 0.05])
    >>> np.round(m, 3).tolist()  # precise, different effects stay apart
    [0.1, 0.01, 0.051]
    """
    y = np.asarray(estimates, dtype=float)
    s = np.asarray(se, dtype=float)
    known = np.isfinite(s) & (s > 0) & np.isfinite(y)
    if known.sum() < 2:
        return y.copy(), np.where(np.isfinite(s), s, np.inf), float("nan"), float("nan")
    w = 1.0 / s[known] ** 2
    pooled = float(np.sum(w * y[known]) / w.sum())
    q = float(np.sum(w * (y[known] - pooled) ** 2))
    s1, s2 = float(w.sum()), float(np.sum(w ** 2))
    tau2 = max(0.0, (q - (known.sum() - 1)) / (s1 - s2 / s1)) if s1 > s2 / s1 else 0.0
    w_star = 1.0 / (s[known] ** 2 + tau2)
    mu = float(np.sum(w_star * y[known]) / w_star.sum())
    mu_var = 1.0 / w_star.sum()
    mean = np.full(len(y), mu)
    sd = np.full(len(y), np.sqrt(tau2 + mu_var))
    b = tau2 / (tau2 + s[known] ** 2)
    mean[known] = mu + b * (y[known] - mu)
    sd[known] = np.sqrt(b * s[known] ** 2 + (1 - b) ** 2 * mu_var)
    return mean, sd, mu, float(np.sqrt(tau2))


SHRINKAGE = ("empirical_bayes", "none")


def shrunk_calibration(calibration: dict[str, dict[str, float]], shrinkage: str
                       ) -> dict[str, dict[str, float]]:
    """The recalibration with each action's average effect and slope replaced by their
    empirical Bayes posterior means across the actions (:func:`empirical_bayes`), the raw
    ones kept as ``ate_raw`` and ``slope_raw``, the posterior sd as ``ate_sd``.

    Why: a budgeted plan gives most to the actions and customers whose *estimated* margin is
    largest, and with small effects measured on small control groups those are mostly the most
    over-estimated (the winner's curse). Shrinking every estimate toward what the actions have
    in common by its own noise makes the plan optimise posterior means: an action measured on a
    few dozen control rows no longer outbids one measured on thousands. ``"none"`` keeps the raw
    recalibration (``ate_sd`` is then the raw standard error).

    >>> cal = {"a": {"ate": 0.08, "slope": 0.5, "centre": 0.0, "ate_se": 0.06,
    ...              "slope_raw": 0.5, "slope_se": 0.5},
    ...        "b": {"ate": 0.01, "slope": 0.0, "centre": 0.0, "ate_se": 0.004,
    ...              "slope_raw": -0.2, "slope_se": 0.4}}
    >>> out = shrunk_calibration(cal, "empirical_bayes")
    >>> round(out["a"]["ate"], 3), out["a"]["ate_raw"], round(out["a"]["slope"], 2)
    (0.029, 0.08, 0.14)
    >>> shrunk_calibration(cal, "none")["a"]["ate"]
    0.08
    """
    if shrinkage not in SHRINKAGE:
        raise UpliftError(f"unknown shrinkage {shrinkage!r}; choose one of "
                          f"{', '.join(SHRINKAGE)}")
    acts = list(calibration)
    out = {a: dict(calibration[a]) for a in acts}
    for a in acts:
        out[a].setdefault("ate_raw", out[a]["ate"])
        out[a].setdefault("slope_raw", out[a]["slope"])
        out[a]["ate_sd"] = out[a].get("ate_se", float("inf"))
    if shrinkage == "none" or not acts:
        return out
    ate, ate_sd, *_ = empirical_bayes([out[a]["ate_raw"] for a in acts],
                                      [out[a].get("ate_se", float("inf")) for a in acts])
    slope, *_ = empirical_bayes([out[a]["slope_raw"] for a in acts],
                                [out[a].get("slope_se", float("inf")) for a in acts])
    for k, a in enumerate(acts):
        out[a]["ate"] = float(ate[k])
        out[a]["ate_sd"] = float(ate_sd[k])
        out[a]["slope"] = float(np.clip(slope[k], 0.0, 1.0))
    return out


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
                 seed: int = 0, half_life_days: float | None = None,
                 shrinkage: str = "empirical_bayes",
                 progress: Callable[[str], None] | None = None) -> UpliftScores:
    """Estimated effect of each action per customer (every customer in the users table, or
    ``user_ids``) at ``as_of``: user_id plus one column per action: the catalogue's ``actions``
    (0 where no campaign gave one), then every other action the randomised campaigns gave,
    which a note names (learning an effect needs no cost; only ``plan`` needs the catalogue).
    Campaigns count when their window ended by ``as_of`` (and the data's end). The learner is
    ``learner``, or with ``auto`` the one :func:`evaluate_learners` chooses; every campaign is
    pooled, older ones down-weighted by ``half_life_days`` (:func:`fit_uplift`)."""
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
        evaluation = evaluate_learners(data, seed=seed, half_life_days=half_life_days,
                                       shrinkage=shrinkage, progress=say)
        learner = evaluation.chosen
    say(f"fitting the {learner} on {len(data):,} campaign rows")
    model = fit_uplift(data, learner, actions=columns, seed=seed, half_life_days=half_life_days)
    effects = model.predict(features.reset_index(drop=True))[columns]
    if evaluation is not None:
        effects = evaluation.calibrate(effects)
    return UpliftScores(effects=pd.concat([users[["user_id"]], effects], axis=1),
                        learner=learner, notes=notes)
