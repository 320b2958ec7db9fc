"""The campaigns page: plan a campaign with a budget slider (expected saves and cost before
committing), the results of past campaigns against their control groups, and what the campaigns
have taught: the learning curve and each action's effect as known after each campaign
(:mod:`churnguard.report.learning`).

The slider asks ``GET /dashboard/api/plan-preview`` for each budget (see
:mod:`~churnguard.service.dashboard.planner`); committing posts to ``/dashboard/api/plans`` with a
``write`` key in the ``X-API-Key`` header. Results are the newest measurement of each campaign
(``churnguard measure``), with the confidence intervals it computed.
"""

from __future__ import annotations

import math

from churnguard import campaigns as stored_campaigns
from churnguard.config import ProjectConfig
from churnguard.report.learning import LearningHistory, learning_history
from churnguard.reporting import latest_measurements
from churnguard.service.dashboard import charts
from churnguard.service.dashboard.i18n import t
from churnguard.service.dashboard.layout import (
    PageContext, chart, count, day, e, minute, money, note, page, pct, pp, section, signed,
    table, tier_badge)
from churnguard.service.dashboard.planner import PlannerState
from churnguard.store import Store

MAX_PLANS = 20
MAX_MEASURED = 10
JS_STRINGS = ("planner_preparing", "planner_failed", "commit_missing_key", "commit_done",
              "commit_failed", "commit_working", "unit_customers")


def _planner(ctx: PageContext, state: PlannerState, config: ProjectConfig,
             population: int, existing: list[str]) -> str:
    lang = ctx.lang
    share = config.intervene.control_share
    if state.status == "ready" and state.prepared is not None:
        top = state.prepared.max_budget
        as_of = day(state.prepared.inputs.as_of)
    else:
        top, as_of = 1000.0, ""
    # The demo's default: a quarter of a currency unit per customer in the population.
    wanted = float(round(0.25 * population)) if population else top / 4
    start = min(top, wanted)
    step = max(top / 200, 0.01)
    status = {"preparing": t(lang, "planner_preparing"), "ready": "",
              "error": t(lang, "planner_failed", message=state.message or "")}[state.status]
    warn = (note(e(t(lang, "planner_existing", campaigns=", ".join(existing))))
            if existing else "")
    stats = "".join(
        f'<div class="card"><div class="label">{e(t(lang, label))}</div>'
        f'<div class="value" id="{key}">—</div><div class="sub">{e(t(lang, sub))}</div></div>'
        for key, label, sub in (
            ("preview-contacted", "preview_contacted", "preview_contacted_sub"),
            ("preview-saves", "preview_saves", "preview_saves_sub"),
            ("preview-cost", "preview_cost", "preview_cost_sub"),
            ("preview-margin", "preview_margin", "preview_margin_sub")))
    return f"""
<div id="planner" data-status="{e(state.status)}" data-as-of="{e(as_of)}" data-start="{wanted:g}">
<p class="planner-status" id="planner-status" role="status">{e(status)}</p>
{warn}
<label class="slider">{e(t(lang, 'budget'))}
<input type="range" id="budget" min="0" max="{top:g}" step="{step:g}" value="{start:g}"
 aria-describedby="budget-value">
<output id="budget-value" for="budget">{money(start)}</output></label>
<div class="cards">{stats}</div>
<p class="muted">{e(t(lang, 'preview_explained', share=pct(share, 0)))}</p>
<div class="scroll"><table id="preview-actions"><thead><tr>
<th>{e(t(lang, 'col_action'))}</th><th>{e(t(lang, 'col_customers'))}</th>
<th>{e(t(lang, 'preview_saves'))}</th><th>{e(t(lang, 'preview_cost'))}</th></tr></thead>
<tbody></tbody></table></div>
<figure class="chart-box"><div class="chart" id="chart-budget"></div>
<figcaption>{e(t(lang, 'caption_budget_curve'))}</figcaption></figure>
<form id="commit" class="commit" autocomplete="off">
<h3>{e(t(lang, 'commit_title'))}</h3>
<p class="muted">{e(t(lang, 'commit_explained'))}</p>
<label>{e(t(lang, 'commit_campaign_id'))} <input type="text" id="campaign-id" maxlength="64"
 pattern="[A-Za-z0-9_.\\-]{{1,64}}"
 placeholder="{e(t(lang, 'commit_campaign_id_placeholder'))}"></label>
<label>{e(t(lang, 'commit_key'))} <input type="password" id="write-key" autocomplete="off"></label>
<button type="submit" id="commit-button">{e(t(lang, 'commit_button'))}</button>
<p id="commit-result" role="status"></p>
</form>
</div>"""


