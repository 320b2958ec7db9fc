"""Scoring every customer in the population with the champion model, with reasons.

``score`` rows (DESIGN.md): user_id, p_churn (calibrated probability), risk_tier, reason_1..3
(sentences), model_version. They are also kept in the store's ``scores`` table, one set per
(as_of, model version), so the report and later campaigns read what was actually scored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from churnguard.config import AMOUNT_CEILING, ChurnDefinition, ScoringConfig
from churnguard.errors import ChurnguardError
from churnguard.explain import reason_context, reasons
from churnguard.features import build_features
from churnguard.cutoffs import resolve_as_of, to_cutoff
from churnguard.labels import population_and_labels
from churnguard.models.base import ChurnModel
from churnguard.registry import (
    CHAMPION,
    RegistryError,
    alias_version,
    get_model_version,
    load_model,
    trained_definition,
)
from churnguard.snapshots import Snapshot, build_snapshot, order_histories
from churnguard.store import Store

SCORE_COLUMNS = ["user_id", "p_churn", "risk_tier", "reason_1", "reason_2", "reason_3",
                 "model_version"]


class ScoringError(ChurnguardError, ValueError):
    """Nothing to score with or nothing to score (with what to do about it)."""

    code = "cannot_score"


def risk_tiers(p: np.ndarray, tiers: ScoringConfig) -> np.ndarray:
    """'high' from ``tiers.high`` up, 'medium' from ``tiers.medium`` up, else 'low'.

    >>> risk_tiers(np.array([0.9, 0.5, 0.1]), ScoringConfig()).tolist()
    ['high', 'medium', 'low']
    """
    return np.where(p >= tiers.high, "high", np.where(p >= tiers.medium, "medium", "low"))


def champion(store: Store, version: str | None = None) -> tuple[str, ChurnModel]:
    """The model version to score with (the champion unless one is named) and the model."""
    if version is None:
        version = alias_version(store, CHAMPION)
        if version is None:
            raise ScoringError("no model has been trained yet; run `churnguard train` first")
    try:
        return version, load_model(store, version)
    except RegistryError as exc:
        raise ScoringError(str(exc)) from None


def check_horizon(store: Store, version: str, definition: ChurnDefinition) -> None:
    """A model predicts churn within the horizon it was trained for: scoring it for another
    is bad input, said before any work."""
    trained = trained_definition(get_model_version(store, version))
    if trained is not None and trained.horizon_days != definition.horizon_days:
        raise ScoringError(
            f"{version} was trained for a {trained.horizon_days}-day horizon, not "
            f"{definition.horizon_days} days: leave out --horizon to score with the model's own "
            f"definition, or train a model for {definition.horizon_days} days")


@dataclass(frozen=True, kw_only=True)
class ScoreResult:
    as_of: dt.datetime
    model_version: str
    scores: pd.DataFrame  # SCORE_COLUMNS, highest risk first
    # Per user_id (index): reason_keys_1..3 (reason codes behind the sentences) and review_topic
    # (the topic of the latest review), for messages that pick their angle from the reasons.
    reason_keys: pd.DataFrame | None = None
    # Customers of the population who could not be scored, and why (see _snapshot).
    left_out: dict[str, str] = field(default_factory=dict)


def isolated_snapshot(store: Store, *, definition: ChurnDefinition, cutoffs: list[object],
                      features: list[str] | None = None, with_labels: bool = False
                      ) -> tuple[Snapshot, dict[str, str]]:
    """:func:`~churnguard.snapshots.build_snapshot`, and the customers left out of it (user id
    -> why, in population order).

    One customer's data must not stop the scoring of the others: when the features cannot be
    computed because some customer's amounts break their exact sums (a store loaded before
    ingestion bounded amounts, docs/ingest.md), those customers are left out and named, and
    everyone else is in the snapshot. ``score``, ``plan`` and the service's population scoring
    all build their snapshots here."""
    try:
        return build_snapshot(store, definition=definition, cutoffs=cutoffs, features=features,
                              with_labels=with_labels), {}
    except duckdb.DataError:
        unscorable = unscorable_customers(store, max(to_cutoff(c) for c in cutoffs))
        if not unscorable:
            raise
    population = population_and_labels(store, definition=definition, cutoffs=cutoffs)
    left_out = {u: unscorable[u] for u in dict.fromkeys(population["user_id"].astype(str))
                if u in unscorable}
    return build_snapshot(store, definition=definition, cutoffs=cutoffs, features=features,
                          with_labels=with_labels, exclude=unscorable), left_out


def _snapshot(store: Store, definition: ChurnDefinition, as_of: dt.datetime,
              model_version: str) -> tuple[Snapshot, dict[str, str]]:
    """The scoring snapshot at ``as_of`` with the model's features, and who is left out."""
    features = get_model_version(store, model_version).features
    return isolated_snapshot(store, definition=definition, cutoffs=[as_of], features=features)


