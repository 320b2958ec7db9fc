"""Gathering what the HTML report shows (storing backtests is :mod:`churnguard.backtests`'s;
``save_backtest``, ``backtest_document`` and ``model_details`` are handed on from there).

The report is drawn from what was measured and scored — the latest stored backtest, the
latest scores of the champion, the latest intervention plan and the newest measurement of each
campaign — never recomputed while rendering.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pandas as pd

from churnguard import backtests
from churnguard.backtests import backtest_document, model_details, save_backtest
from churnguard.config import ChurnDefinition, ProjectConfig
from churnguard.customers import MAX_SEGMENT_VALUES
from churnguard.errors import ChurnguardError
from churnguard.evaluate import ORACLE
from churnguard.features import FEATURES, feature_groups_available
from churnguard.labels import churn_preview
from churnguard.registry import (
    CHAMPION,
    alias_version,
    get_model_version,
    list_decisions,
    load_model,
)
from churnguard.report import ReportData
from churnguard.store import Store

# Contacted customers of the latest plan shown in the report, by expected margin.
PLAN_SAMPLE_SIZE = 20
# behaviour+gbdt's pretrained customer vector, its dimensions taken together (the name its
# ``explain`` uses; churnguard.models.behaviour.model.BEHAVIOUR_COLUMN, not imported: torch).
BEHAVIOUR_PATTERN = "behaviour_pattern"
BEHAVIOUR_PATTERN_DESCRIPTION = ("The customer's behaviour vector: what the pretrained sequence "
                                 "encoder reads in the order and timing of their newest events, "
                                 "all its dimensions together")


class ReportError(ChurnguardError, ValueError):
    """Something the report needs has not been computed yet (with the command that computes it)."""

    code = "cannot_report"


def latest_backtest(store: Store) -> tuple[str, dict[str, Any], pd.DataFrame]:
    """The newest stored backtest (:func:`churnguard.backtests.latest_backtest`); raises
    :class:`ReportError` when there is none."""
    found = backtests.latest_backtest(store)
    if found is None:
        raise ReportError("no backtest has been run yet; run `churnguard backtest` first")
    return found


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


def _json(text: str, what: str, notes: list[str]) -> dict:
    """A stored JSON document; one that cannot be read leaves a note instead of failing the page."""
    try:
        document = json.loads(text)
    except (TypeError, ValueError) as exc:
        notes.append(f"The stored {what} is not valid JSON ({exc}); it is left out.")
        return {}
    return document if isinstance(document, dict) else {}


def latest_plan(store: Store, notes: list[str]) -> tuple[dict, pd.DataFrame]:
    """The newest plan (its row, with ``config`` and ``summary`` parsed) and its contacted
    customers with the highest expected margin; ``({}, empty)`` when nothing was planned. A
    stored document that cannot be parsed reads as ``{}`` and adds a line to ``notes``."""
    rows = store.con.execute(
        "SELECT campaign_id, created_at, as_of, budget, status, config, summary FROM plans "
        "ORDER BY created_at DESC, campaign_id DESC LIMIT 1").fetchall()
    if not rows:
        return {}, pd.DataFrame()
    campaign_id, created_at, as_of, budget, status, config, summary = rows[0]
    plan = {"campaign_id": campaign_id, "created_at": created_at, "as_of": as_of,
            "budget": budget, "status": status,
            "config": _json(config, f"settings of plan {campaign_id}", notes),
            "summary": _json(summary, f"summary of plan {campaign_id}", notes)}
    sample = store.con.execute(
        "SELECT user_id, action, is_control, risk_tier, p_churn, uplift, value, expected_cost, "
        "expected_margin, message_en FROM plan_rows WHERE campaign_id = ? AND NOT is_control "
        "ORDER BY expected_margin DESC NULLS LAST, user_id LIMIT ?",
        [campaign_id, PLAN_SAMPLE_SIZE]).df()
    return plan, sample


def latest_measurements(store: Store, notes: list[str]) -> list[dict]:
    """The newest measurement of every measured campaign, the most recently measured first; one
    that cannot be parsed is left out and adds a line to ``notes``."""
    rows = store.con.execute(
        "SELECT campaign_id, result FROM measurements "
        "QUALIFY row_number() OVER (PARTITION BY campaign_id ORDER BY measured_at DESC) = 1 "
        "ORDER BY measured_at DESC, campaign_id").fetchall()
    documents = [_json(result, f"measurement of campaign {campaign_id}", notes)
                 for campaign_id, result in rows]
    return [d for d in documents if d]


def recent_cycles(store: Store, limit: int = 10) -> list[dict]:
    """The newest ``limit`` operating cycles with their steps' status and decision (none in a
    store opened read-only before its schema had the cycle tables)."""
    (exists,) = store.con.execute("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_name = 'cycles'").fetchall()[0]
    if not exists:
        return []
    cycles = [dict(zip(("cycle_id", "trigger", "status", "started_at", "finished_at"), row,
                       strict=True)) for row in store.con.execute(
        "SELECT cycle_id, trigger, status, started_at, finished_at FROM cycles "
        "ORDER BY started_at DESC, cycle_id DESC LIMIT ?", [int(limit)]).fetchall()]
    for cycle in cycles:
        cycle["steps"] = [dict(zip(("step", "status", "decision", "error"), row, strict=True))
                          for row in store.con.execute(
            "SELECT step, status, decision, error FROM cycle_steps WHERE cycle_id = ? "
            "ORDER BY position", [cycle["cycle_id"]]).fetchall()]
    return cycles


def gate_decisions(store: Store) -> list[dict]:
    """The champion/challenger gate's decisions with their evidence, newest first (JSON-ready:
    :meth:`~churnguard.registry.GateDecision.to_dict`); none in a store opened read-only before
    its schema had the decisions table."""
    (exists,) = store.con.execute("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_name = 'model_decisions'").fetchall()[0]
    if not exists:
        return []
    return [d.to_dict() for d in reversed(list_decisions(store))]


def feature_importance(model: Any) -> pd.Series:
    """The champion's total split gain per feature, largest first (empty when it has none).

    ``behaviour+gbdt`` has no ``feature_importance`` of its own: its trees' gain is used, with
    the dimensions of the behaviour vector summed into one ``behaviour_pattern`` entry, as its
    ``explain`` sums their contributions.
    """
    if hasattr(model, "feature_importance"):
        return model.feature_importance()
    trees = getattr(model, "gbdt_", None)
    if trees is None or not hasattr(trees, "feature_importance"):
        return pd.Series(dtype=float)
    gain = trees.feature_importance()
    vector = [c for c in getattr(model, "embedding_columns_", []) if c in gain.index]
    if vector:
        gain = pd.concat([gain.drop(index=vector),
                          pd.Series({BEHAVIOUR_PATTERN: float(gain[vector].sum())})])
    return gain.sort_values(ascending=False, kind="stable").rename("gain")


def _champion_scores(store: Store, version: str) -> pd.DataFrame:
    """The champion's newest scores, riskiest first (empty when it has scored no one)."""
    return store.con.execute(
        "SELECT user_id, p_churn, risk_tier, reason_1, reason_2, reason_3, model_version "
        "FROM scores WHERE model_version = ? AND as_of = (SELECT max(as_of) FROM scores "
        "WHERE model_version = ?) ORDER BY p_churn DESC", [version, version]).df()


