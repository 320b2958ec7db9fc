"""The monitor page: drift of every input and of the scores with calibrated alarms, the
label-free estimate of the current batch with its limit, the label alarm on the newest matured
scoring run and the realized figures of matured scoring runs. It shows the same report as ``GET /v1/monitor`` (and from the same cache,
:mod:`churnguard.service.monitor_reports`); docs/monitor.md explains the method.
"""

from __future__ import annotations

from typing import Any

from churnguard.service.dashboard.i18n import t
from churnguard.service.dashboard.layout import (
    PageContext, cards, count, day, e, note, num, page, pct, section, table)

__all__ = ["render", "render_failure"]


def _p(value: float | None) -> str:
    """A p-value: three decimals, or two significant digits below 0.001.

    >>> _p(0.04321), _p(0.0000123), _p(None)
    ('0.043', '1.2e-05', '—')
    """
    if value is None:
        return "—"
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _state(lang: str, alarm: bool) -> str:
    kind = "major" if alarm else "stable"
    return f'<span class="state state-{kind}">{e(t(lang, "alarm" if alarm else "quiet"))}</span>'


def _drift_row(lang: str, f: dict[str, Any]) -> str:
    name = f'<code>{e(f["name"])}</code>'
    return (f'<tr class="{"alarm" if f["alarm"] else ""}" data-feature="{e(f["name"])}">'
            f'<th scope="row">{name}</th><td class="num">{num(f["statistic"], 4)}</td>'
            f'<td class="num">{num(f["null_p99"], 4)}</td>'
            f'<td class="num">{e(_p(f["p_value"]))}</td>'
            f'<td class="num">{e(_p(f["q_value"]))}</td><td>{_state(lang, f["alarm"])}</td>'
            f'<td class="num">{num(f["reference_median"], 2)}</td>'
            f'<td class="num">{num(f["batch_median"], 2)}</td>'
            f'<td class="num">{pct(f["reference_missing"])} → {pct(f["batch_missing"])}</td>'
            "</tr>")


def _drift_table(lang: str, rows: list[dict[str, Any]], cls: str) -> str:
    headers = [e(t(lang, h)) for h in (
        "col_input", "col_statistic", "col_unchanged_p99", "col_p", "col_q", "col_alarm",
        "col_median_reference", "col_median_current", "col_missing")]
    return table(headers, [_drift_row(lang, f) for f in rows], cls=cls)


def _estimate(lang: str, found: dict[str, Any] | None) -> str:
    if found is None:
        return note(e(t(lang, "no_estimate")))
    figures = cards([
        (e(t(lang, "estimate_churn_rate")), e(pct(found["churn_rate"])),
         e(t(lang, "estimate_churn_rate_sub", n=count(found["n"])))),
        (e(t(lang, "estimate_auc")), e(num(found["auc"])),
         e(t(lang, "estimate_auc_sub", low=num(found["auc_low"]), high=num(found["auc_high"])))),
    ])
    return figures + f'<p class="note" id="estimate-limit">{e(t(lang, "estimate_limit"))}</p>'


def _realized(lang: str, cohorts: list[dict[str, Any]]) -> str:
    rows = [f'<tr><td>{e(day(c["as_of"]))}</td><td><code>{e(c["model_version"])}</code></td>'
            f'<td class="num">{count(c["n"])}</td>'
            f'<td class="num">{count(c["treated_excluded"])}</td>'
            f'<td class="num">{count(c["control"])}</td>'
            f'<td class="num">{pct(c["churn_rate"])}</td><td class="num">{pct(c["mean_p"])}</td>'
            f'<td class="num">{num(c["auc"])}</td><td class="num">{num(c["ece"])}</td>'
            f'<td class="num">{num(c["lift_at_10"], 2)}</td></tr>' for c in cohorts]
    headers = [e(t(lang, h)) for h in (
        "col_cutoff", "col_model", "col_customers", "col_treated_out", "col_control",
        "col_churn_rate", "col_mean_p", "col_auc", "col_ece", "col_lift")]
    return (f'<p class="muted">{e(t(lang, "realized_explained"))}</p>'
            + table(headers, rows, cls="realized", empty=e(t(lang, "no_realized"))))


def _label(lang: str, found: dict[str, Any] | None) -> str:
    """The label alarm's figures (monitor/performance.py), or why there are none."""
    if found is None:
        return note(e(t(lang, "no_label")))
    explained = t(lang, "label_explained", rate=found["rate_tolerance"],
                  auc=found["auc_tolerance"], alpha=found["alpha"])
    rejected = found["calibration_alarm"] or found["auc_alarm"]
    state = _state(lang, found["alarm"]) + (
        f' <span class="muted">{e(t(lang, "label_replaced"))}</span>'
        if rejected and not found["applies"] else "")
    figures = cards([
        (e(t(lang, "label_rate")), f'{e(pct(found["churn_rate"]))} / {e(pct(found["mean_p"]))}',
         f'p {e(_p(found["calibration_p"]))}'),
        (e(t(lang, "label_auc")),
         f'{e(num(found["auc"]))} / {e(num(found["expected_auc"]))}',
         "p " + e(_p(found["auc_p"]))),
        (e(t(lang, "label_state")), f'<span id="label-alarm">{state}</span>',
         e(t(lang, "label_cohort_sub", date=day(found["cohort"]), n=count(found["n"])))),
    ])
    return f'<p class="muted">{e(explained)}</p>' + figures


def render(ctx: PageContext, document: dict[str, Any]) -> str:
    """The page of one report (``MonitorReport.to_dict()``)."""
    lang = ctx.lang
    features = sorted(document["features"], key=lambda f: (not f["alarm"], f["p_value"]))
    checks = len(document["features"]) + (document["score_drift"] is not None)
    headline = cards([
        (e(t(lang, "monitor_batch")), e(count(document["batch_size"])),
         e(t(lang, "monitor_batch_sub", date=day(document["as_of"])))),
        (e(t(lang, "monitor_reference")), e(count(document["reference"]["rows"])),
         e(", ".join(day(c) for c in document["reference"]["cutoffs"]))),
        (e(t(lang, "monitor_alarms")), f'<span id="alarm-count">{len(document["alarms"])}</span>',
         e(t(lang, "monitor_alarms_sub", n=checks))),
    ])
    method = t(lang, "monitor_method", statistic=document["statistic"].upper(),
               bootstrap=document["bootstrap"], fdr=document["fdr"])
    score = document["score_drift"]
    reference = t(lang, "monitor_reference_text", text=document["reference"]["description"])
    score_html = (_drift_table(lang, [score], "score-drift") if score is not None
                  else note(e(t(lang, "no_score_drift"))))
    body = "\n" + "\n".join([
        headline + f'<p class="muted">{e(reference)}</p>',
        section(t(lang, "section_score_drift"), score_html),
        section(t(lang, "section_feature_drift"),
                f'<p class="muted">{e(method)}</p>'
                + _drift_table(lang, features, "feature-drift")),
        section(t(lang, "section_estimate"), _estimate(lang, document["estimate"])),
        section(t(lang, "section_label"), _label(lang, document.get("label"))),
        section(t(lang, "section_realized"), _realized(lang, document["realized"]))]) + "\n"
    return page(ctx, title=t(lang, "monitor_title"), active="monitor", body=body,
                lead=e(t(lang, "monitor_lead", fdr=document["fdr"])))


def render_failure(ctx: PageContext, message: str) -> str:
    """The page when no report can be made (no events, nobody in the population)."""
    lang = ctx.lang
    return page(ctx, title=t(lang, "monitor_title"), active="monitor",
                body=note(e(t(lang, "monitor_failed", message=message))))
