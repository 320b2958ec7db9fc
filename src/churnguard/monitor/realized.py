"""Realized ROC-AUC, calibration and lift of stored score runs whose outcomes are now known.

A cohort is one stored scoring run (``scores``: a model version at a cutoff T). It **matures**
at T + horizon (the horizon the version was trained for): from then on the data holds every
customer's label (:func:`churnguard.cutoffs.labels_known`), and the run's probabilities can be
compared with what happened.

Only customers whose outcome the model predicted are compared: a customer a campaign treated
(assigned an action other than ``none``, not in the control group) between
``T - treatment_window_days`` and ``T + horizon`` had their outcome changed by the treatment, so
they are left out; customers no campaign touched and the campaigns' control groups stay (intent
to treat: a planned customer is left out whether or not the message reached them).

Per cohort: ROC-AUC, ECE over 10 equal-frequency bins and those bins (reliability), the
top-decile lift, the churn rate against the mean probability, and how many were left out.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnguard.config import NO_ACTION, ChurnDefinition
from churnguard.cutoffs import label_window_end, labels_known
from churnguard.evaluate import ece, lift_at, roc_auc
from churnguard.labels import population_and_labels
from churnguard.registry import RegistryError, get_model_version, trained_definition
from churnguard.store import Store

__all__ = ["MAX_COHORTS", "Cohort", "cohort_rows", "matured_cohorts", "reliability",
           "scores_mark"]

#: The newest matured cohorts reported (older ones are history the dashboard need not redo).
MAX_COHORTS = 12
N_BINS = 10


@dataclass(frozen=True, kw_only=True)
class Cohort:
    """The realized figures of one matured scoring run."""

    as_of: dt.datetime
    model_version: str
    horizon_days: int
    matured_at: dt.datetime
    scored: int          # customers the run scored
    treated_excluded: int  # of those, left out as treated
    control: int         # of those evaluated, in a campaign's control group
    n: int               # customers evaluated (scored, labelled, not treated)
    churn_rate: float | None
    mean_p: float | None
    auc: float | None
    ece: float | None
    lift_at_10: float | None
    reliability: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items()}
        out["as_of"] = self.as_of.isoformat()
        out["matured_at"] = self.matured_at.isoformat()
        return out


def reliability(y: np.ndarray, p: np.ndarray, *, n_bins: int = N_BINS) -> list[dict]:
    """The reliability bins behind :func:`churnguard.evaluate.ece`: rows sorted by probability,
    cut into ``n_bins`` (nearly) equal parts; per part its size, mean probability and churn rate.

    >>> reliability(np.array([0, 0, 1, 1]), np.array([0.1, 0.3, 0.6, 0.8]), n_bins=2)
    [{'n': 2, 'mean_p': 0.2, 'churn_rate': 0.0}, {'n': 2, 'mean_p': 0.7, 'churn_rate': 1.0}]
    """
    order = np.argsort(p, kind="stable")
    return [{"n": int(part.size), "mean_p": round(float(p[part].mean()), 6),
             "churn_rate": round(float(y[part].mean()), 6)}
            for part in np.array_split(order, min(n_bins, p.size)) if part.size]


def scores_mark(store: Store) -> tuple[int, dt.datetime | None]:
    """How many scores the store holds and when the newest was written: it changes whenever a
    scoring run is saved or a customer erased, so realized figures can be kept while it holds."""
    n, newest = store.con.execute("SELECT count(*), max(scored_at) FROM scores").fetchall()[0]
    return int(n), newest


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _runs(store: Store) -> list[tuple[dt.datetime, str, int]]:
    """(cutoff, model version, customers scored) of every stored scoring run, newest first."""
    return [(a, v, int(n)) for a, v, n in store.con.execute(
        "SELECT as_of, model_version, count(*) FROM scores GROUP BY ALL "
        "ORDER BY as_of DESC, model_version").fetchall()]


def _horizon(store: Store, version: str, configured: ChurnDefinition) -> ChurnDefinition:
    try:
        return trained_definition(get_model_version(store, version)) or configured
    except RegistryError:  # scores of a version since deleted: the configured definition
        return configured


def cohort_rows(store: Store, *, as_of: dt.datetime, version: str,
                definition: ChurnDefinition, treatment_window_days: int) -> pd.DataFrame:
    """The rows one cohort is judged on, before exclusion: per customer the run scored,
    ``user_id``, ``p_churn``, ``churned`` (NaN when not observable), ``treated`` and
    ``control`` (assigned to a treatment, or to a control group, between
    ``as_of - treatment_window_days`` and ``as_of + horizon``)."""
    end = label_window_end(as_of, definition.horizon_days)
    start = as_of - dt.timedelta(days=treatment_window_days)
    scores = store.con.execute(
        """
        SELECT s.user_id, s.p_churn,
               coalesce(bool_or(NOT c.is_control AND c.action <> $none), false) AS treated,
               coalesce(bool_or(c.is_control), false) AS control
        FROM scores s
        LEFT JOIN campaigns c ON c.user_id = s.user_id
             AND c.assigned_at >= $start AND c.assigned_at < $end
        WHERE s.model_version = $version AND s.as_of = $as_of
        GROUP BY s.user_id, s.p_churn ORDER BY s.user_id
        """, {"none": NO_ACTION, "start": start, "end": end, "version": version,
              "as_of": as_of}).df()
    labels = population_and_labels(store, definition=definition, cutoffs=[as_of])
    churned = labels.set_index("user_id")["churned"].astype("Float64")
    scores["user_id"] = scores["user_id"].astype(str)
    scores["churned"] = scores["user_id"].map(churned).astype(float)
    scores["control"] = scores["control"] & ~scores["treated"]
    return scores


def _cohort(store: Store, *, as_of: dt.datetime, version: str, scored: int,
            definition: ChurnDefinition, treatment_window_days: int) -> Cohort:
    rows = cohort_rows(store, as_of=as_of, version=version, definition=definition,
                       treatment_window_days=treatment_window_days)
    kept = rows[~rows["treated"] & rows["churned"].notna()]
    y = kept["churned"].to_numpy(dtype=float)
    p = kept["p_churn"].to_numpy(dtype=float)
    has = len(kept) > 0
    both = has and 0 < y.sum() < len(y)
    return Cohort(
        as_of=as_of, model_version=version, horizon_days=definition.horizon_days,
        matured_at=label_window_end(as_of, definition.horizon_days), scored=scored,
        treated_excluded=int(rows["treated"].sum()), control=int(kept["control"].sum()),
        n=len(kept), churn_rate=float(y.mean()) if has else None,
        mean_p=float(p.mean()) if has else None,
        auc=_finite(roc_auc(y, p)) if both else None,
        ece=float(ece(y, p)) if has else None,
        lift_at_10=_finite(lift_at(y, p, 0.1)) if both else None,
        reliability=reliability(y, p) if has else [])


def matured_cohorts(store: Store, *, definition: ChurnDefinition, treatment_window_days: int,
                    limit: int = MAX_COHORTS, now: dt.datetime | None = None) -> list[Cohort]:
    """The realized figures of the newest ``limit`` stored scoring runs that have matured by the
    newest event (or by ``now`` when that is earlier: outcomes after it are not read), newest
    first. ``definition``: for versions registered without their own."""
    (last,) = store.con.execute("SELECT max(ts) FROM events").fetchone()
    if last is None:
        return []
    if now is not None:
        last = min(last, now)
    out = []
    for as_of, version, scored in _runs(store):
        run_definition = _horizon(store, version, definition)
        if not labels_known(as_of, run_definition.horizon_days, last):
            continue
        out.append(_cohort(store, as_of=as_of, version=version, scored=scored,
                           definition=run_definition,
                           treatment_window_days=treatment_window_days))
        if len(out) >= limit:
            break
    return out
