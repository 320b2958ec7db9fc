"""Realized metrics of a matured scoring run: treated customers left out, figures as sklearn's."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churnguard.config import ChurnDefinition
from churnguard.monitor import matured_cohorts
from churnguard.project import Project
from churnguard.snapshots import build_snapshot

from monitor.conftest import SCORED_AT

WINDOW = 90


def _independent_rows(store, definition: ChurnDefinition):  # noqa: ANN001, ANN202
    """The rows the cohort must be judged on, worked out here without the monitor module: the
    run's scores, the labels of a snapshot at the cutoff, minus customers assigned a treatment
    (not control, not 'none') between cutoff - 90 days and cutoff + horizon."""
    scores = store.con.execute(
        "SELECT user_id, p_churn FROM scores WHERE as_of = ?", [SCORED_AT]).df()
    campaigns = store.con.execute("SELECT * FROM campaigns").df()
    start = SCORED_AT - dt.timedelta(days=WINDOW)
    end = SCORED_AT + dt.timedelta(days=definition.horizon_days)
    inside = campaigns[(campaigns["assigned_at"] >= start) & (campaigns["assigned_at"] < end)]
    treated = set(inside.loc[~inside["is_control"] & (inside["action"] != "none"), "user_id"])
    control = set(inside.loc[inside["is_control"], "user_id"]) - treated
    snapshot = build_snapshot(store, definition=definition, cutoffs=[SCORED_AT])
    labels = dict(zip(snapshot.index.get_level_values(0), snapshot.labels))
    scores["churned"] = scores["user_id"].map(labels)
    kept = scores[~scores["user_id"].isin(treated) & scores["churned"].notna()]
    return scores, treated, control, kept


def test_a_matured_run_is_judged_without_treated_customers(monitor_project: Path) -> None:
    project = Project.load(monitor_project)
    definition = project.config.churn
    with project.open_store(read_only=True) as store:
        cohorts = matured_cohorts(store, definition=definition, treatment_window_days=WINDOW)
        scores, treated, control, kept = _independent_rows(store, definition)
    cohort = next(c for c in cohorts if c.as_of == SCORED_AT)
    scored_treated = treated & set(scores["user_id"])
    assert len(scored_treated) >= 20  # the simulated campaigns treated some of the scored
    assert cohort.scored == len(scores)
    assert cohort.treated_excluded == len(scored_treated)
    assert cohort.n == len(kept) == len(scores) - len(scored_treated)
    assert cohort.control == len(control & set(kept["user_id"])) > 0

    y = kept["churned"].to_numpy(float)
    p = kept["p_churn"].to_numpy(float)
    assert cohort.auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert cohort.churn_rate == pytest.approx(y.mean())
    assert cohort.mean_p == pytest.approx(p.mean())
    order = np.argsort(-p, kind="stable")
    top = order[: int(np.ceil(0.1 * len(p)))]
    assert cohort.lift_at_10 == pytest.approx(y[top].mean() / y.mean())
    bins = np.array_split(np.argsort(p, kind="stable"), 10)
    ece = sum(len(b) * abs(y[b].mean() - p[b].mean()) for b in bins) / len(p)
    assert cohort.ece == pytest.approx(ece)
    assert [b["n"] for b in cohort.reliability] == [len(b) for b in bins]
    assert cohort.matured_at == SCORED_AT + dt.timedelta(days=definition.horizon_days)


def test_a_run_whose_horizon_has_not_passed_is_not_judged(project_copy: Project) -> None:
    """Scores saved at a cutoff less than one horizon before the newest event are not a cohort
    yet (their labels would count the unobserved tail as churn)."""
    with project_copy.open_store() as store:
        (last,) = store.con.execute("SELECT max(ts) FROM events").fetchone()
        recent = dt.datetime.combine(last.date(), dt.time()) - dt.timedelta(days=30)
        store.con.execute(
            "INSERT INTO scores SELECT user_id, ?, model_version, p_churn, risk_tier, reason_1, "
            "reason_2, reason_3, lang, scored_at FROM scores WHERE as_of = ?", [recent, SCORED_AT])
        cohorts = matured_cohorts(store, definition=project_copy.config.churn,
                                  treatment_window_days=WINDOW)
    assert [c.as_of for c in cohorts] == [SCORED_AT]
