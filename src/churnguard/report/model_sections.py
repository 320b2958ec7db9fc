"""The report's model sections: summary, leaderboard (with the models' sizes), ROC and
precision–recall curves, calibration, gains and lift."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnguard.report import charts, curves
from churnguard.report.data import NAIVE_MODEL, ORACLE_MODEL, ReportData
from churnguard.report.formatting import count, finite, num, pct
from churnguard.report.markup import (
    esc as _e,
    figure as _figure,
    metric as _metric,
    missing as _missing,
    note as _note,
    table as _table,
)

# (key, column header, higher is better, what it means, kind of number)
METRICS: tuple[tuple[str, str, bool, str, str], ...] = (
    ("roc_auc", "ROC AUC", True,
     "How often the model ranks a leaver above a stayer: 0.5 is a coin toss, 1.0 is perfect.",
     "ratio"),
    ("pr_auc", "PR AUC", True,
     "Average precision when hunting leavers; random picking scores the churn rate.", "ratio"),
    ("brier", "Brier score", False,
     "Average squared gap between the predicted probability and what happened; lower is better.",
     "ratio"),
    ("ece", "Calibration error", False,
     "Average gap between predicted and observed churn rates over 10 equal-size groups of "
     "customers (ECE); lower is better.",
     "ratio"),
    ("lift_at_10", "Lift at 10%", True,
     "How many times more leavers the top-scored 10% holds than a random 10%.", "lift"),
    ("recall_at_10", "Recall at 10%", True,
     "Share of all leavers found by contacting the top-scored 10% of customers.", "pct"),
)


def _models(data: ReportData) -> list[dict]:
    return [m for m in data.backtest.get("models", []) if isinstance(m, dict) and "name" in m]


def _model(data: ReportData, name: str) -> dict | None:
    return next((m for m in _models(data) if m["name"] == name), None)


def _usable_predictions(data: ReportData):
    """Split the test predictions into those with both classes (every curve can be drawn) and
    those with at least one row (calibration can be drawn), and say why any model is left out."""
    names = [m["name"] for m in _models(data)]
    names += [n for n in data.test_predictions if n not in names]
    ranked: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    calibratable: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    notes: list[str] = []
    for name in names:
        if name not in data.test_predictions:
            notes.append(f"No test predictions were supplied for “{name}”; it is left out of the "
                         "charts.")
            continue
        y, p = (np.asarray(a, dtype=float).ravel() for a in data.test_predictions[name])
        if len(y) != len(p):
            notes.append(f"“{name}”: {len(y):,} labels but {len(p):,} predictions; left out of "
                         "the charts.")
            continue
        kept, (y, p) = len(y), curves.finite_rows(y, p)
        if len(y) < kept:
            notes.append(f"“{name}”: {kept - len(y):,} rows without a prediction or label "
                         "are left out.")
        if len(y) == 0:
            notes.append(f"“{name}”: no test rows; left out of the charts.")
            continue
        calibratable[name] = (y, p)
        if not curves.ranks(y):
            what = "churned" if y[0] == 1 else "stayed"
            notes.append(f"“{name}”: every test customer {what}, so ranking curves (ROC, "
                         "precision–recall, gains) cannot be drawn for it.")
            continue
        ranked[name] = (y, p)
    return ranked, calibratable, notes


def _summary(data: ReportData) -> str:
    parts = []
    if data.missing:
        parts.append("<h3>Not in this report yet</h3>"
                     + "".join(_missing(key) for key in data.missing))
    if "scores" not in data.missing:
        parts.append(_score_cards(data))
    if data.chosen_model:
        parts.append(f"<p>{_model_sentence(data)}</p>")
    extra = list(data.notes)
    if data.chosen_model and "backtest" not in data.missing and \
            data.chosen_model not in data.test_predictions:
        extra.append(f"The chosen model “{data.chosen_model}” has no test predictions; its "
                     "charts are missing.")
    if extra:
        parts.append("<h3>Notes</h3><ul class=\"notes\">"
                     + "".join(f"<li>{_e(x)}</li>" for x in extra) + "</ul>")
    return "\n".join(parts)


def _score_cards(data: ReportData) -> str:
    scores = data.scores
    p = pd.to_numeric(scores["p_churn"], errors="coerce")
    n = len(scores)
    tiers = scores["risk_tier"].astype(str)
    high = tiers == "high"
    horizon = data.definition.get("horizon_days", data.backtest.get("horizon_days"))
    within = f"within {horizon} days" if horizon is not None else "within the horizon"
    share = {t: (tiers == t).mean() if n else float("nan") for t in ("high", "medium", "low")}
    cards = [
        ("Customers scored", count(n), "everyone in the current population"),
        ("Predicted churners", count(p.sum()),
         f"{pct(p.sum() / n if n else None)} of customers are expected to stop buying {within}"),
        ("At high risk", count(high.sum()),
         f"about {count(p[high].sum())} of them are expected to leave"),
    ]
    card_html = "".join(
        f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}'
        f'</div><div class="sub">{_e(sub)}</div></div>' for label, value, sub in cards)
    card_html += ('<div class="card"><div class="label">Risk tiers</div>' + "".join(
        f'<div class="tier-share"><span class="tier tier-{t}">{t}</span> {pct(share[t])}</div>'
        for t in ("high", "medium", "low")) + "</div>")
    return f'<div class="cards">{card_html}</div>'


def _model_sentence(data: ReportData) -> str:
    bt = data.backtest
    chosen, naive, oracle = (_model(data, n)
                             for n in (data.chosen_model, NAIVE_MODEL, ORACLE_MODEL))
    name = f"<strong>{_e(data.chosen_model)}</strong>"
    if "backtest" in data.missing:
        return (f"The chosen model is {name}; no backtest has been run, so its out-of-time "
                "quality is not known yet.")
    if chosen is None:
        return (f"The chosen model is {name}; the backtest holds no result for it, so its "
                "out-of-time quality is unknown.")
    cutoffs = [str(c) for c in bt.get("train_cutoffs", [])]
    trained = (f"trained on {len(cutoffs)} earlier cutoff{'s' if len(cutoffs) != 1 else ''} "
               f"({_e(cutoffs[0])} to {_e(cutoffs[-1])})" if cutoffs else "trained on the past")
    text = (f"The chosen model, {name}, was {trained} and judged on what "
            f"{count(bt.get('n_test'))} customers did after {_e(bt.get('test_cutoff', '—'))}, "
            f"when {pct(bt.get('base_rate'))} of them churned. It ranks leavers above stayers "
            f"with a ROC AUC of <strong>{num(chosen.get('roc_auc'))}</strong>")
    if naive is not None:
        text += (f", against {num(naive.get('roc_auc'))} for the naive recency rule (“the longer "
                 "since the last purchase, the likelier gone”)")
    if oracle is not None:
        text += (f"; {num(oracle.get('roc_auc'))} is the best possible score on this data (the "
                 "oracle knows each simulated customer’s true churn probability)")
    text += (f". Contacting the top-scored 10% of customers reaches "
             f"<strong>{pct(chosen.get('recall_at_10'))}</strong> of all leavers")
    if naive is not None:
        text += f" (recency rule: {pct(naive.get('recall_at_10'))})"
    return text + "."


def _best(models: list[dict], key: str, higher: bool) -> float | None:
    values = [v for m in models if m["name"] != ORACLE_MODEL
              if (v := finite(m.get(key))) is not None]
    if not values:
        return None
    return max(values) if higher else min(values)


def _leaderboard(data: ReportData) -> str:
    models = _models(data)
    if not models:
        return _note("The backtest holds no model results.")
    ordered = [m for m in models if m["name"] != ORACLE_MODEL]
    ordered += [m for m in models if m["name"] == ORACLE_MODEL]
    best = {key: _best(models, key, higher) for key, _, higher, _, _ in METRICS}
    rows = []
    for m in ordered:
        cls = ("chosen" if m["name"] == data.chosen_model
               else "oracle" if m["name"] == ORACLE_MODEL else "")
        label = _e(m["name"])
        if m["name"] == data.chosen_model:
            label += ' <span class="badge">chosen</span>'
        elif m["name"] == ORACLE_MODEL:
            label += ' <span class="muted">(best possible)</span>'
        elif m["name"] == NAIVE_MODEL:
            label += ' <span class="muted">(naive rule)</span>'
        cells = []
        for key, _, _, _, kind in METRICS:
            value = finite(m.get(key))
            text = _e(_metric(m.get(key), kind))
            is_best = (m["name"] != ORACLE_MODEL and value is not None
                       and best[key] is not None and np.isclose(value, best[key]))
            cells.append(f'<td class="num best">{text}</td>' if is_best
                         else f'<td class="num">{text}</td>')
        rows.append(f'<tr class="{cls}"><th scope="row">{label}</th>{"".join(cells)}</tr>')
    table = _table(["Model"] + [h for _, h, _, _, _ in METRICS], rows, cls="leaderboard")
    legend = "".join(f"<dt>{_e(h)} ({'higher' if up else 'lower'} is better)</dt>"
                     f"<dd>{_e(what)}</dd>"
                     for _, h, up, what, _ in METRICS)
    oracle = (" The oracle row is the ceiling, not a competitor: it is not counted for “best”."
              if _model(data, ORACLE_MODEL) else "")
    return (f"{table}\n<p class=\"muted\">Test cutoff {_e(data.backtest.get('test_cutoff', '—'))}"
            f", {count(data.backtest.get('n_test'))} customers, churn rate "
            f"{pct(data.backtest.get('base_rate'))}.{_e(oracle)}</p>\n<dl class=\"metrics\">"
            f"{legend}</dl>{_training_sizes(data)}")


def _training_sizes(data: ReportData) -> str:
    """How long each model took in the backtest and, for the sequence models, the size they were
    trained at (the backtest document's ``model_details``); nothing when the document has none."""
    details = data.backtest.get("model_details")
    if not isinstance(details, dict) or not details:
        return ""
    rows = []
    for m in _models(data):
        entry = details.get(m["name"])
        if not isinstance(entry, dict):
            continue
        seconds = finite(entry.get("seconds"))
        rows.append(f'<tr><th scope="row">{_e(m["name"])}</th>'
                    f'<td class="num">{"—" if seconds is None else f"{seconds:,.1f} s"}</td>'
                    f"<td>{_e(_size_text(entry))}</td></tr>")
    if not rows:
        return ""
    return ("<h3>How the models were trained</h3>"
            + _table(["Model", "Fit and score time", "Size"], rows, cls="sizes")
            + '<p class="muted">Times are wall-clock seconds on the machine that ran the backtest '
            "(fitting on the training cutoffs and scoring the test cutoff); a shared "
            "pretraining run is counted under the size, not in the time.</p>")


def _size_text(entry: dict) -> str:
    """One line on a model's size, e.g. “GRU encoder, 64 dimensions, newest 64 events per
    customer; pretrained without labels on 8,000 customers' events before 2026-06-25, 3 of at
    most 3 epochs (31.0 s); fine-tuned 3 of at most 4 epochs” or “1,031 trees at learning rate
    0.06”; “—” for models with no size."""
    trees = (f"{count(entry['trees'])} trees at learning rate {entry['learning_rate']:g}"
             if entry.get("trees") and finite(entry.get("learning_rate")) is not None else None)
    if "max_len" not in entry:
        return trees or "—"
    kind = str(entry.get("encoder") or "sequence").upper()
    encoder = f"{kind} encoder"
    if entry.get("d_model") is not None:
        encoder += f", {count(entry['d_model'])} dimensions"
    encoder += f", newest {count(entry['max_len'])} events per customer"
    if not entry.get("use_text", True):
        encoder += " (no review text)"
    parts = [encoder]
    epochs = (f"{count(entry.get('epochs_run'))} of at most {count(entry.get('epochs'))} epochs"
              if entry.get("epochs_run") is not None else None)
    pre = entry.get("pretraining")
    if isinstance(pre, dict):
        text = f"pretrained without labels on {count(pre.get('customers'))} customers' events"
        if pre.get("cutoff"):
            text += f" before {pre['cutoff']}"
        text += (f", {count(pre.get('epochs_run'))} of at most {count(pre.get('epochs'))} "
                 "epochs")
        if finite(pre.get("seconds")) is not None:
            text += f" ({finite(pre.get('seconds')):,.1f} s)"
        parts.append(text)
        parts.append(f"fine-tuned {epochs}" if epochs
                     else "the vectors, frozen, are added to the trees' features")
    elif epochs:
        parts.append(f"trained from scratch, {epochs}")
    if trees:
        parts.append(trees)
    return "; ".join(parts)


def _curves(data: ReportData, ranked: dict, notes: list[str]) -> str:
    parts = [_note(n) for n in notes]
    if not ranked:
        parts.append(_note("No model has test predictions with both churners and stayers, so "
                           "the curves are left out."))
        return "\n".join(parts)
    base_rate = finite(data.backtest.get("base_rate"))
    parts.append('<div class="pair">'
                 + _figure(charts.roc_chart(ranked, chosen=data.chosen_model),
                           "ROC: the further above the dotted diagonal, the better the ranking. "
                           "The dashed black line is the oracle.")
                 + _figure(charts.pr_chart(ranked, chosen=data.chosen_model, base_rate=base_rate),
                           "Precision–recall: of the customers flagged, how many really leave, as "
                           "more of the leavers are caught.")
                 + "</div>")
    return "\n".join(parts)


def _calibration(data: ReportData, calibratable: dict) -> str:
    if not calibratable:
        return _note("No test predictions to check calibration on.")
    parts = [_figure(charts.calibration_chart(calibratable, chosen=data.chosen_model),
                     "Above the diagonal: more customers left than predicted; below: fewer.")]
    if data.chosen_model in calibratable:
        bins = curves.calibration_bins(*calibratable[data.chosen_model])
        rows = (f"<tr><td class=\"num\">{pct(r.mean_predicted)}</td><td class=\"num\">"
                f"{pct(r.observed)}</td><td class=\"num\">{count(r.count)}</td></tr>"
                for r in bins.itertuples())
        parts.append(f"<details><summary>The chosen model’s bins as a table</summary>"
                     f"{_table(['Predicted', 'Observed', 'Customers'], rows)}</details>")
    return "\n".join(parts)


def _gains(data: ReportData, ranked: dict) -> str:
    if not ranked:
        return _note("No model has test predictions with both churners and stayers, so gains "
                     "cannot be drawn.")
    return _figure(charts.gains_chart(ranked, chosen=data.chosen_model),
                   "Left: share of all leavers reached when contacting a given share of "
                   "customers, highest risk first. Right: how many times better that is than "
                   "contacting customers at random.")


def bodies(data: ReportData) -> dict[str, str]:
    """The HTML of each model section, by section id."""
    if "backtest" in data.missing:
        return {"summary": _summary(data), "backtest": _missing("backtest")}
    ranked, calibratable, prediction_notes = _usable_predictions(data)
    return {"summary": _summary(data), "leaderboard": _leaderboard(data),
            "curves": _curves(data, ranked, prediction_notes),
            "calibration": _calibration(data, calibratable),
            "gains": _gains(data, ranked)}


__all__ = ["bodies"]