def unscorable_customers(store: Store, as_of: dt.datetime) -> dict[str, str]:
    """Customers with an event before ``as_of`` whose amount is beyond what features can sum."""
    rows = store.con.execute(
        "SELECT DISTINCT user_id FROM events WHERE ts < ? AND NOT (abs(amount) <= ?) "
        "ORDER BY user_id", [as_of, AMOUNT_CEILING]).fetchall()
    reason = (f"an event's amount is beyond {AMOUNT_CEILING:g} in size, so the features cannot "
              "be computed; correct or delete the event (churnguard erase removes the customer)")
    return {str(u): reason for (u,) in rows}


def _one(store: Store, definition: ChurnDefinition, population: pd.DataFrame,
         features: list[str]) -> Snapshot:
    """The snapshot of given (user_id, cutoff) rows only."""
    from churnguard.sequences import SequenceCache

    frame = build_features(store, population, definition=definition, features=features)
    frame.attrs = {}
    # Behaviour models read the customers' event sequences through the snapshot.
    return Snapshot(features=frame, orders=order_histories(store, population, definition=definition),
                    horizon_days=definition.horizon_days,
                    meta={"sequences": SequenceCache(store)})


def _no_reasons(index: pd.Index) -> pd.DataFrame:
    empty = pd.DataFrame(index=index)
    for k in (1, 2, 3):
        empty[f"reason_{k}"] = ""
        empty[f"reason_keys_{k}"] = None
    empty["review_topic"] = None
    return empty


