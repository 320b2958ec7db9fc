"""The report page: one self-contained HTML file (inline CSS, inline SVG charts, no script, no
external resource) that a marketer can open offline and read top to bottom.

Every piece of text that comes from data goes through :func:`html.escape`; numbers are formatted
in one place (:func:`num`, :func:`pct`, :func:`count`, :func:`money`, :func:`signed`,
:func:`pp`) and a missing or NaN value reads "—". The dashboard writes its numbers with the same
functions, so a figure reads the same in the report and on the pages.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from churnguard.report import charts, curves
from churnguard.report.data import NAIVE_MODEL, ORACLE_MODEL, ReportData
from churnguard.report.formatting import count, finite, formatted, money, num, pct, pp, signed

__all__ = ["METRICS", "SECTIONS", "build_html", "count", "finite", "formatted", "money",
           "num", "pct", "pp", "render_report", "signed"]

# (id, heading, plain-language line under the heading)
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("summary", "Summary",
     "Who is likely to stop buying, how many, and how far the model can be trusted."),
    ("leaderboard", "Model leaderboard",
     "Every model was trained on the past and judged on what customers did afterwards (an "
     "out-of-time test). The chosen model is highlighted; the best value in each column is bold."),
    ("curves", "ROC and precision–recall curves",
     "How well each model separates customers who left from those who stayed, at every possible "
     "threshold. Curves closer to the top-left (ROC) or top-right (precision–recall) are better."),
    ("calibration", "Calibration",
     "Can the percentages be taken at face value? Customers are grouped into 10 bins by predicted "
     "probability; if the model is well calibrated, each bin's dot lies on the diagonal."),
    ("gains", "Cumulative gains and lift",
     "If you contact customers in order of risk, how many of the leavers do you reach? The grey "
     "line at 10% marks a typical campaign size."),
    ("distribution", "Score distribution by risk tier",
     "How today's customers are spread over predicted churn probability, coloured by risk tier."),
    ("importance", "Global feature importance",
     "Which customer signals the chosen model leans on most, over all customers (top 15)."),
    ("segments", "Churn rate by segment",
     "What share of each group actually left at the test cutoff, with group sizes. The dashed "
     "line is the average over all customers."),
    ("definition", "Churn definition preview",
     "What counts as churn here, and how many customers it concerns at each cutoff date."),
    ("customers", "Top at-risk customers",
     "The 50 customers with the highest predicted churn probability and the three main reasons."),
    ("interventions", "Interventions",
     "Whom the latest plan contacts with which action and what it expects to gain, and what "
     "measured campaigns really gained against their random control groups."),
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

OBSERVABILITY = {
    "full": "complete",
    "partial": "partial — the horizon runs past the data, so the rate is not final",
    "none": "not yet observable — the horizon starts after the data ends",
}

TOP_FEATURES = 15
TOP_CUSTOMERS = 50
PLAN_SAMPLE = 20
MAX_CAMPAIGNS = 10
MAX_SEGMENT_VALUES = 12
MAX_COHORTS = 36


def render_report(data: ReportData, path: str | os.PathLike) -> Path:
    """Write the report to ``path`` (via a temporary file and a rename) and return the path."""
    return _write_atomically(Path(path), build_html(data))


def build_html(data: ReportData) -> str:
    """The whole page as one string."""
    ranked, calibratable, prediction_notes = _usable_predictions(data)
    bodies = {
        "summary": _summary(data),
        "leaderboard": _leaderboard(data),
        "curves": _curves(data, ranked, prediction_notes),
        "calibration": _calibration(data, calibratable),
        "gains": _gains(data, ranked),
        "distribution": _distribution(data),
        "importance": _importance(data),
        "segments": _segments(data),
        "definition": _definition(data),
        "customers": _customers(data),
        "interventions": _interventions(data),
    }
    nav = "".join(f'<li><a href="#{sid}">{_e(title)}</a></li>' for sid, title, _ in SECTIONS)
    sections = "\n".join(
        f'<section id="{sid}">\n<h2>{i}. {_e(title)}</h2>\n<p class="lead">{_e(lead)}</p>\n'
        f"{bodies[sid]}\n</section>"
        for i, (sid, title, lead) in enumerate(SECTIONS, start=1))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(data.title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_e(data.title)}</h1>
<p class="meta">Generated {_e(_when(data.generated_at))} · chosen model
<span class="badge">{_e(data.chosen_model)}</span></p>
<nav><ol>{nav}</ol></nav>
</header>
<main>
{sections}
</main>
<footer>Made by churnguard. This file is self-contained: it needs no network connection.</footer>
</body>
</html>
"""


