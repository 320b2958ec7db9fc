"""The label alarm: has the champion's realized performance moved away from what it claimed?

Feature drift cannot see a change in how behaviour maps to churn (concept drift): the same
customers, with the same behaviour, start leaving more (or less) often. Only outcomes show it,
and outcomes come one horizon late: a scoring run at ``T`` **matures** at ``T + horizon``
(:mod:`.realized`). Each monitoring pass at ``now`` takes the **newest stored scoring run that
has matured by now** and is out of time for the version that scored it (every label window that
version learned from ends by ``T``), keeps the customers no campaign treated and the control
groups (:func:`.realized.cohort_rows`: a treated customer's outcome was changed by the
treatment), and tests two null hypotheses about the model that scored it:

1. **Calibration in the large.** H0: the cohort's true churn rate is within ``rate_tolerance`` of
   the model's mean probability, ``|E[rate] - mean p| <= tau``. With the probabilities ``p_i``
   fixed, the number of churners is a sum of independent Bernoulli outcomes whose variance is
   at most ``sum p_i (1 - p_i)`` near the null's boundary, so ``z = (|rate - mean p| - tau) /
   se`` with ``se = sqrt(sum p_i (1 - p_i)) / n`` and the one-sided normal p-value ``1 - Phi(z)``
   (the boundary of a composite null: inside it the chance of an alarm is smaller). ``tau``
   defaults to 0.03, the gate's ``max_ece``: calibration in the large never exceeds the ECE
   (Jensen), so 0.03 is the miscalibration the gate accepts of a model it promotes.
2. **Discrimination.** H0: the realized ROC-AUC is at least the AUC the model's own probabilities
   promise on these customers minus ``auc_tolerance``. The promise is the confidence-based
   expected AUC (:func:`.estimate.expected_auc`: exact when the probabilities are calibrated), and
   its range by chance alone is the AUC of labels drawn from the probabilities (``draws``
   parametric bootstrap draws, the scores fixed): the p-value is the share of draws whose AUC,
   less ``auc_tolerance``, is at most the realized one. ``auc_tolerance`` defaults to 0.02, the
   margin issue 18 calls a material loss (a model that should be retrained), above the few
   thousandths of expected-AUC bias that a miscalibration within ``max_ece`` can make.

The alarm is the union of the two, each tested at ``alpha / 2`` (Bonferroni): when the truth is
inside both nulls, a pass raises the alarm with probability at most ``alpha`` (0.01: one cycle
in a hundred on a stable shop), whatever the cohort's size. It raises the alarm only when it
**applies** to the champion now serving: when the champion learned from none of the outcomes
that moved (every label window it learned from ends before the cohort's window does). That holds
for the model that scored the cohort, and for a successor trained before the cohort matured (a
refit of the same stale mapping, as a weekly cycle that retrains every few weeks deploys long
before a 90-day cohort matures); a champion trained after has already seen these outcomes, and
the cohort is only reported.

**What it never reads.** Only outcomes inside label windows that end by ``now`` (the cohort
matured by ``now``, capped at the newest event), campaigns assigned before the window's end, and
the scores stored at ``T``. Partially matured cohorts are not used: the model predicts whether a
customer orders within the horizon, not when, so the outcomes seen part-way (customers who
already ordered are known stayers) bound its claim from one side only and cannot show a rise in
churn, the change that matters most.

The power it has is the cohort's: at ``n`` customers and a churn rate near 0.5 the rate's standard
error is about ``0.5 / sqrt(n)`` (0.0125 at 1,600, 0.005 at 10,000), so a shift is found reliably
once it exceeds ``tau`` by about ``2.6`` standard errors.

>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(0.05, 0.95, 4000)
>>> quiet = label_test(rng.random(4000) < p, p)
>>> quiet.alarm, round(quiet.calibration_gap, 3)
(False, 0.01)
>>> moved = label_test(rng.random(4000) < np.clip(p + 0.1, 0, 1), p)
>>> moved.alarm, moved.calibration_alarm
(True, True)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from churnguard.config import ChurnDefinition, MonitorConfig
from churnguard.cutoffs import label_window_end, labels_known, to_cutoff
from churnguard.evaluate import roc_auc
from churnguard.monitor.estimate import _simulated_aucs, expected_auc
from churnguard.monitor.realized import _horizon, _runs, cohort_rows
from churnguard.registry import RegistryError, get_model_version, trained_definition
from churnguard.store import Store

__all__ = ["DRAWS", "LabelCheck", "label_check", "label_test"]

#: Parametric bootstrap draws of the AUC's null (labels drawn from the probabilities).
DRAWS = 1000


@dataclass(frozen=True, kw_only=True)
class LabelCheck:
    """One label check: the cohort (a stored scoring run at ``cohort``, matured at
    ``matured_at``), its figures and the two tests (module docstring). ``alarm``: either test
    rejects and ``applies`` (the champion learned from none of the cohort's outcomes)."""

    cohort: dt.datetime | None = None
    model_version: str | None = None
    matured_at: dt.datetime | None = None
    applies: bool = True
    n: int
    churn_rate: float
    mean_p: float
    calibration_gap: float  # churn rate - mean p
    calibration_se: float
    calibration_p: float
    calibration_alarm: bool
    auc: float | None
    expected_auc: float | None
    auc_gap: float | None  # realized - expected
    auc_p: float | None
    auc_alarm: bool
    alpha: float
    rate_tolerance: float
    auc_tolerance: float
    alarm: bool

    @property
    def reason(self) -> str:
        """One sentence: what was tested and what it found."""
        where = (f"the scoring run of {self.model_version} at {self.cohort:%Y-%m-%d} "
                 f"(matured {self.matured_at:%Y-%m-%d}), " if self.cohort else "")
        found = [f"churn rate {self.churn_rate:.3f} against a mean probability of "
                 f"{self.mean_p:.3f} (p {self.calibration_p:.2g} for a gap beyond "
                 f"{self.rate_tolerance:g})"]
        if self.auc is not None and self.expected_auc is not None:
            found.append(f"ROC-AUC {self.auc:.4f} against {self.expected_auc:.4f} expected from "
                         f"its probabilities (p {self.auc_p:.2g} for a loss beyond "
                         f"{self.auc_tolerance:g})")
        verdict = ("label alarm" if self.alarm else
                   "would alarm, but the champion has since learned from these outcomes"
                   if (self.calibration_alarm or self.auc_alarm) else "no label alarm")
        return f"{verdict}: {where}{self.n:,} customers; " + "; ".join(found)

    def to_dict(self) -> dict:
        out = {k: (v.isoformat() if isinstance(v, dt.datetime) else v)
               for k, v in self.__dict__.items()}
        out["reason"] = self.reason
        return out


def label_test(y: np.ndarray, p: np.ndarray, *, alpha: float = 0.01,
               rate_tolerance: float = 0.03, auc_tolerance: float = 0.02,
               draws: int = DRAWS, seed: int = 0) -> LabelCheck:
    """The two tests of the module docstring on outcomes ``y`` (0/1) and probabilities ``p``."""
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    if y.shape != p.shape or y.size == 0:
        raise ValueError("label_test needs as many outcomes as probabilities, at least one")
    n = y.size
    rate, mean_p = float(y.mean()), float(p.mean())
    gap = rate - mean_p
    se = float(np.sqrt(np.sum(p * (1.0 - p)))) / n
    calibration_p = float(norm.sf((abs(gap) - rate_tolerance) / se)) if se > 0 else \
        float(abs(gap) <= rate_tolerance)
    calibration_alarm = calibration_p <= alpha / 2
    both = 0 < y.sum() < n
    auc = float(roc_auc(y, p)) if both else None
    promised = expected_auc(p)
    auc_p = None
    if auc is not None and promised is not None:
        null = _simulated_aucs(p, draws=draws, rng=np.random.default_rng(seed))
        # (1 + draws at least as extreme) / (1 + draws): never zero from a finite bootstrap.
        auc_p = float((1 + np.sum(null - auc_tolerance <= auc)) / (1 + null.size))
    auc_alarm = auc_p is not None and auc_p <= alpha / 2
    return LabelCheck(
        n=n, churn_rate=rate, mean_p=mean_p, calibration_gap=gap, calibration_se=se,
        calibration_p=calibration_p, calibration_alarm=bool(calibration_alarm), auc=auc,
        expected_auc=promised, auc_gap=None if auc is None or promised is None
        else auc - promised, auc_p=auc_p, auc_alarm=bool(auc_alarm), alpha=alpha,
        rate_tolerance=rate_tolerance, auc_tolerance=auc_tolerance,
        alarm=bool(calibration_alarm or auc_alarm))


def _learned_until(store: Store, version: str | None,
                   configured: ChurnDefinition) -> dt.datetime | None:
    """Where the newest label window ``version`` learned from ends; None when the registry does
    not say (or there is no such version)."""
    if version is None:
        return None
    try:
        found = get_model_version(store, version)
    except RegistryError:
        return None
    window = found.data_window if isinstance(found.data_window, dict) else {}
    cutoffs = [to_cutoff(c) for c in [*window.get("train_cutoffs", []),
                                      window.get("validation_cutoff")] if c]
    if not cutoffs:
        return None
    horizon = (trained_definition(found) or configured).horizon_days
    return label_window_end(max(cutoffs), horizon)


def _out_of_time(store: Store, version: str, cohort: dt.datetime,
                 configured: ChurnDefinition) -> bool:
    """Whether every label window ``version`` learned from ends by ``cohort`` (its scores there
    are a prediction, not a fit); False when the registry does not say."""
    until = _learned_until(store, version, configured)
    return until is not None and until <= cohort


def label_check(store: Store, *, now: dt.datetime, definition: ChurnDefinition,
                config: MonitorConfig, champion: str | None) -> LabelCheck | None:
    """The label check of the newest stored scoring run matured by ``now`` and out of time for
    its version (module docstring); None when there is none, or it holds fewer than
    ``config.label_min_customers`` evaluable customers or a single class."""
    (last,) = store.con.execute("SELECT max(ts) FROM events").fetchone()
    if last is None:
        return None
    clock = min(last, now)  # outcomes after `now` are never read
    for as_of, version, _ in _runs(store):
        used = _horizon(store, version, definition)
        if not labels_known(as_of, used.horizon_days, clock):
            continue
        if not _out_of_time(store, version, as_of, definition):
            continue
        rows = cohort_rows(store, as_of=as_of, version=version, definition=used,
                           treatment_window_days=config.treatment_window_days)
        kept = rows[~rows["treated"] & rows["churned"].notna()]
        y = kept["churned"].to_numpy(dtype=float)
        if len(kept) < config.label_min_customers or not 0 < y.sum() < len(y):
            return None
        found = label_test(y, kept["p_churn"].to_numpy(dtype=float), alpha=config.label_alpha,
                           rate_tolerance=config.label_rate_tolerance,
                           auc_tolerance=config.label_auc_tolerance, seed=config.seed)
        matured = label_window_end(as_of, used.horizon_days)
        # The champion learned from none of these outcomes (module docstring): it scored the
        # cohort, or its labels end before the cohort's window does.
        until = _learned_until(store, champion, definition)
        applies = version == champion or (until is not None and until < matured)
        return LabelCheck(**{**found.__dict__, "cohort": as_of, "model_version": version,
                             "matured_at": matured, "applies": applies,
                             "alarm": found.alarm and applies})
    return None