def snapshot_reasons(model: ChurnModel, snapshot: Snapshot, lang: str,
                     context: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    """The reasons of every snapshot row under ``model``: reason_1..3, reason_keys_1..3 and
    review_topic, indexed like the snapshot (empty where the model gives no contributions).
    ``context(population)``: the :func:`~churnguard.explain.reason_context` frame of the rows
    (user_id, cutoff), from the store here, from a lake's events on Spark
    (churnguard.spark.scoring): one way to explain, whichever engine computed the inputs."""
    try:
        contributions = model.explain(snapshot)
    except NotImplementedError:
        return _no_reasons(snapshot.index)
    details = context(snapshot.index.to_frame(index=False))
    why = reasons(contributions, model.explanation_values(snapshot), lang=lang, context=details)
    why["review_topic"] = details["last_review_topic"].reindex(why.index).to_numpy()
    return why


def _with_reasons(store: Store, model: ChurnModel, snapshot: Snapshot, lang: str) -> pd.DataFrame:
    return snapshot_reasons(model, snapshot, lang,
                            lambda population: reason_context(store, population))


def score_customers(store: Store, *, definition: ChurnDefinition, tiers: ScoringConfig,
                    as_of: object = None, lang: str | None = None, version: str | None = None,
                    save: bool = True, with_reasons: bool = True,
                    progress: Callable[[str], None] | None = None) -> ScoreResult:
    """Score the population at ``as_of`` (default: just after the last event).

    ``with_reasons=False`` skips the explanations (the slow part: one TreeSHAP pass per customer)
    and leaves the reason columns empty; such scores are never saved, so they cannot replace
    stored scores that have reasons. :func:`reasons_for` explains chosen customers later.
    """
    if save and not with_reasons:
        raise ValueError("scores without reasons are not saved: pass save=False")
    say = progress or (lambda message: None)
    lang = lang or tiers.lang
    when = resolve_as_of(store, as_of)
    version, model = champion(store, version)
    check_horizon(store, version, definition)
    say(f"building features at {when:%Y-%m-%d}")
    snapshot, left_out = _snapshot(store, definition, when, version)
    for user, why in left_out.items():
        say(f"left out customer {user}: {why}")
    if len(snapshot) == 0:
        raise ScoringError(f"nobody is in the population at {when:%Y-%m-%d} (no "
                           f"{'/'.join(definition.activity)} in the previous "
                           f"{definition.lookback_days} days)")
    say(f"scoring {len(snapshot):,} customers with {version}")
    p = model.predict_proba(snapshot)
    if with_reasons:
        say("explaining")
        why = _with_reasons(store, model, snapshot, lang)
    else:
        why = _no_reasons(snapshot.index)
    frame = pd.DataFrame({
        "user_id": snapshot.index.get_level_values(0).astype(str),
        "p_churn": p,
        "risk_tier": risk_tiers(p, tiers),
        "reason_1": why["reason_1"].to_numpy(),
        "reason_2": why["reason_2"].to_numpy(),
        "reason_3": why["reason_3"].to_numpy(),
        "model_version": version,
    }).sort_values(["p_churn", "user_id"], ascending=[False, True], kind="stable")
    keys = pd.DataFrame({
        "reason_keys_1": why["reason_keys_1"].to_numpy(),
        "reason_keys_2": why["reason_keys_2"].to_numpy(),
        "reason_keys_3": why["reason_keys_3"].to_numpy(),
        "review_topic": why["review_topic"].to_numpy(),
    }, index=pd.Index(snapshot.index.get_level_values(0).astype(str), name="user_id"))
    frame = frame.reset_index(drop=True)[SCORE_COLUMNS]
    if save:
        _save_scores(store, frame, when, lang)
    return ScoreResult(as_of=when, model_version=version, scores=frame, reason_keys=keys,
                       left_out=left_out)


def _save_scores(store: Store, frame: pd.DataFrame, as_of: dt.datetime, lang: str) -> None:
    rows = frame.assign(as_of=as_of, lang=lang,
                        scored_at=dt.datetime.now(dt.UTC).replace(tzinfo=None))
    with store.registered(rows, "scores") as view, store.transaction() as con:
        con.execute("DELETE FROM scores WHERE as_of = ? AND model_version = ?",
                    [as_of, frame["model_version"].iloc[0]])
        con.execute(
            "INSERT INTO scores (user_id, as_of, model_version, p_churn, risk_tier, reason_1, "
            "reason_2, reason_3, lang, scored_at) SELECT user_id, as_of, model_version, "
            f"p_churn, risk_tier, reason_1, reason_2, reason_3, lang, scored_at FROM {view}")


def reasons_for(store: Store, user_ids: list[str], *, definition: ChurnDefinition,
                as_of: dt.datetime, version: str, lang: str) -> pd.DataFrame:
    """Reasons of the given customers at ``as_of`` under model ``version``: per user_id (index),
    reason_1..3, reason_keys_1..3 and review_topic; customers outside the population at ``as_of``
    are left out. Explaining a few customers this way costs what explaining them in a full
    scoring pass would, without explaining everyone else."""
    when = to_cutoff(as_of)
    model = champion(store, version)[1]
    population = population_and_labels(store, definition=definition, cutoffs=[when])
    mine = population[population["user_id"].isin({str(u) for u in user_ids})]
    if mine.empty:
        return _no_reasons(pd.Index([], name="user_id", dtype=object))
    snapshot = _one(store, definition, mine[["user_id", "cutoff"]].reset_index(drop=True),
                    get_model_version(store, version).features)
    why = _with_reasons(store, model, snapshot, lang)
    why.index = pd.Index(snapshot.index.get_level_values(0).astype(str), name="user_id")
    return why


@dataclass(frozen=True, kw_only=True)
class CustomerExplanation:
    user_id: str
    as_of: dt.datetime
    model_version: str
    p_churn: float
    risk_tier: str
    reasons: list[str]
    contributions: pd.Series  # the largest contributions toward churn, log-odds


def explain_customer(store: Store, user_id: str, *, definition: ChurnDefinition,
                     tiers: ScoringConfig, as_of: object = None, lang: str | None = None,
                     version: str | None = None) -> CustomerExplanation:
    """One customer's churn probability, tier and reasons at ``as_of``."""
    lang = lang or tiers.lang
    when = resolve_as_of(store, as_of)
    version, model = champion(store, version)
    check_horizon(store, version, definition)
    population = population_and_labels(store, definition=definition, cutoffs=[when])
    mine = population[population["user_id"] == str(user_id)]
    if mine.empty:
        known = store.con.execute("SELECT count(*) FROM events WHERE user_id = ?",
                                  [str(user_id)]).fetchall()[0][0]
        if not known:
            raise ScoringError(f"no customer {user_id!r} in the store")
        raise ScoringError(
            f"customer {user_id!r} is not in the population at {when:%Y-%m-%d}: no "
            f"{'/'.join(definition.activity)} in the previous {definition.lookback_days} days, "
            "so by the churn definition they have already churned")
    snapshot = _one(store, definition, mine[["user_id", "cutoff"]],
                    get_model_version(store, version).features)
    p = float(model.predict_proba(snapshot)[0])
    why = _with_reasons(store, model, snapshot, lang)
    sentences = [s for s in (why.iloc[0][f"reason_{k}"] for k in (1, 2, 3)) if s]
    try:
        row = model.explain(snapshot).iloc[0].drop("bias", errors="ignore")
        top = row[row > 0].sort_values(ascending=False).head(8)
    except NotImplementedError:
        top = pd.Series(dtype=float)
    return CustomerExplanation(user_id=str(user_id), as_of=when, model_version=version,
                               p_churn=p, risk_tier=str(risk_tiers(np.array([p]), tiers)[0]),
                               reasons=sentences, contributions=top)


__all__ = ["SCORE_COLUMNS", "CustomerExplanation", "ScoreResult", "ScoringError",
           "champion", "check_horizon", "explain_customer", "isolated_snapshot", "reasons_for",
           "risk_tiers", "score_customers", "snapshot_reasons", "unscorable_customers"]