def _plans(lang: str, store: Store) -> tuple[str, list[dict]]:
    delivered = stored_campaigns.delivered_counts(store)
    plans, html_rows = [], []
    for plan in stored_campaigns.newest_plans(store, MAX_PLANS):
        campaign_id, created_at, as_of = plan.campaign_id, plan.created_at, plan.as_of
        budget, status, doc = plan.budget, plan.status, plan.summary
        plans.append({"campaign_id": campaign_id, "as_of": as_of})
        html_rows.append(
            f"<tr><td><code>{e(campaign_id)}</code></td><td>{e(minute(created_at))}</td>"
            f"<td>{e(day(as_of))}</td><td class=\"num\">{money(budget)}</td>"
            f"<td>{e(status)}</td><td class=\"num\">{count(doc.get('treated'))}</td>"
            f"<td class=\"num\">{count(doc.get('control'))}</td>"
            f"<td class=\"num\">{count(delivered.get(campaign_id, 0))}</td>"
            f"<td class=\"num\">{signed(doc.get('expected_saves'), 1)}</td>"
            f"<td class=\"num\">{money(doc.get('expected_cost'))}</td></tr>")
    headers = [e(t(lang, h)) for h in ("col_campaign", "col_created", "col_as_of", "budget",
                                       "col_status", "col_treated", "col_control_n",
                                       "col_delivered", "preview_saves", "preview_cost")]
    return table(headers, html_rows, empty=e(t(lang, "no_plans"))), plans


def _interval(value: object, fmt) -> str:
    if isinstance(value, list | tuple) and len(value) == 2 and all(
            isinstance(v, int | float) and math.isfinite(v) for v in value):
        return f'<span class="ci">[{e(fmt(value[0]))}, {e(fmt(value[1]))}]</span>'
    return ""


