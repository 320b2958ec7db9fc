"""The champion/challenger gate: a new model replaces the champion only on out-of-time evidence.

**Evaluate the recipe out of time, deploy the refit.** :func:`challenge` trains the champion's
recipe (its catalogue kind, its settings, its churn definition) twice over: an **evaluated
twin** as of the newest matured cohort ``E`` (every label window it learns from ends by ``E``),
which is shadow-scored on ``E`` against the champion's own evaluated twin and decides; and, only
when that decision is *promoted*, the **refit**: the same recipe trained on every label
available at the decision time, as ``churnguard train`` would (:func:`churnguard.training.
train_model`, validation cutoff ``E``, labels up to ``E + horizon``). The refit is what becomes
champion. Judging the refit itself on ``E`` is impossible (it learned from ``E``), and deploying
the twin would leave the champion one horizon behind a model retrained every cycle.
:func:`decide` judges an already registered version as the challenger's twin the same way.
Every decision is written to the registry with its evidence
(:class:`~churnguard.registry.GateDecision`), in the same transaction as the alias move it
makes (:func:`~churnguard.registry.record_decision`).

**The cohort.** A cohort ``E`` is *out of time* for a model when every label window it learned
from (its training cutoffs and its validation cutoff, which early stopping and calibration read)
ends on or before ``E``: ``max(cutoffs) + horizon <= E`` (:func:`learned_until`). Then neither
its features nor its labels told the model anything about the period the cohort is labelled on.
The gate judges on the newest matured cutoff ``E`` (``E + horizon`` <= the end of the data, or
the ``as_of`` given; :func:`evaluation_cutoff`). The challenger's twin is trained as of ``E``:
its validation cutoff is ``E - horizon`` and its training cutoffs end one horizon before that
(:func:`churnguard.cutoffs.training_cutoffs`), so its labels end at ``E``.

**The champion's evaluated twin** (:func:`champion_twin`), the first of these that exists:

1. the twin recorded when the gate promoted the champion (the refit's registry config,
   ``config["gate"]["evaluated_twin"]``), when it is out of time on ``E`` (it is: it learned up
   to an earlier cohort);
2. the champion itself, when it is out of time on ``E`` (trained by hand as of an earlier date);
3. the champion's recipe refitted, by the gate, as of ``U - (R - E)``: ``U`` where the
   champion's labels end, ``R`` where a refit now would end them (``E + horizon`` without
   ``as_of``), so the champion's twin lags the champion exactly as the challenger's twin lags
   the challenger's refit, and its labels end strictly before ``E``. It is registered with
   ``config["gate"] = {"role": "twin", "twin_of": champion}`` and found again by later
   challenges while that champion lasts.

No evidence (the champion stays, nothing is trained) when the champion already learned from
every label a refit would (``U >= R``: nothing new since it was trained), when the registry does
not say what it learned from, or when even its recipe refitted one lag earlier would learn past
``E`` (a replay ``as_of`` before the champion's training data ended).

**The rule.** With a champion, the challenger is promoted when the one-sided ``confidence``
(default 95%) lower bound of the paired ΔAUC = AUC(challenger's twin) − AUC(champion's twin) is
at least ``-tolerance`` (default −0.005) and the challenger twin's ECE on the cohort (after its
own calibration) is at most ``max_ece`` (0.03). The bound comes from a paired bootstrap over the
cohort's customers (Efron & Tibshirani 1993, *An Introduction to the Bootstrap*, ch. 13, the
percentile interval): each resample draws customers with replacement and scores both models on
the same draw, so what the two share (which customers are easy) cancels in the difference
(:func:`paired_auc_bootstrap`). Without a champion, the challenger becomes champion when its
twin is calibrated and beats the recency rule and BTYD
(:func:`churnguard.models.checks.check_calibration` and
:func:`~churnguard.models.checks.check_beats_baselines`).

**Realized metrics.** :func:`check_realized` watches a promoted champion (the deployed refit) on
each later matured cohort out of time for it and for the deployed champion it replaced -- for a
refit, cohorts at or after the decision's data end, so from one horizon after the decision: when
the previous champion beats it there by more than ``tolerance`` with the same confidence (the
one-sided lower bound of AUC(previous) − AUC(promoted) above ``tolerance``), it rolls back and
records why.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 2000)
>>> champion = y + rng.normal(0, 1.5, 2000)
>>> challenger = y + rng.normal(0, 1.0, 2000)          # clearly better
>>> result = paired_auc_bootstrap(y, champion, challenger, resamples=500, seed=1)
>>> result.delta > 0.05, result.lower > -0.005
(True, True)
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnguard.config import ChurnDefinition, GateConfig
from churnguard.cutoffs import (
    BacktestError,
    cutoff_text,
    label_window_end,
    label_window_start,
    midnight,
    newest_labelled_cutoff,
    scoring_cutoff,
    to_cutoff,
    training_cutoffs,
)
from churnguard.errors import ChurnguardError
from churnguard.evaluate import ece, roc_auc
from churnguard.models.base import ChurnModel, fit_model
from churnguard.models.catalog import KINDS
from churnguard.models.checks import check_beats_baselines, check_calibration, uncalibrated_scores
from churnguard.registry import (
    CHALLENGER,
    CHAMPION,
    GateDecision,
    ModelVersion,
    alias_version,
    fault,
    get_model_version,
    list_decisions,
    list_models,
    load_model,
    new_decision_id,
    record_decision,
    set_alias,
    trained_definition,
)
from churnguard.snapshots import Snapshot, build_snapshot
from churnguard.store import Store
from churnguard.training import train_model

__all__ = [
    "FAULT_REFIT_REGISTERED",
    "LINK",
    "GateDecision",
    "GateError",
    "PairedAUC",
    "challenge",
    "champion_twin",
    "check_realized",
    "decide",
    "evaluation_cutoff",
    "learned_until",
    "paired_auc_bootstrap",
    "refit_until",
]

#: Where the gate records, in a version's registry config (``config["gate"]``), how the
#: versions it trains relate: ``{"role": "refit", "evaluated_twin": T, "cohort": E}`` for a
#: deployed refit, ``{"role": "twin", "twin_of": C, "cohort": E}`` for a champion's recipe
#: refitted to stand for it on ``E`` (:func:`churnguard.training.train_model`'s ``links``).
LINK = "gate"

#: Fault injection (crash tests): the promoted recipe's refit is registered, the decision
#: (and the alias move) not yet written. A kill here leaves a registered refit no decision
#: names and the champion unchanged; the rerun deploys that refit instead of training another.
FAULT_REFIT_REGISTERED = "gate:after-refit"

# Rows of resamples drawn and scored at a time: bounds the memory (a 256 x n int64 block per
# array, 40 MiB at 20,000 customers) without changing the result (the draws are sequential).
_CHUNK = 256


class GateError(ChurnguardError, ValueError):
    """The gate cannot judge this challenger (with the reason and what to do)."""

    code = "cannot_judge"


# -- the paired bootstrap -------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PairedAUC:
    """ROC-AUC of two scores on the same labels and the paired bootstrap of their difference.

    ``delta`` = ``auc_b`` − ``auc_a`` on the whole cohort; ``lower`` and ``upper`` are its
    one-sided bounds at ``confidence`` (the (1 − confidence) and ``confidence`` quantiles of the
    ``resamples`` resampled differences, resamples with a single class left out: ``used``)."""

    n: int
    n_positive: int
    auc_a: float
    auc_b: float
    delta: float
    lower: float
    upper: float
    confidence: float
    resamples: int
    used: int
    seed: int


class _Ranked:
    """One score's order, computed once for every resample: the retained customers sorted by
    score, and for each churner how many of them score strictly below it (``low``) and at most
    as high (``high``)."""

    def __init__(self, y: np.ndarray, scores: np.ndarray) -> None:
        churned = y.astype(bool)
        negative = np.flatnonzero(~churned)
        self.negative_order = negative[np.argsort(scores[negative], kind="stable")]
        ordered = scores[self.negative_order]
        positive = scores[churned]
        self.low = np.searchsorted(ordered, positive, side="left")
        self.high = np.searchsorted(ordered, positive, side="right")


def weighted_aucs(counts: np.ndarray, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC-AUC of ``scores`` on each row of ``counts`` (how many times each customer is drawn):
    the Mann-Whitney statistic over the weighted sample, ties counting one half; NaN for a row
    with a single class.

    With the retained customers sorted by score once, C[k] = the drawn retained customers among
    the k lowest (a cumulative sum along each row), and a churner j outranks C[low_j] of them
    and ties with C[high_j] − C[low_j]: 2U = Σ_j w_j (C[low_j] + C[high_j]), with w_j its draws
    -- integer sums, no sort per resample (Mann & Whitney 1947; AUC = U / (n1 n0), Hanley &
    McNeil 1982, Radiology 143(1), 29-36).

    >>> y = np.array([0, 1, 0, 1]); s = np.array([0.2, 0.2, 0.1, 0.9])
    >>> weighted_aucs(np.array([[1, 1, 1, 1], [2, 1, 0, 1]]), y, s).tolist()
    [0.875, 0.75]
    """
    y = np.asarray(y, dtype=float)
    return _aucs(np.asarray(counts), y.astype(bool), _Ranked(y, np.asarray(scores, dtype=float)))