# --- formatting -------------------------------------------------------------------------------

def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _metric(value: object, kind: str) -> str:
    if kind == "pct":
        return pct(value)
    if kind == "lift":
        x = finite(value)
        return "—" if x is None else f"{x:.2f}×"
    return num(value)


def _with_ci(estimate: str, interval: object, fmt) -> str:
    """``estimate`` followed by its interval on a second line, when there is one."""
    if estimate == "—" or not isinstance(interval, list | tuple) or len(interval) != 2:
        return estimate
    low, high = (fmt(v) for v in interval)
    return f'{estimate}<br><span class="ci">{low} to {high}</span>'


def _when(moment: object) -> str:
    try:
        return moment.strftime("%Y-%m-%d %H:%M %Z").strip()  # type: ignore[attr-defined]
    except AttributeError:
        return str(moment)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _table(headers: Iterable[str], rows: Iterable[str], *, cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def _figure(svg: str, caption: str) -> str:
    return f'<figure>{svg}<figcaption>{_e(caption)}</figcaption></figure>'


# --- inputs -----------------------------------------------------------------------------------

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


# --- sections ---------------------------------------------------------------------------------

def _summary(data: ReportData) -> str:
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
    parts = [f'<div class="cards">{card_html}</div>', f"<p>{_model_sentence(data)}</p>"]
    extra = list(data.notes)
    if data.chosen_model not in data.test_predictions:
        extra.append(f"The chosen model “{data.chosen_model}” has no test predictions; its "
                     "charts are missing.")
    if extra:
        parts.append("<h3>Notes</h3><ul class=\"notes\">"
                     + "".join(f"<li>{_e(x)}</li>" for x in extra) + "</ul>")
    return "\n".join(parts)


def _model_sentence(data: ReportData) -> str:
    bt = data.backtest
    chosen, naive, oracle = (_model(data, n)
                             for n in (data.chosen_model, NAIVE_MODEL, ORACLE_MODEL))
    name = f"<strong>{_e(data.chosen_model)}</strong>"
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


def _distribution(data: ReportData) -> str:
    p = pd.to_numeric(data.scores["p_churn"], errors="coerce")
    keep = p.notna().to_numpy()
    if not keep.any():
        return _note("No scored customers.")
    tiers = data.scores["risk_tier"].astype(str).to_numpy()[keep]
    counts = pd.Series(tiers).value_counts()
    rows = []
    for tier in [t for t in charts.TIER_COLOURS if t in counts.index] + \
            [t for t in counts.index if t not in charts.TIER_COLOURS]:
        sel = tiers == tier
        rows.append(f'<tr><td><span class="tier tier-{_e(tier)}">{_e(tier)}</span></td>'
                    f'<td class="num">{count(sel.sum())}</td><td class="num">'
                    f"{pct(sel.mean())}</td><td class=\"num\">{pct(p[keep][sel].min())} – "
                    f"{pct(p[keep][sel].max())}</td><td class=\"num\">"
                    f"{count(p[keep][sel].sum())}</td></tr>")
    return (_figure(charts.score_distribution_chart(p[keep].to_numpy(), tiers),
                    "Each bar counts the customers whose predicted probability falls in that "
                    "range.")
            + _table(["Tier", "Customers", "Share", "Probability range", "Expected churners"],
                     rows))


def _importance(data: ReportData) -> str:
    imp = pd.to_numeric(data.feature_importance, errors="coerce").dropna()
    parts = []
    if imp.empty:
        parts.append(_note("No feature importance was supplied."))
    else:
        top = imp.sort_values(ascending=False, kind="stable").head(TOP_FEATURES)
        total = imp.abs().sum()
        parts.append(_figure(charts.importance_chart(top),
                             f"Share of the model’s total gain, top {len(top)} of {len(imp)} "
                             "features. Importance says what the model uses, not what causes "
                             "churn."))
        rows = (f'<tr><td class="num">{i}</td><td><code>{_e(name)}</code></td><td class="num">'
                f"{pct(value / total if total else None)}</td>"
                f"<td>{_e(data.feature_descriptions.get(str(name), '—'))}</td></tr>"
                for i, (name, value) in enumerate(top.items(), start=1))
        parts.append(_table(["#", "Feature", "Share of gain", "What it measures"], rows))
    if data.skipped_groups:
        parts.append("<h3>Feature groups not used</h3><ul class=\"notes\">" + "".join(
            f"<li><code>{_e(g)}</code>: {_e(why)}</li>" for g, why in data.skipped_groups.items())
            + "</ul>")
    return "\n".join(parts)


def _segment_table(values: pd.Series, churned: pd.Series, *, cohort: bool) -> tuple[pd.DataFrame,
                                                                                     str]:
    """Customers and churn rate per segment value, in display order, and a note on grouping."""
    frame = pd.DataFrame({"value": values.astype(object).where(values.notna(), "(missing)")
                          .astype(str), "churned": churned})
    table = frame.groupby("value", sort=False)["churned"].agg(customers="size",
                                                              churn_rate="mean")
    note = ""
    if cohort:
        table = table.sort_index()
        if len(table) > MAX_COHORTS:
            note = f"Only the latest {MAX_COHORTS} of {len(table)} cohorts are shown."
            table = table.tail(MAX_COHORTS)
    else:
        table = table.sort_values("customers", ascending=False, kind="stable")
        if len(table) > MAX_SEGMENT_VALUES:
            rest = table.iloc[MAX_SEGMENT_VALUES - 1:]
            other = pd.DataFrame(
                {"customers": [rest["customers"].sum()],
                 "churn_rate": [np.average(rest["churn_rate"], weights=rest["customers"])]},
                index=[f"other ({len(rest)} values)"])
            note = (f"The {MAX_SEGMENT_VALUES - 1} largest of {len(table)} groups are shown; the "
                    "rest are pooled as “other”.")
            table = pd.concat([table.iloc[:MAX_SEGMENT_VALUES - 1], other])
    return table, note


def _segments(data: ReportData) -> str:
    seg = data.segments
    columns = [c for c in seg.columns if c not in ("churned", "user_id")]
    if seg.empty or not columns:
        return _note("No segment data was supplied, so churn by segment is not shown.")
    churned = pd.to_numeric(seg["churned"].astype("float64"), errors="coerce")
    known = churned.notna()
    churned = churned[known]
    overall = float(churned.mean()) if len(churned) else float("nan")
    cohorts = [c for c in columns if "cohort" in str(c).lower()]
    plain = [c for c in columns if c not in cohorts]
    parts = [f"<p>{count(len(churned))} customers at the test cutoff, {pct(overall)} of whom "
             "churned.</p>"]
    for title, group, is_cohort in (("By customer attributes", plain, False),
                                    ("By signup cohort", cohorts, True)):
        parts.append(f"<h3>{_e(title)}</h3>")
        if not group:
            parts.append(_note("No signup cohort column was supplied." if is_cohort
                               else "No customer attribute columns were supplied."))
            continue
        for column in group:
            table, note = _segment_table(seg.loc[known, column], churned, cohort=is_cohort)
            parts.append(_figure(charts.segment_chart(table, column=str(column),
                                                      overall_rate=overall),
                                 note or f"Churn rate and number of customers per {column}."))
    return "\n".join(parts)


def _definition(data: ReportData) -> str:
    d = data.definition
    activity = d.get("activity", ["order"])
    activity = [activity] if isinstance(activity, str) else list(activity)
    what = " or ".join(activity) or "activity"
    lookback, horizon = d.get("lookback_days", "—"), d.get("horizon_days", "—")
    words = (f"<p class=\"definition\">At each cutoff date, a customer is <strong>in the "
             f"population</strong> when they made at least one {_e(what)} in the {_e(lookback)} "
             f"days before it. They count as <strong>churned</strong> when they make no "
             f"{_e(what)} in the {_e(horizon)} days after it.</p>")
    if not data.preview:
        return words + _note("No churn-definition preview was supplied.")
    rows = []
    for r in data.preview:
        obs = str(r.get("observable", ""))
        churned = r.get("churned") if obs != "none" else None
        rate = r.get("churn_rate") if obs != "none" else None
        rows.append(f'<tr class="obs-{_e(obs)}"><td>{_e(r.get("cutoff", "—"))}</td>'
                    f'<td class="num">{count(r.get("population"))}</td>'
                    f'<td class="num">{count(churned)}</td><td class="num">{pct(rate)}</td>'
                    f"<td>{_e(OBSERVABILITY.get(obs, obs or '—'))}</td></tr>")
    return words + _table(["Cutoff", "Population", "Churned", "Churn rate", "Outcome observed"],
                          rows, cls="preview")


def _customers(data: ReportData) -> str:
    scores = data.scores.assign(p_numeric_=pd.to_numeric(data.scores["p_churn"], errors="coerce"))
    top = scores.sort_values("p_numeric_", ascending=False, kind="stable", na_position="last")
    top = top.head(TOP_CUSTOMERS)
    if top.empty:
        return _note("No scored customers.")
    reasons = [c for c in ("reason_1", "reason_2", "reason_3") if c in top.columns]
    rows = []
    for rank, row in enumerate(top.itertuples(index=False), start=1):
        record = row._asdict()
        tier = str(record["risk_tier"])
        cells = "".join(f"<td>{_e(_text(record[c]))}</td>" for c in reasons)
        rows.append(f'<tr><td class="num">{rank}</td><td><code>{_e(record["user_id"])}</code></td>'
                    f'<td class="num">{pct(record["p_numeric_"])}</td><td><span class="tier '
                    f'tier-{_e(tier)}">{_e(tier)}</span></td>{cells}</tr>')
    version = scores["model_version"].dropna().unique() if "model_version" in scores else []
    about = (f"<p class=\"muted\">Scored by model version {_e(', '.join(map(str, version)))}.</p>"
             if len(version) else "")
    headers = ["#", "Customer", "P(churn)", "Tier"] + [f"Reason {c[-1]}" for c in reasons]
    return about + _table(headers, rows, cls="customers")


def _interventions(data: ReportData) -> str:
    if not data.plan and not data.measurements:
        return ('<p class="note">No intervention plan or measured campaign yet: run '
                "<code>churnguard plan --budget B</code> to plan a campaign, and "
                "<code>churnguard measure CAMPAIGN</code> once its window has passed.</p>")
    parts = ["<h3>Latest plan</h3>"]
    if data.plan:
        parts.append(_plan(data))
    else:
        parts.append('<p class="note">No plan is stored; run <code>churnguard plan --budget B'
                     "</code> to plan a campaign.</p>")
    parts.append("<h3>Measured campaigns</h3>")
    if data.measurements:
        parts.append(_measurements(data.measurements))
    else:
        parts.append('<p class="note">No campaign has been measured yet; run <code>churnguard '
                     "measure CAMPAIGN</code> once the campaign’s window has passed.</p>")
    return "\n".join(parts)


def _cards(cards: Iterable[tuple[str, str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{_e(label)}</div><div class="value">{_e(value)}'
        f'</div><div class="sub">{_e(sub)}</div></div>' for label, value, sub in cards) + "</div>"


def _is_prior(source: str) -> bool:
    return "prior effects" in source.lower()


def _plan(data: ReportData) -> str:
    plan = data.plan
    summary = plan.get("summary") or {}
    config = plan.get("config") or {}
    treated, control = summary.get("treated"), summary.get("control")
    budget, cost = summary.get("budget", plan.get("budget")), summary.get("expected_cost")
    budget_x, cost_x = finite(budget), finite(cost)
    outcome, window = config.get("outcome_type"), config.get("window_days")
    saves_sub = (f"extra customers expected to have an “{outcome}” event within {window} days "
                 "of contact" if outcome and window else
                 "extra customers expected to come back within the campaign’s window")
    as_of = str(summary.get("as_of", plan.get("as_of", "—")))[:10]
    cards = [
        ("Customers contacted", count(treated),
         f"of {count(summary.get('population'))} customers scored on {as_of}"),
        ("Control group", count(control),
         f"held out at random ({pct(summary.get('control_share'), 0)} of the planned customers) "
         "to measure the effect"),
        ("Budget", money(budget), "the most the campaign may spend"),
        ("Expected cost", money(cost),
         f"{pct(cost_x / budget_x if cost_x is not None and budget_x else None)} of the budget"),
        ("Expected saves", num(summary.get("expected_saves"), 1), saves_sub),
        ("Expected incremental margin", money(summary.get("expected_incremental_margin")),
         f"extra margin after the actions’ costs, at a gross margin of "
         f"{pct(summary.get('gross_margin'), 0)}"),
    ]
    status = f", status {_e(plan['status'])}" if plan.get("status") else ""
    version = (f"; churn scores by model version {_e(summary['model_version'])}"
               if summary.get("model_version") else "")
    parts = [f"<p>Campaign <code>{_e(plan.get('campaign_id', '—'))}</code>, planned "
             f"{_e(_when(plan.get('created_at', '—')))} for the customers as of {_e(as_of)}"
             f"{status}{version}.</p>", _cards(cards)]
    source = str(summary.get("uplift_source") or "")
    if _is_prior(source):
        parts.append('<p class="note"><strong>The effects in this plan are assumptions, not '
                     "measurements.</strong> They are the prior effects by risk tier set in "
                     "churnguard.toml, so the expected saves and margin are only as good as "
                     "those guesses. Measure the campaign against its control group to learn the "
                     f"real effects. Uplift source: {_e(source)}.</p>")
    elif source:
        parts.append(f'<p class="muted">Uplift source: {_e(source)}.</p>')
    parts.append(_plan_actions(summary))
    parts.append(_uplift_learners(summary))
    parts.append(_value_model(summary))
    parts.append(_plan_sample(data.plan_sample))
    return "\n".join(parts)


def _tier_order(tiers: Iterable[str]) -> list[str]:
    tiers = list(tiers)
    return [t for t in charts.TIER_COLOURS if t in tiers] + \
        [t for t in tiers if t not in charts.TIER_COLOURS]


def _tier_badge(tier: object) -> str:
    return f'<span class="tier tier-{_e(tier)}">{_e(tier)}</span>'


def _plan_actions(summary: dict) -> str:
    per_action = summary.get("per_action") or {}
    if not per_action:
        return _note("The plan contacts nobody: no action is worth its cost within the budget.")
    rows = []

    def row(label: str, r: dict, cls: str = "") -> str:
        saves, cost = finite(r.get("expected_saves")), finite(r.get("expected_cost"))
        per_save = cost / saves if cost is not None and saves else None
        return (f'<tr class="{cls}"><td>{label}</td><td class="num">{count(r.get("customers"))}'
                f'</td><td class="num">{count(r.get("control"))}</td><td class="num">'
                f'{num(saves, 1)}</td><td class="num">{money(cost)}</td><td class="num">'
                f'{money(r.get("expected_margin"))}</td><td class="num">{money(per_save)}'
                "</td></tr>")

    for action, r in per_action.items():
        rows.append(row(_e(action), r if isinstance(r, dict) else {}))
    rows.append(row("all actions", {
        "customers": summary.get("treated"), "control": summary.get("control"),
        "expected_saves": summary.get("expected_saves"),
        "expected_cost": summary.get("expected_cost"),
        "expected_margin": summary.get("expected_incremental_margin")}, "total"))
    parts = ["<h4>Per action</h4>",
             _table(["Action", "Contacted", "Control", "Expected saves", "Expected cost",
                     "Expected margin", "Cost per expected save"], rows, cls="plan-actions")]
    per_tier = summary.get("per_tier") or {}
    if per_tier:
        parts.append("<p>Contacted by risk tier: " + " · ".join(
            f"{_tier_badge(t)} {count(per_tier[t])}" for t in _tier_order(per_tier)) + "</p>")
    return "\n".join(parts)


# (key, column header, what it means)
UPLIFT_METRICS: tuple[tuple[str, str, str], ...] = (
    ("qini", "Qini",
     "Average gap between the learner’s Qini curve and random targeting; 0 is no better than "
     "random, higher is better."),
    ("auuc", "AUUC",
     "Average extra retention among the customers the learner ranks highest, over every share "
     "targeted (area under the uplift curve)."),
    ("uplift_at_10", "Uplift at 10%",
     "Retention of treated minus control customers among the top-ranked 10%."),
    ("uplift_at_20", "Uplift at 20%", "The same among the top-ranked 20%."),
    ("uplift_at_30", "Uplift at 30%", "The same among the top-ranked 30%."),
)


def _uplift_learners(summary: dict) -> str:
    evaluation = summary.get("uplift_evaluation")
    if not isinstance(evaluation, dict) or not evaluation.get("learners"):
        return ("<h4>Uplift learners</h4>"
                + _note("No uplift learner was evaluated for this plan (no usable randomised "
                        "campaign history), so there are no Qini curves."))
    chosen = evaluation.get("chosen")
    rows = []
    for learner in evaluation["learners"]:
        name = str(learner.get("name", "—"))
        if name == chosen:
            cls, label = "chosen", f'{_e(name)} <span class="badge">chosen</span>'
        elif name == "random":
            cls, label = "floor", "random ranking (floor)"
        else:
            cls, label = "", _e(name)
        cells = "".join(
            f'<td class="num">{num(learner.get(k), 4) if k == "qini" else pp(learner.get(k))}'
            "</td>" for k, _, _ in UPLIFT_METRICS)
        rows.append(f'<tr class="{cls}"><th scope="row">{label}</th>{cells}</tr>')
    legend = "".join(f"<dt>{_e(h)}</dt><dd>{_e(what)}</dd>" for _, h, what in UPLIFT_METRICS)
    about = (f"<p>Each learner’s effects were cross-fitted over {count(evaluation.get('folds'))} "
             f"folds on {count(evaluation.get('n_rows'))} rows of "
             f"{count(evaluation.get('n_campaigns'))} randomised campaigns (outcome: "
             f"{_e(evaluation.get('outcome_type', '—'))} within "
             f"{_e(evaluation.get('window_days', '—'))} days) and scored on the rows it did not "
             "see. The learner with the highest Qini is chosen; the random ranking is the floor "
             "every learner must beat. pp = percentage points.</p>")
    return ("<h4>Uplift learners</h4>" + about
            + _table(["Learner"] + [h for _, h, _ in UPLIFT_METRICS], rows, cls="learners")
            + f'<dl class="metrics">{legend}</dl>' + _qini_curves(summary, evaluation))


def _qini_curves(summary: dict, evaluation: dict) -> str:
    curves = summary.get("uplift_curves")
    if not isinstance(curves, dict) or not curves:
        return _note("This plan stores no Qini curves.")
    chosen = str(evaluation.get("chosen", ""))
    actions: list[str] = []
    for name in curves:
        for action in curves[name] or {}:
            if action not in actions:
                actions.append(action)
    figures = []
    for action in actions:
        per_learner = {name: curves[name][action] for name in curves
                       if isinstance(curves[name], dict) and action in curves[name]}
        figures.append(f"<figure>{charts.qini_chart(per_learner, action=action, chosen=chosen)}"
                       "</figure>")
    return ("<h4>Qini curves</h4>" + f'<div class="multiples">{"".join(figures)}</div>'
            + '<p class="muted">One chart per action, on the past campaigns’ customers it was '
            "tried on and their control group: the extra outcomes gained by treating the "
            "customers the learner ranks highest, as a share of all treated customers, as more "
            "are treated. Blue is the chosen learner, the thin line the T-learner; the dotted "
            "diagonal is random targeting. The higher the curve above the diagonal, the better "
            "the learner finds the customers the action moves.</p>")


def _value_model(summary: dict) -> str:
    value = summary.get("value_model") or {}
    models = value.get("models") or {}
    if not models:
        return "<h4>Customer value</h4>" + _note("The plan stores no value-model backtest.")
    chosen = value.get("chosen")
    rows = []
    for name, m in models.items():
        m = m if isinstance(m, dict) else {}
        ratio = finite(m.get("total_ratio"))
        label = (f'{_e(name)} <span class="badge">chosen</span>' if name == chosen else _e(name))
        rows.append(f'<tr class="{"chosen" if name == chosen else ""}"><th scope="row">{label}'
                    f'</th><td class="num">{money(m.get("mae"))}</td><td class="num">'
                    f'{money(m.get("rmse"))}</td><td class="num">'
                    f'{"—" if ratio is None else f"{ratio:.2f}×"}</td><td class="num">'
                    f'{num(m.get("spearman"))}</td></tr>')
    about = (f"<p>A customer’s value is the revenue expected from them over the churn horizon, "
             f"predicted by the <strong>{_e(chosen or '—')}</strong> model, chosen for the lowest "
             "mean absolute error in an out-of-time backtest on "
             f"{_e(value.get('test_cutoff', '—'))} ({count(value.get('n_test'))} customers, who "
             f"spent {money(value.get('mean_revenue'))} each on average).</p>")
    return ("<h4>Customer value</h4>" + about
            + _table(["Value model", "Mean absolute error", "Root mean squared error",
                      "Predicted ÷ actual total", "Rank correlation (Spearman)"], rows,
                     cls="value-models"))


def _plan_sample(sample: pd.DataFrame) -> str:
    heading = f"<h4>Planned customers: the {PLAN_SAMPLE} with the highest expected margin</h4>"
    if sample.empty:
        return heading + _note("No planned customers were supplied.")
    if "is_control" in sample.columns:
        sample = sample[~sample["is_control"].astype(bool)]
    sample = sample.assign(margin_=pd.to_numeric(sample["expected_margin"], errors="coerce"))
    top = sample.sort_values("margin_", ascending=False, kind="stable",
                             na_position="last").head(PLAN_SAMPLE)
    if top.empty:
        return heading + _note("The plan contacts nobody.")
    rows = []
    for rank, r in enumerate(top.to_dict("records"), start=1):
        tier = _text(r.get("risk_tier"))
        rows.append(
            f'<tr><td class="num">{rank}</td><td><code>{_e(r["user_id"])}</code></td>'
            f'<td>{_e(r["action"])}</td><td>{"—" if tier == "—" else _tier_badge(tier)}</td>'
            f'<td class="num">{pct(r.get("p_churn"))}</td><td class="num">{pp(r.get("uplift"))}'
            f'</td><td class="num">{money(r.get("value"))}</td><td class="num">'
            f'{money(r.get("expected_cost"))}</td><td class="num">{money(r["margin_"])}</td>'
            f'<td>{_e(_text(r.get("message_en")))}</td></tr>')
    return heading + _table(["#", "Customer", "Action", "Tier", "P(churn)", "Uplift", "Value",
                             "Expected cost", "Expected margin", "Message (en)"], rows,
                            cls="plan-sample")


def _measurements(measurements: list[dict]) -> str:
    shown = measurements[:MAX_CAMPAIGNS]
    parts = [_campaign(m) for m in shown]
    if len(measurements) > len(shown):
        parts.append(_note(f"The {len(shown)} most recently measured of {len(measurements)} "
                           "campaigns are shown."))
    return "\n".join(parts)


def _group_name(group: dict) -> tuple[str, str]:
    action, tier = str(group.get("action", "—")), str(group.get("tier", "—"))
    return ("all actions" if action == "all" else action), ("all tiers" if tier == "all" else tier)


def _day(document: dict, key: str) -> str:
    return _e(str(document.get(key, "—"))[:10])


def _minute(document: dict, key: str) -> str:
    return _e(str(document.get(key, "—"))[:16].replace("T", " "))


def _campaign(m: dict) -> str:
    confidence = pct(m.get("confidence", 0.95), 0)
    groups = [g for g in m.get("groups", []) if isinstance(g, dict)]
    control = {"matched": "each action against the control customers planned for it",
               "pooled": "each action against the whole control group of its tier"}
    parts = [
        f"<h4>Campaign <code>{_e(m.get('campaign_id', '—'))}</code></h4>",
        f"<p class=\"muted\">Outcome: {_e(m.get('outcome_type', '—'))} within "
        f"{_e(m.get('window_days', '—'))} days of contact. Assigned {_day(m, 'assigned_from')} "
        f"to {_day(m, 'assigned_to')}; measured {_minute(m, 'measured_at')} with the events up "
        f"to {_minute(m, 'observed_until')}. "
        f"{count(m.get('n_treated'))} treated and {count(m.get('n_control'))} control "
        f"customers; {_e(control.get(str(m.get('control')), 'compared with the control group'))}"
        f". Intervals are {confidence} confidence intervals.</p>"]
    totals = m.get("totals") or {}
    if finite(totals.get("incremental_retained")) is not None:
        def interval(key: str, fmt) -> str:
            ci = totals.get(key)
            return (f" ({confidence} CI {fmt(ci[0])} to {fmt(ci[1])})"
                    if isinstance(ci, list) and len(ci) == 2 else "")
        parts.append(
            f"<p>Against its control group the campaign kept <strong>"
            f"{signed(totals.get('incremental_retained'), 1)}</strong> customers"
            f"{interval('incremental_retained_ci', lambda v: signed(v, 1))} and earned <strong>"
            f"{signed(totals.get('incremental_net_revenue'))}</strong> in net revenue after the "
            f"actions’ costs{interval('incremental_net_revenue_ci', signed)}.</p>")
    show_notes = any(g.get("note") for g in groups)
    rows = []
    for g in groups:
        action, tier = _group_name(g)
        is_all = g.get("action") == "all" and g.get("tier") == "all"
        tier_cell = (_tier_badge(g.get("tier")) if str(g.get("tier")) in charts.TIER_COLOURS
                     else _e(tier))
        note = f"<td>{_e(_text(g.get('note')))}</td>" if show_notes else ""
        retention = _with_ci(pp(g.get("incremental_retention")),
                             g.get("incremental_retention_ci"), pp)
        revenue = _with_ci(signed(g.get("incremental_net_revenue")),
                           g.get("incremental_net_revenue_ci"), signed)
        rows.append(
            f'<tr class="{"total" if is_all else ""}"><td>{_e(action)}</td><td>{tier_cell}</td>'
            f'<td class="num">{count(g.get("n_treated"))}</td><td class="num">'
            f'{count(g.get("n_control"))}</td><td class="num">{pct(g.get("retention_treated"))}'
            f'</td><td class="num">{pct(g.get("retention_control"))}</td><td class="num">'
            f'{retention}</td><td class="num">{revenue}</td>{note}</tr>')
    headers = ["Action", "Tier", "Treated", "Control", "Retention, treated", "Retention, control",
               f"Incremental retention ({confidence} CI)",
               f"Incremental net revenue per customer ({confidence} CI)"]
    parts.append(_table(headers + (["Note"] if show_notes else []), rows, cls="measurement"))
    forest = []
    for g in groups:
        estimate = finite(g.get("incremental_retention"))
        if g.get("tier") != "all" or estimate is None:
            continue
        ci = g.get("incremental_retention_ci")
        low, high = (ci if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None))
        action, _ = _group_name(g)
        forest.append((f"{action} ({count(g.get('n_treated'))} vs {count(g.get('n_control'))})",
                       estimate, finite(low), finite(high)))
    if forest:
        parts.append(_figure(
            charts.forest_chart(forest, title="Incremental retention per action",
                                label=f"Incremental retention of campaign {m.get('campaign_id')}"),
            f"Retention of treated minus control customers, with its {confidence} confidence "
            "interval (Newcombe’s score interval); treated vs control customers in brackets. "
            "Green: the action kept more customers than chance explains; red: fewer; grey: the "
            "interval includes zero. A hollow dot has too few customers for an interval."))
    notes = [n for n in m.get("notes", []) if n]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes)
                     + "</ul>")
    return "\n".join(parts)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value)


