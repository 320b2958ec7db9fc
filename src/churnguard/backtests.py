"""Backtests in the store: a run's document (the ``backtest --json`` document with each model's
size and time) in ``backtests``, its test predictions in ``backtest_predictions``.

The HTML report and the dashboard's model-quality page read the newest run back
(:func:`latest_backtest`); ``churnguard backtest`` and ``demo`` write them (:func:`save_backtest`).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pandas as pd

from churnguard.evaluate import BacktestResult
from churnguard.store import Store


def model_details(result: BacktestResult) -> dict[str, dict[str, Any]]:
    """Per backtested model: seconds to fit and score it, for the boosted models their trees and
    learning rate, and for the sequence models the size they were trained at (encoder, events
    read per customer, epochs, and what pretraining did).

    The sizes are read from the fitted models, so they say what happened (how many epochs ran
    before early stopping, how many customers pretraining used), not what was asked for.
    """
    details: dict[str, dict[str, Any]] = {}
    for name, model in result.models.items():
        entry: dict[str, Any] = {}
        if name in result.seconds:
            entry["seconds"] = round(float(result.seconds[name]), 1)
        params = model.get_params() if hasattr(model, "get_params") else {}
        if "max_len" in params:
            entry["encoder"] = params.get("encoder")
            entry["max_len"] = int(params["max_len"])
            entry["use_text"] = bool(params.get("use_text", True))
        network = getattr(model, "network_", None)  # BehaviourChurnModel: encoder + head
        encoder = network.encoder if network is not None else getattr(model, "encoder_", None)
        if encoder is not None and hasattr(encoder, "dim"):
            entry["d_model"] = int(encoder.dim)
        history = getattr(model, "history_", None)
        if history is not None:
            entry["epochs"] = int(params.get("epochs", len(history)))
            entry["epochs_run"] = len(history)
        trees = getattr(getattr(model, "gbdt_", model), "best_iteration_", None)
        if trees and "learning_rate" in params:  # gbdt, behaviour+gbdt
            entry["trees"] = int(trees)
            entry["learning_rate"] = float(params["learning_rate"])
        pretrained = getattr(model, "pretrained_", None)
        if isinstance(pretrained, dict):
            asked = pretrained.get("pretrain_config") or {}
            ran = pretrained.get("history") or []
            entry["pretraining"] = {
                "customers": pretrained.get("n_customers"),
                "epochs": asked.get("epochs", params.get("pretrain_epochs")),
                "epochs_run": len(ran),
                "seconds": round(float(sum(h.get("seconds", 0.0) for h in ran)), 1),
                "cutoff": str(pretrained.get("cutoff") or "")[:10] or None,
            }
        if entry:
            details[name] = entry
    return details


def backtest_document(result: BacktestResult) -> dict[str, Any]:
    """The ``backtest --json`` document with ``model_details`` (:func:`model_details`) added."""
    document = result.to_dict()
    details = model_details(result)
    if details:
        document["model_details"] = details
    return document


def save_backtest(store: Store, result: BacktestResult) -> str:
    """Keep a backtest's document (with :func:`model_details`) and its test predictions;
    returns the run id."""
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    frame = result.predictions.reset_index()
    models = [c for c in frame.columns if c not in ("user_id", "cutoff", "churned")]
    long = frame.melt(id_vars=["user_id", "churned"], value_vars=models, var_name="model",
                      value_name="p_churn")
    long = long.assign(run_id=run_id, y_true=long["churned"].astype(bool),
                       user_id=long["user_id"].astype(str))
    predictions = long[["run_id", "model", "user_id", "y_true", "p_churn"]]
    with store.registered(predictions, "backtest") as view, store.transaction() as con:
        con.execute("INSERT INTO backtests VALUES (?, ?, ?)",
                    [run_id, dt.datetime.now(dt.UTC).replace(tzinfo=None),
                     json.dumps(backtest_document(result))])
        con.execute(f"INSERT INTO backtest_predictions SELECT * FROM {view}")
    return run_id


def latest_backtest(store: Store) -> tuple[str, dict[str, Any], pd.DataFrame] | None:
    """The newest stored backtest: its run id, document and test predictions (model, user_id,
    y_true, p_churn); None when no backtest has been stored."""
    rows = store.con.execute(
        "SELECT run_id, result FROM backtests ORDER BY created_at DESC LIMIT 1").fetchall()
    if not rows:
        return None
    run_id, document = rows[0]
    predictions = store.con.execute(
        "SELECT model, user_id, y_true, p_churn FROM backtest_predictions WHERE run_id = ?",
        [run_id]).df()
    return run_id, json.loads(document), predictions


__all__ = ["backtest_document", "latest_backtest", "model_details", "save_backtest"]
