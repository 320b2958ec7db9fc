"""The overview page: who is in the population, how risk is spread, how many are expected to
leave and how much revenue goes with them, and churn across cutoffs.

Expected revenue at risk is Σ P(churn) × the customer's order revenue in the last horizon
(90 days by default) before the scoring cutoff: the spend that stops if the predicted churners
leave and would otherwise have gone on buying as they did.
"""

from __future__ import annotations

from churnguard import score_runs
from churnguard.config import ProjectConfig
from churnguard.customers import known_count
from churnguard.labels import LabelError, churn_preview
from churnguard.monitor import events_mark
from churnguard.score_runs import latest_run
from churnguard.service.dashboard import charts
from churnguard.service.dashboard.i18n import t
from churnguard.service.dashboard.layout import (
    PageContext, cards, chart, count, day, e, money, note, page, pct, probability, table,
    tier_badge)
from churnguard.service.dashboard.memo import Memo
from churnguard.store import Store

HISTOGRAM_BINS = 20


def _trend(store: Store, config: ProjectConfig, memo: Memo) -> list[dict] | str:
    """churn_preview per cutoff, kept until the events change; a string says why there is none."""
    key = events_mark(store)

    def compute() -> list[dict] | str:
        try:
            rows = churn_preview(store, definition=config.churn)
        except LabelError as exc:
            return str(exc)
        return [{"cutoff": r.cutoff, "population": r.population, "churn_rate": r.churn_rate}
                for r in rows]

    return memo.get("churn_trend", key, compute)


def render(ctx: PageContext, store: Store, config: ProjectConfig, memo: Memo) -> str:
    lang = ctx.lang
    title = t(lang, "overview_title")
    run = latest_run(store)
    if run is None:
        body = note(e(t(lang, "no_scores")))
        return page(ctx, title=title, active="overview", body=body)
    horizon = config.churn.horizon_days
    by_tier = score_runs.tier_totals(store, run, horizon_days=horizon)
    bins = score_runs.histogram(store, run, n_bins=HISTOGRAM_BINS)
    scoring = [{"as_of": a, "mean_p": p} for a, p in score_runs.mean_over_time(store, run.version)]
    known = known_count(store)

    population = sum(r[1] for r in by_tier)
    churners = sum(r[2] or 0.0 for r in by_tier)
    at_risk = sum(r[3] or 0.0 for r in by_tier)
    revenue = sum(r[4] or 0.0 for r in by_tier)
    tiers = {r[0]: r for r in by_tier}
    high = tiers.get("high")
    headline = cards([
        (e(t(lang, "card_population")), count(population),
         e(t(lang, "card_population_sub", known=count(known), date=day(run.as_of)))),
        (e(t(lang, "card_churners")), count(churners),
         e(t(lang, "card_churners_sub", share=pct(churners / population if population else None),
             days=horizon))),
        (e(t(lang, "card_high")), count(high[1] if high else 0),
         e(t(lang, "card_high_sub", churners=count(high[2] if high else 0)))),
        (e(t(lang, "card_revenue")), money(at_risk),
         e(t(lang, "card_revenue_sub", share=pct(at_risk / revenue if revenue else None),
             days=horizon))),
    ])
    rows = []
    for tier in ["high", "medium", "low"] + sorted(set(tiers) - {"high", "medium", "low"}):
        r = tiers.get(tier)
        if r is None:
            continue
        link = ctx.url("/customers", tier=tier)
        rows.append(
            f'<tr><td><a href="{e(link)}">{tier_badge(tier, lang)}</a></td>'
            f'<td class="num">{count(r[1])}</td><td class="num">{pct(r[1] / population)}</td>'
            f'<td class="num">{e(probability(r[5], 0))} – {e(probability(r[6], 0))}</td>'
            f'<td class="num">{count(r[2])}</td><td class="num">{money(r[3])}</td></tr>')
    tier_table = table([e(t(lang, h)) for h in ("col_tier", "col_customers", "col_share",
                                                 "col_range", "col_churners", "col_revenue_risk")],
                       rows, cls="tiers")
    trend = _trend(store, config, memo)
    trend_html = (note(e(trend)) if isinstance(trend, str) else
                  chart("chart-trend", charts.churn_trend(trend, scoring, lang=lang),
                        caption=e(t(lang, "caption_trend", days=horizon))))
    model_note = t(lang, "run_note", version=run.version, date=day(run.as_of))
    if not run.is_champion:
        model_note += " " + t(lang, "run_not_champion")
    body = f"""
{headline}
<section>
<h2>{e(t(lang, 'section_distribution'))}</h2>
{chart('chart-risk', charts.risk_histogram(bins, n_bins=HISTOGRAM_BINS, lang=lang),
       caption=e(t(lang, 'caption_distribution')))}
{tier_table}
</section>
<section>
<h2>{e(t(lang, 'section_trend'))}</h2>
{trend_html}
</section>
<p class="muted">{e(model_note)}</p>
"""
    return page(ctx, title=title, active="overview", body=body,
                lead=e(t(lang, "overview_lead", days=horizon)))
