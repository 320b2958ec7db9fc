"""Keeping backtests in the store and gathering what the HTML report shows.

The report is drawn from what was measured and scored — the latest stored backtest and the
latest scores of the champion — never recomputed while rendering.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pandas as pd

from churnguard.config import ChurnDefinition
from churnguard.evaluate import ORACLE, BacktestResult
from churnguard.features import FEATURES, feature_groups_available
from churnguard.labels import churn_preview
from churnguard.registry import CHAMPION, alias_version, get_model_version, load_model
from churnguard.report import ReportData
from churnguard.store import Store

# A user attribute becomes a report segment when it has at most this many distinct values.
MAX_SEGMENT_VALUES = 12


class ReportError(ValueError):
    """Something the report needs has not been computed yet (with the command that computes it)."""


def save_backtest(store: Store, result: BacktestResult) -> str:
    """Keep a backtest's document and its test predictions; returns the run id."""
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    frame = result.predictions.reset_index()
    models = [c for c in frame.columns if c not in ("user_id", "cutoff", "churned")]
    long = frame.melt(id_vars=["user_id", "churned"], value_vars=models, var_name="model",
                      value_name="p_churn")
    long = long.assign(run_id=run_id, y_true=long["churned"].astype(bool),
                       user_id=long["user_id"].astype(str))
    store.con.register("__cg_backtest", long[["run_id", "model", "user_id", "y_true", "p_churn"]])
    try:
        with store.transaction() as con:
            con.execute("INSERT INTO backtests VALUES (?, ?, ?)",
                        [run_id, dt.datetime.now(dt.UTC).replace(tzinfo=None),
                         json.dumps(result.to_dict())])
            con.execute("INSERT INTO backtest_predictions SELECT * FROM __cg_backtest")
    finally:
        store.con.unregister("__cg_backtest")
    return run_id


def latest_backtest(store: Store) -> tuple[str, dict[str, Any], pd.DataFrame]:
    rows = store.con.execute(
        "SELECT run_id, result FROM backtests ORDER BY created_at DESC LIMIT 1").fetchall()
    if not rows:
        raise ReportError("no backtest has been run yet; run `churnguard backtest` first")
    run_id, document = rows[0]
    predictions = store.con.execute(
        "SELECT model, user_id, y_true, p_churn FROM backtest_predictions WHERE run_id = ?",
        [run_id]).df()
    return run_id, json.loads(document), predictions


def _segments(store: Store, labels: pd.DataFrame) -> pd.DataFrame:
    """Test-cutoff customers with their label, few-valued attributes and signup cohort."""
    attributes = store.con.execute(
        f"""
        WITH few AS (
            SELECT name FROM user_attributes GROUP BY name
            HAVING count(DISTINCT value) <= {MAX_SEGMENT_VALUES}
        )
        SELECT a.user_id, a.name, a.value FROM user_attributes a JOIN few USING (name)
        """).df()
    frame = labels.set_index("user_id")
    if not attributes.empty:
        wide = attributes.pivot(index="user_id", columns="name", values="value")
        frame = frame.join(wide, how="left")
    signup = store.con.execute(
        "SELECT user_id, strftime(signup_ts, '%Y-%m') AS signup_cohort FROM users "
        "WHERE signup_ts IS NOT NULL").df()
    if not signup.empty:
        frame = frame.join(signup.set_index("user_id"), how="left")
    return frame.reset_index(drop=True)


def build_report_data(store: Store, *, title: str, definition: ChurnDefinition) -> ReportData:
    """Everything the report shows, from the latest backtest and the champion's latest scores."""
    _, document, predictions = latest_backtest(store)
    version = alias_version(store, CHAMPION)
    if version is None:
        raise ReportError("no champion model yet; run `churnguard train` first")
    scores = store.con.execute(
        "SELECT user_id, p_churn, risk_tier, reason_1, reason_2, reason_3, model_version "
        "FROM scores WHERE model_version = ? AND as_of = (SELECT max(as_of) FROM scores "
        "WHERE model_version = ?) ORDER BY p_churn DESC", [version, version]).df()
    if scores.empty:
        raise ReportError(f"the champion {version} has not scored anyone yet; run "
                          "`churnguard score` first")
    chosen = get_model_version(store, version).name
    test_predictions = {
        model: (group["y_true"].to_numpy(dtype=float), group["p_churn"].to_numpy(dtype=float))
        for model, group in predictions.groupby("model", sort=False)
    }
    any_model = next((m for m in test_predictions if m != ORACLE), None)
    labels = (predictions[predictions["model"] == any_model][["user_id", "y_true"]]
              .rename(columns={"y_true": "churned"}) if any_model else
              pd.DataFrame(columns=["user_id", "churned"]))
    model = load_model(store, version)
    importance = (model.feature_importance() if hasattr(model, "feature_importance")
                  else pd.Series(dtype=float))
    skipped = {g.group: g.reason for g in feature_groups_available(store) if not g.available}
    preview = [
        {"cutoff": row.cutoff, "population": row.population, "churned": row.churned,
         "churn_rate": row.churn_rate, "observable": row.observable}
        for row in churn_preview(store, definition=definition)
    ]
    return ReportData(
        title=title,
        generated_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        definition=definition.model_dump(mode="json"),
        backtest=document,
        test_predictions=test_predictions,
        chosen_model=chosen,
        scores=scores,
        feature_importance=importance,
        feature_descriptions={name: spec.description for name, spec in FEATURES.items()},
        segments=_segments(store, labels),
        preview=preview,
        skipped_groups=skipped,
        notes=[f"Scores by model version {version}."],
    )


__all__ = ["ReportError", "build_report_data", "latest_backtest", "save_backtest"]