def voice_section(store: Store, config: ProjectConfig, notes: list[str]) -> dict:
    """The voice report (:func:`churnguard.voice.surges.voice_alerts`) once a topic codebook
    is stored (``churnguard voice`` fits it; the report only reads); else empty, said in
    ``notes`` when the store has texts."""
    from churnguard.voice.surges import voice_alerts

    if not store.con.execute("SELECT count(*) FROM topic_codebooks").fetchall()[0][0]:
        if store.con.execute("SELECT count(*) FROM events WHERE type IN ('review', "
                             "'support_ticket') AND text IS NOT NULL").fetchall()[0][0]:
            notes.append("No voice section: run `churnguard voice` once to fit the topics.")
        return {}
    try:
        return voice_alerts(store, config).to_dict()
    except ChurnguardError as exc:
        notes.append(f"No voice section: {exc}")
        return {}


def build_report_data(store: Store, *, title: str, definition: ChurnDefinition,
                      config: ProjectConfig | None = None) -> ReportData:
    """Everything the report shows, from the latest backtest, the champion's latest scores and
    the intervention tables (plans, plan_rows, measurements); with ``config``, the voice
    report too (:func:`voice_section`).

    What has not been computed yet (no backtest, no champion, no scores) is named in
    ``ReportData.missing``, its fields left empty: the page says which command makes it and
    shows the rest.
    """
    missing: list[str] = []
    found = backtests.latest_backtest(store)
    if found is None:
        missing.append("backtest")
        document, predictions = {}, pd.DataFrame(columns=["model", "user_id", "y_true",
                                                          "p_churn"])
    else:
        _, document, predictions = found
    version = alias_version(store, CHAMPION)
    notes: list[str] = []
    if version is None:
        missing += ["model", "scores"]
        chosen, importance, scores = "", pd.Series(dtype=float), pd.DataFrame()
    else:
        chosen = get_model_version(store, version).name
        importance = feature_importance(load_model(store, version))
        scores = _champion_scores(store, version)
        if scores.empty:
            missing.append("scores")
        else:
            notes.append(f"Scores by model version {version}.")
    test_predictions = {
        model: (group["y_true"].to_numpy(dtype=float), group["p_churn"].to_numpy(dtype=float))
        for model, group in predictions.groupby("model", sort=False)
    }
    any_model = next((m for m in test_predictions if m != ORACLE), None)
    labels = (predictions[predictions["model"] == any_model][["user_id", "y_true"]]
              .rename(columns={"y_true": "churned"}) if any_model else
              pd.DataFrame(columns=["user_id", "churned"]))
    skipped = {g.group: g.reason for g in feature_groups_available(store) if not g.available}
    preview = [
        {"cutoff": row.cutoff, "population": row.population, "churned": row.churned,
         "churn_rate": row.churn_rate, "observable": row.observable}
        for row in churn_preview(store, definition=definition)
    ]
    plan, plan_sample = latest_plan(store, notes)
    measurements = latest_measurements(store, notes)
    return ReportData(
        title=title,
        generated_at=dt.datetime.now(dt.UTC).replace(tzinfo=None),
        definition=definition.model_dump(mode="json"),
        backtest=document,
        test_predictions=test_predictions,
        chosen_model=chosen,
        scores=scores,
        feature_importance=importance,
        feature_descriptions={**{name: spec.description for name, spec in FEATURES.items()},
                              BEHAVIOUR_PATTERN: BEHAVIOUR_PATTERN_DESCRIPTION},
        segments=_segments(store, labels),
        preview=preview,
        skipped_groups=skipped,
        notes=notes,
        plan=plan,
        plan_sample=plan_sample,
        measurements=measurements,
        cycles=recent_cycles(store),
        decisions=gate_decisions(store),
        voice={} if config is None else voice_section(store, config, notes),
        missing=tuple(missing),
    )


__all__ = ["ReportError", "backtest_document", "build_report_data", "feature_importance",
           "gate_decisions", "latest_backtest", "latest_measurements", "latest_plan",
           "model_details", "recent_cycles", "save_backtest", "voice_section"]
