"""The report's interventions section: the latest plan (actions, uplift learners, Qini
curves, value model, a sample of rows) and the measured campaigns against their control groups."""

from __future__ import annotations

import pandas as pd

from churnguard.report import charts
from churnguard.report.data import ReportData
from churnguard.report.learning import LearningHistory, learning_history
from churnguard.report.formatting import (
    count, finite, money, num, pct, pp, probability, signed)
from churnguard.report.markup import (
    cards as _cards,
    esc as _e,
    figure as _figure,
    note as _note,
    table as _table,
    text as _text,
    tier_badge as _tier_badge,
    tier_order as _tier_order,
    when as _when,
    with_ci as _with_ci,
)

PLAN_SAMPLE = 20
MAX_CAMPAIGNS = 10


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
    parts.append(_exploration(summary.get("exploration")))
    parts.append(_uplift_learners(summary))
    parts.append(_value_model(summary))
    parts.append(_plan_sample(data.plan_sample))
    return "\n".join(parts)


def _exploration(exploration: object) -> str:
    """What the plan's exploration costs and is expected to teach (intervene/explore.py)."""
    if not isinstance(exploration, dict):
        return ""
    cells = [c for c in exploration.get("per_segment") or [] if isinstance(c, dict)
             and (c.get("planned") or c.get("explored"))]
    rows = [f'<tr><td>{_e(c.get("action"))}</td><td>{_tier_badge(c.get("risk_tier"))}</td>'
            f'<td class="num">{count(c.get("explored"))}</td>'
            f'<td class="num">{count(c.get("planned"))}</td>'
            f'<td class="num">{pp(c.get("effect"))}</td>'
            f'<td class="num">{pp(c.get("width_now"))}</td>'
            f'<td class="num">{pp(c.get("width_after_plan"))}</td>'
            f'<td class="num">{pp(c.get("width_after_greedy"))}</td></tr>' for c in cells]
    about = (f"<p>Exploration: <strong>{count(exploration.get('contacted'))}</strong> of the "
             f"contacted customers ({pct(exploration.get('contacted_share'), 1)}; "
             f"<code>explore_share</code> {pct(exploration.get('share'), 0)}) got an action "
             "drawn at random where the effects are least known (Thompson sampling over each "
             "risk tier’s effect beliefs), with a control group of their own. It gives up an "
             f"expected <strong>{money(exploration.get('expected_margin_given_up'))}</strong> "
             "of margin against the greedy plan "
             f"({money(exploration.get('greedy_expected_margin'))}), to narrow the effects’ "
             "intervals as the table shows (95% interval widths, percentage points).</p>")
    return "<h4>Exploration</h4>" + about + _table(
        ["Action", "Tier", "Explored", "Planned", "Effect believed", "Interval now",
         "After this plan", "After the greedy plan"], rows, cls="exploration")


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
    choice = evaluation.get("choice") or {}
    if choice.get("kept_from"):
        about += (f"<p>This plan kept the learner chosen among all of them by the plan "
                  f"{_e(choice['kept_from'])} (as of {_e(str(choice.get('chosen_at', ''))[:10])}"
                  "; <code>[uplift] choose_every_days</code>), so it cross-fitted only that "
                  "one, for its recalibration; that plan's report compares them all.</p>")
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
            f'<td class="num">{_e(probability(r.get("p_churn")))}</td>'
            f'<td class="num">{pp(r.get("uplift"))}'
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


def _ci(low: float | None, high: float | None) -> list[float] | None:
    return None if low is None or high is None else [low, high]


def _learning(history: LearningHistory) -> str:
    """The learning curve and each action's effect as known after each campaign
    (report/learning.py)."""
    confidence = pct(history.confidence, 0)
    parts = [f'<p class="muted">Each measured campaign in the order it was assigned: what it '
             f"achieved against its control group, and each action’s effect on retention as "
             f"known after it (pooled over every campaign measured so far, weighted by "
             f"precision), with {confidence} intervals. The pooled interval narrows as "
             f"campaigns add randomised evidence; exploration "
             f"(<code>[intervene] explore_share</code>) aims it where it is widest.</p>"]
    rows = []
    for c in history.campaigns:
        retention = _with_ci(pp(c.retention), _ci(c.retention_low, c.retention_high), pp)
        revenue = _with_ci(signed(c.net_revenue), _ci(c.net_revenue_low, c.net_revenue_high),
                           signed)
        rows.append(f'<tr><td><code>{_e(c.campaign_id)}</code></td><td>{_e(c.assigned_to)}</td>'
                    f'<td class="num">{count(c.n_treated)}</td>'
                    f'<td class="num">{count(c.n_control)}</td>'
                    f'<td class="num">{retention}</td><td class="num">{revenue}</td></tr>')
    parts.append(_table(["Campaign", "Assigned until", "Treated", "Control",
                         f"Incremental retention ({confidence} CI)",
                         f"Incremental net revenue, total ({confidence} CI)"], rows,
                        cls="learning-curve"))
    curve = [(f"{c.campaign_id} ({c.assigned_to})", c.retention, c.retention_low,
              c.retention_high) for c in history.campaigns if c.retention is not None]
    if curve:
        parts.append(_figure(
            charts.forest_chart(curve, title="Learning curve: incremental retention per campaign",
                                label="Learning curve"),
            f"Retention of treated minus control customers of each campaign, oldest at the top, "
            f"with its {confidence} confidence interval."))
    for action, points in history.effects.items():
        rows = [f'<tr><td><code>{_e(p.campaign_id)}</code></td><td>{_e(p.assigned_to)}</td>'
                f'<td class="num">{_with_ci(pp(p.effect), _ci(p.low, p.high), pp)}</td>'
                f'<td class="num">{_with_ci(pp(p.pooled), _ci(p.pooled_low, p.pooled_high), pp)}'
                f'</td><td class="num">{count(p.campaigns)}</td></tr>' for p in points]
        parts.append(f"<h4>{_e(action)}</h4>")
        parts.append(_table(["Campaign", "Assigned until", f"This campaign ({confidence} CI)",
                             f"Known after it, pooled ({confidence} CI)", "Campaigns pooled"],
                            rows, cls="effect-history"))
        forest = [(f"after {p.campaign_id}", p.pooled, p.pooled_low, p.pooled_high)
                  for p in points]
        parts.append(_figure(
            charts.forest_chart(forest, title=f"{action}: effect on retention as known",
                                label=f"Effect of {action} after each campaign"),
            f"The pooled effect of {action} after each campaign, with its {confidence} "
            "interval: it narrows as campaigns are measured."))
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


def bodies(data: ReportData) -> dict[str, str]:
    """The HTML of the interventions section, by section id."""
    return {"interventions": _interventions(data),
            "learning": _learning(learning_history(data.measurements))}


__all__ = ["bodies"]