def _aucs(counts: np.ndarray, churned: np.ndarray, ranked: _Ranked) -> np.ndarray:
    positive = counts[:, churned]
    below = np.zeros((counts.shape[0], ranked.negative_order.size + 1), dtype=np.int64)
    np.cumsum(counts[:, ranked.negative_order], axis=1, out=below[:, 1:])
    twice_u = np.einsum("ij,ij->i", positive, below[:, ranked.low] + below[:, ranked.high],
                        dtype=np.float64)
    pairs = positive.sum(axis=1, dtype=np.float64) * below[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, twice_u / (2.0 * pairs), np.nan)


def _resample_counts(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """``rows`` bootstrap resamples of ``n`` customers as draw counts (rows x n): an index
    matrix of draws with replacement, counted per customer."""
    draws = rng.integers(0, n, size=(rows, n))
    draws += (np.arange(rows) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n)


def paired_auc_bootstrap(y: Any, a: Any, b: Any, *, resamples: int = 1000, seed: int = 0,
                         confidence: float = 0.95) -> PairedAUC:
    """The paired bootstrap of ΔAUC = AUC(b) − AUC(a) over the rows of ``y``: every resample
    draws the same customers for both scores (module docstring).

    B = 1000 resamples of 20,000 customers take about a second (docs/operate.md gives the
    measured figure and the command)."""
    y = np.asarray(y, dtype=float).ravel()
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if not (y.shape == a.shape == b.shape):
        raise GateError(f"labels and scores differ in length: {y.size}, {a.size}, {b.size}")
    if not np.isin(y, (0.0, 1.0)).all():
        raise GateError("labels must be 0 or 1 (no NaN)")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise GateError("scores must be finite; some are NaN or infinite")
    if not 0.5 < confidence < 1:
        raise GateError(f"confidence must be between 0.5 and 1, got {confidence}")
    if resamples < 1:
        raise GateError(f"resamples must be at least 1, got {resamples}")
    auc_a, auc_b = roc_auc(y, a), roc_auc(y, b)
    churned, ranked_a, ranked_b = y.astype(bool), _Ranked(y, a), _Ranked(y, b)
    rng = np.random.default_rng(seed)
    deltas = []
    for start in range(0, resamples, _CHUNK):
        counts = _resample_counts(rng, min(_CHUNK, resamples - start), y.size)
        deltas.append(_aucs(counts, churned, ranked_b) - _aucs(counts, churned, ranked_a))
    delta = np.concatenate(deltas)
    kept = delta[np.isfinite(delta)]
    if kept.size == 0:
        raise GateError("every resample holds a single class: the cohort needs churned and "
                        "retained customers")
    return PairedAUC(n=int(y.size), n_positive=int(y.sum()), auc_a=auc_a, auc_b=auc_b,
                     delta=auc_b - auc_a, lower=float(np.quantile(kept, 1 - confidence)),
                     upper=float(np.quantile(kept, confidence)), confidence=confidence,
                     resamples=resamples, used=int(kept.size), seed=seed)


# -- the calendar of the gate --------------------------------------------------------------------
def learned_until(version: ModelVersion) -> dt.datetime | None:
    """Where the newest label window ``version`` learned from ends (its training and validation
    cutoffs plus its horizon); None when the registry does not say (a version registered
    without a data window cannot be shown to be out of time on any cohort).

    >>> v = ModelVersion(version="v", name="gbdt", created_at=dt.datetime(2026, 1, 1),
    ...     config={"definition": {"horizon_days": 90}}, metrics={}, features=[],
    ...     data_window={"train_cutoffs": ["2025-03-01"], "validation_cutoff": "2025-06-01"})
    >>> learned_until(v)
    datetime.datetime(2025, 8, 30, 0, 0)
    """
    window = version.data_window
    cutoffs = [*window.get("train_cutoffs", []), window.get("validation_cutoff")]
    cutoffs = [to_cutoff(c) for c in cutoffs if c]
    definition = trained_definition(version)
    if not cutoffs or definition is None:
        return None
    return label_window_end(max(cutoffs), definition.horizon_days)


def evaluation_cutoff(store: Store, *, definition: ChurnDefinition,
                      as_of: object = None) -> dt.datetime:
    """The newest matured cutoff: the newest midnight whose label window ends by the end of the
    data (or by ``as_of``, to replay a past moment).

    ``as_of`` after the data ends is bad input (:class:`GateError`)."""
    newest = newest_labelled_cutoff(store, definition=definition)
    if as_of is None:
        return newest
    when = to_cutoff(as_of)
    if when > scoring_cutoff(store):
        raise GateError(f"--as-of {cutoff_text(when)} is after the data ends "
                        f"({cutoff_text(scoring_cutoff(store))}); leave it out to judge on all "
                        "the data")
    return min(newest, midnight(label_window_start(when, definition.horizon_days)))


def _out_of_time(version: ModelVersion, cohort: dt.datetime) -> bool:
    until = learned_until(version)
    return until is not None and until <= cohort


# -- shadow scores -------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class _Cohort:
    cutoff: dt.datetime
    snapshot: Snapshot
    y: np.ndarray


def _cohort(store: Store, definition: ChurnDefinition, cutoff: dt.datetime) -> _Cohort:
    snapshot = build_snapshot(store, definition=definition, cutoffs=[cutoff])
    known = np.isfinite(snapshot.labels.to_numpy(dtype=float))
    if not known.all():  # cannot happen for a matured cutoff; kept honest if it does
        snapshot = snapshot.subset(known)
    return _Cohort(cutoff=cutoff, snapshot=snapshot, y=snapshot.y())


def _too_few(cohort: _Cohort, config: GateConfig) -> str | None:
    churned = int(cohort.y.sum())
    retained = int(cohort.y.size - churned)
    if min(churned, retained) < config.min_class_size:
        return (f"the cohort at {cutoff_text(cohort.cutoff)} holds {churned} churned and "
                f"{retained} retained customers, fewer than {config.min_class_size} of one "
                "class ([gate] min_class_size): no evidence either way")
    return None


def _shadow_scores(store: Store, version: str, cohort: _Cohort) -> np.ndarray:
    """The probabilities ``version`` gives the cohort (kept in memory: the scores table holds
    the champion's production scores only)."""
    return np.asarray(load_model(store, version).predict_proba(cohort.snapshot), dtype=float)


# -- decisions -----------------------------------------------------------------------------------
def _thresholds(config: GateConfig) -> dict[str, Any]:
    return {"tolerance": config.tolerance, "max_ece": config.max_ece,
            "confidence": config.confidence, "resamples": config.resamples,
            "seed": config.seed}


def _no_evidence(*, champion: str | None, challenger: str | None, trigger: str,
                 config: GateConfig, reason: str, cohort: dt.datetime | None = None,
                 evidence: dict[str, Any] | None = None) -> GateDecision:
    return GateDecision(decision_id=new_decision_id(), decided_at=_now(), trigger=trigger,
                        outcome="no-evidence", champion_version=champion,
                        challenger_version=challenger, champion_after=champion, reason=reason,
                        cohort_cutoff=cohort, evidence=evidence or {}, **_thresholds(config))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _windows(*versions: ModelVersion) -> dict[str, Any]:
    return {v.version: {**v.data_window, "learned_until": _day(learned_until(v))}
            for v in versions}


def _day(value: dt.datetime | None) -> str | None:
    return None if value is None else cutoff_text(value)


def _compare(store: Store, *, champion: ModelVersion, challenger: ModelVersion,
             cohort: _Cohort, config: GateConfig, say: Callable[[str], None]
             ) -> tuple[PairedAUC, float, float]:
    """Shadow-score both on the cohort: the paired bootstrap of ΔAUC (challenger − champion)
    and the ECE of each."""
    say(f"shadow-scoring {champion.version} and {challenger.version} on "
        f"{cohort.y.size:,} customers at {cutoff_text(cohort.cutoff)}")
    p_champion = _shadow_scores(store, champion.version, cohort)
    p_challenger = _shadow_scores(store, challenger.version, cohort)
    say(f"paired bootstrap, {config.resamples} resamples")
    paired = paired_auc_bootstrap(cohort.y, p_champion, p_challenger,
                                  resamples=config.resamples, seed=config.seed,
                                  confidence=config.confidence)
    return paired, ece(cohort.y, p_champion), ece(cohort.y, p_challenger)


def _figures(paired: PairedAUC, ece_champion: float, ece_challenger: float) -> dict[str, Any]:
    return {"n_customers": paired.n, "n_churned": paired.n_positive,
            "champion_auc": paired.auc_a, "challenger_auc": paired.auc_b,
            "delta_auc": paired.delta, "delta_auc_lower": paired.lower,
            "delta_auc_upper": paired.upper, "champion_ece": ece_champion,
            "challenger_ece": ece_challenger}


def _judge_against_champion(store: Store, *, champion: ModelVersion, evaluated: ModelVersion,
                            challenger: ModelVersion, cohort: _Cohort, config: GateConfig,
                            say: Callable[[str], None]) -> GateDecision:
    """The challenger's evaluated twin ``challenger`` against the champion's, ``evaluated``
    (:func:`champion_twin`), on the cohort; the decision names the deployed ``champion``."""
    paired, ece_champion, ece_challenger = _compare(
        store, champion=evaluated, challenger=challenger, cohort=cohort, config=config, say=say)
    level = f"{config.confidence:.0%}"
    broken = []
    if not paired.lower >= -config.tolerance:
        broken.append(f"the {level} lower bound of ΔAUC is {paired.lower:+.4f}, below "
                      f"−{config.tolerance} (ΔAUC {paired.delta:+.4f}: "
                      f"{paired.auc_b:.4f} against {paired.auc_a:.4f})")
    # Calibration holds when the ECE is at most max_ece, or no worse than the champion's on the
    # same cohort: when the cohort's churn rate has moved (drift), neither twin is calibrated
    # there, and keeping the champion would buy no calibration, only an older model.
    ece_limit = max(config.max_ece, ece_champion) if np.isfinite(ece_champion) else config.max_ece
    if not ece_challenger <= ece_limit:
        broken.append(f"its ECE is {ece_challenger:.4f}, above {config.max_ece}"
                      + (f" and above the champion's {ece_champion:.4f}"
                         if ece_limit > config.max_ece else ""))
    promoted = not broken
    where = f"on {paired.n:,} customers at {cutoff_text(cohort.cutoff)}"
    ece_said = (f"at most {config.max_ece}" if ece_challenger <= config.max_ece else
                f"no worse than the champion's {ece_champion:.4f}")
    reason = (f"promoted {where}: the {level} lower bound of ΔAUC is {paired.lower:+.4f} "
              f"(at least −{config.tolerance}; ΔAUC {paired.delta:+.4f}) and its ECE "
              f"{ece_challenger:.4f} is {ece_said}"
              if promoted else f"kept {where}: " + "; ".join(broken))
    return GateDecision(
        decision_id=new_decision_id(), decided_at=_now(), trigger="challenge",
        outcome="promoted" if promoted else "kept", champion_version=champion.version,
        challenger_version=challenger.version,
        champion_after=challenger.version if promoted else champion.version, reason=reason,
        cohort_cutoff=cohort.cutoff, **_figures(paired, ece_champion, ece_challenger),
        **_thresholds(config),
        evidence={"resamples_used": paired.used,
                  "evaluated": {"champion": evaluated.version, "challenger": challenger.version},
                  "windows": _windows(champion, evaluated, challenger)})


def _baselines(store: Store, challenger: ModelVersion, definition: ChurnDefinition,
               config: GateConfig, say: Callable[[str], None]) -> dict[str, tuple[Any, float]]:
    """The recency rule and BTYD fitted on the challenger's own training and validation
    cutoffs (its kind left out: a model need not beat itself)."""
    window = challenger.data_window
    fit_cutoffs = [to_cutoff(c) for c in window.get("train_cutoffs", [])]
    validation = to_cutoff(window["validation_cutoff"])
    say("fitting the recency rule and BTYD on the challenger's training data")
    snapshot = build_snapshot(store, definition=definition, cutoffs=[*fit_cutoffs, validation])
    is_validation = np.asarray(snapshot.index.get_level_values(1) == pd.Timestamp(validation))
    train, valid = snapshot.subset(~is_validation), snapshot.subset(is_validation)
    baselines = {}
    for name in ("recency", "btyd"):
        if name != challenger.name:
            model = fit_model(KINDS[name].build(), train, validation=valid)
            baselines[name] = (model, config.baseline_margin)
    return baselines


def _first_champion(store: Store, *, challenger: ModelVersion, definition: ChurnDefinition,
                    cohort: _Cohort, config: GateConfig,
                    say: Callable[[str], None]) -> GateDecision:
    """No champion yet: the challenger becomes champion when its evaluated twin is calibrated
    and beats the baselines on the out-of-time cohort."""
    model = load_model(store, challenger.version)
    broken: list[str] = []
    evidence: dict[str, Any] = {"evaluated": {"champion": None, "challenger": challenger.version},
                                "windows": _windows(challenger)}
    p = np.asarray(model.predict_proba(cohort.snapshot), dtype=float)
    try:
        measured = check_calibration(model, cohort.snapshot, max_ece=config.max_ece,
                                     max_mean_gap=config.max_mean_gap,
                                     uncalibrated=uncalibrated_scores(model))
        evidence["calibration"] = {"ece": measured.ece, "brier": measured.brier,
                                   "mean": measured.mean, "base_rate": measured.base_rate}
    except AssertionError as exc:  # the check's verdict, recorded as the reason
        broken.append(str(exc))
    try:
        evidence["baseline_auc"] = check_beats_baselines(
            model, cohort.snapshot, _baselines(store, challenger, definition, config, say))
    except AssertionError as exc:
        broken.append(str(exc))
    auc = roc_auc(cohort.y, p)
    where = f"on {cohort.y.size:,} customers at {cutoff_text(cohort.cutoff)}"
    promoted = not broken
    reason = (f"first champion, {where}: calibrated and beats the baselines (ROC-AUC "
              f"{auc:.4f})" if promoted else
              f"no champion, and the challenger fails {where}: " + "; ".join(broken))
    return GateDecision(
        decision_id=new_decision_id(), decided_at=_now(), trigger="challenge",
        outcome="promoted" if promoted else "kept", champion_version=None,
        challenger_version=challenger.version,
        champion_after=challenger.version if promoted else None, reason=reason,
        cohort_cutoff=cohort.cutoff, n_customers=int(cohort.y.size),
        n_churned=int(cohort.y.sum()), challenger_auc=auc, challenger_ece=ece(cohort.y, p),
        **_thresholds(config), evidence=evidence)


def _gate_definition(store: Store, definition: ChurnDefinition) -> ChurnDefinition:
    champion = alias_version(store, CHAMPION)
    if champion is None:
        return definition
    return trained_definition(get_model_version(store, champion)) or definition


# -- twins and refits -----------------------------------------------------------------------------
def _link(version: ModelVersion) -> dict[str, Any]:
    """How the gate related ``version`` to others when it trained it (``config["gate"]``)."""
    given = version.config.get(LINK)
    return given if isinstance(given, dict) else {}


def _recipe_of(store: Store, version: str) -> ChurnModel:
    """An unfitted copy of ``version`` with the same settings: its constructor arguments are
    the recipe (the learner contract: fit never changes them)."""
    fitted = load_model(store, version)
    return type(fitted)(**copy.deepcopy(fitted.get_params()))


def refit_until(store: Store, *, definition: ChurnDefinition, as_of: object = None
                ) -> dt.datetime:
    """Where the labels of a model trained now end: the validation cutoff ``churnguard train``
    picks (:func:`churnguard.cutoffs.training_cutoffs`; the newest matured cutoff without
    ``as_of``) plus the horizon."""
    _, validation = training_cutoffs(store, definition=definition, as_of=as_of)
    return label_window_end(validation, definition.horizon_days)


def _referenced(store: Store) -> set[str]:
    """Every version a decision names: deployed, or evaluated for it."""
    named: set[str] = set()
    for d in list_decisions(store):
        named.update(v for v in (d.champion_version, d.challenger_version, d.champion_after) if v)
        named.update(v for v in d.evidence.get("evaluated", {}).values() if v)
    return named


def _nothing_new(store: Store, champion: ModelVersion, *, definition: ChurnDefinition,
                 as_of: object) -> str | None:
    """Why a challenge with the champion's own recipe has nothing to learn that the champion
    did not (its labels end where a refit's would), or None."""
    until, refit = learned_until(champion), refit_until(store, definition=definition,
                                                         as_of=as_of)
    if until is None or until < refit:
        return None
    return (f"the champion {champion.version} learned from labels up to {cutoff_text(until)}, "
            f"as far as the data goes (a model trained now would learn from labels up to "
            f"{cutoff_text(refit)}): its recipe has nothing newer to learn from until the data "
            f"goes past {cutoff_text(until)}")


def _twin_plan(store: Store, champion: ModelVersion, cohort: dt.datetime, *,
               definition: ChurnDefinition, as_of: object
               ) -> tuple[ModelVersion | dt.datetime | None, str]:
    """The champion's evaluated twin on ``cohort`` (module docstring): a registered version,
    or the date its recipe is to be refitted as of, or None with the reason there is none."""
    recorded = _link(champion).get("evaluated_twin")
    if recorded:
        twin = get_model_version(store, recorded)
        if _out_of_time(twin, cohort):
            return twin, f"its evaluated twin {twin.version}, recorded when it was promoted"
    if _out_of_time(champion, cohort):
        return champion, "the champion itself (out of time on the cohort)"
    until = learned_until(champion)
    if until is None:
        return None, (f"the champion {champion.version} was registered without the cutoffs it "
                      "learned from, so no cohort can be shown to be out of time for it or a "
                      "refit of it")
    # Lag the champion's twin behind the champion as the challenger's twin lags its refit.
    twin_until = until - (refit_until(store, definition=definition, as_of=as_of) - cohort)
    if twin_until > cohort:
        return None, (f"the champion {champion.version} learned from labels up to "
                      f"{cutoff_text(until)}, after the data of this replay ends: even its "
                      f"recipe refitted as of {cutoff_text(twin_until)} would learn past the "
                      f"cohort at {cutoff_text(cohort)}")
    for version in reversed(list_models(store)):
        link = _link(version)
        if (link.get("role") == "twin" and link.get("twin_of") == champion.version
                and learned_until(version) == twin_until):
            return version, f"the champion's recipe refitted as of {cutoff_text(twin_until)}"
    try:
        training_cutoffs(store, definition=definition, as_of=twin_until)
    except BacktestError as exc:
        return None, (f"the champion {champion.version} learned from labels up to "
                      f"{cutoff_text(until)}, after the cohort at {cutoff_text(cohort)}, and "
                      f"its recipe cannot be refitted as of {cutoff_text(twin_until)} to "
                      f"judge it out of time: {exc}")
    return twin_until, f"the champion's recipe refitted as of {cutoff_text(twin_until)}"


def champion_twin(store: Store, champion: ModelVersion, *, cohort: dt.datetime,
                  definition: ChurnDefinition, as_of: object = None,
                  progress: Callable[[str], None] | None = None) -> ModelVersion:
    """The version that stands for ``champion`` on the out-of-time ``cohort`` (module
    docstring: its recorded twin, itself, or its recipe refitted one lag earlier, trained and
    registered here when it is not yet). :class:`GateError` when there is none."""
    plan, why = _twin_plan(store, champion, cohort, definition=definition, as_of=as_of)
    if plan is None:
        raise GateError(why)
    if isinstance(plan, ModelVersion):
        return plan
    say = progress or (lambda message: None)
    say(f"refitting the champion's recipe as of {cutoff_text(plan)}: its evaluated twin")
    trained = train_model(store, definition=definition, model=_recipe_of(store, champion.version),
                          as_of=plan, promote=False, progress=say,
                          links={"role": "twin", "twin_of": champion.version,
                                 "cohort": cutoff_text(cohort)})
    return get_model_version(store, trained.version)


def _waiting_refit(store: Store, twin: str, until: dt.datetime) -> ModelVersion | None:
    """A refit of ``twin`` up to ``until`` that no decision names (the process died between
    registering it and recording the decision): deployed instead of trained again."""
    named = _referenced(store)
    for version in reversed(list_models(store)):
        link = _link(version)
        if (link.get("role") == "refit" and link.get("evaluated_twin") == twin
                and version.version not in named and learned_until(version) == until):
            return version
    return None


def _deploy_refit(store: Store, decision: GateDecision, *, twin: ModelVersion,
                  definition: ChurnDefinition, as_of: object,
                  say: Callable[[str], None]) -> GateDecision:
    """The promoted recipe refitted on every label available at the decision, registered with
    a link to its evaluated twin (``config["gate"]``): the decision deploys it instead."""
    until = refit_until(store, definition=definition, as_of=as_of)
    refit = _waiting_refit(store, twin.version, until)
    if refit is None:
        say(f"refitting {twin.name} on the labels up to {cutoff_text(until)}: the model to "
            "deploy")
        trained = train_model(store, definition=definition, model=_recipe_of(store, twin.version),
                              as_of=as_of, promote=False, progress=say,
                              links={"role": "refit", "evaluated_twin": twin.version,
                                     "cohort": _day(decision.cohort_cutoff)})
        refit = get_model_version(store, trained.version)
    fault(FAULT_REFIT_REGISTERED)
    return dataclasses.replace(
        decision, challenger_version=refit.version, champion_after=refit.version,
        reason=(f"{decision.reason}; deployed as {refit.version}, the same recipe refitted on "
                f"the labels up to {cutoff_text(until)}"),
        evidence={**decision.evidence, "refit": {"version": refit.version,
                                                 "evaluated_twin": twin.version,
                                                 "learned_until": cutoff_text(until)},
                  "windows": {**decision.evidence.get("windows", {}), **_windows(refit)}})


# -- decide: judge a registered challenger --------------------------------------------------------
def decide(store: Store, *, challenger: str, definition: ChurnDefinition, as_of: object = None,
           config: GateConfig, progress: Callable[[str], None] | None = None,
           refit: bool = True) -> GateDecision:
    """Judge the registered version ``challenger`` as the challenger's evaluated twin against
    the champion's (:func:`champion_twin`) on the newest matured cohort, record the decision
    and, when it passes, deploy the same recipe refitted on all the labels (module docstring;
    ``refit=False`` deploys ``challenger`` itself). ``definition``: churnguard.toml's; the
    champion's own definition wins.

    A challenger that learned from labels past that cohort, or that predicts another churn
    definition than the champion's, is a :class:`GateError`."""
    say = progress or (lambda message: None)
    definition = _gate_definition(store, definition)
    cohort_at = evaluation_cutoff(store, definition=definition, as_of=as_of)
    candidate = get_model_version(store, challenger)
    own = trained_definition(candidate)
    if own is not None and own != definition:
        raise GateError(f"{challenger} was trained for another churn definition ({own}) than "
                        f"the champion's ({definition}); the gate compares like with like")
    if not _out_of_time(candidate, cohort_at):
        raise GateError(
            f"{challenger} learned from labels up to {_day(learned_until(candidate))}, after the "
            f"evaluation cohort {cutoff_text(cohort_at)}: it cannot be judged out of time there. "
            f"Train it as of {cutoff_text(cohort_at)} (churnguard train --as-of "
            f"{cutoff_text(cohort_at)} --no-promote)")
    holder = alias_version(store, CHAMPION)
    champion = None if holder is None else get_model_version(store, holder)
    evaluated = None
    if champion is not None:
        plan, why = _twin_plan(store, champion, cohort_at, definition=definition, as_of=as_of)
        if plan is None:
            return record_decision(store, _stale_champion(champion, candidate.version,
                                                          cohort_at, why, config))
        evaluated = champion_twin(store, champion, cohort=cohort_at, definition=definition,
                                  as_of=as_of, progress=say)
    say(f"building the cohort at {cutoff_text(cohort_at)}")
    cohort = _cohort(store, definition, cohort_at)
    too_few = _too_few(cohort, config)
    if too_few:
        return record_decision(store, _no_evidence(
            champion=holder, challenger=candidate.version, trigger="challenge", config=config,
            reason=too_few, cohort=cohort_at))
    if champion is None or evaluated is None:
        decision = _first_champion(store, challenger=candidate, definition=definition,
                                   cohort=cohort, config=config, say=say)
    else:
        decision = _judge_against_champion(store, champion=champion, evaluated=evaluated,
                                           challenger=candidate, cohort=cohort, config=config,
                                           say=say)
    if decision.promoted and refit:
        decision = _deploy_refit(store, decision, twin=candidate, definition=definition,
                                 as_of=as_of, say=say)
    return record_decision(store, decision)


def _stale_champion(champion: ModelVersion, challenger: str | None, cohort: dt.datetime,
                    why: str, config: GateConfig) -> GateDecision:
    return _no_evidence(champion=champion.version, challenger=challenger, trigger="challenge",
                        config=config, reason=f"kept, no evidence: {why}", cohort=cohort,
                        evidence={"windows": _windows(champion)})


# -- challenge: train, register, shadow-score, decide ---------------------------------------------
def _recipe(store: Store, config: GateConfig) -> tuple[str, ChurnModel]:
    """The champion's kind and an unfitted copy of it with the same settings; without a
    champion, ``config.model`` with its defaults."""
    holder = alias_version(store, CHAMPION)
    if holder is None:
        if config.model not in KINDS:
            raise GateError(f"[gate] model = {config.model!r} is no model kind; known: "
                            f"{', '.join(KINDS)}")
        return config.model, KINDS[config.model].build()
    recipe = _recipe_of(store, holder)
    return recipe.name, recipe


def _decided_already(store: Store, cohort: dt.datetime) -> GateDecision | None:
    """The challenge decision already taken on ``cohort``: the gate judges each cohort once, so
    a rerun after a crash or a second cycle the same week returns it instead of training again,
    and a champion rolled back by hand is not promoted again on the same evidence."""
    for decision in reversed(list_decisions(store, trigger="challenge")):
        if decision.cohort_cutoff == cohort:
            return decision
    return None


def _waiting_challenger(store: Store, name: str, definition: ChurnDefinition,
                        cohort: dt.datetime) -> str | None:
    """A challenger's twin trained for this cohort and recipe that no decision has judged yet
    (the process died after registering it): judged instead of trained again."""
    version = alias_version(store, CHALLENGER)
    if version is None or version in _referenced(store):
        return None
    candidate = get_model_version(store, version)
    same = (candidate.name == name and trained_definition(candidate) == definition
            and learned_until(candidate) == cohort)
    return version if same else None


def challenge(store: Store, *, definition: ChurnDefinition, as_of: object = None,
              config: GateConfig, progress: Callable[[str], None] | None = None) -> GateDecision:
    """Train the champion's recipe as of the newest matured cohort (the challenger's evaluated
    twin; alias ``challenger``), shadow-score it against the champion's evaluated twin on that
    cohort, decide, and when promoted deploy the recipe refitted on all the labels; record the
    decision (module docstring).

    ``definition``: churnguard.toml's churn definition (the champion's own wins); ``as_of``:
    judge as if the data ended there (a replay). When the champion's recipe has nothing newer
    to learn from, or no evaluated twin can exist for it, nothing is trained: the decision is
    ``no-evidence``. Each cohort is judged once: running it again on the same cohort returns
    the decision already taken (whatever happened to the champion since: a rollback is not
    undone on the same evidence)."""
    say = progress or (lambda message: None)
    definition = _gate_definition(store, definition)
    cohort = evaluation_cutoff(store, definition=definition, as_of=as_of)
    earlier = _decided_already(store, cohort)
    if earlier is not None:
        say(f"already decided on the cohort at {cutoff_text(cohort)}: {earlier.outcome}")
        return earlier
    holder = alias_version(store, CHAMPION)
    if holder is not None:
        champion = get_model_version(store, holder)
        why = _nothing_new(store, champion, definition=definition, as_of=as_of)
        plan = None
        if why is None:
            plan, why = _twin_plan(store, champion, cohort, definition=definition, as_of=as_of)
        if plan is None:
            return record_decision(store, _stale_champion(champion, None, cohort, why, config))
    name, recipe = _recipe(store, config)
    version = _waiting_challenger(store, name, definition, cohort)
    if version is None:
        say(f"training a {name} challenger as of {cutoff_text(cohort)} (its evaluated twin)")
        trained = train_model(store, definition=definition, model=recipe, as_of=cohort,
                              promote=False, progress=say)
        version = trained.version
        set_alias(store, CHALLENGER, version,
                  reason=f"challenger judged on the cohort at {cutoff_text(cohort)}")
    return decide(store, challenger=version, definition=definition, as_of=as_of, config=config,
                  progress=say)


# -- realized metrics: roll a promoted champion back -----------------------------------------------
def _promotion_of(store: Store, version: str) -> GateDecision | None:
    """The gate decision that made ``version`` champion, when the gate did (and it replaced
    a champion)."""
    for decision in reversed(list_decisions(store)):
        if decision.champion_after == version and decision.moves_champion:
            return decision if decision.outcome == "promoted" else None
    return None


def check_realized(store: Store, *, definition: ChurnDefinition, config: GateConfig,
                   as_of: object = None, progress: Callable[[str], None] | None = None
                   ) -> GateDecision | None:
    """Judge a champion the gate promoted on the newest matured cohort after the one it was
    promoted on that is out of time for it and for the champion it replaced -- the deployed
    models, not their evaluated twins: a refit learned from the labels up to the decision's
    data end ``t``, so it is first judged on the cohort at ``t``, once the data reaches
    ``t + horizon``. When the previous
    champion's ROC-AUC there exceeds the promoted one's by more than ``tolerance`` -- the
    one-sided ``confidence`` lower bound of AUC(previous) − AUC(promoted), the same paired
    bootstrap, above ``tolerance`` -- roll back to it; otherwise keep it. Both are recorded,
    with ``challenger`` = the previous champion.

    None, recording nothing, when there is nothing to judge: no champion, a champion the gate
    did not promote over another (the first, or one set by hand or by a rollback), no matured
    cohort after its promotion cohort and out of time for both yet, the two trained for
    different churn definitions, a cohort with fewer than ``min_class_size`` of a class, or
    this cohort already judged for this champion."""
    say = progress or (lambda message: None)
    holder = alias_version(store, CHAMPION)
    promotion = None if holder is None else _promotion_of(store, holder)
    if promotion is None or promotion.champion_version is None:
        return None
    current = get_model_version(store, holder)
    previous = get_model_version(store, promotion.champion_version)
    used = trained_definition(current) or definition
    if (trained_definition(previous) or definition) != used:
        return None
    cohort_at = evaluation_cutoff(store, definition=used, as_of=as_of)
    after_promotion = promotion.cohort_cutoff is not None and cohort_at > promotion.cohort_cutoff
    # Fresh for both deployed models: a cohort after the promotion's that neither learned from
    # (for a promoted refit, at or after the data end of its decision; learned_until).
    if not (after_promotion and _out_of_time(current, cohort_at)
            and _out_of_time(previous, cohort_at)):
        return None
    if any(d.trigger == "realized" and d.champion_version == holder
           and d.cohort_cutoff == cohort_at for d in list_decisions(store)):
        return None
    say(f"building the cohort at {cutoff_text(cohort_at)}")
    cohort = _cohort(store, used, cohort_at)
    if _too_few(cohort, config):
        return None
    paired, ece_current, ece_previous = _compare(store, champion=current, challenger=previous,
                                                 cohort=cohort, config=config, say=say)
    worse = paired.lower > config.tolerance
    level = f"{config.confidence:.0%}"
    where = f"on {paired.n:,} customers at {cutoff_text(cohort_at)}"
    reason = (f"{'rolled back' if worse else 'kept'} {where}: the previous champion "
              f"{previous.version} scores ROC-AUC {paired.auc_b:.4f} against {paired.auc_a:.4f}; "
              f"the {level} lower bound of its advantage is {paired.lower:+.4f}, "
              f"{'above' if worse else 'not above'} the tolerance {config.tolerance}")
    decision = GateDecision(
        decision_id=new_decision_id(), decided_at=_now(), trigger="realized",
        outcome="rolled-back" if worse else "kept", champion_version=holder,
        challenger_version=previous.version,
        champion_after=previous.version if worse else holder, reason=reason,
        cohort_cutoff=cohort_at, **_figures(paired, ece_current, ece_previous),
        **_thresholds(config),
        evidence={"promoted_by": promotion.decision_id, "resamples_used": paired.used,
                  "windows": _windows(current, previous)})
    return record_decision(store, decision)