def _measurement(lang: str, m: dict, index: int) -> str:
    confidence = pct(m.get("confidence", 0.95), 0)
    groups = [g for g in m.get("groups", []) if isinstance(g, dict)]
    totals = m.get("totals") or {}
    head = t(lang, "measure_head", outcome=m.get("outcome_type", "—"),
             days=m.get("window_days", "—"), start=day(m.get("assigned_from")),
             end=day(m.get("assigned_to")), measured=minute(m.get("measured_at")),
             treated=count(m.get("n_treated")), control=count(m.get("n_control")),
             confidence=confidence)
    parts = [f'<h3>{e(t(lang, "col_campaign"))} <code>{e(m.get("campaign_id"))}</code></h3>',
             f'<p class="muted">{e(head)}</p>']
    if isinstance(totals.get("incremental_retained"), int | float):
        parts.append(
            f'<p class="totals">{e(t(lang, "measure_totals"))} <strong>'
            f'{e(signed(totals.get("incremental_retained"), 1))}</strong> '
            f'{_interval(totals.get("incremental_retained_ci"), lambda v: signed(v, 1))} · '
            f'{e(t(lang, "measure_revenue"))} <strong>'
            f'{e(signed(totals.get("incremental_net_revenue")))}</strong> '
            f'{_interval(totals.get("incremental_net_revenue_ci"), signed)}</p>')
    rows, forest = [], []
    for g in groups:
        action = t(lang, "all_actions") if g.get("action") == "all" else str(g.get("action"))
        tier = g.get("tier")
        tier_html = e(t(lang, "all_tiers")) if tier == "all" else tier_badge(tier, lang)
        cls = "total" if g.get("action") == "all" and tier == "all" else ""
        rows.append(
            f'<tr class="{cls}"><td>{e(action)}</td><td>{tier_html}</td>'
            f'<td class="num">{count(g.get("n_treated"))}</td>'
            f'<td class="num">{count(g.get("n_control"))}</td>'
            f'<td class="num">{pct(g.get("retention_treated"))}</td>'
            f'<td class="num">{pct(g.get("retention_control"))}</td>'
            f'<td class="num">{e(pp(g.get("incremental_retention")))} '
            f'{_interval(g.get("incremental_retention_ci"), pp)}</td>'
            f'<td class="num">{e(signed(g.get("incremental_net_revenue")))} '
            f'{_interval(g.get("incremental_net_revenue_ci"), signed)}</td>'
            f'<td>{e(g.get("note") or "")}</td></tr>')
        estimate = g.get("incremental_retention")
        if tier == "all" and isinstance(estimate, int | float) and math.isfinite(estimate):
            ci = g.get("incremental_retention_ci")
            low, high = (ci if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None))
            forest.append((f"{action} ({count(g.get('n_treated'))} / "
                           f"{count(g.get('n_control'))})", float(estimate), low, high))
    headers = [e(t(lang, h)) for h in ("col_action", "col_tier", "col_treated", "col_control_n",
                                       "col_retention_treated", "col_retention_control",
                                       "col_incremental_retention", "col_incremental_revenue",
                                       "col_note")]
    parts.append(table(headers, rows, cls="measurement"))
    if forest:
        parts.append(chart(f"chart-forest-{index}", charts.forest(
            forest, title=t(lang, "chart_forest"), lang=lang),
            caption=e(t(lang, "caption_forest", confidence=confidence))))
    notes = [n for n in m.get("notes", []) if n]
    if notes:
        parts.append('<ul class="notes">' + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    return '<article class="campaign">' + "\n".join(parts) + "</article>"


def _ci(low: float | None, high: float | None) -> list[float] | None:
    return None if low is None or high is None else [low, high]


def _learning(lang: str, history: LearningHistory) -> str:
    """The learning curve and each action's pooled effect after each campaign."""
    confidence = pct(history.confidence, 0)
    rows = [f'<tr><td><code>{e(c.campaign_id)}</code></td><td>{e(c.assigned_to)}</td>'
            f'<td class="num">{count(c.n_treated)}</td><td class="num">{count(c.n_control)}</td>'
            f'<td class="num">{e(pp(c.retention))} '
            f'{_interval(_ci(c.retention_low, c.retention_high), pp)}</td>'
            f'<td class="num">{e(signed(c.net_revenue))} '
            f'{_interval(_ci(c.net_revenue_low, c.net_revenue_high), signed)}</td></tr>'
            for c in history.campaigns]
    headers = [e(t(lang, h)) for h in ("col_campaign", "col_assigned_until", "col_treated",
                                       "col_control_n", "col_incremental_retention",
                                       "col_incremental_revenue_total")]
    parts = [f'<p class="muted">{e(t(lang, "learning_explained", confidence=confidence))}</p>',
             table(headers, rows, cls="learning-curve")]
    curve = [(f"{c.campaign_id} ({c.assigned_to})", c.retention, c.retention_low,
              c.retention_high) for c in history.campaigns if c.retention is not None]
    if curve:
        parts.append(chart("chart-learning", charts.forest(
            curve, title=t(lang, "chart_learning"), lang=lang),
            caption=e(t(lang, "caption_learning", confidence=confidence))))
    for k, (action, points) in enumerate(history.effects.items()):
        rows = [f'<tr><td><code>{e(p.campaign_id)}</code></td><td>{e(p.assigned_to)}</td>'
                f'<td class="num">{e(pp(p.effect))} {_interval(_ci(p.low, p.high), pp)}</td>'
                f'<td class="num">{e(pp(p.pooled))} '
                f'{_interval(_ci(p.pooled_low, p.pooled_high), pp)}</td>'
                f'<td class="num">{count(p.campaigns)}</td></tr>' for p in points]
        headers = [e(t(lang, h)) for h in ("col_campaign", "col_assigned_until",
                                           "col_effect_campaign", "col_effect_pooled",
                                           "col_campaigns_pooled")]
        parts.append(f"<h3>{e(action)}</h3>")
        parts.append(table(headers, rows, cls="effect-history"))
        forest = [(t(lang, "after_campaign", campaign=p.campaign_id), p.pooled, p.pooled_low,
                   p.pooled_high) for p in points]
        parts.append(chart(f"chart-effect-{k}", charts.forest(
            forest, title=t(lang, "chart_effect_known", action=action), lang=lang),
            caption=e(t(lang, "caption_effect_known", confidence=confidence))))
    return '<div id="learning">' + "\n".join(parts) + "</div>"


def render(ctx: PageContext, store: Store, config: ProjectConfig, state: PlannerState,
           population: int) -> str:
    lang = ctx.lang
    plans_html, plans = _plans(lang, store)
    as_of = state.prepared.inputs.as_of if state.prepared is not None else None
    existing = [p["campaign_id"] for p in plans if as_of is not None and p["as_of"] == as_of]
    notes: list[str] = []
    measured = latest_measurements(store, notes)
    results = "\n".join(_measurement(lang, m, i) for i, m in enumerate(measured[:MAX_MEASURED]))
    if not measured:
        results = note(e(t(lang, "no_measurements")))
    explained = f'<p class="muted">{e(t(lang, "results_explained"))}</p>'
    body = "\n" + "\n".join([
        section(t(lang, "section_planner"), _planner(ctx, state, config, population, existing)),
        section(t(lang, "section_plans"), plans_html),
        section(t(lang, "section_results"),
                f"{explained}\n{results}\n{''.join(note(e(n)) for n in notes)}"),
        section(t(lang, "section_learning"),
                _learning(lang, learning_history(measured)) if measured
                else note(e(t(lang, "no_measurements"))))]) + "\n"
    ctx.scripts.update({k: t(lang, k) for k in JS_STRINGS})
    return page(ctx, title=t(lang, "campaigns_title"), active="campaigns", body=body,
                lead=e(t(lang, "campaigns_lead")))


__all__ = ["render"]