# --- output -----------------------------------------------------------------------------------

def _write_atomically(path: Path, text: str) -> Path:
    """Readers see the old file or the whole new one, never half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


_CSS = """
:root{--ink:#1d2330;--muted:#667085;--line:#e4e7ec;--chosen:#eaf1fb;--accent:#1f5fbf}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",
"Noto Sans CJK SC","PingFang SC","Microsoft YaHei",sans-serif;color:var(--ink);background:#f7f8fa}
header,main,footer{max-width:1100px;margin:0 auto;padding:0 24px}
header{padding-top:28px}
h1{font-size:1.7rem;margin:0 0 4px}
h2{font-size:1.3rem;margin:0 0 4px;border-bottom:2px solid var(--line);padding-bottom:4px}
h3{font-size:1.05rem;margin:20px 0 6px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:20px 24px;
margin:18px 0}
.lead{color:var(--muted);margin:4px 0 14px}
.meta,.muted{color:var(--muted)}
nav ol{columns:2;padding-left:20px;margin:10px 0 0}
nav a{color:var(--accent);text-decoration:none}
.badge{background:var(--accent);color:#fff;border-radius:10px;padding:1px 8px;font-size:.8em}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:12px;
margin-bottom:12px}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;background:#fcfcfd}
.card .label{color:var(--muted);font-size:.85em}
.card .value{font-size:1.6rem;font-weight:700}
.card .sub{color:var(--muted);font-size:.85em}
.tier-share{font-size:1.05rem;font-weight:600;margin-top:2px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:8px 0;font-size:.9em}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
thead th{background:#f2f4f7}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.best{font-weight:700;color:#0b6b3a}
td.best::after{content:" ▲";font-size:.7em}
tr.chosen{background:var(--chosen)}
tr.oracle{font-style:italic;color:var(--muted)}
tr.obs-partial,tr.obs-none{color:var(--muted)}
tr.floor{font-style:italic;color:var(--muted)}
tr.total{font-weight:600;border-top:2px solid var(--line)}
h4{font-size:.98rem;margin:16px 0 4px}
.ci{color:var(--muted);font-size:.85em}
.multiples{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:8px}
table.plan-sample td:last-child{min-width:260px}
dl.metrics{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;font-size:.9em}
dl.metrics dt{font-weight:600}
dl.metrics dd{margin:0;color:var(--muted)}
figure{margin:10px 0;text-align:center}
figure svg{max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:.85em}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:12px}
.note{background:#fff8e6;border-left:4px solid #e6a23c;padding:6px 10px;margin:6px 0}
ul.notes{padding-left:20px}
.tier{border-radius:8px;padding:0 7px;color:#fff;font-size:.85em}
.tier-high{background:#c0392b}.tier-medium{background:#e6a23c}.tier-low{background:#3c9d5d}
table.customers td{min-width:60px}
footer{color:var(--muted);font-size:.85em;padding-bottom:30px}
"""
