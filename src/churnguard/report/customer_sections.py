"""The report's customer sections: score distribution, feature importance, churn by segment,
the churn definition preview and the top at-risk customers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnguard.report import charts
from churnguard.report.data import ReportData
from churnguard.report.formatting import count, pct, probability
from churnguard.report.markup import (
    esc as _e,
    figure as _figure,
    missing as _missing,
    note as _note,
    table as _table,
    text as _text,
)

OBSERVABILITY = {
    "full": "complete",
    "partial": "partial — the horizon runs past the data, so the rate is not final",
    "none": "not yet observable — the horizon starts after the data ends",
}


TOP_FEATURES = 15
TOP_CUSTOMERS = 50
MAX_SEGMENT_VALUES = 12
MAX_COHORTS = 36


def _distribution(data: ReportData) -> str:
    if "scores" in data.missing:
        return _missing("scores")
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
        low, high = probability(p[keep][sel].min()), probability(p[keep][sel].max())
        rows.append(f'<tr><td><span class="tier tier-{_e(tier)}">{_e(tier)}</span></td>'
                    f'<td class="num">{count(sel.sum())}</td><td class="num">'
                    f"{pct(sel.mean())}</td><td class=\"num\">{_e(low)} – "
                    f"{_e(high)}</td><td class=\"num\">"
                    f"{count(p[keep][sel].sum())}</td></tr>")
    return (_figure(charts.score_distribution_chart(p[keep].to_numpy(), tiers),
                    "Each bar counts the customers whose predicted probability falls in that "
                    "range.")
            + _table(["Tier", "Customers", "Share", "Probability range", "Expected churners"],
                     rows))


def _importance(data: ReportData) -> str:
    imp = pd.to_numeric(data.feature_importance, errors="coerce").dropna()
    parts = []
    if "model" in data.missing:
        parts.append(_missing("model"))
    elif imp.empty:
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
    if "backtest" in data.missing:  # the labels of its test cutoff
        return _missing("backtest")
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
    if "scores" in data.missing:
        return _missing("scores")
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
                    f'<td class="num">{_e(probability(record["p_numeric_"]))}</td>'
                    f'<td><span class="tier tier-{_e(tier)}">{_e(tier)}</span></td>{cells}</tr>')
    version = scores["model_version"].dropna().unique() if "model_version" in scores else []
    about = (f"<p class=\"muted\">Scored by model version {_e(', '.join(map(str, version)))}.</p>"
             if len(version) else "")
    headers = ["#", "Customer", "P(churn)", "Tier"] + [f"Reason {c[-1]}" for c in reasons]
    return about + _table(headers, rows, cls="customers")


def bodies(data: ReportData) -> dict[str, str]:
    """The HTML of each customer section, by section id."""
    return {"distribution": _distribution(data), "importance": _importance(data),
            "segments": _segments(data), "definition": _definition(data),
            "customers": _customers(data)}


__all__ = ["bodies"]
